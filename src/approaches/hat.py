"""HAT: hard attention to the task (Serra et al., ICML 2018), as the paper and the original code.

The four ideas, as hooks on the shared loop:
  forward        gates every hidden unit by a = sigmoid(s * e_t), s annealed from 1/smax to smax within each epoch
                 (Eq. 3) and s = smax at evaluation; the loss adds c * the attention regulariser (Eq. 5);
  post_backward  multiplies each weight's gradient by 1 - min(a_pre of its two units) (Eq. 2), and rescales the
                 embedding gradients to compensate the annealing (Eq. 4);
  post_step      clamps the embeddings to [-thres_emb, thres_emb];
  post_train     accumulates the task's attention: a_pre = max(a_pre, a_t at s = smax) (Eq. 1 and below).

Options of the paper's analysis (the original's hat-test, which is this approach with --monitor on): --monitor saves
per-epoch losses, accuracies, regularisers and masks; --emb-init uniform draws the embeddings from U(0, 2) (the
compression experiment); --single-task trains the first task only.
"""
import gzip
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from approaches import _base
from plumbing import files, logs
from plumbing.hparams import param


class Appr(_base.Appr):
    """HAT on a network from networks/*_hat.py."""

    @dataclass
    class Hyper:
        lamb: float = param(0.75, 'the regularisation strength, Eq. 5', symbol='c', bounds='[0, inf)',
                            grid='0.1, 0.25, 0.5, 0.75, 1, 1.5, 2.5, 4', legacy=True)
        # s anneals from 1/smax up to smax: below 1 it would fall, and the gates would end softer than they began
        smax: float = param(400, 'the largest gate temperature, Eq. 3', symbol='s_max', type=float, bounds='[1, inf)',
                            grid='25, 50, 100, 200, 400, 800', legacy=True)
        thres_cosh: float = param(50, 'clamp of s*e inside cosh in the compensation, Eq. 4', type=float,
                                  bounds='(0, inf)')
        thres_emb: float = param(6, 'embeddings are clamped to [-thres_emb, thres_emb]', type=float,
                                 bounds='(0, inf)')
        monitor: bool = param(False, "save per-epoch losses, accuracies, regularisers and masks (the original "
                              "hat-test's logs) to --monitor-path after every task")
        monitor_path: Path | None = param(None, 'gzip pickle of the monitoring logs (default: <logs-dir>/<output '
                                          'name>_masks.pkz)', type=Path)
        emb_init: str | None = param('normal', 'task embeddings drawn from N(0, 1), or U(0, 2) as in the compression '
                                     'experiment (for hat-test, as the original: uniform on alexnet_hat)',
                                     type=str, choices=('normal', 'uniform'))
        single_task: bool = param(False, "train the first task only (later tasks keep their initial embeddings); "
                                  "evaluate at s = 10000 * smax, as the original's compression experiment")

    network_variant = 'hat'
    forward_per_task = True  # task t's gates
    checkpoint_attrs = ('mask_pre', 'mask_back', 'logs')
    clipgrad = 10000

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.mask_pre = None  # cumulative attention a_pre over the tasks learned so far, one tensor per layer
        self.mask_back = {}  # parameter name -> 1 - its view of mask_pre: its gradient multiplier
        self.s = self.hp.smax  # the gate temperature of the training steps to come
        # That temperature and Eq. 4's smax / s, as tensors: a step replayed as a CUDA graph reads them
        self.s_train = torch.zeros((), device=self.device)
        self.smax_over_s = torch.zeros((), device=self.device)
        if self.hp.emb_init == 'uniform':
            with torch.no_grad():
                for emb in self.model.embeddings():
                    emb.weight.uniform_(0, 2)
        self.monitor_path = None
        if self.hp.monitor:
            self.monitor_path = (self.hp.monitor_path or
                                 self.context.logs_dir / (self.context.name + logs.MONITOR_SUFFIX))
            files.ensure_writable_dir(self.monitor_path.parent, 'monitoring logs')
        # The original hat-test's logs: per task, arrays over epochs, masks per layer (epoch -1: before training)
        self.logs = {k: {} for k in ('train_loss', 'train_acc', 'train_reg', 'valid_loss', 'valid_acc', 'valid_reg',
                                     'mask', 'mask_pre', 'task_name', 'test_acc', 'test_loss')}

    def pre_batch(self, position):
        i, n = position
        smax = self.hp.smax
        self.set_temperature((smax - 1 / smax) * i / n + 1 / smax)  # Eq. 3, written as the original

    def set_temperature(self, s: float) -> None:
        """The gate temperature s of the training steps to come."""
        self.s = s
        # Rounded to float32 from Python's doubles, as the original's float32 tensor ops round s and smax / s
        self.s_train.fill_(s)
        self.smax_over_s.fill_(self.hp.smax / s)

    def forward(self, t, x, training):
        s = self.s_train if training else self.hp.smax * (10000 if self.hp.single_task else 1)
        outputs, masks = self.model(t, x, s=s)
        return outputs, {'masks': masks}

    def regulariser(self, masks: list[torch.Tensor]) -> torch.Tensor:
        """Eq. 5: sum(a * (1 - a_pre)) / sum(1 - a_pre) over all layers; for the first task sum(a) / units."""
        if self.mask_pre is None:
            return sum(m.sum() for m in masks) / sum(m.numel() for m in masks)
        free = [1 - mp for mp in self.mask_pre]
        return sum((m * f).sum() for m, f in zip(masks, free)) / sum(f.sum() for f in free)

    def criterion(self, t, outputs, y, extras):
        reg = self.regulariser(extras['masks'])
        return self.ce(outputs[t], y) + self.hp.lamb * reg, {'reg': reg}

    # The hooks below run torch._foreach_* ops over all layers at once: on a GPU one kernel per operation instead of
    # one per parameter, on CPU the same per-tensor operations; the arithmetic is the per-parameter loop's either way

    @torch.no_grad()
    def post_backward(self, t: int) -> None:
        self.adjust_gradients(t)
        # Eq. 4: undo the effect of the annealed s on the embedding gradients,
        # grad *= smax / s * (cosh(clamp(s * e, -thres_cosh, thres_cosh)) + 1) / (cosh(e) + 1)
        e = [emb.weight for emb in self.model.embeddings()]
        num = torch._foreach_mul(e, self.s_train)
        torch._foreach_clamp_min_(num, -self.hp.thres_cosh)
        torch._foreach_clamp_max_(num, self.hp.thres_cosh)
        torch._foreach_cosh_(num)
        torch._foreach_add_(num, 1)
        den = torch._foreach_cosh(e)
        torch._foreach_add_(den, 1)
        factor = torch._foreach_mul(num, self.smax_over_s)
        torch._foreach_div_(factor, den)
        torch._foreach_mul_([w.grad for w in e], factor)

    def adjust_gradients(self, t: int) -> None:
        """Eq. 2: each masked parameter's gradient times its multiplier 1 - a_pre (from the second task on); the
        hook a variant replaces (AdaHAT: adaptive rates)."""
        if t > 0:
            params = dict(self.model.named_parameters())
            torch._foreach_mul_([params[name].grad for name in self.mask_back], list(self.mask_back.values()))

    @torch.no_grad()
    def post_step(self, t: int) -> None:
        e = [emb.weight for emb in self.model.embeddings()]
        torch._foreach_clamp_min_(e, -self.hp.thres_emb)
        torch._foreach_clamp_max_(e, self.hp.thres_emb)

    def _mask_arrays(self, t: int) -> list[np.ndarray]:
        with torch.no_grad():
            return [m.cpu().numpy().astype(np.float32) for m in self.model.mask(t, s=self.hp.smax)]

    def pre_train(self, t: int) -> None:
        if self.monitor_path is None:
            return
        before = self._mask_arrays(t)
        self.logs['mask'][t] = {i: {-1: m} for i, m in enumerate(before)}
        self.logs['mask_pre'][t] = {i: np.zeros_like(m) if self.mask_pre is None else
                                    self.mask_pre[i].cpu().numpy().astype(np.float32) for i, m in enumerate(before)}
        for k in ('train_loss', 'train_acc', 'train_reg', 'valid_loss', 'valid_acc', 'valid_reg'):
            self.logs[k][t] = np.array([], dtype=np.float64)

    def fit(self, t, train, valid):
        if self.hp.single_task and t > 0:
            return float('nan')
        return super().fit(t, train, valid)

    def post_epoch(self, t: int, epoch: int, on_train: dict, on_valid: dict) -> None:
        if self.monitor_path is None:
            return
        for split, result in (('train', on_train), ('valid', on_valid)):
            for k in ('loss', 'acc', 'reg'):
                self.logs[f'{split}_{k}'][t] = np.append(self.logs[f'{split}_{k}'][t], result[k])
        for i, m in enumerate(self._mask_arrays(t)):
            self.logs['mask'][t][i][epoch] = m

    def after_tests(self, t: int, results: dict) -> None:
        if self.monitor_path is None:
            return
        for u in range(t + 1):
            self.logs['task_name'][u] = results['task_names'][u]
        self.logs['test_acc'][t] = results['acc'][t].copy()
        self.logs['test_loss'][t] = results['lss'][t].copy()
        files.atomic_write(self.monitor_path, lambda f: f.write(gzip.compress(
            pickle.dumps(self.logs, protocol=pickle.HIGHEST_PROTOCOL))))
        print(f'Saved the monitoring log (per-epoch values and masks) at {self.monitor_path}')

    @torch.no_grad()
    def capacity(self, t: int) -> dict:
        """Of the masked parameters (the gated layers' weights and biases), those each task's attention keeps open
        (their view of its stored mask above 1/2: e > 0 at s = smax), and those of the tasks so far (a_pre's)."""
        params = dict(self.model.named_parameters())

        def opened(masks):
            return sum(int((self.model.get_view_for(name, masks) > 0.5).sum()) for name in self.mask_back)

        return _base.capacity_record(t, 'masked parameters', sum(params[name].numel() for name in self.mask_back),
                                     [opened(self.task_mask(u)) for u in range(t + 1)], opened(self.mask_pre))

    def task_mask(self, t: int) -> list[torch.Tensor]:
        """The attention task t keeps once learned, a_t at s = smax, one (1, units) tensor per gated layer."""
        return [m.detach().clone() for m in self.model.mask(t, s=self.hp.smax)]

    @torch.no_grad()
    def post_train(self, t: int, data) -> None:
        mask = self.task_mask(t)
        self.mask_pre = mask if self.mask_pre is None else [torch.max(a, b) for a, b in zip(self.mask_pre, mask)]
        self.mask_back = {}
        for name, _ in self.model.named_parameters():
            view = self.model.get_view_for(name, self.mask_pre)
            if view is not None:
                self.mask_back[name] = 1 - view
