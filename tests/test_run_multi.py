"""run_multi.py: sweeps run here in parallel and skipped when finished, and as a job array on a real Slurm cluster
(started by tests/slurm_local.sh; .ci/run starts one and sets REQUIRE_SLURM=1 so that CI never skips it)."""
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

import run_multi
import utils
from conftest import ROOT

TINY = ['--', '--nepochs', '1', '--batch-size', '32']


def sweep(tmp_path, data_dir, *argv):
    return subprocess.run([sys.executable, str(ROOT / 'src' / 'run_multi.py'), '--results-dir', str(tmp_path / 'res'),
                           '--logs-dir', str(tmp_path / 'logs'), '--data-dir', str(data_dir), *argv],
                          capture_output=True, text=True)


def test_local_sweep_runs_in_parallel_then_skips(data_dir, tmp_path):
    proc = sweep(tmp_path, data_dir, '--experiments', 'mnist2', '--approaches', 'sgd,hat', '--seeds', '0-1',
                 '--workers', '2', '--gpus', '', *TINY)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert '4 runs on 2 workers' in proc.stdout and '4 done, 0 skipped' in proc.stdout
    for approach in ('sgd', 'hat'):
        for seed in (0, 1):
            results = utils.load_results(tmp_path / 'res' / f'mnist2_{approach}_{seed}.txt')
            assert utils.is_complete(results) and results['args']['seed'] == seed
            assert (tmp_path / 'logs' / f'mnist2_{approach}_{seed}.out').is_file()
    # Two at a time: some run was still going when another started (end = the results' time, start = end - seconds)
    spans = []
    for out in (tmp_path / 'res').glob('*.txt'):
        end = out.stat().st_mtime
        spans.append((end - utils.load_results(out)['seconds'], end))
    spans.sort()
    assert any(start < end for (_, end), (start, _) in zip(spans, spans[1:])), spans
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / 'res').iterdir()}
    again = sweep(tmp_path, data_dir, '--experiments', 'mnist2', '--approaches', 'sgd,hat', '--seeds', '0-1', *TINY)
    assert again.returncode == 0 and '4 runs: 4 finished before, 0 being written by another process, 0 to do' \
        in again.stdout
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / 'res').iterdir()} == before


def test_grid_names_as_the_original(tmp_path, data_dir):
    proc = sweep(tmp_path, data_dir, '--experiments', 'cifar', '--approaches', 'hat', '--seeds', '0',
                 '--grid', 'lamb=0.1,4', '--grid', 'smax=25,800', '--list')
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()[1:]
    assert [line.split('--output ')[1].split()[0].rsplit('/', 1)[1] for line in lines] == [
        'cifar_hat-0.1-25_0.txt', 'cifar_hat-0.1-800_0.txt', 'cifar_hat-4-25_0.txt', 'cifar_hat-4-800_0.txt']
    assert '--lamb 0.1 --smax 800' in lines[1]


def test_outputs_being_written_elsewhere_are_left_alone(tmp_path, data_dir):
    """Two sweeps on the same results folder: what one is writing, the other skips."""
    (tmp_path / 'res').mkdir()
    with utils.OutputLock(tmp_path / 'res' / 'mnist2_hat_1.txt'):
        proc = sweep(tmp_path, data_dir, '--experiments', 'mnist2', '--approaches', 'sgd,hat', '--seeds', '0-1',
                     '--list')
    assert '4 runs: 0 finished before, 1 being written by another process, 3 to do' in proc.stdout
    assert 'mnist2_hat_1.txt' not in proc.stdout


def test_parsing_helpers():
    assert run_multi.parse_seeds('0-2,7,9-10') == [0, 1, 2, 7, 9, 10]
    assert run_multi.parse_grid(['lamb=0.5,1', '--smax=25']) == [('lamb', ['0.5', '1']), ('smax', ['25'])]
    with pytest.raises(utils.UserError, match='--seeds'):
        run_multi.parse_seeds('a-b')
    with pytest.raises(utils.UserError, match='flag=value'):
        run_multi.parse_grid(['lamb'])


@pytest.mark.parametrize('argv,fragment', [
    (['--experiments', 'cifar', '--approaches', 'sgd', '--grid', 'lamb=1'], 'cifar sgd: unrecognized arguments: --lamb'),
    (['--experiments', 'cifar', '--approaches', 'nope'], "cifar nope: argument --approach: invalid choice: 'nope'"),
    (['--experiments', 'cifar', '--approaches', 'hat', '--seeds', 'x'], "--seeds 'x'"),
    (['--experiments', 'cifar,cifar', '--approaches', 'hat'], 'two runs of the sweep would write the same results'),
])
def test_bad_sweeps_fail_before_running(tmp_path, data_dir, argv, fragment):
    proc = sweep(tmp_path, data_dir, *argv)
    assert proc.returncode == 2 and 'Traceback' not in proc.stderr
    assert proc.stderr.startswith('error: ') and fragment in proc.stderr, proc.stderr
    assert list((tmp_path / 'res').iterdir()) == []


def test_failed_runs_are_reported_with_their_error(tmp_path):
    proc = sweep(tmp_path, tmp_path / 'no_data', '--experiments', 'mnist2', '--approaches', 'sgd', '--seeds', '0',
                 '--gpus', '', *TINY)
    assert proc.returncode == 1
    assert '0 done, 0 skipped (finished before), 0 skipped (being written elsewhere), 1 failed' in proc.stdout
    assert 'failed: mnist2_sgd_0.txt: error: MNIST is missing' in proc.stdout
    assert str(tmp_path / 'logs' / 'mnist2_sgd_0.out') in proc.stdout


def test_write_only_slurm_script(tmp_path, data_dir):
    proc = sweep(tmp_path, data_dir, '--experiments', 'mnist2', '--approaches', 'sgd,hat', '--seeds', '0-2',
                 '--backend', 'slurm', '--write-only', '--time', '2:00:00', '--max-parallel', '4',
                 '--partition', 'gpu', '--sbatch-option=--account=abc', *TINY)
    assert proc.returncode == 0, proc.stderr
    script = (tmp_path / 'logs' / 'slurm' / 'sweep.sbatch').read_text()
    for line in ('#SBATCH --array=0-5%4', '#SBATCH --requeue', '#SBATCH --signal=B:USR1@300', '#SBATCH --time=2:00:00',
                 '#SBATCH --gres=gpu:1', '#SBATCH --partition=gpu', '#SBATCH --account=abc',
                 f'#SBATCH --output={tmp_path / "logs" / "slurm"}/sweep_%A_%a.out', 'exec bash '):
        assert line in script
    runs = (tmp_path / 'logs' / 'slurm' / 'sweep.runs').read_text().splitlines()
    assert len(runs) == 6 and all('--nepochs 1' in r for r in runs)


########################################################################################################################
# A real Slurm

def slurm_up() -> bool:
    if shutil.which('sinfo') is None:
        return False
    proc = subprocess.run(['sinfo', '-h', '-o', '%t'], capture_output=True, text=True)
    return proc.returncode == 0 and proc.stdout.strip() != ''


requires_slurm = pytest.mark.skipif(
    not slurm_up() and not os.environ.get('REQUIRE_SLURM'),
    reason='no Slurm cluster here: `bash tests/slurm_local.sh start` starts one (Debian, root), as .ci/run does')


def wait_for(job: str, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if subprocess.run(['squeue', '-h', '-j', job], capture_output=True, text=True).stdout.strip() == '':
            return
        time.sleep(0.5)
    pytest.fail(f'Slurm job {job} still queued after {timeout} s')


def submitted_job(proc) -> str:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout.split('Submitted job array ')[1].split()[0]


@requires_slurm
def test_slurm_job_array(tmp_path, data_dir):
    proc = sweep(tmp_path, data_dir, '--experiments', 'mnist2', '--approaches', 'sgd,hat', '--seeds', '0-1',
                 '--backend', 'slurm', '--gpus-per-run', '0', '--cpus-per-task', '1', '--mem', '500M', '--time', '10',
                 '--job-name', 'array', *TINY)
    wait_for(submitted_job(proc))
    for approach in ('sgd', 'hat'):
        for seed in (0, 1):
            results = utils.load_results(tmp_path / 'res' / f'mnist2_{approach}_{seed}.txt')
            assert utils.is_complete(results), (tmp_path / 'logs' / 'slurm').iterdir()
    assert len(list((tmp_path / 'logs' / 'slurm').glob('array_*_*.out'))) == 4
    again = sweep(tmp_path, data_dir, '--experiments', 'mnist2', '--approaches', 'sgd,hat', '--seeds', '0-1',
                  '--backend', 'slurm', *TINY)
    assert '4 finished before' in again.stdout and 'Submitted' not in again.stdout


@requires_slurm
def test_slurm_time_limit_signal_requeues_and_resumes(tmp_path, data_dir):
    """USR1, which --signal sends before the time limit: the run saves and exits, the job requeues itself, and the
    requeued job resumes after the last finished task and completes the matrix."""
    proc = sweep(tmp_path, data_dir, '--experiments', 'split_mnist', '--approaches', 'hat', '--seeds', '0',
                 '--backend', 'slurm', '--gpus-per-run', '0', '--cpus-per-task', '1', '--mem', '500M', '--time', '10',
                 '--job-name', 'requeue', '--', '--nepochs', '3', '--batch-size', '16')
    job = submitted_job(proc) + '_0'
    log = tmp_path / 'logs' / 'split_mnist_hat_0.jsonl'
    deadline = time.time() + 300
    while not (log.is_file() and any(json.loads(line)['task'] >= 1 for line in log.read_text().splitlines())):
        assert time.time() < deadline, 'the job never reached its second task'
        time.sleep(0.1)
    subprocess.run(['scancel', '--signal=USR1', '--batch', job], check=True)
    deadline = time.time() + 120
    while 'Restarts=1' not in subprocess.run(['scontrol', 'show', 'job', job], capture_output=True,
                                             text=True).stdout:
        assert time.time() < deadline, 'the job was not requeued'
        time.sleep(0.5)
    # A requeued job waits a while before it may start again (its BeginTime); let it start now
    subprocess.run(['scontrol', 'update', f'JobId={job}', 'StartTime=now'], capture_output=True)
    wait_for(job)
    out = ''.join(p.read_text() for p in (tmp_path / 'logs' / 'slurm').glob('requeue_*.out'))
    assert 'interrupted: SIGUSR1 after' in out and '[run.sbatch] requeueing' in out
    assert 'Resuming from' in out
    results = utils.load_results(tmp_path / 'res' / 'split_mnist_hat_0.txt')
    assert utils.is_complete(results) and np.all(np.diag(results['acc']) > 0)
