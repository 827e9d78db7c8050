"""random: chance-level predictions drawn, as the original, from the labels of the last task trained (--own-labels:
from the tested task's own)."""
import numpy as np
import pytest
import torch

import run
from approaches import random
from fixtures import run_main


def tasks():
    """Task 0 labelled all 0, task 1 all 1: a prediction drawn from one task's labels is right on it, wrong on the
    other."""
    return [{'train': {'y': torch.full((6,), t)}} for t in (0, 1)]


def test_draws_from_the_last_trained_tasks_labels_as_the_original():
    appr = random.Appr(None)
    data = tasks()
    appr.train(0, data)
    assert appr.test(0, None, torch.zeros(10, dtype=torch.long)) == (0.0, 1.0)
    appr.train(1, data)
    assert appr.test(0, None, torch.zeros(10, dtype=torch.long)) == (0.0, 0.0)  # task 1's labels
    assert appr.test(1, None, torch.ones(10, dtype=torch.long)) == (0.0, 1.0)


def test_own_labels():
    appr = random.Appr(None, random.Appr.Hyper(own_labels=True))
    data = tasks()
    appr.train(0, data)
    appr.train(1, data)
    assert appr.test(0, None, torch.zeros(10, dtype=torch.long)) == (0.0, 1.0)


def test_draws_are_numpys_global_shuffles():
    """Each evaluation shuffles the labels in place (the next one starts from that order) until it has enough, then
    shuffles the predictions: the original's draws, which the diagonal's numbers depend on."""
    appr = random.Appr(None)
    labels = np.array([0, 1, 2, 0, 1])
    appr.train(0, [{'train': {'y': torch.from_numpy(labels)}}])
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0])
    np.random.seed(3)
    acc = appr.test(0, None, y)[1]
    np.random.seed(3)
    expected, pool = [], list(labels)
    while len(expected) < len(y):
        np.random.shuffle(pool)
        expected += pool
    expected = np.array(expected[:len(y)])
    np.random.shuffle(expected)
    assert acc == (torch.from_numpy(expected) == y).float().mean().item()


def test_help_names_the_loop_flags_as_ignored_and_lists_none(capsys):
    """random does not train: its --help says so once instead of listing the loop's flags (sgd's lists them)."""
    with pytest.raises(SystemExit):
        run.main(['--experiment', 'mnist2', '--approach', 'random', '--help'])
    text = capsys.readouterr().out
    assert 'random does not train' in text and 'ignored' in text
    for flag in ('--nepochs NEPOCHS', '--lr LR', '--lr-patience LR_PATIENCE', '--clipgrad CLIPGRAD'):
        assert flag not in text
    with pytest.raises(SystemExit):
        run.main(['--experiment', 'mnist2', '--approach', 'sgd', '--help'])
    assert '--lr LR' in capsys.readouterr().out


def test_loop_flags_accepted_and_ignored_and_no_epoch_log(data_dir, tmp_path, capsys):
    """A sweep passes the loop's flags to every approach (run_multi.py --approaches random,sgd -- --nepochs 1):
    random takes them, says in one line that it ignores them, gives the same matrix as without them, and writes no
    per-epoch log, since no epoch runs (an earlier run's is removed, as it would say otherwise)."""
    stale = tmp_path / 'logs' / 'mnist2_random_0.jsonl'
    stale.parent.mkdir()
    stale.write_text('{"task": 0, "epoch": 1}\n')
    flags = run_main(data_dir, tmp_path, '--experiment', 'mnist2', '--approach', 'random', '--nepochs', '1',
                     '--lr', '0.1', '--lr-patience', '2', '--batch-size', '16')
    assert 'note: --nepochs, --lr, --batch-size, --lr-patience ignored: the random approach does not train' in \
        capsys.readouterr().out
    assert not stale.exists() and list((tmp_path / 'logs').glob('*.jsonl')) == []
    plain = run_main(data_dir, tmp_path / 'plain', '--experiment', 'mnist2', '--approach', 'random')
    assert 'ignored' not in capsys.readouterr().out
    assert np.array_equal(flags['acc'], plain['acc']) and flags['args']['nepochs'] == 1
