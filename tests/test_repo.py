"""The repository keeps its promises to a newcomer: the readme's commands, CI, the layout."""
import re

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
    for path in ('src/run.py', 'src/utils.py', 'src/dataloaders', 'src/networks', 'src/approaches', 'dat/.gitkeep',
                 'res/.gitkeep', 'logs/.gitkeep', 'requirements.txt', 'readme.md', 'LICENSE', '.gitignore'):
        assert (ROOT / path).exists(), path
    requirements = (ROOT / 'requirements.txt').read_text().split()
    assert requirements == ['torch', 'torchvision', 'numpy', 'tqdm', 'matplotlib', 'scipy']
