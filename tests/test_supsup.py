"""SupSup's mechanics pinned by hand: the mask of the top k of |score| (the authors' count, its float rounding, ties),
the Erdos-Renyi densities, the straight-through gradient, the authors' order of draws and signed-constant weights, and
the guarantee (an earlier task's outputs bitwise unchanged by a later task's training, the weights never changed)."""
import math

import torch

from approaches import supsup
from networks import mlp_supsup
from networks._supsup import SupsupForm, er_density, kept_count, kept_mask, supsup_mask
from fixtures import TinyConvBN, make_appr, make_tasks


class TinySupsup(SupsupForm, TinyConvBN):
    """Its SupSup form: per-task batch norms with running statistics, without scale or shift."""


def test_mask_zeroes_the_authors_count_of_smallest():
    # n = 5, k = 0.5: int(0.5 * 5) = 2 smallest zeroed, three kept
    assert kept_mask(torch.tensor([0.1, 0.5, 0.3, 0.2, 0.4]), 0.5).tolist() == [0, 1, 1, 0, 1]
    # Their float product: (1 - 0.9) * 10 = 0.0999... -> 0 zeroed, all ten kept; (1 - 0.5) * 10 -> 5
    assert kept_count(10, 0.9) == 10 and kept_count(10, 0.5) == 5
    assert int(kept_mask(torch.rand(10), 0.9).sum()) == 10
    # Ties as torch's sort orders them, their call: on a few values on the CPU, the earlier zeroed, the later kept
    assert kept_mask(torch.tensor([1., 2., 2., 2., 3.]), 0.5).tolist() == [0, 0, 1, 1, 1]
    assert kept_mask(torch.full((2, 3), 7.), 0.5).tolist() == [[0, 0, 0], [1, 1, 1]]
    assert kept_mask(torch.rand(3, 4), 0.5).dtype == torch.float32


def test_mask_by_selection_is_the_sorts_and_sorts_only_for_a_tie_across_the_boundary(monkeypatch):
    """The CPU's selection gives the sort's bits (the authors' mask: the first j of the sorted values zeroed) on values
    with and without ties, NaN included, and falls back to the sort only when tied values straddle the j-th."""
    def by_sort(magnitude, k):
        mask = torch.ones(magnitude.numel())
        mask[magnitude.flatten().sort().indices[:magnitude.numel() - kept_count(magnitude.numel(), k)]] = 0
        return mask.view_as(magnitude)

    sorts = []
    sort = torch.Tensor.sort
    monkeypatch.setattr(torch.Tensor, 'sort', lambda self, *a, **kw: sorts.append(self.numel()) or sort(self, *a, **kw))
    g = torch.Generator().manual_seed(0)
    cases = [torch.rand(300, 40, generator=g), torch.rand(5000, generator=g).mul(20).floor(),  # many ties
             torch.tensor([0.5, float('nan'), 0.1, 0.7, float('nan'), 0.2])]
    for magnitude in cases:
        for k in (0.01, 0.1, 0.25, 0.5, 0.9, 0.99, 1.0):
            expected = by_sort(magnitude, k)
            j = magnitude.numel() - kept_count(magnitude.numel(), k)
            straddles = j and int((magnitude <= magnitude.flatten().sort().values[j - 1]).sum()) != j
            sorts.clear()
            assert torch.equal(kept_mask(magnitude, k), expected), (magnitude.shape, k)
            assert len(sorts) == (1 if straddles else 0), (magnitude.shape, k)


def test_er_densities_are_the_authors():
    # The fact sheet's figures for GEMResNet18 at multiplier 1: conv1 (20, 3, 3, 3) .043, the head (5, 160, 1, 1) .206
    assert er_density(torch.empty(20, 3, 3, 3), 1) == 23 / 540
    assert er_density(torch.empty(5, 160, 1, 1), 1) == 165 / 800
    assert er_density(torch.empty(40, 20, 1, 1), 32) == 0.5  # capped


def test_straight_through_gradient_is_sign_of_score_times_upstream():
    score = torch.tensor([[0.3, -0.2], [-0.5, 0.1]], requires_grad=True)
    w = torch.tensor([[1., 2.], [3., 4.]])
    mask = supsup_mask(score, 0.5)
    assert mask.tolist() == [[1, 0], [1, 0]]
    (mask * w).sum().backward()
    # Every score gets a gradient, those outside the mask too: sign(s) * dL/dmask, dL/dmask = w
    assert torch.equal(score.grad, torch.sign(score.detach()) * w)


def test_weight_then_every_task_score_then_heads_and_signed_constants():
    torch.manual_seed(0)
    net = mlp_supsup.Net([1, 28, 28], [(0, 2), (1, 3)])
    torch.manual_seed(0)
    shapes = [(300, 784)] * 3 + [(300, 300)] * 3 + [(2, 300), (3, 300)]
    expected = [torch.nn.init.kaiming_uniform_(torch.empty(shape), a=math.sqrt(5)) for shape in shapes]
    for i, fan_in in ((0, 784), (3, 300)):
        expected[i] = expected[i].sign() * (math.sqrt(2) / math.sqrt(fan_in))
    names = [n for n, _ in net.named_parameters()]
    assert names == ['fc1.weight', 'fc1.scores.0', 'fc1.scores.1', 'fc2.weight', 'fc2.scores.0', 'fc2.scores.1',
                     'last.0.weight', 'last.1.weight']
    assert all(torch.equal(a, b) for a, b in zip(net.parameters(), expected))
    assert not net.fc1.weight.requires_grad
    assert net.fc1.weight.abs().unique().tolist() == [torch.tensor(math.sqrt(2) / math.sqrt(784)).item()]


def test_the_form_of_a_plain_network():
    net = TinySupsup([2, 6, 6], [(0, 3), (1, 3)])
    assert [name for name, _ in net.subnet_layers()] == ['conv', 'fc']
    norms = net.task_norms()
    assert len(norms) == 2 and all(len(n.norms) == 2 for n in norms)
    assert all(not bn.affine and bn.track_running_stats for n in norms for bn in n.norms)
    assert net.last[0].bias is None


def test_an_earlier_task_is_bitwise_unchanged_by_a_later_one():
    torch.manual_seed(0)
    net = TinySupsup([2, 6, 6], [(0, 3), (1, 3)])
    tasks = make_tasks((2, 6, 6), 2, n=24)
    appr = make_appr(supsup.Appr, net, density=0.5, optimizer='adam', lr=1e-2, nepochs=2, lr_schedule='cosine',
                     keep='last', weight_decay=1e-4)
    weights = {name: layer.weight.clone() for name, layer in appr.layers}
    appr.train(0, tasks)
    x = tasks[0]['test']['x']
    net.eval()
    with torch.no_grad():
        before = appr.forward(0, x, training=False)[0][0]
    state = {k: v.clone() for k, v in net.state_dict().items()}
    appr.train(1, tasks)
    net.eval()
    with torch.no_grad():
        after = appr.forward(0, x, training=False)[0][0]
    assert torch.equal(before, after)
    assert all(torch.equal(layer.weight, weights[name]) for name, layer in appr.layers)
    now = net.state_dict()
    changed = {k for k in state if not torch.equal(state[k], now[k])}
    # Task 1's scores, head and batch-norm statistics only
    assert changed == {'conv.scores.1', 'fc.scores.1', 'last.1.weight', 'bn1.norms.1.running_mean',
                       'bn1.norms.1.running_var', 'bn1.norms.1.num_batches_tracked', 'bn2.norms.1.running_mean',
                       'bn2.norms.1.running_var', 'bn2.norms.1.num_batches_tracked'}
    record = appr.capacity(1)
    total = 4 * 2 * 9 + 8 * 36
    assert record['total'] == total and record['mask_bits'] == 2 * total
    assert record['per_task'] == [(kept_count(72, .5) + kept_count(288, .5)) / total] * 2
    assert record['per_task'][0] <= record['used'] <= 2 * record['per_task'][0]


def test_evaluation_masks_are_sorted_once_and_again_when_the_scores_change():
    """An evaluation's batches share task t's masks, the training forward's values, until its scores change in place
    (an optimizer step, a checkpoint loaded) or are other tensors."""
    torch.manual_seed(0)
    net = TinySupsup([2, 6, 6], [(0, 3), (1, 3)])
    appr = make_appr(supsup.Appr, net, density=0.5)

    def fresh(t):
        return {name: kept_mask(layer.scores[t].abs(), appr.density[name]) for name, layer in appr.layers}

    def same(masks, t):
        return masks.keys() == fresh(t).keys() and all(torch.equal(masks[k], m) for k, m in fresh(t).items())

    masks = appr.evaluation_masks(0)
    assert same(masks, 0) and appr.evaluation_masks(0) is masks  # computed once
    assert same(appr.evaluation_masks(1), 1) and same(appr.evaluation_masks(0), 0)  # per task
    with torch.no_grad():
        net.conv.scores[0].mul_(-1).add_(torch.randn_like(net.conv.scores[0]))  # as a step: in place
    assert same(appr.evaluation_masks(0), 0) and not torch.equal(appr.evaluation_masks(0)['conv'], masks['conv'])
    masks = appr.evaluation_masks(0)
    state = {k: (torch.randn_like(v) if 'scores' in k else v) for k, v in net.state_dict().items()}
    net.load_state_dict(state)  # a checkpoint: copied in place
    assert same(appr.evaluation_masks(0), 0) and appr.evaluation_masks(0) is not masks
    x = torch.randn(4, 2, 6, 6)
    net.eval()
    with torch.no_grad():
        evaluated = appr.forward(0, x, training=False)[0][0]
        trained = net(0, x, {name: supsup_mask(layer.scores[0], appr.density[name]) for name, layer in appr.layers})
    assert torch.equal(evaluated, trained[0])
