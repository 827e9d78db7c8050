"""The shared loop's training options beside the original's (optimizer, momentum, weight decay, schedule, what a drop of
the learning rate rebuilds, which weights a task keeps), an approach's own defaults for them by experiment, and old
results, saved before these options existed, counting as made with the original's values."""
import argparse
import math

import numpy as np
import pytest
import torch

from approaches import sgd
from approaches._base import Loop
from plumbing import checkpoints
import run
from fixtures import make_appr, make_tasks, small_mlp


class ScriptedValidation(sgd.Appr):
    """sgd whose validation losses are given per epoch (so that the test decides when it improves)."""

    valid_losses: list[float]
    optimizers: list  # the optimizer each epoch trained with

    def evaluate(self, task, x, y):
        result = super().evaluate(task, x, y)
        if x.size(0) == self.valid_size:
            self.optimizers.append(self.optimizer)
            result['loss'] = self.valid_losses.pop(0)
        return result

    def fit(self, t, train, valid):
        self.valid_size = valid[0].size(0)
        return super().fit(t, train, valid)


def scripted(valid_losses: list[float], **settings) -> ScriptedValidation:
    appr = make_appr(ScriptedValidation, small_mlp(), **settings)
    appr.valid_losses, appr.optimizers = list(valid_losses), []
    return appr


def fit(appr, data, t=0):
    train, valid = appr.training_sets(t, data)
    # a validation set of another size than the training set, so that ScriptedValidation tells them apart
    valid = (valid[0][:-1], valid[1][:-1], valid[2])
    return appr.fit(t, train, valid)


@pytest.fixture
def data():
    torch.manual_seed(0)
    return make_tasks((1, 28, 28), ntasks=2, n=24)


def lrs_logged(appr) -> list[float]:
    return [record['lr'] for record in appr.log.records]


class Records:
    """An EpochLog that keeps its records."""

    def __init__(self):
        self.records = []

    def write(self, **record):
        self.records.append(record)


def test_default_optimizer_is_the_originals_plain_sgd(data):
    appr = make_appr(sgd.Appr, small_mlp())
    opt = appr.make_optimizer(0.05)
    assert type(opt) is torch.optim.SGD
    assert opt.defaults['momentum'] == 0 and opt.defaults['weight_decay'] == 0 and not opt.defaults['nesterov']


@pytest.mark.parametrize('settings,cls,expected', [
    ({'optimizer': 'adam', 'weight_decay': 1e-4}, torch.optim.Adam, {'weight_decay': 1e-4, 'lr': 0.01}),
    ({'momentum': 0.9, 'weight_decay': 5e-4}, torch.optim.SGD, {'momentum': 0.9, 'weight_decay': 5e-4, 'lr': 0.01})])
def test_optimizer_options(settings, cls, expected):
    net = small_mlp()
    net.last[1].weight.requires_grad_(False)
    opt = make_appr(sgd.Appr, net, **settings).make_optimizer(0.01)
    assert type(opt) is cls and {k: opt.defaults[k] for k in expected} == expected
    # the trainable parameters only, as the original's SGD
    assert sum(p.numel() for g in opt.param_groups for p in g['params']) == sum(
        p.numel() for p in net.parameters() if p.requires_grad)


def test_cosine_schedule_is_torchs_cosine_annealing(data):
    appr = make_appr(sgd.Appr, small_mlp(), nepochs=5, lr=0.1, lr_schedule='cosine')
    appr.log = Records()
    fit(appr, data)
    dummy = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(dummy, T_max=5)
    expected = []
    for _ in range(5):
        expected.append(scheduler.get_last_lr()[0])
        dummy.step()
        scheduler.step()
    np.testing.assert_allclose(lrs_logged(appr), expected, rtol=1e-12, atol=1e-15)
    assert appr.optimizer.param_groups[0]['lr'] == pytest.approx(0.1 * (1 + math.cos(math.pi)) / 2, abs=1e-15)


@pytest.mark.parametrize('on_drop', ['new', 'kept'])
def test_a_plateaus_drop_rebuilds_or_keeps_the_optimizer(data, on_drop):
    # validation: better, worse (patience 1: drop), worse (drop)
    appr = scripted([1.0, 2.0, 3.0], nepochs=3, lr=0.1, lr_patience=1, lr_factor=10, optimizer='adam',
                    optimizer_on_drop=on_drop)
    fit(appr, data)
    first, second, third = appr.optimizers  # what each epoch trained with; the drops follow epochs 2 and 3
    assert [g['lr'] for g in appr.optimizer.param_groups] == [pytest.approx(0.1 / 100)]
    if on_drop == 'new':
        assert first is second and len({id(second), id(third), id(appr.optimizer)}) == 3
        assert not appr.optimizer.state  # a new Adam: its moments start at zero
    else:
        assert first is second is third is appr.optimizer and appr.optimizer.state  # Adam's moments carried on


@pytest.mark.parametrize('keep', ['best', 'last'])
def test_a_task_keeps_the_best_or_the_last_weights(data, keep):
    appr = scripted([1.0, 2.0, 3.0], nepochs=3, lr=0.1, keep=keep, lr_schedule='constant')
    after_epoch = []
    appr.post_epoch = lambda t, e, on_train, on_valid: after_epoch.append(
        {k: v.clone() for k, v in appr.model.state_dict().items()})
    fit(appr, data)
    kept = after_epoch[0 if keep == 'best' else -1]
    assert all(torch.equal(v, kept[k]) for k, v in appr.model.state_dict().items())
    assert not all(torch.equal(v, after_epoch[0][k]) for k, v in after_epoch[-1].items())


def test_constant_schedule_never_drops_nor_stops(data):
    appr = scripted([1.0, 2.0, 3.0, 4.0], nepochs=4, lr=0.1, lr_patience=1, lr_min=0.05, lr_schedule='constant')
    appr.log = Records()
    fit(appr, data)
    assert lrs_logged(appr) == [0.1] * 4


def args_of(*argv) -> argparse.Namespace:
    return run.parse_args(['--approach', 'sgd', *argv])[0]


def test_an_approachs_loop_defaults_by_experiment(monkeypatch):
    monkeypatch.setattr(sgd.Appr, 'loop_defaults', {'*': {'lr': 0.01, 'optimizer': 'adam'},
                                                    'pmnist': {'nepochs': 5, 'batch_size': 10, 'optimizer': 'sgd'}})
    assert sgd.Appr.loop_defaults_for('pmnist') == {'lr': 0.01, 'optimizer': 'sgd', 'nepochs': 5, 'batch_size': 10}
    args = args_of('--experiment', 'mnist2')
    assert (args.lr, args.optimizer, args.nepochs, args.batch_size) == (0.01, 'adam', 200, 64)
    args = args_of('--experiment', 'pmnist')
    assert (args.lr, args.optimizer, args.nepochs, args.batch_size) == (0.01, 'sgd', 5, 10)
    args = args_of('--experiment', 'pmnist', '--lr', '0.2', '--optimizer', 'adam', '--nepochs', '3')
    assert (args.lr, args.optimizer, args.nepochs) == (0.2, 'adam', 3)
    args = args_of('--experiment', 'pmnist', '--protocol', 'original')  # every approach under one protocol
    assert (args.lr, args.optimizer, args.nepochs, args.batch_size) == (0.05, 'sgd', 200, 64)


def test_the_originals_loop_by_default():
    args = args_of('--experiment', 'mnist2')
    loop = Loop()
    assert all(getattr(args, name) == getattr(loop, name) for name in ('optimizer', 'momentum', 'weight_decay',
                                                                       'lr_schedule', 'optimizer_on_drop', 'keep'))


def test_results_saved_before_the_options_are_the_originals_settings():
    args = args_of('--experiment', 'mnist2')
    assert 'protocol' not in checkpoints.config(args)  # the loop's flags hold what it chose
    saved = {k: v for k, v in checkpoints.plain_args(args).items() if k not in checkpoints.ADDED}
    assert checkpoints.differences(checkpoints.config_of(saved), checkpoints.config(args)) == []
    args.optimizer = 'adam'
    assert checkpoints.differences(checkpoints.config_of(saved), checkpoints.config(args)) == ['--optimizer']
