"""Tiny ImageNet (Stanford CS231n's 64x64 subset of ImageNet, 200 classes) as 10 tasks of 20 classes (`--ntasks` 20
or 40: 10 or 5 classes a task), in a seed-shuffled order (`--fixed-order`: class order), as the other experiments.

Its files, as tiny-imagenet-200.zip (http://cs231n.stanford.edu/) extracts them in the data folder:
tiny-imagenet-200/wnids.txt (the class ids, one a line), train/<wnid>/images/*.JPEG (500 a class),
val/images/*.JPEG (50 a class) and val/val_annotations.txt (file name, class id and box, tab-separated). Its test
images have no labels, so the validation images are the test set here, and the validation split is held out of the
training set. What each file says is checked against what the folder holds: wnids.txt against train/'s class
folders, val_annotations.txt against val/images/, and every image is 64x64 (a grey or other-mode JPEG is converted to
RGB as torchvision's ImageFolder does, PIL's convert('RGB')).

Classes are numbered in wnids.txt's order; task k holds classes k*n .. k*n+n-1 (n = classes / ntasks) relabelled
0..n-1, training images class by class in file-name order, test images in val_annotations.txt's order. A folder with
fewer classes than 200 (a subset) is accepted when ntasks divides their number.

Normalised with ImageNet's mean and std, (0.485, 0.456, 0.406) and (0.229, 0.224, 0.225): those of torchvision's
ImageNet models (torchvision/transforms/_presets.py), not statistics of Tiny ImageNet itself. The 5% validation share
is GPM's (Saha et al., ICLR 2021, github.com/sahagobinda/GPM: --pc_valid 0.05 in main_cifar100.py and
main_five_dataset.py; its repository has no miniImageNet or Tiny ImageNet script).
"""
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dataloaders._common import cached, normalise, split_classes, task_order, taskcla_of
from plumbing.utils import UserError, first_line

INPUTSIZE = [3, 64, 64]
DEFAULT_NETWORK = 'resnet18_reduced'
PC_VALID = 0.05
FOLDER = 'tiny-imagenet-200'
URL = 'http://cs231n.stanford.edu/tiny-imagenet-200.zip'
SIZE = 64
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
NTASKS = (10, 20, 40)
CHUNK = 256  # images per job of the decoding threads


def add_arguments(parser) -> None:
    """The experiment's own flags."""
    parser.add_argument('--ntasks', type=int, choices=NTASKS, default=NTASKS[0],
                        help='tasks of 200 / ntasks classes each (default: 10)')


def _corrupt(path: Path, problem: str) -> UserError:
    return UserError(f'Tiny ImageNet is corrupt: {path} {problem}; extract {Path(URL).name} ({URL}) again')


def _fetch(data_dir: Path) -> Path:
    """Download and extract the archive (or extract it, when already there); the folder, or a UserError."""
    from torchvision.datasets.utils import download_and_extract_archive
    try:
        download_and_extract_archive(URL, str(data_dir))
    except Exception as e:  # offline, refused, a half-written archive...: all end in the same instruction
        raise UserError(f'Tiny ImageNet is missing in {data_dir} and could not be downloaded ({first_line(e)}). '
                        f'Download {URL} and extract it there ({FOLDER}/ with wnids.txt, train/<wnid>/images/*.JPEG, '
                        f'val/val_annotations.txt and val/images/*.JPEG), or pass --data-dir') from None
    return data_dir / FOLDER


def _lines(path: Path) -> list[str]:
    try:
        return [line.strip() for line in path.read_text().splitlines() if line.strip()]
    except OSError as e:
        raise _corrupt(path, f'cannot be read ({e.strerror or first_line(e)})') from None
    except UnicodeDecodeError:
        raise _corrupt(path, 'is not text') from None


@dataclass
class _Files:
    """What the folder holds, checked against what its text files say: the classes and each split's images."""

    notes: list[Path]  # the text files that say what the images are
    nclasses: int
    splits: dict[str, tuple[list[Path], list[int]]]  # 'train', 'test': image files and their classes

    def sources(self) -> list[Path]:
        """Every file the tensors are built from."""
        return self.notes + [p for paths, _ in self.splits.values() for p in paths]


def _files(folder: Path) -> _Files:
    """The folder's classes and images; a one-line UserError naming the first file that disagrees with another."""
    wnids_file, train, val = folder / 'wnids.txt', folder / 'train', folder / 'val'
    annotations = val / 'val_annotations.txt'
    wnids = _lines(wnids_file)
    duplicate = next((w for i, w in enumerate(wnids) if w in wnids[:i]), None)
    if not wnids or duplicate:
        raise _corrupt(wnids_file, f'lists {duplicate} twice' if duplicate else 'lists no class')
    folders = {d.name for d in train.iterdir() if d.is_dir()} if train.is_dir() else set()
    if folders != set(wnids):
        odd = sorted(set(wnids) - folders) or sorted(folders - set(wnids))
        raise _corrupt(train, f'holds {len(folders)} class folders where wnids.txt lists {len(wnids)} classes '
                              f'({odd[0]} is in only one of them)')
    paths, labels = [], []
    for c, wnid in enumerate(wnids):
        images = sorted((train / wnid / 'images').glob('*.JPEG'))
        if not images:
            raise _corrupt(train / wnid / 'images', 'holds no JPEG image')
        paths += images
        labels += [c] * len(images)
    splits = {'train': (paths, labels)}
    classes = {wnid: c for c, wnid in enumerate(wnids)}
    listed = {}
    for i, line in enumerate(_lines(annotations), 1):
        name, wnid = (line.split('\t') + [''])[:2]
        if wnid not in classes or name in listed:
            problem = f'lists {name} twice' if name in listed else f'names the class {wnid!r}, not in wnids.txt'
            raise _corrupt(annotations, f'line {i} {problem}')
        listed[name] = classes[wnid]
    held = {p.name for p in (val / 'images').glob('*.JPEG')}
    if held != set(listed):
        odd = sorted(set(listed) - held) or sorted(held - set(listed))
        raise _corrupt(val / 'images', f'holds {len(held)} JPEG images where val_annotations.txt lists {len(listed)} '
                                       f'({odd[0]} is in only one of them)')
    splits['test'] = ([val / 'images' / name for name in listed], list(listed.values()))
    return _Files([wnids_file, annotations], len(wnids), splits)


def _pixels(path: Path) -> np.ndarray:
    """One image as uint8 (3, 64, 64), converted to RGB as torchvision's ImageFolder does."""
    from PIL import Image
    try:
        with Image.open(path) as img:
            size = img.size
            pixels = np.asarray(img.convert('RGB')) if size == (SIZE, SIZE) else None
    except Exception as e:  # not an image, truncated, unreadable: PIL has many ways to say so
        raise _corrupt(path, f'cannot be decoded ({first_line(e)})') from None
    if pixels is None:
        raise _corrupt(path, f'is {size[0]}x{size[1]} pixels, expected {SIZE}x{SIZE}')
    return pixels.transpose(2, 0, 1)


def _decode(paths: list[Path], what: str) -> torch.Tensor:
    """The images as uint8 (N, 3, 64, 64), decoded by a thread per core.

    PIL lets go of the GIL while it decodes, about half of an image's 150 us here (opening the file and reading its
    header hold it), so threads about halve the time at most; they share the array the images go into."""
    from tqdm import tqdm
    images = np.empty((len(paths), 3, SIZE, SIZE), np.uint8)

    def decode(start: int) -> int:
        chunk = paths[start:start + CHUNK]
        for i, path in enumerate(chunk, start):
            images[i] = _pixels(path)
        return len(chunk)

    cores = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()
    with ThreadPoolExecutor(cores) as pool, tqdm(total=len(paths), desc=f'Tiny ImageNet {what}', unit='image',
                                                 disable=None) as bar:
        jobs = [pool.submit(decode, start) for start in range(0, len(paths), CHUNK)]
        try:
            for job in jobs:
                bar.update(job.result())
        except BaseException:  # a bad image (or Ctrl-C): the images not yet decoded are not worth waiting for
            pool.shutdown(cancel_futures=True)
            raise
    return torch.from_numpy(images)


def _build(files: _Files) -> dict:
    """Both splits, decoded and normalised, with their classes."""
    out = {}
    for split, (paths, labels) in files.splits.items():
        out[split + '_x'] = normalise(_decode(paths, split), MEAN, STD)
        out[split + '_y'] = torch.tensor(labels, dtype=torch.long)
    return out


def get(data_dir: Path, seed: int = 0, fixed_order: bool = False, pc_valid: float | None = None,
        ntasks: int = NTASKS[0]):
    """Tiny ImageNet's tasks of consecutive classes ordered by the seed, each with a seeded validation split."""
    if ntasks not in NTASKS:
        raise UserError(f"tinyimagenet: --ntasks must be one of {', '.join(map(str, NTASKS))}, got {ntasks}")
    folder, cache_dir = data_dir / FOLDER, data_dir / 'binary_tinyimagenet'
    # With the folder gone, a cache alone will do (the raw data may have been deleted to save space)
    if not folder.is_dir() and not (cache_dir / 'data.pt').is_file():
        _fetch(data_dir)
    files = _files(folder) if folder.is_dir() else None
    tensors = cached(cache_dir, files.sources() if files else [folder / 'wnids.txt'],
                     lambda: _build(files or _files(_fetch(data_dir))), extra={'mean': list(MEAN), 'std': list(STD)})
    nclasses = files.nclasses if files else int(tensors['train_y'].max()) + 1  # every class has training images
    if nclasses % ntasks:
        raise UserError(f'tinyimagenet: --ntasks {ntasks} does not divide the {nclasses} classes of '
                        f'{folder / "wnids.txt"} (a full Tiny ImageNet has 200)')
    order = task_order(ntasks, seed, fixed_order)
    print('Task order =', order)
    data = split_classes(tensors, 'tinyimagenet', nclasses // ntasks, order, seed,
                         PC_VALID if pc_valid is None else pc_valid)
    return data, taskcla_of(data), INPUTSIZE
