"""Shared by the experiment loaders: torchvision sources with clear errors, the tensor cache, splits, normalisation.

Every loader's get() returns (data, taskcla, inputsize) in the original's layout: data[t] is a dict with
'name', 'ncla' and 'train'/'valid'/'test' splits, each {'x': float tensor (N, C, H, W), 'y': long tensor (N,)}.
"""
import json
from pathlib import Path

import numpy as np
import torch

from utils import UserError, atomic_write

# Bump when what a cache holds or how it is computed changes: older caches are then rebuilt.
CACHE_FORMAT = 1


def permutation(n: int, seed: int) -> np.ndarray:
    """The permutation sklearn.utils.shuffle(np.arange(n), random_state=seed) gives, as the original used it.

    sklearn's shuffle draws RandomState(seed).shuffle(arange(n)), which is RandomState(seed).permutation(n).
    """
    return np.random.RandomState(seed).permutation(n)


def task_order(ntasks: int, seed: int, fixed_order: bool) -> list[int]:
    """Task order: shuffled by the seed, as the original, or 0..n-1 with fixed_order."""
    return list(range(ntasks)) if fixed_order else [int(i) for i in permutation(ntasks, seed)]


def normalise(images: torch.Tensor, mean, std) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float32, bitwise as torchvision's ToTensor() then Normalize(mean, std) per image."""
    x = images.to(torch.float32).div_(255)
    m = torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return x.sub_(m).div_(s)


def split_valid(data: list[dict], seed: int, pc_valid: float) -> None:
    """Give each task a validation split, in place, as the original.

    pc_valid > 0: the first pc_valid of a seed-shuffled training set is held out (cifar's way);
    pc_valid == 0: the validation set is a copy of the training set (the mnist experiments' way).
    """
    if not 0 <= pc_valid < 1:
        raise UserError(f'--pc-valid must be in [0, 1), got {pc_valid}')
    for task in data:
        train = task['train']
        if pc_valid == 0:
            task['valid'] = {'x': train['x'].clone(), 'y': train['y'].clone()}
            continue
        r = torch.from_numpy(permutation(train['x'].size(0), seed))
        nvalid = int(pc_valid * len(r))
        task['valid'] = {'x': train['x'][r[:nvalid]], 'y': train['y'][r[:nvalid]]}
        task['train'] = {'x': train['x'][r[nvalid:]], 'y': train['y'][r[nvalid:]]}


def taskcla_of(data: list[dict]) -> list[tuple[int, int]]:
    """[(task index, number of classes), ...] as the original's taskcla."""
    return [(t, task['ncla']) for t, task in enumerate(data)]


########################################################################################################################
# torchvision sources


def source_files(dataset_cls, root: Path) -> list[Path]:
    """The files a torchvision data set reads from `root` (CIFAR batches or MNIST idx files)."""
    if hasattr(dataset_cls, 'train_list'):  # CIFAR10 / CIFAR100
        folder = root / dataset_cls.base_folder
        names = [n for n, _ in dataset_cls.train_list + dataset_cls.test_list] + [dataset_cls.meta['filename']]
        return [folder / n for n in names]
    folder = root / dataset_cls.__name__ / 'raw'  # MNIST family: idx files, decompressed
    return [folder / Path(name).stem for name, _ in dataset_cls.resources]


def _missing_message(dataset_cls, root: Path, reason: str) -> str:
    if hasattr(dataset_cls, 'train_list'):
        archive = dataset_cls.url
        files = ', '.join(p.name for p in source_files(dataset_cls, root))
        where = f'{root / dataset_cls.base_folder} ({files}), or {Path(archive).name} in {root}'
    else:
        archive = dataset_cls.mirrors[0]
        where = f'{root / dataset_cls.__name__ / "raw"} ({", ".join(name for name, _ in dataset_cls.resources)})'
    return (f'{dataset_cls.__name__} is missing or corrupt in {root} and could not be downloaded ({reason}). '
            f'Download it from {archive} and put it in {where}, or pass --data-dir')


def load_torchvision(dataset_cls, root: Path, train: bool):
    """A torchvision data set read from `root`, downloaded there if missing; a UserError if neither works."""
    try:
        return dataset_cls(str(root), train=train, download=False)
    except Exception:
        pass  # missing, failed its checksum or unreadable: try to download it
    try:
        root.mkdir(parents=True, exist_ok=True)
        return dataset_cls(str(root), train=train, download=True)
    except Exception as e:  # offline, refused, half-written archive...: all end in the same instruction
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(_missing_message(dataset_cls, root, reason)) from None


def as_uint8_nchw(dataset) -> torch.Tensor:
    """A torchvision data set's images as one uint8 (N, C, H, W) tensor, without decoding image by image."""
    data = dataset.data
    if isinstance(data, np.ndarray):  # CIFAR: (N, H, W, C)
        return torch.from_numpy(data).permute(0, 3, 1, 2).contiguous()
    return data.unsqueeze(1)  # MNIST family: (N, H, W)


def as_labels(dataset) -> torch.Tensor:
    """A torchvision data set's labels as a long tensor."""
    return torch.as_tensor(np.asarray(dataset.targets), dtype=torch.long)


########################################################################################################################
# Tensor cache


def _fingerprint(sources: list[Path]) -> list:
    return [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in sources]


def _read_cache(path: Path, expected: dict) -> dict | None:
    """The cached tensors, or None when absent, corrupt, or stored with other metadata than `expected`.

    `expected` without a 'sources' key accepts a cache built from any source files (used when they are gone).
    """
    if not path.is_file():
        return None
    try:
        blob = torch.load(path, weights_only=True, map_location='cpu')
        meta = json.loads(blob['meta'])
        tensors = blob['tensors']
    except Exception:  # truncated, not a torch file, unexpected content: rebuild it
        return None
    if 'sources' not in expected:
        meta.pop('sources', None)
    return tensors if meta == expected else None


def cached(cache_dir: Path, sources: list[Path], build, extra: dict | None = None) -> dict:
    """The tensors build() returns, cached in cache_dir and rebuilt when the source files or the format change.

    `sources` are the files build() reads. When none of them is present, a cache of the right format is used as it
    is (the raw data may have been deleted to save space); otherwise build() runs, which downloads or fails clearly.
    """
    path = cache_dir / 'data.pt'
    expected = {'format': CACHE_FORMAT, **(extra or {})}
    present = [p.is_file() for p in sources]
    if all(present):
        expected['sources'] = _fingerprint(sources)
    tensors = _read_cache(path, expected) if all(present) or not any(present) else None
    if tensors is not None:
        return tensors
    tensors = build()  # may download the sources
    meta = {'format': CACHE_FORMAT, **(extra or {}), 'sources': _fingerprint(sources)}
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        blob = {'meta': json.dumps(meta), 'tensors': tensors}
        atomic_write(path, lambda f: torch.save(blob, f))
    except OSError as e:
        print(f'[warning: could not write the data cache {path}: {e.strerror or e}; continuing without it]')
    return tensors


def mnist_normalised(data_dir: Path, experiment: str, mean=(0.1307,), std=(0.3081,), source: str = 'MNIST') -> dict:
    """MNIST (or another torchvision data set of its family, e.g. FashionMNIST) train/test as normalised float
    tensors, cached in dat/binary_<experiment>/."""
    from torchvision import datasets
    dataset_cls = getattr(datasets, source)

    def build():
        out = {}
        for split in ('train', 'test'):
            ds = load_torchvision(dataset_cls, data_dir, train=split == 'train')
            out[split + '_x'] = normalise(as_uint8_nchw(ds), mean, std)
            out[split + '_y'] = as_labels(ds)
        return out

    return cached(data_dir / f'binary_{experiment}', source_files(dataset_cls, data_dir), build,
                  extra={'mean': list(mean), 'std': list(std)})


def split_in_pairs(tensors: dict, prefix: str, seed: int, fixed_order: bool, pc_valid: float) -> list[dict]:
    """Five tasks of two classes (0-1, 2-3, ..., 8-9, labelled 0-1 in each), in a seed-shuffled order."""
    data = []
    for k in task_order(5, seed, fixed_order):
        task = {'name': f'{prefix}-{2 * k}-{2 * k + 1}', 'ncla': 2}
        for split in ('train', 'test'):
            x, y = tensors[split + '_x'], tensors[split + '_y']
            keep = y // 2 == k
            task[split] = {'x': x[keep], 'y': y[keep] - 2 * k}
        data.append(task)
    split_valid(data, seed, pc_valid)
    return data
