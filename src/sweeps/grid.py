"""A sweep's runs: every combination of experiments x approaches x seeds x a hyperparameter grid, each run.py
command line checked by run.py's own parser, and what run.py would make of the results already at its path."""
import argparse
import contextlib
import io
import itertools
import re
from dataclasses import dataclass
from pathlib import Path

from analysis import results
from plumbing import utils
import run


@dataclass
class Run:
    """One run.py command of the sweep."""
    argv: list[str]
    output: Path
    log: Path  # the run's stdout and stderr
    args: argparse.Namespace  # run.py's parsed flags, as the run is launched (with --resume)


# What the sweep sets for each run, and the flags of run_multi that set it: a flag after -- may not change them
IDENTITY = {'experiment': '--experiments', 'approach': '--approaches', 'seed': '--seeds',
            'output': '--results-dir and --name', 'results_dir': '--results-dir', 'logs_dir': '--logs-dir',
            'data_dir': '--data-dir'}


def parse_grid(items: list[str]) -> list[tuple[str, list[str]]]:
    """['lamb=0.1,0.25', 'smax=25'] -> [('lamb', ['0.1', '0.25']), ('smax', ['25'])]."""
    grid = []
    for item in items:
        name, _, values = item.partition('=')
        if not re.fullmatch(r'-{0,2}[A-Za-z][A-Za-z0-9_-]*', name) or not values:
            raise utils.UserError(f"--grid {item!r}: use flag=value,value,... e.g. lamb=0.5,0.75")
        for value in values.split(','):  # each goes into its runs' file names
            problem = name_problem(value)
            if problem:
                raise utils.UserError(f'--grid {item!r}: the value {value!r} {problem}')
        grid.append((name.lstrip('-').replace('_', '-'), values.split(',')))
    return grid


def build_runs(args) -> list[Run]:
    """Every run of the sweep, each command line checked by run.py's own parser before anything starts; the flags
    after -- may not change what a run's file name claims (its experiment, approach, seed, grid values, folders)."""
    grid = parse_grid(args.grid)
    runs = []
    for experiment, approach, seed in itertools.product(args.experiments.split(','), args.approaches.split(','),
                                                        args.seeds):
        for values in itertools.product(*(v for _, v in grid)):
            name = '-'.join([args.name or approach, *values])
            own = ['--experiment', experiment, '--approach', approach, '--seed', str(seed),
                   *itertools.chain.from_iterable(('--' + flag, value) for (flag, _), value in zip(grid, values)),
                   '--results-dir', str(args.results_dir), '--logs-dir', str(args.logs_dir),
                   '--data-dir', str(args.data_dir)]
            try:
                # A dry run's results are named as run.py names them, so that they never stand for the real run's
                with contextlib.redirect_stdout(io.StringIO()):  # --parameter's note, once per run: not here
                    dry = run.parse_args(own + args.run_args)[0].dry_run
                    output = args.results_dir / f"{experiment}_{name}_{seed}{'_dryrun' if dry else ''}.txt"
                    own += ['--output', str(output)]
                    full, alone = run.parse_args(own + args.run_args + ['--resume'])[0], run.parse_args(own)[0]
            except utils.UserError as e:
                raise utils.UserError(f'{experiment} {approach}: {e}') from None
            owned = {**IDENTITY, **{flag.replace('-', '_'): '--grid' for flag, _ in grid}}
            changed = [k for k in owned if getattr(full, k) != getattr(alone, k)]
            if changed:
                k = changed[0]
                raise utils.UserError(f"the flags after -- set --{k.replace('_', '-')}, which the sweep sets for each "
                                      f"run (with {owned[k]}): a run's results must be what their name says")
            runs.append(Run(own + args.run_args, output, args.logs_dir / (output.stem + '.out'), full))
    outputs = [r.output for r in runs]
    if len(set(outputs)) < len(outputs):
        raise utils.UserError('two runs of the sweep would write the same results; use --name per approach')
    return runs


def standing(r: Run) -> str | None:
    """What run.py, launched, would make of what is at a run's results path: 'finished' (returned as it is: skipped),
    None (it runs), or its refusal."""
    try:
        return 'finished' if run.previous_results(r.args, results.existing(r.output)) is not None else None
    except utils.UserError as e:
        return str(e)


def name_problem(text: str) -> str | None:
    """What is wrong with text as a part of a file name (--name, a --grid value), or None."""
    if not text:
        return 'is empty'
    if '/' in text or '..' in text:
        return "holds '/' or '..'"
    if not text.isprintable() or any(c.isspace() for c in text):
        return 'holds whitespace or a control character'
    return None


def result_name(text: str) -> str:
    """An argparse type: --name, the results' name in place of the approach's."""
    problem = name_problem(text) or ("starts with '.'" if text.startswith('.') else None)
    if problem:
        raise argparse.ArgumentTypeError(f'{text!r} {problem}; it goes into the file names of the results')
    return text

