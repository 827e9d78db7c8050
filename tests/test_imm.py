"""IMM's mechanics pinned by hand-computed values: the L2-transfer regulariser, the merge by mean and by mode, and the
Fisher IMM-mode weights its merge with."""
import numpy as np
import pytest
import torch

from approaches import _fisher, imm_mean, imm_mode
from plumbing import utils
from fixtures import LinearNet, hand_fisher, linear_problem, make_appr, placeholder_data, small_mlp, task_data


def make(module, net, **settings):
    return make_appr(module.Appr, net, **settings)


def random_weights(net, seed):
    g = torch.Generator().manual_seed(seed)
    return {n: torch.randn(p.shape, generator=g) for n, p in net.named_parameters()}


@torch.no_grad()
def set_weights(net, weights):
    for n, p in net.named_parameters():
        p.copy_(weights[n])


def test_defaults_are_the_originals():
    appr = imm_mean.Appr(small_mlp())
    assert (appr.hp.lamb, appr.loop.clipgrad) == (0.0001, 10000)  # imm_mean.py:13
    appr = imm_mode.Appr(small_mlp())
    assert (appr.hp.lamb, appr.loop.clipgrad) == (0.01, 1000)  # imm_mode.py:13 (its comment says the best was 1)
    assert appr.hp.apply_merge is False
    for appr_cls in (imm_mean.Appr, imm_mode.Appr):
        loop = appr_cls(small_mlp()).loop
        assert (loop.lr_min, loop.lr_factor, loop.lr_patience) == (1e-4, 3, 5)
        assert appr_cls.parameter_names == ('lamb',) and appr_cls.network_variant is None


@pytest.mark.parametrize('module', [imm_mean, imm_mode])
def test_l2_transfer_regulariser_by_hand(module):
    weight, bias, x, y = linear_problem()
    net = LinearNet((weight, bias))
    appr = make(module, net, lamb=0.3)
    appr.old = {'last.0.weight': torch.ones(3, 4), 'last.0.bias': torch.tensor([0.5, -1.0, 2.0])}
    expected = (((weight.astype(np.float64) - 1) ** 2).sum() + ((bias - np.array([0.5, -1.0, 2.0])) ** 2).sum()) / 2
    # float32 sums against float64: rel 1e-5 is many roundings (6e-8 each) away, a wrong formula far more
    assert appr.regulariser().item() == pytest.approx(expected, rel=1e-5)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    outputs, extras = appr.forward(0, xt, training=False)
    ce = torch.nn.functional.cross_entropy(outputs[0], yt)
    assert torch.equal(appr.criterion(0, outputs, yt, extras)[0], ce)  # no regulariser on the first task
    net.last.append(net.last[0])  # task 1 on the same head, so that the regulariser applies
    outputs, extras = appr.forward(1, xt, training=False)
    assert appr.criterion(1, outputs, yt, extras)[0].item() == pytest.approx(ce.item() + 0.3 * expected, rel=1e-5)
    appr.old = utils.get_model(net)
    assert appr.regulariser().item() == 0.0


def test_imm_mean_merge_is_the_mean_of_the_tasks_weights():
    net = small_mlp(ntasks=3)
    appr = make(imm_mean, net)
    trained = [random_weights(net, seed) for seed in range(3)]
    for t in range(3):
        set_weights(net, trained[t])
        appr.post_train(t, placeholder_data())
        merged = dict(net.named_parameters())
        for n in trained[0]:
            if t == 0:
                assert torch.equal(merged[n], trained[0][n])  # nothing to merge with
            elif t == 1:
                assert torch.equal(merged[n], (trained[1][n] + trained[0][n]) / 2)  # imm_mean.py:87
            else:
                # The running mean and the plain one round differently (a few float32 ulps)
                torch.testing.assert_close(merged[n], sum(w[n] for w in trained) / 3, rtol=1e-5, atol=1e-5)
            assert torch.equal(appr.old[n], merged[n])  # the merged weights are the next task's anchor


@pytest.mark.parametrize('apply_merge', [False, True])
def test_imm_mode_merge_is_the_fisher_weighted_mode(monkeypatch, apply_merge):
    """With --apply-merge, the Fisher-weighted mode; by default, as the original's code, the Fisher is summed but the
    weights stay the last task's (its merge loop rebound names instead of writing the parameters)."""
    net = small_mlp(ntasks=3)
    appr = make(imm_mode, net, apply_merge=apply_merge)
    trained = [random_weights(net, seed) for seed in range(3)]
    fishers = [{n: torch.rand(w.shape, generator=torch.Generator().manual_seed(10 + t)) for n, w in trained[t].items()}
               for t in range(3)]
    for t, f in enumerate(fishers):  # some weights have no Fisher in any task, some only in task 0's
        f['fc1.weight'][0, :5] = 0
        if t > 0:
            f['fc1.bias'][:3] = 0
    given = [{n: v.clone() for n, v in f.items()} for f in fishers]
    monkeypatch.setattr(_fisher, 'fisher_diagonal', lambda *args, **kwargs: given.pop(0))
    for t in range(3):
        set_weights(net, trained[t])
        appr.post_train(t, placeholder_data())
    total = {n: sum(f[n] for f in fishers) for n in trained[0]}
    for n, p in net.named_parameters():
        torch.testing.assert_close(appr.fisher[n], total[n])
        assert torch.equal(appr.old[n], p.detach())
        if not apply_merge:
            assert torch.equal(p.detach(), trained[2][n])
            continue
        expected = sum(f[n] * w[n] for f, w in zip(fishers, trained)) / total[n].clamp(min=1e-30)
        torch.testing.assert_close(p.detach(), expected, rtol=1e-5, atol=1e-5)
    if not apply_merge:
        return
    assert torch.equal(net.fc1.weight[0, :5], torch.zeros(5))  # no Fisher anywhere: 0 (imm_mode.py:92)
    torch.testing.assert_close(net.fc1.bias[:3], trained[0]['fc1.bias'][:3])  # only task 0's Fisher: task 0's


def test_imm_mode_first_task_keeps_weights_and_fisher(monkeypatch):
    net = small_mlp()
    appr = make(imm_mode, net)
    before = utils.get_model(net)
    fisher = {n: torch.rand_like(p) for n, p in net.named_parameters()}
    monkeypatch.setattr(_fisher, 'fisher_diagonal', lambda *args, **kwargs: fisher)
    appr.post_train(0, placeholder_data())
    assert all(torch.equal(p, before[n]) for n, p in net.named_parameters())
    assert appr.fisher is fisher


def test_imm_mode_fisher_includes_the_l2_transfer_by_hand():
    """As the original, the Fisher is taken with the training criterion before the anchor moves: from the second
    task on, each batch's gradient includes lamb * (theta - theta_old)."""
    weight0, bias0, x0, y0 = linear_problem(seed=0)
    weight1, bias1, x1, y1 = linear_problem(seed=1)
    net = LinearNet((weight0, bias0))
    net.last.append(net.last[0])  # task 1 on the same head, so that its weights are both tasks'
    appr = make(imm_mode, net, lamb=0.5, apply_merge=True)
    data = [task_data(x0, y0), task_data(x1, y1)]
    appr.post_train(0, data)
    f0 = hand_fisher(weight0, bias0, x0, y0)
    for i, name in enumerate(('weight', 'bias')):
        np.testing.assert_allclose(appr.fisher[f'last.0.{name}'].numpy(), f0[i], rtol=1e-5, atol=1e-9)
    net.set_heads((weight1, bias1))
    appr.post_train(1, data)
    f1 = hand_fisher(weight1, bias1, x1, y1, l2=0.5, old=(weight0, bias0))
    for i, (name, theta0, theta1) in enumerate((('weight', weight0, weight1), ('bias', bias0, bias1))):
        np.testing.assert_allclose(appr.fisher[f'last.0.{name}'].numpy(), f0[i] + f1[i], rtol=1e-5, atol=1e-9)
        mode = (f1[i] * theta1 + f0[i] * theta0) / (f0[i] + f1[i])
        np.testing.assert_allclose(net.last[0].state_dict()[name].numpy(), mode, rtol=1e-4, atol=1e-6)
