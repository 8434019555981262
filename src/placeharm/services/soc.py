"""SOC use cases: the synthetic overlay, the SOC primary harm score, ward and CHB views."""

from __future__ import annotations

import datetime as dt
import tempfile
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from placeharm.errors import DataError, NotFound, UnknownArea
from placeharm.harm import HarmIndex
from placeharm.model import ImportResult, month_end, month_range, shift_month
from placeharm.services import indices, readmodel
from placeharm.services.areas import assign_pending, import_areas
from placeharm.services.harm import HarmResult
from placeharm.services.queries import CRIME_SOURCES, gap_months
from placeharm.soc import cells as soc_cells
from placeharm.soc.generate import Overlay, generate
from placeharm.soc.importer import import_entity
from placeharm.soc.measures import Measure, MeasureSet, load_measures, score_in_store
from placeharm.store.base import EVERYTHING, Scope, Store

CHB_SET = "chb"
# import order: what a row refers to is imported before it
IMPORT_ORDER = (
    "nominals",
    "groups",
    "memberships",
    "addresses",
    "force-crimes",
    "nominal-crimes",
    "nominal-links",
    "intelligence",
    "incidents",
    "disruptions",
    "partner-events",
    "chb-phases",
)
DEMO_BANNER = "DEMO DATA: synthetic SOC overlay on real police.uk crimes"


@dataclass(slots=True)
class OverlayResult:
    overlay: Overlay
    results: list[ImportResult]


def build_overlay(
    store: Store, seed: int = 1, scale: int = 1, out_dir: Path | None = None, threads: int = 2
) -> OverlayResult:
    """Generate the synthetic overlay from the stored police.uk crimes and import it.

    Needs a `ward` area set. The CHB site polygons become the `chb` area set.
    """
    if "ward" not in {s.name for s in store.area_sets()}:
        raise DataError(
            "the overlay is built on wards: import a `ward` area set and ingest "
            "police.uk street files first (`placeharm demo` does both)"
        )
    crimes = store.crime_frame(
        ["crime_id", "month", "crime_type", "longitude", "latitude", "location", "area_ward"]
    ).filter(pl.col("crime_type") != "Anti-social behaviour")
    folder = out_dir or Path(tempfile.mkdtemp(prefix="placeharm-overlay-"))
    overlay = generate(crimes, folder, seed, scale)
    import_areas(store, overlay.chb_sites, CHB_SET, code_field="code", name_field="name")
    assign_pending(store, threads, 25.0)
    results = [
        import_entity(store, kind, overlay.files[kind], synthetic=True, threads=threads)
        for kind in IMPORT_ORDER
    ]
    return OverlayResult(overlay, results)


def _dates(first: dt.date, last: dt.date) -> tuple[dt.date, dt.date]:
    return first, month_end(last)


def _synthetic(store: Store) -> bool:
    return store.soc_summary()[2]


def _scores(
    areas: pl.DataFrame, scored: pl.DataFrame, period: str, measures: MeasureSet
) -> pl.DataFrame:
    """Every area with each measure's count and harm in one period, and soc_harm."""
    rows = scored.filter(pl.col("period") == period).drop("period")
    table = areas.join(rows, on="area_code", how="left")
    fills = []
    for m in measures.measures:
        for col, zero in ((m.id, 0), (f"{m.id}_harm", 0.0)):
            if col not in table.columns:
                fills.append(pl.lit(zero).alias(col))
            elif table[col].null_count():  # none from the SOC cells: they hold every area
                fills.append(pl.col(col).fill_null(zero))
    if fills:
        table = table.with_columns(fills)
    harm_cols = [f"{m.id}_harm" for m in measures.measures]
    return table.with_columns(pl.sum_horizontal(harm_cols).alias("soc_harm"))


def soc_rank(
    store: Store,
    by: str,
    first: dt.date,
    last: dt.date,
    index: HarmIndex | str | None = None,
    measures: MeasureSet | None = None,
    scope: Scope = EVERYTHING,
) -> HarmResult:
    """Areas ranked by SOC primary harm score, with each measure's count and harm and the
    change against the previous period of the same length, from the rows `scope` lets the
    reader count (services.policy.scope; everything for the command line). Read from the
    SOC cells (placeharm.soc.cells), or scored in the store for a scope they cannot apply."""
    if by not in soc_cells.set_names(store):
        raise NotFound(f"no area set called {by!r}; import it with `placeharm areas import`")
    if last < first:
        raise DataError(f"--to {last:%Y-%m} is before --from {first:%Y-%m}")
    harm_index = index if isinstance(index, HarmIndex) else indices.resolve(store, index)
    measure_set = measures or load_measures()
    months = month_range(first, last)
    prev_first, prev_last = shift_month(first, -len(months)), shift_month(first, -1)
    periods = {"now": _dates(first, last), "previous": _dates(prev_first, prev_last)}
    model = soc_cells.cells(store, by)
    scored = _score(model, store, measure_set.measures, harm_index, periods, scope)
    areas = model.areas
    now = _scores(areas, scored, "now", measure_set)
    before = _previous_with_snapshot(
        _scores(areas, scored, "previous", measure_set), now, measure_set
    )
    total = float(now["soc_harm"].sum())
    table = (
        now.join(before, on="area_code", how="left")
        .with_columns(
            pl.col("soc_harm").rank("min", descending=True).cast(pl.Int64).alias("rank"),
            pl.col("previous_soc_harm")
            .rank("min", descending=True)
            .cast(pl.Int64)
            .alias("rank_previous"),
            (pl.col("soc_harm") / total if total else pl.lit(None, pl.Float64)).alias("harm_share"),
            (pl.col("soc_harm") - pl.col("previous_soc_harm")).alias("change"),
            pl.when(pl.col("previous_soc_harm") > 0)
            .then((pl.col("soc_harm") / pl.col("previous_soc_harm") - 1) * 100)
            .alias("pct_change"),
        )
        .with_columns((pl.col("rank_previous") - pl.col("rank")).alias("rank_movement"))
        .sort(["soc_harm", "area_code"], descending=[True, False])
    )
    summary = model.summary
    held = (summary[0], summary[1]) if summary[0] and summary[1] else None
    no_previous = held is None or held[0] > _dates(prev_first, prev_last)[1]
    if no_previous:
        table = table.with_columns(
            pl.lit(None, pl.Float64).alias(c) for c in ("previous_soc_harm", "change", "pct_change")
        ).with_columns(pl.lit(None, pl.Int64).alias(c) for c in ("rank_previous", "rank_movement"))
    lead = [
        "rank",
        "area_code",
        "area_name",
        "soc_harm",
        "harm_share",
        "previous_soc_harm",
        "change",
        "pct_change",
        "rank_previous",
        "rank_movement",
    ]
    measure_cols = [c for m in measure_set.measures for c in (m.id, f"{m.id}_harm")]
    # parallel sums can differ in the last bits between runs: state figures to 1e-6
    table = table.select(lead + measure_cols).with_columns(pl.col(pl.Float64).round(6))
    notes = []
    if held is None:
        notes.append(
            "no SOC records held: import them with `placeharm import` or build the "
            "demo overlay with `placeharm demo-data`"
        )
    elif no_previous:
        notes.append(
            f"no SOC records before {held[0]}: no change against the previous period "
            f"{prev_first:%Y-%m}..{prev_last:%Y-%m} (left empty, not zero)"
        )
    elif held[0] > prev_first:
        notes.append(
            f"the previous period {prev_first:%Y-%m}..{prev_last:%Y-%m} starts before "
            f"the first SOC record held ({held[0]}): its scores may be low"
        )
    synthetic = summary[2]
    if synthetic:
        notes.insert(0, DEMO_BANNER)
    meta: dict[str, object] = {
        "area_set": by,
        "first_month": f"{first:%Y-%m}",
        "last_month": f"{last:%Y-%m}",
        "previous_first_month": f"{prev_first:%Y-%m}",
        "previous_last_month": f"{prev_last:%Y-%m}",
        "index": harm_index.describe(),
        "measures": [m.describe(harm_index) for m in measure_set.measures],
        "measures_file": measure_set.source,
        "total_soc_harm": total,
        "synthetic": synthetic,
    }
    return HarmResult("soc-rank", meta, table, notes)


def _score(
    model: soc_cells.SocCells,
    store: Store,
    measures: tuple[Measure, ...],
    index: HarmIndex,
    periods: dict[str, tuple[dt.date, dt.date]],
    scope: Scope,
) -> pl.DataFrame:
    """Each measure per (area_code, period): from the cells where they can apply `scope`
    exactly, else scored in the store (the same figures, slower)."""
    sources = tuple(sorted({"homes" if m.source == "nominals" else m.source for m in measures}))
    if model.applies(scope, sources) and model.answers(periods):
        return model.score(measures, index, periods, scope)
    return score_in_store(store, model.set_name, measures, index, periods, scope)


def _monthly(
    store: Store,
    table: str,
    date_col: str,
    set_name: str,
    code: str,
    first: dt.date,
    last: dt.date,
    scope: Scope = EVERYTHING,
) -> pl.DataFrame:
    start, end = _dates(first, last)
    return store.month_counts(table, date_col, set_name, start, end, code, scope)


def ward_view(
    store: Store,
    code: str,
    first: dt.date,
    last: dt.date,
    by: str = "ward",
    index: HarmIndex | str | None = None,
    measures: MeasureSet | None = None,
    crime_types: list[str] | None = None,
    scope: Scope = EVERYTHING,
) -> HarmResult:
    """North Yorkshire's ward view: per month, SOC crimes, incidents and intelligence (and
    police.uk crime and ASB, of `crime_types` or all, gaps empty); the ward's measures; its
    groups and latest intel; every count from the rows `scope` lets the reader see."""
    held = _held_cells(store, by)  # the harm cube's read model (issue 14), when it holds `by`
    names = held.areas if held is not None else store.area_list(by)
    match = names.filter(pl.col("area_code") == code)
    if match.is_empty():
        raise UnknownArea(
            by, [code], f"no area {code!r} in set {by!r}; list them with `placeharm rank --by {by}`"
        )
    months = month_range(first, last)
    gaps = set(held.gap_months(first, last) if held is not None else gap_months(store, first, last))
    grid = pl.DataFrame({"month": months}, schema={"month": pl.Date})
    police = (
        held.area_monthly(code, first, last)
        if held is not None
        else _monthly(store, "crimes", "month", by, code, first, last)
    )
    if crime_types:
        police = police.filter(pl.col("kind").is_in(crime_types))
    model = soc_cells.cells(store, by)
    soc = _soc_monthly(store, model, "soc_crimes", code, first, last, scope).rename(
        {"records": "soc_crimes"}
    )
    columns = {
        "crimes": police.filter(pl.col("kind") != "Anti-social behaviour"),
        "asb": police.filter(pl.col("kind") == "Anti-social behaviour"),
        **{
            name: _soc_monthly(store, model, name, code, first, last, scope)
            for name in ("incidents", "intelligence", "disruptions")
        },
    }
    table = grid.join(soc, on="month", how="left").with_columns(pl.col("soc_crimes").fill_null(0))
    for name, frame in columns.items():
        per = frame.group_by("month").agg(pl.col("records").sum().alias(name))
        table = table.join(per, on="month", how="left")
        fill = pl.col(name).fill_null(0).cast(pl.Int64)
        if name in ("crimes", "asb"):
            fill = (
                pl.when(pl.col("month").dt.strftime("%Y-%m").is_in(list(gaps)))
                .then(None)
                .otherwise(fill)
            )
        table = table.with_columns(fill.alias(name))
    table = _soc_series_gaps(table, model)
    table = (
        table.sort("month")
        .with_columns(pl.col("month").dt.strftime("%Y-%m"))
        .select("month", "crimes", "asb", "soc_crimes", "incidents", "intelligence", "disruptions")
    )
    ranked = soc_rank(store, by, first, last, index, measures, scope)
    row = ranked.table.filter(pl.col("area_code") == code).row(0, named=True)
    measure_set = measures or load_measures()
    measure_rows = pl.DataFrame(
        [
            {"measure": m.label, "count": row[m.id], "harm": row[f"{m.id}_harm"]}
            for m in measure_set.measures
        ]
    )
    start, end = _dates(first, last)
    intel = (
        _area_intelligence(store, by, code, scope)
        .filter(pl.col("reported_date").is_between(start, end))
        .sort(["reported_date", "intel_id"], descending=True)
        .head(10)
        .select(
            "intel_id",
            "reported_date",
            pl.concat_str(["source_evaluation", "intelligence_assessment", "handling_code"]).alias(
                "grading"
            ),
            "topics",
        )
    )
    groups = _groups_in(store, by, code, scope)
    meta: dict[str, object] = {
        "area_set": by,
        "area_code": code,
        "area_name": match["area_name"][0],
        "first_month": f"{first:%Y-%m}",
        "last_month": f"{last:%Y-%m}",
        "gap_months": sorted(gaps),
        "soc_harm": row["soc_harm"],
        # a zero is not ranked: "no SOC harm recorded in this period" (issue 15)
        "rank": row["rank"] if row["soc_harm"] > 0 else None,
        "areas_ranked": int((ranked.table["soc_harm"] > 0).sum()),
        "areas_in_set": ranked.table.height,
        "change": row["change"],
        "synthetic": ranked.meta["synthetic"],
    }
    notes = [n for n in ranked.notes if n == DEMO_BANNER]
    if gaps:
        notes.append(
            f"no police.uk data for {', '.join(sorted(gaps))}: crimes and ASB are "
            "empty for those months"
        )
    return HarmResult(
        "ward",
        meta,
        table,
        notes,
        {"measures": measure_rows, "latest_intelligence": intel, "groups": groups},
    )


def _held_cells(store: Store, by: str) -> readmodel.SetCells | None:
    """The harm read model of set `by` (police.uk records per area, month and crime type,
    the set's areas and the coverage months, read once per generation), or None for a set
    it cannot hold (unknown, or imported after the records it should count)."""
    info = readmodel.area_sets(store).get(by)
    return readmodel.cells(store, by) if info is not None and info.assigned else None


def _area_intelligence(store: Store, by: str, code: str, scope: Scope) -> pl.DataFrame:
    """The intelligence of area `code` that `scope` lets the reader see, every date: read
    once per store generation (a page keeps its period's), not once per page built."""
    return readmodel.piece(
        store,
        f"intelligence:{by}:{code}:{scope!r}",
        lambda s: s.soc_frame("soc_intelligence", by, area_code=code, scope=scope),
    )


# the monthly SOC counts of the ward and CHB views: (table, date column) of each
_SOC_MONTHLY = {
    "incidents": ("soc_incidents", "occurred_date"),
    "intelligence": ("soc_intelligence", "reported_date"),
    "disruptions": ("soc_disruptions", "disruption_date"),
}


def _soc_monthly(
    store: Store,
    model: soc_cells.SocCells,
    what: str,
    code: str,
    first: dt.date,
    last: dt.date,
    scope: Scope = EVERYTHING,
) -> pl.DataFrame:
    """Records per month (month, records; months with none left out) of area `code` in the
    months first..last: `soc_crimes` (see `_soc_crimes_monthly`), `incidents`, `intelligence`
    or `disruptions`, from the SOC cells, or from the records for a scope they cannot apply."""
    source = "force_crimes" if what == "soc_crimes" else what
    if model.applies(scope, (source,)):
        counts = model.monthly(what, code, first, last, scope)
        return pl.DataFrame(
            {"month": list(counts), "records": list(counts.values())},
            schema={"month": pl.Date, "records": pl.Int64},
        )
    if what == "soc_crimes":
        frame = _soc_crimes_monthly(store, model.set_name, code, first, last, scope)
        return frame.rename({"soc_crimes": "records"})
    table, date_col = _SOC_MONTHLY[what]
    frame = _monthly(store, table, date_col, model.set_name, code, first, last, scope)
    return frame.group_by("month").agg(pl.col("records").sum())


def _soc_crimes_monthly(
    store: Store, by: str, code: str, first: dt.date, last: dt.date, scope: Scope = EVERYTHING
) -> pl.DataFrame:
    """Force crimes in the area linked to any group member, or flagged firearms/cannabis."""
    start, end = _dates(first, last)
    crimes = store.soc_frame(
        "soc_force_crimes", by, ("recorded_date", start, end), area_code=code, scope=scope
    )
    members = store.soc_frame("soc_memberships", columns=["nominal_id"], scope=scope)
    linked = (
        store.soc_frame("soc_nominal_crimes", scope=scope)
        .join(members, on="nominal_id", how="semi")["crime_ref"]
        .unique()
    )
    soc = crimes.filter(
        pl.col("crime_ref").is_in(linked.implode())
        | pl.col("firearms_discharged")
        | pl.col("cannabis_production")
    )
    return soc.group_by(pl.col("recorded_date").dt.truncate("1mo").alias("month")).agg(
        pl.len().cast(pl.Int64).alias("soc_crimes")
    )


def _groups_in(store: Store, by: str, code: str, scope: Scope = EVERYTHING) -> pl.DataFrame:
    """Groups with members whose home address is in the area (from the SOC cells where they
    can apply `scope`)."""
    model = soc_cells.cells(store, by)
    if model.applies(scope, ("groups",)):
        return model.groups_in(code, scope)
    return _groups_from_records(store, by, code, scope)


def _groups_from_records(
    store: Store, by: str, code: str, scope: Scope = EVERYTHING
) -> pl.DataFrame:
    """As `_groups_in`, read from the records."""
    homes = (
        store.soc_frame("soc_addresses", by, area_code=code, scope=scope)
        .filter(pl.col("link_type") == "home")
        .select("nominal_id")
    )
    members = store.soc_frame("soc_memberships", scope=scope).join(
        homes, on="nominal_id", how="semi"
    )
    return (
        members.group_by("group_id")
        .agg(pl.len().alias("members_resident"))
        .join(
            store.soc_frame("soc_groups", scope=scope).select(
                "group_id", "name", "group_type", "ocg_band", "status"
            ),
            on="group_id",
        )
        .sort(["members_resident", "group_id"], descending=[True, False])
    )


def chb_periods(
    phases: list[tuple[str, dt.date, dt.date | None]], first_held: dt.date, last_held: dt.date
) -> tuple[dt.date, list[tuple[str, dt.date, dt.date]], int, dt.date, tuple[dt.date, dt.date]]:
    """A CHB site's periods from its phases (name, start date, end date or None: ongoing)
    and the first and last police.uk months held: (the month Clear starts, each phase's
    (name, first month, last month) clipped to the last month held, the before period's
    wanted length in months, its wanted first month, and its (first, last) month).

    Before = as many months as the phases span (at most 12, at least 1), ending the month
    before Clear starts, and starting no earlier than the first month held (so it may be
    shorter than wanted, or empty: first > last).
    """
    clear_month = min(start for _, start, _ in phases).replace(day=1)
    periods = []
    for phase, start_date, end_date in phases:
        start = start_date.replace(day=1)
        end = min((end_date or last_held).replace(day=1), last_held)
        if end >= start:
            periods.append((phase, start, end))
    span = sum(len(month_range(s, e)) for _, s, e in periods) or 1
    length = min(12, span)
    wanted = shift_month(clear_month, -length)
    before = (max(first_held, wanted), shift_month(clear_month, -1))
    return clear_month, periods, length, wanted, before


def monthly_mean(total: int, months_with_data: int) -> float | None:
    """A CHB figure per month: the total over the months its source holds data for (months
    without data are left out, not counted as zero), to 2 decimals; None if there are none."""
    return round(total / months_with_data, 2) if months_with_data else None


def chb_view(store: Store, site: str, scope: Scope = EVERYTHING) -> HarmResult:
    """Before/after figures by phase for one CHB site: crime, ASB, SOC crimes, incidents,
    intelligence and disruptions inside the site polygon, per month, with the periods stated,
    counted from the rows `scope` lets the reader see.

    Before = as many months as the site's phases span (at most 12), ending the month before
    Clear starts. Police.uk months with no data are left out of the monthly means.
    This is before/after only: it does not control for trends or displacement.
    """
    if CHB_SET not in {s.name for s in store.area_sets()}:
        raise NotFound("no CHB sites held: import their polygons as the `chb` area set")
    names = store.area_list(CHB_SET)
    if site not in names["area_code"].to_list():
        raise NotFound(f"no CHB site {site!r}; sites: {', '.join(names['area_code'])}")
    phases = (
        store.soc_frame("soc_chb_phases").filter(pl.col("site_code") == site).sort("start_date")
    )
    if phases.is_empty():
        raise NotFound(
            f"no phases held for CHB site {site}; import them with "
            "`placeharm import chb-phases FILE`"
        )
    held = store.coverage().filter(pl.col("source_kind").is_in(CRIME_SOURCES))["month"]
    if held.is_empty():
        raise NotFound("no police.uk street data held")
    last_held: dt.date = held.max()  # type: ignore[assignment]
    first_held: dt.date = held.min()  # type: ignore[assignment]
    clear_month, periods, length, wanted, before = chb_periods(
        phases.select("phase", "start_date", "end_date").rows(), first_held, last_held
    )
    rows = [("Before", *before), *periods]
    model = soc_cells.cells(store, CHB_SET)
    asb = pl.col("kind") == "Anti-social behaviour"
    metrics: dict[str, tuple[str, str, pl.Expr | None]] = {
        "crimes": ("crimes", "month", asb.not_()),
        "asb": ("crimes", "month", asb),
        "soc_crimes": ("soc", "recorded_date", None),
        "incidents": ("soc_incidents", "occurred_date", None),
        "intelligence": ("soc_intelligence", "reported_date", None),
        "disruptions": ("soc_disruptions", "disruption_date", None),
    }
    police_held = {m for m in held.to_list()}
    out: list[dict[str, object]] = []
    dropped: list[str] = []
    for phase, start, end in rows:
        months = month_range(start, end) if end >= start else []
        gaps = set(gap_months(store, start, end)) if months else set()
        covered = [m for m in months if f"{m:%Y-%m}" not in gaps]
        gone: list[str] = []
        record: dict[str, object] = {
            "phase": phase,
            "from": f"{start:%Y-%m}" if months else None,
            "to": f"{end:%Y-%m}" if months else None,
            "months": len(months),
            "police_uk_months": len(covered),
        }
        for name, (table, column, pick) in metrics.items():
            # a month the metric's source holds nothing for, force-wide, is a gap: left out
            # of the mean, never a zero (issue 15)
            held_here = police_held if table == "crimes" else _chb_held(model, name)
            used = [m for m in months if m in held_here]
            missing = [f"{m:%Y-%m}" for m in months if m not in held_here]
            if missing:
                dropped.append(f"{phase} {_LABELS[name]}: {', '.join(missing)}")
                gone.append(f"{_LABELS[name]} {', '.join(missing)}")
            if table == "soc" or table in ("soc_incidents", "soc_intelligence", "soc_disruptions"):
                frame = (
                    _soc_monthly(store, model, name, site, start, end, scope) if months else None
                )
                total = int(frame["records"].sum()) if frame is not None else 0
            else:
                counts = (
                    _monthly(store, table, column, CHB_SET, site, start, end, scope)
                    if months
                    else None
                )
                if counts is not None and pick is not None:
                    counts = counts.filter(pick)
                total = int(counts["records"].sum()) if counts is not None else 0
            if table != "crimes":  # police.uk's months: police_uk_months
                record[f"{name}_months"] = len(used)
            record[f"{name}_per_month"] = monthly_mean(total, len(used))
        record["months_without_data"] = "; ".join(gone) or None
        out.append(record)
    result = pl.DataFrame(out)
    base = result.row(0, named=True)
    for name in metrics:
        col = f"{name}_per_month"
        result = result.with_columns(
            pl.when(pl.lit(base[col] or 0) > 0)
            .then((pl.col(col) / base[col] - 1) * 100)
            .round(1)
            .alias(f"{name}_change_%")
        )
    meta: dict[str, object] = {
        "site": site,
        "site_name": names.filter(pl.col("area_code") == site)["area_name"][0],
        "phases": [
            {
                "phase": r["phase"],
                "start": str(r["start_date"]),
                "end": str(r["end_date"]) if r["end_date"] else None,
            }
            for r in phases.iter_rows(named=True)
        ],
        "before": {"from": f"{before[0]:%Y-%m}", "to": f"{before[1]:%Y-%m}"},
        "synthetic": _synthetic(store),
    }
    notes = [DEMO_BANNER] if meta["synthetic"] else []
    notes.extend(_chb_truth(meta, base, before, wanted, clear_month, length, dropped))
    notes.append(
        (
            f"before = {before[0]:%Y-%m}..{before[1]:%Y-%m}"
            if before[1] >= before[0]
            else "before = no month"
        )
        + "; each phase's monthly mean is compared "
        "with it. Before/after alone: no control area, no displacement buffer"
    )
    return HarmResult("chb", meta, result, notes)


# -- truthful figures (issue 15) ------------------------------------------------------------
# A month a source holds no record for, force-wide, is a gap: its figures are null ("no data"),
# never 0 and never a -100% change. Residents (home-address measures) are a snapshot "as of"
# a date: they take part in a period's score but never in its change.

SNAPSHOT_SOURCES = frozenset({"nominals"})
_LABELS = {
    "crimes": "police.uk crimes",
    "asb": "anti-social behaviour",
    "soc_crimes": "SOC crimes",
    "incidents": "incidents",
    "intelligence": "intelligence",
    "disruptions": "disruptions",
}
_SERIES_SOURCES = {
    "soc_crimes": "force_crimes",
    "incidents": "incidents",
    "intelligence": "intelligence",
    "disruptions": "disruptions",
}


def dated_sources(measures: MeasureSet) -> tuple[str, ...]:
    """The dated SOC sources the measures count (residents are not dated: a snapshot)."""
    return tuple(sorted({m.source for m in measures.measures} - SNAPSHOT_SOURCES))


def soc_held_months(model: soc_cells.SocCells, measures: MeasureSet) -> frozenset[dt.date] | None:
    """The months for which the SOC data `measures` count is held (`SocCells.held_months`):
    those every dense dated source holds (a month one lacks is a gap for the score), or
    with no dense source, any month from the first to the last record of the sources.
    None when every measure is a snapshot (residents)."""
    sources = dated_sources(measures)
    if not sources:
        return None
    dense = [model.held_months(s) for s in sources if model.dense(s)]
    if dense:
        return frozenset.intersection(*dense)
    return frozenset().union(*(model.held_months(s) for s in sources))


@dataclass(frozen=True, slots=True)
class PeriodData:
    """What a period and its comparison period hold of the SOC data a score counts."""

    held: list[str]  # months of the period with data
    gaps: list[str]  # months of the period without
    previous_held: list[str]
    previous_gaps: list[str]
    first_held: str | None  # the first and last month with data, any period
    last_held: str | None
    snapshot_only: bool

    @property
    def empty(self) -> bool:
        """No SOC data at all in the period (and a dated measure to count)."""
        return not self.snapshot_only and not self.held

    def change_reason(self, previous: str) -> str | None:
        """Why change against `previous` (a "YYYY-MM..YYYY-MM" label) cannot be computed, or
        None when it can: both periods held in full."""
        if self.snapshot_only:
            return (
                "no change over time: the chosen measures count residents (home addresses), "
                "a snapshot as of a date, not events in a period"
            )
        if self.empty:
            return "no change: there is no SOC data in this period"
        if not self.previous_held:
            return (
                f"no change: there is no SOC data in the comparison period {previous} "
                f"(SOC data is held {self.first_held} to {self.last_held})"
            )
        if self.previous_gaps or self.gaps:
            missing = ", ".join([*self.previous_gaps, *self.gaps])
            return (
                f"no change: no SOC data for {missing}, so this period and the comparison "
                f"period {previous} would not compare like with like; choose a period "
                "without gaps"
            )
        return None


def period_data(
    model: soc_cells.SocCells, measures: MeasureSet, first: dt.date, last: dt.date
) -> PeriodData:
    """Which months of [first, last] and of the previous period of the same length hold the
    SOC data `measures` count."""
    held = soc_held_months(model, measures)
    months = month_range(first, last)
    previous = month_range(shift_month(first, -len(months)), shift_month(first, -1))
    if held is None:
        return PeriodData([], [], [], [], None, None, True)

    def split(ms: list[dt.date]) -> tuple[list[str], list[str]]:
        return [f"{m:%Y-%m}" for m in ms if m in held], [f"{m:%Y-%m}" for m in ms if m not in held]

    now_held, now_gaps = split(months)
    prev_held, prev_gaps = split(previous)
    return PeriodData(
        now_held,
        now_gaps,
        prev_held,
        prev_gaps,
        f"{min(held):%Y-%m}" if held else None,
        f"{max(held):%Y-%m}" if held else None,
        False,
    )


def default_period(
    model: soc_cells.SocCells, measures: MeasureSet, months: int = 12
) -> tuple[dt.date, dt.date] | None:
    """The latest period (ending in the last month with SOC data, at most `months` long, as
    long as possible) that is held in full and whose comparison period (the months just
    before, as many) is held in full too, so change and rank movement can be computed; None
    when no such period exists (or every measure is a snapshot)."""
    held = soc_held_months(model, measures)
    if not held:
        return None
    last = max(held)
    for length in range(months, 0, -1):
        first = shift_month(last, 1 - length)
        if all(m in held for m in month_range(shift_month(first, -length), last)):
            return first, last
    return None


def snapshot_as_of(model: soc_cells.SocCells, last: dt.date) -> dt.date:
    """The date a period's resident counts stand for: the period's last day, or the last
    dated SOC record held if that is earlier (nothing later is known)."""
    end = month_end(last)
    latest = model.summary[1]
    return min(end, latest) if latest is not None else end


def _previous_with_snapshot(
    previous: pl.DataFrame, now: pl.DataFrame, measures: MeasureSet
) -> pl.DataFrame:
    """area_code, previous_soc_harm: the previous period's dated measures plus this period's
    residents, so residents (a snapshot) never make a change over time."""
    snap = [f"{m.id}_harm" for m in measures.measures if m.source in SNAPSHOT_SOURCES]
    dated = [f"{m.id}_harm" for m in measures.measures if m.source not in SNAPSHOT_SOURCES]
    resident = pl.sum_horizontal(snap) if snap else pl.lit(0.0)
    return (
        previous.select(
            "area_code", (pl.sum_horizontal(dated) if dated else pl.lit(0.0)).alias("_dated")
        )
        .join(now.select("area_code", resident.alias("_resident")), on="area_code", how="left")
        .select(
            "area_code",
            (pl.col("_dated") + pl.col("_resident").fill_null(0.0)).alias("previous_soc_harm"),
        )
    )


def _soc_series_gaps(table: pl.DataFrame, model: soc_cells.SocCells) -> pl.DataFrame:
    """The ward view's SOC series with months their source holds nothing for (force-wide)
    set to null: no data, not zero."""
    return table.with_columns(
        pl.when(pl.col("month").is_in(sorted(model.held_months(source))))
        .then(pl.col(name))
        .otherwise(None)
        .alias(name)
        for name, source in _SERIES_SOURCES.items()
    )


def _chb_held(model: soc_cells.SocCells, name: str) -> frozenset[dt.date]:
    return model.held_months(_SERIES_SOURCES[name])


def _chb_truth(
    meta: dict[str, object],
    base: dict[str, object],
    before: tuple[dt.date, dt.date],
    wanted: dt.date,
    clear_month: dt.date,
    length: int,
    dropped: list[str],
) -> list[str]:
    """What a CHB page says about its before period and its gaps; sets meta["comparable"]
    and meta["before_months"]."""
    notes = []
    months = len(month_range(*before)) if before[1] >= before[0] else 0
    meta["before_months"] = months
    meta["before_wanted_months"] = length
    meta["months_dropped"] = dropped
    if months == 0:
        meta["comparable"] = False
        notes.append(
            f"no comparison: there is no police.uk data before Clear starts ({clear_month:%Y-%m}), "
            "so the before period is empty and no change is computed"
        )
        return notes
    meta["comparable"] = True
    if before[0] > wanted:
        notes.append(
            f"the before period should be {length} months ({wanted:%Y-%m} to "
            f"{before[1]:%Y-%m}, as long as the phases, at most 12) but data is held only "
            f"from {before[0]:%Y-%m}: it covers {months} month{'s' if months != 1 else ''}"
        )
    refused = [_LABELS[name] for name in _LABELS if base.get(f"{name}_per_month") is None]
    if refused:
        notes.append(
            f"no change for {', '.join(refused)}: the before period holds no data for "
            f"{'it' if len(refused) == 1 else 'them'}"
        )
    if dropped:
        notes.append(
            "months without data are left out of the monthly means (no data, not zero): "
            + "; ".join(dropped)
        )
    return notes
