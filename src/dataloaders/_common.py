"""Shared by the experiment loaders: torchvision sources with clear errors, the tensor cache, splits, normalisation.

Every loader's get() returns (data, taskcla, inputsize) in the original's layout: data[t] is a dict with
'name', 'ncla' and 'train'/'valid'/'test' splits, each {'x': float tensor (N, C, H, W), 'y': long tensor (N,)}.
"""
import gc
import gzip
import hashlib
import json
import math
import mmap
import pickle
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from plumbing.files import atomic_write
from plumbing.utils import UserError, first_line

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
        if nvalid == 0:  # nothing to select the model on: the loop's evaluation of an empty set would fail
            raise UserError(f"{task['name']}: --pc-valid {pc_valid} of its {len(r)} training images is none; pass a "
                            f'larger --pc-valid, or 0 to validate on the training set')
        task['valid'] = {'x': train['x'][r[:nvalid]], 'y': train['y'][r[:nvalid]]}
        task['train'] = {'x': train['x'][r[nvalid:]], 'y': train['y'][r[nvalid:]]}


def taskcla_of(data: list[dict]) -> list[tuple[int, int]]:
    """[(task index, number of classes), ...] as the original's taskcla."""
    return [(t, task['ncla']) for t, task in enumerate(data)]


########################################################################################################################
# torchvision sources


# The files torchvision's data sets read (their classes' train_list, test_list and meta, or resources), named here so
# that a run whose data are cached does not import torchvision: 4 s of a run's start on a 2-core machine, which a sweep
# of short runs pays once per run. tests/test_data.py checks them against torchvision's classes
TORCHVISION_FILES = {
    'CIFAR10': ('cifar-10-batches-py', [f'data_batch_{k}' for k in range(1, 6)] + ['test_batch', 'batches.meta']),
    'CIFAR100': ('cifar-100-python', ['train', 'test', 'meta']),
    **{name: (f'{name}/raw', ['train-images-idx3-ubyte', 'train-labels-idx1-ubyte', 't10k-images-idx3-ubyte',
                              't10k-labels-idx1-ubyte']) for name in ('MNIST', 'FashionMNIST')},
}


def source_files(name: str, root: Path) -> list[Path]:
    """The files torchvision's data set `name` (CIFAR10, CIFAR100, MNIST, FashionMNIST) reads from `root`: CIFAR's
    batches, or the MNIST family's idx files, decompressed."""
    folder, files = TORCHVISION_FILES[name]
    return [root / folder / f for f in files]


def _missing_message(dataset_cls, root: Path, reason: str, problem: str | None = None) -> str:
    if hasattr(dataset_cls, 'train_list'):
        archive = dataset_cls.url
        files = ', '.join(p.name for p in source_files(dataset_cls.__name__, root))
        where = f'{root / dataset_cls.base_folder} ({files}), or {Path(archive).name} in {root}'
    else:
        archive = dataset_cls.mirrors[0]
        where = f'{root / dataset_cls.__name__ / "raw"} ({", ".join(name for name, _ in dataset_cls.resources)})'
    found = f' ({problem})' if problem else ''
    return (f'{dataset_cls.__name__} is missing or corrupt in {root}{found} and could not be downloaded ({reason}). '
            f'Download it from {archive} and put it in {where}, or pass --data-dir')


def load_torchvision(dataset_cls, root: Path, train: bool, problem: str | None = None):
    """A torchvision data set read from `root`, downloaded there if missing; a UserError if neither works.

    `problem`, what is already known to be wrong with the files there, goes into that error's message.
    """
    try:
        return dataset_cls(str(root), train=train, download=False)
    except Exception:
        pass  # missing, failed its checksum or unreadable: try to download it
    try:
        root.mkdir(parents=True, exist_ok=True)
        return dataset_cls(str(root), train=train, download=True)
    except Exception as e:  # offline, refused, half-written archive...: all end in the same instruction
        raise UserError(_missing_message(dataset_cls, root, first_line(e), problem)) from None


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
# CIFAR's python batches, read directly
#
# torchvision's CIFAR10/CIFAR100 constructors md5 every file of both splits each time one split is built, so a build
# of both splits hashes everything twice: most of a cache build's time. Here each file is mapped, hashed once against
# the checksums torchvision holds while another thread unpickles it (as torchvision does, but refusing anything but
# arrays), and the batches are stacked in torchvision's order: the same bits. A file that fails the check, cannot be
# read or holds something unexpected sends the split to torchvision's class instead, which downloads the archive again
# where it can and otherwise ends in the one-line missing-data message naming what was wrong.

CIFAR_SHAPE = (3, 32, 32)  # each row of a batch's 'data': the R, G, B planes of a 32x32 image, row-major


def _entry(batch: dict, key: str):
    """A pickled dict's value under `key`, stored as str (the official, Python 2 batches) or as bytes."""
    for k in (key, key.encode()):
        if k in batch:
            return batch[k]
    raise ValueError(f"holds no '{key}'")


class _MappedFile:
    """A file over a memory map whose reads are slices of it, not copies (the C unpickler reads any buffer, and
    peek() lets it take large blocks)."""

    def __init__(self, mapped: mmap.mmap):
        self._mapped, self._view, self._pos = mapped, memoryview(mapped), 0

    def _take(self, end: int) -> memoryview:
        chunk, self._pos = self._view[self._pos:end], min(end, len(self._view))
        return chunk

    def read(self, n: int = -1) -> memoryview:
        return self._take(len(self._view) if n < 0 else self._pos + n)

    def readline(self) -> memoryview:  # protocol 0's text opcodes
        end = self._mapped.find(b'\n', self._pos)
        return self._take(len(self._view) if end < 0 else end + 1)

    def readinto(self, buffer) -> int:
        chunk = self.read(len(buffer))
        buffer[:len(chunk)] = chunk
        return len(chunk)

    def peek(self, n: int = 1) -> memoryview:
        return self._view[self._pos:self._pos + max(n, 1)]


class _ArraysUnpickler(pickle.Unpickler):
    """Unpickles plain data and numpy arrays, and refuses any other class or function: a batch is unpickled while
    its checksum is computed, so a file that fails the check must not have been able to run code."""

    ALLOWED = {('numpy.core.multiarray', '_reconstruct'), ('numpy._core.multiarray', '_reconstruct'),
               ('numpy', 'ndarray'), ('numpy', 'dtype'), ('_codecs', 'encode')}  # _codecs: Python 3's bytes

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f'refusing to load {module}.{name}')
        return super().find_class(module, name)


def _unpickle(mapped: mmap.mmap):
    return _ArraysUnpickler(_MappedFile(mapped), encoding='latin1').load()  # latin1: Python 2's str, as torchvision


def _unpickle_checked(path: Path, md5: str, worker: ThreadPoolExecutor) -> dict:
    """A CIFAR pickle's dict; a ValueError when its bytes do not match `md5` or do not unpickle to a dict."""
    with open(path, 'rb') as f:
        # Mapped, not read: no copy of the file in memory. The map goes when nothing refers to it any more (the
        # unpickled objects do not: they are copies)
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    # Unpickling holds the GIL throughout while hashing lets go of it: hashing here lets the worker thread unpickle
    # at the same time, so the checksum costs little more than the longer of the two
    unpickled = worker.submit(_unpickle, mapped)
    digest = hashlib.md5(mapped, usedforsecurity=False).hexdigest()  # an integrity check, as torchvision's
    try:
        batch, error = unpickled.result(), None
    except Exception as e:  # truncated, garbled, refused: whatever the unpickler trips on
        batch, error = None, e
    if digest != md5:
        raise ValueError('does not match its md5 checksum')
    if error is not None or not isinstance(batch, dict):
        raise ValueError(f'is not a readable pickle ({first_line(error) if error else type(batch).__name__})')
    return batch


def _check_cifar(images: torch.Tensor, labels: torch.Tensor, nclasses: int) -> None:
    """A ValueError unless images are uint8 (N, 3, 32, 32), N > 0, with N labels in 0..nclasses-1."""
    if images.dtype != torch.uint8 or tuple(images.shape[1:]) != CIFAR_SHAPE or len(images) == 0:
        raise ValueError(f'expected uint8 images of shape {CIFAR_SHAPE}, got {len(images)} {images.dtype} images '
                         f'of shape {tuple(images.shape[1:])}')
    if len(labels) != len(images) or labels.min() < 0 or labels.max() >= nclasses:
        raise ValueError(f'expected {len(images)} labels in 0-{nclasses - 1}, got {len(labels)} labels in '
                         f'{int(labels.min()) if len(labels) else "-"}-{int(labels.max()) if len(labels) else "-"}')


def _cifar_batch(batch: dict) -> tuple[torch.Tensor, np.ndarray]:
    """A batch's images as uint8 (N, 3 * 32 * 32) and its labels; a ValueError if they are not that."""
    data = _entry(batch, 'data')
    # CIFAR-10's batches hold 'labels', CIFAR-100's 'fine_labels' (and 'coarse_labels', unused): torchvision's choice
    labels = np.asarray(_entry(batch, 'labels' if 'labels' in batch or b'labels' in batch else 'fine_labels'))
    if (not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2
            or data.shape[1] != np.prod(CIFAR_SHAPE)):
        raise ValueError(f'holds no uint8 images of {np.prod(CIFAR_SHAPE)} bytes each')
    if labels.ndim != 1 or len(labels) != len(data) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f'holds {len(data)} images but not as many integer labels')
    # torch wants a writeable array: the unpickled one is, unless some numpy version makes it read-only
    return torch.from_numpy(data if data.flags.writeable else data.copy()), labels


@contextmanager
def _gc_paused():
    """The cyclic garbage collector off, then back as it was.

    Unpickling a batch makes some 20000 small objects (its file names, the unpickler's tuples), enough to start
    several full collections of every object in the process (torch and torchvision make them many, ~0.1 s each),
    which find nothing: the batch holds no cycles.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _read_cifar_batches(dataset_cls, root: Path, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The split's batches, each checked against its md5 and validated; a ValueError or OSError otherwise."""
    folder = root / dataset_cls.base_folder
    meta_file = dataset_cls.meta['filename']
    files = [meta_file] + [name for name, _ in (dataset_cls.train_list if train else dataset_cls.test_list)]
    checksums = {name: md5 for name, md5 in dataset_cls.train_list + dataset_cls.test_list}
    checksums[meta_file] = dataset_cls.meta['md5']
    images, labels = [], []
    with ThreadPoolExecutor(1) as worker, _gc_paused():
        for name in files:
            try:
                batch = _unpickle_checked(folder / name, checksums[name], worker)
                if name == meta_file:  # not needed for the tensors, but torchvision requires it intact: so do we
                    classes = _entry(batch, dataset_cls.meta['key'])
                    if not isinstance(classes, list) or not classes:
                        raise ValueError(f"holds no list of class names under '{dataset_cls.meta['key']}'")
                    nclasses = len(classes)
                else:
                    x, y = _cifar_batch(batch)
                    images.append(x)
                    labels.append(y)
            except ValueError as e:
                raise ValueError(f'{name} {e}') from None
    x = torch.cat(images) if len(images) > 1 else images[0]  # (N, 3 * 32 * 32), in the files' order
    x = x.view(-1, *CIFAR_SHAPE)  # (N, C, H, W)
    y = torch.as_tensor(np.concatenate(labels), dtype=torch.long)
    _check_cifar(x, y, nclasses)
    return x, y


def read_cifar(dataset_cls, root: Path, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """A CIFAR-10/100 split as uint8 (N, 3, 32, 32) images and long labels, bitwise as torchvision gives them.

    The python batches are read directly when all are there and intact; otherwise torchvision's class reads them,
    downloading the archive where it can, or a one-line UserError says what is wrong and where to put the files.
    """
    folder = root / dataset_cls.base_folder
    problem = None
    if all(p.is_file() for p in source_files(dataset_cls.__name__, root)):
        try:
            return _read_cifar_batches(dataset_cls, root, train)
        except ValueError as e:  # a file is corrupt or holds something unexpected: e names it
            problem = f'{folder.name}/{first_line(e)}'
        except Exception as e:  # unreadable, or anything else: torchvision's way is the reference
            problem = first_line(e)
    ds = load_torchvision(dataset_cls, root, train, problem)
    images, labels = as_uint8_nchw(ds), as_labels(ds)
    try:
        _check_cifar(images, labels, len(ds.classes))
    except ValueError as e:
        raise UserError(f'{dataset_cls.__name__} in {folder}: {e}; put intact files there') from None
    return images, labels


########################################################################################################################
# MNIST's idx files, checked before torchvision reads them
#
# torchvision trusts an idx file's header: a count that disagrees with the data ends in a reshape error quoted as if
# the file were missing, images of another size are read as they are (and fail later, in the network), and a labels
# file shorter or longer than its images file fails where the tasks are split, in a traceback. So each file's header
# is checked against the file's size, the images' size and the other file's count first, and a file that is not what
# it says is named in one line. torchvision then reads the files as before: the same tensors.
#
# torchvision accepts a compressed .gz only when its md5 is the official archive's, and otherwise downloads it again:
# the same data recompressed (Debian's dataset-fashion-mnist, a copy gunzipped and gzipped again) is refused offline.
# So a .gz whose decompressed file is missing is decompressed here and its content checked as above (and its labels'
# range), whatever its md5; only then is the decompressed file written beside it, where torchvision reads it.

MNIST_SHAPE = (28, 28)  # the images of every data set of the family (MNIST, FashionMNIST, KMNIST)
IDX_PREFIXES = ('train', 't10k')  # torchvision's names of the splits' files: <prefix>-images-idx3-ubyte, ...
GZIP_MAGIC = b'\x1f\x8b'


def _idx_files(folder: Path, prefix: str) -> tuple[Path, Path]:
    """A split's decompressed images and labels files, as torchvision names them."""
    return folder / f'{prefix}-images-idx3-ubyte', folder / f'{prefix}-labels-idx1-ubyte'


def _gz(path: Path) -> Path:
    return path.with_name(path.name + '.gz')


def _idx_sizes(path: Path, ndim: int, content: bytes | None = None) -> tuple[int, ...]:
    """The sizes an idx file of unsigned bytes in `ndim` dimensions declares; a ValueError unless it holds them.

    `content`, when given, is what the file holds decompressed (path is then its .gz).
    """
    header_size = 4 * (ndim + 1)  # magic 0x0000080N (unsigned bytes, N dimensions), then N big-endian sizes
    if content is None:
        size = path.stat().st_size
        with open(path, 'rb') as f:
            header = f.read(header_size)
    else:
        size, header = len(content), content[:header_size]
    decompressed = '' if content is None else 'decompressed '
    if len(header) < header_size:
        raise ValueError(f'is too short for an idx header ({size} {decompressed}bytes)')
    magic, *sizes = struct.unpack(f'>{ndim + 1}I', header)
    if magic != 0x800 + ndim:
        raise ValueError(f'is not an idx file of unsigned bytes in {ndim} dimensions (magic number 0x{magic:08x}, '
                         f'expected 0x{0x800 + ndim:08x})')
    if size - header_size != math.prod(sizes):
        raise ValueError(f"holds {size - header_size} bytes of {decompressed}data where its header declares "
                         f"{' x '.join(map(str, sizes))} = {math.prod(sizes)}")
    return tuple(sizes)


def _corrupt_idx(dataset_cls, path: Path, problem) -> UserError:
    if path.suffix == '.gz':
        advice = f'replace it with an intact copy (from {dataset_cls.mirrors[0]})'
    else:
        advice = f'put an intact copy there ({path.name}.gz from {dataset_cls.mirrors[0]}, decompressed)'
    return UserError(f'{dataset_cls.__name__} is corrupt: {path} {problem}; {advice}, or delete it to have it '
                     f'downloaded again')


def _check_idx_pair(dataset_cls, images_file: Path, labels_file: Path, contents: dict | None = None) -> None:
    """A one-line UserError naming the file unless the images file holds N 28x28 images and the labels file N.

    `contents` maps a .gz among the two to what it holds decompressed.
    """
    contents = contents or {}
    try:
        count, *shape = _idx_sizes(images_file, 3, contents.get(images_file))
        if tuple(shape) != MNIST_SHAPE:
            raise ValueError(f"holds images of {'x'.join(map(str, shape))} pixels, expected "
                             f"{'x'.join(map(str, MNIST_SHAPE))}")
    except ValueError as e:
        raise _corrupt_idx(dataset_cls, images_file, e) from None
    try:
        nlabels, = _idx_sizes(labels_file, 1, contents.get(labels_file))
    except ValueError as e:
        raise _corrupt_idx(dataset_cls, labels_file, e) from None
    if nlabels != count:
        raise _corrupt_idx(dataset_cls, labels_file, f'holds {nlabels} labels for the {count} images of '
                                                     f'{images_file.name}')


def _gunzip(path: Path) -> bytes:
    """A .gz file's decompressed bytes; a ValueError saying what is wrong with it."""
    try:
        blob = path.read_bytes()
    except OSError as e:
        raise ValueError(f'cannot be read ({e.strerror or e})') from None
    if not blob.startswith(GZIP_MAGIC):  # gzip would read an empty file as empty data
        raise ValueError('is not gzip data')
    try:
        return gzip.decompress(blob)
    except EOFError:
        raise ValueError(f'is truncated: its gzip data ends early ({len(blob)} bytes)') from None
    except (gzip.BadGzipFile, zlib.error) as e:  # a wrong CRC or length, garbled deflate data, trailing garbage
        raise ValueError(f'is corrupt gzip data ({first_line(e)})') from None


def _decompress_idx(dataset_cls, folder: Path) -> None:
    """Decompress each .gz in `folder` whose idx file is missing, once what it holds has passed the checks; a
    one-line UserError naming the .gz otherwise. A split with a file missing in both forms is left to torchvision."""
    nclasses = len(dataset_cls.classes)
    for prefix in IDX_PREFIXES:
        pair = _idx_files(folder, prefix)
        if all(p.is_file() for p in pair) or not all(p.is_file() or _gz(p).is_file() for p in pair):
            continue
        sources = [p if p.is_file() else _gz(p) for p in pair]  # (images, labels), each decompressed or .gz
        contents = {}
        for source in sources:
            if source.suffix == '.gz':
                try:
                    contents[source] = _gunzip(source)
                except ValueError as e:
                    raise _corrupt_idx(dataset_cls, source, e) from None
        _check_idx_pair(dataset_cls, *sources, contents)
        labels = contents.get(sources[1], b'')[8:]  # a decompressed labels file's labels, after its header
        if labels and max(labels) >= nclasses:  # what no header can tell
            raise _corrupt_idx(dataset_cls, sources[1], f'holds labels up to {max(labels)}, expected 0-{nclasses - 1}')
        for source, content in contents.items():
            target = source.with_suffix('')
            try:
                atomic_write(target, lambda f: f.write(content))
            except OSError as e:
                raise UserError(f'{dataset_cls.__name__}: cannot write {target.name}, decompressed from {source}, in '
                                f'{folder}: {e.strerror or e}; make the folder writable, or put the decompressed '
                                f'file there') from None


def _missing_idx(folder: Path) -> str | None:
    """Which of the four files are in `folder` in neither form, when some are there (None when all or none are)."""
    files = [p for prefix in IDX_PREFIXES for p in _idx_files(folder, prefix)]
    missing = [f'{p.name}.gz' for p in files if not p.is_file() and not _gz(p).is_file()]
    return f'found no {", ".join(missing)}, compressed or not' if 0 < len(missing) < len(files) else None


def read_mnist(dataset_cls, root: Path, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """An MNIST-family split (MNIST, FashionMNIST) as uint8 (N, 1, 28, 28) images and long labels, as torchvision
    reads them, its idx files (or their .gz, decompressed) checked first; a one-line UserError naming a file that is
    not what it says it is."""
    folder = root / dataset_cls.__name__ / 'raw'
    _decompress_idx(dataset_cls, folder)
    images_file, labels_file = _idx_files(folder, 'train' if train else 't10k')
    if images_file.is_file() and labels_file.is_file():  # otherwise torchvision downloads them or says where to
        _check_idx_pair(dataset_cls, images_file, labels_file)
    ds = load_torchvision(dataset_cls, root, train, _missing_idx(folder))
    images, labels = as_uint8_nchw(ds), as_labels(ds)
    if len(labels) and labels.max() >= len(ds.classes):  # what no header can tell
        raise _corrupt_idx(dataset_cls, labels_file, f'holds labels up to {int(labels.max())}, expected '
                                                     f'0-{len(ds.classes) - 1}')
    return images, labels


def read_torchvision(dataset_cls, root: Path, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """A split of a CIFAR or MNIST-family data set as uint8 (N, C, H, W) images and long labels, its files checked."""
    return (read_cifar if hasattr(dataset_cls, 'train_list') else read_mnist)(dataset_cls, root, train)


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


def normalised_source(data_dir: Path, experiment: str, source: str, mean, std) -> dict:
    """A torchvision data set's (CIFAR or MNIST family) train and test splits as normalised float tensors, in the
    files' order, cached in dat/binary_<experiment>/."""
    def build():
        from torchvision import datasets
        dataset_cls = getattr(datasets, source)
        out = {}
        for split in ('train', 'test'):
            images, labels = read_torchvision(dataset_cls, data_dir, train=split == 'train')
            out[split + '_x'] = normalise(images, mean, std)
            out[split + '_y'] = labels
        return out

    return cached(data_dir / f'binary_{experiment}', source_files(source, data_dir), build,
                  extra={'mean': list(mean), 'std': list(std)})


def mnist_normalised(data_dir: Path, experiment: str, mean=(0.1307,), std=(0.3081,), source: str = 'MNIST') -> dict:
    """MNIST (or another torchvision data set of its family, e.g. FashionMNIST) as normalised_source gives it."""
    return normalised_source(data_dir, experiment, source, mean, std)


def split_classes(tensors: dict, prefix: str, per_task: int, order: list[int], seed: int,
                  pc_valid: float) -> list[dict]:
    """Tasks of per_task consecutive classes (task k: classes k*n..k*n+n-1 labelled 0..n-1, in the files' order), in
    the given order of k, each with its validation split."""
    data = []
    for k in order:
        first = k * per_task
        task = {'name': f'{prefix}-{first}-{first + per_task - 1}', 'ncla': per_task}
        for split in ('train', 'test'):
            x, y = tensors[split + '_x'], tensors[split + '_y']
            keep = y // per_task == k
            task[split] = {'x': x[keep], 'y': y[keep] - first}
        data.append(task)
    split_valid(data, seed, pc_valid)
    return data


def split_in_pairs(tensors: dict, prefix: str, seed: int, fixed_order: bool, pc_valid: float) -> list[dict]:
    """Five tasks of two classes (0-1, 2-3, ..., 8-9, labelled 0-1 in each), in a seed-shuffled order."""
    return split_classes(tensors, prefix, 2, task_order(5, seed, fixed_order), seed, pc_valid)
