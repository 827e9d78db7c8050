"""What the tests share. Tiny data sets written in the real on-disk formats (MNIST idx files, CIFAR python pickles),
so that the real loading code runs on them: each class is a fixed random template plus noise, learnable in a few
epochs. Below them, in-memory tasks, approaches built for the tests, and run.py called in-process or as a command."""
import dataclasses
import hashlib
import os
import pickle
import struct
import subprocess
import sys
import zipfile
from pathlib import Path
from unittest import mock

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent


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


def write_tinyimagenet(root: Path, nclasses: int = 20, train_per_class: int = 3, val_per_class: int = 2) -> list[str]:
    """Tiny ImageNet as tiny-imagenet-200.zip extracts it in root: wnids.txt (not in sorted order, as the real one),
    words.txt, train/<wnid>/images/<wnid>_<i>.JPEG with <wnid>_boxes.txt, val/images/val_<i>.JPEG (classes mixed)
    with val/val_annotations.txt, unlabelled test/images/; 64x64 JPEGs, each class's first training image grey (as
    some real ones are). Returns the wnids in the file's order."""
    from PIL import Image
    base = root / 'tiny-imagenet-200'
    wnids = [f'n{n:08d}' for n in 1440000 + 7919 * np.random.RandomState(71).permutation(nclasses)]
    for sub in ('val/images', 'test/images'):
        (base / sub).mkdir(parents=True, exist_ok=True)
    (base / 'wnids.txt').write_text(''.join(f'{w}\n' for w in wnids))
    (base / 'words.txt').write_text(''.join(f'{w}\tclass {c}\n' for c, w in enumerate(wnids)))
    labels = balanced_labels(nclasses, train_per_class, 72)
    images = class_images(labels, (3, 64, 64), 73, 72, nclasses).transpose(0, 2, 3, 1)  # (N, H, W, C)
    for c, wnid in enumerate(wnids):
        folder = base / 'train' / wnid / 'images'
        folder.mkdir(parents=True, exist_ok=True)
        for i, image in enumerate(images[labels == c]):
            Image.fromarray(image).convert('L' if i == 0 else 'RGB').save(folder / f'{wnid}_{i}.JPEG', quality=90)
        (base / 'train' / wnid / f'{wnid}_boxes.txt').write_text(
            ''.join(f'{wnid}_{i}.JPEG\t0\t0\t63\t63\n' for i in range(train_per_class)))
    labels = balanced_labels(nclasses, val_per_class, 74)
    for i, (image, c) in enumerate(zip(class_images(labels, (3, 64, 64), 73, 74, nclasses), labels)):
        Image.fromarray(image.transpose(1, 2, 0)).save(base / 'val' / 'images' / f'val_{i}.JPEG', quality=90)
    (base / 'val' / 'val_annotations.txt').write_text(
        ''.join(f'val_{i}.JPEG\t{wnids[c]}\t0\t0\t63\t63\n' for i, c in enumerate(labels)))
    Image.fromarray(images[0]).save(base / 'test' / 'images' / 'test_0.JPEG')
    return wnids


########################################################################################################################
# In-memory tasks, approaches and runs


CIFAR_TASKCLA = [(t, 2) for t in range(5)] + [(t, 20) for t in range(5, 10)]  # the cifar experiment's taskcla


def make_tasks(shape: tuple, ntasks: int, n: int = 32, ncla: int = 3, seed: int = 0) -> list[dict]:
    """ntasks random ncla-class tasks of n inputs of `shape`, learnable by memorisation (train = valid = test)."""
    g = torch.Generator().manual_seed(seed)
    tasks = []
    for t in range(ntasks):
        x = torch.randn(n, *shape, generator=g)
        y = torch.randint(0, ncla, (n,), generator=g)
        tasks.append({'name': f't{t}', 'ncla': ncla, 'train': {'x': x, 'y': y}, 'valid': {'x': x, 'y': y},
                      'test': {'x': x, 'y': y}})
    return tasks


def two_task_data(seed: int = 0, n: int = 96) -> list[dict]:
    """Two random 3-class tasks on MNIST-shaped inputs, learnable by memorisation."""
    return make_tasks((1, 28, 28), 2, n=n, seed=seed)


def make_appr(appr_cls: type, net, **settings):
    """appr_cls on net as a test wants it: the paper's hyperparameters, a short loop (1 epoch, batch 8, lr 0.05) on
    the CPU; each setting goes to the approach's Hyper, the Loop or the Context, by its name."""
    from approaches._base import Context, Loop
    settings = {'nepochs': 1, 'batch_size': 8, 'lr': 0.05, **settings}
    parts = {}
    for cls in (appr_cls.Hyper, Loop, Context):
        names = {f.name for f in dataclasses.fields(cls)}
        parts[cls] = cls(**{k: settings.pop(k) for k in list(settings) if k in names})
    if settings:
        raise TypeError(f'no such setting of {appr_cls.__module__}: {", ".join(settings)}')
    return appr_cls(net, parts[appr_cls.Hyper], parts[Loop], parts[Context])


# Accuracy matrices with metrics computed by hand (metrics.py, plot_results.py)

T_975_4DOF = 2.7764451051977943  # Student-t 0.975 quantile, 4 degrees of freedom (5 seeds), to 16 digits

# A 3-task experiment, in the original's format (row t: after task t; column u: tested on u; zeros above)
RANDOM = [[0.5, 0, 0], [0.3, 0.2, 0], [0.1, 0.1, 0.25]]  # only its diagonal (0.5, 0.2, 0.25) is a reference
JOINT = [[0.9, 0, 0], [0.9, 0.7, 0], [0.8, 0.6, 0.75]]
HAT = [[0.9, 0, 0], [0.95, 0.7, 0], [0.6, 0.45, 0.5]]
# rho = (A - random's diagonal) / (joint - random's diagonal) - 1, entry by entry, for HAT:
#   [0,0] (0.9 - 0.5) / (0.9 - 0.5) - 1 = 0
#   [1,0] (0.95 - 0.5) / (0.9 - 0.5) - 1 = 1.125 - 1 = 0.125     [1,1] (0.7 - 0.2) / (0.7 - 0.2) - 1 = 0
#   [2,0] (0.6 - 0.5) / (0.8 - 0.5) - 1 = -2/3     [2,1] (0.45 - 0.2) / (0.6 - 0.2) - 1 = 0.625 - 1 = -0.375
#   [2,2] (0.5 - 0.25) / (0.75 - 0.25) - 1 = -0.5
HAT_RHO = [[0, np.nan, np.nan], [0.125, 0, np.nan], [-2 / 3, -0.375, -0.5]]
# averaged over the tasks seen: 1 task 0; 2 tasks (0.125 + 0) / 2; 3 tasks (-2/3 - 3/8 - 1/2) / 3 = -37/72
HAT_CURVE = [0, 0.0625, -37 / 72]


# Fisher diagonals by hand (EWC, IMM-mode)


class TinyConvBN(torch.nn.Module):
    """The kinds of layer the real networks have, small enough to check by hand, on (C, 6, 6) inputs: conv (3x3,
    stride 2, padding 1) -> batch norm -> ReLU -> fc -> batch norm -> ReLU -> one head per task, no bias but the
    heads' (wsn's and supsup's forms of it in their tests)."""

    def __init__(self, inputsize, taskcla):
        super().__init__()
        self.taskcla = taskcla
        self.conv = torch.nn.Conv2d(inputsize[0], 4, 3, stride=2, padding=1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(4)
        self.fc = torch.nn.Linear(4 * 3 * 3, 8, bias=False)
        self.bn2 = torch.nn.BatchNorm1d(8)
        self.last = torch.nn.ModuleList(torch.nn.Linear(8, n) for _, n in taskcla)

    def forward(self, x):
        h = torch.relu(self.bn1(self.conv(x))).flatten(1)  # (B, 36)
        h = torch.relu(self.bn2(self.fc(h)))
        return [head(h) for head in self.last]


class LinearNet(torch.nn.Module):
    """Linear heads on the flattened input, with given (weight, bias) each: small enough to differentiate by hand."""

    def __init__(self, *heads: tuple[np.ndarray, np.ndarray]):
        super().__init__()
        self.last = torch.nn.ModuleList(torch.nn.Linear(w.shape[1], w.shape[0]) for w, _ in heads)
        self.set_heads(*heads)

    @torch.no_grad()
    def set_heads(self, *heads: tuple[np.ndarray, np.ndarray]) -> None:
        """Copy the given weights into the heads."""
        for layer, (weight, bias) in zip(self.last, heads):
            layer.weight.copy_(torch.from_numpy(weight))
            layer.bias.copy_(torch.from_numpy(bias))

    def forward(self, x):
        return [layer(x.flatten(1)) for layer in self.last]


def linear_problem(seed=0, n=25, nin=4, ncla=3):
    """Known weights and a set of n samples (n = 25: a full Fisher batch of 20 and a last one of 5)."""
    rng = np.random.RandomState(seed)
    weight, bias = rng.randn(ncla, nin).astype(np.float32), rng.randn(ncla).astype(np.float32)
    x, y = rng.randn(n, nin).astype(np.float32), rng.randint(0, ncla, n)
    return weight, bias, x, y


def hand_fisher(weight, bias, x, y, l2=0.0, old=None):
    """The original's Fisher diagonal of a linear softmax classifier, in float64 with numpy: batches of 20 in order,
    sum of 20 * (gradient of the batch-mean cross-entropy [+ l2 * sum (theta - old)^2 / 2])^2, divided by n."""
    weight, bias, x = weight.astype(np.float64), bias.astype(np.float64), x.astype(np.float64)
    fw, fb = np.zeros_like(weight), np.zeros_like(bias)
    for i in range(0, len(x), 20):
        xb, yb = x[i:i + 20], y[i:i + 20]
        z = xb @ weight.T + bias
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        d = (p - np.eye(weight.shape[0])[yb]) / len(xb)  # d(mean CE)/d logits
        gw, gb = d.T @ xb, d.sum(0)
        if old is not None:
            gw, gb = gw + l2 * (weight - old[0]), gb + l2 * (bias - old[1])
        fw += 20 * gw ** 2
        fb += 20 * gb ** 2
    return fw / len(x), fb / len(x)


def task_data(x: np.ndarray, y: np.ndarray) -> dict:
    """One task in run.py's format (only the training set is used here)."""
    split = {'x': torch.from_numpy(x), 'y': torch.from_numpy(y)}
    return {'train': split, 'valid': split, 'test': split}


def placeholder_data(ntasks: int = 3) -> list[dict]:
    """Tasks of one blank sample, for tests that replace the Fisher by given values."""
    return [task_data(np.zeros((1, 1, 28, 28), np.float32), np.zeros(1, np.int64))] * ntasks


def small_mlp(ntasks: int = 2) -> torch.nn.Module:
    """A 1 x 16 MLP on MNIST-shaped inputs, 3-class heads."""
    from networks import mlp
    return mlp.Net([1, 28, 28], [(t, 3) for t in range(ntasks)], nlayers=1, nhid=16)


def parameter_shapes(net: torch.nn.Module) -> dict[str, tuple]:
    """Parameter name -> shape."""
    return {name: tuple(p.shape) for name, p in net.named_parameters()}


def draws(module, forward) -> tuple[str, list[float]]:
    """On one thread: the digest of module.Net's parameters from torch.manual_seed(0) (each one's bytes, sorted, so
    that the order of registration does not count), then forward(net, x) in training mode from torch.manual_seed(2),
    x being 8 CIFAR-shaped images from torch.manual_seed(1): the figures measured on the original's network."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        net = module.Net([3, 32, 32], CIFAR_TASKCLA)
        digests = sorted(hashlib.sha256(p.detach().numpy().tobytes()).hexdigest() for p in net.parameters())
        torch.manual_seed(1)
        x = torch.randn(8, 3, 32, 32)
        net.train()
        torch.manual_seed(2)
        logits = forward(net, x).detach().flatten().tolist()
    finally:
        torch.set_num_threads(threads)
    return hashlib.sha256(''.join(digests).encode()).hexdigest(), logits


def run_main(data_dir: Path, tmp_path: Path, *argv: str) -> dict:
    """run.main in-process on the CPU, with data from data_dir and results and logs under tmp_path."""
    import run
    return run.main(['--data-dir', str(data_dir), '--results-dir', str(tmp_path / 'res'),
                     '--logs-dir', str(tmp_path / 'logs'), '--device', 'cpu', *argv])


# cifar runs that train more than one epoch (so model selection and the lr schedule act), with odd last batches: on
# conftest's small_cifar, 18 or 36 training images per task
SMALL_CIFAR_ARGV = ['--experiment', 'cifar', '--nepochs', '2', '--batch-size', '8', '--lr', '0.1', '--lr-patience', '1']


def first_tasks(get, ntasks: int):
    """An experiment's get() giving its first ntasks tasks."""
    def first_tasks_get(*args, **kwargs):
        data, taskcla, inputsize = get(*args, **kwargs)
        return data[:ntasks], taskcla[:ntasks], inputsize
    return first_tasks_get


def run_small_cifar(data_dir: Path, tmp_path: Path, approach: str, *extra: str, device: str = 'cpu',
                    ntasks: int | None = None) -> dict:
    """run.main of approach on small_cifar with SMALL_CIFAR_ARGV, on its first ntasks tasks if given (seed 0's first
    three: CIFAR-10's 2 classes, CIFAR-100's 20, CIFAR-10's 2)."""
    import run
    from dataloaders import cifar
    get = first_tasks(cifar.get, ntasks) if ntasks else cifar.get
    with mock.patch.object(cifar, 'get', get):
        return run.main(['--data-dir', str(data_dir), '--results-dir', str(tmp_path / 'res'), '--logs-dir',
                         str(tmp_path / 'logs'), '--device', device, '--approach', approach, *SMALL_CIFAR_ARGV,
                         *extra])


def cli(*argv: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """run.py as a command."""
    return subprocess.run([sys.executable, str(ROOT / 'src' / 'run.py'), *argv], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})


def in_process(main, argv: list[str], capsys) -> subprocess.CompletedProcess:
    """A command's main(argv) called in this process as its script calls it (through utils.run_cli, so that an error
    is one line and an exit status), its output taken from capsys: what `cli` returns, without an interpreter's
    start. For run_multi, whose script exits with what main returns, pass lambda a: sys.exit(run_multi.main(a))."""
    from plumbing import utils
    capsys.readouterr()
    try:
        utils.run_cli(lambda: main(list(argv)))
        status = 0
    except SystemExit as e:
        status = e.code if isinstance(e.code, int) else int(e.code is not None)
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(list(argv), status, out, err)


def assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    """The command failed with exit status 2 and one 'error:' line holding every fragment, no traceback."""
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert 'Traceback' not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: '), proc.stderr
    for fragment in fragments:
        assert fragment in lines[0]


# Proxies that refuse every connection: downloads fail at once, as without internet
OFFLINE = {'http_proxy': 'http://127.0.0.1:9', 'https_proxy': 'http://127.0.0.1:9',
           'HTTP_PROXY': 'http://127.0.0.1:9', 'HTTPS_PROXY': 'http://127.0.0.1:9', 'no_proxy': '', 'NO_PROXY': ''}


def write_result(output: Path, acc, tasks_done: int | None = None, dry_run: bool = False, **args) -> dict:
    """Results as run.py saves them (the .txt and the .pkl beside it), for a matrix given by hand: args are the
    saved arguments besides experiment, approach and seed (taken from the name <experiment>_<approach>_<seed>.txt
    where it has that form)."""
    from analysis import results
    acc = np.asarray(acc, dtype=np.float32)
    parts = Path(output).stem.split('_')
    named = ({'experiment': '_'.join(parts[:-2]), 'approach': parts[-2], 'seed': int(parts[-1])}
             if len(parts) >= 3 and parts[-1].isdigit() else {'experiment': 'exp', 'approach': 'hat', 'seed': 0})
    saved = {'acc': acc, 'lss': np.zeros_like(acc), 'taskcla': [(t, 2) for t in range(len(acc))],
             'inputsize': [1, 28, 28], 'task_names': [f'task{t}' for t in range(len(acc))],
             'args': {**named, 'output': str(output), 'dry_run': dry_run, **args},
             'tasks_done': len(acc) if tasks_done is None else tasks_done, 'seconds_per_task': [], 'seconds': 0.0}
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    results.save(Path(output), saved)
    return saved


class StopAfter:
    """Stands in for a signal: raises Interrupted right after the checkpoint of `tasks` finished tasks is saved."""

    def __init__(self, tasks: int):
        from plumbing import checkpoints
        self.tasks = tasks
        self.save = checkpoints.save

    def __call__(self, path, args, appr, progress):
        self.save(path, args, appr, progress)
        if progress['tasks_done'] == self.tasks:
            from plumbing import interrupts
            raise interrupts.Interrupted('SIGTERM')
