"""The Slurm backend: a sweep as one job array (scripts/run.sbatch runs each array task's runs, requeues it before
its time limit, and resumes), and the checks of the values that go onto its #SBATCH lines."""
import argparse
import itertools
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

from plumbing import utils
from sweeps.grid import Run
from sweeps.mps import MPS_CONTROL


SBATCH_TEMPLATE = utils.ROOT / 'scripts' / 'run.sbatch'


def packs(runs: list[Run], per_task: int) -> list[list[Run]]:
    """The runs of each array task: per_task consecutive runs of the sweep (the last task may hold fewer)."""
    return [runs[i:i + per_task] for i in range(0, len(runs), per_task)]


def new_file(folder: Path, name: str, suffix: str) -> Path:
    """folder/<name><suffix>, or <name>-2<suffix>, <name>-3<suffix>, ...: the first that does not exist, created empty
    at once (so that two sweeps never take the same)."""
    for k in itertools.count(1):
        path = folder / f"{name}{'' if k == 1 else f'-{k}'}{suffix}"
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            return path
        except FileExistsError:
            continue


def write_array(runs: list[Run], ntasks: int, args) -> Path:
    """A Slurm job array script of ntasks array tasks, each running --runs-per-task runs at once, and the file of the
    runs beside it: one per line, its output file then its run.py arguments (what scripts/run.sbatch reads)."""
    folder = args.logs_dir / 'slurm'
    folder.mkdir(parents=True, exist_ok=True)
    name = args.job_name
    commands = new_file(folder, name, '.runs')  # never another sweep's, which its pending array tasks still read
    commands.write_text(''.join(shlex.join([str(r.log), *r.argv]) + '\n' for r in runs))
    options = [f'--job-name={name}', f'--array=0-{ntasks - 1}%{args.max_parallel}',
               f'--output={folder}/{name}_%A_%a.out', '--open-mode=append', '--requeue',
               f'--signal=B:USR1@{args.signal_seconds}', f'--time={args.time}', f'--mem={args.mem}',
               f'--cpus-per-task={args.cpus_per_task}']
    if args.gpus_per_task:
        options.append(f'--gres=gpu:{args.gpus_per_task}')
    if args.partition:
        options.append(f'--partition={args.partition}')
    options += args.sbatch_option
    script = commands.with_suffix('.sbatch')
    setup = '' if args.setup is None else f'# From --setup {args.setup.path}, before the runs:\n{args.setup.lines}'
    per_task = ('one per array task' if args.runs_per_task == 1 else
                f'{args.runs_per_task} at once per array task')
    script.write_text('#!/bin/bash\n'
                      f'# {len(runs)} runs of src/run_multi.py, {per_task} (the runs, one per line, in '
                      f'{commands.name})\n'
                      + ''.join(f'#SBATCH {o}\n' for o in options) +
                      f'export HAT_ROOT={shlex.quote(str(utils.ROOT))} PYTHON={shlex.quote(sys.executable)} '
                      f'HAT_RUNS={shlex.quote(str(commands))} HAT_RUNS_PER_TASK={args.runs_per_task} '
                      f'HAT_MPS={int(args.mps)}\n'
                      + setup +
                      f'# exec: the same process, so that Slurm\'s signals reach run.sbatch\'s traps\n'
                      f'exec bash {shlex.quote(str(SBATCH_TEMPLATE))}\n')
    return script


def run_slurm(runs: list[Run], args) -> None:
    """Write the job array and submit it (unless --write-only, which shows which runs each array task holds)."""
    tasks = packs(runs, args.runs_per_task)
    ntasks = len(tasks)
    script = write_array(runs, ntasks, args)
    if args.runs_per_task > len(runs):
        print(f'note: --runs-per-task {args.runs_per_task} with {len(runs)} runs: one array task runs all {len(runs)}')
    if args.mps and shutil.which(MPS_CONTROL) is None:
        print(f'note: {MPS_CONTROL} is not on this machine; each array task starts MPS where its node has it, and '
              f'runs without it otherwise (its output says which)')
    if args.write_only:
        if args.runs_per_task > 1:
            for i, pack in enumerate(tasks):
                print(f"  array task {i}: {', '.join(r.output.name for r in pack)}")
        print(f'Wrote {script} ({ntasks} array tasks for {len(runs)} runs); submit it with: sbatch {script}')
        return
    try:
        proc = subprocess.run(['sbatch', '--parsable', str(script)], capture_output=True, text=True)
    except FileNotFoundError:
        raise utils.UserError(f'sbatch not found: is Slurm installed here? The script is at {script}') from None
    if proc.returncode != 0:
        raise utils.UserError(f'sbatch refused {script}: {proc.stderr.strip()}')
    job = proc.stdout.strip().split(';')[0]
    print(f'Submitted job array {job} ({len(runs)} runs in {ntasks} array tasks) from {script}; watch it with: '
          f'squeue -j {job}')


def word(text: str) -> str:
    """An argparse type: a job or partition name as one word on an #SBATCH line (a job name also names the sweep's
    files in logs/slurm/, and sbatch would read a '%' in them as a pattern)."""
    if not text or not text.isprintable() or any(c.isspace() or c in '/%' for c in text):
        raise argparse.ArgumentTypeError(f"{text!r}: give a name without whitespace, control characters, '/' or '%'")
    return text


def time_limit(text: str) -> str:
    """An argparse type: a time limit in a form sbatch's --time takes."""
    if (re.fullmatch(r'[0-9]+(:[0-9]+){0,2}|[0-9]+-[0-9]+(:[0-9]+){0,2}', text)
            or text.lower() in ('infinite', 'unlimited')):
        return text
    raise argparse.ArgumentTypeError(f'{text!r} is not a Slurm time: give minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, '
                                     f'D-HH:MM:SS or UNLIMITED')


def memory(text: str) -> str:
    """An argparse type: memory as sbatch's --mem takes it, a positive whole number of megabytes or of K, M, G, T."""
    match = re.fullmatch(r'([0-9]+)[KMGT]?', text, re.IGNORECASE)
    if match is None or int(match[1]) == 0:
        raise argparse.ArgumentTypeError(f'{text!r}: give a positive whole number with an optional K, M, G or T '
                                         f'suffix, e.g. 16G')
    return text


class Setup(NamedTuple):
    """--setup's file and its lines, as read when the flags were parsed (what the job script gets)."""
    path: Path
    lines: str  # ending in a newline


def setup_file(text: str) -> Setup:
    """An argparse type: --setup's shell file, refused when it cannot be read as text or holds #SBATCH lines (sbatch
    reads those only before the script's first command, and the setup's lines come after the job's variables)."""
    path = Path(text).expanduser()
    try:
        lines = path.read_text().splitlines()
    except OSError as e:
        raise argparse.ArgumentTypeError(f'{text}: cannot read it ({e.strerror or e})') from None
    except UnicodeDecodeError:
        raise argparse.ArgumentTypeError(f'{text}: not a text file of shell lines') from None
    if any(line.lstrip().startswith('#SBATCH') for line in lines):
        raise argparse.ArgumentTypeError(f'{text}: holds #SBATCH lines, which sbatch would ignore there; give them '
                                         f'with --sbatch-option')
    return Setup(path.resolve(), ''.join(line + '\n' for line in lines))


def option(text: str) -> str:
    """An argparse type: one more sbatch option, written as one #SBATCH line."""
    if not text.startswith('--') or not text.isprintable():
        raise argparse.ArgumentTypeError(f"{text!r}: give one sbatch option on one line, starting with '--', e.g. "
                                         f"--sbatch-option=--account=abc")
    return text

