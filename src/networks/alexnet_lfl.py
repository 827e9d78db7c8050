"""The AlexNet-like network of alexnet.py as the original's alexnet_lfl: no dropout on the last hidden layer (fc2),
whose activations forward() also returns, for LFL's penalty on them."""
import torch

from networks import alexnet

VARIANT = 'lfl'  # the approaches it serves: their Appr.network_variant


class Net(alexnet.Net):
    """AlexNet-like network with one linear head per task; forward returns the logits and the last hidden layer."""

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last hidden layer's activations, not dropped out."""
        h = self.maxpool(self.drop1(self.relu(self.conv1(x))))
        h = self.maxpool(self.drop1(self.relu(self.conv2(h))))
        h = self.maxpool(self.drop2(self.relu(self.conv3(h))))
        h = h.flatten(1)  # (B, 256*smid*smid)
        h = self.drop2(self.relu(self.fc1(h)))
        # The original's alexnet_lfl drops out fc1 but not fc2: the penalised layer is compared with the old model's,
        # computed in eval mode, and the heads see it whole
        return self.relu(self.fc2(h))

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Logits of every head and the last hidden layer."""
        h = self.features(x)
        return [head(h) for head in self.last], h
