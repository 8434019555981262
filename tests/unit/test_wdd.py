"""WDD and WDQ (issue 16) against DOMAIN.md's example, Wheeler & Ratcliffe 2018's published
figures (as the R package ptools' tests reproduce them) and hand calculations."""

from __future__ import annotations

import math

import pytest

from placeharm.analysis.wdd import Counts, two_sided_p, wdd, wdq
from placeharm.errors import DataError


def test_domain_example_no_buffer() -> None:
    # DOMAIN.md: T 80->20, C 100->50 gives WDD = -10, SE = sqrt(250): not significant
    r = wdd(Counts(80, 20), Counts(100, 50))
    assert r.wdd == -10
    assert r.variance == 250
    assert r.se == pytest.approx(math.sqrt(250))
    # by hand: z = -10 / 15.8114 = -0.63246; p = 2 (1 - Phi(0.63246)) = 2 * 0.26355 = 0.5271
    assert r.z == pytest.approx(-0.632456, abs=1e-6)
    assert r.p == pytest.approx(0.5271, abs=1e-4)
    assert r.displacement is None


def test_wheeler_ratcliffe_2018_published_example() -> None:
    # the paper's example (ptools tests/testthat/test-wdd.R "Est & Variance Paper"):
    # control 308->318, treated 207->110, displacement control 150->140, displacement
    # treated 178->157: WDD -118, SE sqrt(1568), z -2.98, 95% interval -196 to -40
    r = wdd(Counts(207, 110), Counts(308, 318), Counts(178, 157), Counts(150, 140))
    assert r.wdd == -118
    assert r.local == -107
    assert r.displacement == -11
    assert r.se == pytest.approx(math.sqrt(1568))
    assert r.z is not None and round(r.z, 2) == -2.98
    assert r.ci_low is not None and round(r.ci_low) == -196
    assert r.ci_high is not None and round(r.ci_high) == -40
    assert r.p == pytest.approx(two_sided_p(-118 / math.sqrt(1568)))
    assert r.p is not None and r.p < 0.01


def test_ptools_unit_examples() -> None:
    # ptools test-wdd.R: local -10, displacement -10, total -20
    assert wdd(Counts(20, 10), Counts(20, 20)).wdd == -10
    r = wdd(Counts(20, 20), Counts(20, 20), Counts(20, 10), Counts(20, 20))
    assert r.displacement == -10 and r.wdd == -10
    assert wdd(Counts(20, 10), Counts(20, 20), Counts(20, 10), Counts(20, 20)).wdd == -20


def test_time_weights_wheeler_2021() -> None:
    # ptools "Time Weights": control 100->50, treated 80->20, the before period twice as
    # long: WDD -20, SE sqrt(115) (before counts halved, their variance quartered)
    r = wdd(Counts(80, 20), Counts(100, 50), before_months=2, after_months=1)
    assert r.wdd == pytest.approx(-20)
    assert r.se == pytest.approx(math.sqrt(115))
    # equal lengths change nothing
    assert wdd(Counts(80, 20), Counts(100, 50), before_months=6, after_months=6).wdd == -10


def test_no_events_has_no_test() -> None:
    r = wdd(Counts(0, 0), Counts(0, 0))
    assert r.wdd == 0 and r.z is None and r.p is None


def test_bad_input_refused() -> None:
    with pytest.raises(DataError):
        Counts(-1, 3)
    with pytest.raises(DataError):
        wdd(Counts(1, 1), Counts(1, 1), buffer=Counts(1, 1))
    with pytest.raises(DataError):
        wdd(Counts(1, 1), Counts(1, 1), before_months=0, after_months=3)


def test_wdq_hand_calculations() -> None:
    # R 100->60, C 200->180: success = 60/180 - 100/200 = -1/6
    # D 50->30: buffer = 30/180 - 50/200 = -1/12, WDQ = 0.5 (diffusion of benefit);
    # net = (100 * 0.9 - 60) + (50 * 0.9 - 30) = 30 + 15 = 45
    r = wdq(Counts(100, 60), Counts(200, 180), Counts(50, 30))
    assert r.success == pytest.approx(-1 / 6)
    assert r.wdq == pytest.approx(0.5)
    assert r.total_net_effect == pytest.approx(45)
    assert r.reading == "diffusion of benefit to the buffer"
    # D 50->60: buffer = 60/180 - 0.25 = 1/12, WDQ = -0.5 (some displacement); net = 30 - 15
    r = wdq(Counts(100, 60), Counts(200, 180), Counts(50, 60))
    assert r.wdq == pytest.approx(-0.5)
    assert r.total_net_effect == pytest.approx(15)
    assert "displacement" in r.reading
    # D 50->90: buffer = 0.5 - 0.25 = 0.25, WDQ = -1.5: displacement beyond the effect
    r = wdq(Counts(100, 60), Counts(200, 180), Counts(50, 90))
    assert r.wdq == pytest.approx(-1.5)
    assert r.reading == "displacement to the buffer greater than the direct effect"


def test_wdq_refuses_what_it_cannot_read() -> None:
    r = wdq(Counts(10, 5), Counts(0, 4), Counts(3, 3))
    assert r.wdq is None and r.reason is not None and "before" in r.reason
    # the target rose against its control: no success to weigh
    r = wdq(Counts(10, 20), Counts(10, 10), Counts(3, 3))
    assert r.wdq is None and r.success == pytest.approx(1.0)


def test_difference_matches_wdd_on_counts_and_ptools_area_weights() -> None:
    from placeharm.analysis.wdd import Total, difference

    # on counts, the same as the WDD without a buffer
    r = difference(
        (Total.of_count(80), Total.of_count(20)), (Total.of_count(100), Total.of_count(50))
    )
    assert (r.wdd, r.variance) == (-10, 250)
    # time weight 1/2 and the control's mean over 2 units: (20 - 40) - (50 - 50) / 2 = -20;
    # variance 20 + 80/4 + (50 + 100/4) / 4 = 58.75
    r = difference(
        (Total.of_count(80), Total.of_count(20)),
        (Total.of_count(100), Total.of_count(50)),
        before_scale=0.5,
        control_scale=0.5,
    )
    assert r.wdd == pytest.approx(-20) and r.variance == pytest.approx(58.75)
    # harm: a sum of weights has variance sum(w^2)
    h = Total.of_weights([3.0, 4.0])
    assert (h.value, h.variance) == (7.0, 25.0)
