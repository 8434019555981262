"""Rising to prominence: each nominal's RFG score and an exact test of a recent rise (issue 16).

The score follows RFG offender prioritisation (recency, frequency, gravity) with intelligence
added: R from the days since the nominal's last linked crime (as suspect or offender), F the
linked crimes in the scoring period, G their summed harm (the harm index's weights, days of
custody), I the intelligence naming them in the period, each report weighted by its grading.
Each part scores 0 to 5 points on configurable bands; the score is their sum (0 to 20).

The rise test compares the nominal's events (linked crimes plus intelligence reports naming
them) in the recent window with their own baseline just before it, by the exact conditional
test of two Poisson rates (`analysis.stats.rate_rise_p`), months without data (gaps) left out
of both; Benjamini-Hochberg controls the false discovery rate across every nominal tested.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from placeharm.analysis.stats import bh_adjust, rate_rise_p

# intelligence weight by grading: how far a report can be relied on (the product of the
# source's and the information's weights). 3x5x2: source 1 reliable, 2 untested, 3 not
# reliable; information A known directly .. E suspected false. 5x5x5: source A always
# reliable .. D unreliable, E untested; information 1 known true .. 5 suspected false.
GRADE_WEIGHTS = {
    "3x5x2": (
        {"1": 1.0, "2": 0.6, "3": 0.2},
        {"A": 1.0, "B": 0.8, "C": 0.6, "D": 0.3, "E": 0.0},
    ),
    "5x5x5": (
        {"A": 1.0, "B": 0.8, "C": 0.5, "D": 0.2, "E": 0.6},
        {"1": 1.0, "2": 0.8, "3": 0.6, "4": 0.3, "5": 0.0},
    ),
}


@dataclass(frozen=True, slots=True)
class Bands:
    """Thresholds of the four parts, each scoring 0-5 points (docs/analysis.md)."""

    recency_days: tuple[float, ...] = (90, 180, 365, 730)  # at most: 5, 4, 3, 2 points; else 1
    frequency: tuple[float, ...] = (1, 2, 4, 7, 11)  # at least: 1..5 points
    gravity_days: tuple[float, ...] = (10, 100, 365, 1000, 3650)
    intelligence: tuple[float, ...] = (1, 3, 6, 10, 15)


@dataclass(frozen=True, slots=True)
class Params:
    window: int = 3  # recent months
    baseline: int = 12  # months before the window
    fdr: float = 0.1
    score_months: int = 12  # the RFG scoring period, ending with the last month held
    bands: Bands = field(default_factory=Bands)


def grade_weight(scheme: str | None, source: str | None, assessment: str | None) -> float:
    """A report's weight by its grading (unknown grades: 0)."""
    sources, assessments = GRADE_WEIGHTS.get(scheme or "3x5x2", GRADE_WEIGHTS["3x5x2"])
    return sources.get(str(source), 0.0) * assessments.get(str(assessment), 0.0)


def _month_index(day: pl.Expr) -> pl.Expr:
    return day.dt.year().cast(pl.Int64) * 12 + day.dt.month().cast(pl.Int64) - 1


def _mi(day: dt.date) -> int:
    return day.year * 12 + day.month - 1


def _date(mi: int) -> dt.date:
    return dt.date(mi // 12, mi % 12 + 1, 1)


def score(
    events: pl.DataFrame,
    nominals: pl.DataFrame,
    last_month: dt.date,
    held: frozenset[dt.date],
    params: Params,
) -> pl.DataFrame:
    """The RFG score and the rise test of every nominal.

    Parameters
    ----------
    events : one row per event: nominal_id, day (date), kind ("crime" or "intelligence"),
        harm_days (crimes: the harm index weight), grade_weight (intelligence), ref, detail.
    nominals : nominal_id and whatever else to carry (forename, surname, flags).
    last_month : the last month of the window (first day).
    held : the months with data; others are gaps, left out of the test's exposures.
    params : window, baseline, fdr, scoring period and bands.

    Returns
    -------
    One row per nominal: the parts and their points, score, recent and baseline counts and
    held months, expected, rate_ratio, p, q, rising (q <= fdr and more than expected), the
    monthly events (spark) and the recent records (why).
    """
    last = _mi(last_month)
    w_first = last - params.window + 1
    b_first = w_first - params.baseline
    s_first = last - params.score_months + 1
    end_day = dt.date(last // 12 + (last % 12 + 1) // 12, (last % 12 + 1) % 12 + 1, 1)
    window_held = sum(1 for m in range(w_first, last + 1) if _date(m) in held)
    base_held = sum(1 for m in range(b_first, w_first) if _date(m) in held)
    held_idx = [m for m in range(b_first, last + 1) if _date(m) in held]

    ev = events.with_columns(_month_index(pl.col("day")).alias("mi")).filter(
        pl.col("day") < end_day
    )
    ev = ev.filter(pl.col("mi").is_in(held_idx) | (pl.col("mi") < b_first))
    crimes = ev.filter(pl.col("kind") == "crime")
    in_score = pl.col("mi") >= s_first
    parts = (
        nominals.select("nominal_id")
        .join(
            crimes.group_by("nominal_id").agg(
                pl.col("day").max().alias("last_crime"),
                in_score.sum().alias("frequency"),
                pl.col("harm_days").filter(in_score).sum().alias("gravity_days"),
            ),
            on="nominal_id",
            how="left",
        )
        .join(
            ev.filter((pl.col("kind") == "intelligence") & in_score)
            .group_by("nominal_id")
            .agg(pl.col("grade_weight").sum().alias("intelligence")),
            on="nominal_id",
            how="left",
        )
        .join(
            ev.filter(pl.col("mi") >= b_first)
            .group_by("nominal_id")
            .agg(
                (pl.col("mi") >= w_first).sum().alias("recent"),
                (pl.col("mi") < w_first).sum().alias("baseline_events"),
            ),
            on="nominal_id",
            how="left",
        )
        .with_columns(
            (pl.lit(end_day) - pl.col("last_crime")).dt.total_days().alias("recency_days"),
            pl.col("frequency").fill_null(0).cast(pl.Int64),
            pl.col("gravity_days").fill_null(0.0),
            pl.col("intelligence").fill_null(0.0),
            pl.col("recent").fill_null(0).cast(pl.Int64),
            pl.col("baseline_events").fill_null(0).cast(pl.Int64),
        )
    )
    b = params.bands
    recency = parts["recency_days"].to_numpy().astype(np.float64)
    r_points = np.where(
        np.isnan(recency), 0, 1 + (np.asarray(b.recency_days)[None, :] >= recency[:, None]).sum(1)
    )

    def at_least(values: np.ndarray, thresholds: tuple[float, ...]) -> np.ndarray:
        hits: np.ndarray = (np.asarray(thresholds)[None, :] <= values[:, None]).sum(1)
        return hits

    f_points = at_least(parts["frequency"].to_numpy().astype(np.float64), b.frequency)
    g_points = at_least(parts["gravity_days"].to_numpy(), b.gravity_days)
    i_points = at_least(parts["intelligence"].to_numpy(), b.intelligence)
    x = parts["recent"].to_numpy()
    y = parts["baseline_events"].to_numpy()
    testable = (x + y > 0) & (window_held > 0) & (base_held > 0)
    p = np.where(testable, rate_rise_p(x, y, max(window_held, 1), max(base_held, 1)), np.nan)
    q = bh_adjust(p)
    expected = y * window_held / base_held if base_held else np.full(x.shape, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(y > 0, (x / max(window_held, 1)) / (y / max(base_held, 1)), np.nan)
    rising = testable & (np.nan_to_num(q, nan=2.0) <= params.fdr) & (x > expected)
    out = parts.with_columns(
        pl.Series("recency_points", r_points, pl.Int64),
        pl.Series("frequency_points", f_points, pl.Int64),
        pl.Series("gravity_points", g_points, pl.Int64),
        pl.Series("intelligence_points", i_points, pl.Int64),
        pl.Series("expected", expected, pl.Float64).fill_nan(None),
        pl.Series("rate_ratio", ratio, pl.Float64).fill_nan(None),
        pl.Series("p", p, pl.Float64).fill_nan(None),
        pl.Series("q", q, pl.Float64).fill_nan(None),
        pl.Series("rising", rising, pl.Boolean),
    ).with_columns(
        (
            pl.col("recency_points")
            + pl.col("frequency_points")
            + pl.col("gravity_points")
            + pl.col("intelligence_points")
        ).alias("score")
    )
    out = out.join(nominals, on="nominal_id", how="left")
    return out.with_columns(
        pl.lit(window_held).alias("window_months_held"),
        pl.lit(base_held).alias("baseline_months_held"),
    )


def spark_and_why(
    events: pl.DataFrame,
    ids: list[str],
    last_month: dt.date,
    held: frozenset[dt.date],
    params: Params,
    limit: int = 8,
) -> dict[str, tuple[list[str], list[int | None], list[dict[str, object]]]]:
    """For the nominals `ids`: the months of baseline and window (from the first month held),
    their events per month (None for a gap month) and the window's records (newest first, at
    most `limit`)."""
    last = _mi(last_month)
    w_first = last - params.window + 1
    b_first = w_first - params.baseline
    # from the first month with any data (months before all data are no use to a reader)
    start = max(b_first, min((_mi(m) for m in held), default=b_first))
    months = [_date(m) for m in range(start, last + 1)]
    chosen = events.filter(pl.col("nominal_id").is_in(ids)).with_columns(
        _month_index(pl.col("day")).alias("mi")
    )
    chosen = chosen.filter((pl.col("mi") >= b_first) & (pl.col("mi") <= last))
    out: dict[str, tuple[list[str], list[int | None], list[dict[str, object]]]] = {}
    by_id = chosen.partition_by("nominal_id", as_dict=True)
    for nid in ids:
        rows = by_id.get((nid,), chosen.clear())
        counts = rows.group_by("mi").len()
        per = dict(zip(counts["mi"].to_list(), counts["len"].to_list(), strict=True))
        spark = [int(per.get(_mi(m), 0)) if m in held else None for m in months]
        recent = (
            rows.filter((pl.col("mi") >= w_first) & pl.col("mi").is_in([_mi(m) for m in held]))
            .sort(["day", "ref"], descending=[True, False])
            .head(limit)
            .select("day", "kind", "ref", "detail")
        )
        out[nid] = ([f"{m:%Y-%m}" for m in months], spark, recent.to_dicts())
    return out
