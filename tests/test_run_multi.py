"""run_multi.py: sweeps run here in parallel and skipped when finished, and as a job array on a real Slurm cluster
(started by tests/slurm_local.sh; .ci/run starts one and sets REQUIRE_SLURM=1 so that CI never skips it)."""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from analysis import results
from plumbing import files, utils
import run
import run_multi
from sweeps import grid, local, mps
from conftest import ROOT
from fixtures import in_process

TINY = ['--', '--nepochs', '1', '--batch-size', '32']


def sweep(tmp_path, data_dir, *argv, env=None):
    """run_multi.py as a command (where the process is the point: its workers, its environment)."""
    return subprocess.run([sys.executable, str(ROOT / 'src' / 'run_multi.py'), '--results-dir', str(tmp_path / 'res'),
                           '--logs-dir', str(tmp_path / 'logs'), '--data-dir', str(data_dir), *argv],
                          capture_output=True, text=True, env=env)


def sweep_here(tmp_path, data_dir, capsys, *argv):
    """run_multi.py's main in this process, as its script calls it: what `sweep` returns, without an interpreter's
    start."""
    return in_process(lambda a: sys.exit(run_multi.main(a)), ['--results-dir', str(tmp_path / 'res'), '--logs-dir',
                                                               str(tmp_path / 'logs'), '--data-dir', str(data_dir),
                                                               *argv], capsys)


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
        saved = results.load_pkl(txt)
        out[txt.name] = (txt.read_bytes(), saved['acc'].tobytes(), saved['lss'].tobytes())
    return out


def one_at_a_time(argvs) -> None:
    """The runs of a sweep unpacked: one after the other, in this process, on one CPU thread (as each run of the
    packed sweeps here), which is what a one-worker sweep runs, without starting a process per run."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for argv in argvs:
            run.main(argv)
    finally:
        torch.set_num_threads(threads)


@pytest.mark.slow
def test_packed_local_sweep_runs_in_parallel_then_skips_and_equals_unpacked(data_dir, tmp_path, capsys):
    """--runs-per-gpu 2 on one GPU id (the runs are told --device cpu, so this runs anywhere), with MPS started for
    it: 2 runs at once, the same result files bitwise as one at a time, then nothing left to do. On data_dir, not
    small_mnist: a run must last long enough for the other worker's to start while it goes."""
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
            saved = results.load_pkl(packed / 'res' / f'mnist2_{approach}_{seed}.txt')
            assert results.is_complete(saved) and saved['args']['seed'] == seed
            assert (packed / 'logs' / f'mnist2_{approach}_{seed}.out').is_file()
    # Two at a time: some run was still going when another started (end = the results' time, start = end - seconds)
    spans = []
    for out in (packed / 'res').glob('*.txt'):
        end = out.stat().st_mtime
        spans.append((end - results.load_pkl(out)['seconds'], end))
    spans.sort()
    assert any(start < end for (_, end), (start, _) in zip(spans, spans[1:])), spans
    unpacked = tmp_path / 'unpacked'
    one_at_a_time(['--experiment', 'mnist2', '--approach', approach, '--seed', str(seed), '--nepochs', '1',
                   '--batch-size', '32', '--device', 'cpu', '--data-dir', str(data_dir), '--results-dir', str(unpacked),
                   '--logs-dir', str(unpacked)] for approach in ('sgd', 'hat') for seed in (0, 1))
    assert matrices(packed / 'res') == matrices(unpacked) and len(matrices(unpacked)) == 4
    before = {p.name: p.stat().st_mtime_ns for p in (packed / 'res').iterdir()}
    again = sweep_here(packed, data_dir, capsys, '--experiments', 'mnist2', '--approaches', 'sgd,hat', '--seeds',
                       '0-1', *TINY, '--device', 'cpu')
    assert again.returncode == 0 and '4 runs: 4 finished before, 0 being written by another process, 0 to do' \
        in again.stdout
    assert {p.name: p.stat().st_mtime_ns for p in (packed / 'res').iterdir()} == before


def test_worker_env_pins_the_gpu_or_the_mps_daemon(monkeypatch):
    monkeypatch.setenv('CUDA_VISIBLE_DEVICES', '0,1')
    env = local.worker_env('1', 3)
    assert env['CUDA_VISIBLE_DEVICES'] == '1' and env['OMP_NUM_THREADS'] == env['MKL_NUM_THREADS'] == '3'
    mps = {'CUDA_MPS_PIPE_DIRECTORY': '/x/pipe', 'CUDA_MPS_LOG_DIRECTORY': '/x/log'}
    client = local.worker_env('1', 3, mps)
    assert 'CUDA_VISIBLE_DEVICES' not in client and client['CUDA_MPS_PIPE_DIRECTORY'] == '/x/pipe'
    cpu = local.worker_env(None, 2)
    assert cpu['CUDA_VISIBLE_DEVICES'] == '0,1' and cpu['OMP_NUM_THREADS'] == '2'


def test_mps_daemon_per_gpu_and_without_mps(tmp_path, monkeypatch, capsys):
    env, record = fake_mps(tmp_path)
    monkeypatch.setenv('PATH', env['PATH'])
    with mps.MPSDaemons(['2', '5']) as daemons:
        pipes = [daemons.client_env(g)['CUDA_MPS_PIPE_DIRECTORY'] for g in ('2', '5')]
        assert all(Path(p).is_dir() for p in pipes) and pipes[0] != pipes[1]
    assert not any(Path(p).exists() for p in pipes)
    assert record.read_text().splitlines() == [f'call [-d] gpu=2 pipe={pipes[0]}', f'call [-d] gpu=5 pipe={pipes[1]}',
                                               f'call [] gpu= pipe={pipes[0]}', 'quit', f'call [] gpu= pipe={pipes[1]}',
                                               'quit']
    monkeypatch.setenv('PATH', str(tmp_path / 'nowhere'))
    with mps.MPSDaemons(['0']) as daemons:
        assert daemons.client_env('0') is None
    assert 'nvidia-cuda-mps-control is not installed here' in capsys.readouterr().out
    refusing = tmp_path / 'refusing'
    refusing.mkdir()
    (refusing / 'nvidia-cuda-mps-control').write_text('#!/bin/bash\n'
                                                      'echo "An instance is already running" >&2\nexit 1\n')
    (refusing / 'nvidia-cuda-mps-control').chmod(0o755)
    monkeypatch.setenv('PATH', str(refusing))
    with mps.MPSDaemons(['0']) as daemons:
        assert daemons.client_env('0') is None
    assert ('--mps: the MPS control daemon did not start for GPU 0 (An instance is already running): its runs go '
            'without MPS') in capsys.readouterr().out


def test_local_plan_splits_gpus_and_cpus(monkeypatch, capsys):
    monkeypatch.setattr(local, 'usable_cpus', lambda: 16)
    monkeypatch.delenv('OMP_NUM_THREADS', raising=False)  # a request for a number of threads (see the test below)
    plan = lambda runs, **flags: local.local_plan([None] * runs, argparse.Namespace(**{  # noqa: E731
        'gpus': '0,1', 'workers': None, 'runs_per_gpu': None, 'threads': None, **flags}))
    assert plan(10) == (['0', '1'], 2, 8)
    assert plan(10, runs_per_gpu=4) == (['0', '1'], 8, 2)
    assert plan(10, runs_per_gpu=4, threads=1) == (['0', '1'], 8, 1)
    assert plan(10, workers=3, gpus='') == ([], 3, 5)
    assert capsys.readouterr().out == ''
    assert plan(3, runs_per_gpu=4) == (['0', '1'], 8, 2)
    assert 'note: 8 workers for 3 runs: 3 run at once' in capsys.readouterr().out


def test_grid_names_as_the_original(tmp_path, data_dir, capsys):
    proc = sweep_here(tmp_path, data_dir, capsys, '--experiments', 'cifar', '--approaches', 'hat', '--seeds', '0',
                      '--grid', 'lamb=0.1,4', '--grid', 'smax=25,800', '--list')
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()[1:]
    assert [line.split('--output ')[1].split()[0].rsplit('/', 1)[1] for line in lines] == [
        'cifar_hat-0.1-25_0.txt', 'cifar_hat-0.1-800_0.txt', 'cifar_hat-4-25_0.txt', 'cifar_hat-4-800_0.txt']
    assert '--lamb 0.1 --smax 800' in lines[1]


def test_outputs_being_written_elsewhere_are_left_alone(tmp_path, data_dir, capsys):
    """Two sweeps on the same results folder: what one is writing, the other skips (the lock is taken on another
    open file, which conflicts as another process's would)."""
    (tmp_path / 'res').mkdir()
    with files.OutputLock(tmp_path / 'res' / 'mnist2_hat_1.txt'):
        proc = sweep_here(tmp_path, data_dir, capsys, '--experiments', 'mnist2', '--approaches', 'sgd,hat',
                          '--seeds', '0-1', '--list')
    assert '4 runs: 0 finished before, 1 being written by another process, 3 to do' in proc.stdout
    assert 'mnist2_hat_1.txt' not in proc.stdout


def test_parsing_helpers():
    assert grid.parse_grid(['lamb=0.5,1', '--smax=25']) == [('lamb', ['0.5', '1']), ('smax', ['25'])]
    with pytest.raises(argparse.ArgumentTypeError, match='use numbers and ranges'):
        utils.parse_seeds('a-b')
    with pytest.raises(argparse.ArgumentTypeError, match='the range 5-3 holds no seed'):
        utils.parse_seeds('0,5-3')
    with pytest.raises(utils.UserError, match='flag=value'):
        grid.parse_grid(['lamb'])


SLURM_WRITE = ['--backend', 'slurm', '--write-only']


@pytest.mark.parametrize('argv,fragment', [
    (['--approaches', 'sgd', '--grid', 'lamb=1'], 'cifar sgd: unrecognized arguments: --lamb'),
    (['--approaches', 'nope'], "cifar nope: argument --approach: invalid choice: 'nope'"),
    (['--approaches', 'hat', '--seeds', 'x'], "argument --seeds: 'x': use numbers and ranges"),
    (['--approaches', 'hat', '--seeds', '5-3', '--list'], "argument --seeds: '5-3': the range 5-3 holds no seed"),
    (['--approaches', 'hat', '--workers', '-1'], 'argument --workers: must be at least 1, got -1'),
    (['--approaches', 'hat', '--runs-per-gpu', '-1', '--list'], 'argument --runs-per-gpu: must be at least 1'),
    (['--approaches', 'hat', '--runs-per-gpu', 'x', '--list'], "argument --runs-per-gpu: 'x' is not a whole number"),
    (['--approaches', 'hat', '--runs-per-gpu', '2', '--workers', '2'],
     'argument --workers: not allowed with argument --runs-per-gpu'),
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


@pytest.mark.slow
def test_failed_runs_are_reported_with_their_error(tmp_path, capsys):
    proc = sweep_here(tmp_path, tmp_path / 'no_data', capsys, '--experiments', 'mnist2', '--approaches', 'sgd',
                      '--seeds', '0', '--gpus', '', *TINY)
    assert proc.returncode == 1
    assert '0 done, 0 skipped (finished before), 0 skipped (being written elsewhere), 1 failed' in proc.stdout
    assert 'failed: mnist2_sgd_0.txt: error: MNIST is missing' in proc.stdout
    assert str(tmp_path / 'logs' / 'mnist2_sgd_0.out') in proc.stdout


def test_write_only_slurm_script(tmp_path, data_dir, capsys):
    proc = sweep_here(tmp_path, data_dir, capsys, '--experiments', 'mnist2', '--approaches', 'sgd,hat', '--seeds',
                      '0-2', '--backend', 'slurm', '--write-only', '--time', '2:00:00', '--max-parallel', '4',
                      '--partition', 'gpu', '--sbatch-option=--account=abc', *TINY)
    assert proc.returncode == 0, proc.stderr
    script = (tmp_path / 'logs' / 'slurm' / 'sweep.sbatch').read_text()
    for line in ('#SBATCH --array=0-5%4', '#SBATCH --requeue', '#SBATCH --signal=B:USR1@300', '#SBATCH --time=2:00:00',
                 '#SBATCH --gres=gpu:1', '#SBATCH --partition=gpu', '#SBATCH --account=abc',
                 f'#SBATCH --output={tmp_path / "logs" / "slurm"}/sweep_%A_%a.out', 'HAT_RUNS_PER_TASK=1 HAT_MPS=0',
                 'exec bash '):
        assert line in script
    runs = (tmp_path / 'logs' / 'slurm' / 'sweep.runs').read_text().splitlines()
    assert len(runs) == 6 and all('--nepochs 1' in r for r in runs)
    assert runs[0].startswith(f'{tmp_path / "logs" / "mnist2_sgd_0.out"} --experiment mnist2 --approach sgd')
    assert '(6 array tasks for 6 runs)' in proc.stdout


def test_write_only_shows_the_packing(tmp_path, data_dir, capsys):
    proc = sweep_here(tmp_path, data_dir, capsys, '--experiments', 'mnist2', '--approaches', 'sgd,hat', '--seeds',
                      '0-2', '--backend', 'slurm', '--write-only', '--runs-per-task', '4', '--mps', *TINY)
    assert proc.returncode == 0, proc.stderr
    assert ('  array task 0: mnist2_sgd_0.txt, mnist2_sgd_1.txt, mnist2_sgd_2.txt, mnist2_hat_0.txt\n'
            '  array task 1: mnist2_hat_1.txt, mnist2_hat_2.txt\n') in proc.stdout
    assert '(2 array tasks for 6 runs)' in proc.stdout
    script = (tmp_path / 'logs' / 'slurm' / 'sweep.sbatch').read_text()
    assert '#SBATCH --array=0-1%50' in script and 'HAT_RUNS_PER_TASK=4 HAT_MPS=1' in script
    bigger = sweep_here(tmp_path, data_dir, capsys, '--experiments', 'mnist2', '--approaches', 'sgd', '--seeds',
                        '0-2', '--backend', 'slurm', '--write-only', '--runs-per-task', '8', *TINY)
    assert bigger.returncode == 0 and 'note: --runs-per-task 8 with 3 runs: one array task runs all 3' in bigger.stdout


####################################################################################################################
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
        time.sleep(0.2)
    pytest.fail(f'Slurm job {job} still queued after {timeout} s')


def submitted_job(proc) -> str:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout.split('Submitted job array ')[1].split()[0]


def slurm_out(tmp_path, job_name: str) -> str:
    """Everything the array tasks of a job wrote to their Slurm output files."""
    return ''.join(p.read_text() for p in sorted((tmp_path / 'logs' / 'slurm').glob(f'{job_name}_*.out')))


def jsonl_task(log: Path) -> int:
    """The task of the last epoch a run logged (-1 before any)."""
    lines = log.read_text().splitlines() if log.is_file() else []
    return json.loads(lines[-1])['task'] if lines else -1


def job_state(job: str) -> tuple[str, int]:
    """A job's (or array task's) state and how many times it was requeued, as scontrol shows them."""
    out = subprocess.run(['scontrol', 'show', 'job', job], capture_output=True, text=True).stdout
    state, restarts = re.search(r'JobState=(\S+)', out), re.search(r'Restarts=(\d+)', out)
    return (state.group(1) if state else 'GONE'), int(restarts.group(1)) if restarts else 0


def restart_now(*jobs: str) -> None:
    """Wait until jobs (or array tasks) have been requeued and wait to start again, then let them start at once (a
    requeued job otherwise waits a while: its BeginTime)."""
    deadline = time.time() + 120
    for job in jobs:
        while job_state(job) != ('PENDING', 1):
            assert time.time() < deadline, f'{job} was not requeued: {job_state(job)}'
            time.sleep(0.2)
    # Not at once: a job started again within a moment of its requeue finds its credential revoked, and fails
    time.sleep(3)
    for job in jobs:
        subprocess.run(['scontrol', 'update', f'JobId={job}', 'StartTime=now'], check=True, capture_output=True)


def wait_until_ended(job: str, timeout: float = 300) -> str:
    """Wait until a job (or array task) has ended; its final state."""
    deadline = time.time() + timeout
    while (state := job_state(job)[0]) in ('PENDING', 'RUNNING', 'COMPLETING', 'CONFIGURING', 'REQUEUED'):
        assert time.time() < deadline, f'{job} still {state} after {timeout} s'
        time.sleep(0.2)
    return state


@pytest.mark.slow
@requires_slurm
def test_slurm_packed_job_array(tmp_path, small_mnist, monkeypatch, capsys):
    """4 runs, 2 per array task: 2 array tasks, each running its 2 runs at once (one CPU thread each), with the MPS
    daemon started and stopped by each task."""
    data_dir = small_mnist
    env, record = fake_mps(tmp_path)
    monkeypatch.setenv('PATH', env['PATH'])  # sbatch passes it to the job
    proc = sweep_here(tmp_path, data_dir, capsys, '--experiments', 'mnist2', '--approaches', 'sgd,hat', '--seeds',
                      '0-1', '--backend', 'slurm', '--runs-per-task', '2', '--mps', '--gpus-per-run', '0',
                      '--cpus-per-task', '1', '--mem', '500M', '--time', '10', '--job-name', 'array', *TINY)
    assert '(4 runs in 2 array tasks)' in proc.stdout, proc.stdout + proc.stderr
    wait_for(submitted_job(proc))
    for approach in ('sgd', 'hat'):
        for seed in (0, 1):
            saved = results.load_pkl(tmp_path / 'res' / f'mnist2_{approach}_{seed}.txt')
            assert results.is_complete(saved), slurm_out(tmp_path, 'array')
            assert 'Done!' in (tmp_path / 'logs' / f'mnist2_{approach}_{seed}.out').read_text()
    assert len(list((tmp_path / 'logs' / 'slurm').glob('array_*_*.out'))) == 2
    out = slurm_out(tmp_path, 'array')
    assert out.count('[run.sbatch] 2 run(s) at once, 1 CPU thread(s) each') == 2
    assert out.count('exit status 0') == 4 and out.count('MPS control daemon started') == 2
    calls = record.read_text().splitlines()
    assert sorted(c.split(' gpu=')[0] for c in calls) == sorted(['call [-d]', 'call []', 'quit'] * 2)
    again = sweep_here(tmp_path, data_dir, capsys, '--experiments', 'mnist2', '--approaches', 'sgd,hat', '--seeds',
                       '0-1', '--backend', 'slurm', *TINY)
    assert '4 finished before' in again.stdout and 'Submitted' not in again.stdout


@pytest.mark.slow
@requires_slurm
def test_slurm_packed_tasks_stop_requeue_and_resume(tmp_path, small_mnist, capsys):
    """USR1 (Slurm's time-limit warning) to two packed array tasks: task 0's two runs both stop (exit 3, checkpoints
    kept); task 1's first run had finished, its second stops. Both tasks requeue once; the stopped runs resume and
    end with the matrices of an uninterrupted sweep, and the finished run is not redone. On small_mnist (epochs of
    two batches), with epochs enough per task to keep the stopped runs going well after the state each signal waits
    for, on a loaded machine too."""
    data_dir = small_mnist
    grid = ['--experiments', 'split_mnist', '--approaches', 'hat', '--seeds', '0', '--grid', 'nepochs=8,10,1,12']
    proc = sweep_here(tmp_path, data_dir, capsys, *grid, '--backend', 'slurm', '--runs-per-task', '2',
                      '--gpus-per-run', '0', '--cpus-per-task', '1', '--mem', '500M', '--time', '10', '--job-name',
                      'pack', '--', '--batch-size', '16')
    job = submitted_job(proc)
    name = {n: f'split_mnist_hat-{n}_0' for n in (8, 10, 1, 12)}
    logs, res = tmp_path / 'logs', tmp_path / 'res'
    # Each task is signalled once its state is the one wanted: both runs past their first task; the short run
    # ended (its process, not only its results: a signal in its last moments stops it with exit status 3, as seen on
    # a loaded machine) and the long one past its first task
    ready = {'0': lambda: all(jsonl_task(logs / f'{name[n]}.jsonl') >= 1 for n in (8, 10)),
             '1': lambda: (f'{name[1]}.out: exit status 0' in slurm_out(tmp_path, 'pack')
                           and jsonl_task(logs / f'{name[12]}.jsonl') >= 1)}
    deadline = time.time() + 300
    while ready:
        assert time.time() < deadline, 'the runs never got that far: ' + slurm_out(tmp_path, 'pack')
        for task in [task for task, now in ready.items() if now()]:
            subprocess.run(['scancel', '--signal=USR1', '--batch', f'{job}_{task}'], check=True)
            del ready[task]
        time.sleep(0.1)
    finished_at = (res / f'{name[1]}.txt').stat().st_mtime_ns
    for task in ('0', '1'):
        while job_state(f'{job}_{task}') != ('PENDING', 1):  # stopped, requeued, not started again
            assert time.time() < deadline, f'task {task} was not requeued: {job_state(f"{job}_{task}")}'
            time.sleep(0.2)
    for n in (8, 10, 12):  # stopped: unfinished results, a checkpoint to resume from
        assert not results.is_complete(results.load_pkl(res / f'{name[n]}.txt'))
        assert (logs / f'{name[n]}_checkpoint.pt').is_file()
    restart_now(f'{job}_0', f'{job}_1')
    assert [wait_until_ended(f'{job}_{task}') for task in ('0', '1')] == ['COMPLETED'] * 2
    out = slurm_out(tmp_path, 'pack')
    assert out.count('[run.sbatch] USR1 received: stopping the runs') == 2 and out.count('requeueing') == 2
    assert out.count('exit status 3') == 3, out
    for n in (8, 10, 12):
        log = (logs / f'{name[n]}.out').read_text()
        assert 'interrupted: SIGUSR1 after' in log and 'Resuming from' in log and log.count('Done!') == 1
    assert 'is finished already: nothing to resume' in (logs / f'{name[1]}.out').read_text()
    assert (res / f'{name[1]}.txt').stat().st_mtime_ns == finished_at
    reference = tmp_path / 'uninterrupted'
    one_at_a_time(['--experiment', 'split_mnist', '--approach', 'hat', '--nepochs', str(n), '--batch-size', '16',
                   '--data-dir', str(data_dir), '--output', str(reference / f'{name[n]}.txt'),
                   '--logs-dir', str(reference)] for n in (8, 10, 1, 12))
    assert matrices(res) == matrices(reference) and len(matrices(res)) == 4


@pytest.mark.slow
@requires_slurm
def test_slurm_single_run_template_requeues_and_resumes(tmp_path, small_mnist):
    """scripts/run.sbatch used directly, as the readme shows: USR1 makes the run save and exit, the job requeues
    itself, and the requeued job resumes after the last finished task and completes the matrix. On small_mnist,
    with 8 epochs per task: tasks enough after the second for the signal to arrive first."""
    data_dir = small_mnist
    (tmp_path / 'logs').mkdir()
    proc = subprocess.run(['sbatch', '--parsable', '--job-name=single', '--gres=none', '--cpus-per-task=1',
                           '--mem=500M', '--time=10', f'--output={tmp_path / "logs"}/single_%j.out',
                           str(ROOT / 'scripts' / 'run.sbatch'), '--experiment', 'split_mnist', '--approach', 'hat',
                           '--nepochs', '8', '--batch-size', '16', '--data-dir', str(data_dir),
                           '--results-dir', str(tmp_path / 'res'), '--logs-dir', str(tmp_path / 'logs')],
                          capture_output=True, text=True, env={**os.environ, 'HAT_ROOT': str(ROOT),
                                                               'PYTHON': sys.executable})
    assert proc.returncode == 0, proc.stderr
    job = proc.stdout.strip().split(';')[0]
    log = tmp_path / 'logs' / 'split_mnist_hat_0.jsonl'
    deadline = time.time() + 300
    while jsonl_task(log) < 1:
        assert time.time() < deadline, 'the job never reached its second task'
        time.sleep(0.1)
    subprocess.run(['scancel', '--signal=USR1', '--batch', job], check=True)
    restart_now(job)
    assert wait_until_ended(job) == 'COMPLETED'
    out = ''.join(p.read_text() for p in (tmp_path / 'logs').glob('single_*.out'))
    assert 'interrupted: SIGUSR1 after' in out and '[run.sbatch] requeueing' in out
    assert 'Resuming from' in out
    saved = results.load_pkl(tmp_path / 'res' / 'split_mnist_hat_0.txt')
    assert results.is_complete(saved) and np.all(np.diag(saved['acc']) > 0)


def test_threads_per_run_from_the_flag_the_environment_or_the_cores(monkeypatch, capsys):
    """--threads first; else OMP_NUM_THREADS set in the user's environment (a request); else the usable CPUs split
    between the workers. Each says where its number comes from, and more threads than CPUs is pointed out."""
    monkeypatch.setattr(local, 'usable_cpus', lambda: 16)
    args = lambda **flags: argparse.Namespace(**{  # noqa: E731
        'gpus': '', 'workers': 4, 'runs_per_gpu': None, 'threads': None, **flags})
    monkeypatch.delenv('OMP_NUM_THREADS', raising=False)
    assert local.threads_per_run(args(), 4) == (4, '16 usable CPUs / 4 workers')
    monkeypatch.setenv('OMP_NUM_THREADS', '2')
    assert local.threads_per_run(args(), 4) == (2, 'OMP_NUM_THREADS')
    assert local.local_plan([None] * 8, args()) == ([], 4, 2)
    assert local.threads_per_run(args(threads=3), 4) == (3, '--threads')
    assert capsys.readouterr().out == ''
    monkeypatch.setenv('OMP_NUM_THREADS', '8')
    assert local.local_plan([None] * 8, args()) == ([], 4, 8)
    assert 'note: 4 runs at once x 8 CPU threads (OMP_NUM_THREADS) > 16 usable CPUs' in capsys.readouterr().out
    for wrong in ('0', 'four'):
        monkeypatch.setenv('OMP_NUM_THREADS', wrong)
        with pytest.raises(utils.UserError, match=f"OMP_NUM_THREADS='{wrong}' in the environment: .* or pass "
                                                  f"--threads"):
            local.local_plan([None] * 8, args())


@pytest.mark.slow
def test_sweep_says_how_many_threads_each_run_gets_and_why(tmp_path, monkeypatch, capsys):
    """The sweep's printout, with OMP_NUM_THREADS in its environment (the run fails at once: no data)."""
    monkeypatch.setenv('OMP_NUM_THREADS', '3')
    proc = sweep_here(tmp_path, tmp_path / 'no_data', capsys, '--experiments', 'mnist2', '--approaches', 'sgd',
                      '--seeds', '0', '--gpus', '', *TINY)
    assert '1 runs on 1 workers, 3 CPU threads each (OMP_NUM_THREADS)' in proc.stdout, proc.stdout + proc.stderr


def test_write_only_setup_lines_and_gpus_per_task(tmp_path, data_dir, capsys):
    """--setup FILE's lines go into the job script after its variables and before the runs; --gpus-per-task sets
    the array task's GPUs, as its former name --gpus-per-run still does (hidden from --help)."""
    setup = tmp_path / 'env.sh'
    setup.write_text('module load cuda/12\nsource ~/venv/bin/activate')
    for flag, folder in (('--gpus-per-task', 'new'), ('--gpus-per-run', 'old')):
        proc = sweep_here(tmp_path / folder, data_dir, capsys, '--experiments', 'mnist2', '--approaches', 'sgd',
                          '--seeds', '0', '--backend', 'slurm', '--write-only', '--setup', str(setup), flag, '2',
                          *TINY)
        assert proc.returncode == 0, proc.stderr
        script = (tmp_path / folder / 'logs' / 'slurm' / 'sweep.sbatch').read_text()
        assert '#SBATCH --gres=gpu:2\nexport HAT_ROOT=' in script
        assert (f'HAT_MPS=0\n# From --setup {setup}, before the runs:\nmodule load cuda/12\n'
                f'source ~/venv/bin/activate\n# exec: ') in script
    usage = in_process(lambda a: sys.exit(run_multi.main(a)), ['--help'], capsys).stdout
    assert '--gpus-per-task' in usage and '--gpus-per-run' not in usage and '--setup FILE' in usage


@pytest.mark.parametrize('setup,fragment', [
    ('missing.sh', 'argument --setup: {path}: cannot read it (No such file or directory)'),
    ('.', 'argument --setup: {path}: cannot read it'),
    ('sbatch.sh', 'argument --setup: {path}: holds #SBATCH lines, which sbatch would ignore there; give them with '
                  '--sbatch-option'),
    ('binary.sh', 'argument --setup: {path}: not a text file of shell lines'),
])
def test_setup_file_checked_when_parsed(tmp_path, data_dir, capsys, setup, fragment):
    (tmp_path / 'sbatch.sh').write_text('module load cuda\n  #SBATCH --account=abc\n')
    (tmp_path / 'binary.sh').write_bytes(b'\xff\xfe\x00module')
    path = tmp_path / setup
    argv = ['--results-dir', str(tmp_path / 'res'), '--logs-dir', str(tmp_path / 'logs'), '--data-dir',
            str(data_dir), '--experiments', 'mnist2', '--approaches', 'sgd', '--backend', 'slurm', '--list',
            '--setup', str(path)]
    with pytest.raises(SystemExit) as stop:
        utils.run_cli(lambda: sys.exit(run_multi.main(argv)))
    err = capsys.readouterr().err
    assert stop.value.code == 2 and fragment.format(path=path) in err and err.count('\n') == 1, err


@pytest.mark.slow
@requires_slurm
def test_slurm_setup_lines_run_before_the_runs(tmp_path, data_dir, capsys):
    """A real job array with --setup: its lines run in each array task before the runs, and what they export reaches
    them (here PYTHON, a wrapper that notes each run it starts)."""
    wrapper = tmp_path / 'python'
    wrapper.write_text(f'#!/bin/bash\necho "wrapped $*" >> {tmp_path / "wrapped"}\nexec {sys.executable} "$@"\n')
    wrapper.chmod(0o755)
    setup = tmp_path / 'env.sh'
    setup.write_text(f'echo "setup ran in $SLURM_ARRAY_TASK_ID" >&2\nexport PYTHON={wrapper}\n')
    proc = sweep_here(tmp_path, data_dir, capsys, '--experiments', 'mnist2', '--approaches', 'random', '--seeds',
                      '0', '--backend', 'slurm', '--setup', str(setup), '--gpus-per-task', '0', '--cpus-per-task',
                      '1', '--mem', '500M', '--time', '10', '--job-name', 'setup', *TINY)
    wait_for(submitted_job(proc))
    assert 'setup ran in 0' in slurm_out(tmp_path, 'setup')
    assert 'src/run.py --experiment mnist2 --approach random' in (tmp_path / 'wrapped').read_text()
    assert results.is_complete(results.load_pkl(tmp_path / 'res' / 'mnist2_random_0.txt'))
