"""Random: no training; predicts labels drawn from a task's training label distribution (the lower reference of
the paper's forgetting ratio).

As the original (approaches/random.py), every task tested draws from the labels of the last task trained: only the
diagonal acc[t, t] is meaningful then, and it is the only part the forgetting ratio uses, but the draws of the other
columns move numpy's generator, so the diagonal's numbers depend on them. --own-labels draws each tested task's
predictions from its own training labels instead.
"""
from dataclasses import dataclass

import numpy as np
import torch

from approaches import _base
from plumbing.hparams import param


class Appr(_base.Appr):
    """Chance-level predictions by shuffling training labels, with numpy's global generator, as the original."""

    @dataclass
    class Hyper:
        own_labels: bool = param(False, "draw each tested task's predictions from its own training labels (the "
                                 "original: from the last trained task's, whatever task is tested)")

    trains = False  # the base's case of an approach without gradient steps: no optimizer, no fit()
    checkpoint_attrs = ('labels',)
    graph_safe = False  # not measured with CUDA graphs; runs eagerly

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.labels = {}  # task -> its training labels, shuffled in place by every draw from them

    def post_train(self, t: int, data: list[dict]) -> None:
        self.labels[t] = data[t]['train']['y'].cpu().numpy().copy()

    def test(self, t: int, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        labels = self.labels[t if self.hp.own_labels else max(self.labels)]  # tasks are learned in order
        pred = []
        while len(pred) < len(y):
            np.random.shuffle(labels)
            pred += labels.tolist()
        pred = np.array(pred[:len(y)], dtype=np.int64)
        np.random.shuffle(pred)
        return 0.0, (torch.from_numpy(pred).to(y.device) == y).float().mean().item()

    def test_agnostic(self, t: int, u: int, x: torch.Tensor, y: torch.Tensor, rules) -> dict[str, tuple[float, float]]:
        """Without the label: each sample's task drawn uniformly among tasks 0..t, its class from that task's training
        labels (numpy's generator, which run.py restores after a task-agnostic evaluation); the same for every rule."""
        tasks = np.random.randint(0, t + 1, size=len(y))
        pred = np.array([np.random.choice(self.labels[k]) for k in tasks], dtype=np.int64)
        right_task = tasks == u
        right = right_task & (pred == y.cpu().numpy())
        return {rule: (right.mean().item(), right_task.mean().item()) for rule in rules}
