"""LFL's mechanics: the feature penalty by hand, its targets from a frozen copy, its networks, the original's
defaults."""
import pytest
import torch

from approaches import lfl
from networks import alexnet, alexnet_lfl, mlp, mlp_lfl
import run
from fixtures import make_appr


def make_lfl(net, **settings):
    return make_appr(lfl.Appr, net, **settings)


def test_defaults_are_the_originals():
    appr = lfl.Appr(mlp_lfl.Net([1, 28, 28], [(0, 2)]))
    assert (appr.hp.lamb, appr.loop.clipgrad) == (0.05, 200)
    assert (appr.loop.lr_min, appr.loop.lr_factor, appr.loop.lr_patience) == (1e-4, 3, 5)
    assert lfl.Appr.parameter_names == ('lamb',)  # the original's lfl.py ignored --parameter
    assert lfl.Appr.network_variant == 'lfl'


@pytest.mark.parametrize('experiment,network', [('mnist2', 'mlp_lfl'), ('pmnist', 'mlp_lfl'), ('cifar', 'alexnet_lfl')])
def test_run_picks_the_lfl_networks(experiment, network):
    args = run.parse_args(['--experiment', experiment, '--approach', 'lfl'])[0]
    assert args.network == network


def test_feature_penalty_matches_hand_computed():
    new = torch.tensor([[1.0, 0.0, 2.0], [0.5, 3.0, 0.0]])
    old = torch.tensor([[0.0, 0.0, 1.5], [1.0, 1.0, 0.0]])
    # (1 + 0 + 0.25 + 0.25 + 4 + 0) / 2: summed over the batch and the units, halved
    assert lfl.feature_penalty(new, old).item() == pytest.approx(5.5 / 2)
    assert lfl.feature_penalty(old, old).item() == 0


@pytest.mark.parametrize('module,plain,inputsize', [(mlp_lfl, mlp, [1, 28, 28]), (alexnet_lfl, alexnet, [3, 32, 32])])
def test_lfl_networks_are_the_plain_ones_without_dropout_on_the_last_hidden_layer(module, plain, inputsize):
    taskcla = [(0, 2), (1, 5)]
    net, ref = module.Net(inputsize, taskcla), plain.Net(inputsize, taskcla)
    assert {k: v.shape for k, v in net.state_dict().items()} == {k: v.shape for k, v in ref.state_dict().items()}
    ref.load_state_dict(net.state_dict())
    x = torch.randn(3, *inputsize)
    outputs, h = net.eval()(x)
    assert torch.equal(h, ref.eval().features(x))
    assert all(torch.equal(a, b) for a, b in zip(outputs, ref(x)))
    # A last hidden layer that outputs its bias whatever its input: not dropped out in training, and what heads see
    last = net.fc2
    with torch.no_grad():
        last.weight.zero_()
        last.bias.fill_(0.5)
    outputs, h = net.train()(x)
    assert torch.equal(h, torch.full((3, last.bias.numel()), 0.5))
    assert all(torch.equal(o, head(h)) for o, head in zip(outputs, net.last))


def test_penalty_zero_when_features_equal_the_old_models():
    net = mlp_lfl.Net([1, 28, 28], [(0, 3), (1, 3)])
    appr = make_lfl(net)
    appr.post_train(0, None)
    x, y = torch.randn(4, 1, 28, 28), torch.tensor([0, 1, 2, 0])
    net.eval()
    outputs, extras = appr.forward(1, x, training=False)
    assert torch.equal(extras['features'], extras['features_old'])
    loss, terms = appr.criterion(1, outputs, y, extras)
    assert torch.equal(loss, torch.nn.functional.cross_entropy(outputs[1], y))
    assert terms['penalty'].item() == 0


def test_criterion_adds_lamb_times_hand_computed_penalty():
    net = mlp_lfl.Net([1, 28, 28], [(0, 3), (1, 3)], nhid=4)
    appr = make_lfl(net, lamb=0.05)
    appr.post_train(0, None)
    with torch.no_grad():
        net.fc2.bias.add_(torch.tensor([0.5, -0.25, 1.0, 0.0]))
    net.eval()
    x, y = torch.randn(2, 1, 28, 28), torch.tensor([2, 1])
    outputs, extras = appr.forward(1, x, training=False)
    new, old = extras['features'].tolist(), extras['features_old'].tolist()
    penalty = sum((a - b) ** 2 for rn, ro in zip(new, old) for a, b in zip(rn, ro)) / 2
    assert penalty > 0
    expected = torch.nn.functional.cross_entropy(outputs[1], y).item() + 0.05 * penalty
    assert appr.criterion(1, outputs, y, extras)[0].item() == pytest.approx(expected, rel=1e-5)  # float32 vs 64
