"""WSN: Winning SubNetworks (Kang et al., Forget-free Continual Learning with Winning Subnetworks, ICML 2022,
https://proceedings.mlr.press/v162/kang22b.html), as the authors' code (github.com/ihaeyong/WSN at f066982:
networks/subnet.py and main_wsn_*.py).

Each layer's weight W is learned together with a score S of its shape (networks/_subnet.py); a task computes with
the subnetwork W * m, m the top fraction c of |S| in each layer, S learning through the straight-through estimator.
The weights an earlier task's subnetwork uses are never changed again, so its outputs stay exactly what they were. As
hooks on the shared loop:
  forward        training: the mask from the current scores (and it is kept: the last minibatch's mask); evaluating
                 a finished task: its stored mask; evaluating the task being learned: the last training minibatch's
                 mask (the authors' "valid" mode, subnet.py:118-123);
  post_backward  from the second task on, the gradient of every weight in the union of the earlier tasks' masks
                 zeroed (main_wsn_pmnist.py:51-77): with Adam rebuilt at each task, their moments stay 0 and the step
                 leaves them bitwise as they were; the scores and the heads are never zeroed;
  post_train     the task's mask stored and added to the union, C <- C or M_t (main_wsn_pmnist.py:209-226).

The scores carry over from one task to the next, never reset nor frozen, as the authors' code at HEAD (its per-task
re-initialisation, model.init_masks, was active in main_wsn_cifar100_100.py until commit 030818f, 2022-12-26, "Turn-off
reinitializing weight score"; pmnist never had it): a task's mask starts as the previous task's.

The mask a task keeps is, as the authors', the mask of its last training minibatch (main_wsn_pmnist.py:210 reads the
layers' stored weight_mask), while the weights and scores are the best epoch's, restored before it (:209);
--task-mask best recomputes it from the restored scores instead.

Capacity, after each task, saved with the results (capacity()): the fraction of the masked weights each task's mask
uses, the union's fraction (what is no longer free), and the bits that store the masks.
"""
import heapq
from dataclasses import dataclass

import torch

from approaches import _base
from networks._subnet import ste_mask, top_mask
from plumbing.hparams import param

TASKS_PER_SYMBOL = 7  # the authors' offline Huffman coding packs 7 tasks' mask bits into one symbol (utils_huffman:313)


class Appr(_base.Appr):
    """WSN on a network from networks/*_subnet.py."""

    @dataclass
    class Hyper:
        c: float = param(0.5, "the fraction of each layer's weights a task's subnetwork keeps, the top c of |score| "
                         "(the authors' --sparsity, argparse default 0.5 in every main_wsn_*.py; their scripts pass "
                         "it per run, the paper reports about 0.03 to 0.5)", symbol='c', type=float, bounds='(0, 1]')
        task_mask: str = param('last-batch', "the mask a task keeps: its last training minibatch's, as the authors' "
                               "(beside the best epoch's weights), or recomputed from the best epoch's scores",
                               choices=('last-batch', 'best'))

    network_variant = 'subnet'
    forward_per_task = True  # task t's subnetwork
    checkpoint_attrs = ('masks', 'union')
    # The authors clip nothing; the loop always calls clip_grad_norm_, which at this bound scales by exactly 1
    clipgrad = 1e30
    graph_safe = False  # forward() keeps the minibatch's mask, which a replayed step would not update
    # Adam at 1e-3 without weight decay, rebuilt at each task (main_wsn_pmnist.py:171-174); on a plateau of patience 6
    # the rate divided by 2 in place, Adam's moments kept (adjust_learning_rate, networks/utils.py:42-47), a task
    # stopped below lr_min (main_wsn_pmnist.py:191-205)
    loop_defaults = {
        '*': {'optimizer': 'adam', 'lr': 1e-3, 'lr_patience': 6, 'lr_factor': 2, 'lr_min': 1e-6,
              'optimizer_on_drop': 'kept'},
        # main_wsn_pmnist.py: 5 epochs (:296), batches of 10 in training and tests
        'pmnist': {'nepochs': 5, 'batch_size': 10},
        # main_wsn_cifar100_100.py + scripts/wsn/wsn_cifar100_100.sh: 200 epochs, batches of 64
        'split_cifar100': {'nepochs': 200, 'batch_size': 64},
        # main_wsn_five_dataset_resnet18.py + wsn_five_data.sh: 100 epochs, batches of 64, lr_min 1e-5
        'five_datasets': {'nepochs': 100, 'batch_size': 64, 'lr_min': 1e-5},
        # main_wsn_tiny_image.py + wsn_tiny_image.sh: 10 epochs, batches of 10 in training, 64 in tests
        'tinyimagenet': {'nepochs': 10, 'batch_size': 10, 'eval_batch_size': 64},
    }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.layers = self.model.subnet_layers()
        self.masks = []  # per finished task: layer name -> its mask (bool)
        self.union = None  # layer name -> the union of the finished tasks' masks (bool): the frozen weights
        self.batch_masks = None  # layer name -> the mask of the last training minibatch (the authors' weight_mask)

    def scored_masks(self) -> dict[str, torch.Tensor]:
        """The masks of the current scores, differentiable by the straight-through estimator."""
        return {name: ste_mask(layer.scores[0], self.hp.c) for name, layer in self.layers}

    def forward(self, t, x, training):
        if training:
            masks = self.scored_masks()
            self.batch_masks = {name: m.detach() for name, m in masks.items()}
        elif t < len(self.masks):
            masks = {name: self.masks[t][name].to(layer.weight.dtype) for name, layer in self.layers}
        else:
            if self.batch_masks is None:  # evaluated before any training step
                with torch.no_grad():
                    self.batch_masks = self.scored_masks()
            masks = self.batch_masks
        return self.model(x, masks), {}

    def post_backward(self, t: int) -> None:
        if self.union is None:
            return
        with torch.no_grad():
            for name, layer in self.layers:
                if layer.weight.grad is not None:
                    layer.weight.grad.masked_fill_(self.union[name], 0)

    def post_train(self, t: int, data) -> None:
        if self.hp.task_mask == 'best':
            with torch.no_grad():
                mask = {name: top_mask(layer.scores[0].abs(), self.hp.c).bool() for name, layer in self.layers}
        else:
            mask = {name: m.bool() for name, m in self.batch_masks.items()}
        self.masks.append(mask)
        self.union = mask if self.union is None else {name: self.union[name] | m for name, m in mask.items()}
        self.batch_masks = None

    def capacity(self, t: int) -> dict:
        return capacity(t, self.masks, self.union)


def capacity(t: int, masks: list[dict[str, torch.Tensor]], union: dict[str, torch.Tensor]) -> dict:
    """After task t, over the masked weights (the heads excluded, as the authors' global_sparsity,
    networks/utils.py:102-114): each task's mask's share, the union's (what is no longer free) and what is free;
    beside them the bits of every task's mask at one bit per weight (what the authors' per-task Huffman coding of a
    0/1 string comes to, utils_huffman.py:138-168, less its Python object sizes), and the Huffman code's bits of the
    per-weight integers that pack 7 tasks' mask bits each (their N-bit integer mask, utils_huffman.Huffman,
    :221-270, the code alone)."""
    n = sum(m.numel() for m in union.values())
    return _base.capacity_record(t, 'masked weights', n, [sum(int(m.sum()) for m in mask.values()) for mask in masks],
                                 sum(int(m.sum()) for m in union.values()), mask_bits=n * len(masks),
                                 huffman_bits=huffman_bits(masks))


def huffman_bits(masks: list[dict[str, torch.Tensor]]) -> int:
    """Bits of the Huffman codes of the masks, layer by layer, one symbol per weight for each group of
    TASKS_PER_SYMBOL tasks (bit i of the symbol: the group's i-th task's mask)."""
    bits = 0
    for start in range(0, len(masks), TASKS_PER_SYMBOL):
        group = masks[start:start + TASKS_PER_SYMBOL]
        for name in group[0]:
            symbols = sum(m[name].flatten().long() << i for i, m in enumerate(group))
            bits += code_length(torch.unique(symbols, return_counts=True)[1].tolist())
    return bits


def code_length(counts: list[int]) -> int:
    """The length of the Huffman code of symbols occurring counts times: the sum of the merged weights (one bit per
    symbol where only one symbol occurs, as a one-leaf code spends one)."""
    if len(counts) == 1:
        return counts[0]
    heap = list(counts)
    heapq.heapify(heap)
    total = 0
    while len(heap) > 1:
        merged = heapq.heappop(heap) + heapq.heappop(heap)
        total += merged
        heapq.heappush(heap, merged)
    return total
