"""MNIST in 2 tasks, digits 0-4 and 5-9 (labelled 0-4 in each task), as the original's mnist2 experiment."""
from pathlib import Path

from dataloaders._common import mnist_normalised, split_valid, taskcla_of

INPUTSIZE = [1, 28, 28]
DEFAULT_NETWORK = 'mlp'
PC_VALID = 0.0  # the original validates on a copy of the training set


def get(data_dir: Path, seed: int = 0, fixed_order: bool = False, pc_valid: float | None = None):
    """The two MNIST tasks (the order is fixed, as in the original; seed only drives a held-out validation split)."""
    mnist = mnist_normalised(data_dir, 'mnist2')
    data = []
    for t, (lo, name) in enumerate([(0, 'mnist-0-4'), (5, 'mnist-5-9')]):
        task = {'name': name, 'ncla': 5}
        for split in ('train', 'test'):
            x, y = mnist[split + '_x'], mnist[split + '_y']
            keep = (y >= lo) & (y < lo + 5)
            task[split] = {'x': x[keep], 'y': y[keep] - lo}
        data.append(task)
    split_valid(data, seed, PC_VALID if pc_valid is None else pc_valid)
    return data, taskcla_of(data), INPUTSIZE
