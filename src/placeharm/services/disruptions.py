"""Disruption impact and diversion referrals (issue 16): before/after with a control around
each disruption's ward and month, summarised by 4P and by group; referred nominals against
comparable nominals not referred. Method, periods and limits: docs/analysis.md."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import polars as pl
import shapely

from placeharm.analysis.control import rank_controls
from placeharm.analysis.wdd import Total, difference, two_sided_p
from placeharm.errors import DataError, NotFound
from placeharm.model import month_end, month_range, shift_month
from placeharm.services import evaluation, indices
from placeharm.soc import cells as soc_cells
from placeharm.soc.generate import REFERRAL_TYPE
from placeharm.store.base import EVERYTHING, Scope, Store

DEFAULT_MONTHS = 3
OFFENDING_ROLES = ("suspect", "offender")  # a nominal's link to a crime they committed
FOUR_P = ("Pursue", "Prevent", "Protect", "Prepare")
MATCHING = (
    "comparable nominals: not referred at any time, of the same kind (OCG, UCG or PCG member, "
    "or none), with the same number of linked crimes (as suspect or offender) in the before "
    "period; if none has the same number, those with the closest number. Their mean is the "
    "comparison (the WDD with area weights)"
)
GROUP_COMPARISON = (
    "Each group's linked crime, harm and intelligence in the months before and after its "
    "first disruption, against the mean of the groups with no disruption recorded"
)
AREA_METHOD = (
    "Disruptions of one 4P in one ward and month are one event; the event's ward is compared "
    "with a control ward (not touching it, with no disruption recorded in the months compared, "
    "chosen by the CHB rule on police.uk crime before) over the months before and after the "
    "event's month (the month itself is left out): WDD, SE, z and two-sided p, no buffer"
)
LIMITS = (
    "disruptions in one ward and month overlap in time and place: their events are not "
    "independent, so the counts of clear falls and rises are a description, not a test",
    "a group's or a nominal's linked records are few: over a few months most comparisons "
    "cannot show a clear change, and the absence of one is not evidence of no effect",
    "harm is the sum of the harm index weights of the linked crimes (its variance the sum of "
    "the squared weights); one serious offence moves it a long way",
    "referred nominals were chosen for referral, comparable ones were not: a difference may "
    "reflect why they were referred rather than the referral",
)


@dataclass(slots=True)
class Impact:
    """The disruption page's figures."""

    meta: dict[str, Any]
    tables: dict[str, pl.DataFrame]
    notes: list[str] = field(default_factory=list)


def _window(month: dt.date, months: int) -> tuple[list[dt.date], list[dt.date]]:
    before = month_range(shift_month(month, -months), shift_month(month, -1))
    after = month_range(shift_month(month, 1), shift_month(month, months))
    return before, after


def _outcome(row: dict[str, Any]) -> str:
    if row.get("refused") or row.get("p") is None:
        return "not compared"
    if row["p"] < evaluation.SIGNIFICANCE:
        return "clear fall" if row["wdd"] < 0 else "clear rise"
    return "no clear change"


def _area_events(
    store: Store, scope: Scope, disruptions: pl.DataFrame, months: int, set_name: str
) -> pl.DataFrame:
    """One row per event (4P, ward, month) and measure."""
    located = disruptions.filter(pl.col("area_code").is_not_null()).with_columns(
        pl.col("disruption_date").dt.truncate("1mo").alias("month")
    )
    if located.is_empty():
        return pl.DataFrame()
    events = located.group_by("four_p", "area_code", "month").agg(
        pl.len().alias("disruptions"),
        pl.col("disruption_type").drop_nulls().unique().sort().str.join(", ").alias("types"),
    )
    events = events.sort("month", "area_code", "four_p")
    model = soc_cells.cells(store, set_name)
    held = evaluation.held_months(store, model)
    names = dict(store.area_list(set_name).select("area_code", "area_name").iter_rows())
    shapes = {
        c: shapely.from_wkb(w)
        for c, w in store.area_polygons(set_name).select("area_code", "geometry_wkb").iter_rows()
    }
    first = shift_month(events["month"].min(), -months)  # type: ignore[arg-type]
    last = shift_month(events["month"].max(), months)  # type: ignore[arg-type]
    crimes = store.month_counts("crimes", "month", set_name, first, month_end(last))
    crimes = crimes.filter((pl.col("kind") != evaluation.ASB) & pl.col("area_code").is_not_null())
    per = {
        (c, m): int(n)
        for c, m, n in crimes.group_by("area_code", "month")
        .agg(pl.col("records").sum())
        .iter_rows()
    }
    disrupted = located.select("area_code", "month")
    series_cache: dict[str, evaluation.Series] = {}

    def series(code: str) -> evaluation.Series:
        if code not in series_cache:
            series_cache[code] = evaluation.area_series(store, set_name, code, first, last, scope)
        return series_cache[code]

    rows: list[dict[str, Any]] = []
    for event in events.iter_rows(named=True):
        code, month = event["area_code"], event["month"]
        before, after = _window(month, months)
        busy = set(disrupted.filter(pl.col("month").is_between(before[0], after[-1]))["area_code"])
        touching = {c for c, s in shapes.items() if shapely.intersects(s, shapes[code])}
        pre = [m for m in before if m in held["crimes"]]
        ranked = rank_controls(
            [per.get((code, m), 0) for m in pre],
            {c: [per.get((c, m), 0) for m in pre] for c in names},
            touching | busy | {code},
        )
        base = {
            "four_p": event["four_p"],
            "area_code": code,
            "area_name": names.get(code, code),
            "event_month": f"{month:%Y-%m}",
            "disruptions": event["disruptions"],
            "types": event["types"],
        }
        if not ranked:
            for measure, label in evaluation.MEASURES.items():
                reason = "no comparison: no ward is free of disruption and apart from this one"
                rows.append(
                    {
                        **base,
                        "control_name": None,
                        "measure": measure,
                        "measure_label": label,
                        "result": reason,
                        "refused": reason,
                    }
                )
            continue
        control = ranked[0].code
        sides = evaluation.Sides(series(code), series(control))
        for row in evaluation.compare(sides, held, before, after, f"{month:%Y-%m}"):
            row.pop("period", None)
            rows.append({**base, "control_name": names[control], **row})
    table = pl.DataFrame(rows, infer_schema_length=None)
    return table.with_columns(pl.Series("outcome", [_outcome(r) for r in rows], dtype=pl.Utf8))


def _by_four_p(events: pl.DataFrame) -> pl.DataFrame:
    if events.is_empty():
        return pl.DataFrame()
    summary = (
        events.group_by("four_p", "measure_label", "measure")
        .agg(
            pl.len().alias("events"),
            (pl.col("outcome") == "clear fall").sum().alias("clear_falls"),
            (pl.col("outcome") == "clear rise").sum().alias("clear_rises"),
            (pl.col("outcome") == "no clear change").sum().alias("no_clear_change"),
            (pl.col("outcome") == "not compared").sum().alias("not_compared"),
            pl.col("wdd").mean().round(1).alias("mean_wdd"),
        )
        .with_columns(
            pl.col("four_p")
            .replace_strict({p: i for i, p in enumerate(FOUR_P)}, default=len(FOUR_P))
            .alias("_order"),
            pl.col("measure")
            .replace_strict({m: i for i, m in enumerate(evaluation.MEASURES)}, default=99)
            .alias("_m"),
        )
        .sort("_order", "_m")
        .drop("_order", "_m", "measure")
    )
    return summary


@dataclass(frozen=True, slots=True)
class _Links:
    """Per nominal, the dated linked crimes (with harm weights) and intelligence naming them."""

    crimes: pl.DataFrame  # nominal_id, month, weight
    intel: pl.DataFrame  # nominal_id, month


def _links(store: Store, scope: Scope) -> _Links:
    links = store.soc_frame("soc_nominal_crimes", scope=scope).filter(
        pl.col("role").is_in(OFFENDING_ROLES)
    )
    crimes = store.soc_frame(
        "soc_force_crimes",
        columns=["crime_ref", "recorded_date", "offence_code", "crime_type"],
        scope=scope,
    )
    weighed = evaluation_weights(store, crimes)
    linked = links.select("nominal_id", "crime_ref").join(weighed, on="crime_ref")
    intel = (
        store.soc_frame("soc_intelligence", columns=["subjects", "reported_date"], scope=scope)
        .with_columns(
            pl.col("subjects").fill_null("").str.split(";").alias("nominal_id"),
            pl.col("reported_date").dt.truncate("1mo").alias("month"),
        )
        .explode("nominal_id")
        .filter(pl.col("nominal_id") != "")
        .select("nominal_id", "month")
    )
    return _Links(linked, intel)


def evaluation_weights(store: Store, crimes: pl.DataFrame) -> pl.DataFrame:
    """crime_ref, month, weight: each crime's harm under the default index (0 when the index
    has no weight for it)."""
    from placeharm.harm import weigh

    index = indices.resolve(store, None)
    return weigh(crimes, index).select(
        "crime_ref",
        pl.col("recorded_date").dt.truncate("1mo").alias("month"),
        pl.col("weight").fill_null(0.0).cast(pl.Float64),
    )


def _totals(links: _Links, ids: list[str], months: list[dt.date]) -> tuple[Total, Total, Total]:
    """Linked crimes, harm and intelligence of nominals `ids` over `months`."""
    c = links.crimes.filter(pl.col("nominal_id").is_in(ids) & pl.col("month").is_in(months))
    i = links.intel.filter(pl.col("nominal_id").is_in(ids) & pl.col("month").is_in(months))
    return (
        Total.of_count(c.height),
        Total.of_weights([float(w) for w in c["weight"]]),
        Total.of_count(i.height),
    )


_PERSON_MEASURES = ("linked crimes", "harm of linked crimes", "intelligence naming them")


def _compare_people(
    links: _Links,
    treated: list[str],
    controls: list[str],
    before: list[dt.date],
    after: list[dt.date],
    held: dict[str, frozenset[dt.date]],
    units: int | None = None,
) -> list[dict[str, Any]]:
    """Treated nominals' totals against the mean of `controls`' per unit (each nominal, or
    `units` groups they make up), per measure."""
    n = units or len(controls)
    rows = []
    sources = ("soc_crimes", "soc_crimes", "intelligence")
    for k, (label, source) in enumerate(zip(_PERSON_MEASURES, sources, strict=True)):
        b = [m for m in before if m in held[source]]
        a = [m for m in after if m in held[source]]
        row: dict[str, Any] = {
            "measure_label": label,
            "before": evaluation.period_label(before),
            "after": evaluation.period_label(after),
            "before_months": len(b),
            "after_months": len(a),
            "comparison_units": n,
        }
        if not b or not a or not controls:
            why = (
                "no comparable units"
                if not controls
                else f"no {label} data in the {'before' if not b else 'after'} period"
            )
            row.update(result=f"no comparison: {why}", refused=why, wdd=None, p=None)
            rows.append(row)
            continue
        tb, ta = _totals(links, treated, b)[k], _totals(links, treated, a)[k]
        cb, ca = _totals(links, controls, b)[k], _totals(links, controls, a)[k]
        res = difference((tb, ta), (cb, ca), len(a) / len(b), 1 / n)
        row.update(
            treated_before=round(tb.value, 1),
            treated_after=round(ta.value, 1),
            comparison_mean_before=round(cb.value / n, 2),
            comparison_mean_after=round(ca.value / n, 2),
            wdd=round(res.wdd, 2),
            se=round(res.se, 2),
            z=None if res.z is None else round(res.z, 3),
            p=None if res.p is None else round(res.p, 4),
            result=evaluation.verdict(res).replace("the control", "the comparison"),
            refused=None,
        )
        rows.append(row)
    return rows


def _kind(row: dict[str, Any]) -> str:
    for flag, kind in (("ocg_member", "OCG"), ("ucg_member", "UCG"), ("pcg_member", "PCG")):
        if row.get(flag):
            return kind
    return "none"


def _referrals(
    store: Store,
    scope: Scope,
    disruptions: pl.DataFrame,
    links: _Links,
    months: int,
    held: dict[str, frozenset[dt.date]],
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Per referral and pooled: the referred nominal against comparable nominals."""
    refs = (
        disruptions.filter(
            (pl.col("disruption_type") == REFERRAL_TYPE) & pl.col("target_nominal_id").is_not_null()
        )
        .sort("disruption_date")
        .unique("target_nominal_id", keep="first", maintain_order=True)
    )
    if refs.is_empty():
        return pl.DataFrame(), pl.DataFrame()
    nominals = store.soc_frame("soc_nominals", scope=scope)
    kind = {r["nominal_id"]: _kind(r) for r in nominals.iter_rows(named=True)}
    referred = set(refs["target_nominal_id"].to_list())
    pool = [n for n in kind if n not in referred]
    rows: list[dict[str, Any]] = []
    pooled: dict[str, list[Any]] = {}
    for ref in refs.iter_rows(named=True):
        nid = ref["target_nominal_id"]
        if nid not in kind:  # not a nominal this reader may count
            continue
        before, after = _window(ref["disruption_date"].replace(day=1), months)
        pre = [m for m in before if m in held["soc_crimes"]]
        counts = links.crimes.filter(pl.col("month").is_in(pre)).group_by("nominal_id").len()
        per = dict(counts.iter_rows())
        mine = per.get(nid, 0)
        same = [n for n in pool if kind[n] == kind[nid]]
        if same:
            gap = min(abs(per.get(n, 0) - mine) for n in same)
            matched = [n for n in same if abs(per.get(n, 0) - mine) == gap]
        else:
            matched = []
        for row in _compare_people(links, [nid], matched, before, after, held):
            rows.append(
                {
                    "disruption_id": ref["disruption_id"],
                    "referred": f"{ref['disruption_date']}",
                    "kind": kind[nid],
                    **row,
                }
            )
            pooled.setdefault(row["measure_label"], []).append(row)
    summary = []
    for label, items in pooled.items():
        done = [r for r in items if r.get("refused") is None]
        # pooled: the sum of the referrals' WDDs, variance the sum of theirs (taken as
        # independent; comparable nominals may serve more than one referral)
        total = sum(r["wdd"] for r in done)
        variance = sum(r["se"] ** 2 for r in done)
        z = total / variance**0.5 if variance > 0 else None
        summary.append(
            {
                "measure_label": label,
                "referrals": len(items),
                "compared": len(done),
                "pooled_wdd": round(total, 2),
                "pooled_se": round(variance**0.5, 2),
                "pooled_p": None if z is None else round(two_sided_p(z), 4),
                "clear_falls": sum(1 for r in done if _outcome(r) == "clear fall"),
                "clear_rises": sum(1 for r in done if _outcome(r) == "clear rise"),
                "no_clear_change": sum(1 for r in done if _outcome(r) == "no clear change"),
            }
        )
    return pl.DataFrame(rows, infer_schema_length=None), pl.DataFrame(summary)


def _groups(
    store: Store,
    scope: Scope,
    disruptions: pl.DataFrame,
    links: _Links,
    months: int,
    held: dict[str, frozenset[dt.date]],
) -> pl.DataFrame:
    """Each disrupted group's members' linked records after its first disruption against
    the mean of undisrupted groups."""
    members = store.soc_frame("soc_memberships", columns=["group_id", "nominal_id"], scope=scope)
    groups = store.soc_frame("soc_groups", columns=["group_id", "name"], scope=scope)
    by_group: dict[str, list[str]] = {}
    for gid, nid in members.iter_rows():
        by_group.setdefault(gid, []).append(nid)
    hit = (
        disruptions.filter(pl.col("target_group_id").is_not_null())
        .group_by("target_group_id")
        .agg(pl.col("disruption_date").min().alias("first"), pl.len().alias("disruptions"))
        .sort("target_group_id")
    )
    spared = [g for g in by_group if g not in set(hit["target_group_id"].to_list())]
    names = dict(groups.iter_rows())
    rows = []
    for gid, first, count in hit.iter_rows():
        if gid not in by_group:
            continue
        before, after = _window(first.replace(day=1), months)
        control_ids = [n for g in spared for n in by_group[g]]
        for row in _compare_people(
            links, by_group[gid], control_ids, before, after, held, units=len(spared)
        ):
            rows.append(
                {
                    "group_id": gid,
                    "group": names.get(gid, gid),
                    "first_disruption": f"{first}",
                    "disruptions": count,
                    **row,
                }
            )
    return pl.DataFrame(rows, infer_schema_length=None)


def disruption_impact(
    store: Store,
    scope: Scope = EVERYTHING,
    months: int = DEFAULT_MONTHS,
    set_name: str = evaluation.CONTROL_SET,
) -> Impact:
    """Disruptions' impact: per event (4P, ward, month) against a control ward, summarised by
    4P; per disrupted group against undisrupted groups; per diversion referral (named by its
    disruption record, not by the nominal) against comparable nominals. Counted from the rows
    `scope` lets the reader see."""
    if months < 1:
        raise DataError("the window must be 1 month or more")
    if set_name not in {s.name for s in store.area_sets()}:
        raise NotFound(f"no {set_name} area set to place disruptions in")
    disruptions = store.soc_frame("soc_disruptions", set_name, scope=scope)
    model = soc_cells.cells(store, set_name)
    held = evaluation.held_months(store, model)
    events = _area_events(store, scope, disruptions, months, set_name)
    links = _links(store, scope)
    groups = _groups(store, scope, disruptions, links, months, held)
    referrals, pooled = _referrals(store, scope, disruptions, links, months, held)
    notes = []
    if disruptions.is_empty():
        notes.append("no disruptions are held")
    meta: dict[str, Any] = {
        "months": months,
        "area_set": set_name,
        "disruptions": disruptions.height,
        "referrals": int((disruptions["disruption_type"] == REFERRAL_TYPE).sum())
        if not disruptions.is_empty()
        else 0,
        "referral_type": REFERRAL_TYPE,
        "area_method": AREA_METHOD,
        "group_method": GROUP_COMPARISON,
        "matching": MATCHING,
        "limitations": list(LIMITS),
        "significance": evaluation.SIGNIFICANCE,
        "synthetic": store.soc_summary()[2],
    }
    return Impact(
        meta,
        {
            "by_four_p": _by_four_p(events),
            "events": events,
            "groups": groups,
            "referrals_summary": pooled,
            "referrals": referrals,
        },
        notes,
    )
