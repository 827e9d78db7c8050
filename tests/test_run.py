"""run.py end to end on the tiny data: reproducibility, the dry run, paths, bad input (every approach on every
experiment, and the result files of each: tests/test_contracts.py)."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from plumbing import checkpoints, utils
import run
from conftest import ROOT
from fixtures import OFFLINE, assert_one_line_error, cli, in_process, run_main

# Every approach on every experiment, and each module against its contract: tests/test_contracts.py


def fitting(variant: str | None) -> str:
    """The networks of a variant, as run.py lists them when another is named."""
    return ', '.join(n for n in utils.module_choices('networks')
                     if utils.load_module('networks', n).VARIANT == variant)


@pytest.mark.slow
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
    results = run_main(data_dir, tmp_path, '--experiment', 'cifar', '--approach', 'sgd', '--dry-run',
                       '--batch-size', '2', '--eval-batch-size', '1000')  # the cheapest steps
    assert results['args']['nepochs'] == 1 and results['tasks_done'] == 10
    assert (tmp_path / 'res' / 'cifar_sgd_0_dryrun.txt').is_file()
    assert capsys.readouterr().out.count('| Epoch   1,') == 10


@pytest.mark.slow
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
    (['--experiment', 'cifar', '--approach', 'hat', '--network', 'alexnet'],
     [f"approach hat needs a hat network ({fitting('hat')}), not alexnet"]),
    (['--experiment', 'cifar', '--approach', 'sgd', '--network', 'alexnet_hat'],
     [f'approach sgd needs a plain network ({fitting(None)}), not alexnet_hat']),
    (['--experiment', 'cifar', '--approach', 'sgd', '--nepochs', 'ten'],
     ["argument --nepochs: must be a whole number, got 'ten'"]),
    (['--experiment', 'cifar', '--approach', 'sgd', '--nepochs', '0'],
     ['argument --nepochs: must be in [1, inf), got 0']),
    (['--approach', 'sgd'], ['the following arguments are required: --experiment']),
])
def test_bad_command_lines(tmp_path, capsys, argv, fragments):
    # In this process, through run_cli as the script runs it (test_missing_data_offline checks a real process's)
    proc = in_process(run.main, [*argv, '--results-dir', str(tmp_path / 'res')], capsys)
    assert_one_line_error(proc, *fragments)
    assert not (tmp_path / 'res').exists()


@pytest.mark.slow
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
