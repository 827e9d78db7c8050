"""Tiny data sets written in the real on-disk formats (MNIST idx files, CIFAR python pickles), so that the real
loading code runs on them. Each class is a fixed random template plus noise: learnable in a few epochs."""
import hashlib
import pickle
import struct
import zipfile
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


def cifar_checksum_attributes(md5: dict) -> list[tuple[type, str, object]]:
    """(torchvision class, attribute, value) that make torchvision accept the CIFAR files write_cifar wrote: it checks
    every file against the official archives' md5, which tiny files cannot match. The check still runs, against the
    files' own checksums."""
    from torchvision import datasets
    attributes = []
    for name in ('CIFAR10', 'CIFAR100'):
        cls = getattr(datasets, name)
        attributes += [(cls, 'train_list', [[f, md5[name, f]] for f, _ in cls.train_list]),
                       (cls, 'test_list', [[f, md5[name, f]] for f, _ in cls.test_list]),
                       (cls, 'meta', {**cls.meta, 'md5': md5[name, cls.meta['filename']]})]
    return attributes


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


########################################################################################################################
# The mixture's other data sets, in the formats their loaders read


def write_svhn(root: Path, train_per_class: int = 8, test_per_class: int = 3) -> dict:
    """SVHN's train_32x32.mat and test_32x32.mat in root, as the official files: X (32, 32, 3, N) uint8 and y (N, 1)
    with labels 1-10 (10 for the digit 0); returns each split's md5 (torchvision checks them)."""
    from scipy.io import savemat
    md5 = {}
    for split, per_class, seed in (('train', train_per_class, 21), ('test', test_per_class, 22)):
        digits = balanced_labels(10, per_class, seed)
        images = class_images(digits, (3, 32, 32), 23, seed, 10)  # (N, C, H, W)
        path = root / f'{split}_32x32.mat'
        root.mkdir(parents=True, exist_ok=True)
        savemat(path, {'X': images.transpose(2, 3, 1, 0), 'y': np.where(digits == 0, 10, digits)[:, None]
                       .astype(np.uint8)})
        md5[split] = hashlib.md5(path.read_bytes()).hexdigest()
    return md5


def write_gtsrb(root: Path, train_per_class: int = 3, test_per_class: int = 1) -> None:
    """GTSRB as torchvision extracts its archives in root/gtsrb: Training/<class>/<track>_<image>.ppm with a
    GT-<class>.csv each, Final_Test/Images/<image>.ppm and GT-final_test.csv; images of various sizes."""
    from PIL import Image
    base = root / 'gtsrb'
    header = 'Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId\n'

    def save(path, image):
        Image.fromarray(image.transpose(1, 2, 0)).save(path, format='PPM')
        return f'{path.name};{image.shape[2]};{image.shape[1]};1;1;{image.shape[2] - 2};{image.shape[1] - 2}'

    for split, per_class, seed in (('train', train_per_class, 31), ('test', test_per_class, 32)):
        labels = balanced_labels(43, per_class, seed)
        shapes = [(3, 40, 40), (3, 48, 36)]
        images = [class_images(labels, shape, 33, seed, 43) for shape in shapes]
        rows = []
        for i, c in enumerate(labels):
            image = images[i % 2][i]
            if split == 'train':
                folder = base / 'GTSRB' / 'Training' / f'{c:05d}'
                folder.mkdir(parents=True, exist_ok=True)
                row = save(folder / f'00000_{i:05d}.ppm', image)
                with open(folder / f'GT-{c:05d}.csv', 'a') as f:
                    f.write((header if f.tell() == 0 else '') + f'{row};{c}\n')
            else:
                folder = base / 'GTSRB' / 'Final_Test' / 'Images'
                folder.mkdir(parents=True, exist_ok=True)
                rows.append(f"{save(folder / f'{i:05d}.ppm', image)};{c}\n")
        if split == 'test':
            (base / 'GT-final_test.csv').write_text(header + ''.join(rows))


def write_traffic_signs(root: Path, train_per_class: int = 3, test_per_class: int = 1) -> None:
    """The original's traffic-sign pickles, root/traffic_signs/lab 2 data/train.p and test.p: 'features'
    (N, 32, 32, 3) uint8, 'labels', 'sizes' and 'coords', as Udacity's archive holds them."""
    folder = root / 'traffic_signs' / 'lab 2 data'
    folder.mkdir(parents=True, exist_ok=True)
    for split, per_class, seed in (('train', train_per_class, 41), ('test', test_per_class, 42)):
        labels = balanced_labels(43, per_class, seed)
        images = class_images(labels, (3, 32, 32), 43, seed, 43)
        n = len(labels)
        (folder / f'{split}.p').write_bytes(pickle.dumps({
            'features': images.transpose(0, 2, 3, 1), 'labels': labels.astype(np.uint8),
            'sizes': np.full((n, 2), 40), 'coords': np.tile([1, 1, 38, 38], (n, 1))}, protocol=3))


def _write_pickled(folder: Path, names: tuple[str, str], archive: str | None, splits: list) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    blobs = [pickle.dumps({'features': x, 'labels': y}, protocol=4) for x, y in splits]
    if archive is None:
        for name, blob in zip(names, blobs):
            (folder / name).write_bytes(blob)
        return
    with zipfile.ZipFile(folder / archive, 'w') as z:
        for name, blob in zip(names, blobs):
            z.writestr(name, blob)


def write_facescrub(root: Path, train_per_class: int = 2, test_per_class: int = 1, zipped: bool = False) -> None:
    """FaceScrub's pickles root/facescrub/facescrub_{train,test}_100.pkl as their author's script wrote them:
    'features' (N, 3, 32, 32) and 'labels' in int8; or, zipped, only the archive facescrub_100.zip holding them."""
    splits = []
    for per_class, seed in ((train_per_class, 51), (test_per_class, 52)):
        labels = balanced_labels(100, per_class, seed)
        splits.append((class_images(labels, (3, 32, 32), 53, seed, 100).astype(np.int8), labels.astype(np.int8)))
    _write_pickled(root / 'facescrub', ('facescrub_train_100.pkl', 'facescrub_test_100.pkl'),
                   'facescrub_100.zip' if zipped else None, splits)


def write_notmnist(root: Path, train_per_class: int = 8, test_per_class: int = 3, zipped: bool = False) -> None:
    """notMNIST's pickles root/notmnist/notmnist_{train,test}.pkl as their author's script wrote them: 'features'
    (N, 1, 32, 32) and 'labels' in uint8; or, zipped, only the archive notmnist.zip holding them."""
    splits = []
    for per_class, seed in ((train_per_class, 61), (test_per_class, 62)):
        labels = balanced_labels(10, per_class, seed)
        splits.append((class_images(labels, (1, 32, 32), 63, seed, 10), labels.astype(np.uint8)))
    _write_pickled(root / 'notmnist', ('notmnist_train.pkl', 'notmnist_test.pkl'),
                   'notmnist.zip' if zipped else None, splits)


def write_mixture(root: Path, traffic_signs: str = 'pickles') -> dict:
    """The mixture's data sets that write_cifar and write_mnist (MNIST, FashionMNIST) do not write: SVHN, traffic
    signs (the original's 'pickles' or torchvision's 'gtsrb'), FaceScrub, notMNIST; returns SVHN's md5s."""
    (write_traffic_signs if traffic_signs == 'pickles' else write_gtsrb)(root)
    write_facescrub(root)
    write_notmnist(root)
    return write_svhn(root)
