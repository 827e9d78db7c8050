"""Tiny data sets written in the real on-disk formats (MNIST idx files, CIFAR python pickles), so that the real
loading code runs on them. Each class is a fixed random template plus noise: learnable in a few epochs."""
import hashlib
import pickle
import struct
from pathlib import Path

import numpy as np


def class_images(labels: np.ndarray, shape: tuple, template_seed: int, noise_seed: int, nclasses: int,
                 noise: int = 40) -> np.ndarray:
    """uint8 images of `shape` (C, H, W) per label: the label's template (shared by train and test) plus noise.
    A template is a random 4x4 grid of grey levels or colours, blown up to H x W: easy for an MLP and a CNN."""
    ncha, height, width = shape
    grid = np.random.RandomState(template_seed).randint(0, 256, size=(nclasses, ncha, 4, 4))
    templates = grid.repeat(height // 4, axis=2).repeat(width // 4, axis=3)
    rng = np.random.RandomState(noise_seed)
    noisy = templates[labels] + rng.randint(-noise, noise + 1, size=(len(labels),) + shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def balanced_labels(nclasses: int, per_class: int, seed: int) -> np.ndarray:
    """Every class per_class times, in a shuffled order."""
    return np.random.RandomState(seed).permutation(np.repeat(np.arange(nclasses), per_class))


def write_idx(path: Path, array: np.ndarray) -> None:
    """An idx file (big-endian header: magic 0x0000080N for N dimensions of unsigned bytes, then the sizes)."""
    header = struct.pack('>I', 0x800 + array.ndim) + struct.pack('>' + 'I' * array.ndim, *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def write_mnist(root: Path, train_per_class: int = 40, test_per_class: int = 10, folder: str = 'MNIST') -> None:
    """MNIST's four decompressed idx files in root/<folder>/raw, where torchvision looks for them (the folder is
    the torchvision class name: MNIST, or FashionMNIST for the same format)."""
    raw = root / folder / 'raw'
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, per_class, seed in (('train', train_per_class, 1), ('t10k', test_per_class, 2)):
        labels = balanced_labels(10, per_class, seed)
        write_idx(raw / f'{prefix}-images-idx3-ubyte', class_images(labels, (1, 28, 28), 7, seed, 10)[:, 0])
        write_idx(raw / f'{prefix}-labels-idx1-ubyte', labels)


def _pickle(path: Path, obj: dict) -> str:
    path.write_bytes(pickle.dumps(obj, protocol=2))
    return hashlib.md5(path.read_bytes()).hexdigest()


def write_cifar(root: Path, train_per_class: tuple[int, int] = (40, 5),
                test_per_class: tuple[int, int] = (10, 3)) -> dict:
    """CIFAR-10 and CIFAR-100 python pickles as the official archives extract them; returns each file's md5 by
    (torchvision class name, file name), since torchvision verifies every file against the official checksums."""
    md5 = {}
    c10 = root / 'cifar-10-batches-py'
    c100 = root / 'cifar-100-python'
    c10.mkdir(parents=True, exist_ok=True)
    c100.mkdir(parents=True, exist_ok=True)

    def rows(labels, template_seed, noise_seed, nclasses):
        return class_images(labels, (3, 32, 32), template_seed, noise_seed, nclasses).reshape(len(labels), -1)

    labels = balanced_labels(10, train_per_class[0], 3)
    images = rows(labels, 11, 3, 10)
    for k, part in enumerate(np.array_split(np.arange(len(labels)), 5)):
        md5['CIFAR10', f'data_batch_{k + 1}'] = _pickle(c10 / f'data_batch_{k + 1}', {
            'batch_label': f'training batch {k + 1} of 5', 'labels': labels[part].tolist(), 'data': images[part],
            'filenames': [f'{i}.png' for i in part]})
    labels = balanced_labels(10, test_per_class[0], 4)
    md5['CIFAR10', 'test_batch'] = _pickle(c10 / 'test_batch', {
        'batch_label': 'testing batch 1 of 1', 'labels': labels.tolist(), 'data': rows(labels, 11, 4, 10),
        'filenames': [f'{i}.png' for i in range(len(labels))]})
    md5['CIFAR10', 'batches.meta'] = _pickle(c10 / 'batches.meta', {
        'label_names': [f'class{i}' for i in range(10)], 'num_cases_per_batch': 10000, 'num_vis': 3072})

    for split, per_class, seed in (('train', train_per_class[1], 5), ('test', test_per_class[1], 6)):
        labels = balanced_labels(100, per_class, seed)
        md5['CIFAR100', split] = _pickle(c100 / split, {
            'batch_label': split, 'fine_labels': labels.tolist(), 'coarse_labels': (labels // 5).tolist(),
            'data': rows(labels, 12, seed, 100), 'filenames': [f'{i}.png' for i in range(len(labels))]})
    md5['CIFAR100', 'meta'] = _pickle(c100 / 'meta', {
        'fine_label_names': [f'fine{i}' for i in range(100)], 'coarse_label_names': [f'coarse{i}' for i in range(20)]})
    return md5
