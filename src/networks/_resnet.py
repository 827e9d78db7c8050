"""The ResNet-18 of the continual-learning literature, for the plain and HAT networks of resnet18*.py.

The reduced ResNet-18 of GEM (Lopez-Paz & Ranzato, Gradient Episodic Memory for Continual Learning, NeurIPS 2017;
github.com/facebookresearch/GradientEpisodicMemory, model/common.py: ResNet18(nclasses, nf=20)) and GPM (Saha & Roy,
ICLR 2021; github.com/sahagobinda/GPM, main_five_dataset.py: ResNet18(taskcla, nf) called with nf=20); at nf=64, the
standard CIFAR ResNet-18 (He et al. 2016 with a 3x3 stem and no max-pooling, as github.com/kuangliu/pytorch-cifar
and HAT-CL, Duan et al. 2023, github.com/xduan7/hat-cl):

- stem: a 3x3 convolution of nf filters, padding 1, then its batch norm and ReLU (no max-pooling); stride 1 for
  inputs up to 32x32 (GEM, GPM's 5-datasets), 2 above (GPM's miniImageNet used stride 2, conv3x3(3, nf, 2), for
  84x84 inputs; not in GPM's repository, taken from its follow-ups): 64x64 inputs reach the four stages at 32x32;
- four stages of two BasicBlocks, nf, 2nf, 4nf, 8nf channels; each stage but the first halves the size with stride
  2 in its first block's first convolution;
- BasicBlock: out = relu(bn1(conv1(x))); out = bn2(conv2(out)); relu(out + shortcut(x)), 3x3 convolutions with
  padding 1; the shortcut is the identity, or where the stride or width changes a 1x1 convolution with that stride
  and its batch norm (module keys shortcut.0, shortcut.1 as GEM's nn.Sequential);
- every convolution without bias, every batch norm PyTorch's default (eps 1e-5, momentum 0.1, affine);
- average pooling of kernel `pool` on the last stage's output, flattened, to the heads: GPM's avg_pool2d(out, 2)
  for the reduced network (a 4x4 map at 32x32 inputs: 2x2x8nf = 640 features at nf=20); the standard network
  averages the whole map (GEM's and kuangliu's avg_pool2d(out, 4) at 32x32: 8nf = 512 features);
- one linear head per task (networks/_common.heads()): without bias in the reduced network, as GPM's
  (nn.Linear(..., bias=False)), with one in the standard network, as kuangliu's (GEM's had one too).

The plain networks keep running statistics (GEM, kuangliu; GPM's ResNet had track_running_stats=False, batch
statistics also in evaluation). The HAT networks keep one batch norm per task and layer (HAT-CL's
TaskIndexedBatchNorm2d), indexed by the task, and gate every convolution's output channels: after its batch norm,
and after the ReLU where one follows (the first convolution of a block, the stem), the shortcut's projection too.
"""
from collections.abc import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F

from networks._common import compute_conv_output_size, heads
from networks._hat import HatNet

STAGES = ((1, 1), (2, 2), (4, 2), (8, 2))  # (width in multiples of nf, stride of its first block), two blocks each
Norm = Callable[[int], torch.nn.Module]  # the maker of a normalisation of `width` channels


def conv(cin: int, cout: int, kernel: int, stride: int = 1) -> torch.nn.Conv2d:
    """A convolution without bias, padded to keep the size at stride 1 (3x3: padding 1, 1x1: none)."""
    return torch.nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False)


def normalise(norm: torch.nn.Module, h: torch.Tensor, t: int | None) -> torch.Tensor:
    """h through a shared normalisation (t None) or through task t's of a per-task list."""
    return norm(h) if t is None else norm[t](h)


def gate(h: torch.Tensor, gates: Iterator[torch.Tensor] | None) -> torch.Tensor:
    """h times the next gate (a (1, C, 1, 1) view), or h where nothing is gated."""
    return h if gates is None else h * next(gates)


class BasicBlock(torch.nn.Module):
    """Two 3x3 convolutions, each followed by its normalisation, and the shortcut added before the last ReLU."""

    def __init__(self, cin: int, cout: int, stride: int, norm: Norm):
        super().__init__()
        self.conv1 = conv(cin, cout, 3, stride)
        self.bn1 = norm(cout)
        self.conv2 = conv(cout, cout, 3)
        self.bn2 = norm(cout)
        self.shortcut = None  # the identity
        if stride != 1 or cin != cout:
            self.shortcut = torch.nn.ModuleList([conv(cin, cout, 1, stride), norm(cout)])

    def forward(self, x: torch.Tensor, t: int | None = None,
                gates: Iterator[torch.Tensor] | None = None) -> torch.Tensor:
        """The block's output; t: the task of per-task normalisations; gates: those of wiring()'s convolutions."""
        out = gate(F.relu(normalise(self.bn1, self.conv1(x), t)), gates)
        out = gate(normalise(self.bn2, self.conv2(out), t), gates)
        if self.shortcut is not None:
            projection, norm = self.shortcut
            x = gate(normalise(norm, projection(x), t), gates)
        return F.relu(out + x)

    def wiring(self, prefix: str, feeds: tuple[str, ...]) -> tuple[list[tuple[str, tuple[str, ...]]], tuple[str, ...]]:
        """Its gated convolutions in forward()'s order, each with its HatNet.add_gate inputs; its output's feeds."""
        # feeds: the gated layers whose outputs, summed, are a tensor (here the block's input); names under `prefix`
        conv1, conv2, projection = (f'{prefix}.{name}' for name in ('conv1', 'conv2', 'shortcut.0'))
        if self.shortcut is None:
            return [(conv1, feeds), (conv2, (conv1,))], (conv2, *feeds)
        return [(conv1, feeds), (conv2, (conv1,)), (projection, feeds)], (conv2, projection)


class ResNet18(torch.nn.Module):
    """The stem, the four stages and the pooling; subclasses set nf (the base width), pool (None: the whole map)
    and head_bias."""

    nf: int
    pool: int | None
    head_bias: bool

    def build(self, inputsize: Sequence[int], taskcla: list[tuple[int, int]], norm: Norm) -> None:
        """Create the stem, the stages (layer1..layer4, two blocks each) and the heads, in forward order."""
        ncha, size, _ = inputsize
        self.taskcla = taskcla
        stride = 1 if size <= 32 else 2
        self.conv1 = conv(ncha, self.nf, 3, stride)
        self.bn1 = norm(self.nf)
        side = compute_conv_output_size(size, 3, stride, padding=1)
        cin = self.nf
        for i, (multiple, stride) in enumerate(STAGES, 1):
            cout = multiple * self.nf
            setattr(self, f'layer{i}', torch.nn.Sequential(BasicBlock(cin, cout, stride, norm),
                                                           BasicBlock(cout, cout, 1, norm)))
            side = compute_conv_output_size(side, 3, stride, padding=1)
            cin = cout
        self.kernel = self.pool or side  # of the average pooling
        self.last = heads(taskcla, cin * (side // self.kernel) ** 2, bias=self.head_bias)

    def named_blocks(self) -> list[tuple[str, BasicBlock]]:
        """The blocks and their module names, in forward order."""
        return [(f'layer{i}.{j}', block) for i in range(1, len(STAGES) + 1)
                for j, block in enumerate(getattr(self, f'layer{i}'))]

    def features(self, x: torch.Tensor, t: int | None = None,
                 gates: Iterator[torch.Tensor] | None = None) -> torch.Tensor:
        """What the heads read: the pooled last stage, flattened; t and gates as BasicBlock.forward's."""
        h = gate(F.relu(normalise(self.bn1, self.conv1(x), t)), gates)
        for _, block in self.named_blocks():
            h = block(h, t, gates)
        return F.avg_pool2d(h, self.kernel).flatten(1)


class PlainResNet18(ResNet18):
    """ResNet-18 with one batch norm per layer and one linear head per task."""

    def __init__(self, inputsize: Sequence[int], taskcla: list[tuple[int, int]]):
        super().__init__()
        self.build(inputsize, taskcla, torch.nn.BatchNorm2d)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Logits of every head."""
        h = self.features(x)
        return [head(h) for head in self.last]


class HatResNet18(ResNet18, HatNet):
    """ResNet-18 with one batch norm per task and layer, a gate embedding per convolution and one linear head per
    task. A task's batch norms are its own: HAT does not mask their gradients (get_view_for gives None), and
    training another task neither uses nor changes them, their running statistics included."""

    def __init__(self, inputsize: Sequence[int], taskcla: list[tuple[int, int]]):
        super().__init__()
        self.build(inputsize, taskcla, lambda width: torch.nn.ModuleList(
            torch.nn.BatchNorm2d(width) for _ in taskcla))
        # After the heads, as the other HAT networks, so that the convolutions' and heads' initial weights are the
        # plain network's (batch norms draw nothing)
        self.add_gate('conv1', self.nf, inputs=())
        feeds = ('conv1',)
        for name, block in self.named_blocks():
            convs, feeds = block.wiring(name, feeds)
            for layer, inputs in convs:
                self.add_gate(layer, self.get_submodule(layer).out_channels, inputs=inputs)

    def forward(self, t: int, x: torch.Tensor, s: float = 1) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Logits of every head and the gates used, for task t at gate temperature s."""
        masks = self.mask(t, s=s)
        h = self.features(x, t, (m.view(1, -1, 1, 1) for m in masks))
        return [head(h) for head in self.last], masks
