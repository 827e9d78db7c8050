"""The MLP of mlp.py as PathNet modules (the original has none; built by the rules of its alexnet_pathnet): one layer of
M = 16 modules per hidden layer of mlp.py (L = 2), each int(0.162 * 2000) = 324 ReLU units with dropout 0.5 applied
before the N = 3 modules of a path are summed; dropout 0.2 on the input, drawn once for the first layer's modules (as
alexnet_pathnet's modules share the image); one head per task on the last sum.

M and N are alexnet_pathnet's. Its factor 0.258 made the network's parameters match alexnet.py's; 0.162 does the same
for mlp.py (a module's first layer grows linearly with the factor here, its fc1 quadratically there): 5,786,740
parameters against 5,772,100 on pmnist (+0.3%; alexnet_pathnet: +4.0%), 5,757,490 against 5,592,010 on mnist2.
"""
from collections.abc import Sequence

from networks._pathnet import PathNet
from networks.mlp import MLPLayers

VARIANT = 'pathnet'  # the approaches it serves: their Appr.network_variant
EXPAND_FACTOR = 0.162  # matches mlp.py's parameters, as alexnet_pathnet.py:29 matched alexnet.py's
M = 16  # modules per layer, as alexnet_pathnet.py:31
N = 3  # modules per layer on a path, as alexnet_pathnet.py:30


class Net(MLPLayers, PathNet):
    """M MLP modules per hidden layer, paths of N modules per layer, one linear head per task."""

    def __init__(self, inputsize: Sequence[int], taskcla: list[tuple[int, int]], nlayers: int = 2, nhid: int = 2000,
                 pdrop1: float = 0.2, pdrop2: float = 0.5):
        super().__init__(M, N)
        self.taskcla = taskcla
        width = int(EXPAND_FACTOR * nhid)
        self.build(self.layer_makers(inputsize, width, nlayers, pdrop1, pdrop2), head_width=width)
