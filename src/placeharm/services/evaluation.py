"""Evaluation against a control and a buffer (issue 16): a CHB site's phases, tested with the
weighted displacement difference (WDD) and quotient (WDQ) for crime, ASB, SOC crime and
intelligence. Method, periods and limits: docs/analysis.md."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
import shapely
from pyproj import Transformer

from placeharm.analysis.control import LEVEL_FACTOR, rank_controls
from placeharm.analysis.wdd import Counts, WddResult, wdd, wdq
from placeharm.errors import DataError, NotFound
from placeharm.model import month_end, month_range
from placeharm.services import soc
from placeharm.services.queries import CRIME_SOURCES
from placeharm.soc import cells as soc_cells
from placeharm.store.base import EVERYTHING, Scope, Store

DEFAULT_BUFFER_M = 500.0
MAX_BUFFER_M = 5000.0  # a ring wider than 5 km is no longer "nearby" (and the web form's limit)
CONTROL_SET = "ward"
SIGNIFICANCE = 0.05
ASB = "Anti-social behaviour"
MEASURES = {
    "crimes": "police.uk crime (not ASB)",
    "asb": "anti-social behaviour",
    "soc_crimes": "SOC crimes",
    "intelligence": "intelligence reports",
}
CONTROL_RULE = (
    "the control is the ward, among wards that touch neither the site, its buffer nor any "
    "other CHB site, and had "
    "between half and twice the site's police.uk crime (not ASB) in the before period, whose "
    "monthly crime in that period moves most like the site's (highest Pearson correlation; "
    "with fewer than 3 months held, the closest in number); if no ward is that close in "
    "number, the closest; the buffer's control is the next best such ward"
)
LIMITS = (
    "WDD treats every count as Poisson and the areas as independent; with a few events a "
    "side (under about 10) the normal approximation is rough and p is only a guide",
    "the control is matched on police.uk crime only; it may not match the site on SOC "
    "crime or intelligence, and something else may have changed in either area",
    "a fall in the buffer relative to its control reads as diffusion of benefit, a rise as "
    "displacement; neither proves the intervention caused it, and police.uk points are "
    "snapped to nearby map points, so events near the site's edge may fall on either side",
    "intelligence is a measure of police activity as much as of crime: a rise may be the "
    "intended effect of community work, not more offending",
)
_TO_BNG = Transformer.from_crs("EPSG:4326", "EPSG:27700", always_xy=True)
_FROM_BNG = Transformer.from_crs("EPSG:27700", "EPSG:4326", always_xy=True)

# the columns an evaluation's table shows first (the rest follow in the JSON)
TABLE_COLUMNS = (
    "period",
    "measure_label",
    "before",
    "after",
    "target_before",
    "target_after",
    "control_before",
    "control_after",
    "buffer_before",
    "buffer_after",
    "buffer_control_before",
    "buffer_control_after",
    "wdd",
    "se",
    "z",
    "p",
    "wdq",
    "result",
)
# measure -> month (first day) -> events
Series = dict[str, dict[dt.date, int]]


@dataclass(slots=True)
class Evaluation:
    """An evaluation's figures: one row per phase (or period) and measure, with what was
    compared with what, over which months, and why a row has no figures."""

    meta: dict[str, Any]
    table: pl.DataFrame
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {**self.meta, "notes": self.notes, "rows": self.table.to_dicts()}


def _reproject(geom: shapely.Geometry, transformer: Transformer) -> shapely.Geometry:
    def move(xy: np.ndarray) -> np.ndarray:
        x, y = transformer.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geom, move)


def buffer_ring(polygon: shapely.Geometry, buffer_m: float) -> shapely.Geometry:
    """The ring from `polygon`'s edge out to `buffer_m` metres (in British National Grid,
    EPSG:27700), as WGS84 longitude/latitude."""
    if not (math.isfinite(buffer_m) and 0 < buffer_m <= MAX_BUFFER_M):
        raise DataError(
            f"the buffer must be more than 0 and at most {MAX_BUFFER_M:,.0f} metres, not {buffer_m}"
        )
    inner = _reproject(polygon, _TO_BNG)
    return _reproject(inner.buffer(buffer_m, 32).difference(inner), _FROM_BNG)


def held_months(store: Store, model: soc_cells.SocCells) -> dict[str, frozenset[dt.date]]:
    """Per measure, the months its source holds data for, force-wide (a month outside is a
    gap on every side, never a zero)."""
    police = frozenset(
        store.coverage().filter(pl.col("source_kind").is_in(CRIME_SOURCES))["month"].to_list()
    )
    return {
        "crimes": police,
        "asb": police,
        "soc_crimes": model.held_months("force_crimes"),
        "intelligence": model.held_months("intelligence"),
    }


def area_series(
    store: Store, set_name: str, code: str, first: dt.date, last: dt.date, scope: Scope
) -> Series:
    """Monthly events of each measure in one area of a set, months first..last."""
    police = store.month_counts("crimes", "month", set_name, first, month_end(last), code)
    out: Series = {
        "crimes": _by_month(police.filter(pl.col("kind") != ASB)),
        "asb": _by_month(police.filter(pl.col("kind") == ASB)),
    }
    model = soc_cells.cells(store, set_name)
    for what in ("soc_crimes", "intelligence"):
        frame = soc._soc_monthly(store, model, what, code, first, last, scope)
        out[what] = _by_month(frame)
    return out


def _by_month(frame: pl.DataFrame, column: str = "month") -> dict[dt.date, int]:
    if frame.is_empty():
        return {}
    grouped = frame.group_by(column).agg(pl.col("records").sum())
    return {m: int(n) for m, n in grouped.iter_rows()}


def _scoped(frame: pl.DataFrame, table: str, scope: Scope) -> pl.DataFrame:
    """Rows of `table` the scope lets its reader count (the store's rule, applied to rows
    read by location, which the store's box query does not scope)."""
    for column, values, keep in scope.rules(table):
        cell = pl.col(column).cast(pl.Utf8)
        if keep:
            frame = frame.filter(cell.is_in(list(values)).fill_null(False))
        else:
            frame = frame.filter(cell.is_null() | ~cell.is_in(list(values)))
    return frame


def ring_series(
    store: Store, ring: shapely.Geometry, first: dt.date, last: dt.date, scope: Scope
) -> Series:
    """Monthly events of each measure whose point lies in `ring` (WGS84), months first..last."""
    box = shapely.bounds(ring).tolist()
    end = month_end(last)

    def inside(table: str, date_col: str, columns: list[str]) -> pl.DataFrame:
        wanted = [*columns, date_col, "longitude", "latitude"]
        wanted += [c for c, _, _ in scope.rules(table) if c not in wanted]
        rows = store.located_within(table, wanted, tuple(box), (date_col, date_col, first, end))
        rows = _scoped(rows, table, scope)
        keep = shapely.contains_xy(ring, rows["longitude"].to_numpy(), rows["latitude"].to_numpy())
        return rows.filter(pl.Series(keep, dtype=pl.Boolean)).with_columns(
            pl.col(date_col).dt.truncate("1mo").alias("month"), pl.lit(1).alias("records")
        )

    crimes = inside("crimes", "month", ["crime_type"])
    intel = inside("soc_intelligence", "reported_date", [])
    force = inside(
        "soc_force_crimes",
        "recorded_date",
        ["crime_ref", "firearms_discharged", "cannabis_production"],
    )
    members = store.soc_frame("soc_memberships", columns=["nominal_id"], scope=scope)
    linked = (
        store.soc_frame("soc_nominal_crimes", scope=scope)
        .join(members, on="nominal_id", how="semi")["crime_ref"]
        .unique()
    )
    flags = [
        pl.col(f).fill_null(False)
        for f in ("firearms_discharged", "cannabis_production")
        if not scope.hides("soc_force_crimes", f)
    ]
    soc_rows = force.filter(pl.any_horizontal(pl.col("crime_ref").is_in(linked.implode()), *flags))
    return {
        "crimes": _by_month(crimes.filter(pl.col("crime_type") != ASB)),
        "asb": _by_month(crimes.filter(pl.col("crime_type") == ASB)),
        "soc_crimes": _by_month(soc_rows),
        "intelligence": _by_month(intel),
    }


def _label(m: dt.date) -> str:
    return f"{m:%Y-%m}"


def period_label(months: list[dt.date]) -> str | None:
    """ "YYYY-MM..YYYY-MM" of consecutive months, or None for none."""
    return f"{_label(months[0])}..{_label(months[-1])}" if months else None


def verdict(result: WddResult) -> str:
    """The WDD result in plain words (significance at 5%, two-sided)."""
    if result.p is None:
        return "no events in any area: nothing to test"
    n = abs(round(result.wdd))
    p = f"p = {result.p:.3f}" if result.p >= 0.001 else "p < 0.001"
    if result.p < SIGNIFICANCE and result.wdd < 0:
        return f"fell beyond the control: about {n} fewer than expected ({p})"
    if result.p < SIGNIFICANCE and result.wdd > 0:
        return f"rose beyond the control: about {n} more than expected ({p})"
    return f"no clear change beyond the control ({p})"


@dataclass(frozen=True, slots=True)
class Sides:
    """Each side's monthly events: target, its control, and optionally the buffer and its
    control."""

    target: Series
    control: Series
    buffer: Series | None = None
    buffer_control: Series | None = None


def compare(
    sides: Sides,
    held: dict[str, frozenset[dt.date]],
    before: list[dt.date],
    after: list[dt.date],
    period: str,
) -> list[dict[str, Any]]:
    """One row per measure comparing `after` months with `before` months on every side.

    Months a measure's source holds no data for are left out on every side (gaps, not
    zeros); when the two periods then hold different numbers of months the before counts
    are scaled to the after period's length (the WDD's time weights). A period with no
    month held refuses the comparison, saying why."""
    rows = []
    for measure, label in MEASURES.items():
        have = held[measure]
        b = [m for m in before if m in have]
        a = [m for m in after if m in have]
        gaps = [_label(m) for m in [*before, *after] if m not in have]
        row: dict[str, Any] = {
            "period": period,
            "measure": measure,
            "measure_label": label,
            "before": period_label(before),
            "after": period_label(after),
            "before_months": len(b),
            "after_months": len(a),
            "gap_months": ", ".join(gaps) or None,
        }
        reason = None
        if not before or not b:
            reason = f"no comparison: no {label} data in the before period" + (
                f" ({period_label(before)})" if before else ""
            )
        elif not after or not a:
            reason = f"no comparison: no {label} data in {period}" + (
                f" ({period_label(after)})" if after else ""
            )
        names = ("target", "control", "buffer", "buffer_control")
        counts: dict[str, Counts] = {}
        for name in names:
            side: Series | None = getattr(sides, name)
            if side is None:
                continue
            s = side[measure]
            counts[name] = Counts(sum(s.get(m, 0) for m in b), sum(s.get(m, 0) for m in a))
            row[f"{name}_before"] = counts[name].before if reason is None else None
            row[f"{name}_after"] = counts[name].after if reason is None else None
        if reason is not None:
            row.update(wdd=None, se=None, z=None, p=None, result=reason, refused=reason)
            rows.append(row)
            continue
        res = wdd(
            counts["target"],
            counts["control"],
            counts.get("buffer"),
            counts.get("buffer_control"),
            before_months=len(b),
            after_months=len(a),
        )
        row.update(
            wdd=round(res.wdd, 2),
            wdd_local=round(res.local, 2),
            wdd_buffer=None if res.displacement is None else round(res.displacement, 2),
            se=round(res.se, 2),
            z=None if res.z is None else round(res.z, 3),
            p=None if res.p is None else round(res.p, 4),
            result=verdict(res),
            refused=None,
        )
        if "buffer" in counts:
            q = wdq(counts["target"], counts["control"], counts["buffer"])
            row.update(
                wdq=None if q.wdq is None else round(q.wdq, 3),
                wdq_reading=q.reading if q.reason is None else q.reason,
                wdq_short=q.reading,
                total_net_effect=None
                if q.total_net_effect is None
                else round(q.total_net_effect, 1),
            )
        rows.append(row)
    return rows


def _choose(
    store: Store,
    set_name: str,
    target: list[int],
    months: list[dt.date],
    exclude: set[str],
    control: str | None,
    buffer_control: str | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The control and the buffer's control (chosen by `rank_controls`, or as given)."""
    names = dict(store.area_list(set_name).select("area_code", "area_name").iter_rows())
    for given in (control, buffer_control):
        if given is not None and given not in names:
            raise NotFound(f"no area {given!r} in the {set_name} set to use as a control")
    if control is not None and control == buffer_control:
        raise DataError(
            "the site and its buffer ring need different control areas (one area counted "
            "twice is not two independent comparisons)"
        )
    series: dict[str, list[int]] = {}
    if months:
        frame = store.month_counts("crimes", "month", set_name, months[0], month_end(months[-1]))
        frame = frame.filter((pl.col("kind") != ASB) & pl.col("area_code").is_not_null())
        per = {
            (c, m): int(n)
            for c, m, n in frame.group_by("area_code", "month")
            .agg(pl.col("records").sum())
            .iter_rows()
        }
        series = {c: [per.get((c, m), 0) for m in months] for c in names}
    ranked = rank_controls(target, series, exclude) if series else []

    def described(code: str, chosen_by: str) -> dict[str, Any]:
        hit = next((c for c in ranked if c.code == code), None)
        return {
            "code": code,
            "name": names[code],
            "chosen_by": chosen_by,
            "correlation": None
            if hit is None or hit.correlation is None
            else round(hit.correlation, 3),
            "before_crimes": sum(series[code]) if code in series else None,
            # a given control may touch the site, its ring or another CHB site (stated)
            "near_a_site": code in exclude,
        }

    picks = [c.code for c in ranked]
    first = control or (picks[0] if picks else None)
    second = buffer_control or next((c for c in picks if c != first), None)
    if first is None or second is None:
        raise DataError(
            f"no control can be offered: fewer than two {set_name} areas lie outside the site "
            "and its buffer"
        )
    return (
        described(first, "given" if control else "offered"),
        described(second, "given" if buffer_control else "offered"),
    )


def chb_periods(store: Store, site: str) -> tuple[list[dt.date], list[tuple[str, list[dt.date]]]]:
    """The before period and each phase's months (the CHB view's rule: before = as many
    months as the phases span, at most 12, ending the month before Clear starts; phases end
    at their end date or the last police.uk month held)."""
    phases = (
        store.soc_frame("soc_chb_phases").filter(pl.col("site_code") == site).sort("start_date")
    )
    if phases.is_empty():
        raise NotFound(f"no phases held for CHB site {site}")
    held = store.coverage().filter(pl.col("source_kind").is_in(CRIME_SOURCES))["month"]
    if held.is_empty():
        raise NotFound("no police.uk street data held")
    first_held: dt.date = held.min()  # type: ignore[assignment]
    last_held: dt.date = held.max()  # type: ignore[assignment]
    rows = [(str(r["phase"]), r["start_date"], r["end_date"]) for r in phases.iter_rows(named=True)]
    # the rule lives in soc.chb_periods (the CHB view's); here a phase with no month held
    # keeps its place with no months
    _, clipped, _, _, (start, end) = soc.chb_periods(rows, first_held, last_held)
    kept = iter(clipped)
    following = next(kept, None)
    periods: list[tuple[str, list[dt.date]]] = []
    for phase, start_date, _ in rows:
        if following is not None and (phase, start_date.replace(day=1)) == following[:2]:
            periods.append((phase, month_range(following[1], following[2])))
            following = next(kept, None)
        else:
            periods.append((phase, []))
    return (month_range(start, end) if end >= start else []), periods


def chb_evaluation(
    store: Store,
    site: str,
    scope: Scope = EVERYTHING,
    buffer_m: float = DEFAULT_BUFFER_M,
    control: str | None = None,
    buffer_control: str | None = None,
    control_set: str = CONTROL_SET,
) -> Evaluation:
    """A CHB site's phases evaluated against a control area and a buffer ring.

    Target: the site polygon (the `chb` area set). Buffer: the ring `buffer_m` metres out from
    its edge. Control and buffer control: areas of `control_set` (wards), offered by
    CONTROL_RULE unless given. Each phase is compared with the before period (`chb_periods`)
    on crime, ASB, SOC crime and intelligence, counted from the rows `scope` lets the reader
    see, by WDD (with its SE, z and p) and WDQ."""
    sets = {s.name for s in store.area_sets()}
    if soc.CHB_SET not in sets:
        raise NotFound("no CHB sites held: import their polygons as the `chb` area set")
    if control_set not in sets:
        raise NotFound(f"no {control_set} area set to draw a control from")
    polygons = store.area_polygons(soc.CHB_SET, site)
    if polygons.is_empty():
        raise NotFound(f"no CHB site {site!r}")
    site_name = str(polygons["area_name"][0])
    shape = shapely.from_wkb(polygons["geometry_wkb"][0])
    ring = buffer_ring(shape, buffer_m)
    before, phases = chb_periods(store, site)
    if not before:
        clear = min((ms[0] for _, ms in phases if ms), default=None)
        raise DataError(
            "there is no police.uk data before Clear starts"
            + (f" ({clear:%Y-%m})" if clear else "")
            + ", so there is no before period to compare with"
        )
    months = sorted({*before, *(m for _, ms in phases for m in ms)})
    model = soc_cells.cells(store, soc.CHB_SET)
    held = held_months(store, model)
    first, last = (months[0], months[-1]) if months else (None, None)
    notes: list[str] = []
    if first is None or last is None:
        raise NotFound(f"no months to evaluate for CHB site {site}")
    target = area_series(store, soc.CHB_SET, site, first, last, scope)
    # wards touching the site or its buffer, or another CHB site (treated too), cannot be
    # its control
    wards = store.area_polygons(control_set)
    others = [shapely.from_wkb(w) for w in store.area_polygons(soc.CHB_SET)["geometry_wkb"]]
    area = shapely.union_all([shape, ring, *others])
    exclude = {
        code
        for code, wkb in wards.select("area_code", "geometry_wkb").iter_rows()
        if shapely.intersects(shapely.from_wkb(wkb), area)
    }
    pre = [m for m in before if m in held["crimes"]]
    chosen, chosen_buffer = _choose(
        store,
        control_set,
        [target["crimes"].get(m, 0) for m in pre],
        pre,
        exclude,
        control,
        buffer_control,
    )
    sides = Sides(
        target,
        area_series(store, control_set, chosen["code"], first, last, scope),
        ring_series(store, ring, first, last, scope),
        area_series(store, control_set, chosen_buffer["code"], first, last, scope),
    )
    rows: list[dict[str, Any]] = []
    for phase, after in phases:
        rows.extend(compare(sides, held, before, after, phase))
    for side, what in ((chosen, "control"), (chosen_buffer, "buffer's control")):
        n, have = side["before_crimes"], sum(target["crimes"].get(m, 0) for m in pre)
        if n is not None and not have / LEVEL_FACTOR <= n <= have * LEVEL_FACTOR:
            why = (
                f"no ward outside the buffer was within a factor of {LEVEL_FACTOR:g}"
                if side["chosen_by"] == "offered"
                else f"it is not within a factor of {LEVEL_FACTOR:g}"
            )
            notes.append(
                f"the {what}, {side['name']}, had {n} police.uk crimes in the before period "
                f"against the site's {have}: {why}, and the WDD compares changes in counts, "
                "so read it with care"
            )
        if side.get("near_a_site"):
            notes.append(
                f"the {what}, {side['name']}, touches the site, its buffer ring or another CHB "
                "site: what was done there may have changed it too, so it is not a clean "
                "control; the offered controls avoid such areas"
            )
    refused = sorted({r["refused"] for r in rows if r["refused"]})
    notes.extend(refused)
    options = sorted(
        (
            {"code": c, "name": n}
            for c, n in store.area_list(control_set).select("area_code", "area_name").iter_rows()
            if c not in exclude
        ),
        key=lambda o: (o["name"], o["code"]),
    )
    meta: dict[str, Any] = {
        "site": site,
        "site_name": site_name,
        "control_options": options,
        "buffer_m": buffer_m,
        "control_set": control_set,
        "control": chosen,
        "buffer_control": chosen_buffer,
        "control_rule": CONTROL_RULE,
        "before": period_label(before),
        "phases": [{"phase": p, "months": period_label(ms)} for p, ms in phases],
        "method": (
            "each phase against the before period: WDD = change in the site - change in its "
            "control + change in the buffer - change in the buffer's control (Wheeler & "
            "Ratcliffe 2018), SE = square root of the sum of the eight counts, z = WDD / SE, "
            "two-sided p from the normal distribution; WDQ = buffer measure / success measure "
            f"(Bowers & Johnson 2003). Buffer: a ring {buffer_m:g} m out from the site's edge. "
            "Months without data for a measure are left out on every side; periods of "
            "different length are compared per month of the after period."
        ),
        "limitations": list(LIMITS),
        "significance": SIGNIFICANCE,
    }
    table = pl.DataFrame(rows, infer_schema_length=None)
    return Evaluation(meta, _ordered(table), notes)


def _ordered(table: pl.DataFrame) -> pl.DataFrame:
    for c in TABLE_COLUMNS:
        if c not in table.columns:
            table = table.with_columns(pl.lit(None).alias(c))
    rest = [c for c in table.columns if c not in TABLE_COLUMNS]
    return table.select([*TABLE_COLUMNS, *rest])


def chb_section(
    store: Store,
    site: str,
    scope: Scope,
    buffer_m: float | None = None,
    control: str | None = None,
    buffer_control: str | None = None,
) -> tuple[dict[str, Any], pl.DataFrame]:
    """The CHB page's evaluation: its meta and notes (with `available` and, when it cannot be
    made, the `reason` in words) and its table (empty when not available). The buffer width
    and the controls are the reader's if given, else the defaults and the offered wards."""
    given = {"buffer_m": buffer_m, "control": control, "buffer_control": buffer_control}
    try:
        result = chb_evaluation(
            store,
            site,
            scope,
            DEFAULT_BUFFER_M if buffer_m is None else buffer_m,
            control or None,
            buffer_control or None,
        )
    except (NotFound, DataError) as exc:
        return {"available": False, "reason": str(exc), "given": given}, pl.DataFrame()
    meta = {"available": True, "reason": None, **result.meta, "given": given}
    return {**meta, "notes": result.notes}, result.table
