"""Random: no training; predicts labels drawn from the task's training label distribution (the lower reference of
the paper's forgetting ratio)."""
import numpy as np
import torch

from approaches import _base


class Appr(_base.Appr):
    """Chance-level predictions by shuffling training labels, with numpy's global generator, as the original."""

    checkpoint_attrs = ('labels',)
    graph_safe = False  # not measured with CUDA graphs; runs eagerly

    def __init__(self, model, args, device, log):
        self.model = model
        self.device = device
        self.optimizer = None
        self.labels = {}

    def train(self, t: int, data: list[dict]) -> None:
        self.labels[t] = data[t]['train']['y'].cpu().numpy().copy()

    def eval(self, t: int, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        # The original drew from the labels of the last task trained, whatever task it tested; we use task t's own
        # labels (readme: Deviations). Only the diagonal, which both agree on, enters the forgetting ratio.
        labels = self.labels[t]
        pred = []
        while len(pred) < len(y):
            np.random.shuffle(labels)
            pred += labels.tolist()
        pred = np.array(pred[:len(y)], dtype=np.int64)
        np.random.shuffle(pred)
        return 0.0, (torch.from_numpy(pred).to(y.device) == y).float().mean().item()
