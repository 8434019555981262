"""Harm ranking query benchmark: `placeharm.services.harm.rank` by ward against pandas.

    .venv/bin/python bench/harm_rank.py              # 524k rows (real Northumbria) and ~10M rows
    .venv/bin/python bench/harm_rank.py --quick      # the same, 40 queries each (< 2 minutes)
    .venv/bin/python bench/harm_rank.py --skip-10m   # 524k rows only
    .venv/bin/python bench/harm_rank.py --scaling    # also the 0.5M / 2M / 10M / 50M table
    .venv/bin/python bench/run.py --only harm        # the same as the first, from the driver

For each size, 200 ranking queries (after a warm-up), each a random 12-month window with a
random crime-type filter or none, from a seeded RNG. placeharm and the pandas baseline answer
the same sequence, interleaved query by query. The stores are built once under
bench/work/harm/ (gitignored) and reused while their row counts are right; the ~10M store is
the real rows replicated inside DuckDB. `--scaling` also times the ranking and the read
model's build and memory on stores of ~0.5M, 2M, 10M and 50M rows. Results go to
bench/results/harm-<UTC>.json and bench/results/harm-latest.json. See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import math
import os
import random
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import polars as pl

from common import (
    AREA_SETS,
    REPO,
    WORK,
    area_paths,
    mark,
    northumbria_dir,
    run_info,
    save_results,
    shown,
    street_files,
    target_line,
    utc_stamp,
)
from common import (
    remove_store as _remove,
)
from common import (
    timing_summary as summary,
)
from common import (
    wal_path as _wal,
)
from placeharm.harm import HarmIndex, load_index
from placeharm.model import CRIME_TYPES
from placeharm.model import shift_month as shift
from placeharm.services import harm, readmodel
from placeharm.services.areas import import_areas
from placeharm.services.ingest import ingest
from placeharm.store.duckdb import DuckDBStore

NORTHUMBRIA_ROWS = 524_070
COPIES = 19  # the 10M store: the real rows 19 times (9,957,330 rows)
BIG_ROWS = NORTHUMBRIA_ROWS * COPIES
HASH_STEP = 1_000_000_007  # copy i's crime_hash = (crime_hash + i * HASH_STEP) mod 2^64
# the scaling table: (label, copies of the real rows); copies 1 is the real store itself
SCALING = (("0.5M", 1), ("2M", 4), ("10M", COPIES), ("50M", 95))
SCALING_RUNS = 100
TARGET_MS = {"northumbria": 2.0, "ten_million": 2.0}  # issue 14: <= 2 ms median at both
TARGET_RATIO = 5.0  # issue 14: >= 5x faster than the in-memory pandas baseline at both
BY = "ward"
AREA_COL = "area_ward"  # the crimes column holding BY's area codes
INDEX = "css"
WINDOW_MONTHS = 12
MAX_TYPES = 5  # a filter is 1..MAX_TYPES crime types, drawn uniformly ...
P_NO_FILTER = 0.2  # ... or, with this probability, no filter (all 14 types)
DEFAULT_SEED = 20240601
CHECKED_QUERIES = 8  # the first queries of the sequence are checked against pandas
REL_TOL = 1e-6


@dataclass(frozen=True, slots=True)
class Query:
    first: dt.date
    last: dt.date
    crime_types: tuple[str, ...] | None  # None: no filter

    def label(self) -> str:
        types = ", ".join(self.crime_types) if self.crime_types else "all types"
        return f"{self.first:%Y-%m}..{self.last:%Y-%m} [{types}]"

    def to_json(self) -> dict[str, Any]:
        return {
            "first": f"{self.first:%Y-%m}",
            "last": f"{self.last:%Y-%m}",
            "crime_types": list(self.crime_types) if self.crime_types else None,
        }


def make_queries(seed: int, first_held: dt.date, last_held: dt.date, n: int) -> list[Query]:
    """n (window, filter) pairs: windows start uniformly on months where 12 months fit."""
    rng = random.Random(seed)
    last_start = shift(last_held, -(WINDOW_MONTHS - 1))
    starts = []
    month = first_held
    while month <= last_start:
        starts.append(month)
        month = shift(month, 1)
    if not starts:
        raise SystemExit(f"the store holds fewer than {WINDOW_MONTHS} months")
    queries = []
    for _ in range(n):
        start = rng.choice(starts)
        types = None
        if rng.random() >= P_NO_FILTER:
            types = tuple(sorted(rng.sample(CRIME_TYPES, rng.randint(1, MAX_TYPES))))
        queries.append(Query(start, shift(start, WINDOW_MONTHS - 1), types))
    return queries


# -- the stores -----------------------------------------------------------------------------


def ready_rows(path: Path) -> int | None:
    """Crimes in a finished store file whose area sets are all assigned; else None."""
    if not path.exists() or _wal(path).exists():
        return None
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error:
        return None
    try:
        rows = con.execute("SELECT count(*) FROM crimes").fetchone()
        # a store whose harm cube was not recounted after the crimes were replicated is not
        # ready (every set's cells must sum to the crimes)
        cells = con.execute(
            "SELECT count(DISTINCT total) FROM (SELECT set_name, sum(records) AS total "
            "FROM crime_cells GROUP BY set_name)"
        ).fetchone()
        held = con.execute(
            "SELECT sum(records) FROM crime_cells WHERE set_name = 'ward'"
        ).fetchone()
        if cells != (1,) or rows is None or held is None or held[0] != rows[0]:
            return None
        sets = con.execute(
            "SELECT count(*) FILTER (WHERE assigned), count(*) FROM area_sets"
        ).fetchone()
    except duckdb.Error:
        return None
    finally:
        con.close()
    if rows is None or sets != (len(AREA_SETS), len(AREA_SETS)):
        return None
    return int(rows[0])


def northumbria_store(work: Path, rebuild: bool) -> tuple[Path, dict[str, Any]]:
    """The real Northumbria store (three area sets, one ingest), built once and reused."""
    path = work / "northumbria.duckdb"
    if not rebuild and ready_rows(path) == NORTHUMBRIA_ROWS:
        return path, {"reused": True}
    _remove(path)
    building = work / "northumbria.duckdb.building"
    _remove(building)
    t0 = time.perf_counter()
    store = DuckDBStore(building)
    try:
        for name, area_path in area_paths():
            import_areas(store, area_path, name)
        results = ingest(store, [northumbria_dir()])
    finally:
        store.close()
    build_s = time.perf_counter() - t0
    rows = ready_rows(building)
    bad = [r.source_file for r in results if r.status != "ok"]
    if rows != NORTHUMBRIA_ROWS or bad:
        raise SystemExit(
            f"the Northumbria store holds {rows} crimes, expected {NORTHUMBRIA_ROWS:,}"
            f"{'; files not ok: ' + ', '.join(map(str, bad)) if bad else ''}"
        )
    building.replace(path)
    return path, {"reused": False, "build_s": build_s}


def prepare_store(path: Path) -> None:
    """Make a store built directly in DuckDB (not through `ingest`) ready for queries.

    Called on every replicated store once it is built, before it is renamed into place.
    The crimes were written behind the harm cube's back, so its cells are recounted.
    """
    with DuckDBStore(path) as store:
        store.rebuild_crime_cells()


def replicated_store(
    work: Path, source: Path, copies: int, name: str, rebuild: bool
) -> tuple[Path, dict[str, Any]]:
    """A copy of `source` whose crimes are replicated `copies` times in DuckDB.

    Copy 0 is the real rows; copy i has crime_hash + i * HASH_STEP (mod 2^64), every other
    column (month, type, areas, ...) unchanged. Built with a raw connection while no store
    has the file open, then `prepare_store`.
    """
    rows = NORTHUMBRIA_ROWS * copies
    path = work / f"{name}.duckdb"
    if not rebuild and ready_rows(path) == rows:
        return path, {"reused": True}
    _remove(path)
    building = work / f"{name}.duckdb.building"
    _remove(building)
    t0 = time.perf_counter()
    shutil.copyfile(source, building)
    con = duckdb.connect(
        str(building),
        # the distinct count of 50M hashes needs more than 2 GB, or room to spill
        config={"memory_limit": "4GB", "threads": 2, "preserve_insertion_order": False},
    )
    con.execute("SET temp_directory = ?", [str(work / "duckdb-tmp")])
    try:
        con.execute("CREATE TEMP TABLE c0 AS SELECT * FROM crimes")
        for i in range(1, copies):
            con.execute(
                "INSERT INTO crimes SELECT * REPLACE ("
                "((crime_hash::HUGEINT + ?::HUGEINT * ?) % 18446744073709551616)::UBIGINT "
                "AS crime_hash) FROM c0",
                [i, HASH_STEP],
            )
        con.execute("DROP TABLE c0")
        con.execute("CHECKPOINT")
        counted = con.execute("SELECT count(*), count(DISTINCT crime_hash) FROM crimes").fetchone()
    finally:
        con.close()
    if counted != (rows, rows) or ready_rows(building) != rows:
        raise SystemExit(
            f"the {name} store holds (crimes, distinct hashes) {counted}, expected {rows:,}"
        )
    prepare_store(building)
    build_s = time.perf_counter() - t0
    building.replace(path)
    return path, {"reused": False, "build_s": build_s}


def big_store(work: Path, source: Path, rebuild: bool) -> tuple[Path, dict[str, Any]]:
    """The ~10M store: the real rows COPIES times (see `replicated_store`)."""
    return replicated_store(work, source, COPIES, "10m", rebuild)


# -- the two implementations ----------------------------------------------------------------


def pandas_frame(store: DuckDBStore, dtypes: str) -> pd.DataFrame:
    """The crimes an analyst would hold in memory: month, crime_type, area_ward."""
    frame = store._frame("SELECT month, crime_type, area_ward FROM crimes").to_pandas()
    if dtypes == "category":
        frame = frame.astype({"crime_type": "category", AREA_COL: "category"})
    return frame


def pandas_rank(
    frame: pd.DataFrame, areas: list[str], weights: dict[str, float], q: Query
) -> pd.DataFrame:
    """The baseline: filter months and types, weigh, sum per area, every area ranked by harm."""
    month = frame["month"]
    mask = (month >= pd.Timestamp(q.first)) & (month <= pd.Timestamp(q.last))
    if q.crime_types is not None:
        mask &= frame["crime_type"].isin(q.crime_types)
    rows = frame.loc[mask]
    weight = rows["crime_type"].map(weights).astype("float64")  # unknown type: NaN, summed as 0
    per_area = weight.groupby(rows[AREA_COL], observed=True).agg(["size", "sum"])
    per_area.columns = pd.Index(["records", "harm"])
    table = per_area.reindex(areas, fill_value=0).rename_axis("area_code").reset_index()
    table["records"] = table["records"].astype("int64")
    table = table.sort_values(["harm", "area_code"], ascending=[False, True], kind="stable")
    table["rank"] = table["harm"].rank(method="min", ascending=False).astype("int64")
    return table[["rank", "area_code", "records", "harm"]]


def placeharm_rank(store: DuckDBStore, index: HarmIndex, q: Query) -> pl.DataFrame:
    types = list(q.crime_types) if q.crime_types else None
    return harm.rank(store, BY, q.first, q.last, index=index, crime_types=types).table


def compare(ours: pl.DataFrame, theirs: pd.DataFrame, q: Query) -> list[str]:
    """Differences between placeharm's and the baseline's ranking ([] when they agree).

    Records must be equal and harm equal within REL_TOL relative, per area. Ranks must be
    equal for every area whose harm is not within REL_TOL of another area's (a near-tie may
    order either way, as the two sum the same weights in a different order).
    """
    ours = ours.filter(pl.col("area_code").is_not_null())
    a = {
        code: (rank, records, harm_)
        for code, rank, records, harm_ in ours.select(
            "area_code", "rank", "records", "harm"
        ).iter_rows()
    }
    b = {
        code: (int(rank), int(records), float(harm_))
        for rank, code, records, harm_ in theirs.itertuples(index=False, name=None)
    }
    problems = []
    if set(a) != set(b):
        return [f"{q.label()}: different areas ({len(a)} against {len(b)})"]
    harms = sorted(h for _, _, h in b.values())
    for code in sorted(a):
        (rank_a, rec_a, harm_a), (rank_b, rec_b, harm_b) = a[code], b[code]
        if rec_a != rec_b:
            problems.append(f"{q.label()}: {code} records {rec_a} against {rec_b}")
        if not math.isclose(harm_a, harm_b, rel_tol=REL_TOL, abs_tol=1e-9):
            problems.append(f"{q.label()}: {code} harm {harm_a!r} against {harm_b!r}")
        near = sum(math.isclose(h, harm_b, rel_tol=REL_TOL, abs_tol=1e-9) for h in harms)
        if near == 1 and rank_a != rank_b:
            problems.append(f"{q.label()}: {code} rank {rank_a} against {rank_b}")
    return problems


# -- measuring ------------------------------------------------------------------------------


def measure(
    key: str, title: str, path: Path, queries: list[Query], args: argparse.Namespace
) -> dict[str, Any]:
    """Check placeharm against pandas on a few queries, then time both on every query."""
    store = DuckDBStore(path)
    try:
        index = load_index(INDEX)
        areas = store.area_list(BY)["area_code"].to_list()
        t0 = time.perf_counter()
        readmodel.area_sets(store)
        readmodel.cells(store, BY)
        model_s = time.perf_counter() - t0
        model_mb = readmodel.footprint(store) / 2**20
        print(
            f"  read model of {BY}: built in {model_s * 1000:.0f} ms (the set's crime_cells, "
            f"areas, populations, coverage; once per store generation; not timed below), "
            f"{model_mb:.1f} MB"
        )
        t0 = time.perf_counter()
        frame = pandas_frame(store, args.pandas_dtypes)
        frame_s = time.perf_counter() - t0
        frame_mb = frame.memory_usage(deep=True).sum() / 2**20
        print(
            f"  pandas frame: {len(frame):,} rows x (month, crime_type, {AREA_COL}), "
            f"{args.pandas_dtypes} dtypes, {frame_mb:.0f} MB, loaded in {frame_s:.1f} s (not timed)"
        )

        checked = queries[:CHECKED_QUERIES]
        problems = []
        for q in checked:
            problems += compare(
                placeharm_rank(store, index, q), pandas_rank(frame, areas, index.type_weights, q), q
            )
        check_ok = not problems
        print(
            f"  check: {len(checked)} queries, per {BY} records equal, harm within {REL_TOL:g} "
            f"relative, ranks equal outside near-ties ... {mark(check_ok)}"
        )
        if problems:
            print("\n".join(f"    {p}" for p in problems[:20]))
            raise SystemExit(f"placeharm and pandas disagree on the ranking at {title}: see above")

        def run_placeharm(q: Query) -> object:
            return placeharm_rank(store, index, q)

        def run_pandas(q: Query) -> object:
            return pandas_rank(frame, areas, index.type_weights, q)

        impls: dict[str, Callable[[Query], object]] = {
            "placeharm": run_placeharm,
            "pandas": run_pandas,
        }
        for q in queries[: args.warmup]:
            for run in impls.values():
                run(q)
        times: dict[str, list[float]] = {"placeharm": [], "pandas": []}
        load = os.getloadavg()[0]
        gc.collect()
        for i, q in enumerate(queries):
            order = ("placeharm", "pandas") if i % 2 == 0 else ("pandas", "placeharm")
            for name in order:
                t0 = time.perf_counter()
                impls[name](q)
                times[name].append((time.perf_counter() - t0) * 1000)
        served = readmodel.counters(store)
    finally:
        store.close()

    p, b = summary(times["placeharm"]), summary(times["pandas"])
    ratio = b["median_ms"] / p["median_ms"]
    per_query = statistics.median(
        bt / pt for pt, bt in zip(times["placeharm"], times["pandas"], strict=True)
    )
    target = TARGET_MS[key]
    ok = p["median_ms"] <= target
    ratio_ok = ratio >= TARGET_RATIO
    print(
        f"  {args.warmup} warm-up queries, then {len(queries)} timed queries each "
        f"(interleaved; load {load:.1f} at start)"
    )
    for name, s in (("placeharm", p), ("pandas", b)):
        print(
            f"    {name:<10} median {s['median_ms']:7.2f} ms   p95 {s['p95_ms']:7.2f} ms"
            f"   (min {s['min_ms']:.2f}, max {s['max_ms']:.1f})"
        )
    print(
        f"    ratio pandas/placeharm: {ratio:.2f}x (of medians), {per_query:.2f}x "
        "(median of per-query ratios)"
    )
    split = {}
    for label, pick in (
        ("no filter", lambda q: q.crime_types is None),
        ("filtered", lambda q: q.crime_types is not None),
    ):
        idx = [i for i, q in enumerate(queries) if pick(q)]
        if idx:
            split[label] = {
                "queries": len(idx),
                **{
                    f"{name}_median_ms": statistics.median(times[name][i] for i in idx)
                    for name in times
                },
            }
    print(
        "    "
        + "; ".join(
            f"{label} ({s['queries']}): placeharm {s['placeharm_median_ms']:.2f} ms, pandas "
            f"{s['pandas_median_ms']:.1f} ms"
            for label, s in split.items()
        )
    )
    print(
        f"    read model: {served['builds']} builds (area sets, {BY} cells), then every query "
        f"served from memory ({served['hits']} reads, no store query)"
    )
    print(target_line(f"placeharm median <= {target:g} ms", ok, f"{p['median_ms']:.2f} ms"))
    print(
        target_line(
            f"pandas/placeharm >= {TARGET_RATIO:g}x (of medians)", ratio_ok, f"{ratio:.1f}x"
        )
    )
    return {
        "title": title,
        "store": shown(path),
        "read_model": {"build_ms": model_s * 1000, "mb": model_mb, "counters": served},
        "pandas_frame": {
            "rows": len(frame),
            "dtypes": args.pandas_dtypes,
            "mb": frame_mb,
            "load_s": frame_s,
        },
        "check": {"queries": [q.to_json() for q in checked], "pass": check_ok},
        "load_avg_1m_at_start": load,
        "placeharm": p,
        "pandas": b,
        "ratio_of_medians": ratio,
        "ratio_median_per_query": per_query,
        "by_filter": split,
        "targets": {
            "median_ms": {"target": target, "value": p["median_ms"], "pass": ok},
            "ratio": {"target": TARGET_RATIO, "value": ratio, "pass": ratio_ok},
        },
    }


def scaling(
    work: Path, small: Path, queries: list[Query], args: argparse.Namespace
) -> dict[str, Any]:
    """The ranking's median, and the read model's build time and memory, at each SCALING
    size: the real store, then the real rows replicated in DuckDB (`replicated_store`)."""
    index = load_index(INDEX)
    timed = queries[:SCALING_RUNS]
    rows_out = []
    print(
        f"\nscaling: harm.rank by {BY}, the first {len(timed)} queries of the sequence "
        f"(after {args.warmup} untimed), on each store in turn"
    )
    for label, copies in SCALING:
        rows = NORTHUMBRIA_ROWS * copies
        if copies == 1:
            path, build = small, {"reused": True}
        else:
            need = small.stat().st_size * copies * 1.3
            free = shutil.disk_usage(work).free
            if not (work / f"{label.lower()}.duckdb").exists() and free < need:
                raise SystemExit(
                    f"the {label} store needs about {need / 2**30:.1f} GiB in {work}; "
                    f"{free / 2**30:.1f} GiB free"
                )
            print(f"  {label}: preparing the store ({copies} copies) ...", flush=True)
            path, build = replicated_store(work, small, copies, label.lower(), args.rebuild)
        store = DuckDBStore(path)
        try:
            t0 = time.perf_counter()
            readmodel.area_sets(store)
            readmodel.cells(store, BY)
            build_ms = (time.perf_counter() - t0) * 1000
            model_mb = readmodel.footprint(store) / 2**20
            for q in queries[: args.warmup]:
                placeharm_rank(store, index, q)
            gc.collect()
            load = os.getloadavg()[0]
            times = []
            for q in timed:
                t0 = time.perf_counter()
                placeharm_rank(store, index, q)
                times.append((time.perf_counter() - t0) * 1000)
        finally:
            store.close()
        s = summary(times)
        rows_out.append(
            {
                "label": label,
                "rows": rows,
                "copies": copies,
                "store": shown(path),
                "store_mb": path.stat().st_size / 2**20,
                "build": build,
                "read_model_build_ms": build_ms,
                "read_model_mb": model_mb,
                "load_avg_1m_at_start": load,
                "rank": s,
            }
        )
        print(
            f"  {label:>5} {rows:>11,} rows: ranking median {s['median_ms']:5.2f} ms, "
            f"p95 {s['p95_ms']:5.2f} ms; read model built in {build_ms:7.0f} ms, "
            f"{model_mb:.1f} MB (load {load:.1f})",
            flush=True,
        )
    first, last = rows_out[0]["rank"]["median_ms"], rows_out[-1]["rank"]["median_ms"]
    print(
        f"  ranking median at {rows_out[-1]['label']} / at {rows_out[0]['label']}: "
        f"{last / first:.2f}x for {rows_out[-1]['copies']}x the records"
    )
    return {"runs": len(timed), "sizes": rows_out}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, help="timed queries per size (200; --quick 40)")
    parser.add_argument("--warmup", type=int, help="untimed queries first (5; --quick 3)")
    parser.add_argument(
        "--quick", action="store_true", help="40 queries per size, no scaling (< 2 minutes)"
    )
    parser.add_argument(
        "--scaling",
        action="store_true",
        help="also the scaling table at 0.5M, 2M, 10M and 50M rows (stores built once)",
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="query sequence seed")
    parser.add_argument("--skip-10m", action="store_true", help="524k rows only")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the stores")
    parser.add_argument(
        "--work-dir", type=Path, default=WORK / "harm", help="where the stores go (bench/work/harm)"
    )
    parser.add_argument(
        "--pandas-dtypes",
        choices=("category", "str"),
        default="category",
        help="crime_type and area columns of the pandas frame (default category)",
    )
    parser.add_argument("--strict", action="store_true", help="exit 2 when a target is missed")
    parser.add_argument("--stamp", help=argparse.SUPPRESS)  # run.py: share its timestamp
    args = parser.parse_args()
    args.runs = args.runs or (40 if args.quick else 200)
    args.warmup = args.warmup if args.warmup is not None else (3 if args.quick else 5)
    if args.quick and args.scaling:
        parser.error("--quick runs no scaling table")
    if args.runs < 20:
        parser.error("--runs must be at least 20 (for a p95)")

    missing = [p for _, p in area_paths() if not p.exists()]
    if not street_files() or missing:
        raise SystemExit(
            f"real data not found under {northumbria_dir().parent.parent} (set "
            "PLACEHARM_SHARED_DATA to the folder holding policeuk/ and boundaries/)"
        )
    stamp = args.stamp or utc_stamp()
    info = run_info("placeharm harm ranking benchmark", stamp)
    args.work_dir.mkdir(parents=True, exist_ok=True)

    small, small_build = northumbria_store(args.work_dir, args.rebuild)
    store = DuckDBStore(small)
    try:
        held = store.coverage().filter(pl.col("source_kind") == "street")["month"]
    finally:
        store.close()
    first_held, last_held = held.min(), held.max()
    assert isinstance(first_held, dt.date) and isinstance(last_held, dt.date)
    queries = make_queries(args.seed, first_held, last_held, args.runs)
    unfiltered = sum(q.crime_types is None for q in queries)
    print(
        f"\nqueries: harm.rank by {BY}, index {INDEX!r}, {args.runs} random "
        f"{WINDOW_MONTHS}-month windows starting {first_held:%Y-%m}.."
        f"{shift(last_held, 1 - WINDOW_MONTHS):%Y-%m} (held {first_held:%Y-%m}.."
        f"{last_held:%Y-%m}); "
        f"filter 1..{MAX_TYPES} of {len(CRIME_TYPES)} crime types, or none "
        f"(p={P_NO_FILTER}: {unfiltered} of {args.runs}); seed {args.seed}"
    )

    results: dict[str, Any] = dict(info)
    results |= {
        "quick": args.quick,
        "seed": args.seed,
        "runs": args.runs,
        "warmup": args.warmup,
        "by": BY,
        "index": INDEX,
        "window_months": WINDOW_MONTHS,
        "filter": {"max_types": MAX_TYPES, "p_no_filter": P_NO_FILTER},
        "pandas_dtypes": args.pandas_dtypes,
        "queries": [q.to_json() for q in queries],
    }

    def built(how: dict[str, Any]) -> str:
        return "reused" if how["reused"] else f"built in {how['build_s']:.1f} s"

    print(
        f"\n{NORTHUMBRIA_ROWS:,} rows (real Northumbria): store {shown(small)} "
        f"({built(small_build)})"
    )
    results["northumbria"] = {
        "rows": NORTHUMBRIA_ROWS,
        "build": small_build,
        **measure("northumbria", "524k rows", small, queries, args),
    }
    if args.skip_10m:
        results["ten_million"] = "skipped"
        print("\n10M rows: skipped (--skip-10m)")
    else:
        print(
            f"\n{BIG_ROWS:,} rows ({COPIES} copies of the real rows): preparing the store ...",
            flush=True,
        )
        big, big_build = big_store(args.work_dir, small, args.rebuild)
        print(f"  store {shown(big)} ({built(big_build)})")
        results["ten_million"] = {
            "rows": BIG_ROWS,
            "copies": COPIES,
            "build": big_build,
            **measure("ten_million", "10M rows", big, queries, args),
        }

    if args.scaling:
        results["scaling"] = scaling(args.work_dir, small, queries, args)

    path = save_results("harm", stamp, results, "harm-latest.json")
    print(f"\nresults: {path.relative_to(REPO)} (and bench/results/harm-latest.json)")
    targets = list(results["northumbria"]["targets"].values())
    if isinstance(results["ten_million"], dict):
        targets += results["ten_million"]["targets"].values()
    if args.strict and not all(t["pass"] for t in targets):
        sys.exit(2)


if __name__ == "__main__":
    main()
