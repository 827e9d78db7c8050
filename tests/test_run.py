"""run.py end to end on the tiny data: every approach on every experiment, result files, reproducibility, bad input."""
import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

from plumbing import checkpoints, utils
from conftest import ROOT
from fixtures import OFFLINE, assert_one_line_error, cli, run_main

APPROACHES = utils.module_choices('approaches')
EXPERIMENTS = utils.module_choices('dataloaders')
# The tiny data sets are learnable: a trained approach's mean diagonal must beat chance by this much
MARGIN = 0.2
# A few batches per task, enough to learn the tiny data (the AlexNet tasks need more, larger steps)
SHORT_RUN = {'mnist2': ['--nepochs', '3', '--batch-size', '16'],
             'pmnist': ['--nepochs', '2', '--batch-size', '32'],
             'split_mnist': ['--nepochs', '3', '--batch-size', '16'],
             'split_fmnist': ['--nepochs', '3', '--batch-size', '16'],
             'cifar': ['--nepochs', '4', '--batch-size', '8', '--lr', '0.1']}
# Every approach learns the tiny MLP task (mnist2) and runs on AlexNet (cifar, --dry-run: the paper's baselines are
# slow on CPU); the reference approaches learn every paper experiment (joint, whose training set grows to the whole
# sequence, only pmnist: on cifar it took a minute and a half); hat and sgd learn the split benchmarks; hat dry-runs
# the mixture (test_mixture.py dry-runs sgd and hat-test there)
REFERENCE = ['random', 'sgd', 'sgd-restart', 'sgd-frozen', 'joint', 'hat']
LEARN = ({(a, 'mnist2') for a in APPROACHES} | {(a, e) for a in REFERENCE for e in ('pmnist', 'cifar')} |
         {(a, e) for a in ('sgd', 'hat') for e in ('split_mnist', 'split_fmnist')}) - {('joint', 'cifar')}
RUNS = sorted(LEARN | {(a, 'cifar') for a in APPROACHES} | {('hat', 'mixture')})


def test_module_choices():
    assert APPROACHES == ['ewc', 'hat', 'hat-test', 'imm-mean', 'imm-mode', 'joint', 'lfl', 'lwf', 'pathnet',
                          'progressive', 'random', 'sgd', 'sgd-frozen', 'sgd-restart']
    assert EXPERIMENTS == ['cifar', 'five_datasets', 'mixture', 'mnist2', 'pmnist', 'split_cifar100', 'split_fmnist',
                           'split_mnist', 'tinyimagenet']
    assert utils.module_choices('networks') == ['alexnet', 'alexnet_bn', 'alexnet_bn_hat', 'alexnet_hat', 'alexnet_lfl',
                                                'alexnet_pathnet', 'alexnet_progressive', 'mlp', 'mlp_hat', 'mlp_lfl',
                                                'mlp_original', 'mlp_pathnet', 'mlp_progressive', 'resnet18',
                                                'resnet18_hat', 'resnet18_reduced', 'resnet18_reduced_hat']


@pytest.mark.parametrize('approach,experiment', RUNS)
def test_short_runs(data_dir, tmp_path, approach, experiment):
    learn = (approach, experiment) in LEARN
    results = run_main(data_dir, tmp_path, '--experiment', experiment, '--approach', approach, '--seed', '1',
                       *(SHORT_RUN[experiment] if learn else ['--dry-run']))
    acc, taskcla = results['acc'], results['taskcla']
    n = len(taskcla)
    assert acc.shape == (n, n) and results['tasks_done'] == n
    assert np.all(np.triu(acc, 1) == 0) and np.all((acc >= 0) & (acc <= 1))
    chance = np.mean([1 / ncla for _, ncla in taskcla])
    if learn and approach != 'random':
        assert np.mean(np.diag(acc)) > chance + MARGIN, np.diag(acc)

    out = tmp_path / 'res' / f'{experiment}_{approach}_1{"" if learn else "_dryrun"}.txt'
    np.testing.assert_allclose(np.loadtxt(out, ndmin=2), acc, rtol=0, atol=5.1e-5)  # '%.4f'
    with open(out.with_suffix('.pkl'), 'rb') as f:
        saved = pickle.load(f)
    np.testing.assert_array_equal(saved['acc'], acc)
    assert saved['taskcla'] == taskcla and len(saved['task_names']) == n
    assert saved['args']['approach'] == approach and saved['args']['seed'] == 1
    assert len(saved['seconds_per_task']) == n and saved['lss'].shape == (n, n)

    log = tmp_path / 'logs' / out.with_suffix('.jsonl').name
    if approach == 'random':
        assert not log.exists()  # no epoch runs: no per-epoch log
    else:
        records = [json.loads(line) for line in log.read_text().splitlines()]
        assert {r['task'] for r in records} == set(range(n))
        assert {'epoch', 'lr', 'train_loss', 'train_acc', 'valid_loss', 'valid_acc'} <= set(records[0])
        assert ('train_reg' in records[0]) == approach.startswith('hat')


def test_same_seed_same_matrices(data_dir, tmp_path):
    argv = ('--experiment', 'mnist2', '--approach', 'hat', '--nepochs', '2', '--batch-size', '16')
    a = run_main(data_dir, tmp_path / 'a', *argv)
    b = run_main(data_dir, tmp_path / 'b', *argv)
    assert np.array_equal(a['acc'], b['acc']) and np.array_equal(a['lss'], b['lss'])
    c = run_main(data_dir, tmp_path / 'c', *argv, '--seed', '5')
    assert not np.array_equal(a['lss'], c['lss'])


def test_deterministic_kernels_leave_cpu_numbers_alone(data_dir, tmp_path, monkeypatch):
    """--deterministic switches torch to deterministic kernels (for GPUs); on CPU the numbers stay the same bits."""
    monkeypatch.delenv('CUBLAS_WORKSPACE_CONFIG', raising=False)
    argv = ('--experiment', 'mnist2', '--approach', 'hat', '--dry-run')
    plain = run_main(data_dir, tmp_path / 'a', *argv)
    try:
        same = run_main(data_dir, tmp_path / 'b', *argv, '--deterministic')
        assert torch.are_deterministic_algorithms_enabled() and os.environ['CUBLAS_WORKSPACE_CONFIG'] == ':4096:8'
    finally:
        torch.use_deterministic_algorithms(False)
    assert np.array_equal(plain['acc'], same['acc']) and np.array_equal(plain['lss'], same['lss'])
    # Saved with the results; how to run, not what: a checkpoint resumes with or without it, as with --device
    assert same['args']['deterministic'] and 'deterministic' in checkpoints.NOT_IN_CONFIG


def test_named_flags_and_legacy_parameter(data_dir, tmp_path):
    argv = ('--experiment', 'mnist2', '--approach', 'hat', '--dry-run')
    named = run_main(data_dir, tmp_path / 'a', *argv, '--lamb', '1.5', '--smax', '50')
    legacy = run_main(data_dir, tmp_path / 'b', *argv, '--parameter', '1.5,50')
    assert named['args']['lamb'] == legacy['args']['lamb'] == 1.5
    assert named['args']['smax'] == legacy['args']['smax'] == 50
    assert np.array_equal(named['lss'], legacy['lss'])


def test_dry_run(data_dir, tmp_path, capsys):
    results = run_main(data_dir, tmp_path, '--experiment', 'cifar', '--approach', 'sgd', '--dry-run')
    assert results['args']['nepochs'] == 1 and results['tasks_done'] == 10
    assert (tmp_path / 'res' / 'cifar_sgd_0_dryrun.txt').is_file()
    assert capsys.readouterr().out.count('| Epoch   1,') == 10


def test_runs_from_root_and_from_src(data_dir, tmp_path):
    """The command line works the same from the repository root and from src/ (paths come from the root)."""
    env = {**os.environ, 'PYTHONPATH': ''}
    for cwd, script in ((ROOT, 'src/run.py'), (ROOT / 'src', 'run.py')):
        res = tmp_path / cwd.name
        proc = subprocess.run([sys.executable, script, '--experiment', 'mnist2', '--approach', 'sgd', '--dry-run',
                               '--data-dir', str(data_dir), '--results-dir', str(res)],
                              cwd=cwd, env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        assert (res / 'mnist2_sgd_0_dryrun.txt').is_file()


@pytest.mark.parametrize('argv,fragments', [
    (['--experiment', 'cifar', '--approach', 'nope'], ["invalid choice: 'nope'"]),
    (['--experiment', 'svhn', '--approach', 'hat'], ["invalid choice: 'svhn'"]),
    (['--experiment', 'cifar', '--approach', 'hat', '--network', 'resnet'], ["invalid choice: 'resnet'"]),
    (['--experiment', 'cifar', '--approach', 'hat', '--parameter', '0.75,400,3'], ['takes lamb,smax']),
    (['--experiment', 'cifar', '--approach', 'hat', '--parameter', '0.75,big'], ["smax must be a number, got 'big'"]),
    (['--experiment', 'cifar', '--approach', 'sgd', '--parameter', '1'], ['(sgd): takes no values']),
    (['--experiment', 'cifar', '--approach', 'sgd', '--lamb', '1'], ['unrecognized arguments: --lamb']),
    (['--experiment', 'cifar', '--approach', 'hat', '--network', 'alexnet'], ['approach hat needs a hat network (alexnet_bn_hat, alexnet_hat, mlp_hat, resnet18_hat, '
                                                                     'resnet18_reduced_hat), not alexnet']),
    (['--experiment', 'cifar', '--approach', 'sgd', '--network', 'alexnet_hat'], ['approach sgd needs a plain network (alexnet, alexnet_bn, mlp, '
                                                                          'mlp_original, resnet18, resnet18_reduced), '
                                                                          'not alexnet_hat']),
    (['--experiment', 'cifar', '--approach', 'sgd', '--nepochs', 'ten'], ["argument --nepochs: must be a whole number, got 'ten'"]),
    (['--experiment', 'cifar', '--approach', 'sgd', '--nepochs', '0'], ['argument --nepochs: must be in [1, inf), got 0']),
    (['--approach', 'sgd'], ['the following arguments are required: --experiment']),
])
def test_bad_command_lines(tmp_path, argv, fragments):
    proc = cli(*argv, '--results-dir', str(tmp_path / 'res'))
    assert_one_line_error(proc, *fragments)
    assert not (tmp_path / 'res').exists()


def test_missing_data_offline(tmp_path):
    proc = cli('--experiment', 'cifar', '--approach', 'hat', '--data-dir', str(tmp_path / 'empty'),
               '--results-dir', str(tmp_path / 'res'), '--logs-dir', str(tmp_path / 'logs'), env=OFFLINE)
    assert_one_line_error(proc, 'CIFAR10 is missing', str(tmp_path / 'empty' / 'cifar-10-batches-py'),
                          'data_batch_1')
    assert list((tmp_path / 'res').iterdir()) == []  # no results written


def test_unwritable_output_folder(tmp_path):
    blocker = tmp_path / 'a_file'
    blocker.write_text('')
    proc = cli('--experiment', 'mnist2', '--approach', 'sgd', '--output', str(blocker / 'out.txt'))
    assert_one_line_error(proc, 'cannot write results to', str(blocker))


@pytest.mark.skipif(utils.torch.cuda.is_available(), reason='checks the message on a machine without CUDA')
def test_cuda_requested_without_cuda(data_dir, tmp_path):
    proc = cli('--experiment', 'mnist2', '--approach', 'sgd', '--device', 'cuda', '--data-dir', str(data_dir),
               '--results-dir', str(tmp_path))
    assert_one_line_error(proc, 'CUDA is not available')
