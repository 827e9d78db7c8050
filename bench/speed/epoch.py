"""End-to-end epoch time of our training loop against the original code's way of running the same epoch, on CIFAR
shapes, measured side by side; then the optional fast modes: their gain and their effect on the numbers.

An epoch is what the patience loop does each time: train on the training set, then evaluate on it and on the
validation set. Data: synthetic CIFAR-shaped images of 10 classes (a random template per class plus noise, normalised
as the cifar loader does: learnable, so accuracies mean something). Networks and hyperparameters are run.py's
defaults for --experiment cifar; hat trains task 1 with task 0's attention in place (its gradient masks act), sgd
trains plain AlexNet.

The baseline (OriginalLoop) is the original code's hat.py / sgd.py train_epoch and eval written with today's PyTorch
API: batches taken through index tensors, a task-index tensor sent to the device for every batch (HAT's embedding
lookup), parameter-by-parameter gradient edits, evaluation recording autograd graphs (the original's volatile=True
does nothing since PyTorch 0.4) with each batch's loss, hits and regulariser copied to the host
(.cpu().numpy().item()), PyTorch's own max-pooling. It computes the same numbers as our loop, which is checked.

    python bench/speed/epoch.py                      (hat and sgd, then the fast modes but compile: a few minutes)
    python bench/speed/epoch.py --skip-modes --reps 5
    python bench/speed/epoch.py --approaches hat --modes compile,amp --ntrain 1024

The machine may be shared: repetitions are interleaved, compare the ratios rather than the seconds.
"""
import argparse
import contextlib
import copy
import os
import statistics
import sys
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # started as a script: bench.common is found from the repository root
    sys.path.insert(0, str(ROOT))
from bench import common  # noqa: E402

common.add_src_path()
# Before CUDA starts: cuBLAS's deterministic mode (used by deterministic()) needs it
os.environ.setdefault('CUBLAS_WORKSPACE_CONFIG', ':4096:8')

import numpy as np  # noqa: E402
import torch  # noqa: E402

from dataloaders import _common, cifar  # noqa: E402
from plumbing import utils  # noqa: E402
import run  # noqa: E402

NCLASSES = 10
TASKCLA = [(t, NCLASSES) for t in range(10)]
TASK = 1  # trained after task 0: HAT's gradient masks act
NOISE = 150  # on the class templates' grey levels: hat needs a few epochs to pass 80% on 2048 images
# The fast modes as run.py flags (the evaluation batch size is set by --eval-batch); 'seed' is the default run with
# other batch orders and dropout draws: the spread that any change of the random draws brings, for reference
MODES = {'seed': [], 'eval-batch': [], 'amp': ['--amp'], 'amp-fp16': ['--amp', 'fp16'],
         'channels-last': ['--channels-last'], 'compile': ['--compile'],
         'compile-cudagraphs': ['--compile', 'reduce-overhead']}


def parse_args() -> argparse.Namespace:
    """The benchmark's flags."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--approaches', default='hat,sgd', help='comma-separated (default: %(default)s)')
    p.add_argument('--ntrain', type=int, default=2048, help='training images (default: %(default)s); the '
                                                            'validation set is a ninth of it')
    p.add_argument('--reps', type=int, default=3, help='timed epochs of each loop, interleaved (default: %(default)s)')
    p.add_argument('--modes', default='seed,eval-batch,amp,channels-last',
                   help=f"comma-separated, of {', '.join(MODES)} (default: %(default)s; compile takes minutes on "
                        f"CPU, amp-fp16 is slow there)")
    p.add_argument('--eval-batch', type=int, default=1024, help='--eval-batch-size of the eval-batch mode '
                                                                '(default: %(default)s)')
    p.add_argument('--skip-modes', action='store_true', help='only the end-to-end comparison')
    p.add_argument('--device', default='cpu', help='default: %(default)s')
    args = p.parse_args()
    for flag in ('ntrain', 'reps', 'eval_batch'):
        if getattr(args, flag) < 1:
            p.error(f"--{flag.replace('_', '-')} must be at least 1")
    unknown = set(args.modes.split(',')) - set(MODES)
    if unknown:
        p.error(f"unknown modes {', '.join(sorted(unknown))}; choose from {', '.join(MODES)}")
    return args


########################################################################################################################
# Data, approaches and the original's loop


def synthetic_cifar(n: int, seed: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """n normalised CIFAR-shaped images of NCLASSES learnable classes, and their labels, on the device."""
    labels = np.random.RandomState(seed).randint(0, NCLASSES, n)
    images = common.fixtures.class_images(labels, tuple(cifar.INPUTSIZE), 11, seed, NCLASSES, noise=NOISE)
    x = _common.normalise(torch.from_numpy(images), cifar.MEAN, cifar.STD)
    return x.to(device), torch.from_numpy(labels).long().to(device)


def task_data(ntrain: int, device: torch.device, seed: int = 1) -> tuple[tuple, tuple]:
    """(x, y) of a training set of ntrain images and of a validation set of a ninth of that (cifar's 10%)."""
    x, y = synthetic_cifar(ntrain + max(1, ntrain // 9), seed, device)
    return (x[:ntrain], y[:ntrain]), (x[ntrain:], y[ntrain:])


def build(approach: str, device: torch.device, flags=(), seed: int = 0):
    """The approach and network run.py builds for --experiment cifar (its defaults, plus flags) on 10-class tasks,
    after a short task 0 (for hat: its attention becomes mask_pre, so that task 1's gradients are masked)."""
    args, _, module, network = run.parse_args(['--experiment', 'cifar', '--approach', approach, *flags])
    utils.seed_everything(seed)
    appr = run.build_approach(module, network.Net(cifar.INPUTSIZE, TASKCLA).to(device), args, device)
    x0, y0 = synthetic_cifar(4 * appr.loop.batch_size, seed + 100, device)
    appr.train_epoch(0, x0, y0)
    appr.post_train(0, None)
    return appr


def lookup_mask(net, t: int, s: float = 1) -> list[torch.Tensor]:
    """The original's gates: an embedding lookup through a task-index tensor sent to the device at every call."""
    task = torch.LongTensor([t]).to(net.embeddings()[0].weight.device)
    return [torch.sigmoid(s * emb(task)) for emb in net.embeddings()]


class OriginalLoop:
    """The original code's epoch (hat.py and sgd.py: train_epoch, eval) on a copy of an approach's network and HAT
    state, with the same hyperparameters."""

    def __init__(self, appr):
        self.model = copy.deepcopy(appr.model)
        self.model.maxpool = torch.nn.MaxPool2d(2)  # PyTorch's, as the original
        self.hat = hasattr(self.model, 'embeddings')
        if self.hat:
            self.model.mask = types.MethodType(lookup_mask, self.model)
            self.mask_pre, self.mask_back = appr.mask_pre, appr.mask_back
            self.smax, self.lamb = appr.hp.smax, appr.hp.lamb
            self.thres_cosh, self.thres_emb = appr.hp.thres_cosh, appr.hp.thres_emb
        self.device, self.sbatch, self.clipgrad = appr.device, appr.loop.batch_size, appr.loop.clipgrad
        self.ce = torch.nn.CrossEntropyLoss()
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=appr.loop.lr)

    def criterion(self, output, targets, masks):
        """Cross-entropy plus c times the attention regulariser (HAT), the original's way."""
        reg, count = 0, 0
        if self.mask_pre is not None:
            for m, mp in zip(masks, self.mask_pre):
                aux = 1 - mp
                reg += (m * aux).sum()
                count += aux.sum()
        else:
            for m in masks:
                reg += m.sum()
                count += np.prod(m.size()).item()
        reg /= count
        return self.ce(output, targets) + self.lamb * reg, reg

    def train_epoch(self, t: int, x: torch.Tensor, y: torch.Tensor) -> None:
        """One pass over the training set."""
        self.model.train()
        r = np.arange(x.size(0))
        np.random.shuffle(r)
        r = torch.LongTensor(r).to(self.device)
        for i in range(0, len(r), self.sbatch):
            b = r[i:i + self.sbatch]
            images, targets = x[b], y[b]
            if self.hat:
                s = (self.smax - 1 / self.smax) * i / len(r) + 1 / self.smax
                outputs, masks = self.model(t, images, s=s)
                loss, _ = self.criterion(outputs[t], targets, masks)
            else:
                loss = self.ce(self.model(images)[t], targets)
            self.optimizer.zero_grad()
            loss.backward()
            if self.hat:
                if t > 0:
                    for n, p in self.model.named_parameters():
                        if n in self.mask_back:
                            p.grad.data *= self.mask_back[n]
                for n, p in self.model.named_parameters():
                    if n.startswith('e'):
                        num = torch.cosh(torch.clamp(s * p.data, -self.thres_cosh, self.thres_cosh)) + 1
                        den = torch.cosh(p.data) + 1
                        p.grad.data *= self.smax / s * num / den
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clipgrad)
            self.optimizer.step()
            if self.hat:
                for n, p in self.model.named_parameters():
                    if n.startswith('e'):
                        p.data = torch.clamp(p.data, -self.thres_emb, self.thres_emb)

    def eval(self, t: int, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        """(loss, accuracy) over a set, batch by batch through the host."""
        total_loss, total_acc, total_num = 0, 0, 0
        self.model.eval()
        r = torch.LongTensor(np.arange(x.size(0))).to(self.device)
        for i in range(0, len(r), self.sbatch):
            b = r[i:i + self.sbatch]
            images, targets = x[b], y[b]
            if self.hat:
                outputs, masks = self.model(t, images, s=self.smax)
                loss, reg = self.criterion(outputs[t], targets, masks)
                reg.data.cpu().numpy().item()  # the original summed it for a printout
            else:
                outputs = self.model(images)
                loss = self.ce(outputs[t], targets)
            _, pred = outputs[t].max(1)
            hits = (pred == targets).float()
            total_loss += loss.data.cpu().numpy().item() * len(b)
            total_acc += hits.sum().data.cpu().numpy().item()
            total_num += len(b)
        return total_loss / total_num, total_acc / total_num


########################################################################################################################
# Epochs and timing


def timed_epoch(device: torch.device, train_epoch, evaluate, train: tuple, valid: tuple) -> tuple[float, float, dict]:
    """(training seconds, evaluation seconds, evaluate()'s result on valid) of one epoch: train_epoch on the training
    set, then evaluate on it and on the validation set (Appr.fit's per-epoch work)."""
    common.sync(device)
    clock = time.perf_counter()
    train_epoch(TASK, *train)
    common.sync(device)
    clock1 = time.perf_counter()
    evaluate(TASK, *train)
    result = evaluate(TASK, *valid)
    return clock1 - clock, time.perf_counter() - clock1, result


def epoch_ours(appr, train: tuple, valid: tuple) -> tuple[float, float, dict]:
    """One timed epoch of our loop."""
    return timed_epoch(appr.device, appr.train_epoch, appr.evaluate, train, valid)


def epoch_original(loop: OriginalLoop, train: tuple, valid: tuple) -> tuple[float, float, dict]:
    """The same for the original's loop."""
    def evaluate(t, x, y):
        loss, acc = loop.eval(t, x, y)
        return {'loss': loss, 'acc': acc}
    return timed_epoch(loop.device, loop.train_epoch, evaluate, train, valid)


def interleaved(epochs: dict, reps: int, seeds: dict | None = None) -> dict[str, list[tuple[float, float]]]:
    """{name: [(training s, evaluation s) per repetition]}, the named epoch functions run in turn, each repetition
    reseeding before every one from seeds[name] + repetition (by default the same seed for all: the same batch
    order and dropout draws)."""
    times = {name: [] for name in epochs}
    for rep in range(reps):
        for name, epoch in epochs.items():
            utils.seed_everything((seeds or {}).get(name, 1000) + rep)
            times[name].append(epoch()[:2])
    return times


@contextlib.contextmanager
def deterministic(device: torch.device):
    """On a GPU, deterministic kernels for the duration (so that two loops computing the same numbers can be
    compared there, as on CPU); nothing on CPU."""
    if device.type != 'cuda':
        yield
        return
    benchmark = torch.backends.cudnn.benchmark
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.benchmark = benchmark


def bench_end_to_end(report: common.Report, approaches: list[str], ntrain: int, reps: int, device: torch.device,
                     eval_batch: int | None = None) -> dict[str, dict]:
    """Our loop against the original's, per approach: epoch times side by side (and, given eval_batch, our loop
    with --eval-batch-size eval_batch), and a check that both compute the same numbers. Returns figures."""
    report.header(f'End to end: one epoch (train on {ntrain} images + evaluate train and valid), our loop vs the '
                  f'original code\'s way')
    train, valid = task_data(ntrain, device)
    figures = {}
    for approach in approaches:
        appr = build(approach, device)
        loop = OriginalLoop(appr)
        with deterministic(device):  # the same start, batch order and dropout draws: the two loops must agree
            utils.seed_everything(7)
            ours = epoch_ours(appr, train, valid)[2]
            utils.seed_everything(7)
            theirs = epoch_original(loop, train, valid)[2]
        epochs = {'original': lambda: epoch_original(loop, train, valid),
                  'ours': lambda: epoch_ours(appr, train, valid)}
        if device.type == 'cuda':
            graphs = build(approach, device, ['--cuda-graphs'])
            epochs['ours, --cuda-graphs'] = lambda: epoch_ours(graphs, train, valid)
        if eval_batch:
            big = build(approach, device, ['--eval-batch-size', str(eval_batch)])
            epochs[f'ours, --eval-batch-size {eval_batch}'] = lambda: epoch_ours(big, train, valid)
        times = interleaved(epochs, reps)
        batch = appr.loop.batch_size
        report(f'\n{approach} ({type(appr.model).__module__}), batch {batch}, {reps} interleaved epochs each, '
               f'medians:')
        for name in epochs:
            train_s = statistics.median(a for a, _ in times[name])
            eval_s = statistics.median(b for _, b in times[name])
            report(f'  {name:35s} {common.median_total(times[name]):7.2f} s/epoch (train {train_s:6.2f} s, evaluations '
                   f'{eval_s:6.2f} s)')
        figures[approach] = {}
        for name in list(epochs)[1:]:
            report(f'  speed-up of {name}: {common.ratio_line(times["original"], times[name])}')
            figures[approach][name] = common.median_total(times['original']) / common.median_total(times[name])
        diff = abs(ours['loss'] - theirs['loss'])
        verdict = 'bitwise equal' if diff == 0 and ours['acc'] == theirs['acc'] else f'differ by {diff:.1e}'
        kernels = ' (deterministic kernels)' if device.type == 'cuda' else ''
        report(f'  same numbers after one epoch from the same state{kernels}: valid loss {ours["loss"]:.6f} vs '
               f'{theirs["loss"]:.6f}, acc {ours["acc"]:.4f} vs {theirs["acc"]:.4f} -> {verdict}')
    return figures


def predictions(appr, x: torch.Tensor) -> torch.Tensor:
    """Task TASK's predicted classes, at evaluation settings."""
    appr.model.eval()
    with torch.no_grad(), appr.fast.autocast():
        outputs, _ = appr.forward(TASK, x, training=False)
    return appr.predict(TASK, outputs)


def bench_modes(report: common.Report, approach: str, modes: list[str], ntrain: int, reps: int, eval_batch: int,
                device: torch.device) -> dict[str, dict]:
    """Each fast mode against the default: epoch times side by side from the same start, the same batch order and
    dropout draws, then the validation accuracy and loss each reached. Returns {mode: figures}."""
    report.header(f'Fast modes ({approach}): one epoch as above, each mode against the default (fp32, batch-size '
                  f'evaluation) from the same start')
    train, valid = task_data(ntrain, device)
    figures = {}
    for mode in modes:
        flags = ['--eval-batch-size', str(eval_batch)] if mode == 'eval-batch' else MODES[mode]
        other = 5000 if mode == 'seed' else 0  # seeds of the mode's epochs, from the default's
        base = build(approach, device)
        clock = time.perf_counter()
        fast = build(approach, device, flags)
        utils.seed_everything(999 + other)
        epoch_ours(fast, train, valid)  # where --compile, the compilations happen here
        first_s = time.perf_counter() - clock
        utils.seed_everything(999)
        epoch_ours(base, train, valid)
        times = interleaved({'default': lambda: epoch_ours(base, train, valid),
                             'mode': lambda: epoch_ours(fast, train, valid)}, reps, {'mode': 1000 + other})
        on_base, on_fast = base.evaluate(TASK, *valid), fast.evaluate(TASK, *valid)
        changed = (predictions(base, valid[0]) != predictions(fast, valid[0])).float().mean().item()
        figures[mode] = {'speedup': common.median_total(times['default']) / common.median_total(times['mode']),
                         'acc': (on_base['acc'], on_fast['acc']), 'loss': (on_base['loss'], on_fast['loss'])}
        report(f'\n{mode} ({" ".join(flags) or "other seeds"}): {common.median_total(times["default"]):.2f} s/epoch '
               f'default, {common.median_total(times["mode"]):.2f} s/epoch with it (set-up and first epoch: '
               f'{first_s:.1f} s) -> speed-up {common.ratio_line(times["default"], times["mode"])}')
        report(f'  after {reps + 1} epochs: valid acc {on_base["acc"]:.4f} default vs {on_fast["acc"]:.4f} '
               f'(difference {on_fast["acc"] - on_base["acc"]:+.4f}), valid loss {on_base["loss"]:.6f} vs '
               f'{on_fast["loss"]:.6f}; {100 * changed:.1f}% of the valid predictions differ')
    return figures


def main() -> None:
    """Run the selected parts."""
    args = parse_args()
    device = utils.choose_device(args.device)
    report = common.Report()
    common.environment(report, device)
    approaches = args.approaches.split(',')
    bench_end_to_end(report, approaches, args.ntrain, args.reps, device)
    if not args.skip_modes:
        bench_modes(report, approaches[0], args.modes.split(','), args.ntrain, args.reps, args.eval_batch, device)
    common.environment(report, device)


if __name__ == '__main__':
    main()
