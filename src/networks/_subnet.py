"""What the score-masked ('subnet') networks share: layers whose effective weight is weight * mask, the mask chosen from
learned scores, and the form that turns a plain network of this folder into one.

WSN (Kang et al., Forget-free Continual Learning with Winning Subnetworks, ICML 2022; github.com/ihaeyong/WSN at
f066982, networks/subnet.py) learns, beside each layer's weight W, a score S of the same shape; a task uses the
subnetwork W * m, m = 1 where |S| is among the top fraction c of the layer's |S| (top_mask()), and S learns through the
straight-through estimator (ste_mask()). The form (SubnetForm) keeps a plain network's layers, order and forward:
- every Conv2d and Linear but the heads becomes a SubnetConv2d / SubnetLinear, without bias (the authors' layers
  have none: mlp.py:19-20, alexnet.py:728-764, resnet18.py:122,150), its scores a ParameterList (one tensor here;
  one per task in SupSup's form, networks/_supsup.py);
- the heads stay plain per-task linear layers, never masked (mlp.py:30, alexnet.py:772-774), without bias;
- every batch norm has neither scale nor shift nor running statistics (BatchNorm(affine=False,
  track_running_stats=False): alexnet.py:733-769, resnet18.py:137-176): nothing in it to learn, mask or freeze, and
  it normalises every batch by its own statistics, in evaluation too; so a test sample's output depends on the rest
  of its batch (the test batch size and order), as the authors';
- the initial values are drawn in the authors' order: each subnet layer's weight, then its score, both PyTorch's
  default kaiming_uniform_(a=sqrt(5)) = U(+-1/sqrt(fan_in)) (subnet.py:46,141,149,245), layer by layer in forward
  order, then the heads' weights (SubnetForm.draw());
- forward(x, masks) gives every head's logits with layer `name` computing with weight * masks[name].
"""
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

NORM_TYPES = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)


def top_mask(magnitude: torch.Tensor, c: float) -> torch.Tensor:
    """WSN's mask of one layer (GetSubnetFaster, subnet.py:12-20): 1 where the value is at least the k-th smallest,
    k = 1 + round(0.01 * (1 - c) * 100 * (n - 1)), 0 elsewhere; of the magnitude's dtype. Ties at the threshold are all
    kept, so a tie can keep more than the fraction c."""
    pruned = 1 - c  # the authors' sparsity, the pruned fraction: every main sets args.sparsity = 1 - args.sparsity
    # percentile(): their expression, in Python floats, and round() halves to even
    k = 1 + round(.01 * float(pruned * 100) * (magnitude.numel() - 1))
    threshold = magnitude.flatten().kthvalue(k).values  # a tensor: no wait for the device
    return (magnitude >= threshold).to(magnitude.dtype)


class StraightThrough(torch.autograd.Function):
    """rule(magnitude, fraction) forward, a mask; the gradient passed to the magnitude unchanged (WSN's
    GetSubnetFaster.backward, subnet.py:22-24; SupSup's GetSubnet.backward, module_util.py:63-66)."""

    @staticmethod
    def forward(ctx, magnitude: torch.Tensor, rule, fraction: float) -> torch.Tensor:
        return rule(magnitude, fraction)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        return g, None, None


def ste_mask(score: torch.Tensor, c: float) -> torch.Tensor:
    """The mask of |score| at fraction c, differentiable by the straight-through estimator: through the abs, the
    score's gradient is sign(score) * dL/dmask (subnet.py:109, :209)."""
    return StraightThrough.apply(score.abs(), top_mask, c)


class SubnetLayer:
    """What a subnet layer adds to its torch layer: scores of the weight's shape, and the mask it computes with, set by
    SubnetForm.forward for one call."""

    def add_scores(self, nscores: int) -> None:
        self.scores = torch.nn.ParameterList(torch.nn.Parameter(torch.empty_like(self.weight)) for _ in range(nscores))
        self.mask = None

    def masked_weight(self) -> torch.Tensor:
        if self.mask is None:
            raise RuntimeError('a subnet layer computes only inside its network\'s forward(x, masks)')
        return self.mask * self.weight  # the authors' order (subnet.py:115)

    def draw(self) -> None:
        """The authors' initial values: the weight, then each score, kaiming_uniform_(a=sqrt(5)) (subnet.py:141)."""
        self.reset_parameters()
        for score in self.scores:
            torch.nn.init.kaiming_uniform_(score, a=math.sqrt(5))


class SubnetLinear(SubnetLayer, torch.nn.Linear):
    """A bias-free linear layer computing with weight * mask."""

    def __init__(self, in_features: int, out_features: int, nscores: int = 1):
        super().__init__(in_features, out_features, bias=False)
        self.add_scores(nscores)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.masked_weight())


class SubnetConv2d(SubnetLayer, torch.nn.Conv2d):
    """A bias-free convolution computing with weight * mask."""

    def __init__(self, like: torch.nn.Conv2d, nscores: int = 1):
        super().__init__(like.in_channels, like.out_channels, like.kernel_size, stride=like.stride,
                         padding=like.padding, dilation=like.dilation, groups=like.groups, bias=False)
        self.add_scores(nscores)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.masked_weight(), None)


def subnet_layer(layer: torch.nn.Module, nscores: int) -> torch.nn.Module:
    """The subnet form of a Linear or Conv2d (its shape, stride, padding; no bias)."""
    if isinstance(layer, torch.nn.Conv2d):
        return SubnetConv2d(layer, nscores)
    return SubnetLinear(layer.in_features, layer.out_features, nscores)


class SubnetForm(torch.nn.Module):
    """A plain network in subnet form: goes before the plain network's class (`class Net(SubnetForm, alexnet_bn.Net)`)
    its constructor's other arguments are plain_kwargs."""

    nscores = 1  # score tensors per layer
    plain_kwargs: dict = {}  # the plain network's arguments besides inputsize and taskcla

    def __init__(self, inputsize: Sequence[int], taskcla: list[tuple[int, int]]):
        rng = torch.get_rng_state()
        super().__init__(inputsize, taskcla, **self.plain_kwargs)
        self.subnet_names = []
        for name, module in list(self.named_modules()):
            if name == 'last' or name.startswith('last.'):
                if isinstance(module, torch.nn.Linear) and module.bias is not None:
                    module.register_parameter('bias', None)  # the authors' heads have none
                continue
            replacement = None
            if type(module) in (torch.nn.Linear, torch.nn.Conv2d):
                replacement = subnet_layer(module, self.score_count(taskcla))
                self.subnet_names.append(name)
            elif isinstance(module, NORM_TYPES):
                replacement = self.norm_form(module, taskcla)
            if replacement is not None:
                parent, _, attr = name.rpartition('.')
                self.get_submodule(parent).register_module(attr, replacement)
        # From the generator's state before the plain network drew anything: the authors' order of draws
        torch.set_rng_state(rng)
        self.draw()

    def score_count(self, taskcla: list[tuple[int, int]]) -> int:
        """Score tensors per layer (nscores; a form with scores per task overrides it)."""
        return self.nscores

    def norm_form(self, norm: torch.nn.Module, taskcla: list[tuple[int, int]]) -> torch.nn.Module:
        """What replaces a batch norm: WSN's, without scale, shift or running statistics."""
        return type(norm)(norm.num_features, eps=norm.eps, affine=False, track_running_stats=False)

    def draw(self) -> None:
        """Each layer's initial values in forward order (a subnet layer's weight then scores), then the heads'."""
        for module in self.modules():
            if isinstance(module, SubnetLayer):
                module.draw()
            elif isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
                module.reset_parameters()

    def subnet_layers(self) -> list[tuple[str, SubnetLayer]]:
        """The masked layers and their module names, in forward order."""
        return [(name, self.get_submodule(name)) for name in self.subnet_names]

    def forward(self, x: torch.Tensor, masks: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        """Logits of every head, each subnet layer computing with weight * masks[its name]."""
        layers = self.subnet_layers()
        for name, layer in layers:
            layer.mask = masks[name]
        try:
            return super().forward(x)
        finally:
            for _, layer in layers:
                layer.mask = None
