"""Significant hot spots (issue 16): Getis-Ord Gi* of harm or a measure over an area set.

The values come from the same read models as the rest of the dashboard (police.uk harm and
crime counts from the harm cube, `services.harm.rank`; SOC primary harm and each SOC measure
from the SOC cells, `services.soc.soc_rank`, with the reader's scope); the neighbours from
the area polygons held in the store; the statistic from `placeharm.analysis.hotspots`
(esda). Method, periods and limits: docs/analysis.md.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
import shapely
from pyproj import Transformer

from placeharm.analysis import hotspots as hs
from placeharm.errors import DataError, NotFound
from placeharm.harm import HarmIndex
from placeharm.model import month_range, shift_month
from placeharm.services import harm, indices, labels, pages, policy, queries, soc
from placeharm.services.harm import HarmResult
from placeharm.services.pages import Filters, Page
from placeharm.services.policy import User
from placeharm.soc import cells as soc_cells
from placeharm.soc.measures import MeasureSet, load_measures
from placeharm.store.base import EVERYTHING, Scope, Store

HARM, CRIMES, SOC_HARM = "harm", "crimes", "soc_harm"
DISTANCE_M = 2000.0  # the distance band when none is given (metres between centroids)
MAX_DISTANCE_M = 50_000.0  # a wider band makes every area a neighbour of most others
NEIGHBOUR_SETS = 16  # neighbour sets kept per store generation (set, kind, distance)
_TO_BNG = Transformer.from_crs("EPSG:4326", "EPSG:27700", always_xy=True)


def measures() -> list[dict[str, str]]:
    """What can be tested: police.uk harm and crime counts, SOC primary harm, each measure."""
    return [
        {"id": HARM, "label": "police.uk harm (the chosen harm index)"},
        {"id": CRIMES, "label": "police.uk crimes (count)"},
        {"id": SOC_HARM, "label": "SOC primary harm score"},
        *({"id": m.id, "label": f"SOC: {m.label} (count)"} for m in load_measures().measures),
    ]


@dataclass(frozen=True, slots=True)
class Options:
    """How to test: the measure, the neighbours, the permutations and the FDR."""

    measure: str = HARM
    weights: str = hs.CONTIGUITY
    distance_m: float | None = None  # contiguity: tolerance (default hs.TOLERANCE_M); band
    permutations: int = hs.PERMUTATIONS
    fdr: float = hs.FDR
    seed: int = hs.SEED

    def checked(self) -> Options:
        known = [m["id"] for m in measures()]
        if self.measure not in known:
            raise DataError(f"unknown measure {self.measure!r}; use one of: {', '.join(known)}")
        if self.weights not in hs.WEIGHT_KINDS:
            raise DataError(f"weights must be {' or '.join(hs.WEIGHT_KINDS)}, not {self.weights!r}")
        lo, hi = hs.PERMUTATIONS_RANGE
        if not lo <= self.permutations <= hi:
            raise DataError(f"permutations must be from {lo} to {hi:,}, not {self.permutations}")
        if not 0 < self.fdr < 1:
            raise DataError(f"the false discovery rate must be above 0 and below 1, not {self.fdr}")
        if self.distance_m is not None and not (
            math.isfinite(self.distance_m) and 0 < self.distance_m <= MAX_DISTANCE_M
        ):
            raise DataError(
                f"the distance (the distance band, or the contiguity tolerance) must be more "
                f"than 0 and at most {MAX_DISTANCE_M:,.0f} metres, "
                f"not {self.distance_m:g}"
            )
        return self


_LOCK = threading.Lock()
_WARM: list[threading.Thread] = []


def warm() -> None:
    """Import esda and libpysal on a background thread (they take seconds: scipy, scikit-learn,
    pandas, geopandas), so the dashboard's first hot spot request need not wait for them all.
    Once per process; a request that comes first waits for the import as it would anyway."""
    with _LOCK:
        if _WARM:
            return
        thread = threading.Thread(target=_import_esda, name="placeharm-esda-import", daemon=True)
        _WARM.append(thread)
    thread.start()


def _import_esda() -> None:
    import esda  # type: ignore[import-untyped]  # noqa: F401
    import libpysal.weights  # type: ignore[import-untyped]  # noqa: F401


# neighbours per store, generation and (set, kind, distance): built from the polygons once
_NEIGHBOURS: weakref.WeakKeyDictionary[
    Store, tuple[int, dict[tuple[str, str, float], tuple[list[str], list[str], hs.Neighbours]]]
] = weakref.WeakKeyDictionary()


def neighbours(
    store: Store, by: str, kind: str, distance_m: float
) -> tuple[list[str], list[str], hs.Neighbours]:
    """Codes, names and neighbours of an area set's areas, from the polygons in the store
    (projected to British National Grid), kept for the store's generation."""
    generation = store.generation
    key = (by, kind, float(distance_m))
    with _LOCK:
        held = _NEIGHBOURS.get(store)
        if held is not None and held[0] == generation and key in held[1]:
            return held[1][key]
    polygons = store.area_polygons(by)
    if polygons.is_empty():
        raise NotFound(f"no areas in set {by!r}; import them with `placeharm areas import`")
    geoms = shapely.from_wkb(polygons["geometry_wkb"].to_numpy())
    metric = shapely.transform(
        geoms, lambda c: np.column_stack(_TO_BNG.transform(c[:, 0], c[:, 1]))
    )
    built = (
        hs.contiguity(metric, distance_m)
        if kind == hs.CONTIGUITY
        else hs.distance_band(metric, distance_m)
    )
    made = (polygons["area_code"].to_list(), polygons["area_name"].to_list(), built)
    with _LOCK:
        held = _NEIGHBOURS.get(store)
        if held is None or held[0] != generation:
            held = _NEIGHBOURS[store] = (generation, {})
        if len(held[1]) >= NEIGHBOUR_SETS:
            held[1].clear()
        held[1][key] = made
    return made


@dataclass(frozen=True, slots=True)
class _Values:
    values: dict[str, float]
    label: str
    gaps: list[str]
    notes: list[str]
    meta: dict[str, object]


def _police_values(
    store: Store,
    by: str,
    first: dt.date,
    last: dt.date,
    measure: str,
    index: HarmIndex,
    crime_types: list[str] | None,
) -> _Values:
    ranked = harm.rank(store, by, first, last, index, crime_types)
    meta = ranked.meta
    gaps = list(meta["gap_months"])  # type: ignore[call-overload]
    if int(meta["months_covered"]) == 0:  # type: ignore[call-overload]
        raise DataError(
            f"no police.uk data for {first:%Y-%m} to {last:%Y-%m}: every month is a gap"
        )
    column = "harm" if measure == HARM else "records"
    rows = ranked.table.filter(pl.col("area_code").is_not_null())
    values = dict(zip(rows["area_code"], rows[column].cast(pl.Float64), strict=True))
    label = f"police.uk harm ({index.title})" if measure == HARM else "police.uk crimes (count)"
    if crime_types:
        label += f", crime types: {', '.join(crime_types)}"
    extra: dict[str, object] = {"index": meta["index"], "crime_types": crime_types}
    return _Values(values, label, gaps, harm._gap_note(meta), extra)


def _soc_values(
    store: Store,
    by: str,
    first: dt.date,
    last: dt.date,
    measure: str,
    index: HarmIndex,
    scope: Scope,
) -> _Values:
    chosen = _measure_set(measure)
    if by not in soc_cells.set_names(store):
        raise NotFound(f"no SOC figures for area set {by!r}; choose ward or lsoa")
    cover = soc.period_data(soc_cells.cells(store, by), chosen, first, last)
    if cover.empty:
        held = (
            f"SOC data is held from {cover.first_held} to {cover.last_held}"
            if cover.first_held
            else "no SOC data is held"
        )
        raise DataError(f"no SOC data for {first:%Y-%m} to {last:%Y-%m}: {held}")
    ranked = soc.soc_rank(store, by, first, last, index, chosen, scope)
    column = "soc_harm" if measure == SOC_HARM else measure
    values = dict(
        zip(ranked.table["area_code"], ranked.table[column].cast(pl.Float64), strict=True)
    )
    notes = [n for n in ranked.notes if "previous period" not in n]
    if cover.gaps:
        notes.append(
            f"no SOC data for {', '.join(cover.gaps)}: those months are gaps, not zeros; the "
            f"values count the months held ({', '.join(cover.held)})"
        )
    if cover.snapshot_only or any(m.source in soc.SNAPSHOT_SOURCES for m in chosen.measures):
        notes.append(
            "residents (home addresses) count as a snapshot at the period's end, not as events "
            "in the period"
        )
    label = (
        f"SOC primary harm score ({index.title})"
        if measure == SOC_HARM
        else f"SOC: {chosen.measures[0].label} (count)"
    )
    extra: dict[str, object] = {
        "index": ranked.meta["index"],
        "synthetic": ranked.meta["synthetic"],
    }
    return _Values(values, label, list(cover.gaps), notes, extra)


def _measure_set(measure: str) -> MeasureSet:
    """All nine SOC measures (the SOC primary harm score), or the one named."""
    every = load_measures()
    if measure == SOC_HARM:
        return every
    return MeasureSet(tuple(m for m in every.measures if m.id == measure), every.source)


def default_period(
    store: Store, by: str, measure: str, first: dt.date | None, last: dt.date | None
) -> tuple[dt.date, dt.date]:
    """The period asked for; else the last 12 months held (of SOC data for a SOC measure: from
    the first month held, if later)."""
    if first and last:
        return first, last
    if (
        measure not in (HARM, CRIMES)
        and not first
        and not last
        and by in soc_cells.set_names(store)
    ):
        # the last 12 months of SOC data (no comparison period is needed, unlike the overview)
        held = soc.soc_held_months(soc_cells.cells(store, by), _measure_set(measure))
        if held:
            newest = max(held)
            return max(min(held), shift_month(newest, -11)), newest
    return queries.default_period(store, first, last, 12)


def hotspots(
    store: Store,
    by: str,
    first: dt.date,
    last: dt.date,
    options: Options | None = None,
    index: HarmIndex | str | None = None,
    crime_types: list[str] | None = None,
    scope: Scope = EVERYTHING,
) -> HarmResult:
    """Hot and cold spots of one measure over the areas of set `by` for [first, last].

    Each area's value is its total over the months of the period held (gap months are left
    out and listed); Gi* compares each area and its neighbours with the whole set
    (`analysis.hotspots.gi_star`). The table lists every area: value, neighbours, z, the
    permutation p-values, the Benjamini-Hochberg q-value and its class.
    """
    opts = (options or Options()).checked()
    if last < first:
        raise DataError(f"--to {last:%Y-%m} is before --from {first:%Y-%m}")
    harm_index = index if isinstance(index, HarmIndex) else indices.resolve(store, index)
    if opts.measure in (HARM, CRIMES):
        found = _police_values(store, by, first, last, opts.measure, harm_index, crime_types)
    else:
        found = _soc_values(store, by, first, last, opts.measure, harm_index, scope)
    distance = (
        opts.distance_m
        if opts.distance_m is not None
        else (hs.TOLERANCE_M if opts.weights == hs.CONTIGUITY else DISTANCE_M)
    )
    codes, names, near = neighbours(store, by, opts.weights, distance)
    values = np.array([found.values.get(c, 0.0) for c in codes], dtype=np.float64)
    result = hs.gi_star(codes, values, near, opts.permutations, opts.fdr, opts.seed)
    name_of = dict(zip(codes, names, strict=True))
    table = pl.DataFrame(
        {
            "area_code": result.codes,
            "area_name": [name_of[c] for c in result.codes],
            "value": result.values,
            "neighbours": result.neighbours,
            "gi_z": pl.Series(result.z, nan_to_null=True),
            "p_value": pl.Series(result.p_value, nan_to_null=True),
            "q_value": pl.Series(result.q_value, nan_to_null=True),
            "class": result.classes,
        },
        schema={
            "area_code": pl.String,
            "area_name": pl.String,
            "value": pl.Float64,
            "neighbours": pl.Int64,
            "gi_z": pl.Float64,
            "p_value": pl.Float64,
            "q_value": pl.Float64,
            "class": pl.String,
        },
    ).sort(["gi_z", "area_code"], descending=[True, False], nulls_last=True)
    months = month_range(first, last)
    counts = {c: result.count(c) for c in hs.CLASSES}
    meta: dict[str, object] = {
        "area_set": by,
        "first_month": f"{first:%Y-%m}",
        "last_month": f"{last:%Y-%m}",
        "months": len(months),
        "months_covered": len(months) - len(found.gaps),
        "gap_months": found.gaps,
        "measure": opts.measure,
        "measure_label": found.label,
        "weights": opts.weights,
        "weights_described": near.describe(),
        "distance_m": distance,
        "permutations": opts.permutations,
        "seed": opts.seed,
        "fdr": opts.fdr,
        "areas": len(codes),
        "tested": result.tested,
        "islands": result.islands,
        "classes": counts,
        "smallest_p": result.smallest_p,
        "areas_needed": result.areas_needed,
        "at_floor": result.at_floor,
        "resolution_limited": result.resolution_limited,
        "method": method(near, opts),
        **found.meta,
    }
    notes = list(found.notes)
    if result.islands:
        shown = ", ".join(name_of[c] or c for c in result.islands[:10])
        more = f" and {len(result.islands) - 10} more" if len(result.islands) > 10 else ""
        notes.append(
            f"{len(result.islands)} areas have no neighbour under these weights and are not "
            f"tested: {shown}{more}"
        )
    notes.append(
        f"with {opts.permutations} permutations the smallest p-value is "
        f"{result.smallest_p:.4f}: at FDR {opts.fdr:g} over {result.tested} areas at least "
        f"{result.areas_needed} areas must reach it before any is called significant, so a "
        "small cluster cannot show; more permutations lower that floor"
    )
    return HarmResult("hotspots", meta, table, notes)


def method(near: hs.Neighbours, opts: Options) -> str:
    """The method in one paragraph, as the page and the command state it."""
    return (
        "Getis-Ord Gi* (Getis & Ord 1992; Ord & Getis 1995): each area's value and its "
        f"neighbours' against the whole set; neighbours by {near.describe()}, binary weights "
        "with each area its own neighbour. Significance from "
        f"{opts.permutations} conditional permutations (seed {opts.seed}), two-sided; the false "
        f"discovery rate is held at {opts.fdr:g} across all areas tested (Benjamini & Hochberg "
        "1995). Hot spot: significant, high values cluster; cold spot: significant, low values "
        "cluster."
    )


def page_data(
    store: Store,
    user: User,
    by: str,
    first: dt.date | None,
    last: dt.date | None,
    index: str,
    crime_types: list[str] | None,
    options: Options,
) -> tuple[HarmResult, tuple[dt.date, dt.date]]:
    """The hot spots a signed-in user may see: the overview's roles and area sets (partners
    by ward only), SOC measures counted within the role's scope."""
    policy.require(user, "overview")
    policy.partner_area_set(user, by)
    opts = options.checked()
    period = default_period(store, by, opts.measure, first, last)
    scope = policy.scope(store, user)
    result = hotspots(store, by, period[0], period[1], opts, index, crime_types, scope)
    return result, period


def describe_classes(counts: dict[str, Any], fdr: float) -> str:
    """'12 hot spots and 3 cold spots at FDR 0.05' in words."""
    hot, cold = int(counts.get(hs.HOT, 0)), int(counts.get(hs.COLD, 0))
    return (
        f"{hot} hot spot{'s' if hot != 1 else ''} and {cold} cold spot{'s' if cold != 1 else ''} "
        f"at a false discovery rate of {fdr:g}"
    )


# -- the /hotspots page and its JSON twin ---------------------------------------------------


def page(store: Store, user: User, filters: Filters, options: Options) -> Page:
    """The hot spots page: the areas' classes, counts and method, for `pages.Filters`
    (area set, period, harm index, crime types) and `options` (measure, neighbours,
    permutations, FDR). Roles as the overview's harm map."""
    found, (first, last) = page_data(
        store,
        user,
        filters.by,
        filters.first,
        filters.last,
        filters.index,
        filters.crime_types(),
        options,
    )
    meta = found.meta
    counts = meta["classes"]
    assert isinstance(counts, dict)
    table = found.table
    significant = table.filter(pl.col("class").is_in([hs.HOT, hs.COLD]))
    query = filters.query(first, last) | {
        "measure": options.measure,
        "weights": options.weights,
        "fdr": f"{options.fdr:g}",
        "permutations": str(options.permutations),
    }
    if options.distance_m is not None:
        query["distance"] = f"{options.distance_m:g}"
    data = {
        **pages.data_as_of(store),
        "user": {"username": user.username, "role": user.role.value},
        "filters": query,
        "filter_options": pages.filter_options(store),
        "record_kinds": policy.record_kinds(user),
        "period": {"from": f"{first:%Y-%m}", "to": f"{last:%Y-%m}"},
        "summary": describe_classes(counts, options.fdr),
        "hotspot_measures": measures(),
        "more_permutations": query | {"permutations": str(hs.PERMUTATIONS_RANGE[1])},
        **{k: v for k, v in meta.items() if k not in ("index",)},
        "index": meta.get("index"),
        # the demo banner is the page's own; the permutations' floor is in the method list
        "notes": [n for n in found.notes if not n.startswith(("DEMO DATA", "with "))],
        "synthetic": bool(meta.get("synthetic", pages.data_as_of(store)["synthetic"])),
    }
    return Page(
        "hotspots",
        f"Significant hot spots: {labels.areas_word(filters.by)}",
        data,
        {"areas": table, "significant": significant},
    )


def geojson(
    store: Store, user: User, filters: Filters, options: Options, built: Page | None = None
) -> Page:
    """The area polygons with each area's Gi* figures and class, for the map and for GIS.
    `built`: the page for these arguments if already built."""
    made = built if built is not None else page(store, user, filters, options)
    figures = {r["area_code"]: r for r in made.tables["areas"].to_dicts()}
    features = [
        {
            "type": "Feature",
            "properties": {"area_code": code, "area_name": name, **figures.get(code, {})},
            "geometry": geometry,
        }
        for code, name, geometry in pages._area_features(store, filters.by)
    ]
    data = {
        "type": "FeatureCollection",
        "features": features,
        "marking": pages.MARKING,
        "data_as_of": made.data["data_as_of"],
        "classes": list(hs.CLASSES),
    }
    return Page("geojson", made.title, data)
