"""LwF: Learning without Forgetting (Li & Hoiem, ECCV 2016, https://arxiv.org/abs/1606.09282), as the original code.

After each task a frozen copy of the network is kept; while learning task t, the loss adds lamb times a knowledge
distillation term for every previous task's head: the cross-entropy between the copy's and the network's softened
output probabilities on the current task's inputs (the original's src/approaches/lwf.py and utils.cross_entropy).
"""
from dataclasses import dataclass

import torch

from approaches import _frozen
from plumbing.hparams import param


def distillation(outputs: torch.Tensor, targets: torch.Tensor, T: float = 1, eps: float = 1e-5) -> torch.Tensor:
    """Batch mean of -sum(p_old * log p_new): the original's utils.cross_entropy with exp=1/T (utils.py l.109-122)."""
    out = torch.softmax(outputs, 1)
    tar = torch.softmax(targets, 1)
    # The original softens probabilities, not logits: p^(1/T) renormalised (= softmax(z/T) up to rounding), and
    # skips it at T = 1
    exp = 1 / T
    if exp != 1:
        out = _normalise(out.pow(exp))
        tar = _normalise(tar.pow(exp))
    # Only the new model's probabilities are smoothed (eps spread over the classes), so that log() stays finite
    out = _normalise(out + eps / out.size(1))
    return -(tar * out.log()).sum(1).mean()


def _normalise(p: torch.Tensor) -> torch.Tensor:
    return p / p.sum(1, keepdim=True)


class Appr(_frozen.Appr):
    """LwF on a plain network: cross-entropy on task t plus lamb * the distillation terms of tasks 0..t-1."""

    @dataclass
    class Hyper:
        lamb: float = param(2, 'the weight of the distillation loss', symbol='lambda_o', type=float,
                            bounds='[0, inf)', grid='0.1, 0.5, 1, 2, 4, 8, 10, best 2', legacy=True)
        T: float = param(1, 'the distillation temperature', symbol='T', type=float, bounds='(0, inf)',
                         grid='0.5, 1, 2, 4, best 1', legacy=True)

    clipgrad = 100  # the original's default (lwf.py l.11)

    def forward(self, t, x, training):
        targets_old = self.old(t, x, lambda model_old, x: model_old(x))  # the distillation targets
        return self.model(x), {'targets_old': targets_old}

    def criterion(self, t, outputs, y, extras):
        # Summed, not averaged, over the previous tasks' heads, as the original (lwf.py l.155-157)
        dist = sum((distillation(outputs[u], extras['targets_old'][u], T=self.hp.T) for u in range(t)),
                   torch.zeros((), device=outputs[t].device))
        return self.ce(outputs[t], y) + self.hp.lamb * dist, {'dist': dist}
