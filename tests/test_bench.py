"""bench/ and tools/: bench/common.py imports without touching the import path (the parity harness runs the original
code, whose modules have src/'s names, in processes that import it), every script's imports resolve, and the tables'
Fashion-MNIST goes through the loader's own .gz path with the same tensors as the decompressed files."""
import gzip
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import fixtures
from plumbing import utils

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = sorted(str(p.relative_to(ROOT)) for p in [*(ROOT / 'bench').glob('*/*.py'), *(ROOT / 'tools').glob('*.py')]
                 if p.name != '__init__.py')


@pytest.fixture
def common(monkeypatch):
    """bench.common, imported as the scripts import it (the repository root on the path, for this test only)."""
    monkeypatch.syspath_prepend(str(ROOT))
    from bench import common
    return common


def test_common_and_scripts_import():
    """In a fresh process: bench.common changes no import path and imports nothing of src/; then every script's top
    level (its imports and constants) runs from another folder, main() not called."""
    assert {'bench/speed/epoch.py', 'bench/tables/approaches.py', 'tools/parity.py'} <= set(SCRIPTS), SCRIPTS
    check = ('import runpy, sys\n'
             'root, fixtures_file, *scripts = sys.argv[1:]\n'
             'sys.path.insert(0, root)\n'
             'before = list(sys.path)\n'
             'from bench import common\n'
             'assert sys.path == before, sys.path\n'
             'assert not {"run", "plumbing", "dataloaders", "approaches", "networks"} & set(sys.modules)\n'
             'assert common.fixtures.__file__ == fixtures_file, common.fixtures.__file__\n'
             'for path in scripts:\n'
             '    runpy.run_path(path, run_name="imported")\n')
    subprocess.run([sys.executable, '-c', check, str(ROOT), str(ROOT / 'tests' / 'fixtures.py'),
                    *(str(ROOT / s) for s in SCRIPTS)], check=True, cwd='/')


def test_common_reuses_the_tests_fixtures(common):
    assert common.fixtures is fixtures


def test_fashion_mnist_from_debian_gz(common, tmp_path, monkeypatch):
    """Debian's .gz files, copied and decompressed by the loader: the tensors of the same files decompressed."""
    from dataloaders import split_fmnist
    plain = tmp_path / 'plain'
    fixtures.write_mnist(plain, train_per_class=6, test_per_class=2, folder='FashionMNIST')
    debian = tmp_path / 'debian'
    debian.mkdir()
    for f in common.FMNIST_FILES:
        with open(plain / 'FashionMNIST' / 'raw' / f, 'rb') as source, gzip.open(debian / f'{f}.gz', 'wb') as target:
            shutil.copyfileobj(source, target)
    monkeypatch.setattr(common, 'DEBIAN_FMNIST', debian)
    common.prepare_fashion_mnist(tmp_path / 'dat')
    assert sorted(p.name for p in (tmp_path / 'dat' / 'FashionMNIST' / 'raw').iterdir()) == \
        sorted(f'{f}.gz' for f in common.FMNIST_FILES)
    ours, theirs = (split_fmnist.get(d)[0] for d in (tmp_path / 'dat', plain))
    for a, b in zip(ours, theirs):
        for split in ('train', 'valid', 'test'):
            assert torch.equal(a[split]['x'], b[split]['x']) and torch.equal(a[split]['y'], b[split]['y'])
    common.prepare_fashion_mnist(tmp_path / 'dat')  # there already, in either form: nothing to copy


def test_fashion_mnist_missing(common, tmp_path, monkeypatch):
    monkeypatch.setattr(common, 'DEBIAN_FMNIST', tmp_path / 'nowhere')
    with pytest.raises(utils.UserError, match='apt-get install dataset-fashion-mnist'):
        common.prepare_fashion_mnist(tmp_path / 'dat')
