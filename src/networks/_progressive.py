"""What the progressive networks share: one column per task, each a narrow copy of the base network, and lateral
adapters from the earlier columns into every layer of a column but its first (Rusu et al., 2016,
https://arxiv.org/abs/1606.04671, as the original's src/networks/alexnet_progressive.py builds them, written once for
any stack of layers).

Task t's forward pass is the original's, which differs from Rusu et al. in two ways, both kept here:
- the earlier columns hand column t activations computed without their own lateral inputs (alexnet_progressive.py
  lines 98, 102, 108, 115, 121 apply conv*[j] / fc*[j] alone);
- head t has no lateral input. The original declared head adapters (Vflscale, Vfl, Ufl, lines 86-88), but its
  forward(x, t) gives head t as last[t](h) (line 134), and only heads tid < t, never read, through them (line 131):
  they reached no loss and no prediction, so they are not kept here. They are built and thrown away, since building
  them draws from torch's generator: the next columns' initial weights are then the original's.

The random draws are the original's, in its order, so that a seed gives the original's numbers: dropout draws column
t's mask before the earlier columns' at the first layer (lines 94-97) and after them at every later one (lines
100-122), the earlier columns' last layer included (line 121, whose output only the unused head adapters read).
"""
from collections.abc import Callable

import torch

from networks._common import LayerStack, Makers


class Lateral(torch.nn.Module):
    """Adapter from columns 0..t-1 into one layer of column t: U(relu(V(concat_j(alpha_j * h_j)))), added to that
    layer's pre-activation (alexnet_progressive.py:103, 109, 116, 122)."""

    def __init__(self, ncolumns: int, layer: torch.nn.Module, make: Callable[[], torch.nn.Module]):
        super().__init__()
        # One learned scale per earlier column, N(0, 1) as the original's Embedding(1, t) (line 70)
        self.scale = torch.nn.Parameter(torch.randn(ncolumns))
        # V brings the concatenated columns back to one column's width: a 1x1 convolution before a convolution
        # (line 71), a linear layer before a linear layer (line 79)
        if isinstance(layer, torch.nn.Conv2d):
            self.V = torch.nn.Conv2d(ncolumns * layer.in_channels, layer.in_channels, kernel_size=1)
        else:
            self.V = torch.nn.Linear(ncolumns * layer.in_features, layer.in_features)
        self.U = make()  # shaped as the layer it feeds (line 72)

    def forward(self, hs: list[torch.Tensor]) -> torch.Tensor:
        """The lateral input from the earlier columns' activations hs (one per column, concatenated on dim 1)."""
        return self.U(torch.relu(self.V(torch.cat([a * h for a, h in zip(self.scale, hs)], 1))))


class ProgressiveNet(LayerStack):
    """Base of the progressive networks. Subclasses set self.taskcla and call build(); every column reads stem(x), and
    activation(l, h) follows layer l's pre-activation, laterals included."""

    def build(self, makers: Makers, head_width: int) -> None:
        """Create the columns from one maker per layer (each call gives a fresh layer of one column, in forward
        order), their heads and their laterals, task by task in the original's order (lines 53-88)."""
        self.layers = list(makers)
        for name in self.layers:
            setattr(self, name, torch.nn.ModuleList())
        self.last = torch.nn.ModuleList()
        self.lateral = torch.nn.ModuleDict({name: torch.nn.ModuleList() for name in self.layers[1:]})
        for t, n in self.taskcla:
            for name, make in makers.items():
                getattr(self, name).append(make())
            self.last.append(torch.nn.Linear(head_width, n))
            if t > 0:
                for name in self.layers[1:]:
                    self.lateral[name].append(Lateral(t, getattr(self, name)[t], makers[name]))
                # The original's head adapters, drawn as it drew them (Embedding(1, t), then the two linear
                # layers, lines 86-88) and discarded
                torch.nn.Embedding(1, t)
                torch.nn.Linear(t * head_width, head_width)
                torch.nn.Linear(head_width, n)

    def forward(self, t: int, x: torch.Tensor) -> torch.Tensor:
        """Logits of task t's head: column t, fed by laterals from columns 0..t-1."""
        h = self.stem(x)
        earlier = [h] * t  # columns 0..t-1 at the current depth, each without its own laterals (the original's)
        last = len(self.layers) - 1
        for l, name in enumerate(self.layers):
            column = getattr(self, name)
            pre = column[t](h)
            if l == 0:  # column t's dropout first here, the earlier columns' first at every later layer
                h = self.activation(l, pre)
            if t > 0 and l > 0:
                pre = pre + self.lateral[name][t - 1](earlier)
            # The earlier columns' last layer feeds nothing: it runs in training only, for its dropout draws
            if l < last or self.training:
                earlier = [self.activation(l, column[j](e)) for j, e in enumerate(earlier)]
            if l > 0:
                h = self.activation(l, pre)
        return self.last[t](h)

    def train_column(self, t: int) -> None:
        """Make column t, its head and its laterals the only trainable parameters (the original's unfreeze_column,
        lines 138-187)."""
        self.freeze()
        modules = [getattr(self, name)[t] for name in self.layers] + [self.last[t]]
        if t > 0:
            modules += [self.lateral[name][t - 1] for name in self.layers[1:]]
        for module in modules:
            module.requires_grad_(True)
