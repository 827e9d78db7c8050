"""HAT on the modern benchmarks' networks, on the one real data set here: Fashion-MNIST (Debian's package
dataset-fashion-mnist, copied where torchvision reads it, as bench_baselines.py does).

1. five_datasets restricted to its Fashion-MNIST task (--datasets fashion-mnist: 10 classes at 3x32x32, GPM's
   5-Datasets preprocessing), hat on resnet18_reduced_hat and sgd on resnet18_reduced: both learn (accuracy well above
   the 10% of chance).
2. Forgetting needs several tasks, and five_datasets' other four are not here: split_fmnist (5 tasks of 2 classes of
   the same images) on the same two networks: HAT's BWT is 0 (what a task claimed does not move), SGD's negative.

    python bench/bench_modern.py                          (seeds 0 1, 3 epochs)
    python bench/bench_modern.py --seeds 0,1,2 --nepochs 5
    python bench/bench_modern.py --epoch-timing           (on a GPU: one real-size split_cifar100 epoch, synthetic)

--epoch-timing instead times one epoch of split_cifar100's second task at its real size (4,750 training images: 500
a class less GPM's 5%; a ninth of that to validate, as bench_speed.py's), synthetic CIFAR-shaped data, hat on alexnet_bn_hat and on
resnet18_hat, on the default device: the seconds of the training pass and of the two evaluations.

Prints ACC (mean accuracy after the last task) and BWT per run and their means over seeds, in %, and the command of
each run. Runs are started with --resume: a finished run's results are reused.
"""
import argparse
import contextlib
import io
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / 'src'))
sys.path.insert(0, str(ROOT / 'bench'))

import bench_baselines  # noqa: E402
import bench_speed  # noqa: E402
from analysis import metrics  # noqa: E402
from plumbing import utils  # noqa: E402
import run  # noqa: E402

# (experiment, its flags, approach, network)
RUNS = [('five_datasets', ['--datasets', 'fashion-mnist'], 'sgd', 'resnet18_reduced'),
        ('five_datasets', ['--datasets', 'fashion-mnist'], 'hat', 'resnet18_reduced_hat'),
        ('split_fmnist', [], 'sgd', 'resnet18_reduced'),
        ('split_fmnist', [], 'hat', 'resnet18_reduced_hat')]


def epoch_timing(ntrain: int) -> None:
    """One timed epoch of hat on split_cifar100's second task (after a first one, so its gradient masks act)."""
    device = utils.choose_device(None)
    train, valid = bench_speed.task_data(ntrain, device)
    print('| network | device | training images | train s | evaluations s |\n|---|---|---|---|---|')
    for network in ('alexnet_bn_hat', 'resnet18_hat'):
        args, experiment, module, net_module = run.parse_args(['--experiment', 'split_cifar100', '--approach', 'hat',
                                                               '--network', network])
        utils.seed_everything(0)
        taskcla = [(t, bench_speed.NCLASSES) for t in range(10)]
        appr = run.build_approach(module, net_module.Net(experiment.INPUTSIZE, taskcla).to(device), args, device)
        appr.post_train(0, None)  # task 0's attention: task 1's gradients are masked
        with contextlib.redirect_stdout(io.StringIO()):
            appr.epoch(1, 0, appr.loop.lr, (*train, 1), (*valid, 1))  # warm-up
            _, _, _, (train_s, eval_s) = appr.epoch(1, 1, appr.loop.lr, (*train, 1), (*valid, 1))
        print(f'| {network} | {device} | {ntrain} | {train_s:.2f} | {eval_s:.2f} |', flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--seeds', type=utils.parse_seeds, default=[0, 1], help='default: 0,1')
    p.add_argument('--nepochs', type=utils.int_at_least(1), default=3, help='epochs per task (default: 3)')
    p.add_argument('--data-dir', type=Path, default=utils.DATA_DIR)
    p.add_argument('--out', type=Path, default=ROOT / 'res' / 'bench_modern', help='results and logs folder')
    p.add_argument('--epoch-timing', action='store_true', help='time one real-size split_cifar100 epoch instead')
    p.add_argument('--ntrain', type=utils.int_at_least(1), default=4750, help='training images of --epoch-timing')
    args = p.parse_args()
    if args.epoch_timing:
        epoch_timing(args.ntrain)
        return
    bench_baselines.prepare_data(args.data_dir)
    rows = []
    for experiment, flags, approach, network in RUNS:
        per_seed = []
        for seed in args.seeds:
            argv = ['--experiment', experiment, *flags, '--approach', approach, '--network', network,
                    '--seed', str(seed), '--nepochs', str(args.nepochs), '--data-dir', str(args.data_dir),
                    '--results-dir', str(args.out), '--logs-dir', str(args.out),
                    '--output', str(args.out / f'{experiment}_{approach}_{network}_{seed}.txt'), '--resume']
            print('python src/run.py ' + ' '.join(argv), flush=True)
            clock = time.time()
            with contextlib.redirect_stdout(io.StringIO()):  # run.py's epoch lines
                results = run.main(argv)
            acc = results['acc'].astype(np.float64)
            ncla = [n for _, n in results['taskcla']]
            per_seed.append((100 * acc[-1].mean(), 100 * metrics.backward_transfer(acc), time.time() - clock))
        rows.append((experiment, approach, network, ncla, per_seed))
    print("\n| experiment | approach | network | tasks | chance | ACC % (per seed) | ACC % | BWT % (per seed) | BWT % |")
    print('|---|---|---|---|---|---|---|---|---|')
    for experiment, approach, network, ncla, per_seed in rows:
        accs, bwts = [r[0] for r in per_seed], [r[1] for r in per_seed]
        print(f"| {experiment} | {approach} | {network} | {len(ncla)} | {100 / np.mean(ncla):.0f} | "
              f"{', '.join(f'{a:.1f}' for a in accs)} | {np.mean(accs):.1f} | "
              f"{', '.join(f'{b:.2f}' for b in bwts)} | {np.mean(bwts):.2f} |")


if __name__ == '__main__':
    utils.run_cli(main)
