"""Split Fashion-MNIST: 5 tasks of 2 classes (0-1, 2-3, ..., 8-9), in a seed-shuffled order (not in the paper; the
same conventions as split_mnist). Normalised by Fashion-MNIST's training-set mean 0.2860 and std 0.3530."""
from pathlib import Path

from dataloaders._common import mnist_normalised, split_in_pairs, taskcla_of

INPUTSIZE = [1, 28, 28]
DEFAULT_NETWORK = 'mlp'
PC_VALID = 0.1  # held out from each task's training set, seeded, as cifar's
MEAN, STD = (0.2860,), (0.3530,)


def get(data_dir: Path, seed: int = 0, fixed_order: bool = False, pc_valid: float | None = None):
    """Five two-class Fashion-MNIST tasks."""
    tensors = mnist_normalised(data_dir, 'split_fmnist', MEAN, STD, source='FashionMNIST')
    data = split_in_pairs(tensors, 'fmnist', seed, fixed_order, PC_VALID if pc_valid is None else pc_valid)
    return data, taskcla_of(data), INPUTSIZE
