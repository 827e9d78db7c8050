"""Sweeps: every combination of experiments x approaches x seeds x a hyperparameter grid, run here by parallel
workers or on a Slurm cluster as one job array. Runs whose results are complete are skipped, and every run is started
with --resume, so launching a sweep again continues where it stopped.

    python src/run_multi.py --experiments cifar --approaches hat,sgd --seeds 0-9
    python src/run_multi.py --experiments cifar --approaches hat --grid lamb=0.1,0.25,0.5,0.75,1,1.5,2.5,4 \\
        --grid smax=25,50,100,200,400,800 --workers 3            (the original's work.py grid, on 3 GPUs)
    python src/run_multi.py --experiments cifar --approaches hat --seeds 0-9 --runs-per-gpu 4   (4 at once per GPU)
    python src/run_multi.py --experiments cifar --approaches hat --seeds 0-9 --backend slurm --time 12:00:00
    python src/run_multi.py ... --backend slurm --runs-per-task 4        (4 runs share each array task's GPU)
    python src/run_multi.py ... --backend slurm --setup env.sh     (env.sh's module load lines run in each job first)
    python src/run_multi.py ... -- --nepochs 100                  (flags after -- go to every run.py)

Result names are the original's: <experiment>_<approach>_<seed>.txt, and with a grid <experiment>_<approach>-<value>-
<value>..._<seed>.txt (its work.py), the grid's values in the order of the --grid flags.
"""

import argparse
import shlex
import sys
import time
from pathlib import Path

from plumbing import files, logs, utils
from sweeps import grid, local, slurm


def build_parser() -> argparse.ArgumentParser:
    """run_multi's flags; every value is checked here, so that --list and --write-only refuse bad ones too."""
    count, at_least_0 = utils.int_at_least(1), utils.int_at_least(0)
    p = utils.Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--experiments', required=True, help='comma-separated, e.g. cifar,mixture')
    p.add_argument('--approaches', required=True, help='comma-separated, e.g. hat,sgd,ewc')
    p.add_argument('--seeds', type=utils.parse_seeds, default='0-9',
                   help="seeds, e.g. 0-9 or 0,3,5-7 (default: %(default)s, the original's 10 runs)")
    p.add_argument('--grid', action='append', default=[], metavar='FLAG=V1,V2,...',
                   help="an approach flag and its values, e.g. lamb=0.5,0.75; repeat for a product grid")
    p.add_argument('--name', type=grid.result_name,
                   help='the name results use instead of the approach\'s (the original work.py\'s resname)')
    p.add_argument('--backend', choices=('local', 'slurm'), default='local', help='default: %(default)s')
    p.add_argument('--results-dir', type=Path, default=utils.RESULTS_DIR, help='default: res/')
    p.add_argument('--logs-dir', type=Path, default=utils.LOGS_DIR,
                   help="each run's output, logs and checkpoints (default: logs/)")
    p.add_argument('--data-dir', type=Path, default=utils.DATA_DIR, help='default: dat/')
    p.add_argument('--mps', action='store_true',
                   help="NVIDIA's Multi-Process Service for the runs sharing a GPU (started for the sweep, or for each "
                        "array task, and stopped at its end; without nvidia-cuda-mps-control, runs go without it)")
    p.add_argument('--list', action='store_true', help='print the runs still to do, and do nothing')
    local_flags = p.add_argument_group('local backend')
    at_once = local_flags.add_mutually_exclusive_group()
    at_once.add_argument('--workers', type=count, help='runs at a time (default: one per visible GPU, else 1)')
    at_once.add_argument('--runs-per-gpu', type=count, metavar='K',
                         help='K runs at a time on each GPU (one run rarely keeps a GPU busy: see docs/sweeps.md)')
    local_flags.add_argument('--gpus', default='auto', help="GPU ids to use in turn, e.g. 0,1,2, or '' for none "
                                                      "(default: the visible ones)")
    local_flags.add_argument('--threads', type=count,
                       help='CPU threads per run (default: the usable cores / workers)')
    slurm_flags = p.add_argument_group('slurm backend')
    slurm_flags.add_argument('--job-name', type=slurm.word, default='sweep',
                       help='also names its files in <logs-dir>/slurm/ (default: %(default)s)')
    slurm_flags.add_argument('--runs-per-task', type=count, metavar='K',
                       help='K runs at once in each array task, sharing its GPU and CPUs (default: 1); the array has '
                            'ceil(runs / K) tasks')
    slurm_flags.add_argument('--time', type=slurm.time_limit, default='24:00:00',
                       help='time limit per array task, as sbatch takes it: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, '
                            'D-HH:MM:SS or UNLIMITED (default: %(default)s)')
    slurm_flags.add_argument('--mem', type=slurm.memory, default='16G',
                       help='memory per array task, as sbatch takes it: megabytes, or a number ending in K, M, G or T '
                            '(default: %(default)s)')
    slurm_flags.add_argument('--cpus-per-task', type=count, default=4,
                       help="CPUs per array task, split between its runs (default: %(default)s)")
    slurm_flags.add_argument('--gpus-per-task', type=at_least_0, default=1,
                       help='GPUs per array task, shared by its runs, 0 for none (default: %(default)s)')
    # The flag's former name, from when an array task held one run
    slurm_flags.add_argument('--gpus-per-run', type=at_least_0, dest='gpus_per_task', default=argparse.SUPPRESS,
                             help=argparse.SUPPRESS)
    slurm_flags.add_argument('--partition', type=slurm.word, help='default: the cluster\'s')
    slurm_flags.add_argument('--max-parallel', type=count, default=50,
                       help='array tasks running at once (the %% limit; default: %(default)s)')
    slurm_flags.add_argument('--signal-seconds', type=count, default=300,
                       help='seconds before the time limit at which the runs save and the task requeues (default: '
                            '%(default)s)')
    slurm_flags.add_argument('--sbatch-option', type=slurm.option, action='append', default=[], metavar='OPTION',
                       help='another #SBATCH line, e.g. --sbatch-option=--account=abc (repeatable)')
    slurm_flags.add_argument('--setup', type=slurm.setup_file, metavar='FILE',
                             help="a shell file whose lines the job script runs before the runs start, e.g. 'module "
                                  "load cuda' or 'source ~/venv/bin/activate' (copied into the script when it is "
                                  "written; the runs use the python that ran run_multi unless a line sets PYTHON)")
    slurm_flags.add_argument('--write-only', action='store_true',
                       help='write the job array script and show which runs each array task holds; do not submit')
    return p


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The sweep's flags (before --) and the flags for every run.py (after it)."""
    split = argv.index('--') if '--' in argv else len(argv)
    args = build_parser().parse_args(argv[:split])
    args.run_args = argv[split + 1:]
    wrong = [(flag, backend) for flag, backend, given in (
        ('--workers', 'local', args.workers), ('--runs-per-gpu', 'local', args.runs_per_gpu),
        ('--threads', 'local', args.threads), ('--runs-per-task', 'slurm', args.runs_per_task),
        ('--setup', 'slurm', args.setup)) if given is not None
        and backend != args.backend]
    if wrong:
        flag, backend = wrong[0]
        raise utils.UserError(f"{flag} is a flag of --backend {backend}, not {args.backend} (see --help)")
    args.runs_per_task = args.runs_per_task or 1
    grid.parse_grid(args.grid)  # a malformed grid is refused here, before any folder is made
    return args


def main(argv: list[str] | None = None) -> int:
    """Plan the sweep, skip what is finished, run the rest; return the exit status (1 if any run failed)."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    for folder, what in ((args.results_dir, 'results'), (args.logs_dir, 'logs')):
        files.ensure_writable_dir(folder, what)
    args.results_dir, args.logs_dir = args.results_dir.resolve(), args.logs_dir.resolve()
    runs = grid.build_runs(args)
    todo, finished, busy, conflicts = [], [], [], []
    for r in runs:
        state = grid.standing(r)
        if state == 'finished':
            finished.append(r)
            continue
        if state is not None:
            conflicts.append(state)
            continue
        lock = files.OutputLock(r.output)
        if not lock.acquire():
            busy.append(r)
        else:
            lock.release()
            todo.append(r)
    if conflicts:
        raise utils.UserError(f"{len(conflicts)} of the sweep's runs would replace results ({conflicts[0]}"
                              f"{f'; and {len(conflicts) - 1} more' if len(conflicts) > 1 else ''}): -- --overwrite "
                              f"replaces them, or choose another --results-dir")
    print(f'{len(runs)} runs: {len(finished)} finished before, {len(busy)} being written by another process, '
          f'{len(todo)} to do')
    if args.list:
        for r in todo:
            print(shlex.join(['python', 'src/run.py', *r.argv]))
        return 0
    if not todo:
        return 0
    if args.backend == 'slurm':
        slurm.run_slurm(todo, args)
        return 0
    clock = time.time()
    failed = local.run_local(todo, args)
    print(f'Done in {logs.duration(time.time() - clock)}: {len(todo) - len(failed)} done, '
          f'{len(finished)} skipped (finished before), {len(busy)} skipped (being written elsewhere), '
          f'{len(failed)} failed')
    for r in failed:
        print(f'  failed: {r.output.name}: {local.last_line(r.log)} (all its output: {r.log})')
    return 1 if failed else 0


if __name__ == '__main__':
    utils.run_cli(lambda: sys.exit(main()))
