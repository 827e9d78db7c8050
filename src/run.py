"""Train an approach on an experiment's task sequence and save the accuracy matrix acc[t, u] (after task t, on u).

    python src/run.py --experiment cifar --approach hat            (or, from src/: python run.py ...)
    python src/run.py --experiment cifar --approach hat --help     (the approach's own flags)
"""
import argparse
import time
from pathlib import Path

import numpy as np

import utils

DRY_RUN_BATCHES = 3


def build_parser(experiments: list[str], approaches: list[str]) -> argparse.ArgumentParser:
    """The flags every run has (each approach adds its own)."""
    p = utils.Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--seed', type=int, default=0, help='random seed: task order, splits, init (default: %(default)s)')
    p.add_argument('--experiment', required=True, choices=experiments, help='task sequence')
    p.add_argument('--approach', required=True, choices=approaches, help='continual-learning approach')
    p.add_argument('--network', choices=utils.module_choices('networks'),
                   help='architecture (default: mlp for mnist2/pmnist, alexnet otherwise, in the approach\'s variant)')
    p.add_argument('--nepochs', type=int, default=200, help='maximum epochs per task (default: %(default)s)')
    p.add_argument('--lr', type=float, default=0.05, help='initial SGD learning rate (default: %(default)s)')
    p.add_argument('--batch-size', type=int, default=64, help='minibatch size (default: %(default)s)')
    p.add_argument('--parameter', default='',
                   help="the original's comma form of the approach's hyperparameters, e.g. 0.75,400 for hat's "
                        "lamb,smax; overrides the named flags")
    p.add_argument('--output', type=Path,
                   help='accuracy matrix file (default: <results-dir>/<experiment>_<approach>_<seed>.txt)')
    p.add_argument('--results-dir', type=Path, default=utils.RESULTS_DIR, help='default: res/ at the repository root')
    p.add_argument('--logs-dir', type=Path, default=utils.LOGS_DIR,
                   help='per-epoch JSON-lines logs (default: logs/ at the repository root)')
    p.add_argument('--data-dir', type=Path, default=utils.DATA_DIR, help='default: dat/ at the repository root')
    p.add_argument('--pc-valid', type=float,
                   help="fraction of each task's training set held out for validation (default: the original's: 0.1 "
                        "for cifar; for mnist2/pmnist 0, meaning validation on a copy of the training set)")
    p.add_argument('--fixed-order', action='store_true', help='keep the canonical task order instead of the seed\'s')
    p.add_argument('--device', help='cpu, cuda or cuda:N (default: cuda when available, else cpu)')
    p.add_argument('--dry-run', action='store_true',
                   help=f'{DRY_RUN_BATCHES} batches per split and task, 1 epoch: a quick check of a set-up')
    return p


def parse_args(argv: list[str] | None):
    """Parse the common flags and the chosen approach's; return args and the experiment, approach, network modules."""
    experiments, approaches = utils.module_choices('dataloaders'), utils.module_choices('approaches')
    parser = build_parser(experiments, approaches)
    # A first look at --approach alone, so that its flags are declared (and shown by --help) before parsing
    peek = utils.Parser(add_help=False)
    peek.add_argument('--approach')
    chosen = peek.parse_known_args(argv)[0].approach
    if chosen in approaches:
        utils.load_module('approaches', chosen).Appr.add_arguments(
            parser.add_argument_group(f'{chosen} hyperparameters'))
    args = parser.parse_args(argv)  # a UserError on unknown names or flags nobody declared
    approach = utils.load_module('approaches', args.approach)
    apply_legacy_parameter(args, parser, approach.Appr)
    experiment = utils.load_module('dataloaders', args.experiment)
    # The original's network when none is named: each experiment's base (mlp for the MNIST experiments, alexnet
    # otherwise) in the variant the approach needs (mlp_hat, alexnet_hat for hat)
    network_name = args.network or experiment.DEFAULT_NETWORK + (
        '_' + approach.Appr.network_variant if approach.Appr.network_variant else '')
    network = utils.load_module('networks', network_name)
    variant = approach.Appr.network_variant
    if network.VARIANT != variant:
        fitting = [n for n in utils.module_choices('networks') if utils.load_module('networks', n).VARIANT == variant]
        raise utils.UserError(f"approach {args.approach} needs a {variant or 'plain'} network "
                              f"({', '.join(fitting)}), not {network_name}")
    args.network = network_name
    if args.output is None:
        suffix = '_dryrun' if args.dry_run else ''
        args.output = args.results_dir / f'{args.experiment}_{args.approach}_{args.seed}{suffix}.txt'
    for flag in ('nepochs', 'batch_size'):
        if getattr(args, flag) < 1:
            raise utils.UserError(f"--{flag.replace('_', '-')} must be at least 1")
    return args, experiment, approach, network


def apply_legacy_parameter(args, parser: argparse.ArgumentParser, appr_cls) -> None:
    """Map the original's --parameter a,b,... onto the approach's named flags (each approach knows its own form)."""
    if not args.parameter:
        return
    types = {a.dest: a.type for a in parser._actions}
    try:
        settings = appr_cls.parse_parameter(args.parameter.split(','), types)
    except ValueError as e:
        raise utils.UserError(f"--parameter '{args.parameter}' ({args.approach}): {e}") from None
    vars(args).update(settings)
    print('Setting parameters to', settings)


def print_args(args) -> None:
    """The original's argument banner."""
    print('=' * 100)
    print('Arguments =')
    for name, value in vars(args).items():
        print(f'\t{name}: {value}')
    print('=' * 100)


def truncate(data: list[dict], nsamples: int) -> None:
    """Keep the first nsamples of every split of every task (--dry-run)."""
    for task in data:
        for split in ('train', 'valid', 'test'):
            task[split] = {k: v[:nsamples] for k, v in task[split].items()}


def print_matrix(acc: np.ndarray) -> None:
    """The accuracy matrix in percent, as the original prints it at the end."""
    print('*' * 100)
    print('Accuracies =')
    for row in acc:
        print('\t' + ''.join(f'{100 * a:5.1f}% ' for a in row))
    print('*' * 100)


def main(argv: list[str] | None = None) -> dict:
    """Run one experiment; return the results that were saved (acc, lss, taskcla, names, args, timings)."""
    tstart = time.time()
    args, experiment, approach, network = parse_args(argv)
    print_args(args)
    args.output = Path(args.output).resolve()
    utils.ensure_writable_dir(args.output.parent, 'results')
    utils.ensure_writable_dir(args.logs_dir, 'logs')

    utils.seed_everything(args.seed)
    device = utils.choose_device(args.device)

    print('Load data...')
    data, taskcla, inputsize = experiment.get(args.data_dir, seed=args.seed, fixed_order=args.fixed_order,
                                              pc_valid=args.pc_valid)
    if args.dry_run:
        args.nepochs = 1
        truncate(data, DRY_RUN_BATCHES * args.batch_size)
    print('Input size =', inputsize, '\nTask info =', taskcla)
    for task in data:  # once, so no batch is copied to the device again
        for split in ('train', 'valid', 'test'):
            task[split] = {k: v.to(device) for k, v in task[split].items()}

    print('Inits...')
    net = network.Net(inputsize, taskcla).to(device)
    utils.print_model_report(net)
    log = utils.EpochLog(args.logs_dir / (args.output.stem + '.jsonl'))
    appr = approach.Appr(net, args, device, log)
    print('Criterion =', getattr(appr, 'ce', None))
    utils.print_optimizer_config(appr.optimizer)
    print('-' * 100)

    ntasks = len(taskcla)
    acc = np.zeros((ntasks, ntasks), dtype=np.float32)
    lss = np.zeros((ntasks, ntasks), dtype=np.float32)
    seconds = []
    results = {}
    try:
        for t, _ in taskcla:
            print('*' * 100)
            print(f"Task {t:2d} ({data[t]['name']})")
            print('*' * 100)
            clock = time.time()
            appr.train(t, data)
            seconds.append(time.time() - clock)
            print('-' * 100)
            for u in range(t + 1):
                test_loss, test_acc = appr.eval(u, data[u]['test']['x'], data[u]['test']['y'])
                print(f">>> Test on task {u:2d} - {data[u]['name']:15s}: loss={test_loss:.3f}, "
                      f"acc={100 * test_acc:5.1f}% <<<")
                acc[t, u], lss[t, u] = test_acc, test_loss
            results = {'acc': acc.copy(), 'lss': lss.copy(), 'taskcla': taskcla, 'inputsize': list(inputsize),
                       'task_names': [task['name'] for task in data], 'args': {k: str(v) if isinstance(v, Path)
                                                                                else v for k, v in vars(args).items()},
                       'tasks_done': t + 1, 'seconds_per_task': list(seconds), 'seconds': time.time() - tstart}
            print('Save at', args.output)
            utils.save_txt_matrix(args.output, acc)
            utils.save_pickle(args.output.with_suffix('.pkl'), results)
            appr.after_tests(t, results)
    finally:
        log.close()

    print_matrix(acc)
    print('Done!')
    print(f'[Elapsed time = {(time.time() - tstart) / 3600:.1f} h]')
    return results


if __name__ == '__main__':
    utils.run_cli(main)
