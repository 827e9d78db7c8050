"""The MLP of mlp.py in the form of the original's alexnet_lfl (the original has no MLP for LFL): no dropout on the
last hidden layer, whose activations forward() also returns, for LFL's penalty on them."""
import torch

from networks import mlp

VARIANT = 'lfl'  # the approaches it serves: their Appr.network_variant


class Net(mlp.Net):
    """MLP with one linear head per task; forward returns the logits and the last hidden layer."""

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last hidden layer's activations, not dropped out."""
        h = self.drop1(x.flatten(1))  # (B, C*H*W)
        for name in self.hidden[:-1]:
            h = self.drop2(self.relu(getattr(self, name)(h)))
        # As alexnet_lfl: the penalised layer is compared with the old model's, computed in eval mode
        return self.relu(getattr(self, self.hidden[-1])(h))

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Logits of every head and the last hidden layer."""
        h = self.features(x)
        return [head(h) for head in self.last], h
