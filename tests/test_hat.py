"""HAT's mechanics pinned by hand-computed values, and its guarantee: what task 0 claimed does not move."""
import math

import numpy as np
import pytest
import torch

from approaches import hat, sgd
from networks import alexnet_hat, mlp, mlp_hat
from plumbing import utils
import run
from fixtures import make_appr, two_task_data


def make_hat(net, **settings):
    return make_appr(hat.Appr, net, **settings)


def test_defaults_are_the_papers():
    appr = hat.Appr(mlp_hat.Net([1, 28, 28], [(0, 2)]))
    hp, loop = appr.hp, appr.loop
    assert (hp.lamb, hp.smax, loop.clipgrad, hp.thres_cosh, hp.thres_emb) == (0.75, 400, 10000, 50, 6)
    assert (loop.lr_min, loop.lr_factor, loop.lr_patience) == (1e-4, 3, 5)
    assert (loop.nepochs, loop.lr, loop.batch_size) == (200, 0.05, 64)
    assert hat.Appr.parameter_names == ('lamb', 'smax')
    # The flags run.py declares give the same defaults
    args, *_ = run.parse_args(['--experiment', 'cifar', '--approach', 'hat'])
    assert (args.lamb, args.smax, args.clipgrad, args.thres_cosh, args.thres_emb) == (0.75, 400, 10000, 50, 6)


def test_s_schedule():
    appr = make_hat(mlp_hat.Net([1, 28, 28], [(0, 2)]))
    x = torch.randn(2, 1, 28, 28)
    for (i, n), expected in [((0, 64), 1 / 400), ((32, 64), 200.00125), ((48, 64), 300.000625),
                             ((640, 1000), 256.0009)]:
        appr.pre_batch((i, n))
        assert appr.s == pytest.approx(expected, rel=1e-12)
        assert appr.s_train.item() == np.float32(appr.s) and appr.smax_over_s.item() == np.float32(400 / appr.s)
        _, extras = appr.forward(0, x, training=True)
        assert torch.equal(extras['masks'][0], torch.sigmoid(appr.s_train * appr.model.efc1.weight[:1]))
    _, extras = appr.forward(0, x, training=False)  # evaluation: s = smax
    assert torch.equal(extras['masks'][0], torch.sigmoid(400 * appr.model.efc1.weight[:1]))


def test_regulariser():
    appr = make_hat(mlp_hat.Net([1, 28, 28], [(0, 2)]))
    masks = [torch.tensor([[0.2, 0.8]]), torch.tensor([[1.0, 0.0, 0.5]])]
    assert appr.regulariser(masks).item() == pytest.approx(2.5 / 5, rel=1e-5)  # first task: sum(a) / units
    appr.mask_pre = [torch.tensor([[1.0, 0.0]]), torch.tensor([[0.5, 0.0, 1.0]])]
    # sum(a * (1 - a_pre)) = 0.2*0 + 0.8*1 + 1*0.5 + 0*1 + 0.5*0 = 1.3; sum(1 - a_pre) = 1 + 1.5 = 2.5
    assert appr.regulariser(masks).item() == pytest.approx(1.3 / 2.5, rel=1e-5)  # float32 against float64


def test_criterion_adds_c_times_regulariser():
    appr = make_hat(mlp_hat.Net([1, 28, 28], [(0, 3)]), lamb=2.0)
    x, y = torch.randn(4, 1, 28, 28), torch.tensor([0, 1, 2, 0])
    outputs, extras = appr.forward(0, x, training=False)
    ce = torch.nn.functional.cross_entropy(outputs[0], y)
    loss, terms = appr.criterion(0, outputs, y, extras)
    assert terms['reg'].item() == appr.regulariser(extras['masks']).item()
    assert loss.item() == pytest.approx((ce + 2.0 * terms['reg']).item(), rel=1e-5)


def test_embedding_gradient_compensation():
    net = mlp_hat.Net([1, 28, 28], [(0, 2), (1, 2)])
    appr = make_hat(net, smax=400)
    values = [0.0, 1.0, -0.01, 0.3]
    with torch.no_grad():
        net.efc1.weight[0, :4] = torch.tensor(values)
    for p in net.parameters():
        p.grad = torch.ones_like(p)
    appr.set_temperature(20.0)
    appr.post_backward(0)
    for e, g in zip(values, net.efc1.weight.grad[0, :4].tolist()):
        expected = 400 / 20 * (math.cosh(max(-50, min(50, 20 * e))) + 1) / (math.cosh(e) + 1)
        assert g == pytest.approx(expected, rel=1e-5)
    appr.set_temperature(400.0)  # s * e = 400 is clamped to 50 inside cosh
    net.efc1.weight.grad.fill_(1)
    appr.post_backward(0)
    assert net.efc1.weight.grad[0, 1].item() == pytest.approx((math.cosh(50) + 1) / (math.cosh(1) + 1), rel=1e-5)


def test_embeddings_clamped_after_step():
    net = mlp_hat.Net([1, 28, 28], [(0, 2)])
    appr = make_hat(net)
    with torch.no_grad():
        net.efc2.weight[0, :3] = torch.tensor([7.0, -9.0, 5.0])
    appr.post_step(0)
    assert net.efc2.weight[0, :3].tolist() == [6.0, -6.0, 5.0]


def test_mask_accumulation_and_gradient_masks():
    net = alexnet_hat.Net([3, 32, 32], [(0, 2), (1, 2)])
    appr = make_hat(net)
    with torch.no_grad():
        for emb in net.embeddings():
            emb.weight.copy_(torch.randn_like(emb.weight))
    appr.post_train(0, None)
    first = [m.clone() for m in appr.mask_pre]
    appr.post_train(1, None)
    for acc, m0, m1 in zip(appr.mask_pre, first, net.mask(1, s=400)):
        assert torch.equal(acc, torch.max(m0, m1))
    for name, p in net.named_parameters():
        view = net.get_view_for(name, appr.mask_pre)
        assert (name in appr.mask_back) == (view is not None)
        if view is not None:
            assert torch.equal(appr.mask_back[name], 1 - view)
    # The multipliers are applied to gradients from the second task on
    for p in net.parameters():
        p.grad = torch.ones_like(p)
    appr.set_temperature(400.0)
    appr.post_backward(1)
    assert torch.equal(net.fc1.weight.grad, appr.mask_back['fc1.weight'])
    assert torch.equal(net.last[0].weight.grad, torch.ones_like(net.last[0].weight))


def test_capacity_counts_the_weights_each_tasks_units_keep_open():
    # An MLP of 2 hidden layers of 4 units on 4 inputs; task 0 opens units {0, 1} of both layers, task 1 {1, 2}
    net = mlp_hat.Net([1, 2, 2], [(0, 2), (1, 2)], nhid=4)
    appr = make_hat(net)
    opened = [{0, 1}, {1, 2}]
    with torch.no_grad():
        for emb in net.embeddings():
            for t, units in enumerate(opened):
                emb.weight[t] = torch.tensor([1.0 if u in units else -1.0 for u in range(4)])
    records = []
    for t in range(2):
        appr.post_train(t, None)
        records.append(appr.capacity(t))

    def count(units):  # fc1: a weight per (unit, input) and a bias per unit; fc2: a weight per (unit, unit) open
        return len(units) * 4 + len(units) + len(units) ** 2 + len(units)

    total = 4 * 4 + 4 + 4 * 4 + 4
    assert records[0] == {'task': 0, 'of': 'masked parameters', 'total': total, 'per_task': [count({0, 1}) / total],
                          'used': count({0, 1}) / total, 'free': 1 - count({0, 1}) / total}
    assert records[1]['per_task'] == [count({0, 1}) / total, count({1, 2}) / total]
    assert records[1]['used'] == count({0, 1, 2}) / total  # the union of the units: a_pre


def test_parameters_claimed_by_task0_do_not_move():
    utils.seed_everything(0)
    data = two_task_data()
    net = mlp_hat.Net([1, 28, 28], [(0, 3), (1, 3)])
    appr = make_hat(net, nepochs=3)
    appr.train(0, data)
    before = utils.get_model(net)
    claimed = {name: m == 0 for name, m in appr.mask_back.items()}  # gradient multiplier 0: fully claimed by task 0
    appr.train(1, data)
    frozen_count = 0
    for name, p in net.named_parameters():
        if name in claimed:
            frozen = claimed[name]
            frozen_count += int(frozen.sum())
            assert torch.equal(p.detach()[frozen], before[name][frozen]), name
            assert not torch.equal(p.detach(), before[name]), name  # the free part did learn
    assert frozen_count > 1000
    assert torch.equal(net.efc1.weight[0], before['efc1.weight'][0])  # task 0's gates too


def task0_output_change(appr, net, data, forward):
    """Largest change of task 0's test logits (eval mode) from after task 0 to after task 1."""
    x = data[0]['test']['x']
    outputs = []
    for t in (0, 1):
        appr.train(t, data)
        net.eval()
        with torch.no_grad():
            outputs.append(forward(x))
    return (outputs[1] - outputs[0]).abs().max().item()


@pytest.mark.slow
def test_hat_keeps_task0_outputs_sgd_does_not():
    utils.seed_everything(0)
    data = two_task_data()
    hnet = mlp_hat.Net([1, 28, 28], [(0, 3), (1, 3)])
    happr = make_hat(hnet, nepochs=3)
    hat_change = task0_output_change(happr, hnet, data, lambda x: hnet(0, x, s=400)[0][0])
    utils.seed_everything(0)
    snet = mlp.Net([1, 28, 28], [(0, 3), (1, 3)])
    sappr = make_appr(sgd.Appr, snet, nepochs=3)
    sgd_change = task0_output_change(sappr, snet, data, lambda x: snet(x)[0])
    assert sgd_change > 0.3
    assert hat_change < 0.02 * sgd_change
