"""What the networks share: the convolution arithmetic, the per-task heads, and the bases of the networks built as a
stack of named layers, each followed by activation(l, h) (plain, LFL, progressive and PathNet networks)."""
from collections.abc import Callable

import torch

Makers = dict[str, Callable[[], torch.nn.Module]]  # layer name -> a maker of that layer, in forward order


def compute_conv_output_size(size: int, kernel_size: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """Spatial output size of a convolution."""
    return (size + 2 * padding - dilation * (kernel_size - 1) - 1) // stride + 1


def heads(taskcla: list[tuple[int, int]], width: int, bias: bool = True) -> torch.nn.ModuleList:
    """One linear head per task, reading `width` units."""
    return torch.nn.ModuleList(torch.nn.Linear(width, n, bias=bias) for _, n in taskcla)


class LayerStack(torch.nn.Module):
    """Base of the networks built from one maker per layer. A mixin before it (mlp.MLPLayers, alexnet.AlexNetLayers)
    gives the makers, stem(x) and activation(l, h, drop)."""

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        """The input as the first layer reads it."""
        raise NotImplementedError

    def activation(self, l: int, h: torch.Tensor, drop: bool = True) -> torch.Tensor:
        """What follows layer l (non-linearity, dropout unless drop is False, pooling, flattening)."""
        raise NotImplementedError

    def freeze(self) -> None:
        """Fix every parameter, dropping gradients left from training (clip_grad_norm_ would still count them)."""
        for p in self.parameters():
            p.requires_grad_(False)
            p.grad = None


class PlainNet(LayerStack):
    """Base of the plain networks: the layers in forward order, then one linear head per task on the last one."""

    drop_last = True  # whether the last hidden layer is dropped out in training

    def build(self, makers: Makers, head_width: int) -> None:
        """Create the layers, in forward order, then the heads."""
        self.layers = list(makers)
        for name, make in makers.items():
            setattr(self, name, make())
        self.last = heads(self.taskcla, head_width)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last hidden layer's activations."""
        h = self.stem(x)
        for l, name in enumerate(self.layers):
            h = self.activation(l, getattr(self, name)(h), drop=self.drop_last or l < len(self.layers) - 1)
        return h

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Logits of every head."""
        h = self.features(x)
        return [head(h) for head in self.last]


class LFLForm:
    """A plain network in the form of the original's alexnet_lfl, for LFL's penalty on the last hidden layer: that
    layer is not dropped out (the penalty compares it with the old model's, computed in eval mode, and the heads see
    it whole), and forward() returns it with the logits. Goes before the plain network's class."""

    drop_last = False

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Logits of every head and the last hidden layer."""
        h = self.features(x)
        return [head(h) for head in self.last], h
