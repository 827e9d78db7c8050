"""Parity with the original code (github.com/joansj/hat): the same data, the same training step, the same matrices.

    python tools/parity.py --original ~/hat            (a checkout of the original; about 11 minutes on 2 CPU cores)
    python tools/parity.py --original ~/hat --experiments cifar --approaches hat,sgd --nepochs 3 --out parity.md

The original's src/ is copied to a temporary folder and edited there, mechanically, so that it runs on CPU under
current torch and numpy (the edits are printed with how many places each changed; none touches an algorithm): the
original's code never enters this repository. Tiny MNIST and CIFAR in their real formats (tests/fixtures.py, through
bench/common.py), the same files for both codes; the original's loaders build their cache first. Then both codes run,
each in processes of its own (their module names collide), on CPU and one thread, with the same seed:
  data  every experiment's tasks for seeds 0 and 1 (and --seed): names, taskcla, every split's x and y, bitwise;
  step  per approach, one training step on the first 64 samples of task 0 from the initial weights: every parameter
        after it; ours are paired with the original's by their initial values (one without a partner means the
        initial weights are drawn differently);
  run   whole runs, all tasks: the accuracy and loss matrices (acc, lss).
One table shows approach x experiment; exit status 0 when everything compared is identical, 1 otherwise.
The original's loaders need scikit-learn (pip install scikit-learn).
"""
import argparse
import functools
import hashlib
import importlib
import importlib.util
import os
import pickle
import re
import runpy
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, NamedTuple
from unittest import mock

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
# The repository root, for bench.common: it names no module of either code, and puts neither src/ on the import path
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from bench import common  # noqa: E402

EXPERIMENTS = ('mnist2', 'pmnist', 'cifar')
MNIST_EXPERIMENTS = ('mnist2', 'pmnist')
APPROACHES = ('random', 'sgd', 'sgd-restart', 'sgd-frozen', 'joint', 'hat', 'hat-test', 'lwf', 'lfl', 'ewc',
              'imm-mean', 'imm-mode', 'progressive', 'pathnet')  # the original's run.py choices
DATA_SEEDS = (0, 1)
SPLITS = ('train', 'valid', 'test')
BATCH = 64  # the original's fixed minibatch: a step on exactly this many samples is one step
LR = 0.05  # both codes' default learning rate
NO_STEP = {'random': 'random does not train'}
RNG_NOTE = ("in the original's processes torch's global RNG state is saved before its dataloaders' get() and "
            "restored after it: under current torch each DataLoader pass draws a base seed from that generator, "
            "which the torch 0.2 the original was written for did not")


class Edit(NamedTuple):
    """A mechanical edit of the original's copy: a regular expression substituted in every .py file of its src/."""
    what: str
    pattern: str
    replacement: str


EDITS = (
    Edit('drop .cuda() (tensors and networks stay on the CPU)', r'\.cuda\(\)', ''),
    Edit("run.py: no sys.exit() when CUDA is unavailable (its message is still printed)",
         r"(print\('\[CUDA unavailable\]'\));\s*sys\.exit\(\)", r'\1'),
    # torch 0.2's losses and hit counts were 1-element tensors; they are 0-dim now, and [0] fails. .item() is the
    # original's own spelling in hat.py, and its Python float is what numpy 1.x made of np.float32 * len(b)
    Edit('.cpu().numpy()[0] -> .cpu().numpy().item() (0-dim losses and hit counts)',
         r'\.cpu\(\)\.numpy\(\)\[0\]', '.cpu().numpy().item()'),
    Edit('np.int -> int (the alias numpy 1.24 removed)', r'\bnp\.int\b', 'int'),
)


def parse_args() -> argparse.Namespace:
    """The harness's flags (and the hidden --child of its worker processes)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--original', type=Path, help='a checkout of the original code (the folder holding src/run.py)')
    p.add_argument('--experiments', default=','.join(EXPERIMENTS), help='comma-separated (default: %(default)s)')
    p.add_argument('--approaches', default=','.join(APPROACHES), help='comma-separated (default: all 14)')
    p.add_argument('--nepochs', type=int, default=2, help='epochs per task of the whole runs (default: %(default)s)')
    p.add_argument('--seed', type=int, default=0, help='seed of the steps and runs (default: %(default)s)')
    p.add_argument('--out', type=Path, help='also write the report as Markdown to this file')
    p.add_argument('--keep', action='store_true', help='keep the temporary folder (the processes\' logs) and say where')
    p.add_argument('--child', type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child is None:
        if args.original is None:
            p.error('--original DIR is required')
        if not (args.original / 'src' / 'run.py').is_file():
            p.error(f'{args.original} is not a checkout of the original (no src/run.py)')
        args.experiments = chosen(p, 'experiments', args.experiments, EXPERIMENTS)
        args.approaches = chosen(p, 'approaches', args.approaches, APPROACHES)
        if args.nepochs < 1:
            p.error('--nepochs must be at least 1')
    return args


def chosen(p: argparse.ArgumentParser, flag: str, text: str, choices: tuple[str, ...]) -> list[str]:
    """A comma list of names, each one of choices, in the order given."""
    names = [n for n in text.split(',') if n]
    unknown = [n for n in names if n not in choices]
    if unknown or not names:
        p.error(f"--{flag}: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(choices)}")
    return names


########################################################################################################################
# What both codes are given


def original_network(experiment: str, approach: str) -> str:
    """The network module the original's run.py picks for an experiment and approach (its rules, in our words)."""
    if experiment in MNIST_EXPERIMENTS:
        return 'mlp_hat' if approach in ('hat', 'hat-test') else 'mlp'
    return {'lfl': 'alexnet_lfl', 'hat': 'alexnet_hat', 'progressive': 'alexnet_progressive',
            'pathnet': 'alexnet_pathnet', 'hat-test': 'alexnet_hat_test'}.get(approach, 'alexnet')


def parameter(approach: str, nepochs: int, logpath: Path) -> str:
    """--parameter for both codes: hat-test's log path (the original's hat-test needs one), and for pathnet as many
    generations as epochs, one epoch each (its default 20 generations train nothing in the original when nepochs <
    20, which ours does not copy: readme, Deviations); '' otherwise."""
    return {'hat-test': str(logpath), 'pathnet': str(nepochs)}.get(approach, '')


def run_flags(experiment: str, approach: str, seed: int, nepochs: int, logpath: Path) -> list[str]:
    """The run.py flags the two codes share."""
    flags = ['--experiment', experiment, '--approach', approach, '--seed', str(seed), '--nepochs', str(nepochs)]
    value = parameter(approach, nepochs, logpath)
    return flags + (['--parameter', value] if value else [])


def our_argv(flags: list[str], experiment: str, approach: str, dirs: dict[str, Path]) -> list[str]:
    """Our run.py's arguments for the shared flags: our folders, the CPU, and the original's MLP (3x800) where the
    original ran its mlp.py (our default MLP is the paper's 2x2000)."""
    network = ['--network', 'mlp_original'] if original_network(experiment, approach) == 'mlp' else []
    return flags + network + ['--data-dir', str(dirs['data']), '--results-dir', str(dirs['res']),
                              '--logs-dir', str(dirs['logs']), '--device', 'cpu']


def fixed_path(nlayers: int, n: int, m: int) -> np.ndarray:
    """A pathnet path for the step check, (L, N) module indices: N distinct modules per layer, shifted by the layer."""
    return (np.arange(nlayers)[:, None] + np.arange(n)[None, :]) % m


########################################################################################################################
# Worker processes: one code each


def one_line(e: BaseException) -> str:
    """An exception as one line: its type and the first line of its message."""
    text = str(e).strip()
    return f'{type(e).__name__}: {text.splitlines()[0]}' if text else type(e).__name__


def attempt(work: Callable[[], dict]) -> dict:
    """work()'s results, or {'error': its one-line error} with the traceback in the process's log."""
    try:
        return work()
    except (Exception, SystemExit) as e:  # the original's scripts may sys.exit()
        traceback.print_exc()
        return {'error': one_line(e)}


def keeping_torch_rng(get: Callable) -> Callable:
    """get, leaving torch's global RNG state as it found it (RNG_NOTE)."""
    @functools.wraps(get)
    def wrapped(*args, **kwargs):
        state = torch.get_rng_state()
        try:
            return get(*args, **kwargs)
        finally:
            torch.set_rng_state(state)
    return wrapped


def load_tasks(job: dict, experiment: str, seed: int) -> tuple[list[dict], list, list]:
    """(tasks, taskcla, inputsize) from the job's code's loader; tasks as a list of {'name', split: {'x', 'y'}}."""
    module = importlib.import_module('dataloaders.' + experiment)
    if job['code'] == 'ours':
        return module.get(Path(job['dirs']['data']), seed=seed)
    data, taskcla, inputsize = keeping_torch_rng(module.get)(seed=seed)  # the original's is a dict, plus 'ncla'
    return [data[t] for t, _ in taskcla], taskcla, inputsize


def save(job: dict, item: str, results: dict) -> None:
    """One item's results, for the parent to read."""
    torch.save(results, Path(job['out']) / f'{item}.pt')


def cache_job(job: dict) -> None:
    """Build the original's caches (dat/binary_<experiment>/) as a seed-0 run does: our pmnist's permutations are
    those a seed-0 run caches (readme, Deviations)."""
    def build(experiment):
        load_tasks(job, experiment, 0)
        return {}
    for experiment in job['experiments']:
        save(job, f'cache_{experiment}', attempt(lambda: build(experiment)))


def data_job(job: dict) -> None:
    """Every experiment's tasks, per seed."""
    def tensors(experiment, seed):
        tasks, taskcla, _ = load_tasks(job, experiment, seed)
        return {'taskcla': [tuple(int(v) for v in tc) for tc in taskcla],
                'tasks': [{'name': task['name'], **{(split, k): task[split][k] for split in SPLITS for k in 'xy'}}
                          for task in tasks]}
    for experiment in job['experiments']:
        for seed in job['seeds']:
            save(job, f'data_{experiment}_{seed}', attempt(lambda: tensors(experiment, seed)))


def digest(t: torch.Tensor) -> tuple:
    """What pairs a parameter with its partner in the other code: dtype, size and the exact bytes of its values (not
    its shape: the same scales may be a (1, t) embedding in one code and a (t,) vector in the other)."""
    return str(t.dtype), t.numel(), hashlib.sha1(t.detach().contiguous().numpy().tobytes()).hexdigest()


def stepped(model: torch.nn.Module, step: Callable[[], None], x: torch.Tensor, y: torch.Tensor, seed: int) -> dict:
    """Run one training step from reseeded generators: the batch's and parameters' digests before it, the parameters'
    values after it."""
    before = {n: digest(p) for n, p in model.named_parameters()}
    np.random.seed(seed)  # the batch order
    torch.manual_seed(seed)  # dropout
    step()
    return {'batch': (digest(x), digest(y)), 'before': before,
            'after': {n: p.detach().flatten().clone() for n, p in model.named_parameters()}}


def our_step(job: dict, approach: str) -> dict:
    """Our approach as run.py builds it, one train_epoch on BATCH samples of task 0 (after its pre_train hook)."""
    import run
    from plumbing import utils
    args, experiment, module, network = run.parse_args(job['argv'][approach])
    utils.seed_everything(args.seed)
    data, taskcla, inputsize = experiment.get(Path(args.data_dir), seed=args.seed, fixed_order=args.fixed_order,
                                              pc_valid=args.pc_valid)
    appr = run.build_approach(module, network.Net(inputsize, taskcla), args, torch.device('cpu'))
    x, y, task = (v[:BATCH] if torch.is_tensor(v) else v for v in appr.training_sets(0, data)[0])
    appr.pre_train(0)
    if approach == 'pathnet':  # what its train() sets for each path's turn
        appr.path = fixed_path(len(appr.model.layers), appr.model.N, appr.model.M)
        appr.model.train_path(0, appr.path)
    appr.optimizer = appr.make_optimizer(appr.loop.lr)  # over the parameters pre_train left trainable, as fit()
    return stepped(appr.model, lambda: appr.train_epoch(task, x, y), x, y, args.seed)


def original_step(job: dict, approach: str) -> dict:
    """The original's approach as its run.py builds it, one train_epoch on BATCH samples of task 0, after what its
    train() does before its epochs (progressive: unfreeze_column; pathnet: unfreeze_path; an optimizer over the
    trainable parameters)."""
    seed, experiment = job['seed'], job['experiment']
    np.random.seed(seed)
    torch.manual_seed(seed)
    tasks, taskcla, inputsize = load_tasks(job, experiment, seed)
    net = importlib.import_module('networks.' + original_network(experiment, approach)).Net(inputsize, taskcla)
    # What its run.py's parser gives (the approaches read only args.parameter)
    args = argparse.Namespace(experiment=experiment, approach=approach, seed=seed, nepochs=job['nepochs'], lr=LR,
                              parameter=job['parameter'][approach], output='')
    appr = importlib.import_module('approaches.' + approach.replace('-', '_')).Appr(net, nepochs=args.nepochs,
                                                                                     lr=args.lr, args=args)
    x, y = tasks[0]['train']['x'][:BATCH], tasks[0]['train']['y'][:BATCH]
    # joint takes per-sample task ids, int32 as its run.py builds them
    task = torch.zeros(BATCH, dtype=torch.int32) if approach == 'joint' else 0
    extra = ()
    if approach == 'progressive':
        appr.model.unfreeze_column(0)
    if approach == 'pathnet':
        extra = (fixed_path(appr.model.L, appr.model.N, appr.model.M),)
        appr.model.unfreeze_path(0, *extra)
    appr.optimizer = appr._get_optimizer(appr.lr)
    return stepped(appr.model, lambda: appr.train_epoch(task, x, y, *extra), x, y, seed)


def step_job(job: dict) -> None:
    """One step per approach of one experiment."""
    step = our_step if job['code'] == 'ours' else original_step
    for approach in job['approaches']:
        save(job, f'step_{approach}', attempt(lambda: step(job, approach)))


def our_run(job: dict, approach: str) -> dict:
    """Our run.main's matrices."""
    import run
    results = run.main(job['argv'][approach])
    return {'acc': results['acc'], 'lss': results['lss']}


def original_run(job: dict, approach: str) -> dict:
    """The original's run.py as a script, its loader keeping torch's RNG (RNG_NOTE); its in-memory matrices (its
    .txt file has 4 decimals)."""
    module = importlib.import_module('dataloaders.' + job['experiment'])
    with mock.patch.object(sys, 'argv', ['run.py', *job['argv'][approach]]), \
            mock.patch.object(module, 'get', keeping_torch_rng(module.get)):
        names = runpy.run_path('run.py', run_name='__main__')
    return {'acc': np.asarray(names['acc']), 'lss': np.asarray(names['lss'])}


def run_job(job: dict) -> None:
    """Whole runs of one experiment, per approach."""
    work = our_run if job['code'] == 'ours' else original_run
    for approach in job['approaches']:
        clock = time.perf_counter()
        results = attempt(lambda: work(job, approach))
        save(job, f'run_{approach}', {**results, 'seconds': time.perf_counter() - clock})


JOBS = {'cache': cache_job, 'data': data_job, 'step': step_job, 'run': run_job}


def child_main(job_file: Path) -> None:
    """A worker process: one job for one code, results saved beside the job file."""
    job = pickle.loads(job_file.read_bytes())
    torch.set_num_threads(1)
    sys.path.insert(0, job['src'])
    if job['code'] == 'original':
        os.chdir(job['src'])  # its paths are ../dat/ and ../res/
        # Variable(volatile=...), clip_grad_norm and softmax without dim warn at every batch
        warnings.simplefilter('ignore')
    with common.fixture_checksums(job['md5']):
        JOBS[job['kind']](job)


########################################################################################################################
# The parent: preparing, launching, comparing


@dataclass
class Outcome:
    """One comparison: status is 'identical', 'differs', 'not compared', 'original fails', 'ours fails' or 'crashed'."""
    status: str
    text: str

    @property
    def bad(self) -> bool:
        """Whether it makes the exit status 1."""
        return self.status in ('differs', 'ours fails', 'crashed')


def apply_edits(src: Path) -> list[str]:
    """Apply EDITS to every .py file under src; one line per edit, with the places it changed."""
    files = sorted(src.rglob('*.py'))
    lines = []
    for edit in EDITS:
        places, touched = 0, 0
        for f in files:
            text, n = re.subn(edit.pattern, edit.replacement, f.read_text())
            if n:
                f.write_text(text)
                places, touched = places + n, touched + 1
        lines.append(f"{edit.what}: {places} place{'s' * (places != 1)} in {touched} file{'s' * (touched != 1)}")
    return lines


class Workspace:
    """The temporary folder: the original's edited copy with its data, results and logs (original/src, dat, res,
    logs), ours (ours/dat, res, logs), and the jobs' files and logs (jobs/)."""

    def __init__(self, root: Path, original: Path):
        self.original_src = root / 'original' / 'src'
        shutil.copytree(original / 'src', self.original_src, ignore=shutil.ignore_patterns('__pycache__'))
        self.edits = apply_edits(self.original_src)
        self.dirs = {code: {'data': root / code / 'dat', 'res': root / code / 'res', 'logs': root / code / 'logs'}
                     for code in ('original', 'ours')}
        common.fixtures.write_mnist(self.dirs['ours']['data'])
        self.md5 = common.fixtures.write_cifar(self.dirs['ours']['data'])
        shutil.copytree(self.dirs['ours']['data'], self.dirs['original']['data'])  # before any cache is built
        for dirs in self.dirs.values():
            for folder in dirs.values():
                folder.mkdir(parents=True, exist_ok=True)
        self.jobs = root / 'jobs'
        self.jobs.mkdir()
        self.count = 0

    def launch(self, code: str, kind: str, **spec) -> tuple[Path, Path]:
        """Run one job in a fresh process of this code; (its results folder, its log)."""
        self.count += 1
        name = f'{self.count:02d}_{kind}_{code}' + (f"_{spec['experiment']}" if 'experiment' in spec else '')
        out = self.jobs / name
        out.mkdir()
        src = self.original_src if code == 'original' else ROOT / 'src'
        job = {'code': code, 'kind': kind, 'src': str(src), 'md5': self.md5, 'out': str(out),
               'dirs': {k: str(v) for k, v in self.dirs[code].items()}, **spec}
        (out / 'job.pkl').write_bytes(pickle.dumps(job))
        env = {**os.environ, 'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1'}
        log = self.jobs / f'{name}.log'
        with open(log, 'w') as f:
            subprocess.run([sys.executable, str(Path(__file__).resolve()), '--child', str(out / 'job.pkl')],
                           stdout=f, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        return out, log


def read(out: Path, log: Path, item: str) -> dict:
    """An item's results, or {'crashed': the log's last line} when its process ended without writing them."""
    path = out / f'{item}.pt'
    if path.is_file():
        return torch.load(path, weights_only=False)  # our worker's file, numpy arrays included
    lines = [line for line in log.read_text(errors='replace').splitlines() if line.strip()]
    return {'crashed': lines[-1] if lines else f'no output (see {log})'}


def failure(ours: dict, original: dict) -> Outcome | None:
    """The Outcome when either side failed or crashed (the original's first); None when both have results."""
    for side, name in ((original, 'original'), (ours, 'ours')):
        if 'crashed' in side:
            return Outcome('crashed', f"{name}'s process ended without results: {side['crashed']}")
        if 'error' in side:
            return Outcome(f'{name} fails', side['error'])
    return None


def compare_data(ours: dict, original: dict) -> Outcome:
    """Task names, taskcla and every split's tensors, bitwise."""
    failed = failure(ours, original)
    if failed:
        return failed
    if ours['taskcla'] != original['taskcla']:
        return Outcome('differs', f"taskcla {ours['taskcla']} vs {original['taskcla']}")
    for t, (a, b) in enumerate(zip(ours['tasks'], original['tasks'])):
        if a['name'] != b['name']:
            return Outcome('differs', f"task {t} named {a['name']} vs {b['name']}")
        for split in SPLITS:
            for k in 'xy':
                u, v = a[split, k], b[split, k]
                if u.dtype != v.dtype or u.shape != v.shape:
                    return Outcome('differs', f'task {t} {split} {k}: {u.dtype} {tuple(u.shape)} vs {v.dtype} '
                                              f'{tuple(v.shape)}')
                if not torch.equal(u, v):
                    return Outcome('differs', f'task {t} {split} {k}: max difference '
                                              f'{(u.double() - v.double()).abs().max().item():.1e}')
    return Outcome('identical', 'identical')


def compare_step(ours: dict, original: dict) -> Outcome:
    """Pair the parameters by their initial values, then compare each pair after the step."""
    failed = failure(ours, original)
    if failed:
        return failed
    if ours['batch'] != original['batch']:
        return Outcome('not compared', 'not compared (the batches differ: see the data row)')
    pool = {}
    for name, key in original['before'].items():
        pool.setdefault(key, []).append(name)
    pairs, alone = [], []
    for name, key in ours['before'].items():
        if pool.get(key):
            pairs.append((name, pool[key].pop(0)))
        else:
            alone.append(name)
    left = [name for names in pool.values() for name in names]
    diffs = [(ours['after'][a].double() - original['after'][b].double()).abs().max().item() for a, b in pairs
             if not torch.equal(ours['after'][a], original['after'][b])]
    text = 'identical' if not diffs else f'max difference {max(diffs):.1e} ({len(diffs)} of {len(pairs)} parameters)'
    if alone:
        return Outcome('differs', f"{len(alone)} of our {len(ours['before'])} parameters without partner "
                                  f"({listed(alone)}): initial weights drawn differently; the paired ones: {text}")
    # The original's own extras (e.g. adapters its forward pass never uses) matter only if the step trains them
    trained = [name for name in left if digest(original['after'][name]) != original['before'][name]]
    if trained:
        return Outcome('differs', f"{len(left)} of the original's parameters without partner ({listed(left)}), "
                                  f"{len(trained)} of them trained by the step; the paired ones: {text}")
    extras = f"; the original's {len(left)} parameters without partner ({listed(left)}) are left unchanged by " \
             f"the step" if left else ''
    return Outcome('identical' if not diffs else 'differs', text + extras)


def listed(names: list[str], shown: int = 3) -> str:
    """The first few names of a list."""
    return ', '.join(names[:shown]) + (', ...' if len(names) > shown else '')


def compare_run(ours: dict, original: dict) -> Outcome:
    """acc and lss, bitwise, else their largest differences."""
    failed = failure(ours, original)
    if failed:
        return failed
    if ours['acc'].shape != original['acc'].shape:
        return Outcome('differs', f"matrices of shape {ours['acc'].shape} vs {original['acc'].shape}")
    differ = (ours['acc'] != original['acc']) | (ours['lss'] != original['lss'])
    if not differ.any():
        return Outcome('identical', 'identical')
    acc, lss = (float(np.max(np.abs(ours[k].astype(np.float64) - original[k]))) for k in ('acc', 'lss'))
    return Outcome('differs', f'acc max difference {acc:.4f}, lss {lss:.1e}, from the tests after task '
                              f'{int(np.argwhere(differ)[0, 0])} on')


def data_cell(outcomes: dict[int, Outcome]) -> str:
    """The data row's cell of one experiment."""
    if all(o.status == 'identical' for o in outcomes.values()):
        return f"identical (seeds {', '.join(map(str, outcomes))})"
    return '; '.join(f'seed {s}: {o.status}: {o.text}' if o.status != 'identical' else f'seed {s}: identical'
                     for s, o in outcomes.items())


def described(outcome: Outcome) -> str:
    """An outcome as a cell shows it: its text, after its status where the text does not say it."""
    return outcome.text if outcome.status in ('identical', 'differs', 'not compared') else \
        f'{outcome.status}: {outcome.text}'


def approach_cell(step: Outcome, run: Outcome) -> str:
    """An approach's cell of one experiment."""
    if run.status == 'original fails':
        return f'original fails: {run.text}'
    return f'step: {described(step)}; run: {described(run)}'


def versions() -> str:
    """The libraries both codes run on, and the threads."""
    import sklearn
    import torchvision
    return (f'torch {torch.__version__}, torchvision {torchvision.__version__}, numpy {np.__version__}, scikit-learn '
            f'{sklearn.__version__}, Python {sys.version.split()[0]}; CPU, 1 thread per process (OMP_NUM_THREADS=1, '
            f'torch.set_num_threads(1))')


def check_data(ws: Workspace, experiments: list[str], seeds: list[int]) -> dict[str, dict[int, Outcome]]:
    """Part (a): both codes' tasks, per experiment and seed."""
    runs = {code: ws.launch(code, 'data', experiments=experiments, seeds=seeds) for code in ('ours', 'original')}
    outcomes = {}
    for experiment in experiments:
        outcomes[experiment] = {}
        for seed in seeds:
            item = f'data_{experiment}_{seed}'
            outcome = compare_data(read(*runs['ours'], item), read(*runs['original'], item))
            outcomes[experiment][seed] = outcome
            print(f'  data {experiment} seed {seed}: {described(outcome)}', flush=True)
    return outcomes


def check_experiment(ws: Workspace, args: argparse.Namespace, experiment: str) -> dict[str, tuple[Outcome, Outcome]]:
    """Parts (b) and (c) for one experiment: per approach, (step outcome, run outcome)."""
    def spec(code: str, kind: str, approaches: list[str]) -> dict:
        """A step or run job's settings: per approach, run.py's arguments and the --parameter value."""
        argv, values = {}, {}
        for a in approaches:
            logpath = ws.dirs[code]['logs'] / f'{experiment}_{a}_{kind}_masks.pkz'  # hat-test's
            shared = run_flags(experiment, a, args.seed, args.nepochs, logpath)
            argv[a] = our_argv(shared, experiment, a, ws.dirs['ours']) if code == 'ours' else shared
            values[a] = parameter(a, args.nepochs, logpath)
        return {'experiment': experiment, 'approaches': approaches, 'seed': args.seed, 'nepochs': args.nepochs,
                'argv': argv, 'parameter': values}

    stepping = [a for a in args.approaches if a not in NO_STEP]
    clock = time.perf_counter()
    steps = {code: ws.launch(code, 'step', **spec(code, 'step', stepping)) for code in ('ours', 'original')
             if stepping}
    step_outcomes = {a: Outcome('not compared', f'not compared ({NO_STEP[a]})') for a in args.approaches
                     if a in NO_STEP}
    for approach in stepping:
        step_outcomes[approach] = compare_step(read(*steps['ours'], f'step_{approach}'),
                                               read(*steps['original'], f'step_{approach}'))
    for out, _ in steps.values():
        shutil.rmtree(out)  # the parameters after the step: hundreds of MB for AlexNet
    step_seconds = time.perf_counter() - clock

    clock = time.perf_counter()
    original = ws.launch('original', 'run', **spec('original', 'run', args.approaches))
    original_runs = {a: read(*original, f'run_{a}') for a in args.approaches}
    # Nothing to compare where the original cannot run
    runnable = [a for a in args.approaches if 'error' not in original_runs[a]]
    ours = ws.launch('ours', 'run', **spec('ours', 'run', runnable)) if runnable else None
    outcomes = {}
    for approach in args.approaches:
        our_run = read(*ours, f'run_{approach}') if approach in runnable else {}
        outcomes[approach] = (step_outcomes[approach], compare_run(our_run, original_runs[approach]))
        print(f'  {experiment} {approach}: {approach_cell(*outcomes[approach])}', flush=True)
    print(f'  {experiment}: steps {step_seconds:.0f} s, runs {time.perf_counter() - clock:.0f} s', flush=True)
    return outcomes


def escape(text: str) -> str:
    """Text safe in a Markdown table cell."""
    return text.replace('|', '\\|').replace('\n', ' ')


def table(experiments: list[str], data: dict, results: dict) -> list[str]:
    """The Markdown table: a data row, then a row per approach; a column per experiment."""
    rows = [f"| approach | {' | '.join(experiments)} |", '|---' * (len(experiments) + 1) + '|',
            f"| data | {' | '.join(escape(data_cell(data[e])) for e in experiments)} |"]
    approaches = list(next(iter(results.values()))) if results else []
    for approach in approaches:
        rows.append(f"| {approach} | {' | '.join(escape(approach_cell(*results[e][approach])) for e in experiments)} |")
    return rows


def compare_codes(args: argparse.Namespace, root: Path) -> tuple[list[str], list[str], bool]:
    """Prepare the workspace and run the three checks: the report's header (printed at once) and table, and whether
    something compared differs."""
    ws = Workspace(root, args.original)
    seeds = sorted({*DATA_SEEDS, args.seed})
    header = [f'Parity of this code ({ROOT}) with the original ({args.original.resolve()})', '',
              f'- {versions()}',
              "- edits applied to the original's temporary copy (regular expressions, every .py file of its src/):",
              *[f'  - {line}' for line in ws.edits],
              f'- RNG: {RNG_NOTE}',
              "- the original's caches (dat/binary_*) built first, by a seed-0 loader (our pmnist's permutations are "
              "a seed-0 run's); data: tests/fixtures.py's MNIST and CIFAR, the same files for both codes",
              f'- step: seed {args.seed}, the first {BATCH} training samples of task 0, one train_epoch in each code; '
              f'pathnet on a fixed path',
              f"- runs: seed {args.seed}, --nepochs {args.nepochs}, batch {BATCH}, lr {LR}; ours with --network "
              f"mlp_original where the original ran its mlp.py; pathnet with --parameter {args.nepochs} (generations, "
              f"one epoch each) in both; hat-test with --parameter <log path> in both", '']
    print('\n'.join(header), flush=True)
    out, log = ws.launch('original', 'cache', experiments=args.experiments)
    for experiment in args.experiments:
        built = read(out, log, f'cache_{experiment}')
        if built:
            print(f"  the original's cache of {experiment} failed: {built.get('error') or built.get('crashed')}")
    data = check_data(ws, args.experiments, seeds)
    results = {e: check_experiment(ws, args, e) for e in args.experiments}
    bad = any(o.bad for outcomes in data.values() for o in outcomes.values()) or \
        any(o.bad for outcomes in results.values() for pair in outcomes.values() for o in pair)
    return header, table(args.experiments, data, results), bad


def main() -> None:
    """Compare the codes and print the table (or, with --child, be one worker process)."""
    args = parse_args()
    if args.child is not None:
        child_main(args.child)
        return
    if importlib.util.find_spec('sklearn') is None:
        sys.exit("error: the original's loaders import scikit-learn (sklearn.utils.shuffle): pip install scikit-learn")
    clock = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix='parity_'))
    try:
        header, rows, bad = compare_codes(args, root)
    finally:
        if args.keep:
            print(f'kept {root} (jobs/*.log: every process\'s output)')
        else:
            shutil.rmtree(root, ignore_errors=True)
    elapsed = f'{(time.perf_counter() - clock) / 60:.1f} min'
    verdict = f"{'differences found' if bad else 'everything compared is identical'} ({elapsed})"
    print('\n' + '\n'.join(rows) + '\n\n' + verdict)
    if args.out:
        args.out.write_text('\n'.join(header + rows) + f'\n\n{verdict}\n')
    sys.exit(1 if bad else 0)


if __name__ == '__main__':
    main()
