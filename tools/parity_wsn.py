"""Parity of WSN's mask, layers and frozen training with the authors' code: the same masks and straight-through
gradients, the same layers, and the same weights, scores and masks after training two tasks.

    python tools/parity_wsn.py --checkout /tmp/wsn_checkout
    python tools/parity_wsn.py --checkout ~/WSN --sparsity 0.03,0.5 --tasks 3

--checkout is a checkout of github.com/ihaeyong/WSN (the folder holding networks/subnet.py and main_wsn_pmnist.py).
Their networks/subnet.py and networks/mlp.py are imported from it at run time as the package `wsn_networks` (mlp.py's
neighbour conditional_task.py imports ipdb, which it never uses here: an empty module stands in for it); their
train() is read from main_wsn_pmnist.py alone (Python's ast: its own definition compiled with its file's name and line
numbers; the script's imports, matplotlib and the data loaders, never run) and called unchanged. Their per-task
consolidation is inline in main(), which cannot be called alone: the harness writes that one expression as main()
does (main_wsn_pmnist.py:212-226). Nothing is edited, and nothing of theirs enters this repository.

On CPU, one thread, for each c of --sparsity (the fraction kept; theirs is given 1 - c, as every main sets it):
  mask       their GetSubnetFaster on |s| and our ste_mask on s, for tensors of several sizes, continuous and with
             many ties: the masks, and the scores' gradients from the same upstream gradient;
  layers     their SubnetLinear and SubnetConv2d and ours, each drawn from the same seed: weight, score, the training
             forward's output and the weight's and score's gradients;
  training   their SubnetMLPNet and our mlp_subnet from the same seed (every parameter compared first), then per task
             one epoch on the same random inputs in the same shuffled order (numpy's seed): their train() with a fresh
             Adam and their consolidated masks, our loop's train_epoch and wsn's post_train; after each task every
             parameter, the task's mask (their get_masks, ours kept) and the union.
Printed: the largest absolute difference of each comparison (0: bitwise the same). Exit status 0 when every one is
0, 1 otherwise.
"""
import os

for _name in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS'):
    os.environ.setdefault(_name, '1')

import argparse  # noqa: E402
import ast  # noqa: E402
import contextlib  # noqa: E402
import importlib  # noqa: E402
import io  # noqa: E402
import sys  # noqa: E402
import types  # noqa: E402
from argparse import Namespace  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / 'src') not in sys.path:
    sys.path.insert(0, str(ROOT / 'src'))
from approaches import wsn  # noqa: E402
from approaches._base import Loop  # noqa: E402
from networks import _subnet, mlp_subnet  # noqa: E402

SIZES = (5, 6, 100, 1000, 78400)
NCLA = 10
EXAMPLES = 95  # per task: one last partial batch of 5
BATCH = 10  # main_wsn_pmnist.py's batch_size_train
LR = 1e-3


def load_theirs(checkout: Path):
    """Their networks package (subnet, mlp) and main_wsn_pmnist.py's train()."""
    folder = checkout / 'networks'
    if not (folder / 'subnet.py').is_file() or not (checkout / 'main_wsn_pmnist.py').is_file():
        sys.exit(f'{checkout} holds no networks/subnet.py and main_wsn_pmnist.py: not a checkout of ihaeyong/WSN')
    sys.modules.setdefault('ipdb', types.ModuleType('ipdb'))
    package = types.ModuleType('wsn_networks')
    package.__path__ = [str(folder)]
    sys.modules['wsn_networks'] = package
    subnet = importlib.import_module('wsn_networks.subnet')
    mlp = importlib.import_module('wsn_networks.mlp')
    path = checkout / 'main_wsn_pmnist.py'
    tree = ast.parse(path.read_text(), filename=str(path))
    node = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == 'train')
    namespace = {'torch': torch, 'np': np}
    exec(compile(ast.Module(body=[node], type_ignores=[]), str(path), 'exec'), namespace)
    return subnet, mlp, namespace['train']


def largest(pairs) -> float:
    """The largest absolute difference over pairs of tensors of the same shape (inf where shapes differ)."""
    worst = 0.0
    for a, b in pairs:
        a, b = torch.as_tensor(a).double(), torch.as_tensor(b).double()
        if a.shape != b.shape:
            return float('inf')
        if a.numel():
            worst = max(worst, (a - b).abs().max().item())
    return worst


def compare_masks(subnet, c: float) -> float:
    pairs = []
    for n in SIZES:
        for ties in (False, True):
            g = torch.Generator().manual_seed(n)
            s = torch.randint(-4, 5, (n,), generator=g).float() if ties else torch.randn(n, generator=g)
            upstream = torch.randn(n, generator=g)
            theirs_s = s.clone().requires_grad_(True)
            theirs = subnet.GetSubnetFaster.apply(theirs_s.abs(), torch.zeros(n), torch.ones(n), 1 - c)
            (theirs * upstream).sum().backward()
            ours_s = s.clone().requires_grad_(True)
            ours = _subnet.ste_mask(ours_s, c)
            (ours * upstream).sum().backward()
            pairs += [(theirs, ours), (theirs_s.grad, ours_s.grad)]
    return largest(pairs)


def compare_layers(subnet, c: float) -> float:
    pairs = []
    x = torch.randn(4, 12)
    xc = torch.randn(4, 3, 9, 9)
    for make_theirs, make_ours, inputs in (
            (lambda: subnet.SubnetLinear(12, 7, bias=False, sparsity=1 - c),
             lambda: _subnet.SubnetLinear(12, 7), x),
            (lambda: subnet.SubnetConv2d(3, 5, 3, stride=2, padding=1, bias=False, sparsity=1 - c),
             lambda: _subnet.SubnetConv2d(torch.nn.Conv2d(3, 5, 3, stride=2, padding=1, bias=False)), xc)):
        torch.manual_seed(0)
        theirs = make_theirs()
        ours = make_ours()
        torch.manual_seed(0)
        ours.draw()
        pairs += [(theirs.weight, ours.weight), (theirs.w_m, ours.scores[0])]
        out_theirs = theirs(inputs, mode='train')
        ours.mask = _subnet.ste_mask(ours.scores[0], c)
        out_ours = ours(inputs)
        out_theirs.square().sum().backward()
        out_ours.square().sum().backward()
        pairs += [(out_theirs, out_ours), (theirs.weight.grad, ours.weight.grad),
                  (theirs.w_m.grad, ours.scores[0].grad)]
    return largest(pairs)


def their_name(name: str) -> str:
    return name.replace('scores.0', 'w_m')


def compare_training(mlp, train, c: float, tasks: int) -> list[tuple[str, float]]:
    taskcla = [(t, NCLA) for t in range(tasks)]
    torch.manual_seed(0)
    theirs = mlp.SubnetMLPNet(taskcla, sparsity=1 - c)
    torch.manual_seed(0)
    ours = mlp_subnet.Net([1, 28, 28], taskcla)
    appr = wsn.Appr(ours, wsn.Appr.Hyper(c=c), Loop(optimizer='adam', lr=LR, batch_size=BATCH))
    mine = dict(ours.named_parameters())
    theirs_params = dict(theirs.named_parameters())
    rows = [('initial parameters', largest((theirs_params[their_name(k)], v) for k, v in mine.items()))]
    g = torch.Generator().manual_seed(1)
    consolidated = None
    args = Namespace(batch_size_train=BATCH)
    for t in range(tasks):
        x = torch.randn(EXAMPLES, 1, 28, 28, generator=g)
        y = torch.randint(0, NCLA, (EXAMPLES,), generator=g)
        np.random.seed(t)
        train(args, theirs, 'cpu', x, y, torch.optim.Adam(theirs.parameters(), lr=LR), torch.nn.CrossEntropyLoss(),
              t, consolidated)
        with contextlib.redirect_stdout(io.StringIO()):  # get_masks prints each layer's name
            task_mask = theirs.get_masks(t)
        # main_wsn_pmnist.py:212-226: C = M_0, then C = 1 - (1 - C)(1 - M_t) where both exist
        if consolidated is None:
            consolidated = dict(task_mask)
        else:
            consolidated = {k: v if v is None or task_mask[k] is None else 1 - ((1 - v) * (1 - task_mask[k]))
                            for k, v in consolidated.items()}
        np.random.seed(t)
        appr.optimizer = appr.make_optimizer(LR)
        appr.train_epoch(t, x, y)
        with contextlib.redirect_stdout(io.StringIO()):
            appr.post_train(t, None)
        theirs_params = dict(theirs.named_parameters())
        rows += [(f'task {t}: parameters', largest((theirs_params[their_name(k)], v) for k, v in mine.items())),
                 (f'task {t}: its mask', largest((task_mask[k + '.weight'], m) for k, m in appr.masks[t].items())),
                 (f'task {t}: union', largest((consolidated[k + '.weight'], m) for k, m in appr.union.items()))]
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--checkout', type=Path, required=True, help='a checkout of github.com/ihaeyong/WSN')
    parser.add_argument('--sparsity', default='0.03,0.1,0.5', help='comma-separated c, the fraction kept')
    parser.add_argument('--tasks', type=int, default=3)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    subnet, mlp, train = load_theirs(args.checkout.expanduser())
    worst = 0.0
    for c in (float(v) for v in args.sparsity.split(',')):
        rows = [('mask and STE gradient', compare_masks(subnet, c)), ('layers', compare_layers(subnet, c)),
                *compare_training(mlp, train, c, args.tasks)]
        for what, diff in rows:
            print(f'c={c:<5} {what:28s} max |diff| = {diff:.3g}')
            worst = max(worst, diff)
    print('bitwise the same' if worst == 0 else f'differences up to {worst:.3g}')
    return 0 if worst == 0 else 1


if __name__ == '__main__':
    sys.exit(main())
