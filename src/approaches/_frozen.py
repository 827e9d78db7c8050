"""What LwF and LFL share: after each task, a frozen copy of the network as that task left it, whose outputs on the
current inputs the loss of the next tasks reads (the distillation targets, the features to stay near)."""
import copy
from collections.abc import Callable

import torch

from approaches import _base


class Appr(_base.Appr):
    """An approach that learns task t against a frozen copy of the network after task t-1."""

    checkpoint_attrs = ('model_old',)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.model_old = None  # the network after the last task learned, frozen

    def old(self, t: int, x: torch.Tensor, read: Callable) -> torch.Tensor | None:
        """read(model_old, x) without gradients, from the second task on (also in evaluation: the original's
        validation loss, which selects the best epoch, includes the terms computed from it); None on the first."""
        if t == 0:
            return None
        with torch.no_grad():
            return read(self.model_old, x)

    def post_train(self, t: int, data) -> None:
        # The original freezes the copy and puts it in eval mode (lwf.py l.79-81, lfl.py l.73-75): what it gives
        # comes without dropout
        self.model_old = copy.deepcopy(self.model).requires_grad_(False).eval()
