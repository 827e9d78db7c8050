"""PackNet's mechanics pinned by hand: the authors' threshold and its ties, the owners after each task, the earlier
tasks' weights and outputs bitwise untouched by the later tasks, the test of a task with only its and the earlier
tasks' weights, the capacity, the schedule. On a tiny network of the kinds of layer the real ones have (a
convolution with bias and batch norm, a linear layer with bias, one head per task)."""
import json
import math

import pytest
import torch
import torch.nn.functional as F

from approaches import packnet
from approaches._base import Context, Loop
from plumbing import logs
from plumbing.utils import UserError
from fixtures import make_appr, make_tasks, small_mlp

SHAPE = (2, 6, 6)


class TinyConvNet(torch.nn.Module):
    """conv (3x3, stride 2, padding 1, bias) -> batch norm -> ReLU -> fc (bias) -> ReLU -> one head per task."""

    def __init__(self, ntasks: int = 3):
        super().__init__()
        self.taskcla = [(t, 3) for t in range(ntasks)]
        self.conv = torch.nn.Conv2d(2, 4, 3, stride=2, padding=1)
        self.bn = torch.nn.BatchNorm2d(4)
        self.fc = torch.nn.Linear(4 * 3 * 3, 8)
        self.last = torch.nn.ModuleList(torch.nn.Linear(8, 3) for _ in self.taskcla)

    def forward(self, x):
        h = F.relu(self.bn(self.conv(x))).flatten(1)  # (B, 36)
        h = F.relu(self.fc(h))
        return [head(h) for head in self.last]


def make_packnet(net, **settings):
    return make_appr(packnet.Appr, net, **{'nepochs': 2, 'lr': 0.05, 'momentum': 0.9, 'post_prune_lr': 0.01,
                                           **settings})


def learned(ntasks: int = 3, **settings):
    """The tiny network after each of ntasks tasks: the approach, the data, and the state after each task."""
    torch.manual_seed(0)
    appr = make_packnet(TinyConvNet(ntasks), **settings)
    data = make_tasks(SHAPE, ntasks, n=24)
    states = []
    for t in range(ntasks):
        appr.train(t, data)
        states.append({'model': {k: v.clone() for k, v in appr.model.state_dict().items()},
                       'masks': {k: m.clone() for k, m in appr.masks.items()}, 'capacity': appr.capacity(t)})
    return appr, data, states


@pytest.fixture(scope='module')
def three_tasks():
    return learned(3, prune=(0.5, 0.75))


def test_cutoff_and_ties():
    w = torch.tensor([0.1, -0.2, 0.2, 0.3, 0.0, 0.0, 0.4, -0.5, 0.01, -0.02])
    mask = torch.tensor([1, 1, 1, 1, 1, 1, 1, 1, 2, 2], dtype=torch.uint8)  # the last two: another task's
    # Task 1's eight magnitudes sorted: 0 0 .1 .2 .2 .3 .4 .5; k = round(0.5 * 8) = 4: the cutoff is .2, and |w| <= .2
    # takes five (the tie at .2 and both zeros), none of task 2's smaller ones
    assert packnet.cutoff(w[mask == 1].abs(), 0.5) == pytest.approx(0.2)
    assert packnet.prune_layer(w, mask, 1, 0.5) == 5
    assert mask.tolist() == [0, 0, 0, 1, 0, 0, 1, 1, 2, 2]
    assert w.tolist() == pytest.approx([0, 0, 0, 0.3, 0, 0, 0.4, -0.5, 0.01, -0.02])
    # round() halves to even, as theirs under Python 3: 0.5 * 9 -> 4, 0.5 * 5 -> 2; k = 0 prunes nothing
    values = torch.arange(1, 10, dtype=torch.float32)
    assert packnet.cutoff(values, 0.5) == 4 and packnet.cutoff(values[:5], 0.5) == 2
    assert packnet.cutoff(values[:1], 0.4) is None
    w, mask = torch.tensor([0.5, -0.25]), torch.ones(2, dtype=torch.uint8)
    assert packnet.prune_layer(w, mask, 1, 0.2) == 0 and mask.tolist() == [1, 1] and w.tolist() == [0.5, -0.25]


def test_owners_after_two_tasks():
    appr, _, states = learned(2, prune=(0.5,))
    for name, layer in appr.layers:
        after0, after1 = states[0]['masks'][name], states[1]['masks'][name]
        n = after0.numel()
        # Task 0 owned every weight and kept the larger half (no ties among trained weights); the last task, not
        # pruned, took every free one
        assert set(after0.unique().tolist()) == {0, 1} and int((after0 == 1).sum()) == n - round(0.5 * n)
        assert torch.equal(after1, torch.where(after0 == 0, 2, after0).to(torch.uint8))
        assert torch.all(states[0]['model'][name + '.weight'][after0 == 0] == 0)  # freed weights are 0
    appr, _, states = learned(2, prune=(0.5,), prune_last=True)
    for name, _ in appr.layers:
        assert set(states[1]['masks'][name].unique().tolist()) == {0, 1, 2}


def test_fixed_weights_and_outputs_untouched_by_later_tasks(three_tasks):
    appr, data, states = three_tasks
    first, last = states[0]['model'], states[2]['model']
    for name, _ in appr.layers:
        kept = states[0]['masks'][name] == 1
        assert torch.equal(first[name + '.weight'][kept], last[name + '.weight'][kept])
        assert torch.any(first[name + '.weight'] != last[name + '.weight'])  # the later tasks did learn
    # Biases, batch norm (running statistics too) and the first task's head: bitwise the first task's
    for key in ('conv.bias', 'fc.bias', 'bn.weight', 'bn.bias', 'bn.running_mean', 'bn.running_var', 'last.0.weight',
                'last.0.bias'):
        assert torch.equal(first[key], last[key]), key
    assert all(not p.requires_grad for p in appr.fixed)
    # Task 0 and task 1's outputs, tested after the later tasks, are bitwise those right after their own training
    for t in (0, 1):
        x = data[t]['test']['x']
        now = outputs_of(appr, t, x)
        appr.model.load_state_dict(states[t]['model'])
        then = outputs_of(appr, t, x, states[t]['masks'])
        appr.model.load_state_dict(last)
        assert torch.equal(now, then)


def outputs_of(appr, t: int, x: torch.Tensor, masks: dict | None = None) -> torch.Tensor:
    """Task t's logits as its test computes them (with masks as the owners, if given)."""
    saved = appr.masks
    appr.masks = masks or saved
    try:
        with appr.only_tasks_to(t), torch.no_grad():
            appr.model.eval()
            return appr.model(x)[t]
    finally:
        appr.masks = saved


def test_test_uses_only_earlier_tasks_and_restores_the_weights(three_tasks):
    appr, data, states = three_tasks
    before = {k: v.clone() for k, v in appr.model.state_dict().items()}
    seen = {}

    def look(module, inputs):
        seen[module] = module.weight.detach().clone()
    handles = [layer.register_forward_pre_hook(look) for _, layer in appr.layers]
    try:
        appr.test(0, data[0]['test']['x'], data[0]['test']['y'])
    finally:
        for handle in handles:
            handle.remove()
    for name, layer in appr.layers:
        mask = appr.masks[name]
        assert torch.all(seen[layer][mask != 1] == 0) and torch.equal(seen[layer][mask == 1],
                                                                       before[name + '.weight'][mask == 1])
    after = appr.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_capacity(three_tasks):
    appr, _, states = three_tasks
    sizes = [layer.weight.numel() for _, layer in appr.layers]
    total = sum(sizes)
    kept0 = sum(n - round(0.5 * n) for n in sizes)  # task 0 pruned by 0.5, no ties among trained weights
    kept1 = sum(n - round(0.5 * n) - round(0.75 * (n - (n - round(0.5 * n)))) for n in sizes)
    first, second, third = (state['capacity'] for state in states)
    assert first == {'task': 0, 'of': 'weights', 'total': total, 'per_task': [kept0 / total], 'used': kept0 / total,
                     'free': 1 - kept0 / total}
    assert second['per_task'] == pytest.approx([kept0 / total, kept1 / total])
    assert second['used'] == pytest.approx((kept0 + kept1) / total)
    assert third['per_task'][2] == pytest.approx(1 - (kept0 + kept1) / total) and third['free'] == 0


def test_schedule_and_phases(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / 'log.jsonl'
    log = logs.EpochLog(path)
    appr = packnet.Appr(small_mlp(2), packnet.Appr.Hyper(lr_decay_every=2, post_prune_lr=0.01),
                        Loop(nepochs=3, lr=0.1, batch_size=8, momentum=0.9, lr_schedule='constant'),
                        Context(log=log))
    appr.train(0, make_tasks((1, 28, 28), 1, n=16))
    log.close()
    records = [json.loads(line) for line in path.read_text().splitlines()]
    # 0.1 for two epochs, a tenth for the third; then ceil(3 / 2) = 2 epochs of retraining at the post-prune rate
    assert [(r['phase'], r['epoch'], r['lr']) for r in records] == [
        ('train', 1, 0.1), ('train', 2, 0.1), ('train', 3, pytest.approx(0.01)), ('retrain', 1, 0.01),
        ('retrain', 2, 0.01)]
    assert appr.prune_fraction(0) == 0.75 and appr.prune_fraction(1) == 0  # the last task is not pruned


def test_defaults_and_refusals():
    assert packnet.Appr.Hyper().prune == (0.75,) and packnet.Appr.Hyper().post_prune_lr == 1e-4
    assert packnet.Appr.loop_defaults_for('cifar') == {'lr': 1e-3, 'nepochs': 20, 'batch_size': 32, 'momentum': 0.9,
                                                       'lr_schedule': 'constant'}
    Loop(**packnet.Appr.loop_defaults_for('cifar'))
    assert packnet._fractions('0.5,0.75') == (0.5, 0.75)
    with pytest.raises(UserError, match='--weight-decay 0'):
        make_packnet(small_mlp(), weight_decay=1e-4)
    with pytest.raises(UserError, match='3 fractions for 2 tasks'):
        make_packnet(small_mlp(), prune=(0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match=r'prune must be in \[0, 1\)'):
        make_packnet(small_mlp(), prune=(1.0,))
    assert math.isclose(make_packnet(small_mlp(3), prune=(0.5, 0.6)).prune_fraction(1), 0.6)
