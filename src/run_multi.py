"""Sweeps: every combination of experiments x approaches x seeds x a hyperparameter grid, run here by parallel
workers or on a Slurm cluster as one job array. Runs whose results are complete are skipped, and every run is started
with --resume, so launching a sweep again continues where it stopped.

    python src/run_multi.py --experiments cifar --approaches hat,sgd --seeds 0-9
    python src/run_multi.py --experiments cifar --approaches hat --grid lamb=0.1,0.25,0.5,0.75,1,1.5,2.5,4 \\
        --grid smax=25,50,100,200,400,800 --workers 3            (the original's work.py grid, on 3 GPUs)
    python src/run_multi.py --experiments cifar --approaches hat --seeds 0-9 --runs-per-gpu 4   (4 at once per GPU)
    python src/run_multi.py --experiments cifar --approaches hat --seeds 0-9 --backend slurm --time 12:00:00
    python src/run_multi.py ... --backend slurm --runs-per-task 4        (4 runs share each array task's GPU)
    python src/run_multi.py ... -- --nepochs 100                  (flags after -- go to every run.py)

Result names are the original's: <experiment>_<approach>_<seed>.txt, and with a grid <experiment>_<approach>-<value>-
<value>..._<seed>.txt (its work.py), the grid's values in the order of the --grid flags.
"""
import argparse
import contextlib
import io
import itertools
import os
import queue
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

import files
import interrupts
import results
import run
import utils

SBATCH_TEMPLATE = utils.ROOT / 'scripts' / 'run.sbatch'
MPS_CONTROL = 'nvidia-cuda-mps-control'


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


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES names them."""
    visible = os.environ.get('CUDA_VISIBLE_DEVICES')
    if visible is not None:
        return [g for g in visible.split(',') if g.strip()]
    return [str(i) for i in range(utils.torch.cuda.device_count())]


def usable_cpus() -> int:
    """The CPUs this process may run on (a Slurm allocation's or taskset's, where one applies)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class MPSDaemons:
    """NVIDIA's Multi-Process Service for the runs sharing each GPU: one control daemon per GPU, its pipes and log in
    a temporary folder, stopped at the end. Without MPS, processes on one GPU take turns (time slices); with it,
    their kernels run side by side, which pays when each run alone leaves the GPU mostly idle."""

    def __init__(self, gpus: list[str]):
        self.gpus = gpus
        self.folders = {}  # GPU -> its daemon's folder (pipe/ and log/), for the GPUs whose daemon started
        self.tmp = None

    def __enter__(self):
        if shutil.which(MPS_CONTROL) is None:
            print(f'--mps: {MPS_CONTROL} is not installed here (it comes with the NVIDIA driver): running without '
                  f'MPS')
            return self
        self.tmp = tempfile.TemporaryDirectory(prefix='hat-mps-')
        for gpu in self.gpus:
            folder = Path(self.tmp.name) / f'gpu{gpu}'
            for sub in ('pipe', 'log'):
                (folder / sub).mkdir(parents=True)
            try:  # the daemon serves the GPUs visible to it: this one alone
                proc = subprocess.run([MPS_CONTROL, '-d'], env={**os.environ, 'CUDA_VISIBLE_DEVICES': gpu,
                                                                **self._variables(folder)},
                                      capture_output=True, text=True, timeout=60)
                said = (proc.stderr or proc.stdout).strip()
                problem = (None if proc.returncode == 0 else said.splitlines()[0] if said else
                           f'status {proc.returncode}')
            except (OSError, subprocess.TimeoutExpired) as e:
                problem = utils.first_line(e)
            if problem is not None:
                print(f'--mps: the MPS control daemon did not start for GPU {gpu} ({problem}): its runs go without '
                      f'MPS')
                continue
            self.folders[gpu] = folder
        if self.folders:
            print(f"MPS control daemons for GPU {', '.join(self.folders)} (pipes and logs in {self.tmp.name})")
        return self

    @staticmethod
    def _variables(folder: Path) -> dict:
        return {'CUDA_MPS_PIPE_DIRECTORY': str(folder / 'pipe'), 'CUDA_MPS_LOG_DIRECTORY': str(folder / 'log')}

    def client_env(self, gpu: str) -> dict | None:
        """What a run on `gpu` needs in its environment to be a client of that GPU's daemon (None without one)."""
        folder = self.folders.get(gpu)
        return None if folder is None else self._variables(folder)

    def __exit__(self, *exc) -> None:
        running = False
        for gpu, folder in self.folders.items():  # quit waits for the daemon's clients to finish
            try:
                subprocess.run([MPS_CONTROL], input='quit\n', env={**os.environ, **self._variables(folder)},
                               capture_output=True, text=True, timeout=120)
            except (OSError, subprocess.TimeoutExpired) as e:
                running = True  # its pipes stay, for the command below
                print(f'--mps: the MPS control daemon for GPU {gpu} did not quit ({utils.first_line(e)}); stop it '
                      f'with: echo quit | CUDA_MPS_PIPE_DIRECTORY={folder / "pipe"} {MPS_CONTROL}')
        if self.tmp is not None and not running:
            self.tmp.cleanup()


def worker_env(gpu: str | None, threads: int, mps: dict | None = None) -> dict:
    """The environment of one run: its CPU threads, and its GPU (or, as an MPS client, its daemon's)."""
    env = {**os.environ, 'PYTHONUNBUFFERED': '1', 'OMP_NUM_THREADS': str(threads), 'MKL_NUM_THREADS': str(threads)}
    if gpu is not None and mps is not None:
        # An MPS client sees its daemon's GPU as device 0 and must not name it again (NVIDIA's MPS guide)
        env.pop('CUDA_VISIBLE_DEVICES', None)
        env.update(mps)
    elif gpu is not None:
        env['CUDA_VISIBLE_DEVICES'] = gpu
    return env


def local_plan(runs: list[Run], args) -> tuple[list[str], int, int]:
    """(GPUs, workers, CPU threads per run) of a local sweep: K runs at once on each GPU with --runs-per-gpu K, else
    --workers (default one per GPU); the usable CPUs split evenly between the workers."""
    gpus = visible_gpus() if args.gpus == 'auto' else [g for g in args.gpus.split(',') if g]
    if args.runs_per_gpu and not gpus:
        raise utils.UserError("--runs-per-gpu: no GPU to share here (none visible, or --gpus ''); on CPU, "
                              "--workers N runs N at once")
    workers = args.workers or (args.runs_per_gpu or 1) * max(1, len(gpus))
    if (args.workers or args.runs_per_gpu) and workers > len(runs):
        print(f'note: {workers} workers for {len(runs)} runs: {len(runs)} run at once')
    return gpus, workers, args.threads or max(1, usable_cpus() // workers)


def run_local(runs: list[Run], args) -> list[Run]:
    """Run with parallel processes, each on one GPU (slot s always on GPU s mod #GPUs, so that each GPU holds the
    same number) or on CPU threads; return the runs that failed."""
    gpus, workers, threads = local_plan(runs, args)
    slots = queue.Queue()
    for slot in range(workers):
        slots.put(slot)
    where = ''
    if gpus:
        most = -(-workers // len(gpus))
        where = f"{'' if workers % len(gpus) == 0 else 'up to '}{most} per GPU on GPU {', '.join(gpus)}, "
    print(f'{len(runs)} runs on {workers} workers, {where}{threads} CPU threads each')
    failed, lock = [], threading.Lock()
    procs, stopping = set(), threading.Event()
    bar = tqdm(total=len(runs), desc='runs', unit='run')

    def work(r: Run, mps: MPSDaemons | None) -> None:
        slot = slots.get()
        gpu = gpus[slot % len(gpus)] if gpus else None
        env = worker_env(gpu, threads, mps.client_env(gpu) if mps is not None and gpu is not None else None)
        try:
            # Appended to, never truncated: another sweep's run of the same results may be writing it (run.py's lock
            # then refuses this one, which says so at the end of the file)
            with open(r.log, 'a') as log:
                log.write(f"[run_multi {time.strftime('%Y-%m-%d %H:%M:%S')}, pid {os.getpid()}] "
                          f"{shlex.join(['run.py', *r.argv, '--resume'])}\n")
                log.flush()
                with lock:
                    if stopping.is_set():
                        return
                    proc = subprocess.Popen([sys.executable, str(utils.SRC_DIR / 'run.py'), *r.argv, '--resume'],
                                            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
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

    if args.mps and not gpus:
        print("--mps: no GPU in use (--gpus ''): running without MPS")
    with MPSDaemons(gpus) if args.mps and gpus else contextlib.nullcontext() as mps:
        pool = ThreadPoolExecutor(workers)
        try:
            with interrupts.SignalGuard():  # Ctrl-C, SIGTERM, SIGUSR1
                for future in [pool.submit(work, r, mps) for r in runs]:
                    future.result()
        except interrupts.Interrupted as e:
            # The runs are in sessions of their own (so that a Ctrl-C reaches the sweep alone): each gets the signal,
            # saves what it finished and exits; the sweep waits for them
            with lock:
                stopping.set()
                running = list(procs)
            for proc in running:
                proc.send_signal(getattr(signal, e.signal_name))
            pool.shutdown(wait=True, cancel_futures=True)
            raise interrupts.Interrupted(f'{e}: {len(running)} running runs stopped after saving what they finished; '
                                         f'the same command continues the sweep', e.signal_name) from None
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
    if args.gpus_per_run:
        options.append(f'--gres=gpu:{args.gpus_per_run}')
    if args.partition:
        options.append(f'--partition={args.partition}')
    options += args.sbatch_option
    script = commands.with_suffix('.sbatch')
    per_task = ('one per array task' if args.runs_per_task == 1 else
                f'{args.runs_per_task} at once per array task')
    script.write_text('#!/bin/bash\n'
                      f'# {len(runs)} runs of src/run_multi.py, {per_task} (the runs, one per line, in '
                      f'{commands.name})\n'
                      + ''.join(f'#SBATCH {o}\n' for o in options) +
                      f'export HAT_ROOT={shlex.quote(str(utils.ROOT))} PYTHON={shlex.quote(sys.executable)} '
                      f'HAT_RUNS={shlex.quote(str(commands))} HAT_RUNS_PER_TASK={args.runs_per_task} '
                      f'HAT_MPS={int(args.mps)}\n'
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


########################################################################################################################
# What the flags may hold: checked when they are parsed, before a run or a file is made


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


def slurm_name(text: str) -> str:
    """An argparse type: a job or partition name as one word on an #SBATCH line (a job name also names the sweep's
    files in logs/slurm/, and sbatch would read a '%' in them as a pattern)."""
    if not text or not text.isprintable() or any(c.isspace() or c in '/%' for c in text):
        raise argparse.ArgumentTypeError(f"{text!r}: give a name without whitespace, control characters, '/' or '%'")
    return text


def slurm_time(text: str) -> str:
    """An argparse type: a time limit in a form sbatch's --time takes."""
    if (re.fullmatch(r'[0-9]+(:[0-9]+){0,2}|[0-9]+-[0-9]+(:[0-9]+){0,2}', text)
            or text.lower() in ('infinite', 'unlimited')):
        return text
    raise argparse.ArgumentTypeError(f'{text!r} is not a Slurm time: give minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, '
                                     f'D-HH:MM:SS or UNLIMITED')


def slurm_memory(text: str) -> str:
    """An argparse type: memory as sbatch's --mem takes it, a positive whole number of megabytes or of K, M, G, T."""
    match = re.fullmatch(r'([0-9]+)[KMGT]?', text, re.IGNORECASE)
    if match is None or int(match[1]) == 0:
        raise argparse.ArgumentTypeError(f'{text!r}: give a positive whole number with an optional K, M, G or T '
                                         f'suffix, e.g. 16G')
    return text


def sbatch_option(text: str) -> str:
    """An argparse type: one more sbatch option, written as one #SBATCH line."""
    if not text.startswith('--') or not text.isprintable():
        raise argparse.ArgumentTypeError(f"{text!r}: give one sbatch option on one line, starting with '--', e.g. "
                                         f"--sbatch-option=--account=abc")
    return text


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
    p.add_argument('--name', type=result_name,
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
    local = p.add_argument_group('local backend')
    at_once = local.add_mutually_exclusive_group()
    at_once.add_argument('--workers', type=count, help='runs at a time (default: one per visible GPU, else 1)')
    at_once.add_argument('--runs-per-gpu', type=count, metavar='K',
                         help='K runs at a time on each GPU (one run rarely keeps a GPU busy: see the readme)')
    local.add_argument('--gpus', default='auto', help="GPU ids to use in turn, e.g. 0,1,2, or '' for none "
                                                      "(default: the visible ones)")
    local.add_argument('--threads', type=count,
                       help='CPU threads per run (default: the usable cores / workers)')
    slurm = p.add_argument_group('slurm backend')
    slurm.add_argument('--job-name', type=slurm_name, default='sweep',
                       help='also names its files in <logs-dir>/slurm/ (default: %(default)s)')
    slurm.add_argument('--runs-per-task', type=count, metavar='K',
                       help='K runs at once in each array task, sharing its GPU and CPUs (default: 1); the array has '
                            'ceil(runs / K) tasks')
    slurm.add_argument('--time', type=slurm_time, default='24:00:00',
                       help='time limit per array task, as sbatch takes it: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, '
                            'D-HH:MM:SS or UNLIMITED (default: %(default)s)')
    slurm.add_argument('--mem', type=slurm_memory, default='16G',
                       help='memory per array task, as sbatch takes it: megabytes, or a number ending in K, M, G or T '
                            '(default: %(default)s)')
    slurm.add_argument('--cpus-per-task', type=count, default=4,
                       help="CPUs per array task, split between its runs (default: %(default)s)")
    slurm.add_argument('--gpus-per-run', type=at_least_0, default=1,
                       help='GPUs per array task, 0 for none (default: %(default)s)')
    slurm.add_argument('--partition', type=slurm_name, help='default: the cluster\'s')
    slurm.add_argument('--max-parallel', type=count, default=50,
                       help='array tasks running at once (the %% limit; default: %(default)s)')
    slurm.add_argument('--signal-seconds', type=count, default=300,
                       help='seconds before the time limit at which the runs save and the task requeues (default: '
                            '%(default)s)')
    slurm.add_argument('--sbatch-option', type=sbatch_option, action='append', default=[], metavar='OPTION',
                       help='another #SBATCH line, e.g. --sbatch-option=--account=abc (repeatable)')
    slurm.add_argument('--write-only', action='store_true',
                       help='write the job array script and show which runs each array task holds; do not submit')
    return p


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The sweep's flags (before --) and the flags for every run.py (after it)."""
    split = argv.index('--') if '--' in argv else len(argv)
    args = build_parser().parse_args(argv[:split])
    args.run_args = argv[split + 1:]
    wrong = [(flag, backend) for flag, backend, given in (
        ('--workers', 'local', args.workers), ('--runs-per-gpu', 'local', args.runs_per_gpu),
        ('--threads', 'local', args.threads), ('--runs-per-task', 'slurm', args.runs_per_task)) if given is not None
        and backend != args.backend]
    if wrong:
        flag, backend = wrong[0]
        raise utils.UserError(f"{flag} is a flag of --backend {backend}, not {args.backend} (see --help)")
    args.runs_per_task = args.runs_per_task or 1
    parse_grid(args.grid)  # a malformed grid is refused here, before any folder is made
    return args


def standing(r: Run) -> str | None:
    """What run.py, launched, would make of what is at a run's results path: 'finished' (returned as it is: skipped),
    None (it runs), or its refusal."""
    try:
        return 'finished' if run.previous_results(r.args, results.existing(r.output)) is not None else None
    except utils.UserError as e:
        return str(e)


def main(argv: list[str] | None = None) -> int:
    """Plan the sweep, skip what is finished, run the rest; return the exit status (1 if any run failed)."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    for folder, what in ((args.results_dir, 'results'), (args.logs_dir, 'logs')):
        files.ensure_writable_dir(folder, what)
    args.results_dir, args.logs_dir = args.results_dir.resolve(), args.logs_dir.resolve()
    runs = build_runs(args)
    todo, finished, busy, conflicts = [], [], [], []
    for r in runs:
        state = standing(r)
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
