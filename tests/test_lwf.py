"""LwF's mechanics: the distillation loss by hand, its targets from a frozen copy, and the original's defaults."""
import math

import pytest
import torch

from approaches import lwf
from networks import mlp
from plumbing import utils
from fixtures import make_appr, two_task_data


def make_lwf(net, **settings):
    return make_appr(lwf.Appr, net, **settings)


def softmax(z):
    e = [math.exp(v) for v in z]
    return [v / sum(e) for v in e]


def hand_distillation(outputs, targets, T, eps=1e-5):
    """The original's utils.cross_entropy(outputs, targets, exp=1/T, eps), written out with floats."""
    total = 0.0
    for o, t in zip(outputs, targets):
        out, tar = softmax(o), softmax(t)
        if T != 1:
            out = [p ** (1 / T) / sum(q ** (1 / T) for q in out) for p in out]
            tar = [p ** (1 / T) / sum(q ** (1 / T) for q in tar) for p in tar]
        out = [(p + eps / len(out)) / (1 + eps) for p in out]
        total += -sum(pt * math.log(po) for pt, po in zip(tar, out))
    return total / len(outputs)


def test_defaults_are_the_originals():
    appr = lwf.Appr(mlp.Net([1, 28, 28], [(0, 2)]))
    assert (appr.hp.lamb, appr.hp.T, appr.loop.clipgrad) == (2, 1, 100)
    assert (appr.loop.lr_min, appr.loop.lr_factor, appr.loop.lr_patience) == (1e-4, 3, 5)
    assert lwf.Appr.parameter_names == ('lamb', 'T')
    assert lwf.Appr.network_variant is None


@pytest.mark.parametrize('T', [1, 2, 0.5])
def test_distillation_matches_hand_computed(T):
    outputs = [[1.0, -0.5, 0.25], [0.0, 2.0, -1.0]]
    targets = [[0.5, 0.5, -2.0], [3.0, -1.0, 0.0]]
    loss = lwf.distillation(torch.tensor(outputs, dtype=torch.float64), torch.tensor(targets, dtype=torch.float64),
                            T=T)
    assert loss.item() == pytest.approx(hand_distillation(outputs, targets, T), rel=1e-12)


def test_temperature_softens_as_softmax_of_scaled_logits():
    z_new, z_old = torch.randn(5, 4, dtype=torch.float64), torch.randn(5, 4, dtype=torch.float64)
    p_old = torch.softmax(z_old / 2, 1)
    q = (torch.softmax(z_new / 2, 1) + 1e-5 / 4) / (1 + 1e-5)
    expected = -(p_old * q.log()).sum(1).mean()
    assert lwf.distillation(z_new, z_old, T=2).item() == pytest.approx(expected.item(), rel=1e-10)


def test_distillation_is_minimal_when_new_equals_old():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(6, 5, generator=g, dtype=torch.float64)
    new = z.clone().requires_grad_(True)
    at_old = lwf.distillation(new, z, T=2)
    at_old.backward()
    # eps smoothing moves the exact minimum by O(eps): the gradient at new == old is of that order
    assert new.grad.abs().max().item() < 1e-5
    p = torch.softmax(z / 2, 1)
    entropy = -(p * ((p + 1e-5 / 5) / (1 + 1e-5)).log()).sum(1).mean()
    assert at_old.item() == pytest.approx(entropy.item(), rel=1e-12)
    for _ in range(20):
        moved = z + 0.1 * torch.randn(z.shape, generator=g, dtype=torch.float64)
        assert lwf.distillation(moved, z, T=2).item() > at_old.item()
    # Without the smoothing, new == old is an exact stationary point
    exact = z.clone().requires_grad_(True)
    lwf.distillation(exact, z, T=2, eps=0).backward()
    assert exact.grad.abs().max().item() < 1e-12


def test_criterion_sums_distillation_over_previous_tasks():
    net = mlp.Net([1, 28, 28], [(0, 3), (1, 4), (2, 2)])
    appr = make_lwf(net, lamb=0.7, T=2)
    appr.post_train(1, None)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    net.eval()
    x, y = torch.randn(5, 1, 28, 28), torch.tensor([0, 1, 1, 0, 1])
    outputs, extras = appr.forward(2, x, training=False)
    old = appr.model_old(x)
    dist = lwf.distillation(outputs[0], old[0], T=2) + lwf.distillation(outputs[1], old[1], T=2)
    expected = torch.nn.functional.cross_entropy(outputs[2], y) + 0.7 * dist
    loss, terms = appr.criterion(2, outputs, y, extras)
    # float32 sums in another order: rel 1e-5 is many roundings (6e-8 each) away, a task left out far more
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert terms['dist'].item() == pytest.approx(dist.item(), rel=1e-5)


@pytest.mark.slow
def test_distillation_holds_old_outputs_on_the_inputs_it_sees():
    """Task 1 on task 0's inputs (new labels): distillation keeps task 0's outputs there closer than lamb = 0 (SGD).

    Dropout is off: with it, the network distils in train mode towards the copy's eval-mode outputs (as the original
    does), a mismatch that on tiny random tasks can move the outputs more than it holds them."""
    changes = {}
    for lamb in (0, 2):
        utils.seed_everything(0)
        data = two_task_data()
        for split in ('train', 'valid', 'test'):
            data[1][split]['x'] = data[0][split]['x']
        net = mlp.Net([1, 28, 28], [(0, 3), (1, 3)], pdrop1=0, pdrop2=0)
        appr = make_lwf(net, nepochs=3, lamb=lamb)
        x = data[0]['test']['x']
        probs = []
        for t in (0, 1):
            appr.train(t, data)
            with torch.no_grad():
                probs.append(torch.softmax(net.eval()(x)[0], 1))
        changes[lamb] = (probs[1] - probs[0]).abs().sum(1).mean().item()
    assert changes[2] < 0.5 * changes[0]
