"""The AlexNet-like network of alexnet.py as PathNet modules (the original's alexnet_pathnet): L = 5 layers of M = 16
modules, each alexnet.py's layer with int(0.258 * width) channels or units (16, 33, 66, 528, 528), the same kernels,
ReLU, dropout (0.2, 0.2, 0.5 after the convolutions, 0.5 after the linear layers) and 2x2 max-pooling applied to
every module before the N = 3 modules of a path are summed; one head per task on the last sum.

M, N and the factor are the original's active configuration, "better config found by us" (alexnet_pathnet.py:27-33):
6,995,454 parameters at 3x32x32 with CIFAR's heads against alexnet.py's 6,729,262. Its comments keep two others, from
the PathNet paper: Sec. 2.4 (factor 0.325, N = 3, M = 10) and Sec. 2.5 (0.231, N = 5, M = 20, "Large M numbers like
this, given our architecture, produce no training").
"""
from collections.abc import Sequence

from networks._pathnet import PathNet
from networks.alexnet import AlexNetLayers

VARIANT = 'pathnet'  # the approaches it serves: their Appr.network_variant
EXPAND_FACTOR = 0.258  # alexnet_pathnet.py:29, "match num params"
M = 16  # modules per layer, line 31
N = 3  # modules per layer on a path, line 30


class Net(AlexNetLayers, PathNet):
    """M AlexNet-like modules per layer, paths of N modules per layer, one linear head per task."""

    def __init__(self, inputsize: Sequence[int], taskcla: list[tuple[int, int]]):
        super().__init__(M, N)
        self.taskcla = taskcla
        makers, head_width = self.layer_makers(inputsize, width=lambda w: int(EXPAND_FACTOR * w))
        self.build(makers, head_width=head_width)
