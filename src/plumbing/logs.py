"""What a run reports: the per-epoch JSON-lines log beside the human-readable output, and the console reports of the
model and the optimizer, as the original prints them."""
import json
from pathlib import Path

import torch

# What a run's logs in --logs-dir are named: the name of its results, then these
EPOCH_LOG_SUFFIX = '.jsonl'  # the per-epoch JSON-lines log
MONITOR_SUFFIX = '_masks.pkz'  # hat's monitoring log (--monitor), by default


def human_format(num: float) -> str:
    """1234567 -> '1.2M'."""
    magnitude = 0
    while abs(num) >= 1000 and magnitude < 5:
        magnitude += 1
        num /= 1000.0
    return '%.1f%s' % (num, ['', 'K', 'M', 'G', 'T', 'P'][magnitude])


def duration(seconds: float) -> str:
    """A span of time for people: '42.0 s' below a minute, '1 min 10 s' below an hour, '2 h 05 min' above."""
    if seconds < 59.95:  # what rounds to 60.0 s is a minute
        return f'{seconds:.1f} s'
    if round(seconds) < 3600:
        return f'{round(seconds) // 60} min {round(seconds) % 60} s'
    minutes = round(seconds / 60)
    return f'{minutes // 60} h {minutes % 60:02d} min'


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


class EpochLog:
    """Per-epoch records written as JSON lines (one object per line), beside the human-readable output."""

    def __init__(self, path: Path | None, append: bool = False, marks: dict | None = None):
        """marks: what every record says besides its own fields (a dry run's dry_run: true)."""
        self.path = path
        self.marks = marks or {}
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
            self._file.write(json.dumps({**record, **self.marks}) + '\n')

    def close(self) -> None:
        """Close the file."""
        if self._file is not None:
            self._file.close()
