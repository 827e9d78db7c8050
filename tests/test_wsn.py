"""WSN's mechanics pinned by hand: the mask of the top c of |score| (the authors' k, its rounding, ties), the
straight-through gradient, the authors' order of initial draws, the guarantee (an earlier task's outputs and the
weights its mask uses bitwise unchanged by a later task's training), the mask a task keeps, and the capacity figures."""
import math

import torch

from approaches import wsn
from networks import mlp_subnet
from networks._subnet import SubnetForm, ste_mask, top_mask
from fixtures import TinyConvBN, make_appr, make_tasks


class TinySubnet(SubnetForm, TinyConvBN):
    """Its subnet form: batch norms on batch statistics, without scale or shift."""


def test_mask_keeps_the_top_fraction_by_the_authors_k():
    # n = 5, c = 0.5: k = 1 + round(0.01 * 50 * 4) = 3, the 3rd smallest (0.3) and everything above it kept
    assert top_mask(torch.tensor([0.1, 0.5, 0.3, 0.2, 0.4]), 0.5).tolist() == [0, 1, 1, 0, 1]
    # n = 6: 0.01 * 50 * 5 = 2.5 rounds half to even, to 2: k = 3, four of six kept (half up would keep three)
    assert top_mask(torch.arange(1., 7.), 0.5).tolist() == [0, 0, 1, 1, 1, 1]
    # Ties at the threshold are all kept: four of five
    assert top_mask(torch.tensor([1., 2., 2., 2., 3.]), 0.5).tolist() == [0, 1, 1, 1, 1]
    # The fact sheet's example: n = 78400, c = 0.03 keeps n - round(0.97 * 78399) = 2353
    assert int(top_mask(torch.arange(78400.), 0.03).sum()) == 2353
    assert top_mask(torch.rand(3, 4), 1.0).eq(1).all()
    assert top_mask(torch.rand(3, 4), 0.5).dtype == torch.float32


def test_straight_through_gradient_is_sign_of_score_times_upstream():
    score = torch.tensor([[0.3, -0.2], [-0.5, 0.1]], requires_grad=True)
    w = torch.tensor([[1., 2.], [3., 4.]])
    mask = ste_mask(score, 0.5)
    assert mask.tolist() == [[1, 0], [1, 0]]
    (mask * w).sum().backward()
    # Every score gets a gradient, those outside the mask too: sign(s) * dL/dmask, dL/dmask = w
    assert torch.equal(score.grad, torch.sign(score.detach()) * w)


def test_layers_drawn_weight_then_score_in_forward_order_then_heads():
    torch.manual_seed(0)
    net = mlp_subnet.Net([1, 28, 28], [(0, 2), (1, 3)])
    torch.manual_seed(0)
    expected = []
    for shape in ((100, 784), (100, 784), (100, 100), (100, 100), (2, 100), (3, 100)):
        expected.append(torch.nn.init.kaiming_uniform_(torch.empty(shape), a=math.sqrt(5)))
    got = [p for _, p in net.named_parameters()]
    assert [n for n, _ in net.named_parameters()] == ['fc1.weight', 'fc1.scores.0', 'fc2.weight', 'fc2.scores.0',
                                                      'last.0.weight', 'last.1.weight']
    assert all(torch.equal(a, b) for a, b in zip(got, expected))


def test_weight_gradient_is_the_masked_one():
    torch.manual_seed(0)
    net = mlp_subnet.Net([1, 28, 28], [(0, 2)])
    masks = {name: ste_mask(layer.scores[0], 0.3) for name, layer in net.subnet_layers()}
    net(torch.randn(4, 1, 28, 28), masks)[0].sum().backward()
    for name, layer in net.subnet_layers():
        assert torch.equal(layer.weight.grad == 0, (masks[name] == 0) | (layer.weight.grad == 0))
        assert layer.scores[0].grad is not None and layer.scores[0].grad.ne(0).any()


def learn_two_tasks(net_cls, shape, **settings):
    torch.manual_seed(0)
    net = net_cls(list(shape), [(0, 3), (1, 3)])
    tasks = make_tasks(shape, 2, n=24)
    appr = make_appr(wsn.Appr, net, c=0.3, optimizer='adam', lr=1e-2, nepochs=2, **settings)
    appr.train(0, tasks)
    x = tasks[0]['test']['x']
    with torch.no_grad():
        before = appr.forward(0, x, training=False)[0][0]
    weights = {name: layer.weight.detach().clone() for name, layer in appr.layers}
    appr.train(1, tasks)
    with torch.no_grad():
        after = appr.forward(0, x, training=False)[0][0]
    return appr, weights, before, after


def test_an_earlier_task_is_bitwise_unchanged_by_a_later_one():
    for net_cls, shape in ((mlp_subnet.Net, (1, 28, 28)), (TinySubnet, (2, 6, 6))):
        appr, weights, before, after = learn_two_tasks(net_cls, shape)
        assert torch.equal(before, after), net_cls.__module__
        moved = 0
        for name, layer in appr.layers:
            frozen = appr.masks[0][name]
            assert torch.equal(layer.weight[frozen], weights[name][frozen])
            moved += int((layer.weight != weights[name]).sum())
        assert moved > 0  # the second task did train the free weights


def test_a_task_keeps_its_last_minibatch_mask_or_its_best_scores_mask():
    appr, *_ = learn_two_tasks(mlp_subnet.Net, (1, 28, 28), batch_size=8)
    # Scores carried over and trained on: the second task's mask starts as the first's, yet need not equal it
    assert len(appr.masks) == 2 and appr.batch_masks is None
    union = {name: appr.masks[0][name] | appr.masks[1][name] for name in appr.masks[0]}
    assert all(torch.equal(union[name], appr.union[name]) for name in union)
    appr = learn_two_tasks(mlp_subnet.Net, (1, 28, 28), task_mask='best')[0]
    for name, layer in appr.layers:
        assert torch.equal(appr.masks[1][name], top_mask(layer.scores[0].detach().abs(), 0.3).bool())


def test_the_form_of_a_plain_network():
    net = TinySubnet([2, 6, 6], [(0, 3)])
    assert [name for name, _ in net.subnet_layers()] == ['conv', 'fc']
    assert not any(p.requires_grad for p in net.bn1.parameters()) and net.bn1.running_mean is None
    assert net.last[0].bias is None and dict(net.named_parameters()).keys() == {
        'conv.weight', 'conv.scores.0', 'fc.weight', 'fc.scores.0', 'last.0.weight'}


def test_capacity_fractions_and_bits():
    first = {'a': torch.tensor([True, True, False, False]), 'b': torch.tensor([[False, False], [False, True]])}
    second = {'a': torch.tensor([False, True, True, False]), 'b': torch.tensor([[True, False], [False, False]])}
    union = {name: first[name] | second[name] for name in first}
    record = wsn.capacity(1, [first, second], union)
    assert record['task'] == 1 and record['total'] == 8 and record['per_task'] == [3 / 8, 3 / 8]
    assert record['used'] == 5 / 8 and record['free'] == 3 / 8
    assert record['mask_bits'] == 16
    # Symbols per weight: a: 1, 3, 2, 0 (four symbols once each: 2 bits each = 8); b: 2, 0, 0, 1 (counts 2, 1, 1:
    # 1 + 2 + 2 bits weighted = 2 * 1 + 2 + 2 = 6)
    assert record['huffman_bits'] == 8 + 6
    assert wsn.code_length([5]) == 5 and wsn.code_length([1, 1, 2]) == 6
