"""Every approach on real data: split Fashion-MNIST (5 tasks of 2 classes, MLP), a few epochs, several seeds.

Prints, per approach, the average accuracy after the last task (ACC), the backward transfer (BWT: the mean change
of each earlier task's accuracy from just after learning it to the end; negative = forgetting) and the share of the
network the tasks use after the last one (capacity used, for the approaches that set a part of it aside per task:
docs/results.md#capacity), mean +- std over seeds. The real images come from Debian's package
dataset-fashion-mnist (apt-get install dataset-fashion-mnist), its .gz files copied into
<data-dir>/FashionMNIST/raw/, where the loader checks and decompresses them. Every setting but --nepochs is the
approach's default on split_fmnist (its authors' protocol for HAT's successors: docs/usage.md).

    python bench/tables/approaches.py                                 (all approaches, seeds 0 1, 3 epochs)
    python bench/tables/approaches.py --approaches sgd,hat --seeds 0,1,2 --nepochs 5
    python bench/tables/approaches.py --approaches sgd --seeds 0 --dry-run      (a check of the set-up, in seconds)
    python bench/tables/approaches.py --approaches hat,adahat,packnet,supsup,wsn,gpm,sgd,joint --seeds 0,1,2 \
        --out-dir res/bench_successors                                  (HAT and its successors, docs/approaches.md)

Runs are started with --resume: a finished run's results are reused, an interrupted one continues.
"""
import argparse
import contextlib
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

# Pathnet trains nepochs // generations epochs per generation: with a few epochs it needs fewer generations to train
# at all (the paper's 20 generations need nepochs >= 20)
EXTRA = {'pathnet': lambda nepochs: ['--generations', str(nepochs)]}


def main() -> None:
    """Run every approach on split Fashion-MNIST, seed by seed, and print the table."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--approaches', default=','.join(utils.module_choices('approaches')))
    p.add_argument('--seeds', default='0,1')
    p.add_argument('--nepochs', type=int, default=3)
    p.add_argument('--data-dir', type=Path, default=utils.DATA_DIR)
    p.add_argument('--out-dir', type=Path, default=utils.RESULTS_DIR / 'bench_baselines',
                   help='results and each run\'s full output (default: res/bench_baselines/)')
    p.add_argument('--dry-run', action='store_true', help="run.py's --dry-run: a few batches, 1 epoch, a check of the "
                                                          "set-up whose numbers mean nothing")
    args = p.parse_args()
    approaches = args.approaches.split(',')
    seeds = [int(s) for s in args.seeds.split(',')]
    common.prepare_fashion_mnist(args.data_dir)
    args.out_dir.mkdir(parents=True, exist_ok=True)

    table = {}
    for approach in approaches:
        for seed in seeds:
            argv = ['--experiment', 'split_fmnist', '--approach', approach, '--seed', str(seed), '--nepochs',
                    str(args.nepochs), '--data-dir', str(args.data_dir), '--results-dir', str(args.out_dir),
                    '--logs-dir', str(args.out_dir), '--resume', *EXTRA.get(approach, lambda n: [])(args.nepochs),
                    *(['--dry-run'] if args.dry_run else [])]
            clock = time.time()
            suffix = '_dryrun' if args.dry_run else ''  # run.py's for the results
            with open(args.out_dir / f'split_fmnist_{approach}_{seed}{suffix}.out', 'w') as out, \
                    contextlib.redirect_stdout(out):
                results = run.main(argv)
            acc = results['acc']
            capacity = results.get('capacity')  # the approaches that set a part of the network aside per task
            used = capacity[-1]['used'] if capacity else float('nan')
            table.setdefault(approach, []).append((float(acc[-1].mean()), float(metrics.backward_transfer(acc)),
                                                   used))
            print(f'{approach:12s} seed {seed}: ACC {table[approach][-1][0]:.3f}  BWT {table[approach][-1][1]:+.3f}  '
                  f'capacity used {used:.3f}  ({time.time() - clock:.0f} s)', flush=True)

    if args.dry_run:
        print('\nDRY RUN: a check of the set-up, not results')
    print(f'\nsplit_fmnist, MLP, {args.nepochs} epochs per task, seeds {seeds}: mean +- std over seeds')
    print('| approach | ACC (final average accuracy) | BWT (backward transfer) | capacity used |')
    print('|---|---|---|---|')
    for approach, rows in table.items():
        accs, bwts, used = np.array(rows).T
        capacity = 'n/a' if np.isnan(used).any() else f'{used.mean():.3f} +- {used.std():.3f}'
        print(f'| {approach} | {accs.mean():.3f} +- {accs.std():.3f} | {bwts.mean():+.3f} +- {bwts.std():.3f} | '
              f'{capacity} |')
    print('\nThe same runs with 95% intervals (and a CSV, LaTeX): python src/plot_results.py table --experiment '
          f"split_fmnist --approaches {','.join(approaches)} --seeds {','.join(map(str, seeds))} --folders {args.out_dir}")


if __name__ == '__main__':
    utils.run_cli(main)
