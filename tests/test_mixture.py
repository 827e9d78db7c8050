"""The mixture experiment on tiny data in each data set's real format: every loader's reading code, the original's
normalisation and padding, order, validation split, the --datasets subset, the cache, the missing-data message, and
dry runs of sgd and of hat-test with the original's compression settings (run_compression.sh)."""
import gzip
import pickle

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.io import loadmat
from torchvision import datasets, transforms

from dataloaders import _common, mixture
from plumbing.utils import UserError
import fixtures
from fixtures import OFFLINE, assert_one_line_error, in_process, run_main
import run

ORDER_SEED_0 = ['facescrub', 'mnist', 'cifar100', 'notmnist', 'svhn', 'cifar10', 'traffic-signs', 'fashion-mnist']
# Fixture sizes: (training set, test set) per data set
SIZES = {'cifar10': (400, 100), 'cifar100': (500, 300), 'mnist': (400, 100), 'svhn': (80, 30),
         'fashion-mnist': (400, 100), 'traffic-signs': (129, 43), 'facescrub': (200, 100), 'notmnist': (80, 30)}
TORCHVISION = {'cifar10': 'CIFAR10', 'cifar100': 'CIFAR100', 'mnist': 'MNIST', 'fashion-mnist': 'FashionMNIST'}


@pytest.fixture
def offline(monkeypatch):
    """Every download fails at once, as on a machine without internet."""
    for var, value in OFFLINE.items():
        monkeypatch.setenv(var, value)


def spec(name):
    return mixture.DATASETS[mixture.NAMES.index(name)]


def unpickle(path):
    with open(path, 'rb') as f:
        d = pickle.load(f)
    return d['features'], d['labels']


def original_test_split(data_dir, name):
    """A test split as the original's mixture.py built it: PIL images through its transforms (Pad before ToTensor and
    Normalize), grey ones expanded to three channels after, labels as it read them."""
    ds = spec(name)
    tf = transforms.Compose([transforms.Pad(ds.pad, fill=0), transforms.ToTensor(),
                             transforms.Normalize(ds.mean, ds.std)])
    if name in TORCHVISION:
        pairs = list(getattr(datasets, TORCHVISION[name])(str(data_dir), train=False, transform=tf))
    elif name == 'svhn':  # X is (H, W, C, N); the original's torchvision gave the file's labels 1-10, minus 1
        mat = loadmat(data_dir / 'test_32x32.mat')
        images = mat['X'].transpose(3, 0, 1, 2)  # (N, H, W, C)
        pairs = [(tf(Image.fromarray(img)), int(y) - 1) for img, y in zip(images, mat['y'][:, 0])]
    elif name == 'traffic-signs':  # (N, H, W, C)
        images, labels = unpickle(data_dir / 'traffic_signs' / 'lab 2 data' / 'test.p')
        pairs = [(tf(Image.fromarray(img)), int(y)) for img, y in zip(images, labels)]
    elif name == 'facescrub':  # int8 (N, C, H, W), read as uint8
        images, labels = unpickle(data_dir / 'facescrub' / 'facescrub_test_100.pkl')
        pairs = [(tf(Image.fromarray(img.transpose(1, 2, 0))), int(y))
                 for img, y in zip(images.astype(np.uint8), labels.astype(np.uint8))]
    else:  # notmnist: (N, 1, H, W)
        images, labels = unpickle(data_dir / 'notmnist' / 'notmnist_test.pkl')
        pairs = [(tf(Image.fromarray(img[0])), int(y)) for img, y in zip(images, labels)]
    x = torch.stack([x for x, _ in pairs])
    return x.expand(-1, 3, -1, -1), torch.tensor([y for _, y in pairs])


def test_tasks_order_shapes_and_validation_split(data_dir):
    data, taskcla, inputsize = mixture.get(data_dir, seed=0)
    assert inputsize == [3, 32, 32] and mixture.DEFAULT_NETWORK == 'alexnet'
    # Seed 0's order, as the original's sklearn.utils.shuffle(np.arange(8), random_state=0)
    assert [task['name'] for task in data] == ORDER_SEED_0
    assert taskcla == [(t, spec(name).ncla) for t, name in enumerate(ORDER_SEED_0)]
    for task in data:
        ntrain, ntest = SIZES[task['name']]
        nvalid = int(0.15 * ntrain)  # the original's 15%
        assert task['valid']['x'].shape == (nvalid, 3, 32, 32)
        assert task['train']['x'].shape == (ntrain - nvalid, 3, 32, 32)
        assert task['test']['x'].shape == (ntest, 3, 32, 32)
        for split in ('train', 'valid', 'test'):
            assert task[split]['x'].dtype == torch.float32 and task[split]['y'].dtype == torch.long
            assert 0 <= task[split]['y'].min() and task[split]['y'].max() < task['ncla']
    fixed, _, _ = mixture.get(data_dir, seed=0, fixed_order=True)
    assert [task['name'] for task in fixed] == mixture.NAMES


def test_validation_split_is_the_originals(data_dir):
    split, _, _ = mixture.get(data_dir, seed=3, fixed_order=True)
    full, _, _ = mixture.get(data_dir, seed=3, fixed_order=True, pc_valid=0)
    for t in (0, 7):  # shuffle(np.arange(n), random_state=seed): the first 15% held out, the rest trains
        r = _common.permutation(full[t]['train']['x'].shape[0], 3)
        nvalid = int(0.15 * len(r))
        assert torch.equal(split[t]['valid']['x'], full[t]['train']['x'][r[:nvalid]])
        assert torch.equal(split[t]['train']['y'], full[t]['train']['y'][r[nvalid:]])


def test_compression_script_seeds_put_each_data_set_first():
    """run_compression.sh trains one data set each with seeds 0, 1, 2, 3, 6, 10, 13, 25: the seed's first task."""
    firsts = {0: 'facescrub', 1: 'notmnist', 2: 'fashion-mnist', 3: 'traffic-signs', 6: 'cifar10', 10: 'mnist',
              13: 'cifar100', 25: 'svhn'}
    for seed, name in firsts.items():
        assert mixture.NAMES[_common.task_order(8, seed, fixed_order=False)[0]] == name


@pytest.mark.parametrize('name', mixture.NAMES)
def test_each_data_set_read_and_normalised_as_the_original(data_dir, name):
    data, _, _ = mixture.get(data_dir, fixed_order=True, datasets=[name])
    x, y = original_test_split(data_dir, name)
    assert torch.equal(data[0]['test']['x'], x)  # bitwise
    assert torch.equal(data[0]['test']['y'], y)


def test_padding_and_grey_channels(data_dir):
    data, _, _ = mixture.get(data_dir, fixed_order=True, datasets=['mnist', 'fashion-mnist', 'notmnist'])
    for task, (mean, std) in zip(data, [(0.1, 0.2752), (0.2190, 0.3318), (0.4254, 0.4501)]):
        x = task['test']['x']
        assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 0], x[:, 2])
        if task['name'] != 'notmnist':  # a 2-pixel border of black, normalised with the mean and std of padded images
            border = torch.cat([x[..., :2, :].flatten(), x[..., -2:, :].flatten(), x[..., :2].flatten()])
            assert torch.all(border == torch.tensor((0 - mean) / std, dtype=torch.float32))


def test_svhn_labels_are_the_originals(data_dir):
    """The original subtracted 1 from SVHN's own labels (1-9 for digits 1-9, 10 for 0): digit 0 is class 9."""
    data, _, _ = mixture.get(data_dir, fixed_order=True, datasets=['svhn'])
    own = loadmat(data_dir / 'test_32x32.mat')['y'][:, 0].astype(int)
    assert data[0]['test']['y'].tolist() == (own - 1).tolist() and 10 in own


def test_subset_keeps_the_seeds_order_and_reads_only_its_files(tmp_path, data_dir, offline):
    full, _, _ = mixture.get(data_dir, seed=0)
    sub, taskcla, _ = mixture.get(data_dir, seed=0, datasets=['svhn', 'mnist'])
    assert [task['name'] for task in sub] == ['mnist', 'svhn'] and taskcla == [(0, 10), (1, 10)]
    assert torch.equal(sub[1]['train']['x'], full[4]['train']['x'])
    own = tmp_path / 'dat'  # only the named data sets' files; offline, so nothing else can be fetched
    fixtures.write_notmnist(own)
    fixtures.write_facescrub(own)
    data, _, _ = mixture.get(own, seed=1, datasets=['facescrub', 'notmnist'])
    assert [task['name'] for task in data] == ['notmnist', 'facescrub']
    with pytest.raises(UserError, match='expected distinct names among cifar10,'):
        mixture.get(own, datasets=['notmnist', 'notmnist'])


def test_traffic_signs_from_torchvision_gtsrb(tmp_path):
    """Without the original's 32x32 pickles, torchvision's GTSRB (images of any size) resized to 32x32."""
    root = tmp_path / 'dat'
    fixtures.write_gtsrb(root)
    data, taskcla, _ = mixture.get(root, fixed_order=True, datasets=['traffic-signs'])
    ds = spec('traffic-signs')
    expected = datasets.GTSRB(str(root), split='test', transform=transforms.Compose([
        transforms.Resize((32, 32)), transforms.ToTensor(), transforms.Normalize(ds.mean, ds.std)]))
    assert torch.equal(data[0]['test']['x'], torch.stack([x for x, _ in expected]))
    assert data[0]['test']['y'].tolist() == [y for _, y in expected] and taskcla == [(0, 43)]
    assert data[0]['train']['x'].shape == (129 - 19, 3, 32, 32)
    fixtures.write_traffic_signs(root)  # the original's pickles, once there, are preferred
    pickled, _, _ = mixture.get(root, fixed_order=True, datasets=['traffic-signs'])
    assert torch.equal(pickled[0]['test']['x'], original_test_split(root, 'traffic-signs')[0])


def test_archives_are_unzipped(tmp_path, offline):
    """FaceScrub and notMNIST come as the original's zip archives: one placed in the folder is used, not downloaded."""
    root = tmp_path / 'dat'
    fixtures.write_facescrub(root, zipped=True)
    fixtures.write_notmnist(root, zipped=True)
    data, _, _ = mixture.get(root, fixed_order=True, datasets=['facescrub', 'notmnist'])
    assert (root / 'facescrub' / 'facescrub_train_100.pkl').is_file()
    assert torch.equal(data[1]['test']['y'], original_test_split(root, 'notmnist')[1])


def test_cache_is_per_data_set_reused_and_rebuilt(tmp_path, offline):
    root = tmp_path / 'dat'
    fixtures.write_facescrub(root)
    fixtures.write_notmnist(root)
    first, _, _ = mixture.get(root, fixed_order=True, datasets=['facescrub', 'notmnist'])
    caches = {name: root / 'binary_mixture' / name / 'data.pt' for name in ('facescrub', 'notmnist')}
    stamps = {name: path.stat().st_mtime_ns for name, path in caches.items()}
    mixture.get(root, datasets=['facescrub', 'notmnist'])
    assert {name: path.stat().st_mtime_ns for name, path in caches.items()} == stamps  # reused

    fixtures.write_notmnist(root, train_per_class=6)  # notMNIST's files change: only its cache is rebuilt
    changed, _, _ = mixture.get(root, fixed_order=True, datasets=['facescrub', 'notmnist'])
    assert changed[1]['train']['x'].shape[0] == 60 - int(0.15 * 60)
    assert caches['facescrub'].stat().st_mtime_ns == stamps['facescrub']
    assert caches['notmnist'].stat().st_mtime_ns != stamps['notmnist']

    for f in (root / 'facescrub').iterdir():  # raw files deleted: the cache alone is enough
        f.unlink()
    alone, _, _ = mixture.get(root, fixed_order=True, datasets=['facescrub'])
    assert torch.equal(alone[0]['test']['x'], first[0]['test']['x'])


def test_every_missing_or_corrupt_data_set_in_one_message(tmp_path, offline):
    root = tmp_path / 'dat'
    fixtures.write_notmnist(root)
    (root / 'notmnist' / 'notmnist_test.pkl').write_bytes(b'truncated')
    fixtures.write_mnist(root)
    with pytest.raises(UserError) as e:
        mixture.get(root, datasets=['mnist', 'svhn', 'facescrub', 'notmnist', 'traffic-signs'])
    message = str(e.value)
    assert message.startswith('mixture: missing data for svhn, traffic-signs, facescrub, notmnist ')
    assert '[mnist]' not in message and '\n' not in message
    for fragment in (f"{root / 'notmnist' / 'notmnist_test.pkl'}", 'train_32x32.mat', 'test_32x32.mat',
                     f"{root / 'facescrub'}", 'facescrub_train_100.pkl', 'facescrub_100.zip',
                     f"{root / 'traffic_signs' / 'lab 2 data'}", 'train.p', f"{root / 'gtsrb'}"):
        assert fragment in message


def test_missing_data_stops_the_command_before_training(tmp_path, offline, capsys):
    root = tmp_path / 'dat'
    fixtures.write_facescrub(root)
    fixtures.write_notmnist(root)
    proc = in_process(run.main, ['--experiment', 'mixture', '--approach', 'hat', '--data-dir', str(root),
                                 '--results-dir', str(tmp_path / 'res'), '--logs-dir', str(tmp_path / 'logs')],
                      capsys)
    assert_one_line_error(proc, 'mixture: missing data for cifar10, cifar100, mnist, svhn, fashion-mnist, '
                                'traffic-signs (or leave them out with --datasets)',
                          f"{root / 'cifar-10-batches-py'}", f"{root / 'MNIST' / 'raw'}", 'test_32x32.mat')
    assert list((tmp_path / 'res').iterdir()) == []  # no results written


@pytest.mark.slow
def test_dry_runs_sgd_on_a_subset_and_hat_test_as_run_compression(data_dir, tmp_path):
    results = run_main(data_dir, tmp_path, '--experiment', 'mixture', '--approach', 'sgd', '--dry-run',
                       '--datasets', 'cifar10,notmnist')
    with open(tmp_path / 'res' / 'mixture_sgd_0_dryrun.pkl', 'rb') as f:
        saved = pickle.load(f)
    # Recorded as given; trained in the order seed 0 gives them among all eight
    assert saved['args']['datasets'] == ['cifar10', 'notmnist'] and saved['task_names'] == ['notmnist', 'cifar10']
    assert results['acc'].shape == (2, 2) and saved['tasks_done'] == 2

    # run_compression.sh: --parameter=lamb,smax,<log>_facescrub.pkz,1 --seed=0 (facescrub is seed 0's first task)
    log = tmp_path / 'x_facescrub.pkz'
    results = run_main(data_dir, tmp_path, '--experiment', 'mixture', '--approach', 'hat-test', '--dry-run',
                       f'--parameter=0.75,400,{log},1', '--seed=0')
    assert results['task_names'] == ORDER_SEED_0 and results['args']['single_task']
    assert results['args']['datasets'] == mixture.NAMES and results['acc'].shape == (8, 8)
    with gzip.open(log, 'rb') as f:
        logs = pickle.load(f)
    assert logs['task_name'][0] == 'facescrub' and logs['train_loss'][0].shape == (1,)
    assert logs['train_loss'][1].shape == (0,)  # single task: only the first is trained
