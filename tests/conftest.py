"""Shared fixtures: src/ on the import path, and a data folder with tiny versions of every data set in their real
formats (MNIST, CIFAR, the mixture's, Tiny ImageNet).

The whole suite: python -m pytest -q tests
The fast subset, for the edit-and-test loop (every test module, without the tests marked slow):
    python -m pytest -q -m "not slow" tests
"""
import os
import sys
from pathlib import Path

import pytest

# A pytest-xdist worker (pytest.ini starts one per core) keeps to one thread in numpy's OpenBLAS too (torch's:
# pytest_configure), read when numpy loads: two workers' BLAS threads on the same cores wait for one another (gpm's
# SVDs took 6 times as long)
if os.environ.get('PYTEST_XDIST_WORKER'):
    os.environ['OPENBLAS_NUM_THREADS'] = '1'

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / 'src'))
sys.path.insert(0, str(ROOT / 'tests'))

import fixtures  # noqa: E402


def pytest_xdist_auto_num_workers(config):
    """-n auto (pytest.ini): a worker per core this process may use, at most 8 (each holds about 1 GB: torch and the
    tiny data sets)."""
    return max(1, min(8, len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count() or 1))


def pytest_configure(config):
    """One CPU thread per pytest-xdist worker (pytest.ini starts one per core): OpenMP's threads of two workers on
    the same cores wait for one another (tests/test_modern_networks.py measured training 10 to 20 times as long on a
    busy machine). Run alone (-n 0), torch keeps its threads."""
    if os.environ.get('PYTEST_XDIST_WORKER'):
        import torch
        torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _same_draws_in_every_worker():
    """Every test starts from the same random state (torch's, numpy's and Python's), whichever pytest-xdist worker runs
    it and whatever ran before it there: a test's random tensors are the same on every run."""
    import random

    import numpy as np
    import torch
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


def register_cifar_checksums(mp: pytest.MonkeyPatch, md5: dict) -> None:
    """Make torchvision accept the fixture's CIFAR files (fixtures.cifar_checksum_attributes)."""
    for cls, attribute, value in fixtures.cifar_checksum_attributes(md5):
        mp.setattr(cls, attribute, value)


def register_svhn_checksums(mp: pytest.MonkeyPatch, md5: dict) -> None:
    """Make torchvision accept the fixture's SVHN files (it checks them against the official md5, as CIFAR's)."""
    from torchvision import datasets
    mp.setattr(datasets.SVHN, 'split_list', {split: [url, name, md5.get(split, checksum)]
                                             for split, (url, name, checksum) in datasets.SVHN.split_list.items()})


@pytest.fixture(scope='session')
def data_dir(tmp_path_factory) -> Path:
    """A data folder shared by the tests that only read it (its caches are built once)."""
    root = tmp_path_factory.mktemp('dat')
    fixtures.write_mnist(root)
    fixtures.write_mnist(root, folder='FashionMNIST')
    md5 = fixtures.write_cifar(root)
    svhn_md5 = fixtures.write_mixture(root)
    fixtures.write_tinyimagenet(root, train_per_class=10)
    with pytest.MonkeyPatch.context() as mp:
        register_cifar_checksums(mp, md5)
        register_svhn_checksums(mp, svhn_md5)
        yield root


@pytest.fixture(scope='session')
def small_mnist(tmp_path_factory) -> Path:
    """MNIST with 10 training and 4 test images per class (a split_mnist task: 18 training, 2 validation, 8 test
    images), for whole runs whose point is their mechanics (resume, signals, sweeps), not what they learn."""
    root = tmp_path_factory.mktemp('small_mnist')
    fixtures.write_mnist(root, train_per_class=10, test_per_class=4)
    return root


@pytest.fixture(scope='module')
def small_cifar(tmp_path_factory, data_dir) -> Path:
    """CIFAR with 18 or 36 training images per task, for quick runs (after data_dir, whose checksums it overrides
    for the module's duration and then gives back)."""
    root = tmp_path_factory.mktemp('small')
    md5 = fixtures.write_cifar(root, train_per_class=(10, 2), test_per_class=(3, 1))
    with pytest.MonkeyPatch.context() as mp:
        register_cifar_checksums(mp, md5)
        yield root


@pytest.fixture
def fresh_data_dir(tmp_path, data_dir) -> Path:
    """A data folder of one's own (for tests that modify or break it), with the same tiny data sets."""
    root = tmp_path / 'dat'
    fixtures.write_mnist(root)
    md5 = fixtures.write_cifar(root)
    with pytest.MonkeyPatch.context() as mp:
        register_cifar_checksums(mp, md5)
        yield root
