"""SGD-R: re-initialise the network before each task, so each task is learned from scratch (the original's
sgd_restart; earlier tasks' heads are re-initialised too, as there)."""
from approaches import _base
from plumbing import utils


class Appr(_base.Appr):
    """SGD from the initial weights on every task."""

    checkpoint_attrs = ('initial_model',)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.initial_model = utils.get_model(self.model)

    def pre_train(self, t: int) -> None:
        utils.set_model_(self.model, self.initial_model)
