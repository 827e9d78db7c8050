"""LFL: Less-forgetting learning (Jung et al., 2016, http://arxiv.org/abs/1607.00122), as the original code.

After each task a frozen copy of the network is kept; while learning task t, the loss adds lamb times half the squared
Euclidean distance between the network's last hidden layer and the copy's, on the current task's inputs (the
original's src/approaches/lfl.py). The network is the *_lfl variant: no dropout on that layer, and its forward also
returns it (the original's src/networks/alexnet_lfl.py).
"""
import copy

import torch

from approaches import _base


def feature_penalty(features: torch.Tensor, features_old: torch.Tensor) -> torch.Tensor:
    """sum((h_old - h)^2) / 2, summed over the batch as well as the units (the original's lfl.py l.151)."""
    return (features_old - features).pow(2).sum() / 2


class Appr(_base.Appr):
    """LFL on a network from networks/*_lfl.py: cross-entropy on task t plus lamb * the feature penalty."""

    network_variant = 'lfl'
    # The original lfl.py never read --parameter (its lamb was changed in the code for the grid search); here it sets
    # lamb, as for the other approaches
    checkpoint_attrs = ('model_old',)
    parameter_names = ('lamb',)
    clipgrad = 200  # the original's default (lfl.py l.11)

    @classmethod
    def add_arguments(cls, parser) -> None:
        super().add_arguments(parser)
        parser.add_argument('--lamb', type=float, default=0.05,
                            help='lambda_e, the weight of the feature-space penalty (default: %(default)s; original '
                                 'grid 1e-1, 5e-2, 1e-2, 5e-3, 1e-3, 5e-4, 1e-4, 5e-5, "best was 0.05, but none of '
                                 'them really worked")')

    def __init__(self, model, args, device, log):
        super().__init__(model, args, device, log)
        self.lamb = args.lamb
        self.model_old = None  # frozen copy of the network after the last task learned: the feature targets
        self.features = None
        self.features_old = None
        self.penalty = None

    def forward(self, t, x, position=None):
        # Also in evaluation: the original's validation loss, which selects the best epoch, includes the penalty
        self.features_old = None
        if t > 0:
            with torch.no_grad():
                self.features_old = self.model_old.features(x)
        outputs, self.features = self.model(x)
        return outputs

    def criterion(self, t, outputs, y):
        if self.features_old is None:
            self.penalty = torch.zeros((), device=outputs[t].device)
        else:
            self.penalty = feature_penalty(self.features, self.features_old)
        return self.ce(outputs[t], y) + self.lamb * self.penalty

    def metrics(self):
        return {'penalty': self.penalty}

    def post_train(self, t: int, data) -> None:
        # The original freezes the copy and puts it in eval mode (lfl.py l.73-75): its features come without dropout
        self.model_old = copy.deepcopy(self.model).requires_grad_(False).eval()
