"""Progressive networks: the original's column widths and laterals, hand-checked, and their guarantee: what earlier
tasks answer never changes."""
import pytest
import torch

from approaches import progressive
from networks import alexnet_progressive, mlp_progressive
from plumbing import utils
import fixtures
from fixtures import CIFAR_TASKCLA as CIFAR, draws, make_tasks, parameter_shapes as shapes


def make_appr(net, **settings):
    return fixtures.make_appr(progressive.Appr, net, **settings)


def test_defaults_are_the_originals():
    loop = progressive.Appr(mlp_progressive.Net([1, 28, 28], [(0, 2)])).loop
    assert loop.clipgrad == 10000 and (loop.lr_min, loop.lr_factor, loop.lr_patience) == (1e-4, 3, 5)
    assert progressive.Appr.parameter_names == ()
    assert progressive.Appr.network_variant == alexnet_progressive.VARIANT == mlp_progressive.VARIANT == 'progressive'
    assert alexnet_progressive.EXPAND_FACTOR == 1.117


def test_alexnet_columns_at_3x32x32():
    net = alexnet_progressive.Net([3, 32, 32], CIFAR)
    s = shapes(net)
    # int(1.117 * (64, 128, 256, 2048) / 10) = 7, 14, 28, 228; kernels 4, 3, 2; side 32 -> 29 -> 14 -> 12 -> 6 -> 5 -> 2
    for t, n in CIFAR:
        assert s[f'conv1.{t}.weight'] == (7, 3, 4, 4) and s[f'conv2.{t}.weight'] == (14, 7, 3, 3)
        assert s[f'conv3.{t}.weight'] == (28, 14, 2, 2) and s[f'fc1.{t}.weight'] == (228, 28 * 2 * 2)
        assert s[f'fc2.{t}.weight'] == (228, 228) and s[f'last.{t}.weight'] == (n, 228)
    # Into column 3: one scale per earlier column, V from 3 columns back to one (1x1 before a convolution), U shaped as
    # the layer it feeds; none into conv1 or the heads
    assert s['lateral.conv2.2.scale'] == (3,)
    assert s['lateral.conv2.2.V.weight'] == (7, 21, 1, 1) and s['lateral.conv2.2.U.weight'] == (14, 7, 3, 3)
    assert s['lateral.conv3.2.V.weight'] == (14, 42, 1, 1) and s['lateral.conv3.2.U.weight'] == (28, 14, 2, 2)
    assert s['lateral.fc1.2.V.weight'] == (112, 336) and s['lateral.fc1.2.U.weight'] == (228, 112)
    assert s['lateral.fc2.2.V.weight'] == (228, 684) and s['lateral.fc2.2.U.weight'] == (228, 228)
    assert list(net.lateral) == ['conv2', 'conv3', 'fc1', 'fc2'] and len(net.lateral['fc2']) == 9
    # A column: conv1 7*3*16+7 = 343, conv2 14*7*9+14 = 896, conv3 28*14*4+28 = 1596, fc1 228*112+228 = 25764,
    # fc2 228*228+228 = 52212: 80811. Heads: 229 * (5*2 + 5*20). Laterals into column t: scales 4t, V 49t+7 +
    # 196t+14 + 12544t+112 + 51984t+228, U 896 + 1596 + 25764 + 52212: 64777t + 80829, for t = 1..9
    total = 10 * 80811 + 229 * 110 + 64777 * 45 + 80829 * 9
    assert sum(p.numel() for p in net.parameters()) == total == 4475726
    # The original's head adapters, never used (scales t, V 228t -> 228, U 228 -> n_t for t = 1..9), made its count
    assert total + 45 + (51984 * 45 + 228 * 9) + 229 * (110 - 2) == 6841835


def test_mlp_columns():
    net = mlp_progressive.Net([1, 28, 28], [(t, 10) for t in range(10)])
    s = shapes(net)
    # int(1.225 * 2000 / 10) = 245 units per hidden layer of a column
    assert s['fc1.9.weight'] == (245, 784) and s['fc2.9.weight'] == (245, 245) and s['last.9.weight'] == (10, 245)
    assert s['lateral.fc2.8.scale'] == (9,)
    assert s['lateral.fc2.8.V.weight'] == (245, 9 * 245) and s['lateral.fc2.8.U.weight'] == (245, 245)
    assert list(net.lateral) == ['fc2']
    assert (net.drop1.p, net.drop2.p) == (0.2, 0.5)
    # A column: 785*245 + 246*245 + 10*246; laterals into column t: t + (245t*245 + 245) + 246*245, t = 1..9
    total = 10 * (785 * 245 + 246 * 245 + 2460) + 45 + 245 * 245 * 45 + 9 * (245 + 246 * 245)
    assert sum(p.numel() for p in net.parameters()) == total == 5796355  # mlp.py: 5,772,100


def test_lateral_by_hand():
    """Column 1's fc2 adds U(relu(V(alpha_0 * h_0))) of column 0's fc1 activations to its own pre-activation."""
    net = mlp_progressive.Net([1, 28, 28], [(0, 3), (1, 3)]).eval()
    x = torch.randn(5, 1, 28, 28)
    h0, h1 = (torch.relu(net.fc1[j](x.flatten(1))) for j in (0, 1))
    lat = net.lateral['fc2'][0]
    pre = net.fc2[1](h1) + lat.U(torch.relu(lat.V(lat.scale[0] * h0)))
    with torch.no_grad():
        assert torch.allclose(net(1, x), net.last[1](torch.relu(pre)), atol=1e-6)
        assert torch.equal(net(0, x), net.last[0](torch.relu(net.fc2[0](h0))))


def test_earlier_columns_feed_activations_without_their_own_laterals():
    """As the original: column 2 reads column 1 computed without column 1's laterals, but reads column 0 itself."""
    net = alexnet_progressive.Net([3, 32, 32], [(0, 2), (1, 2), (2, 2)]).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        before = [net(t, x) for t in range(3)]
        for laterals in net.lateral.values():
            laterals[0].scale.mul_(2)  # column 1's laterals
        after = [net(t, x) for t in range(3)]
        assert torch.equal(after[0], before[0]) and torch.equal(after[2], before[2])
        assert not torch.equal(after[1], before[1])
        net.conv1[0].weight.mul_(2)
        assert not torch.equal(net(2, x), before[2])


def test_only_column_t_and_its_laterals_train():
    net = alexnet_progressive.Net([3, 32, 32], [(0, 2), (1, 2), (2, 2)])
    for p in net.parameters():
        p.grad = torch.ones_like(p)
    net.train_column(2)
    trainable = {name for name, p in net.named_parameters() if p.requires_grad}
    column = {name for name in shapes(net) if name.split('.')[1] == '2'}  # conv1.2.weight, ..., last.2.bias
    laterals = {name for name in shapes(net) if name.startswith('lateral.') and name.split('.')[2] == '1'}
    assert trainable == column | laterals and len(laterals) == 4 * 5  # scale, V and U's weights and biases
    assert all(p.grad is None for p in net.parameters())  # stale gradients would count in clip_grad_norm_


@pytest.mark.parametrize('module,shape', [(mlp_progressive, (1, 28, 28)),
                                          pytest.param(alexnet_progressive, (3, 32, 32), marks=pytest.mark.slow)])
def test_earlier_tasks_outputs_bitwise_unchanged(module, shape):
    utils.seed_everything(0)
    data = make_tasks(shape, 3)
    net = module.Net(list(shape), [(t, 3) for t in range(3)])
    appr = make_appr(net, nepochs=2)
    outputs = []
    for t in range(3):
        before = utils.get_model(net)
        appr.train(t, data)
        assert not all(p.requires_grad for p in net.parameters())
        after = utils.get_model(net)
        assert not torch.equal(after[f'last.{t}.weight'], before[f'last.{t}.weight'])  # column t learned
        for name, value in before.items():
            parts = name.split('.')
            column = int(parts[2]) + 1 if parts[0] == 'lateral' else int(parts[1])
            if column < t:
                assert torch.equal(after[name], value), name  # earlier columns and their laterals never move
        net.eval()
        with torch.no_grad():
            for u in range(t):
                assert torch.equal(net(u, data[u]['test']['x']), outputs[u])
            outputs.append(net(t, data[t]['test']['x']))


# Measured once on the original's networks/alexnet_progressive.py (run on CPU, one thread): from torch.manual_seed(0),
# its parameters but the unused head adapters Vfl*, Ufl* (the digest of each one's bytes, sorted: the order of
# registration does not count);
# then, training mode, torch.manual_seed(2), its forward of 8 images drawn from torch.manual_seed(1) on task 2, whose
# logits depend on every dropout mask drawn for columns 0, 1 and 2 and on which activation each one was applied to
ORIGINAL_INIT_DIGEST = '5df66b14d3fe6612e3d08343d4c1f868f23bb76ec9afe7c844564edd22dfdef7'
ORIGINAL_TASK2_LOGITS = [-0.136937, -0.069182, -0.207012, -0.223322, -0.041529, -0.251052, -0.198905, 0.035412,
                         0.050966, -0.304584, -0.271958, -0.092622, -0.092645, -0.158502, -0.192543, -0.142234]


def test_random_draws_are_the_originals():
    """The order of random draws that bitwise parity with the original depends on: initial weights (the discarded
    head adapters included) and the dropout masks of a training forward pass (the current column's first at conv1,
    the earlier columns' first after it, their fc2 included)."""
    digest, logits = draws(alexnet_progressive, lambda net, x: net(2, x))
    assert digest == ORIGINAL_INIT_DIGEST
    # Pinned to 6 decimals. Another CPU's vector units sum in another order (seen: 5e-7 apart here, 2.8e-6 on
    # pathnet's), while a wrong dropout mask (another seed's) moves every logit by 0.03 or more: 1e-4 of the logit's
    # size (at least 1e-4)
    assert logits == pytest.approx(ORIGINAL_TASK2_LOGITS, rel=1e-4, abs=1e-4)
