"""Parity of GPM's memory and projected step with the authors' code: the same representation matrices, the same
bases, the same weights after a projected step.

    python tools/parity_gpm.py --checkout ~/GPM
    python tools/parity_gpm.py --checkout ~/GPM --benchmarks pmnist,cifar100 --tasks 3

--checkout is a checkout of github.com/sahagobinda/GPM (the folder holding main_cifar100.py). Its scripts import
torchvision, matplotlib, seaborn and pandas at the top and run a whole experiment in main(), so the harness imports
none of them: it reads the definitions it calls from the three scripts at run time (Python's ast: each class and
function's own definition, compiled alone with its file's name and line numbers, in a namespace holding the names
their files import: torch, nn, F, np, OrderedDict, deepcopy, relu, avg_pool2d) and calls them unchanged. Nothing is
edited, and nothing of theirs enters this repository. Their thresholds and projectors are built in main(), which
cannot be called alone: the harness writes those two expressions as main() does (their lines cited below).

Per benchmark, their network and ours holding the same weights (pmnist: their MLPNet and our mlp at 100 units with
zero biases, their single output layer copied into each of our heads; cifar100: their AlexNet and alexnet_bn;
five_datasets: their ResNet18(nf=20) and resnet18_reduced, whose batch norms gpm puts on batch statistics as theirs),
random inputs of the benchmark's shape, CPU, one thread, for --tasks tasks:
  step       from the second task on, one training step on 64 inputs of the task from the same weights and seeds:
             their train_projected (projectors torch.Tensor(np.dot(U, U.T)) from their bases) and our loop's
             train_batch after pre_train, the batch in their shuffled order: every parameter after it but pmnist's
             output layer (theirs is one shared head, projected; ours are per-task heads, never projected);
  represent  from the same numpy seed, their get_representation_matrix (five_datasets: ..._ResNet18) and our draw and
             representations(): every layer's matrix (pmnist: their first two; the third is their output layer's);
  bases      their update_GPM(mats, threshold, their bases so far) and our Appr.post_train, which draws and represents
             again from the same seed: every layer's basis, its size and its values.
After each task's step our network takes their weights, so that every comparison starts from the same state. Printed:
per benchmark, task and comparison, the largest absolute difference (identical: bitwise), how far the step moved
the weights, and the bases' sizes (columns/rows). Exit
status 0 when every difference is 0, 1 otherwise.
"""
import os

# One thread for torch's and numpy's BLAS and LAPACK, set before either loads them
for _name in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS'):
    os.environ.setdefault(_name, '1')

import argparse  # noqa: E402
import ast  # noqa: E402
import contextlib  # noqa: E402
import io  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import types  # noqa: E402
from collections import OrderedDict  # noqa: E402
from copy import deepcopy  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / 'src') not in sys.path:
    sys.path.insert(0, str(ROOT / 'src'))
from approaches import gpm  # noqa: E402
from approaches._base import Loop  # noqa: E402
from networks import alexnet_bn, mlp, resnet18_reduced  # noqa: E402

BENCHMARKS = ('pmnist', 'cifar100', 'five_datasets')
# benchmark -> their script and the definitions read from it
SCRIPTS = {
    'pmnist': ('main_pmnist.py', ('MLPNet', 'train_projected', 'get_representation_matrix', 'update_GPM')),
    'cifar100': ('main_cifar100.py', ('compute_conv_output_size', 'AlexNet', 'train_projected',
                                      'get_representation_matrix', 'update_GPM')),
    'five_datasets': ('main_five_dataset.py', ('compute_conv_output_size', 'conv3x3', 'BasicBlock', 'ResNet',
                                               'ResNet18', 'train_projected', 'get_representation_matrix_ResNet18',
                                               'update_GPM')),
}
NAMESPACE = {'torch': torch, 'nn': torch.nn, 'F': F, 'np': np, 'OrderedDict': OrderedDict, 'deepcopy': deepcopy,
             'relu': F.relu, 'avg_pool2d': F.avg_pool2d}
# Inputs per task: at least their n_s (300, 125, 100), and no set one longer than a multiple of 64 (their batch norms
# cannot normalise a batch of one)
EXAMPLES = {'pmnist': 310, 'cifar100': 130, 'five_datasets': 110}
SHAPES = {'pmnist': (1, 28, 28), 'cifar100': (3, 32, 32), 'five_datasets': (3, 32, 32)}
NCLA = 10
BATCH = 64  # the step's inputs, one batch of their batch_size_train
LR = 0.01


def read_definitions(path: Path, names: tuple[str, ...]) -> types.SimpleNamespace:
    """The named top-level classes and functions of a script, each compiled alone from its source (none of the
    script's imports run) and defined in one namespace, in the script's order."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = {node.name: node for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
    missing = [name for name in names if name not in found]
    if missing:
        sys.exit(f'{path} defines no {", ".join(missing)}: not a checkout of sahagobinda/GPM')
    namespace = dict(NAMESPACE)
    for node in sorted((found[name] for name in names), key=lambda node: node.lineno):
        exec(compile(ast.Module(body=[node], type_ignores=[]), str(path), 'exec'), namespace)
    return types.SimpleNamespace(**{name: namespace[name] for name in names})


def their_threshold(benchmark: str, task: int) -> np.ndarray:
    """The thresholds their main() sets for a task (counted from 0)."""
    if benchmark == 'pmnist':
        return np.array([0.95, 0.99, 0.99])  # main_pmnist.py:216
    if benchmark == 'cifar100':
        return np.array([0.97] * 5) + task * np.array([0.003] * 5)  # main_cifar100.py:297
    return np.array([0.965] * 20)  # main_five_dataset.py:341


def their_projectors(bases: list[np.ndarray]) -> list[torch.Tensor]:
    """The projectors their main() builds before a later task (main_cifar100.py:366-371)."""
    return [torch.Tensor(np.dot(U, U.transpose())) for U in bases]


def networks(benchmark: str, defs, tasks: int):
    """Their network, ours (holding their weights) with gpm on it, and the map of our parameter names to theirs."""
    taskcla = [(t, NCLA) for t in range(tasks)]
    if benchmark == 'pmnist':
        theirs = defs.MLPNet(100, NCLA)
        ours = mlp.Net(list(SHAPES[benchmark]), taskcla, nhid=100, pdrop1=0, pdrop2=0)
        names = {'fc1.weight': 'lin1.weight', 'fc2.weight': 'lin2.weight',
                 **{f'last.{t}.weight': 'fc1.weight' for t in range(tasks)}}
    elif benchmark == 'cifar100':
        theirs = defs.AlexNet(taskcla)
        ours = alexnet_bn.Net(list(SHAPES[benchmark]), taskcla)
        names = {k: k.replace('last.', 'fc3.') for k in ours.state_dict()}
    else:
        theirs = defs.ResNet18(taskcla, 20)  # nf=20 (main_five_dataset.py:361)
        ours = resnet18_reduced.Net(list(SHAPES[benchmark]), taskcla)
        names = None  # known once gpm has dropped our batch norms' running statistics
    appr = gpm.Appr(ours, None, Loop(lr=LR, batch_size=BATCH))
    if names is None:
        names = {k: k.replace('last.', 'linear.') for k in ours.state_dict()}
    return theirs, ours, appr, names


def take_their_weights(ours: torch.nn.Module, theirs: torch.nn.Module, names: dict[str, str]) -> None:
    """Our network's weights set to theirs (pmnist's biases, which theirs has not, to 0)."""
    source = theirs.state_dict()
    ours.load_state_dict({k: source[names[k]].clone() if k in names else torch.zeros_like(v)
                          for k, v in ours.state_dict().items()})


def largest(pairs) -> float:
    """The largest absolute difference over pairs of arrays of the same shape (inf where shapes differ)."""
    worst = 0.0
    for a, b in pairs:
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape:
            return float('inf')
        if a.size:
            worst = max(worst, float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))))
    return worst


def said(difference: float) -> str:
    return 'identical' if difference == 0 else f'max |diff| {difference:.3g}'


def quietly(function, *args):
    """Call one of their functions without its prints."""
    with contextlib.redirect_stdout(io.StringIO()):
        return function(*args)


def compare(benchmark: str, checkout: Path, tasks: int, seed: int) -> list[float]:
    """Print the comparisons of one benchmark, task by task; return every difference."""
    script, names_read = SCRIPTS[benchmark]
    defs = read_definitions(checkout / script, names_read)
    torch.manual_seed(seed)
    theirs, ours, appr, names = networks(benchmark, defs, tasks)
    take_their_weights(ours, theirs, names)
    g = torch.Generator().manual_seed(seed)
    n = EXAMPLES[benchmark]
    data = [{'train': {'x': torch.randn(n, *SHAPES[benchmark], generator=g),
                       'y': torch.randint(0, NCLA, (n,), generator=g)}} for _ in range(tasks)]
    represent = (defs.get_representation_matrix_ResNet18 if benchmark == 'five_datasets'
                 else defs.get_representation_matrix)
    compared = [name for name in names if not (benchmark == 'pmnist' and name.startswith('last.'))]
    their_bases, differences = [], []
    for t in range(tasks):
        x, y = data[t]['train']['x'], data[t]['train']['y']
        line = f'{benchmark:13s} task {t}:'
        if t > 0:
            args = argparse.Namespace(batch_size_train=BATCH)
            their_args = (args, theirs, torch.device('cpu'), x[:BATCH], y[:BATCH],
                          torch.optim.SGD(theirs.parameters(), lr=LR), torch.nn.CrossEntropyLoss(),
                          their_projectors(their_bases))
            before = {k: v.clone() for k, v in theirs.state_dict().items()}
            np.random.seed(seed + t)
            torch.manual_seed(seed + t)
            defs.train_projected(*their_args, *(() if benchmark == 'pmnist' else (t,)))
            np.random.seed(seed + t)
            order = torch.from_numpy(np.random.permutation(BATCH))  # their np.random.shuffle(arange(N))
            torch.manual_seed(seed + t)
            appr.pre_train(t)
            appr.optimizer = appr.make_optimizer(LR)
            ours.train()
            appr.train_batch(t, x[:BATCH][order], y[:BATCH][order])
            stepped = theirs.state_dict()
            difference = largest((p.detach().numpy(), stepped[names[k]].numpy())
                                 for k, p in ours.state_dict().items() if k in compared)
            differences.append(difference)
            moved = largest((stepped[names[k]].numpy(), before[names[k]].numpy()) for k in compared)
            line += f' step {said(difference)} (weights moved by up to {moved:.2g});'
            take_their_weights(ours, theirs, names)
        theirs.eval()  # their main() represents after test(), which leaves the network in evaluation mode
        np.random.seed(seed + 100 + t)
        their_mats = quietly(represent, theirs, torch.device('cpu'), x)
        np.random.seed(seed + 100 + t)
        drawn = torch.from_numpy(np.random.permutation(n)[:max(appr.samples)])
        our_mats = gpm.representations(ours, appr.layers, x[drawn], appr.samples)
        difference = largest(zip(our_mats, their_mats))
        differences.append(difference)
        line += f' represent {said(difference)};'
        their_bases = quietly(defs.update_GPM, theirs, their_mats, their_threshold(benchmark, t), their_bases)
        np.random.seed(seed + 100 + t)
        appr.post_train(t, data)
        our_bases = [appr.bases[name] for name, _ in appr.layers]
        difference = largest(zip(our_bases, their_bases))
        differences.append(difference)
        sizes = ' '.join(f'{U.shape[1]}/{U.shape[0]}' for U in their_bases[:len(our_bases)])
        line += f' bases {said(difference)} (theirs: {sizes})'
        print(line, flush=True)
    return differences


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--checkout', type=Path, required=True, help='a checkout of sahagobinda/GPM')
    p.add_argument('--benchmarks', default=','.join(BENCHMARKS), help='comma-separated (default: %(default)s)')
    p.add_argument('--tasks', type=int, default=2, help='tasks per benchmark, at least 2 (default: %(default)s)')
    p.add_argument('--seed', type=int, default=0, help='(default: %(default)s)')
    args = p.parse_args()
    benchmarks = [b for b in args.benchmarks.split(',') if b]
    unknown = [b for b in benchmarks if b not in BENCHMARKS]
    if unknown or not benchmarks:
        p.error(f"--benchmarks: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(BENCHMARKS)}")
    if args.tasks < 2:
        p.error('--tasks must be at least 2 (the projected step and the later bases start at the second task)')
    if not (args.checkout / 'main_cifar100.py').is_file():
        p.error(f'{args.checkout} is not a checkout of sahagobinda/GPM (no main_cifar100.py)')
    torch.set_num_threads(1)
    print(f'torch {torch.__version__}, numpy {np.__version__}; CPU, 1 thread; seed {args.seed}')
    start = time.time()
    differences = [d for b in benchmarks for d in compare(b, args.checkout, args.tasks, args.seed)]
    same = all(d == 0 for d in differences)
    print(f"{'everything compared is identical' if same else 'differences found'} ({time.time() - start:.0f} s)")
    return 0 if same else 1


if __name__ == '__main__':
    sys.exit(main())
