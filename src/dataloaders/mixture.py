"""The paper's mixture: eight data sets, one task each, as 3x32x32 images, in a seed-shuffled order (the original's
src/dataloaders/mixture.py). Its facts kept here: the data sets and their order (the task ids 0-7), names, class
counts, per-data-set mean and std, zero padding of the 28x28 sets before normalising, grey sets copied to three
channels, SVHN's labels, the 15% validation split and the download sources of the sets torchvision lacks.

`--datasets` runs a named subset: the tasks keep the relative order the seed gives them among all eight. The data
sets' readers, caches and the way they become tasks (Collection) serve five_datasets too.
"""
import argparse
import pickle
from pathlib import Path

import numpy as np
import torch

from dataloaders import cifar
from dataloaders._common import (cached, normalise, read_torchvision, source_files, split_valid, task_order,
                                 taskcla_of)
from plumbing.utils import UserError, first_line

INPUTSIZE = [3, 32, 32]
DEFAULT_NETWORK = 'alexnet'
PC_VALID = 0.15  # the original's get(pc_valid=0.15)
SIZE = 32
SPLITS = ('train', 'test')


class DataSet:
    """One task: its name, classes, the original's normalisation, and how its files are fetched and read."""

    def __init__(self, name: str, ncla: int, ncha: int, mean, std, pad: int = 0):
        self.name, self.ncla, self.ncha, self.pad = name, ncla, ncha, pad
        self.mean, self.std = list(mean), list(std)

    def sources(self, data_dir: Path) -> list[Path]:
        """The files read (a cache of them stays valid while they are unchanged)."""
        raise NotImplementedError

    def fetch(self, data_dir: Path) -> None:
        """Download the missing files; a UserError saying where to put them when that fails."""
        for split in SPLITS:  # torchvision reads, downloading what is missing or fails its checksum
            self.read(data_dir, split)

    def read(self, data_dir: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 images (N, C, H, W) and long labels of one split, as the original's loader gave them."""
        raise NotImplementedError


class Torchvision(DataSet):
    """CIFAR-10, CIFAR-100, MNIST, Fashion-MNIST: torchvision's classes, in their folders under the data folder."""

    def __init__(self, name, ncla, ncha, mean, std, cls_name: str, pad: int = 0):
        super().__init__(name, ncla, ncha, mean, std, pad)
        self.cls_name = cls_name

    def _cls(self):
        from torchvision import datasets
        return getattr(datasets, self.cls_name)

    def sources(self, data_dir):
        return source_files(self.cls_name, data_dir)

    def read(self, data_dir, split):
        # CIFAR's python batches read directly, as the cifar experiment does; MNIST's idx files checked first
        return read_torchvision(self._cls(), data_dir, train=split == 'train')


class SVHN(DataSet):
    """SVHN's train_32x32.mat and test_32x32.mat, in the data folder itself (torchvision's and the original's place)."""

    PAGE = 'http://ufldl.stanford.edu/housenumbers/'

    def sources(self, data_dir):
        return [data_dir / f'{split}_32x32.mat' for split in SPLITS]

    def read(self, data_dir, split):
        from torchvision import datasets
        try:
            ds = datasets.SVHN(str(data_dir), split=split, download=True)  # downloads only a missing or bad file
        except Exception as e:
            raise UserError(f'SVHN is missing or corrupt in {data_dir} and could not be downloaded ({first_line(e)}). '
                            f'Download train_32x32.mat and test_32x32.mat from {self.PAGE} and put them in '
                            f'{data_dir}, or pass --data-dir') from None
        # The original's torchvision (0.1.9) gave SVHN's own labels, 1-9 for digits 1-9 and 10 for digit 0, and the
        # original subtracted 1; torchvision now maps 10 to 0, so digit 0 is class 9 and digit d class d-1 here too
        return torch.from_numpy(ds.data), (torch.as_tensor(ds.labels, dtype=torch.long) - 1) % 10


class TrafficSigns(DataSet):
    """German traffic signs: the original's 32x32 pickles (traffic_signs/lab 2 data/train.p, test.p) when present or
    downloadable, else torchvision's GTSRB (gtsrb/), whose images of various sizes are resized to 32x32."""

    # The original's source: Udacity's pickled GTSRB, extracted from this archive into dat/traffic_signs/
    URL = ('https://d17h27t6h515a5.cloudfront.net/topher/2016/October/580d53ce_traffic-sign-data/'
           'traffic-sign-data.zip')
    ARCHIVE = 'traffic_signs_dataset.zip'

    def _pickles(self, data_dir: Path) -> list[Path]:
        return [data_dir / 'traffic_signs' / 'lab 2 data' / f'{split}.p' for split in SPLITS]

    @staticmethod
    def _gtsrb(data_dir: Path) -> list[Path]:
        """torchvision's GTSRB files: training images (a folder per class), test images, test labels."""
        base = data_dir / 'gtsrb'
        return (sorted((base / 'GTSRB' / 'Training').glob('*/*.ppm'))
                + sorted((base / 'GTSRB' / 'Final_Test' / 'Images').glob('*.ppm')) + [base / 'GT-final_test.csv'])

    def _use_pickles(self, data_dir: Path) -> bool:
        return all(p.is_file() for p in self._pickles(data_dir)) or not (data_dir / 'gtsrb').is_dir()

    def sources(self, data_dir):
        return self._pickles(data_dir) if self._use_pickles(data_dir) else self._gtsrb(data_dir)

    def fetch(self, data_dir):
        from torchvision import datasets
        from torchvision.datasets.utils import download_and_extract_archive
        folder = data_dir / 'traffic_signs'
        try:  # the original's archive (used as it is when already there), unzipped in place
            download_and_extract_archive(self.URL, str(folder), filename=self.ARCHIVE)
            return
        except Exception as e:
            first = first_line(e)
        try:
            for split in SPLITS:
                datasets.GTSRB(str(data_dir), split=split, download=True)
        except Exception as e:
            raise UserError(
                f'the German traffic signs are missing and could not be downloaded ({first}; {first_line(e)}). Put '
                f"the original's pickles train.p and test.p (in {self.URL}) in {folder / 'lab 2 data'}, or "
                f"torchvision's GTSRB (GTSRB-Training_fixed.zip, GTSRB_Final_Test_Images.zip and "
                f'GTSRB_Final_Test_GT.zip from https://sid.erda.dk/public/archives/daaeac0d7ce1152aea9b61d9f1e19370/) '
                f"extracted in {data_dir / 'gtsrb'}, or pass --data-dir") from None

    def read(self, data_dir, split):
        if self._use_pickles(data_dir):
            images, labels = _unpickle(self._pickles(data_dir)[SPLITS.index(split)], self)  # images (N, H, W, C)
            return torch.from_numpy(images.astype(np.uint8)).permute(0, 3, 1, 2).contiguous(), _labels(labels)
        from PIL import Image
        from torchvision import datasets

        def resize(img):  # the whole image: the pickles hold whole images too ('coords' give the sign's box in them)
            return np.asarray(img.resize((SIZE, SIZE), Image.BILINEAR))

        try:
            ds = datasets.GTSRB(str(data_dir), split=split, transform=resize)
            pairs = [ds[i] for i in range(len(ds))]
        except Exception as e:
            raise UserError(f"torchvision's GTSRB in {data_dir / 'gtsrb'} is incomplete or corrupt ({first_line(e)}); "
                            f'extract its archives there again') from None
        images = np.stack([img for img, _ in pairs])  # (N, H, W, C)
        return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), _labels([y for _, y in pairs])


class Pickled(DataSet):
    """FaceScrub and notMNIST: the original's pickles of 32x32 images ('features', 'labels'), from its zip archives."""

    def __init__(self, name, ncla, ncha, mean, std, folder: str, files: tuple[str, str], archive: str, url: str):
        super().__init__(name, ncla, ncha, mean, std)
        self.folder, self.files, self.archive, self.url = folder, files, archive, url

    def sources(self, data_dir):
        return [data_dir / self.folder / f for f in self.files]

    def _missing(self, data_dir: Path, reason: str) -> str:
        folder = data_dir / self.folder
        return (f'{self.name} is missing or corrupt in {folder} and could not be downloaded ({reason}). Download '
                f'{self.archive} from {self.url} and put it, or the {" and ".join(self.files)} it holds, in {folder}, '
                f'or pass --data-dir')

    def fetch(self, data_dir):
        from torchvision.datasets.utils import download_and_extract_archive
        try:  # the original's archive (used as it is when already there), unzipped in place
            download_and_extract_archive(self.url, str(data_dir / self.folder), filename=self.archive)
        except Exception as e:
            raise UserError(self._missing(data_dir, first_line(e))) from None

    def read(self, data_dir, split):
        images, labels = _unpickle(self.sources(data_dir)[SPLITS.index(split)], self)  # images (N, C, H, W)
        # FaceScrub's pickles hold int8 (their author's script): the original's astype(uint8) recovers the bytes
        return torch.from_numpy(images.astype(np.uint8)), _labels(labels.astype(np.uint8))


def _labels(values) -> torch.Tensor:
    return torch.as_tensor(np.asarray(values).astype(np.int64))


def _unpickle(path: Path, ds: DataSet) -> tuple[np.ndarray, np.ndarray]:
    """The 'features' and 'labels' of a pickle written by Python 2 or 3 (latin1 decodes Python 2's numpy arrays)."""
    try:
        with open(path, 'rb') as f:
            d = pickle.load(f, encoding='latin1')
        return np.asarray(d['features']), np.asarray(d['labels'])
    except Exception as e:
        raise UserError(f'{ds.name}: cannot read {path} ({first_line(e)}); put an intact copy there') from None


# The original's task ids 0-7, names, class counts, means and stds (CIFAR's those of cifar.py, MNIST's and
# Fashion-MNIST's computed with the padding, which the original pads with black before normalising)
DATASETS = (
    Torchvision('cifar10', 10, 3, cifar.MEAN, cifar.STD, 'CIFAR10'),
    Torchvision('cifar100', 100, 3, cifar.MEAN, cifar.STD, 'CIFAR100'),
    Torchvision('mnist', 10, 1, (0.1,), (0.2752,), 'MNIST', pad=2),
    SVHN('svhn', 10, 3, (0.4377, 0.4438, 0.4728), (0.198, 0.201, 0.197)),
    Torchvision('fashion-mnist', 10, 1, (0.2190,), (0.3318,), 'FashionMNIST', pad=2),
    TrafficSigns('traffic-signs', 43, 3, (0.3398, 0.3117, 0.3210), (0.2755, 0.2647, 0.2712)),
    Pickled('facescrub', 100, 3, (0.5163, 0.5569, 0.4695), (0.2307, 0.2272, 0.2479), 'facescrub',
            ('facescrub_train_100.pkl', 'facescrub_test_100.pkl'), 'facescrub_100.zip',
            'https://github.com/nkundiushuti/facescrub_subset/blob/master/data/facescrub_100.zip?raw=true'),
    Pickled('notmnist', 10, 1, (0.4254,), (0.4501,), 'notmnist', ('notmnist_train.pkl', 'notmnist_test.pkl'),
            'notmnist.zip', 'https://github.com/nkundiushuti/notmnist_convert/blob/master/notmnist.zip?raw=true'),
)


def _build(ds: DataSet, data_dir: Path) -> dict:
    """A data set's train and test splits, padded and normalised as the original, grey ones still one channel."""
    out = {}
    for split in SPLITS:
        images, labels = ds.read(data_dir, split)
        shape, expected = tuple(images.shape[1:]), (ds.ncha, SIZE - 2 * ds.pad, SIZE - 2 * ds.pad)
        if (shape != expected or len(labels) != len(images) or len(labels) == 0 or labels.min() < 0
                or labels.max() >= ds.ncla):
            raise UserError(f'{ds.name}: its {split} files hold {len(images)} images of shape {shape} and '
                            f'{len(labels)} labels; expected images of shape {expected}, labels 0-{ds.ncla - 1}')
        # Pixels of value 0 before normalising, as the original's transforms.Pad(2, fill=0) before ToTensor
        images = torch.nn.functional.pad(images, (ds.pad,) * 4)
        out[split + '_x'] = normalise(images, ds.mean, ds.std)
        out[split + '_y'] = labels
    return out


def _load(ds: DataSet, data_dir: Path) -> dict:
    """A data set's tensors through its cache (dat/binary_mixture/<name>/), its files fetched first if missing."""
    cache_dir = data_dir / 'binary_mixture' / ds.name
    present = [p.is_file() for p in ds.sources(data_dir)]
    # With none of its files left, a cache alone will do (the raw data may have been deleted to save space)
    if not all(present) and (any(present) or not (cache_dir / 'data.pt').is_file()):
        ds.fetch(data_dir)
    return cached(cache_dir, ds.sources(data_dir), lambda: _build(ds, data_dir),
                  extra={'mean': ds.mean, 'std': ds.std, 'pad': ds.pad})


class Collection:
    """Data sets as tasks, one each, ordered by the seed's shuffle of their ids (their place in `datasets`), each
    with a seeded validation split; a `--datasets` subset keeps the order the seed gives it among all of them."""

    def __init__(self, experiment: str, datasets: tuple[DataSet, ...], pc_valid: float):
        self.experiment, self.datasets, self.pc_valid = experiment, datasets, pc_valid
        self.names = [ds.name for ds in datasets]

    def checked_names(self, names: list[str]) -> list[str]:
        """The names if they are distinct names of the collection's data sets, else a ValueError."""
        if not names or len(set(names)) < len(names) or any(n not in self.names for n in names):
            raise ValueError(f"expected distinct names among {','.join(self.names)}, got {','.join(names) or 'none'}")
        return names

    def dataset_list(self, text: str) -> list[str]:
        """Parse --datasets' comma-separated names."""
        try:
            return self.checked_names([n.strip() for n in text.split(',') if n.strip()])
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    def add_arguments(self, parser) -> None:
        """The experiment's own flags."""
        parser.add_argument('--datasets', type=self.dataset_list, default=list(self.names), metavar='NAME,...',
                            help=f"run on these data sets only, in the seed's order (default: all, "
                                 f"{','.join(self.names)})")

    def get(self, data_dir: Path, seed: int, fixed_order: bool, pc_valid: float | None,
            datasets: list[str] | None) -> tuple[list[dict], list, list[int]]:
        """The tasks (all, or the named ones) ordered by the seed, each with a seeded validation split."""
        try:
            chosen = set(self.names if datasets is None else self.checked_names(list(datasets)))
        except ValueError as e:
            raise UserError(f'{self.experiment} data sets: {e}') from None
        ids = [i for i in task_order(len(self.datasets), seed, fixed_order) if self.names[i] in chosen]
        print('Task order =', ids)
        tensors, missing = {}, {}
        for i in sorted(ids):  # every data set is tried, so that one message names all that are missing
            try:
                tensors[i] = _load(self.datasets[i], data_dir)
            except UserError as e:
                missing[self.names[i]] = str(e)
        if missing:
            raise UserError(f"{self.experiment}: missing data for {', '.join(missing)} (or leave them out with "
                            f"--datasets). " + ' '.join(f'[{name}] {message}' for name, message in missing.items()))
        data = []
        for i in ids:
            ds = self.datasets[i]
            task = {'name': ds.name, 'ncla': ds.ncla}
            for split in SPLITS:
                x = tensors[i][split + '_x']
                # The original copies grey images to three equal channels after normalising
                task[split] = {'x': x.expand(-1, 3, -1, -1).contiguous(), 'y': tensors[i][split + '_y']}
            data.append(task)
        split_valid(data, seed, self.pc_valid if pc_valid is None else pc_valid)
        return data, taskcla_of(data), INPUTSIZE


MIXTURE = Collection('mixture', DATASETS, PC_VALID)
NAMES = MIXTURE.names
add_arguments = MIXTURE.add_arguments


def get(data_dir: Path, seed: int = 0, fixed_order: bool = False, pc_valid: float | None = None,
        datasets: list[str] | None = None):
    """The mixture's tasks (all eight, or the named ones) ordered by the seed, each with a seeded validation split."""
    return MIXTURE.get(data_dir, seed, fixed_order, pc_valid, datasets)
