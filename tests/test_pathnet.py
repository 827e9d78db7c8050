"""PathNet: the original's modules (hand-checked), path sampling, tournament and freezing, and its guarantee: what
earlier tasks answer never changes."""
import numpy as np
import pytest
import torch

from approaches import pathnet
from networks import alexnet_pathnet, mlp_pathnet
from plumbing import utils
import fixtures
from fixtures import CIFAR_TASKCLA as CIFAR, draws, make_tasks, parameter_shapes as shapes


class Records:
    """An epoch log that keeps its records."""

    def __init__(self):
        self.rows = []

    def write(self, **record):
        self.rows.append(record)


def make_appr(net, **settings):
    return fixtures.make_appr(pathnet.Appr, net, **settings)


def test_defaults_are_the_originals():
    appr = pathnet.Appr(mlp_pathnet.Net([1, 28, 28], [(0, 2)]))
    assert (appr.hp.generations, appr.loop.clipgrad) == (20, 1000)
    assert (appr.loop.lr_min, appr.loop.lr_factor, appr.loop.lr_patience) == (1e-4, 3, 5)
    assert pathnet.Appr.P == 2 and pathnet.Appr.parameter_names == ('generations',)
    assert pathnet.Appr.parse_parameter(['50']) == {'generations': 50}
    assert pathnet.Appr.network_variant == alexnet_pathnet.VARIANT == mlp_pathnet.VARIANT == 'pathnet'
    net = alexnet_pathnet.Net([3, 32, 32], CIFAR)
    assert (net.M, net.N, len(net.layers), alexnet_pathnet.EXPAND_FACTOR) == (16, 3, 5, 0.258)
    net = mlp_pathnet.Net([1, 28, 28], [(0, 5), (1, 5)])
    assert (net.M, net.N, len(net.layers)) == (16, 3, 2)


def test_alexnet_modules_at_3x32x32():
    net = alexnet_pathnet.Net([3, 32, 32], CIFAR)
    s = shapes(net)
    # int(0.258 * (64, 128, 256, 2048)) = 16, 33, 66, 528; kernels 4, 3, 2; side 32 -> 29 -> 14 -> 12 -> 6 -> 5 -> 2
    for k in range(16):
        assert s[f'conv1.{k}.weight'] == (16, 3, 4, 4) and s[f'conv2.{k}.weight'] == (33, 16, 3, 3)
        assert s[f'conv3.{k}.weight'] == (66, 33, 2, 2) and s[f'fc1.{k}.weight'] == (528, 66 * 2 * 2)
        assert s[f'fc2.{k}.weight'] == (528, 528)
    assert 'conv1.16.weight' not in s and [s[f'last.{t}.weight'] for t, _ in CIFAR] == [(n, 528) for _, n in CIFAR]
    # Per module index: conv1 16*3*16+16 = 784, conv2 33*16*9+33 = 4785, conv3 66*33*4+66 = 8778,
    # fc1 528*264+528 = 139920, fc2 528*528+528 = 279312: 433579, times 16; heads 529 * (5*2 + 5*20)
    total = 16 * 433579 + 529 * 110
    assert sum(p.numel() for p in net.parameters()) == total == 6995454  # the original's count
    assert net.best_path.shape == (10, 5, 3) and bool((net.best_path == -1).all())
    assert 'best_path' in net.state_dict()


def test_mlp_modules():
    net = mlp_pathnet.Net([1, 28, 28], [(t, 10) for t in range(10)])
    s = shapes(net)
    # int(0.162 * 2000) = 324 units per module
    assert s['fc1.15.weight'] == (324, 784) and s['fc2.15.weight'] == (324, 324) and s['last.9.weight'] == (10, 324)
    assert (net.drop1.p, net.drop2.p) == (0.2, 0.5)
    total = 16 * (785 * 324) + 16 * (325 * 324) + 10 * (10 * 325)
    assert sum(p.numel() for p in net.parameters()) == total == 5786740  # mlp.py: 5,772,100


def test_forward_sums_the_modules_of_the_path():
    net = mlp_pathnet.Net([1, 28, 28], [(0, 3), (1, 3)]).eval()
    x = torch.randn(4, 1, 28, 28)
    path = np.array([[3, 0, 7], [15, 2, 2]])
    h = sum(torch.relu(net.fc1[k](x.flatten(1))) for k in (3, 0, 7))
    h = sum(torch.relu(net.fc2[k](h)) for k in (15, 2, 2))
    with torch.no_grad():
        assert torch.allclose(net(1, x, path), net.last[1](h), atol=1e-6)
        net.best_path[1] = torch.from_numpy(path)
        assert torch.equal(net(1, x), net(1, x, path))  # by default, the task's best path


def test_path_sampling_is_the_originals():
    appr = make_appr(mlp_pathnet.Net([1, 28, 28], [(0, 3)]))
    np.random.seed(3)
    paths = appr.sample_paths()
    after = np.random.rand()
    assert paths.shape == (2, 2, 3)
    # The original's draws in its order: a randint(0, M-1) matrix, then one list reshuffled per (path, layer)
    np.random.seed(3)
    np.random.randint(0, 15, size=(2, 2, 3))
    guesses = list(range(16))
    expected = []
    for _ in range(4):
        np.random.shuffle(guesses)
        expected.append(guesses[:3])
    assert paths.reshape(4, 3).tolist() == expected and np.random.rand() == after
    seen = set()
    for _ in range(30):
        for layer in appr.sample_paths().reshape(-1, 3).tolist():
            assert len(set(layer)) == 3  # N distinct modules per layer
            seen |= set(layer)
    assert seen == set(range(16))  # module M-1 too, which the discarded randint could not draw


def test_mutation_copies_the_winner_with_the_originals_draws():
    appr = make_appr(alexnet_pathnet.Net([3, 32, 32], [(0, 2)]))
    rng = np.random.RandomState(0)
    paths = np.stack([rng.permutation(16)[:3] for _ in range(10)]).reshape(2, 5, 3)
    np.random.seed(4)
    mutated = paths.copy()
    appr.mutate(mutated, winner=1)
    assert np.array_equal(mutated[1], paths[1])
    assert not np.array_equal(mutated[0], paths[1])
    assert set(((mutated[0] - paths[1]) % 16).flatten().tolist()) <= {0, 1, 2, 14, 15}  # steps in [-2, 2] mod M
    np.random.seed(4)
    expected = paths[1].copy()
    for layer in range(5):
        for k in range(3):
            if np.random.rand() < 1 / 15:  # 1 / (N * L)
                expected[layer, k] = (expected[layer, k] + np.random.randint(-2, 3)) % 16
    assert np.array_equal(mutated[0], expected)


def test_train_path_trains_its_free_modules_and_head_t_only():
    net = alexnet_pathnet.Net([3, 32, 32], [(0, 2), (1, 2), (2, 2)])
    net.best_path[0] = torch.tensor([[0, 1, 2]] * 5)
    net.best_path[1] = torch.tensor([[2, 3, 4]] * 5)
    for p in net.parameters():
        p.grad = torch.ones_like(p)
    net.train_path(2, np.array([[1, 4, 5]] * 5))
    trainable = {name for name, p in net.named_parameters() if p.requires_grad}
    assert trainable == {f'{layer}.5.{w}' for layer in net.layers for w in ('weight', 'bias')} | {'last.2.weight',
                                                                                                  'last.2.bias'}
    assert all(p.grad is None for p in net.parameters())  # stale gradients would count in clip_grad_norm_


def test_modules_off_earlier_best_paths_restart_from_initial_weights():
    net = mlp_pathnet.Net([1, 28, 28], [(0, 3), (1, 3)])
    appr = make_appr(net)
    initial = utils.get_model(net)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1)
    net.best_path[0] = torch.tensor([[0, 1, 2], [3, 4, 5]])
    appr.pre_train(1)
    for name, p in net.named_parameters():
        layer, k = name.split('.')[:2]
        kept = layer == 'last' or int(k) in ((0, 1, 2) if layer == 'fc1' else (3, 4, 5))
        assert torch.equal(p, initial[name] + 1 if kept else initial[name]), name


def test_generations_paths_and_epochs():
    """generations x P fits of nepochs // generations epochs each; with fewer epochs than generations, one each."""
    data = make_tasks((1, 28, 28), 1, n=16)
    for nepochs, generations, epochs in ((6, 3, 2), (2, 20, 1)):
        utils.seed_everything(0)
        log = Records()
        appr = make_appr(mlp_pathnet.Net([1, 28, 28], [(0, 3)]), log=log, nepochs=nepochs, generations=generations)
        appr.train(0, data)
        expected = [(g, p, e) for g in range(1, min(generations, nepochs) + 1) for p in (1, 2)
                    for e in range(1, epochs + 1)]
        assert [(r['generation'], r['path'], r['epoch']) for r in log.rows] == expected


class Scripted(pathnet.Appr):
    """PathNet whose epochs follow a script of validation losses, marking the weights each epoch leaves with its
    loss, and recording the path, the optimizer's learning rate and the weights each epoch starts from."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.script = iter(())
        self.calls = []

    def epoch(self, t, e, lr, train, valid):
        loss = next(self.script)
        self.calls.append({'path': self.path.copy(), 'lr': self.optimizer.param_groups[0]['lr'],
                           'start': self.model.last[t].bias[0].item()})
        with torch.no_grad():
            self.model.last[t].bias.fill_(loss)
        result = {'loss': loss, 'acc': 0.0}
        return result, result, '', (0.0, 0.0)


def make_scripted(script, **overrides):
    net = mlp_pathnet.Net([1, 28, 28], [(0, 3)])
    appr = fixtures.make_appr(Scripted, net, **overrides)
    appr.script = iter(script)
    return appr


def test_tournament_is_the_originals():
    """pathnet.py:78-144: the best epoch of any path wins, each path carries its own patience, best loss and rate
    across generations (a divided rate applies from its next turn), the next path starts where the last one ended,
    and each generation ends on the winner's weights, the loser taking its rate."""
    utils.seed_everything(0)
    # Losses exact in float32, as they mark the weights; 2 generations x 2 paths x 2 epochs, patience 1
    appr = make_scripted([1.0, 1.0, 0.5, 0.75, 0.625, 0.25, 0.875, 0.875], nepochs=4, generations=2,
                         lr_patience=1)
    appr.train(0, make_tasks((1, 28, 28), 1, n=8))
    lr = 0.05
    # Generation 1: both paths at lr, each divided once (1.0 after 1.0, 0.75 after 0.5); the loser (path 1) then
    # takes the winner's lr / 3, so generation 2 runs both at lr / 3
    assert [c['lr'] for c in appr.calls] == pytest.approx([lr] * 4 + [lr / 3] * 4)
    # Each epoch starts from the last one's weights, a path from the previous path's last ones; a generation from
    # the best so far: 0.5 (path 2, generation 1), then 0.25 (path 1, generation 2), which the task ends on
    assert [c['start'] for c in appr.calls[1:]] == [1.0, 1.0, 0.5, 0.5, 0.625, 0.25, 0.875]
    assert bool((appr.model.last[0].bias == 0.25).all())
    assert np.array_equal(appr.model.best_path[0].numpy(), appr.calls[5]['path'])
    assert appr.path is None and appr.loop.lr == lr  # evaluation goes through the best path
    # Generation 2's path 1 is generation 1's winner, mutated
    steps = (appr.calls[4]['path'] - appr.calls[2]['path']) % 16
    assert set(steps.flatten().tolist()) <= {0, 1, 2, 14, 15}


def test_task_ends_when_every_path_rate_is_below_lr_min():
    utils.seed_everything(0)
    appr = make_scripted([1.0] * 20, nepochs=50, generations=5, lr_min=0.01, lr_patience=1)
    appr.train(0, make_tasks((1, 28, 28), 1, n=8))
    # Each path's turn: 1.0 (best), then 0.05 -> 0.0167 -> 0.0056 < 0.01, which ends it; then every rate is below
    assert len(appr.calls) == 6


@pytest.mark.parametrize('module,shape', [(mlp_pathnet, (1, 28, 28)),
                                          pytest.param(alexnet_pathnet, (3, 32, 32), marks=pytest.mark.slow)])
def test_best_path_frozen_and_earlier_outputs_bitwise_unchanged(module, shape):
    utils.seed_everything(0)
    data = make_tasks(shape, 2)
    net = module.Net(list(shape), [(0, 3), (1, 3)])
    appr = make_appr(net, nepochs=2, generations=2)
    appr.train(0, data)
    best = net.best_path[0].tolist()
    assert all(0 <= k < net.M for layer in best for k in layer)
    on_path = {f'{name}.{k}.' for name, layer in zip(net.layers, best) for k in layer} | {'last.0.'}
    frozen = {name: p for name, p in net.named_parameters() if name.startswith(tuple(on_path))}
    before = {name: p.detach().clone() for name, p in frozen.items()}
    x = data[0]['test']['x']
    net.eval()
    with torch.no_grad():
        output = net(0, x)
    head = net.last[1].weight.detach().clone()
    checks = []
    appr.post_backward = lambda t: checks.append(all(not p.requires_grad and p.grad is None for p in frozen.values()))
    appr.train(1, data)
    assert len(checks) > 0 and all(checks)
    assert all(torch.equal(p, before[name]) for name, p in frozen.items())
    assert not torch.equal(net.last[1].weight, head)  # task 1 did learn
    net.eval()
    with torch.no_grad():
        assert torch.equal(net(0, x), output)
    assert net.best_path[1].min() >= 0


# Measured once on the original's networks/alexnet_pathnet.py (CPU, one thread): from torch.manual_seed(0), the
# digest of its parameters (each one's bytes, sorted); then, training mode, torch.manual_seed(2), its logits on task 3
# through PATH for 8 images drawn from torch.manual_seed(1), which depend on every dropout mask and the order of the sum
ORIGINAL_INIT_DIGEST = '3c190706390730729175f3efeae098a363ce6fd97cd6b9fab0d7dbbbf99c4c99'
PATH = [[0, 5, 15], [3, 3, 7], [1, 2, 9], [14, 0, 6], [11, 12, 4]]
ORIGINAL_TASK3_LOGITS = [-1.453942, -2.982506, 0.871429, 1.04556, 2.44352, -1.078658, 0.871167, 0.525265, -0.564377,
                         -2.47516, -3.521035, -3.127579, 0.733177, 3.245274, -2.395457, -1.527863]


def test_random_draws_are_the_originals():
    """The order of random draws that bitwise parity with the original depends on: initial weights, module index by
    module index, and the dropout masks of a training forward pass through a path (a module held twice included)."""
    digest, logits = draws(alexnet_pathnet, lambda net, x: net(3, x, torch.tensor(PATH)))
    assert digest == ORIGINAL_INIT_DIGEST
    # Pinned to 6 decimals. Another CPU's vector units sum in another order (seen: 2.8e-6 apart), while a wrong
    # dropout mask (another seed's) moves every logit by 0.37 or more: 1e-4 of the logit's size (at least 1e-4)
    assert logits == pytest.approx(ORIGINAL_TASK3_LOGITS, rel=1e-4, abs=1e-4)
