"""PackNet: several tasks in one network by iterative pruning (Mallya & Lazebnik, CVPR 2018,
https://arxiv.org/abs/1711.05769), as the authors' code (github.com/arunmallya/packnet at 7b6032c: src/prune.py,
src/main.py, src/scripts/*.sh; file:line below).

Every weight of a shared layer (each Conv2d and Linear outside the heads) has an owner: 0 while it is free, t+1 once
task t holds it (a uint8 tensor per layer, as their masks, whose tasks count from 1). Task t:
  pre_train      takes every free weight (their make_finetuning_mask, prune.py:125-137; freed weights are 0, not
                 drawn anew);
  fit            trains the weights it owns, the others' gradients zeroed after each backward pass (post_backward,
                 their make_grads_zero, prune.py:69-89); prunes, layer by layer, the smallest of its own weights by
                 magnitude (prune_layer(), their pruning_mask, prune.py:26-48), which become free and 0; retrains the
                 rest (their post-prune epochs). The last task is not pruned: it keeps every weight still free (their
                 prune value -1, main.py:313-314);
  post_train     after the first task, fixes the biases and batch norms, which later tasks share as they are (their
                 default "nobias-nobn", run_all_sequence.sh:13-15: frozen gradients, batch norms in evaluation mode,
                 networks.py:117-125);
  test           of task t, with the weights of tasks 0..t only, the others zeroed for the test and put back after it
                 (their apply_mask, prune.py:100-107, zeroes them for good).
A task's weights never change after it, nor what it computes: a later task only adds weights the earlier ones do not
see.

Capacity, after each task, saved with the results (capacity()): the share of the layers' weights each task owns,
and the share still free.
"""
import dataclasses
import math
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from approaches import _base
from plumbing import hparams, utils
from plumbing.hparams import param

LAYER_TYPES = (torch.nn.Conv2d, torch.nn.Linear)
NORM_TYPES = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)
MAX_TASKS = 255  # owners are uint8, 0 standing for free
PRUNE_BOUNDS = '[0, 1)'


def _fractions(text: str) -> tuple[float, ...]:
    """An argparse type: comma-separated fractions in PRUNE_BOUNDS, as a tuple."""
    number = hparams.bounded(float, PRUNE_BOUNDS)
    return tuple(number(piece) for piece in text.split(','))


class Appr(_base.Appr):
    """PackNet on a plain network: each task trains the weights still free, keeps the largest, frees the rest."""

    @dataclass
    class Hyper:
        prune: tuple[float, ...] = param(
            (0.75,), "the fraction of a task's own weights freed after it, in each layer (their "
            "--prune_perc_per_layer): one number for every task, or comma-separated, one per task (the last "
            "repeating); 0: not pruned. Their added tasks' 0.75 (run_all_sequence.sh:26); their ImageNet, the first "
            "task there, was pruned by 0.5 (run_imagenet_pruning.sh), --prune 0.5,0.75", type=_fractions)
        prune_last: bool = param(False, 'prune the last task too (they do not: it keeps every weight still free)')
        post_prune_epochs: int | None = param(
            None, "epochs of retraining after pruning (default: half of --nepochs, rounded up: their 10 after 20, "
            "run_sequence.sh:57-70)", type=int, bounds='[1, inf)')
        post_prune_lr: float = param(1e-4, 'the constant learning rate of the retraining (run_sequence.sh:68)',
                                     bounds='(0, inf)')
        lr_decay_every: int | None = param(
            None, "the training before pruning multiplies the learning rate by --lr-decay-factor every this many "
            "epochs (default: with --lr-schedule constant, half of --nepochs, rounded up: their 10 of 20, "
            "run_sequence.sh:59-61; with another schedule, none: that schedule alone; at least --nepochs: none)",
            type=int, bounds='[1, inf)')
        lr_decay_factor: float = param(0.1, 'the step decay of the learning rate (run_sequence.sh:60)',
                                       bounds='(0, 1]')

    checkpoint_attrs = ('masks',)
    forward_per_task = True  # the weights of tasks 0..t
    # The authors clip nothing; the loop always calls clip_grad_norm_, which at this bound scales every gradient by
    # exactly 1 (it clamps max_norm / norm to at most 1)
    clipgrad = 1e30
    # Their training of an added task (run_sequence.sh:57-70, main.py:45-47): SGD with momentum 0.9, no weight decay,
    # batches of 32, 20 epochs at 1e-3 (decayed by fit()'s steps, each at a constant rate), for every experiment
    loop_defaults = {'*': {'lr': 1e-3, 'nepochs': 20, 'batch_size': 32, 'momentum': 0.9, 'lr_schedule': 'constant'}}

    def __init__(self, model: torch.nn.Module, hp=None, *args, **kwargs):
        super().__init__(model, hp, *args, **kwargs)
        if self.loop.weight_decay:
            raise utils.UserError('packnet fixes the earlier tasks\' weights by zeroing their gradients (as the '
                                  'authors, without weight decay), which a weight decay would move: give '
                                  '--weight-decay 0')
        self.ntasks = len(model.taskcla)
        if self.ntasks > MAX_TASKS:
            raise utils.UserError(f'packnet keeps at most {MAX_TASKS} tasks (uint8 owners), not {self.ntasks}')
        if len(self.hp.prune) > self.ntasks:
            raise utils.UserError(f'--prune gives {len(self.hp.prune)} fractions for {self.ntasks} tasks: give one, '
                                  f'or at most one per task')
        for value in self.hp.prune:
            if not hparams.inside(value, PRUNE_BOUNDS):
                raise ValueError(f'prune must be in {PRUNE_BOUNDS}, got {value!r}')
        self.layers = shared_layers(model)
        weights = {id(layer.weight) for _, layer in self.layers}
        heads = {id(p) for p in model.last.parameters()}
        # The shared parameters besides the owned weights (biases, batch norms): the first task's, then fixed
        self.fixed = [p for p in model.parameters() if id(p) not in weights | heads]
        self.norms = [m for m in model.modules() if isinstance(m, NORM_TYPES)]
        self.fixed_norms = []  # the batch norms pre_batch keeps in evaluation mode: all of them from the second task
        self.masks = {name: torch.zeros_like(layer.weight, dtype=torch.uint8) for name, layer in self.layers}
        # State fit() leaves for the hooks it runs (simpler than passing it through the shared loop): the best
        # validation loss and weights so far, and the phase with the epochs before it
        self.best = (math.inf, None)
        self.phase = ('train', 0)

    def prune_fraction(self, t: int) -> float:
        """The fraction of task t's weights freed after it (0 for the last task, unless --prune-last)."""
        if t == self.ntasks - 1 and not self.hp.prune_last:
            return 0.0
        return self.hp.prune[min(t, len(self.hp.prune) - 1)]

    @torch.no_grad()
    def pre_train(self, t: int) -> None:
        for mask in self.masks.values():
            mask[mask == 0] = t + 1
        self.fixed_norms = self.norms if t > 0 else []

    def pre_batch(self, position: tuple[int, int]) -> None:
        # From the second task the batch norms normalise with the first task's statistics, which they keep: their
        # train_nobn() (networks.py:117-125). The loop sets the whole model to training mode before each epoch
        for m in self.fixed_norms:
            m.eval()

    def post_backward(self, t: int) -> None:
        with torch.no_grad():
            for name, layer in self.layers:
                g = layer.weight.grad
                if g is not None:  # the earlier tasks' weights and the free ones (pruned in this task) stay
                    g.mul_(self.masks[name] == t + 1)

    def fit(self, t: int, train: tuple, valid: tuple) -> float:
        """Train on the weights task t owns, prune them, retrain what is kept. Each stretch of a constant learning
        rate is a run of the shared loop; the weights of the best validation loss over a phase are restored at its
        end (main.py:216-232, on their test set), retraining's compared with the pruned weights' (main.py:248-260)."""
        keep_best = self.loop.keep == 'best'
        nepochs = self.loop.nepochs
        every = self.hp.lr_decay_every or (math.ceil(nepochs / 2) if self.loop.lr_schedule == 'constant' else nepochs)
        self.best = (math.inf, None)
        for start in range(0, nepochs, every):  # their utils.step_lr, base_lr * factor ** ((epoch - 1) // every)
            self.phase = ('train', start)
            self.run_loop(t, train, valid, nepochs=min(every, nepochs - start),
                          lr=self.loop.lr * self.hp.lr_decay_factor ** (start // every))
        if keep_best:
            utils.set_model_(self.model, self.best[1])
        fraction = self.prune_fraction(t)
        if fraction == 0:
            return self.best[0]
        self.prune(t, fraction)
        xv, yv, taskv = valid
        self.best = (self.evaluate(taskv, xv, yv)['loss'], utils.get_model(self.model))
        epochs = self.hp.post_prune_epochs or math.ceil(self.loop.nepochs / 2)
        print(f'Retraining task {t} for {epochs} epochs at lr {self.hp.post_prune_lr:.1e}')
        self.phase = ('retrain', 0)
        self.run_loop(t, train, valid, nepochs=epochs, lr=self.hp.post_prune_lr)
        if keep_best:
            utils.set_model_(self.model, self.best[1])
        return self.best[0]

    def run_loop(self, t: int, train: tuple, valid: tuple, **changes) -> None:
        """The shared loop with the loop's settings changed (it ends at its last epoch: post_epoch keeps the best)."""
        loop = self.loop
        self.loop = dataclasses.replace(loop, keep='last', **changes)
        try:
            super().fit(t, train, valid)
        finally:
            self.loop = loop

    def post_epoch(self, t: int, epoch: int, on_train: dict, on_valid: dict) -> None:
        if on_valid['loss'] < self.best[0]:
            self.best = (on_valid['loss'], utils.get_model(self.model))

    def epoch(self, t, e, lr, train, valid):
        return super().epoch(t, self.phase[1] + e, lr, train, valid)

    def log_epoch(self, t, e, lr, improved, seconds, on_train, on_valid, **fields):
        super().log_epoch(t, self.phase[1] + e, lr, improved, seconds, on_train, on_valid, phase=self.phase[0],
                          **fields)

    @torch.no_grad()
    def prune(self, t: int, fraction: float) -> None:
        """Free the smallest `fraction` of task t's weights in each layer, and zero them (prune.py:50-67)."""
        freed = owned = 0
        for name, layer in self.layers:
            owned += int((self.masks[name] == t + 1).sum())
            freed += prune_layer(layer.weight, self.masks[name], t + 1, fraction)
        print(f'Pruned task {t}: freed {freed} of its {owned} weights ({100 * freed / max(owned, 1):.1f}%; '
              f'{100 * fraction:g}% per layer asked)')

    def post_train(self, t: int, data) -> None:
        if t == 0:
            for p in self.fixed:
                p.requires_grad_(False)

    def capacity(self, t: int) -> dict:
        """Of the layers' weights (the heads excluded), the share each task 0..t owns, and the share free."""
        counts = sum(torch.bincount(mask.flatten().long(), minlength=t + 2) for mask in self.masks.values()).tolist()
        return _base.capacity_record(t, 'weights', sum(counts), counts[1:], sum(counts[1:]))

    def test(self, t: int, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        with self.only_tasks_to(t):
            return super().test(t, x, y)

    def task_logits(self, u: int, x: torch.Tensor) -> torch.Tensor:
        with self.only_tasks_to(u):
            return super().task_logits(u, x)

    @contextmanager
    def only_tasks_to(self, t: int):
        """The layers with only tasks 0..t's weights, the others zeroed in place, bitwise as they were after."""
        kept = [layer.weight.detach().clone() for _, layer in self.layers]
        try:
            with torch.no_grad():
                for name, layer in self.layers:
                    mask = self.masks[name]
                    layer.weight.masked_fill_((mask == 0) | (mask > t + 1), 0)
            yield
        finally:
            with torch.no_grad():
                for (_, layer), weight in zip(self.layers, kept):
                    layer.weight.copy_(weight)


def shared_layers(model: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    """The Conv2d and Linear layers outside the heads (model.last), in registration order (theirs: every one in
    model.shared, prune.py:60-61); a UserError where there is none."""
    heads = {id(m) for m in model.last.modules()}
    layers = [(name, m) for name, m in model.named_modules() if isinstance(m, LAYER_TYPES) and id(m) not in heads]
    if not layers:
        raise utils.UserError(f'packnet prunes Conv2d and Linear layers, and {type(model).__module__} has none besides '
                              f'its heads')
    return layers


def cutoff(magnitudes: torch.Tensor, fraction: float) -> float | None:
    """Their threshold (prune.py:34-35): the k-th smallest magnitude, k = round(fraction * n) (Python 3's round, half
    to even, as their code under Python 3), found on the CPU as theirs; None where k is 0 (theirs fails there)."""
    k = round(fraction * magnitudes.numel())
    return magnitudes.flatten().cpu().kthvalue(k).values.item() if k else None


def prune_layer(weight: torch.Tensor, mask: torch.Tensor, owner: int, fraction: float) -> int:
    """In place: the weights `owner` holds whose magnitude is at most cutoff() of its weights' become free (mask 0)
    and 0, ties at the cutoff included, so more than round(fraction * n) where they tie (prune.py:39-43, 65-67).
    Returns how many were freed."""
    owned = mask == owner
    cut = cutoff(weight[owned].abs(), fraction)
    if cut is None:
        return 0
    freed = owned & (weight.abs() <= cut)
    mask.masked_fill_(freed, 0)
    weight.masked_fill_(freed, 0)
    return int(freed.sum())
