"""IMM-mode: incremental moment matching by the mode (Lee et al., NIPS 2017), as the original's
src/approaches/imm_mode.py.

  training    as IMM-mean: weight transfer, and from the second task on the L2 transfer
              lamb * sum (theta - theta_old)^2 / 2 (imm_mode.py:158-169);
  merge       after each task, its Fisher diagonal F_t on its training set, computed with that criterion, the L2
              transfer towards the previous task's weights included (imm_mode.py:85-88); from the second task on,
              the Fisher-weighted mode of the task's weights and the previous merge, whose Fisher is the sum of the
              previous tasks' (equal alphas): theta = (F_t * theta_t + F_old * theta_old) / F with F = F_old + F_t
              (imm_mode.py:89-92). By induction theta = sum_k F_k theta_k / sum_k F_k over the tasks' trained weights.

The original meant this merge but did not apply it: its loop rebinds the name of each parameter to a new tensor
(`p = fisher_new[n] * p + ...`, then `p /= ...`), so the model kept the task's trained weights and only the summed
Fisher was kept. The paper's IMM-mode numbers come from that code, so it stays the default; --apply-merge applies
the merge (docs/approaches.md: deviations).
"""
from dataclasses import dataclass

import torch

from approaches import _fisher, imm_mean
from plumbing.hparams import param


class Appr(imm_mean.Appr):
    """IMM-mode on a plain network: L2 transfer while training, a Fisher-weighted merge after each task."""

    @dataclass
    class Hyper(imm_mean.Appr.Hyper):
        # The original's default is 0.01 (imm_mode.py:13), although its grid comment says the best was 1 (line 29)
        lamb: float = param(0.01, imm_mean.LAMB_HELP, symbol='lambda', bounds='[0, inf)', legacy=True,
                            grid='10, 1, 0.1, 0.01, 0.001, 0.0001, 0.00001, best was 1')
        apply_merge: bool = param(False, "apply the Fisher-weighted merge, which the original computed but never "
                                  "applied (off by default: the paper's numbers come without it)")

    clipgrad = 1000  # imm_mode.py:13
    checkpoint_attrs = ('old', 'fisher')

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fisher = None  # parameter name -> sum of the Fisher diagonals of the tasks learned

    def merge(self, t: int, data) -> None:
        """Accumulate task t's Fisher; with --apply-merge, replace its trained weights by their Fisher-weighted mode
        with the previous merge."""
        x, y = data[t]['train']['x'], data[t]['train']['y']
        # Before the anchor moves on, so the L2 transfer's gradient enters the Fisher, as in the original
        fisher = _fisher.fisher_diagonal(self.model, lambda xb, yb: self.loss(t, xb, yb), x, y)
        if t == 0:
            self.fisher = fisher
            return
        with torch.no_grad():
            for n, p in self.model.named_parameters():
                weighted = fisher[n] * p + self.fisher[n] * self.old[n]
                self.fisher[n] = self.fisher[n] + fisher[n]
                if self.hp.apply_merge:
                    # Where no task has any Fisher the original divides by 1, setting the weight to 0 (imm_mode.py:92)
                    p.copy_(weighted / ((self.fisher[n] == 0).to(p.dtype) + self.fisher[n]))
