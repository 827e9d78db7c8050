"""What the speed benchmarks (bench/speed/), the table scripts (bench/tables/) and the parity harness
(tools/parity.py) share: the repository's paths, the tests' tiny data writers, Fashion-MNIST from Debian's package,
and the helpers that time, report and compare.

A script reaches it with the repository root on its import path (`from bench import common`). Importing it changes
no import path and imports nothing of src/: the parity harness runs the original code, whose modules have src/'s
names, in processes that import it. Scripts that run our code call add_src_path() first.
"""
import contextlib
import importlib.util
import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from types import ModuleType
from unittest import mock

import torch

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / 'src'


def load_module(path: Path, name: str) -> ModuleType:
    """The module in the file at path, imported under name, without touching the import path (the one already
    imported from that file, if any: the tests' own fixtures module stays one)."""
    loaded = sys.modules.get(name)
    if loaded is not None and Path(getattr(loaded, '__file__', '')).resolve() == path.resolve():
        return loaded
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # where dataclasses and pickle look a module up
    spec.loader.exec_module(module)
    return module


# The tiny data sets in their real formats (MNIST idx files, CIFAR pickles) have one home, the tests' helpers: the
# benchmarks and the parity harness write the same files the tests read
fixtures = load_module(ROOT / 'tests' / 'fixtures.py', 'fixtures')


def add_src_path() -> None:
    """Put src/ first on the import path, as it is for run.py started as a script."""
    if str(SRC) not in sys.path:
        sys.path.insert(0, str(SRC))


def fixture_checksums(md5: dict) -> contextlib.ExitStack:
    """torchvision's CIFAR classes accepting fixtures.write_cifar's files (fixtures.cifar_checksum_attributes), for the
    duration, without pytest (which a GPU machine may lack): torchvision checks every file against the official md5."""
    stack = contextlib.ExitStack()
    for cls, attribute, value in fixtures.cifar_checksum_attributes(md5):
        stack.enter_context(mock.patch.object(cls, attribute, value))
    return stack


########################################################################################################################
# Fashion-MNIST, the one real data set of the tables' machine

DEBIAN_FMNIST = Path('/usr/share/datasets/fashion-mnist')  # apt-get install dataset-fashion-mnist
FMNIST_FILES = ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte', 't10k-images-idx3-ubyte',
                't10k-labels-idx1-ubyte')


def prepare_fashion_mnist(data_dir: Path) -> None:
    """Copy Debian's Fashion-MNIST .gz files to <data_dir>/FashionMNIST/raw/ unless the files are there in either
    form: the loader checks and decompresses them there (a recompressed .gz, which torchvision refuses offline)."""
    from plumbing import utils
    raw = data_dir / 'FashionMNIST' / 'raw'
    if all((raw / f).is_file() or (raw / f'{f}.gz').is_file() for f in FMNIST_FILES):
        return
    if not all((DEBIAN_FMNIST / f'{f}.gz').is_file() for f in FMNIST_FILES):
        raise utils.UserError(f'Fashion-MNIST not found in {raw} nor in {DEBIAN_FMNIST}; apt-get install '
                              f'dataset-fashion-mnist, or put {", ".join(FMNIST_FILES)} (or their .gz) in {raw}')
    raw.mkdir(parents=True, exist_ok=True)
    for f in FMNIST_FILES:
        if not (raw / f).is_file():
            shutil.copyfile(DEBIAN_FMNIST / f'{f}.gz', raw / f'{f}.gz')  # the bytes, not the package's permissions


########################################################################################################################
# Timing and reporting


class Report:
    """Lines printed as they come, and appended to a file when one is given (so a run cut short keeps them)."""

    def __init__(self, path: Path | None = None):
        self.path = path
        if path is not None:
            path.write_text('')

    def __call__(self, *parts) -> None:
        line = ' '.join(str(p) for p in parts)
        print(line, flush=True)
        if self.path is not None:
            with open(self.path, 'a') as f:
                f.write(line + '\n')

    def header(self, title: str) -> None:
        """A section title."""
        for line in ('=' * 100, title, '=' * 100):
            self(line)


def load_average() -> str:
    """The 1, 5 and 15 minute load averages: other processes' load changes every timing."""
    return ' '.join(f'{v:.2f}' for v in os.getloadavg())


def environment(report: Report, device: torch.device) -> None:
    """What the numbers depend on."""
    where = torch.cuda.get_device_name(device) if device.type == 'cuda' else f'{os.cpu_count()} CPUs'
    report(f'torch {torch.__version__}, {where}, torch.get_num_threads() = {torch.get_num_threads()}, load average '
           f'{load_average()}')


class Clock:
    """Seconds left of a run's budget."""

    def __init__(self, budget: float):
        self.end = time.perf_counter() + budget

    def left(self) -> float:
        """Seconds left."""
        return self.end - time.perf_counter()


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (timings)."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def matmul_seconds(a: torch.Tensor, reps: int) -> float:
    """Median seconds of one a @ a over reps timings, on a's device."""
    times = []
    for _ in range(reps):
        sync(a.device)
        clock = time.perf_counter()
        torch.mm(a, a)
        sync(a.device)
        times.append(time.perf_counter() - clock)
    return statistics.median(times)


def step_flops(appr, t: int, x: torch.Tensor, y: torch.Tensor) -> int:
    """FLOPs of one training step's forward, loss and backward on task t (what FlopCounterMode counts: convolutions
    and matmuls; HAT's gradient masking, the clipping and the SGD update are elementwise and count nothing)."""
    from torch.utils.flop_counter import FlopCounterMode
    appr.model.train()
    with FlopCounterMode(display=False) as counter:
        loss = appr.loss(t, x, y)
        loss.backward()
    appr.optimizer.zero_grad()
    return counter.get_total_flops()


def median_total(times: list[tuple[float, float]]) -> float:
    """Median seconds of whole epochs, given (training s, evaluation s) per repetition."""
    return statistics.median(a + b for a, b in times)


def ratio_line(base: list, fast: list) -> str:
    """The speed-up of fast over base: of the medians, and the range of the per-repetition ratios."""
    per_rep = [(a0 + b0) / (a1 + b1) for (a0, b0), (a1, b1) in zip(base, fast)]
    return (f'{median_total(base) / median_total(fast):.2f}x (per repetition {min(per_rep):.2f}..'
            f'{max(per_rep):.2f}x)')
