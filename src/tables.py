"""The tables of plot_results.py as text: the rows of the `table` subcommand computed from loaded accuracy matrices
(metrics.py), and written out aligned for the screen, as CSV and as Markdown; and the original's printout under the
`forgetting` figure. plot_results.py loads and checks the result files."""
import csv
import io
import math

import numpy as np

import metrics

COLUMN_TITLES = {'acc_final': 'final acc', 'bwt': 'BWT', 'forgetting': 'forgetting', 'rho': 'rho'}


def print_forgetting(curves: dict) -> None:
    """The original's table: mean (interval) per number of tasks, then the mean over all of them."""
    print('-' * 100)
    for label, c in curves.items():
        cells = ''.join(f'{m:6.3f} ({h:5.3f})  ' for m, h in zip(c['mean'], c['ci']))
        print(f'{label:16s}  {cells}-->  {c["per_seed"].mean():6.3f}')
    print('-' * 100)


def table_rows(runs: dict[str, np.ndarray], ratios: dict[str, np.ndarray] | None, prefix: str = '') -> list[dict]:
    """Per approach: each metric's (mean, 95% half-width) over seeds, accuracies in %; rho NaN without ratios."""
    rows = []
    for approach, acc in runs.items():
        nseeds = acc.shape[0]
        seen = 100 * metrics.average_seen(acc)  # (seeds, T)
        values = {f'acc_{k + 1}': seen[:, k] for k in range(seen.shape[1])}
        values.update(acc_final=seen[:, -1], bwt=100 * metrics.backward_transfer(acc),
                      forgetting=100 * metrics.forgetting_measure(acc),
                      rho=(metrics.average_seen(ratios[approach])[:, -1] if ratios is not None
                           else np.full(nseeds, np.nan)))
        rows.append({'approach': prefix + approach, 'seeds': nseeds,
                     **{k: (float(v.mean()), float(metrics.confidence_interval(v))) for k, v in values.items()}})
    return rows


def table_columns(rows: list[dict]) -> list[str]:
    """The metric columns of the table, in order."""
    return [k for k in rows[0] if k not in ('approach', 'seeds')]


def number(value: float, digits: int) -> str:
    """A number for the tables; 'n/a' where undefined (no references, a single seed, a single task)."""
    return f'{value:.{digits}f}' if math.isfinite(value) else 'n/a'


def table_cells(rows: list[dict]) -> list[list[str]]:
    """Header and rows of the human-readable table: 'mean ± half-width' per metric."""
    header = ['approach', 'seeds'] + [COLUMN_TITLES.get(c, c.replace('acc_', 'acc ')) for c in table_columns(rows)]
    return [header] + [[row['approach'], str(row['seeds'])] + [estimate(*row[c], 3 if c == 'rho' else 2)
                                                                 for c in table_columns(rows)] for row in rows]


def estimate(mean: float, half_width: float, digits: int) -> str:
    """'mean ± half-width', or 'n/a' when the metric is undefined."""
    return f'{number(mean, digits)} ± {number(half_width, digits)}' if math.isfinite(mean) else 'n/a'


def csv_text(rows: list[dict]) -> str:
    """The table as CSV: one column per metric and one for its 95% half-width (accuracies in %)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator='\n')
    columns = table_columns(rows)
    writer.writerow(['approach', 'seeds'] + [name for c in columns for name in (c, c + '_ci95')])
    for row in rows:
        writer.writerow([row['approach'], row['seeds']] + [number(v, 6) for c in columns for v in row[c]])
    return out.getvalue()


def markdown_text(rows: list[dict]) -> str:
    """The table in Markdown."""
    header, *body = table_cells(rows)
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    return '\n'.join(lines + ['| ' + ' | '.join(cells) + ' |' for cells in body]) + '\n'


def print_table(rows: list[dict]) -> None:
    """The table, columns aligned."""
    cells = table_cells(rows)
    widths = [max(len(r[i]) for r in cells) for i in range(len(cells[0]))]
    for r in cells:
        print('  '.join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
