"""Split MNIST: 5 tasks of 2 digits (0-1, 2-3, ..., 8-9), in a seed-shuffled order; the standard task-incremental
benchmark of the follow-up literature (not in the paper). Normalised as the original's MNIST experiments."""
from pathlib import Path

from dataloaders._common import mnist_normalised, split_in_pairs, taskcla_of

INPUTSIZE = [1, 28, 28]
DEFAULT_NETWORK = 'mlp'
PC_VALID = 0.1  # held out from each task's training set, seeded, as cifar's


def get(data_dir: Path, seed: int = 0, fixed_order: bool = False, pc_valid: float | None = None):
    """Five two-digit MNIST tasks."""
    data = split_in_pairs(mnist_normalised(data_dir, 'split_mnist'), 'mnist', seed, fixed_order,
                          PC_VALID if pc_valid is None else pc_valid)
    return data, taskcla_of(data), INPUTSIZE
