"""The experiment loaders on tiny data in the real formats: splits, order, normalisation, cache, missing data."""
import collections
import gzip
import hashlib
import os
import pickle
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision import datasets, transforms

from dataloaders import _common, cifar, five_datasets, mixture, mnist2, pmnist, split_fmnist, split_mnist
from plumbing.utils import UserError
import fixtures
import run
from fixtures import assert_one_line_error, in_process


def test_cifar_tasks_order_and_splits(data_dir):
    data, taskcla, inputsize = cifar.get(data_dir, seed=0)
    assert inputsize == [3, 32, 32]
    # Seed 0's order, as sklearn.utils.shuffle(np.arange(10), random_state=0) gives it in the original
    order = [2, 8, 4, 9, 1, 6, 7, 3, 0, 5]
    assert [task['name'] for task in data] == [f'cifar10-{i}' if i < 5 else f'cifar100-{i - 5}' for i in order]
    assert taskcla == [(t, 2 if i < 5 else 20) for t, i in enumerate(order)]
    for task, i in zip(data, order):
        ntrain = 80 if i < 5 else 100  # fixture: 40 images per CIFAR-10 class, 5 per CIFAR-100 class
        assert task['valid']['x'].shape[0] == int(0.1 * ntrain)
        assert task['train']['x'].shape == (ntrain - int(0.1 * ntrain), 3, 32, 32)
        assert task['train']['x'].dtype == torch.float32 and task['train']['y'].dtype == torch.long
        assert set(task['train']['y'].tolist()) <= set(range(task['ncla']))
        assert task['test']['x'].shape[0] == (20 if i < 5 else 60)


def test_cifar_task_holds_its_classes_in_file_order(data_dir):
    """Task k of CIFAR-10 is classes 2k, 2k+1 relabelled 0, 1, in the files' order, normalised as torchvision."""
    data, _, _ = cifar.get(data_dir, seed=0, fixed_order=True, pc_valid=0)
    ds = datasets.CIFAR10(str(data_dir), train=False, transform=transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize(cifar.MEAN, cifar.STD)]))
    expected = [(x, y) for x, y in ds if y // 2 == 3]
    task = data[3]['test']
    assert torch.equal(task['x'], torch.stack([x for x, _ in expected]))  # bitwise: the cache is faithful
    assert task['y'].tolist() == [y % 2 for _, y in expected]


def test_validation_split_is_seeded(data_dir):
    a, _, _ = cifar.get(data_dir, seed=3, fixed_order=True)
    b, _, _ = cifar.get(data_dir, seed=3, fixed_order=True)
    c, _, _ = cifar.get(data_dir, seed=4, fixed_order=True)
    assert torch.equal(a[0]['valid']['x'], b[0]['valid']['x'])
    assert not torch.equal(a[0]['valid']['x'], c[0]['valid']['x'])
    # Seed 3 shuffles task 0's 80 images as sklearn.utils.shuffle(np.arange(80), random_state=3): 8 held out
    full, _, _ = cifar.get(data_dir, seed=3, fixed_order=True, pc_valid=0)
    held_out = _common.permutation(80, 3)[:8]
    assert torch.equal(a[0]['valid']['x'], full[0]['train']['x'][held_out])


def test_mnist2(data_dir):
    data, taskcla, inputsize = mnist2.get(data_dir, seed=0)
    assert inputsize == [1, 28, 28] and taskcla == [(0, 5), (1, 5)]
    assert [task['name'] for task in data] == ['mnist-0-4', 'mnist-5-9']
    ds = datasets.MNIST(str(data_dir), train=True, transform=transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))]))
    expected = [(x, y) for x, y in ds if y >= 5]
    assert torch.equal(data[1]['train']['x'], torch.stack([x for x, _ in expected]))
    assert data[1]['train']['y'].tolist() == [y - 5 for _, y in expected]
    # The original validates on a copy of the training set; --pc-valid holds out a real split instead
    assert torch.equal(data[0]['valid']['x'], data[0]['train']['x'])
    held, _, _ = mnist2.get(data_dir, seed=0, pc_valid=0.2)
    assert held[0]['valid']['x'].shape[0] == 40 and held[0]['train']['x'].shape[0] == 160


def test_pmnist_permutations(data_dir):
    data, taskcla, _ = pmnist.get(data_dir, seed=0)
    assert taskcla == [(t, 10) for t in range(10)]
    base, _, _ = mnist2.get(data_dir, seed=0)
    mnist = _common.mnist_normalised(data_dir, 'pmnist')
    # Seed 0's first task is permutation 2, built as sklearn.utils.shuffle(pixels, random_state=2*100+0)
    perm = pmnist.pixel_permutation(2)
    assert perm[:8].tolist() == [92, 516, 39, 376, 634, 650, 731, 261]
    assert torch.equal(data[0]['train']['x'].flatten(1), mnist['train_x'].flatten(1)[:, perm])
    assert torch.equal(data[0]['train']['y'], mnist['train_y'])
    # Another seed reorders the same ten permutations: seed 3's order is 5, 4, 1, ...; permutation 8 sat at
    # position 1 of seed 0's order, so it is shuffle(pixels, random_state=8*100+1)
    other, _, _ = pmnist.get(data_dir, seed=3)
    assert torch.equal(other[2]['test']['x'], pmnist.get(data_dir, seed=0)[0][4]['test']['x'])  # permutation 1
    assert pmnist.pixel_permutation(8)[:8].tolist() == [693, 65, 276, 673, 424, 169, 155, 773]
    assert len({tuple(pmnist.pixel_permutation(r)[:20]) for r in range(10)}) == 10


@pytest.mark.parametrize('loader,folder,prefix,mean,std', [
    (split_mnist, 'MNIST', 'mnist', (0.1307,), (0.3081,)),
    (split_fmnist, 'FashionMNIST', 'fmnist', (0.2860,), (0.3530,))])
def test_split_benchmarks(data_dir, loader, folder, prefix, mean, std):
    data, taskcla, inputsize = loader.get(data_dir, seed=0)
    assert inputsize == [1, 28, 28] and taskcla == [(t, 2) for t in range(5)]
    order = [2, 0, 1, 3, 4]  # sklearn.utils.shuffle(np.arange(5), random_state=0)
    assert [task['name'] for task in data] == [f'{prefix}-{2 * k}-{2 * k + 1}' for k in order]
    source = getattr(datasets, folder)(str(data_dir), train=False, transform=transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize(mean, std)]))
    expected = [(x, y) for x, y in source if y in (4, 5)]
    assert torch.equal(data[0]['test']['x'], torch.stack([x for x, _ in expected]))
    assert data[0]['test']['y'].tolist() == [y - 4 for _, y in expected]
    # 10% of each task's 80 training images held out, seeded
    assert data[0]['valid']['x'].shape[0] == 8 and data[0]['train']['x'].shape[0] == 72


def test_cache_is_reused_then_rebuilt_when_sources_change_or_it_is_corrupt(fresh_data_dir):
    cache = fresh_data_dir / 'binary_mnist2' / 'data.pt'
    first, _, _ = mnist2.get(fresh_data_dir)
    assert cache.is_file()
    stamp = cache.stat().st_mtime_ns

    mnist2.get(fresh_data_dir)
    assert cache.stat().st_mtime_ns == stamp  # reused

    fixtures.write_mnist(fresh_data_dir, train_per_class=30)  # new source files: rebuilt
    changed, _, _ = mnist2.get(fresh_data_dir)
    assert changed[0]['train']['x'].shape[0] == 150 and cache.stat().st_mtime_ns != stamp

    cache.write_bytes(b'not a torch file')  # corrupt: rebuilt
    again, _, _ = mnist2.get(fresh_data_dir)
    assert torch.equal(again[0]['train']['x'], changed[0]['train']['x'])

    # Raw data deleted to save space: the cache alone is enough
    for f in (fresh_data_dir / 'MNIST' / 'raw').iterdir():
        f.unlink()
    alone, _, _ = mnist2.get(fresh_data_dir)
    assert torch.equal(alone[1]['test']['x'], changed[1]['test']['x'])


def test_cache_format_change_rebuilds(fresh_data_dir, monkeypatch):
    mnist2.get(fresh_data_dir)
    cache = fresh_data_dir / 'binary_mnist2' / 'data.pt'
    stamp = cache.stat().st_mtime_ns
    monkeypatch.setattr(_common, 'CACHE_FORMAT', _common.CACHE_FORMAT + 1)
    mnist2.get(fresh_data_dir)
    assert cache.stat().st_mtime_ns != stamp


@pytest.fixture
def offline(monkeypatch):
    """Every download fails at once, as on a machine without internet (a proxy on a closed local port)."""
    for var in ('http_proxy', 'https_proxy', 'HTTP_PROXY', 'HTTPS_PROXY'):
        monkeypatch.setenv(var, 'http://127.0.0.1:9')
    for var in ('no_proxy', 'NO_PROXY'):
        monkeypatch.delenv(var, raising=False)


def test_missing_data_names_the_files_and_folder(tmp_path, offline):
    with pytest.raises(UserError) as e:
        cifar.get(tmp_path)
    message = str(e.value)
    assert str(tmp_path / 'cifar-10-batches-py') in message and 'data_batch_1' in message
    assert 'cifar-10-python.tar.gz' in message and '\n' not in message
    with pytest.raises(UserError) as e:
        mnist2.get(tmp_path)
    assert str(tmp_path / 'MNIST' / 'raw') in str(e.value) and 'train-images-idx3-ubyte' in str(e.value)


def test_corrupt_data_is_a_clear_error(fresh_data_dir, offline):
    raw = fresh_data_dir / 'MNIST' / 'raw' / 'train-images-idx3-ubyte'
    raw.write_bytes(raw.read_bytes()[:1000])  # truncated
    with pytest.raises(UserError, match=f'MNIST is corrupt: {raw} holds 984 bytes of data'):
        mnist2.get(fresh_data_dir)
    batch = fresh_data_dir / 'cifar-10-batches-py' / 'data_batch_2'
    batch.write_bytes(batch.read_bytes()[:-10])  # fails its checksum; the download to replace it fails
    with pytest.raises(UserError, match='CIFAR10 is missing or corrupt'):
        cifar.get(fresh_data_dir)


def test_normalise_matches_torchvision_bitwise():
    images = torch.from_numpy(np.random.RandomState(0).randint(0, 256, (5, 3, 8, 8)).astype(np.uint8))
    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize(cifar.MEAN, cifar.STD)])
    expected = torch.stack([tf(img.permute(1, 2, 0).numpy()) for img in images])
    assert torch.equal(_common.normalise(images, cifar.MEAN, cifar.STD), expected)


def test_torchvision_files_are_torchvisions():
    """The files named without importing torchvision are those its classes read."""
    for name, (folder, files) in _common.TORCHVISION_FILES.items():
        cls = getattr(datasets, name)
        if hasattr(cls, 'train_list'):  # CIFAR
            assert (folder, files) == (cls.base_folder, [n for n, _ in cls.train_list + cls.test_list]
                                       + [cls.meta['filename']])
        else:  # the MNIST family's raw folder and decompressed idx files
            assert (folder, files) == (f'{cls.__name__}/raw', [Path(n).stem for n, _ in cls.resources])


@pytest.mark.slow
def test_a_run_on_cached_data_does_not_import_torchvision(data_dir, tmp_path):
    """torchvision takes seconds to import (4 s on a 2-core machine): a run whose data are cached starts without it."""
    split_mnist.get(data_dir)  # the cache
    script = ('import sys, run; run.main(sys.argv[1:]); '
              'print(sorted(m for m in sys.modules if m.startswith("torchvision")))')
    proc = subprocess.run([sys.executable, '-c', script, '--experiment', 'split_mnist', '--approach', 'random',
                           '--data-dir', str(data_dir), '--dry-run', '--output', str(tmp_path / 'r.txt')],
                          cwd=fixtures.ROOT / 'src', capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == '[]'


def test_cache_write_failure_is_not_fatal(fresh_data_dir, capsys):
    (fresh_data_dir / 'binary_mnist2').write_text('a file where the cache folder should be')
    data, _, _ = mnist2.get(fresh_data_dir)
    assert data[0]['train']['x'].shape[0] == 200
    assert 'could not write the data cache' in capsys.readouterr().out


def test_task_order_fixed():
    assert _common.task_order(10, 5, fixed_order=True) == list(range(10))
    assert _common.task_order(10, 5, fixed_order=False) == [9, 5, 2, 4, 7, 1, 0, 8, 6, 3]  # sklearn, seed 5


########################################################################################################################
# CIFAR's python batches read directly, against torchvision's classes


def _torchvision_only(monkeypatch):
    """Send every CIFAR read through torchvision's classes, as before the direct reader."""
    def refuse(*args, **kwargs):
        raise ValueError('direct reading switched off by the test')
    monkeypatch.setattr(_common, '_read_cifar_batches', refuse)


def test_cifar_direct_read_is_bitwise_torchvisions(data_dir, monkeypatch):
    def no_torchvision(*args, **kwargs):
        raise AssertionError('read through torchvision: the direct reader failed')
    with monkeypatch.context() as m:
        m.setattr(_common, 'load_torchvision', no_torchvision)
        direct = cifar._build(data_dir)
        splits = {(name, train): _common.read_cifar(getattr(datasets, name), data_dir, train)
                  for name in ('CIFAR10', 'CIFAR100') for train in (True, False)}
    _torchvision_only(monkeypatch)
    expected = cifar._build(data_dir)
    assert direct.keys() == expected.keys()
    for key, value in expected.items():
        assert direct[key].dtype == value.dtype and torch.equal(direct[key], value), key
    for (name, train), (images, labels) in splits.items():
        ds = getattr(datasets, name)(str(data_dir), train=train)
        assert torch.equal(images, _common.as_uint8_nchw(ds)) and torch.equal(labels, _common.as_labels(ds))


def _rewrite(path, edit, wrap=dict) -> str:
    """Rewrite a CIFAR pickle with edit(batch) applied (and the dict made a `wrap`); returns the new file's md5."""
    batch = pickle.loads(path.read_bytes(), encoding='latin1')
    edit(batch)
    path.write_bytes(pickle.dumps(wrap(batch), protocol=2))
    return hashlib.md5(path.read_bytes()).hexdigest()


def _accept_md5(monkeypatch, name: str, md5: str) -> None:
    """Make CIFAR10's checksum of file `name` be `md5` (as a fixture's own checksums are registered)."""
    monkeypatch.setattr(datasets.CIFAR10, 'train_list',
                        [[f, md5 if f == name else m] for f, m in datasets.CIFAR10.train_list])


@pytest.mark.parametrize('damage', ['truncated', 'one byte changed'])
def test_cifar_corrupt_batch_is_a_one_line_error_naming_it(fresh_data_dir, offline, damage):
    batch = fresh_data_dir / 'cifar-10-batches-py' / 'data_batch_2'
    blob = bytearray(batch.read_bytes())
    if damage == 'truncated':
        batch.write_bytes(blob[:len(blob) // 2])
    else:  # a pixel: still a valid pickle of the right shapes, which only the checksum tells apart
        blob[len(blob) // 2] ^= 1
        batch.write_bytes(blob)
        assert pickle.loads(batch.read_bytes(), encoding='latin1')['data'].shape == (80, 3072)
    with pytest.raises(UserError) as e:
        cifar.get(fresh_data_dir)
    message = str(e.value)
    assert message.startswith(f'CIFAR10 is missing or corrupt in {fresh_data_dir} '
                              f'(cifar-10-batches-py/data_batch_2 does not match its md5 checksum) '
                              f'and could not be downloaded (')
    assert 'cifar-10-python.tar.gz' in message and '\n' not in message


def test_cifar_corrupt_batch_is_replaced_by_a_download(fresh_data_dir, monkeypatch):
    """torchvision's download (here: writing the fixture again) repairs a batch that fails its checksum."""
    expected, _, _ = cifar.get(fresh_data_dir, seed=0)
    batch = fresh_data_dir / 'cifar-10-batches-py' / 'data_batch_1'
    batch.write_bytes(batch.read_bytes()[:-100])
    downloads = []

    def download(self):
        downloads.append(self.train)
        fixtures.write_cifar(Path(self.root))
    monkeypatch.setattr(datasets.CIFAR10, 'download', download)
    again, _, _ = cifar.get(fresh_data_dir, seed=0)
    assert downloads == [True]  # the training split failed; the test split was read directly after the repair
    for a, b in zip(expected, again):
        assert all(torch.equal(a[split][xy], b[split][xy]) for split in ('train', 'valid', 'test') for xy in 'xy')


def test_cifar_checksummed_but_invalid_batch_is_an_error(fresh_data_dir, offline, monkeypatch):
    """A file that passes its checksum but holds labels out of range stops the build (from either reader)."""
    batch = fresh_data_dir / 'cifar-10-batches-py' / 'data_batch_3'
    _accept_md5(monkeypatch, 'data_batch_3', _rewrite(batch, lambda b: b['labels'].__setitem__(0, 10)))
    with pytest.raises(UserError, match=r'CIFAR10 in .*cifar-10-batches-py: expected 400 labels in 0-9, got 400 '
                                        r'labels in 0-10; put intact files there'):
        cifar.get(fresh_data_dir)


def test_cifar_missing_batch_keeps_the_missing_data_message(fresh_data_dir, offline):
    (fresh_data_dir / 'cifar-100-python' / 'test').unlink()
    with pytest.raises(UserError) as e:
        cifar.get(fresh_data_dir)
    root = fresh_data_dir
    assert str(e.value).startswith(f'CIFAR100 is missing or corrupt in {root} and could not be downloaded (')
    assert f'{root / "cifar-100-python"} (train, test, meta)' in str(e.value)


class _Payload:
    """Pickles as a call of os.makedirs(path): what a tampered batch could make an unpickler run."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return os.makedirs, (self.path,)


def test_cifar_tampered_batch_never_runs_code(fresh_data_dir, offline, tmp_path):
    """The direct reader unpickles while it checksums: it refuses anything but arrays, so nothing in the file runs."""
    batch = fresh_data_dir / 'cifar-10-batches-py' / 'data_batch_4'
    _rewrite(batch, lambda b: b.__setitem__('data', _Payload(tmp_path / 'ran')))
    with pytest.raises(UserError, match='data_batch_4 does not match its md5 checksum'):
        cifar.get(fresh_data_dir)
    assert not (tmp_path / 'ran').exists()


def test_cifar_batch_the_direct_reader_refuses_is_read_by_torchvision(fresh_data_dir, monkeypatch):
    """A batch intact by its checksum but pickled with a class the direct reader refuses (here an OrderedDict):
    torchvision's class reads it instead, to the same tensors."""
    batch = fresh_data_dir / 'cifar-10-batches-py' / 'data_batch_5'
    _accept_md5(monkeypatch, 'data_batch_5', _rewrite(batch, lambda b: None, wrap=collections.OrderedDict))
    with pytest.raises(ValueError, match='refusing to load collections.OrderedDict'):
        _common._read_cifar_batches(datasets.CIFAR10, fresh_data_dir, train=True)
    read = cifar._build(fresh_data_dir)
    _torchvision_only(monkeypatch)
    expected = cifar._build(fresh_data_dir)
    assert all(torch.equal(read[key], value) for key, value in expected.items())


########################################################################################################################
# MNIST's idx files: what a header says, checked against what the file holds, for every experiment that reads them


def _count(raw):
    """The images file's header says 399 images; it holds 400."""
    path = raw / 'train-images-idx3-ubyte'
    blob = bytearray(path.read_bytes())
    blob[4:8] = struct.pack('>I', 399)
    path.write_bytes(blob)
    return path, 'holds 313600 bytes of data where its header declares 399 x 28 x 28 = 312816'


def _larger_images(raw):
    path = raw / 'train-images-idx3-ubyte'
    fixtures.write_idx(path, np.zeros((400, 32, 32)))
    return path, 'holds images of 32x32 pixels, expected 28x28'


def _truncated(raw):
    path = raw / 't10k-images-idx3-ubyte'
    path.write_bytes(path.read_bytes()[:1000])
    return path, 'holds 984 bytes of data where its header declares 100 x 28 x 28 = 78400'


def _headless(raw):
    path = raw / 'train-labels-idx1-ubyte'
    path.write_bytes(b'\x00\x00\x08')
    return path, 'is too short for an idx header (3 bytes)'


def _labels_for_images(raw):
    """Swapped files: the labels where the images should be."""
    path = raw / 'train-images-idx3-ubyte'
    path.write_bytes((raw / 'train-labels-idx1-ubyte').read_bytes())
    return path, 'is not an idx file of unsigned bytes in 3 dimensions (magic number 0x00000801, expected 0x00000803)'


def _label_count(raw):
    path = raw / 't10k-labels-idx1-ubyte'
    fixtures.write_idx(path, np.zeros(99))
    return path, 'holds 99 labels for the 100 images of t10k-images-idx3-ubyte'


def _label_range(raw):
    path = raw / 'train-labels-idx1-ubyte'
    fixtures.write_idx(path, np.full(400, 12))
    return path, 'holds labels up to 12, expected 0-9'


IDX_DAMAGE = [_count, _larger_images, _truncated, _headless, _labels_for_images, _label_count, _label_range]
IDX_READERS = {  # (folder, loader) per experiment and data set
    'mnist2': ('MNIST', mnist2.get), 'pmnist': ('MNIST', pmnist.get), 'split_mnist': ('MNIST', split_mnist.get),
    'split_fmnist': ('FashionMNIST', split_fmnist.get),
    'mixture mnist': ('MNIST', lambda root: mixture.get(root, datasets=['mnist'])),
    'mixture fashion-mnist': ('FashionMNIST', lambda root: mixture.get(root, datasets=['fashion-mnist'])),
    'five_datasets mnist': ('MNIST', lambda root: five_datasets.get(root, datasets=['mnist'])),
    'five_datasets fashion-mnist': ('FashionMNIST', lambda root: five_datasets.get(root, datasets=['fashion-mnist']))}


@pytest.mark.parametrize('reader', IDX_READERS)
@pytest.mark.parametrize('damage', IDX_DAMAGE)
def test_idx_file_not_what_it_says_is_one_line_naming_it(tmp_path, offline, reader, damage):
    folder, get = IDX_READERS[reader]
    fixtures.write_mnist(tmp_path, folder=folder)
    path, problem = damage(tmp_path / folder / 'raw')
    with pytest.raises(UserError) as e:
        get(tmp_path)
    message = str(e.value)
    assert f'{folder} is corrupt: {path} {problem}; put an intact copy there ({path.name}.gz from http' in message
    assert '\n' not in message


def test_idx_file_error_ends_the_command_in_one_line(tmp_path, offline, capsys):
    fixtures.write_mnist(tmp_path / 'dat')
    path, problem = _larger_images(tmp_path / 'dat' / 'MNIST' / 'raw')
    proc = in_process(run.main, ['--experiment', 'split_mnist', '--approach', 'sgd', '--data-dir',
                                 str(tmp_path / 'dat'), '--results-dir', str(tmp_path / 'res'), '--logs-dir',
                                 str(tmp_path / 'logs')], capsys)
    assert_one_line_error(proc, f'MNIST is corrupt: {path} {problem}', 'or delete it to have it downloaded again')


########################################################################################################################
# MNIST's idx files as .gz only, recompressed (Debian's dataset-fashion-mnist): checked by content, not by md5


def _gzip_mnist(root: Path, folder: str) -> Path:
    """write_mnist's four files in root/<folder>/raw as .gz alone, compressed otherwise than the official archives
    (level 1, a fixed mtime), so torchvision's md5 check could never pass; returns the raw folder."""
    fixtures.write_mnist(root, folder=folder)
    raw = root / folder / 'raw'
    official = dict(getattr(datasets, folder).resources)
    for path in list(raw.iterdir()):
        gz = path.with_name(path.name + '.gz')
        gz.write_bytes(gzip.compress(path.read_bytes(), compresslevel=1, mtime=1234567890))
        assert hashlib.md5(gz.read_bytes()).hexdigest() != official[gz.name]
        path.unlink()
    return raw


@pytest.mark.parametrize('loader,folder', [(split_fmnist, 'FashionMNIST'), (split_mnist, 'MNIST')])
def test_recompressed_gz_alone_is_read_as_the_decompressed_files(tmp_path, offline, loader, folder):
    fixtures.write_mnist(tmp_path / 'plain', folder=folder)
    expected, _, _ = loader.get(tmp_path / 'plain', seed=0)
    raw = _gzip_mnist(tmp_path / 'gz', folder)
    data, _, _ = loader.get(tmp_path / 'gz', seed=0)
    for a, b in zip(expected, data):
        assert a['name'] == b['name']
        assert all(torch.equal(a[split][xy], b[split][xy]) for split in ('train', 'valid', 'test') for xy in 'xy')
    # Decompressed beside the .gz, byte for byte what write_mnist wrote: torchvision reads them, the cache tracks them
    for path in (tmp_path / 'plain' / folder / 'raw').iterdir():
        assert (raw / path.name).read_bytes() == path.read_bytes()


def _gz_truncated(raw):
    path = raw / 'train-images-idx3-ubyte.gz'
    path.write_bytes(path.read_bytes()[:200])
    return path, 'is truncated: its gzip data ends early (200 bytes)'


def _gz_not_gzip(raw):
    """The decompressed labels under the .gz's name."""
    path = raw / 'train-labels-idx1-ubyte.gz'
    path.write_bytes(gzip.decompress(path.read_bytes()))
    return path, 'is not gzip data'


def _gz_bad_crc(raw):
    path = raw / 't10k-labels-idx1-ubyte.gz'
    blob = bytearray(path.read_bytes())
    blob[-8] ^= 1  # the trailer's CRC-32 of the decompressed data
    path.write_bytes(blob)
    return path, 'is corrupt gzip data (CRC check failed'


def _gz_labels_for_images(raw):
    path = raw / 't10k-images-idx3-ubyte.gz'
    path.write_bytes((raw / 't10k-labels-idx1-ubyte.gz').read_bytes())
    return path, 'is not an idx file of unsigned bytes in 3 dimensions (magic number 0x00000801, expected 0x00000803)'


def _gz_label_count(raw):
    path = raw / 'train-labels-idx1-ubyte.gz'
    labels = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(struct.pack('>II', 0x801, 399) + labels[8:-1]))
    return path, 'holds 399 labels for the 400 images of train-images-idx3-ubyte.gz'


def _gz_count(raw):
    """The header says 399 images; the file holds 400."""
    path = raw / 'train-images-idx3-ubyte.gz'
    images = bytearray(gzip.decompress(path.read_bytes()))
    images[4:8] = struct.pack('>I', 399)
    path.write_bytes(gzip.compress(images))
    return path, 'holds 313600 bytes of decompressed data where its header declares 399 x 28 x 28 = 312816'


def _gz_label_range(raw):
    path = raw / 't10k-labels-idx1-ubyte.gz'
    path.write_bytes(gzip.compress(struct.pack('>II', 0x801, 100) + bytes([3] * 99 + [10])))
    return path, 'holds labels up to 10, expected 0-9'


GZ_DAMAGE = [_gz_truncated, _gz_not_gzip, _gz_bad_crc, _gz_labels_for_images, _gz_label_count, _gz_count,
             _gz_label_range]


@pytest.mark.parametrize('damage', GZ_DAMAGE)
def test_corrupt_gz_is_one_line_naming_it(tmp_path, offline, damage):
    raw = _gzip_mnist(tmp_path, 'FashionMNIST')
    path, problem = damage(raw)
    with pytest.raises(UserError) as e:
        split_fmnist.get(tmp_path)
    message = str(e.value)
    assert message.startswith(f'FashionMNIST is corrupt: {path} {problem}')
    assert message.endswith('; replace it with an intact copy (from http://fashion-mnist.s3-website.eu-central-1.'
                            'amazonaws.com/), or delete it to have it downloaded again')
    assert '\n' not in message
    prefix = path.name.split('-')[0]
    assert not list(raw.glob(f'{prefix}-*-ubyte'))  # nothing of the damaged split decompressed


def test_split_missing_in_both_forms_is_named(tmp_path, offline):
    raw = _gzip_mnist(tmp_path, 'FashionMNIST')
    (raw / 't10k-labels-idx1-ubyte.gz').unlink()
    with pytest.raises(UserError) as e:
        split_fmnist.get(tmp_path)
    assert str(e.value).startswith(f'FashionMNIST is missing or corrupt in {tmp_path} (found no '
                                   f't10k-labels-idx1-ubyte.gz, compressed or not) and could not be downloaded (')


def test_gz_in_a_read_only_folder_is_one_line(tmp_path, offline, monkeypatch):
    """Where the decompressed file cannot be written beside its .gz (a folder linked to a read-only one)."""
    raw = _gzip_mnist(tmp_path, 'FashionMNIST')

    def refuse(path, write):
        raise PermissionError(13, 'Permission denied')
    monkeypatch.setattr(_common, 'atomic_write', refuse)
    with pytest.raises(UserError) as e:
        split_fmnist.get(tmp_path)
    assert str(e.value) == (f'FashionMNIST: cannot write train-images-idx3-ubyte, decompressed from '
                            f'{raw / "train-images-idx3-ubyte.gz"}, in {raw}: Permission denied; make the folder '
                            f'writable, or put the decompressed file there')


def test_corrupt_gz_ends_the_command_in_one_line(tmp_path, offline, capsys):
    path, problem = _gz_label_count(_gzip_mnist(tmp_path / 'dat', 'FashionMNIST'))
    proc = in_process(run.main, ['--experiment', 'split_fmnist', '--approach', 'sgd', '--dry-run', '--data-dir',
                                 str(tmp_path / 'dat'), '--results-dir', str(tmp_path / 'res'), '--logs-dir',
                                 str(tmp_path / 'logs')], capsys)
    assert_one_line_error(proc, f'FashionMNIST is corrupt: {path} {problem}', 'replace it with an intact copy')


def test_recompressed_gz_runs_the_experiment(tmp_path, offline):
    _gzip_mnist(tmp_path / 'dat', 'FashionMNIST')
    saved = fixtures.run_main(tmp_path / 'dat', tmp_path, '--experiment', 'split_fmnist', '--approach', 'sgd',
                              '--dry-run')
    assert saved['tasks_done'] == 5 and sorted(saved['task_names']) == [f'fmnist-{k}-{k + 1}' for k in range(0, 10, 2)]


def test_cifar_names_every_missing_data_set_at_once(tmp_path, offline):
    """Both CIFAR-10 and CIFAR-100 missing: one message says where each goes, not CIFAR-10 now and CIFAR-100 on the
    next try."""
    with pytest.raises(UserError) as e:
        cifar.get(tmp_path)
    message = str(e.value)
    assert message.startswith('cifar: missing data for CIFAR10, CIFAR100. [CIFAR10] CIFAR10 is missing or corrupt')
    assert '[CIFAR100] CIFAR100 is missing or corrupt' in message and '\n' not in message
    for folder in ('cifar-10-batches-py', 'cifar-100-python'):
        assert str(tmp_path / folder) in message
