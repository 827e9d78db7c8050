"""The MLP of mlp.py as progressive columns (the original has none; built by the rules of its alexnet_progressive):
one column per task, each mlp.py's hidden layers with int(1.225 * 2000 / tasks) ReLU units (245 for pmnist's 10
tasks, 1225 for mnist2's 2), dropout 0.2 on the input (drawn once, shared by the columns, as the columns of
alexnet_progressive share the image) and 0.5 after each hidden layer; lateral adapters into every hidden layer but the
first (fc2), none into the head (see _progressive.py).

As the original chose its factor 1.117 for CIFAR's 10 tasks so that the network's parameters matched alexnet.py's,
1.225 is chosen for pmnist's 10 tasks: 5,796,355 parameters against mlp.py's 5,772,100 (+0.4%; 1.117 gave +1.7%).
The factor is a constant, as the original's: with mnist2's 2 tasks the network has 7,942,911 parameters (mlp.py:
5,592,010), as alexnet_progressive's count also moves with the number of tasks.
"""
from collections.abc import Sequence

from networks._progressive import ProgressiveNet
from networks.mlp import MLPLayers

VARIANT = 'progressive'  # the approaches it serves: their Appr.network_variant
EXPAND_FACTOR = 1.225  # matches mlp.py's parameters on pmnist, as alexnet_progressive.py:15 matched alexnet.py's


class Net(MLPLayers, ProgressiveNet):
    """One MLP column and one linear head per task, with lateral adapters between columns."""

    def __init__(self, inputsize: Sequence[int], taskcla: list[tuple[int, int]], nlayers: int = 2, nhid: int = 2000,
                 pdrop1: float = 0.2, pdrop2: float = 0.5):
        super().__init__()
        self.taskcla = taskcla
        width = int(EXPAND_FACTOR * nhid / len(taskcla))
        self.build(self.layer_makers(inputsize, width, nlayers, pdrop1, pdrop2), head_width=width)
