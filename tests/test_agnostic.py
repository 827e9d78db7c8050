"""Task-agnostic evaluation (run.py --task-agnostic): each rule on hand-computed logits, HAT's inferred tasks one by
one against a forward written here, the task-aware results bitwise unchanged by it for every approach, resume."""
import json
import math

import numpy as np
import pytest
import torch

from analysis import results
from approaches import _agnostic, hat, sgd
from networks import mlp, mlp_hat
from plumbing import checkpoints, interrupts, utils
import run
from fixtures import StopAfter, in_process, make_appr, make_tasks, run_main

APPROACHES = utils.module_choices('approaches')

# Two heads of 3 classes, three samples, each rule's (task, class) worked out by hand:
#   A: head 0 [2.9, 3, 2.9] (max logit 3, max softmax 0.35, logsumexp 4.03); head 1 [-5, 2, -5] (max 2, softmax
#      0.998, logsumexp 2.00): the logits and the energy pick task 0, the probability and the entropy task 1
#   B: head 0 [-20, 5, 5] (softmax 0.5 on two classes: entropy ln 2 = 0.69, the first largest is class 1); head 1
#      [0, 0, 1.2] (softmax 0.62, 0.19, 0.19: entropy 0.92): the probability picks task 1, the others task 0
#   C: head 0 [-10, 4, -10] (max 4, logsumexp 4.00); head 1 [3.5, 3.5, 3.5] (logsumexp 3.5 + ln 3 = 4.60): the
#      energy picks task 1 (its class the first, 0), the others task 0
HEADS = [torch.tensor([[2.9, 3., 2.9], [-20., 5., 5.], [-10., 4., -10.]]),
         torch.tensor([[-5., 2., -5.], [0., 0., 1.2], [3.5, 3.5, 3.5]])]
EXPECTED = {'maxlogit': ([0, 0, 0], [1, 1, 1]), 'maxprob': ([1, 1, 0], [1, 2, 1]),
            'entropy': ([1, 0, 0], [1, 1, 1]), 'energy': ([0, 0, 1], [1, 1, 0])}


def test_each_rule_picks_the_hand_computed_task_and_class():
    assert set(EXPECTED) == set(_agnostic.RULES)
    for rule, (tasks, classes) in EXPECTED.items():
        task, cls = _agnostic.infer(HEADS, rule)
        assert task.tolist() == tasks and cls.tolist() == classes, rule
    # The hand figures above
    assert math.isclose(math.log(math.exp(3) + 2 * math.exp(2.9)), 4.033, abs_tol=1e-3)
    p = [math.exp(1.2) / (math.exp(1.2) + 2), 1 / (math.exp(1.2) + 2)]
    assert p[0] > 0.5 and -(p[0] * math.log(p[0]) + 2 * p[1] * math.log(p[1])) > math.log(2)
    # maxlogit is the concatenated logits' first largest (FACIL's task-agnostic accuracy)
    flat = torch.cat(HEADS, 1).argmax(1)
    task, cls = _agnostic.infer(HEADS, 'maxlogit')
    assert torch.equal(task * 3 + cls, flat)
    # counts(): samples of task 1 labelled (1, 2, 0)
    assert _agnostic.counts(HEADS, 1, torch.tensor([1, 2, 0]), ['maxprob', 'energy']) == {
        'maxprob': (2, 2), 'energy': (1, 1)}


class SetLogits(torch.nn.Module):
    """A network whose head u gives HEADS[u] under task t's forward, plus t (so a forward of the wrong task shows)."""

    def __init__(self):
        super().__init__()
        self.taskcla = [(0, 3), (1, 3)]
        self.last = torch.nn.ModuleList(torch.nn.Linear(1, 3) for _ in range(2))
        self.w = torch.nn.Parameter(torch.zeros(()))

    def forward(self, t, x):
        rows = x[:, 0].long()
        return [HEADS[u][rows] + self.w + (0 if u == t else 100) for u in range(2)]


class PerTask(sgd.Appr):
    forward_per_task = True

    def forward(self, t, x, training):
        return self.model(t, x), {}


def test_the_hook_runs_each_tasks_own_forward_where_the_forward_depends_on_the_task():
    x = torch.arange(3.).view(3, 1)
    appr = make_appr(PerTask, SetLogits(), batch_size=2)  # batches of 2: the logits put together
    logits = appr.agnostic_logits(1, x)
    assert all(torch.equal(a, b) for a, b in zip(logits, HEADS))
    assert appr.test_agnostic(1, 1, x, torch.tensor([1, 2, 0]), ['maxprob', 'energy']) == {
        'maxprob': (2 / 3, 2 / 3), 'energy': (1 / 3, 1 / 3)}
    # After task 0: head 0 alone, every sample of task 0
    assert appr.test_agnostic(0, 0, x, torch.tensor([1, 1, 1]), ['entropy'])['entropy'] == (1.0, 1.0)


def test_heads_on_one_body_come_from_one_forward():
    calls = []

    class Shared(sgd.Appr):
        def forward(self, t, x, training):
            calls.append(t)
            return [torch.stack([x[:, 0], -x[:, 0]], 1), torch.stack([x[:, 0] * 0, x[:, 0] * 2], 1)], {}

    appr = make_appr(Shared, mlp.Net([1, 1, 1], [(0, 2), (1, 2)]))
    x = torch.tensor([[1.], [-1.], [3.]])
    logits = appr.agnostic_logits(1, x)
    assert calls == [1] and torch.equal(torch.cat(logits, 1), torch.tensor(
        [[1., -1., 0., 2.], [-1., 1., 0., -2.], [3., -3., 0., 6.]]))
    # The largest of the concatenation: task 1 class 1, task 0 class 1, task 1 class 1
    assert appr.test_agnostic(1, 1, x, torch.tensor([1, 1, 1]), ['maxlogit'])['maxlogit'] == (2 / 3, 2 / 3)


def test_hat_infers_each_samples_task_as_its_binary_masks_and_heads_say():
    """A HAT MLP trained a little on 3 tasks, then given binary gates on disjoint units per task (task u: units 2u
    and 2u+1 of both layers): each sample's inferred task and class, by every rule, are those of the task-by-task
    forward written here with those masks."""
    torch.manual_seed(0)
    tasks = make_tasks((1, 2, 2), 3, n=24, ncla=3)
    net = mlp_hat.Net([1, 2, 2], [(t, 3) for t in range(3)], nhid=6)
    appr = make_appr(hat.Appr, net, nepochs=1, batch_size=8)
    for t in range(3):
        appr.train(t, tasks)
    with torch.no_grad():
        for emb in net.embeddings():
            emb.weight.fill_(-6.)
            for u in range(3):
                emb.weight[u, 2 * u:2 * u + 2] = 6.  # sigmoid(400 * 6) is 1 and sigmoid(-2400) 0 in float32
    assert all(set(m.unique().tolist()) == {0., 1.} for m in net.mask(0, s=400))
    net.eval()
    x = torch.cat([task['test']['x'] for task in tasks])

    def by_hand(u):
        gate = torch.zeros(6)
        gate[2 * u:2 * u + 2] = 1
        h = torch.relu(net.fc1(x.view(len(x), -1))) * gate
        h = torch.relu(net.fc2(h)) * gate
        return net.last[u](h)

    expected = [by_hand(u) for u in range(3)]
    got = appr.agnostic_logits(2, x)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(got, expected))
    for rule, score in _agnostic.RULES.items():
        task, cls = _agnostic.infer(got, rule)
        for i in range(len(x)):  # one by one
            scores = [score(z[i:i + 1].double()).item() for z in expected]
            assert task[i].item() == int(np.argmax(scores)), (rule, i)
            assert cls[i].item() == expected[task[i]][i].argmax().item()


def agnostic_run(data_dir, folder, approach, *flags):
    return run_main(data_dir, folder, '--experiment', 'mnist2', '--approach', approach, '--dry-run', *flags)


def epochs(folder, stem):
    log = folder / 'logs' / f'{stem}.jsonl'
    if not log.exists():
        return None
    return [{k: v for k, v in json.loads(line).items() if not k.startswith('seconds')}
            for line in log.read_text().splitlines()]


@pytest.mark.parametrize('approach', [a if a in ('sgd', 'hat', 'random') else pytest.param(a, marks=pytest.mark.slow)
                                      for a in APPROACHES])
def test_task_aware_results_are_bitwise_the_same_with_it(data_dir, tmp_path, approach):
    """Every approach: the matrices, the .txt's bytes and every epoch's numbers with --task-agnostic are those
    without it (mnist2's 2 tasks, dry runs: the second task trains after the first's task-agnostic tests); the
    task-agnostic matrices have their shape and range, task 0's diagonal is the task-aware one where there is one task
    only."""
    extra = {'pathnet': ['--generations', '1'], 'gpm': ['--samples', '1']}.get(approach, [])  # the least they need
    plain = agnostic_run(data_dir, tmp_path / 'plain', approach, *extra)
    seen = agnostic_run(data_dir, tmp_path / 'seen', approach, '--task-agnostic', *extra)
    stem = f'mnist2_{approach}_0_dryrun'
    assert np.array_equal(plain['acc'], seen['acc']) and np.array_equal(plain['lss'], seen['lss'])
    assert (tmp_path / 'plain' / 'res' / f'{stem}.txt').read_bytes() == (tmp_path / 'seen' / 'res' / f'{stem}.txt') \
        .read_bytes()
    assert epochs(tmp_path / 'plain', stem) == epochs(tmp_path / 'seen', stem)
    assert 'acc_agnostic' not in plain and not (tmp_path / 'plain' / 'res' / f'{stem}_agnostic.txt').exists()
    agnostic, inferred = seen['acc_agnostic'], seen['task_inference']
    assert agnostic.shape == inferred.shape == (2, 2) and np.all(np.triu(agnostic, 1) == 0)
    assert np.all((0 <= agnostic) & (agnostic <= inferred) & (inferred <= 1))
    if approach != 'random':  # one task learned: its label is the only one, so the two views agree
        assert agnostic[0, 0] == pytest.approx(seen['acc'][0, 0]) and inferred[0, 0] == 1
    forward_per_task = utils.load_module('approaches', approach).Appr.forward_per_task
    assert seen['agnostic_rule'] == ('maxprob' if forward_per_task else 'maxlogit')
    assert sorted(seen['agnostic_by_rule']) == sorted(_agnostic.RULES if forward_per_task else ['maxlogit'])
    assert np.array_equal(seen['agnostic_by_rule'][seen['agnostic_rule']]['acc'], agnostic)
    written, dry = results.read_txt(tmp_path / 'seen' / 'res' / f'{stem}_agnostic.txt')
    assert dry and np.allclose(written, agnostic, atol=results.TXT_TOLERANCE)


@pytest.mark.slow
def test_resumed_run_gives_the_uninterrupted_task_agnostic_matrices(small_mnist, tmp_path, monkeypatch, capsys):
    argv = ['--experiment', 'split_mnist', '--approach', 'hat', '--nepochs', '1', '--batch-size', '8',
            '--task-agnostic', 'entropy']
    whole = run_main(small_mnist, tmp_path / 'whole', *argv)
    with monkeypatch.context() as mp:
        mp.setattr(checkpoints, 'save', StopAfter(2))
        with pytest.raises(interrupts.Interrupted):
            run_main(small_mnist, tmp_path / 'cut', *argv)
    resumed = run_main(small_mnist, tmp_path / 'cut', *argv, '--resume')
    assert whole['agnostic_rule'] == resumed['agnostic_rule'] == 'entropy'
    for rule in _agnostic.RULES:
        for key in ('acc', 'task_inference'):
            assert np.array_equal(whole['agnostic_by_rule'][rule][key], resumed['agnostic_by_rule'][rule][key])
    # A first part without the flag: its rows cannot be computed now, said in one line
    plain = argv[:-2]
    with monkeypatch.context() as mp:
        mp.setattr(checkpoints, 'save', StopAfter(2))
        with pytest.raises(interrupts.Interrupted):
            run_main(small_mnist, tmp_path / 'without', *plain)
    proc = in_process(run.main, ['--data-dir', str(small_mnist), '--results-dir', str(tmp_path / 'without' / 'res'),
                                 '--logs-dir', str(tmp_path / 'without' / 'logs'), *argv, '--resume'], capsys)
    assert proc.returncode != 0 and proc.stderr.count('\n') == 1
    assert 'its 2 finished tasks ran without --task-agnostic' in proc.stderr


@pytest.mark.slow
def test_plot_results_shows_either_view(small_mnist, tmp_path, capsys):
    """plot_results --view agnostic: the table's final accuracy is the task-agnostic matrix's, the heatmap draws it;
    a run without it is one line naming the file."""
    import plot_results
    for approach, flags in (('sgd', ['--task-agnostic']), ('hat', ['--task-agnostic']), ('ewc', [])):
        run_main(small_mnist, tmp_path, '--experiment', 'split_mnist', '--approach', approach, '--nepochs', '1',
                 '--batch-size', '8', *flags)
    res = tmp_path / 'res'
    table = ['table', '--experiment', 'split_mnist', '--approaches', 'sgd,hat', '--seeds', '0', '--folders', str(res)]
    aware = plot_results.main(table)['rows']
    agnostic = plot_results.main([*table, '--view', 'agnostic'])['rows']
    for approach, a, b in zip(('sgd', 'hat'), aware, agnostic):
        saved = results.load_pkl(res / f'split_mnist_{approach}_0.txt')
        assert a['acc_final'][0] == pytest.approx(100 * saved['acc'][-1].mean(), abs=1e-3)
        assert b['acc_final'][0] == pytest.approx(100 * saved['acc_agnostic'][-1].mean(), abs=1e-3)
    shown = plot_results.main(['matrix', str(res / 'split_mnist_hat_0.txt'), '--view', 'agnostic', '--output',
                               str(tmp_path / 'm.png')])
    saved = results.load_pkl(res / 'split_mnist_hat_0.txt')
    assert np.allclose(np.nan_to_num(shown['acc']), 100 * np.tril(saved['acc_agnostic']), atol=1e-4)
    assert 'without the task label' in shown['run'] and (tmp_path / 'm.png').is_file()
    proc = in_process(plot_results.main, [*table[:4], 'sgd,ewc', *table[5:], '--view', 'agnostic'], capsys)
    assert proc.returncode != 0 and proc.stderr.count('\n') == 1
    assert 'split_mnist_ewc_0.txt: no task-agnostic matrix' in proc.stderr
