"""The overview as a dashboard (issue 15): headline cards, a focus on one area (the
cross-filter), the monthly chart, the list beside the map and the map's colour choices.

Built from the overview's own figures (`pages.overview`), so a card never disagrees with the
table: the cards are the table summed, counted or picked, for the force or for one area.
"""

from __future__ import annotations

import datetime as dt
import weakref
from typing import Any, cast

import polars as pl
import shapely

from placeharm.errors import NotFound, PermissionDenied
from placeharm.model import month_range, shift_month
from placeharm.services import harm, outcomes, policy
from placeharm.services.pages import Filters, Page
from placeharm.services.policy import User
from placeharm.soc.measures import MeasureSet
from placeharm.store.base import Scope, Store

CHB_SET = "chb"
RISERS_SHOWN = 3
HIGH_SHOWN = 5
LIST_SHOWN = 10  # areas in the list beside the map
CHART_W, CHART_H = 320, 90  # the monthly chart's drawing box (SVG units)
TREND_MONTHS = 12  # the chart's months, to the end of the period
# the area sets the overview offers first, in this order; others follow by name
SET_ORDER = ("ward", "sector", "lsoa")


def panels(
    store: Store,
    user: User,
    filters: Filters,
    first: dt.date,
    last: dt.date,
    measures: MeasureSet,
    table: pl.DataFrame,
    data: dict[str, Any],
    scope: Scope,
) -> dict[str, Any]:
    """The overview's dashboard and outcome rates for the whole force (page data keys
    "dashboard" and "outcomes"). `table`: the overview's areas (every column); `data`: the
    overview's page data so far."""
    by = filters.by
    return {
        "dashboard": {
            "focus": None,
            "cards": _force_cards(store, user, by, first, last, table, data),
            "chart": _chart(*_trend(store, filters, first, last, None), "force"),
            "top_areas": _top_areas(table),
            "colour_by": _colour_by(measures),
            "area_sets": _area_sets(store, user),
        },
        "outcomes": outcomes.outcome_rates(store, by, first, last, None, scope),
    }


def overview_focus(store: Store, user: User, filters: Filters, area: str, page: Page) -> Page:
    """The overview `page` cross-filtered to one area: its cards, chart and outcome rates
    are the area's; the map, list and table stay whole (the table marks the area)."""
    areas = page.tables["areas"]
    row = areas.filter(pl.col("area_code") == area)
    if row.is_empty():
        raise NotFound(
            f"no {page.data['filters']['by']} area {area!r} on this overview; "
            "clear the filter or choose an area from the table"
        )
    r = row.row(0, named=True)
    data = dict(page.data)
    period = data["period"]
    first, last = (dt.datetime.strptime(period[k], "%Y-%m").date() for k in ("from", "to"))
    by = data["filters"]["by"]
    board = dict(data["dashboard"])
    board["focus"] = {"area_code": area, "area_name": r["area_name"]}
    board["cards"] = _area_cards(store, user, by, last, areas, r, data)
    board["chart"] = _chart(*_trend(store, filters, first, last, area), r["area_name"])
    data["dashboard"] = board
    scope = policy.scope(store, user)
    data["outcomes"] = outcomes.outcome_rates(store, by, first, last, area, scope)
    return Page(page.kind, f"{page.title}: {r['area_name']}", data, page.tables)


# -- cards --------------------------------------------------------------------------------


def _sum(frame: pl.DataFrame, col: str) -> float | None:
    values = frame[col].drop_nulls()
    return float(values.sum()) if len(values) else None


def _harm_card(
    now: float | None, previous: float | None, data: dict[str, Any], whose: str
) -> dict[str, Any]:
    reason = data.get("change_reason")
    card: dict[str, Any] = {
        "title": f"SOC primary harm score, {whose}",
        "value": None if data.get("no_soc_data") else now,
        "previous": None,
        "change": None,
        "pct_change": None,
        "why_no_change": None,
    }
    if data.get("no_soc_data"):
        card["why_no_change"] = "no SOC data in this period"
    elif reason:
        card["why_no_change"] = reason
    elif now is None:
        card["why_no_change"] = "no SOC harm figure for this period"
    elif previous is None:
        card["why_no_change"] = "no SOC harm figure for the previous period"
    else:
        card["previous"] = previous
        card["change"] = round(now - previous, 6)
        card["pct_change"] = round(100 * (now / previous - 1), 1) if previous else None
    return card


def _levels(table: pl.DataFrame) -> dict[str, int]:
    counts = table.group_by("risk").len()
    got = {str(k): int(n) for k, n in counts.iter_rows() if k is not None}
    return {level: got.get(level, 0) for level in ("High", "Medium", "Low", "None")}


def _force_cards(
    store: Store,
    user: User,
    by: str,
    first: dt.date,
    last: dt.date,
    table: pl.DataFrame,
    data: dict[str, Any],
) -> dict[str, Any]:
    now = _sum(table, "soc_harm")
    previous = _sum(table, "previous_soc_harm") if "previous_soc_harm" in table.columns else None
    high = table.filter(pl.col("risk") == "High").sort(["rank", "area_code"]).head(HIGH_SHOWN)
    risers = (
        table.filter(pl.col("change") > 0)
        .sort(["change", "area_code"], descending=[True, False])
        .head(RISERS_SHOWN)
    )
    return {
        "harm": _harm_card(now, previous, data, "force"),
        "risk": {
            "levels": _levels(table),
            "areas": len(table),
            "high": [
                {"area_code": c, "area_name": n}
                for c, n in high.select("area_code", "area_name").iter_rows()
            ],
            "no_soc_data": bool(data.get("no_soc_data")),
        },
        "risers": {
            "why_none": data.get("change_reason")
            or ("no SOC data in this period" if data.get("no_soc_data") else None),
            "areas": [
                {
                    "area_code": c,
                    "area_name": n,
                    "change": ch,
                    "pct_change": pc,
                }
                for c, n, ch, pc in risers.select(
                    "area_code", "area_name", "change", "pct_change"
                ).iter_rows()
            ],
        },
        "chb": _chb_card(store, user, by, last, None),
    }


def _area_cards(
    store: Store,
    user: User,
    by: str,
    last: dt.date,
    areas: pl.DataFrame,
    r: dict[str, Any],
    data: dict[str, Any],
) -> dict[str, Any]:
    now = r["soc_harm"]
    change = r.get("change")
    previous = None if now is None or change is None else float(now) - float(change)
    harmed = int((areas["soc_harm"].fill_null(0) > 0).sum())
    rising = areas.filter(pl.col("change") > 0).sort(
        ["change", "area_code"], descending=[True, False]
    )
    codes = rising["area_code"].to_list()
    place = codes.index(r["area_code"]) + 1 if r["area_code"] in codes else None
    return {
        "harm": _harm_card(None if now is None else float(now), previous, data, r["area_name"]),
        "risk": {
            "level": r["risk"],
            "rank": r["rank"],
            "of": harmed,
            "rank_movement": r["rank_movement"],
            "no_soc_data": bool(data.get("no_soc_data")),
        },
        "risers": {
            "why_none": data.get("change_reason")
            or ("no SOC data in this period" if data.get("no_soc_data") else None),
            "place": place,
            "rising_areas": len(codes),
            "change": change,
            "pct_change": r.get("pct_change"),
        },
        "chb": _chb_card(store, user, by, last, r["area_code"]),
    }


def _chb_card(
    store: Store, user: User, by: str, last: dt.date, area: str | None
) -> dict[str, Any] | None:
    """CHB sites (those overlapping `area`, or all) and each one's phase at the end of the
    period; None for a role that may not open CHB pages or a store without sites."""
    if not policy.allowed(user, "chb"):
        return None
    sites = _chb_sites(store, by)
    if sites is None:
        return None
    phases = store.soc_frame("soc_chb_phases")
    end = _month_end(last)
    out = []
    for code, name, overlaps in sites:
        if area is not None and area not in overlaps:
            continue
        mine = phases.filter(pl.col("site_code") == code).sort("start_date")
        running = mine.filter(
            (pl.col("start_date") <= end)
            & (pl.col("end_date").is_null() | (pl.col("end_date") >= end))
        )
        if running.height:
            status, since = str(running["phase"][-1]), running["start_date"][-1]
        elif mine.height and mine["start_date"].min() > end:  # type: ignore[operator]
            status, since = "Not started", None
        elif mine.height:
            status, since = "Ended", mine["end_date"].max()
        else:
            status, since = "No phases recorded", None
        out.append(
            {
                "site": code,
                "name": name,
                "status": status,
                "since": since.isoformat() if isinstance(since, dt.date) else None,
            }
        )
    return {"as_of": end.isoformat(), "sites": out, "area": area}


_SITES: weakref.WeakKeyDictionary[Store, tuple[int, str, list[tuple[str, str, set[str]]]]] = (
    weakref.WeakKeyDictionary()
)


def _chb_sites(store: Store, by: str) -> list[tuple[str, str, set[str]]] | None:
    """(code, name, codes of the `by` areas it overlaps) of every CHB site, read once per
    store generation; None without a CHB area set."""
    if CHB_SET not in {s.name for s in store.area_sets()}:
        return None
    held = _SITES.get(store)
    if held is not None and held[0] == store.generation and held[1] == by:
        return held[2]
    areas = store.area_polygons(by)
    shapes = shapely.from_wkb(areas["geometry_wkb"].to_numpy())
    tree = shapely.STRtree(shapes)
    codes = areas["area_code"].to_list()
    out = []
    for code, name, wkb in store.area_polygons(CHB_SET).iter_rows():
        site = shapely.from_wkb(wkb)
        hits = tree.query(site, predicate="intersects")
        # overlapping, not just touching: neighbouring areas share edges with a site
        shared = shapely.area(shapely.intersection(site, shapes[hits])) if len(hits) else []
        least = 1e-6 * shapely.area(site)
        inside = {codes[i] for i, a in zip(hits, shared, strict=True) if a > least}
        out.append((str(code), str(name or code), inside))
    _SITES[store] = (store.generation, by, out)
    return out


def _month_end(month: dt.date) -> dt.date:
    following = dt.date(month.year + (month.month == 12), month.month % 12 + 1, 1)
    return following - dt.timedelta(days=1)


# -- chart, list, choices -------------------------------------------------------------------


def _trend(
    store: Store, filters: Filters, first: dt.date, last: dt.date, area: str | None
) -> tuple[list[str], list[float | None], set[str]]:
    """police.uk harm per month for the TREND_MONTHS months to the end of the period (from
    the first month held, if later), summed over the set's areas or for one `area`: (months,
    values, the period's months). A month with no police.uk data is None, a gap."""
    start = min(first, shift_month(last, -(TREND_MONTHS - 1)))
    result = harm.series(
        store,
        filters.by,
        start,
        last,
        filters.index,
        areas=[area] if area else None,
        crime_types=filters.crime_types(),
    )
    gaps = set(cast(list[str], result.meta["gap_months"]))
    totals = result.table.group_by("month").agg(pl.col("harm").sum())
    by_month = dict(totals.iter_rows())
    months = [f"{m:%Y-%m}" for m in month_range(start, last)]
    while months and months[0] in gaps and months[0] < f"{first:%Y-%m}":
        months.pop(0)  # before the data starts: not a gap to draw
    values = [
        None if m in gaps or by_month.get(m) is None else round(float(by_month[m]), 1)
        for m in months
    ]
    period = {f"{m:%Y-%m}" for m in month_range(first, last)}
    return months, values, period


def _chart(
    months: list[str], values: list[float | None], period: set[str], whose: str
) -> dict[str, Any]:
    """Bars of monthly police.uk harm, placed in a CHART_W x CHART_H box; the period's months
    are marked; a gap month is a marked gap, never a zero-height bar."""
    top = max((v for v in values if v is not None), default=0.0)
    step = CHART_W / max(len(months), 6)
    bars = []
    for i, month in enumerate(months):
        value = values[i]
        height = 0.0 if value is None or not top else (CHART_H - 14) * value / top
        bars.append(
            {
                "month": month,
                "value": value,
                "x": round(i * step + step * 0.15, 1),
                "width": round(step * 0.7, 1),
                "y": round(CHART_H - 12 - height, 1),
                "height": round(height, 1),
                "gap": value is None,
                "in_period": month in period,
            }
        )
    return {
        "title": f"Police.uk crime harm per month, {whose}",
        "width": CHART_W,
        "height": CHART_H,
        "bars": bars,
        "max": top,
    }


def _top_areas(table: pl.DataFrame) -> list[dict[str, Any]]:
    harmed = table.filter(pl.col("soc_harm").fill_null(0) > 0).sort(
        ["soc_harm", "area_code"], descending=[True, False]
    )
    return harmed.head(LIST_SHOWN).select("area_code", "area_name", "soc_harm", "risk").to_dicts()


def _colour_by(measures: MeasureSet) -> list[dict[str, str]]:
    return [
        {"id": "soc_harm", "label": "SOC primary harm score"},
        *({"id": m.id, "label": m.label} for m in measures.measures),
    ]


def _area_sets(store: Store, user: User) -> list[str]:
    """The area sets the overview offers this reader (the policy's: partners see wards)."""
    names = {s.name for s in store.area_sets()} - {CHB_SET}
    ordered = [s for s in SET_ORDER if s in names] + sorted(names - set(SET_ORDER))
    offered = []
    for name in ordered:
        try:
            policy.partner_area_set(user, name)
        except PermissionDenied:
            continue
        offered.append(name)
    return offered
