"""AlexNet-like network of the paper: 3 conv layers (64, 128, 256 filters; kernels size//8, size//10, 2), each with
ReLU, dropout (0.2, 0.2, 0.5) and 2x2 max-pooling, then 2 fully connected layers of 2048 units with dropout 0.5."""
import torch

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


class Net(torch.nn.Module):
    """AlexNet-like network with one linear head per task."""

    def __init__(self, inputsize, taskcla):
        super().__init__()
        self.taskcla = taskcla
        (self.conv1, self.conv2, self.conv3), self.smid = conv_stack(inputsize)
        self.maxpool = torch.nn.MaxPool2d(2)
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
