"""SGD-F: train the whole network on the first task, then only the task heads (feature extractor frozen)."""
from approaches import _base


class Appr(_base.Appr):
    """SGD that freezes everything but the heads after each task."""

    def post_train(self, t: int, data) -> None:
        self.model.requires_grad_(False)
        self.model.last.requires_grad_(True)  # the heads, every network's `last`
