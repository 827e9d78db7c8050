"""LFL: Less-forgetting learning (Jung et al., 2016, http://arxiv.org/abs/1607.00122), as the original code.

After each task a frozen copy of the network is kept; while learning task t, the loss adds lamb times half the squared
Euclidean distance between the network's last hidden layer and the copy's, on the current task's inputs (the
original's src/approaches/lfl.py). The network is the *_lfl variant: no dropout on that layer, and its forward also
returns it (the original's src/networks/alexnet_lfl.py).
"""
from dataclasses import dataclass

import torch

from approaches import _frozen
from plumbing.hparams import param


def feature_penalty(features: torch.Tensor, features_old: torch.Tensor) -> torch.Tensor:
    """sum((h_old - h)^2) / 2, summed over the batch as well as the units (the original's lfl.py l.151)."""
    return (features_old - features).pow(2).sum() / 2


class Appr(_frozen.Appr):
    """LFL on a network from networks/*_lfl.py: cross-entropy on task t plus lamb * the feature penalty."""

    @dataclass
    class Hyper:
        # The original lfl.py never read --parameter (its lamb was changed in the code for the grid search); here it
        # sets lamb, as for the other approaches
        lamb: float = param(0.05, 'the weight of the feature-space penalty', symbol='lambda_e', bounds='[0, inf)',
                            grid='1e-1, 5e-2, 1e-2, 5e-3, 1e-3, 5e-4, 1e-4, 5e-5, "best was 0.05, but none of them '
                            'really worked"', legacy=True)

    network_variant = 'lfl'
    clipgrad = 200  # the original's default (lfl.py l.11)

    def forward(self, t, x, training):
        features_old = self.old(t, x, lambda model_old, x: model_old.features(x))  # the features to stay near
        outputs, features = self.model(x)
        return outputs, {'features': features, 'features_old': features_old}

    def criterion(self, t, outputs, y, extras):
        if extras['features_old'] is None:
            penalty = torch.zeros((), device=outputs[t].device)
        else:
            penalty = feature_penalty(extras['features'], extras['features_old'])
        return self.ce(outputs[t], y) + self.hp.lamb * penalty, {'penalty': penalty}
