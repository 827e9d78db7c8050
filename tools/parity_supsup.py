"""Parity of SupSup's mask, network and training of the scores with the authors' code: the same masks and
straight-through gradients, the same weights, scores and densities, and the same features, gradients, scores and batch
statistics after training each task.

    python tools/parity_supsup.py --checkout /tmp/supsup_src
    python tools/parity_supsup.py --checkout ~/supsup --er 1,32 --tasks 3

--checkout is a checkout of github.com/RAIVNLab/supsup (the folder holding models/ and args.py). Their models package
is imported from it at run time; their args.py, which parses sys.argv when imported, is replaced by a module holding
the fields the models read (num_tasks, sparsity, the GG config's conv_type, bn_type and conv_init, rn18-supsup.yaml:
14-18; mode and nonlinearity at their argparse defaults). Their Erdos-Renyi densities are set inline in main(), which
cannot be called alone: the harness writes that expression as main() does (main.py:61-75); their optimizer is built as
main() builds it (the task's `scores.<t>` parameters, Adam with weight decay, main.py:203-233). Nothing is edited,
and nothing of theirs enters this repository.

On CPU, one thread:
  mask       their GetSubnet on |s| and our supsup_mask on s, at each of GEMResNet18's densities and 0.5, for tensors
             of several sizes, continuous and with many ties: the masks, and the scores' gradients from the same
             upstream gradient;
  network    for each --er: their GEMResNet18 (20 tasks' scores unless --tasks) and our resnet18_reduced_supsup from
             the same seed: every weight and score (the heads differ by design: theirs a masked shared 1x1
             convolution, ours a linear head per task, drawn after everything else), and each layer's density;
  training   per task t, a few Adam steps on the same random inputs, the loss the features (the heads' input) times a
             fixed random tensor, theirs with model.apply(task = t) and their optimizer, ours through supsup.Appr
             (pre_train, make_optimizer, forward): the features and every score and batch-norm statistic after each
             step; after the task, every earlier task's evaluation features.
Printed: the largest absolute difference of each comparison (0: bitwise the same). Exit status 0 when every one is
0, 1 otherwise.
"""
import os

for _name in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS'):
    os.environ.setdefault(_name, '1')

import argparse  # noqa: E402
import importlib  # noqa: E402
import sys  # noqa: E402
import types  # noqa: E402
from argparse import Namespace  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / 'src') not in sys.path:
    sys.path.insert(0, str(ROOT / 'src'))
from approaches import supsup  # noqa: E402
from approaches._base import Loop  # noqa: E402
from networks import _supsup, resnet18_reduced_supsup  # noqa: E402

SIZES = (5, 6, 100, 1000, 540, 57600)
BATCH = 8
STEPS = 3
LR, WD = 1e-3, 1e-4  # their GG config's Adam and argparse's weight decay


def load_theirs(checkout: Path, tasks: int):
    """Their models package (gemresnet, module_util), with a stand-in for args.py."""
    if not (checkout / 'models' / 'gemresnet.py').is_file() or not (checkout / 'args.py').is_file():
        sys.exit(f'{checkout} holds no models/gemresnet.py and args.py: not a checkout of RAIVNLab/supsup')
    stand_in = types.ModuleType('args')
    stand_in.args = Namespace(num_tasks=tasks, sparsity=0.5, train_weight_tasks=0, mode='fan_in',
                              nonlinearity='relu', conv_type='MultitaskMaskConv', bn_type='MultitaskNonAffineBN',
                              conv_init='signed_constant', individual_heads=False, output_size=5, width_mult=1.0)
    sys.modules['args'] = stand_in
    sys.path.insert(0, str(checkout))
    return importlib.import_module('models.gemresnet'), importlib.import_module('models.module_util')


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


def set_er(model: torch.nn.Module, er: float) -> None:
    """main.py:61-75's densities, written as main() does."""
    for _, m in model.named_modules():
        if hasattr(m, 'sparsity'):
            m.sparsity = min(0.5, er * (m.weight.size(0) + m.weight.size(1)) /
                             (m.weight.size(0) * m.weight.size(1) * m.weight.size(2) * m.weight.size(3)))


def compare_masks(module_util, densities: list[float]) -> float:
    pairs = []
    for k in densities:
        for n in SIZES:
            for ties in (False, True):
                g = torch.Generator().manual_seed(n)
                s = torch.randint(-4, 5, (n,), generator=g).float() if ties else torch.randn(n, generator=g)
                upstream = torch.randn(n, generator=g)
                theirs_s = s.clone().requires_grad_(True)
                theirs = module_util.GetSubnet.apply(theirs_s.abs(), k)
                (theirs * upstream).sum().backward()
                ours_s = s.clone().requires_grad_(True)
                ours = _supsup.supsup_mask(ours_s, k)
                (ours * upstream).sum().backward()
                pairs += [(theirs, ours), (theirs_s.grad, ours_s.grad)]
    return largest(pairs)


def features_hook(store: list):
    """A forward pre-hook keeping the heads' input, flattened (their (B, 160, 1, 1), our (B, 160))."""
    return lambda module, inputs: store.append(inputs[0].flatten(1))


def their_name(name: str) -> str:
    return name.replace('.norms.', '.bns.')


def compare_network(gemresnet, er: float, tasks: int) -> list[tuple[str, float]]:
    torch.manual_seed(0)
    theirs = gemresnet.GEMResNet18()
    set_er(theirs, er)
    torch.manual_seed(0)
    ours = resnet18_reduced_supsup.Net([3, 32, 32], [(t, 5) for t in range(tasks)])
    appr = supsup.Appr(ours, supsup.Appr.Hyper(er=er), Loop(optimizer='adam', lr=LR, weight_decay=WD))
    theirs_state = theirs.state_dict()
    state = {k: v for k, v in ours.state_dict().items() if not k.startswith('last.')}
    rows = [('initial weights and scores', largest((theirs_state[their_name(k)], v) for k, v in state.items())),
            ('densities', largest((theirs.get_submodule(name).sparsity, k) for name, k in appr.density.items()))]
    theirs_features, ours_features = [], []
    theirs.linear.register_forward_pre_hook(features_hook(theirs_features))
    ours.last[0].register_forward_pre_hook(features_hook(ours_features))
    g = torch.Generator().manual_seed(1)
    inputs = []
    for t in range(tasks):
        x = torch.randn(STEPS, BATCH, 3, 32, 32, generator=g)
        upstream = torch.randn(BATCH, 160, generator=g)
        inputs.append(x[0])
        theirs.apply(lambda m: setattr(m, 'task', t))
        params = [p for n, p in theirs.named_parameters()
                  if p.requires_grad and n.split('.')[-2] == 'scores' and int(n.split('.')[-1]) == t]
        optimizer = torch.optim.Adam(params, lr=LR, weight_decay=WD)
        appr.pre_train(t)
        appr.optimizer = appr.make_optimizer(LR)
        theirs.train()
        ours.train()
        worst = 0.0
        for step in range(STEPS):
            theirs_features.clear()
            ours_features.clear()
            optimizer.zero_grad()
            theirs(x[step])
            (theirs_features[0] * upstream).sum().backward()
            optimizer.step()
            appr.optimizer.zero_grad()
            appr.forward(t, x[step], training=True)
            (ours_features[0] * upstream).sum().backward()
            appr.optimizer.step()
            theirs_state = theirs.state_dict()
            state = {k: v for k, v in ours.state_dict().items() if not k.startswith('last.')}
            worst = max(worst, largest([(theirs_features[0], ours_features[0])] +
                                       [(theirs_state[their_name(k)], v) for k, v in state.items()]))
        rows.append((f'task {t}: training', worst))
        theirs.eval()
        ours.eval()
        pairs = []
        with torch.no_grad():
            for u in range(t + 1):
                theirs_features.clear()
                ours_features.clear()
                theirs.apply(lambda m: setattr(m, 'task', u))
                theirs(inputs[u])
                appr.forward(u, inputs[u], training=False)
                pairs.append((theirs_features[0], ours_features[0]))
        rows.append((f'task {t}: tasks 0..{t} tested', largest(pairs)))
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--checkout', type=Path, required=True, help='a checkout of github.com/RAIVNLab/supsup')
    parser.add_argument('--er', default='1,8,32', help='comma-separated Erdos-Renyi multipliers')
    parser.add_argument('--tasks', type=int, default=3, help='their num_tasks: score tensors per layer')
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    gemresnet, module_util = load_theirs(args.checkout.expanduser(), args.tasks)
    worst = 0.0
    for er in (float(v) for v in args.er.split(',')):
        densities = sorted({_supsup.er_density(w, er) for w in (torch.empty(20, 3, 3, 3), torch.empty(20, 20, 3, 3),
                                                                torch.empty(160, 160, 3, 3), torch.empty(40, 20, 1, 1),
                                                                torch.empty(5, 160, 1, 1))} | {0.5})
        rows = [('mask and STE gradient', compare_masks(module_util, densities)),
                *compare_network(gemresnet, er, args.tasks)]
        for what, diff in rows:
            print(f'er={er:<5} {what:30s} max |diff| = {diff:.3g}')
            worst = max(worst, diff)
    print('bitwise the same' if worst == 0 else f'differences up to {worst:.3g}')
    return 0 if worst == 0 else 1


if __name__ == '__main__':
    sys.exit(main())
