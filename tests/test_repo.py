"""The repository keeps its promises to a newcomer: the readme's commands, CI, the layout."""
import csv
import importlib.machinery
import re
import sys
from pathlib import Path

import plot_results
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
                 'dat/.gitkeep', 'res/.gitkeep', 'logs/.gitkeep', 'requirements.txt', 'readme.md', 'LICENSE',
                 '.gitignore', 'docs/usage.md'):
        assert (ROOT / path).exists(), path
    requirements = (ROOT / 'requirements.txt').read_text().split()
    assert requirements == ['torch', 'torchvision', 'numpy', 'tqdm', 'matplotlib', 'scipy', 'pytest-xdist']


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


# The readme is a front page; what does not fit there lives in docs/, one page per topic
README_LIMIT = 12_000  # bytes
LINK = re.compile(r'\[[^\]]*\]\(([^)\s]+)\)')  # [text](target), an image's ![text](target) too


def links(page: Path) -> list[str]:
    """The targets of a Markdown page's links, outside code (a `last[t](h)` in backticks is no link)."""
    text = re.sub(r'```.*?```', '', page.read_text(), flags=re.S)
    return LINK.findall(re.sub(r'`[^`\n]*`', '', text))


def docs_pages() -> list[Path]:
    return sorted((ROOT / 'docs').glob('*.md'))


def anchor(heading: str) -> str:
    """GitHub's anchor for a Markdown heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r'[^\w\- ]', '', heading.strip().lower()).replace(' ', '-')


def anchors(page: Path) -> set[str]:
    text = re.sub(r'```.*?```', '', page.read_text(), flags=re.S)  # a '#' in a code block is no heading
    return {anchor(h) for h in re.findall(r'^#+ (.+)$', text, flags=re.M)}


def test_readme_is_a_front_page():
    size = len((ROOT / 'readme.md').read_bytes())
    assert size < README_LIMIT, f'readme.md has {size} bytes; move the details to a page of docs/'


def test_every_relative_link_resolves():
    broken = set()
    for page in [ROOT / 'readme.md', *docs_pages()]:
        for target in links(page):
            if re.match(r'[a-z]+:', target):  # http:, https:, mailto:
                continue
            path, _, fragment = target.partition('#')
            linked = (page.parent / path).resolve() if path else page
            if not linked.exists():
                broken.add(f'{page.relative_to(ROOT)}: {target} (no such file)')
            elif fragment and linked.suffix == '.md' and fragment not in anchors(linked):
                broken.add(f'{page.relative_to(ROOT)}: {target} (no such heading)')
    assert not broken, sorted(broken)


def test_readme_links_every_docs_page():
    linked = {(ROOT / t.partition('#')[0]).resolve() for t in links(ROOT / 'readme.md')}
    assert docs_pages() and not [p.name for p in docs_pages() if p.resolve() not in linked]


def test_published_figures_name_their_table_or_say_unverified():
    path = ROOT / 'scripts' / 'published_results.csv'
    assert len(plot_results.load_published(path)) == len(path.read_text().splitlines()) - 1  # every line read
    with path.open(newline='') as f:
        sources = [row['source'] for row in csv.DictReader(f)]
    assert not [s for s in sources if not re.search(r'\bTable \d+\b', s) and 'unverified' not in s]
