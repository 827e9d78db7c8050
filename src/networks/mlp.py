"""Multilayer perceptron: 2 hidden layers of 2000 ReLU units, dropout 0.2 on the input and 0.5 on hidden layers."""
import torch

VARIANT = None  # the approaches it serves: their Appr.network_variant


class WidthScaled:
    """What the progressive columns and the pathnet modules share: mlp.py's hidden layers at a scaled width (ReLU,
    dropout on the input and hidden layers), for a network whose build() takes {layer name: module maker}."""

    def scaled_layers(self, inputsize, width: int, nlayers: int, pdrop1: float, pdrop2: float) -> dict:
        """Makers of the nlayers hidden layers, each `width` units wide."""
        ncha, size, _ = inputsize
        self.relu = torch.nn.ReLU()
        self.drop1 = torch.nn.Dropout(pdrop1)
        self.drop2 = torch.nn.Dropout(pdrop2)
        return {f'fc{i}': lambda i=i: torch.nn.Linear(ncha * size * size if i == 1 else width, width)
                for i in range(1, nlayers + 1)}

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        """The flattened input after dropout, as the first layer reads it."""
        return self.drop1(x.flatten(1))  # (B, C*H*W)

    def activation(self, l: int, h: torch.Tensor) -> torch.Tensor:
        """ReLU and dropout."""
        return self.drop2(self.relu(h))


class Net(torch.nn.Module):
    """MLP with one linear head per task."""

    def __init__(self, inputsize, taskcla, nlayers: int = 2, nhid: int = 2000, pdrop1: float = 0.2,
                 pdrop2: float = 0.5):
        super().__init__()
        ncha, size, _ = inputsize
        self.taskcla = taskcla
        self.relu = torch.nn.ReLU()
        self.drop1 = torch.nn.Dropout(pdrop1)
        self.drop2 = torch.nn.Dropout(pdrop2)
        self.hidden = [f'fc{i}' for i in range(1, nlayers + 1)]
        for i, name in enumerate(self.hidden):
            setattr(self, name, torch.nn.Linear(ncha * size * size if i == 0 else nhid, nhid))
        self.last = torch.nn.ModuleList(torch.nn.Linear(nhid, n) for _, n in taskcla)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last hidden layer's activations."""
        h = self.drop1(x.flatten(1))  # (B, C*H*W)
        for name in self.hidden:
            h = self.drop2(self.relu(getattr(self, name)(h)))
        return h

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Logits of every head."""
        h = self.features(x)
        return [head(h) for head in self.last]
