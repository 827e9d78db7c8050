"""SupSup: Supermasks in Superposition (Wortsman et al., NeurIPS 2020, https://arxiv.org/abs/2006.14769), its
task-given scenario (GG), as the authors' code (github.com/RAIVNLab/supsup at 6a31878: models/modules.py,
models/module_util.py, main.py and experiments/GG/splitcifar100).

The weights are random signed constants and are never trained (networks/_supsup.py). Each task t learns its own
scores S_t in every masked layer; it computes with W * m_t, m_t the top fraction k_l of |S_t| in layer l, S_t learning
through the straight-through estimator, and uses its own batch norms (running statistics per task). Nothing one task
trains is read by another, so an earlier task's outputs stay bitwise what they were. As hooks on the shared loop:
  pre_train  only task t's scores and its head made trainable: the loop's Adam, rebuilt at each task as theirs
             (main.py:232), holds nothing else (their optimizer takes the `scores.<t>` parameters, main.py:203-219);
  forward    task t's masks from its scores (sorted at every training step; once for all the batches of an evaluation)
             and task t's batch norms.

Densities: each layer keeps k_l = min(0.5, er * (c_out + c_in) / (c_out * c_in * kh * kw)) of its weights (their
er_sparsity, main.py:61-75, which GG sets: rn18-supsup.yaml:18), or --density in every layer (their plain
--sparsity, argparse default 0.5, args.py:92-94).

Heads (where this differs from theirs): one trained linear head per task, bias-free, as every network of this
repository; theirs is a single shared head, a signed-constant 1x1 convolution masked per task like every other layer
(gemresnet.py:56), whose logits are the task's 5 classes.

Capacity, after each task, saved with the results (capacity()): each task's mask's share of the masked weights (heads
excluded), the union's share, and the bits that store the masks (one per masked weight and task).
"""
from dataclasses import dataclass

import torch

from approaches import _base
from networks._supsup import er_density, kept_mask, supsup_mask
from plumbing.hparams import param


class Appr(_base.Appr):
    """SupSup (task given) on a network from networks/*_supsup.py."""

    @dataclass
    class Hyper:
        er: float = param(8.0, "the Erdos-Renyi multiplier of every layer's density, min(0.5, er * (c_out + c_in) / "
                          "(c_out * c_in * kh * kw)) (their --sparsity with er_sparsity; the split CIFAR-100 launcher "
                          "sweeps 1 to 32, rn18-supsup.py:53; 8 is the SplitImageNet config's, "
                          "rn50-supsup-adam.yaml)", symbol='k', type=float, bounds='(0, inf)')
        density: float | None = param(None, "the fraction of every layer's weights a task keeps, instead of the "
                                      "Erdos-Renyi densities (their --sparsity without er_sparsity, default 0.5)",
                                      type=float, bounds='(0, 1]')

    network_variant = 'supsup'
    forward_per_task = True  # task t's supermasks and batch norms
    # The authors clip nothing; the loop always calls clip_grad_norm_, which at this bound scales by exactly 1
    clipgrad = 1e30
    # forward() sets the task of the batch norms as a Python attribute per call: not checked as a replayed CUDA graph
    graph_safe = False
    # Adam at 1e-3 with weight decay 1e-4 (an argparse default, args.py:55-60, on the scores: main.py:232-233), rebuilt
    # at each task; cosine annealing over the epochs, stepped after each (main.py:243-246, 269-270); the last epoch's
    # scores kept, evaluated on the test set after every epoch (no best-epoch selection, main.py:264-283)
    loop_defaults = {
        '*': {'optimizer': 'adam', 'lr': 1e-3, 'weight_decay': 1e-4, 'lr_schedule': 'cosine', 'keep': 'last'},
        # experiments/GG/splitcifar100: batches of 128 (rn18-supsup.yaml:22-27) and 250 epochs, the launcher's
        # --epochs=250 (rn18-supsup.py:62) over the yaml's 100
        'split_cifar100': {'nepochs': 250, 'batch_size': 128},
    }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.layers = self.model.subnet_layers()
        self.density = {name: self.hp.density or er_density(layer.weight, self.hp.er) for name, layer in self.layers}

    def pre_train(self, t: int) -> None:
        self.model.requires_grad_(False)
        for _, layer in self.layers:
            layer.scores[t].requires_grad_(True)
        self.model.last[t].requires_grad_(True)

    def forward(self, t, x, training):
        if training:
            masks = {name: supsup_mask(layer.scores[t], self.density[name]) for name, layer in self.layers}
        else:
            masks = self.evaluation_masks(t)
        return self.model(t, x, masks), {}

    def evaluation_masks(self, t: int) -> dict[str, torch.Tensor]:
        """Task t's masks, as the training forward computes them, sorted once for all the batches of an evaluation:
        computed again only when task t's scores are other tensors or have changed in place (an optimizer step, a
        checkpoint loaded: each bumps a tensor's version). The authors sort every layer's scores at every forward."""
        scores = [layer.scores[t] for _, layer in self.layers]
        key = (t, [score._version for score in scores])
        cached = getattr(self, '_evaluation_masks', None)
        if cached is None or cached[0] != key or any(a is not b for a, b in zip(cached[1], scores)):
            with torch.no_grad():
                masks = {name: kept_mask(score.abs(), self.density[name])
                         for (name, _), score in zip(self.layers, scores)}
            self._evaluation_masks = (key, scores, masks)
        return self._evaluation_masks[2]

    @torch.no_grad()
    def task_mask(self, t: int) -> dict[str, torch.Tensor]:
        """Task t's masks (bool), from its scores."""
        return {name: kept_mask(layer.scores[t].abs(), self.density[name]).bool() for name, layer in self.layers}

    def capacity(self, t: int) -> dict:
        masks = [self.task_mask(u) for u in range(t + 1)]
        union = {name: torch.stack([m[name] for m in masks]).any(0) for name, _ in self.layers}
        n = sum(m.numel() for m in union.values())
        return _base.capacity_record(t, 'masked weights', n,
                                     [sum(int(m.sum()) for m in mask.values()) for mask in masks],
                                     sum(int(m.sum()) for m in union.values()), mask_bits=n * (t + 1))
