"""The AlexNet-like network of alexnet.py with HAT's task gates on all five hidden layers (the original's
alexnet_hat): each gate multiplies a layer's units (conv channels after pooling, fc units after dropout)."""
from collections.abc import Sequence

import torch

from networks._common import heads
from networks._hat import HatNet
from networks.alexnet import AlexNetLayers

VARIANT = 'hat'  # the approaches it serves: their Appr.network_variant
EMB_INIT = 'uniform'  # hat-test's default draw of the task embeddings, U(0, 2), as the original's alexnet_hat_test


class Net(AlexNetLayers, HatNet):
    """AlexNet-like network with one gate embedding per hidden layer and one linear head per task."""

    def __init__(self, inputsize: Sequence[int], taskcla: list[tuple[int, int]]):
        super().__init__()
        self.taskcla = taskcla
        makers, width = self.layer_makers(inputsize, names=('c1', 'c2', 'c3', 'fc1', 'fc2'))  # the original's names
        for name, make in makers.items():
            setattr(self, name, make())
        self.last = heads(taskcla, width)
        # After the heads, as in the original, so initialisation draws match it
        for name in makers:
            self.add_gate(name, getattr(self, name).weight.size(0))

    def forward(self, t: int, x: torch.Tensor, s: float = 1) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Logits of every head and the gates used, for task t at gate temperature s."""
        masks = self.mask(t, s=s)
        gc1, gc2, gc3, gfc1, gfc2 = masks
        # Written out rather than through activation(), which flattens conv3's output before its gate could apply
        h = self.maxpool(self.drop1(self.relu(self.c1(x)))) * gc1.view(1, -1, 1, 1)
        h = self.maxpool(self.drop1(self.relu(self.c2(h)))) * gc2.view(1, -1, 1, 1)
        h = self.maxpool(self.drop2(self.relu(self.c3(h)))) * gc3.view(1, -1, 1, 1)
        h = h.flatten(1)  # (B, 256*smid*smid), channel-major: get_view_for relies on this order
        h = self.drop2(self.relu(self.fc1(h))) * gfc1
        h = self.drop2(self.relu(self.fc2(h))) * gfc2
        return [head(h) for head in self.last], masks
