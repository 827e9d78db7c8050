"""Continual-learning metrics of accuracy matrices, as pure functions: acc[t, u] is the accuracy on task u after
training task t, filled for u <= t (the tasks tested so far; run.py leaves zeros above the diagonal), and each function
also takes a (..., T, T) stack of such matrices, e.g. one per seed. plot_results.py's figures and tables.py's table
compute their numbers with these, and compare approaches with the paired tests and Holm's correction below.
"""
import math
import warnings
from collections.abc import Sequence

import numpy as np
from scipy.special import stdtrit  # the Student-t quantile behind scipy.stats.t.ppf, without importing scipy.stats

# Fewer pairs are not tested: a t-test on 2 has one degree of freedom, and Wilcoxon's smallest two-sided p on 3 is
# already 0.25, so below 3 a test says nothing
MIN_PAIRS = 3


def average_seen(matrix: np.ndarray) -> np.ndarray:
    """After k tasks, the mean over the tasks seen so far (u < k) of row k-1; works on (..., T, T) stacks."""
    ntasks = matrix.shape[-1]
    return np.stack([matrix[..., k, :k + 1].mean(-1) for k in range(ntasks)], axis=-1)


def forgetting_ratio(acc: np.ndarray, acc_random: np.ndarray, acc_joint: np.ndarray) -> np.ndarray:
    """The paper's forgetting ratio rho = (A - A_random) / (A_joint - A_random) - 1 entrywise, as the original
    computes it: A_random is random's diagonal broadcast over rows, A_joint joint's whole matrix; NaN above the
    diagonal (untested). Works on (..., T, T) stacks."""
    reference = np.broadcast_to(np.diagonal(acc_random, axis1=-2, axis2=-1)[..., None, :], acc.shape)
    lower = np.broadcast_to(np.tril(np.ones(acc.shape[-2:], dtype=bool)), acc.shape)
    span = acc_joint - reference
    rho = np.full(acc.shape, np.nan)
    rho[lower] = (acc[lower] - reference[lower]) / span[lower] - 1
    return rho


def backward_transfer(acc: np.ndarray) -> np.ndarray:
    """BWT (Lopez-Paz & Ranzato, NeurIPS 2017): mean over u < T-1 of acc[T-1, u] - acc[u, u]; NaN for one task."""
    ntasks = acc.shape[-1]
    if ntasks < 2:
        return np.full(acc.shape[:-2], np.nan)
    u = np.arange(ntasks - 1)
    return (acc[..., -1, u] - acc[..., u, u]).mean(-1)


def forgetting_measure(acc: np.ndarray) -> np.ndarray:
    """Forgetting (Chaudhry et al., ECCV 2018): mean over u < T-1 of max over l in [u, T-2] of acc[l, u] minus
    acc[T-1, u]; NaN for one task."""
    ntasks = acc.shape[-1]
    if ntasks < 2:
        return np.full(acc.shape[:-2], np.nan)
    drops = [acc[..., u:ntasks - 1, u].max(-1) - acc[..., -1, u] for u in range(ntasks - 1)]
    return np.stack(drops, axis=-1).mean(-1)


def confidence_interval(values: np.ndarray, axis: int = 0) -> np.ndarray:
    """Half-width of the 95% Student-t interval of the mean over `axis`: t(0.975, n-1) * std / sqrt(n); NaN for n=1."""
    n = values.shape[axis]
    # np.std's default ddof=0, as the original (the textbook interval uses ddof=1)
    quantile = stdtrit(n - 1, 0.975) if n > 1 else np.nan
    return quantile * np.std(values, axis=axis) / np.sqrt(n)


def paired_tests(a: np.ndarray, b: np.ndarray) -> dict:
    """Two-sided paired t-test and Wilcoxon signed-rank p-values of a against b, paired by position: {'pairs', 'ttest',
    'wilcoxon'}; NaN below MIN_PAIRS pairs, 1 where no difference (rounded to 9 decimals) is nonzero."""
    # Rounded, far below the 1e-4 of the result files and far above float noise, which would otherwise break the ties
    # Wilcoxon ranks (changing its p) and make constant differences merely nearly constant
    differences = np.round(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64), 9)
    pairs = differences.size
    if pairs < MIN_PAIRS:
        return {'pairs': pairs, 'ttest': math.nan, 'wilcoxon': math.nan}
    if not differences.any():
        # No difference is no evidence of one; scipy's t statistic would be 0/0, and older scipy's Wilcoxon raises
        return {'pairs': pairs, 'ttest': 1.0, 'wilcoxon': 1.0}
    from scipy import stats  # here, not above: it takes seconds to import, and only these tests need it
    with warnings.catch_warnings():
        # Constant differences give t = +-inf and p = 0, rightly, with a warning of lost precision
        warnings.simplefilter('ignore', RuntimeWarning)
        ttest = stats.ttest_rel(differences, np.zeros(pairs)).pvalue
    return {'pairs': pairs, 'ttest': float(ttest), 'wilcoxon': float(stats.wilcoxon(differences).pvalue)}


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the given order; NaN entries (not tested) are left out of the family."""
    tested = sorted((i for i, p in enumerate(pvalues) if math.isfinite(p)), key=lambda i: pvalues[i])
    adjusted, running = [math.nan] * len(pvalues), 0.0
    for rank, i in enumerate(tested):
        # The k-th smallest of m is multiplied by m - k + 1 (k from 1); the running maximum keeps the order of the
        # p-values, as a hypothesis is rejected only if every smaller one is
        running = max(running, min(1.0, (len(tested) - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted
