"""The local backend: a sweep's runs as parallel processes, each on one GPU (several per GPU with --runs-per-gpu,
as MPS clients with --mps) or on its share of the CPU threads."""
import contextlib
import os
import queue
import shlex
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tqdm import tqdm

from plumbing import interrupts, utils
from sweeps.grid import Run
from sweeps.mps import MPSDaemons


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


def threads_per_run(args, workers: int) -> tuple[int, str]:
    """CPU threads for each run, and where the number comes from: --threads, else OMP_NUM_THREADS when the user's
    environment sets it (a request, as for any OpenMP program), else the usable CPUs split evenly between the
    workers."""
    if args.threads:
        return args.threads, '--threads'
    requested = os.environ.get('OMP_NUM_THREADS', '').strip()
    if requested:
        try:
            threads = int(requested)
        except ValueError:
            threads = 0
        if threads < 1:
            raise utils.UserError(f"OMP_NUM_THREADS={requested!r} in the environment: a sweep gives each run that "
                                  f"many CPU threads, so set a whole number of at least 1, unset it, or pass --threads")
        return threads, 'OMP_NUM_THREADS'
    cpus = usable_cpus()
    return max(1, cpus // workers), f'{cpus} usable CPUs / {workers} workers'


def local_plan(runs: list[Run], args) -> tuple[list[str], int, int]:
    """(GPUs, workers, CPU threads per run) of a local sweep: K runs at once on each GPU with --runs-per-gpu K, else
    --workers (default one per GPU); each run's threads as threads_per_run() says."""
    gpus = visible_gpus() if args.gpus == 'auto' else [g for g in args.gpus.split(',') if g]
    if args.runs_per_gpu and not gpus:
        raise utils.UserError("--runs-per-gpu: no GPU to share here (none visible, or --gpus ''); on CPU, "
                              "--workers N runs N at once")
    workers = args.workers or (args.runs_per_gpu or 1) * max(1, len(gpus))
    if (args.workers or args.runs_per_gpu) and workers > len(runs):
        print(f'note: {workers} workers for {len(runs)} runs: {len(runs)} run at once')
    threads, source = threads_per_run(args, workers)
    busy = min(workers, len(runs))
    if busy * threads > usable_cpus():
        print(f'note: {busy} runs at once x {threads} CPU threads ({source}) > {usable_cpus()} usable CPUs: they will '
              f'take turns on the CPUs')
    return gpus, workers, threads


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
    source = threads_per_run(args, workers)[1]
    print(f'{len(runs)} runs on {workers} workers, {where}{threads} CPU threads each ({source})')
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

