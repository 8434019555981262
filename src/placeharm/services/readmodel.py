"""The harm read model: each area set's harm cube held in this process, per store generation.

Harm queries (`services.harm`: rank, compare, series, concentration) answer from here instead
of asking the store on every call. For one store object and one `store.generation` (a number
that changes after every committed write of data a page may show), this module holds:

- the store's area sets (`area_sets`), for `queries.check_area_query_among`;
- per area set, built the first time a query needs it (`cells`): the set's harm cube
  (`store.crime_cells(set)`) as numpy arrays (areas x months x keys, cumulative over months;
  or, where that would be too large, the cells sorted by month), the set's areas, its
  populations, and the coverage months (gaps and partial months) read with them, plus the
  weights of each harm index used on it, resolved once per (index, set).

A warm query makes no store query at all: a window's records per area and key are one
subtraction of the cumulative array (or one run of the month-sorted cells), and harm under an
index is a weighted sum over them, so its cost depends on the areas, months and crime types
and codes, not on the number of records.

Consistency. Each piece is built inside one `store.snapshot()` on a builder thread of this
module (its own DuckDB connection, outside any transaction of the caller), after the
generation it is kept under was read: so it holds the committed data of that generation (or,
for a moment while a writer's commit is not yet counted, of the next one), never older data.
When the generation changes, the next query drops the old generation's pieces and builds
afresh. A page is built inside its own snapshot: if an import commits while the page is
built, its figures may come from the new generation's read model while other parts come from
its snapshot; such a page is built across a commit and the page cache's keep() guard does not
keep it.

Concurrent callers of one piece wait for one build (a future per piece). Memory: one
generation per store object; per area set, the cube (at most DENSE_LIMIT_BYTES dense, else
about 32 bytes a cell) plus its areas and populations (Northumbria's wards: about 1 MB),
however many records. docs/performance.md has the whole story.
"""

from __future__ import annotations

import bisect
import datetime as dt
import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import numpy.typing as npt
import polars as pl

from placeharm.harm import HarmIndex
from placeharm.harm.indices import ASB
from placeharm.model import AreaSetInfo, SourceKind
from placeharm.services.queries import CRIME_SOURCES, gaps_among, partial_among
from placeharm.store.base import Store

T = TypeVar("T")
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

# weight_source codes of a key (the order of placeharm.harm.WEIGHT_SOURCES)
BY_CODE, BY_TYPE, NO_WEIGHT = 0, 1, 2
WEIGHTS_KEPT = 32  # harm indices whose weights a set keeps resolved (least recently used go)
# A set's cube is held dense (slots x months x keys, cumulative over months: a window is one
# subtraction) when that takes at most this many bytes; else as month-sorted cells (about 32
# bytes a cell; a window is a run of them). Dense is the faster; the limit bounds memory where
# offence codes multiply the keys.
DENSE_LIMIT_BYTES = 64 * 2**20


@dataclass(frozen=True, slots=True)
class Weights:
    """An index's weight for each key (crime type, offence code) of one set's cube."""

    index: HarmIndex
    weight: FloatArray  # 0 where the index has none
    source: npt.NDArray[np.int8]  # BY_CODE, BY_TYPE or NO_WEIGHT
    unweighted: FloatArray  # 1.0 where the key has no weight, else 0.0


@dataclass(frozen=True, slots=True)
class Totals:
    """Per slot (areas in `SetCells.codes` order, then OUTSIDE, then OTHER): records, harm
    and records with no weight; per key: records (for the weight_source accounting)."""

    records: IntArray
    harm: FloatArray
    unweighted: IntArray
    by_key: IntArray


@dataclass(slots=True)
class SetCells:
    """One area set's harm cube for one generation, and what a harm query reads with it.

    Slots: 0..A-1 the set's areas (`codes`, ordered by code as `store.area_list`), A = the
    records with no location or outside every area (`outside`), A+1 = records carrying an
    area code the set does not list (none in a consistent store; counted where the store
    query counted them). `cumulative` (dense form): records per slot, key, and months before
    axis position j at [:, j, :]. Otherwise (month-sorted form) the rows (cells) of month axis
    position j are `starts[j]:starts[j+1]`.
    """

    name: str
    areas: pl.DataFrame  # area_code, area_name: store.area_list(set)
    codes: list[str]
    names: list[str]
    code_order: IntArray  # each area's position in the codes sorted as strings
    months: list[dt.date]  # the month axis: every month with a cell, ascending
    starts: IntArray  # len(months) + 1 row offsets
    row_month: IntArray
    row_slot: IntArray
    row_key: IntArray
    row_records: FloatArray  # counts as float64 (exact below 2**53), for bincount weights
    cumulative: IntArray | None  # the dense form (None: month-sorted rows)
    key_types: list[str]
    key_codes: list[str | None]
    populations: pl.DataFrame  # store.populations(set)
    street_months: frozenset[dt.date]
    api_months: frozenset[dt.date]
    _weights: OrderedDict[tuple[object, ...], Weights] = field(default_factory=OrderedDict)
    _populations: dict[int, tuple[pl.DataFrame, FloatArray, dict[str, object]]] = field(
        default_factory=dict
    )
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def nbytes(self) -> int:
        """About the memory this set's read model holds (arrays, frames, codes and names)."""
        arrays = [self.starts, self.row_month, self.row_slot, self.row_key, self.row_records]
        if self.cumulative is not None:
            arrays.append(self.cumulative)
        text = sum(len(c) + 49 for c in self.codes) + sum(len(n or "") + 49 for n in self.names)
        return (
            sum(a.nbytes for a in arrays)
            + self.code_order.nbytes
            + int(self.areas.estimated_size())
            + int(self.populations.estimated_size())
            + text
        )

    @property
    def outside(self) -> int:
        return len(self.codes)

    @property
    def slots(self) -> int:
        return len(self.codes) + 2

    # -- coverage: the rules of queries.gap_months / partial_months on the months read ------

    def gap_months(self, first: dt.date, last: dt.date) -> list[str]:
        return gaps_among(self.street_months | self.api_months, first, last)

    def partial_months(self, first: dt.date, last: dt.date) -> list[str]:
        return partial_among(self.street_months, self.api_months, first, last)

    # -- weights and filters ---------------------------------------------------------------

    def weights(self, index: HarmIndex) -> Weights:
        """The index's weight per key, as `placeharm.harm.weigh` gives it: the offence code's
        weight where the index has one, else the crime type's, else none (weight 0)."""
        key = (index.name, index.edition, index.type_scope, index.type_weights.get(ASB))
        with self._lock:
            held = self._weights.get(key)
            if held is not None and (held.index is index or held.index == index):
                self._weights.move_to_end(key)
                return held
        weight = np.zeros(len(self.key_types), dtype=np.float64)
        source = np.full(len(self.key_types), NO_WEIGHT, dtype=np.int8)
        for k, (crime_type, code) in enumerate(zip(self.key_types, self.key_codes, strict=True)):
            by_code = index.code_weights.get(code) if code is not None else None
            by_type = index.type_weights.get(crime_type)
            if by_code is not None:
                weight[k], source[k] = by_code, BY_CODE
            elif by_type is not None:
                weight[k], source[k] = by_type, BY_TYPE
        made = Weights(index, weight, source, (source == NO_WEIGHT).astype(np.float64))
        with self._lock:
            self._weights[key] = made
            self._weights.move_to_end(key)
            while len(self._weights) > WEIGHTS_KEPT:
                self._weights.popitem(last=False)
        return made

    def key_filter(
        self, crime_types: list[str] | None, offence_codes: list[str] | None
    ) -> npt.NDArray[np.bool_] | None:
        """Which keys a query keeps (None: all), as the store's `list_contains` filters: a
        record with no offence code never matches an offence-code filter."""
        if not crime_types and not offence_codes:
            return None
        types, codes = set(crime_types or ()), set(offence_codes or ())
        return np.array(
            [
                (not crime_types or t in types) and (not offence_codes or c in codes)
                for t, c in zip(self.key_types, self.key_codes, strict=True)
            ],
            dtype=np.bool_,
        )

    # -- windows -------------------------------------------------------------------------

    def window(self, first: dt.date, last: dt.date) -> tuple[int, int]:
        """Month axis positions [i, j) of the months m with first <= m <= last."""
        return bisect.bisect_left(self.months, first), bisect.bisect_right(self.months, last)

    def _rows(
        self, first: dt.date, last: dt.date, keep: npt.NDArray[np.bool_] | None
    ) -> tuple[IntArray, IntArray, IntArray, FloatArray]:
        i, j = self.window(first, last)
        rows = slice(int(self.starts[i]), int(self.starts[j]))
        month, slot = self.row_month[rows], self.row_slot[rows]
        key, records = self.row_key[rows], self.row_records[rows]
        if keep is not None:
            chosen = keep[key]
            month, slot, key, records = month[chosen], slot[chosen], key[chosen], records[chosen]
        return month - i, slot, key, records

    def totals(
        self,
        first: dt.date,
        last: dt.date,
        weights: Weights,
        keep: npt.NDArray[np.bool_] | None,
        months: list[dt.date] | None = None,
    ) -> Totals:
        """Sums over the cells of [first, last] (only `months` of it, if given) whose key
        `keep` keeps: records, harm and unweighted records per slot, records per key."""
        if self.cumulative is not None:
            return self._dense_totals(first, last, weights, keep, months)
        month, slot, key, records = self._rows(first, last, keep)
        if months is not None:
            i, j = self.window(first, last)
            wanted = set(months)
            chosen = np.array([m in wanted for m in self.months[i:j]], dtype=np.bool_)[month]
            slot, key, records = slot[chosen], key[chosen], records[chosen]
        n = self.slots
        return Totals(
            records=np.bincount(slot, weights=records, minlength=n).astype(np.int64),
            harm=np.bincount(slot, weights=records * weights.weight[key], minlength=n).astype(
                np.float64, copy=False
            ),
            unweighted=np.bincount(
                slot, weights=records * weights.unweighted[key], minlength=n
            ).astype(np.int64),
            by_key=np.bincount(key, weights=records, minlength=len(self.key_types)).astype(
                np.int64
            ),
        )

    def _dense_totals(
        self,
        first: dt.date,
        last: dt.date,
        weights: Weights,
        keep: npt.NDArray[np.bool_] | None,
        months: list[dt.date] | None,
    ) -> Totals:
        cumulative = self.cumulative
        assert cumulative is not None
        i, j = self.window(first, last)
        if months is None:
            window = cumulative[:, j, :] - cumulative[:, i, :]
        else:
            wanted = set(months)
            at = np.array([k for k in range(i, j) if self.months[k] in wanted], dtype=np.int64)
            window = (cumulative[:, at + 1, :] - cumulative[:, at, :]).sum(axis=1)
        weight, unweighted = weights.weight, weights.unweighted
        by_key = window.sum(axis=0)
        if keep is not None:
            window, weight, unweighted = window[:, keep], weight[keep], unweighted[keep]
            by_key = np.where(keep, by_key, 0)
        return Totals(
            records=window.sum(axis=1),
            harm=window @ weight,
            unweighted=(window @ unweighted).astype(np.int64),
            by_key=by_key,
        )

    def monthly(
        self,
        first: dt.date,
        last: dt.date,
        weights: Weights,
        keep: npt.NDArray[np.bool_] | None,
    ) -> tuple[list[dt.date], IntArray, FloatArray]:
        """The axis months of [first, last] and, per slot and such month, records and harm
        (arrays of shape slots x months)."""
        i, j = self.window(first, last)
        if self.cumulative is not None:
            per = self.cumulative[:, i + 1 : j + 1, :] - self.cumulative[:, i:j, :]
            weight = weights.weight
            if keep is not None:
                per, weight = per[:, :, keep], weight[keep]
            return self.months[i:j], per.sum(axis=2), per @ weight
        month, slot, key, records = self._rows(first, last, keep)
        n, cells = j - i, self.slots * (j - i)
        at = slot * n + month
        per_records = np.bincount(at, weights=records, minlength=cells).astype(np.int64)
        per_harm = np.bincount(at, weights=records * weights.weight[key], minlength=cells).astype(
            np.float64, copy=False
        )
        shape = (self.slots, n)
        return self.months[i:j], per_records.reshape(shape), per_harm.reshape(shape)

    def area_monthly(self, code: str, first: dt.date, last: dt.date) -> pl.DataFrame:
        """Records of area `code` per (month, crime type) in [first, last], months and types
        with none left out: `store.month_counts("crimes", "month", set, ..., code)` without
        reading records (its columns month, kind, records)."""
        slot = self.codes.index(code) if code in self.codes else None
        i, j = self.window(first, last)
        out_month: list[dt.date] = []
        out_kind: list[str] = []
        out_records: list[int] = []
        if slot is not None and j > i:
            if self.cumulative is not None:
                per = self.cumulative[slot, i + 1 : j + 1, :] - self.cumulative[slot, i:j, :]
                at_month, at_key = np.nonzero(per)
                counts = per[at_month, at_key]
            else:
                month, row_slot, at_key, records = self._rows(first, last, None)
                mine = row_slot == slot
                at_month, at_key, counts = month[mine], at_key[mine], records[mine]
            summed: dict[tuple[int, str], int] = {}
            for m, k, n in zip(at_month.tolist(), at_key.tolist(), counts.tolist(), strict=True):
                key = (int(m), self.key_types[int(k)])
                summed[key] = summed.get(key, 0) + int(n)
            for (m, kind), n in summed.items():
                if n:
                    out_month.append(self.months[i + m])
                    out_kind.append(kind)
                    out_records.append(n)
        return pl.DataFrame(
            {"month": out_month, "kind": out_kind, "records": out_records},
            schema={"month": pl.Date, "kind": pl.String, "records": pl.Int64},
        )

    # -- populations ---------------------------------------------------------------------

    def population(self, year: int) -> tuple[pl.DataFrame, FloatArray, dict[str, object]]:
        """`services.harm.population_for` on the populations read, and the population of each
        area slot (NaN where none is held)."""
        held = self._populations.get(year)
        if held is not None:
            return held
        frame, meta = populations_of_year(self.populations, year)
        values = np.full(len(self.codes), np.nan)
        position = {code: i for i, code in enumerate(self.codes)}
        for code, population in frame.iter_rows():
            at = position.get(code)
            if at is not None and population is not None:
                values[at] = population
        made = (frame, values, meta)
        with self._lock:
            if len(self._populations) >= WEIGHTS_KEPT:  # bounded, whatever years are asked
                self._populations.clear()
            self._populations[year] = made
        return made


def populations_of_year(held: pl.DataFrame, year: int) -> tuple[pl.DataFrame, dict[str, object]]:
    """A set's populations (`store.populations`) for the latest year held at or before
    `year` (else the earliest): area_code and population, and the year and method used."""
    if held.is_empty():
        empty = pl.DataFrame(schema={"area_code": pl.String, "population": pl.Float64})
        return empty, {"population_year": None, "population_method": None}
    years = sorted(set(held["year"].to_list()))
    earlier = [y for y in years if y <= year]
    chosen = earlier[-1] if earlier else years[0]
    rows = held.filter(pl.col("year") == chosen)
    methods = sorted(set(rows["method"].to_list()))
    return rows.select("area_code", "population"), {
        "population_year": chosen,
        "population_method": "; ".join(methods),
    }


def _build_cells(store: Store, set_name: str, dense_limit: int = DENSE_LIMIT_BYTES) -> SetCells:
    """Read one set's cube, areas, populations and coverage (inside one snapshot)."""
    cells = store.crime_cells(set_name)
    areas = store.area_list(set_name)
    populations = store.populations(set_name)
    coverage = store.coverage()
    codes = areas["area_code"].to_list()
    outside, other = len(codes), len(codes) + 1
    keys = (
        cells.select("crime_type", "offence_code")
        .unique()
        .sort("crime_type", "offence_code", nulls_last=False)
        .with_row_index("_key")
    )
    months = cells["month"].unique().sort()
    indexed = (
        cells.join(
            pl.DataFrame(
                {"area_code": codes, "_slot": range(len(codes))},
                schema={"area_code": pl.String, "_slot": pl.Int64},
            ),
            on="area_code",
            how="left",
        )
        .join(keys, on=["crime_type", "offence_code"], how="left", nulls_equal=True)
        .join(pl.DataFrame({"month": months}).with_row_index("_month"), on="month", how="left")
        .select(
            pl.col("_month").cast(pl.Int64),
            pl.when(pl.col("area_code").is_null())
            .then(pl.lit(outside, pl.Int64))
            .otherwise(pl.col("_slot").fill_null(other))
            .alias("_slot"),
            pl.col("_key").cast(pl.Int64),
            pl.col("records").cast(pl.Float64),
        )
        .sort("_month", "_slot", "_key")
    )
    row_month = indexed["_month"].to_numpy().astype(np.int64)
    starts = np.searchsorted(row_month, np.arange(len(months) + 1), side="left").astype(np.int64)
    row_slot = indexed["_slot"].to_numpy().astype(np.int64)
    row_key = indexed["_key"].to_numpy().astype(np.int64)
    row_records = indexed["records"].to_numpy().astype(np.float64)
    shape = (len(codes) + 2, len(months), keys.height)
    cumulative = None
    if 8 * shape[0] * (shape[1] + 1) * shape[2] <= dense_limit:
        dense = np.zeros(shape, dtype=np.int64)
        np.add.at(dense, (row_slot, row_month, row_key), row_records.astype(np.int64))
        cumulative = np.zeros((shape[0], shape[1] + 1, shape[2]), dtype=np.int64)
        np.cumsum(dense, axis=1, out=cumulative[:, 1:, :])
        nothing = np.zeros(0, dtype=np.int64)  # the rows are not needed in the dense form
        row_month, row_slot, row_key = nothing, nothing, nothing
        row_records, starts = nothing.astype(np.float64), np.zeros(len(months) + 1, np.int64)
    order = sorted(range(len(codes)), key=codes.__getitem__)
    code_order = np.empty(len(codes), dtype=np.int64)
    code_order[order] = np.arange(len(codes))
    kinds = coverage.filter(pl.col("source_kind").is_in(CRIME_SOURCES))
    street = kinds.filter(pl.col("source_kind") == SourceKind.STREET.value)["month"]
    api = kinds.filter(pl.col("source_kind") == SourceKind.API.value)["month"]
    return SetCells(
        name=set_name,
        areas=areas,
        codes=codes,
        names=areas["area_name"].to_list(),
        code_order=code_order,
        months=months.to_list(),
        starts=starts,
        row_month=row_month,
        row_slot=row_slot,
        row_key=row_key,
        row_records=row_records,
        cumulative=cumulative,
        key_types=keys["crime_type"].to_list(),
        key_codes=keys["offence_code"].to_list(),
        populations=populations,
        street_months=frozenset(street.to_list()),
        api_months=frozenset(api.to_list()),
    )


def _build_sets(store: Store) -> dict[str, AreaSetInfo]:
    return {s.name: s for s in store.area_sets()}


# -- one build per (store, generation, piece), on a builder thread --------------------------


@dataclass(slots=True)
class _Generation:
    """The pieces built for one generation of one store object, and counters for tests and
    the benchmark (builds started; callers that waited for a build; callers served)."""

    generation: int
    pieces: dict[str, Future[object]] = field(default_factory=dict)


@dataclass(slots=True)
class _Counters:
    builds: int = 0
    waits: int = 0
    hits: int = 0


_held: weakref.WeakKeyDictionary[Store, _Generation] = weakref.WeakKeyDictionary()
_counters: weakref.WeakKeyDictionary[Store, _Counters] = weakref.WeakKeyDictionary()
_lock = threading.Lock()
_builders: tuple[int, ThreadPoolExecutor] | None = None  # (process id, pool)


def _builder_pool() -> ThreadPoolExecutor:
    """The builder threads of this process (a forked child makes its own: it has none)."""
    global _builders
    with _lock:
        if _builders is None or _builders[0] != os.getpid():
            pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="placeharm-readmodel")
            _builders = (os.getpid(), pool)
        return _builders[1]


def _in_snapshot(store: Store, build: Callable[[Store], T]) -> T:
    """`build(store)` in one snapshot on a builder thread: its own connection, so it reads
    committed data whatever transaction (and older snapshot) the caller is in."""

    def run() -> T:
        with store.snapshot():
            return build(store)

    try:
        pending = _builder_pool().submit(run)
    except RuntimeError:  # the interpreter is shutting down: no new threads
        return run()
    return pending.result()


def _piece(store: Store, name: str, build: Callable[[Store], T]) -> T:
    generation = store.generation
    with _lock:
        held = _held.get(store)
        if held is None or generation > held.generation:  # an old generation is dropped
            held = _held[store] = _Generation(generation)
        counters = _counters.setdefault(store, _Counters())
        pending = held.pieces.get(name)
        owner = pending is None
        if pending is None:
            pending = held.pieces[name] = Future()
            counters.builds += 1
        elif pending.done():
            counters.hits += 1
        else:
            counters.waits += 1
    if not owner:
        return pending.result()  # type: ignore[return-value]
    try:
        value = _in_snapshot(store, build)
    except BaseException as exc:
        with _lock:  # not kept: the next caller tries again
            if held.pieces.get(name) is pending:
                del held.pieces[name]
        pending.set_exception(exc)
        raise
    pending.set_result(value)
    return value


def area_sets(store: Store) -> dict[str, AreaSetInfo]:
    """The store's area sets by name, as of its current generation."""
    return _piece(store, "sets", _build_sets)


def cells(store: Store, set_name: str) -> SetCells:
    """One area set's read model, as of the store's current generation (built once). The set
    must exist and be assigned (check with `queries.check_area_query_among` first)."""
    return _piece(store, f"cells:{set_name}", lambda s: _build_cells(s, set_name))


def counters(store: Store) -> dict[str, int]:
    """Builds started, callers that waited for a build in progress, callers served from a
    piece already built: for this store object since it was first asked."""
    with _lock:
        c = _counters.get(store, _Counters())
        return {"builds": c.builds, "waits": c.waits, "hits": c.hits}


def footprint(store: Store) -> int:
    """About the bytes held for this store: every area set's read model built so far."""
    with _lock:
        held = _held.get(store)
        pieces = list(held.pieces.values()) if held is not None else []
    built = [p.result() for p in pieces if p.done() and p.exception() is None]
    return sum(b.nbytes for b in built if isinstance(b, SetCells))


def held_generation(store: Store) -> int | None:
    """The generation whose pieces are held for this store (None: nothing held)."""
    with _lock:
        held = _held.get(store)
        return None if held is None else held.generation


def drop(store: Store) -> None:
    """Forget every piece held for this store (the next query builds afresh)."""
    with _lock:
        _held.pop(store, None)


def piece(store: Store, name: str, build: Callable[[Store], T]) -> T:
    """Any other read model kept per store generation, as the harm cube's pieces are: built
    once by `build(store)` in one snapshot on a builder thread (concurrent callers wait for
    that one build), dropped when the generation changes. `name` must be unique to what
    `build` reads (services/outcomes.py prefixes its names with "outcomes:")."""
    return _piece(store, name, build)
