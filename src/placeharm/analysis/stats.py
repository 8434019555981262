"""Multiple testing and exact tests of Poisson rates (issue 16).

References
----------
Benjamini, Y. and Hochberg, Y. (1995). Controlling the false discovery rate: a practical and
powerful approach to multiple testing. JRSS B 57(1), 289-300.
Przyborowski, J. and Wilenski, H. (1940). Homogeneity of results in testing samples from
Poisson series. Biometrika 31, 313-323 (the conditional binomial test of two Poisson rates).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import stats

FloatArray = npt.NDArray[np.float64]


def bh_adjust(p_values: npt.ArrayLike) -> FloatArray:
    """Benjamini-Hochberg adjusted p-values (q-values): for the i-th smallest of m p-values,
    min over j >= i of p_(j) * m / j, capped at 1. A test is significant at false discovery
    rate `q` when its adjusted p-value is at most `q` (Benjamini & Hochberg 1995, step-up).

    Parameters
    ----------
    p_values : the p-values of every test in the family (NaN: not tested, left NaN and not
        counted in m).

    Returns
    -------
    The adjusted p-values, in the input order.
    """
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    tested = ~np.isnan(p)
    values = p[tested]
    m = values.size
    if m == 0:
        return out
    order = np.argsort(values, kind="stable")
    ranked = values[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum.accumulate(ranked[::-1])[::-1]
    back = np.empty(m)
    back[order] = np.minimum(adjusted, 1.0)
    out[tested] = back
    return out


def bh_reject(p_values: npt.ArrayLike, fdr: float) -> npt.NDArray[np.bool_]:
    """Which tests the Benjamini-Hochberg procedure rejects at false discovery rate `fdr`."""
    q = bh_adjust(p_values)
    return np.asarray(np.nan_to_num(q, nan=2.0) <= fdr)


def rate_rise_p(
    recent: npt.ArrayLike,
    baseline: npt.ArrayLike,
    recent_exposure: npt.ArrayLike,
    baseline_exposure: npt.ArrayLike,
) -> FloatArray:
    """One-sided exact p-value that the recent Poisson rate exceeds the baseline rate.

    Under equal rates, given n = recent + baseline events, the recent count is
    Binomial(n, e_r / (e_r + e_b)) with e the exposures (months held, or months times a
    seasonal factor); p = P(X >= recent), as `scipy.stats.binomtest(recent, n, e_r / (e_r +
    e_b), alternative="greater")`. The test is conditional, so it needs no estimate of the
    rate and holds its size for small counts (it is conservative: discrete).

    Parameters
    ----------
    recent, baseline : event counts (integers).
    recent_exposure, baseline_exposure : positive exposures.

    Returns
    -------
    p-values; 1.0 where no event happened in either period (nothing to test), NaN where an
    exposure is not positive.
    """
    x = np.asarray(recent, dtype=np.float64)
    y = np.asarray(baseline, dtype=np.float64)
    e_r = np.asarray(recent_exposure, dtype=np.float64)
    e_b = np.asarray(baseline_exposure, dtype=np.float64)
    x, y, e_r, e_b = np.broadcast_arrays(x, y, e_r, e_b)
    ok = (e_r > 0) & (e_b > 0)
    share = np.where(ok, e_r / np.where(ok, e_r + e_b, 1.0), 0.5)
    p = np.asarray(stats.binom.sf(x - 1, x + y, share), dtype=np.float64)
    p = np.where(x + y == 0, 1.0, p)
    return np.where(ok, np.clip(p, 0.0, 1.0), np.nan)


def poisson_upper_p(observed: npt.ArrayLike, expected: npt.ArrayLike) -> FloatArray:
    """P(X >= observed) for X ~ Poisson(expected): the upper tail, for an expected count
    taken as known."""
    x = np.asarray(observed, dtype=np.float64)
    mu = np.asarray(expected, dtype=np.float64)
    return np.asarray(stats.poisson.sf(x - 1, mu), dtype=np.float64)
