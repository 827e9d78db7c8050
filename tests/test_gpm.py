"""GPM's mechanics pinned by hand: the basis criteria on matrices of known singular values (the authors' update_GPM,
first and later tasks), the representation matrices (the authors' patch loops), the random draw, the projected
gradients and the zeroed ones, and what the projection keeps of an earlier task. On a tiny network of the kinds of
layer the real ones have (a strided, padded convolution with batch norm; a linear layer with bias; two heads)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import run
from approaches import gpm
from approaches._base import Loop
from networks import alexnet, alexnet_bn, mlp, resnet18_reduced
from plumbing.utils import UserError
from fixtures import make_appr, make_tasks, small_mlp

SHAPE = (2, 6, 6)


class TinyConvNet(torch.nn.Module):
    """conv (3x3, stride 2, padding 1) -> batch norm -> ReLU -> fc (with bias) -> ReLU -> one head per task."""

    def __init__(self):
        super().__init__()
        self.taskcla = [(0, 3), (1, 3)]
        self.conv = torch.nn.Conv2d(2, 4, 3, stride=2, padding=1, bias=False)
        self.bn = torch.nn.BatchNorm2d(4)  # with running statistics, which gpm drops
        self.fc = torch.nn.Linear(4 * 3 * 3, 8)
        self.last = torch.nn.ModuleList(torch.nn.Linear(8, 3) for _ in self.taskcla)

    def forward(self, x):
        h = F.relu(self.bn(self.conv(x))).flatten(1)  # (B, 36)
        h = F.relu(self.fc(h))
        return [head(h) for head in self.last]


def make_gpm(net, **settings):
    return make_appr(gpm.Appr, net, **{'threshold': (0.97,), 'samples': (32,), **settings})


def orthonormal(n: int, k: int, seed: int) -> np.ndarray:
    return np.linalg.qr(np.random.RandomState(seed).randn(n, k))[0]


def with_energies(energies: list[float], n: int = 6, m: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """R = A diag(sqrt(energies)) B^T, of total energy 1 where the energies sum to 1, and A: R's left singular
    vectors, in order."""
    A = orthonormal(n, len(energies), 0)
    return A @ np.diag(np.sqrt(energies)) @ orthonormal(m, len(energies), 1).T, A


def same_span(U: np.ndarray, A: np.ndarray) -> bool:
    """Whether U's columns are A's, each up to its sign (singular vectors have none of their own)."""
    return np.allclose(np.abs(U.T @ A), np.eye(A.shape[1]), atol=1e-10)


def test_defaults_are_the_authors_by_network():
    settle = lambda net_cls, **given: gpm.Appr.settle(gpm.Appr.Hyper(**given), net_cls)  # noqa: E731
    hp = settle(mlp.Net)
    assert (hp.threshold, hp.threshold_step, hp.samples) == ((0.95, 0.99), 0.0, (300,))  # main_pmnist.py:216, :124
    hp = settle(alexnet_bn.Net)
    assert (hp.threshold, hp.threshold_step, hp.samples) == ((0.97,), 0.003, (24, 100, 100, 125, 125))  # cifar100:297
    hp = settle(resnet18_reduced.Net)
    assert (hp.threshold, hp.threshold_step, hp.samples[:9], hp.samples[-7:]) == ((0.965,), 0.0, (10,) * 9, (100,) * 7)
    samples = hp.samples
    hp = settle(alexnet.Net)
    assert (hp.threshold, hp.threshold_step, hp.samples) == ((0.97,), 0.003, (125,))
    assert settle(alexnet_bn.Net, threshold=(0.9,)).threshold == (0.9,)  # a given value stays
    # The five_datasets counts, one per convolution: each 1x1 shortcut (after its block's conv2) reads as many
    # examples as its block's first convolution, whose input it reads
    names = [name for name, _ in gpm.shared_layers(resnet18_reduced.Net([3, 32, 32], [(0, 2)]))]
    assert len(names) == len(samples) == 20 and names[7] == 'layer2.0.shortcut.0'
    assert [samples[names.index(f'layer{i}.0.shortcut.0')] for i in (2, 3, 4)] == \
        [samples[names.index(f'layer{i}.0.conv1')] for i in (2, 3, 4)] == [10, 50, 100]
    assert gpm.Appr.network_variant is None and gpm.Appr.clipgrad >= 1e30 and gpm.Appr.parameter_names == ()
    assert gpm.Appr.loop_defaults_for('pmnist') == {'lr': 0.01, 'nepochs': 5, 'batch_size': 10, 'eval_batch_size': 64,
                                                    'lr_schedule': 'constant', 'keep': 'last'}
    for experiment in ('pmnist', 'split_cifar100', 'five_datasets'):
        Loop(**gpm.Appr.loop_defaults_for(experiment))  # the loop's own fields, checked as flags would be


def test_first_task_keeps_the_vectors_whose_cumulative_share_is_below_the_threshold():
    R, A = with_energies([0.6, 0.25, 0.1, 0.05])
    # Cumulative shares 0.6, 0.85, 0.95, 1: two lie below 0.9 (the paper's Eq. 5, the smallest count reaching it,
    # would keep three)
    U = gpm.grow_basis(None, R, 0.9)
    assert U.shape == (6, 2) and same_span(U, A[:, :2]) and U.dtype == np.float64
    assert gpm.grow_basis(None, R, 0.5).shape == (6, 0)  # the largest share reaches it: an empty basis
    assert gpm.grow_basis(None, R.astype(np.float32), 0.9).dtype == np.float32  # the matrix's precision


def test_later_task_adds_residual_shares_of_the_whole_energy_from_the_share_already_held():
    R, A = with_energies([0.4, 0.3, 0.2, 0.1])
    U = A[:, :1]  # holds 0.4 of R's energy
    # 0.4, then R_hat's shares of R's energy: 0.4 + 0.3 = 0.7, + 0.2 = 0.9 >= 0.85: two vectors added (counted from
    # 0, or as shares of R_hat's own energy, 0.5, 0.33, 0.17, the count would be three or one)
    grown = gpm.grow_basis(U, R, 0.85)
    assert grown.shape == (6, 3) and np.array_equal(grown[:, :1], U) and same_span(grown[:, 1:], A[:, 1:3])
    assert gpm.grow_basis(U, R, 0.35) is U  # 0.4 held already: the layer is left as it is
    # A threshold above 1 (0.97 + 0.003 t passes it after 10 tasks) adds every vector of R_hat: at most 6 columns
    full = A[:, :4]
    capped = gpm.grow_basis(full, R, 1.5)
    assert capped.shape == (6, 6) and np.array_equal(capped[:, :4], full)


def test_representation_matrices_as_the_authors_loops():
    torch.manual_seed(0)
    net = TinyConvNet().eval()
    x = torch.randn(5, *SHAPE)
    conv, fc = gpm.representations(net, gpm.shared_layers(net), x, [3, 4])
    # The convolution: rows (C, kh, kw) of each zero-padded 3x3 patch at stride 2, columns by example, then output
    # row, then output column (main_five_dataset.py:228-233); float64
    padded = F.pad(x, (1, 1, 1, 1))
    patches = [padded[k, :, 2 * i:2 * i + 3, 2 * j:2 * j + 3].reshape(-1) for k in range(3) for i in range(3)
               for j in range(3)]
    assert conv.shape == (2 * 3 * 3, 3 * 3 * 3) and conv.dtype == np.float64
    assert np.array_equal(conv, torch.stack(patches, 1).double().numpy())
    # The linear layer: its inputs, one column per example (the batch norm normalising all 5); float32
    with torch.no_grad():
        inputs = F.relu(net.bn(net.conv(x))).flatten(1)
    assert fc.shape == (36, 4) and fc.dtype == np.float32 and np.array_equal(fc, inputs[:4].T.numpy())


def test_post_train_draws_the_examples_as_the_authors():
    data = make_tasks((1, 28, 28), 1, n=32)
    appr = make_gpm(small_mlp(1), threshold=(0.95,), samples=(10,))
    np.random.seed(3)
    appr.post_train(0, data)
    # np.random.shuffle(arange(N)), the first n_s (main_pmnist.py:121-124), in evaluation mode (no input dropout)
    np.random.seed(3)
    drawn = np.random.permutation(32)[:10]
    R = data[0]['train']['x'][drawn].flatten(1).T.numpy()
    assert np.array_equal(appr.bases['fc1'], gpm.grow_basis(None, R, 0.95))


def test_batch_norms_normalise_by_the_batch():
    net = TinyConvNet()
    make_gpm(net)
    assert net.bn.running_mean is None and 'bn.running_mean' not in net.state_dict()
    x = torch.randn(8, 4, 3, 3)
    assert torch.equal(net.bn.eval()(x), net.bn.train()(x))


def decaying_tasks() -> list[dict]:
    """Two tasks of 32 inputs whose energy decays by 0.7 a direction (in random directions), as natural images'
    spectra decay: a basis at 0.97 of the energy leaves out little of the first task's inputs."""
    g = torch.Generator().manual_seed(0)
    data = make_tasks(SHAPE, 2, n=32)
    size = int(np.prod(SHAPE))
    Q = torch.linalg.qr(torch.randn(size, size, generator=g))[0]
    for task in data:
        x = 3 * (torch.randn(32, size, generator=g) * 0.7 ** torch.arange(size)) @ Q.T
        for split in ('train', 'valid', 'test'):
            task[split]['x'] = x.view(32, *SHAPE)
    return data


def learned_first_task():
    torch.manual_seed(0)
    np.random.seed(0)
    net = TinyConvNet()
    data = decaying_tasks()
    appr = make_gpm(net, nepochs=2, lr=0.1)
    appr.train(0, data)
    return net, data, appr


def test_gradients_projected_and_frozen_for_later_tasks_only():
    net, data, appr = learned_first_task()
    x, y = data[1]['train']['x'], data[1]['train']['y']
    net.train()
    for t in (0, 1):
        appr.pre_train(t)
        net.zero_grad()
        appr.loss(1, x, y).backward()  # head 1 on task 1's data: every shared gradient non-zero
        before = {name: p.grad.clone() for name, p in net.named_parameters() if p.grad is not None}
        appr.post_backward(t)
        after = {name: p.grad for name, p in net.named_parameters() if p.grad is not None}
        if t == 0:  # the first task trains unconstrained
            assert all(torch.equal(before[name], g) for name, g in after.items())
            continue
        for name, layer in appr.layers:
            U = torch.from_numpy(appr.bases[name]).float()
            g = after[f'{name}.weight'].reshape(layer.weight.size(0), -1)
            assert 0 < U.shape[1] < U.shape[0] and not torch.equal(g, before[f'{name}.weight'].view_as(g))
            # g - g U U^T in float32: what is left along U is the rounding of the subtraction, a few float32 ulps
            # of g's entries times the input size, far below 1e-5 of g
            assert (g @ U).abs().max() <= 1e-5 * before[f'{name}.weight'].abs().max()
        for name in ('bn.weight', 'bn.bias', 'fc.bias'):  # the authors' zeroed 1-dimensional parameters
            assert torch.count_nonzero(before[name]) and not torch.count_nonzero(after[name])
        assert torch.equal(after['last.1.weight'], before['last.1.weight'])  # heads untouched


def test_an_earlier_tasks_layer_outputs_stay_close():
    net, data, appr = learned_first_task()
    layers, bases = appr.layers, dict(appr.bases)
    # The stored representation: each layer's inputs on task 0's 32 examples after learning it (those the basis was
    # grown from, in another order)
    mats = gpm.representations(net, layers, data[0]['train']['x'], [32, 32])
    weights = {name: layer.weight.detach().clone() for name, layer in layers}
    fixed = [p.detach().clone() for p in appr.fixed]
    appr.train(1, data)
    assert all(torch.equal(p, q) for p, q in zip(appr.fixed, fixed))
    for (name, layer), R in zip(layers, mats):
        D = (layer.weight.detach() - weights[name]).reshape(layer.weight.size(0), -1).double().numpy()
        U = bases[name]
        residual = np.linalg.norm(R - U @ (U.T @ R), 2)  # sigma_{r+1} of R: what the basis leaves out
        # Every step moved the weights orthogonally to U: D R = D (I - U U^T) R, so ||D R|| <= ||D|| sigma_{r+1}(R).
        # Not 0: the authors' count stops before the vector that crosses the threshold, so 3% or more of R's energy
        # lies outside U. Slack: each step's float32 rounding leaves ~1e-7 of its gradient along U, and the steps'
        # sum is not much smaller than the steps (far below 1e-4 of ||D|| ||R||)
        change = np.linalg.norm(D @ R)
        assert change <= np.linalg.norm(D) * residual + 1e-4 * np.linalg.norm(D) * np.linalg.norm(R, 2)
        # The bound is no formality: R's largest direction, which an unprojected step meets, lies far above it
        assert residual < 0.5 * np.linalg.norm(R, 2)


def test_bad_settings_are_one_line():
    with pytest.raises(UserError, match=r"--threshold gives 3 values for gpm's 2 layers \(conv, fc\)"):
        make_gpm(TinyConvNet(), threshold=(0.9, 0.9, 0.9))
    with pytest.raises(ValueError, match=r'samples must be in \[1, inf\), got 0'):
        make_gpm(TinyConvNet(), samples=(0,))
    argv = ['--experiment', 'mnist2', '--approach', 'gpm']
    with pytest.raises(UserError, match=r'argument --threshold: must be in \(0, 1\], got 1.5'):
        run.parse_args([*argv, '--threshold', '0.9,1.5'])
    with pytest.raises(UserError, match=r"argument --samples: must be a whole number, got 'x'"):
        run.parse_args([*argv, '--samples', '10,x'])
    args = run.parse_args([*argv, '--threshold', '0.9,0.95'])[0]
    assert (args.threshold, args.threshold_step, args.samples) == ((0.9, 0.95), 0.0, (300,))  # mlp's


def test_svd_falls_back_to_qr_iteration_where_divide_and_conquer_fails(monkeypatch):
    M = np.random.RandomState(0).randn(6, 9)
    expected = gpm.svd(M)
    assert all(np.array_equal(a, b) for a, b in zip(expected, np.linalg.svd(M, full_matrices=False)))

    def fails(*args, **kwargs):
        raise np.linalg.LinAlgError('SVD did not converge')

    monkeypatch.setattr(np.linalg, 'svd', fails)
    U, S, Vt = gpm.svd(M)
    np.testing.assert_allclose(S, expected[1], rtol=1e-12)
    np.testing.assert_allclose(U @ np.diag(S) @ Vt, M, atol=1e-12)
