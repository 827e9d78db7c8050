"""Sweeps: every combination of experiments x approaches x seeds x a hyperparameter grid, run here by parallel
workers or on a Slurm cluster as one job array. Runs whose results are complete are skipped, and every run is started
with --resume, so launching a sweep again continues where it stopped.

    python src/run_multi.py --experiments cifar --approaches hat,sgd --seeds 0-9
    python src/run_multi.py --experiments cifar --approaches hat --grid lamb=0.1,0.25,0.5,0.75,1,1.5,2.5,4 \\
        --grid smax=25,50,100,200,400,800 --workers 3            (the original's work.py grid, on 3 GPUs)
    python src/run_multi.py --experiments cifar --approaches hat --seeds 0-9 --backend slurm --time 12:00:00
    python src/run_multi.py ... -- --nepochs 100                  (flags after -- go to every run.py)

Result names are the original's: <experiment>_<approach>_<seed>.txt, and with a grid <experiment>_<approach>-<value>-
<value>..._<seed>.txt (its work.py), the grid's values in the order of the --grid flags.
"""
import argparse
import itertools
import os
import queue
import shlex
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

import run
import utils

SBATCH_TEMPLATE = utils.ROOT / 'scripts' / 'run.sbatch'


@dataclass
class Run:
    """One run.py command of the sweep."""
    argv: list[str]
    output: Path
    log: Path  # the run's stdout and stderr (local backend)


def parse_seeds(text: str) -> list[int]:
    """'0-4,7' -> [0, 1, 2, 3, 4, 7]."""
    seeds = []
    try:
        for part in text.split(','):
            first, _, last = part.partition('-')
            seeds += list(range(int(first), int(last or first) + 1))
    except ValueError:
        raise utils.UserError(f"--seeds '{text}': use numbers and ranges, e.g. 0-9 or 0,3,5-7") from None
    return seeds


def parse_grid(items: list[str]) -> list[tuple[str, list[str]]]:
    """['lamb=0.1,0.25', 'smax=25'] -> [('lamb', ['0.1', '0.25']), ('smax', ['25'])]."""
    grid = []
    for item in items:
        name, _, values = item.partition('=')
        if not name or not values:
            raise utils.UserError(f"--grid '{item}': use flag=value,value,... e.g. lamb=0.5,0.75")
        grid.append((name.lstrip('-').replace('_', '-'), values.split(',')))
    return grid


def build_runs(args) -> list[Run]:
    """Every run of the sweep, each command line checked by run.py's own parser before anything starts."""
    grid = parse_grid(args.grid)
    runs = []
    for experiment, approach, seed in itertools.product(args.experiments.split(','), args.approaches.split(','),
                                                        parse_seeds(args.seeds)):
        for values in itertools.product(*(v for _, v in grid)):
            name = '-'.join([args.name or approach, *values])
            output = args.results_dir / f'{experiment}_{name}_{seed}.txt'
            argv = ['--experiment', experiment, '--approach', approach, '--seed', str(seed),
                    *itertools.chain.from_iterable(('--' + flag, value) for (flag, _), value in zip(grid, values)),
                    '--output', str(output), '--results-dir', str(args.results_dir),
                    '--logs-dir', str(args.logs_dir), '--data-dir', str(args.data_dir), *args.run_args]
            try:
                run.parse_args(argv)
            except utils.UserError as e:
                raise utils.UserError(f'{experiment} {approach}: {e}') from None
            runs.append(Run(argv, output, args.logs_dir / (output.stem + '.out')))
    outputs = [r.output for r in runs]
    if len(set(outputs)) < len(outputs):
        raise utils.UserError('two runs of the sweep would write the same results; use --name per approach')
    return runs


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES names them."""
    visible = os.environ.get('CUDA_VISIBLE_DEVICES')
    if visible is not None:
        return [g for g in visible.split(',') if g.strip()]
    return [str(i) for i in range(utils.torch.cuda.device_count())]


def run_local(runs: list[Run], args) -> list[Run]:
    """Run with args.workers parallel processes, each on one GPU (round-robin) or on args.threads CPU threads;
    return the runs that failed."""
    gpus = visible_gpus() if args.gpus == 'auto' else [g for g in args.gpus.split(',') if g]
    workers = args.workers or max(1, len(gpus))
    threads = args.threads or max(1, (os.cpu_count() or 1) // workers)
    slots = queue.Queue()
    for slot in range(workers):
        slots.put(slot)
    print(f"{len(runs)} runs on {workers} workers, each on "
          f"{'GPU ' + ', '.join(gpus) + ' in turn' if gpus else f'{threads} CPU threads'}")
    failed, lock = [], threading.Lock()
    procs = set()
    bar = tqdm(total=len(runs), desc='runs', unit='run')

    def work(r: Run) -> None:
        slot = slots.get()
        env = {**os.environ, 'PYTHONUNBUFFERED': '1'}
        if gpus:
            env['CUDA_VISIBLE_DEVICES'] = gpus[slot % len(gpus)]
        else:
            env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        try:
            with open(r.log, 'w') as log:
                proc = subprocess.Popen([sys.executable, str(utils.SRC_DIR / 'run.py'), *r.argv, '--resume'],
                                        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
                with lock:
                    procs.add(proc)
                status = proc.wait()
            with lock:
                procs.discard(proc)
                if status != 0:
                    failed.append(r)
                bar.update()
                bar.set_postfix(failed=len(failed))
        finally:
            slots.put(slot)

    pool = ThreadPoolExecutor(workers)
    try:
        for future in [pool.submit(work, r) for r in runs]:
            future.result()
    except KeyboardInterrupt:
        print('\nInterrupted: stopping the runs (each keeps its checkpoint; launch the sweep again to continue)')
        pool.shutdown(wait=False, cancel_futures=True)
        with lock:
            for proc in procs:
                proc.terminate()
        raise
    finally:
        bar.close()
    return failed


def last_line(path: Path) -> str:
    """The last non-empty line of a run's output (its error, where it failed)."""
    try:
        lines = [line for line in path.read_text(errors='replace').splitlines() if line.strip()]
    except OSError:
        return '(no output)'
    return lines[-1].strip() if lines else '(no output)'


def write_array(runs: list[Run], args) -> Path:
    """A Slurm job array script with one array task per run, and the file of their command lines beside it."""
    folder = args.logs_dir / 'slurm'
    folder.mkdir(parents=True, exist_ok=True)
    name = args.job_name
    commands = folder / f'{name}.runs'
    commands.write_text(''.join(shlex.join(r.argv) + '\n' for r in runs))
    options = [f'--job-name={name}', f'--array=0-{len(runs) - 1}%{args.max_parallel}',
               f'--output={folder}/{name}_%A_%a.out', '--open-mode=append', '--requeue',
               f'--signal=B:USR1@{args.signal_seconds}', f'--time={args.time}', f'--mem={args.mem}',
               f'--cpus-per-task={args.cpus_per_task}']
    if args.gpus_per_run:
        options.append(f'--gres=gpu:{args.gpus_per_run}')
    if args.partition:
        options.append(f'--partition={args.partition}')
    options += args.sbatch_option
    script = folder / f'{name}.sbatch'
    script.write_text('#!/bin/bash\n'
                      f'# {len(runs)} runs of src/run_multi.py, one per array task (command lines in {commands.name})\n'
                      + ''.join(f'#SBATCH {o}\n' for o in options) +
                      f'export HAT_ROOT={shlex.quote(str(utils.ROOT))} PYTHON={shlex.quote(sys.executable)}\n'
                      f'eval "set -- $(sed -n "$((SLURM_ARRAY_TASK_ID + 1))p" {shlex.quote(str(commands))})"\n'
                      f'# exec: the same process, so that Slurm\'s signals reach run.sbatch\'s traps\n'
                      f'exec bash {shlex.quote(str(SBATCH_TEMPLATE))} "$@"\n')
    return script


def run_slurm(runs: list[Run], args) -> None:
    """Write the job array and submit it (unless --write-only)."""
    script = write_array(runs, args)
    if args.write_only:
        print(f'Wrote {script} ({len(runs)} array tasks); submit it with: sbatch {script}')
        return
    try:
        proc = subprocess.run(['sbatch', '--parsable', str(script)], capture_output=True, text=True)
    except FileNotFoundError:
        raise utils.UserError(f'sbatch not found: is Slurm installed here? The script is at {script}') from None
    if proc.returncode != 0:
        raise utils.UserError(f'sbatch refused {script}: {proc.stderr.strip()}')
    job = proc.stdout.strip().split(';')[0]
    print(f'Submitted job array {job} ({len(runs)} runs) from {script}; watch it with: squeue -j {job}')


def build_parser() -> argparse.ArgumentParser:
    p = utils.Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--experiments', required=True, help='comma-separated, e.g. cifar,mixture')
    p.add_argument('--approaches', required=True, help='comma-separated, e.g. hat,sgd,ewc')
    p.add_argument('--seeds', default='0-9', help="seeds, e.g. 0-9 or 0,3,5-7 (default: %(default)s, the original's "
                                                  "10 runs)")
    p.add_argument('--grid', action='append', default=[], metavar='FLAG=V1,V2,...',
                   help="an approach flag and its values, e.g. lamb=0.5,0.75; repeat for a product grid")
    p.add_argument('--name', help='the name results use instead of the approach\'s (the original work.py\'s resname)')
    p.add_argument('--backend', choices=('local', 'slurm'), default='local', help='default: %(default)s')
    p.add_argument('--results-dir', type=Path, default=utils.RESULTS_DIR, help='default: res/')
    p.add_argument('--logs-dir', type=Path, default=utils.LOGS_DIR,
                   help="each run's output, logs and checkpoints (default: logs/)")
    p.add_argument('--data-dir', type=Path, default=utils.DATA_DIR, help='default: dat/')
    p.add_argument('--list', action='store_true', help='print the runs still to do, and do nothing')
    local = p.add_argument_group('local backend')
    local.add_argument('--workers', type=int, help='runs at a time (default: one per visible GPU, else 1)')
    local.add_argument('--gpus', default='auto', help="GPU ids to use in turn, e.g. 0,1,2, or '' for none "
                                                      "(default: the visible ones)")
    local.add_argument('--threads', type=int, help='CPU threads per run without GPU (default: cores / workers)')
    slurm = p.add_argument_group('slurm backend')
    slurm.add_argument('--job-name', default='sweep', help='default: %(default)s')
    slurm.add_argument('--time', default='24:00:00', help='time limit per run (default: %(default)s)')
    slurm.add_argument('--mem', default='16G', help='memory per run (default: %(default)s)')
    slurm.add_argument('--cpus-per-task', type=int, default=4, help='default: %(default)s')
    slurm.add_argument('--gpus-per-run', type=int, default=1, help='GPUs per run, 0 for none (default: %(default)s)')
    slurm.add_argument('--partition', help='default: the cluster\'s')
    slurm.add_argument('--max-parallel', type=int, default=50,
                       help='array tasks running at once (the %% limit; default: %(default)s)')
    slurm.add_argument('--signal-seconds', type=int, default=300,
                       help='seconds before the time limit at which a run saves and requeues (default: %(default)s)')
    slurm.add_argument('--sbatch-option', action='append', default=[], metavar='OPTION',
                       help='another #SBATCH line, e.g. --sbatch-option=--account=abc (repeatable)')
    slurm.add_argument('--write-only', action='store_true', help='write the job array script, do not submit it')
    return p


def main(argv: list[str] | None = None) -> int:
    """Plan the sweep, skip what is finished, run the rest; return the exit status (1 if any run failed)."""
    argv = sys.argv[1:] if argv is None else argv
    split = argv.index('--') if '--' in argv else len(argv)
    args = build_parser().parse_args(argv[:split])
    args.run_args = argv[split + 1:]
    for folder, what in ((args.results_dir, 'results'), (args.logs_dir, 'logs')):
        utils.ensure_writable_dir(folder, what)
    args.results_dir, args.logs_dir = args.results_dir.resolve(), args.logs_dir.resolve()
    runs = build_runs(args)
    todo, finished, busy = [], [], []
    for r in runs:
        lock = utils.OutputLock(r.output)
        if utils.is_complete(utils.load_results(r.output)):
            finished.append(r)
        elif not lock.acquire():
            busy.append(r)
        else:
            lock.release()
            todo.append(r)
    print(f'{len(runs)} runs: {len(finished)} finished before, {len(busy)} being written by another process, '
          f'{len(todo)} to do')
    if args.list:
        for r in todo:
            print(shlex.join(['python', 'src/run.py', *r.argv]))
        return 0
    if not todo:
        return 0
    if args.backend == 'slurm':
        run_slurm(todo, args)
        return 0
    clock = time.time()
    failed = run_local(todo, args)
    print(f'Done in {(time.time() - clock) / 60:.1f} min: {len(todo) - len(failed)} done, '
          f'{len(finished)} skipped (finished before), {len(busy)} skipped (being written elsewhere), '
          f'{len(failed)} failed')
    for r in failed:
        print(f'  failed: {r.output.name}: {last_line(r.log)} (all its output: {r.log})')
    return 1 if failed else 0


if __name__ == '__main__':
    utils.run_cli(lambda: sys.exit(main()))
