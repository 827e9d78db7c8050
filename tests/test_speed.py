"""The speed-ups of the default path change no number: run.py gives bitwise the same matrices and per-epoch losses as
with the straightforward code written here (the original's evaluation, PyTorch's max-pooling, HAT's per-parameter
hooks); and the optional fast modes run."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from approaches import _base, hat
from networks import _hat, alexnet
from fixtures import run_main, run_small_cifar

def plain_evaluate(self, task, x, y):
    """The original's evaluation: batches taken by index tensors, autograd recording, each batch's loss, hits and
    metrics copied to the host and summed in Python floats."""
    self.model.eval()
    totals, hits, n = {}, 0, x.size(0)
    r = torch.arange(n)
    for i in range(0, n, self.loop.batch_size):
        b = r[i:i + self.loop.batch_size]
        t = task[b] if torch.is_tensor(task) else task
        outputs, extras = self.forward(t, x[b], training=False)
        loss, terms = self.criterion(t, outputs, y[b], extras)
        for k, v in {'loss': loss, **terms}.items():
            totals[k] = totals.get(k, 0) + v.detach().cpu().numpy().item() * len(b)
        hits += (self.predict(t, outputs) == y[b]).float().sum().cpu().numpy().item()
    return {'loss': totals['loss'] / n, 'acc': hits / n, **{k: v / n for k, v in totals.items() if k != 'loss'}}


def plain_mask(self, t, s=1):
    """HAT's gates through an embedding lookup, as the original."""
    task = torch.tensor([t])
    return [torch.sigmoid(s * emb(task)) for emb in self.embeddings()]


def plain_pre_batch(self, position):
    """HAT's temperature as the original: s a Python float, annealed from the batch's position."""
    i, n = position
    self.s = (self.hp.smax - 1 / self.hp.smax) * i / n + 1 / self.hp.smax


def plain_forward(self, t, x, training):
    """HAT's forward as the original: s the Python float of the batch's position, or smax."""
    outputs, masks = self.model(t, x, s=self.s if training else self.hp.smax)
    return outputs, {'masks': masks}


@torch.no_grad()
def plain_post_backward(self, t):
    """HAT's gradient masks and embedding compensation, parameter by parameter, as the original."""
    if t > 0:
        for name, p in self.model.named_parameters():
            if name in self.mask_back:
                p.grad.mul_(self.mask_back[name])
    for emb in self.model.embeddings():
        e = emb.weight
        num = torch.cosh(torch.clamp(self.s * e, -self.hp.thres_cosh, self.hp.thres_cosh)) + 1
        den = torch.cosh(e) + 1
        e.grad.mul_(self.hp.smax / self.s * num / den)


@torch.no_grad()
def plain_post_step(self, t):
    """HAT's embedding clamp, embedding by embedding."""
    for emb in self.model.embeddings():
        emb.weight.clamp_(-self.hp.thres_emb, self.hp.thres_emb)


def run_cifar(data_dir, tmp_path, *extra):
    """HAT on cifar's first 3 tasks (AlexNet: every speed-up of the default path acts); the results and the per-epoch
    log."""
    results = run_small_cifar(data_dir, tmp_path, 'hat', *extra, ntasks=3)
    log = (tmp_path / 'logs' / (Path(results['args']['output']).stem + '.jsonl')).read_text().splitlines()
    epochs = [{k: v for k, v in json.loads(line).items() if not k.startswith('seconds')} for line in log]
    return results, epochs


@pytest.mark.slow
def test_default_path_is_bitwise_the_straightforward_one(small_cifar, tmp_path, monkeypatch):
    fast, fast_epochs = run_cifar(small_cifar, tmp_path / 'fast')
    monkeypatch.setattr(_base.Appr, 'evaluate', plain_evaluate)
    monkeypatch.setattr(alexnet.MaxPool2d, 'forward', torch.nn.MaxPool2d.forward)
    monkeypatch.setattr(_hat.HatNet, 'mask', plain_mask)
    monkeypatch.setattr(hat.Appr, 'pre_batch', plain_pre_batch)
    monkeypatch.setattr(hat.Appr, 'forward', plain_forward)
    monkeypatch.setattr(hat.Appr, 'post_backward', plain_post_backward)
    monkeypatch.setattr(hat.Appr, 'post_step', plain_post_step)
    plain, plain_epochs = run_cifar(small_cifar, tmp_path / 'plain')
    assert np.array_equal(fast['acc'], plain['acc']) and np.array_equal(fast['lss'], plain['lss'])
    assert fast_epochs == plain_epochs  # every epoch's losses: the same model selection and lr schedule
    assert len({e['lr'] for e in fast_epochs}) > 1  # the schedule did act
    assert np.trace(fast['acc']) > 0


def test_max_pool_matches_pytorch_on_ties_and_nans():
    x = torch.relu(torch.randn(3, 4, 9, 7))  # odd sizes: the last row and column are dropped, as PyTorch does
    x[0, 0, :4, :4] = 0  # ties
    x[1, 1, :2, :2] = 2.5
    x[2, 2, 0, 1] = float('nan')
    grad = torch.randn(3, 4, 4, 3)
    results = []
    for pool in (torch.nn.MaxPool2d(2), alexnet.MaxPool2d()):
        xi = x.clone().requires_grad_()
        y = pool(xi)
        y.backward(grad)
        results.append((y.detach(), xi.grad))
    (y0, g0), (y1, g1) = results
    assert y1.is_contiguous() and torch.equal(y0.isnan(), y1.isnan())
    assert torch.equal(y0.nan_to_num(), y1.nan_to_num()) and torch.equal(g0, g1)


@pytest.mark.slow
@pytest.mark.parametrize('flags', [['--eval-batch-size', '1000'], ['--amp'], ['--channels-last']])
def test_fast_modes_run(small_mnist, tmp_path, flags):
    # HAT's AlexNet (convolutions, max-pooling, gates: what the modes act on), on mnist2's 2 tasks rather than
    # cifar's 10: a dry run's 3 batches per split, 27 forward passes instead of 255
    results = run_main(small_mnist, tmp_path, '--experiment', 'mnist2', '--approach', 'hat', '--network',
                       'alexnet_hat', '--batch-size', '8', '--dry-run', *flags)
    log = tmp_path / 'logs' / (Path(results['args']['output']).stem + '.jsonl')
    epochs = [json.loads(line) for line in log.read_text().splitlines()]
    assert np.all(np.isfinite(results['lss'])) and np.trace(results['acc']) > 0
    assert len(epochs) == 2 and all(np.isfinite(e['train_loss']) for e in epochs)


@pytest.mark.slow
def test_fp16_with_loss_scaling_runs(small_mnist, tmp_path):
    # On the MLP: float16 convolutions are slow on CPU
    results = run_main(small_mnist, tmp_path, '--experiment', 'mnist2', '--approach', 'hat', '--dry-run', '--amp',
                       'fp16')
    assert np.all(np.isfinite(results['lss'])) and np.trace(results['acc']) > 0
