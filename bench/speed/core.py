"""Benchmarks of the core pipeline on this machine's CPU, printed side by side from one run.

1. HAT training throughput: real training steps of approaches.hat on networks.alexnet_hat at CIFAR shapes (batch
   64, task 1 with task 0's attention in place, so HAT's gradient masking runs), as achieved FLOP/s and as a fraction
   of this machine's float32 dense-matmul rate, measured interleaved with the training so both see the same load;
   then a torch.profiler breakdown of where a step's time goes.
2. CIFAR cache build: dataloaders.cifar._build (what run.py runs when the tensor cache is missing) against the
   original code's way, torchvision transforms and a DataLoader decoding one image at a time, on full-size CIFAR-10
   and CIFAR-100 written in their real on-disk format (random content) to a temporary folder; checks that both give
   bitwise-identical tensors, and measures the build's peak memory in a fresh process.

    python bench/speed/core.py                        (both parts; a few minutes on a 2-core CPU)
    python bench/speed/core.py --skip-cache --steps 40 --repeats 9
    python bench/speed/core.py --skip-train --subset 10000

The machine may be shared: compare the ratios (fraction of the matmul rate, speed-up), not the seconds.
"""
import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

# Before torch loads the profiler: otherwise kineto logs a GPU-probe error on CPU-only machines
os.environ.setdefault('KINETO_LOG_LEVEL', '5')

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # started as a script: bench.common is found from the repository root
    sys.path.insert(0, str(ROOT))
from bench import common  # noqa: E402

common.add_src_path()

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

from dataloaders import cifar  # noqa: E402
from dataloaders._common import task_order  # noqa: E402
from plumbing import utils  # noqa: E402
import run  # noqa: E402

# Images per class of the official archives: CIFAR-10 and CIFAR-100 (train, test), 60000 images each
CIFAR_PER_CLASS = {'train': (5000, 500), 'test': (1000, 100)}
TRAIN_TASK = 1  # trained after task 0, so mask_pre/mask_back exist and the gradients are masked
MATMUL_REPS = 3  # timings of the matmul reference per repeat, their median kept


def parse_args() -> argparse.Namespace:
    """The benchmark's flags."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--steps', type=int, default=10, help='training steps (batches of 64) per timed epoch '
                                                         '(default: %(default)s)')
    p.add_argument('--repeats', type=int, default=7, help='timed epochs, each followed by a matmul timing; '
                                                          'medians are reported (default: %(default)s)')
    p.add_argument('--mm-size', type=int, default=2048, help='side of the square float32 matrices of the matmul '
                                                             'reference (default: %(default)s)')
    p.add_argument('--profile-steps', type=int, default=5, help='steps traced by torch.profiler '
                                                                '(default: %(default)s)')
    p.add_argument('--subset', type=int, default=0,
                   help='decode only the first N images of each split one at a time and extrapolate the rest '
                        '(default: 0, every image)')
    p.add_argument('--skip-train', action='store_true', help='skip the training benchmark')
    p.add_argument('--skip-cache', action='store_true', help='skip the cache-build benchmark')
    args = p.parse_args()
    for flag in ('steps', 'repeats', 'mm_size', 'profile_steps'):
        if getattr(args, flag) < 1:
            p.error(f"--{flag.replace('_', '-')} must be at least 1")
    if args.subset < 0:
        p.error('--subset must be 0 (all) or positive')
    return args


########################################################################################################################
# 1. Training throughput


def build_hat():
    """The network and approach exactly as run.py builds them for --experiment cifar --approach hat (its defaults)."""
    args, experiment, approach, network = run.parse_args(['--experiment', 'cifar', '--approach', 'hat'])
    # The task sizes cifar.get gives the default seed's task order, without needing the data
    small, large = cifar.SOURCES[0][2], cifar.SOURCES[1][2]
    taskcla = [(t, small if i < cifar.TASKS_PER_SOURCE else large)
               for t, i in enumerate(task_order(10, args.seed, args.fixed_order))]
    utils.seed_everything(args.seed)
    net = network.Net(experiment.INPUTSIZE, taskcla)
    appr = run.build_approach(approach, net, args, torch.device('cpu'))
    return args, network.__name__, taskcla, appr


def random_task(n: int, ncla: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n CIFAR-shaped normalised-looking images and labels of a task with ncla classes."""
    return torch.randn(n, *cifar.INPUTSIZE), torch.randint(0, ncla, (n,))


def profile_breakdown(appr, x: torch.Tensor, y: torch.Tensor, step_s: float, flops: int, matmul: float,
                      top: int = 10) -> None:
    """Print the ops with the most self CPU time over a few training steps, and the FLOP rate of the counted
    kernels alone (step_s: the timed seconds per step; flops: per step; matmul: the reference FLOP/s)."""
    clock = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        appr.train_epoch(TRAIN_TASK, x, y)
    traced_s = time.perf_counter() - clock
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    steps = x.size(0) // appr.loop.batch_size
    # The kernels that do what FlopCounterMode counts; every other op adds time but no counted FLOPs
    dense = sum(e.self_cpu_time_total for e in events
                if e.key in ('aten::mm', 'aten::addmm', 'aten::mkldnn_convolution', 'aten::convolution_backward'))
    # Load that comes and goes on a shared machine distorts a trace: its step time shows whether it was typical
    print(f'\nWhere a step\'s time goes (torch.profiler, CPU, {steps} steps): traced steps took '
          f'{1e3 * traced_s / steps:.0f} ms each against {1e3 * step_s:.0f} ms timed untraced; '
          f'{total / 1e3 / steps:.0f} ms of ops\' self CPU time per step')
    print(f'  {"op":45s} {"calls/step":>10s} {"ms/step":>9s} {"share":>7s}')
    for e in events[:top]:
        print(f'  {e.key:45s} {e.count / steps:10.1f} {e.self_cpu_time_total / 1e3 / steps:9.1f} '
              f'{100 * e.self_cpu_time_total / total:6.1f}%')
    dense_rate = flops * steps / (dense / 1e6)
    print(f'  share in the FLOP-counted kernels (mm, addmm, mkldnn_convolution, convolution_backward): '
          f'{100 * dense / total:.1f}%, where they run at {dense_rate / 1e9:.1f} GFLOP/s = '
          f'{100 * dense_rate / matmul:.1f}% of the matmul rate; the rest (dropout\'s random masks, gate and '
          f'gradient-mask multiplications, ReLU, pooling, clipping, SGD) does no counted FLOPs')


def bench_train(args: argparse.Namespace) -> None:
    """HAT training steps per second and their FLOP rate, as a fraction of the dense-matmul rate."""
    common.Report().header('1. HAT training throughput (alexnet_hat, CIFAR shapes) vs dense matmul')
    hat_args, network_name, taskcla, appr = build_hat()
    batch = hat_args.batch_size
    n = batch * args.steps
    print(f'network {network_name}, taskcla {taskcla}')
    print(f'hat hyperparameters (run.py defaults): batch_size={batch}, lr={hat_args.lr}, lamb={hat_args.lamb}, '
          f'smax={hat_args.smax}, clipgrad={hat_args.clipgrad}, thres_cosh={hat_args.thres_cosh}, '
          f'thres_emb={hat_args.thres_emb}')
    print(f'torch {torch.__version__}, torch.get_num_threads() = {torch.get_num_threads()} (training and matmul), '
          f'{os.cpu_count()} CPUs')

    x0, y0 = random_task(n, taskcla[0][1])
    x, y = random_task(n, taskcla[TRAIN_TASK][1])
    appr.train_epoch(0, x0, y0)  # warm-up on task 0, then its attention becomes mask_pre / mask_back
    appr.post_train(0, None)
    appr.train_epoch(TRAIN_TASK, x, y)  # warm-up of the masked path
    a = torch.randn(args.mm_size, args.mm_size)
    common.matmul_seconds(a, MATMUL_REPS)  # warm-up

    flops = common.step_flops(appr, TRAIN_TASK, x[:batch], y[:batch])
    mm_flops = 2 * args.mm_size ** 3
    epoch_s, mm_s = [], []
    # Interleaved, so that training and the reference see the same load on a shared machine
    for _ in range(args.repeats):
        clock = time.perf_counter()
        appr.train_epoch(TRAIN_TASK, x, y)
        epoch_s.append(time.perf_counter() - clock)
        mm_s.append(common.matmul_seconds(a, MATMUL_REPS))
    fractions = [flops * args.steps / e / (mm_flops / m) for e, m in zip(epoch_s, mm_s)]
    step_s = statistics.median(epoch_s) / args.steps
    achieved = flops / step_s
    matmul = mm_flops / statistics.median(mm_s)
    print(f'\nFLOPs per training step (batch {batch}, forward + loss + backward): {flops / 1e9:.3f} GFLOP')
    print(f'timed: {args.repeats} epochs of {args.steps} steps through Appr.train_epoch(t={TRAIN_TASK}), medians')
    print(f'  seconds per step          {step_s:10.4f}   (epochs: {min(epoch_s):.2f}..{max(epoch_s):.2f} s)')
    print(f'  steps/s                   {1 / step_s:10.2f}')
    print(f'  samples/s                 {batch / step_s:10.1f}')
    print(f'  achieved GFLOP/s          {achieved / 1e9:10.1f}')
    print(f'  matmul GFLOP/s            {matmul / 1e9:10.1f}   (torch.mm float32 {args.mm_size}x{args.mm_size}, '
          f'{min(mm_s) * 1e3:.0f}..{max(mm_s) * 1e3:.0f} ms)')
    print(f'  fraction of matmul rate   {100 * achieved / matmul:9.1f}%   (median of per-repeat fractions: '
          f'{100 * statistics.median(fractions):.1f}%, range {100 * min(fractions):.1f}..'
          f'{100 * max(fractions):.1f}%)')
    profile_breakdown(appr, x[:batch * args.profile_steps], y[:batch * args.profile_steps], step_s, flops,
                      matmul)


########################################################################################################################
# 2. Cache build


def decode_one_at_a_time(data_dir: Path, subset: int) -> tuple[dict, float, float, int, int]:
    """The original code's loader, per source and split: torchvision transforms, a DataLoader of batch size 1, the
    images appended to per-task lists, then stacked. Returns (the task tensors by cache key, seconds spent building
    the data sets, seconds decoding and stacking, images decoded, images in the splits)."""
    from torchvision import datasets, transforms
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize(cifar.MEAN, cifar.STD)])
    out, setup_s, decode_s, decoded, total = {}, 0.0, 0.0, 0, 0
    for cls_name, first, per_task in cifar.SOURCES:
        for split in ('train', 'test'):
            clock = time.perf_counter()
            ds = getattr(datasets, cls_name)(str(data_dir), train=split == 'train', transform=transform)
            clock2 = time.perf_counter()
            setup_s += clock2 - clock
            count = len(ds) if subset == 0 else min(subset, len(ds))
            loader = torch.utils.data.DataLoader(torch.utils.data.Subset(ds, range(count)), batch_size=1,
                                                 shuffle=False)
            tasks = {k: {'x': [], 'y': []} for k in range(cifar.TASKS_PER_SOURCE)}
            for image, target in loader:
                label = target.numpy()[0]
                tasks[label // per_task]['x'].append(image)
                tasks[label // per_task]['y'].append(label % per_task)
            for k, lists in tasks.items():
                if lists['x']:  # a small --subset may hold no image of a task
                    out[f'{first + k}_{split}_x'] = torch.stack(lists['x']).view(-1, *cifar.INPUTSIZE)
                    out[f'{first + k}_{split}_y'] = torch.LongTensor(np.array(lists['y'], dtype=int)).view(-1)
            decode_s += time.perf_counter() - clock2
            decoded += count
            total += len(ds)
    return out, setup_s, decode_s, decoded, total


def _status_kib(field: str) -> int:
    """A field of /proc/self/status, in KiB (Linux)."""
    for line in Path('/proc/self/status').read_text().splitlines():
        if line.startswith(field + ':'):
            return int(line.split()[1])
    raise RuntimeError(f'{field} not in /proc/self/status')


def peak_build_child(data_dir: Path, md5: dict) -> tuple[int, int, int]:
    """In a fresh process: (RSS before, peak RSS after cifar._build, bytes of the tensors it returned), in bytes."""
    with common.fixture_checksums(md5):  # imports torchvision.datasets too, before the baseline
        before = _status_kib('VmRSS')
        tensors = cifar._build(data_dir)
        peak = _status_kib('VmHWM')
    return before * 1024, peak * 1024, sum(v.numel() * v.element_size() for v in tensors.values())


def bench_cache(args: argparse.Namespace, tmp: Path) -> None:
    """cifar._build against decoding one image at a time, with an equality check and the build's peak memory."""
    common.Report().header('2. CIFAR cache build (dataloaders.cifar._build) vs decoding one image at a time '
                           '(the original\'s way)')
    clock = time.perf_counter()
    md5 = common.fixtures.write_cifar(tmp, train_per_class=CIFAR_PER_CLASS['train'],
                               test_per_class=CIFAR_PER_CLASS['test'])
    print(f'wrote full-size CIFAR-10 and CIFAR-100 (random content, official file format) to a temporary folder '
          f'in {time.perf_counter() - clock:.1f} s')
    with common.fixture_checksums(md5):
        clock = time.perf_counter()
        fast = cifar._build(tmp)
        fast_s = time.perf_counter() - clock
        slow, setup_s, decode_s, decoded, total = decode_one_at_a_time(tmp, args.subset)
    images = sum(fast[f'{t}_{split}_x'].size(0) for t in range(10) for split in ('train', 'test'))
    # Building the data sets (reading and checksumming the files) costs the same whatever the number decoded
    slow_s = setup_s + decode_s * total / decoded

    same = [torch.equal(v, fast[k][:v.size(0)]) for k, v in slow.items()]
    print(f'\nA  cifar._build (vectorised): {images} images in {fast_s:.2f} s = {images / fast_s:,.0f} images/s')
    if decoded == total:
        print(f'B  one image at a time:       {total} images in {slow_s:.2f} s = {total / slow_s:,.0f} images/s '
              f'({setup_s:.2f} s of it building the data sets)')
    else:
        print(f'B  one image at a time:       EXTRAPOLATED to {total} images from {decoded} decoded (the first '
              f'{args.subset} of each split): {setup_s:.2f} s building the data sets + {decode_s:.2f} s decoding '
              f'x {total / decoded:.2f} = {slow_s:.2f} s = {total / slow_s:,.0f} images/s')
    print(f'speed-up A over B: {slow_s / fast_s:.1f}x')
    print(f'bitwise check on the {decoded} images decoded one at a time: {sum(same)}/{len(same)} task tensors '
          f'(x and y) torch.equal to cifar._build\'s -> {"IDENTICAL" if all(same) else "DIFFERENT"}')

    # A fresh process, so the peak is the build's alone and not this process's earlier allocations
    with multiprocessing.get_context('spawn').Pool(1) as pool:
        before, peak, nbytes = pool.apply(peak_build_child, (tmp, md5))
    print(f'\npeak memory of cifar._build (fresh process, /proc/self/status): RSS {before / 2 ** 20:.0f} MiB before, '
          f'peak {peak / 2 ** 20:.0f} MiB; increase {(peak - before) / 2 ** 20:.0f} MiB for {nbytes / 2 ** 20:.0f} '
          f'MiB of built tensors -> ratio {(peak - before) / nbytes:.2f}')


def main() -> None:
    """Run the selected parts."""
    args = parse_args()
    # Other processes' load changes every number here: shown so that runs can be compared
    print(f'load average (1, 5, 15 min) at start: {common.load_average()}')
    if not args.skip_train:
        bench_train(args)
    if not args.skip_cache:
        with tempfile.TemporaryDirectory(prefix='bench_core_') as tmp:
            bench_cache(args, Path(tmp))
    print(f'load average (1, 5, 15 min) at end:   {common.load_average()}')


if __name__ == '__main__':
    main()
