"""Figures and tables from the result files of run.py (docs/results.md).

    python src/plot_results.py --experiment cifar --approaches random,joint,sgd,hat --seeds 0-9 --output rho.png
    python src/plot_results.py table --experiment cifar --approaches random,joint,sgd,hat --csv t.csv --markdown t.md
    python src/plot_results.py table --experiments cifar,pmnist --approaches sgd,ewc,hat --against hat --latex t.tex
    python src/plot_results.py table --experiment split_cifar100 --approaches hat \\
        --reference scripts/published_results.csv
    python src/plot_results.py matrix res/cifar_hat_0.pkl --output acc.png
    python src/plot_results.py masks logs/mnist2_hat-test_0_masks.pkz --output masks.png
    python src/plot_results.py curves logs/cifar_hat_0.jsonl --output curves.png
    python src/plot_results.py capacity --experiment cifar --approaches hat,packnet --seeds 0-9 --output cap.png

Without a subcommand it draws `forgetting`, as the original plot_results.py did (same flags). Every figure goes to
--output (any format matplotlib writes, from the suffix) or, without it, to the screen. Confidence intervals are the
original's: the 95% Student-t quantile with n-1 degrees of freedom times std / sqrt(n) over the n seeds, with numpy's
default std (ddof=0), so they are sqrt((n-1)/n) narrower than the textbook interval (ddof=1).
"""
import argparse
import csv
import gzip
import json
import numbers
import sys
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.backend_bases import FigureCanvasBase
from matplotlib.backends import BackendFilter, backend_registry
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from analysis import hat_masks, metrics, results, tables
from approaches import _base
from plumbing import files, utils

REFERENCES = ('random', 'joint')  # the forgetting ratio's lower and upper references
MARKERS = ['o', 'v', '^', '<', '>', 's', '*', 'd', 'x', '+', 'h']  # the original's, cycled
JITTER = 0.08  # the original's horizontal offset between approaches, in task units
CURVE_KEYS = ('task', 'epoch', 'train_loss', 'valid_loss', 'train_acc', 'valid_acc')  # what curves reads per epoch
PUBLISHED_COLUMNS = ('approach', 'experiment', 'metric', 'value', 'source')  # of a --reference file
# --size's default per figure, width,height in inches: the masks' three panels need the width
DEFAULT_SIZES = {'forgetting': '6,4', 'matrix': '6,4.5', 'masks': '13,4.5', 'curves': '7,5', 'capacity': '6,4',
                 'capacity --per-task': '11,4'}


########################################################################################################################
# Loading


def require_keys(obj: dict, keys: tuple[str, ...], source: Path) -> None:
    """A UserError naming the first of keys missing from obj."""
    for key in keys:
        if key not in obj:
            raise utils.UserError(f"{source}: has no '{key}'")


def seed_ranges(seeds: list[int]) -> str:
    """[0, 1, 2, 5] -> '0-2,5', as --seeds takes them."""
    parts, start = [], None
    for i, seed in enumerate(seeds):
        if start is None:
            start = seed
        if i + 1 == len(seeds) or seeds[i + 1] != seed + 1:
            parts.append(str(start) if start == seed else f'{start}-{seed}')
            start = None
    return ','.join(parts)


def seeds_present(folder: Path, experiment: str, approach: str) -> list[int]:
    """The seeds of <folder>/<experiment>_<approach>_<seed>.txt there are (dry runs' names end otherwise)."""
    prefix = f'{experiment}_{approach}_'
    if not folder.is_dir():
        return []
    return sorted(int(p.stem[len(prefix):]) for p in folder.iterdir()
                  if p.suffix == '.txt' and p.stem.startswith(prefix) and p.stem[len(prefix):].isdigit())


def seeds_hint(folder: Path, experiment: str, approaches: list[str], approach: str) -> str:
    """Which seeds of approach (and of all approaches) the folder has, and the --seeds that reads them."""
    have = seeds_present(folder, experiment, approach)
    if not have:
        return (f'{folder} has no {experiment}_{approach}_<seed>.txt at all (check --folders, --experiment and '
                f'--approaches)')
    common = sorted(set(have).intersection(*(seeds_present(folder, experiment, a) for a in approaches)))
    hint = f'{folder} has {experiment}_{approach} for seeds {seed_ranges(have)}'
    if common == have:
        return f'{hint}: pass --seeds {seed_ranges(common)}'
    if common:
        return f"{hint}, and all of {','.join(approaches)} for seeds {seed_ranges(common)}: pass --seeds " \
               f"{seed_ranges(common)}"
    return f"{hint}, but no seed of all of {','.join(approaches)}"


def load_runs(folder: Path, experiment: str, approaches: list[str], seeds: list[int], view: str = 'aware') \
        -> dict[str, list[results.Result]]:
    """approach -> its results over seeds, from <folder>/<exp>_<appr>_<seed>.txt, each checked (results.read): a
    finished run, not a dry run, and what its .pkl says it is; every matrix of the same size; with view 'agnostic',
    the task-agnostic matrices (run.py --task-agnostic)."""
    runs, first = {}, None
    for approach in approaches:
        found = []
        for seed in seeds:
            path = folder / f'{experiment}_{approach}_{seed}.txt'
            if not path.is_file() and not results.pkl_path(path).is_file():
                # --seeds defaults to the original's 0-9, which few sets of results have
                raise utils.UserError(f'missing result file {path} (--seeds {seed_ranges(seeds)}); '
                                      f'{seeds_hint(folder, experiment, approaches, approach)}')
            result = results.read(path)
            results.check_usable(result)
            results.check_claims(result, experiment, approach, seed)
            if view == 'agnostic':
                result = results.agnostic_view(result)
            path, acc = result.path, result.acc
            if first is None:
                first = path, acc.shape
            elif acc.shape != first[1]:
                raise utils.UserError(f'{path} is {acc.shape[0]}x{acc.shape[1]} but {first[0]} is '
                                      f'{first[1][0]}x{first[1][1]}: the matrices must have the same size')
            found.append(result)
        runs[approach] = found
    return runs


def matrices(runs: dict[str, list[results.Result]]) -> dict[str, np.ndarray]:
    """approach -> its accuracy matrices over seeds, (seeds, tasks, tasks)."""
    return {approach: np.stack([result.acc for result in found]) for approach, found in runs.items()}


def is_share(value) -> bool:
    """A real number in [0, 1] (not NaN, not a bool)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and 0 <= value <= 1


def capacity_records(result: results.Result) -> list[dict] | None:
    """The capacity a finished run saved (docs/results.md#capacity), one record per task, each checked: the task, what
    is counted, the share each task takes and the share used; None where it saved none."""
    records = (result.saved or {}).get('capacity')
    if records is None:
        return None
    pkl, ntasks = results.pkl_path(result.path), len(result.acc)
    if not (isinstance(records, list) and len(records) == ntasks):
        raise utils.UserError(f"{pkl}: 'capacity' is not a list of one record per task ({ntasks})")
    for t, record in enumerate(records):
        if not (isinstance(record, dict) and record.get('task') == t and isinstance(record.get('of'), str)
                and is_share(record.get('used')) and isinstance(record.get('per_task'), list)
                and len(record['per_task']) == t + 1 and all(is_share(v) for v in record['per_task'])):
            raise utils.UserError(f"{pkl}: capacity record {t} is not {{'task': {t}, 'of': what is counted, 'used': a "
                                  f"share, 'per_task': {t + 1} shares}} (shares in [0, 1])")
    return records


def no_capacity(result: results.Result) -> str:
    """Why a run has no capacity to draw: a .txt alone, an approach that saves none, or a run from before it did."""
    if result.saved is None:
        return f'{result.path}: no .pkl beside it, so no capacity (as the original code wrote results)'
    approach = result.saved['args']['approach']
    if (approach in utils.module_choices('approaches')
            and utils.load_module('approaches', approach).Appr.capacity is not _base.Appr.capacity):
        return f'{result.path}: no capacity saved, though {approach} saves it (a run from before it did? run it again)'
    return (f'{result.path}: approach {approach} saves no capacity (it sets no part of the network aside per task); '
            f'leave it out of --approaches')


def final_used(runs: dict[str, list[results.Result]]) -> dict[str, tuple[str, np.ndarray]]:
    """approach -> (what it counts, the share used after the last task per seed), for the approaches every run of
    which saved its capacity."""
    used = {}
    for approach, found in runs.items():
        saved = [capacity_records(result) for result in found]
        if all(records is not None for records in saved):
            used[approach] = (saved[0][-1]['of'], np.array([records[-1]['used'] for records in saved]))
    return used


def reference_ratios(runs: dict[str, np.ndarray], folder: Path, experiment: str, seeds: list[int]) \
        -> dict[str, np.ndarray]:
    """approach -> rho of each of its runs against the random and joint runs of the same seed, (seeds, T, T)."""
    acc_random, acc_joint = runs['random'], runs['joint']
    reference = np.diagonal(acc_random, axis1=-2, axis2=-1)[:, None, :]
    zero = np.argwhere(np.tril(acc_joint == reference))
    if len(zero):
        s, k, u = zero[0]
        raise utils.UserError(f'the forgetting ratio is undefined: {folder / f"{experiment}_joint_{seeds[s]}.txt"} '
                              f'has acc[{k}, {u}] = {acc_joint[s, k, u]:.4f}, equal to random\'s on task {u} '
                              f'({folder / f"{experiment}_random_{seeds[s]}.txt"})')
    return {a: metrics.forgetting_ratio(acc, acc_random, acc_joint) for a, acc in runs.items()}


########################################################################################################################
# Subcommands: the data of each figure or table


def folder_runs(folders: list[Path], experiment: str, approaches: list[str], seeds: list[int],
                view: str = 'aware') -> list[tuple[str, Path, dict[str, list[results.Result]]]]:
    """(label prefix, folder, runs: load_runs) per folder; the prefix names the folder only when there are several."""
    loaded = [(f'{folder}: ' if len(folders) > 1 else '', folder,
               load_runs(folder, experiment, approaches, seeds, view)) for folder in folders]
    sizes = {folder: len(next(iter(runs.values()))[0].acc) for _, folder, runs in loaded}
    if len(set(sizes.values())) > 1:
        raise utils.UserError(f"the folders hold {experiment} runs of different numbers of tasks: "
                              f"{', '.join(f'{f}: {n}' for f, n in sizes.items())}")
    return loaded


def forgetting_data(folders: list[Path], experiment: str, approaches: list[str], seeds: list[int],
                    view: str = 'aware') -> dict:
    """Per approach (all but the references) and folder: rho averaged over the tasks seen, per seed and number of
    tasks, with its mean and 95% interval over seeds, as the original's figure."""
    missing = [r for r in REFERENCES if r not in approaches]
    if missing:
        raise utils.UserError(f"--approaches must include {' and '.join(REFERENCES)} (the forgetting ratio's "
                              f"references); missing: {', '.join(missing)}")
    if not any(a not in REFERENCES for a in approaches):
        raise utils.UserError(f'--approaches names nothing to plot besides {" and ".join(REFERENCES)}')
    curves = {}
    for prefix, folder, runs in folder_runs(folders, experiment, approaches, seeds, view):
        ratios = reference_ratios(matrices(runs), folder, experiment, seeds)
        for approach in approaches:
            if approach in REFERENCES:
                continue
            per_seed = metrics.average_seen(ratios[approach])  # (seeds, T)
            curves[prefix + approach] = {'per_seed': per_seed, 'mean': per_seed.mean(0),
                                         'ci': metrics.confidence_interval(per_seed)}
    return {'curves': curves, 'ntasks': next(iter(curves.values()))['mean'].size, 'experiment': experiment,
            'seeds': seeds}


def table_data(folders: list[Path], experiments: list[str], approaches: list[str], seeds: list[int],
               against: str | None = None, published: list[dict] | None = None, view: str = 'aware') -> dict:
    """Per experiment, approach and folder, each metric's (mean, 95% half-width) over seeds, accuracies in %, and the
    capacity used after the last task where every run saved it; with against, the paired tests against that
    approach; with published, the published figures that match."""
    rows = []
    for experiment in experiments:
        for prefix, folder, runs in folder_runs(folders, experiment, approaches, seeds, view):
            accs = matrices(runs)
            ratios = (reference_ratios(accs, folder, experiment, seeds)
                      if all(r in runs for r in REFERENCES) else None)
            rows += tables.table_rows(accs, ratios, seeds, experiment, prefix, final_used(runs))
    if against is not None:
        rows = tables.with_significance(rows, against)
    if published is not None:
        rows = tables.with_published(rows, published)
    return {'rows': rows}


def capacity_data(folders: list[Path], experiment: str, approaches: list[str], seeds: list[int],
                  per_task: str | None = None) -> dict:
    """Per approach and folder: the share of the network (in %) the tasks take after each task, per seed and number of
    tasks, with its mean and 95% interval over seeds, and what the approach counts; with per_task, that approach's run
    of the first seed (first folder): each task's share (%) after each task."""
    curves, bars = {}, None
    for prefix, _, runs in folder_runs(folders, experiment, approaches, seeds):
        for approach, found in runs.items():
            saved = []
            for result in found:
                records = capacity_records(result)
                if records is None:
                    raise utils.UserError(no_capacity(result))
                saved.append(records)
            per_seed = 100 * np.array([[record['used'] for record in records] for records in saved])  # (seeds, T)
            curves[prefix + approach] = {'of': saved[0][-1]['of'], 'per_seed': per_seed, 'mean': per_seed.mean(0),
                                         'ci': metrics.confidence_interval(per_seed)}
            if approach == per_task and bars is None:
                bars = {'run': run_title(found[0].path.stem, found[0].saved), 'of': saved[0][-1]['of'],
                        'shares': [100 * np.array(record['per_task']) for record in saved[0]],
                        'used': per_seed[0]}
    return {'curves': curves, 'bars': bars, 'ntasks': next(iter(curves.values()))['mean'].size,
            'experiment': experiment, 'seeds': seeds}


def print_capacity(data: dict) -> None:
    """The share used after each number of tasks per approach: mean (95% half-width) over seeds, or one seed's."""
    single = len(data['seeds']) == 1
    over = 'one seed' if single else f"mean (95% half-width) over {len(data['seeds'])} seeds"
    labels = {label: f"{label} ({c['of']})" for label, c in data['curves'].items()}
    width = max(map(len, labels.values()))
    cell_width = 8 if single else 16  # the width of a cell below: ' 100.0  ' or '  52.0 (  1.8)  '
    print(f'Capacity used after k tasks (% of what each approach counts): {over}')
    print((f"{'k':{width}s}  " + ''.join(f'{k:>6d}'.ljust(cell_width) for k in range(1, data['ntasks'] + 1))).rstrip())
    for label, c in data['curves'].items():
        cells = ''.join(f'{m:6.1f}  ' if single else f'{m:6.1f} ({h:5.1f})  ' for m, h in zip(c['mean'], c['ci']))
        print(f'{labels[label]:{width}s}  {cells}'.rstrip())


def load_published(path: Path) -> list[dict]:
    """Published figures from a CSV of PUBLISHED_COLUMNS, one per line, or a UserError naming the file."""
    if not path.exists():
        raise utils.UserError(f'missing reference file {path}')
    try:
        reader = csv.DictReader(path.read_text(encoding='utf-8').splitlines())
        lines = [(reader.line_num, line) for line in reader]  # the line each ends on: csv skips blank ones
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise utils.UserError(f'{path}: cannot be read as CSV ({type(e).__name__}: {utils.first_line(e)})') from None
    missing = [c for c in PUBLISHED_COLUMNS if c not in (reader.fieldnames or ())]
    if missing:
        raise utils.UserError(f"{path}: needs the columns {', '.join(PUBLISHED_COLUMNS)}; missing: "
                              f"{', '.join(missing)}")
    figures, seen = [], set()
    for number, line in lines:
        where = f'{path}, line {number}'
        if None in line or None in line.values():  # csv's marks of more fields, or fewer, than the header names
            raise utils.UserError(f"{where}: not the header's {len(reader.fieldnames)} fields")
        try:
            value = float(line['value'])
        except ValueError:
            raise utils.UserError(f"{where}: value {line['value']!r} is not a number") from None
        if not np.isfinite(value):
            raise utils.UserError(f"{where}: value {line['value']!r} is not a finite number")
        if not tables.METRIC_NAME.fullmatch(line['metric']):
            raise utils.UserError(f"{where}: unknown metric {line['metric']!r}; use acc_final, bwt, forgetting, rho, "
                                  f"or acc_<k> / rho_<k> after k tasks")
        key = tuple(line[c] for c in PUBLISHED_COLUMNS if c != 'value')
        if key in seen:
            raise utils.UserError(f'{where}: a second value for {", ".join(key)}')
        seen.add(key)
        figures.append({**{c: line[c] for c in PUBLISHED_COLUMNS}, 'value': value})
    return figures


def write_text(path: Path, text: str, what: str) -> None:
    """Write a text file atomically, creating its folder, and say so."""
    files.ensure_writable_dir(path.parent, what)
    files.atomic_write(path, lambda f: f.write(text.encode()))
    print('saved', path)


def run_title(stem: str, saved: dict | None = None) -> str:
    """'experiment · approach · seed N' of a run, from its file name (<experiment>_<name>_<seed>, where a sweep's name
    says more than the approach) or else its .pkl's settings; the file name itself when neither says."""
    for experiment in sorted(utils.module_choices('dataloaders'), key=len, reverse=True):
        if stem.startswith(experiment + '_'):
            name, _, seed = stem[len(experiment) + 1:].rpartition('_')
            if name and seed.isdigit():
                return f'{experiment} · {name} · seed {seed}'
    if saved is not None:
        args = saved['args']
        return f"{args['experiment']} · {args['approach']} · seed {args['seed']}"
    return stem


def matrix_data(path: Path, unfinished_ok: bool = False, view: str = 'aware') -> dict:
    """The accuracy matrix of one run in %, NaN where untested (above the diagonal, tasks not done), the task
    names (from the .pkl; 'task 0', ... for a .txt alone, which has none) and what run it is."""
    result = results.read(path)
    results.check_usable(result, unfinished_ok)
    results.check_claims(result)
    if view == 'agnostic':
        result = results.agnostic_view(result)
    acc, done = result.acc, result.tasks_done
    named = 'task_names' in (result.saved or {})
    names = result.saved['task_names'] if named else [f'task {t}' for t in range(len(acc))]
    if not isinstance(names, (list, tuple, range)) or len(names) != len(acc):
        raise utils.UserError(f"{results.pkl_path(path)}: 'task_names' is not one name per row of the matrix")
    shown = np.where(np.tril(np.ones_like(acc, dtype=bool)), 100 * acc, np.nan)
    shown[done:] = np.nan
    return {'acc': shown, 'task_names': [str(n) for n in names], 'named': named, 'tasks_done': done,
            'source': result.path, 'run': run_title(result.path.stem, result.saved)
            + (', without the task label' if view == 'agnostic' else '')}


def masks_data(pkz: Path, run_pkl: Path, threshold: float) -> dict:
    """From a HAT monitoring log and its run's .pkl: per gated layer and task, the fractions of units and of weights in
    use after the task (cumulative mask, or a weight's view of it, above threshold); per task and epoch, the fraction
    of gate values within 0.01 of 0 or 1."""
    logs = results.load_dict(pkz, opener=gzip.open)
    require_keys(logs, ('mask', 'mask_pre', 'valid_loss', 'test_acc'), pkz)
    saved = results.read_pkl(run_pkl)
    inputsize = saved.get('inputsize')
    if not (isinstance(inputsize, (list, tuple)) and all(isinstance(v, int) and v > 0 for v in inputsize)):
        raise utils.UserError(f"{run_pkl}: 'inputsize' is not a list of sizes")
    network_name = saved['args'].get('network')
    if network_name not in utils.module_choices('networks'):
        raise utils.UserError(f'{run_pkl}: names no network of this code ({network_name!r})')
    network = utils.load_module('networks', network_name)
    if getattr(network, 'VARIANT', None) != 'hat':
        raise utils.UserError(f'{run_pkl}: network {network_name} has no task gates (not a HAT run)')
    try:
        net = network.Net(inputsize, saved['taskcla'])
    except (TypeError, ValueError, RuntimeError) as e:
        raise utils.UserError(f'{run_pkl}: cannot rebuild {network_name} from its inputsize and taskcla ({e})') \
            from None
    try:
        cumulative, binary = hat_masks.after_each_task(logs)
    except (KeyError, TypeError, ValueError, AttributeError) as e:  # a log of another layout
        raise utils.UserError(f"{pkz}: not a HAT monitoring log in run.py's layout ({type(e).__name__}: {e})") \
            from None
    if not cumulative:
        raise utils.UserError(f'{pkz}: no task completed yet')
    units = hat_masks.units(net)
    if any([m.size for m in cum] != units for cum in cumulative):
        raise utils.UserError(f'{pkz}: its masks do not fit {network_name} of {run_pkl} ({len(units)} gated layers '
                              f'of {units} units)')
    return {**hat_masks.in_use(net, cumulative, threshold), 'binarised': binary, 'threshold': threshold,
            'task_names': logs.get('task_name', {}), 'run': run_title(run_pkl.stem, saved)}


def print_masks(data: dict) -> None:
    """Units and weights in use per layer after each task, then how the gates binarised."""
    ntasks = data['unit_use'].shape[1]
    print(f"In use after each task (cumulative mask > {data['threshold']}), units % / weights %:")
    print(f"{'layer':8s} {'units':>7s} {'weights':>10s}  " + '  '.join(f'{"task " + str(t):>13s}'
                                                                       for t in range(ntasks)))
    for k, layer in enumerate(data['layers']):
        cells = '  '.join(f"{100 * u:6.1f}/{100 * w:6.1f}" for u, w in zip(data['unit_use'][k], data['weight_use'][k]))
        print(f"{layer:8s} {data['units'][k]:7d} {data['weights'][k]:10d}  {cells}")
    print(f"{'all':8s} {sum(data['units']):7d} {sum(data['weights']):10d}  " +
          '  '.join(f"{'':6s}/{100 * w:6.1f}" for w in data['weight_use_total']))
    print('Gates within 0.01 of 0 or 1 (%): before training -> after the last epoch')
    for t, per_epoch in data['binarised'].items():
        first, last = per_epoch[min(per_epoch)], per_epoch[max(per_epoch)]
        print(f'task {t:2d}: {100 * first:5.1f} -> {100 * last:5.1f} ({len(per_epoch) - 1} epochs)')


def curves_data(path: Path) -> dict:
    """Per-epoch losses and accuracies from a run's JSON-lines log, concatenated over tasks in the log's order, and
    the positions where each task after the first begins."""
    if not path.is_file():
        raise utils.UserError(f'missing log file {path}')
    try:
        text = path.read_text(encoding='utf-8')
    except UnicodeDecodeError:
        raise utils.UserError(f'{path}: not a text file (a JSON-lines log is UTF-8 text)') from None
    except OSError as e:
        raise utils.UserError(f'cannot read {path}: {e.strerror or e}') from None
    records = []
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise utils.UserError(f'{path}, line {i}: not JSON ({e.msg})') from None
        if not isinstance(record, dict) or any(k not in record for k in CURVE_KEYS):
            raise utils.UserError(f'{path}, line {i}: expected an object with {", ".join(CURVE_KEYS)}')
        wrong = [k for k in CURVE_KEYS if isinstance(record[k], bool) or not isinstance(record[k], (int, float))
                 or (k in ('task', 'epoch') and not float(record[k]).is_integer())]
        if wrong:
            raise utils.UserError(f'{path}, line {i}: {wrong[0]} is {record[wrong[0]]!r}, not a number of its kind')
        records.append(record)
    if not records:
        raise utils.UserError(f'{path}: no epochs logged (the random approach does not train)')
    data = {k: np.array([r[k] for r in records], dtype=np.float64) for k in CURVE_KEYS}
    data['task'] = data['task'].astype(int)
    data['boundaries'] = [i for i in range(1, len(records)) if data['task'][i] != data['task'][i - 1]]
    # The terms an approach's criterion adds to the cross-entropy and logs beside the loss (HAT's train_reg): the
    # logged loss includes them, weighted
    data['terms'] = [k.removeprefix('train_') for k in records[0] if k.startswith('train_')
                     and k not in ('train_loss', 'train_acc') and all(k in r for r in records)]
    data['run'] = run_title(path.stem)
    return data


########################################################################################################################
# Figures


def new_figure(args: argparse.Namespace) -> Figure:
    """A figure of exactly --size inches at --dpi (saved without a tight bounding box, so the image keeps that size)."""
    return plt.figure(figsize=args.size, dpi=args.dpi, layout='constrained')


def plot_forgetting(data: dict, args: argparse.Namespace) -> Figure:
    """The original's figure: rho against the number of tasks, one jittered line with intervals per approach."""
    fig = new_figure(args)
    ax = fig.gca()
    curves, ntasks, seeds = data['curves'], data['ntasks'], data['seeds']
    for i, (label, c) in enumerate(curves.items()):
        jitter = JITTER * 2 * (i / len(curves) - 0.5)
        x = 1 + np.arange(c['mean'].size) + jitter
        ax.errorbar(x, c['mean'], yerr=c['ci'], fmt='-' + MARKERS[i % len(MARKERS)], markersize=6, capsize=3,
                    label=label)
    ax.plot([1 - JITTER, ntasks + JITTER], [0, 0], 'k--', linewidth=2)
    ax.set_xticks(1 + np.arange(ntasks))
    ax.set_xlabel('Task number')
    ax.set_ylabel('Relative accuracy drop')
    over = f'seed {seeds[0]}' if len(seeds) == 1 else f'mean and 95% interval over seeds {seed_ranges(seeds)}'
    ax.set_title(f"{data['experiment']}: forgetting ratio rho ({over})", fontsize=10)
    ax.legend()
    return fig


def plot_matrix(data: dict, args: argparse.Namespace) -> Figure:
    """The accuracy matrix as an annotated heatmap, untested entries blank, its colours spanning the run's range."""
    fig = new_figure(args)
    ax = fig.gca()
    acc, names = data['acc'], data['task_names']
    finite = acc[np.isfinite(acc)]
    # The run's own range, not 0-100: a scale of 0-100 paints 96.7 and 99.9 alike
    low, high = (finite.min(), finite.max()) if finite.size else (0.0, 100.0)
    if high - low < 1:  # (nearly) one value: a span of 1 within 0-100 rather than a scale of noise
        low = max(0.0, min(low, high - 1))
        high = max(high, low + 1)
    image = ax.imshow(np.ma.masked_invalid(acc), vmin=low, vmax=high, cmap='viridis', aspect='auto')
    fig.colorbar(image, ax=ax, label="accuracy (%), colours span this run's range")
    fontsize = max(4, min(9, 90 // len(acc)))  # keeps the numbers inside their cells up to ~20 tasks
    for (t, u), value in np.ndenumerate(acc):
        if np.isfinite(value):
            ax.text(u, t, f'{value:.1f}', ha='center', va='center', fontsize=fontsize,
                    color='black' if (value - low) / (high - low) > 0.6 else 'white')
    ticks = np.arange(len(acc))
    ax.set_xticks(ticks, names, rotation=90 if max(map(len, names)) > 2 else 0, fontsize=fontsize)
    ax.set_yticks(ticks, names, fontsize=fontsize)
    ax.set_xlabel('tested on task' + ('' if data['named'] else ' (numbered: a .txt alone has no task names)'))
    ax.set_ylabel('after training task')
    ax.set_title(f"{data['run']}: accuracy (%) after each task", fontsize=10)
    return fig


def line_style(k: int) -> dict:
    """The k-th of a set of lines drawn together: its own colour, marker and dashes, told apart in grey too."""
    return {'color': f'C{k % 10}', 'marker': MARKERS[k % len(MARKERS)], 'markersize': 5,
            'linestyle': ('-', '--', '-.', ':')[k % 4]}


def legend_below(ax, columns: int) -> None:
    """The axes' legend under it, where it covers no data."""
    ax.legend(fontsize=8, loc='upper center', bbox_to_anchor=(0.5, -0.14), ncols=columns, frameon=False)


def plot_masks(data: dict, args: argparse.Namespace) -> Figure:
    """Units and weights in use per layer against the number of tasks, and gate binarisation over epochs."""
    fig = new_figure(args)
    axes = fig.subplots(1, 3)
    tasks = 1 + np.arange(data['unit_use'].shape[1])
    for k, layer in enumerate(data['layers']):
        axes[0].plot(tasks, 100 * data['unit_use'][k], label=layer, **line_style(k))
        axes[1].plot(tasks, 100 * data['weight_use'][k], label=layer, **line_style(k))
    axes[1].plot(tasks, 100 * data['weight_use_total'], 'k--', linewidth=2, label='all layers')
    for ax, title in zip(axes[:2], ('units in use (%)', 'weights in use (%)')):
        ax.set_xticks(tasks)
        ax.set_xlabel('tasks learned')
        ax.set_title(title, fontsize=10)
        ax.set_ylim(-2, 102)
    legend_below(axes[0], min(4, len(data['layers'])))
    legend_below(axes[1], min(4, len(data['layers']) + 1))
    for t, per_epoch in data['binarised'].items():
        epochs = sorted(per_epoch)
        name = data['task_names'].get(t) if isinstance(data['task_names'], dict) else None
        axes[2].plot(np.array(epochs) + 1, [100 * per_epoch[e] for e in epochs],
                     label=f'task {t}' + (f' ({name})' if name else ''), **line_style(t))
    axes[2].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[2].set_xlabel('epoch (0: initial)')
    axes[2].set_title('gates within 0.01 of 0 or 1 (%)', fontsize=10)
    # From just below the lowest value: HAT's gates are mostly binary from the start, and on 0-100 every task's line
    # would lie on the others near the top
    lowest = min((100 * v for per_epoch in data['binarised'].values() for v in per_epoch.values()), default=0)
    axes[2].set_ylim(max(-2, np.floor(lowest) - 2), 100.3)
    legend_below(axes[2], min(3, len(data['binarised'])))
    fig.suptitle(f"{data['run']}: HAT's masks (in use: cumulative mask > {data['threshold']:g})")
    return fig


def plot_curves(data: dict, args: argparse.Namespace) -> Figure:
    """Train and validation loss and accuracy per epoch over all tasks, each task's epochs joined by a line, the
    tasks by dots, their boundaries dotted and named on top."""
    fig = new_figure(args)
    axes = fig.subplots(2, 1, sharex=True)
    x = 1 + np.arange(data['epoch'].size)
    starts, ends = [0] + data['boundaries'], data['boundaries'] + [x.size]
    for ax, metric, scale in ((axes[0], 'loss', 1), (axes[1], 'acc', 100)):
        # valid's hollow markers, drawn first and larger, stay visible where the two are equal (mnist2 and pmnist
        # validate on a copy of the training set)
        for color, split, marker in (('C1', 'valid', 's'), ('C0', 'train', 'o')):
            y = scale * data[f'{split}_{metric}']
            style = {'markersize': 7, 'markerfacecolor': 'none'} if split == 'valid' else {'markersize': 4}
            # A solid line per task; only a dotted one joins a task's last epoch to the next one's first (another
            # data set, another head): with one epoch per task, the dotted line alone
            for i, (a, b) in enumerate(zip(starts, ends)):
                ax.plot(x[a:b], y[a:b], '-', marker=marker, color=color, label=split if i == 0 else None, **style)
            for b in data['boundaries']:
                ax.plot(x[b - 1:b + 1], y[b - 1:b + 1], ':', color=color, linewidth=1)
        for b in data['boundaries']:
            ax.axvline(b + 0.5, color='gray', linestyle=':', linewidth=1)
    tasks = axes[0].secondary_xaxis('top')
    labels = [str(data['task'][a]) for a in starts]
    tasks.set_xticks([(x[a] + x[b - 1]) / 2 for a, b in zip(starts, ends)],
                     labels if len(starts) > 8 else [f'task {t}' for t in labels], fontsize=8)
    tasks.tick_params(length=0)
    if len(starts) > 8:
        tasks.set_xlabel('task', fontsize=8)
    axes[1].xaxis.set_major_locator(MaxNLocator(integer=True))
    terms = ''.join(f' + lamb·{term}' for term in data['terms'])
    axes[0].set_ylabel(f'loss\n(cross-entropy{terms})' if terms else 'loss')
    axes[1].set_ylabel('accuracy (%)')
    axes[1].set_xlabel('epoch (all tasks, in order)')
    handles, labels = axes[0].get_legend_handles_labels()
    # train first; right of the axes, where it covers no data
    fig.legend(handles[::-1], labels[::-1], loc='outside right upper', frameon=False)
    fig.suptitle(f"{data['run']}: learning curves")
    return fig


def plot_capacity(data: dict, args: argparse.Namespace) -> Figure:
    """The share of the network used against the number of tasks learned, one line with intervals per approach,
    jittered about the task; with bars, beside it one run's share per task after each task, stacked."""
    fig = new_figure(args)
    axes = fig.subplots(1, 2 if data['bars'] else 1, squeeze=False)[0]
    curves, seeds, tasks = data['curves'], data['seeds'], 1 + np.arange(data['ntasks'])
    ax = axes[0]
    for i, (label, c) in enumerate(curves.items()):
        x = tasks + JITTER * (2 * i + 1 - len(curves)) / len(curves)  # centred: one line on the task itself
        ax.errorbar(x, c['mean'], yerr=c['ci'], fmt='-' + MARKERS[i % len(MARKERS)], markersize=6, capsize=3,
                    label=f"{label} ({c['of']})")
    ax.set_xticks(tasks)
    ax.set_ylim(-2, 102)
    ax.set_xlabel('tasks learned')
    ax.set_ylabel('network used (%)')
    over = f'seed {seeds[0]}' if len(seeds) == 1 else f'mean and 95% interval over seeds {seed_ranges(seeds)}'
    ax.set_title(f"{data['experiment']}: capacity used ({over})", fontsize=10)
    ax.legend(title='approach (what it counts)', fontsize=8, title_fontsize=8)
    if data['bars']:
        bars, ax = data['bars'], axes[1]
        bottom, stacks = np.zeros(tasks.size), []
        for u in range(tasks.size):
            height = np.array([shares[u] if u < shares.size else 0 for shares in bars['shares']])
            stacks.append(ax.bar(tasks, height, bottom=bottom, color=f'C{u % 10}', label=f'task {u}'))
            bottom += height
        # Where tasks share what they take (WSN's masks overlap), the stack rises above the share used
        used = ax.hlines(bars['used'], tasks - 0.4, tasks + 0.4, colors='k', linestyles='--', label='used (all tasks)')
        ax.set_xticks(tasks)
        ax.set_ylim(0, max(102, 1.02 * bottom.max()))
        ax.set_xlabel('tasks learned')
        ax.set_ylabel(f"share of the {bars['of']} (%)")
        ax.set_title(f"{bars['run']}: each task's share", fontsize=10)
        # beside the bars, the tasks in the stack's order (the last on top), then the share used
        ax.legend(handles=[*stacks[::-1], used], fontsize=8, loc='center left', bbox_to_anchor=(1, 0.5),
                  frameon=False)
    return fig


def show_or_save(fig: Figure, output: Path | None) -> None:
    """Save the figure atomically in the format of output's suffix, or show it on screen."""
    if output is None:
        plt.show()
    else:
        files.ensure_writable_dir(output.parent, 'the figure')
        try:
            files.atomic_write(output, lambda f: fig.savefig(f, format=output.suffix[1:].lower()))
        except (ValueError, MemoryError, OverflowError) as e:  # e.g. Agg's "Image size ... is too large"
            raise utils.UserError(f'cannot draw {output}: {utils.first_line(e)}') from None
        print('saved', output)
    plt.close(fig)


########################################################################################################################
# Command line


def parse_size(text: str) -> tuple[float, float]:
    """'6,4' -> (6.0, 4.0) inches."""
    try:
        width, height = (float(v) for v in text.split(','))
    except ValueError:
        raise utils.UserError(f"--size '{text}': give width,height in inches, e.g. 6,4") from None
    if not (0 < width < np.inf and 0 < height < np.inf):
        raise utils.UserError(f"--size '{text}': width and height must be positive numbers")
    return width, height


def build_parser() -> utils.Parser:
    """The subcommands and their flags."""
    p = utils.Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest='command', required=True, metavar='{forgetting,table,matrix,masks,curves,capacity}')
    figure = utils.Parser(add_help=False)
    figure.add_argument('--output', type=Path, help='figure file, e.g. fig.png or fig.pdf (default: show on screen)')
    figure.add_argument('--size', help='width,height in inches (default: ' + ', '.join(
        f'{size} for {command}' for command, size in DEFAULT_SIZES.items()) + ')')
    figure.add_argument('--dpi', type=int, default=100, help='dots per inch (default: %(default)s)')
    runs = utils.Parser(add_help=False)
    runs.add_argument('--approaches', required=True, help='comma-separated, e.g. random,joint,sgd,hat')
    runs.add_argument('--seeds', type=utils.parse_seeds, default='0-9',
                      help='0-9 (both ends) or 0,1,2 (default: %(default)s)')
    runs.add_argument('--folders', default=str(utils.RESULTS_DIR),
                      help='comma-separated result folders (default: res/ at the repository root)')
    view = utils.Parser(add_help=False)
    view.add_argument('--view', choices=('aware', 'agnostic'), default='aware',
                      help='the accuracy matrices told the task (aware, the default) or not (agnostic: the runs\' '
                           'acc_agnostic, run.py --task-agnostic)')

    forgetting = sub.add_parser('forgetting', parents=[runs, view, figure], help="the forgetting ratio rho per number of "
                                "tasks (the original's figure; needs the random and joint runs)")
    forgetting.add_argument('--experiment', required=True, help='experiment name in the result files, e.g. cifar')
    table = sub.add_parser('table', parents=[runs, view], help='accuracy, BWT, forgetting and rho per approach')
    table.add_argument('--experiment', '--experiments', dest='experiments', action='append', required=True,
                       metavar='NAMES', help='experiment name(s) in the result files: comma-separated or the flag '
                                             'repeated, e.g. cifar,pmnist')
    table.add_argument('--csv', type=Path, help='also write the table as CSV here')
    table.add_argument('--markdown', type=Path, help='also write the table as Markdown here')
    table.add_argument('--latex', type=Path, help='also write final accuracy and BWT as a LaTeX (booktabs) table here')
    table.add_argument('--against', nargs='?', const='', metavar='APPROACH',
                       help='test each approach against this one (alone: the first of --approaches): paired t-test '
                            'and Wilcoxon p-values on final accuracy and BWT, Holm-corrected')
    table.add_argument('--reference', type=Path, metavar='FILE.csv',
                       help='published figures to show beside ours, with the difference (columns approach, '
                            'experiment, metric, value, source; e.g. scripts/published_results.csv)')
    matrix = sub.add_parser('matrix', parents=[view, figure], help="one run's accuracy matrix as a heatmap")
    matrix.add_argument('path', type=Path, help="the run's .txt (or its .pkl)")
    matrix.add_argument('--unfinished', action='store_true',
                        help="draw an unfinished run's finished rows (refused otherwise: not a result yet)")
    masks = sub.add_parser('masks', parents=[figure], help='HAT: units and weights in use, gate binarisation')
    masks.add_argument('path', type=Path, help='monitoring log of hat-test or hat --monitor (.pkz)')
    masks.add_argument('--run', type=Path, help="the run's .pkl, for its network (default: "
                       "<repository root>/res/<log name without _masks>.pkl)")
    masks.add_argument('--threshold', type=float, default=0.5,
                       help='a unit or weight is in use when its (cumulative) mask exceeds this (default: %(default)s)')
    curves = sub.add_parser('curves', parents=[figure], help='learning curves from a run\'s JSON-lines log')
    curves.add_argument('path', type=Path, help='logs/<run>.jsonl')
    capacity = sub.add_parser('capacity', parents=[runs, figure], help='the share of the network used after each task '
                              '(approaches that set parts of it aside per task: hat, packnet, wsn, gpm...)')
    capacity.add_argument('--experiment', required=True, help='experiment name in the result files, e.g. cifar')
    capacity.add_argument('--per-task', metavar='APPROACH', help="beside the lines, this approach's run of the first "
                          "of --seeds: each task's share after each task, as stacked bars")
    return p


def parse_args(argv: list[str] | None):
    """Parse the command line; without a subcommand, the original's forgetting figure."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0].startswith('-') and argv[0] not in ('-h', '--help'):
        argv.insert(0, 'forgetting')
    args = build_parser().parse_args(argv)
    if hasattr(args, 'approaches'):
        args.approaches = [a for a in args.approaches.split(',') if a]
        args.folders = [Path(f) for f in args.folders.split(',') if f]
        if hasattr(args, 'experiments'):
            args.experiments = list(dict.fromkeys(e for text in args.experiments for e in text.split(',') if e))
        for flag in ('approaches', 'folders', 'experiments'):
            if not getattr(args, flag, True):
                raise utils.UserError(f'--{flag} is empty')
        if getattr(args, 'against', None) is not None:
            args.against = args.against or args.approaches[0]
            if args.against not in args.approaches:
                raise utils.UserError(f"--against {args.against}: not one of --approaches "
                                      f"({', '.join(args.approaches)})")
        if getattr(args, 'per_task', None) not in (None, *args.approaches):
            raise utils.UserError(f"--per-task {args.per_task}: not one of --approaches ({', '.join(args.approaches)})")
    if hasattr(args, 'size'):
        figure = args.command + (' --per-task' if getattr(args, 'per_task', None) else '')
        args.size = parse_size(args.size or DEFAULT_SIZES[figure])
        if args.dpi < 1:
            raise utils.UserError('--dpi must be at least 1')
        # Agg, which draws PNGs and most screens' figures, refuses images of 2**16 pixels or more a side (compared
        # as dpi against a float, which no --dpi overflows)
        if args.dpi >= 2**16 / max(args.size):
            raise utils.UserError(f'--size {args.size[0]:g},{args.size[1]:g} at --dpi {args.dpi} makes an image of '
                                  f'2**16 pixels or more a side, too large to draw; lower --size or --dpi')
        if args.output is None:
            if matplotlib.get_backend().lower() in backend_registry.list_builtin(BackendFilter.NON_INTERACTIVE):
                raise utils.UserError('no display to show the figure on; give --output, e.g. --output fig.png')
        elif args.output.suffix[1:].lower() not in FigureCanvasBase.get_supported_filetypes():
            raise utils.UserError(f"--output {args.output}: not a figure format matplotlib writes; end the name "
                                  f"in e.g. .png or .pdf")
    if not 0 < getattr(args, 'threshold', 0.5) < 1:
        raise utils.UserError('--threshold must be between 0 and 1')
    check_paths(args)
    return args


def check_paths(args: argparse.Namespace) -> None:
    """Before any work: every file to write is a file, not a folder; the names that make result file names (approaches,
    experiments) stay inside their folder."""
    for flag in ('output', 'csv', 'markdown', 'latex'):
        path = getattr(args, flag, None)
        if path is not None and path.is_dir():
            raise utils.UserError(f'--{flag} {path} is a folder; name a file')
    names = [*getattr(args, 'approaches', ()), *getattr(args, 'experiments', ()), getattr(args, 'experiment', '')]
    bad = next((n for n in names if '/' in n or n.startswith('.') or not n.isprintable()), None)
    if bad is not None:
        raise utils.UserError(f'{bad!r} is not a name of results (<experiment>_<approach>_<seed>.txt in --folders)')


def main(argv: list[str] | None = None) -> dict:
    """Run one subcommand; return the data of its figure or table."""
    args = parse_args(argv)
    if getattr(args, 'output', None) is not None:
        matplotlib.use('Agg')  # saving needs no display
    if args.command == 'forgetting':
        data = forgetting_data(args.folders, args.experiment, args.approaches, args.seeds, args.view)
        tables.print_forgetting(data['curves'])
        show_or_save(plot_forgetting(data, args), args.output)
    elif args.command == 'table':
        published = load_published(args.reference) if args.reference else None
        data = table_data(args.folders, args.experiments, args.approaches, args.seeds, args.against, published,
                          args.view)
        tables.print_table(data['rows'])
        if published is not None and not any(r['published'] for r in data['rows']):
            print(f'{args.reference}: no published figure for these experiments and approaches')
        if args.csv:
            write_text(args.csv, tables.csv_text(data['rows']), 'the CSV table')
        if args.markdown:
            write_text(args.markdown, tables.markdown_text(data['rows']), 'the Markdown table')
        if args.latex:
            write_text(args.latex, tables.latex_text(data['rows'], REFERENCES), 'the LaTeX table')
    elif args.command == 'matrix':
        data = matrix_data(args.path, args.unfinished, args.view)
        show_or_save(plot_matrix(data, args), args.output)
    elif args.command == 'masks':
        run_pkl = args.run or utils.RESULTS_DIR / (args.path.stem.removesuffix('_masks') + '.pkl')
        data = masks_data(args.path, run_pkl, args.threshold)
        print_masks(data)
        show_or_save(plot_masks(data, args), args.output)
    elif args.command == 'capacity':
        data = capacity_data(args.folders, args.experiment, args.approaches, args.seeds, args.per_task)
        print_capacity(data)
        show_or_save(plot_capacity(data, args), args.output)
    else:
        data = curves_data(args.path)
        show_or_save(plot_curves(data, args), args.output)
    return data


if __name__ == '__main__':
    utils.run_cli(main)
