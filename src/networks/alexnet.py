"""AlexNet-like network of the paper: 3 conv layers (64, 128, 256 filters; kernels size//8, size//10, 2), each with
ReLU, dropout (0.2, 0.2, 0.5) and 2x2 max-pooling, then 2 fully connected layers of 2048 units with dropout 0.5."""
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from networks._common import Makers, PlainNet, compute_conv_output_size

VARIANT = None  # the approaches it serves: their Appr.network_variant
LAYERS = ('conv1', 'conv2', 'conv3', 'fc1', 'fc2')  # the layers' names here, hence their state_dict keys


class MaxPool2d(torch.nn.MaxPool2d):
    """torch.nn.MaxPool2d(2), the same values and gradients to the last bit, faster on CPU: PyTorch's CPU kernel for
    the (N, C, H, W) layout is several times slower than its channels-last one, so there the forward pass pools a
    channels-last copy, and the backward pass is the (N, C, H, W) kernel's, given the same argmax indices."""

    def __init__(self):
        super().__init__(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != 'cpu' or x.dim() != 4 or not x.is_contiguous() or torch.compiler.is_compiling():
            return super().forward(x)  # GPU, channels-last input (--channels-last) or compiled: the kernel is fast
        return _PoolViaChannelsLast.apply(x)


class _PoolViaChannelsLast(torch.autograd.Function):
    # Both kernels keep the first maximum of each window, scanning it in the same order: the indices are the same

    @staticmethod
    def forward(ctx, x):
        y, indices = F.max_pool2d(x.contiguous(memory_format=torch.channels_last), 2, return_indices=True)
        ctx.save_for_backward(x, indices.contiguous())
        return y.contiguous()

    @staticmethod
    def backward(ctx, grad):
        x, indices = ctx.saved_tensors
        return torch.ops.aten.max_pool2d_with_indices_backward(grad, x, [2, 2], [2, 2], [0, 0], [1, 1], False,
                                                               indices)


class AlexNetLayers:
    """alexnet.py's five layers and the ReLU, dropout and 2x2 max-pooling that follow them, for a network that creates
    the layers from {layer name: module maker}: the plain and HAT networks at full width, the progressive columns and
    the pathnet modules scaled."""

    def layer_makers(self, inputsize: Sequence[int], names: Sequence[str] = LAYERS,
                     width: Callable[[int], int] = lambda w: w) -> tuple[Makers, int]:
        """Makers of the five layers, named `names`, width w (64, 128, 256, 2048, 2048) made width(w); fc2's width."""
        ncha, size, _ = inputsize
        k1, k2, k3 = size // 8, size // 10, 2
        self.smid = size  # the spatial size of conv3's pooled output
        for kernel in (k1, k2, k3):
            self.smid = compute_conv_output_size(self.smid, kernel) // 2
        c1, c2, c3, f1, f2 = (width(w) for w in (64, 128, 256, 2048, 2048))
        self.maxpool = MaxPool2d()
        self.relu = torch.nn.ReLU()
        self.drop1 = torch.nn.Dropout(0.2)
        self.drop2 = torch.nn.Dropout(0.5)
        makers = (lambda: torch.nn.Conv2d(ncha, c1, k1),
                  lambda: torch.nn.Conv2d(c1, c2, k2),
                  lambda: torch.nn.Conv2d(c2, c3, k3),
                  lambda: torch.nn.Linear(c3 * self.smid * self.smid, f1),
                  lambda: torch.nn.Linear(f1, f2))
        return dict(zip(names, makers, strict=True)), f2

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        """The image, as the first layer reads it."""
        return x

    def activation(self, l: int, h: torch.Tensor, drop: bool = True) -> torch.Tensor:
        """ReLU, dropout unless drop is False, and after a convolution 2x2 max-pooling (flattened after conv3)."""
        h = self.relu(h)
        if drop:
            h = (self.drop1 if l < 2 else self.drop2)(h)
        if l >= 3:
            return h
        h = self.maxpool(h)
        return h.flatten(1) if l == 2 else h  # (B, C*smid*smid) after conv3; a sum of PathNet modules commutes with it


class Net(AlexNetLayers, PlainNet):
    """AlexNet-like network with one linear head per task."""

    def __init__(self, inputsize: Sequence[int], taskcla: list[tuple[int, int]]):
        super().__init__()
        self.taskcla = taskcla
        self.build(*self.layer_makers(inputsize))
