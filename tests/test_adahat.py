"""AdaHAT's mechanics pinned by hand-computed values: the adjustment rate of Eq. 9 on a tiny HAT network, the
min over a weight's two units, rate 1 where no earlier task went, HAT as its `hat` mode (bitwise) and as its limit
alpha -> 0, the importance summed over tasks, the authors' schedule of s and the binary masks."""
import pytest
import torch

from approaches import adahat, hat
from networks import alexnet_hat, mlp_hat
from plumbing import utils
import run
from fixtures import make_appr, two_task_data

ALPHA, EPS = 1e-6, 0.1


def tiny(**settings):
    """AdaHAT on an MLP of 4 inputs and two gated layers of 12 units, three tasks."""
    net = mlp_hat.Net([1, 2, 2], [(0, 2), (1, 2), (2, 2)], nhid=12)
    return make_appr(adahat.Appr, net, **settings), net


def learned(appr, net, used: list[list[int]]):
    """Pretend task 0 was learned with the units `used[l]` of layer l on (the others off); returns the importance."""
    with torch.no_grad():
        for emb, units in zip(net.embeddings(), used):
            emb.weight[0] = -1.0
            emb.weight[0, units] = 1.0
    appr.post_train(0, None)
    return appr.importance


def set_gates(appr, net, t: int, on: list[list[int]]) -> None:
    """Task t's gates at s = 1: exactly 1 on the units on[l], exactly 0 elsewhere (sigmoid(+-200) in float32)."""
    appr.set_temperature(1.0)
    with torch.no_grad():
        for emb, units in zip(net.embeddings(), on):
            emb.weight[t] = -200.0
            emb.weight[t, units] = 200.0


def adjusted(appr, net, t: int) -> dict[str, torch.Tensor]:
    """The gradients of all ones after the adjustment of task t."""
    for p in net.parameters():
        p.grad = torch.ones_like(p)
    appr.adjust_gradients(t)
    return {n: p.grad for n, p in net.named_parameters()}


def test_defaults_are_the_authors():
    appr, _ = tiny()
    hp = appr.hp
    assert (hp.alpha, hp.epsilon, hp.lamb, hp.smax, hp.thres_cosh, hp.thres_emb) == (1e-6, 0.1, 0.1, 400, 50, None)
    assert (hp.adjustment, hp.sparsity, hp.stored_mask, hp.anneal) == ('adahat', 'arena', 'binary', 'authors')
    args, *_ = run.parse_args(['--experiment', 'pmnist', '--approach', 'adahat'])
    assert (args.optimizer, args.lr, args.lr_schedule, args.keep, args.nepochs, args.batch_size) == \
        ('adam', 1e-3, 'constant', 'last', 2, 128)
    assert args.clipgrad == 1e30 and args.thres_emb is None
    args, *_ = run.parse_args(['--experiment', 'split_cifar100', '--approach', 'adahat', '--ntasks', '20'])
    assert (args.nepochs, args.batch_size, args.ntasks) == (20, 64, 20)
    args, *_ = run.parse_args(['--experiment', 'pmnist', '--approach', 'adahat', '--protocol', 'original'])
    assert (args.optimizer, args.lr, args.nepochs, args.clipgrad) == ('sgd', 0.05, 200, 10000)


def test_rate_is_eq9_on_hand_computed_values():
    appr, net = tiny(alpha=ALPHA, epsilon=EPS)
    # Earlier tasks: layer 1's units 0, 1 used (10 free: sparsity counts 0), layer 2's unit 2 (11 free)
    learned(appr, net, [[0, 1], [2]])
    with torch.no_grad():  # a second learned task on unit 0 of layer 1 and unit 2 of layer 2
        appr.importance = [torch.tensor([[2.0, 1] + [0] * 10]), torch.tensor([[0, 0, 3.0] + [0] * 9])]
        appr.importance_w = appr.importance_views()
    # The current task's gates: layer 1 units 0-5; layer 2 units 0-3, of which 0, 1, 3 are free: sparsity 3 / 11
    set_gates(appr, net, 1, [list(range(6)), [0, 1, 2, 3]])
    sparsity = appr.layer_sparsity(1)
    assert sparsity[0].item() == 0 and sparsity[1].item() == pytest.approx(3 / 11, rel=1e-6)
    r1, r2 = ALPHA / EPS, ALPHA / (EPS + 3 / 11)
    g = adjusted(appr, net, 1)
    s1, s2 = [2, 1] + [0] * 10, [0, 0, 3] + [0] * 9
    expected_fc1 = torch.tensor([[r1 / (s1[i] + r1)] * 4 for i in range(12)])  # first layer: the output unit's
    expected_fc2 = torch.tensor([[r2 / (min(s2[i], s1[j]) + r2) for j in range(12)] for i in range(12)])
    assert torch.allclose(g['fc1.weight'], expected_fc1, rtol=1e-6, atol=0)
    assert torch.allclose(g['fc2.weight'], expected_fc2, rtol=1e-6, atol=0)
    assert torch.allclose(g['fc1.bias'], torch.tensor([r1 / (s + r1) for s in s1]), rtol=1e-6, atol=0)
    assert torch.allclose(g['fc2.bias'], torch.tensor([r2 / (s + r2) for s in s2]), rtol=1e-6, atol=0)
    assert g['fc2.weight'][2, 0].item() == pytest.approx(r2 / (2 + r2), rel=1e-6)  # min(3, 2)
    assert g['fc2.weight'][2, 1].item() == pytest.approx(r2 / (1 + r2), rel=1e-6)  # min(3, 1)
    # Rate exactly 1 wherever either unit is one no earlier task used; heads and gates untouched
    assert g['fc2.weight'][2, 2] == 1 and g['fc2.weight'][0, 0] == 1 and g['fc1.weight'][5].eq(1).all()
    assert all(g[n].eq(1).all() for n in g if n.startswith('last') or n.startswith('efc'))


def test_ablations_and_legacy_sparsity():
    for mode, sparsity in (('adahat_no_reg', 'arena'), ('adahat_no_sum', 'arena'), ('adahat', 'legacy')):
        appr, net = tiny(adjustment=mode, sparsity=sparsity)
        learned(appr, net, [[0, 1], [2]])
        set_gates(appr, net, 1, [list(range(6)), [0, 1, 2, 3]])
        g = adjusted(appr, net, 1)
        if mode == 'adahat_no_reg':  # sparsity 0: r = alpha / epsilon on every layer
            r = ALPHA / EPS
            assert g['fc2.bias'][2].item() == pytest.approx(r / (1 + r), rel=1e-6)
        elif mode == 'adahat_no_sum':  # the 1-based task number instead of the importance, on every parameter
            r = ALPHA / (EPS + 3 / 11)
            assert torch.allclose(g['fc2.weight'], torch.full((12, 12), r / (2 + r)), rtol=1e-6, atol=0)
            assert g['fc1.weight'].eq(g['fc1.weight'][0, 0]).all()
            assert adjusted(appr, net, 0)['fc1.bias'][0].item() == pytest.approx(ALPHA / EPS / (1 + ALPHA / EPS))
        else:  # LG: the mean of the free units' share and 1 - the used units' share (1 with at most 10 used)
            assert appr.layer_sparsity(1)[1].item() == pytest.approx(0.5 * (3 / 11 + 1), rel=1e-6)
            r = ALPHA / (EPS + 0.5 * (3 / 11 + 1))
            assert g['fc2.bias'][2].item() == pytest.approx(r / (1 + r), rel=1e-6)


def test_first_task_is_not_adjusted():
    appr, net = tiny()
    set_gates(appr, net, 0, [[0], [1]])
    assert all(g.eq(1).all() for g in adjusted(appr, net, 0).values())


def test_importance_is_the_min_over_units_on_convolutions():
    net = alexnet_hat.Net([3, 32, 32], [(0, 2), (1, 2)])
    appr = make_appr(adahat.Appr, net)
    with torch.no_grad():
        for emb in net.embeddings():
            emb.weight.copy_(torch.randn_like(emb.weight))
    appr.post_train(0, None)
    appr.post_train(1, None)
    s = {layer: appr.importance[i].view(-1) for i, layer in enumerate(net.gated)}
    w = appr.importance_w
    assert torch.equal(w['c2.weight'], torch.minimum(s['c2'].view(-1, 1, 1, 1), s['c1'].view(1, -1, 1, 1))
                       .expand_as(net.c2.weight))
    assert torch.equal(w['c1.weight'], s['c1'].view(-1, 1, 1, 1).expand_as(net.c1.weight))  # reads the image
    side = net.fc1.weight.size(1) // s['c3'].numel()  # conv -> linear: each channel over its positions
    assert torch.equal(w['fc1.weight'], torch.minimum(s['fc1'].view(-1, 1), s['c3'].repeat_interleave(side)))
    assert torch.equal(w['fc2.bias'], s['fc2']) and 'last.0.weight' not in w


def test_importance_sums_the_binary_masks_of_the_tasks():
    appr, net = tiny()
    expected = [torch.zeros(1, 12), torch.zeros(1, 12)]
    for t in range(3):
        with torch.no_grad():
            for emb in net.embeddings():
                emb.weight[t] = torch.randn(12)
                emb.weight[t, 0] = 1.0  # unit 0 is in every task's mask: its importance reaches 3
        appr.post_train(t, None)
        expected = [e + (emb.weight[t:t + 1] > 0).float() for e, emb in zip(expected, net.embeddings())]
        assert all(torch.equal(a, b) for a, b in zip(appr.importance, expected))
        assert all(torch.equal(a, (b > 0).float()) for a, b in zip(appr.mask_pre, expected))  # a_pre: their union
        assert appr.tasks_learned == t + 1
    assert max(e.max().item() for e in expected) == 3
    soft, net = tiny(stored_mask='soft')  # LG: sigmoid(smax e), as the original HAT
    soft.post_train(0, None)
    assert torch.equal(soft.importance[0], net.mask(0, s=400)[0])


def test_regulariser_is_hats_until_at_most_10_units_are_free():
    appr, net = tiny()
    masks = [torch.rand(1, 12, requires_grad=True), torch.rand(1, 12, requires_grad=True)]
    plain = make_appr(hat.Appr, net)
    assert torch.equal(appr.regulariser(masks), plain.regulariser(masks))  # first task: sum(a) / units
    for used, expected_zero in ((13, False), (14, True), (24, True)):  # 24 units: 11, 10, 0 free
        appr.mask_pre = plain.mask_pre = [torch.ones(1, 12), torch.zeros(1, 12)]
        appr.mask_pre[1][0, :used - 12] = 1
        reg = appr.regulariser(masks)
        if expected_zero:
            assert reg.item() == 0
        else:
            assert torch.equal(reg, plain.regulariser(masks))
        reg.backward()
        assert all(torch.isfinite(m.grad).all() for m in masks)  # no 0 / 0, even with no unit free


def test_alpha_to_zero_gives_hats_binary_multiplier():
    """With binary masks, rate -> 0 on the weights whose two units earlier tasks used and = 1 elsewhere: HAT's
    1 - min(a_pre), to within alpha / epsilon (the largest r, for importance >= 1: rate <= r / (1 + r) < r)."""
    for alpha in (1e-6, 1e-12, 1e-30):
        appr, net = tiny(alpha=alpha)
        learned(appr, net, [[0, 1, 5], [2, 3]])
        set_gates(appr, net, 1, [list(range(6)), [0, 1, 2, 3]])
        g = adjusted(appr, net, 1)
        for name, multiplier in appr.mask_back.items():
            assert (g[name] - multiplier).abs().max().item() <= alpha / EPS * (1 + 1e-6), name  # float32's r
            assert torch.equal(g[name][multiplier == 1], multiplier[multiplier == 1])


def test_hat_modes_multipliers():
    appr, net = tiny(adjustment='hat', alpha=0.25)
    learned(appr, net, [[0, 1], [2]])
    g = adjusted(appr, net, 1)
    assert all(torch.equal(g[name], m) for name, m in appr.mask_back.items())
    appr.hp.adjustment = 'hat_const_alpha'
    g = adjusted(appr, net, 1)
    assert all(torch.equal(g[name], 0.25 * (1 - m) + m) for name, m in appr.mask_back.items())
    appr.hp.adjustment = 'hat_random'
    g = adjusted(appr, net, 1)
    assert torch.equal(g['fc2.weight'][0], torch.ones(12)) and 0 < g['fc2.weight'][2, 0] < 1


def test_hat_mode_is_hat_bitwise():
    """adjustment hat with HAT's other settings: the same weights as the original HAT after two tasks."""
    hat_settings = dict(lamb=0.75, thres_emb=6.0, stored_mask='soft', anneal='hat', adjustment='hat')
    data = two_task_data(n=48)
    weights = []
    for cls, settings in ((hat.Appr, {}), (adahat.Appr, hat_settings)):
        utils.seed_everything(0)
        net = mlp_hat.Net([1, 28, 28], [(0, 3), (1, 3)], nhid=64)
        appr = make_appr(cls, net, nepochs=2, **settings)
        for t in range(2):
            appr.train(t, data)
        weights.append(utils.get_model(net))
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_authors_schedule_of_s():
    appr, _ = tiny(batch_size=8)
    smax = 400
    for (i, n), expected in (((0, 32), 1 / smax - (smax - 1 / smax) / 3), ((8, 32), 1 / smax),
                             ((24, 32), 1 / smax + (smax - 1 / smax) * 2 / 3), ((0, 8), 1 / smax)):
        appr.pre_batch((i, n))
        assert appr.s == pytest.approx(expected, rel=1e-12)
    assert appr.s_train.item() == pytest.approx(1 / smax)
    appr, _ = tiny(batch_size=8, smax=2.0)  # 1/2 - 1.5 / 3 = 0: refused in one line
    with pytest.raises(utils.UserError, match='s = 0'):
        appr.pre_batch((0, 32))


def test_learned_tasks_are_tested_through_binary_masks():
    appr, net = tiny()
    with torch.no_grad():
        net.efc1.weight[0] = torch.linspace(-0.01, 0.01, 12)
    appr.post_train(0, None)
    x = torch.randn(3, 1, 2, 2)
    _, extras = appr.forward(0, x, training=False)
    assert torch.equal(extras['masks'][0], (net.efc1.weight[:1] > 0).float())
    _, extras = appr.forward(1, x, training=False)  # not learned yet: validated at smax, soft
    assert torch.equal(extras['masks'][0], torch.sigmoid(400 * net.efc1.weight[1:2]))


def test_no_embedding_clamp_by_default():
    appr, net = tiny()
    with torch.no_grad():
        net.efc1.weight[0, 0] = 9.0
    appr.post_step(0)
    assert net.efc1.weight[0, 0].item() == 9.0
    appr, net = tiny(thres_emb=6.0)
    with torch.no_grad():
        net.efc1.weight[0, 0] = 9.0
    appr.post_step(0)
    assert net.efc1.weight[0, 0].item() == 6.0
