"""EWC: elastic weight consolidation (Kirkpatrick et al., PNAS 2017), as the original's src/approaches/ewc.py.

  criterion   from the second task on, adds lamb * sum_i F_i (theta_i - theta*_i)^2 / 2 over all parameters
              (Eq. 3; ewc.py:155-162), theta* being the weights after the previous task;
  post_train  keeps the weights as the new anchor theta*, computes the task's Fisher diagonal on its training set
              (with this criterion, whose penalty has zero gradient at the anchor: ewc.py:80-89), and merges it with
              the previous tasks' as a running mean, F = (F_t + t * F_old) / (t + 1) (ewc.py:90-93).
"""
from dataclasses import dataclass

import torch

from approaches import _base, _fisher
from plumbing.hparams import param


class Appr(_base.Appr):
    """EWC on a plain network: a Fisher-weighted quadratic pull towards the previous task's weights."""

    @dataclass
    class Hyper:
        lamb: float = param(5000, 'how important the old tasks are, Eq. 3 of Kirkpatrick et al.', symbol='lambda',
                            type=float, bounds='[0, inf)',
                            grid='500, 1000, 2000, 5000, 10000, 20000, 50000, best was 5000', legacy=True)

    checkpoint_attrs = ('old', 'fisher')
    clipgrad = 100  # ewc.py:11

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.old = None  # parameter name -> its value after the previous task (the anchor theta*)
        self.fisher = None  # parameter name -> Fisher diagonal, the running mean over the tasks learned

    def penalty(self) -> torch.Tensor:
        """sum_i F_i (theta*_i - theta_i)^2 / 2 over every parameter (ewc.py:160)."""
        return sum(torch.sum(self.fisher[n] * (self.old[n] - p).pow(2)) / 2 for n, p in self.model.named_parameters())

    def criterion(self, t, outputs, y, extras):
        loss = self.ce(outputs[t], y)
        if t > 0:  # as the original (ewc.py:158): so also when testing a later task, where it is 0 at the anchor
            loss = loss + self.hp.lamb * self.penalty()
        return loss, {}

    def post_train(self, t: int, data) -> None:
        self.old = {n: p.detach().clone() for n, p in self.model.named_parameters()}
        x, y = data[t]['train']['x'], data[t]['train']['y']
        fisher = _fisher.fisher_diagonal(self.model, lambda xb, yb: self.loss(t, xb, yb), x, y)
        # One running mean instead of t Fisher diagonals in memory; the original found it better than
        # 0.5 * (F_t + F_old) (ewc.py:91-94)
        if t > 0:
            fisher = {n: (f + self.fisher[n] * t) / (t + 1) for n, f in fisher.items()}
        self.fisher = fisher
