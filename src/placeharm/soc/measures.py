"""SOC measures: what each counts, where it is placed, and which weight it takes."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import polars as pl
import yaml

from placeharm.errors import DataError, NotFound
from placeharm.harm import HarmIndex, weigh
from placeharm.model import CRIME_TYPES
from placeharm.soc.schema import TOPICS
from placeharm.store.base import EVERYTHING, Scope, Store

DEFAULT_MEASURES = Path(__file__).parent / "data" / "measures.yaml"
SOURCES = ("force_crimes", "nominals", "intelligence", "partner_events", "incidents")
NOMINAL_FLAGS = (  # the nominals' flags a measure or a scope reads (soc.cells too)
    "ocg_member",
    "priority_individual",
    "pcg_member",
    "ucg_member",
    "cce_perpetrator",
    "cce_victim",
    "cse_perpetrator",
    "cse_victim",
)
_NOMINAL_FLAGS = NOMINAL_FLAGS
_FILTERS = {
    "force_crimes": {"linked_group_type", "link_roles", "offence_codes", "crime_types", "flag"},
    "nominals": {"flags_any"},
    "intelligence": {"topics_any"},
    "partner_events": {"event_type", "partner"},
    "incidents": {"incident_types"},
}


@dataclass(frozen=True, slots=True)
class Measure:
    id: str
    label: str
    source: str
    filters: dict[str, object]
    weight: object  # "record", a float, or {"offence_code": code}
    rationale: str = ""

    def weight_value(self, index: HarmIndex) -> float | None:
        """The fixed weight of a count measure in `index` (None for `record`)."""
        if self.weight == "record":
            return None
        if isinstance(self.weight, dict):
            code = str(self.weight["offence_code"])
            if code not in index.code_weights:
                raise DataError(
                    f"measure {self.id}: index {index.name} has no weight for offence code {code}"
                )
            return index.code_weights[code]
        return float(self.weight)  # type: ignore[arg-type]

    def describe(self, index: HarmIndex) -> dict[str, object]:
        return {
            "id": self.id,
            "label": self.label,
            "source": self.source,
            "filters": self.filters,
            "weight": self.weight,
            "weight_value": self.weight_value(index),
            "rationale": self.rationale,
        }


@dataclass(frozen=True, slots=True)
class MeasureSet:
    measures: tuple[Measure, ...]
    source: str
    notes: list[str] = field(default_factory=list)


def load_measures(path: Path | str | None = None) -> MeasureSet:
    """Read and check a measures file (default: the shipped Northumbria nine).

    The checked set is kept while the file's size and modification time stay the same, so
    a page build does not parse YAML each time; an edited file is read again."""
    path = Path(path) if path else DEFAULT_MEASURES
    if not path.is_file():
        raise NotFound(f"measures file {path} does not exist")
    stat = path.stat()
    return _load_measures(path.resolve(), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=16)
def _load_measures(path: Path, mtime_ns: int, size: int) -> MeasureSet:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable YAML file: {exc}") from None
    items = doc.get("measures") if isinstance(doc, dict) else None
    if not isinstance(items, list) or not items:
        raise DataError(f"{path}: expected `measures:` with a list of measures (docs/soc.md)")
    problems: list[str] = []
    measures: list[Measure] = []
    for n, item in enumerate(items, start=1):
        where = f"{path}: measure {n}"
        if not isinstance(item, dict):
            problems.append(f"{where}: not a mapping")
            continue
        mid, source = str(item.get("id", "")), str(item.get("source", ""))
        if not mid.replace("_", "").isalnum() or not mid[:1].isalpha():
            problems.append(f"{where}: id {mid!r} must be letters, digits and underscores")
        if source not in SOURCES:
            problems.append(f"{where}: source {source!r} must be one of {', '.join(SOURCES)}")
            continue
        filters = {
            k: v
            for k, v in item.items()
            if k not in ("id", "label", "source", "weight", "rationale")
        }
        unknown = set(filters) - _FILTERS[source]
        if unknown:
            problems.append(
                f"{where}: {', '.join(sorted(unknown))} cannot filter {source} "
                f"(use {', '.join(sorted(_FILTERS[source]))})"
            )
        problems += _check_filters(where, filters)
        weight = item.get("weight", "record")
        if weight == "record" and source != "force_crimes":
            problems.append(f"{where}: only force_crimes measures can use weight: record")
        elif isinstance(weight, dict):
            if set(weight) != {"offence_code"}:
                problems.append(f"{where}: weight mapping takes offence_code only")
        elif weight != "record" and not isinstance(weight, int | float):
            problems.append(f"{where}: weight must be record, a number or {{offence_code: X}}")
        measures.append(
            Measure(
                mid,
                str(item.get("label") or mid),
                source,
                filters,
                weight,
                str(item.get("rationale") or ""),
            )
        )
    ids = [m.id for m in measures]
    if len(set(ids)) != len(ids):
        problems.append(f"{path}: measure ids repeat")
    if problems:
        raise DataError("the measures file has errors:\n  " + "\n  ".join(problems))
    return MeasureSet(tuple(measures), str(path))


def _check_filters(where: str, filters: dict[str, object]) -> list[str]:
    problems = []
    if "flag" in filters and filters["flag"] not in ("firearms_discharged", "cannabis_production"):
        problems.append(f"{where}: flag must be firearms_discharged or cannabis_production")
    for flag in filters.get("flags_any", []) or []:  # type: ignore[attr-defined]
        if flag not in _NOMINAL_FLAGS:
            problems.append(f"{where}: {flag} is not a nominal flag ({', '.join(_NOMINAL_FLAGS)})")
    for topic in filters.get("topics_any", []) or []:  # type: ignore[attr-defined]
        if topic not in TOPICS:
            problems.append(f"{where}: {topic} is not a topic ({', '.join(TOPICS)})")
    for crime_type in filters.get("crime_types", []) or []:  # type: ignore[attr-defined]
        if crime_type not in CRIME_TYPES:
            problems.append(f"{where}: {crime_type} is not a police.uk crime type")
    if filters.get("linked_group_type") not in (None, "OCG", "PCG", "UCG", "any"):
        problems.append(f"{where}: linked_group_type must be OCG, PCG, UCG or any")
    return problems


@dataclass(slots=True)
class SocFrames:
    """The SOC records of one period, each with the area of the queried set."""

    force_crimes: pl.DataFrame  # one row per crime, with weight
    nominals: pl.DataFrame  # home addresses (dates, area_code) with the nominal's flags
    links: pl.DataFrame  # crime_ref, role, group_type of linked group members
    intelligence: pl.DataFrame
    partner_events: pl.DataFrame
    incidents: pl.DataFrame


def _between(frame: pl.DataFrame, column: str, first: dt.date, last: dt.date) -> pl.DataFrame:
    return frame.filter(pl.col(column).is_between(first, last))


_NOMINAL_COLUMNS = ["nominal_id", *_NOMINAL_FLAGS]


def load_frames(
    s: Store,
    by: str,
    first: dt.date,
    last: dt.date,
    index: HarmIndex,
    scope: Scope = EVERYTHING,
) -> SocFrames:
    """Read the SOC records of [first, last] (dates) once: only the columns and rows needed,
    and only the rows `scope` lets the reader count (a flag it masks reads as false)."""
    crimes = s.soc_frame(
        "soc_force_crimes",
        by,
        ("recorded_date", first, last),
        [
            "crime_ref",
            "recorded_date",
            "offence_code",
            "crime_type",
            "firearms_discharged",
            "cannabis_production",
        ],
        scope=scope,
    )
    # links run through group memberships, which a scope never narrows: a member of a group
    # is never a nominal known only for child exploitation (policy.scope)
    links = s.soc_crime_links(first, last)
    homes = (
        s.soc_frame(
            "soc_addresses",
            by,
            columns=["nominal_id", "link_type", "from_date", "to_date"],
            scope=scope,
        )
        .filter(pl.col("link_type") == "home")
        .drop("link_type")
    )
    nominals = s.soc_frame("soc_nominals", columns=_NOMINAL_COLUMNS, scope=scope)
    nominals = nominals.with_columns(
        pl.lit(False).alias(f) for f in _NOMINAL_FLAGS if scope.hides("soc_nominals", f)
    )
    intel = s.soc_frame(
        "soc_intelligence",
        by,
        ("reported_date", first, last),
        ["reported_date", "topics"],
        scope=scope,
    )
    return SocFrames(
        weigh(crimes, index),
        homes.join(nominals, on="nominal_id", how="inner"),
        links,
        intel.with_columns(pl.col("topics").fill_null("").str.split(";").alias("topic_list")),
        s.soc_frame(
            "soc_partner_events",
            by,
            ("event_date", first, last),
            ["event_date", "partner", "event_type"],
            scope=scope,
        ),
        s.soc_frame(
            "soc_incidents",
            by,
            ("occurred_date", first, last),
            ["occurred_date", "incident_type"],
            scope=scope,
        ),
    )


def _placed(nominals: pl.DataFrame, first: dt.date, last: dt.date) -> pl.DataFrame:
    """Each nominal at the home address current in [first, last] (the latest overlapping)."""
    return (
        nominals.filter(
            (pl.col("from_date").is_null() | (pl.col("from_date") <= last))
            & (pl.col("to_date").is_null() | (pl.col("to_date") >= first))
        )
        .sort("from_date", nulls_last=False)
        .unique("nominal_id", keep="last")
    )


def _mask(measure: Measure, frames: SocFrames) -> pl.Expr:
    """Which rows of the measure's source it counts."""
    f = measure.filters
    mask = pl.lit(True)
    if measure.source == "force_crimes":
        if f.get("linked_group_type"):
            wanted = str(f["linked_group_type"])
            roles = list(f.get("link_roles") or ["suspect", "offender"])  # type: ignore[call-overload]
            hit = frames.links.filter(pl.col("role").is_in(roles))
            if wanted != "any":
                hit = hit.filter(pl.col("group_type") == wanted)
            mask &= pl.col("crime_ref").is_in(hit["crime_ref"].unique().implode())
        if f.get("offence_codes"):
            mask &= pl.col("offence_code").is_in(list(f["offence_codes"]))  # type: ignore[call-overload]
        if f.get("crime_types"):
            mask &= pl.col("crime_type").is_in(list(f["crime_types"]))  # type: ignore[call-overload]
        if f.get("flag"):
            mask &= pl.col(str(f["flag"]))
    elif measure.source == "nominals":
        flags = list(f.get("flags_any") or [])  # type: ignore[call-overload]
        if flags:
            mask &= pl.any_horizontal(pl.col(c) for c in flags)
    elif measure.source == "intelligence":
        topics = list(f.get("topics_any") or [])  # type: ignore[call-overload]
        if topics:
            mask &= pl.col("topic_list").list.set_intersection(topics).list.len() > 0
    elif measure.source == "partner_events":
        for key in ("event_type", "partner"):
            if f.get(key):
                mask &= pl.col(key) == str(f[key])
    elif f.get("incident_types"):
        mask &= pl.col("incident_type").is_in(list(f["incident_types"]))  # type: ignore[call-overload]
    return mask.fill_null(False)


_DATED = {
    "force_crimes": ("force_crimes", "recorded_date"),
    "intelligence": ("intelligence", "reported_date"),
    "partner_events": ("partner_events", "event_date"),
    "incidents": ("incidents", "occurred_date"),
}


def score(
    frames: SocFrames,
    measures: tuple[Measure, ...],
    index: HarmIndex,
    periods: dict[str, tuple[dt.date, dt.date]],
) -> pl.DataFrame:
    """Per (area_code, period): each measure's count (`<id>`) and harm (`<id>_harm`).

    One pass per source over all periods; people are placed per period by home address.
    """
    parts: list[pl.DataFrame] = []

    def aggs(source: str) -> list[pl.Expr]:
        out = []
        for m in (m for m in measures if m.source == source):
            mask = _mask(m, frames)
            fixed = m.weight_value(index)
            weight = pl.col("weight").fill_null(0.0) if fixed is None else pl.lit(fixed)
            out += [
                mask.sum().cast(pl.Int64).alias(m.id),
                pl.when(mask)
                .then(weight)
                .otherwise(0.0)
                .sum()
                .cast(pl.Float64)
                .alias(f"{m.id}_harm"),
            ]
        return out

    for source, (attr, date_col) in _DATED.items():
        expressions = aggs(source)
        if not expressions:
            continue
        period = pl.lit(None, pl.String)
        for name, (first, last) in reversed(list(periods.items())):
            period = (
                pl.when(pl.col(date_col).is_between(first, last))
                .then(pl.lit(name))
                .otherwise(period)
            )
        frame = getattr(frames, attr).with_columns(period.alias("period"))
        parts.append(
            frame.filter(pl.col("period").is_not_null())
            .group_by("area_code", "period")
            .agg(expressions)
        )
    expressions = aggs("nominals")
    if expressions:
        # one frame for all periods: joined period by period, their columns would clash
        parts.append(
            pl.concat(
                [
                    _placed(frames.nominals, first, last)
                    .group_by("area_code")
                    .agg(expressions)
                    .with_columns(pl.lit(name).alias("period"))
                    for name, (first, last) in periods.items()
                ]
            )
        )
    keys = ["area_code", "period"]
    columns = [c for m in measures for c in (m.id, f"{m.id}_harm")]
    if not parts:
        return pl.DataFrame(schema=dict.fromkeys(keys, pl.String))
    out = parts[0]
    for part in parts[1:]:
        out = out.join(part, on=keys, how="full", coalesce=True, nulls_equal=True)
    present = [c for c in columns if c in out.columns]
    return out.select(keys + present)


def score_in_store(
    s: Store,
    by: str,
    measures: tuple[Measure, ...],
    index: HarmIndex,
    periods: dict[str, tuple[dt.date, dt.date]],
    scope: Scope = EVERYTHING,
) -> pl.DataFrame:
    """As `score`, computed by the store in one statement (fast at scale), counting only the
    rows `scope` lets the reader see."""
    dated = {
        source: [(m.id, m.filters, m.weight_value(index)) for m in measures if m.source == source]
        for source in _DATED
    }
    residents = [
        (m.id, [str(f) for f in m.filters.get("flags_any") or []], m.weight_value(index) or 0.0)  # type: ignore[attr-defined]
        for m in measures
        if m.source == "nominals"
    ]
    weights = (index.code_table(), index.type_table())
    out = s.soc_scores(by, periods, dated, residents, weights, scope)
    keys = ["area_code", "period"]
    columns = [c for m in measures for c in (m.id, f"{m.id}_harm") if c in out.columns]
    return out.select(keys + columns)
