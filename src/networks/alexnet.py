"""AlexNet-like network of the paper: 3 conv layers (64, 128, 256 filters; kernels size//8, size//10, 2), each with
ReLU, dropout (0.2, 0.2, 0.5) and 2x2 max-pooling, then 2 fully connected layers of 2048 units with dropout 0.5."""
import torch
import torch.nn.functional as F

from utils import compute_conv_output_size

VARIANT = None  # the approaches it serves: their Appr.network_variant


def conv_stack(inputsize) -> tuple[list[torch.nn.Conv2d], int]:
    """The three convolutions and the spatial size of their pooled output, from the input size (C, H, W)."""
    ncha, size, _ = inputsize
    convs, channels, s = [], ncha, size
    for filters, kernel in ((64, size // 8), (128, size // 10), (256, 2)):
        convs.append(torch.nn.Conv2d(channels, filters, kernel_size=kernel))
        s = compute_conv_output_size(s, kernel) // 2
        channels = filters
    return convs, s


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


class WidthScaled:
    """What the progressive columns and the pathnet modules share: alexnet.py's five layers with scaled widths (same
    kernels, ReLU, dropout, 2x2 max-pooling), for a network whose build() takes {layer name: module maker}."""

    def scaled_layers(self, inputsize, width) -> tuple[dict, int]:
        """Makers of the five layers, each width w (64, 128, 256, 2048, 2048) becoming width(w), and fc2's width."""
        ncha = inputsize[0]
        with torch.device('meta'):  # alexnet.py's kernels and pooled size, without memory or random draws
            convs, self.smid = conv_stack(inputsize)
        k1, k2, k3 = (c.kernel_size for c in convs)
        c1, c2, c3 = (width(c.out_channels) for c in convs)
        f1 = f2 = width(2048)
        self.maxpool = MaxPool2d()
        self.relu = torch.nn.ReLU()
        self.drop1 = torch.nn.Dropout(0.2)
        self.drop2 = torch.nn.Dropout(0.5)
        return {'conv1': lambda: torch.nn.Conv2d(ncha, c1, k1),
                'conv2': lambda: torch.nn.Conv2d(c1, c2, k2),
                'conv3': lambda: torch.nn.Conv2d(c2, c3, k3),
                'fc1': lambda: torch.nn.Linear(c3 * self.smid * self.smid, f1),
                'fc2': lambda: torch.nn.Linear(f1, f2)}, f2

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        """The image, as the first layer reads it."""
        return x

    def activation(self, l: int, h: torch.Tensor) -> torch.Tensor:
        """ReLU, dropout and, after a convolution, 2x2 max-pooling; flattened before the first linear layer."""
        if l < 3:
            h = self.maxpool((self.drop1 if l < 2 else self.drop2)(self.relu(h)))
            return h.flatten(1) if l == 2 else h  # (B, C*smid*smid) after conv3; a sum of modules commutes with it
        return self.drop2(self.relu(h))


class Net(torch.nn.Module):
    """AlexNet-like network with one linear head per task."""

    def __init__(self, inputsize, taskcla):
        super().__init__()
        self.taskcla = taskcla
        (self.conv1, self.conv2, self.conv3), self.smid = conv_stack(inputsize)
        self.maxpool = MaxPool2d()
        self.relu = torch.nn.ReLU()
        self.drop1 = torch.nn.Dropout(0.2)
        self.drop2 = torch.nn.Dropout(0.5)
        self.fc1 = torch.nn.Linear(256 * self.smid * self.smid, 2048)
        self.fc2 = torch.nn.Linear(2048, 2048)
        self.last = torch.nn.ModuleList(torch.nn.Linear(2048, n) for _, n in taskcla)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last hidden layer's activations."""
        h = self.maxpool(self.drop1(self.relu(self.conv1(x))))
        h = self.maxpool(self.drop1(self.relu(self.conv2(h))))
        h = self.maxpool(self.drop2(self.relu(self.conv3(h))))
        h = h.flatten(1)  # (B, 256*smid*smid)
        h = self.drop2(self.relu(self.fc1(h)))
        return self.drop2(self.relu(self.fc2(h)))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Logits of every head."""
        h = self.features(x)
        return [head(h) for head in self.last]
