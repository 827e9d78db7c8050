"""EWC's mechanics pinned by hand-computed values: the Fisher diagonal (the original's utils.fisher_matrix_diag), its
running merge across tasks, and the penalty."""
import numpy as np
import pytest
import torch

from approaches import _fisher, ewc
from plumbing import utils
from fixtures import LinearNet, hand_fisher, linear_problem, make_appr, placeholder_data, small_mlp, task_data


def make_ewc(net, **settings):
    return make_appr(ewc.Appr, net, **settings)


def test_defaults_are_the_originals():
    appr = ewc.Appr(small_mlp())
    assert (appr.hp.lamb, appr.loop.clipgrad) == (5000, 100)  # ewc.py:11
    assert (appr.loop.lr_min, appr.loop.lr_factor, appr.loop.lr_patience) == (1e-4, 3, 5)
    assert ewc.Appr.parameter_names == ('lamb',) and ewc.Appr.network_variant is None
    assert _fisher.SBATCH == 20


def test_fisher_diagonal_by_hand():
    weight, bias, x, y = linear_problem()
    net = LinearNet((weight, bias))
    ce = torch.nn.CrossEntropyLoss()
    fisher = _fisher.fisher_diagonal(net, lambda xb, yb: ce(net(xb)[0], yb), torch.from_numpy(x), torch.from_numpy(y))
    fw, fb = hand_fisher(weight, bias, x, y)
    assert set(fisher) == {'last.0.weight', 'last.0.bias'}
    np.testing.assert_allclose(fisher['last.0.weight'].numpy(), fw, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(fisher['last.0.bias'].numpy(), fb, rtol=1e-5, atol=1e-9)
    # The last batch of 5 is scaled by 20 too: scaling it by its own size would give a different value
    assert not np.allclose(fb, hand_fisher(weight, bias, x[:20], y[:20])[1] * 20 / 25)


def test_fisher_is_taken_in_train_mode():
    net = small_mlp()
    net.eval()
    x, y = torch.randn(40, 1, 28, 28), torch.randint(0, 3, (40,))
    ce = torch.nn.CrossEntropyLoss()
    fishers = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        fishers.append(_fisher.fisher_diagonal(net, lambda xb, yb: ce(net(xb)[0], yb), x, y))
    assert net.training
    assert not torch.equal(fishers[0]['fc1.weight'], fishers[1]['fc1.weight'])  # dropout draws differ
    for name, p in net.named_parameters():
        assert fishers[0][name].shape == p.shape and bool((fishers[0][name] >= 0).all())
    assert fishers[0]['last.0.weight'].sum() > 0 and fishers[0]['last.1.weight'].sum() == 0  # unused head: 0


def test_post_train_keeps_anchor_and_fisher():
    net = small_mlp()
    appr = make_ewc(net)
    data = [task_data(np.random.RandomState(0).randn(30, 1, 28, 28).astype(np.float32),
                      np.random.RandomState(1).randint(0, 3, 30))]
    appr.post_train(0, data)
    for name, p in net.named_parameters():
        assert torch.equal(appr.old[name], p.detach())
        assert appr.fisher[name].shape == p.shape and bool((appr.fisher[name] >= 0).all())
    assert all(f.sum() > 0 for n, f in appr.fisher.items() if not n.startswith('last.1'))


def test_fisher_of_later_tasks_and_running_merge_by_hand():
    """The anchor moves before the Fisher is taken, so at t > 0 the penalty adds nothing to it (its gradient is 0
    there): F_1 is the cross-entropy's, merged as (F_1 + F_0) / 2."""
    weight0, bias0, x0, y0 = linear_problem(seed=0)
    weight1, bias1, x1, y1 = linear_problem(seed=1)
    net = LinearNet((weight0, bias0), (weight1, bias1))
    appr = make_ewc(net)
    data = [task_data(x0, y0), task_data(x1, y1)]
    appr.post_train(0, data)
    moved = (weight0 + 0.5, bias0 - 0.5)  # as training task 1 would move the shared weights
    net.set_heads(moved, (weight1, bias1))
    appr.post_train(1, data)
    f0, f1 = hand_fisher(weight0, bias0, x0, y0), hand_fisher(weight1, bias1, x1, y1)
    for i, name in enumerate(('weight', 'bias')):
        np.testing.assert_allclose(appr.fisher[f'last.0.{name}'].numpy(), f0[i] / 2, rtol=1e-5, atol=1e-9)
        np.testing.assert_allclose(appr.fisher[f'last.1.{name}'].numpy(), f1[i] / 2, rtol=1e-5, atol=1e-9)
        assert torch.equal(appr.old[f'last.0.{name}'], torch.from_numpy(moved[i]))


def test_running_merge_formula(monkeypatch):
    net = small_mlp(ntasks=3)
    appr = make_ewc(net)
    g = torch.Generator().manual_seed(0)
    new = [{n: torch.rand(p.shape, generator=g) for n, p in net.named_parameters()} for _ in range(3)]
    monkeypatch.setattr(_fisher, 'fisher_diagonal', lambda *args, **kwargs: new.pop(0))
    fishers = [{n: f.clone() for n, f in task.items()} for task in new]
    for t in range(3):
        appr.post_train(t, placeholder_data())
        if t == 0:
            expected = fishers[0]
        else:
            expected = {n: (fishers[t][n] + expected[n] * t) / (t + 1) for n in expected}  # ewc.py:93
        for n in expected:
            assert torch.equal(appr.fisher[n], expected[n])
    for n in expected:  # the running merge is the mean of the tasks' Fisher diagonals
        torch.testing.assert_close(appr.fisher[n], sum(f[n] for f in fishers) / 3)


def test_penalty_zero_at_anchor_positive_away():
    net = small_mlp()
    appr = make_ewc(net)
    appr.old = utils.get_model(net)
    appr.fisher = {n: torch.rand_like(p) for n, p in net.named_parameters()}
    assert appr.penalty().item() == 0.0
    with torch.no_grad():
        net.fc1.bias[3] += 0.5
    # float32 against float64: rel 1e-5 is many float32 roundings (6e-8 each) away, a wrong formula far more
    assert appr.penalty().item() == pytest.approx(appr.fisher['fc1.bias'][3].item() * 0.25 / 2, rel=1e-5)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.01)
    assert appr.penalty().item() > 0


def test_criterion_and_penalty_gradient_by_hand():
    weight, bias, x, y = linear_problem()
    net = LinearNet((weight, bias), (weight, bias))
    appr = make_ewc(net, lamb=300.0)
    appr.old = {'last.0.weight': torch.zeros(3, 4), 'last.0.bias': torch.ones(3), **{
        f'last.1.{n}': p.detach().clone() for n, p in net.last[1].named_parameters()}}
    appr.fisher = {'last.0.weight': torch.full((3, 4), 0.5), 'last.0.bias': torch.tensor([1.0, 2.0, 0.0]),
                   'last.1.weight': torch.ones(3, 4), 'last.1.bias': torch.ones(3)}
    penalty = (0.5 * (weight.astype(np.float64) ** 2).sum() + (np.array([1, 2, 0]) * (bias - 1.0) ** 2).sum()) / 2
    assert appr.penalty().item() == pytest.approx(penalty, rel=1e-5)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    outputs, extras = appr.forward(0, xt, training=False)
    ce = torch.nn.functional.cross_entropy(outputs[0], yt)
    assert torch.equal(appr.criterion(0, outputs, yt, extras)[0], ce)  # no penalty on the first task
    ce1 = torch.nn.functional.cross_entropy(outputs[1], yt)  # the same head's weights: the same logits
    assert appr.criterion(1, outputs, yt, extras)[0].item() == pytest.approx(ce1.item() + 300 * penalty, rel=1e-5)
    # Its gradient pulls each weight towards the anchor in proportion to its Fisher: lamb * F * (theta - theta*)
    net.zero_grad()
    (appr.hp.lamb * appr.penalty()).backward()
    torch.testing.assert_close(net.last[0].weight.grad, 300 * 0.5 * torch.from_numpy(weight))
    torch.testing.assert_close(net.last[0].bias.grad,
                               300 * torch.tensor([1.0, 2.0, 0.0]) * (torch.from_numpy(bias) - 1))
