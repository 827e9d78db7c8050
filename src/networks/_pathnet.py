"""What the PathNet networks share: M modules per layer, each a narrow copy of the base network's layer; a path picks
N modules per layer, whose activations are summed, and every task has its own linear head on the last layer's sum
(Fernando et al., 2017, https://arxiv.org/abs/1701.08734, as the original's src/networks/alexnet_pathnet.py builds
it, written once for any stack of layers). The best path of each task is a buffer, so it travels with the weights.
"""
import torch

from networks._common import LayerStack, Makers, heads


class PathNet(LayerStack):
    """Base of the PathNet networks. Subclasses set self.taskcla and call build(); each module of layer l is followed
    by activation(l, h) before the modules' outputs are summed, and the first layer's modules read stem(x)."""

    def __init__(self, M: int, N: int):
        super().__init__()
        self.M = M  # modules per layer
        self.N = N  # modules of a layer on one path

    def build(self, makers: Makers, head_width: int) -> None:
        """Create the M modules of every layer from one maker per layer (in forward order), module index by module
        index as the original (alexnet_pathnet.py:62-74), then one head per task (lines 76-77)."""
        self.layers = list(makers)
        for name in self.layers:
            setattr(self, name, torch.nn.ModuleList())
        for _ in range(self.M):
            for name, make in makers.items():
                getattr(self, name).append(make())
        self.last = heads(self.taskcla, head_width)
        # -1 until task t is learned (line 35): (tasks, L, N) module indices
        self.register_buffer('best_path', torch.full((len(self.taskcla), len(self.layers), self.N), -1,
                                                     dtype=torch.long))

    def forward(self, t: int, x: torch.Tensor, path: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of task t's head through `path` ((L, N) module indices), by default task t's best path."""
        path = (self.best_path[t] if path is None else path).tolist()
        h = self.stem(x)
        for l, name in enumerate(self.layers):
            modules = getattr(self, name)
            outputs = [self.activation(l, modules[k](h)) for k in path[l]]
            h = sum(outputs[1:], outputs[0])  # left to right, as the original (lines 86-108)
        return self.last[t](h)

    def taken(self, t: int) -> list[set[int]]:
        """Per layer, the modules on the best paths of tasks 0..t-1."""
        return [set(self.best_path[:t, l].flatten().tolist()) for l in range(len(self.layers))]

    def train_path(self, t: int, path: torch.Tensor) -> None:
        """Make the modules of `path` that no earlier task's best path holds, and head t, the only trainable
        parameters (the original's unfreeze_path, lines 115-130)."""
        self.freeze()
        for name, modules, taken in zip(self.layers, path.tolist(), self.taken(t)):
            for k in set(modules) - taken:
                getattr(self, name)[k].requires_grad_(True)
        self.last[t].requires_grad_(True)
