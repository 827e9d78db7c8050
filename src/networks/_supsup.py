"""What the SupSup networks share: fixed signed-constant weights, one score tensor per task in every masked layer, one
batch norm per task, and the form that turns a plain network of this folder into one.

SupSup (Wortsman et al., Supermasks in Superposition, NeurIPS 2020; github.com/RAIVNLab/supsup at 6a31878), in its
task-given scenario (GG: MultitaskMaskConv + MultitaskNonAffineBN, README.md:21, rn18-supsup.yaml:14-15), never trains a
weight: task t computes with W * m_t, m_t the top fraction k of |S_t| in each layer (kept_mask()), S_t task t's own
scores, learned by the straight-through estimator (supsup_mask()). The form (SupsupForm) is networks/_subnet.py's
SubnetForm with three changes:
- each masked layer holds one score tensor per task, all created up front (modules.py:63-68);
- the weights are signed constants, sign(W0) * sqrt(2 / fan_in), W0 PyTorch's default draw (signed_constant,
  models/init.py:7-11, with mode fan_in and the ReLU gain, args.py:127-130), and never require a gradient
  (modules.py:69-70); no scaling by the density;
- every batch norm becomes one batch norm per task without scale or shift, with its own running statistics
  (MultitaskNonAffineBN: BatchNorm2d(dim, affine=False) per task, modules.py:16-33), chosen by the task forward is
  given; training task t updates task t's statistics only.
The draws are the authors' (each masked layer's weight, then its scores for every task, each kaiming_uniform_(a=sqrt(5));
module_util.py:8-11; the signs take no draw), then the heads', as SubnetForm draws. forward(t, x, masks) gives every
head's logits through task t's batch norms, layer `name` computing with weight * masks[name].
"""
import math

import torch

from networks._subnet import StraightThrough, SubnetForm


def kept_count(numel: int, k: float) -> int:
    """How many of numel values SupSup's mask keeps at density k: all but int((1 - k) * numel), a float product as
    theirs (module_util.py:53): (1 - 0.9) * 10 is 0.0999..., so k = 0.9 keeps all ten."""
    return numel - int((1 - k) * numel)


def kept_mask(magnitude: torch.Tensor, k: float) -> torch.Tensor:
    """SupSup's mask of one layer (GetSubnet.forward, module_util.py:48-61): the values in ascending order, the first
    j = int((1 - k) * n) set to 0 and the rest to 1; of the magnitude's dtype. Ties are ordered by torch's default
    (unstable) sort, their call: a stable sort differs from it on CPU from about a hundred tied values on (and on
    float32 scores of tens of thousands of values, among which equal magnitudes occur).

    On the CPU the sort is needed only for a tie across the j-th value: the j-th smallest value t (a selection, 6
    times as fast as the sort of an AlexNet's 8M scores), and when exactly j values are <= t, they are the sort's first
    j (NaN sorts last and is never <= t), so the mask is 'not <= t', the same bits. Elsewhere the sort: the count
    would wait for the device at every forward."""
    flat = magnitude.flatten()
    dropped = magnitude.numel() - kept_count(magnitude.numel(), k)
    if not dropped:
        return torch.ones_like(magnitude)
    if flat.device.type == 'cpu':
        below = flat <= flat.kthvalue(dropped).values
        if int(below.sum()) == dropped:
            return (~below).to(magnitude.dtype).view_as(magnitude)
    mask = torch.ones(magnitude.numel(), dtype=magnitude.dtype, device=magnitude.device)
    mask[flat.sort().indices[:dropped]] = 0
    return mask.view_as(magnitude)


def supsup_mask(score: torch.Tensor, k: float) -> torch.Tensor:
    """The mask of |score| at density k, differentiable by the straight-through estimator: through the abs, the
    score's gradient is sign(score) * dL/dmask (GetSubnet.apply(scores[task].abs(), sparsity), modules.py:100-102)."""
    return StraightThrough.apply(score.abs(), kept_mask, k)


def er_density(weight: torch.Tensor, er: float) -> float:
    """The Erdos-Renyi density of a layer at multiplier er: min(0.5, er * (out + in) / (out * in * kh * kw))
    (main.py:61-75; a linear layer is their 1x1 convolution, models/small.py:38-48)."""
    return min(0.5, er * (weight.shape[0] + weight.shape[1]) / weight.numel())


class TaskNorm(torch.nn.Module):
    """One batch norm per task, without scale or shift, each with its running statistics; forward uses the one of
    `task`, set by SupsupForm.forward for one call."""

    def __init__(self, like: torch.nn.Module, ntasks: int):
        super().__init__()
        # torch's defaults (eps 1e-5, momentum 0.1), as NonAffineBN(dim) (modules.py:16-18)
        self.norms = torch.nn.ModuleList(type(like)(like.num_features, affine=False) for _ in range(ntasks))
        self.task = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.task is None:
            raise RuntimeError('a task norm computes only inside its network\'s forward(t, x, masks)')
        return self.norms[self.task](x)


class SupsupForm(SubnetForm):
    """A plain network in SupSup's form: goes before the plain network's class (`class Net(SupsupForm, mlp.Net)`)."""

    def score_count(self, taskcla: list[tuple[int, int]]) -> int:
        return len(taskcla)

    def norm_form(self, norm: torch.nn.Module, taskcla: list[tuple[int, int]]) -> torch.nn.Module:
        return TaskNorm(norm, len(taskcla))

    def __init__(self, inputsize, taskcla):
        super().__init__(inputsize, taskcla)
        for _, layer in self.subnet_layers():
            layer.weight.requires_grad_(False)

    def draw(self) -> None:
        """SubnetForm's draws, then each masked weight made a signed constant (no draw)."""
        super().draw()
        with torch.no_grad():
            for _, layer in self.subnet_layers():
                fan_in = layer.weight[0].numel()
                # their arithmetic: std = gain / math.sqrt(fan), then sign * std (init.py:8-11)
                layer.weight.copy_(layer.weight.sign() * (math.sqrt(2.0) / math.sqrt(fan_in)))

    def task_norms(self) -> list[TaskNorm]:
        """The per-task batch norms."""
        return [m for m in self.modules() if isinstance(m, TaskNorm)]

    def forward(self, t: int, x: torch.Tensor, masks: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        """Logits of every head through task t's batch norms, each masked layer computing with weight * masks[name]."""
        norms = self.task_norms()
        for norm in norms:
            norm.task = t
        try:
            return super().forward(x, masks)
        finally:
            for norm in norms:
                norm.task = None
