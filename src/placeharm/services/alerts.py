"""Emerging-risk alerts per area and measure (issue 16): observed against expected from the
area's own history and the force's season, flagged when significant after Benjamini-Hochberg
across every test. Read from the read models: the harm cube (police.uk crime types,
services.readmodel) and the SOC cells (the SOC measures and SOC harm, soc.cells), as the
policy's scope lets the reader count. Stands beside the overview's percentile risk level
(pages.RISK_RULE), which ranks where harm is high; an alert says where it has risen.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from placeharm.analysis import alerts as analysis
from placeharm.analysis.stats import bh_adjust
from placeharm.errors import DataError, NotFound
from placeharm.harm import HarmIndex
from placeharm.model import month_end, month_range, shift_month
from placeharm.services import indices, readmodel
from placeharm.soc import cells as soc_cells
from placeharm.soc.measures import MeasureSet, load_measures, score_in_store
from placeharm.store.base import EVERYTHING, Scope, Store

METHOD = (
    "Each area's count in the alert month is compared with its own previous {baseline} "
    "months held (months without data are gaps, left out), adjusted by the force-wide "
    "seasonal factor of the calendar month where an earlier year allows one. The count is "
    "taken as Poisson; the p-value is the exact one-sided conditional test of the alert "
    "month's rate against the baseline's. An alert is raised where the rise is significant "
    "with the false discovery rate held at {fdr:g} across all {tested} tests (every area and "
    "measure; Benjamini-Hochberg). SOC harm is a weighted sum: it is tested as a count of "
    "records by dividing it by the force-wide ratio of the sum of squared weights to the sum "
    "of weights of the records it counts (a compound Poisson approximation)."
)
LIMITS = (
    "An alert says a count rose more than chance would explain given the area's own recent "
    "months; it does not say why (a recording change or an operation can cause one). Small "
    "counts need large rises to be significant. With under a year of history no seasonal "
    "adjustment is made, so a force-wide seasonal rise can raise alerts. Residents (home "
    "addresses) are a snapshot and are not tested."
)
RISK_BESIDE = (
    "The risk level (high, medium, low) ranks areas by how much SOC harm they hold "
    "(percentiles); alerts say where a count has risen significantly against the area's own "
    "history. Both are shown: a low-risk area can have an alert, and a high-risk one none."
)


@dataclass(frozen=True, slots=True)
class Result:
    meta: dict[str, Any]
    table: pl.DataFrame  # every test: alerts first, by q


def _p_text(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def reason(
    label: str, area: str, observed: float, month: dt.date, expected: float, p: float
) -> str:
    """The alert in words: "Drug supply offences in Byker: 14 in March 2022 against 5.2
    expected, p = 0.001"."""
    count = f"{observed:,.0f}"
    return (
        f"{label} in {area}: {count} in {month:%B %Y} against {expected:,.1f} expected, "
        f"{_p_text(p)}"
    )


def _policeuk_series(
    store: Store, by: str, first: dt.date, last: dt.date, index: HarmIndex
) -> tuple[list[str], dict[str, analysis.Series], frozenset[dt.date]]:
    """Per police.uk crime type, records per area and month (NaN for a month not covered)."""
    cube = readmodel.cells(store, by)
    months = month_range(first, last)
    held = frozenset(m for m in months if m not in set(_gaps(cube, first, last)))
    weights = cube.weights(index)
    out: dict[str, analysis.Series] = {}
    n = len(cube.codes)
    for crime_type in sorted(set(cube.key_types)):
        axis, records, _ = cube.monthly(first, last, weights, cube.key_filter([crime_type], None))
        grid = np.zeros((n, len(months)))
        where = {m: i for i, m in enumerate(months)}
        for j, m in enumerate(axis):
            if m in where:
                grid[:, where[m]] = records[:n, j]
        for i, m in enumerate(months):
            if m not in held:
                grid[:, i] = np.nan
        out[crime_type] = analysis.Series(grid, months)
    return cube.codes, out, held


def _gaps(cube: readmodel.SetCells, first: dt.date, last: dt.date) -> list[dt.date]:
    return [dt.date(int(g[:4]), int(g[5:7]), 1) for g in cube.gap_months(first, last)]


_SQUARED: dict[int, tuple[HarmIndex, HarmIndex]] = {}


def _squared(index: HarmIndex) -> HarmIndex:
    """`index` with every weight squared, one object per index (the SOC cells keep weights
    per index object: a new one per call would grow their cache)."""
    with _CACHE_LOCK:
        held = _SQUARED.get(id(index))
        if held is not None and held[0] is index:
            return held[1]
    made = dataclasses.replace(
        index,
        code_weights={k: v * v for k, v in index.code_weights.items()},
        type_weights={k: v * v for k, v in index.type_weights.items()},
    )
    with _CACHE_LOCK:
        if len(_SQUARED) > 16:
            _SQUARED.clear()
        _SQUARED[id(index)] = (index, made)
    return made


def _soc_series(
    store: Store,
    by: str,
    first: dt.date,
    last: dt.date,
    index: HarmIndex,
    measures: MeasureSet,
    scope: Scope,
) -> tuple[list[str], dict[str, analysis.Series], analysis.Series | None, frozenset[dt.date]]:
    """Per dated SOC measure, counts per area and month (NaN for a gap), and SOC harm as an
    effective count (harm / (sum w^2 / sum w), force-wide)."""
    model = soc_cells.cells(store, by)
    dated = tuple(m for m in measures.measures if m.source != "nominals")
    if not dated:
        return model.codes, {}, None, frozenset()
    held_by_source = {m.source: model.held_months(m.source) for m in dated}
    months = month_range(first, last)
    periods = {f"{m:%Y-%m}": (m, month_end(m)) for m in months}
    sources = tuple(sorted({m.source for m in dated}))
    # the same cells weighed by the squared weights, for the compound-Poisson dispersion
    squared = _squared(index)
    if model.applies(scope, sources):
        scored = model.score(dated, index, periods, scope)
        scored_sq = model.score(dated, squared, periods, scope)
    else:
        scored = score_in_store(store, by, dated, index, periods, scope)
        scored_sq = score_in_store(store, by, dated, squared, periods, scope)
    codes = model.codes
    n, k = len(codes), len(months)
    grid = pl.DataFrame({"area_code": codes}).join(
        pl.DataFrame({"period": list(periods)}), how="cross"
    )  # area-major, then month
    frame = grid.join(scored, on=["area_code", "period"], how="left")
    frame_sq = grid.join(scored_sq, on=["area_code", "period"], how="left")
    out: dict[str, analysis.Series] = {}
    harm = np.zeros((n, k))
    harm_sq_total = 0.0
    harm_total = 0.0
    all_held = np.ones(k, dtype=bool)
    for m in dated:
        count = frame[m.id].fill_null(0).to_numpy().astype(np.float64).reshape(n, k)
        h = frame[f"{m.id}_harm"].fill_null(0.0).to_numpy().astype(np.float64).reshape(n, k)
        held = np.array([mo in held_by_source[m.source] for mo in months])
        all_held &= held
        count[:, ~held] = np.nan
        out[m.id] = analysis.Series(count, months)
        harm += h
        fixed = m.weight_value(index)
        if isinstance(m.weight, int | float) and fixed is not None:
            h_sq = h * fixed  # a stated number: w^2 per record is w times the harm
        else:
            h_sq = frame_sq[f"{m.id}_harm"].fill_null(0.0).to_numpy().astype(np.float64)
            h_sq = h_sq.reshape(n, k)
        harm_sq_total += float(h_sq[:, held].sum())
        harm_total += float(h[:, held].sum())
    harm_series = None
    if harm_total > 0:
        phi = harm_sq_total / harm_total  # sum of w^2 over sum of w, force-wide
        effective = harm / phi
        effective[:, ~all_held] = np.nan
        harm_series = analysis.Series(effective, months, phi)
    held_all = frozenset(mo for mo, h in zip(months, all_held, strict=True) if h)
    return codes, out, harm_series, held_all


def alerts(
    store: Store,
    by: str = "ward",
    month: dt.date | None = None,
    baseline: int = 12,
    fdr: float = 0.1,
    index: HarmIndex | str | None = None,
    measures: MeasureSet | None = None,
    scope: Scope = EVERYTHING,
    seasonal: bool = True,
) -> Result:
    """Every area of `by` tested on every measure (see METHOD); alerts first."""
    if by not in soc_cells.set_names(store):
        raise NotFound(f"no area set called {by!r}; import it with `placeharm areas import`")
    if baseline < 1:
        raise DataError("the baseline must be at least one month")
    if not 0 < fdr < 1:
        raise DataError("the false discovery rate must be between 0 and 1, e.g. 0.1")
    harm_index = index if isinstance(index, HarmIndex) else indices.resolve(store, index)
    measure_set = measures or load_measures()
    cube = readmodel.cells(store, by)
    model = soc_cells.cells(store, by)
    police_months = (
        sorted(set(cube.months) - set(_gaps(cube, min(cube.months), max(cube.months))))
        if cube.months
        else []
    )
    soc_held: set[dt.date] = set()
    for m in measure_set.measures:
        if m.source != "nominals":
            soc_held |= model.held_months(m.source)
    latest = [max(police_months)] if police_months else []
    if soc_held:
        latest.append(max(soc_held))
    if not latest:
        return Result(
            {"note": "no data held: nothing to test", "tested": 0, "alerts": 0}, pl.DataFrame()
        )
    last = month or max(latest)
    # a history long enough for the baseline and for seasonal factors (years before)
    first = min([*police_months, *soc_held]) if (police_months or soc_held) else last
    first = max(first, shift_month(last, -(12 * 3 + baseline)))
    names = dict(
        zip(model.areas["area_code"].to_list(), model.areas["area_name"].to_list(), strict=True)
    )
    labels = {m.id: m.label for m in measure_set.measures}
    rows: list[pl.DataFrame] = []

    def add(
        kind: str,
        measure: str,
        label: str,
        codes: list[str],
        series: analysis.Series,
        at_month: dt.date,
    ) -> None:
        if at_month not in series.months:
            return
        at = series.months.index(at_month)
        tested = analysis.test_month(series, at, baseline, seasonal)
        rows.append(
            pl.DataFrame(
                {
                    "area_code": codes,
                    "kind": kind,
                    "measure": measure,
                    "label": label,
                    "month": f"{at_month:%Y-%m}",
                    "observed": tested.observed * series.scale,
                    "expected": tested.expected * series.scale,
                    "p": tested.p,
                    "seasonal_factor": tested.season,
                    "baseline_months": tested.baseline_held,
                },
                schema_overrides={"observed": pl.Float64, "expected": pl.Float64, "p": pl.Float64},
            )
        )

    police_at = last if last in police_months else None
    if police_at is not None:
        codes, series, _ = _policeuk_series(store, by, first, last, harm_index)
        for crime_type, s in series.items():
            add("police.uk", crime_type, crime_type, codes, s, police_at)
    soc_at = last if last in soc_held else None
    if soc_at is not None:
        codes, series, harm, held_all = _soc_series(
            store, by, first, last, harm_index, measure_set, scope
        )
        for measure, s in series.items():
            add("soc", measure, labels[measure], codes, s, soc_at)
        if harm is not None and soc_at in held_all:
            add("soc_harm", "soc_harm", "SOC harm", codes, harm, soc_at)
    if not rows:
        return Result(
            {
                "note": f"no data for {last:%Y-%m}: it is a gap, so nothing is tested",
                "tested": 0,
                "alerts": 0,
            },
            pl.DataFrame(),
        )
    table = pl.concat(rows).with_columns(
        pl.col("p").fill_nan(None),
        pl.col("expected").fill_nan(None),
        pl.col("observed").fill_nan(None),
    )
    q = bh_adjust(table["p"].fill_null(np.nan).to_numpy())
    table = table.with_columns(pl.Series("q", q, pl.Float64).fill_nan(None))
    table = table.with_columns(
        ((pl.col("q") <= fdr) & (pl.col("observed") > pl.col("expected")))
        .fill_null(False)
        .alias("alert"),
        pl.col("area_code").replace_strict(names, default=None).alias("area_name"),
    )
    tested = int(table["p"].is_not_null().sum())
    month_of = {f"{last:%Y-%m}": last}
    words = [
        reason(label, area or code, obs, month_of.get(mo, last), exp, p) if alert else None
        for label, area, code, obs, mo, exp, p, alert in table.select(
            "label", "area_name", "area_code", "observed", "month", "expected", "p", "alert"
        ).iter_rows()
    ]
    table = (
        table.with_columns(pl.Series("reason", words, pl.String))
        .sort(
            [pl.col("alert"), pl.col("q").fill_null(2.0), pl.col("area_code"), pl.col("measure")],
            descending=[True, False, False, False],
        )
        .select(
            "area_code",
            "area_name",
            "kind",
            "measure",
            "label",
            "month",
            "observed",
            "expected",
            "seasonal_factor",
            "baseline_months",
            "p",
            "q",
            "alert",
            "reason",
        )
    )
    n_alerts = int(table["alert"].sum())
    meta = {
        "area_set": by,
        "month": f"{last:%Y-%m}",
        "baseline_months": baseline,
        "history_from": f"{first:%Y-%m}",
        "fdr": fdr,
        "tested": tested,
        "alerts": n_alerts,
        "seasonal": seasonal,
        "index": harm_index.describe(),
        "method": METHOD.format(baseline=baseline, fdr=fdr, tested=tested),
        "limits": LIMITS,
        "risk_rule_beside": RISK_BESIDE,
        "seasonal_note": (
            "No earlier year is held for this month, so no seasonal adjustment is made: a "
            "force-wide seasonal rise can raise alerts."
            if tested and table.filter(pl.col("p").is_not_null())["seasonal_factor"].eq(1.0).all()
            else None
        ),
        "notes": [
            text
            for text, missing in (
                (
                    f"No police.uk data for {last:%Y-%m}: a gap, so crime types are not tested.",
                    police_at is None,
                ),
                (
                    f"No SOC data for {last:%Y-%m}: a gap, so SOC measures are not tested.",
                    soc_at is None,
                ),
            )
            if missing
        ],
        "police_uk_tested": police_at is not None,
        "soc_tested": soc_at is not None,
    }
    return Result(meta, table)


# alerts per store for its current generation: (generation, {key: (scope, Result)})
_CACHE: weakref.WeakKeyDictionary[
    Store, tuple[int, dict[tuple[Any, ...], tuple[Scope, Result]]]
] = weakref.WeakKeyDictionary()
_CACHE_LOCK = threading.Lock()


def cached_alerts(
    store: Store,
    by: str = "ward",
    month: dt.date | None = None,
    baseline: int = 12,
    fdr: float = 0.1,
    index: str | None = None,
    scope: Scope = EVERYTHING,
) -> Result:
    """`alerts`, kept per store generation, reader scope (policy.scope hands out one object
    per kind of reader and generation) and parameters: the overview panel and /alerts share
    one computation."""
    generation = store.generation
    key = (id(scope), by, month, baseline, fdr, index)
    with _CACHE_LOCK:
        held = _CACHE.get(store)
        if held is not None and held[0] == generation and key in held[1]:
            kept_scope, result = held[1][key]
            if kept_scope is scope:
                return result
    result = alerts(store, by, month, baseline, fdr, index, scope=scope)
    with _CACHE_LOCK:
        held = _CACHE.get(store)
        if held is None or held[0] != generation:
            held = (generation, {})
            _CACHE[store] = held
        if len(held[1]) > 64:
            held[1].clear()
        held[1][key] = (scope, result)
    return result
