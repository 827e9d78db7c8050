"""Architectures: the paper's layer sizes, one head per task, and HAT's gates and gradient-mask views."""
import pytest
import torch

from networks import alexnet, alexnet_hat, mlp, mlp_hat, mlp_original

TASKCLA = [(0, 2), (1, 20), (2, 5)]


def shapes(net):
    return {name: tuple(p.shape) for name, p in net.named_parameters()}


def test_mlp_architecture():
    net = mlp.Net([1, 28, 28], TASKCLA)
    s = shapes(net)
    assert s['fc1.weight'] == (2000, 784) and s['fc2.weight'] == (2000, 2000)
    assert [s[f'last.{t}.weight'] for t, _ in TASKCLA] == [(2, 2000), (20, 2000), (5, 2000)]
    assert (net.drop1.p, net.drop2.p) == (0.2, 0.5)
    out = net(torch.randn(4, 1, 28, 28))
    assert [o.shape for o in out] == [(4, 2), (4, 20), (4, 5)]


def test_mlp_original_architecture():
    """The original code's mlp.py: 3 x 800, dropout 0.5 after each hidden layer and none on the input (p = 0 draws
    nothing: the next draw is the one a network without input dropout would see)."""
    net = mlp_original.Net([1, 28, 28], TASKCLA)
    s = shapes(net)
    assert list(s.values())[:6] == [(800, 784), (800,), (800, 800), (800,), (800, 800), (800,)]
    assert [s[f'last.{t}.weight'] for t, _ in TASKCLA] == [(2, 800), (20, 800), (5, 800)]
    assert (net.drop1.p, net.drop2.p) == (0.0, 0.5) and mlp_original.VARIANT is None
    x = torch.randn(4, 1, 28, 28)
    torch.manual_seed(3)
    net.features(x)
    after = torch.rand(1)
    torch.manual_seed(3)
    for name in net.layers:  # three dropout draws, no more
        torch.nn.functional.dropout(torch.empty(4, 800), 0.5)
    assert torch.equal(torch.rand(1), after)


def test_alexnet_architecture():
    net = alexnet.Net([3, 32, 32], TASKCLA)
    s = shapes(net)
    # kernels size//8 = 4, size//10 = 3, 2; spatial 32 -> 29 -> 14 -> 12 -> 6 -> 5 -> 2
    assert s['conv1.weight'] == (64, 3, 4, 4) and s['conv2.weight'] == (128, 64, 3, 3)
    assert s['conv3.weight'] == (256, 128, 2, 2)
    assert s['fc1.weight'] == (2048, 256 * 2 * 2) and s['fc2.weight'] == (2048, 2048)
    assert (net.drop1.p, net.drop2.p) == (0.2, 0.5)
    out = net(torch.randn(4, 3, 32, 32))
    assert [o.shape for o in out] == [(4, 2), (4, 20), (4, 5)]


@pytest.mark.parametrize('module,inputsize,plain,gated', [
    (mlp_hat, [1, 28, 28], mlp, ['fc1', 'fc2']),
    (alexnet_hat, [3, 32, 32], alexnet, ['c1', 'c2', 'c3', 'fc1', 'fc2'])])
def test_hat_networks_are_the_plain_ones_plus_gates(module, inputsize, plain, gated):
    """The original's layer and embedding names (state_dict keys), and the plain network's shapes."""
    net = module.Net(inputsize, TASKCLA)
    s = shapes(net)
    assert net.gated == gated
    layers = {k: v for k, v in s.items() if not k.startswith('e')}
    assert sorted(layers.values()) == sorted(shapes(plain.Net(inputsize, TASKCLA)).values())
    assert [k for k in s if k.startswith('e')] == [f'e{name}.weight' for name in gated]
    for name, emb in zip(gated, net.embeddings()):
        assert s[f'e{name}.weight'] == emb.weight.shape == (len(TASKCLA), s[f'{name}.weight'][0])
    out, masks = net(1, torch.randn(3, *inputsize), s=400)
    assert [o.shape for o in out] == [(3, 2), (3, 20), (3, 5)]
    assert [m.shape for m in masks] == [(1, getattr(net, n).weight.shape[0]) for n in net.gated]


def test_mask_is_sigmoid_of_scaled_embedding():
    net = mlp_hat.Net([1, 28, 28], TASKCLA)
    with torch.no_grad():
        net.efc1.weight[2, :3] = torch.tensor([0.0, 0.01, -0.02])
    masks = net.mask(2, s=100)
    expected = 1 / (1 + torch.exp(-100 * torch.tensor([0.0, 0.01, -0.02])))
    assert torch.allclose(masks[0][0, :3], expected)


def test_gates_multiply_units():
    """With every gate of task 1 closed, the heads see only their biases."""
    net = alexnet_hat.Net([3, 32, 32], TASKCLA).eval()
    with torch.no_grad():
        net.efc2.weight[1] = -6.0
    out, _ = net(1, torch.randn(2, 3, 32, 32), s=400)
    for o, head in zip(out, net.last):
        assert torch.allclose(o, head.bias.expand_as(o), atol=1e-6)


def test_gradient_mask_views_alexnet():
    net = alexnet_hat.Net([3, 32, 32], TASKCLA)
    g = torch.Generator().manual_seed(0)
    masks = [torch.rand(1, n, generator=g) for n in (64, 128, 256, 2048, 2048)]
    gc1, gc2, gc3, gfc1, gfc2 = (m[0] for m in masks)
    view = lambda name: net.get_view_for(name, masks)

    assert torch.equal(view('c1.weight')[5], torch.full((3, 4, 4), float(gc1[5])))  # first layer: output only
    assert torch.equal(view('c1.bias'), gc1)
    assert torch.equal(view('c2.weight')[7, 9], torch.full((3, 3), float(min(gc2[7], gc1[9]))))
    assert torch.equal(view('c3.bias'), gc3)
    # conv3 -> fc1: input feature c*2*2 + h*2 + w (flatten order) comes from channel c of conv3
    fc1 = view('fc1.weight')
    for j, c, pos in [(0, 0, 0), (11, 3, 2), (2047, 255, 3), (100, 128, 1)]:
        assert fc1[j, c * 4 + pos] == min(gfc1[j], gc3[c])
    assert torch.equal(view('fc2.weight')[3, 4], min(gfc2[3], gfc1[4]))
    assert torch.equal(view('fc2.bias'), gfc2)
    for name, p in net.named_parameters():
        v = view(name)
        if name.startswith(('last', 'e')):
            assert v is None  # heads and embeddings are never masked
        else:
            assert v.shape == p.shape


def test_gradient_mask_views_mlp():
    net = mlp_hat.Net([1, 28, 28], TASKCLA)
    masks = [torch.rand(1, 2000), torch.rand(1, 2000)]
    w1, w2 = net.get_view_for('fc1.weight', masks), net.get_view_for('fc2.weight', masks)
    assert torch.equal(w1[10], torch.full((784,), float(masks[0][0, 10])))
    assert w2[10, 20] == min(masks[1][0, 10], masks[0][0, 20])
    assert torch.equal(net.get_view_for('fc1.bias', masks), masks[0][0])
