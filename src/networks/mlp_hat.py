"""The MLP of mlp.py with HAT's task gates on both hidden layers (the original's mlp_hat)."""
import torch

from networks._hat import HatNet

VARIANT = 'hat'  # the approaches it serves: their Appr.network_variant


class Net(HatNet):
    """MLP with one gate embedding per hidden layer and one linear head per task."""

    def __init__(self, inputsize, taskcla, nlayers: int = 2, nhid: int = 2000, pdrop1: float = 0.2,
                 pdrop2: float = 0.5):
        super().__init__()
        ncha, size, _ = inputsize
        self.taskcla = taskcla
        self.relu = torch.nn.ReLU()
        self.drop1 = torch.nn.Dropout(pdrop1)
        self.drop2 = torch.nn.Dropout(pdrop2)
        # Created in the original's order (fc1, efc1, fc2, efc2, heads) so initialisation draws match it
        for i in range(1, nlayers + 1):
            setattr(self, f'fc{i}', torch.nn.Linear(ncha * size * size if i == 1 else nhid, nhid))
            self.add_gate(f'fc{i}', nhid)
        self.last = torch.nn.ModuleList(torch.nn.Linear(nhid, n) for _, n in taskcla)

    def forward(self, t: int, x: torch.Tensor, s: float = 1) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Logits of every head and the gates used, for task t at gate temperature s."""
        masks = self.mask(t, s=s)
        h = self.drop1(x.flatten(1))  # (B, C*H*W)
        for name, gate in zip(self.gated, masks):
            h = self.drop2(self.relu(getattr(self, name)(h))) * gate
        return [head(h) for head in self.last], masks
