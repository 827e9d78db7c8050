"""The speed figures on a GPU in one prepared run of under 5 minutes, written to a report file and to stdout.

0. CUDA graphs (run.py --cuda-graphs): every approach that can use them, run by run.py on a small CIFAR fixture (10
   tasks, batch 16, a few epochs with learning-rate drops) with and without them from the same seed; under
   deterministic kernels the accuracy and loss matrices must be bitwise equal.
1. End to end: one epoch (train + the evaluations on train and valid) of our loop, as it is, with
   --eval-batch-size 4500 and with --cuda-graphs, against the original code's way (epoch.py's OriginalLoop), hat and
   sgd, CIFAR-sized synthetic tasks (10 classes, 4500 train / 500 valid images), interleaved; with a check, under
   deterministic kernels, that ours and the original's compute the same numbers.
2. HAT's training step (alexnet_hat, batch 64, task 1 with task 0's attention in place) as a fraction of the GPU's
   dense float32 matmul rate (FLOPs counted by torch.utils.flop_counter), the TF32 matmul rate beside it, and a
   profile: how much of a step the GPU spends in kernels.
3. One full cifar task with the paper's settings (hat, lr 0.05, patience 5, factor 3, lr_min 1e-4, at most 200
   epochs) on the synthetic task: the real patience loop when it fits in the time left, else N epochs timed and
   200 extrapolated (said so).
4. The fast modes (--eval-batch-size, --amp bf16 and fp16, --channels-last, --compile in its default and
   reduce-overhead (CUDA graphs) modes), each against the default:
   speed-up and the validation accuracy and loss each reaches from the same start.

    python bench/speed/gpu.py --out "$OUT"              (on the GPU machine; the report is $OUT/bench_gpu.txt)
    python bench/speed/gpu.py --quick --out /tmp/gpu    (anywhere, CPU included: small sizes, to check the script)
    python bench/speed/gpu.py --sections graphs --out "$OUT"   (section 0 alone; sections: graphs, end_to_end, step,
                                                                full_task, modes, compile)

Needs only requirements.txt. Sections that would overrun the budget are skipped, and the report says so.
"""
import argparse
import contextlib
import dataclasses
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # started as a script: bench.common is found from the repository root
    sys.path.insert(0, str(ROOT))
from bench import common  # noqa: E402
from bench.speed import epoch  # noqa: E402  (puts src/ on the import path)

import numpy as np  # noqa: E402
import torch  # noqa: E402

from plumbing import utils  # noqa: E402
import run  # noqa: E402

BATCH_FLOP_STEPS = 20  # timed training steps per repetition in section 2
SECTIONS = ('graphs', 'end_to_end', 'step', 'full_task', 'modes', 'compile')  # 0 to 4, compile being 4's last two


def parse_args() -> argparse.Namespace:
    """The benchmark's flags."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--out', type=Path, required=True, help='folder for bench_gpu.txt and bench_gpu.json')
    p.add_argument('--quick', action='store_true', help='small sizes and few repetitions (a check of the script, '
                                                        'e.g. on CPU)')
    p.add_argument('--device', help='default: cuda when available, else cpu')
    p.add_argument('--budget', type=float, default=280, help='seconds the whole run may take; later sections are '
                                                             'shortened or skipped to fit (default: %(default)s)')
    p.add_argument('--sections', default=','.join(SECTIONS),
                   help=f"comma-separated, of {', '.join(SECTIONS)} (default: all)")
    args = p.parse_args()
    args.sections = args.sections.split(',')
    unknown = set(args.sections) - set(SECTIONS)
    if unknown:
        p.error(f"unknown sections {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}")
    return args


def matmul_rate(device: torch.device, size: int, tf32: bool, reps: int = 5) -> float:
    """FLOP/s of a float32 size x size matmul, with TF32 tensor cores allowed or not (CUDA)."""
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    try:
        a = torch.randn(size, size, device=device)
        torch.mm(a, a)  # warm-up
        seconds = common.matmul_seconds(a, reps)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous
    return 2 * size ** 3 / seconds


def kernel_share(appr, x: torch.Tensor, y: torch.Tensor) -> str:
    """A profile of a few training steps: kernels launched per step and the share of the wall time the GPU spends
    in them (the rest: launch latency and Python between kernels)."""
    from torch.profiler import ProfilerActivity, profile
    steps = x.size(0) // appr.loop.batch_size
    try:
        common.sync(appr.device)
        clock = time.perf_counter()
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            appr.train_epoch(epoch.TASK, x, y)
            common.sync(appr.device)
        wall = time.perf_counter() - clock
        kernels = [e for e in prof.key_averages() if e.device_type == torch.autograd.DeviceType.CUDA]
        busy = sum(e.self_device_time_total for e in kernels) / 1e6
        count = sum(e.count for e in kernels)
    except Exception as e:  # no CUPTI access, for one: the rest of the report stands
        return f'profile unavailable ({type(e).__name__}: {e})'
    return (f'profile of {steps} steps: {count / steps:.0f} kernels per step, GPU busy {busy / steps * 1e3:.2f} ms of '
            f'{wall / steps * 1e3:.2f} ms per step ({100 * busy / wall:.0f}%; traced, so slower than untraced)')


def bench_step(report: common.Report, device: torch.device, steps: int, reps: int) -> dict:
    """HAT's training step against the matmul rate."""
    report.header('HAT training step (alexnet_hat, batch 64, task 1 masked) vs dense matmul')
    appr = epoch.build('hat', device)
    batch = appr.loop.batch_size
    x, y = epoch.synthetic_cifar(batch * steps, 5, device)
    flops = common.step_flops(appr, epoch.TASK, x[:batch], y[:batch])
    appr.train_epoch(epoch.TASK, x, y)  # warm-up
    size = 8192 if device.type == 'cuda' else 2048
    epoch_s, fp32 = [], []
    for _ in range(reps):  # interleaved with the reference, which sees the same conditions
        common.sync(device)
        clock = time.perf_counter()
        appr.train_epoch(epoch.TASK, x, y)
        common.sync(device)
        epoch_s.append(time.perf_counter() - clock)
        fp32.append(matmul_rate(device, size, tf32=False))
    step_s = statistics.median(epoch_s) / steps
    achieved, rate = flops / step_s, statistics.median(fp32)
    figures = {'step_ms': 1e3 * step_s, 'gflop_per_step': flops / 1e9, 'achieved_tflops': achieved / 1e12,
               'fp32_matmul_tflops': rate / 1e12, 'fraction_fp32': achieved / rate}
    report(f'{flops / 1e9:.3f} GFLOP per step; {1e3 * step_s:.2f} ms per step (median of {reps} x {steps} steps) = '
           f'{achieved / 1e12:.2f} TFLOP/s')
    report(f'float32 matmul ({size}x{size}, TF32 off): {rate / 1e12:.1f} TFLOP/s -> the step reaches '
           f'{100 * achieved / rate:.1f}% of it')
    if device.type == 'cuda':
        tf32 = matmul_rate(device, size, tf32=True)
        figures['tf32_matmul_tflops'] = tf32 / 1e12
        report(f'TF32 matmul: {tf32 / 1e12:.1f} TFLOP/s ({100 * achieved / tf32:.1f}%); note that PyTorch runs '
               f'convolutions in TF32 by default (torch.backends.cudnn.allow_tf32 = '
               f'{torch.backends.cudnn.allow_tf32}) and matmuls in float32 (allow_tf32 = '
               f'{torch.backends.cuda.matmul.allow_tf32})')
        report(kernel_share(appr, x[:batch * 5], y[:batch * 5]))
    return figures


def bench_full_task(report: common.Report, device: torch.device, ntrain: int, allowance: float,
                    max_epochs: int = 200) -> dict:
    """One task's patience loop, with the paper's settings, within allowance seconds (else extrapolated)."""
    report.header(f'One full cifar task, paper settings (hat, at most {max_epochs} epochs, patience schedule), '
                  f'{ntrain} train / {max(1, ntrain // 9)} valid images')
    appr = epoch.build('hat', device)
    train, valid = epoch.task_data(ntrain, device)
    probe = 2
    clock = time.perf_counter()
    appr.loop = dataclasses.replace(appr.loop, nepochs=probe)
    with contextlib.redirect_stdout(io.StringIO()):  # fit() prints a line per epoch
        appr.fit(epoch.TASK, (*train, epoch.TASK), (*valid, epoch.TASK))
    epoch_s = (time.perf_counter() - clock) / probe
    if epoch_s * max_epochs <= allowance:
        appr = epoch.build('hat', device)
        lines = io.StringIO()
        clock = time.perf_counter()
        appr.loop = dataclasses.replace(appr.loop, nepochs=max_epochs)
        with contextlib.redirect_stdout(lines):
            appr.fit(epoch.TASK, (*train, epoch.TASK), (*valid, epoch.TASK))
        wall = time.perf_counter() - clock
        epochs = lines.getvalue().count('| Epoch')
        report(f'measured: the patience loop stopped after {epochs} epochs in {wall:.1f} s ({wall / epochs:.2f} s per '
               f'epoch); {max_epochs} epochs would take {wall / epochs * max_epochs:.0f} s')
        return {'epochs': epochs, 'seconds': wall, 'seconds_per_epoch': wall / epochs}
    report(f'EXTRAPOLATED: {probe} epochs timed at {epoch_s:.2f} s each; at most {max_epochs} epochs = '
           f'{epoch_s * max_epochs:.0f} s (the loop stops earlier once the lr falls below 1e-4: at least 31 epochs, '
           f'{epoch_s * 31:.0f} s)')
    return {'epochs': None, 'seconds_per_epoch': epoch_s, 'extrapolated_seconds': epoch_s * max_epochs}


def graph_safe_approaches() -> list[str]:
    """The approaches whose steps run as CUDA graphs."""
    return [name for name in utils.module_choices('approaches')
            if utils.load_module('approaches', name).Appr.graph_safe]


def bench_graphs(report: common.Report, device: torch.device, approaches: list[str], nepochs: int,
                 budget: common.Clock) -> dict:
    """run.py with and without CUDA graphs, per approach: equality under deterministic kernels, and the run times;
    an approach whose two runs would overrun the budget (judged by the slowest pair so far) is skipped, said so."""
    report.header('CUDA graphs vs eager steps: whole runs (cifar fixture, 10 tasks, batch 16, --lr-patience 1)')
    if device.type != 'cuda':
        report('no GPU: both runs are eager here (a check of this script only)')
    figures = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        md5 = common.fixtures.write_cifar(tmp / 'dat', train_per_class=(40, 4), test_per_class=(10, 2))
        with common.fixture_checksums(md5):
            slowest = 0.0
            for approach in approaches:
                if budget.left() < slowest:
                    report(f'{approach:12s} SKIPPED, {budget.left():.0f} s left of the budget')
                    continue
                runs = {}
                for name, flags in (('graphs', ['--cuda-graphs']), ('eager', [])):
                    argv = ['--experiment', 'cifar', '--approach', approach, *flags, '--device', str(device),
                            '--nepochs', str(nepochs), '--batch-size', '16', '--lr-patience', '1',
                            '--data-dir', str(tmp / 'dat'), '--results-dir', str(tmp / name / 'res'),
                            '--logs-dir', str(tmp / name / 'logs')]
                    with epoch.deterministic(device), contextlib.redirect_stdout(io.StringIO()):
                        utils.seed_everything(0)
                        clock = time.perf_counter()
                        results = run.main(argv)
                        runs[name] = (results, time.perf_counter() - clock)
                (graphs, graph_s), (eager, eager_s) = runs['graphs'], runs['eager']
                same = np.array_equal(graphs['acc'], eager['acc']) and np.array_equal(graphs['lss'], eager['lss'])
                diff = float(np.nanmax(np.abs(graphs['lss'] - eager['lss'])))
                figures[approach] = {'bitwise_equal': same, 'max_loss_difference': diff, 'seconds_graphs': graph_s,
                                     'seconds_eager': eager_s}
                slowest = max(slowest, graph_s + eager_s)
                report(f'{approach:12s} acc and lss {"BITWISE EQUAL" if same else "DIFFERENT"} (largest loss '
                       f'difference {diff:.1e}); run {graph_s:5.1f} s with graphs, {eager_s:5.1f} s eager')
    return figures


def section(report: common.Report, figures: dict, name: str, run) -> None:
    """figures[name] = run(), or the error reported: one failing section leaves the others' figures."""
    try:
        figures[name] = run()
    except Exception as e:
        report(f'\n{name}: FAILED ({type(e).__name__}: {e})')


def main() -> None:
    """Run the sections within the budget, writing the report as they go."""
    args = parse_args()
    clock = common.Clock(args.budget)
    device = utils.choose_device(args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    ntrain, reps, steps = (256, 1, 4) if args.quick else (4500, 3, BATCH_FLOP_STEPS)
    report = common.Report(args.out / 'bench_gpu.txt')
    report(f'bench/speed/gpu.py{" --quick" if args.quick else ""}: budget {args.budget:.0f} s')
    common.environment(report, device)
    figures = {'device': str(device), 'quick': args.quick}
    approaches = ['hat', 'sgd'] if args.quick else graph_safe_approaches()
    wanted = args.sections
    if 'graphs' in wanted:
        section(report, figures, 'graphs',
                lambda: bench_graphs(report, device, approaches, 2 if args.quick else 3, clock))
    if 'end_to_end' in wanted:
        section(report, figures, 'end_to_end',
                lambda: epoch.bench_end_to_end(report, ['hat', 'sgd'], ntrain, reps, device, eval_batch=ntrain))
    if 'step' in wanted:
        section(report, figures, 'step', lambda: bench_step(report, device, steps, reps))
    if 'full_task' in wanted:
        section(report, figures, 'full_task',
                lambda: bench_full_task(report, device, ntrain, allowance=min(120.0, clock.left() / 3)))
    modes = ['seed', 'eval-batch', 'amp', 'amp-fp16', 'channels-last']
    if 'modes' in wanted and clock.left() > (30 if args.quick else 90):
        section(report, figures, 'modes',
                lambda: epoch.bench_modes(report, 'hat', modes, ntrain, max(1, reps - 1), ntrain, device))
    elif 'modes' in wanted:
        report(f'\nmodes: SKIPPED, {clock.left():.0f} s left of the budget')
    # torch.compile compiles for minutes: last, each mode only with time to spare, CUDA graphs first (on an H200 they
    # halved the epoch, where the default mode gained nothing)
    for mode in ('compile-cudagraphs', 'compile') if 'compile' in wanted else ():
        if clock.left() > (60 if args.quick else 130):
            section(report, figures, mode,
                    lambda: epoch.bench_modes(report, 'hat', [mode], ntrain, max(1, reps - 1), ntrain, device))
        else:
            report(f'\n{mode}: SKIPPED, {clock.left():.0f} s left of the budget')
    report(f'\ntotal {args.budget - clock.left():.0f} s')
    (args.out / 'bench_gpu.json').write_text(json.dumps(figures, indent=1) + '\n')


if __name__ == '__main__':
    main()
