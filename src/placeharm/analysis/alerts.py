"""Emerging-risk alerts: a month's count in an area against its own history and season.

Model (stated on every page that shows an alert, docs/analysis.md "Emerging-risk alerts"):
each area's count in a month is Poisson with rate r_area x s_month, where s_month is the
force-wide seasonal factor of that calendar month and r_area is constant over the baseline
(the area's months just before the alert month). Given the alert month's count x and the
baseline's total y, under "no rise" x is Binomial(x + y, s / (s + S)), S the sum of the
baseline months' factors; the one-sided p-value is P(X >= x) (`stats.rate_rise_p`), and
expected = y x s / S. Months without data are gaps: left out of the baseline, never zero.

Seasonal factor of month t: the mean, over the years before t with data, of the force-wide
total in the same calendar month divided by the mean monthly force-wide total of the twelve
months centred on it (at least nine held); 1 where no earlier year allows it. Only earlier
years are used, so an alert month never explains itself.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from placeharm.analysis.stats import rate_rise_p

FloatArray = npt.NDArray[np.float64]
MIN_BASELINE = 3  # held baseline months a test needs (fewer: not tested)


@dataclass(frozen=True, slots=True)
class Series:
    """One measure: counts per area (rows) and month (columns, consecutive), NaN = gap."""

    counts: FloatArray
    months: list[dt.date]
    scale: float = 1.0  # what one unit of `counts` stands for (SOC harm: days per record)


@dataclass(frozen=True, slots=True)
class Tested:
    observed: FloatArray
    expected: FloatArray
    p: FloatArray  # NaN: not tested (alert month a gap, or too short a baseline)
    season: float  # the alert month's seasonal factor
    baseline_held: int


def seasonal_factor(totals: FloatArray, t: int) -> float:
    """The seasonal factor of month position `t` from the force-wide `totals` (NaN = gap):
    see the module docstring."""
    ratios = []
    k = 1
    while t - 12 * k >= 0:
        u = t - 12 * k
        if not np.isnan(totals[u]):
            lo, hi = max(0, u - 6), min(len(totals), u + 6)
            window = totals[lo:hi]
            held = window[~np.isnan(window)]
            if held.size >= 9 and held.mean() > 0:
                ratios.append(totals[u] / held.mean())
        k += 1
    return float(np.mean(ratios)) if ratios else 1.0


def test_month(series: Series, at: int, baseline: int, seasonal: bool = True) -> Tested:
    """Test every area's count in month position `at` against the `baseline` months before
    it (see the module docstring).

    Parameters
    ----------
    series : counts (areas x months, NaN for a gap month) and the months.
    at : position of the alert month in `series.months`.
    baseline : months before it to compare with (gaps among them are left out).
    seasonal : apply the force-wide seasonal factors (else all 1).

    Returns
    -------
    Observed, expected and the one-sided p-value per area.
    """
    counts = series.counts
    n = counts.shape[0]
    totals = np.where(np.all(np.isnan(counts), axis=0), np.nan, np.nansum(counts, axis=0))
    lo = max(0, at - baseline)
    base_pos = [j for j in range(lo, at) if not np.isnan(totals[j])]
    observed = counts[:, at] if at < counts.shape[1] else np.full(n, np.nan)
    if np.isnan(totals[at]) or len(base_pos) < MIN_BASELINE:
        nan = np.full(n, np.nan)
        return Tested(observed, nan, nan.copy(), 1.0, len(base_pos))

    def factor(t: int) -> float:
        return seasonal_factor(totals, t) if seasonal else 1.0

    s = factor(at)
    s_base = float(sum(factor(j) for j in base_pos))
    y = counts[:, base_pos].sum(axis=1)
    expected = y * s / s_base
    p = rate_rise_p(np.round(observed), np.round(y), s, s_base)
    return Tested(observed, expected, p, s, len(base_pos))
