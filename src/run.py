"""Train an approach on an experiment's task sequence and save the accuracy matrix acc[t, u] (after task t, on u).

    python src/run.py --experiment cifar --approach hat            (or, from src/: python run.py ...)
    python src/run.py --experiment cifar --approach hat --help     (the approach's own flags)
"""
import argparse
import dataclasses
import os
import textwrap
import time
from pathlib import Path

import numpy as np
import torch

from analysis import results
from approaches import _agnostic
from approaches._base import Context, Loop
from approaches._fast import Speed
from plumbing import checkpoints, files, hparams, interrupts, logs, utils

DRY_RUN_BATCHES = 3
# What a run names after its results in --logs-dir
RUN_LOG_SUFFIXES = (logs.EPOCH_LOG_SUFFIX, checkpoints.SUFFIX, logs.MONITOR_SUFFIX)
LOOP_FIELDS = tuple(f.name for f in dataclasses.fields(Loop))  # the training loop's flags: --nepochs, --lr, ...


def build_parser(experiments: list[str], approaches: list[str]) -> argparse.ArgumentParser:
    """The flags every run has (each approach adds its own)."""
    p = utils.Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--seed', type=utils.parse_seed, default=0,
                   help='random seed: task order, splits, init (default: %(default)s; in [0, 2**32 - 1], numpy\'s)')
    p.add_argument('--experiment', required=True, choices=experiments, help='task sequence')
    p.add_argument('--approach', required=True, choices=approaches, help='continual-learning approach')
    p.add_argument('--network', choices=utils.module_choices('networks'),
                   help="architecture (default: the experiment's, e.g. mlp for the MNIST ones, alexnet for cifar, "
                        "in the approach's variant)")
    hparams.add_flags(p, Loop, ('nepochs', 'lr', 'batch_size'))
    p.add_argument('--protocol', choices=('authors', 'original'), default='authors',
                   help="the training loop's defaults: the approach's authors' (its loop_defaults: optimizer, schedule, "
                        "epochs... for HAT's successors) or the original's for every approach, to compare under one "
                        "protocol (default: %(default)s; the same for the original's approaches)")
    p.add_argument('--parameter', default='',
                   help="the original's comma form of the approach's hyperparameters, e.g. 0.75,400 for hat's "
                        "lamb,smax; overrides the named flags")
    p.add_argument('--output', type=Path,
                   help='accuracy matrix file (default: <results-dir>/<experiment>_<approach>_<seed>.txt)')
    p.add_argument('--results-dir', type=Path, default=utils.RESULTS_DIR, help='default: res/ at the repository root')
    p.add_argument('--logs-dir', type=Path, default=utils.LOGS_DIR,
                   help='per-epoch JSON-lines logs (default: logs/ at the repository root)')
    p.add_argument('--data-dir', type=Path, default=utils.DATA_DIR, help='default: dat/ at the repository root')
    p.add_argument('--pc-valid', type=hparams.bounded(float, '[0, 1)'),
                   help="fraction of each task's training set held out for validation, in [0, 1) (default: the "
                        "original's: 0.1 for cifar; for mnist2/pmnist 0, meaning validation on a copy of the training "
                        "set)")
    p.add_argument('--fixed-order', action='store_true', help='keep the canonical task order instead of the seed\'s')
    p.add_argument('--task-agnostic', nargs='?', const='maxprob', choices=tuple(_agnostic.RULES), metavar='RULE',
                   help='also test without the task label (class-incremental): after each task, every test sample '
                        'of the tasks so far classified among all their classes, saved beside acc as acc_agnostic '
                        '(and <output>_agnostic.txt); where the forward depends on the task, the task inferred by '
                        'RULE: maxprob (the default), maxlogit, entropy or energy '
                        '(docs/usage.md#task-agnostic-evaluation)')
    p.add_argument('--device', help='cpu, cuda or cuda:N (default: cuda when available, else cpu)')
    # Speed options, off by default: each changes the arithmetic (docs/speed.md gives their effects)
    hparams.add_flags(p, Loop, ('eval_batch_size',))
    p.add_argument('--amp', nargs='?', const='bf16', choices=('bf16', 'fp16'),
                   help='mixed precision: forward passes under torch.autocast in bfloat16 (--amp) or in float16 with '
                        'loss scaling (--amp fp16)')
    p.add_argument('--compile', nargs='?', const='default', choices=('default', 'reduce-overhead', 'max-autotune'),
                   help='compile the network with torch.compile, in this mode (default: default; reduce-overhead '
                        'replays CUDA graphs)')
    p.add_argument('--channels-last', action='store_true', help='convolutions in the channels-last memory format')
    p.add_argument('--cuda-graphs', action='store_true',
                   help='on a GPU, replay each full training step and evaluation batch as a CUDA graph, one launch '
                        'instead of hundreds, meant to give the same numbers (not yet measured on a GPU: '
                        'bench/speed/gpu.py checks both; ignored with --amp or --compile, and for pathnet and random)')
    p.add_argument('--deterministic', action='store_true',
                   help="on a GPU, deterministic kernels (torch.use_deterministic_algorithms, warning where an "
                        "operation has none; cuBLAS's fixed workspace), so that a run repeated on the same GPU gives "
                        "the same bits; CPU runs are deterministic already")
    p.add_argument('--dry-run', action='store_true',
                   help=f'{DRY_RUN_BATCHES} batches per split and task, 1 epoch, no checkpoint: a quick check of a '
                        f'set-up')
    p.add_argument('--resume', action='store_true',
                   help='continue after the last task finished by an earlier run with the same settings, from its '
                        'checkpoint in --logs-dir (a new run where there is none; nothing to do where it finished)')
    p.add_argument('--overwrite', action='store_true', help='replace the finished results at --output')
    return p


def parse_args(argv: list[str] | None):
    """Parse the common flags and the chosen approach's; return args and the experiment, approach, network modules."""
    experiments, approaches = utils.module_choices('dataloaders'), utils.module_choices('approaches')
    parser = build_parser(experiments, approaches)
    # A first look at --approach and --experiment alone, so that their flags are declared (and shown by --help)
    peek = utils.Parser(add_help=False)
    peek.add_argument('--approach')
    peek.add_argument('--experiment')
    peek.add_argument('--protocol')
    peeked = peek.parse_known_args(argv)[0]
    chosen = peeked.approach
    if chosen in approaches:
        appr_cls = utils.load_module('approaches', chosen).Appr
        appr_cls.add_arguments(parser.add_argument_group(f'{chosen} hyperparameters'))
        # The approach's authors' training (optimizer, schedule, epochs...) where it differs from the original's
        if peeked.protocol != 'original':
            parser.set_defaults(**appr_cls.loop_defaults_for(peeked.experiment))
        if not appr_cls.trains:
            hide_loop_flags(parser, chosen)
    if peeked.experiment in experiments:
        dataloader = utils.load_module('dataloaders', peeked.experiment)
        if hasattr(dataloader, 'add_arguments'):
            dataloader.add_arguments(parser.add_argument_group(f'{peeked.experiment} options'))
    args = parser.parse_args(argv)  # a UserError on unknown names or flags nobody declared
    approach = utils.load_module('approaches', args.approach)
    apply_legacy_parameter(args, approach.Appr)
    experiment = utils.load_module('dataloaders', args.experiment)
    # The original's network when none is named: each experiment's DEFAULT_NETWORK (mlp for the MNIST experiments,
    # alexnet for cifar and mixture) in the variant the approach needs (mlp_hat, alexnet_hat for hat)
    variant = approach.Appr.network_variant
    network_name = args.network or experiment.DEFAULT_NETWORK + ('_' + variant if variant else '')
    network = (utils.load_module('networks', network_name) if network_name in utils.module_choices('networks')
               else None)
    if network is None or network.VARIANT != variant:
        fitting = [n for n in utils.module_choices('networks') if utils.load_module('networks', n).VARIANT == variant]
        if args.network is None:  # the experiment's network has no variant for this approach (progressive's ResNet)
            raise utils.UserError(f"approach {args.approach} has no {variant} form of {experiment.DEFAULT_NETWORK}, "
                                  f"{args.experiment}'s network; choose one of its networks with --network: "
                                  f"{', '.join(fitting)}")
        raise utils.UserError(f"approach {args.approach} needs a {variant or 'plain'} network "
                              f"({', '.join(fitting)}), not {network_name}")
    args.network = network_name
    if not approach.Appr.trains:
        note_ignored_loop_flags(parser, args)
    if args.dry_run:
        args.nepochs = 1
    # As the approach settles them (hat-test's emb_init by network): the args are what the results will say
    vars(args).update(dataclasses.asdict(approach.Appr.settle(hparams.from_args(approach.Appr.Hyper, args),
                                                              network.Net)))
    if args.output is None:
        suffix = '_dryrun' if args.dry_run else ''
        args.output = args.results_dir / f'{args.experiment}_{args.approach}_{args.seed}{suffix}.txt'
    check_outputs(args, approach.Appr.Hyper)
    return args, experiment, approach, network


def hide_loop_flags(parser: argparse.ArgumentParser, approach: str) -> None:
    """For an approach that does not train (random): its --help says in one paragraph that the training loop's flags
    are accepted and ignored, instead of listing them. Accepted, because a sweep passes the same run.py flags to
    every approach (run_multi.py --approaches random,sgd -- --nepochs 100)."""
    for action in parser._actions:  # argparse has no public way to hide an argument once added
        if action.dest in LOOP_FIELDS:
            action.help = argparse.SUPPRESS
    flags = ', '.join(hparams.flag(name) for name in LOOP_FIELDS)
    # 76: argparse's width on a terminal of 80 columns, less its indent
    parser.add_argument_group('training loop', textwrap.fill(
        f"{approach} does not train: the training loop's flags ({flags}) are accepted, so that one sweep's flags fit "
        f"every approach, and ignored; --batch-size only sets how many samples --dry-run keeps "
        f"({DRY_RUN_BATCHES} batches)", 76, break_on_hyphens=False))


def note_ignored_loop_flags(parser: argparse.ArgumentParser, args) -> None:
    """One line naming the loop's flags given other values than their defaults, which an approach that does not
    train ignores (--batch-size is used by --dry-run)."""
    ignored = [hparams.flag(name) for name in LOOP_FIELDS if getattr(args, name) != parser.get_default(name)
               and not (name == 'batch_size' and args.dry_run)]
    if ignored:
        print(f"note: {', '.join(ignored)} ignored: the {args.approach} approach does not train")


def check_outputs(args, hyper: type) -> None:
    """Before any work: --output names a .txt file (its .pkl, logs and checkpoint take its name), and neither it nor
    a file an approach writes (a hyperparameter of type Path, e.g. hat's --monitor-path) is a folder."""
    output = Path(args.output)
    if output.suffix != '.txt':
        raise utils.UserError(f"--output {output}: name a .txt file (the accuracy matrix, in the original's format; "
                              f"the .pkl beside it and the logs take its name)")
    for path in (output, results.pkl_path(output)):
        if path.is_dir():
            raise utils.UserError(f'--output {output}: {path} is a folder; name a .txt file')
    for field in dataclasses.fields(hyper):
        path = getattr(args, field.name)
        if isinstance(path, Path) and (path.is_dir() or not path.name):
            raise utils.UserError(f'{hparams.flag(field.name)} {path}: a folder; name a file')


def experiment_options(experiment, args) -> dict:
    """The values of the experiment's own flags (declared by its optional add_arguments), as keywords for its get()."""
    declared = argparse.ArgumentParser(add_help=False)
    getattr(experiment, 'add_arguments', lambda parser: None)(declared)
    return {name: getattr(args, name) for name in vars(declared.parse_args([]))}


def build_approach(approach, net: torch.nn.Module, args, device: torch.device, log: logs.EpochLog | None = None,
                   name: str | None = None):
    """The approach module's Appr on net, from the parsed flags: its hyperparameters, the loop's, the run's context
    (name: what its files are named after, by default the results')."""
    appr_cls = approach.Appr
    context = Context(device=device, log=log or logs.EpochLog(None), logs_dir=Path(args.logs_dir),
                      name=name or Path(args.output).stem, speed=hparams.from_args(Speed, args))
    return appr_cls(net, hparams.from_args(appr_cls.Hyper, args), hparams.from_args(Loop, args), context)


def apply_legacy_parameter(args, appr_cls) -> None:
    """Map the original's --parameter a,b,... onto the approach's named flags (each approach knows its own form)."""
    if not args.parameter:
        return
    try:
        settings = appr_cls.parse_parameter(args.parameter.split(','))
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


def print_matrix(acc: np.ndarray, title: str = 'Accuracies =') -> None:
    """The accuracy matrix in percent, as the original prints it at the end."""
    print('*' * 100)
    print(title)
    for row in acc:
        print('\t' + ''.join(f'{100 * a:5.1f}% ' for a in row))
    print('*' * 100)


def agnostic_rules(appr, rule: str) -> tuple[str, list[str]]:
    """(the rule of acc_agnostic, every rule evaluated): all where the forward depends on the task (the matrices of
    the others cost nothing more), else the concatenated logits' largest, maxlogit (approaches/_agnostic.py)."""
    if appr.forward_per_task:
        return rule, list(_agnostic.RULES)
    return _agnostic.SHARED_BODY_RULE, [_agnostic.SHARED_BODY_RULE]


def test_agnostic(appr, t: int, data: list[dict], progress: dict, rule: str) -> None:
    """After task t, every learned task's test set without its label: each rule's accuracy and task-inference
    accuracy into row t of progress['agnostic'][rule]. Nothing it draws (random's predictions) moves the generators,
    so the task-aware run is bitwise the same."""
    chosen, rules = agnostic_rules(appr, rule)
    ntasks = len(data)
    if 'agnostic' not in progress:  # the first task's tests (a resumed run's come from its checkpoint)
        progress['agnostic'] = {r: {k: np.zeros((ntasks, ntasks), dtype=np.float32) for k in ('acc', 'task_inference')}
                                for r in rules}
    matrices = progress['agnostic']
    with utils.random_state_kept():
        for u in range(t + 1):
            found = appr.test_agnostic(t, u, data[u]['test']['x'], data[u]['test']['y'], rules)
            for r, (acc, task) in found.items():
                matrices[r]['acc'][t, u], matrices[r]['task_inference'][t, u] = acc, task
            acc, task = found[chosen]
            print(f">>> Task-agnostic test on task {u:2d} - {data[u]['name']:15s}: acc={100 * acc:5.1f}%, task "
                  f"inferred={100 * task:5.1f}% ({chosen}) <<<")


def agnostic_results(appr, progress: dict, rule: str) -> dict:
    """What a task-agnostic run saves beside acc (docs/results.md#what-a-run-writes)."""
    chosen, _ = agnostic_rules(appr, rule)
    matrices = progress['agnostic']
    return {'acc_agnostic': matrices[chosen]['acc'].copy(),
            'task_inference': matrices[chosen]['task_inference'].copy(), 'agnostic_rule': chosen,
            'agnostic_by_rule': {r: {k: m.copy() for k, m in found.items()} for r, found in matrices.items()}}


def previous_results(args, found: results.Existing) -> dict | None:
    """What is at --output already, against the rules: finished results are never replaced without --overwrite (a
    dry run's only by another dry run), and are returned under --resume only when they were made with the same
    settings; an unfinished run is continued under --resume, with the same settings; results that cannot be checked
    (a .txt alone, as the original wrote it, or damaged files) are never taken for anything. None: go on and run."""
    if found.kind == 'none' or args.overwrite:
        return None
    out = args.output
    if found.kind == 'unverifiable':
        raise utils.UserError(f'{out} holds results that cannot be checked ({found.problem}); --overwrite replaces '
                              f'them')
    result = found.result
    differ = checkpoints.differences(checkpoints.config_of(result.saved['args']), checkpoints.config(args))
    if args.resume and result.finished and not differ:
        return result.saved
    if result.dry_run and args.dry_run:
        return None  # scratch replaces scratch
    what = ('a dry run' if result.dry_run else 'a finished run' if result.finished else
            f'an unfinished run ({result.tasks_done} of {len(result.acc)} tasks)')
    if args.resume and not result.finished and checkpoints.without_task_agnostic(
            checkpoints.config_of(result.saved['args']), checkpoints.config(args)):
        raise utils.UserError(checkpoints.task_agnostic_gap(str(out), result.tasks_done))
    if differ:
        raise utils.UserError(f"{out} holds {what} made with other settings ({', '.join(differ)}); "
                              f"{'' if result.finished else 'resume it with the same flags, or '}--overwrite "
                              f"replaces it")
    if args.resume:
        return None  # an unfinished run with the same settings: continued
    raise utils.UserError(f"{out} holds {what}; --resume {'returns' if result.finished else 'continues'} it, "
                          f"--overwrite replaces it")


def staged_name(output: Path) -> str:
    """The name a run replacing the results at output writes under until it finishes (hidden, beside them)."""
    return f'.{output.stem}.new'


def promote(name: str, args) -> None:
    """A replacement has finished: its files take the names of the results it replaces, the logs first and the .txt
    last; what the replaced run's logs had that the new run's do not (a checkpoint, a monitoring log) goes."""
    for suffix in RUN_LOG_SUFFIXES:
        new, old = Path(args.logs_dir, name + suffix), Path(args.logs_dir, args.output.stem + suffix)
        if new.exists():
            os.replace(new, old)
        else:
            old.unlink(missing_ok=True)
    staged = args.output.with_name(name + '.txt')
    os.replace(results.pkl_path(staged), results.pkl_path(args.output))
    if results.agnostic_txt_path(staged).exists():
        os.replace(results.agnostic_txt_path(staged), results.agnostic_txt_path(args.output))
    else:  # the replaced run's task-agnostic matrix is not this run's
        results.agnostic_txt_path(args.output).unlink(missing_ok=True)
    os.replace(staged, args.output)


def main(argv: list[str] | None = None) -> dict:
    """Run one experiment; return the results that were saved (acc, lss, taskcla, names, args, timings)."""
    tstart = time.time()
    args, experiment, approach, network = parse_args(argv)
    print_args(args)
    args.output = Path(args.output).resolve()
    files.ensure_writable_dir(args.output.parent, 'results')
    files.ensure_writable_dir(args.logs_dir, 'logs')
    with files.OutputLock(args.output), interrupts.SignalGuard() as guard:
        found = results.existing(args.output)
        previous = previous_results(args, found)
        if previous is not None:
            print(f'{args.output} is finished already: nothing to resume (it was made with the same settings)')
            return previous
        # A run that replaces results writes under another name until it finishes: the old ones stay whole till then
        in_place = found.kind == 'none' or (found.kind == 'unfinished' and args.resume and not args.overwrite)
        name = args.output.stem if in_place else staged_name(args.output)
        if not in_place:
            print(f'{args.output} holds results: this run writes beside them, as {name}.*, and replaces them once it '
                  f'has finished')
        try:
            return run(args, experiment, approach, network, guard, tstart, name)
        except interrupts.Interrupted as e:
            ckpt = checkpoints.path_for(args.logs_dir, name)
            if not ckpt.is_file():
                raise interrupts.Interrupted(f'{e} before the first task started: nothing to resume',
                                             e.signal_name) from None
            raise interrupts.Interrupted(f'{e}; the same command with --resume continues from {ckpt}',
                                         e.signal_name) from None


def run(args, experiment, approach, network, guard: interrupts.SignalGuard, tstart: float, name: str) -> dict:
    """Train and test task after task (from the checkpoint's next task under --resume), saving as it goes, under
    `name` (the results' own, or a replacement's until it finishes)."""
    if args.deterministic:
        utils.use_deterministic_kernels()
    utils.seed_everything(args.seed)
    device = utils.choose_device(args.device)

    print('Load data...')
    data, taskcla, inputsize = experiment.get(args.data_dir, seed=args.seed, fixed_order=args.fixed_order,
                                              pc_valid=args.pc_valid, **experiment_options(experiment, args))
    if args.dry_run:
        truncate(data, DRY_RUN_BATCHES * args.batch_size)
    print('Input size =', inputsize, '\nTask info =', taskcla)
    for task in data:  # once, so no batch is copied to the device again
        for split in ('train', 'valid', 'test'):
            task[split] = {k: v.to(device) for k, v in task[split].items()}

    print('Inits...')
    net = network.Net(inputsize, taskcla).to(device)
    logs.print_model_report(net)
    ntasks = len(taskcla)
    ckpt = checkpoints.path_for(args.logs_dir, name)
    dest = args.output.with_name(name + '.txt')
    progress = {'tasks_done': 0, 'acc': np.zeros((ntasks, ntasks), dtype=np.float32),
                'lss': np.zeros((ntasks, ntasks), dtype=np.float32), 'seconds_per_task': [], 'seconds': 0.0,
                'log_bytes': 0}
    epoch_log = args.logs_dir / (name + logs.EPOCH_LOG_SUFFIX)
    if not approach.Appr.trains:  # no epoch, so no epoch log (nor an earlier run's, which would say otherwise)
        epoch_log.unlink(missing_ok=True)
    log = logs.EpochLog(epoch_log if approach.Appr.trains else None, append=args.resume and ckpt.is_file(),
                        marks={'dry_run': True} if args.dry_run else None)
    appr = build_approach(approach, net, args, device, log, name)
    if args.resume:
        resumed = checkpoints.load(ckpt, args, appr, replace_other=args.overwrite)
        if resumed is None:
            log.truncate(0)
            if not ckpt.is_file():
                print(f'No checkpoint at {ckpt}: starting from the first task')
        else:
            progress = resumed
            log.truncate(progress['log_bytes'])
            tstart -= progress['seconds']  # elapsed time counts the earlier runs
            print(f"Resuming from {ckpt} after task {progress['tasks_done'] - 1}")
    print('Criterion =', appr.ce if appr.trains else None)
    logs.print_optimizer_config(appr.optimizer)
    print('-' * 100)

    acc, lss = progress['acc'], progress['lss']
    saved = {}
    try:
        if progress['tasks_done'] == 0 and not args.dry_run:  # a dry run is scratch: nothing to resume
            with guard.hold():  # a run stopped in its first task resumes from here, not from nothing
                checkpoints.save(ckpt, args, appr, progress)
        for t, _ in taskcla[progress['tasks_done']:]:
            print('*' * 100)
            print(f"Task {t:2d} ({data[t]['name']})")
            print('*' * 100)
            clock = time.time()
            appr.train(t, data)
            progress['seconds_per_task'].append(time.time() - clock)
            print('-' * 100)
            with guard.hold():  # the tests, results and checkpoint of a finished task are never cut in half
                for u in range(t + 1):
                    test_loss, test_acc = appr.test(u, data[u]['test']['x'], data[u]['test']['y'])
                    print(f">>> Test on task {u:2d} - {data[u]['name']:15s}: loss={test_loss:.3f}, "
                          f"acc={100 * test_acc:5.1f}% <<<")
                    acc[t, u], lss[t, u] = test_acc, test_loss
                if args.task_agnostic:
                    test_agnostic(appr, t, data, progress, args.task_agnostic)
                progress.update(tasks_done=t + 1, seconds=time.time() - tstart)
                saved = {'acc': acc.copy(), 'lss': lss.copy(), 'taskcla': taskcla, 'inputsize': list(inputsize),
                           'task_names': [task['name'] for task in data],
                           'args': checkpoints.plain_args(args),
                           'tasks_done': t + 1, 'seconds_per_task': list(progress['seconds_per_task']),
                           'seconds': progress['seconds']}
                if args.task_agnostic:
                    saved.update(agnostic_results(appr, progress, args.task_agnostic))
                record = appr.capacity(t)
                if record is not None:  # the approach sets parts of the network aside per task
                    progress.setdefault('capacity', []).append(record)
                    saved['capacity'] = list(progress['capacity'])
                    print(f"Capacity: the tasks so far take {100 * record['used']:.1f}% of the {record['of']} "
                          f"({100 * record['free']:.1f}% free), task {t} {100 * record['per_task'][-1]:.1f}%")
                print('Save at', dest)
                results.save(dest, saved)
                appr.after_tests(t, saved)
                if t + 1 < ntasks and not args.dry_run:
                    progress['log_bytes'] = log.size()
                    checkpoints.save(ckpt, args, appr, progress)
        with guard.hold():
            ckpt.unlink(missing_ok=True)  # the results are complete: nothing left to resume
            if dest != args.output:
                log.close()
                promote(name, args)
                print(f'Replaced the results at {args.output}')
    except interrupts.Interrupted as e:
        raise interrupts.Interrupted(f"{e} after {progress['tasks_done']} of {ntasks} tasks", e.signal_name) from None
    finally:
        log.close()

    print_matrix(acc)
    if args.task_agnostic:
        print_matrix(saved['acc_agnostic'], f"Task-agnostic accuracies ({saved['agnostic_rule']}) =")
    print('Done!')
    print(f'[Elapsed time = {logs.duration(time.time() - tstart)}]')
    return saved


if __name__ == '__main__':
    utils.run_cli(main)
