"""GPM's AlexNet: the paper's AlexNet (alexnet.py) with batch normalisation, as Saha & Roy, Gradient Projection Memory
for Continual Learning, ICLR 2021, wrote it (github.com/sahagobinda/GPM, main_cifar100.py, class AlexNet):

- conv1: 64 filters of 4x4, conv2: 128 of 3x3, conv3: 256 of 2x2; stride 1, no padding, no bias (bias=False);
- fc1: 2048 units reading conv3's pooled output flattened, fc2: 2048 units; no bias;
- after each of the five layers, in this order: its batch norm (bn1..bn5: BatchNorm2d after a convolution,
  BatchNorm1d after a linear layer, track_running_stats=False, PyTorch's default eps 1e-5 and affine scale and
  shift), ReLU, dropout, and after a convolution 2x2 max-pooling: maxpool(drop(relu(bn(conv(x))))) as GPM's forward;
- dropout 0.2 after conv1 and conv2, 0.5 after conv3, fc1 and fc2 (GPM's drop1 and drop2, as alexnet.py);
- one linear head per task on fc2's 2048 units, without bias (GPM's Linear(2048, n, bias=False)).

track_running_stats=False: the batch norms keep no running statistics and normalise every batch, in training and in
evaluation alike, by its own mean and variance (their momentum, PyTorch's default 0.1, is never used). So one
sample's outputs depend on the rest of its batch, and a batch of one sample fails in BatchNorm1d (one value per
channel cannot be normalised), whether training or evaluating.

Where this differs from GPM: the kernels follow alexnet.py's rule, size // 8, size // 10 and 2, which is GPM's 4, 3,
2 at its 32x32 inputs (GPM wrote 4, 3, 2 for CIFAR-100 only; 64x64 inputs get 8, 6, 2 here). A batch of one sample,
which BatchNorm1d cannot normalise, raises networks._contract.BatchError (the training loop names the flags).
"""
from collections.abc import Sequence

import torch

from networks._common import compute_conv_output_size, heads
from networks._contract import BatchError
from networks.alexnet import MaxPool2d

VARIANT = None  # the approaches it serves: their Appr.network_variant
LAYERS = ('conv1', 'conv2', 'conv3', 'fc1', 'fc2')  # GPM's names, hence the state_dict keys
NORMS = ('bn1', 'bn2', 'bn3', 'bn4', 'bn5')  # NORMS[l] normalises LAYERS[l]'s output


class AlexNetBNLayers:
    """GPM's five layers, their batch norms, and the ReLU, dropout and max-pooling after them, for the plain and HAT
    networks."""

    def build_layers(self, inputsize: Sequence[int]) -> int:
        """Create the layers and their batch norms in GPM's order (conv1, bn1, conv2, ...); return fc2's width."""
        ncha, size, _ = inputsize
        k1, k2, k3 = size // 8, size // 10, 2
        smid = size  # the spatial size of conv3's pooled output
        for kernel in (k1, k2, k3):
            smid = compute_conv_output_size(smid, kernel) // 2
        self.conv1 = torch.nn.Conv2d(ncha, 64, k1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(64, track_running_stats=False)
        self.conv2 = torch.nn.Conv2d(64, 128, k2, bias=False)
        self.bn2 = torch.nn.BatchNorm2d(128, track_running_stats=False)
        self.conv3 = torch.nn.Conv2d(128, 256, k3, bias=False)
        self.bn3 = torch.nn.BatchNorm2d(256, track_running_stats=False)
        self.fc1 = torch.nn.Linear(256 * smid * smid, 2048, bias=False)
        self.bn4 = torch.nn.BatchNorm1d(2048, track_running_stats=False)
        self.fc2 = torch.nn.Linear(2048, 2048, bias=False)
        self.bn5 = torch.nn.BatchNorm1d(2048, track_running_stats=False)
        self.maxpool = MaxPool2d()
        self.relu = torch.nn.ReLU()
        self.drop1 = torch.nn.Dropout(0.2)
        self.drop2 = torch.nn.Dropout(0.5)
        return 2048

    def unit(self, l: int, h: torch.Tensor) -> torch.Tensor:
        """Layer l on h, then its batch norm, ReLU, dropout and, after a convolution, 2x2 max-pooling."""
        if l == 3:
            h = h.flatten(1)  # (B, 256*smid*smid), channel-major: HatNet.get_view_for relies on this order
            if h.size(0) == 1:  # PyTorch's error would be a traceback in the middle of a run
                raise BatchError('alexnet_bn normalises every batch by its own statistics, which a batch of one '
                                 'sample does not have (a set one sample longer than a multiple of the batch size)')
        h = getattr(self, NORMS[l])(getattr(self, LAYERS[l])(h))
        h = (self.drop1 if l < 2 else self.drop2)(self.relu(h))
        return self.maxpool(h) if l < 3 else h


class Net(AlexNetBNLayers, torch.nn.Module):
    """GPM's AlexNet with one linear head per task."""

    def __init__(self, inputsize: Sequence[int], taskcla: list[tuple[int, int]]):
        super().__init__()
        self.taskcla = taskcla
        self.last = heads(taskcla, self.build_layers(inputsize), bias=False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Logits of every head."""
        h = x
        for l in range(len(LAYERS)):
            h = self.unit(l, h)
        return [head(h) for head in self.last]
