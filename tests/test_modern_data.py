"""The experiments of the later literature on tiny data in their real formats: split_cifar100 and five_datasets (GPM's
benchmarks) and tinyimagenet: tasks, order, normalisation checked by hand, validation split, cache, missing and
corrupt data (what every experiment declares, its flags among them: tests/test_contracts.py)."""
import pickle
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import datasets, transforms
from torchvision.datasets.folder import pil_loader

from dataloaders import _common, cifar, five_datasets, mixture, split_cifar100, tinyimagenet
from plumbing.utils import Parser, UserError
import fixtures
from fixtures import OFFLINE

SEED0_ORDER_10 = [2, 8, 4, 9, 1, 6, 7, 3, 0, 5]  # sklearn.utils.shuffle(np.arange(10), random_state=0)


@pytest.fixture
def offline(monkeypatch):
    """Every download fails at once, as on a machine without internet."""
    for var, value in OFFLINE.items():
        monkeypatch.setenv(var, value)


def one_line_error(call, *fragments: str) -> str:
    """call() raises a one-line UserError holding every fragment; its message."""
    with pytest.raises(UserError) as e:
        call()
    message = str(e.value)
    assert '\n' not in message
    for fragment in fragments:
        assert fragment in message, message
    return message


def by_hand(value: int, mean: float, std: float) -> torch.Tensor:
    """A pixel byte normalised as ToTensor and Normalize do it, in float32: (value / 255 - mean) / std."""
    return torch.tensor((np.float32(value) / np.float32(255) - np.float32(mean)) / np.float32(std))


########################################################################################################################
# split_cifar100 (the fixture: 5 training and 3 test images per CIFAR-100 class)


def test_split_cifar100_tasks_in_label_order(data_dir):
    data, taskcla, inputsize = split_cifar100.get(data_dir, seed=3)
    assert inputsize == [3, 32, 32] and taskcla == [(t, 10) for t in range(10)]
    # GPM's order whatever the seed: task k holds labels 10k .. 10k+9
    assert [task['name'] for task in data] == [f'cifar100-{10 * k}-{10 * k + 9}' for k in range(10)]
    for task in data:
        assert task['valid']['x'].shape == (2, 3, 32, 32)  # 5% of 50, held out
        assert task['train']['x'].shape == (48, 3, 32, 32) and task['test']['x'].shape == (30, 3, 32, 32)
        for split in ('train', 'valid', 'test'):
            assert task[split]['x'].dtype == torch.float32 and task[split]['y'].dtype == torch.long
            assert 0 <= task[split]['y'].min() and task[split]['y'].max() <= 9
    shuffled, _, _ = split_cifar100.get(data_dir, seed=0, seed_order=True)
    assert [task['name'] for task in shuffled] == [f'cifar100-{10 * k}-{10 * k + 9}' for k in SEED0_ORDER_10]
    twenty, taskcla, _ = split_cifar100.get(data_dir, seed=0, ntasks=20)
    assert taskcla == [(t, 5) for t in range(20)] and twenty[19]['name'] == 'cifar100-95-99'
    assert twenty[0]['train']['x'].shape[0] + twenty[0]['valid']['x'].shape[0] == 25


def test_split_cifar100_values(data_dir):
    """A task is its classes' images in the files' order, normalised as torchvision with HAT's mean and std."""
    data, _, _ = split_cifar100.get(data_dir, pc_valid=0)
    ds = datasets.CIFAR100(str(data_dir), train=False, transform=transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize(cifar.MEAN, cifar.STD)]))
    expected = [(x, y) for x, y in ds if y // 10 == 3]
    assert torch.equal(data[3]['test']['x'], torch.stack([x for x, _ in expected]))
    assert data[3]['test']['y'].tolist() == [y - 30 for _, y in expected]
    # One pixel by hand: the first test image of labels 30-39, green plane, row 5, column 7, from the pickle itself
    with open(data_dir / 'cifar-100-python' / 'test', 'rb') as f:
        batch = pickle.load(f, encoding='latin1')
    first = next(i for i, y in enumerate(batch['fine_labels']) if 30 <= y < 40)
    value = int(batch['data'][first][1 * 1024 + 5 * 32 + 7])
    assert torch.equal(data[3]['test']['x'][0, 1, 5, 7], by_hand(value, 123.0 / 255, 62.1 / 255))


def test_split_cifar100_validation_split_is_seeded(data_dir):
    held, _, _ = split_cifar100.get(data_dir, seed=4, pc_valid=0.1)
    full, _, _ = split_cifar100.get(data_dir, seed=4, pc_valid=0)
    r = _common.permutation(50, 4)  # shuffle(np.arange(50), random_state=4): the first 5 held out
    assert torch.equal(held[6]['valid']['x'], full[6]['train']['x'][r[:5]])
    assert torch.equal(held[6]['train']['y'], full[6]['train']['y'][r[5:]])


def test_split_cifar100_cache_and_missing_data(fresh_data_dir, tmp_path, offline):
    first, _, _ = split_cifar100.get(fresh_data_dir)
    cache = fresh_data_dir / 'binary_split_cifar100' / 'data.pt'
    stamp = cache.stat().st_mtime_ns
    shutil.rmtree(fresh_data_dir / 'cifar-100-python')  # raw data deleted: the cache alone is enough
    again, _, _ = split_cifar100.get(fresh_data_dir, ntasks=20)
    assert cache.stat().st_mtime_ns == stamp
    upper = first[0]['test']['y'] >= 5  # task 1 of 20: labels 5-9, task 0 of 10's upper half
    assert torch.equal(again[1]['test']['x'], first[0]['test']['x'][upper])
    one_line_error(lambda: split_cifar100.get(tmp_path / 'empty'), 'CIFAR100 is missing or corrupt in',
                   str(tmp_path / 'empty' / 'cifar-100-python'), 'cifar-100-python.tar.gz')


def test_split_cifar100_corrupt_file_is_named(fresh_data_dir, offline):
    batch = fresh_data_dir / 'cifar-100-python' / 'test'
    batch.write_bytes(batch.read_bytes()[:-10])
    one_line_error(lambda: split_cifar100.get(fresh_data_dir), 'CIFAR100 is missing or corrupt in',
                   '(cifar-100-python/test does not match its md5 checksum)')


def test_split_cifar100_bad_ntasks(data_dir):
    one_line_error(lambda: split_cifar100.get(data_dir, ntasks=7), '--ntasks must be one of 10, 20, got 7')
    parser = Parser()
    split_cifar100.add_arguments(parser)
    with pytest.raises(UserError, match=r'argument --ntasks: invalid choice: 25 \(choose from 10, 20\)'):
        parser.parse_args(['--ntasks', '25'])


########################################################################################################################
# five_datasets (the fixture sets of the mixture)


FIVE_SIZES = {'cifar10': (400, 100), 'mnist': (400, 100), 'svhn': (80, 30), 'notmnist': (80, 30),
              'fashion-mnist': (400, 100)}  # (training, test) images


def test_five_datasets_tasks_order_and_splits(data_dir):
    data, taskcla, inputsize = five_datasets.get(data_dir, seed=0)
    assert inputsize == [3, 32, 32] and taskcla == [(t, 10) for t in range(5)]
    # GPM's fixed order whatever the seed (its idata = np.arange(5))
    assert [task['name'] for task in data] == ['cifar10', 'mnist', 'svhn', 'fashion-mnist', 'notmnist']
    assert [task['name'] for task in five_datasets.get(data_dir, seed=3)[0]] == five_datasets.NAMES
    for task in data:
        ntrain, ntest = FIVE_SIZES[task['name']]
        assert task['valid']['x'].shape == (int(0.05 * ntrain), 3, 32, 32)
        assert task['train']['x'].shape == (ntrain - int(0.05 * ntrain), 3, 32, 32)
        assert task['test']['x'].shape == (ntest, 3, 32, 32) and task['test']['y'].max() <= 9
    # --seed-order: the ids 0-4 in seed 0's shuffle 2, 0, 1, 3, 4
    shuffled, _, _ = five_datasets.get(data_dir, seed=0, seed_order=True, pc_valid=0)
    assert [task['name'] for task in shuffled] == ['svhn', 'cifar10', 'mnist', 'fashion-mnist', 'notmnist']
    r = _common.permutation(400, 0)  # the first 5% of a seed-shuffled training set held out
    assert torch.equal(data[1]['valid']['x'], shuffled[2]['train']['x'][r[:20]])


def test_five_datasets_are_the_mixtures_sets(data_dir):
    """The same readers, normalisation and caches as the mixture's (dat/binary_mixture/<name>/); SVHN's labels
    torchvision's, as GPM's."""
    five, _, _ = five_datasets.get(data_dir)
    mix, _, _ = mixture.get(data_dir, fixed_order=True, datasets=five_datasets.NAMES)
    mix = {task['name']: task for task in mix}
    for task in five:
        assert torch.equal(task['test']['x'], mix[task['name']]['test']['x'])
        shift = 1 if task['name'] == 'svhn' else 0  # the mixture's class d - 1 of digit d is class d here
        assert torch.equal(task['test']['y'], (mix[task['name']]['test']['y'] + shift) % 10)
        assert (data_dir / 'binary_mixture' / task['name'] / 'data.pt').is_file()
    # By hand: Fashion-MNIST's first test image, row 3, column 4 of the idx file, padded by 2, in all three channels
    raw = (data_dir / 'FashionMNIST' / 'raw' / 't10k-images-idx3-ubyte').read_bytes()
    x = five[3]['test']['x'][0]
    assert torch.equal(x[:, 5, 6], by_hand(raw[16 + 3 * 28 + 4], 0.2190, 0.3318).expand(3))
    assert torch.equal(x[:, 0, 0], by_hand(0, 0.2190, 0.3318).expand(3))  # the black border


def test_five_datasets_subset_and_missing_data(data_dir, tmp_path, offline):
    data, taskcla, _ = five_datasets.get(data_dir, datasets=['fashion-mnist'])
    assert [task['name'] for task in data] == ['fashion-mnist'] and taskcla == [(0, 10)]
    one_line_error(lambda: five_datasets.get(data_dir, datasets=['facescrub']),
                   'five_datasets data sets: expected distinct names among cifar10,mnist,svhn,fashion-mnist,notmnist, '
                   'got facescrub')
    parser = Parser()
    five_datasets.add_arguments(parser)
    with pytest.raises(UserError, match='argument --datasets: expected distinct names'):
        parser.parse_args(['--datasets', 'fashion_mnist'])
    one_line_error(lambda: five_datasets.get(tmp_path, datasets=['svhn', 'notmnist']),
                   'five_datasets: missing data for svhn, notmnist (or leave them out with --datasets)',
                   'test_32x32.mat', str(tmp_path / 'notmnist'))


########################################################################################################################
# tinyimagenet (the fixture: 20 classes, 10 training and 2 validation images each)


@pytest.fixture(scope='module')
def tiny_dir(tmp_path_factory):
    """A data folder with the tiny Tiny ImageNet (its cache built once)."""
    root = tmp_path_factory.mktemp('tiny')
    fixtures.write_tinyimagenet(root, train_per_class=10)
    return root


@pytest.fixture
def own_tiny(tmp_path):
    """A tiny Tiny ImageNet of one's own, to break; the wnids."""
    return tmp_path, fixtures.write_tinyimagenet(tmp_path, train_per_class=10)


def normalised(path) -> torch.Tensor:
    """An image as torchvision's ImageFolder loads it, through ToTensor and Normalize with ImageNet's mean and std."""
    return transforms.Normalize(tinyimagenet.MEAN, tinyimagenet.STD)(transforms.ToTensor()(pil_loader(path)))


def test_tinyimagenet_tasks_order_and_splits(tiny_dir):
    data, taskcla, inputsize = tinyimagenet.get(tiny_dir, seed=0)
    assert inputsize == [3, 64, 64] and taskcla == [(t, 2) for t in range(10)]
    assert [task['name'] for task in data] == [f'tinyimagenet-{2 * k}-{2 * k + 1}' for k in SEED0_ORDER_10]
    for task in data:
        assert task['valid']['x'].shape == (1, 3, 64, 64)  # 5% of 20
        assert task['train']['x'].shape == (19, 3, 64, 64) and task['test']['x'].shape == (4, 3, 64, 64)
        assert set(task['test']['y'].tolist()) == {0, 1} and task['train']['x'].dtype == torch.float32
    twenty, taskcla, _ = tinyimagenet.get(tiny_dir, ntasks=20, fixed_order=True, pc_valid=0.1)
    assert taskcla == [(t, 1) for t in range(20)] and twenty[7]['name'] == 'tinyimagenet-7-7'
    one_line_error(lambda: tinyimagenet.get(tiny_dir, ntasks=20, fixed_order=True),  # 5% of 10 images
                   'tinyimagenet-0-0: --pc-valid 0.05 of its 10 training images is none')
    one_line_error(lambda: tinyimagenet.get(tiny_dir, ntasks=40),
                   '--ntasks 40 does not divide the 20 classes of', 'wnids.txt')
    one_line_error(lambda: tinyimagenet.get(tiny_dir, ntasks=7), '--ntasks must be one of 10, 20, 40, got 7')
    parser = Parser()
    tinyimagenet.add_arguments(parser)
    with pytest.raises(UserError, match=r'argument --ntasks: invalid choice: 30 \(choose from 10, 20, 40\)'):
        parser.parse_args(['--ntasks', '30'])


def test_tinyimagenet_classes_in_wnids_order_decoded_as_imagefolder(tiny_dir):
    data, _, _ = tinyimagenet.get(tiny_dir, fixed_order=True, pc_valid=0)
    base = tiny_dir / 'tiny-imagenet-200'
    wnids = (base / 'wnids.txt').read_text().split()
    assert wnids != sorted(wnids)  # so file order is what is tested
    task = data[4]  # classes 8 and 9 of wnids.txt, training images by file name
    paths = sorted((base / 'train' / wnids[8] / 'images').glob('*.JPEG'))
    paths += sorted((base / 'train' / wnids[9] / 'images').glob('*.JPEG'))
    assert Image.open(paths[0]).mode == 'L'  # grey JPEG, made RGB as ImageFolder makes it
    assert torch.equal(task['train']['x'], torch.stack([normalised(p) for p in paths]))
    assert task['train']['y'].tolist() == [0] * 10 + [1] * 10
    rows = [line.split('\t') for line in (base / 'val' / 'val_annotations.txt').read_text().splitlines()]
    tests = [(name, wnids.index(w) - 8) for name, w, *_ in rows if w in wnids[8:10]]  # the file's order
    assert torch.equal(task['test']['x'], torch.stack([normalised(base / 'val' / 'images' / n) for n, _ in tests]))
    assert task['test']['y'].tolist() == [y for _, y in tests]
    # One pixel by hand: red, row 10, column 20, of the first test image, with ImageNet's mean and std
    value = int(np.asarray(Image.open(base / 'val' / 'images' / tests[0][0]).convert('RGB'))[10, 20, 0])
    assert torch.equal(task['test']['x'][0, 0, 10, 20], by_hand(value, 0.485, 0.229))


def test_tinyimagenet_validation_split_is_seeded(tiny_dir):
    held, _, _ = tinyimagenet.get(tiny_dir, seed=2, fixed_order=True, pc_valid=0.25)
    full, _, _ = tinyimagenet.get(tiny_dir, seed=2, fixed_order=True, pc_valid=0)
    r = _common.permutation(20, 2)
    assert torch.equal(held[3]['valid']['x'], full[3]['train']['x'][r[:5]])
    assert torch.equal(held[3]['train']['y'], full[3]['train']['y'][r[5:]])


def test_tinyimagenet_cache_reused_then_alone(own_tiny, offline):
    root, _ = own_tiny
    first, _, _ = tinyimagenet.get(root, fixed_order=True)
    cache = root / 'binary_tinyimagenet' / 'data.pt'
    stamp = cache.stat().st_mtime_ns
    tinyimagenet.get(root)
    assert cache.stat().st_mtime_ns == stamp  # reused
    shutil.rmtree(root / 'tiny-imagenet-200')  # raw data deleted: the cache alone is enough, its classes counted
    alone, taskcla, _ = tinyimagenet.get(root, fixed_order=True, pc_valid=0.1, ntasks=20)
    second = first[0]['test']['y'] == 1  # task 1 of 20: class 1, task 0 of 10's second class
    assert taskcla == [(t, 1) for t in range(20)] and torch.equal(alone[1]['test']['x'], first[0]['test']['x'][second])


def test_tinyimagenet_archive_is_extracted_and_missing_data_is_one_line(own_tiny, tmp_path, offline):
    root, _ = own_tiny
    own = tmp_path / 'zipped'
    shutil.make_archive(str(own / 'tiny-imagenet-200'), 'zip', root, 'tiny-imagenet-200')
    data, _, _ = tinyimagenet.get(own)  # offline: the archive in the folder is used, not downloaded
    assert (own / 'tiny-imagenet-200' / 'wnids.txt').is_file() and len(data) == 10
    empty = tmp_path / 'empty'
    one_line_error(lambda: tinyimagenet.get(empty), f'Tiny ImageNet is missing in {empty} and could not be '
                   'downloaded (', 'http://cs231n.stanford.edu/tiny-imagenet-200.zip', 'wnids.txt',
                   'val/val_annotations.txt')


def _resize(base, wnids):
    path = base / 'train' / wnids[3] / 'images' / f'{wnids[3]}_1.JPEG'
    Image.new('RGB', (60, 64)).save(path)
    return path, 'is 60x64 pixels, expected 64x64'


def _truncate(base, wnids):
    path = base / 'val' / 'images' / 'val_5.JPEG'
    path.write_bytes(path.read_bytes()[:300])
    return path, 'cannot be decoded ('


def _extra_class(base, wnids):
    with open(base / 'wnids.txt', 'a') as f:
        f.write('n09999999\n')
    return base / 'train', 'holds 20 class folders where wnids.txt lists 21 classes (n09999999 is in only one of them)'


def _unlisted_image(base, wnids):
    shutil.copy(base / 'val' / 'images' / 'val_0.JPEG', base / 'val' / 'images' / 'val_99.JPEG')
    return base / 'val' / 'images', ('holds 41 JPEG images where val_annotations.txt lists 40 (val_99.JPEG is in only '
                                     'one of them)')


def _unknown_class(base, wnids):
    path = base / 'val' / 'val_annotations.txt'
    path.write_text(path.read_text().replace(wnids[0], 'n00000001', 1))
    return path, "names the class 'n00000001', not in wnids.txt"


@pytest.mark.parametrize('damage', [_resize, _truncate, _extra_class, _unlisted_image, _unknown_class])
def test_tinyimagenet_corrupt_file_is_one_line_naming_it(own_tiny, offline, damage):
    root, wnids = own_tiny
    path, problem = damage(root / 'tiny-imagenet-200', wnids)
    one_line_error(lambda: tinyimagenet.get(root), f'Tiny ImageNet is corrupt: {path} ', problem,
                   'extract tiny-imagenet-200.zip')
