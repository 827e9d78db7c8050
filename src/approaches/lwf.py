"""LwF: Learning without Forgetting (Li & Hoiem, ECCV 2016, https://arxiv.org/abs/1606.09282), as the original code.

After each task a frozen copy of the network is kept; while learning task t, the loss adds lamb times a knowledge
distillation term for every previous task's head: the cross-entropy between the copy's and the network's softened
output probabilities on the current task's inputs (the original's src/approaches/lwf.py and utils.cross_entropy).
"""
import copy

import torch

from approaches import _base


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


class Appr(_base.Appr):
    """LwF on a plain network: cross-entropy on task t plus lamb * the distillation terms of tasks 0..t-1."""

    checkpoint_attrs = ('model_old',)
    parameter_names = ('lamb', 'T')
    clipgrad = 100  # the original's default (lwf.py l.11)

    @classmethod
    def add_arguments(cls, parser) -> None:
        super().add_arguments(parser)
        parser.add_argument('--lamb', type=float, default=2,
                            help='lambda_o, the weight of the distillation loss (default: %(default)s; original grid '
                                 '0.1, 0.5, 1, 2, 4, 8, 10, best 2)')
        parser.add_argument('--T', type=float, default=1,
                            help='T, the distillation temperature (default: %(default)s; original grid 0.5, 1, 2, 4, '
                                 'best 1)')

    def __init__(self, model, args, device, log):
        super().__init__(model, args, device, log)
        self.lamb = args.lamb
        self.T = args.T
        self.model_old = None  # frozen copy of the network after the last task learned: the distillation targets
        self.targets_old = None
        self.dist = None

    def forward(self, t, x, position=None):
        # Also in evaluation: the original's validation loss, which selects the best epoch, includes distillation
        self.targets_old = None
        if t > 0:
            with torch.no_grad():
                self.targets_old = self.model_old(x)
        return self.model(x)

    def criterion(self, t, outputs, y):
        # Summed, not averaged, over the previous tasks' heads, as the original (lwf.py l.155-157)
        self.dist = sum((distillation(outputs[u], self.targets_old[u], T=self.T) for u in range(t)),
                        torch.zeros((), device=outputs[t].device))
        return self.ce(outputs[t], y) + self.lamb * self.dist

    def metrics(self):
        return {'dist': self.dist}

    def post_train(self, t: int, data) -> None:
        # The original freezes the copy and puts it in eval mode (lwf.py l.79-81): its targets come without dropout
        self.model_old = copy.deepcopy(self.model).requires_grad_(False).eval()
