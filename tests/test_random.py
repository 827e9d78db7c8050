"""random: chance-level predictions drawn, as the original, from the labels of the last task trained (--own-labels:
from the tested task's own)."""
import numpy as np
import torch

from approaches import random


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
