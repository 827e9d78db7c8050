"""GPM: Gradient Projection Memory (Saha, Garg & Roy, ICLR 2021, https://openreview.net/forum?id=3AOj0RCNC2), as the
authors' code (github.com/sahagobinda/GPM at 1a238ec: main_pmnist.py, main_cifar100.py, main_five_dataset.py).

Every weight layer the tasks share (each Conv2d and Linear but the heads) keeps an orthonormal basis U of the inputs
the earlier tasks gave it; learning a later task moves its weights only orthogonally to that input space, so the
layer's outputs on those inputs stay as they were. As hooks on the shared loop:
  post_train     after each task, each layer's representation matrix R (its inputs on n_s training examples drawn
                 at random; a convolution's as the patches its kernel reads), and its basis grown from R's left
                 singular vectors until they hold epsilon_th of R's energy (Eq. 5 after the first task, Eqs. 8-9
                 after the later ones; representations() and grow_basis());
  pre_train      from the second task on, each layer's projector U U^T, fixed for the task;
  post_backward  from the second task on, each layer's weight gradient g <- g - g.view(out, -1) U U^T, and the
                 gradient of every other shared parameter (batch norms' scale and shift, biases) zeroed, as the
                 authors zero their 1-dimensional parameters' (main_cifar100.py:149-157, main_five_dataset.py:158-166).

The heads are per task and never projected. Batch norms normalise by the statistics of each batch, in evaluation
too, as the authors' networks (track_running_stats=False): a network whose batch norms keep running statistics is
switched to batch statistics when the approach is built (batch_statistics()), since running statistics updated by
the later tasks would change what the earlier tasks' frozen batch norms compute.
"""
import dataclasses
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import torch
import torch.nn.functional as F

from approaches import _base
from plumbing import hparams, utils
from plumbing.hparams import param

LAYER_TYPES = (torch.nn.Conv2d, torch.nn.Linear)
NORM_TYPES = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)
THRESHOLD_BOUNDS = '(0, 1]'

# The authors' values by benchmark, here by the network that runs it by default (a network's module name); each
# tuple gives the layers in forward order, its last value repeating for the layers after it (see per_layer())
BY_NETWORK = {
    # pmnist, main_pmnist.py: epsilon_th 0.95 for the first layer and 0.99 for the second (and for their shared
    # output layer, which is a head here) (:216), 300 examples for every layer (:124, :129)
    'mlp': {'threshold': (0.95, 0.99), 'threshold_step': 0.0, 'samples': (300,)},
    # split CIFAR-100, main_cifar100.py: 0.97 + 0.003 t for task t counted from 0 (:297); of 125 examples, conv1
    # reads the first 24, conv2 and conv3 the first 100, fc1 and fc2 all 125 (:193, :198)
    'alexnet_bn': {'threshold': (0.97,), 'threshold_step': 0.003, 'samples': (24, 100, 100, 125, 125)},
    # 5-datasets, main_five_dataset.py: 0.965 for every layer (:341); of 100 examples (:203), the first 10, 50 or
    # 100 by depth (:215), its 17 counts of 3x3 convolutions given here to the 20 convolutions in their order, each
    # 1x1 shortcut its block's first convolution's (they read the same input: :222, :244-262)
    'resnet18_reduced': {'threshold': (0.965,), 'threshold_step': 0.0, 'samples': (10,) * 9 + (50,) * 4 + (100,) * 7},
}
# Any other network: the split CIFAR-100 values, every layer reading all its examples
OTHER_NETWORKS = {'threshold': (0.97,), 'threshold_step': 0.003, 'samples': (125,)}


def _numbers(base: type, bounds: str):
    """An argparse type: comma-separated numbers, each of base type within bounds, as a tuple."""
    number = hparams.bounded(base, bounds)
    return lambda text: tuple(number(piece) for piece in text.split(','))


class Appr(_base.Appr):
    """GPM on a plain network: the shared layers' gradients projected off the earlier tasks' input spaces."""

    @dataclass
    class Hyper:
        threshold: tuple[float, ...] | None = param(
            None, "the share of each layer's representation energy its basis holds after a task, Eqs. 5 and 9: one "
            "number for every layer, or comma-separated, one per layer in forward order (the last repeating); default "
            "by network, the authors' by benchmark: mlp 0.95,0.99 (pmnist), alexnet_bn 0.97 (split CIFAR-100), "
            "resnet18_reduced 0.965 (5-datasets), otherwise 0.97", symbol='epsilon_th',
            type=_numbers(float, THRESHOLD_BOUNDS))
        threshold_step: float | None = param(
            None, "added to the threshold once per task (task t, counted from 0, uses threshold + t * step); default "
            "by network: alexnet_bn 0.003 (split CIFAR-100), mlp and resnet18_reduced 0, otherwise 0.003", type=float,
            bounds='[0, 1)')
        samples: tuple[int, ...] | None = param(
            None, "training examples in each layer's representation matrix, the first of one random draw of the "
            "largest count (the batch the network normalises): one number, or one per layer (the last repeating); "
            "default by network: mlp 300, alexnet_bn 24,100,100,125,125, resnet18_reduced 10 to 100 by depth, "
            "otherwise 125", symbol='n_s', type=_numbers(int, '[1, inf)'))

    checkpoint_attrs = ('bases', 'added')
    # The authors clip nothing; the loop always calls clip_grad_norm_, which at this bound scales every gradient by
    # exactly 1 (it clamps max_norm / norm to at most 1)
    clipgrad = 1e30
    # The authors' training: plain SGD, the optimizer rebuilt at each task, as the loop's
    loop_defaults = {
        # main_pmnist.py: lr 0.01 (:338), 5 epochs (:331), batches of 10 (:327) and of 64 in tests (:329); no
        # learning-rate schedule and no best-weights restore (:242-282)
        'pmnist': {'lr': 0.01, 'nepochs': 5, 'batch_size': 10, 'eval_batch_size': 64, 'lr_schedule': 'constant',
                   'keep': 'last'},
        # main_cifar100.py: lr 0.01 (:455), 200 epochs (:448), batches of 64 (:444, :446), the plateau schedule with
        # patience 6, factor 2, lr_min 1e-5 (:459-464, :339-353)
        'split_cifar100': {'lr': 0.01, 'nepochs': 200, 'batch_size': 64, 'lr_patience': 6, 'lr_factor': 2,
                           'lr_min': 1e-5},
        # main_five_dataset.py: lr 0.1 (:495), 100 epochs (:488), batches of 64 (:484, :486), patience 5, factor 3,
        # lr_min 1e-3 (:499-503, :378-395)
        'five_datasets': {'lr': 0.1, 'nepochs': 100, 'batch_size': 64, 'lr_patience': 5, 'lr_factor': 3,
                          'lr_min': 1e-3},
    }

    @classmethod
    def settle(cls, hp, network_cls: type):
        """hp with the by-network defaults filled in where they are None (BY_NETWORK, by the network's module)."""
        defaults = BY_NETWORK.get(network_cls.__module__.rpartition('.')[2], OTHER_NETWORKS)
        return dataclasses.replace(hp, **{k: v for k, v in defaults.items() if getattr(hp, k) is None})

    def __init__(self, model: torch.nn.Module, hp=None, *args, **kwargs):
        hp = self.settle(hp or self.Hyper(), type(model))
        self.layers = shared_layers(model)
        names = [name for name, _ in self.layers]
        self.thresholds = per_layer('threshold', hp.threshold, names, THRESHOLD_BOUNDS)
        self.samples = per_layer('samples', hp.samples, names, '[1, inf)')
        batch_statistics(model)  # before the base class, which may compile the network
        super().__init__(model, hp, *args, **kwargs)
        weights = {id(layer.weight) for _, layer in self.layers}
        heads = {id(p) for p in model.last.parameters()}
        # The shared parameters besides the projected weights, fixed after the first task
        self.fixed = [p for p in model.parameters() if id(p) not in weights | heads]
        self.bases = {}  # layer name -> (its input size, k) orthonormal basis of the tasks so far: float64 numpy
        self.added = []  # the basis vectors each task added, over all layers (capacity())
        # for a convolution, float32 for a linear layer, the authors' precisions
        self.projectors = {}  # layer name -> U U^T (float32, on the device), for the task being learned

    def pre_train(self, t: int) -> None:
        # The authors' torch.Tensor(np.dot(U, U.T)), computed once per task (main_cifar100.py:366-371)
        self.projectors = {name: torch.from_numpy(np.dot(U, U.T)).float().to(self.device)
                           for name, U in self.bases.items()} if t > 0 else {}

    def post_backward(self, t: int) -> None:
        if t == 0:  # the first task trains unconstrained (the authors' train(), not train_projected())
            return
        with torch.no_grad():
            for name, layer in self.layers:
                g = layer.weight.grad
                if g is not None:
                    g -= project(g, self.projectors[name])
            for p in self.fixed:
                if p.grad is not None:
                    p.grad.zero_()

    def post_train(self, t: int, data: list[dict]) -> None:
        x = data[t]['train']['x']
        # The authors' draw: np.random.shuffle of arange(N), the first n_s (main_cifar100.py:190-193); permutation(N)
        # is that shuffle
        drawn = torch.from_numpy(np.random.permutation(x.size(0))[:max(self.samples)]).to(x.device)
        mats = representations(self.model, self.layers, x[drawn], self.samples)
        for (name, _), R, threshold in zip(self.layers, mats, self.thresholds):
            self.bases[name] = grow_basis(self.bases.get(name), R, threshold + t * self.hp.threshold_step)
        self.added.append(self.basis_size() - sum(self.added))

    def basis_size(self) -> int:
        return sum(U.shape[1] for U in self.bases.values())

    def capacity(self, t: int) -> dict:
        """Of the shared layers' input dimensions (the room a projected gradient has), the basis vectors each task
        added and all the bases hold: what later tasks' gradients may no longer change."""
        return _base.capacity_record(t, 'input dimensions', sum(layer.weight[0].numel() for _, layer in self.layers),
                                     self.added, self.basis_size())


def shared_layers(model: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    """The Conv2d and Linear layers outside the heads (model.last), in registration order (the authors' order of
    named_parameters()); a UserError where there is none or a convolution's patches are not what F.unfold reads."""
    heads = {id(m) for m in model.last.modules()}
    layers = [(name, m) for name, m in model.named_modules() if isinstance(m, LAYER_TYPES) and id(m) not in heads]
    if not layers:
        raise utils.UserError(f'gpm projects the gradients of Conv2d and Linear layers, and {type(model).__module__} '
                              f'has none besides its heads')
    for name, m in layers:
        if isinstance(m, torch.nn.Conv2d) and (m.groups != 1 or m.padding_mode != 'zeros' or
                                               isinstance(m.padding, str)):
            raise utils.UserError(f'gpm cannot project convolution {name}: it takes ungrouped convolutions with '
                                  f'numeric zero padding')
    return layers


def per_layer(name: str, values: tuple, layers: list[str], bounds: str) -> list:
    """One value per layer from values: one per layer in order, the last repeating (one value: every layer)."""
    if len(values) > len(layers):
        raise utils.UserError(f"--{name.replace('_', '-')} gives {len(values)} values for gpm's {len(layers)} "
                              f"layers ({', '.join(layers)}): give one, or at most one per layer")
    for value in values:
        if not hparams.inside(value, bounds):
            raise ValueError(f'{name} must be in {bounds}, got {value!r}')
    return list(values) + [values[-1]] * (len(layers) - len(values))


def batch_statistics(model: torch.nn.Module) -> None:
    """Make every batch norm normalise by the statistics of its batch, in training and in evaluation, as the
    authors' (track_running_stats=False); the running statistics are dropped."""
    for m in model.modules():
        if isinstance(m, NORM_TYPES) and m.track_running_stats:
            m.track_running_stats = False
            m.running_mean = m.running_var = m.num_batches_tracked = None


def representations(model: torch.nn.Module, layers: list[tuple[str, torch.nn.Module]], x: torch.Tensor,
                    samples: list[int]) -> list[np.ndarray]:
    """Each layer's representation matrix R from one forward pass of x in evaluation mode: its inputs on the first
    samples[l] examples, one column per example for a linear layer (float32), one per patch its kernel reads for a
    convolution (float64), the authors' precisions. A convolution's rows are in the order of weight.view(out, -1)
    and its columns example by example, then row-major over the output positions: the authors' loops' order
    (main_cifar100.py:204-214, main_five_dataset.py:221-255), which the left singular vectors do not depend on."""
    mats = [None] * len(layers)

    def capture(l: int, layer: torch.nn.Module):
        def hook(module, inputs):
            h = inputs[0][:samples[l]]
            if isinstance(layer, torch.nn.Conv2d):
                patches = F.unfold(h, layer.kernel_size, layer.dilation, layer.padding, layer.stride)  # (B, C*k*k, L)
                mats[l] = patches.transpose(0, 1).reshape(patches.size(1), -1).double().cpu().numpy()  # (C*k*k, B*L)
            else:
                mats[l] = h.reshape(-1, h.size(-1)).T.cpu().numpy()  # (in, B)
        return hook

    handles = [layer.register_forward_pre_hook(capture(l, layer)) for l, (_, layer) in enumerate(layers)]
    model.eval()  # the authors' pass follows test()'s model.eval() (main_cifar100.py:162), or sets it (five:199)
    try:
        with torch.no_grad():
            model.forward(x)  # forward(), not the module's call: eager even where --compile compiled the call
    finally:
        for handle in handles:
            handle.remove()
    return mats


def svd(M: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The authors' np.linalg.svd(M, full_matrices=False) (LAPACK's divide and conquer, gesdd); where it does not
    converge, which stops their code (LinAlgError: met on a projected residual with OpenBLAS on one thread), LAPACK's
    QR iteration (gesvd) instead."""
    try:
        return np.linalg.svd(M, full_matrices=False)
    except np.linalg.LinAlgError:
        return scipy.linalg.svd(M, full_matrices=False, lapack_driver='gesvd')


def grow_basis(U: np.ndarray | None, R: np.ndarray, threshold: float) -> np.ndarray:
    """A layer's basis after a task whose representation matrix is R, from U, the basis of the tasks before it (None
    after the first task), as the authors' update_GPM (main_cifar100.py:229-277), in R's precision:

    first task (Eq. 5): R's first r left singular vectors, r the number of cumulative energy shares below threshold
        (the authors' count: one fewer than the smallest r reaching it, their '+1' left commented out);
    later tasks (Eqs. 8-9): R_hat = R - U U^T R; from the share of R's energy U already holds, R_hat's singular
        values' shares of R's energy (not R_hat's) are added, in order, until the sum reaches threshold, and their r
        left singular vectors appended to U (no change where r = 0), at most as many columns as rows."""
    if U is None:
        V, S, _ = svd(R)
        energy = (S ** 2).sum()
        return V[:, :np.sum(np.cumsum(S ** 2 / energy) < threshold)]
    # The total energy as the authors take it, from the singular values (not R's squared sum, equal but for rounding)
    energy = (svd(R)[1] ** 2).sum()
    V, S, _ = svd(R - np.dot(np.dot(U, U.T), R))
    shares = S ** 2 / energy
    accumulated = (energy - (S ** 2).sum()) / energy
    r = 0
    while r < len(shares) and accumulated < threshold:
        accumulated += shares[r]
        r += 1
    return np.hstack((U, V[:, :r]))[:, :U.shape[0]] if r else U


def project(g: torch.Tensor, P: torch.Tensor) -> torch.Tensor:
    """The part of a weight gradient g (out, ...) in the input space of projector P: g.view(out, -1) P, in g's shape
    (reshape: a channels-last gradient is not viewable)."""
    return (g.reshape(g.size(0), -1) @ P).view(g.shape)
