"""The AlexNet-like network of alexnet.py as progressive columns (the original's alexnet_progressive): one column per
task, each alexnet.py's five layers with int(1.117 * width / tasks) channels or units (64, 128, 256, 2048, 2048
scaled; 7, 14, 28, 228, 228 for CIFAR's 10 tasks), the same kernels, ReLU, dropout (0.2, 0.2, 0.5 after the
convolutions, 0.5 after the linear layers) and 2x2 max-pooling; lateral adapters into conv2, conv3, fc1 and fc2
(a 1x1 convolution as V before a convolution), none into the head (see _progressive.py).

The original chose 1.117 so that its declared parameters matched alexnet.py's (6,841,835 against 6,729,262 at
3x32x32 with CIFAR's heads), counting 2,366,109 in head adapters that never took part; the network built here has the
same widths, hence 4,475,726.
"""
import torch

from networks._progressive import ProgressiveNet
from networks.alexnet import conv_stack

VARIANT = 'progressive'  # the approaches it serves: their Appr.network_variant
EXPAND_FACTOR = 1.117  # alexnet_progressive.py:15, "increases the number of parameters"


class Net(ProgressiveNet):
    """One AlexNet-like column and one linear head per task, with lateral adapters between columns."""

    def __init__(self, inputsize, taskcla):
        super().__init__()
        ncha = inputsize[0]
        self.taskcla = taskcla
        with torch.device('meta'):  # alexnet.py's kernels and pooled size, without memory or random draws
            convs, self.smid = conv_stack(inputsize)
        k1, k2, k3 = (c.kernel_size for c in convs)
        c1, c2, c3 = (int(EXPAND_FACTOR * c.out_channels / len(taskcla)) for c in convs)
        f1 = f2 = int(EXPAND_FACTOR * 2048 / len(taskcla))  # lines 19-40
        self.maxpool = torch.nn.MaxPool2d(2)
        self.relu = torch.nn.ReLU()
        self.drop1 = torch.nn.Dropout(0.2)
        self.drop2 = torch.nn.Dropout(0.5)
        self.build({'conv1': lambda: torch.nn.Conv2d(ncha, c1, k1),
                    'conv2': lambda: torch.nn.Conv2d(c1, c2, k2),
                    'conv3': lambda: torch.nn.Conv2d(c2, c3, k3),
                    'fc1': lambda: torch.nn.Linear(c3 * self.smid * self.smid, f1),
                    'fc2': lambda: torch.nn.Linear(f1, f2)}, head_width=f2)

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        """The image, as every column reads it."""
        return x

    def activation(self, l: int, h: torch.Tensor) -> torch.Tensor:
        """ReLU, dropout and, after a convolution, 2x2 max-pooling; flattened before the first linear layer."""
        if l < 3:
            h = self.maxpool((self.drop1 if l < 2 else self.drop2)(self.relu(h)))
            return h.flatten(1) if l == 2 else h  # (B, C*smid*smid) after conv3
        return self.drop2(self.relu(h))
