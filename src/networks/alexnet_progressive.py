"""The AlexNet-like network of alexnet.py as progressive columns (the original's alexnet_progressive): one column per
task, each alexnet.py's five layers with int(1.117 * width / tasks) channels or units (64, 128, 256, 2048, 2048
scaled; 7, 14, 28, 228, 228 for CIFAR's 10 tasks), the same kernels, ReLU, dropout (0.2, 0.2, 0.5 after the
convolutions, 0.5 after the linear layers) and 2x2 max-pooling; lateral adapters into conv2, conv3, fc1 and fc2
(a 1x1 convolution as V before a convolution), none into the head (see _progressive.py).

The original chose 1.117 so that its declared parameters matched alexnet.py's (6,841,835 against 6,729,262 at
3x32x32 with CIFAR's heads), counting 2,366,109 in head adapters that never took part; the network built here has the
same widths, hence 4,475,726.
"""
from collections.abc import Sequence

from networks._progressive import ProgressiveNet
from networks.alexnet import AlexNetLayers

VARIANT = 'progressive'  # the approaches it serves: their Appr.network_variant
EXPAND_FACTOR = 1.117  # alexnet_progressive.py:15, "increases the number of parameters"


class Net(AlexNetLayers, ProgressiveNet):
    """One AlexNet-like column and one linear head per task, with lateral adapters between columns."""

    def __init__(self, inputsize: Sequence[int], taskcla: list[tuple[int, int]]):
        super().__init__()
        self.taskcla = taskcla
        makers, head_width = self.layer_makers(inputsize, width=lambda w: int(EXPAND_FACTOR * w / len(taskcla)))
        self.build(makers, head_width=head_width)
