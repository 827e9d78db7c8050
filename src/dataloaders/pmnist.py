"""Permuted MNIST: 10 tasks, each MNIST with its pixels shuffled by a fixed permutation, in a seed-shuffled order.

As in the original, permutation number r (r = 0..9) is sklearn.utils.shuffle(pixels, random_state=r*100+i) where i
is the task position at which r was first built. The original cached permuted data per r, so its permutations
depended on the seed of whichever run built the cache; we fix them to those a seed-0 run builds (the original's
behaviour on a fresh cache for seed 0, and for every seed of a sweep started at seed 0). See docs/approaches.md,
deviations.
"""
from pathlib import Path

import numpy as np
import torch

from dataloaders._common import mnist_normalised, permutation, split_valid, task_order, taskcla_of

INPUTSIZE = [1, 28, 28]
DEFAULT_NETWORK = 'mlp'
PC_VALID = 0.0  # the original validates on a copy of the training set
NTASKS = 10


def pixel_permutation(r: int) -> np.ndarray:
    """The pixel permutation of permutation number r."""
    position_in_seed0_order = task_order(NTASKS, 0, fixed_order=False).index(r)
    return permutation(int(np.prod(INPUTSIZE)), r * 100 + position_in_seed0_order)


def get(data_dir: Path, seed: int = 0, fixed_order: bool = False, pc_valid: float | None = None):
    """Ten permuted-MNIST tasks of 10 classes, ordered by the seed."""
    mnist = mnist_normalised(data_dir, 'pmnist')
    data = []
    for i, r in enumerate(task_order(NTASKS, seed, fixed_order)):
        perm = torch.from_numpy(pixel_permutation(r))
        task = {'name': f'pmnist-{i}', 'ncla': 10}
        for split in ('train', 'test'):
            x = mnist[split + '_x']
            task[split] = {'x': x.flatten(1)[:, perm].view(x.shape),  # (N, 784) -> pixels permuted -> (N, 1, 28, 28)
                           'y': mnist[split + '_y'].clone()}
        data.append(task)
    split_valid(data, seed, PC_VALID if pc_valid is None else pc_valid)
    return data, taskcla_of(data), INPUTSIZE
