"""Multilayer perceptron: 2 hidden layers of 2000 ReLU units, dropout 0.2 on the input and 0.5 on hidden layers."""
from collections.abc import Sequence

import torch

from networks._common import Makers, PlainNet

VARIANT = None  # the approaches it serves: their Appr.network_variant


class MLPLayers:
    """mlp.py's hidden layers and the ReLU and dropout around them (on the input, after each layer), for a network
    that creates the layers from {layer name: module maker}: the plain and HAT networks at mlp.py's width, the
    progressive columns and the pathnet modules narrower."""

    def layer_makers(self, inputsize: Sequence[int], width: int, nlayers: int, pdrop1: float, pdrop2: float) -> Makers:
        """Makers of the nlayers hidden layers fc1, fc2, ..., each `width` units wide."""
        ncha, size, _ = inputsize
        self.relu = torch.nn.ReLU()
        self.drop1 = torch.nn.Dropout(pdrop1)
        self.drop2 = torch.nn.Dropout(pdrop2)
        return {f'fc{i}': lambda i=i: torch.nn.Linear(ncha * size * size if i == 1 else width, width)
                for i in range(1, nlayers + 1)}

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        """The flattened input after dropout, as the first layer reads it."""
        return self.drop1(x.flatten(1))  # (B, C*H*W)

    def activation(self, l: int, h: torch.Tensor, drop: bool = True) -> torch.Tensor:
        """ReLU, then dropout unless drop is False."""
        h = self.relu(h)
        return self.drop2(h) if drop else h


class Net(MLPLayers, PlainNet):
    """MLP with one linear head per task."""

    def __init__(self, inputsize: Sequence[int], taskcla: list[tuple[int, int]], nlayers: int = 2, nhid: int = 2000,
                 pdrop1: float = 0.2, pdrop2: float = 0.5):
        super().__init__()
        self.taskcla = taskcla
        self.build(self.layer_makers(inputsize, nhid, nlayers, pdrop1, pdrop2), head_width=nhid)
