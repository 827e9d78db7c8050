"""run_multi.py: sweeps run here in parallel and skipped when finished, and as a job array on a real Slurm cluster
(started by tests/slurm_local.sh; .ci/run starts one and sets REQUIRE_SLURM=1 so that CI never skips it)."""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import run_multi
import utils
from conftest import ROOT

TINY = ['--', '--nepochs', '1', '--batch-size', '32']


def sweep(tmp_path, data_dir, *argv, env=None):
    return subprocess.run([sys.executable, str(ROOT / 'src' / 'run_multi.py'), '--results-dir', str(tmp_path / 'res'),
                           '--logs-dir', str(tmp_path / 'logs'), '--data-dir', str(data_dir), *argv],
                          capture_output=True, text=True, env=env)


def fake_mps(tmp_path) -> tuple[dict, Path]:
    """An environment whose PATH has a stand-in nvidia-cuda-mps-control that records each call (its arguments, the
    GPU and pipe folder it was given, and what it read on stdin: quit) in the returned file."""
    bin_dir, record = tmp_path / 'bin', tmp_path / 'mps_calls.txt'
    bin_dir.mkdir()
    control = bin_dir / 'nvidia-cuda-mps-control'
    control.write_text('#!/bin/bash\n'
                       f'{{ echo "call [$*] gpu=${{CUDA_VISIBLE_DEVICES:-}} pipe=${{CUDA_MPS_PIPE_DIRECTORY:-}}"\n'
                       f'  [ $# -eq 0 ] && cat; }} >> {record}\n'
                       'exit 0\n')
    control.chmod(0o755)
    return {**os.environ, 'PATH': f'{bin_dir}:{os.environ["PATH"]}'}, record


def matrices(folder: Path) -> dict:
    """{result name: (the .txt's bytes, acc, lss)} of every result in a folder."""
    out = {}
    for txt in sorted(folder.glob('*.txt')):
        results = utils.load_results(txt)
        out[txt.name] = (txt.read_bytes(), results['acc'].tobytes(), results['lss'].tobytes())
    return out


def test_packed_local_sweep_runs_in_parallel_then_skips_and_equals_unpacked(data_dir, tmp_path):
    """--runs-per-gpu 2 on one GPU id (the runs are told --device cpu, so this runs anywhere), with MPS started for
    it: 2 runs at once, the same result files bitwise as one at a time, then nothing left to do."""
    env, record = fake_mps(tmp_path)
    packed = tmp_path / 'packed'
    proc = sweep(packed, data_dir, '--experiments', 'mnist2', '--approaches', 'sgd,hat', '--seeds', '0-1',
                 '--runs-per-gpu', '2', '--gpus', '0', '--threads', '1', '--mps', *TINY, '--device', 'cpu', env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert '4 runs on 2 workers, 2 per GPU on GPU 0, 1 CPU threads each' in proc.stdout
    assert '4 done, 0 skipped' in proc.stdout and 'MPS control daemons for GPU 0' in proc.stdout
    calls = record.read_text().splitlines()
    assert len(calls) == 3 and calls[0].startswith('call [-d] gpu=0 pipe=/') and calls[1].startswith('call [] ')
    assert calls[2] == 'quit' and calls[0].split('pipe=')[1] == calls[1].split('pipe=')[1]
    for approach in ('sgd', 'hat'):
        for seed in (0, 1):
            results = utils.load_results(packed / 'res' / f'mnist2_{approach}_{seed}.txt')
            assert utils.is_complete(results) and results['args']['seed'] == seed
            assert (packed / 'logs' / f'mnist2_{approach}_{seed}.out').is_file()
    # Two at a time: some run was still going when another started (end = the results' time, start = end - seconds)
    spans = []
    for out in (packed / 'res').glob('*.txt'):
        end = out.stat().st_mtime
        spans.append((end - utils.load_results(out)['seconds'], end))
    spans.sort()
    assert any(start < end for (_, end), (start, _) in zip(spans, spans[1:])), spans
    unpacked = tmp_path / 'unpacked'
    proc = sweep(unpacked, data_dir, '--experiments', 'mnist2', '--approaches', 'sgd,hat', '--seeds', '0-1',
                 '--workers', '1', '--gpus', '', '--threads', '1', *TINY, '--device', 'cpu')
    assert proc.returncode == 0 and '4 runs on 1 workers, 1 CPU threads each' in proc.stdout, proc.stdout
    assert matrices(packed / 'res') == matrices(unpacked / 'res') and len(matrices(packed / 'res')) == 4
    before = {p.name: p.stat().st_mtime_ns for p in (packed / 'res').iterdir()}
    again = sweep(packed, data_dir, '--experiments', 'mnist2', '--approaches', 'sgd,hat', '--seeds', '0-1', *TINY,
                  '--device', 'cpu')
    assert again.returncode == 0 and '4 runs: 4 finished before, 0 being written by another process, 0 to do' \
        in again.stdout
    assert {p.name: p.stat().st_mtime_ns for p in (packed / 'res').iterdir()} == before


def test_worker_env_pins_the_gpu_or_the_mps_daemon(monkeypatch):
    monkeypatch.setenv('CUDA_VISIBLE_DEVICES', '0,1')
    env = run_multi.worker_env('1', 3)
    assert env['CUDA_VISIBLE_DEVICES'] == '1' and env['OMP_NUM_THREADS'] == env['MKL_NUM_THREADS'] == '3'
    mps = {'CUDA_MPS_PIPE_DIRECTORY': '/x/pipe', 'CUDA_MPS_LOG_DIRECTORY': '/x/log'}
    client = run_multi.worker_env('1', 3, mps)
    assert 'CUDA_VISIBLE_DEVICES' not in client and client['CUDA_MPS_PIPE_DIRECTORY'] == '/x/pipe'
    cpu = run_multi.worker_env(None, 2)
    assert cpu['CUDA_VISIBLE_DEVICES'] == '0,1' and cpu['OMP_NUM_THREADS'] == '2'


def test_mps_daemon_per_gpu_and_without_mps(tmp_path, monkeypatch, capsys):
    env, record = fake_mps(tmp_path)
    monkeypatch.setenv('PATH', env['PATH'])
    with run_multi.MPSDaemons(['2', '5']) as mps:
        pipes = [mps.client_env(g)['CUDA_MPS_PIPE_DIRECTORY'] for g in ('2', '5')]
        assert all(Path(p).is_dir() for p in pipes) and pipes[0] != pipes[1]
    assert not any(Path(p).exists() for p in pipes)
    assert record.read_text().splitlines() == [f'call [-d] gpu=2 pipe={pipes[0]}', f'call [-d] gpu=5 pipe={pipes[1]}',
                                               f'call [] gpu= pipe={pipes[0]}', 'quit', f'call [] gpu= pipe={pipes[1]}',
                                               'quit']
    monkeypatch.setenv('PATH', str(tmp_path / 'nowhere'))
    with run_multi.MPSDaemons(['0']) as mps:
        assert mps.client_env('0') is None
    assert 'nvidia-cuda-mps-control is not installed here' in capsys.readouterr().out


def test_local_plan_splits_gpus_and_cpus(monkeypatch, capsys):
    monkeypatch.setattr(run_multi, 'usable_cpus', lambda: 16)
    plan = lambda runs, **flags: run_multi.local_plan([None] * runs, argparse.Namespace(**{  # noqa: E731
        'gpus': '0,1', 'workers': None, 'runs_per_gpu': None, 'threads': None, **flags}))
    assert plan(10) == (['0', '1'], 2, 8)
    assert plan(10, runs_per_gpu=4) == (['0', '1'], 8, 2)
    assert plan(10, runs_per_gpu=4, threads=1) == (['0', '1'], 8, 1)
    assert plan(10, workers=3, gpus='') == ([], 3, 5)
    assert capsys.readouterr().out == ''
    assert plan(3, runs_per_gpu=4) == (['0', '1'], 8, 2)
    assert 'note: 8 workers for 3 runs: 3 run at once' in capsys.readouterr().out


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
    with pytest.raises(argparse.ArgumentTypeError, match='use numbers and ranges'):
        run_multi.parse_seeds('a-b')
    with pytest.raises(argparse.ArgumentTypeError, match='the range 5-3 holds no seed'):
        run_multi.parse_seeds('0,5-3')
    with pytest.raises(utils.UserError, match='flag=value'):
        run_multi.parse_grid(['lamb'])


SLURM_WRITE = ['--backend', 'slurm', '--write-only']


@pytest.mark.parametrize('argv,fragment', [
    (['--approaches', 'sgd', '--grid', 'lamb=1'], 'cifar sgd: unrecognized arguments: --lamb'),
    (['--approaches', 'nope'], "cifar nope: argument --approach: invalid choice: 'nope'"),
    (['--approaches', 'hat', '--seeds', 'x'], "argument --seeds: 'x': use numbers and ranges"),
    (['--approaches', 'hat', '--seeds', '5-3', '--list'], "argument --seeds: '5-3': the range 5-3 holds no seed"),
    (['--approaches', 'hat', '--workers', '-1'], 'argument --workers: must be at least 1, got -1'),
    (['--approaches', 'hat', '--runs-per-gpu', '-1', '--list'], 'argument --runs-per-gpu: must be at least 1'),
    (['--approaches', 'hat', '--runs-per-gpu', 'x', '--list'], "argument --runs-per-gpu: 'x' is not a whole number"),
    (['--approaches', 'hat', '--runs-per-gpu', '2', '--workers', '2'], 'argument --workers: not allowed with argument --runs-per-gpu'),
    (['--approaches', 'hat', '--runs-per-gpu', '2', '--gpus', ''], '--runs-per-gpu: no GPU to share here'),
    (['--approaches', 'hat', '--threads', '0'], 'argument --threads: must be at least 1, got 0'),
    (['--approaches', 'hat', '--runs-per-task', '0', *SLURM_WRITE], 'argument --runs-per-task: must be at least 1'),
    (['--approaches', 'hat', '--runs-per-task', '2', '--list'], '--runs-per-task is a flag of --backend slurm'),
    (['--approaches', 'hat', '--runs-per-gpu', '2', *SLURM_WRITE], '--runs-per-gpu is a flag of --backend local'),
    (['--approaches', 'hat', '--cpus-per-task', '0', *SLURM_WRITE], 'argument --cpus-per-task: must be at least 1'),
    (['--approaches', 'hat', '--gpus-per-run', '-1', *SLURM_WRITE], 'argument --gpus-per-run: must be at least 0'),
    (['--approaches', 'hat', '--max-parallel', '0', *SLURM_WRITE], 'argument --max-parallel: must be at least 1'),
    (['--experiments', 'cifar,cifar', '--approaches', 'hat'], 'two runs of the sweep would write the same results'),
])
def test_bad_sweeps_fail_before_running(tmp_path, data_dir, capsys, argv, fragment):
    argv = ['--results-dir', str(tmp_path / 'res'), '--logs-dir', str(tmp_path / 'logs'), '--data-dir',
            str(data_dir), '--experiments', 'cifar', *argv]
    with pytest.raises(SystemExit) as stop:
        utils.run_cli(lambda: sys.exit(run_multi.main(argv)))
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.startswith('error: ') and fragment in err, err
    assert err.count('\n') == 1 and not (tmp_path / 'logs' / 'slurm').exists()
    assert list((tmp_path / 'res').glob('*')) == []


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
