"""Results as evidence, one test per rule (docs/results.md, "Results are evidence"): finished results are never
replaced without --overwrite, and --overwrite replaces them only once the new run has finished (1); a result says
what produced it and readers check it (2); a sweep owns its runs' identities (3); output paths are checked before
any work (5); Ctrl-C is clean (6); every reader fails in one line naming the file (7). Values (4) are in
test_values.py, the Debian Fashion-MNIST files (8) in test_data.py."""
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from analysis import results
import plot_results
from plumbing import checkpoints, files, interrupts, utils
import run
import run_multi
from sweeps import grid, local
from conftest import ROOT
from fixtures import StopAfter, run_main

ARGV = ['--experiment', 'mnist2', '--approach', 'sgd', '--nepochs', '1', '--batch-size', '32']
NAME = 'mnist2_sgd_0'


def snapshot(folder: Path) -> dict:
    """{path relative to folder: bytes} of every file under it."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob('*')) if p.is_file()}


def call(data_dir: Path, folder: Path, *argv: str):
    """run.main on the files under folder; the results, or the UserError it ended with."""
    try:
        return run_main(data_dir, folder, *argv)
    except utils.UserError as e:
        return e


@pytest.fixture(scope='module')
def states(small_mnist, tmp_path_factory) -> dict[str, Path]:
    """Folders (res/ and logs/) each holding one kind of thing at res/mnist2_sgd_0.txt, made once."""
    base = tmp_path_factory.mktemp('states')
    made = {}

    def state(name, change=None):
        folder = base / name
        shutil.copytree(base / 'finished', folder)
        if change:
            change(folder / 'res' / f'{NAME}.txt')
        made[name] = folder

    run_main(small_mnist, base / 'finished', *ARGV)
    made['finished'] = base / 'finished'
    state('txt_alone', lambda txt: txt.with_suffix('.pkl').unlink())  # as the original wrote its results
    state('damaged_pkl', lambda txt: txt.with_suffix('.pkl').write_bytes(os.urandom(300)))
    state('pkl_of_wrong_types', lambda txt: txt.with_suffix('.pkl').write_bytes(pickle.dumps(
        {'acc': [[1.0]], 'taskcla': 'x', 'tasks_done': 'all', 'args': None})))
    state('truncated_txt', lambda txt: txt.write_bytes(txt.read_bytes()[:-3]))
    state('edited_txt', lambda txt: txt.write_text(f'{(float(txt.read_text()[:6]) + 0.01) % 1:.4f}' +
                                                   txt.read_text()[6:]))  # one number changed, in the format
    run_main(small_mnist, base / 'dry_run', *ARGV, '--dry-run', '--output',
             str(base / 'dry_run' / 'res' / f'{NAME}.txt'))
    made['dry_run'] = base / 'dry_run'
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(checkpoints, 'save', StopAfter(1))
        with pytest.raises(interrupts.Interrupted):
            run_main(small_mnist, base / 'unfinished', *ARGV)
    made['unfinished'] = base / 'unfinished'
    return made


# Each thing at the results path x each ordinary mistake: refused in one line, every file byte for byte as it was
MISTAKES = {'run again': [], 'dry run over it': ['--dry-run'], 'resume, other settings': ['--resume', '--nepochs', '2'],
            'resume': ['--resume'], 'another approach': ['--approach', 'ewc']}
ALLOWED = {('finished', 'resume'): 'returned as it is', ('unfinished', 'resume'): 'continued',
           ('dry_run', 'dry run over it'): 'scratch replaced by scratch'}
CASES = [(s, m) for s in ('finished', 'txt_alone', 'damaged_pkl', 'pkl_of_wrong_types', 'truncated_txt', 'edited_txt',
                          'dry_run', 'unfinished') for m in MISTAKES if (s, m) not in ALLOWED]


@pytest.mark.parametrize('state,mistake', CASES)
def test_rule1_nothing_finished_is_replaced_without_overwrite(states, small_mnist, tmp_path, state, mistake):
    folder = tmp_path / state
    shutil.copytree(states[state], folder)
    before = snapshot(folder)
    outcome = call(small_mnist, folder, *ARGV, *MISTAKES[mistake], '--output', str(folder / 'res' / f'{NAME}.txt'))
    assert isinstance(outcome, utils.UserError), outcome
    assert '--overwrite' in str(outcome) and f'{NAME}.txt' in str(outcome)
    assert snapshot(folder) == before


def test_rule1_allowed_cases(states, small_mnist, tmp_path, capsys):
    """The three cases that may go on: a finished run resumed with its settings is returned untouched, an unfinished
    one continued, a dry run's scratch replaced by another dry run."""
    folder = tmp_path / 'finished'
    shutil.copytree(states['finished'], folder)
    before = snapshot(folder)
    assert call(small_mnist, folder, *ARGV, '--resume')['tasks_done'] == 2 and snapshot(folder) == before
    assert 'finished already: nothing to resume (it was made with the same settings)' in capsys.readouterr().out
    folder = tmp_path / 'unfinished'
    shutil.copytree(states['unfinished'], folder)
    assert call(small_mnist, folder, *ARGV, '--resume')['tasks_done'] == 2
    folder = tmp_path / 'dry'
    shutil.copytree(states['dry_run'], folder)
    output = str(folder / 'res' / f'{NAME}.txt')
    assert call(small_mnist, folder, *ARGV, '--dry-run', '--output', output, '--seed', '0')['args']['dry_run']


def test_rule1_overwrite_replaces_only_a_finished_run(states, small_mnist, tmp_path, monkeypatch):
    """--overwrite by a run that fails, then by one that is interrupted: the old results and logs stay whole; resumed
    with --overwrite, the new run finishes and only then takes their place (no checkpoint or staged file left), with
    the matrices and epoch log of an uninterrupted run."""
    folder = tmp_path / 'f'
    shutil.copytree(states['finished'], folder)
    before = snapshot(folder)
    diverged = call(small_mnist, folder, *ARGV, '--overwrite', '--lr', '1e30')
    assert 'diverged' in str(diverged)
    assert {k: v for k, v in snapshot(folder).items() if not Path(k).name.startswith('.')} == before
    with monkeypatch.context() as mp:
        mp.setattr(checkpoints, 'save', StopAfter(1))
        with pytest.raises(interrupts.Interrupted, match='--resume continues'):
            run_main(small_mnist, folder, *ARGV, '--overwrite', '--lr', '0.1')
    assert {k: v for k, v in snapshot(folder).items() if not Path(k).name.startswith('.')} == before
    replaced = run_main(small_mnist, folder, *ARGV, '--overwrite', '--lr', '0.1', '--resume')
    fresh = run_main(small_mnist, tmp_path / 'fresh', *ARGV, '--lr', '0.1')
    assert np.array_equal(replaced['acc'], fresh['acc']) and np.array_equal(replaced['lss'], fresh['lss'])
    after = snapshot(folder)
    assert sorted(after) == sorted(before)  # nothing staged, no checkpoint left
    assert after[f'res/{NAME}.txt'] == (tmp_path / 'fresh' / 'res' / f'{NAME}.txt').read_bytes()

    def epochs(path):
        return [{k: v for k, v in json.loads(line).items() if not k.startswith('seconds')}
                for line in path.read_text().splitlines()]
    assert epochs(folder / 'logs' / f'{NAME}.jsonl') == epochs(tmp_path / 'fresh' / 'logs' / f'{NAME}.jsonl')
    assert results.load_pkl(folder / 'res' / f'{NAME}.txt')['args']['lr'] == 0.1


def test_rule2_a_dry_run_says_so_in_every_file(states):
    folder = states['dry_run']
    assert (folder / 'res' / f'{NAME}.txt').read_text().startswith('# dry run')
    assert results.load_pkl(folder / 'res' / f'{NAME}.txt')['args']['dry_run'] is True
    records = [json.loads(line) for line in (folder / 'logs' / f'{NAME}.jsonl').read_text().splitlines()]
    assert records and all(r['dry_run'] is True for r in records)
    assert 'dry_run' not in (states['finished'] / 'logs' / f'{NAME}.jsonl').read_text()


# What plot_results must refuse, in every command that reads results
READER_CASES = {
    'dry_run': 'a dry run (--dry-run), not a result',
    'unfinished': 'an unfinished run (1 of 2 tasks)',
    'truncated_txt': "is not an accuracy in run.py's '%.4f' format",
    'edited_txt': 'does not match the matrix in its .pkl',
    'damaged_pkl': 'cannot be read as a pickle',
    'pkl_of_wrong_types': "'acc' is not a square matrix",
    'renamed': "its .pkl says seed 0, not what the file's name claims",
    'txt_alone_unfinished': 'judged by its untrained rows of zeros',
}


@pytest.mark.parametrize('command', ['table', 'matrix', 'forgetting'])
@pytest.mark.parametrize('case', READER_CASES)
def test_rule2_readers_refuse_what_they_cannot_trust(states, tmp_path, case, command):
    folder = tmp_path / 'res'
    name = f'{NAME}.txt'
    if case == 'renamed':  # seed 0's files under seed 1's name
        shutil.copytree(states['finished'] / 'res', folder)
        for suffix in ('.txt', '.pkl'):
            (folder / f'{NAME}{suffix}').rename(folder / f'mnist2_sgd_1{suffix}')
        name = 'mnist2_sgd_1.txt'
    elif case == 'txt_alone_unfinished':  # the original's .txt after its first task
        shutil.copytree(states['unfinished'] / 'res', folder)
        (folder / f'{NAME}.pkl').unlink()
    else:
        shutil.copytree(states[case] / 'res', folder)
    seed = name.split('_')[-1][0]
    for reference in ('random', 'joint'):  # forgetting needs them; they are fine
        shutil.copy(states['finished'] / 'res' / f'{NAME}.txt', folder / f'mnist2_{reference}_{seed}.txt')
    argv = {'table': ['table', '--experiment', 'mnist2', '--approaches', 'sgd', '--seeds', seed],
            'forgetting': ['forgetting', '--experiment', 'mnist2', '--approaches', 'random,joint,sgd', '--seeds', seed,
                           '--output', str(tmp_path / 'f.png')],
            'matrix': ['matrix', str(folder / name), '--output', str(tmp_path / 'f.png')]}[command]
    if command != 'matrix':
        argv += ['--folders', str(folder)]
    with pytest.raises(utils.UserError) as e:
        plot_results.main(argv)
    assert READER_CASES[case] in str(e.value) and str(folder) in str(e.value)
    assert not (tmp_path / 'f.png').exists()


def test_rule2_sweeps_count_only_finished_runs_of_their_settings(states, small_mnist, tmp_path, capsys):
    """A dry run's results never count as the real run's; finished results of other settings are not 'finished'
    for a sweep: it refuses to start rather than skip or replace them."""
    sweep = ['--experiments', 'mnist2', '--approaches', 'sgd', '--seeds', '0-1', '--data-dir', str(small_mnist),
             '--results-dir', str(tmp_path / 'res'), '--logs-dir', str(tmp_path / 'logs'), '--list']
    for seed in ('0', '1'):  # what a dry-run sweep writes: run.py's dry-run names
        run_main(small_mnist, tmp_path, '--experiment', 'mnist2', '--approach', 'sgd', '--seed', seed, '--dry-run')
    capsys.readouterr()
    assert run_multi.main(sweep + ['--', '--nepochs', '1']) == 0
    assert '2 runs: 0 finished before, 0 being written by another process, 2 to do' in capsys.readouterr().out
    assert run_multi.main(sweep + ['--', '--nepochs', '1', '--dry-run']) == 0
    assert '2 runs: 2 finished before' in capsys.readouterr().out
    shutil.copy(states['finished'] / 'res' / f'{NAME}.txt', tmp_path / 'res' / f'{NAME}.txt')
    shutil.copy(states['finished'] / 'res' / f'{NAME}.pkl', tmp_path / 'res' / f'{NAME}.pkl')
    assert run_multi.main(sweep + ['--', '--nepochs', '1', '--batch-size', '32']) == 0
    assert '1 finished before' in capsys.readouterr().out
    for run_args, fragment in (([], 'holds a finished run made with other settings (--batch-size, --nepochs)'),
                               (['--nepochs', '1', '--batch-size', '32', '--lr', '0.1'], '(--lr)')):
        with pytest.raises(utils.UserError, match='1 of the sweep') as e:
            run_multi.main(sweep + ['--', *run_args])
        assert fragment in str(e.value) and '--overwrite' in str(e.value)
    assert run_multi.main(sweep + ['--', '--overwrite']) == 0
    assert '0 finished before, 0 being written by another process, 2 to do' in capsys.readouterr().out


@pytest.mark.parametrize('run_args,flag', [
    (['--seed', '5'], '--seed'), (['--se', '5', '--dry-run'], '--seed'), (['--seed=5'], '--seed'),
    (['--output', 'same.txt'], '--output'), (['--results-dir', 'elsewhere'], '--results-dir'),
    (['--logs-dir', 'elsewhere'], '--logs-dir'), (['--data-dir', 'elsewhere'], '--data-dir'),
    (['--experiment', 'pmnist'], '--experiment'), (['--approach', 'hat'], '--approach'),
    (['--lamb', '3'], '--lamb'), (['--parameter', '3'], '--lamb'),
])
def test_rule3_a_sweep_owns_its_runs_identities(tmp_path, run_args, flag):
    with pytest.raises(utils.UserError) as e:
        run_multi.main(['--experiments', 'mnist2', '--approaches', 'ewc', '--seeds', '0-1', '--grid', 'lamb=1,2',
                        '--results-dir', str(tmp_path / 'res'), '--logs-dir', str(tmp_path / 'logs'), '--list', '--',
                        *run_args])
    assert f'the flags after -- set {flag}, which the sweep sets for each run' in str(e.value)


def test_rule3_a_live_runs_console_log_is_never_truncated(small_mnist, tmp_path):
    """A second sweep reaching a run another process is writing: the run's .out keeps every byte it had (appended
    to, with the refusal), and the run is reported as failed by this sweep only."""
    args = run_multi.parse_args(['--experiments', 'mnist2', '--approaches', 'sgd', '--seeds', '0', '--data-dir',
                                 str(small_mnist), '--results-dir', str(tmp_path / 'res'), '--logs-dir',
                                 str(tmp_path / 'logs'), '--gpus', '', '--', '--nepochs', '1'])
    (tmp_path / 'res').mkdir()
    (tmp_path / 'logs').mkdir()
    [r] = grid.build_runs(args)
    r.log.write_text('the live run has written this so far\n')
    with files.OutputLock(r.output):
        failed = local.run_local([r], args)
    text = r.log.read_text()
    assert failed == [r] and text.startswith('the live run has written this so far\n') and '\0' not in text
    assert 'is being written by another run' in local.last_line(r.log)


def test_rule3_two_slurm_sweeps_never_share_a_runs_file(tmp_path, capsys):
    """An array task reads its runs from the .runs file when it starts: a second sweep of the same job name writes
    its own, and the first's pending tasks still read theirs."""
    sweep = ['--approaches', 'sgd', '--seeds', '0', '--results-dir', str(tmp_path / 'res'), '--logs-dir',
             str(tmp_path / 'logs'), '--backend', 'slurm', '--write-only']
    run_multi.main(['--experiments', 'mnist2', *sweep])
    first = (tmp_path / 'logs' / 'slurm' / 'sweep.runs').read_bytes()
    run_multi.main(['--experiments', 'pmnist', *sweep])
    assert (tmp_path / 'logs' / 'slurm' / 'sweep.runs').read_bytes() == first
    second = tmp_path / 'logs' / 'slurm' / 'sweep-2.sbatch'
    assert 'pmnist_sgd_0' in second.with_suffix('.runs').read_text() and f'HAT_RUNS={second.with_suffix(".runs")}' \
        in second.read_text()
    assert f'sbatch {second}' in capsys.readouterr().out


@pytest.mark.parametrize('argv,fragment', [
    (['--output', '{tmp}'], 'name a .txt file'),
    (['--output', '{tmp}/x.pkl'], 'name a .txt file'),
    (['--output', '{tmp}/folder.txt'], 'is a folder; name a .txt file'),
    (['--output', '{tmp}/x.txt/'], None),  # a path with a trailing slash names the folder x.txt, made below
    (['--approach', 'hat', '--monitor', '--monitor-path', '{tmp}'], '--monitor-path {tmp}: a folder; name a file'),
    (['--approach', 'hat-test', '--parameter', ','], '--monitor-path .: a folder'),  # the original's form: a path
])
def test_rule5_run_output_paths_are_checked_before_any_work(tmp_path, argv, fragment):
    (tmp_path / 'folder.txt').mkdir()
    argv = [a.format(tmp=tmp_path) for a in argv]
    fragment = fragment and fragment.format(tmp=tmp_path)
    if fragment is None:
        (tmp_path / 'x.txt').mkdir()
        fragment = 'is a folder'
    with pytest.raises(utils.UserError) as e:
        run.parse_args(['--experiment', 'mnist2', '--approach', 'sgd', *argv])
    assert fragment in str(e.value)


@pytest.mark.parametrize('flag', ['--csv', '--markdown', '--latex', '--output'])
def test_rule5_plot_outputs_are_checked_before_any_work(tmp_path, flag):
    folder = tmp_path / 'named_as_a.png'
    folder.mkdir()
    with pytest.raises(utils.UserError) as e:
        plot_results.main(['table' if flag != '--output' else 'forgetting', '--experiment', 'x', '--approaches',
                           'random,joint,a', '--folders', str(tmp_path / 'none'), flag, str(folder)])
    assert f'{flag} {folder} is a folder' in str(e.value)


@pytest.mark.parametrize('names', [['--approaches', '../../etc/x'], ['--experiment', 'a/b']])
def test_rule5_result_names_stay_in_their_folder(tmp_path, names):
    with pytest.raises(utils.UserError, match='is not a name of results'):
        plot_results.main(['table', '--experiment', 'x', '--approaches', 'a', *names])


def start(tmp_path: Path, *argv: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, 'OMP_NUM_THREADS': '1'})


def epochs_logged(log: Path, task: int) -> bool:
    return log.is_file() and any(json.loads(line)['task'] >= task for line in log.read_text().splitlines())


@pytest.mark.slow
def test_rule6_ctrl_c_on_a_run_and_on_a_sweep(data_dir, tmp_path):
    """Ctrl-C (SIGINT): one line with the resume hint, exit status 130, the checkpoint of the tasks finished, for a
    run and for a sweep (which passes it to its runs and waits for them to save). Processes, since the point is the
    signal and the exit status; on data_dir, whose tasks last long enough for the signal to arrive mid-run."""
    folders = ['--data-dir', str(data_dir), '--results-dir', str(tmp_path / 'res'),
               '--logs-dir', str(tmp_path / 'logs')]
    schedule = ['--nepochs', '2', '--batch-size', '16']
    single = start(tmp_path, str(ROOT / 'src' / 'run.py'), '--experiment', 'split_mnist', '--approach', 'sgd',
                   *folders, *schedule)
    swept = start(tmp_path, str(ROOT / 'src' / 'run_multi.py'), '--experiments', 'split_mnist', '--approaches', 'hat',
                  '--seeds', '0', *folders, '--', *schedule)
    # Each signalled as soon as it reaches task 1, both watched at once: waiting on one first let the other finish
    # all its tasks on a loaded machine
    waiting = {'split_mnist_sgd_0': single, 'split_mnist_hat_0': swept}
    for _ in range(3000):
        for name, proc in list(waiting.items()):
            if epochs_logged(tmp_path / 'logs' / f'{name}.jsonl', 1):
                proc.send_signal(signal.SIGINT)
                del waiting[name]
            elif proc.poll() is not None:
                pytest.fail(f'{name}: the process ended before task 1: {proc.stderr.read()}')
        if not waiting:
            break
        time.sleep(0.02)
    assert not waiting, f'never reached task 1: {list(waiting)}'
    for proc, name in ((single, 'split_mnist_sgd_0'), (swept, 'split_mnist_hat_0')):
        assert proc.wait(timeout=120) == interrupts.CTRL_C_EXIT
        err = [line for line in proc.stderr.read().splitlines() if not line.startswith('runs:')]
        assert 'Traceback' not in '\n'.join(err) and err[-1].startswith('interrupted: SIGINT'), err
        assert '--resume' in err[-1] or 'the same command continues' in err[-1]
        assert checkpoints.path_for(tmp_path / 'logs', name).is_file()
        assert results.load_pkl(tmp_path / 'res' / f'{name}.txt')['tasks_done'] >= 1
    assert 'SIGINT' in (tmp_path / 'logs' / 'split_mnist_hat_0.out').read_text()  # the sweep's run saved and said so


def test_rule7_readers_fail_in_one_line_naming_the_file(states, tmp_path, monkeypatch, capsys):
    noise = tmp_path / 'noise.jsonl'
    noise.write_bytes(os.urandom(2000) + b'\xff')
    typed = tmp_path / 'typed.jsonl'
    typed.write_text(json.dumps({'task': 0, 'epoch': 1, 'train_loss': 'low', 'valid_loss': 1, 'train_acc': 1,
                                 'valid_acc': 1}) + '\n')
    wrong = tmp_path / 'res'
    shutil.copytree(states['pkl_of_wrong_types'] / 'res', wrong)
    figure = ['--output', str(tmp_path / 'f.png')]
    for argv, fragment in ((['curves', str(noise)], f'{noise}: not a text file'),
                           (['curves', str(typed)], f'{typed}, line 1: train_loss is \'low\''),
                           (['matrix', str(wrong / f'{NAME}.pkl')], f"{wrong / NAME}.pkl: 'acc' is not a square"),
                           (['matrix', str(states['finished'] / 'res' / f'{NAME}.txt'), '--size', '2000,2000'],
                            'too large')):
        monkeypatch.setattr(sys, 'argv', ['plot_results.py', *argv, *figure])
        with pytest.raises(SystemExit) as e:
            utils.run_cli(plot_results.main)
        err = capsys.readouterr().err
        assert e.value.code == 2 and len(err.strip().splitlines()) == 1 and fragment in err, err
