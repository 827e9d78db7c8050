"""Parity of PackNet's masks, pruning, gradient blocking and per-task weights with the authors' code: the same
tensors in, the same out.

    python tools/parity_packnet.py --checkout ~/packnet
    python tools/parity_packnet.py --checkout ~/packnet --prune 0.5,0.75,0.75,0.6 --seed 3

--checkout is a checkout of github.com/arunmallya/packnet (the folder holding src/prune.py). Their pruning is one
class, SparsePruner, in src/prune.py, written for torch 0.2 on a GPU; the harness loads that file at run time, from a
temporary copy with two mechanical edits (each must match as many times as said, or the harness stops):
  - every `.cuda()` dropped (3, prune.py:31, :64, :105): the tensors stay on the CPU, where ours are compared;
  - `kthvalue(cutoff_rank)[0][0]` -> `kthvalue(cutoff_rank)[0].item()` (prune.py:35): torch >= 0.4 returns a
    0-dimensional value, which [0] cannot index; .item() is the float [0][0] gave.
Nothing else changes (under Python 3, round() already returns the int kthvalue takes), and nothing of theirs enters
this repository.

Their pruner reads a network's `shared` nn.Sequential, its masks keyed by each layer's index in shared.modules()
(prune.py:60); ours, the Conv2d and Linear layers outside the heads. The harness's network has both: a `shared`
Sequential (a convolution with bias and batch norm, one without bias, two linear layers, one of 105 weights so that
round(0.5 * n) halves) and our per-task heads (`last`), in two copies holding the same weights, one per pruner. Per
task t (their dataset index t + 1), with weights drawn on a grid of 1/16 so that many tie, zeros included:
  owners     the new task's masks: their make_finetuning_mask (from the second task; the first starts from their
             all-ones masks, main.py:296) and our pre_train;
  grads      the same random gradients on every parameter; their make_grads_zero (train_bias and train_bn on for
             the first task, as their ImageNet pruning, off after it, their default) and our post_backward: the
             weight gradients, and which parameters they zero against which ours fixes (requires_grad off) - before
             pruning (from the second task: their first task is not trained) and after it;
  prune      the task's weights drawn anew (the training) in both copies; their prune() and our prune(): the masks,
             every weight of the network, and how many were freed against round(p * n) (more: ties at the cutoff);
  test       for each task u <= t, their apply_mask(u + 1) on a copy of their network (it zeroes for good) and our
             only_tasks_to(u): the weights a test of u sees, and ours bitwise as they were after it.
Printed: per task and comparison, the largest absolute difference (identical: bitwise) or whether the two are the
same (masks: equal; which parameters are fixed; ours restored after the test).
Exit status 0 when everything compared is identical, 1 otherwise.
"""
import os

# One thread, set before torch loads its libraries
os.environ.setdefault('OMP_NUM_THREADS', '1')

import argparse  # noqa: E402
import contextlib  # noqa: E402
import copy  # noqa: E402
import importlib.util  # noqa: E402
import io  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
from torch import nn  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / 'src') not in sys.path:
    sys.path.insert(0, str(ROOT / 'src'))
from approaches import packnet  # noqa: E402
from approaches._base import Loop  # noqa: E402

THEIR_FILE = 'src/prune.py'
# The mechanical edits: (their text, ours, how many times it occurs, why)
EDITS = (('.cuda()', '', 3, 'CPU'),
         ('kthvalue(cutoff_rank)[0][0]', 'kthvalue(cutoff_rank)[0].item()', 1, 'a 0-dimensional value on torch >= 0.4'))
GRID = 16  # weights and gradients are multiples of 1/GRID: many ties


class Net(nn.Module):
    """Their layout (`shared`, prune.py:60) with our heads (`last`)."""

    def __init__(self, ntasks: int):
        super().__init__()
        self.taskcla = [(t, 2) for t in range(ntasks)]
        self.shared = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                    nn.Conv2d(8, 6, 3, bias=False), nn.ReLU(), nn.Flatten(),  # (B, 6 * 4 * 4)
                                    nn.Linear(96, 15), nn.ReLU(), nn.Linear(15, 7))
        self.last = nn.ModuleList(nn.Linear(7, 2) for _ in self.taskcla)

    def forward(self, x):
        h = self.shared(x)
        return [head(h) for head in self.last]


def load_theirs(checkout: Path):
    """Their src/prune.py, edited as EDITS says, from a temporary copy, as a module."""
    text = (checkout / THEIR_FILE).read_text()
    for old, new, times, _ in EDITS:
        if text.count(old) != times:
            sys.exit(f'{checkout / THEIR_FILE} has {text.count(old)} of {old!r}, not {times}: not the checkout this '
                     f'harness knows (arunmallya/packnet at 7b6032c)')
        text = text.replace(old, new)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / 'prune.py'
        path.write_text(text)
        spec = importlib.util.spec_from_file_location('their_prune', path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return module


def on_grid(shape, g: torch.Generator) -> torch.Tensor:
    """Random values, multiples of 1/GRID (a fifth or so of them 0)."""
    return torch.round(torch.randn(shape, generator=g) * 4) / GRID


def quietly(function, *args):
    """Call a function without its prints."""
    with contextlib.redirect_stdout(io.StringIO()):
        return function(*args)


def largest(pairs) -> float:
    """The largest absolute difference over pairs of tensors of the same shape (inf where shapes differ)."""
    worst = 0.0
    for a, b in pairs:
        if a.shape != b.shape:
            return float('inf')
        if a.numel():
            worst = max(worst, float((a.detach().double() - b.detach().double()).abs().max()))
    return worst


def shown(result: float | bool) -> str:
    """A difference (0: identical) or whether two things are the same."""
    if isinstance(result, bool):
        return 'equal' if result else 'DIFFER'
    return 'identical' if result == 0 else f'max |diff| {result:.3g}'


class Pair:
    """Their network and pruner's masks, ours and our approach, holding the same weights."""

    def __init__(self, theirs_module, ntasks: int, fractions: list[float], seed: int):
        torch.manual_seed(seed)
        self.theirs = Net(ntasks)
        self.ours = copy.deepcopy(self.theirs)
        self.module = theirs_module
        self.fractions = fractions
        self.appr = packnet.Appr(self.ours, packnet.Appr.Hyper(prune=tuple(fractions), prune_last=True), Loop())
        # Their masks: uint8, by index in shared.modules(), 1 for the first task (main.py:294-299)
        self.index = {f'shared.{i - 1}': i for i, m in enumerate(self.theirs.shared.modules())
                      if isinstance(m, (nn.Conv2d, nn.Linear))}
        self.masks = {i: torch.ones_like(self.theirs.shared[i - 1].weight, dtype=torch.uint8)
                      for i in self.index.values()}

    def pruner(self, t: int):
        # Their train_bias and train_bn: on for their ImageNet (run_imagenet_pruning.sh:24), off after it
        return self.module.SparsePruner(self.theirs, self.fractions[t], self.masks, t == 0, t == 0)

    def same_masks(self) -> bool:
        return all(torch.equal(self.appr.masks[name], self.masks[i]) for name, i in self.index.items())

    def weights(self) -> float:
        """The largest difference over every parameter and buffer of the two networks."""
        ours = self.ours.state_dict()
        return largest((ours[k], v) for k, v in self.theirs.state_dict().items())

    def grads(self, t: int, pruner, g: torch.Generator) -> tuple[float, bool]:
        """The same random gradients through their make_grads_zero and our post_backward: the weights' largest
        difference, and whether the parameters they zero whole are those ours fix."""
        for (name, p), q in zip(self.theirs.named_parameters(), self.ours.parameters()):
            p.grad = on_grid(p.shape, g) + 1 / (2 * GRID)  # never 0, so that a zero is one they made
            q.grad = p.grad.clone()
        pruner.make_grads_zero()
        self.appr.post_backward(t)
        weights = largest((self.ours.get_submodule(name).weight.grad, self.theirs.get_submodule(name).weight.grad)
                          for name in self.index)
        owned = {name + '.weight' for name in self.index}
        zeroed = {n for n, p in self.theirs.named_parameters() if n not in owned and not p.grad.any()}
        fixed = {n for n, p in self.ours.named_parameters() if not p.requires_grad}
        return weights, zeroed == fixed

    def train(self, t: int, g: torch.Generator) -> None:
        """The task's weights drawn anew, the same in both networks (its training, as far as pruning sees it)."""
        with torch.no_grad():
            for name, i in self.index.items():
                theirs = self.theirs.get_submodule(name).weight
                owned = self.masks[i] == t + 1
                theirs[owned] = on_grid(theirs.shape, g)[owned]
                self.ours.get_submodule(name).weight.copy_(theirs)


def compare(theirs_module, fractions: list[float], seed: int) -> bool:
    """Print the comparisons task by task; whether everything is identical."""
    ntasks = len(fractions)
    pair = Pair(theirs_module, ntasks, fractions, seed)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in pair.theirs.parameters():
            p.copy_(on_grid(p.shape, g))
    pair.ours.load_state_dict(pair.theirs.state_dict())
    same = True
    for t in range(ntasks):
        checks = []  # (what, its difference or whether it is the same)
        pruner = pair.pruner(t)
        if t > 0:
            quietly(pruner.make_finetuning_mask)
        pair.appr.pre_train(t)
        checks.append(('owners', pair.same_masks()))
        if t > 0:
            weights, fixed = pair.grads(t, pruner, g)
            checks += [('training grads', weights), ('zeroed vs fixed', fixed)]
        pair.train(t, g)
        sizes = [int((m == t + 1).sum()) for m in pair.masks.values()]
        pruner = pair.pruner(t)  # their prune step starts anew from the saved masks (main.py:239-251)
        quietly(pruner.prune)
        quietly(pair.appr.prune, t, fractions[t])
        freed = [n - int((m == t + 1).sum()) for n, m in zip(sizes, pair.masks.values())]
        asked = [round(fractions[t] * n) for n in sizes]
        checks += [('pruned masks', pair.same_masks()), ('pruned weights', pair.weights())]
        weights, fixed = pair.grads(t, pruner, g)
        checks += [('retraining grads', weights), ('zeroed vs fixed', fixed)]
        quietly(pair.appr.post_train, t, None)  # ours fixes the biases and batch norms after the first task
        seen, restored = 0.0, True
        for u in range(t + 1):
            masked = copy.deepcopy(pair.theirs)
            their_pruner = pair.module.SparsePruner(masked, fractions[t], pair.masks, False, False)
            their_pruner.apply_mask(u + 1)
            before = {k: v.clone() for k, v in pair.ours.state_dict().items()}
            with pair.appr.only_tasks_to(u):
                seen = max(seen, largest((pair.ours.get_submodule(name).weight, masked.get_submodule(name).weight)
                                         for name in pair.index))
            after = pair.ours.state_dict()
            restored &= all(torch.equal(before[k], after[k]) for k in before)
        checks += [(f'weights tested for tasks 0-{t}', seen), ('weights after the tests', restored)]
        same &= all(result is True or result == 0 for _, result in checks)
        print(f'task {t} (prune {fractions[t]}): ' + '; '.join(f'{what} {shown(result)}' for what, result in checks))
        print(f'    freed per layer {freed}, round(p * n) {asked}', flush=True)
    return same


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--checkout', type=Path, required=True, help='a checkout of arunmallya/packnet')
    p.add_argument('--prune', default='0.5,0.75,0.75',
                   help='the fraction pruned after each task, one per task (default: %(default)s: their ImageNet, '
                        'then their added tasks)')
    p.add_argument('--seed', type=int, default=0, help='(default: %(default)s)')
    args = p.parse_args()
    try:
        fractions = [float(x) for x in args.prune.split(',')]
    except ValueError:
        p.error(f'--prune: comma-separated numbers, not {args.prune!r}')
    if not all(0 < f < 1 for f in fractions):
        p.error('--prune: each fraction in (0, 1) (their kthvalue(0) fails at 0)')
    if not (args.checkout / THEIR_FILE).is_file():
        p.error(f'{args.checkout} is not a checkout of arunmallya/packnet (no {THEIR_FILE})')
    torch.set_num_threads(1)
    print(f'torch {torch.__version__}; CPU, 1 thread; seed {args.seed}; edits to their {THEIR_FILE}: '
          + '; '.join(f'{old!r} -> {new!r} (x{times}, {why})' for old, new, times, why in EDITS))
    same = compare(load_theirs(args.checkout), fractions, args.seed)
    print('everything compared is identical' if same else 'differences found')
    return 0 if same else 1


if __name__ == '__main__':
    sys.exit(main())
