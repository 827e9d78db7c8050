"""metrics.py: each continual-learning metric against values computed by hand (in the comments), on single matrices,
on (..., T, T) stacks, and where it is undefined (one task, one seed)."""
import math
import warnings

import numpy as np
import pytest

from analysis import metrics
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


def test_one_seeds_undefined_interval_as_the_tables_show_it():
    """One seed: the interval is NaN; on screen the value stands alone, in the files it stays 'n/a' beside it."""
    from analysis import tables
    half = float(metrics.confidence_interval(np.array([51.666667])))
    assert math.isnan(half)
    assert tables.metric_cells('acc_final', (51.666667, half), csv=False, screen=True) == ['51.67']
    assert tables.metric_cells('acc_final', (51.666667, half), csv=False) == ['51.67 ± n/a']  # Markdown, as before
    assert tables.metric_cells('acc_final', (51.666667, half), csv=True) == ['51.666667', 'n/a']
    assert tables.metric_cells('rho', (math.nan, math.nan), csv=False, screen=True) == ['n/a']  # undefined: no value
    assert tables.metric_cells('rho', (-0.5, 0.01), csv=False, screen=True) == ['-0.500 ± 0.010']


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


def test_holm_by_hand():
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1: 0.02, 0.03, 0.06, 0.04; the running maximum makes the last 0.06
    np.testing.assert_allclose(metrics.holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    # 0.4 * 2 = 0.8, then 0.5 * 1 = 0.5 is raised to 0.8; 0.6 * 2 is capped at 1, and 0.7 raised to it
    np.testing.assert_allclose(metrics.holm([0.5, 0.4]), [0.8, 0.8])
    assert metrics.holm([0.6, 0.7]) == [1.0, 1.0]
    # ties: 0.01 * 3, 0.01 * 2 -> 0.03 (running maximum), 0.02 * 1 -> 0.03
    np.testing.assert_allclose(metrics.holm([0.01, 0.02, 0.01]), [0.03, 0.03, 0.03])
    # NaN (not tested) is outside the family: two tested, 0.01 * 2 and 0.04 * 1
    adjusted = metrics.holm([math.nan, 0.04, 0.01])
    assert math.isnan(adjusted[0]) and adjusted[1:] == pytest.approx([0.04, 0.02])
    assert metrics.holm([0.2]) == [0.2] and metrics.holm([]) == []


def test_paired_tests_by_hand():
    # differences 1, 2, 3: mean 2, sd 1 (ddof=1), t = 2 / (1 / sqrt(3)) = 2 sqrt(3) on 2 degrees of freedom, where the
    # two-sided p is 1 - t / sqrt(2 + t^2) = 1 - sqrt(12 / 14); Wilcoxon: all 3 differences positive, exactly
    # 2 / 2^3 = 0.25
    result = metrics.paired_tests(np.array([2.0, 3, 4]), np.array([1.0, 1, 1]))
    assert result['pairs'] == 3
    assert result['ttest'] == pytest.approx(1 - math.sqrt(12 / 14), rel=1e-12)
    assert result['wilcoxon'] == pytest.approx(0.25, rel=1e-12)
    # differences -1.5 k, k = 1..5: t = -4.5 / (1.5 sqrt(2.5) / sqrt(5)) = -3 sqrt(2) on 4 degrees of freedom, where
    # with x = |t| / sqrt(t^2 + 4) = 3 / sqrt(11) the two-sided p is 1 - x (3 - x^2) / 2 = 1 - 12 x / 11
    result = metrics.paired_tests(np.zeros(5), 1.5 * np.arange(1, 6))
    assert result['ttest'] == pytest.approx(1 - 12 / 11 * 3 / math.sqrt(11), rel=1e-12)
    assert result['wilcoxon'] == pytest.approx(2 / 2 ** 5, rel=1e-12)


def test_paired_tests_against_scipy():
    from scipy import stats
    rng = np.random.RandomState(0)
    for n in (3, 5, 10):
        a, b = rng.rand(n), rng.rand(n)
        result = metrics.paired_tests(a, b)
        # the differences rounded to 9 decimals move p by about 1e-9 at most
        assert result == {'pairs': n, 'ttest': pytest.approx(stats.ttest_rel(a, b).pvalue, rel=1e-6),
                          'wilcoxon': pytest.approx(stats.wilcoxon(a, b).pvalue, rel=1e-6)}
        assert metrics.paired_tests(b, a) == result  # two-sided: symmetric
        rounded = np.round(a - b, 9)
        assert result['ttest'] == stats.ttest_rel(rounded, np.zeros(n)).pvalue
        assert result['wilcoxon'] == stats.wilcoxon(rounded).pvalue


def test_paired_tests_ignore_float_noise():
    # Differences 3, -1, 2, -2, -2 with three tied at |2|; float noise (as from averaging matrices read from files)
    # would untie them and change Wilcoxon's p (scipy gives 0.875 for the noisy ones)
    from scipy import stats
    exact = np.array([3.0, -1, 2, -2, -2])
    noisy = exact + np.array([0, 0, 1e-14, 0, -1e-14])
    assert stats.wilcoxon(noisy).pvalue != stats.wilcoxon(exact).pvalue
    assert metrics.paired_tests(noisy, np.zeros(5)) == metrics.paired_tests(exact, np.zeros(5))
    assert metrics.paired_tests(noisy, np.zeros(5))['wilcoxon'] == stats.wilcoxon(exact).pvalue
    # constant differences: the t statistic is infinite, p = 0, without a warning; Wilcoxon: 2 / 2^5
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        result = metrics.paired_tests(np.full(5, 2.5) + noisy - exact, np.zeros(5))
    assert result == {'pairs': 5, 'ttest': 0.0, 'wilcoxon': 2 / 2 ** 5}


def test_paired_tests_where_undefined():
    # identical samples: no difference to test (Wilcoxon has no nonzero difference to rank), p = 1; also where they
    # differ by float noise only
    same = np.array([0.5, 0.6, 0.7, 0.8])
    assert metrics.paired_tests(same, same.copy()) == {'pairs': 4, 'ttest': 1.0, 'wilcoxon': 1.0}
    assert metrics.paired_tests(same, same + 1e-15) == {'pairs': 4, 'ttest': 1.0, 'wilcoxon': 1.0}
    # fewer than 3 pairs: not tested
    result = metrics.paired_tests(np.array([0.5, 0.6]), np.array([0.4, 0.3]))
    assert result['pairs'] == 2 and math.isnan(result['ttest']) and math.isnan(result['wilcoxon'])
    assert metrics.MIN_PAIRS == 3
