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
    python bench/tables/approaches.py --approaches hat,adahat,packnet,supsup,wsn,gpm,sgd,joint,ewc,lwf --seeds 0,1,2 \
        --nepochs 1 --task-agnostic --out-dir res/bench_successors
                    (HAT and its successors, also without the task label: docs/approaches.md, docs/usage.md)

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


def mean_std(values) -> str:
    values = np.asarray(values, dtype=np.float64)
    return 'n/a' if np.isnan(values).any() else f'{values.mean():.3f} +- {values.std():.3f}'


def record(results: dict) -> dict:
    """What the tables show of one run: final ACC, BWT and capacity used; with --task-agnostic, the same without the
    label, the final task-inference accuracy, and each rule's final ACC and task inference."""
    acc = results['acc']
    capacity = results.get('capacity')  # the approaches that set a part of the network aside per task
    row = {'acc': float(acc[-1].mean()), 'bwt': float(metrics.backward_transfer(acc)),
           'used': capacity[-1]['used'] if capacity else float('nan')}
    if 'acc_agnostic' in results:
        agnostic = results['acc_agnostic']
        row.update(acc_agnostic=float(agnostic[-1].mean()), bwt_agnostic=float(metrics.backward_transfer(agnostic)),
                   inferred=float(results['task_inference'][-1].mean()), rule=results['agnostic_rule'],
                   by_rule={rule: (float(m['acc'][-1].mean()), float(m['task_inference'][-1].mean()))
                            for rule, m in results['agnostic_by_rule'].items()})
    return row


def main() -> None:
    """Run every approach on split Fashion-MNIST, seed by seed, and print the table."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--approaches', default=','.join(utils.module_choices('approaches')))
    p.add_argument('--seeds', default='0,1')
    p.add_argument('--nepochs', type=int, default=3)
    p.add_argument('--data-dir', type=Path, default=utils.DATA_DIR)
    p.add_argument('--out-dir', type=Path, default=utils.RESULTS_DIR / 'bench_baselines',
                   help='results and each run\'s full output (default: res/bench_baselines/)')
    p.add_argument('--task-agnostic', nargs='?', const='maxprob', metavar='RULE',
                   help="run.py's --task-agnostic: the tables add ACC and BWT without the task label, the "
                        "task-inference accuracy, and each rule's figures where the forward depends on the task")
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
                    *(['--task-agnostic', args.task_agnostic] if args.task_agnostic else []),
                    *(['--dry-run'] if args.dry_run else [])]
            clock = time.time()
            suffix = '_dryrun' if args.dry_run else ''  # run.py's for the results
            with open(args.out_dir / f'split_fmnist_{approach}_{seed}{suffix}.out', 'w') as out, \
                    contextlib.redirect_stdout(out):
                row = record(run.main(argv))
            table.setdefault(approach, []).append(row)
            agnostic = (f"  without the label: ACC {row['acc_agnostic']:.3f}  BWT {row['bwt_agnostic']:+.3f}  task "
                        f"inferred {row['inferred']:.3f}" if args.task_agnostic else '')
            print(f"{approach:12s} seed {seed}: ACC {row['acc']:.3f}  BWT {row['bwt']:+.3f}  capacity used "
                  f"{row['used']:.3f}{agnostic}  ({time.time() - clock:.0f} s)", flush=True)

    if args.dry_run:
        print('\nDRY RUN: a check of the set-up, not results')
    print(f'\nsplit_fmnist, MLP, {args.nepochs} epochs per task, seeds {seeds}: mean +- std over seeds')
    print('| approach | ACC (final average accuracy) | BWT (backward transfer) | capacity used |')
    print('|---|---|---|---|')
    for approach, rows in table.items():
        print(f"| {approach} | {mean_std([r['acc'] for r in rows])} | {mean_std([r['bwt'] for r in rows])} | "
              f"{mean_std([r['used'] for r in rows])} |")
    if args.task_agnostic:
        print('\nWithout the task label (run.py --task-agnostic): the task-aware figures beside, the rule that infers '
              'the task (maxlogit: the concatenated heads\' largest logit, for heads on one body), the share of '
              'test samples whose task is inferred right after the last task')
        print('| approach | ACC aware | ACC agnostic | BWT aware | BWT agnostic | rule | task inferred |')
        print('|---|---|---|---|---|---|---|')
        for approach, rows in table.items():
            print(f"| {approach} | {mean_std([r['acc'] for r in rows])} | "
                  f"{mean_std([r['acc_agnostic'] for r in rows])} | {mean_std([r['bwt'] for r in rows])} | "
                  f"{mean_std([r['bwt_agnostic'] for r in rows])} | {rows[0]['rule']} | "
                  f"{mean_std([r['inferred'] for r in rows])} |")
        per_task = {a: rows for a, rows in table.items() if len(rows[0]['by_rule']) > 1}
        if per_task:
            rules = list(next(iter(per_task.values()))[0]['by_rule'])
            print('\nEach rule where the forward depends on the task: final ACC without the label / task inferred')
            print('| approach | ' + ' | '.join(rules) + ' |')
            print('|---|' + '---|' * len(rules))
            for approach, rows in per_task.items():
                print(f'| {approach} | ' + ' | '.join(
                    f"{mean_std([r['by_rule'][rule][0] for r in rows])} / "
                    f"{mean_std([r['by_rule'][rule][1] for r in rows])}" for rule in rules) + ' |')
    print('\nThe same runs with 95% intervals (and a CSV, LaTeX): python src/plot_results.py table --experiment '
          f"split_fmnist --approaches {','.join(approaches)} --seeds {','.join(map(str, seeds))} --folders "
          f"{args.out_dir}" + (' [--view agnostic]' if args.task_agnostic else ''))


if __name__ == '__main__':
    utils.run_cli(main)
