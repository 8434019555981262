"""Benjamini-Hochberg, the exact rate test and the alert model against hand values and
scipy (issue 16)."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest
from scipy import stats

from placeharm.analysis import alerts
from placeharm.analysis.prominence import grade_weight
from placeharm.analysis.stats import bh_adjust, bh_reject, poisson_upper_p, rate_rise_p

# Benjamini & Hochberg (1995), section 4: fifteen p-values from a clinical trial; at q = 0.05
# the procedure rejects the four smallest (Bonferroni rejects three).
BH_1995 = [
    0.0001, 0.0004, 0.0019, 0.0095, 0.0201, 0.0278, 0.0298, 0.0344,
    0.0459, 0.3240, 0.4262, 0.5719, 0.6528, 0.7590, 1.0000,
]  # fmt: skip


def test_bh_reproduces_the_published_example():
    rejected = bh_reject(BH_1995, 0.05)
    assert rejected.tolist() == [True] * 4 + [False] * 11


def test_bh_adjusted_by_hand():
    # sorted 0.005, 0.01, 0.03, 0.04, 0.2 times m/rank: 0.025, 0.025, 0.05, 0.05, 0.2;
    # already monotone, so back in input order:
    p = [0.01, 0.04, 0.03, 0.2, 0.005]
    assert bh_adjust(p).tolist() == pytest.approx([0.025, 0.05, 0.05, 0.2, 0.025], abs=1e-12)
    # a step-up case: 0.04 at rank 2 of 2 (0.04) lowers 0.03 at rank 1 (0.06) to 0.04
    assert bh_adjust([0.03, 0.04]).tolist() == pytest.approx([0.04, 0.04], abs=1e-12)


def test_bh_leaves_untested_out_and_matches_scipy():
    p = [0.02, np.nan, 0.5, 0.001]
    q = bh_adjust(p)
    assert np.isnan(q[1])
    assert q[[0, 2, 3]].tolist() == pytest.approx(
        stats.false_discovery_control([0.02, 0.5, 0.001]).tolist(), abs=1e-12
    )
    rng = np.random.default_rng(16)
    for size in (1, 7, 500):
        values = rng.uniform(0, 1, size) ** 3
        assert bh_adjust(values) == pytest.approx(stats.false_discovery_control(values), abs=1e-12)


def _binomial_upper(k: int, n: int, share: float) -> float:
    return sum(math.comb(n, j) * share**j * (1 - share) ** (n - j) for j in range(k, n + 1))


def test_rate_test_by_hand_and_against_binomtest():
    # 3 events in the window, none before, equal exposures: (1/2)^3
    assert rate_rise_p(3, 0, 1, 1) == pytest.approx(0.125, abs=1e-12)
    # no events at all: nothing to test, p = 1
    assert rate_rise_p(0, 0, 3, 12) == 1.0
    # 10 in 3 months against 12 in 12: Binomial(22, 3/15) upper tail from 10, by hand
    hand = _binomial_upper(10, 22, 0.2)
    assert rate_rise_p(10, 12, 3, 12) == pytest.approx(hand, rel=1e-10)
    assert hand == pytest.approx(0.006140567682, rel=1e-9)
    got = rate_rise_p([10, 4, 0, 7], [12, 30, 5, 1], [3, 3, 2, 1.3], [12, 12, 6, 11.7])
    for value, (x, y, a, b) in zip(
        got, [(10, 12, 3, 12), (4, 30, 3, 12), (0, 5, 2, 6), (7, 1, 1.3, 11.7)], strict=True
    ):
        want = stats.binomtest(x, x + y, a / (a + b), alternative="greater").pvalue
        assert value == pytest.approx(want, rel=1e-10)
    assert np.isnan(rate_rise_p(1, 1, 0, 3))  # no exposure: not tested


def test_poisson_upper_tail_by_hand():
    # "14 in March against 5.2 expected": P(X >= 14), X ~ Poisson(5.2)
    hand = 1 - sum(math.exp(-5.2) * 5.2**k / math.factorial(k) for k in range(14))
    assert poisson_upper_p(14, 5.2) == pytest.approx(hand, rel=1e-9)
    assert hand == pytest.approx(0.0010, abs=0.0002)


def test_grading_weights():
    assert grade_weight("3x5x2", "1", "A") == 1.0
    assert grade_weight(None, "2", "B") == pytest.approx(0.48)  # the scheme defaults to 3x5x2
    assert grade_weight("3x5x2", "1", "E") == 0.0  # suspected false: no weight
    assert grade_weight("5x5x5", "A", "1") == 1.0
    assert grade_weight("3x5x2", "9", "A") == 0.0  # an unknown grade counts nothing


MONTHS = [dt.date(2020 + m // 12, m % 12 + 1, 1) for m in range(30)]


def test_seasonal_factor_by_hand():
    # force totals 100 a month, 150 in every March: March 2022 (position 26) has March 2021
    # (14) and March 2020 (2) before it; the 12 months centred on each hold eleven 100s and
    # one 150 (March 2020's window, positions 0-7, holds 7 100s and the 150: too few, <9)
    totals = np.full(30, 100.0)
    totals[[2, 14, 26]] = 150.0
    factor = alerts.seasonal_factor(totals, 26)
    assert factor == pytest.approx(150 / ((11 * 100 + 150) / 12))
    assert alerts.seasonal_factor(totals, 5) == 1.0  # no earlier year: none


def test_alert_month_by_hand_and_gaps_are_gaps():
    counts = np.array([[2.0, 3, np.nan, 1, 2, 2, 10], [5, 5, np.nan, 5, 5, 5, 5]])
    tested = alerts.test_month(alerts.Series(counts, MONTHS[:7]), 6, 12, seasonal=False)
    # area 0: 10 against 2+3+1+2+2 = 10 in 5 held months (the gap left out, not a zero):
    # expected 10 * 1/5 = 2; p = P(Bin(20, 1/6) >= 10)
    assert tested.baseline_held == 5
    assert tested.expected.tolist() == pytest.approx([2.0, 5.0])
    assert tested.p[0] == pytest.approx(_binomial_upper(10, 20, 1 / 6), rel=1e-10)
    assert tested.p[1] == pytest.approx(_binomial_upper(5, 30, 1 / 6), rel=1e-10)
    # the alert month itself a gap: nothing tested
    gap = alerts.test_month(alerts.Series(counts, MONTHS[:7]), 2, 12)
    assert np.isnan(gap.p).all()
