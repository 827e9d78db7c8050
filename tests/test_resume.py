"""Checkpoints and resume: a run stopped after any task and resumed ends with the matrices of an uninterrupted run;
SIGKILL and SIGTERM on a real process; finished and running results are never overwritten."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from analysis import results
from plumbing import checkpoints, files, interrupts, utils
import run
from conftest import ROOT
from fixtures import StopAfter, assert_one_line_error, cli, in_process, run_main

APPROACHES = utils.module_choices('approaches')

# split_mnist: 5 tasks, so a run can stop with tasks done before and after it; on conftest's small_mnist, 18
# training images per task: 3 batches, the last one odd
ARGV = ['--experiment', 'split_mnist', '--nepochs', '2', '--batch-size', '8']
# gpm on the original's 800-unit MLP: on the 2000-unit default each step multiplies 2000 x 2000 projections
EXTRA = {'pathnet': ['--generations', '2'], 'gpm': ['--network', 'mlp_original']}


@pytest.mark.slow
@pytest.mark.parametrize('approach', APPROACHES)
def test_resume_equals_uninterrupted(small_mnist, tmp_path, monkeypatch, approach):
    """Every approach's state survives a checkpoint: stopped after task 2 and resumed, the matrices are bitwise
    those of an uninterrupted run, and so are the per-epoch logs."""
    argv = [*ARGV, '--approach', approach, *EXTRA.get(approach, [])]
    whole = run_main(small_mnist, tmp_path / 'whole', *argv)
    with monkeypatch.context() as mp:
        mp.setattr(checkpoints, 'save', StopAfter(2))
        with pytest.raises(interrupts.Interrupted, match='SIGTERM after 2 of 5 tasks; the same command with --resume'):
            run_main(small_mnist, tmp_path / 'cut', *argv)
    stem = f'split_mnist_{approach}_0'
    assert results.load_pkl(tmp_path / 'cut' / 'res' / f'{stem}.txt')['tasks_done'] == 2
    resumed = run_main(small_mnist, tmp_path / 'cut', *argv, '--resume')
    assert np.array_equal(whole['acc'], resumed['acc']) and np.array_equal(whole['lss'], resumed['lss'])
    assert resumed['tasks_done'] == 5 and len(resumed['seconds_per_task']) == 5
    assert resumed.get('capacity') == whole.get('capacity')  # every task's record, those before the stop too
    assert not (tmp_path / 'cut' / 'logs' / f'{stem}_checkpoint.pt').exists()  # finished: nothing to resume

    def epochs(folder):
        log = folder / 'logs' / f'{stem}.jsonl'
        if not log.exists():  # random runs no epoch, so writes no epoch log
            return None
        return [{k: v for k, v in json.loads(line).items() if not k.startswith('seconds')}
                for line in log.read_text().splitlines()]
    assert epochs(tmp_path / 'cut') == epochs(tmp_path / 'whole')


@pytest.mark.slow
def test_hat_monitor_logs_survive_resume(small_mnist, tmp_path, monkeypatch):
    import gzip
    import pickle
    argv = [*ARGV, '--approach', 'hat-test']
    run_main(small_mnist, tmp_path / 'whole', *argv)
    with monkeypatch.context() as mp:
        mp.setattr(checkpoints, 'save', StopAfter(3))
        with pytest.raises(interrupts.Interrupted):
            run_main(small_mnist, tmp_path / 'cut', *argv)
    run_main(small_mnist, tmp_path / 'cut', *argv, '--resume')
    logs = []
    for folder in ('whole', 'cut'):
        with gzip.open(tmp_path / folder / 'logs' / 'split_mnist_hat-test_0_masks.pkz', 'rb') as f:
            logs.append(pickle.load(f))
    assert sorted(logs[0]['mask']) == sorted(logs[1]['mask']) == list(range(5))
    for key in ('valid_loss', 'test_acc'):
        assert all(np.array_equal(logs[0][key][t], logs[1][key][t]) for t in range(5))


def start(tmp_path, output, *argv):
    return subprocess.Popen([sys.executable, str(ROOT / 'src' / 'run.py'), *ARGV, '--device', 'cpu',
                             '--results-dir', str(tmp_path / 'res'), '--logs-dir', str(tmp_path / 'logs'),
                             '--output', str(tmp_path / 'res' / output), *argv],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_for_task(log, task: int, proc) -> None:
    """Until the run's epoch log shows an epoch of `task` (so the checkpoint of the tasks before it is saved): polled,
    so that the signal reaches the run early in its task, with the tasks after it still to do."""
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if log.is_file() and any(json.loads(line)['task'] >= task for line in log.read_text().splitlines()):
            return
        time.sleep(0.02)
    pytest.fail(f'the run never reached task {task}: {proc.stderr.read() if proc.poll() is not None else ""}')


@pytest.mark.slow
def test_sigkill_then_resume(small_mnist, tmp_path):
    """A run killed outright (SIGKILL) after its second task, resumed, matches an uninterrupted run with the same
    seed (all three runs are separate processes with the same settings)."""
    argv = ['--approach', 'hat', '--data-dir', str(small_mnist)]
    whole = start(tmp_path, 'whole.txt', *argv)
    killed = start(tmp_path, 'cut.txt', *argv)
    wait_for_task(tmp_path / 'logs' / 'cut.jsonl', 2, killed)
    killed.send_signal(signal.SIGKILL)
    assert killed.wait() == -signal.SIGKILL
    assert whole.wait() == 0, whole.stderr.read()
    ckpt = torch.load(tmp_path / 'logs' / 'cut_checkpoint.pt', weights_only=False)
    assert 2 <= ckpt['tasks_done'] < 5
    resumed = start(tmp_path, 'cut.txt', *argv, '--resume')
    assert resumed.wait() == 0, resumed.stderr.read()
    a, b = (results.load_pkl(tmp_path / 'res' / name) for name in ('whole.txt', 'cut.txt'))
    assert np.array_equal(a['acc'], b['acc']) and np.array_equal(a['lss'], b['lss'])
    assert (tmp_path / 'res' / 'whole.txt').read_text() == (tmp_path / 'res' / 'cut.txt').read_text()


@pytest.mark.slow
def test_sigterm_mid_task_saves_and_exits_for_requeue(small_mnist, tmp_path):
    """SIGTERM (Slurm's time limit; SIGUSR1 the same) in the middle of a task: exit status 3, one line saying how to
    continue, the checkpoint of the tasks finished; the resumed run completes the matrix."""
    argv = ['--approach', 'hat', '--data-dir', str(small_mnist)]
    proc = start(tmp_path, 'out.txt', *argv)
    wait_for_task(tmp_path / 'logs' / 'out.jsonl', 1, proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait() == interrupts.INTERRUPTED_EXIT
    err = proc.stderr.read().strip().splitlines()
    assert len(err) == 1 and err[0].startswith('interrupted: SIGTERM after ') and '--resume' in err[0], err
    ckpt = torch.load(tmp_path / 'logs' / 'out_checkpoint.pt', weights_only=False)
    assert ckpt['tasks_done'] >= 1
    assert not (tmp_path / 'res' / '.out.txt.lock').exists()
    resumed = start(tmp_path, 'out.txt', *argv, '--resume')
    assert resumed.wait() == 0, resumed.stderr.read()
    assert results.is_complete(results.load_pkl(tmp_path / 'res' / 'out.txt'))


def test_signal_guard_delays_signals_while_saving():
    with interrupts.SignalGuard() as guard:
        with pytest.raises(interrupts.Interrupted, match='SIGUSR1'):
            with guard.hold():
                os.kill(os.getpid(), signal.SIGUSR1)
                done = True  # reached: the signal waited for the end of the block
        assert done
        with pytest.raises(interrupts.Interrupted, match='SIGTERM'):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_finished_results_are_not_overwritten(small_mnist, tmp_path, capsys):
    """As commands, in this process (run.py's command line and exit status are tested as a process elsewhere)."""
    argv = ['--experiment', 'mnist2', '--approach', 'sgd', '--nepochs', '1', '--data-dir', str(small_mnist),
            '--results-dir', str(tmp_path / 'res'), '--logs-dir', str(tmp_path / 'logs'), '--device', 'cpu']
    assert in_process(run.main, argv, capsys).returncode == 0
    out = tmp_path / 'res' / 'mnist2_sgd_0.txt'
    before = out.with_suffix('.pkl').read_bytes()
    assert_one_line_error(in_process(run.main, argv, capsys), 'holds a finished run', '--overwrite')
    again = in_process(run.main, [*argv, '--resume'], capsys)
    assert again.returncode == 0 and 'finished already' in again.stdout
    assert out.with_suffix('.pkl').read_bytes() == before
    assert in_process(run.main, [*argv, '--overwrite'], capsys).returncode == 0
    assert out.with_suffix('.pkl').read_bytes() != before  # its timings differ


def test_busy_output_is_refused(small_mnist, tmp_path):
    """A true second process: the lock is another process's."""
    out = tmp_path / 'res' / 'busy.txt'
    out.parent.mkdir()
    with files.OutputLock(out):
        proc = cli('--experiment', 'mnist2', '--approach', 'sgd', '--output', str(out), '--data-dir', str(small_mnist),
                   '--logs-dir', str(tmp_path / 'logs'))
        assert_one_line_error(proc, f'{out} is being written by another run (pid {os.getpid()})')
    assert list(out.parent.iterdir()) == []  # the lock file goes with the lock


def test_checkpoint_of_other_settings_or_corrupt(small_mnist, tmp_path, monkeypatch):
    argv = [*ARGV, '--approach', 'sgd']
    with monkeypatch.context() as mp:
        mp.setattr(checkpoints, 'save', StopAfter(1))
        with pytest.raises(interrupts.Interrupted):
            run_main(small_mnist, tmp_path, *argv)
    with pytest.raises(utils.UserError, match=r'made with other settings \(--lr, --nepochs\)'):
        run_main(small_mnist, tmp_path, *argv, '--resume', '--nepochs', '3', '--lr', '0.1')
    (tmp_path / 'logs' / 'split_mnist_sgd_0_checkpoint.pt').write_bytes(b'not a checkpoint')
    with pytest.raises(utils.UserError, match='cannot read checkpoint .*delete it to start over'):
        run_main(small_mnist, tmp_path, *argv, '--resume')


def test_resume_without_checkpoint_starts_over(small_mnist, tmp_path, capsys):
    results = run_main(small_mnist, tmp_path, '--experiment', 'mnist2', '--approach', 'sgd', '--nepochs', '1',
                       '--resume')
    assert results['tasks_done'] == 2 and 'No checkpoint at' in capsys.readouterr().out
