"""AdaHAT: adaptive hard attention to the task (Wang et al., ECML PKDD 2024), HAT whose gradient masks leak.

HAT (approaches/hat.py) multiplies each weight's gradient by 1 - min(a_pre of its two units): the weights earlier
tasks use are frozen. AdaHAT replaces that multiplier, after backward, by an adjustment rate (the paper's Eqs. 8-9):

    r_l = alpha / (epsilon + sparsity_l)        rate = r_l / (importance + r_l)

per masked parameter of gated layer l. importance is the parameter's view of the summed masks of the earlier tasks
(Eq. 7, one count per unit: how many tasks used it), the min over its output and input units as HAT's masks take
it (networks/_hat.py get_view_for); sparsity_l is the share of layer l's units left free by the earlier tasks that
the current task's gates (this step's, at the annealed s) take. A weight no earlier task used gets rate 1; one used
by k tasks about alpha / (k (epsilon + sparsity)), around 1e-5 with alpha = 1e-6: HAT with a small,
importance-weighted leak. Everything else is HAT's hooks, with the authors' choices where they differ from the
original HAT as options (docs/approaches.md lists each, with its source).

Sources: CA = github.com/pengxiang-wang/continual-learning-arena (clarena, HEAD bf58528), the code the paper points
to; LG = its paper-era predecessor continual-learning-arena-legacy (commit 1647eee); CR = continual-learning-research
(the CA configs of the paper's runs, HEAD 07c8d26).
"""
from dataclasses import dataclass

import torch

from approaches import hat
from plumbing import utils
from plumbing.hparams import like, param

# The adjustment modes: AdaHAT's and its ablations (CA adahat.py:172-203), and HAT's with the paper's baselines
# (CA hat.py:250-276), which act on the weights earlier tasks used, w = their view of a_pre: rate = c * w + (1 - w)
ADAHAT_MODES = ('adahat', 'adahat_no_sum', 'adahat_no_reg')
HAT_MODES = ('hat', 'hat_random', 'hat_const_alpha', 'hat_const_1')
# sigmoid(s * e) at this s is exactly 1 for e > 1e-28 and 0 for e < -1e-28 in float32: the binary mask e > 0
# (CA base.py:336-351) through the network's own gates
BINARY_S = 1e30
MIN_FREE = 10  # a layer (the network) with at most this many free units has sparsity (regulariser) 0: theirs


class Appr(hat.Appr):
    """AdaHAT on a network from networks/*_hat.py."""

    @dataclass
    class Hyper(hat.Appr.Hyper):
        lamb: float = like(hat.Appr.Hyper, 'lamb', 0.1, grid='')  # CR cl_algorithm/adahat.yaml:6
        thres_emb: float | None = like(hat.Appr.Hyper, 'thres_emb', None,
                                       help="embeddings are clamped to [-thres_emb, thres_emb] after each step; "
                                            "none (the default, the authors'): no clamp; the original HAT's: 6")
        alpha: float = param(1e-6, "adjustment intensity, Eq. 9: r_l = alpha / (epsilon + sparsity_l) (the authors' "
                             'study: 1e-7 ... 1e-5); also the constant of --adjustment hat_const_alpha',
                             symbol='alpha', type=float, bounds='(0, inf)')
        epsilon: float = param(0.1, 'added to the sparsity in Eq. 9', symbol='epsilon', type=float,
                               bounds='(0, inf)')
        adjustment: str = param('adahat', 'the gradient adjustment: adahat (Eq. 9); its ablations adahat_no_sum '
                                '(importance replaced by the 1-based task number, on every masked parameter) and '
                                'adahat_no_reg (sparsity 0); hat (the original HAT\'s 1 - a_pre) and the paper\'s '
                                'baselines hat_random, hat_const_alpha, hat_const_1 (rate U(0,1), alpha, 1 on the '
                                'weights earlier tasks used)', choices=ADAHAT_MODES + HAT_MODES)
        sparsity: str = param('arena', "sparsity_l in Eq. 9: arena (CLArena's), the share of the layer's free units "
                              "the task takes; legacy (the paper-era code's), the mean of that and 1 - the share of "
                              "the used units it takes", choices=('arena', 'legacy'))
        stored_mask: str = param('binary', 'the mask a task keeps once learned (its gradient masks, its count in '
                                 "the importance, its gates when tested): binary e > 0 (CLArena's) or soft "
                                 "sigmoid(smax e) (the paper-era code's, the original HAT's)",
                                 choices=('binary', 'soft'))
        anneal: str = param('authors', "s in training: authors (both their codes'), 1/smax + (smax - 1/smax) (b - 1) "
                            "/ (B - 1) at the b-th of B batches counted from 0, negative on each epoch's first "
                            "batch; hat, the original HAT's, from 1/smax", choices=('authors', 'hat'))

    checkpoint_attrs = hat.Appr.checkpoint_attrs + ('importance', 'tasks_learned')
    # The authors' training (CR optimizer/adam.yaml, index/adahat_paper/*, cl_dataset/*): Adam at 1e-3 built anew
    # per task; their ReduceLROnPlateau is never stepped under manual optimisation, so the rate is constant; the
    # last epoch's weights (no checkpoint restored); no gradient clipping (1e30 never clips). Epochs and batch
    # sizes of their permuted MNIST and split CIFAR-100 runs
    loop_defaults = {'*': {'optimizer': 'adam', 'lr': 1e-3, 'lr_schedule': 'constant', 'keep': 'last',
                           'clipgrad': 1e30},
                     'pmnist': {'nepochs': 2, 'batch_size': 128},
                     'split_cifar100': {'nepochs': 20, 'batch_size': 64}}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # M^{<t,sum} (Eq. 7): per gated layer, (1, units), how many of the learned tasks' stored masks hold each unit
        self.importance = [torch.zeros_like(emb.weight[:1]) for emb in self.model.embeddings()]
        self.tasks_learned = 0  # tasks whose masks are stored: tested through them
        self.importance_w = self.importance_views()

    def importance_views(self) -> dict[str, torch.Tensor]:
        """Parameter name -> its importance, broadcast to its shape: min(summed mask of its output unit, of its
        input unit), the output unit's alone for a bias or a first layer (CA base.py:399-483, aggregation 'min')."""
        views = {}
        for name, _ in self.model.named_parameters():
            view = self.model.get_view_for(name, self.importance)
            if view is not None:
                views[name] = view
        return views

    def layer_index(self, name: str) -> int:
        """The gated layer whose units parameter `name` feeds: its r_l."""
        return self.model.gated.index(self.model.gate_of[name.rsplit('.', 1)[0]])

    def pre_batch(self, position):
        if self.hp.anneal == 'hat':
            return super().pre_batch(position)
        i, n = position
        b, batches = i // self.loop.batch_size, -(-n // self.loop.batch_size)
        smax = self.hp.smax
        # CA base.py:300-302, LG hat.py:68-70, with Lightning's 0-based batch_idx; one batch an epoch (their 0 / 0):
        # the first value of HAT's schedule
        s = 1 / smax + (smax - 1 / smax) * (b - 1) / (batches - 1) if batches > 1 else 1 / smax
        if s == 0:
            raise utils.UserError(f'--anneal authors gives s = 0 on the first of {batches} batches with --smax '
                                  f'{smax:g} (the compensation divides by s); choose another --smax or --batch-size, '
                                  f'or --anneal hat')
        self.set_temperature(s)

    def forward(self, t, x, training):
        if not training and self.hp.stored_mask == 'binary' and t < self.tasks_learned:
            outputs, masks = self.model(t, x, s=BINARY_S)  # a learned task is tested through its stored mask
            return outputs, {'masks': masks}
        return super().forward(t, x, training)

    def regulariser(self, masks: list[torch.Tensor]) -> torch.Tensor:
        """HAT's Eq. 5, but 0 where at most 10 units of the whole network are left free (CA
        hat_mask_sparsity.py:105-112, LG mask_sparse_reg.py:48); elsewhere HAT's, bitwise."""
        used = self.mask_pre or [torch.zeros_like(m) for m in masks]
        free = sum((1 - c).sum() for c in used)
        taken = sum((m * (1 - c)).sum() for m, c in zip(masks, used))
        enough = free > MIN_FREE
        return torch.where(enough, taken / torch.where(enough, free, 1.0), 0.0)  # no 0 / 0 in the gradient either

    def layer_sparsity(self, t: int) -> list[torch.Tensor]:
        """sparsity_l of every gated layer for this training step, from its gates (at the step's s) and a_pre."""
        masks = self.model.mask(t, s=self.s_train)  # the values this step's forward pass used
        used = self.mask_pre or [torch.zeros_like(m) for m in masks]
        sparsity = []
        for m, c in zip(masks, used):
            # CA hat_mask_sparsity.py:86-102 (the first term of LG mask_sparse_reg.py:29-33)
            free = (1 - c).sum()
            value = torch.where(free > MIN_FREE, (m * (1 - c)).sum() / free, 0.0)
            if self.hp.sparsity == 'legacy':  # LG mask_sparse_reg.py:35-41
                taken = c.sum()
                value = 0.5 * (value + torch.where(taken > MIN_FREE, 1 - (m * c).sum() / taken, 1.0))
            sparsity.append(value)
        return sparsity

    @torch.no_grad()
    def adjust_gradients(self, t: int) -> None:
        mode = self.hp.adjustment
        params = dict(self.model.named_parameters())
        if mode == 'hat':
            super().adjust_gradients(t)
        elif mode in HAT_MODES:
            if t > 0:  # w = 0 before: rate 1
                constant = {'hat_const_alpha': self.hp.alpha, 'hat_const_1': 1.0}
                for name in self.mask_back:  # weight, then bias, layer by layer: CA's order of draws (hat.py:254-260)
                    w = self.model.get_view_for(name, self.mask_pre)
                    c = torch.rand_like(w) if mode == 'hat_random' else constant[mode]
                    params[name].grad.mul_(c * w + (1 - w))
        elif t > 0 or mode == 'adahat_no_sum':  # importance 0 on the first task: every rate r / r = 1
            if mode == 'adahat_no_reg':
                r = [self.hp.alpha / self.hp.epsilon] * len(self.importance)
            else:
                r = [self.hp.alpha / (self.hp.epsilon + s) for s in self.layer_sparsity(t)]
            for name, importance in self.importance_w.items():
                r_l = r[self.layer_index(name)]
                # CA's task_id counts from 1 (adahat.py:189, pipelines/cl_main_expr.py:47)
                # torch.div, as theirs: Python's r / tensor would multiply by a reciprocal, rounded otherwise
                params[name].grad.mul_(torch.div(r_l, (t + 1 if mode == 'adahat_no_sum' else importance) + r_l))

    def post_step(self, t: int) -> None:
        if self.hp.thres_emb is not None:
            super().post_step(t)

    def task_mask(self, t: int) -> list[torch.Tensor]:
        if self.hp.stored_mask == 'soft':
            return super().task_mask(t)
        return [(emb.weight[t:t + 1] > 0).float() for emb in self.model.embeddings()]  # CA base.py:336-351

    @torch.no_grad()
    def post_train(self, t: int, data) -> None:
        super().post_train(t, data)
        self.importance = [s + m for s, m in zip(self.importance, self.task_mask(t))]  # CA adahat.py:220-233
        self.importance_w = self.importance_views()
        self.tasks_learned = t + 1

    def load_state(self, state: dict) -> None:
        super().load_state(state)
        self.importance_w = self.importance_views()
