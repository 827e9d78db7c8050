"""metrics.py: each continual-learning metric against values computed by hand (in the comments), on single matrices,
on (..., T, T) stacks, and where it is undefined (one task, one seed)."""
import math

import numpy as np
import pytest

import metrics
from fixtures import HAT, HAT_CURVE, HAT_RHO, JOINT, RANDOM, T_975_4DOF  # a 3-task experiment, rho by hand


# A run whose old tasks improve later (positive backward transfer), peaking before the end on task 0
GAIN = [[0.5, 0, 0], [0.6, 0.7, 0], [0.8, 0.9, 0.4]]
# rho against the same references:
#   [0,0] (0.5 - 0.5) / 0.4 - 1 = -1
#   [1,0] (0.6 - 0.5) / 0.4 - 1 = -0.75     [1,1] (0.7 - 0.2) / 0.5 - 1 = 0
#   [2,0] (0.8 - 0.5) / 0.3 - 1 = 0     [2,1] (0.9 - 0.2) / 0.4 - 1 = 0.75     [2,2] (0.4 - 0.25) / 0.5 - 1 = -0.7
GAIN_RHO = [[-1, np.nan, np.nan], [-0.75, 0, np.nan], [0, 0.75, -0.7]]


def test_forgetting_ratio_by_hand():
    rho = metrics.forgetting_ratio(np.array(HAT), np.array(RANDOM), np.array(JOINT))
    np.testing.assert_allclose(rho, HAT_RHO, equal_nan=True)
    np.testing.assert_allclose(metrics.average_seen(rho), HAT_CURVE)
    # random's off-diagonal entries play no part: only its diagonal is broadcast over the rows
    other = np.array(RANDOM) + np.tril(np.full((3, 3), 0.05), -1)
    np.testing.assert_array_equal(metrics.forgetting_ratio(np.array(HAT), other, np.array(JOINT)), rho)
    np.testing.assert_allclose(metrics.forgetting_ratio(np.array(GAIN), np.array(RANDOM), np.array(JOINT)), GAIN_RHO,
                               equal_nan=True)


def test_forgetting_ratio_is_nan_above_the_diagonal_and_not_computed_there():
    # Joint's untested entries equal to random's diagonal (0.2 at [0, 1], 0.25 at [0, 2] and [1, 2]) would divide
    # by zero if the ratio were computed above the diagonal; any value there is left out
    joint = np.array(JOINT) + np.triu([[0, 0.2, 0.25], [0, 0, 0.25], [0, 0, 0]], 1)
    acc = np.array(HAT) + np.triu(np.full((3, 3), 0.3), 1)
    with np.errstate(all='raise'):
        rho = metrics.forgetting_ratio(acc, np.array(RANDOM), joint)
    assert np.isnan(rho[np.triu_indices(3, 1)]).all()
    np.testing.assert_allclose(rho, HAT_RHO, equal_nan=True)


def test_forgetting_ratio_of_stacks():
    runs = np.array([HAT, GAIN])  # (seeds, T, T)
    # one pair of references for every seed: broadcast over the leading axis
    np.testing.assert_allclose(metrics.forgetting_ratio(runs, np.array(RANDOM), np.array(JOINT)),
                               [HAT_RHO, GAIN_RHO], equal_nan=True)
    # references per seed: seed 1's random diagonal (0.5, 0.2, 0.25) -> (0.1, 0.2, 0.25) changes its column 0 only:
    #   [0,0] (0.5 - 0.1) / (0.9 - 0.1) - 1 = -0.5   [1,0] (0.6 - 0.1) / (0.9 - 0.1) - 1 = -0.375
    #   [2,0] (0.8 - 0.1) / (0.8 - 0.1) - 1 = 0
    # and seed 0's references are unchanged
    randoms = np.array([RANDOM, RANDOM])
    randoms[1, 0, 0] = 0.1
    rho = metrics.forgetting_ratio(runs, randoms, np.array([JOINT, JOINT]))
    np.testing.assert_allclose(rho[0], HAT_RHO, equal_nan=True)
    np.testing.assert_allclose(rho[1, :, 0], [-0.5, -0.375, 0], atol=1e-12)
    np.testing.assert_allclose(rho[1, :, 1:], np.array(GAIN_RHO)[:, 1:], equal_nan=True)
    # (2, 2, T, T): the same per matrix
    deeper = np.array([[HAT, GAIN], [GAIN, HAT]])
    np.testing.assert_allclose(metrics.forgetting_ratio(deeper, np.array(RANDOM), np.array(JOINT)),
                               [[HAT_RHO, GAIN_RHO], [GAIN_RHO, HAT_RHO]], equal_nan=True)


def test_accuracy_bwt_and_forgetting_by_hand():
    acc = np.array(HAT)
    # average accuracy: 0.9; (0.95 + 0.7) / 2; (0.6 + 0.45 + 0.5) / 3
    np.testing.assert_allclose(metrics.average_seen(acc), [0.9, 0.825, 1.55 / 3])
    # BWT: ((0.6 - 0.9) + (0.45 - 0.7)) / 2
    assert metrics.backward_transfer(acc) == pytest.approx(-0.275)
    # forgetting: task 0 peaked at 0.95 (after task 1), ends at 0.6; task 1 peaked at 0.7, ends at 0.45
    assert metrics.forgetting_measure(acc) == pytest.approx(((0.95 - 0.6) + (0.7 - 0.45)) / 2)
    assert math.isnan(metrics.backward_transfer(np.ones((1, 1))))
    assert math.isnan(metrics.forgetting_measure(np.ones((1, 1))))


def test_bwt_and_forgetting_when_old_tasks_improve():
    acc = np.array(GAIN)
    # average accuracy: 0.5; (0.6 + 0.7) / 2; (0.8 + 0.9 + 0.4) / 3
    np.testing.assert_allclose(metrics.average_seen(acc), [0.5, 0.65, 0.7])
    # BWT against the diagonal: ((0.8 - 0.5) + (0.9 - 0.7)) / 2 = 0.25
    assert metrics.backward_transfer(acc) == pytest.approx(0.25)
    # forgetting against the best before the last task: task 0 max(0.5, 0.6) - 0.8 = -0.2 (the last row's 0.8 is not
    # a candidate, else it would be 0); task 1 max(0.7) - 0.9 = -0.2; mean -0.2, not -BWT
    assert metrics.forgetting_measure(acc) == pytest.approx(-0.2)
    # two tasks: BWT 0.6 - 0.8 = -0.2, forgetting 0.8 - 0.6 = 0.2
    two = np.array([[0.8, 0], [0.6, 0.9]])
    assert metrics.backward_transfer(two) == pytest.approx(-0.2)
    assert metrics.forgetting_measure(two) == pytest.approx(0.2)


def test_metrics_of_stacks():
    runs = np.array([HAT, GAIN])  # (seeds, T, T): one value per seed
    np.testing.assert_allclose(metrics.average_seen(runs), [[0.9, 0.825, 1.55 / 3], [0.5, 0.65, 0.7]])
    np.testing.assert_allclose(metrics.backward_transfer(runs), [-0.275, 0.25])
    np.testing.assert_allclose(metrics.forgetting_measure(runs), [0.3, -0.2])
    deeper = np.array([[HAT, GAIN], [GAIN, GAIN]])  # (2, 2, T, T)
    np.testing.assert_allclose(metrics.backward_transfer(deeper), [[-0.275, 0.25], [0.25, 0.25]])
    np.testing.assert_allclose(metrics.forgetting_measure(deeper), [[0.3, -0.2], [-0.2, -0.2]])
    assert metrics.average_seen(deeper).shape == (2, 2, 3)
    # one task: average accuracy is the single entry; BWT and forgetting undefined, one NaN per matrix
    single = np.full((4, 1, 1), 0.7)
    np.testing.assert_allclose(metrics.average_seen(single), np.full((4, 1), 0.7))
    for metric in (metrics.backward_transfer, metrics.forgetting_measure):
        result = metric(single)
        assert result.shape == (4,) and np.isnan(result).all()


def test_confidence_interval_is_the_originals():
    values = np.array([1.0, 2, 3, 4, 5])
    # std with ddof=0 is sqrt(2); half-width t * sqrt(2) / sqrt(5) = 2.77644510519779 * 0.632455532 = 1.7559781
    assert metrics.confidence_interval(values) == pytest.approx(T_975_4DOF * math.sqrt(2 / 5), rel=1e-12)
    assert metrics.confidence_interval(values) == pytest.approx(1.7559781, abs=1e-7)
    assert math.isnan(metrics.confidence_interval(np.array([3.0])))
    # the textbook interval (ddof=1, std sqrt(2.5)) is sqrt(5/4) wider
    textbook = T_975_4DOF * np.std(values, ddof=1) / math.sqrt(5)
    assert textbook / metrics.confidence_interval(values) == pytest.approx(math.sqrt(5 / 4), rel=1e-12)


def test_confidence_interval_over_an_axis():
    # columns: 1..5 (half-width 1.7559781, as above) and a constant (0)
    values = np.array([[1.0, 7], [2, 7], [3, 7], [4, 7], [5, 7]])
    np.testing.assert_allclose(metrics.confidence_interval(values), [1.7559781, 0], atol=1e-7)
    np.testing.assert_allclose(metrics.confidence_interval(values.T, axis=1), [1.7559781, 0], atol=1e-7)
    # two seeds: t(0.975, 1) = tan(0.475 pi) = 12.7062047 (the Cauchy quantile); 0 and 1 have std 0.5 (ddof=0), so
    # 12.7062047 * 0.5 / sqrt(2) = 4.4923218
    half = metrics.confidence_interval(np.array([0.0, 1.0]))
    assert half == pytest.approx(math.tan(0.475 * math.pi) * 0.5 / math.sqrt(2), rel=1e-12)
    assert half == pytest.approx(4.4923218, abs=1e-7)
    # one seed: undefined for every column
    assert np.isnan(metrics.confidence_interval(np.array([[0.5, 0.6, 0.7]]))).all()
