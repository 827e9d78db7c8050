"""What everything shares: the repository's paths, one-line errors, flag types, modules found by name, the device and
the seeds. (Files, logs, checkpoints and signals have modules of their own.)"""
import argparse
import importlib
import os
import random
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from plumbing.interrupts import CTRL_C_EXIT, Interrupted

ROOT = Path(__file__).resolve().parents[2]  # the repository root, whatever the working directory
DATA_DIR = ROOT / 'dat'
RESULTS_DIR = ROOT / 'res'
LOGS_DIR = ROOT / 'logs'
SRC_DIR = ROOT / 'src'


class UserError(Exception):
    """A problem with the user's input or environment, reported as one line without a traceback."""


def first_line(e: Exception) -> str:
    """What a one-line error quotes of its cause: the first line of e's message, or e's type when it says nothing."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def run_cli(main) -> None:
    """Call a command's main(); a UserError becomes one line on stderr and exit status 2, never a traceback, and an
    Interrupted (or a Ctrl-C outside a run's guard) one line and its exit status."""
    try:
        main()
    except UserError as e:
        print(f'error: {e}', file=sys.stderr)
        sys.exit(2)
    except Interrupted as e:
        print(f'interrupted: {e}', file=sys.stderr)
        sys.exit(e.exit_status)
    except KeyboardInterrupt:
        print('interrupted: SIGINT', file=sys.stderr)
        sys.exit(CTRL_C_EXIT)


class Parser(argparse.ArgumentParser):
    """argparse, with a malformed command line reported as one line (a UserError) instead of the whole usage."""

    def error(self, message: str):
        raise UserError(f'{message} (see --help)')


SEED_MAX = 2**32 - 1  # the largest seed np.random.seed takes (the original seeds numpy's global generator)


def check_seed(value: int) -> int:
    """value, if numpy's generator takes it as a seed; an ArgumentTypeError saying the range otherwise."""
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"a seed must be in [0, 2**32 - 1] (numpy's), got {value}")
    return value


def parse_seed(text: str) -> int:
    """An argparse type: one seed, a whole number in numpy's range."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'must be a whole number, got {text!r}') from None
    return check_seed(value)


MAX_SEEDS = 100_000  # what one --seeds may name (a range of billions would fill the memory before anything ran)


def parse_seeds(text: str) -> list[int]:
    """An argparse type: '0-4,7' -> [0, 1, 2, 3, 4, 7] (ranges include both ends, as the original's); a malformed or
    empty range, or a seed outside numpy's range, is refused when the flags are parsed."""
    seeds = []
    for part in text.split(','):
        first, _, last = part.partition('-')
        try:
            low, high = int(first), int(last or first)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}': use numbers and ranges, e.g. 0-9 or 0,3,5-7") from None
        check_seed(low)
        check_seed(high)
        if high < low:
            raise argparse.ArgumentTypeError(f"'{text}': the range {part} holds no seed (write it {high}-{low})")
        if len(seeds) + high - low + 1 > MAX_SEEDS:
            raise argparse.ArgumentTypeError(f"'{text}': more than {MAX_SEEDS} seeds")
        seeds += range(low, high + 1)
    return seeds


def int_at_least(minimum: int):
    """An argparse type: a whole number of at least `minimum` (refused when the flags are parsed, as one line)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f'must be at least {minimum}, got {value}')
        return value
    return parse


########################################################################################################################
# Modules found by name


def module_choices(package: str) -> list[str]:
    """User-facing names of the modules in a package folder (files starting with '_' are helpers, not choices)."""
    names = sorted(p.stem for p in (SRC_DIR / package).glob('*.py') if not p.stem.startswith('_'))
    return [n.replace('_', '-') if package == 'approaches' else n for n in names]


def load_module(package: str, name: str):
    """Import `package.name`; approach names use '-' where the module uses '_' (sgd-restart -> sgd_restart)."""
    if name not in module_choices(package):
        raise UserError(f"unknown {package[:-1]} '{name}'; choose from: {', '.join(module_choices(package))}")
    return importlib.import_module(package + '.' + name.replace('-', '_'))


########################################################################################################################
# Copies of the weights (best epoch, initial weights)


def get_model(model: torch.nn.Module) -> dict:
    """A detached copy of the model's weights."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def set_model_(model: torch.nn.Module, state: dict) -> None:
    """Load a copy made by get_model back into the model."""
    model.load_state_dict(state)


########################################################################################################################
# Devices and seeds


def choose_device(name: str | None) -> torch.device:
    """The device named by the user, or CUDA when present and CPU otherwise (never fails for lack of a GPU)."""
    if name is None:
        if torch.cuda.is_available():
            return torch.device('cuda')
        print('[CUDA unavailable, running on CPU]')
        return torch.device('cpu')
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device '{name}'; use cpu, cuda or cuda:N") from None
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise UserError(f"device '{name}' requested but CUDA is not available; use --device cpu")
    return device


def use_deterministic_kernels() -> None:
    """Deterministic GPU kernels from here on (before CUDA starts: cuBLAS reads its workspace setting then)."""
    os.environ.setdefault('CUBLAS_WORKSPACE_CONFIG', ':4096:8')
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False


def seed_everything(seed: int) -> None:
    """Seed numpy's global generator (epoch shuffles, as the original) and torch's (initialisation, dropout)."""
    np.random.seed(seed)
    torch.manual_seed(seed)


@contextmanager
def random_state_kept():
    """Whatever draws inside, Python's, numpy's and torch's generators (every device's) are as they were after."""
    states = (random.getstate(), np.random.get_state(), torch.get_rng_state(),
              torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None)
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])
        if states[3] is not None:
            torch.cuda.set_rng_state_all(states[3])
