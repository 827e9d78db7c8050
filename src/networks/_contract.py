"""The networks' contract, checked on a built network: check(net, variant, x) raises a ContractError naming the first
thing run.py or an approach of that variant would find missing or wrong (tests/test_contracts.py runs it on every
network module, so a new one is checked the day it is added). The contract itself is written in networks/__init__.py.
"""
import copy

import torch

VARIANTS = (None, 'hat', 'lfl', 'progressive', 'pathnet', 'subnet', 'supsup')  # the values of a module's VARIANT
# What each variant's approaches call besides forward(): the methods Net must have
METHODS = {None: (), 'lfl': ('features',), 'hat': ('embeddings', 'mask', 'get_view_for'),
           'progressive': ('train_column', 'freeze'), 'pathnet': ('taken', 'train_path', 'freeze'),
           'subnet': ('subnet_layers',), 'supsup': ('subnet_layers',)}


class ContractError(AssertionError):
    """A network breaks the contract of its variant."""


class BatchError(ValueError):
    """A network cannot compute a batch of this size (e.g. batch norm on one sample); the message says why and names
    no flag: the training loop, which knows the flags, tells the user which to change."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ContractError(message)


def _check_logits(outputs, taskcla: list[tuple[int, int]], batch: int, what: str) -> None:
    """outputs is one (batch, n_t) tensor per task, in taskcla's order."""
    _require(isinstance(outputs, (list, tuple)) and len(outputs) == len(taskcla),
             f'{what} must give one logits tensor per task ({len(taskcla)}), got {type(outputs).__name__}')
    for (t, n), out in zip(taskcla, outputs):
        _require(torch.is_tensor(out) and tuple(out.shape) == (batch, n),
                 f'{what}: head {t} gives {tuple(getattr(out, "shape", ()))}, expected ({batch}, {n})')


def _trainable(net: torch.nn.Module) -> set[str]:
    return {n for n, p in net.named_parameters() if p.requires_grad}


def check(net: torch.nn.Module, variant: str | None, x: torch.Tensor) -> None:
    """Check net, built for its taskcla, against the contract of `variant` on the input batch x (B >= 2 samples)."""
    _require(variant in VARIANTS, f'VARIANT must be one of {VARIANTS}, got {variant!r}')
    taskcla = getattr(net, 'taskcla', None)
    _require(isinstance(taskcla, list) and [t for t, _ in taskcla] == list(range(len(taskcla))),
             'net.taskcla must be the taskcla it was built for, [(0, n0), (1, n1), ...]')
    heads = getattr(net, 'last', None)
    _require(isinstance(heads, torch.nn.ModuleList) and len(heads) == len(taskcla),
             'net.last must be a ModuleList of one head per task (sgd-frozen trains it alone)')
    for name in METHODS[variant]:
        _require(callable(getattr(net, name, None)), f'a {variant} network must have {name}()')
    batch = len(x)
    net.eval()
    with torch.no_grad():
        if variant is None:
            _check_logits(net(x), taskcla, batch, 'forward(x)')
            copy.deepcopy(net)  # LwF's frozen copy of the network
        elif variant == 'lfl':
            out = net(x)
            _require(isinstance(out, tuple) and len(out) == 2, 'forward(x) of an lfl network must give (logits, h)')
            _check_logits(out[0], taskcla, batch, 'forward(x)[0]')
            _require(torch.equal(net.features(x), out[1]), 'features(x) must be the h that forward(x) gives')
            copy.deepcopy(net)  # LFL's frozen copy of the network
        elif variant == 'hat':
            _check_hat(net, taskcla, x)
        elif variant == 'progressive':
            for t, n in taskcla:
                out = net(t, x)
                _require(tuple(out.shape) == (batch, n), f'forward({t}, x) must give ({batch}, {n}) logits')
        elif variant == 'pathnet':
            _check_pathnet(net, taskcla, x)
        elif variant == 'subnet':
            _check_subnet(net, taskcla, x)
        else:
            _check_supsup(net, taskcla, x)
    _check_trainable(net, variant, taskcla)
    state = net.state_dict()  # the checkpoints and the best epoch's copy
    net.load_state_dict(state)


def _check_hat(net: torch.nn.Module, taskcla: list, x: torch.Tensor) -> None:
    embeddings = net.embeddings()
    _require(len(embeddings) > 0 and all(e.num_embeddings == len(taskcla) for e in embeddings),
             'a hat network needs one task embedding per gated layer, one row per task (taskcla set before add_gate)')
    for t, _ in taskcla:
        out = net(t, x, s=1)
        _require(isinstance(out, tuple) and len(out) == 2,
                 'forward(t, x, s) of a hat network must give (logits, masks)')
        logits, masks = out
        _check_logits(logits, taskcla, len(x), f'forward({t}, x, s)[0]')
        _require(len(masks) == len(embeddings) and all(tuple(m.shape) == (1, e.embedding_dim)
                                                       for m, e in zip(masks, embeddings)),
                 'forward(t, x, s)[1] must be mask(t, s): one (1, units) gate per embedding, in forward order')
    masks = net.mask(0, s=400)
    for name, p in net.named_parameters():
        view = net.get_view_for(name, masks)
        if name.startswith('last.') or any(p is e.weight for e in embeddings):
            _require(view is None, f'get_view_for({name!r}) must be None: HAT never masks heads or gates')
        else:
            _require(view is None or tuple(view.shape) == tuple(p.shape),
                     f'get_view_for({name!r}) must be None or of its shape {tuple(p.shape)}')


def _check_pathnet(net: torch.nn.Module, taskcla: list, x: torch.Tensor) -> None:
    layers = getattr(net, 'layers', None)
    _require(isinstance(layers, list) and all(len(getattr(net, name)) == net.M for name in layers),
             'a pathnet network lists its layers in net.layers, each a ModuleList of net.M modules')
    _require(tuple(net.best_path.shape) == (len(taskcla), len(layers), net.N),
             'net.best_path must be a (tasks, layers, N) buffer of module indices')
    path = torch.arange(net.N).repeat(len(layers), 1)  # (L, N)
    for t, n in taskcla:
        out = net(t, x, path)
        _require(tuple(out.shape) == (len(x), n), f'forward({t}, x, path) must give ({len(x)}, {n}) logits')


def _score_layers(net: torch.nn.Module, count: int | None) -> list:
    """net.subnet_layers(), checked: the masked layers (never a head), each with a ParameterList of scores of its
    weight's shape (count of them where count is given, else at least one)."""
    layers = net.subnet_layers()
    _require(len(layers) > 0 and all(not name.startswith('last.') for name, _ in layers),
             'subnet_layers() must give the masked layers as (name, layer), the heads never among them')
    for name, layer in layers:
        scores = getattr(layer, 'scores', None)
        _require(isinstance(scores, torch.nn.ParameterList) and
                 (len(scores) == count if count is not None else len(scores) > 0) and
                 all(s.shape == layer.weight.shape for s in scores),
                 f'{name}.scores must be a ParameterList of ' +
                 ('one tensor of its weight\'s shape per task' if count is not None else
                  'tensors of its weight\'s shape'))
    return layers


def _check_subnet(net: torch.nn.Module, taskcla: list, x: torch.Tensor) -> None:
    layers = _score_layers(net, None)
    ones = {name: torch.ones_like(layer.weight) for name, layer in layers}
    out = net(x, ones)
    _check_logits(out, taskcla, len(x), 'forward(x, masks)')
    first = layers[0][0]
    masked = net(x, {**ones, first: torch.zeros_like(ones[first])})
    _require(not all(torch.equal(a, b) for a, b in zip(out, masked)),
             f'forward(x, masks) must compute layer {first} with weight * masks[{first!r}]')
    copy.deepcopy(net)


def _check_supsup(net: torch.nn.Module, taskcla: list, x: torch.Tensor) -> None:
    layers = _score_layers(net, len(taskcla))
    for name, layer in layers:
        _require(not layer.weight.requires_grad, f'{name}.weight must be fixed (requires_grad False)')
    ones = {name: torch.ones_like(layer.weight) for name, layer in layers}
    for t, _ in taskcla:
        out = net(t, x, ones)
        _check_logits(out, taskcla, len(x), f'forward({t}, x, masks)')
    first = layers[0][0]
    masked = net(0, x, {**ones, first: torch.zeros_like(ones[first])})
    _require(not all(torch.equal(a, b) for a, b in zip(net(0, x, ones), masked)),
             f'forward(t, x, masks) must compute layer {first} with weight * masks[{first!r}]')
    copy.deepcopy(net)


def _check_trainable(net: torch.nn.Module, variant: str | None, taskcla: list) -> None:
    """What the progressive and pathnet approaches make trainable: task t's own parameters and its head."""
    if variant not in ('progressive', 'pathnet'):
        return
    t = len(taskcla) - 1
    if variant == 'progressive':
        net.train_column(t)
    else:
        net.train_path(t, torch.arange(net.N).repeat(len(net.layers), 1))
    trainable = _trainable(net)
    heads = {f'last.{u}.' for u, _ in taskcla}
    _require(any(n.startswith(f'last.{t}.') for n in trainable) and
             not any(n.startswith(h) for n in trainable for h in heads - {f'last.{t}.'}),
             f'training task {t} must make its head last[{t}] trainable and no other head')
    net.freeze()
    _require(not _trainable(net), 'freeze() must fix every parameter')
    net.requires_grad_(True)
