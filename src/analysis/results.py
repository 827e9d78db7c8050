"""A run's results as evidence: the accuracy matrix in the original's .txt format and the .pkl beside it, which says
what produced them (every setting, dry run or not, how many tasks are done). Writers ask what a results path holds
before they replace anything (existing); readers take nothing they cannot check (read): the .txt in the original's
'%.4f' format, the .pkl's layout and types, the two agreeing, and the claims of the file's name."""
import dataclasses
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from plumbing import files
from plumbing.utils import UserError, first_line

DRY_RUN_MARK = 'dry run (run.py --dry-run): a check of a set-up, not a result'  # the .txt's first line, after '# '
_NUMBER = re.compile(r'\d+\.\d{4}')  # np.savetxt's '%.4f' of an accuracy in [0, 1], as the original writes it
TXT_TOLERANCE = 5.1e-5  # '%.4f' rounds to within 5e-5 (plus float32's last bits)


def pkl_path(output: Path) -> Path:
    """The .pkl beside a results .txt."""
    return Path(output).with_suffix('.pkl')


def agnostic_txt_path(output: Path) -> Path:
    """The task-agnostic accuracy matrix's .txt beside a results .txt (run.py --task-agnostic)."""
    output = Path(output)
    return output.with_name(output.stem + '_agnostic.txt')


def save(output: Path, results: dict) -> None:
    """The .txt (np.savetxt(..., '%.4f'), the original's format; a dry run's first line says it is one), the
    task-agnostic matrix's .txt in the same format where there is one, then the .pkl, each atomically."""
    header = DRY_RUN_MARK if results['args'].get('dry_run') else ''
    files.atomic_write(output, lambda f: np.savetxt(f, results['acc'], '%.4f', header=header))
    if 'acc_agnostic' in results:
        files.atomic_write(agnostic_txt_path(output),
                           lambda f: np.savetxt(f, results['acc_agnostic'], '%.4f', header=header))
    files.save_pickle(pkl_path(output), results)


def load_pkl(output: Path) -> dict | None:
    """The results a run saved in the .pkl beside `output` (None if there is none or it is unreadable): lenient, for
    tests and benches; readers that must trust them use read()."""
    try:
        with open(pkl_path(output), 'rb') as f:
            return pickle.load(f)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError):
        return None


def is_complete(results: dict | None) -> bool:
    """Whether saved results cover every task of their run."""
    return results is not None and results.get('tasks_done') == len(results.get('taskcla', ())) > 0


########################################################################################################################
# Reading with checks


def read_txt(path: Path) -> tuple[np.ndarray, bool]:
    """(the matrix, whether it is marked as a dry run) from a .txt in the original's format: every number written
    with four decimals (a number cut short is refused, not read as another), a square matrix of accuracies in [0, 1];
    a UserError naming the file otherwise."""
    try:
        text = Path(path).read_bytes().decode('ascii')
    except UnicodeDecodeError:
        raise UserError(f'{path}: not a text file of accuracies') from None
    except OSError as e:
        raise UserError(f'cannot read {path}: {e.strerror or e}') from None
    rows, dry_run = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith('#'):
            if number == 1 and line[1:].strip() == DRY_RUN_MARK:
                dry_run = True
                continue
            raise UserError(f'{path}, line {number}: a comment run.py does not write')
        if not line.strip():
            continue
        fields = line.split()
        bad = next((f for f in fields if not _NUMBER.fullmatch(f)), None)
        if bad is not None:
            raise UserError(f"{path}, line {number}: {bad[:20]!r} is not an accuracy in run.py's '%.4f' format (a "
                            f"truncated or edited file?)")
        rows.append([float(f) for f in fields])
    if not rows or any(len(row) != len(rows) for row in rows):
        raise UserError(f'{path}: expected a square accuracy matrix (one row per task), got rows of '
                        f'{sorted({len(row) for row in rows}) or "nothing"} numbers')
    acc = np.array(rows, dtype=np.float64)
    if acc.max() > 1:
        raise UserError(f'{path}: accuracies must be in [0, 1]')
    return acc, dry_run


def load_dict(path: Path, opener: Callable = open) -> dict:
    """A pickled dictionary (run.py's .pkl, or with gzip.open a monitoring .pkz), or a UserError naming the file."""
    try:
        with opener(path, 'rb') as f:
            obj = pickle.load(f)
    except FileNotFoundError:
        raise UserError(f'missing file {path}') from None
    except Exception as e:  # a file that is not such a pickle can fail in many ways; any of them is the user's
        raise UserError(f'{path}: cannot be read as a pickle ({type(e).__name__}: {first_line(e)})') from None
    if not isinstance(obj, dict):
        raise UserError(f'{path}: expected a pickled dictionary, got {type(obj).__name__}')
    return obj


def read_pkl(path: Path) -> dict:
    """A run.py .pkl with its layout and types checked, or a UserError naming the file."""
    obj = load_dict(path)
    for key in ('acc', 'taskcla', 'tasks_done', 'args'):
        if key not in obj:
            raise UserError(f"{path}: has no '{key}' (not run.py's results)")
    acc, taskcla, done, args = obj['acc'], obj['taskcla'], obj['tasks_done'], obj['args']
    if not (isinstance(acc, np.ndarray) and acc.ndim == 2 and acc.shape[0] == acc.shape[1] > 0
            and np.issubdtype(acc.dtype, np.floating)):
        raise UserError(f"{path}: 'acc' is not a square matrix of numbers")
    if not (isinstance(taskcla, (list, tuple)) and len(taskcla) == len(acc)
            and all(isinstance(p, (list, tuple)) and len(p) == 2 and all(isinstance(v, int) for v in p)
                    for p in taskcla)):
        raise UserError(f"{path}: 'taskcla' is not one (task, classes) pair per row of 'acc'")
    if not (isinstance(done, int) and not isinstance(done, bool) and 0 <= done <= len(acc)):
        raise UserError(f"{path}: 'tasks_done' is not a number of tasks from 0 to {len(acc)}")
    if not (isinstance(args, dict) and isinstance(args.get('experiment'), str)
            and isinstance(args.get('approach'), str) and isinstance(args.get('seed'), int)):
        raise UserError(f"{path}: 'args' does not say which experiment, approach and seed produced it")
    if not (np.all(np.isfinite(acc)) and acc.min() >= 0 and acc.max() <= 1):
        raise UserError(f"{path}: 'acc' holds values outside [0, 1]")
    return obj


@dataclass
class Result:
    """What a results path holds, checked: the matrix, the .pkl (None for a .txt alone, as the original wrote it),
    whether it is a dry run, and the tasks done."""
    path: Path
    acc: np.ndarray
    saved: dict | None
    dry_run: bool
    tasks_done: int

    @property
    def finished(self) -> bool:
        return self.tasks_done == len(self.acc)


def read(path: Path) -> Result:
    """The results at a .txt (or its .pkl): each file checked, and the two agreeing when both are there; a .pkl
    without its .txt is refused (the .txt is the result the original's tools read). A UserError naming the file."""
    txt = Path(path).with_suffix('.txt')
    pkl = pkl_path(txt)
    if not txt.is_file():
        damaged = ' (its .pkl is there: a damaged run?)' if pkl.is_file() else ''
        raise UserError(f'missing result file {txt}{damaged}')
    acc, marked = read_txt(txt)
    if not pkl.exists():  # the original's runs wrote the .txt alone, after every task
        untrained = [t for t in range(len(acc)) if not acc[t, :t + 1].any()]
        return Result(txt, acc, None, marked, untrained[0] if untrained else len(acc))
    saved = read_pkl(pkl)
    dry_run = bool(saved['args'].get('dry_run'))
    if dry_run != marked:
        raise UserError(f"{txt}: its .pkl {'says' if dry_run else 'does not say'} it is a dry run, its .txt "
                        f"{'does' if marked else 'does not'}")
    if saved['acc'].shape != acc.shape or not np.allclose(saved['acc'], acc, rtol=0, atol=TXT_TOLERANCE):
        raise UserError(f'{txt}: does not match the matrix in its .pkl (one of them was changed or damaged)')
    return Result(txt, acc, saved, dry_run, saved['tasks_done'])


def agnostic_view(result: Result) -> Result:
    """The result with its task-agnostic matrix (run.py --task-agnostic) in place of the task-aware one, checked; a
    UserError naming the file where it has none."""
    found = (result.saved or {}).get('acc_agnostic')
    if found is None:
        raise UserError(f'{result.path}: no task-agnostic matrix (a run without run.py --task-agnostic)')
    if not (isinstance(found, np.ndarray) and found.shape == result.acc.shape and np.all(np.isfinite(found))
            and found.min() >= 0 and found.max() <= 1):
        raise UserError(f"{pkl_path(result.path)}: 'acc_agnostic' is not a matrix of accuracies the size of 'acc'")
    return dataclasses.replace(result, acc=found.astype(np.float64))


def check_claims(result: Result, experiment: str | None = None, name: str | None = None,
                 seed: int | None = None) -> None:
    """The run named <experiment>_<name>_<seed>.txt is what its .pkl says it is (name: the approach, or the approach
    with a sweep's grid values, or a sweep's --name, which the .pkl's output path shows). Without the claims given,
    they are read from the file's name where it has that form."""
    if result.saved is None:
        return
    args = result.saved['args']
    if Path(str(args.get('output', ''))).name == result.path.name:
        return  # saved under this name
    if experiment is None:
        head, _, number = result.path.stem.rpartition('_')
        experiment = args['experiment'] if head.startswith(args['experiment'] + '_') else head.split('_')[0]
        name, seed = head[len(experiment) + 1:], int(number) if number.isdigit() else None
    wrong = [f'{what} {said!r}' for what, said, claimed in (('experiment', args['experiment'], experiment),
                                                              ('seed', args['seed'], seed)) if said != claimed]
    if not (name == args['approach'] or str(name).startswith(args['approach'] + '-')):
        wrong.append(f"approach {args['approach']!r}")
    if wrong:
        raise UserError(f"{result.path}: its .pkl says {', '.join(wrong)}, not what the file's name claims (a file "
                        f"renamed or copied over?)")


def check_usable(result: Result, unfinished_ok: bool = False) -> None:
    """Refuse a dry run, and an unfinished run unless unfinished_ok, as a result."""
    if result.dry_run:
        raise UserError(f'{result.path}: a dry run (--dry-run), not a result')
    if not result.finished and not unfinished_ok:
        raise UserError(f'{result.path}: an unfinished run ({result.tasks_done} of {len(result.acc)} tasks'
                        f'{"" if result.saved else ", judged by its untrained rows of zeros"}); finish it with run.py '
                        f'--resume, or leave out its seed')


########################################################################################################################
# What a writer would replace


@dataclass
class Existing:
    """What is at a results path before a run writes there. kind: 'none', 'finished', 'unfinished', or 'unverifiable'
    (a .txt alone, as the original wrote it, or files that fail the checks; problem says why)."""
    kind: str
    result: Result | None = None
    problem: str = ''


def existing(output: Path) -> Existing:
    """Classify what is at a results path (its .txt and .pkl)."""
    output = Path(output)
    if not output.exists() and not pkl_path(output).exists():
        return Existing('none')
    try:
        result = read(output)
    except UserError as e:
        return Existing('unverifiable', problem=str(e))
    if result.saved is None:
        return Existing('unverifiable', result, 'a .txt without the .pkl that says what produced it, as the original '
                                                'code wrote it')
    return Existing('finished' if result.finished else 'unfinished', result)
