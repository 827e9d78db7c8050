"""What LwF and LFL share (approaches/_frozen.py): a plain cross-entropy on the first task, then terms computed from
a frozen copy of the network as the previous task left it."""
import pytest
import torch

from approaches import lfl, lwf
from networks import mlp, mlp_lfl
from plumbing import utils
from fixtures import make_appr, two_task_data

# (approach, network, what its forward reads from the copy: as the extras hold it, and from a network)
FROZEN = [(lwf.Appr, mlp.Net, lambda extras: extras['targets_old'][0], lambda net, x: net(x)[0]),
          (lfl.Appr, mlp_lfl.Net, lambda extras: extras['features_old'], lambda net, x: net.features(x))]


@pytest.mark.parametrize('appr_cls,net_cls,extra', [(lwf.Appr, mlp.Net, 'targets_old'),
                                                    (lfl.Appr, mlp_lfl.Net, 'features_old')])
def test_first_task_is_plain_cross_entropy(appr_cls, net_cls, extra):
    net = net_cls([1, 28, 28], [(0, 3), (1, 3)])
    appr = make_appr(appr_cls, net)
    x, y = torch.randn(4, 1, 28, 28), torch.tensor([0, 1, 2, 0])
    net.eval()
    outputs, extras = appr.forward(0, x, training=False)
    assert appr.model_old is None and extras[extra] is None
    loss, terms = appr.criterion(0, outputs, y, extras)
    assert torch.equal(loss, torch.nn.functional.cross_entropy(outputs[0], y))
    assert all(v.item() == 0 for v in terms.values())


@pytest.mark.parametrize('appr_cls,net_cls,from_extras,read', FROZEN)
def test_terms_come_from_a_frozen_copy(appr_cls, net_cls, from_extras, read):
    utils.seed_everything(0)
    data = two_task_data()
    net = net_cls([1, 28, 28], [(0, 3), (1, 3)])
    appr = make_appr(appr_cls, net, nepochs=2)
    appr.train(0, data)
    old = appr.model_old
    assert old is not net and not old.training
    assert all(not p.requires_grad for p in old.parameters())
    x = data[1]['train']['x']
    with torch.no_grad():
        before = read(old, x).clone()
        assert torch.equal(before, read(net.eval(), x))  # the copy is the network as task 0 left it
    appr.train(1, data)
    # Task 1 changed the network but not the copy it learned against (until post_train replaced it)
    assert appr.model_old is not old
    assert all(p.grad is None for p in old.parameters())
    with torch.no_grad():
        assert torch.equal(read(old, x), before)
        assert not torch.equal(read(net.eval(), x), before)
    # The copy is in eval mode: what it gives is deterministic while the network trains with dropout
    net.train()
    _, extras = appr.forward(1, x, training=True)
    assert torch.equal(from_extras(extras), read(appr.model_old, x))
