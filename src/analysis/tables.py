"""The tables of plot_results.py as text: the rows of the `table` subcommand computed from loaded accuracy matrices
(metrics.py) and the capacity the runs saved, optionally with paired tests against a reference approach and with
published figures beside them, and written out aligned for the screen, as CSV, as Markdown and as LaTeX; and the
original's printout under the `forgetting` figure. plot_results.py loads and checks the result files."""
import csv
import io
import math
import re

import numpy as np

from analysis import metrics

FINAL = ('acc_final', 'bwt', 'forgetting', 'rho')  # the columns after the accuracy per number of tasks
CAPACITY = 'capacity'  # after FINAL where runs saved it: the share of the network used after the last task, in %
COLUMN_TITLES = {'acc_final': 'final acc', 'bwt': 'BWT', 'forgetting': 'forgetting', 'rho': 'rho',
                 CAPACITY: 'capacity used'}
# Every metric a row holds, which a published figure may name: acc_<k> and rho_<k> after k tasks (up to the row's)
METRIC_NAME = re.compile(r'acc_final|bwt|forgetting|rho|(acc|rho)_[1-9][0-9]*')
TESTED = ('acc_final', 'bwt')  # tested against the reference approach, and the LaTeX table's columns
TESTS = {'ttest': 't', 'wilcoxon': 'W'}  # the paired tests, and their letters in the column titles
ALPHA = 0.05  # LaTeX's dagger: Holm-adjusted t-test p below this
TOO_FEW = f'n<{metrics.MIN_PAIRS}'
LATEX_TITLES = {'acc_final': r'ACC (\%)', 'bwt': r'BWT (\%)', CAPACITY: r'Used (\%)'}
LATEX_SPECIAL = {**{c: '\\' + c for c in '&%$#_{}'}, '\\': r'\textbackslash{}', '~': r'\textasciitilde{}',
                 '^': r'\textasciicircum{}'}


def print_forgetting(curves: dict) -> None:
    """The original's table: mean (interval) per number of tasks, then the mean over all of them; under a header that
    says so, and without the interval where there is one seed (it is undefined)."""
    first = next(iter(curves.values()))  # every curve has the same seeds and tasks
    nseeds, ntasks = first['per_seed'].shape
    single = nseeds == 1
    cell_width = 8 if single else 16  # the width of a cell below: '-0.501  ' or '-0.501 (0.012)  '
    over = 'one seed, no interval' if single else f'mean (95% half-width) over {nseeds} seeds'
    print('-' * 100)
    print(f'Forgetting ratio rho after k tasks (averaged over the tasks seen): {over}')
    print(f"{'k':16s}  " + ''.join(f'{k:>6d}'.ljust(cell_width) for k in range(1, ntasks + 1)) + '-->    mean')
    for label, c in curves.items():
        cells = ''.join(f'{m:6.3f}  ' if single else f'{m:6.3f} ({h:5.3f})  ' for m, h in zip(c['mean'], c['ci']))
        print(f'{label:16s}  {cells}-->  {c["per_seed"].mean():6.3f}')
    print('-' * 100)


def table_rows(runs: dict[str, np.ndarray], ratios: dict[str, np.ndarray] | None, seeds: list[int],
               experiment: str, prefix: str = '', capacity: dict[str, tuple[str, np.ndarray]] | None = None) \
        -> list[dict]:
    """Per approach: each metric's (mean, 95% half-width) over seeds, accuracies in %, rho NaN without ratios, rho_k
    after each number of tasks k; the capacity used after the last task in % (capacity: approach -> (what it counts,
    the share per seed), NaN for an approach not in it) and what it counts; and the tested metrics per seed number."""
    capacity = capacity or {}
    rows = []
    for approach, acc in runs.items():
        nseeds, ntasks = acc.shape[:2]
        seen = 100 * metrics.average_seen(acc)  # (seeds, T)
        rho = metrics.average_seen(ratios[approach]) if ratios is not None else np.full(seen.shape, np.nan)
        values = {f'acc_{k + 1}': seen[:, k] for k in range(ntasks)}
        values.update(acc_final=seen[:, -1], bwt=100 * metrics.backward_transfer(acc),
                      forgetting=100 * metrics.forgetting_measure(acc), rho=rho[:, -1])
        values.update({f'rho_{k + 1}': rho[:, k] for k in range(ntasks)})
        counted, used = capacity.get(approach, (None, np.full(nseeds, np.nan)))
        values[CAPACITY] = 100 * used
        rows.append({'experiment': experiment, 'approach': prefix + approach, 'name': approach, 'prefix': prefix,
                     'seeds': nseeds, 'tasks': ntasks, 'capacity_of': counted,
                     'per_seed': {m: dict(zip(seeds, values[m].tolist())) for m in TESTED},
                     **{k: (float(v.mean()), float(metrics.confidence_interval(v))) for k, v in values.items()}})
    return rows


def paired(a: dict[int, float], b: dict[int, float]) -> dict:
    """metrics.paired_tests of a against b on the seeds both have, paired by seed number."""
    common = sorted(a.keys() & b.keys())
    return metrics.paired_tests(np.array([a[s] for s in common]), np.array([b[s] for s in common]))


def with_significance(rows: list[dict], against: str) -> list[dict]:
    """The rows with 'tests': per tested metric, pairs and Holm-adjusted p-values against approach `against` of the
    same experiment and folder (None for `against` itself)."""
    rows = [dict(row) for row in rows]
    groups = {}
    for row in rows:
        groups.setdefault((row['experiment'], row['prefix']), []).append(row)
    for group in groups.values():
        base = next(r for r in group if r['name'] == against)
        base['tests'] = None
        others = [r for r in group if r is not base]
        for row in others:
            row['tests'] = {}
        for metric in TESTED:
            results = [paired(r['per_seed'][metric], base['per_seed'][metric]) for r in others]
            adjusted = {test: metrics.holm([result[test] for result in results]) for test in TESTS}
            for k, (row, result) in enumerate(zip(others, results)):
                row['tests'][metric] = {'pairs': result['pairs'], **{test: adjusted[test][k] for test in TESTS}}
    return rows


def with_published(rows: list[dict], published: list[dict]) -> list[dict]:
    """The rows with 'published': (source, {metric: value}) per source with figures for the row's experiment,
    approach (by name, whatever its folder) and metrics it holds."""
    out = []
    for row in rows:
        figures = {}
        for entry in published:
            if (entry['experiment'], entry['approach']) == (row['experiment'], row['name']) and entry['metric'] in row:
                figures.setdefault(entry['source'], {})[entry['metric']] = entry['value']
        out.append({**row, 'published': list(figures.items())})
    return out


def has_capacity(rows: list[dict]) -> bool:
    """Whether any row's runs saved their capacity (the tables show its column then)."""
    return any(r['capacity_of'] is not None for r in rows)


def table_columns(rows: list[dict]) -> list[str]:
    """The metric columns, in order: accuracy after each number of tasks (up to the most of any row), FINAL, the
    capacity used where any row has it, then any rho_k a published figure gives."""
    columns = ([f'acc_{k}' for k in range(1, max(r['tasks'] for r in rows) + 1)] + list(FINAL)
               + [CAPACITY] * has_capacity(rows))
    published = {m for r in rows for _, figures in r.get('published', ()) for m in figures}
    return columns + sorted(published - set(columns), key=lambda m: int(m.rpartition('_')[2]))


def number(value: float, digits: int) -> str:
    """A number for the tables; 'n/a' where undefined (no references, a single seed, a single task)."""
    return f'{value:.{digits}f}' if math.isfinite(value) else 'n/a'


def estimate(mean: float, half_width: float, digits: int) -> str:
    """'mean ± half-width', or 'n/a' when the metric is undefined."""
    return f'{number(mean, digits)} ± {number(half_width, digits)}' if math.isfinite(mean) else 'n/a'


def metric_cells(column: str, value: tuple[float, float | None] | None, csv: bool, screen: bool = False) -> list[str]:
    """A metric's cells: 'mean ± half-width', or for CSV the two numbers; a lone number without a half-width
    (a published figure, a difference, or on screen the value of a single seed); blank without a value."""
    if value is None:
        return ['', ''] if csv else ['']
    mean, half = value
    if csv:
        return [number(mean, 6), '' if half is None else number(half, 6)]
    digits = 3 if column.startswith('rho') else 2
    # A finite mean with an undefined half-width is one seed's value: '± n/a' in every cell says nothing on screen
    alone = half is None or (screen and not math.isfinite(half))
    return [number(mean, digits) if alone else estimate(mean, half, digits)]


def p_value_text(row: dict, metric: str, test: str, digits: int) -> str:
    """A p-value cell: 'ref' for the reference approach itself, 'n<3' where too few seeds pair up to test."""
    if row['tests'] is None:
        return 'ref'
    result = row['tests'][metric]
    return TOO_FEW if result['pairs'] < metrics.MIN_PAIRS else number(result[test], digits)


def table_cells(rows: list[dict], csv: bool = False, screen: bool = False) -> list[list[str]]:
    """Header and lines of our table, plus an experiment column, p-values and published lines where rows have them;
    on screen, a single seed's values without '± n/a'."""
    columns = table_columns(rows)
    several, tested, published = len({r['experiment'] for r in rows}) > 1, 'tests' in rows[0], 'published' in rows[0]

    def cells(value_of) -> list[str]:
        return [cell for c in columns for cell in metric_cells(c, value_of(c), csv, screen)]

    titles = ([name for c in columns for name in (c, c + '_ci95')] if csv else
              [COLUMN_TITLES.get(c, c.replace('_', ' ')) for c in columns])
    p_titles = [f'{m}_{test}_p' if csv else f'{COLUMN_TITLES[m]} p({letter})'
                for m in TESTED for test, letter in TESTS.items()] if tested else []
    lines = [['experiment'] * several + ['approach', 'seeds'] + titles + p_titles + ['source'] * published]
    for row in rows:
        lead = [row['experiment']] * several + [row['approach']]
        p_values = [p_value_text(row, m, test, 6 if csv else 3) for m in TESTED for test in TESTS] if tested else []
        lines.append(lead + [str(row['seeds'])] + cells(lambda c: row.get(c, (math.nan, math.nan))) + p_values
                     + ['ours'] * published)
        # Beneath our line, per source: its figures, then ours minus them
        for source, figures in row.get('published', ()):
            differences = {m: row[m][0] - value for m, value in figures.items()}
            for values, label in ((figures, source), (differences, 'ours - published')):
                lines.append(lead + [''] + cells(lambda c: (values[c], None) if c in values else None)
                             + [''] * len(p_values) + [label])
    return lines


def csv_text(rows: list[dict]) -> str:
    """The table as CSV: one column per metric and one for its 95% half-width (accuracies in %)."""
    out = io.StringIO()
    csv.writer(out, lineterminator='\n').writerows(table_cells(rows, csv=True))
    return out.getvalue()


def markdown_text(rows: list[dict]) -> str:
    """The table in Markdown."""
    header, *body = table_cells(rows)
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    return '\n'.join(lines + ['| ' + ' | '.join(cells) + ' |' for cells in body]) + '\n'


def print_table(rows: list[dict]) -> None:
    """The table, columns aligned; with one seed, values alone (a note says why there is no interval)."""
    cells = table_cells(rows, screen=True)
    widths = [max(len(r[i]) for r in cells) for i in range(len(cells[0]))]
    for r in cells:
        print('  '.join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    single = any(r['seeds'] == 1 for r in rows)
    print('Accuracies, BWT and forgetting in %; mean ± 95% half-width over the seeds'
          + ('; one seed: its value alone (no interval)' if single else ''))
    if has_capacity(rows):
        print(f'Capacity used: % of the network the tasks take after the last task, {capacity_counts(rows)}; n/a: no '
              f'capacity saved')


def capacity_counts(rows: list[dict]) -> str:
    """What each approach with a capacity counts: 'of the weights (packnet), masked parameters (hat)'."""
    counts = {}
    for row in rows:
        if row['capacity_of'] is not None:
            counts.setdefault(row['capacity_of'], []).append(row['name'])
    return 'of the ' + ', '.join(f"{of} ({', '.join(dict.fromkeys(names))})" for of, names in counts.items())


def latex_escape(text: str) -> str:
    """text with LaTeX's special characters escaped."""
    return ''.join(LATEX_SPECIAL.get(c, c) for c in text)


def latex_cell(row: dict, metric: str, best: float | None, outside: tuple[str, ...]) -> str:
    """A LaTeX cell: mean ± half-width, bold if it is best (as shown, outside left out), a dagger if p < ALPHA (tested
    metrics)."""
    mean, half = row[metric]
    text = number(mean, 2) + (f' $\\pm$ {half:.2f}' if math.isfinite(half) else '')
    if row['name'] not in outside and math.isfinite(mean) and round(mean, 2) == best:
        text = f'\\textbf{{{text}}}'
    # NaN (too few pairs, not tested) never is below ALPHA
    if row.get('tests') and metric in TESTED and row['tests'][metric]['ttest'] < ALPHA:
        text += r'$^\dagger$'
    return text


def latex_text(rows: list[dict], outside: tuple[str, ...] = ()) -> str:
    """Final accuracy and BWT, and the capacity used where any row has it, approaches by experiments, as a booktabs
    tabular; bold (accuracy and BWT) and daggers as latex_cell."""
    experiments = list(dict.fromkeys(r['experiment'] for r in rows))
    shown = TESTED + (CAPACITY,) * has_capacity(rows)
    width = len(shown)
    by_key = {(r['experiment'], r['approach']): r for r in rows}
    best = {(e, m): max((round(r[m][0], 2) for r in rows if r['experiment'] == e and r['name'] not in outside
                         and math.isfinite(r[m][0])), default=None) for e in experiments for m in TESTED}
    left_out = [name for name in outside if any(r['name'] == name for r in rows)]
    lines = ['% ACC: final average accuracy, BWT: backward transfer, in %; mean $\\pm$ 95% interval over seeds',
             '% bold: the best of each column (highest ACC, highest BWT)' + (f', {" and ".join(left_out)} left out'
                                                                             if left_out else '')]
    if has_capacity(rows):
        lines.append(f'% Used: % of the network the tasks take after the last task, {capacity_counts(rows)}; mean '
                     f'$\\pm$ 95% interval over seeds; n/a: no capacity saved')
    if 'tests' in rows[0]:
        against = next(r['name'] for r in rows if r['tests'] is None)
        untested = any(t['pairs'] < metrics.MIN_PAIRS for r in rows if r['tests'] for t in r['tests'].values())
        note = f'; not tested: fewer than {metrics.MIN_PAIRS} seeds in common' if untested else ''
        lines.append(f'% $^\\dagger$: p < {ALPHA} against {against}, paired t-test over seeds, Holm-corrected over the '
                     f'approaches compared{note}')
    lines += [f'\\begin{{tabular}}{{l{"c" * width * len(experiments)}}}', r'\toprule',
              ' & ' + ' & '.join(f'\\multicolumn{{{width}}}{{c}}{{{latex_escape(e)}}}' for e in experiments) + r' \\',
              ' '.join(f'\\cmidrule(lr){{{width * i + 2}-{width * i + width + 1}}}' for i in range(len(experiments))),
              'Approach & ' + ' & '.join(LATEX_TITLES[m] for _ in experiments for m in shown) + r' \\', r'\midrule']
    lines += [latex_escape(label) + ' & ' + ' & '.join(latex_cell(by_key[e, label], m, best.get((e, m)), outside)
                                                       for e in experiments for m in shown) + r' \\'
              for label in dict.fromkeys(r['approach'] for r in rows)]
    return '\n'.join(lines + [r'\bottomrule', r'\end{tabular}']) + '\n'
