"""Before/after evaluation of a place-based intervention against a control and a buffer:
the weighted displacement difference (WDD) test and the weighted displacement quotient (WDQ).

References
----------
Bowers, K. J. and Johnson, S. D. (2003). Measuring the geographical displacement and
diffusion of benefit effects of crime prevention activity. Journal of Quantitative
Criminology 19(3), 275-301.
Wheeler, A. P. and Ratcliffe, J. H. (2018). A simple weighted displacement difference test to
evaluate place based crime interventions. Crime Science 7, 11.
Wheeler, A. P. (2021). The WDD test with different pre/post time periods (the time weights
of the R package ptools, `wdd(time_weights=)`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from placeharm.errors import DataError

# two-sided 95% interval of the normal distribution
Z_95 = 1.959963984540054


@dataclass(frozen=True, slots=True)
class Counts:
    """Events in one area before and after an intervention."""

    before: int
    after: int

    def __post_init__(self) -> None:
        for name in ("before", "after"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise DataError(f"a {name} count must be a whole number 0 or more, not {value!r}")


@dataclass(frozen=True, slots=True)
class WddResult:
    """The WDD test's figures; z, p and the interval are None when the variance is 0 (no
    events at all in any area: nothing to test)."""

    wdd: float  # estimated change in events attributable to the intervention (< 0: fewer)
    local: float  # target against its control: dT - dC
    displacement: float | None  # buffer against its control: dD - dCD (None: no buffer)
    variance: float
    se: float
    z: float | None
    p: float | None  # two-sided, normal distribution
    ci_low: float | None  # 95% interval of wdd
    ci_high: float | None

    def as_dict(self) -> dict[str, float | None]:
        return {
            "wdd": self.wdd,
            "local": self.local,
            "displacement": self.displacement,
            "variance": self.variance,
            "se": self.se,
            "z": self.z,
            "p": self.p,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
        }


def two_sided_p(z: float) -> float:
    """P(|Z| >= |z|) for a standard normal Z."""
    return math.erfc(abs(z) / math.sqrt(2.0))


def wdd(
    target: Counts,
    control: Counts,
    buffer: Counts | None = None,
    buffer_control: Counts | None = None,
    before_months: int | None = None,
    after_months: int | None = None,
) -> WddResult:
    """The weighted displacement difference test (Wheeler & Ratcliffe 2018).

    WDD = dT - dC + dD - dCD, d = after - before, for the target T, its control C, the
    buffer (displacement area) D and the buffer's control CD. Each count is taken as Poisson,
    so the variance is the sum of the counts and z = WDD / sqrt(variance); p is two-sided
    from the normal distribution.

    Parameters
    ----------
    target, control : before and after counts of the target and its control area.
    buffer, buffer_control : the same for the buffer and the buffer's control; both or neither.
    before_months, after_months : lengths of the two periods when they differ (months held
        with data): the before counts are then scaled to the after period's length,
        count * after / before, and their variance by the square of that factor (the time
        weights of Wheeler 2021 and ptools). Equal lengths leave the counts as they are.

    Returns
    -------
    WddResult, in events over the after period. WDD < 0 is a fall in the target (and buffer)
    beyond the control's; with the buffer, a rise there (displacement) counts against it.
    """
    if (buffer is None) != (buffer_control is None):
        raise DataError("give the buffer and the buffer's control together, or neither")
    scale = 1.0
    if before_months is not None or after_months is not None:
        if not before_months or not after_months or before_months < 0 or after_months < 0:
            raise DataError("both period lengths must be 1 month or more")
        scale = after_months / before_months

    def change(c: Counts) -> tuple[float, float]:
        return c.after - c.before * scale, c.after + c.before * scale * scale

    d_t, v_t = change(target)
    d_c, v_c = change(control)
    local = d_t - d_c
    variance = v_t + v_c
    displacement = None
    if buffer is not None and buffer_control is not None:
        d_d, v_d = change(buffer)
        d_cd, v_cd = change(buffer_control)
        displacement = d_d - d_cd
        variance += v_d + v_cd
    est = local + (displacement or 0.0)
    se = math.sqrt(variance)
    if variance <= 0:
        return WddResult(est, local, displacement, variance, se, None, None, None, None)
    z = est / se
    return WddResult(
        est,
        local,
        displacement,
        variance,
        se,
        z,
        two_sided_p(z),
        est - Z_95 * se,
        est + Z_95 * se,
    )


@dataclass(frozen=True, slots=True)
class WdqResult:
    """The weighted displacement quotient's figures (Bowers & Johnson 2003). `wdq` is None
    when it cannot be read (`reason` says why)."""

    success: float | None  # Ra/Ca - Rb/Cb: < 0 means the target did better than its control
    buffer_measure: float | None  # Da/Ca - Db/Cb
    wdq: float | None
    total_net_effect: float | None  # events prevented (> 0) or added (< 0), target + buffer
    reading: str
    reason: str | None

    def as_dict(self) -> dict[str, float | str | None]:
        return {
            "success": self.success,
            "buffer_measure": self.buffer_measure,
            "wdq": self.wdq,
            "total_net_effect": self.total_net_effect,
            "reading": self.reading,
            "reason": self.reason,
        }


def wdq(target: Counts, control: Counts, buffer: Counts) -> WdqResult:
    """The weighted displacement quotient (Bowers & Johnson 2003).

    WDQ = (Da/Ca - Db/Cb) / (Ra/Ca - Rb/Cb), with R the target, D the buffer and C the
    control, b before and a after. The denominator (the success measure) must be negative,
    i.e. the target fell relative to its control, for the quotient to be read: then
    WDQ > 1 diffusion of benefit greater than the direct effect, 0 < WDQ <= 1 diffusion of
    benefit, 0 no change in the buffer, -1 <= WDQ < 0 some displacement (less than the direct
    effect), WDQ < -1 displacement greater than the direct effect. Total net effect =
    [Rb(Ca/Cb) - Ra] + [Db(Ca/Cb) - Da], events prevented in target and buffer together.

    Parameters
    ----------
    target, control, buffer : before and after counts; the control must have events in both
        periods (its ratios are divisors).

    Returns
    -------
    WdqResult; `wdq` None with the reason when it cannot be computed or read.
    """
    r_b, r_a, c_b, c_a, d_b, d_a = (
        target.before,
        target.after,
        control.before,
        control.after,
        buffer.before,
        buffer.after,
    )
    if c_b == 0 or c_a == 0:
        return WdqResult(
            None,
            None,
            None,
            None,
            "no control events to weigh",
            "the control has no events in the "
            + ("before" if c_b == 0 else "after")
            + " period, so its ratios cannot be formed",
        )
    success = r_a / c_a - r_b / c_b
    buffer_measure = d_a / c_a - d_b / c_b
    net = (r_b * c_a / c_b - r_a) + (d_b * c_a / c_b - d_a)
    if success >= 0:
        return WdqResult(
            success,
            buffer_measure,
            None,
            net,
            "no fall in the target to weigh",
            "the target did not fall relative to its control (success measure "
            f"{success:+.3f}), so the quotient has no displacement reading",
        )
    q = buffer_measure / success
    if q > 1:
        reading = "diffusion of benefit greater than the direct effect"
    elif q > 0:
        reading = "diffusion of benefit to the buffer"
    elif q == 0:
        reading = "no change in the buffer relative to the control"
    elif q >= -1:
        reading = "some displacement to the buffer, less than the direct effect"
    else:
        reading = "displacement to the buffer greater than the direct effect"
    return WdqResult(success, buffer_measure, q, net, reading, None)


@dataclass(frozen=True, slots=True)
class Total:
    """A total over a period and its variance: a count n has variance n (Poisson); a sum of
    harm weights w has variance sum(w^2) (compound Poisson)."""

    value: float
    variance: float

    @classmethod
    def of_count(cls, n: int) -> Total:
        return cls(float(n), float(n))

    @classmethod
    def of_weights(cls, weights: list[float]) -> Total:
        return cls(float(sum(weights)), float(sum(w * w for w in weights)))


def difference(
    target: tuple[Total, Total],
    control: tuple[Total, Total],
    before_scale: float = 1.0,
    control_scale: float = 1.0,
) -> WddResult:
    """The WDD without a buffer on totals that need not be counts: (target after - target
    before) - (control after - control before), each before total times `before_scale` (the
    time weight: after months / before months) and the control's totals times
    `control_scale` (e.g. 1/k for the sum over k comparison units: their mean), the variances
    by the squares of the same factors (Wheeler & Ratcliffe 2018 with the time and area
    weights of ptools; for harm, compound Poisson variances).

    Returns
    -------
    WddResult with displacement None.
    """
    (tb, ta), (cb, ca) = target, control
    local = (ta.value - tb.value * before_scale) - control_scale * (
        ca.value - cb.value * before_scale
    )
    variance = (
        ta.variance
        + tb.variance * before_scale**2
        + control_scale**2 * (ca.variance + cb.variance * before_scale**2)
    )
    se = math.sqrt(variance)
    if variance <= 0:
        return WddResult(local, local, None, variance, se, None, None, None, None)
    z = local / se
    return WddResult(
        local, local, None, variance, se, z, two_sided_p(z), local - Z_95 * se, local + Z_95 * se
    )
