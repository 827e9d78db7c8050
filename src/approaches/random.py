"""Random: no training; predicts labels drawn from a task's training label distribution (the lower reference of
the paper's forgetting ratio).

As the original (approaches/random.py), every task tested draws from the labels of the last task trained: only the
diagonal acc[t, t] is meaningful then, and it is the only part the forgetting ratio uses, but the draws of the other
columns move numpy's generator, so the diagonal's numbers depend on them. --own-labels draws each tested task's
predictions from its own training labels instead.
"""
import numpy as np
import torch

from approaches import _base


class Appr(_base.Appr):
    """Chance-level predictions by shuffling training labels, with numpy's global generator, as the original."""

    checkpoint_attrs = ('labels',)
    graph_safe = False  # not measured with CUDA graphs; runs eagerly

    @classmethod
    def add_arguments(cls, parser) -> None:
        super().add_arguments(parser)
        parser.add_argument('--own-labels', action='store_true',
                            help="draw each tested task's predictions from its own training labels (the original: "
                                 "from the last trained task's, whatever task is tested)")

    def __init__(self, model, args, device, log):
        self.model = model
        self.device = device
        self.optimizer = None
        self.own_labels = args.own_labels
        self.labels = {}  # task -> its training labels, shuffled in place by every draw from them

    def train(self, t: int, data: list[dict]) -> None:
        self.labels[t] = data[t]['train']['y'].cpu().numpy().copy()

    def eval(self, t: int, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        labels = self.labels[t if self.own_labels else max(self.labels)]  # tasks are learned in order
        pred = []
        while len(pred) < len(y):
            np.random.shuffle(labels)
            pred += labels.tolist()
        pred = np.array(pred[:len(y)], dtype=np.int64)
        np.random.shuffle(pred)
        return 0.0, (torch.from_numpy(pred).to(y.device) == y).float().mean().item()
