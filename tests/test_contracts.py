"""Every module of the three kinds, found by name, against its written contract (networks/__init__.py,
dataloaders/__init__.py, approaches/__init__.py and _base.py), so that a new file is checked, and run end to end, the
day it is added, without editing a test (docs/extending.md):

- each network built for a small taskcla: its attributes, methods, heads and forward per variant
  (networks/_contract.check), the same initial weights for a seed;
- each experiment: its declarations, get()'s keywords against its flags, the layout of what get() returns on the
  tiny data, one-line errors without data, and a dry run with its default network, plain and in its HAT form;
- each approach: its declared hyperparameters and flags, built in a line; dry runs on one experiment per kind of
  network and input (the AlexNet-like network, GPM's AlexNet, the reduced ResNet-18 at 32x32 and 64x64) and short runs
  that must learn the tiny MLP tasks (and, for the reference approaches, the paper's other experiments).

The runs are in-process, on a small copy of the tiny data, with each experiment's get() answered from one cache for
the whole module (a run's data are copies: what it does to them stays its own).
"""
import argparse
import dataclasses
import inspect
import json
import pickle
import re

import numpy as np
import pytest
import torch

import conftest
import fixtures
from approaches._base import APPROACH_LOOP_FLAGS, Appr as BaseAppr, Loop
from fixtures import OFFLINE, run_main
from networks import _contract
from plumbing import hparams, utils
from plumbing.utils import UserError

NETWORKS = utils.module_choices('networks')
EXPERIMENTS = utils.module_choices('dataloaders')
APPROACHES = utils.module_choices('approaches')
TASKCLA = [(0, 2), (1, 3)]  # two tasks of different sizes: a head mixed up with another has the wrong width
GET_KEYWORDS = ['data_dir', 'seed', 'fixed_order', 'pc_valid']  # get()'s first parameters, as run.py passes them


def network(name: str):
    return utils.load_module('networks', name)


def experiment(name: str):
    return utils.load_module('dataloaders', name)


def approach(name: str):
    return utils.load_module('approaches', name).Appr


def variant_networks(variant: str | None) -> list[str]:
    """The networks of a variant, as run.py lists them in its errors."""
    return [n for n in NETWORKS if network(n).VARIANT == variant]


def network_for(experiment_name: str, variant: str | None) -> str | None:
    """The network run.py picks by default (the experiment's DEFAULT_NETWORK in the variant); None where it has no
    form of that variant (then run.py asks for --network)."""
    name = experiment(experiment_name).DEFAULT_NETWORK + (f'_{variant}' if variant else '')
    return name if name in NETWORKS else None


def input_sizes(name: str) -> list[list[int]]:
    """The input sizes a network is checked at: those of the experiments that run it by default, or CIFAR's."""
    module = network(name)
    base = name[:-len(module.VARIANT) - 1] if module.VARIANT and name.endswith('_' + module.VARIANT) else name
    sizes = [experiment(e).INPUTSIZE for e in EXPERIMENTS if experiment(e).DEFAULT_NETWORK == base]
    return [list(s) for s in dict.fromkeys(tuple(s) for s in sizes)] or [[3, 32, 32]]


def experiment_flags(module) -> dict:
    """The experiment's own flags (its add_arguments, if any), by name, with their defaults."""
    parser = argparse.ArgumentParser(add_help=False)
    getattr(module, 'add_arguments', lambda parser: None)(parser)
    return vars(parser.parse_args([]))


@pytest.fixture(autouse=True)
def one_thread():
    """Each test on one thread: on a busy machine OpenMP's threads wait for one another (test_modern_networks.py
    measured training 10 to 20 times as long on two threads as on one)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


########################################################################################################################
# Data: a small copy of the tiny data sets, each experiment's get() answered once per module


@pytest.fixture(scope='module')
def small_data(tmp_path_factory, data_dir):
    """Every data set of the tiny fixtures, smaller where the MLP runs train (MNIST, Fashion-MNIST), with each
    experiment's get() cached for the module (after data_dir, whose checksums it overrides for the module and then
    gives back)."""
    root = tmp_path_factory.mktemp('contracts')
    for folder in ('MNIST', 'FashionMNIST'):
        fixtures.write_mnist(root, train_per_class=8, test_per_class=4, folder=folder)
    md5 = fixtures.write_cifar(root)  # smaller, HAT did not learn it in 4 epochs
    svhn_md5 = fixtures.write_mixture(root)
    fixtures.write_tinyimagenet(root, train_per_class=10)  # 5% of a task's 20 images is one to validate on
    with pytest.MonkeyPatch.context() as mp:
        conftest.register_cifar_checksums(mp, md5)
        conftest.register_svhn_checksums(mp, svhn_md5)
        for name in EXPERIMENTS:
            module = experiment(name)
            mp.setattr(module, 'get', _cached(module.get))
        yield root


def _cached(get):
    """get(), computed once per set of arguments; each call gets copies of the tensors (a run truncates, moves and
    may modify its data)."""
    answers = {}

    def cached_get(data_dir, *args, **kwargs):
        key = repr((str(data_dir), args, sorted(kwargs.items())))
        if key not in answers:
            answers[key] = get(data_dir, *args, **kwargs)
        data, taskcla, inputsize = answers[key]
        copies = [{k: ({s: v.clone() for s, v in value.items()} if isinstance(value, dict) else value)
                   for k, value in task.items()} for task in data]
        return copies, list(taskcla), list(inputsize)

    cached_get.__wrapped__ = get
    return cached_get


@pytest.fixture
def offline(monkeypatch):
    """Every download fails at once, as on a machine without internet."""
    for var, value in OFFLINE.items():
        monkeypatch.setenv(var, value)


def check_results(results: dict, tmp_path, experiment_name: str, approach_name: str, dry_run: bool) -> None:
    """What a finished run returns and writes: the matrices, the .txt and .pkl results, the epoch log."""
    acc, taskcla = results['acc'], results['taskcla']
    n = len(taskcla)
    assert acc.shape == (n, n) and results['tasks_done'] == n
    assert np.all(np.triu(acc, 1) == 0) and np.all((acc >= 0) & (acc <= 1)) and np.all(np.isfinite(results['lss']))
    out = tmp_path / 'res' / f'{experiment_name}_{approach_name}_1{"_dryrun" if dry_run else ""}.txt'
    np.testing.assert_allclose(np.loadtxt(out, ndmin=2), acc, rtol=0, atol=5.1e-5)  # '%.4f'
    with open(out.with_suffix('.pkl'), 'rb') as f:
        saved = pickle.load(f)
    np.testing.assert_array_equal(saved['acc'], acc)
    assert saved['taskcla'] == taskcla and len(saved['task_names']) == n
    assert saved['args']['approach'] == approach_name and saved['args']['seed'] == 1
    assert saved['args']['dry_run'] == dry_run
    assert len(saved['seconds_per_task']) == n and saved['lss'].shape == (n, n)
    appr_cls = approach(approach_name)
    if appr_cls.capacity is BaseAppr.capacity:  # an approach that sets no part of the network aside per task
        assert 'capacity' not in saved
    else:  # a record after each task (docs/results.md#capacity)
        assert [r['task'] for r in saved['capacity']] == list(range(n)) and saved['capacity'] == results['capacity']
        for r in saved['capacity']:
            assert len(r['per_task']) == r['task'] + 1 and r['total'] > 0 and r['free'] == 1 - r['used']
            assert all(0 <= share <= r['used'] <= 1 for share in r['per_task']), r
    log = tmp_path / 'logs' / out.with_suffix('.jsonl').name
    if not appr_cls.trains:
        assert not log.exists()  # no epoch runs: no per-epoch log
    else:
        records = [json.loads(line) for line in log.read_text().splitlines()]
        assert {r['task'] for r in records} == set(range(n))
        assert {'epoch', 'lr', 'train_loss', 'train_acc', 'valid_loss', 'valid_acc'} <= set(records[0])
        assert ('train_reg' in records[0]) == (appr_cls.network_variant == 'hat')


def run(small_data, tmp_path, experiment_name: str, approach_name: str, *argv: str) -> dict:
    """run.main of the pair, seed 1, on the small data."""
    return run_main(small_data, tmp_path, '--experiment', experiment_name, '--approach', approach_name, '--seed', '1',
                    *argv)


# The cheapest dry run: batches of 2 (a dry run keeps 3 batches a split) and one evaluation batch per set
DRY_RUN = ['--dry-run', '--batch-size', '2', '--eval-batch-size', '1000']
# A dry run's tasks: what an approach does differently on later tasks (masks, penalties, frozen copies, columns,
# paths, a growing training set) first happens on the second task and again on the third; the other tasks repeat it
# at the cost of a whole network's steps each (the AlexNet experiments' 8-10 tasks cost 3 times as much).
# test_experiment_data_layout checks every task of every experiment
DRY_TASKS = 3


@pytest.fixture
def few_tasks(small_data, monkeypatch):
    """The small data, each experiment's get() giving its first DRY_TASKS tasks."""
    for name in EXPERIMENTS:
        module = experiment(name)
        monkeypatch.setattr(module, 'get', fixtures.first_tasks(module.get, DRY_TASKS))
    return small_data


########################################################################################################################
# Module choices


@pytest.mark.parametrize('package', ['networks', 'dataloaders', 'approaches'])
def test_choices_are_the_files(package):
    """The choices are the package's files but its shared parts ('_'), approaches named with '-', and run.py offers
    them."""
    import run
    files = sorted(p.stem for p in (utils.SRC_DIR / package).glob('*.py') if not p.stem.startswith('_'))
    names = utils.module_choices(package)
    assert [n.replace('-', '_') for n in names] == files and files
    assert all('_' not in n for n in names) or package != 'approaches'
    flag = {'networks': '--network', 'dataloaders': '--experiment', 'approaches': '--approach'}[package]
    parser = run.build_parser(EXPERIMENTS, APPROACHES)
    assert next(a.choices for a in parser._actions if flag in a.option_strings) == names


########################################################################################################################
# Networks


@pytest.mark.parametrize('name', NETWORKS)
def test_network_contract(name):
    module = network(name)
    assert module.VARIANT in _contract.VARIANTS
    parameters = list(inspect.signature(module.Net).parameters.values())
    assert [p.name for p in parameters[:2]] == ['inputsize', 'taskcla'], 'Net(inputsize, taskcla, ...)'
    assert all(p.default is not inspect.Parameter.empty for p in parameters[2:]), 'run.py passes two arguments'
    if hasattr(module, 'EMB_INIT'):
        assert module.VARIANT == 'hat' and module.EMB_INIT in ('normal', 'uniform')
    for inputsize in input_sizes(name):
        torch.manual_seed(0)
        net = module.Net(inputsize, TASKCLA)
        _contract.check(net, module.VARIANT, torch.randn(2, *inputsize))
        # The order of creation fixes the initial values: the same seed, the same network
        torch.manual_seed(0)
        again = module.Net(inputsize, TASKCLA).state_dict()
        assert all(torch.equal(v, again[k]) for k, v in net.state_dict().items())


def reached_by_default(name: str) -> bool:
    """Whether some experiment runs the network by default (then the experiments' and approaches' runs run it)."""
    return any(network_for(e, network(name).VARIANT) == name for e in EXPERIMENTS)


# The ResNet-18s at 32 x 32 (6 to 7 s each) marked slow, as the approaches' dry runs on the convolutional networks
@pytest.mark.parametrize('name', [pytest.param(n, marks=pytest.mark.slow) if n.startswith('resnet') else n
                                  for n in NETWORKS if not reached_by_default(n)])
def test_network_dry_runs(few_tasks, tmp_path, name):
    """A network no experiment runs by default, named with --network: dry-run by an approach of its variant (sgd for
    a plain one) on the first experiment of the input size it is checked at."""
    variant = network(name).VARIANT
    approach_name = min((a for a in APPROACHES if approach(a).network_variant == variant),
                        key=lambda a: (a not in ('sgd', variant), a))
    experiment_name = next(e for e in EXPERIMENTS if experiment(e).INPUTSIZE == input_sizes(name)[0])
    results = run(few_tasks, tmp_path, experiment_name, approach_name, *DRY_RUN, '--network', name)
    check_results(results, tmp_path, experiment_name, approach_name, dry_run=True)
    assert results['args']['network'] == name


def test_contract_check_finds_a_wrong_network():
    """check() is not vacuous: a head of the wrong width, heads not named last, a hat forward without masks."""
    from networks import mlp, mlp_hat
    x = torch.randn(2, 1, 28, 28)
    net = mlp.Net([1, 28, 28], TASKCLA, nhid=8)
    net.last[1] = torch.nn.Linear(8, 2)
    with pytest.raises(_contract.ContractError, match='head 1 gives'):
        _contract.check(net, None, x)
    net = mlp.Net([1, 28, 28], TASKCLA, nhid=8)
    net.heads = net.last
    del net.last
    with pytest.raises(_contract.ContractError, match='net.last'):
        _contract.check(net, None, x)
    net = mlp_hat.Net([1, 28, 28], TASKCLA, nhid=8)
    net.forward = lambda t, x, s=1: mlp_hat.Net.forward(net, t, x, s)[0]
    with pytest.raises(_contract.ContractError, match='logits, masks'):
        _contract.check(net, 'hat', x)


@pytest.mark.parametrize('package', ['networks', 'approaches'])
def test_layers_keep_to_their_floor(package):
    """A network names no command-line flag (the loop, which knows them, does: networks/_contract.BatchError); an
    approach imports no specific network (what it decides by network, a network module declares), only the shared
    parts of networks/ (files starting with '_': the contract, a variant's layers)."""
    for path in sorted((utils.SRC_DIR / package).glob('*.py')):
        text = path.read_text()
        if package == 'networks':
            assert not re.search(r"['\"]--[a-z]", text) and 'UserError' not in text, path.name
        else:
            assert not re.search(r'^\s*(from networks import|from networks\.(?!_)|import networks)', text,
                                 re.M), path.name


########################################################################################################################
# Experiments


@pytest.mark.parametrize('name', EXPERIMENTS)
def test_experiment_declarations(name):
    """The constants run.py reads, and get()'s keywords: the common four, then exactly the experiment's flags."""
    module = experiment(name)
    assert isinstance(module.INPUTSIZE, list) and len(module.INPUTSIZE) == 3 and min(module.INPUTSIZE) > 0
    assert module.DEFAULT_NETWORK in NETWORKS and network(module.DEFAULT_NETWORK).VARIANT is None
    assert 0 <= module.PC_VALID < 1
    get = getattr(module.get, '__wrapped__', module.get)
    parameters = inspect.signature(get).parameters
    assert list(parameters)[:4] == GET_KEYWORDS
    assert [parameters[k].default for k in GET_KEYWORDS[1:]] == [0, False, None]
    extra = list(parameters)[4:]
    assert set(extra) == set(experiment_flags(module)), "each flag's name is a keyword of get(), and the reverse"
    assert all(parameters[k].default is not inspect.Parameter.empty for k in extra)


@pytest.mark.parametrize('name', EXPERIMENTS)
def test_experiment_data_layout(small_data, offline, name):
    module = experiment(name)
    try:
        data, taskcla, inputsize = module.get(small_data, seed=1)
    except UserError as e:
        pytest.fail(f'{name}: no tiny data for it? tests/fixtures.py writes each data set in its real format '
                    f'({utils.first_line(e)})')
    assert inputsize == module.INPUTSIZE and taskcla == [(t, task['ncla']) for t, task in enumerate(data)]
    for task in data:
        assert isinstance(task['name'], str) and isinstance(task['ncla'], int) and task['ncla'] >= 2
        for split in ('train', 'valid', 'test'):
            x, y = task[split]['x'], task[split]['y']
            assert x.dtype == torch.float32 and tuple(x.shape[1:]) == tuple(inputsize) and len(x) > 0
            assert y.dtype == torch.int64 and y.shape == (len(x),) and 0 <= y.min() and y.max() < task['ncla']
    assert len({task['name'] for task in data}) == len(data)


@pytest.mark.parametrize('name', EXPERIMENTS)
def test_experiment_without_data_is_one_line(tmp_path, offline, name):
    get = experiment(name).get
    with pytest.raises(UserError) as e:
        getattr(get, '__wrapped__', get)(tmp_path / 'empty', seed=0)
    assert '\n' not in str(e.value) and str(tmp_path / 'empty') in str(e.value)


EXPERIMENT_APPROACHES = ('sgd', 'hat')  # a plain approach, and HAT, the one this code is about


@pytest.mark.parametrize('name', EXPERIMENTS)
def test_experiment_dry_runs(few_tasks, tmp_path, name):
    """With its default network and a plain approach, and in HAT's form of it where there is one."""
    module = experiment(name)
    for approach_name in EXPERIMENT_APPROACHES:
        expected = network_for(name, approach(approach_name).network_variant)
        if expected is None:
            continue
        results = run(few_tasks, tmp_path / approach_name, name, approach_name, *DRY_RUN)
        check_results(results, tmp_path / approach_name, name, approach_name, dry_run=True)
        assert results['args']['network'] == expected and results['inputsize'] == module.INPUTSIZE


########################################################################################################################
# Approaches


@pytest.mark.parametrize('name', APPROACHES)
def test_approach_declarations(name):
    """Hyper's fields each declared once with their flag; the legacy order; built in a line on a fitting network."""
    appr_cls = approach(name)
    assert issubclass(appr_cls, BaseAppr) and dataclasses.is_dataclass(appr_cls.Hyper)
    assert appr_cls.network_variant in _contract.VARIANTS and appr_cls.clipgrad > 0
    fields = dataclasses.fields(appr_cls.Hyper)
    assert all(f.metadata.get('help') for f in fields), 'declare each hyperparameter with hparams.param'
    assert appr_cls.parameter_names == tuple(f.name for f in fields if f.metadata['legacy'])
    hparams.validate(appr_cls.Hyper())
    parser = argparse.ArgumentParser()
    appr_cls.add_arguments(parser)
    assert set(vars(parser.parse_args([]))) == {f.name for f in fields} | set(APPROACH_LOOP_FLAGS)
    net_name = network_for('mnist2', appr_cls.network_variant) or variant_networks(appr_cls.network_variant)[0]
    net = network(net_name).Net([1, 28, 28], TASKCLA)
    appr = appr_cls(net, appr_cls.Hyper(), Loop(nepochs=1))
    assert appr.model is net and all(hasattr(appr, a) for a in appr_cls.checkpoint_attrs)


def dry_experiments() -> list[str]:
    """One experiment per default network and input size (the first by name): what an approach meets that is new."""
    kinds = {}
    for name in EXPERIMENTS:
        kinds.setdefault((experiment(name).DEFAULT_NETWORK, tuple(experiment(name).INPUTSIZE)), name)
    return sorted(kinds.values())


# Short runs that must learn the tiny data: every approach the MLP tasks of mnist2; the reference approaches every
# paper experiment (joint, whose training set grows to the whole sequence, not cifar); hat and sgd the split
# benchmarks. A few batches per task (the AlexNet tasks need more epochs, larger steps)
REFERENCE = ['random', 'sgd', 'sgd-restart', 'sgd-frozen', 'joint', 'hat']
LEARN = sorted(({(a, 'mnist2') for a in APPROACHES} | {(a, e) for a in REFERENCE for e in ('pmnist', 'cifar')} |
                {(a, e) for a in ('sgd', 'hat') for e in ('split_mnist', 'split_fmnist')}) - {('joint', 'cifar')})
# Marked slow but mnist2's: 3 to 15 s a pair (the fast subset dry-runs every approach on each kind of network, and
# checks that every approach learns mnist2)
SHORT_RUN = {'cifar': ['--nepochs', '4', '--batch-size', '8', '--lr', '0.1']}
SHORT_RUN_MLP = ['--nepochs', '3', '--batch-size', '8']
MARGIN = 0.2  # a trained approach's mean diagonal beats chance by this much
# Experiments that learn on their first few tasks: pmnist's 10 tasks are permutations of the same images (joint, whose
# training set grows to the whole sequence, took minutes on all 10); cifar's first 4 (seed 1's order) are two CIFAR-10
# tasks of 2 classes, which the AlexNet learns in 4 epochs, and two CIFAR-100 tasks of 20 classes of 5 images each,
# which it hardly does (mean diagonal 0.28 to 0.36 above chance; on all 10 tasks a run took 40 to 80 s). The other experiments learn on all their tasks: on
# fewer, some pairs no longer beat chance by the margin in a few epochs
FEW_TASKS_LEARN = {'pmnist': 3, 'cifar': 4}
# Every approach dry-runs on one experiment per network and input; the approaches whose variant has no form of an
# experiment's network (LFL, progressive, PathNet: only of the AlexNet-like network and the MLP) run there on the
# first network of their variant, which they must be told with --network (the default is refused in one line)
# (what test_experiment_dry_runs runs already, sgd and hat on every experiment's default network, is left out)
DRY = sorted({(a, e) for a in APPROACHES for e in dry_experiments()} - set(LEARN) -
             {(a, e) for a in EXPERIMENT_APPROACHES for e in EXPERIMENTS
              if network_for(e, approach(a).network_variant)})


def dry_flags(approach_name: str, net_name: str) -> list[str]:
    """gpm's representations from one example a task, the least that exercises them (two on GPM's AlexNet, whose
    fully connected batch norms need two): the SVDs of a convolution's patches of all six took most of a 35 s dry run
    of the ResNet on Tiny ImageNet's 64 x 64 images."""
    if approach_name == 'gpm':
        return ['--samples', '2' if net_name == 'alexnet_bn' else '1']
    return []


# The dry runs on the convolutional networks (AlexNets, ResNets: 2 to 40 s each) marked slow: the fast subset runs
# every approach on the MLP (its mnist2 learning run), and every experiment's default network (test_experiment_dry_runs)
@pytest.mark.parametrize('approach_name,experiment_name', [
    pair if experiment(pair[1]).DEFAULT_NETWORK == 'mlp' else pytest.param(*pair, marks=pytest.mark.slow)
    for pair in DRY])
def test_approach_dry_runs(few_tasks, tmp_path, approach_name, experiment_name):
    variant = approach(approach_name).network_variant
    net_name = network_for(experiment_name, variant)
    argv = []
    if net_name is None:
        net_name = variant_networks(variant)[0]
        argv = ['--network', net_name]
        with pytest.raises(UserError, match=f'approach {approach_name} has no {variant} form of '
                                            f'{experiment(experiment_name).DEFAULT_NETWORK}.*{net_name}'):
            run(few_tasks, tmp_path / 'refused', experiment_name, approach_name, *DRY_RUN)
    results = run(few_tasks, tmp_path, experiment_name, approach_name, *DRY_RUN, *argv,
                  *dry_flags(approach_name, net_name))
    check_results(results, tmp_path, experiment_name, approach_name, dry_run=True)
    assert results['args']['network'] == net_name


@pytest.mark.parametrize('approach_name,experiment_name', [
    pair if pair[1] == 'mnist2' else pytest.param(*pair, marks=pytest.mark.slow) for pair in LEARN])
def test_approach_learns(small_data, monkeypatch, tmp_path, approach_name, experiment_name):
    if experiment_name in FEW_TASKS_LEARN:
        module = experiment(experiment_name)
        monkeypatch.setattr(module, 'get', fixtures.first_tasks(module.get, FEW_TASKS_LEARN[experiment_name]))
    results = run(small_data, tmp_path, experiment_name, approach_name, '--eval-batch-size', '1000',
                  *SHORT_RUN.get(experiment_name, SHORT_RUN_MLP))
    check_results(results, tmp_path, experiment_name, approach_name, dry_run=False)
    if approach(approach_name).trains:
        chance = np.mean([1 / ncla for _, ncla in results['taskcla']])
        assert np.mean(np.diag(results['acc'])) > chance + MARGIN, np.diag(results['acc'])
