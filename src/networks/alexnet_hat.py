"""The AlexNet-like network of alexnet.py with HAT's task gates on all five hidden layers (the original's
alexnet_hat): each gate multiplies a layer's units (conv channels after pooling, fc units after dropout)."""
import torch

from networks._hat import HatNet
from networks.alexnet import MaxPool2d, conv_stack

VARIANT = 'hat'  # the approaches it serves: their Appr.network_variant


class Net(HatNet):
    """AlexNet-like network with one gate embedding per hidden layer and one linear head per task."""

    def __init__(self, inputsize, taskcla):
        super().__init__()
        self.taskcla = taskcla
        (self.c1, self.c2, self.c3), self.smid = conv_stack(inputsize)
        self.maxpool = MaxPool2d()
        self.relu = torch.nn.ReLU()
        self.drop1 = torch.nn.Dropout(0.2)
        self.drop2 = torch.nn.Dropout(0.5)
        self.fc1 = torch.nn.Linear(256 * self.smid * self.smid, 2048)
        self.fc2 = torch.nn.Linear(2048, 2048)
        self.last = torch.nn.ModuleList(torch.nn.Linear(2048, n) for _, n in taskcla)
        # After the heads, as in the original, so initialisation draws match it
        for layer, units in (('c1', 64), ('c2', 128), ('c3', 256), ('fc1', 2048), ('fc2', 2048)):
            self.add_gate(layer, units)

    def forward(self, t: int, x: torch.Tensor, s: float = 1) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Logits of every head and the gates used, for task t at gate temperature s."""
        masks = self.mask(t, s=s)
        gc1, gc2, gc3, gfc1, gfc2 = masks
        h = self.maxpool(self.drop1(self.relu(self.c1(x)))) * gc1.view(1, -1, 1, 1)
        h = self.maxpool(self.drop1(self.relu(self.c2(h)))) * gc2.view(1, -1, 1, 1)
        h = self.maxpool(self.drop2(self.relu(self.c3(h)))) * gc3.view(1, -1, 1, 1)
        h = h.flatten(1)  # (B, 256*smid*smid), channel-major: get_view_for relies on this order
        h = self.drop2(self.relu(self.fc1(h))) * gfc1
        h = self.drop2(self.relu(self.fc2(h))) * gfc2
        return [head(h) for head in self.last], masks
