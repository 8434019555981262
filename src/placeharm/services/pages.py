"""The data behind every web page, built once and rendered as HTML, JSON, CSV or GeoJSON.

Every function takes the signed-in `User` and asks the policy first; what a role may not see
is never put in the result, so no format can leak it.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import math
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import polars as pl
import shapely

from placeharm.errors import DataError, NotFound
from placeharm.harm import HarmIndex, canonical_spec
from placeharm.model import CRIME_TYPES, month_end, month_range, parse_month, shift_month
from placeharm.services import (
    drawings,
    harm,
    indices,
    labels,
    maps,
    mopi,
    network,
    outcomes,
    policy,
    queries,
    soc,
)
from placeharm.services.policy import User
from placeharm.soc import cells as soc_cells
from placeharm.soc.measures import MeasureSet, load_measures
from placeharm.store.base import Scope, Store

T = TypeVar("T")
MARKING = "OFFICIAL-SENSITIVE"
# Pages whose content depends on the reader's role only (the policy), never on who they are
# or on what they have justified: one built page serves every user of the role (issue 14).
# Their "user" entry is the requester's, put in when the page is sent.
ROLE_PAGES = frozenset(
    {"overview", "area_geojson", "ward", "ward_geojson", "chb", "records", "overview_focus"}
)
RISK_RULE = (
    "High: in the top 10% of areas by SOC primary harm score, or in the top 25% and up by 50% "
    "or more on the previous period. Medium: otherwise in the top 25%. Low: the rest."
)
PAGE_SIZE = 50


@dataclass(slots=True)
class Page:
    """One page's data: what the HTML shows and the JSON twin returns."""

    kind: str
    title: str
    data: dict[str, Any]
    tables: dict[str, pl.DataFrame] = field(default_factory=dict)
    # the web layer's encodings of this page (JSON twin, <script> JSON, audit identifiers),
    # made once per built page and reused while it is cached (issue 14)
    encoded: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "title": self.title,
            "marking": MARKING,
            **self.data,
            "tables": {name: frame.to_dicts() for name, frame in self.tables.items()},
        }


@dataclass(frozen=True, slots=True)
class Filters:
    """What the URL says: area set, period, harm index, SOC measures and police.uk crime
    types (an empty selection means all of them)."""

    by: str = "ward"
    first: dt.date | None = None
    last: dt.date | None = None
    index: str = "css"
    measures: tuple[str, ...] = ()
    types: tuple[str, ...] = ()

    @classmethod
    def parse(
        cls,
        by: str | None,
        first: str | None,
        last: str | None,
        index: str | None,
        measures: list[str] | None = None,
        types: list[str] | None = None,
        registered: Mapping[str, HarmIndex] | None = None,
    ) -> Filters:
        """Values from the URL; `measures` and `types` may repeat or be comma-separated.
        `index` must name a shipped index or one of `registered` (the store's registry,
        `services.indices.indices`): any other value, a file path included, is the one
        UnknownIndex 400, and no file is ever opened."""
        known = [m.id for m in load_measures().measures]
        return cls(
            by or "ward",
            parse_month(first) if first else None,
            parse_month(last) if last else None,
            canonical_spec(index or "css", registered),
            _choose(measures, known, "SOC measure"),
            _choose(types, list(CRIME_TYPES), "police.uk crime type"),
        )

    def period(self, store: Store, months: int = 12) -> tuple[dt.date, dt.date]:
        if self.first and self.last:
            return self.first, self.last
        if not self.first and not self.last:
            chosen = _soc_default_period(store, self.by, self.measure_set(), months)
            if chosen is not None:
                return chosen
        return queries.default_period(_coverage(store), self.first, self.last, months)

    def query(self, first: dt.date, last: dt.date) -> dict[str, str]:
        out = {"by": self.by, "from": f"{first:%Y-%m}", "to": f"{last:%Y-%m}", "index": self.index}
        if self.measures:
            out["measures"] = ",".join(self.measures)
        if self.types:
            out["types"] = ",".join(self.types)
        return out

    def measure_set(self) -> MeasureSet:
        """The shipped measures, or the ones chosen."""
        every = load_measures()
        if not self.measures:
            return every
        chosen = tuple(m for m in every.measures if m.id in self.measures)
        return MeasureSet(chosen, every.source, every.notes)

    def crime_types(self) -> list[str] | None:
        return list(self.types) or None

    def notes(self) -> list[str]:
        """What the page says about a narrowed selection, so no one mistakes it for all."""
        out = []
        if self.measures:
            out.append(
                f"SOC primary harm score from {len(self.measures)} of "
                f"{len(load_measures().measures)} measures: {labels.measure_labels(self.measures)}"
            )
        if self.types:
            out.append(self.types_note())
        return out

    def types_note(self) -> str:
        return f"police.uk crimes of these types only: {', '.join(self.types)}"


def _choose(values: list[str] | None, known: list[str], what: str) -> tuple[str, ...]:
    """The chosen values in their canonical order; () for none or all of them."""
    chosen = {v.strip() for value in values or [] for v in value.split(",") if v.strip()}
    unknown = sorted(chosen - set(known))
    if unknown:
        raise DataError(f"unknown {what} {', '.join(map(repr, unknown))}; use: {', '.join(known)}")
    if not chosen or chosen == set(known):
        return ()
    return tuple(k for k in known if k in chosen)


FORM_INDICES = ("css", "css:northumbria", "cchi")  # shipped specs the filter form offers


def filter_options(store: Store | None = None) -> dict[str, Any]:
    """What the filter form offers (with a store: its registered harm indices too)."""
    if store is not None:
        return _memoised(store, ("filter_options",), lambda: _filter_options(store))
    return _filter_options(None)


def _filter_options(store: Store | None) -> dict[str, Any]:
    registered = sorted(indices.indices(store)) if store is not None else []
    return {
        "measures": [{"id": m.id, "label": m.label} for m in load_measures().measures],
        "crime_types": list(CRIME_TYPES),
        "indices": [*FORM_INDICES, *registered],
    }


def data_as_of(store: Store) -> dict[str, Any]:
    """What every page shows: the newest import, and whether DEMO DATA is held."""

    def read() -> dict[str, Any]:
        import_id, finished = store.latest_import()
        return {
            "import_id": import_id,
            "data_as_of": finished.isoformat(timespec="seconds") if finished else None,
            "synthetic": store.soc_summary()[2],
        }

    return dict(_memoised(store, ("data_as_of",), read))


def _common(
    store: Store, user: User, filters: Filters, first: dt.date, last: dt.date
) -> dict[str, Any]:
    return {
        **data_as_of(store),
        "user": {"username": user.username, "role": user.role.value},
        "filters": filters.query(first, last),
        "filter_options": filter_options(store),
        "record_kinds": policy.record_kinds(user),
    }


def _risk(table: pl.DataFrame) -> pl.DataFrame:
    """Risk levels over the areas with SOC harm in the period (issue 15): an area with none is
    "None" and not ranked; tied areas share a level, placed by the last position they share
    (so a level never holds more than its share of areas; see `_risk_rule`)."""
    harmed = pl.col("soc_harm").fill_null(0) > 0
    n = int(table.select(harmed.sum()).item() or 0)
    high, medium = math.ceil(0.10 * n), math.ceil(0.25 * n)
    last = pl.col("soc_harm").rank("max", descending=True)
    return table.with_columns(
        pl.when(pl.col("soc_harm").is_null())
        .then(pl.lit(None, pl.String))
        .when(~harmed)
        .then(pl.lit("None"))
        .when(last <= high)
        .then(pl.lit("High"))
        .when((last <= medium) & (pl.col("pct_change").fill_null(0) >= 50))
        .then(pl.lit("High"))
        .when(last <= medium)
        .then(pl.lit("Medium"))
        .otherwise(pl.lit("Low"))
        .alias("risk")
    )


def overview(store: Store, user: User, filters: Filters) -> Page:
    """Force overview: areas by SOC primary harm score, change, risk, trends, biggest risers."""
    policy.require(user, "overview")
    policy.partner_area_set(user, filters.by)
    first, last = filters.period(store)
    index = _index(store, filters.index)
    measures = filters.measure_set()
    scope = _scope(store, user)
    ranked = soc.soc_rank(store, filters.by, first, last, index, measures, scope)
    truth = _truthful(store, filters.by, measures, first, last, ranked)
    table = _risk(truth.table)
    trend = harm.series(
        store, filters.by, first, last, index, crime_types=filters.crime_types()
    ).table
    sparks = trend.group_by("area_code", maintain_order=True).agg(
        pl.col("harm").round(1).alias("monthly_harm")
    )
    table = table.join(sparks, on="area_code", how="left", maintain_order="left")
    rising = table.filter(pl.col("change") > 0).sort("change", descending=True).head(5)
    keep = [
        "rank",
        "area_code",
        "area_name",
        "soc_harm",
        "harm_share",
        "change",
        "pct_change",
        "rank_movement",
        "risk",
        *[m.id for m in measures.measures],
        "monthly_harm",
    ]
    data = _common(store, user, filters, first, last) | {
        "period": {"from": f"{first:%Y-%m}", "to": f"{last:%Y-%m}"},
        "months": [m for m in trend["month"].unique(maintain_order=True).to_list()],
        "gap_months": _gap_months(store, first, last),
        "measures": [{"id": m.id, "label": m.label} for m in measures.measures],
        "risk_rule": _risk_rule(table, truth.data["no_soc_data"]),
        "index": ranked.meta["index"],
        "notes": filters.notes() + ranked.notes + truth.notes,
        "synthetic": ranked.meta["synthetic"],
        **truth.data,
    }
    data["alerts"] = _alerts_panel(store, user)  # issue 16: web/templates/_alerts_panel.html
    from placeharm.services import dashboard  # it builds on this module: imported here

    data |= dashboard.panels(store, user, filters, first, last, measures, table, data, scope)
    return Page(
        "overview",
        f"Force overview: {filters.by} areas by SOC harm",
        data,
        {"areas": table.select(keep), "rising": rising.select(keep[:9])},
    )


def area_geojson(store: Store, user: User, filters: Filters, page: Page | None = None) -> Page:
    """The area polygons with the overview figures, for the map and for GIS. `page`: the
    overview for these filters if already built (the web layer passes its cached one)."""
    if page is None:
        page = overview(store, user, filters)
    scores = {r["area_code"]: r for r in page.tables["areas"].drop("monthly_harm").to_dicts()}
    features = [
        {
            "type": "Feature",
            "properties": {"area_code": code, "area_name": name, **scores.get(code, {})},
            "geometry": geometry,
        }
        for code, name, geometry in _area_features(store, filters.by)
    ]
    geojson = {
        "type": "FeatureCollection",
        "features": features,
        "marking": MARKING,
        "data_as_of": page.data["data_as_of"],
        "no_soc_data": page.data.get("no_soc_data", False),
    }
    return Page("geojson", page.title, geojson)


def ward_geojson(
    store: Store, user: User, code: str, filters: Filters, page: Page | None = None
) -> Page:
    """The ward map's points (crimes, incidents, intelligence, as the role allows and shaped
    as on the ward page: partners get shareable records at generalised locations), for GIS.
    Each feature's `layer` property says which kind it is. `page`: the ward page for these
    arguments if already built (the web layer passes its cached one)."""
    if page is None:
        page = ward(store, user, code, filters)
    features = [
        {
            "type": "Feature",
            "properties": {"layer": layer, **{k: v for k, v in row.items() if k != "details"}},
            "geometry": {"type": "Point", "coordinates": [row["longitude"], row["latitude"]]},
        }
        for layer, rows in page.data["points"].items()
        for row in rows
        if row.get("longitude") is not None and row.get("latitude") is not None
    ]
    geojson = {
        "type": "FeatureCollection",
        "features": features,
        "layers": list(page.data["points"]),
        "marking": MARKING,
        "data_as_of": page.data["data_as_of"],
    }
    return Page("geojson", page.title, geojson)


def ward(store: Store, user: User, code: str, filters: Filters) -> Page:
    """A ward for its neighbourhood team: monthly picture, measures, points for the map,
    groups and nominals (as the role allows), latest intelligence."""
    policy.require(user, "ward")
    policy.partner_area_set(user, filters.by)
    first, last = filters.period(store)
    scope = _scope(store, user)
    view = soc.ward_view(
        store,
        code,
        first,
        last,
        filters.by,
        _index(store, filters.index),
        filters.measure_set(),
        filters.crime_types(),
        scope,
    )
    points = _ward_points(store, user, filters, code, first, last, scope)
    crimes = points["crimes"]
    crime_total = int(crimes["crimes"].sum()) if crimes.height else 0
    ward_truth = _ward_truth(store, filters, first, last, view)
    tables = {"monthly": view.table, "measures": ward_truth.table}
    if policy.allowed(user, "group"):
        tables["groups"] = view.extra["groups"]
    tables["latest_intelligence"] = view.extra["latest_intelligence"]
    if policy.allowed(user, "nominal"):
        tables["nominals"] = _ward_nominals(store, user, filters.by, code, scope)
    chb_sites = _chb_sites(store)
    outlines, tables["chb_sites"] = _outlines(store, filters.by, code, bool(chb_sites))
    data = _common(store, user, filters, first, last) | {
        **{k: v for k, v in view.meta.items() if k != "synthetic"},
        "synthetic": view.meta["synthetic"],
        "notes": filters.notes() + view.notes + ward_truth.notes,
        **ward_truth.data,
        "points": {k: v.to_dicts() for k, v in points.items()},
        "crime_points": {
            "crimes": crime_total,
            "locations": crimes.height,
            "note": labels.points_note(user),  # a partner's points are generalised
        },
        "chb_sites": chb_sites,
        "outlines": outlines,
        # issue 15: how often crime here ends in a charge (services/outcomes.py)
        "outcomes": outcomes.outcome_rates(store, filters.by, first, last, code, scope),
        **_ward_map(store, user, filters.by, code, points, bool(chb_sites)),
    }
    return Page("ward", f"{view.meta['area_name']} ({code})", data, tables)


def briefing(store: Store, user: User, code: str, filters: Filters) -> Page:
    """The ward page as a briefing to print (issue 15): its figures and tables, a map of the
    ward among its neighbours shaded by SOC primary harm, and the trend, both drawn on the
    server (services/drawings.py), under the ward page's policy."""
    page = ward(store, user, code, filters)
    first, last = filters.period(store)
    ranked = soc.soc_rank(
        store,
        filters.by,
        first,
        last,
        indices.resolve(store, filters.index),
        filters.measure_set(),
        policy.scope(store, user),
    )
    harm_by_area = dict(
        zip(ranked.table["area_code"].to_list(), ranked.table["soc_harm"].to_list(), strict=True)
    )
    data = page.data | {
        "map": drawings.area_map(store.area_polygons(filters.by), code, harm_by_area),
        "trend": drawings.trend(page.tables["monthly"]),
        "index_label": labels.index_label(filters.index, fallback=str(filters.index)),
    }
    return Page("briefing", page.title, data, page.tables)


def _ward_outlines(
    store: Store, by: str, code: str, with_chb: bool
) -> tuple[dict[str, Any], pl.DataFrame]:
    """The ward's boundary and the CHB site polygons that overlap it, as GeoJSON for the
    ward map (`kind` "ward" or "chb"), and the sites as a table (the map's list equivalent)."""
    features: list[dict[str, Any]] = []
    sites: list[dict[str, Any]] = []
    ward = store.area_polygons(by, code)
    shape = shapely.from_wkb(ward["geometry_wkb"][0]) if ward.height else None
    if shape is not None:
        features.append(_outline("ward", code, ward["area_name"][0], shape))
    if with_chb and shape is not None:
        for site, name, wkb in store.area_polygons(soc.CHB_SET).iter_rows():
            polygon = shapely.from_wkb(wkb)
            if not shapely.intersects(polygon, shape):
                continue
            features.append(_outline("chb", site, name, polygon))
            inside = shapely.area(shapely.intersection(polygon, shape)) / shapely.area(polygon)
            sites.append({"site": site, "name": name, "share_in_ward": round(inside, 3)})
    table = pl.DataFrame(
        sites, schema={"site": pl.String, "name": pl.String, "share_in_ward": pl.Float64}
    )
    return {"type": "FeatureCollection", "features": features}, table


def _outline(kind: str, code: str, name: str | None, shape: shapely.Geometry) -> dict[str, Any]:
    simple = shapely.simplify(shape, 0.00005, preserve_topology=True)
    return {
        "type": "Feature",
        "properties": {"kind": kind, "code": code, "name": name},
        "geometry": json.loads(shapely.to_geojson(simple)),
    }


def chb(
    store: Store,
    user: User,
    site: str,
    buffer_m: float | None = None,
    control: str | None = None,
    buffer_control: str | None = None,
) -> Page:
    policy.require(user, "chb")
    view = soc.chb_view(store, site, _scope(store, user))
    data = {
        **data_as_of(store),
        "user": {"username": user.username, "role": user.role.value},
        "record_kinds": policy.record_kinds(user),
        **view.meta,
        "notes": view.notes,
    }
    tables = {"phases": view.table}
    # issue 16: the evaluation against a control and a buffer, beside the raw before/after
    from placeharm.services import evaluation

    data["evaluation"], tables["evaluation"] = evaluation.chb_section(
        store, site, _scope(store, user), buffer_m, control, buffer_control
    )
    # issue 15: the site's map, its ring as wide as the evaluation's buffer
    ring_m = data["evaluation"].get("buffer_m") or evaluation.DEFAULT_BUFFER_M
    data["map"] = _chb_map(store, user, site, view.meta, view.table, float(ring_m))
    return Page("chb", f"CHB site: {view.meta['site_name']}", data, tables)


# -- truthful figures (issue 15) ------------------------------------------------------------


@dataclass(slots=True)
class _Truth:
    """A page's figures made truthful: the table, what the page data adds, its notes."""

    table: pl.DataFrame
    data: dict[str, Any]
    notes: list[str]


def _soc_default_period(
    store: Store, by: str, measures: MeasureSet, months: int
) -> tuple[dt.date, dt.date] | None:
    """The default period of the SOC pages (`soc.default_period`): the latest whose
    comparison period holds SOC data too; None when none does (or no SOC cells for `by`)."""
    if by not in soc_cells.set_names(store):
        return None
    key = ("soc_default_period", by, tuple(m.id for m in measures.measures), months)
    return _memoised(
        store, key, lambda: soc.default_period(soc_cells.cells(store, by), measures, months)
    )


def _snapshot_note(
    model: soc_cells.SocCells, measures: MeasureSet, last: dt.date
) -> tuple[dict[str, Any] | None, list[str]]:
    residents = [m for m in measures.measures if m.source in soc.SNAPSHOT_SOURCES]
    if not residents:
        return None, []
    as_of = soc.snapshot_as_of(model, last)
    labels = ", ".join(m.label for m in residents)
    note = (
        f"Residents ({labels}) are a snapshot as of {as_of:%d %B %Y}: each person at the "
        "latest home address held in the period. They count in the score but never as "
        "change over time."
    )
    return {"as_of": as_of.isoformat(), "measures": [m.id for m in residents]}, [note]


def _period_notes(cover: soc.PeriodData, first: dt.date, last: dt.date) -> list[str]:
    if cover.empty:
        held = (
            f"SOC data is held from {cover.first_held} to {cover.last_held}"
            if cover.first_held
            else "no SOC data is held"
        )
        return [
            f"No SOC data for {first:%Y-%m} to {last:%Y-%m}: {held}. No area is scored, "
            "rated or ranked for this period and the map is not coloured."
        ]
    if cover.gaps:
        return [
            f"No SOC data for {', '.join(cover.gaps)}: those months are gaps, not zeros; "
            f"the score counts the months held ({', '.join(cover.held)})."
        ]
    return []


def _truthful(
    store: Store,
    by: str,
    measures: MeasureSet,
    first: dt.date,
    last: dt.date,
    ranked: harm.HarmResult,
) -> _Truth:
    """The overview's ranking made truthful: an area with no SOC harm is not ranked; change
    and rank movement only where both periods hold SOC data in full (else the reason); no
    score at all in a period without SOC data."""
    model = soc_cells.cells(store, by)
    cover = soc.period_data(model, measures, first, last)
    previous = f"{ranked.meta['previous_first_month']} to {ranked.meta['previous_last_month']}"
    reason = cover.change_reason(previous)
    table = ranked.table.with_columns(
        pl.when(pl.col("soc_harm") > 0).then(pl.col("rank")).alias("rank"),
        pl.when(pl.col("previous_soc_harm") > 0)
        .then(pl.col("rank_previous"))
        .alias("rank_previous"),
    ).with_columns((pl.col("rank_previous") - pl.col("rank")).alias("rank_movement"))
    if reason is not None:
        table = table.with_columns(
            pl.lit(None, pl.Float64).alias(c) for c in ("previous_soc_harm", "change", "pct_change")
        ).with_columns(pl.lit(None, pl.Int64).alias(c) for c in ("rank_previous", "rank_movement"))
    if cover.empty:
        dated = [m.id for m in measures.measures if m.source not in soc.SNAPSHOT_SOURCES]
        table = table.with_columns(
            pl.lit(None, pl.Float64).alias(c) for c in ("soc_harm", "harm_share")
        ).with_columns(
            pl.lit(None, pl.Int64).alias("rank"),
            *[pl.lit(None, table.schema[c]).alias(c) for c in dated],
            *[pl.lit(None, pl.Float64).alias(f"{c}_harm") for c in dated],
        )
    snapshot, snapshot_notes = _snapshot_note(model, measures, last)
    data = {
        "no_soc_data": cover.empty,
        "change_reason": reason,
        "previous_period": {
            "from": ranked.meta["previous_first_month"],
            "to": ranked.meta["previous_last_month"],
        },
        "soc_months": {
            "held": cover.held,
            "gaps": cover.gaps,
            "previous_held": cover.previous_held,
            "previous_gaps": cover.previous_gaps,
            "first_held": cover.first_held,
            "last_held": cover.last_held,
        },
        "snapshot": snapshot,
        "areas_with_soc_harm": int((table["soc_harm"].fill_null(0) > 0).sum()),
    }
    return _Truth(table, data, _period_notes(cover, first, last) + snapshot_notes)


def _risk_rule(table: pl.DataFrame, no_data: bool) -> str:
    """The risk rule in words, with the ranks it gives for this table (see `_risk`)."""
    if no_data:
        return "No SOC data in this period: no area is rated."
    n = int((table["soc_harm"].fill_null(0) > 0).sum())
    if n == 0:
        return "No area has SOC harm in this period: every area is None (no SOC harm)."
    high, medium = math.ceil(0.10 * n), math.ceil(0.25 * n)
    return (
        f"Levels are set among the {n} areas with SOC harm in this period (rank 1 has the "
        "most). Tied areas share a rank and a level, placed by the last place they share, so "
        "a level never holds more than its share of areas. "
        f"High: rank {high} or better (the top 10%), or rank {medium} or better (the top "
        "25%) and up 50% or more on the previous period. "
        f"Medium: otherwise rank {medium} or better. "
        "Low: the other areas with SOC harm. "
        "None: no SOC harm recorded in this period (not ranked)."
    )


def _ward_truth(
    store: Store, filters: Filters, first: dt.date, last: dt.date, view: harm.HarmResult
) -> _Truth:
    """The ward page's score, rank and change made truthful (as `_truthful`), its rank in
    words, and its measures marked as counted in the period or a residents' snapshot."""
    measures = filters.measure_set()
    model = soc_cells.cells(store, filters.by)
    cover = soc.period_data(model, measures, first, last)
    months = len(month_range(first, last))
    previous = f"{shift_month(first, -months):%Y-%m} to {shift_month(first, -1):%Y-%m}"
    reason = cover.change_reason(previous)
    meta = view.meta
    harm_now = None if cover.empty else meta["soc_harm"]
    rank = meta["rank"] if harm_now else None
    if cover.empty:
        rank_text = "no SOC data in this period"
    elif not harm_now:
        rank_text = "no SOC harm recorded in this period"
    else:
        areas = {"ward": "wards", "lsoa": "LSOAs"}.get(filters.by, f"{filters.by} areas")
        rank_text = f"rank {rank} of {meta['areas_ranked']} {areas} with SOC harm"
    snapshot, snapshot_notes = _snapshot_note(model, measures, last)
    kinds = {
        m.label: (
            f"residents as of {snapshot['as_of']}"
            if snapshot and m.source in soc.SNAPSHOT_SOURCES
            else "in the period"
        )
        for m in measures.measures
    }
    table = view.extra["measures"]
    if table.height:
        table = table.with_columns(
            pl.col("measure").replace_strict(kinds, default=None).alias("counted")
        )
        if cover.empty:
            table = table.with_columns(
                pl.when(pl.col("counted") == "in the period")
                .then(None)
                .otherwise(pl.col(c))
                .alias(c)
                for c in ("count", "harm")
            )
    data = {
        "soc_harm": harm_now,
        "rank": rank,
        "rank_text": rank_text,
        "change": None if reason else meta["change"],
        "change_reason": reason,
        "no_soc_data": cover.empty,
        "soc_months": {"held": cover.held, "gaps": cover.gaps},
        "snapshot": snapshot,
    }
    return _Truth(table, data, _period_notes(cover, first, last) + snapshot_notes)


_RECORDS: dict[str, tuple[str, str, list[str], str]] = {
    # kind: table, date column, columns, default search column
    "crimes": (
        "crimes",
        "month",
        [
            "crime_id",
            "record_key",
            "month",
            "crime_type",
            "location",
            "latest_outcome",
            "latitude",
            "longitude",
        ],
        "crime_type",
    ),
    "force_crimes": (
        "soc_force_crimes",
        "recorded_date",
        [
            "crime_ref",
            "recorded_date",
            "offence_code",
            "crime_type",
            "firearms_discharged",
            "cannabis_production",
            "latitude",
            "longitude",
            "synthetic",
        ],
        "offence_code",
    ),
    "intelligence": (
        "soc_intelligence",
        "reported_date",
        [
            "intel_id",
            "reported_date",
            "source_evaluation",
            "intelligence_assessment",
            "handling_code",
            "topics",
            "subjects",
            "summary",
            "latitude",
            "longitude",
            "mopi_review_date",
            "synthetic",
        ],
        "topics",
    ),
    "incidents": (
        "soc_incidents",
        "occurred_date",
        [
            "incident_id",
            "occurred_date",
            "incident_type",
            "closing_code",
            "latitude",
            "longitude",
            "synthetic",
        ],
        "incident_type",
    ),
    "disruptions": (
        "soc_disruptions",
        "disruption_date",
        [
            "disruption_id",
            "disruption_date",
            "four_p",
            "disruption_type",
            "target_group_id",
            "target_nominal_id",
            "latitude",  # located: the area filter lists what a ward page counts
            "longitude",
            "synthetic",
        ],
        "disruption_type",
    ),
    "partner_events": (
        "soc_partner_events",
        "event_date",
        [
            "event_id",
            "event_date",
            "partner",
            "event_type",
            "handling_code",
            "description",
            "latitude",
            "longitude",
            "synthetic",
        ],
        "event_type",
    ),
    "nominals": (
        "soc_nominals",
        "mopi_review_date",
        [
            "nominal_id",
            "surname",
            "forename",
            "date_of_birth",
            "ocg_member",
            "priority_individual",
            "pcg_member",
            "ucg_member",
            *policy.RESTRICTED_FLAGS,
            "mopi_review_date",
            "synthetic",
        ],
        "surname",
    ),
    "groups": (
        "soc_groups",
        "",
        ["group_id", "name", "group_type", "ocg_band", "status", "synthetic"],
        "name",
    ),
}


@dataclass(frozen=True, slots=True)
class _RecordsQuery:
    """One records selection, checked against the policy: what `records` pages through and
    `records_export` streams (the same rows, counted the same way)."""

    table: str
    columns: list[str]
    date_col: str
    first: dt.date | None
    last: dt.date | None
    area: tuple[str, str] | None
    search: tuple[str, str] | None
    sort: str
    descending: bool
    include: tuple[str, list[str]] | None
    scope: Scope
    hidden: list[str]
    matches_nothing: bool  # the area box named no area: nothing to read
    area_note: str | None


def _records_query(
    store: Store,
    user: User,
    kind: str,
    filters: Filters,
    q: str | None,
    sort: str | None,
    descending: bool,
    area: str | None,
) -> _RecordsQuery:
    policy.require(user, "records")
    policy.require_records(user, kind)
    table, date_col, columns, search_col = _RECORDS[kind]
    area_code, area_note = None, None
    if area:
        policy.partner_area_set(user, filters.by)
        if filters.by not in _area_set_names(store):  # else a store error, a 500
            raise NotFound(f"no area set called {filters.by!r}")
        area_code, area_note = _area_named(store, filters.by, area)
    scope = _scope(store, user)
    hidden = policy.hidden_nominals(scope)
    if not policy.allowed(user, "nominal"):
        columns = [c for c in columns if c not in policy._PERSON_COLUMNS]
    if kind == "nominals" and not policy.cleared(user):
        columns = [c for c in columns if c not in policy.RESTRICTED_FLAGS]
    sort = sort or (date_col or columns[0])
    if sort not in columns or not policy.sortable(user, sort):
        allowed = [c for c in columns if policy.sortable(user, c)]
        raise DataError(f"cannot sort by {sort!r}; use one of: {', '.join(allowed)}")
    first = last = None
    if date_col and filters.first and filters.last:
        first = filters.first
        last = month_end(filters.last)
    located = table in ("crimes",) or "latitude" in columns
    if area and not located:
        raise DataError(f"{kind} have no location: the area filter does not apply")
    return _RecordsQuery(
        table,
        columns,
        date_col or columns[0],
        first,
        last,
        (filters.by, area_code) if area_code else None,
        (search_col, q) if q else None,
        sort,
        descending,
        ("crime_type", list(filters.types)) if kind == "crimes" and filters.types else None,
        scope,
        hidden,
        bool(area) and area_code is None,
        area_note,
    )


def _records_counts(
    store: Store, kind: str, query: _RecordsQuery, filters: Filters
) -> list[tuple[Any, int]] | None:
    """Crimes per month from the harm cube, for a crimes page sorted by month with no search
    and no scope rule on crimes (issue 14): the store then pages without counting or OFFSET
    over every record. None otherwise (the store counts)."""
    if kind != "crimes" or query.sort != "month" or query.search is not None:
        return None
    if query.scope.rules("crimes"):
        return None
    area = query.area[1] if query.area else None
    return _crimes_by_month(store, filters.by, area, filters.types, query.first, query.last)


def _area_named(store: Store, by: str, text: str) -> tuple[str | None, str | None]:
    """The area the records page's area box names: a code, or a name (any case); and what
    the page says about it. None when nothing, or more than one area, has that name."""
    text = text.strip()
    listed = store.area_list(by)
    if text in set(listed["area_code"].to_list()):
        return text, None
    named = listed.filter(pl.col("area_name").str.to_lowercase() == text.lower())
    if named.height == 1:
        code, name = named.row(0)
        return code, f"Area: {name} ({code})."
    word = {"ward": "ward", "lsoa": "LSOA"}.get(by, f"{by} area")
    if named.height > 1:
        codes = ", ".join(named["area_code"].to_list())
        return None, (
            f"{named.height} {word}s are called {text!r} ({codes}): type one of the codes. "
            "No records are listed until the area is one."
        )
    return None, (
        f"No {word} has the code or name {text!r}, so no records are listed. Choose a name "
        "from the suggestions or clear the area box."
    )


def _shape_records(user: User, kind: str, frame: pl.DataFrame, hidden: list[str]) -> pl.DataFrame:
    """Records as this role may see them (the page and the export alike)."""
    frame = policy.shape_people(user, frame, hidden)
    frame = policy.shape_located(user, frame)
    if kind == "nominals":
        frame = policy.shape_nominals(user, frame)
    return frame


def records(
    store: Store,
    user: User,
    kind: str,
    filters: Filters,
    q: str | None = None,
    sort: str | None = None,
    descending: bool = True,
    page: int = 1,
    area: str | None = None,
    page_size: int = PAGE_SIZE,
) -> Page:
    """Raw records of one kind the role may see: filter, sort, page through."""
    query = _records_query(store, user, kind, filters, q, sort, descending, area)
    if page < 1 or page > 1_000_000 or page_size < 1 or page_size > 1000:
        raise DataError("page is 1 to 1,000,000; page_size is 1 to 1000")
    if query.matches_nothing:
        frame, total = _no_records(store, query), 0
    else:
        frame, total = store.records_page(
            query.table,
            query.columns,
            query.first,
            query.last,
            query.date_col,
            query.area,
            query.search,
            query.sort,
            query.descending,
            page_size,
            (page - 1) * page_size,
            include=query.include,
            scope=query.scope,  # in the query, as in every total: lists and totals agree
            sort_counts=_records_counts(store, kind, query, filters),
        )
    frame = _shape_records(user, kind, frame, query.hidden)
    sort = query.sort
    notes = [filters.types_note()] if kind == "crimes" and filters.types else []
    if query.area_note:
        notes.insert(0, query.area_note)
    data = {
        **data_as_of(store),
        "user": {"username": user.username, "role": user.role.value},
        "record_kinds": policy.record_kinds(user),
        "kind": kind,
        "q": q,
        "sort": sort,
        "descending": descending,
        "page": page,
        "page_size": page_size,
        "total": total,
        "pages": max(1, math.ceil(total / page_size)),
        "columns": frame.columns,
        "area": area,
        "area_code": query.area[1] if query.area else None,
        "area_matched": not query.matches_nothing,
        # the names the area box suggests (a datalist): every area of the set
        "area_names": sorted(set(store.area_list(filters.by)["area_name"].drop_nulls()))
        if filters.by in {s.name for s in store.area_sets()}
        else [],
        # the current selection, for links (pages, export) that must keep it
        "query": {
            k: v
            for k, v in {
                "kind": kind,
                "q": q,
                "area": area,
                "by": filters.by if area else None,
                "from": f"{filters.first:%Y-%m}" if filters.first else None,
                "to": f"{filters.last:%Y-%m}" if filters.last else None,
                "sort": sort,
                "desc": "true" if descending else "false",
                "types": ",".join(filters.types) if kind == "crimes" else None,
            }.items()
            if v
        },
        "filters": {
            "by": filters.by,
            "from": f"{filters.first:%Y-%m}" if filters.first else None,
            "to": f"{filters.last:%Y-%m}" if filters.last else None,
            "types": ",".join(filters.types) if kind == "crimes" else None,
        },
        "filter_options": filter_options(store),
        "notes": notes,
    }
    return Page("records", f"Records: {kind.replace('_', ' ')}", data, {"records": frame})


def _no_records(store: Store, query: _RecordsQuery) -> pl.DataFrame:
    """The table's columns with no rows (the area box named no area)."""
    frame, _ = store.records_page(
        query.table,
        query.columns,
        None,
        None,
        query.date_col,
        None,
        None,
        query.sort,
        query.descending,
        0,
        0,
        scope=query.scope,
    )
    return frame


@dataclass(slots=True)
class RecordsExport:
    """Every record of a selection, for a download: how many, the columns, and the rows in
    frames (`batches`), read from one snapshot as the download goes (never all in memory)."""

    kind: str
    total: int
    columns: list[str]
    batches: Iterator[pl.DataFrame]


def records_export(
    store: Store,
    user: User,
    kind: str,
    filters: Filters,
    q: str | None = None,
    sort: str | None = None,
    descending: bool = True,
    area: str | None = None,
    batch_rows: int = 10_000,
) -> RecordsExport:
    """Every record the records page lists for this selection, as the role may see them
    (the same policy checks and shaping as `records`): the export of issue 15, with no cap."""
    query = _records_query(store, user, kind, filters, q, sort, descending, area)
    empty = _shape_records(user, kind, _no_records(store, query), query.hidden)
    if query.matches_nothing:
        return RecordsExport(kind, 0, empty.columns, iter(()))
    total, raw = store.records_stream(
        query.table,
        query.columns,
        query.first,
        query.last,
        query.date_col,
        query.area,
        query.search,
        query.sort,
        query.descending,
        include=query.include,
        scope=query.scope,
        batch_rows=batch_rows,
    )
    shaped = (_shape_records(user, kind, frame, query.hidden) for frame in raw)
    return RecordsExport(kind, total, empty.columns, _closing(raw, shaped))


def _closing(
    source: Iterator[pl.DataFrame], frames: Iterator[pl.DataFrame]
) -> Iterator[pl.DataFrame]:
    """`frames`, closing `source` (the store's read) when they end or are abandoned."""
    try:
        yield from frames
    finally:
        close = getattr(source, "close", None)
        if close is not None:
            close()


def nominal(store: Store, user: User, nominal_id: str, today: dt.date | None = None) -> Page:
    """One nominal as the role may see them; flagged when past their MoPI review date on
    `today` (the app's clock)."""
    policy.require(user, "nominal")
    scope = policy.scope(store, user)
    people = store.soc_frame("soc_nominals", scope=scope).filter(pl.col("nominal_id") == nominal_id)
    if people.is_empty():
        raise NotFound(f"no nominal {nominal_id}")
    person = policy.shape_nominals(user, people.drop("import_id", "source_line")).row(0, named=True)
    links = policy.shape_links(
        user,
        store.soc_frame("soc_nominal_links", scope=scope)
        .filter((pl.col("from_nominal") == nominal_id) | (pl.col("to_nominal") == nominal_id))
        .select("from_nominal", "to_nominal", "link_type"),
    )
    groups = (
        store.soc_frame("soc_memberships", scope=scope)
        .filter(pl.col("nominal_id") == nominal_id)
        .join(store.soc_frame("soc_groups").select("group_id", "name", "group_type"), on="group_id")
        .select("group_id", "name", "group_type", "role")
    )
    addresses = (
        store.soc_frame("soc_addresses")
        .filter(pl.col("nominal_id") == nominal_id)
        .select("address_id", "link_type", "address", "from_date", "to_date")
    )
    crimes = (
        store.soc_frame("soc_nominal_crimes")
        .filter(pl.col("nominal_id") == nominal_id)
        .join(store.soc_frame("soc_force_crimes"), on="crime_ref")
        .select("crime_ref", "role", "recorded_date", "offence_code", "crime_type")
        .sort("recorded_date", descending=True)
    )
    naming = store.soc_frame("soc_intelligence").filter(
        pl.col("subjects").fill_null("").str.split(";").list.contains(nominal_id)
    )
    intel = naming.select(
        "intel_id",
        "reported_date",
        "source_evaluation",
        "intelligence_assessment",
        "handling_code",
        "topics",
    ).sort("reported_date", descending=True)
    data = {
        **data_as_of(store),
        "user": {"username": user.username, "role": user.role.value},
        "record_kinds": policy.record_kinds(user),
        "nominal": person,
        "mopi": mopi.review(person.get("mopi_review_date"), today or mopi.system_today()),
        "cleared": policy.cleared(user),
        "network": network.network(store, user, "nominal", nominal_id),
    }
    name = f"{person.get('forename') or ''} {person.get('surname') or ''}".strip()
    return Page(
        "nominal",
        f"Nominal {nominal_id}: {name}",
        data,
        {
            "groups": groups,
            "links": links,
            "addresses": addresses,
            "crimes": crimes,
            "intelligence_by_month": _intelligence_by_month(naming),
            "intelligence": intel,
        },
    )


def _intelligence_by_month(intel: pl.DataFrame) -> pl.DataFrame:
    """Intelligence logs naming a person, by month reported, every month from the first to
    the last (a month with none is 0: the logs were searched and none named them), with how
    many came from a reliable source and were known directly or corroborated: 1A or 1B under
    3x5x2, A1, A2, B1 or B2 under 5x5x5 (the scheme defaults to 3x5x2)."""
    schema = {"month": pl.String, "logs": pl.UInt32, "reliable_and_known": pl.UInt32}
    dated = intel.filter(pl.col("reported_date").is_not_null())
    if dated.is_empty():
        return pl.DataFrame(schema=schema)
    monthly = dated.group_by(pl.col("reported_date").dt.truncate("1mo").alias("start")).agg(
        pl.len().alias("logs"),
        pl.when(pl.col("grading_scheme").fill_null("3x5x2") == "5x5x5")
        .then(
            pl.col("source_evaluation").is_in(["A", "B"])
            & pl.col("intelligence_assessment").is_in(["1", "2"])
        )
        .otherwise(
            (pl.col("source_evaluation") == "1")
            & pl.col("intelligence_assessment").is_in(["A", "B"])
        )
        .sum()
        .cast(pl.UInt32)
        .alias("reliable_and_known"),
    )
    first, last = monthly["start"].min(), monthly["start"].max()
    assert isinstance(first, dt.date) and isinstance(last, dt.date)
    months = pl.DataFrame({"start": pl.date_range(first, last, "1mo", eager=True)})
    return (
        months.join(monthly, on="start", how="left")
        .select(
            pl.col("start").dt.strftime("%Y-%m").alias("month"),
            pl.col("logs").fill_null(0).cast(pl.UInt32),
            pl.col("reliable_and_known").fill_null(0),
        )
        .sort("month")
    )


def group(store: Store, user: User, group_id: str) -> Page:
    policy.require(user, "group")
    scope = policy.scope(store, user)
    groups = store.soc_frame("soc_groups", scope=scope).filter(pl.col("group_id") == group_id)
    if groups.is_empty():
        raise NotFound(f"no group {group_id}")
    members = store.soc_frame("soc_memberships", scope=scope).filter(pl.col("group_id") == group_id)
    tables: dict[str, pl.DataFrame] = {}
    if policy.allowed(user, "nominal"):
        tables["members"] = members.join(
            store.soc_frame("soc_nominals").select(
                "nominal_id", "surname", "forename", "priority_individual"
            ),
            on="nominal_id",
        ).select("nominal_id", "surname", "forename", "role", "priority_individual")
    ids = members["nominal_id"].implode()
    crimes = (
        store.soc_frame("soc_nominal_crimes", scope=scope)
        .filter(pl.col("nominal_id").is_in(ids))
        .join(store.soc_frame("soc_force_crimes"), on="crime_ref")
        .unique("crime_ref")
    )
    tables["crimes_by_month"] = (
        crimes.group_by(pl.col("recorded_date").dt.strftime("%Y-%m").alias("month"))
        .agg(pl.len().alias("crimes"))
        .sort("month")
    )
    tables["disruptions"] = (
        store.soc_frame("soc_disruptions", scope=scope)
        .filter(pl.col("target_group_id") == group_id)
        .select("disruption_id", "disruption_date", "four_p", "disruption_type")
        .sort("disruption_date", descending=True)
    )
    data = {
        **data_as_of(store),
        "user": {"username": user.username, "role": user.role.value},
        "record_kinds": policy.record_kinds(user),
        "group": groups.drop("import_id", "source_line").row(0, named=True),
        "member_count": members.height,
        "cleared": policy.cleared(user),
        "network": network.network(store, user, "group", group_id),
        "map": _group_map(store, user, group_id, members, crimes, scope),
    }
    return Page("group", f"Group {group_id}: {groups['name'][0]}", data, tables)


MOPI_SHOWN = 1000  # rows on the page; the CSV has every one


def mopi_reviews(store: Store, user: User, today: dt.date, limit: int | None = MOPI_SHOWN) -> Page:
    """Nominals and intelligence past their MoPI review date on `today`: how many of each,
    and the records (identifier, review date, days overdue; nothing of their content)."""
    overdue = mopi.overdue(store, user, today)
    shown = overdue if limit is None else overdue.head(limit)
    notes = []
    if shown.height < overdue.height:
        notes.append(
            f"the {shown.height:,} most overdue of {overdue.height:,} are listed; "
            "the CSV download has them all"
        )
    data = {
        **data_as_of(store),
        "user": {"username": user.username, "role": user.role.value},
        "record_kinds": policy.record_kinds(user),
        "today": today.isoformat(),
        "counts": mopi.counts(overdue),
        "total": overdue.height,
        "notes": notes,
    }
    return Page("mopi", "Past MoPI review", data, {"overdue": shown})


def crime_history(store: Store, user: User, crime_id: str) -> Page:
    """A crime's versions and outcomes with their imports, files and vintages (issue 13):
    the records explorer's history view, under the records page's policy."""
    from placeharm.services import integrity

    policy.require(user, "records")
    policy.require_records(user, "crimes")
    versions, outcomes = integrity.crime_history(store, crime_id)
    tables = {
        "versions": policy.shape_located(user, versions),
        "outcomes": policy.shape_located(user, outcomes),
    }
    return Page(
        "crime_history",
        f"History of crime {crime_id}",
        {"crime_id": crime_id, "versions": versions.height, "outcomes": outcomes.height},
        tables,
    )


# -- what pages read besides their figures, once per store generation (issue 14) ------------
#
# Every page also shows "data as of", the filter form's choices, the months held and the gap
# months, a ward's outline and its CHB sites, the SOC points and nominals of a ward... Read
# per request these cost more than the figures themselves once those come from the cube. They
# change only when committed data changes, that is with `store.generation`: inside
# `reading(store)` they come from a small per-process memo keyed by the generation that was
# current when the read began. Outside it (an import's own transaction, the CLI) they are
# read directly, as before.

_READING: contextvars.ContextVar[tuple[Store, int] | None] = contextvars.ContextVar(
    "pages_reading", default=None
)
MEMO_SIZE = 1024  # entries per store: small frames and dicts (a ward's points at most)


@contextmanager
def reading(store: Store) -> Iterator[None]:
    """One consistent read for building pages: `store.snapshot()`, in which what pages read
    besides their figures comes from the per-generation memo. The generation is taken before
    the snapshot's first query, so an entry kept under generation g never holds data older
    than g (a commit counts in the generation only once it is in)."""
    token = _READING.set((store, store.generation))
    try:
        with store.snapshot():
            yield
    finally:
        _READING.reset(token)


class _Memo:
    """Values by (store, generation, key): LRU per store, older generations dropped."""

    def __init__(self, size: int = MEMO_SIZE) -> None:
        self.size = size
        self._stores: weakref.WeakKeyDictionary[Store, tuple[int, OrderedDict[Any, Any]]] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()

    def get(self, store: Store, key: tuple[Any, ...], compute: Callable[[], T]) -> T:
        reading = _READING.get()
        if reading is None or reading[0] is not store:
            return compute()
        generation = reading[1]
        with self._lock:
            held = self._stores.get(store)
            if held is not None and held[0] == generation and key in held[1]:
                held[1].move_to_end(key)
                return cast(T, held[1][key])
        value = compute()
        with self._lock:
            if store.generation != generation:  # committed meanwhile: not for this generation
                return value
            held = self._stores.get(store)
            if held is None or held[0] < generation:
                held = self._stores[store] = (generation, OrderedDict())
            if held[0] == generation:
                held[1][key] = value
                while len(held[1]) > self.size:
                    held[1].popitem(last=False)
        return value


_memo = _Memo()


def role_reader(user: User) -> User:
    """Whom a page of `ROLE_PAGES` is built for: the user's role, and no one's name."""
    return User("", "", user.role)


def _memoised(store: Store, key: tuple[Any, ...], compute: Callable[[], T]) -> T:
    return _memo.get(store, key, compute)


class _CoverageOnly:
    """The store's coverage as read once for this generation, for the month rules of
    `services.queries` (held months, gap months), which read nothing else."""

    def __init__(self, frame: pl.DataFrame) -> None:
        self._frame = frame

    def coverage(self) -> pl.DataFrame:
        return self._frame


def _coverage(store: Store) -> Store:
    frame = _memoised(store, ("coverage",), store.coverage)
    return cast(Store, _CoverageOnly(frame))


def _gap_months(store: Store, first: dt.date, last: dt.date) -> list[str]:
    return queries.gap_months(_coverage(store), first, last)


def _index(store: Store, spec: str) -> HarmIndex:
    """A harm index by spec (`indices.resolve`), loaded once per generation."""
    return _memoised(store, ("index", spec), lambda: indices.resolve(store, spec))


def _scope(store: Store, user: User) -> Scope:
    """The role's rows (`policy.scope`): it depends on the role and the SOC records only."""
    return _memoised(store, ("scope", user.role), lambda: policy.scope(store, user))


def _area_set_names(store: Store) -> set[str]:
    return _memoised(store, ("area_sets",), lambda: {s.name for s in store.area_sets()})


def _chb_sites(store: Store) -> list[str]:
    def read() -> list[str]:
        if soc.CHB_SET not in _area_set_names(store):
            return []
        return list(store.area_list(soc.CHB_SET)["area_code"].to_list())

    return list(_memoised(store, ("chb_sites",), read))


def _outlines(
    store: Store, by: str, code: str, with_chb: bool
) -> tuple[dict[str, Any], pl.DataFrame]:
    return _memoised(
        store,
        ("outlines", by, code, with_chb),
        lambda: _ward_outlines(store, by, code, with_chb),
    )


def _located_soc(
    store: Store, table: str, by: str, code: str, cols: list[str], scope: Scope
) -> pl.DataFrame:
    """The located rows of a SOC table in one area that `scope` lets the reader see, every
    date (the page keeps its period's: far fewer reads than one per period asked for)."""
    return _memoised(
        store,
        ("located_soc", table, by, code, scope),
        lambda: (
            store.soc_frame(table, by, area_code=code, scope=scope)
            .filter(pl.col("located"))
            .select(cols)
        ),
    )


def _ward_nominals(store: Store, user: User, by: str, code: str, scope: Scope) -> pl.DataFrame:
    """The SOC nominals living in a ward (home address), as the role may see them, first 50:
    the same for every period, so read once per generation."""

    def read() -> pl.DataFrame:
        homes = (
            store.soc_frame("soc_addresses", by, area_code=code, scope=scope)
            .filter(pl.col("link_type") == "home")
            .select("nominal_id")
        )
        nominals = store.soc_frame("soc_nominals", scope=scope).join(
            homes, on="nominal_id", how="semi"
        )
        nominals = nominals.filter(
            pl.col("ocg_member")
            | pl.col("priority_individual")
            | pl.col("ucg_member")
            | pl.col("pcg_member")
        ).select(
            "nominal_id",
            "surname",
            "forename",
            "ocg_member",
            "priority_individual",
            "ucg_member",
            "pcg_member",
            *policy.RESTRICTED_FLAGS,
        )
        return policy.shape_nominals(user, nominals).head(50)

    return _memoised(store, ("ward_nominals", by, code, user.role, scope), read)


def _area_features(store: Store, by: str) -> list[tuple[str, str, dict[str, Any]]]:
    """Every area of a set as (code, name, simplified GeoJSON geometry): simplified and
    converted once per set and generation, not per map request (read-only: shared)."""

    def read() -> list[tuple[str, str, dict[str, Any]]]:
        out = []
        for code, name, wkb in store.area_polygons(by).iter_rows():
            geometry = shapely.simplify(shapely.from_wkb(wkb), 0.0002, preserve_topology=True)
            out.append((code, name, json.loads(shapely.to_geojson(geometry))))
        return out

    return _memoised(store, ("area_features", by), read)


def _crimes_by_month(
    store: Store,
    by: str,
    area: str | None,
    types: tuple[str, ...],
    first: dt.date | None,
    last: dt.date | None,
) -> list[tuple[Any, int]] | None:
    """The crimes a records page lists, counted per month from the harm cube
    (`store.crime_cells`: every crime of the store, by area of one set, month and type):
    exact totals without counting records. None when the store has no area set."""
    names = _area_set_names(store)
    if area is None and by not in names:
        by = min(names, default="")  # every set's cells hold every crime: any will do
    if by not in names:
        return None

    def read() -> pl.DataFrame:
        return (
            store.crime_cells(by)
            .group_by("area_code", "month", "crime_type")
            .agg(pl.col("records").sum())
        )

    cells = _memoised(store, ("crimes_by_month", by), read)
    if area is not None:
        cells = cells.filter(pl.col("area_code") == area)
    if types:
        cells = cells.filter(pl.col("crime_type").is_in(types))
    if first is not None and last is not None:
        cells = cells.filter(pl.col("month").is_between(first, last))
    months = cells.group_by("month").agg(pl.col("records").sum())
    return [(m, int(n)) for m, n in months.iter_rows()]


# -- maps officers can use (issue 15) -------------------------------------------------------


def _ward_points(
    store: Store,
    user: User,
    filters: Filters,
    code: str,
    first: dt.date,
    last: dt.date,
    scope: Scope,
) -> dict[str, pl.DataFrame]:
    """The ward map's layers as the role may see them: police.uk crimes by point with their
    details, then each SOC layer's located records of the period (services/maps.py)."""
    details = _memoised(
        store,
        ("crime_point_details", filters.by, code),
        lambda: store.crime_point_details((filters.by, code)),
    ).filter(pl.col("month").is_between(first, last))
    if filters.types:
        details = details.filter(pl.col("crime_type").is_in(filters.types))
    points = {"crimes": maps.crime_points(user, details)}
    for layer in maps.soc_layers(user):
        table, date_col, cols = maps.SOC_POINTS[layer]
        frame = _located_soc(
            store, table, filters.by, code, [*cols, "latitude", "longitude"], scope
        ).filter(pl.col(date_col).is_between(first, month_end(last)))
        points[layer] = maps.shape_soc(user, layer, frame)
    return points


def _ward_map(
    store: Store, user: User, by: str, code: str, points: dict[str, pl.DataFrame], chb: bool
) -> dict[str, Any]:
    """What the ward map adds to the page: its layers (legend, switches, keyboard list), the
    4P colours, the neighbouring areas' outlines and the labels of places and streets."""
    around, places = _memoised(
        store, ("neighbours", by, code), lambda: maps.neighbours(store.area_polygons(by), code)
    )
    layers = maps.layer_list(points)
    return {
        "map_layers": layers,
        "chb_layer": chb,
        "four_p": maps.FOUR_P,
        "neighbours": {"type": "FeatureCollection", "features": around},
        "labels": {"places": places, "streets": maps.street_labels(points["crimes"])},
    }


def _chb_map(
    store: Store,
    user: User,
    site: str,
    meta: dict[str, Any],
    phases: pl.DataFrame,
    buffer_m: float,
) -> dict[str, Any]:
    """The CHB page's map: the site, its buffer ring (`buffer_m` wide: the evaluation's),
    police.uk crimes by point before Clear and from Clear on (the before/after table's
    periods), and disruptions by 4P there, as the role may see them."""
    from placeharm.services import evaluation  # it builds on this module: imported here

    polygon = store.area_polygons(soc.CHB_SET, site)
    shape = shapely.from_wkb(polygon["geometry_wkb"][0])
    ring = evaluation.buffer_ring(shape, buffer_m)
    before = (parse_month(meta["before"]["from"]), parse_month(meta["before"]["to"]))
    ends = [m for m in phases["to"].to_list()[1:] if m]
    starts = [m for m in phases["from"].to_list()[1:] if m]
    after = (parse_month(min(starts)), parse_month(max(ends))) if starts and ends else None
    west, south, east, north = shapely.bounds(shapely.union(shape, ring)).tolist()
    points: dict[str, pl.DataFrame] = {}
    if after is not None and before[1] >= before[0]:
        crimes = store.located_within(
            "crimes",
            ["month", "crime_type", "location", "longitude", "latitude"],
            (west, south, east, north),
            ("month", "month", before[0], after[1]),
        )
        counted = maps.chb_points(user, crimes, shape, ring, before, after)
        for period in ("after", "before"):  # before drawn last: on top of the busier after
            points[f"crimes_{period}"] = counted.filter(pl.col("period") == period).drop("period")
        table = maps.chb_counts(counted)
    else:
        table = pl.DataFrame()
    if "disruptions" in policy.record_kinds(user) and after is not None:
        _, date_col, cols = maps.SOC_POINTS["disruptions"]
        found = store.located_within(
            "soc_disruptions",
            [*cols, "longitude", "latitude"],
            (west, south, east, north),
            (date_col, date_col, before[0], month_end(after[1])),
        )
        where = shapely.contains_xy(
            shapely.union(shape, ring), found["longitude"].to_numpy(), found["latitude"].to_numpy()
        )
        points["disruptions"] = maps.shape_soc(
            user, "disruptions", found.filter(pl.Series(where, dtype=pl.Boolean))
        )
    wards, places = (
        maps.areas_at(store.area_polygons("ward"), shapely.union(shape, ring))
        if "ward" in _area_set_names(store)
        else ([], [])
    )
    outlines = wards + [
        {
            "type": "Feature",
            "properties": {"kind": kind, "code": site, "name": meta["site_name"]},
            "geometry": json.loads(shapely.to_geojson(geometry)),
        }
        for kind, geometry in (("buffer", ring), ("site", shape))
    ]
    layers = maps.layer_list(points)
    streets = maps.street_labels(pl.concat([p for k, p in points.items() if k != "disruptions"]))
    return {
        "layers": layers,
        "points": {k: maps.as_points(v) for k, v in points.items()},
        "outlines": {"type": "FeatureCollection", "features": outlines},
        "labels": {
            "places": [maps.place_label(shape, meta["site_name"], "site"), *places],
            "streets": streets,
        },
        "four_p": maps.FOUR_P,
        "buffer_m": buffer_m,
        "before": {"from": f"{before[0]:%Y-%m}", "to": f"{before[1]:%Y-%m}"},
        "after": {"from": f"{after[0]:%Y-%m}", "to": f"{after[1]:%Y-%m}"} if after else None,
        "counts": table.to_dicts(),
        "note": labels.points_note(user),
    }


def _group_map(
    store: Store,
    user: User,
    group_id: str,
    members: pl.DataFrame,
    crimes: pl.DataFrame,
    scope: Scope,
) -> dict[str, Any]:
    """The group page's map of its geographic impact: where its members live (exact for
    roles that may open nominals, else counted by ~1 km cell), where their linked crimes
    were, and the disruptions against it by 4P."""
    homes = (
        store.soc_frame("soc_addresses", scope=scope)
        .filter(pl.col("located") & (pl.col("link_type") == "home"))
        .join(members.select("nominal_id", "role"), on="nominal_id")
        .unique(["nominal_id", "address_id"])
    )
    points: dict[str, pl.DataFrame] = {"homes": maps.home_points(user, homes)}
    points["force_crimes"] = (
        crimes.filter(pl.col("located"))
        .select("crime_ref", "recorded_date", "offence_code", "crime_type", "longitude", "latitude")
        .sort("recorded_date", "crime_ref", descending=True)
    )
    if "disruptions" in policy.record_kinds(user):
        _, _, cols = maps.SOC_POINTS["disruptions"]
        found = (
            store.soc_frame("soc_disruptions", scope=scope)
            .filter(pl.col("located") & (pl.col("target_group_id") == group_id))
            .select(*cols, "longitude", "latitude")
        )
        points["disruptions"] = maps.shape_soc(user, "disruptions", found)
    layers = maps.layer_list(points)
    wards, places = (
        maps.areas_at(store.area_polygons("ward"), maps.multipoint(list(points.values())))
        if "ward" in _area_set_names(store)
        else ([], [])
    )
    return {
        "layers": layers,
        "points": {k: maps.as_points(v) for k, v in points.items()},
        "outlines": {"type": "FeatureCollection", "features": wards},
        "labels": {"places": places, "streets": []},
        "four_p": maps.FOUR_P,
        "homes_note": maps.homes_note(user),
    }


# -- disruption impact (issue 16) -----------------------------------------------------------


def disruptions(store: Store, user: User, months: int = 3) -> Page:
    """Disruptions against a control: by 4P, by group, and diversion referrals."""
    policy.require(user, "disruptions")
    policy.require_records(user, "disruptions")
    from placeharm.services import disruptions as impact_service

    impact = impact_service.disruption_impact(store, _scope(store, user), months)
    data = {
        **data_as_of(store),
        "user": {"username": user.username, "role": user.role.value},
        "record_kinds": policy.record_kinds(user),
        **impact.meta,
        "notes": impact.notes,
    }
    return Page("disruptions", "Disruptions: impact against a control", data, impact.tables)


def _alerts_panel(store: Store, user: User) -> dict[str, Any]:
    """The overview's emerging-risk alerts panel (services/analysis_pages.py)."""
    from placeharm.services import analysis_pages  # imports this module

    return analysis_pages.alerts_panel(store, user)
