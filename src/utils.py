"""Helpers shared by run.py, the data loaders, the networks and the approaches."""
import argparse
import contextlib
import fcntl
import importlib
import json
import os
import pickle
import signal
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent  # the repository root, whatever the working directory
DATA_DIR = ROOT / 'dat'
RESULTS_DIR = ROOT / 'res'
LOGS_DIR = ROOT / 'logs'
SRC_DIR = ROOT / 'src'


INTERRUPTED_EXIT = 3  # exit status of a run stopped by SIGTERM/SIGUSR1 after saving: --resume continues it


class UserError(Exception):
    """A problem with the user's input or environment, reported as one line without a traceback."""


def first_line(e: Exception) -> str:
    """What a one-line error quotes of its cause: the first line of e's message, or e's type when it says nothing."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


class Interrupted(Exception):
    """SIGTERM or SIGUSR1 arrived (Slurm's time-limit and preemption signals); what was finished is saved."""


def run_cli(main) -> None:
    """Call a command's main(); a UserError becomes one line on stderr and exit status 2, never a traceback, and an
    Interrupted one line and exit status INTERRUPTED_EXIT."""
    try:
        main()
    except UserError as e:
        print(f'error: {e}', file=sys.stderr)
        sys.exit(2)
    except Interrupted as e:
        print(f'interrupted: {e}', file=sys.stderr)
        sys.exit(INTERRUPTED_EXIT)


class SignalGuard:
    """Within `with`, SIGTERM and SIGUSR1 raise Interrupted, except inside hold(), which delays them to its end so
    that a checkpoint or a result being written is never cut in half."""

    SIGNALS = (signal.SIGTERM, signal.SIGUSR1)

    def __init__(self):
        self.pending = None
        self.holding = 0
        self.previous = {}

    def __enter__(self):
        with contextlib.suppress(ValueError):  # signal handlers can only be set from the main thread
            self.previous = {s: signal.signal(s, self._handler) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self.previous.items():
            signal.signal(s, handler)

    def _handler(self, signum, frame) -> None:
        name = signal.Signals(signum).name
        if self.holding:
            self.pending = name
        else:
            raise Interrupted(name)

    @contextlib.contextmanager
    def hold(self):
        """Delay the signals' effect to the end of the block."""
        self.holding += 1
        try:
            yield
        finally:
            self.holding -= 1
        if not self.holding and self.pending:
            name, self.pending = self.pending, None
            raise Interrupted(name)


class Parser(argparse.ArgumentParser):
    """argparse, with a malformed command line reported as one line (a UserError) instead of the whole usage."""

    def error(self, message: str):
        raise UserError(f'{message} (see --help)')


def parse_seeds(text: str) -> list[int]:
    """An argparse type: '0-4,7' -> [0, 1, 2, 3, 4, 7] (ranges include both ends, as the original's); a malformed or
    empty range is refused when the flags are parsed."""
    seeds = []
    for part in text.split(','):
        first, _, last = part.partition('-')
        try:
            low, high = int(first), int(last or first)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}': use numbers and ranges, e.g. 0-9 or 0,3,5-7") from None
        if high < low:
            raise argparse.ArgumentTypeError(f"'{text}': the range {part} holds no seed (write it {high}-{low})")
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
# Reports, as the original prints them


def human_format(num: float) -> str:
    """1234567 -> '1.2M'."""
    magnitude = 0
    while abs(num) >= 1000 and magnitude < 5:
        magnitude += 1
        num /= 1000.0
    return '%.1f%s' % (num, ['', 'K', 'M', 'G', 'T', 'P'][magnitude])


def print_model_report(model: torch.nn.Module) -> int:
    """Print the model, its parameter shapes and count; return the count."""
    print('-' * 100)
    print(model)
    print('Dimensions =', ' '.join(str(tuple(p.shape)) for p in model.parameters()))
    count = sum(p.numel() for p in model.parameters())
    print('Num parameters = %s' % human_format(count))
    print('-' * 100)
    return count


def print_optimizer_config(optimizer) -> None:
    """Print the optimizer and its hyperparameters (or None for approaches without one)."""
    if optimizer is None:
        print(None)
        return
    group = optimizer.param_groups[0]
    settings = ', '.join(f'{k}: {v}' for k, v in group.items() if not k.startswith('param'))
    print(f'{type(optimizer).__name__} = {settings}')


########################################################################################################################
# Networks


def compute_conv_output_size(size: int, kernel_size: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """Spatial output size of a convolution."""
    return (size + 2 * padding - dilation * (kernel_size - 1) - 1) // stride + 1


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


########################################################################################################################
# Files


def atomic_write(path: Path, write) -> None:
    """Call write(file_object) on a temporary file beside `path`, then rename it over `path`."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix='.' + path.name + '.', suffix='.tmp')
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; results are shared as any file the user writes
        with os.fdopen(fd, 'wb') as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def save_pickle(path: Path, obj) -> None:
    """Pickle `obj` to `path` atomically."""
    atomic_write(path, lambda f: pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL))


def save_txt_matrix(path: Path, matrix: np.ndarray) -> None:
    """np.savetxt(path, matrix, '%.4f'), the original's result format, atomically."""
    atomic_write(path, lambda f: np.savetxt(f, matrix, '%.4f'))


def ensure_writable_dir(folder: Path, what: str) -> None:
    """Create `folder` if needed and check that files can be written there."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise UserError(f'cannot write {what} to {folder}: {e.strerror or e}') from None


def load_results(path: Path) -> dict | None:
    """The results a run saved in its .pkl (None if there is none or it is unreadable)."""
    try:
        with open(Path(path).with_suffix('.pkl'), 'rb') as f:
            return pickle.load(f)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError):
        return None


def is_complete(results: dict | None) -> bool:
    """Whether saved results cover every task of their run."""
    return results is not None and results.get('tasks_done') == len(results.get('taskcla', ())) > 0


class OutputLock:
    """An exclusive lock on a results file for the life of a run, so that two runs never write the same results: a
    hidden .<name>.lock beside it, removed at the end (and released by the kernel however the process ends)."""

    def __init__(self, output: Path):
        self.path = Path(output).parent / f'.{Path(output).name}.lock'
        self.output = output
        self._fd = None

    def acquire(self) -> bool:
        """Take the lock; False if another process holds it."""
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            try:  # the holder before us may have removed the file between our open and our lock: then retry
                if os.stat(self.path).st_ino == os.fstat(fd).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f'{os.getpid()}\n'.encode())
        self._fd = fd
        return True

    def release(self) -> None:
        """Remove the lock file, then let go (in this order, so that nobody locks a file that is going away)."""
        self.path.unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = None

    def __enter__(self):
        if not self.acquire():
            try:
                holder = f' (pid {self.path.read_text().strip()})'
            except OSError:
                holder = ''
            raise UserError(f'{self.output} is being written by another run{holder}')
        return self

    def __exit__(self, *exc) -> None:
        self.release()


class EpochLog:
    """Per-epoch records written as JSON lines (one object per line), beside the human-readable output."""

    def __init__(self, path: Path | None, append: bool = False):
        self.path = path
        self._file = None if path is None else open(path, 'a' if append else 'w', buffering=1)

    def size(self) -> int:
        """Bytes written so far."""
        return 0 if self._file is None else self._file.tell()

    def truncate(self, size: int) -> None:
        """Drop what was written after the first `size` bytes (the epochs of a task that a resumed run redoes)."""
        if self._file is not None:
            self._file.truncate(size)

    def write(self, **record) -> None:
        """Append one record."""
        if self._file is not None:
            self._file.write(json.dumps(record) + '\n')

    def close(self) -> None:
        """Close the file."""
        if self._file is not None:
            self._file.close()
