"""GPM's AlexNet of alexnet_bn.py with HAT's task gates on all five layers, placed as in alexnet_hat.py: each gate
multiplies a layer's units (conv channels after pooling, fc units after dropout).

The batch norms are GPM's: shared by all tasks, without running statistics. Their scale and shift carry their
layer's units, so HAT masks their gradients by that layer's gate (get_view_for: the output unit's mask, as a bias).
What HAT keeps of a task: on one and the same batch, a unit it claimed sees the same values before its batch norm
(its frozen weights read frozen units, the other inputs being gated off for that task), hence the same batch
statistics, and its frozen scale and shift give the same output. A sample's outputs still depend on its batch.
"""
from collections.abc import Sequence

import torch

from networks._common import heads
from networks._hat import HatNet
from networks.alexnet_bn import LAYERS, NORMS, AlexNetBNLayers

VARIANT = 'hat'  # the approaches it serves: their Appr.network_variant


class Net(AlexNetBNLayers, HatNet):
    """GPM's AlexNet with one gate embedding per layer and one linear head per task."""

    def __init__(self, inputsize: Sequence[int], taskcla: list[tuple[int, int]]):
        super().__init__()
        self.taskcla = taskcla
        self.last = heads(taskcla, self.build_layers(inputsize), bias=False)
        # After the heads, as alexnet_hat, so that the layers' and heads' initial weights are alexnet_bn's
        for layer, norm in zip(LAYERS, NORMS):
            self.add_gate(layer, getattr(self, norm).num_features, norms=(norm,))

    def forward(self, t: int, x: torch.Tensor, s: float = 1) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Logits of every head and the gates used, for task t at gate temperature s."""
        masks = self.mask(t, s=s)
        h = x
        for l, gate in enumerate(masks):
            h = self.unit(l, h)
            h = h * gate.view(1, -1, *(1,) * (h.dim() - 2))  # a conv's channels: the gate over every position
        return [head(h) for head in self.last], masks
