"""The repository keeps its promises to a newcomer: the readme's commands, CI, the layout."""
import importlib.machinery
import re
import sys
from pathlib import Path

from conftest import ROOT


def readme_commands() -> list[str]:
    return re.findall(r'```bash\n(.+?)\n```', (ROOT / 'readme.md').read_text())


def test_readme_opens_with_the_two_commands():
    main_job, tests = readme_commands()[:2]
    assert main_job == 'pip install -r requirements.txt && python src/run.py --experiment cifar --approach hat'
    assert 'pytest' in tests


def test_ci_runs_the_readme_test_command():
    ci_lines = (ROOT / '.ci' / 'run').read_text().splitlines()
    assert readme_commands()[1] in ci_lines


def test_layout():
    for path in ('src/run.py', 'src/plumbing/utils.py', 'src/dataloaders', 'src/networks', 'src/approaches',
                 'dat/.gitkeep', 'res/.gitkeep', 'logs/.gitkeep', 'requirements.txt', 'readme.md', 'LICENSE', '.gitignore'):
        assert (ROOT / path).exists(), path
    requirements = (ROOT / 'requirements.txt').read_text().split()
    assert requirements == ['torch', 'torchvision', 'numpy', 'tqdm', 'matplotlib', 'scipy']


# Names of packages a researcher's environment commonly holds, which a module of src/ must not take even where they are
# not installed here (src/ comes first on the import path of every run and test, so it would hide them)
COMMON = {'utils', 'tables', 'logs', 'metrics', 'files', 'results', 'checkpoints', 'config', 'common', 'data', 'models',
          'plot', 'plots', 'test', 'tests', 'tools', 'analysis_utils', 'experiments', 'scripts', 'train', 'main'}


def test_no_module_shadows_an_installed_package():
    src = ROOT / 'src'
    names = ({p.stem for p in src.glob('*.py')} |
             {p.name for p in src.iterdir() if (p / '__init__.py').is_file()})
    elsewhere = [p for p in sys.path if not Path(p or '.').resolve().is_relative_to(ROOT)]
    installed = {n for n in names if importlib.machinery.PathFinder.find_spec(n, elsewhere) is not None}
    assert not installed and not names & COMMON, sorted(installed | names & COMMON)
