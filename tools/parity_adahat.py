"""Parity of AdaHAT's training-step arithmetic with the authors' code: the same gradients in, the same out.

    python tools/parity_adahat.py --checkout ~/continual-learning-arena
    python tools/parity_adahat.py --checkout ~/continual-learning-arena --legacy ~/continual-learning-arena-legacy

--checkout is a checkout of github.com/pengxiang-wang/continual-learning-arena (CLArena, the folder holding
clarena/), --legacy one of its paper-era predecessor continual-learning-arena-legacy (commit 1647eee or later: the
functions used are the same at its HEAD). Importing clarena pulls in Lightning, Hydra and torchmetrics, so the harness
imports nothing of it: it reads the few functions it calls from their files at run time (Python's ast: each
function's own definition, compiled alone, with its file's line numbers; none of the file's imports run) and calls
them, unchanged, on stand-ins for the objects they read (the backbone's layer names and task embeddings, the
algorithm's masks and settings: plain namespaces over our network's own layers). The only stand-in for their code is
HATNetworkCapacityMetric, the torchmetrics logger of the mean rate, which does not touch the gradients. Nothing of
theirs enters this repository.

For every adjustment mode, on our mlp_hat (784-64-64, and 784-8-8 where every layer has at most 10 units, so the
sparsity is 0 by their rule), at tasks 0, 1 and 3 (earlier tasks' masks stored from random embeddings, some units'
near 0 so that soft masks are soft) and at batches 0, 1 and 5 of 8 (batch 0: their schedule's negative s), one
forward and backward pass of ours gives the gradients; our post_backward adjusts them, theirs adjust a copy
(CA: the sparsity from HATMaskSparsityReg.original_reg on their train-stage masks (HATMaskBackbone.get_mask), the
stored masks from te_to_binary_mask, AdaHAT.clip_grad_by_adjustment or HAT.clip_grad_by_adjustment, then
HAT.compensate_task_embedding_gradients; LG: MaskSparseReg, the masks of MaskedMLP.mask, MaskMemory's union and sum,
soft_clip_te_masked_gradients, compensate_te_gradients). Printed: the largest relative difference of the adjusted
weight and bias gradients and of the compensated embedding gradients, element by element, and the largest absolute
difference of the layer sparsities, importances, train masks and regularisers. Exit status 0 when every difference is
within float32 rounding (1e-6), 1 otherwise.
"""
import argparse
import ast
import copy
import random
import sys
import types
from pathlib import Path
from typing import Any, Callable

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / 'src') not in sys.path:
    sys.path.insert(0, str(ROOT / 'src'))
from approaches import adahat  # noqa: E402
from approaches._base import Loop  # noqa: E402
from networks import mlp_hat  # noqa: E402
from plumbing import utils  # noqa: E402

# What is read from each code: file -> the functions ('Class.method' or 'function') taken from it
CA_FUNCTIONS = {
    'clarena/cl_algorithms/adahat.py': ('AdaHAT.clip_grad_by_adjustment',),
    'clarena/cl_algorithms/hat.py': ('HAT.clip_grad_by_adjustment', 'HAT.compensate_task_embedding_gradients'),
    'clarena/backbones/base.py': ('Backbone.get_layer_by_name', 'Backbone.preceding_layer_name',
                                  'HATMaskBackbone.get_mask', 'HATMaskBackbone.te_to_binary_mask',
                                  'HATMaskBackbone.get_layer_measure_parameter_wise'),
    'clarena/cl_algorithms/regularizers/hat_mask_sparsity.py': ('HATMaskSparsityReg.original_reg',),
}
LG_FUNCTIONS = {
    'src/models/calibrators/maskclipper.py': ('soft_clip_te_masked_gradients', 'compensate_te_gradients'),
    'src/models/memories/mask_memory.py': ('MaskMemory.get_weight_mask', 'MaskMemory.get_union_mask',
                                           'MaskMemory.get_sum_mask', 'MaskMemory.combine_masks'),
    'src/models/regs/mask_sparse_reg.py': ('MaskSparseReg.forward',),
    'src/models/hat.py': ('HAT.annealed_scalar',),
    'src/models/backbones/masked_mlp.py': ('MaskedMLP.mask',),
}
CA_MODES = adahat.ADAHAT_MODES + adahat.HAT_MODES
# LG's adjust_strategy -> our adjustment (its other strategies are ablations the paper-era runs alone used)
LG_MODES = {'ada': 'adahat', 'ada_reg_0': 'adahat_no_reg'}
LAYERS = ('fc1', 'fc2')
WIDTHS = (64, 8)  # 8: at most 10 units a layer, the sparsity 0 by their rule
TASKS = (0, 1, 3)
BATCHES, BATCH = 8, 8
POSITIONS = (0, 1, 5)  # batch indices within the epoch; 0: their s < 0
SMAX, ALPHA, EPSILON, LAMB = 400.0, 1e-6, 0.1, 0.1
TOLERANCE = 1e-6  # relative: float32 rounding
DRAWS = 1234  # the seed set before both codes' adjustments (hat_random draws)


class Capacity:
    """Stand-in for CA's HATNetworkCapacityMetric (a torchmetrics logger): the mean rate, as it computes it."""

    def __init__(self):
        self.total, self.count = 0.0, 0

    def to(self, device):
        return self

    def update(self, weight_rate, bias_rate) -> None:
        for rate in (torch.as_tensor(weight_rate), torch.as_tensor(bias_rate)):
            self.total += rate.sum().item()
            self.count += rate.numel()

    def compute(self) -> float:
        return self.total / self.count


NAMESPACE = {'torch': torch, 'nn': torch.nn, 'Tensor': torch.Tensor, 'random': random, 'deepcopy': copy.deepcopy,
             'Any': Any, 'Callable': Callable, 'HATNetworkCapacityMetric': Capacity}


def read_functions(root: Path, functions: dict[str, tuple[str, ...]]) -> dict[str, Callable]:
    """{qualified name: function} compiled from each definition's own source in the files under root; a LookupError
    names what is missing."""
    found = {}
    for relative, names in functions.items():
        path = root / relative
        if not path.is_file():
            raise LookupError(f'no {relative} under {root}')
        tree = ast.parse(path.read_text(), filename=str(path))
        for qualname in names:
            scope = tree
            for part in qualname.split('.'):
                scope = next((node for node in scope.body if isinstance(node, (ast.ClassDef, ast.FunctionDef)) and
                              node.name == part), None)
                if scope is None:
                    raise LookupError(f'no {qualname} in {path}')
            scope.decorator_list = []  # @override and the like: the function itself is what is compared
            code = compile(ast.Module(body=[scope], type_ignores=[]), str(path), 'exec')
            namespace = dict(NAMESPACE)
            exec(code, namespace)  # the definition alone: binds the function's name, runs none of its body
            found[qualname] = namespace[scope.name]
    return found


def bind(obj, functions: dict[str, Callable], *names: str):
    """obj with the named functions as its methods (by their last name part)."""
    for name in names:
        setattr(obj, name.rsplit('.', 1)[-1], types.MethodType(functions[name], obj))
    return obj


def row(emb: torch.nn.Embedding, t: int, grad: torch.Tensor | None = None) -> types.SimpleNamespace:
    """A one-row task embedding as their codes hold it (one nn.Embedding(1, units) per layer): row t of ours, copied."""
    weight = emb.weight[t:t + 1].detach().clone()
    if grad is not None:
        weight.grad = grad[t:t + 1].clone()
    return types.SimpleNamespace(weight=weight)


def scenario(width: int, t: int, b: int, **settings):
    """Ours after learning tasks 0..t-1, and the gradients of one pass on task t at batch b: (appr, net, grads)."""
    utils.seed_everything(width * 100 + t * 10 + b)
    net = mlp_hat.Net([1, 28, 28], [(u, 10) for u in range(max(TASKS) + 1)], nhid=width)
    with torch.no_grad():
        for emb in net.embeddings():  # a fifth of the units near 0: soft masks stay soft
            emb.weight.mul_(torch.where(torch.rand_like(emb.weight) < 0.2, 0.005, 1.0))
    appr = adahat.Appr(net, adahat.Appr.Hyper(lamb=LAMB, smax=SMAX, alpha=ALPHA, epsilon=EPSILON, **settings),
                       Loop(batch_size=BATCH))
    for u in range(t):
        appr.post_train(u, None)
    appr.pre_batch((b * BATCH, BATCHES * BATCH))
    x, y = torch.randn(BATCH, 1, 28, 28), torch.randint(0, 10, (BATCH,))
    outputs, extras = appr.forward(t, x, training=True)
    appr.criterion(t, outputs, y, extras)[0].backward()
    for p in net.parameters():
        if p.grad is None:  # the other tasks' heads
            p.grad = torch.zeros_like(p)
    return appr, net, {n: p.grad.clone() for n, p in net.named_parameters()}, extras['masks']


def ours_adjusted(appr, net, t: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(DRAWS)
    appr.post_backward(t)
    return {n: p.grad.clone() for n, p in net.named_parameters()}


def restore(net, grads: dict[str, torch.Tensor]) -> None:
    for n, p in net.named_parameters():
        p.grad.copy_(grads[n])


def relative(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    """Largest |ours - theirs| / |theirs| over the elements (0 where both are 0)."""
    return ((ours - theirs).abs() / theirs.abs().clamp_min(1e-38)).max().item()


def differences(net, ours: dict, theirs_embeddings: dict, t: int) -> dict[str, float]:
    """Largest relative differences of the masked layers' gradients (theirs: those now in net's layers) and of the
    embeddings'; whether the heads' gradients are untouched by both."""
    layer = max(relative(ours[f'{name}.{kind}'], getattr(getattr(net, name), kind).grad)
                for name in LAYERS for kind in ('weight', 'bias'))
    emb = max(relative(ours['e' + name + '.weight'][t], theirs_embeddings[name].weight.grad[0]) for name in LAYERS)
    heads = all(torch.equal(ours[n], p.grad) for n, p in net.named_parameters() if n.startswith('last'))
    return {'grads': layer, 'embeddings': emb, 'heads_equal': float(heads)}


def compare_ca(ca: dict, mode: str, width: int, t: int, b: int) -> dict[str, float]:
    appr, net, grads, masks = scenario(width, t, b, adjustment=mode)
    ours = ours_adjusted(appr, net, t)
    restore(net, grads)
    embs = dict(zip(LAYERS, net.embeddings()))

    def backbone(u: int, grad: dict | None = None):
        bb = types.SimpleNamespace(weighted_layer_names=list(LAYERS), named_modules=net.named_modules,
                                   gate_fn=torch.nn.Sigmoid(), masks={},
                                   task_embedding_t={n: row(e, u, grad and grad['e' + n + '.weight'])
                                                     for n, e in embs.items()})
        return bind(bb, ca, 'Backbone.get_layer_by_name', 'Backbone.preceding_layer_name', 'HATMaskBackbone.get_mask',
                    'HATMaskBackbone.te_to_binary_mask', 'HATMaskBackbone.get_layer_measure_parameter_wise')

    cumulative = {n: torch.zeros(e.weight.size(1)) for n, e in embs.items()}
    summative = {n: torch.zeros(e.weight.size(1)) for n, e in embs.items()}
    for u in range(t):  # CA hat.py:445-461 (max) and adahat.py:220-233 (sum) over te_to_binary_mask
        mask_u = backbone(u).te_to_binary_mask()
        cumulative = {n: torch.max(cumulative[n], mask_u[n]) for n in LAYERS}
        summative = {n: summative[n] + mask_u[n] for n in LAYERS}
    bb = backbone(t, grads)
    train_masks = {n: m.detach() for n, m in bb.get_mask('train', s_max=SMAX, batch_idx=b, num_batches=BATCHES).items()}
    reg, sparsity = ca['HATMaskSparsityReg.original_reg'](types.SimpleNamespace(factor=1.0), train_masks, cumulative)
    algorithm = types.SimpleNamespace(backbone=bb, summative_mask_for_previous_tasks=summative,
                                      cumulative_mask_for_previous_tasks=cumulative, adjustment_mode=mode,
                                      adjustment_intensity=ALPHA, alpha=ALPHA, epsilon=EPSILON, task_id=t + 1,
                                      device='cpu', s_max=SMAX, clamp_threshold=appr.hp.thres_cosh)
    torch.manual_seed(DRAWS)
    adjust = 'AdaHAT' if mode in adahat.ADAHAT_MODES else 'HAT'
    ca[f'{adjust}.clip_grad_by_adjustment'](algorithm, network_sparsity=sparsity)
    ca['HAT.compensate_task_embedding_gradients'](algorithm, batch_idx=b, num_batches=BATCHES)
    result = differences(net, ours, bb.task_embedding_t, t)
    with torch.no_grad():
        our_sparsity = appr.layer_sparsity(t)
        result['masks'] = max((m.view(-1) - train_masks[n]).abs().max().item() for n, m in zip(LAYERS, masks))
        result['regulariser'] = abs(appr.regulariser(masks).item() - float(reg))
    result['sparsity'] = max(abs(s.item() - float(sparsity[n])) for n, s in zip(LAYERS, our_sparsity))
    result['importance'] = max((i.view(-1) - summative[n]).abs().max().item() for n, i in zip(LAYERS, appr.importance))
    return result


def compare_lg(lg: dict, strategy: str, width: int, t: int, b: int) -> dict[str, float]:
    appr, net, grads, masks = scenario(width, t, b, adjustment=LG_MODES[strategy], sparsity='legacy',
                                       stored_mask='soft')
    ours = ours_adjusted(appr, net, t)
    restore(net, grads)
    embs = dict(zip(LAYERS, net.embeddings()))
    masked = bind(types.SimpleNamespace(mask_gate=torch.nn.Sigmoid()), lg, 'MaskedMLP.mask')
    memory = bind(types.SimpleNamespace(backbone=types.SimpleNamespace(module_order=list(LAYERS))), lg,
                  'MaskMemory.get_weight_mask', 'MaskMemory.get_union_mask', 'MaskMemory.get_sum_mask',
                  'MaskMemory.combine_masks')
    memory.union_mask = {n: torch.zeros(1, e.weight.size(1)) for n, e in embs.items()}  # MaskMemory.empty_mask
    memory.sum_mask = {n: torch.zeros(1, e.weight.size(1)) for n, e in embs.items()}
    for u in range(t):  # MaskMemory.update: te2mask at s_max, then the union and the sum
        mask_u = {n: masked.mask(row(e, u), SMAX).detach() for n, e in embs.items()}
        memory.union_mask = memory.combine_masks(memory.union_mask, mask_u, operator='union')
        memory.sum_mask = memory.combine_masks(memory.sum_mask, mask_u, operator='sum')
    s = lg['HAT.annealed_scalar'](None, SMAX, b, BATCHES)
    te = {n: row(e, t, grads['e' + n + '.weight']) for n, e in embs.items()}
    train_masks = {n: masked.mask(te[n], s).detach() for n in LAYERS}
    reg_self = types.SimpleNamespace(factor=LAMB, type='old')
    loss_reg, _, sparsity = lg['MaskSparseReg.forward'](reg_self, train_masks, memory.get_union_mask())
    lg['soft_clip_te_masked_gradients'](net, strategy, memory, t, sparsity, ALPHA, False)
    lg['compensate_te_gradients'](types.SimpleNamespace(te=te), 50, s, SMAX)
    result = differences(net, ours, te, t)
    with torch.no_grad():
        our_sparsity = appr.layer_sparsity(t)
        result['masks'] = max((m - train_masks[n]).abs().max().item() for n, m in zip(LAYERS, masks))
        result['regulariser'] = abs((LAMB * appr.regulariser(masks)).item() - float(loss_reg))
    result['sparsity'] = max(abs(x.item() - float(sparsity[n])) for n, x in zip(LAYERS, our_sparsity))
    result['importance'] = max((i - memory.sum_mask[n]).abs().max().item() for n, i in zip(LAYERS, appr.importance))
    return result


COLUMNS = ('grads', 'embeddings', 'sparsity', 'importance', 'masks', 'regulariser')


def report(code: str, mode: str, results: list[dict]) -> tuple[str, bool]:
    """One table row: the largest of each difference over the scenarios, and whether all are within rounding."""
    worst = {k: max(r[k] for r in results) for k in COLUMNS}
    heads = all(r['heads_equal'] for r in results)
    ok = heads and all(worst[k] <= TOLERANCE for k in COLUMNS)
    cells = ' | '.join(f'{worst[k]:.1e}' for k in COLUMNS)
    return f'| {code} | {mode} | {cells} | {"yes" if heads else "NO"} |', ok


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--checkout', type=Path, required=True,
                   help='a checkout of pengxiang-wang/continual-learning-arena (the folder holding clarena/)')
    p.add_argument('--legacy', type=Path, help='a checkout of pengxiang-wang/continual-learning-arena-legacy')
    args = p.parse_args()
    try:
        ca = read_functions(args.checkout, CA_FUNCTIONS)
        lg = read_functions(args.legacy, LG_FUNCTIONS) if args.legacy else None
    except (LookupError, SyntaxError) as e:
        p.error(f'{e}: give the checkouts the docstring names')
    torch.set_num_threads(1)
    scenarios = [(w, t, b) for w in WIDTHS for t in TASKS for b in POSITIONS]
    print(f'{len(scenarios)} scenarios a mode (mlp_hat 784-{{64,8}}-{{64,8}}; tasks {TASKS}; batches {POSITIONS} of '
          f'{BATCHES}); the largest difference of each quantity, ours against theirs:\n')
    print('| code | mode | weight and bias grads (relative) | embedding grads (relative) | sparsity | importance | '
          'train masks | regulariser | heads untouched |')
    print('|---|---|---|---|---|---|---|---|---|')
    rows = [('CLArena', mode, [compare_ca(ca, mode, *s) for s in scenarios]) for mode in CA_MODES]
    rows += [('paper-era', f'{strategy} = {LG_MODES[strategy]}', [compare_lg(lg, strategy, *s) for s in scenarios])
             for strategy in (LG_MODES if lg else ())]
    verdicts = []
    for code, mode, results in rows:
        line, ok = report(code, mode, results)
        print(line)
        verdicts.append(ok)
    exact = all(r[k] == 0 for _, _, results in rows for r in results for k in COLUMNS)
    print('\n' + ('every difference 0: bitwise the same' if exact else
                  'every difference within float32 rounding (relative 1e-6)' if all(verdicts) else
                  'DIFFERENCES beyond float32 rounding'))
    sys.exit(0 if all(verdicts) else 1)


if __name__ == '__main__':
    main()
