"""The AlexNet-like network of alexnet.py as PathNet modules (the original's alexnet_pathnet): L = 5 layers of M = 16
modules, each alexnet.py's layer with int(0.258 * width) channels or units (16, 33, 66, 528, 528), the same kernels,
ReLU, dropout (0.2, 0.2, 0.5 after the convolutions, 0.5 after the linear layers) and 2x2 max-pooling applied to
every module before the N = 3 modules of a path are summed; one head per task on the last sum.

M, N and the factor are the original's active configuration, "better config found by us" (alexnet_pathnet.py:27-33):
6,995,454 parameters at 3x32x32 with CIFAR's heads against alexnet.py's 6,729,262. Its comments keep two others, from
the PathNet paper: Sec. 2.4 (factor 0.325, N = 3, M = 10) and Sec. 2.5 (0.231, N = 5, M = 20, "Large M numbers like
this, given our architecture, produce no training").
"""
import torch

from networks._pathnet import PathNet
from networks.alexnet import conv_stack

VARIANT = 'pathnet'  # the approaches it serves: their Appr.network_variant
EXPAND_FACTOR = 0.258  # alexnet_pathnet.py:29, "match num params"
M = 16  # modules per layer, line 31
N = 3  # modules per layer on a path, line 30


class Net(PathNet):
    """M AlexNet-like modules per layer, paths of N modules per layer, one linear head per task."""

    def __init__(self, inputsize, taskcla):
        super().__init__(M, N)
        ncha = inputsize[0]
        self.taskcla = taskcla
        with torch.device('meta'):  # alexnet.py's kernels and pooled size, without memory or random draws
            convs, self.smid = conv_stack(inputsize)
        k1, k2, k3 = (c.kernel_size for c in convs)
        c1, c2, c3 = (int(EXPAND_FACTOR * c.out_channels) for c in convs)
        f1 = f2 = int(EXPAND_FACTOR * 2048)  # lines 39-51
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
        """The image, as the first layer's modules read it."""
        return x

    def activation(self, l: int, h: torch.Tensor) -> torch.Tensor:
        """ReLU, dropout and, after a convolution, 2x2 max-pooling; flattened before the first linear layer."""
        if l < 3:
            h = self.maxpool((self.drop1 if l < 2 else self.drop2)(self.relu(h)))
            return h.flatten(1) if l == 2 else h  # (B, C*smid*smid) after conv3; the sum commutes with it
        return self.drop2(self.relu(h))
