"""Progressive neural networks (Rusu et al., 2016, https://arxiv.org/abs/1606.04671), as the original code's baseline.

A network from networks/*_progressive.py holds one column per task. Learning task t trains only column t, its head
and the laterals into it (pre_train: the original's unfreeze_column before its loop, progressive.py:35-39); every
other column stays fixed, and since task u's logits go through columns 0..u only, what earlier tasks answer never
changes. The shared loop is the original's as it is (progressive.py:29-102), clipgrad included.

One difference: frozen columns drop the gradients of their last step. The original kept them, and its clipping over
all parameters (line 99) counted them in the norm, which could matter only for norms above clipgrad = 10000.
"""
from approaches import _base


class Appr(_base.Appr):
    """Progressive networks: a new trainable column per task, earlier columns frozen."""

    network_variant = 'progressive'
    forward_per_task = True  # columns 0..t
    clipgrad = 10000  # progressive.py:9

    def pre_train(self, t: int) -> None:
        self.model.train_column(t)

    def forward(self, t, x, training):
        # Only task t's head is computed: the others need their own columns' forward passes. A dict keeps outputs[t].
        return {t: self.model(t, x)}, {}

    def post_train(self, t: int, data) -> None:
        self.model.freeze()
