"""IMM-mean: incremental moment matching by the mean (Lee et al., NIPS 2017), as the original's
src/approaches/imm_mean.py.

  training    weight transfer: each task starts from the weights the previous one ended with (the merged ones);
              L2 transfer: from the second task on, the loss adds lamb * sum (theta - theta_old)^2 / 2 over all
              parameters, theta_old being the weights after the previous task (imm_mean.py:154-165);
  merge       after each task from the second on, merges the task's weights with the previous ones as a running mean,
              theta = (theta_t + t * theta_old) / (t + 1) (imm_mean.py:82-88): the mean of every task's trained
              weights, with equal alphas (the original does not tune an alpha per task: imm_mean.py:29); the merged
              weights are the next task's start and anchor.
"""
from dataclasses import dataclass

import torch

from approaches import _base
from plumbing.hparams import param


LAMB_HELP = "the strength of the L2 transfer towards the previous task's weights"


class Appr(_base.Appr):
    """IMM-mean on a plain network: L2 transfer while training, weights averaged over the tasks after each one."""

    @dataclass
    class Hyper:
        # imm_mean.py:13 (the original's `regularizer`) and its grid, imm_mean.py:28
        lamb: float = param(0.0001, LAMB_HELP, symbol='lambda', bounds='[0, inf)', legacy=True,
                            grid='0.01, 0.005, 0.001, 0.0005, 0.0001, 0.00005, 0.000001, best was 0.0001')

    checkpoint_attrs = ('old',)
    clipgrad = 10000  # imm_mean.py:13

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.old = None  # parameter name -> its value after the previous task (merged): the L2-transfer anchor

    def regulariser(self) -> torch.Tensor:
        """sum (theta - theta_old)^2 / 2 over every parameter (imm_mean.py:160)."""
        return sum(torch.sum((self.old[n] - p).pow(2)) / 2 for n, p in self.model.named_parameters())

    def criterion(self, t, outputs, y, extras):
        loss = self.ce(outputs[t], y)
        if t > 0:  # as the original (imm_mean.py:158): so also when testing a later task, where it is 0
            loss = loss + self.hp.lamb * self.regulariser()
        return loss, {}

    def post_train(self, t: int, data) -> None:
        self.merge(t, data)
        self.old = {n: p.detach().clone() for n, p in self.model.named_parameters()}

    @torch.no_grad()
    def merge(self, t: int, data) -> None:
        """Replace task t's trained weights by (theta_t + t * theta_old) / (t + 1): the mean over tasks 0..t."""
        if t == 0:
            return
        for n, p in self.model.named_parameters():
            p.copy_((p + self.old[n] * t) / (t + 1))
