"""SOC cells: the read model of the SOC measures (issue 14, docs/performance.md "SOC cells").

The dated SOC records (force crimes, intelligence, partner events, incidents, disruptions)
are held as counts per area of one set x month x every column a measure may filter on or a
scope may hide (the weight key of force crimes, their flags and group links, topics,
handling codes, partners, event and incident types). No measure definition is baked in: a
measure is a filter on the cells and its harm a weighted sum over them, so changing the
harm index or editing the measures file costs nothing. The home addresses of nominals (the
resident measures) are their own small snapshot table.

The cells are built in this process from the store, one statement per table, and kept while
`store.generation` is unchanged (it changes after every committed write a page may show, SOC
imports included), so every request after an import reads the new records. A `Scope` is a
filter on the cells where they hold the columns it names; a scope they cannot apply exactly
(a rule the cells do not model) is answered by the direct computation instead
(`score_in_store`, `Store.month_counts`), never approximated.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import weakref
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import polars as pl

from placeharm.harm import HarmIndex
from placeharm.model import month_end
from placeharm.soc.measures import NOMINAL_FLAGS, Measure
from placeharm.store.base import EVERYTHING, Scope, Store

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

DATED = ("force_crimes", "intelligence", "partner_events", "incidents", "disruptions")
# the table each source's rows come from, and the columns of it a scope may filter the cells on
_TABLES = {
    "force_crimes": "soc_force_crimes",
    "intelligence": "soc_intelligence",
    "partner_events": "soc_partner_events",
    "incidents": "soc_incidents",
    "disruptions": "soc_disruptions",
}
_SCOPE_COLUMNS = {"intelligence": ("handling_code",), "partner_events": ("handling_code",)}
# force crimes' group links run through these tables: a scope may drop nominals from them
# only where none of the dropped nominals is a group member (then no link changes)
_LINK_TABLES = ("soc_nominal_crimes", "soc_memberships", "soc_groups")
_NOMINAL_FLAGS = NOMINAL_FLAGS
_FAR = np.iinfo(np.int64).max // 2  # an open end of an address's dates
DENSE = 5  # records a month on average: a source this busy holds none in a month only as a gap


def month_number(day: dt.date) -> int:
    """Months since year 0 (the cells' month axis)."""
    return day.year * 12 + day.month - 1


def _months(column: pl.Series) -> IntArray:
    return (column.dt.year().cast(pl.Int64) * 12 + column.dt.month().cast(pl.Int64) - 1).to_numpy()


@dataclass(slots=True)
class _Source:
    """One source's cells, sorted by month, with arrays for the sums."""

    frame: pl.DataFrame
    area: IntArray  # index into SocCells.codes, -1 for no area of the set
    month: IntArray
    records: FloatArray

    @classmethod
    def of(cls, frame: pl.DataFrame, codes: dict[str, int]) -> _Source:
        frame = frame.sort("month")
        area = (
            frame["area_code"]
            .replace_strict(codes, default=-1, return_dtype=pl.Int64)
            .fill_null(-1)
            .to_numpy()
        )
        return cls(
            frame,
            area.astype(np.int64),
            _months(frame["month"]),
            frame["records"].cast(pl.Float64).to_numpy(),
        )

    def span(self, first: dt.date, last: dt.date) -> slice:
        """The cells of months first..last (dates; whole months)."""
        lo = int(np.searchsorted(self.month, month_number(first), "left"))
        hi = int(np.searchsorted(self.month, month_number(last), "right"))
        return slice(lo, hi)


@dataclass(slots=True)
class _Homes:
    """Home addresses sorted by nominal, then from_date (none first), then address_id."""

    frame: pl.DataFrame
    nominal: IntArray  # run number of the nominal in sort order
    area: IntArray
    start: IntArray  # days since 1970; an open start is very early
    end: IntArray
    flags: dict[str, BoolArray]

    @classmethod
    def of(cls, frame: pl.DataFrame, codes: dict[str, int]) -> _Homes:
        frame = frame.sort(["nominal_id", "from_date", "address_id"], nulls_last=False)
        ids = frame["nominal_id"]
        run = (ids != ids.shift(1)).fill_null(True).cum_sum().cast(pl.Int64).to_numpy()
        days = {
            name: frame[name].cast(pl.Int64).fill_null(fill).to_numpy()
            for name, fill in (("from_date", -_FAR), ("to_date", _FAR))
        }
        area = (
            frame["area_code"]
            .replace_strict(codes, default=-1, return_dtype=pl.Int64)
            .fill_null(-1)
            .to_numpy()
        )
        return cls(
            frame,
            run,
            area.astype(np.int64),
            days["from_date"],
            days["to_date"],
            {f: frame[f].fill_null(False).to_numpy().astype(bool) for f in _NOMINAL_FLAGS},
        )


@dataclass(slots=True)
class SocCells:
    """The SOC cells of one area set, as of one store generation."""

    set_name: str
    generation: int
    areas: pl.DataFrame  # area_code, area_name (Store.area_list)
    codes: list[str]
    sources: dict[str, _Source]
    homes: _Homes
    members: frozenset[str]  # nominals with a group membership
    summary: tuple[dt.date | None, dt.date | None, bool]  # Store.soc_summary
    group_homes: pl.DataFrame  # area_code, group_id, nominal_id (members living in an area)
    groups: pl.DataFrame  # group_id, name, group_type, ocg_band, status
    _codes: pl.Series = field(default_factory=lambda: pl.Series("area_code", [], pl.String))
    _cache: dict[Any, Any] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def cells(self, source: str) -> pl.DataFrame:
        """The cells of one source (see `Store.soc_cells`), sorted by month."""
        if source == "homes":
            return self.homes.frame
        return self.sources[source].frame

    def _cached(self, key: Any, make: Any) -> Any:
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        value = make()
        with self._lock:
            if len(self._cache) > 256:  # many scopes or measure sets: start again
                self._cache.clear()
            self._cache[key] = value
        return value

    def _for_scope(self, key: tuple[str, ...], scope: Scope, make: Any) -> Any:
        """As `_cached`, keyed by the scope object's identity (policy.scope hands out one
        object per kind of reader and generation; hashing one with thousands of hidden
        nominals at every use would cost more than the sums). The scope is kept with the
        value, so its id cannot be reused for another while cached."""
        k = (*key, id(scope))
        with self._lock:
            held = self._cache.get(k)
        if held is not None and held[0] is scope:
            return held[1]
        value = make()
        with self._lock:
            if len(self._cache) > 256:
                self._cache.clear()
            self._cache[k] = (scope, value)
        return value

    # -- what a scope leaves ---------------------------------------------------------------

    def _dropped_nominals(self, scope: Scope, tables: tuple[str, ...]) -> frozenset[str] | None:
        """Nominal ids `scope` drops from `tables`, or None if it has any other rule there
        (a keep rule, another column): the cells cannot apply that one."""
        out: set[str] = set()
        for table in tables:
            for column, values, keep in scope.rules(table):
                if keep or column != "nominal_id":
                    return None
                out.update(values)
        return frozenset(out)

    def applies(self, scope: Scope, sources: tuple[str, ...]) -> bool:
        """Whether the cells answer exactly for `scope` on these sources (dated or homes)."""
        return bool(
            self._for_scope(("applies", *sources), scope, lambda: self._applies(scope, sources))
        )

    def _applies(self, scope: Scope, sources: tuple[str, ...]) -> bool:
        for source in sources:
            if source == "groups":
                tables = ("soc_addresses", "soc_memberships")
                if scope.rules("soc_groups") or self._dropped_nominals(scope, tables) is None:
                    return False
                continue
            if source == "homes":
                if self._dropped_nominals(scope, ("soc_addresses", "soc_nominals")) is None:
                    return False
                continue
            modelled = _SCOPE_COLUMNS.get(source, ())
            if any(column not in modelled for column, _, _ in scope.rules(_TABLES[source])):
                return False
            if source == "force_crimes":
                dropped = self._dropped_nominals(scope, _LINK_TABLES)
                if dropped is None or dropped & self.members:
                    return False
        return True

    def _scope_mask(self, source: str, scope: Scope) -> BoolArray | None:
        """Which cells of `source` the scope lets the reader count (None: all)."""

        def make() -> BoolArray | None:
            rules = scope.rules(_TABLES[source])
            if not rules:
                return None
            frame = self.sources[source].frame
            mask = pl.lit(True)
            for column, values, keep in rules:
                cell = pl.col(column).cast(pl.String)
                listed = cell.is_in(list(values))
                mask &= listed.fill_null(False) if keep else (cell.is_null() | ~listed)
            return frame.select(mask.alias("m"))["m"].to_numpy().astype(bool)

        return self._for_scope(("scope", source), scope, make)  # type: ignore[no-any-return]

    def _homes_kept(self, scope: Scope) -> BoolArray | None:
        def make() -> BoolArray | None:
            dropped = self._dropped_nominals(scope, ("soc_addresses", "soc_nominals"))
            if not dropped:
                return None
            return ~self.homes.frame["nominal_id"].is_in(list(dropped)).to_numpy()

        return self._for_scope(("homes",), scope, make)  # type: ignore[no-any-return]

    # -- measures ------------------------------------------------------------------------

    def _measure_mask(self, measure: Measure) -> BoolArray:
        """Which cells of the measure's source it counts (as Store.soc_scores' conditions)."""
        key = ("measure", measure.source, json.dumps(measure.filters, sort_keys=True, default=str))
        return self._cached(key, lambda: _mask(self.sources[measure.source].frame, measure))  # type: ignore[no-any-return]

    def _weights(self, index: HarmIndex) -> FloatArray:
        """Each force-crime cell's own weight in `index`: its offence code's, else its crime
        type's, else none (0, as a record with no weight adds no harm)."""
        held = self._cache.get(("weights", id(index)))
        if held is not None and held[0] is index:
            return held[1]  # type: ignore[no-any-return]
        weights = self._weigh(index)
        with self._lock:  # keyed by identity: keep the index so its id is not reused
            self._cache[("weights", id(index))] = (index, weights)
        return weights

    def _weigh(self, index: HarmIndex) -> FloatArray:
        frame = self.sources["force_crimes"].frame
        pairs = frame.select("offence_code", "crime_type").unique(maintain_order=True)
        weights = [
            index.code_weights.get(code) if code is not None else None
            for code in pairs["offence_code"]
        ]
        table = pairs.with_columns(
            pl.Series(
                "w",
                [
                    w if w is not None else index.type_weights.get(t) if t is not None else None
                    for w, t in zip(weights, pairs["crime_type"], strict=True)
                ],
                dtype=pl.Float64,
            ).fill_null(0.0)
        )
        joined = frame.select("offence_code", "crime_type").join(
            table,
            on=["offence_code", "crime_type"],
            how="left",
            nulls_equal=True,
            maintain_order="left",
        )
        return joined["w"].to_numpy()

    @staticmethod
    def answers(periods: dict[str, tuple[dt.date, dt.date]]) -> bool:
        """Whether the cells answer for these periods: whole months (first day to last
        day), none overlapping another (a record counts in one period only)."""
        spans = sorted(periods.values())
        whole = all(a.day == 1 and b == month_end(b) and a <= b for a, b in spans)
        return whole and all(spans[i][1] < spans[i + 1][0] for i in range(len(spans) - 1))

    def score(
        self,
        measures: tuple[Measure, ...],
        index: HarmIndex,
        periods: dict[str, tuple[dt.date, dt.date]],
        scope: Scope = EVERYTHING,
    ) -> pl.DataFrame:
        """As `soc.measures.score_in_store`, from the cells: per (area_code, period) of every
        area of the set, each measure's count and harm (0 where none). The caller checks
        `applies(scope, ...)` and `answers(periods)` first."""
        n = len(self.codes)
        weights: FloatArray | None = None
        columns: dict[str, list[Any]] = {}
        for first, last in periods.values():
            latest = (
                self._placed(first, last, scope)
                if any(m.source == "nominals" for m in measures)
                else None
            )
            for m in measures:
                fixed = m.weight_value(index)
                if m.source == "nominals":
                    assert latest is not None
                    count = _resident_count(m, self.homes, latest, scope, n)
                    columns.setdefault(m.id, []).append(count)
                    columns.setdefault(f"{m.id}_harm", []).append(count * (fixed or 0.0))
                    continue
                src = self.sources[m.source]
                span = src.span(first, last)
                take = self._measure_mask(m)[span] & (src.area[span] >= 0)
                scoped = self._scope_mask(m.source, scope)
                if scoped is not None:
                    take &= scoped[span]
                area = src.area[span][take]
                records = src.records[span][take]
                count = np.bincount(area, weights=records, minlength=n).astype(np.int64)
                columns.setdefault(m.id, []).append(count)
                harm: npt.NDArray[Any]
                if fixed is None:
                    if weights is None:
                        weights = self._weights(index)
                    harm = np.bincount(area, weights=records * weights[span][take], minlength=n)
                else:
                    harm = count * float(fixed)
                columns.setdefault(f"{m.id}_harm", []).append(harm.astype(np.float64))
        k = len(periods)
        keys = [
            self._codes.gather(np.tile(np.arange(n), k)),
            pl.Series("period", list(periods), dtype=pl.String).gather(np.repeat(np.arange(k), n)),
        ]
        values = [pl.Series(c, np.concatenate(parts)) for c, parts in columns.items()]
        return pl.DataFrame([*keys, *values])

    def _placed(self, first: dt.date, last: dt.date, scope: Scope) -> IntArray:
        """Each nominal at the home address current in [first, last] (the latest overlapping:
        greatest from_date, an open start earliest): that address's row."""
        homes = self.homes
        start = (first - dt.date(1970, 1, 1)).days
        end = (last - dt.date(1970, 1, 1)).days
        current = (homes.start <= end) & (homes.end >= start)
        kept = self._homes_kept(scope)
        if kept is not None:
            current &= kept
        rows = np.flatnonzero(current)
        runs = homes.nominal[rows]
        return rows[np.append(runs[1:] != runs[:-1], True)] if rows.size else rows

    def groups_in(self, code: str, scope: Scope = EVERYTHING) -> pl.DataFrame:
        """Groups with members whose home address (any, whatever its dates) is in area
        `code`: group_id, members_resident, name, group_type, ocg_band, status, most
        resident members first. The caller checks `applies(scope, ("groups",))` first."""
        members = self.group_homes.filter(pl.col("area_code") == code)
        dropped = self._dropped_nominals(scope, ("soc_addresses", "soc_memberships"))
        if dropped:
            members = members.filter(~pl.col("nominal_id").is_in(list(dropped)))
        return (
            members.group_by("group_id")
            .agg(pl.len().alias("members_resident"))
            .join(self.groups, on="group_id")
            .sort(["members_resident", "group_id"], descending=[True, False])
        )

    def monthly(
        self,
        what: str,
        code: str,
        first: dt.date,
        last: dt.date,
        scope: Scope = EVERYTHING,
    ) -> dict[dt.date, int]:
        """Records per month (first day) of area `code` in months first..last: `soc_crimes`
        (force crimes linked to a member of any group, or flagged firearms discharged or
        cannabis production), `incidents`, `intelligence` or `disruptions`; months with none
        left out. The caller checks `applies(scope, ...)` first."""
        source = "force_crimes" if what == "soc_crimes" else what
        src = self.sources[source]
        if code not in self.codes:
            return {}
        span = src.span(first, last)
        take = src.area[span] == self.codes.index(code)
        if what == "soc_crimes":
            f = src.frame[span]
            take &= (
                f["member_linked"] | f["firearms_discharged"] | f["cannabis_production"]
            ).to_numpy()
        scoped = self._scope_mask(source, scope)
        if scoped is not None:
            take &= scoped[span]
        months = src.month[span][take]
        counts = (
            np.bincount(months - months.min(), weights=src.records[span][take])
            if months.size
            else np.array([])
        )
        base = int(months.min()) if months.size else 0
        return {
            dt.date((base + i) // 12, (base + i) % 12 + 1, 1): int(v)
            for i, v in enumerate(counts)
            if v
        }

    def held_months(self, source: str) -> frozenset[dt.date]:
        """The months (first days) for which dated `source` holds data, force-wide, whatever
        the area or the reader; a month outside is a gap, not a zero (issue 15). For a source
        with `DENSE` records a month or more on average between its first and last month,
        the months with any record (an empty month would not be believable); for a sparser
        one every month from its first to its last record (an empty month may be a true
        zero). None held: empty."""

        def make() -> frozenset[dt.date]:
            months = np.unique(self.sources[source].month)
            if not months.size:
                return frozenset()
            if not self.dense(source):
                months = np.arange(int(months[0]), int(months[-1]) + 1)
            return frozenset(dt.date(m // 12, m % 12 + 1, 1) for m in months.tolist())

        return cast(frozenset[dt.date], self._cached(("held_months", source), make))

    def dense(self, source: str) -> bool:
        """Whether `source` holds at least `DENSE` records a month on average from its first
        to its last month (then a month without any is a gap)."""
        src = self.sources[source]
        if not src.month.size:
            return False
        span = int(src.month.max() - src.month.min()) + 1
        return bool(src.records.sum() / span >= DENSE)


def _resident_count(m: Measure, homes: _Homes, rows: IntArray, scope: Scope, n: int) -> IntArray:
    """Placed nominals (their address `rows`) per area with any of the measure's flags that
    the scope shows (a masked flag is false; none: everyone)."""
    wanted = [str(f) for f in m.filters.get("flags_any") or []]  # type: ignore[attr-defined]
    shown = [f for f in wanted if not scope.hides("soc_nominals", f)]
    area = homes.area[rows]
    inside = area >= 0
    if shown:
        hit = np.zeros(area.shape, dtype=bool)
        for f in shown:
            hit |= homes.flags[f][rows]
        inside &= hit
    elif wanted:  # every flag it tests is masked: it counts nobody
        inside &= False
    return np.bincount(area[inside], minlength=n).astype(np.int64)


def _mask(frame: pl.DataFrame, measure: Measure) -> BoolArray:
    """The cells a measure counts: its filters on the cells' columns (soc/measures.py)."""
    f = measure.filters
    mask = pl.lit(True)
    linked: BoolArray | None = None
    if measure.source == "force_crimes":
        if f.get("linked_group_type"):
            wanted = str(f["linked_group_type"])
            roles = [str(r) for r in f.get("link_roles") or ["suspect", "offender"]]  # type: ignore[attr-defined]
            profiles = frame.select("links").unique(maintain_order=True)
            hit = [
                any(pair[0] in roles and (wanted == "any" or pair[1] == wanted) for pair in p)
                for p in profiles["links"].to_list()
            ]
            linked = (
                frame.select("links")
                .join(
                    profiles.with_columns(pl.Series("hit", hit, dtype=pl.Boolean)),
                    on="links",
                    how="left",
                    maintain_order="left",
                )["hit"]
                .to_numpy()
                .astype(bool)
            )
        if f.get("offence_codes"):
            mask &= pl.col("offence_code").is_in([str(v) for v in f["offence_codes"]])  # type: ignore[attr-defined]
        if f.get("crime_types"):
            mask &= pl.col("crime_type").is_in([str(v) for v in f["crime_types"]])  # type: ignore[attr-defined]
        if f.get("flag"):
            mask &= pl.col(str(f["flag"]))
    elif measure.source == "intelligence" and f.get("topics_any"):
        topics = [str(v) for v in f["topics_any"]]  # type: ignore[attr-defined]
        padded = pl.lit(";") + pl.col("topics").fill_null("") + pl.lit(";")
        mask &= pl.any_horizontal(padded.str.contains(f";{t};", literal=True) for t in topics)
    elif measure.source == "partner_events":
        for key in ("event_type", "partner"):
            if f.get(key):
                mask &= pl.col(key) == str(f[key])
    elif measure.source == "incidents" and f.get("incident_types"):
        mask &= pl.col("incident_type").is_in([str(v) for v in f["incident_types"]])  # type: ignore[attr-defined]
    out = frame.select(mask.fill_null(False).alias("m"))["m"].to_numpy().astype(bool)
    return out & linked if linked is not None else out


# -- the per-process cache ------------------------------------------------------------------

_MODELS: weakref.WeakKeyDictionary[Store, dict[str, SocCells]] = weakref.WeakKeyDictionary()
_SETS: weakref.WeakKeyDictionary[Store, tuple[int, frozenset[str]]] = weakref.WeakKeyDictionary()
_BUILDING = threading.Lock()


def set_names(store: Store) -> frozenset[str]:
    """The names of the store's area sets, read once per generation."""
    generation = store.generation
    held = _SETS.get(store)
    if held is not None and held[0] == generation:
        return held[1]
    names = frozenset(s.name for s in store.area_sets())
    _SETS[store] = (generation, names)
    return names


def build(store: Store, set_name: str) -> SocCells:
    """The SOC cells of `set_name`, read from the store in one snapshot (no cache)."""
    generation = store.generation  # before the read: a later commit then rebuilds
    with store.snapshot():
        raw = store.soc_cells(set_name)
        areas = store.area_list(set_name)
        summary = store.soc_summary()
    codes = areas["area_code"].to_list()
    where = {c: i for i, c in enumerate(codes)}
    return SocCells(
        set_name,
        generation,
        areas,
        codes,
        {s: _Source.of(raw[s], where) for s in DATED},
        _Homes.of(raw["homes"], where),
        frozenset(raw["members"]["nominal_id"].to_list()),
        summary,
        raw["group_homes"],
        raw["groups"],
        pl.Series("area_code", codes, dtype=pl.String),
    )


def cells(store: Store, set_name: str) -> SocCells:
    """The SOC cells of `set_name` as of the store's current generation: built once per
    generation and area set in this process, shared by every request and thread."""
    generation = store.generation
    models = _MODELS.get(store)
    if models is not None and (hit := models.get(set_name)) and hit.generation == generation:
        return hit
    with _BUILDING:  # one build at a time; a waiting thread then finds it built
        models = _MODELS.get(store)
        if models is None or any(m.generation != generation for m in models.values()):
            models = {}
            _MODELS[store] = models
        hit = models.get(set_name)
        if hit is not None and hit.generation == generation:
            return hit
        built = build(store, set_name)
        if built.generation == store.generation:
            models[set_name] = built
        return built
