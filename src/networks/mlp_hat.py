"""The MLP of mlp.py with HAT's task gates on both hidden layers (the original's mlp_hat)."""
from collections.abc import Sequence

import torch

from networks._common import heads
from networks._hat import HatNet
from networks.mlp import MLPLayers

VARIANT = 'hat'  # the approaches it serves: their Appr.network_variant
EMB_INIT = 'normal'  # hat-test's default draw of the task embeddings, N(0, 1), as the original's mlp_hat


class Net(MLPLayers, HatNet):
    """MLP with one gate embedding per hidden layer and one linear head per task."""

    def __init__(self, inputsize: Sequence[int], taskcla: list[tuple[int, int]], nlayers: int = 2, nhid: int = 2000,
                 pdrop1: float = 0.2, pdrop2: float = 0.5):
        super().__init__()
        self.taskcla = taskcla
        # Created in the original's order (fc1, efc1, fc2, efc2, heads) so initialisation draws match it
        for name, make in self.layer_makers(inputsize, nhid, nlayers, pdrop1, pdrop2).items():
            setattr(self, name, make())
            self.add_gate(name, nhid)
        self.last = heads(taskcla, nhid)

    def forward(self, t: int, x: torch.Tensor, s: float = 1) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Logits of every head and the gates used, for task t at gate temperature s."""
        masks = self.mask(t, s=s)
        h = self.stem(x)
        for l, (name, gate) in enumerate(zip(self.gated, masks)):
            h = self.activation(l, getattr(self, name)(h)) * gate
        return [head(h) for head in self.last], masks
