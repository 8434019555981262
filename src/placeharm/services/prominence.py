"""Rising to prominence: the nominals whose linked crime and intelligence rose (issue 16).

Reads the nominals' events (crimes linked as suspect or offender, intelligence naming them)
once per store generation into this process, as the SOC cells are held; the score and the
test (`placeharm.analysis.prominence`) then run on that frame. Roles as for nominals: the
policy's scope drops the nominals a role may not see (those known only for child
exploitation, for uncleared roles) from every part, intelligence subjects included.
"""

from __future__ import annotations

import datetime as dt
import threading
import weakref
from dataclasses import dataclass
from typing import Any

import polars as pl

from placeharm.analysis import prominence as analysis
from placeharm.errors import DataError
from placeharm.harm import HarmIndex
from placeharm.model import shift_month
from placeharm.services import indices, policy
from placeharm.soc import cells as soc_cells
from placeharm.store.base import EVERYTHING, Scope, Store

METHOD = (
    "Score (RFG): recency of the last linked crime (suspect or offender), frequency of linked "
    "crimes and their gravity (summed harm-index weights, days of custody) in the last "
    "{score} months, plus intelligence naming the nominal weighted by its grading; each part "
    "0-5 points on the configured bands, 0-20 in all. Rising: the nominal's events (linked "
    "crimes plus intelligence reports) in the last {window} months held against their own "
    "previous {baseline} months held, by the exact conditional test of two Poisson rates "
    "(one-sided), with the false discovery rate held at {fdr:g} across all {tested} nominals "
    "with any event (Benjamini-Hochberg). Months without data are left out, not counted as "
    "none."
)
LIMITS = (
    "Counts per nominal are small: a rise of a few records can be significant only against "
    "a quiet baseline, and a nominal with no events in either period is not tested. Incidents "
    "are not linked to people in the records, so they take no part. The score ranks; it does "
    "not say a person offended."
)


@dataclass(frozen=True, slots=True)
class Result:
    meta: dict[str, Any]
    table: pl.DataFrame  # every nominal tested or scored, most significant rise first
    spark: dict[str, tuple[list[str], list[int | None], list[dict[str, object]]]]


_HELD: weakref.WeakKeyDictionary[Store, tuple[int, str, pl.DataFrame, pl.DataFrame]] = (
    weakref.WeakKeyDictionary()
)
_LOCK = threading.Lock()


def read_events(store: Store, index: HarmIndex) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(events, nominals) of every nominal, read once per generation and harm index."""
    generation = store.generation
    key = f"{index.name}:{index.edition}"
    held = _HELD.get(store)
    if held is not None and held[0] == generation and held[1] == key:
        return held[2], held[3]
    with store.snapshot():
        links = store.soc_frame("soc_nominal_crimes", columns=["nominal_id", "crime_ref", "role"])
        crimes = store.soc_frame(
            "soc_force_crimes",
            columns=["crime_ref", "recorded_date", "offence_code", "crime_type"],
        )
        intel = store.soc_frame(
            "soc_intelligence",
            columns=[
                "intel_id",
                "reported_date",
                "grading_scheme",
                "source_evaluation",
                "intelligence_assessment",
                "subjects",
            ],
        )
        people = store.soc_frame(
            "soc_nominals",
            columns=["nominal_id", "forename", "surname", "ocg_member", "priority_individual"],
        )
    events = build_events(links, crimes, intel, index)
    with _LOCK:
        _HELD[store] = (generation, key, events, people)
    return events, people


def build_events(
    links: pl.DataFrame, crimes: pl.DataFrame, intel: pl.DataFrame, index: HarmIndex
) -> pl.DataFrame:
    """One row per (nominal, event): linked crimes (suspect or offender, each crime once per
    nominal) weighted by the index, and intelligence reports naming them, weighted by grading."""
    pairs = crimes.select("offence_code", "crime_type").unique()
    weights = []
    for code, crime_type in pairs.iter_rows():
        # the offence code's weight, else the crime type's, else none (as placeharm.harm.weigh)
        by_code = index.code_weights.get(code) if code is not None else None
        by_type = index.type_weights.get(crime_type) if crime_type is not None else None
        weights.append(by_code if by_code is not None else by_type or 0.0)
    pairs = pairs.with_columns(pl.Series("harm_days", weights, pl.Float64))
    crime_events = (
        links.filter(pl.col("role").is_in(["suspect", "offender"]))
        .select("nominal_id", "crime_ref")
        .unique()
        .join(crimes, on="crime_ref")
        .join(pairs, on=["offence_code", "crime_type"], how="left", nulls_equal=True)
        .filter(pl.col("recorded_date").is_not_null())
        .select(
            "nominal_id",
            pl.col("recorded_date").cast(pl.Date).alias("day"),
            pl.lit("crime").alias("kind"),
            pl.col("harm_days").fill_null(0.0),
            pl.lit(0.0).alias("grade_weight"),
            pl.col("crime_ref").alias("ref"),
            pl.concat_str(
                [pl.col("crime_type").fill_null("crime"), pl.col("offence_code").fill_null("?")],
                separator=", offence code ",
            ).alias("detail"),
        )
    )
    grades = intel.select("grading_scheme", "source_evaluation", "intelligence_assessment").unique()
    grades = grades.with_columns(
        pl.Series(
            "grade_weight",
            [analysis.grade_weight(s, e, a) for s, e, a in grades.iter_rows()],
            pl.Float64,
        )
    )
    intel_events = (
        intel.filter(pl.col("reported_date").is_not_null())
        .join(
            grades,
            on=["grading_scheme", "source_evaluation", "intelligence_assessment"],
            how="left",
            nulls_equal=True,
        )
        .with_columns(pl.col("subjects").fill_null("").str.split(";").alias("nominal_id"))
        .explode("nominal_id")
        .filter(pl.col("nominal_id") != "")
        .unique(["nominal_id", "intel_id"])
        .select(
            "nominal_id",
            pl.col("reported_date").cast(pl.Date).alias("day"),
            pl.lit("intelligence").alias("kind"),
            pl.lit(0.0).alias("harm_days"),
            pl.col("grade_weight").fill_null(0.0),
            pl.col("intel_id").alias("ref"),
            pl.concat_str(
                [
                    pl.lit("intelligence graded "),
                    pl.col("source_evaluation").fill_null("?"),
                    pl.col("intelligence_assessment").fill_null("?"),
                ]
            ).alias("detail"),
        )
    )
    return pl.concat([crime_events, intel_events]).sort("day")


def held_months(store: Store) -> frozenset[dt.date]:
    """Months for which both linked crimes and intelligence hold data (each source's rule,
    `SocCells.held_months`): a month either lacks is a gap."""
    names = soc_cells.set_names(store)
    if not names:
        return frozenset()
    model = soc_cells.cells(store, "ward" if "ward" in names else sorted(names)[0])
    return model.held_months("force_crimes") & model.held_months("intelligence")


def prominence(
    store: Store,
    params: analysis.Params,
    index: HarmIndex | str | None = None,
    scope: Scope = EVERYTHING,
    last_month: dt.date | None = None,
) -> Result:
    """Every nominal the scope shows, scored and tested (see METHOD)."""
    if params.window < 1 or params.baseline < 1:
        raise DataError("the window and the baseline must each be at least one month")
    if not 0 < params.fdr < 1:
        raise DataError("the false discovery rate must be between 0 and 1, e.g. 0.1")
    harm_index = index if isinstance(index, HarmIndex) else indices.resolve(store, index)
    events, people = read_events(store, harm_index)
    hidden = policy.hidden_nominals(scope)
    if hidden:
        events = events.filter(~pl.col("nominal_id").is_in(hidden))
        people = people.filter(~pl.col("nominal_id").is_in(hidden))
    held = held_months(store)
    last = last_month or (max(held) if held else None)
    if last is None:
        meta: dict[str, Any] = {
            "method": "",
            "limits": LIMITS,
            "tested": 0,
            "rising": 0,
            "note": "no SOC records held: nothing to score",
        }
        return Result(meta, pl.DataFrame(), {})
    table = analysis.score(events, people, last, held, params)
    table = table.sort(
        [pl.col("rising"), pl.col("q").fill_null(2.0), pl.col("score"), pl.col("nominal_id")],
        descending=[True, False, True, False],
    )
    tested = int(table["p"].is_not_null().sum())
    first_window = shift_month(last, 1 - params.window)
    first_base = shift_month(first_window, -params.baseline)
    gaps = [
        f"{shift_month(first_base, i):%Y-%m}"
        for i in range(params.baseline + params.window)
        if shift_month(first_base, i) not in held
    ]
    rising_ids = table.filter(pl.col("rising"))["nominal_id"].to_list()
    shown = rising_ids or table.filter(pl.col("p").is_not_null()).head(10)["nominal_id"].to_list()
    spark = analysis.spark_and_why(events, shown, last, held, params)
    meta = {
        "window": f"{first_window:%Y-%m}..{last:%Y-%m}",
        "baseline": f"{first_base:%Y-%m}..{shift_month(first_window, -1):%Y-%m}",
        "window_months": params.window,
        "baseline_months": params.baseline,
        "score_period": f"{shift_month(last, 1 - params.score_months):%Y-%m}..{last:%Y-%m}",
        "gap_months": gaps,
        "fdr": params.fdr,
        "tested": tested,
        "rising": len(rising_ids),
        "index": harm_index.describe(),
        "bands": {
            "recency_days": _numbers(params.bands.recency_days),
            "frequency": _numbers(params.bands.frequency),
            "gravity_days": _numbers(params.bands.gravity_days),
            "intelligence": _numbers(params.bands.intelligence),
        },
        "method": METHOD.format(
            score=params.score_months,
            window=params.window,
            baseline=params.baseline,
            fdr=params.fdr,
            tested=tested,
        ),
        "limits": LIMITS,
    }
    return Result(meta, table, spark)


def params_from(
    settings: Any, window: int = 3, baseline: int = 12, fdr: float = 0.1
) -> analysis.Params:
    """Parameters with the bands of the settings (config.py: prominence_*)."""
    bands = analysis.Bands(
        tuple(settings.prominence_recency_days),
        tuple(settings.prominence_frequency_bands),
        tuple(settings.prominence_gravity_bands),
        tuple(settings.prominence_intelligence_bands),
    )
    return analysis.Params(window, baseline, fdr, 12, bands)


def _numbers(values: tuple[float, ...]) -> list[float | int]:
    """Band thresholds as written: whole numbers without a decimal point."""
    return [int(v) if float(v).is_integer() else v for v in values]
