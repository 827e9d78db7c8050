"""HAT on the modern benchmarks' networks, on the one real data set here: Fashion-MNIST (Debian's package
dataset-fashion-mnist, copied where the loader reads it, as approaches.py does).

1. five_datasets restricted to its Fashion-MNIST task (--datasets fashion-mnist: 10 classes at 3x32x32, GPM's
   5-Datasets preprocessing), hat on resnet18_reduced_hat and sgd on resnet18_reduced: both learn (accuracy well above
   the 10% of chance).
2. Forgetting needs several tasks, and five_datasets' other four are not here: split_fmnist (5 tasks of 2 classes of
   the same images) on the same two networks: HAT's BWT is 0 (what a task claimed does not move), SGD's negative.

    python bench/tables/modern.py                          (seeds 0 1, 3 epochs)
    python bench/tables/modern.py --seeds 0,1,2 --nepochs 5
    python bench/tables/modern.py --seeds 0 --dry-run      (a check of the set-up)

Prints ACC (mean accuracy after the last task) and BWT per run and their means over seeds, in %, and the command of
each run. Runs are started with --resume: a finished run's results are reused. (The time of one real-size epoch of
the later literature's networks: bench/speed/networks.py.)
"""
import argparse
import contextlib
import io
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # started as a script: bench.common is found from the repository root
    sys.path.insert(0, str(ROOT))
from bench import common  # noqa: E402

common.add_src_path()

import numpy as np  # noqa: E402

from analysis import metrics  # noqa: E402
from plumbing import utils  # noqa: E402
import run  # noqa: E402

# (experiment, its flags, approach, network)
RUNS = [('five_datasets', ['--datasets', 'fashion-mnist'], 'sgd', 'resnet18_reduced'),
        ('five_datasets', ['--datasets', 'fashion-mnist'], 'hat', 'resnet18_reduced_hat'),
        ('split_fmnist', [], 'sgd', 'resnet18_reduced'),
        ('split_fmnist', [], 'hat', 'resnet18_reduced_hat')]


def main() -> None:
    """Run each pair of RUNS seed by seed and print the table."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--seeds', type=utils.parse_seeds, default=[0, 1], help='default: 0,1')
    p.add_argument('--nepochs', type=utils.int_at_least(1), default=3, help='epochs per task (default: 3)')
    p.add_argument('--data-dir', type=Path, default=utils.DATA_DIR)
    p.add_argument('--out', type=Path, default=ROOT / 'res' / 'bench_modern', help='results and logs folder')
    p.add_argument('--dry-run', action='store_true', help="run.py's --dry-run: a few batches, 1 epoch, a check of the "
                                                          "set-up whose numbers mean nothing")
    args = p.parse_args()
    common.prepare_fashion_mnist(args.data_dir)
    rows = []
    suffix = '_dryrun' if args.dry_run else ''  # as run.py names a dry run's results
    for experiment, flags, approach, network in RUNS:
        per_seed = []
        for seed in args.seeds:
            argv = ['--experiment', experiment, *flags, '--approach', approach, '--network', network,
                    '--seed', str(seed), '--nepochs', str(args.nepochs), '--data-dir', str(args.data_dir),
                    '--results-dir', str(args.out), '--logs-dir', str(args.out),
                    '--output', str(args.out / f'{experiment}_{approach}_{network}_{seed}{suffix}.txt'), '--resume',
                    *(['--dry-run'] if args.dry_run else [])]
            print('python src/run.py ' + ' '.join(argv), flush=True)
            clock = time.time()
            with contextlib.redirect_stdout(io.StringIO()):  # run.py's epoch lines
                results = run.main(argv)
            acc = results['acc'].astype(np.float64)
            ncla = [n for _, n in results['taskcla']]
            per_seed.append((100 * acc[-1].mean(), 100 * metrics.backward_transfer(acc), time.time() - clock))
        rows.append((experiment, approach, network, ncla, per_seed))
    if args.dry_run:
        print('\nDRY RUN: a check of the set-up, not results')
    print('\n| experiment | approach | network | tasks | chance | ACC % (per seed) | ACC % | BWT % (per seed) | '
          'BWT % |')
    print('|---|---|---|---|---|---|---|---|---|')
    for experiment, approach, network, ncla, per_seed in rows:
        accs, bwts = [r[0] for r in per_seed], [r[1] for r in per_seed]
        print(f"| {experiment} | {approach} | {network} | {len(ncla)} | {100 / np.mean(ncla):.0f} | "
              f"{', '.join(f'{a:.1f}' for a in accs)} | {np.mean(accs):.1f} | "
              f"{', '.join(f'{b:.2f}' for b in bwts)} | {np.mean(bwts):.2f} |")


if __name__ == '__main__':
    utils.run_cli(main)
