"""Sweep throughput on one device: real sweeps of run.py processes launched through src/run_multi.py, one
configuration per sweep, and the epochs per second each gets through, as ratios measured in the same run.

On a GPU one run keeps it busy a few per cent of the time (host-bound: about 250 kernel launches per step), so
packing several runs per GPU should multiply a sweep's throughput. Each configuration is one sweep of K runs (seeds
0..K-1) of --experiment cifar (10 tasks, AlexNet, 3x32x32) on a CIFAR fixture in the real format (by default 900
training images per task, 2 epochs per task), in a fresh folder:
- GPU: K runs per GPU (run_multi --runs-per-gpu K), eager or with --cuda-graphs, alone or under MPS (--mps); for hat,
  K=1 and K=4 under deterministic kernels (run.py --deterministic), whose seed 0 must give the same matrices bitwise;
  the GPU memory each run takes (nvidia-smi), hence how many runs fit on a GPU.
- CPU: 1 run of 1 thread (the baseline), 1 run of 2 threads, 2 runs of 1 thread.
Per configuration: the runs' epoch times (training + evaluations, from their JSON-lines logs), the steady-state
throughput (the sum over runs of epochs / epoch seconds: the K runs start together and do the same work), the
wall-clock throughput (all epochs / the sweep's wall time, which also holds the processes' start-up and the tests
after each task), both against one eager run (K=1), and seed 0's accuracy and loss matrices against those of the
unpacked configuration of the same mode. Then the targets, each MET, NOT MET or NOT MEASURED: at K=16, at least 8x
the throughput of one eager run per GPU; one run's epoch with --cuda-graphs at least 3x faster than eager; hat packed
(K=4) bitwise equal to unpacked under deterministic kernels; the GPU memory per run reported.

    python bench/speed/sweep.py --out "$OUT"              (on the GPU machine: under 5 minutes, report in $OUT)
    python bench/speed/sweep.py --quick --out /tmp/sweep  (anywhere, CPU included: small sizes, a check of the script)

Configurations run in order of importance (the targets' configurations of every approach, then the other Ks) while
the budget allows; one whose cost, estimated from the sweeps measured so far, would overrun it is reported SKIPPED.
"""
import argparse
import contextlib
import io
import json
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # started as a script: bench.common is found from the repository root
    sys.path.insert(0, str(ROOT))
from bench import common  # noqa: E402

common.add_src_path()

import numpy as np  # noqa: E402
import torch  # noqa: E402

from analysis import results  # noqa: E402
from dataloaders import cifar  # noqa: E402
from plumbing import utils  # noqa: E402

RUN_MULTI = common.SRC / 'run_multi.py'
EXPERIMENT = 'cifar'
MODES = {'eager': [], 'graphs': ['--cuda-graphs'], 'deterministic': ['--deterministic']}  # run.py's flags
DETERMINISTIC_K = 4  # runs packed in the determinism check
# The targets: at K=16 runs per GPU, >= 8x one eager run's throughput; one run's epoch >= 3x faster with graphs
TARGET_K, TARGET_PACKING, TARGET_GRAPHS = 16, 8, 3
SAMPLE_S = 0.5  # between two readings of nvidia-smi
TAIL = 5  # lines of a failed run's output quoted


@dataclass
class Config:
    """One sweep: K runs of an approach (seeds 0..K-1) with run_multi's backend flags and run.py's mode flags."""
    name: str
    approach: str
    k: int
    mode: str  # the key of MODES, or 'cpu'
    backend: list[str]
    reference: str | None = None  # the configuration whose seed 0 it is compared with, bitwise
    by_nature: str = ''  # why it may differ from the reference in its last bits, where it may
    also: str | None = None  # another configuration its throughput is compared with
    env: dict = field(default_factory=dict)  # added to the sweep's environment


def pair(text: str) -> tuple[int, int]:
    """'450,45' -> (450, 45): per-class image counts of CIFAR-10 and CIFAR-100."""
    try:
        a, b = (int(v) for v in text.split(','))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}': two counts, CIFAR-10's and CIFAR-100's, e.g. 450,45") from None
    if min(a, b) < 1:
        raise argparse.ArgumentTypeError(f"'{text}': at least 1 image per class")
    return a, b


def parse_args() -> argparse.Namespace:
    """The benchmark's flags."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--out', type=Path, required=True, help='folder for bench_sweep.txt and bench_sweep.json')
    p.add_argument('--quick', action='store_true', help='small data, 1 epoch per task, batch 16 (a check of the '
                                                        'script, e.g. on CPU)')
    p.add_argument('--budget', type=float, default=270, help='seconds the whole run may take; configurations that '
                                                             'would overrun it are skipped (default: %(default)s)')
    p.add_argument('--approaches', help='comma-separated (default: hat,sgd; with --quick hat)')
    p.add_argument('--ks', default='1,2,4,8,16', help='runs per GPU to try, comma-separated, 1 (the baseline) among '
                                                      'them (default: %(default)s)')
    p.add_argument('--train-per-class', type=pair,
                   help='training images per class of CIFAR-10 and CIFAR-100 (default: 450,45, 900 per task; with '
                        '--quick 40,4)')
    p.add_argument('--test-per-class', type=pair, help='test images per class (default: 50,5; with --quick 10,2)')
    p.add_argument('--nepochs', type=int, help='epochs per task (default: 2; with --quick 1)')
    p.add_argument('--batch-size', type=int, help="run.py's (default: 64, its own; with --quick 16)")
    args = p.parse_args()
    quick = args.quick
    args.train_per_class = args.train_per_class or ((40, 4) if quick else (450, 45))
    args.test_per_class = args.test_per_class or ((10, 2) if quick else (50, 5))
    args.nepochs = args.nepochs or (1 if quick else 2)
    args.batch_size = args.batch_size or (16 if quick else 64)
    args.approaches = (args.approaches or ('hat' if quick else 'hat,sgd')).split(',')
    unknown = set(args.approaches) - set(utils.module_choices('approaches'))
    if unknown:
        p.error(f"unknown approaches {', '.join(sorted(unknown))}")
    try:
        args.ks = sorted({int(k) for k in args.ks.split(',')})
    except ValueError:
        p.error(f"--ks '{args.ks}': use counts, e.g. 1,4,16")
    if args.ks[0] != 1:
        p.error('--ks must hold 1 and nothing smaller: one run per GPU is the baseline')
    if min(args.nepochs, args.batch_size) < 1:
        p.error('--nepochs and --batch-size must be at least 1')
    return args


def gpu_configs(approaches: list[str], ks: list[int]) -> list[Config]:
    """The GPU sweeps in order of importance: for every approach the targets' configurations (one eager run, the
    largest K, graphs, the determinism check, MPS), then for every approach the other Ks, MPS at the largest of them."""
    top, middle = ks[-1], ks[1:-1]

    def config(approach: str, k: int, mode: str, mps: bool = False) -> Config:
        name = f'{approach} {mode}{" MPS" if mps else ""} K={k}'
        reference = f'{approach} {mode} K=1'
        # cuBLAS is deterministic only with a fixed workspace, set before CUDA starts
        env = {'CUBLAS_WORKSPACE_CONFIG': ':4096:8'} if mode == 'deterministic' else {}
        return Config(name, approach, k, mode, ['--runs-per-gpu', str(k), '--gpus', '0', *(['--mps'] if mps else [])],
                      reference=None if name == reference else reference, env=env)

    first, second = [], []
    for a in approaches:
        first += [config(a, 1, 'eager'), config(a, 1, 'graphs')]
        if top > 1:
            first += [config(a, top, 'eager'), config(a, top, 'graphs')]
        if a == 'hat':
            first += [config(a, 1, 'deterministic'), config(a, DETERMINISTIC_K, 'deterministic')]
        if top > 1:
            first += [config(a, top, mode, mps=True) for mode in ('eager', 'graphs')]
        second += [config(a, k, mode) for k in middle for mode in ('eager', 'graphs')]
        if middle:
            second += [config(a, middle[-1], mode, mps=True) for mode in ('eager', 'graphs')]
    return first + second


def cpu_configs(approaches: list[str]) -> list[Config]:
    """The CPU sweeps, per approach: 1 run of 1 thread (the baseline), 1 run of 2 threads, 2 runs of 1 thread."""
    configs = []
    for a in approaches:
        one, two = f'{a} 1 run x 1 thread', f'{a} 1 run x 2 threads'
        configs += [Config(one, a, 1, 'cpu', ['--gpus', '', '--workers', '1', '--threads', '1']),
                    Config(two, a, 1, 'cpu', ['--gpus', '', '--workers', '1', '--threads', '2'], reference=one,
                           by_nature='two threads sum in another order than one, and training carries the last '
                                     'bits\' difference further'),
                    Config(f'{a} 2 runs x 1 thread', a, 2, 'cpu', ['--gpus', '', '--workers', '2', '--threads', '1'],
                           reference=one, also=two)]
    return configs


def write_data(data_dir: Path, train_per_class: tuple[int, int], test_per_class: tuple[int, int]) -> None:
    """The CIFAR fixture in the real format, and the experiment's tensor cache built from it here, with torchvision
    made to accept the fixture's checksums: the cache is validated by the files' names, sizes and times only, so the
    sweeps' runs load it without torchvision's check against the official checksums."""
    md5 = common.fixtures.write_cifar(data_dir, train_per_class=train_per_class, test_per_class=test_per_class)
    with common.fixture_checksums(md5), contextlib.redirect_stdout(io.StringIO()):  # get() prints the task order
        cifar.get(data_dir)


def gpu_mib(query: str) -> int | None:
    """GPU 0's memory.free or memory.used in MiB, as nvidia-smi reports it (None without nvidia-smi)."""
    rows = nvidia_smi(query, 'gpu')
    try:
        return int(rows[0][0])
    except (IndexError, ValueError):
        return None


def nvidia_smi(query: str, what: str) -> list[list[str]]:
    """The rows nvidia-smi gives for --query-<what>=<query> (none where it is absent or fails)."""
    try:
        out = subprocess.run(['nvidia-smi', f'--query-{what}={query}', '--format=csv,noheader,nounits'],
                             capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [[v.strip() for v in line.split(',')] for line in out.splitlines() if line.strip()]


class MemorySampler:
    """The most GPU memory each process held while a sweep ran, and the most GPU 0 held in all, read from nvidia-smi
    every SAMPLE_S seconds in a thread (nothing where there is no nvidia-smi). Inside a container nvidia-smi often
    lists no process (another PID namespace): then the GPU's total, less what it held before, divided by the runs."""

    def __init__(self):
        self.peaks: dict[int, int] = {}  # pid -> MiB
        self.used_before = self.used_peak = None  # GPU 0's memory.used, MiB
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True) if shutil.which('nvidia-smi') else None

    def __enter__(self):
        if self._thread is not None:
            self.used_before = gpu_mib('memory.used')
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _sample(self) -> None:
        """Read until stopped."""
        while not self._stop.is_set():
            for row in nvidia_smi('pid,used_memory', 'compute-apps'):
                try:
                    pid, mib = (int(v) for v in row)
                except ValueError:  # '[N/A]' where the driver does not tell
                    continue
                if pid != os.getpid():
                    self.peaks[pid] = max(self.peaks.get(pid, 0), mib)
            used = gpu_mib('memory.used')
            if used is not None:
                self.used_peak = max(self.used_peak or 0, used)
            self._stop.wait(SAMPLE_S)

    def added(self) -> int | None:
        """MiB of GPU 0 the sweep held at its peak beyond what was held before it (None unmeasured)."""
        if self.used_before is None or self.used_peak is None:
            return None
        return max(0, self.used_peak - self.used_before)


def launch(config: Config, folder: Path, data_dir: Path, run_flags: list[str], limit: float) -> dict:
    """Run the configuration's sweep in folder, stopped after limit seconds: its command, exit status (None where
    stopped), wall seconds and the GPU memory each of its processes peaked at."""
    command = [sys.executable, str(RUN_MULTI), '--experiments', EXPERIMENT, '--approaches', config.approach,
               '--seeds', f'0-{config.k - 1}', '--results-dir', str(folder / 'res'), '--logs-dir',
               str(folder / 'logs'), '--data-dir', str(data_dir), *config.backend, '--', *run_flags,
               *MODES.get(config.mode, [])]
    folder.mkdir(parents=True)
    with open(folder / 'run_multi.out', 'w') as out, MemorySampler() as memory:
        clock = time.perf_counter()
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **config.env})
        try:
            status = proc.wait(timeout=max(1.0, limit))
        except subprocess.TimeoutExpired:
            # run_multi's Ctrl-C: it stops its runs, which live in sessions of their own and would outlive a kill
            proc.send_signal(signal.SIGINT)
            proc.wait()
            status = None
        wall = time.perf_counter() - clock
    return {'command': shlex.join(command), 'status': status, 'wall_s': wall, 'memory_mib': memory.peaks,
            'gpu_added_mib': memory.added()}


def results_path(folder: Path, approach: str, seed: int) -> Path:
    """Where run_multi has a run write its results (run.py's default name)."""
    return folder / 'res' / f'{EXPERIMENT}_{approach}_{seed}.txt'


def read_runs(config: Config, folder: Path) -> tuple[list[dict], list[int]]:
    """Each finished run's epochs from its JSON-lines log (a run's epoch: seconds_train + seconds_eval), and the seeds
    whose results are incomplete."""
    runs, failed = [], []
    for seed in range(config.k):
        path = results_path(folder, config.approach, seed)
        if not results.is_complete(results.load_pkl(path)):
            failed.append(seed)
            continue
        records = [json.loads(line) for line in (folder / 'logs' / f'{path.stem}.jsonl').read_text().splitlines()
                   if line.strip()]
        epochs = [r['seconds_train'] + r['seconds_eval'] for r in records]
        # A task's first epoch holds its CUDA graphs' capture (and the first task's, cuDNN's warm-up): the later
        # ones are what a long run spends most of its time in
        later = [r['seconds_train'] + r['seconds_eval'] for r in records if r['epoch'] > 1]
        runs.append({'seed': seed, 'epochs': len(epochs), 'seconds': sum(epochs),
                     'median_epoch_s': statistics.median(epochs),
                     'median_later_epoch_s': statistics.median(later) if later else None})
    return runs, failed


def lines_of(path: Path) -> list[str]:
    """The non-empty lines of a file (none where it cannot be read)."""
    try:
        return [line.rstrip() for line in path.read_text(errors='replace').splitlines() if line.strip()]
    except OSError:
        return []


def compare(folder: Path, reference: Path, approach: str) -> dict:
    """Seed 0's acc and lss matrices against those of the reference folder: bitwise equal, and the largest
    difference."""
    ours, theirs = (results.load_pkl(results_path(f, approach, 0)) for f in (folder, reference))
    equal = all(np.array_equal(ours[k], theirs[k]) for k in ('acc', 'lss'))
    diff = max(float(np.max(np.abs(np.asarray(ours[k], np.float64) - np.asarray(theirs[k], np.float64))))
               for k in ('acc', 'lss'))
    return {'equal': equal, 'max_abs_difference': diff}


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b where both are known."""
    return None if a is None or not b else a / b


def fmt(value: float | None, spec: str = '.2f', suffix: str = '') -> str:
    """A figure, or n/a."""
    return 'n/a' if value is None else f'{value:{spec}}{suffix}'


def estimate(walls: dict[int, float], k: int, cpus: int) -> float:
    """Seconds a sweep of k runs should take, from the longest measured sweep of each run count: interpolated between
    measured counts, beyond them assuming the runs overlap up to one per CPU core (0 before any measurement)."""
    if not walls:
        return 0.0
    ks = sorted(walls)
    if ks[0] <= k <= ks[-1]:
        return float(np.interp(k, ks, [walls[x] for x in ks]))
    near = ks[-1] if k > ks[-1] else ks[0]
    return walls[near] * max(1.0, k / cpus) / max(1.0, near / cpus)


def bench_config(report: common.Report, config: Config, folder: Path, data_dir: Path, run_flags: list[str],
                 limit: float, done: dict, folders: dict, baseline: str) -> dict:
    """One configuration's sweep, measured and reported; its figures (done holds the figures, folders the folders,
    of those measured before)."""
    figures = launch(config, folder, data_dir, run_flags, limit)
    wall = figures['wall_s']
    runs, failed = read_runs(config, folder)
    figures.update(k=config.k, runs=runs, failed_seeds=failed)
    if figures['status'] is None:
        report(f'\n{config.name}: STOPPED at the end of the budget after {wall:.1f} s')
        return figures
    if figures['status'] != 0 or failed:
        # The first failed run's output; where no run started (run_multi refused the sweep), run_multi's own
        outputs = [(f'seed {seed}', folder / 'logs' / f'{results_path(folder, config.approach, seed).stem}.out')
                   for seed in failed]
        who, where = next(((w, p) for w, p in outputs if p.is_file()), ('run_multi', folder / 'run_multi.out'))
        report(f'\n{config.name}: FAILED (exit {figures["status"]}) after {wall:.1f} s; {who}\'s output ends with:')
        for line in lines_of(where)[-TAIL:] or ['(no output)']:
            report(f'    {line}')
        return figures
    epochs = sum(r['epochs'] for r in runs)
    medians = [r['median_epoch_s'] for r in runs]
    later = [r['median_later_epoch_s'] for r in runs if r['median_later_epoch_s'] is not None]
    figures.update(ok=True, epochs=epochs, median_epoch_s=statistics.median(medians), min_epoch_s=min(medians),
                   max_epoch_s=max(medians), median_later_epoch_s=statistics.median(later) if later else None,
                   steady_epochs_per_s=sum(r['epochs'] / r['seconds'] for r in runs), wall_epochs_per_s=epochs / wall)
    base = figures if config.name == baseline else done.get(baseline, {})
    figures['ratio_steady'] = ratio(figures['steady_epochs_per_s'], base.get('steady_epochs_per_s'))
    figures['ratio_wall'] = ratio(figures['wall_epochs_per_s'], base.get('wall_epochs_per_s'))
    report(f'\n{config.name}: {config.k} run{"s" if config.k > 1 else ""}, sweep done in {wall:.1f} s')
    if '--mps' in config.backend:  # without its daemon, run_multi runs the sweep without MPS and says so
        mps = [line for line in lines_of(folder / 'run_multi.out') if 'MPS' in line]
        figures['mps_lines'] = mps
        for line in mps or ['(run_multi said nothing about MPS)']:
            report(f'  run_multi: {line}')
    report(f'  epoch (training + evaluations): median over runs {figures["median_epoch_s"]:.3f} s (runs '
           f'{figures["min_epoch_s"]:.3f}..{figures["max_epoch_s"]:.3f} s); later epochs of each task '
           f'{fmt(figures["median_later_epoch_s"], ".3f", " s")}')
    report(f'  throughput against {baseline}: {figures["steady_epochs_per_s"]:.2f} epochs/s steady-state = '
           f'{fmt(figures["ratio_steady"], ".2f", "x")}; {figures["wall_epochs_per_s"]:.2f} epochs/s by the wall '
           f'clock = {fmt(figures["ratio_wall"], ".2f", "x")} (process start-up and the tests after each task '
           f'included)')
    other = done.get(config.also, {})
    if other.get('ok'):
        figures['ratio_steady_also'] = ratio(figures['steady_epochs_per_s'], other['steady_epochs_per_s'])
        figures['ratio_wall_also'] = ratio(figures['wall_epochs_per_s'], other['wall_epochs_per_s'])
        report(f'  against {config.also}: {figures["ratio_steady_also"]:.2f}x steady-state, '
               f'{figures["ratio_wall_also"]:.2f}x by the wall clock')
    if config.reference and done.get(config.reference, {}).get('ok'):
        same = compare(folder, folders[config.reference], config.approach)
        figures['bitwise'] = {'reference': config.reference, **same}
        state = 'BITWISE EQUAL' if same['equal'] else \
            f'DIFFERENT (max abs difference {same["max_abs_difference"]:.2e})'
        nature = f', as expected: {config.by_nature}' if config.by_nature and not same['equal'] else ''
        report(f'  seed 0 acc and lss vs {config.reference}: {state}{nature}')
    if figures['memory_mib']:
        mib = sorted(figures['memory_mib'].values())
        report(f'  GPU memory per process (nvidia-smi): largest {mib[-1]} MiB, median {statistics.median(mib):.0f} '
               f'MiB, {len(mib)} processes' + (' (the MPS server may be among them)' if '--mps' in config.backend
                                              else ''))
    if figures['gpu_added_mib'] is not None:
        report(f'  GPU memory held by the sweep at its peak: {figures["gpu_added_mib"]} MiB, '
               f'{figures["gpu_added_mib"] / config.k:.0f} MiB per run')
    return figures


def summary(report: common.Report, configs: list[Config], done: dict) -> None:
    """A table of the measured configurations."""
    report.header('Summary (ratios against one run of the same approach: eager K=1 on a GPU, 1 thread on CPU)')
    report(f'{"configuration":28s} {"K":>3s} {"epoch s (runs)":>22s} {"steady ep/s":>12s} {"ratio":>7s} '
           f'{"wall ep/s":>10s} {"ratio":>7s}  seed 0')
    for c in configs:
        f = done.get(c.name)
        if f is None or not f.get('ok'):
            state = 'SKIPPED' if f is None or f.get('skipped') else 'STOPPED' if f['status'] is None else 'FAILED'
            report(f'{c.name:28s} {c.k:3d} {state}')
            continue
        same = f.get('bitwise')
        bitwise = '' if same is None else 'bitwise equal' if same['equal'] else \
            f'differs by {same["max_abs_difference"]:.1e}{" (by nature)" if c.by_nature else ""}'
        spread = f'{f["median_epoch_s"]:.3f} ({f["min_epoch_s"]:.3f}..{f["max_epoch_s"]:.3f})'
        report(f'{c.name:28s} {c.k:3d} {spread:>22s} {f["steady_epochs_per_s"]:12.2f} '
               f'{fmt(f["ratio_steady"], ".2f", "x"):>7s} {f["wall_epochs_per_s"]:10.2f} '
               f'{fmt(f["ratio_wall"], ".2f", "x"):>7s}  {bitwise}')


def memory_rule(report: common.Report, configs: list[Config], done: dict, free: int | None) -> dict:
    """Per-run GPU memory of each mode (the largest process of its sweeps without MPS), and how many runs fit."""
    report.header('GPU memory per run')
    figures = {'free_mib': free}
    for mode in ('eager', 'graphs'):
        measured = [done.get(c.name, {}) for c in configs if c.mode == mode and '--mps' not in c.backend]
        mib = [m for f in measured for m in f.get('memory_mib', {}).values()]
        # Where nvidia-smi lists no process: the sweep's share of the GPU's total, per run
        mib = mib or [round(f['gpu_added_mib'] / f['k']) for f in measured if f.get('gpu_added_mib')]
        if not mib:
            continue
        largest = max(mib)
        figures[mode] = {'largest_mib': largest, 'median_mib': statistics.median(mib)}
        fits = f'; the {free} MiB free on this GPU before the sweeps fit {free // largest}' if free else ''
        report(f'{mode}: largest {largest} MiB, median {statistics.median(mib):.0f} MiB per run -> runs per GPU that '
               f'fit = free memory / {largest} MiB: {10240 // largest} per 10 GiB{fits}')
    if len(figures) == 1:
        report('nvidia-smi is absent or showed no process: per-run GPU memory NOT MEASURED')
    return figures


def verdict(value: float | bool | None, met: bool) -> str:
    """MET, NOT MET or NOT MEASURED."""
    return 'NOT MEASURED' if value is None else 'MET' if met else 'NOT MET'


def targets(report: common.Report, approaches: list[str], done: dict, memory: dict, gpu: bool) -> dict:
    """The targets (TARGET_*, the determinism check, the memory per run) with the measured values."""
    report.header('Targets')
    figures = {}
    why = '' if gpu else ' (no GPU)'
    for a in approaches:
        names = [f'{a} {mode}{mps} K={TARGET_K}' for mode in ('eager', 'graphs') for mps in ('', ' MPS')]
        best = max(((done[n]['ratio_steady'], n) for n in names if done.get(n, {}).get('ratio_steady')),
                   default=(None, None))
        figures[f'{a} packing'] = best[0]
        walls = [f'{n}: {done[n]["ratio_wall"]:.2f}x' for n in names if done.get(n, {}).get('ratio_wall')]
        report(f'{a}: throughput at K={TARGET_K} (best of eager, graphs, MPS) >= {TARGET_PACKING}x one eager run per '
               f'GPU: {fmt(best[0], ".2f", "x")} steady-state{f" ({best[1]})" if best[1] else ""}; by the wall clock, '
               f'start-up included: {", ".join(walls) or "n/a"} -> {verdict(best[0], (best[0] or 0) >= TARGET_PACKING)}'
               f'{why}')
        eager, graphs = (done.get(f'{a} {mode} K=1', {}) for mode in ('eager', 'graphs'))
        key = 'median_later_epoch_s' if eager.get('median_later_epoch_s') and graphs.get('median_later_epoch_s') \
            else 'median_epoch_s'
        speedup = ratio(eager.get(key), graphs.get(key)) if gpu else None
        figures[f'{a} graphs'] = speedup
        report(f'{a}: one run\'s epoch with graphs >= {TARGET_GRAPHS}x faster than eager (K=1, '
               f'{"later epochs" if key == "median_later_epoch_s" else "all epochs"}): {fmt(speedup, ".2f", "x")} -> '
               f'{verdict(speedup, (speedup or 0) >= TARGET_GRAPHS)}{why}')
    same = done.get(f'hat deterministic K={DETERMINISTIC_K}', {}).get('bitwise', {}).get('equal')
    figures['deterministic bitwise'] = same
    report(f'hat: packed (K={DETERMINISTIC_K}) = unpacked (K=1) bitwise under deterministic kernels: '
           f'{"n/a" if same is None else "equal" if same else "different"} -> {verdict(same, bool(same))}{why}')
    reported = any(mode in memory for mode in ('eager', 'graphs'))
    figures['memory reported'] = reported
    report(f'per-run GPU memory reported -> {"MET" if reported else "NOT MEASURED"}{why}')
    if not gpu:
        for a in approaches:
            f = done.get(f'{a} 2 runs x 1 thread', {})
            report(f'CPU, {a}: 2 runs of 1 thread against 1 run of 2 threads: '
                   f'{fmt(f.get("ratio_steady_also"), ".2f", "x")} steady-state, '
                   f'{fmt(f.get("ratio_wall_also"), ".2f", "x")} by the wall clock; against 1 run of 1 thread '
                   f'{fmt(f.get("ratio_steady"), ".2f", "x")} and {fmt(f.get("ratio_wall"), ".2f", "x")}')
    return figures


def main() -> None:
    """Measure the configurations within the budget, writing the report as they go."""
    args = parse_args()
    clock = common.Clock(args.budget)
    gpu = torch.cuda.is_available()
    device = torch.device('cuda' if gpu else 'cpu')
    args.out.mkdir(parents=True, exist_ok=True)
    report = common.Report(args.out / 'bench_sweep.txt')
    report(f'bench/speed/sweep.py{" --quick" if args.quick else ""}: budget {args.budget:.0f} s')
    common.environment(report, device)
    configs = gpu_configs(args.approaches, args.ks) if gpu else cpu_configs(args.approaches)
    run_flags = ['--nepochs', str(args.nepochs), '--batch-size', str(args.batch_size)]
    figures = {'device': str(device), 'quick': args.quick, 'budget_s': args.budget,
               'train_per_class': args.train_per_class, 'test_per_class': args.test_per_class,
               'run_flags': run_flags, 'configs': {}}
    done, folders, walls, baselines = figures['configs'], {}, {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        start = time.perf_counter()
        write_data(tmp / 'dat', args.train_per_class, args.test_per_class)
        per_task = 2 * args.train_per_class[0], 20 * args.train_per_class[1]  # CIFAR-10: 2 classes a task, -100: 20
        report(f'data: CIFAR fixture, {per_task[0]} and {per_task[1]} training images per CIFAR-10 and CIFAR-100 task '
               f'(10% of them validation), cache built in {time.perf_counter() - start:.1f} s; every run: '
               f'--experiment {EXPERIMENT} {" ".join(run_flags)}')
        free = gpu_mib('memory.free') if gpu else None
        report.header(f'Sweeps through run_multi.py, {len(configs)} configurations in order of importance')
        for i, config in enumerate(configs):
            baseline = baselines.setdefault(config.approach, config.name)
            left, cost = clock.left(), estimate(walls, config.k, os.cpu_count() or 1)
            if cost > left:
                report(f'\n{config.name}: SKIPPED, {left:.0f} s left of the budget (estimated {cost:.0f} s)')
                done[config.name] = {'skipped': True, 'seconds_left': left, 'estimated_s': cost}
                continue
            folders[config.name] = tmp / f'{i:02d}'
            try:
                done[config.name] = bench_config(report, config, folders[config.name], tmp / 'dat', run_flags, left,
                                                 done, folders, baseline)
            except Exception as e:  # a broken log or result file: the other configurations' figures stand
                report(f'\n{config.name}: FAILED ({type(e).__name__}: {e})')
                done[config.name] = {'status': 'error', 'error': f'{type(e).__name__}: {e}'}
            walls[config.k] = max(walls.get(config.k, 0.0), left - clock.left())
            (args.out / 'bench_sweep.json').write_text(json.dumps(figures, indent=1) + '\n')  # a run cut short keeps it
    summary(report, configs, done)
    if gpu:
        figures['memory'] = memory_rule(report, configs, done, free)
    figures['targets'] = targets(report, args.approaches, done, figures.get('memory', {}), gpu)
    common.environment(report, device)
    report(f'total {args.budget - clock.left():.0f} s')
    (args.out / 'bench_sweep.json').write_text(json.dumps(figures, indent=1) + '\n')


if __name__ == '__main__':
    main()
