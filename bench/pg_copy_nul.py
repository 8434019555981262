"""What PostgreSQL's COPY pays for keeping NUL out of text (issue 17): `PostgresStore._copy`
keeps NUL out of the text it writes (PostgreSQL text cannot hold one, so a NUL becomes
U+FFFD). Timed in one run, on the same frame, alternating:

- `none`: no NUL handling at all (the floor; not correct, for the comparison only);
- `replace`: `str.replace_all` on every text column of the frame, as `_copy` did at 94ecb3f
  (kept here);
- `store`: `_copy` as it is now (`postgres._without_nul`: one search of the CSV text, a
  replacement only when a NUL is there).

The frame is a realistic police.uk load: the crimes of four Northumbria months (about 60,000
street records, the size of one month of a large force) with the lsoa, ward and msoa sets
assigned, read back from a PostgreSQL store as `_copy` receives them; and the same frame with
NULs in 20 rows' context (what a damaged file can bring). Each COPY runs in a transaction
that is rolled back, so the table does not grow between runs.

    .venv/bin/python bench/pg_copy_nul.py            # 9 runs of each, medians
    .venv/bin/python bench/pg_copy_nul.py --runs 5 --months 4
    PLACEHARM_BENCH_PG=postgresql://... to use a server; else a throwaway cluster (as the
    tests make, tests/pg_server.py) with fsync off.

Results: printed, and bench/results/pg-copy-nul-<UTC>.json (+ pg-copy-nul-latest.json).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from common import area_paths, northumbria_dir, run_info, save_results, utc_stamp  # type: ignore[import-not-found]
from placeharm.services.areas import import_areas
from placeharm.services.ingest import ingest
from placeharm.store import postgres
from placeharm.store.postgres import PostgresStore


class _Rollback(Exception):
    pass


def _replace_every_column(frame: pl.DataFrame) -> pl.DataFrame:
    """`_copy`'s NUL handling at 94ecb3f: a replace_all over every text column."""
    text = [c for c, t in frame.schema.items() if t == pl.String]
    if not text:
        return frame
    return frame.with_columns(
        pl.col(c).str.replace_all("\x00", "\ufffd", literal=True) for c in text
    )


def _csv(frame: pl.DataFrame) -> str:
    return frame.write_csv(include_header=False, datetime_format="%Y-%m-%d %H:%M:%S%.6f")


def _copy_as(store: PostgresStore, frame: pl.DataFrame, variant: str) -> None:
    """One COPY as `variant` makes it (see the module's docstring)."""
    if variant == "store":
        store._copy("crimes", frame)
        return
    kept = postgres._without_nul
    postgres._without_nul = lambda data: data  # type: ignore[assignment]
    try:
        store._copy("crimes", _replace_every_column(frame) if variant == "replace" else frame)
    finally:
        postgres._without_nul = kept


def _timed_copy(store: PostgresStore, frame: pl.DataFrame, variant: str) -> float:
    t0 = time.perf_counter()
    try:
        with store.transaction():
            _copy_as(store, frame, variant)
            raise _Rollback
    except _Rollback:
        pass
    return time.perf_counter() - t0


def _timed_step(frame: pl.DataFrame, csv: str, variant: str) -> float:
    """The NUL handling alone, as `variant` does it."""
    t0 = time.perf_counter()
    if variant == "replace":
        _replace_every_column(frame)
    elif variant == "store":
        postgres._without_nul(csv)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--months", type=int, default=4)
    args = parser.parse_args()
    stamp = utc_stamp()
    info = run_info("PostgreSQL COPY: NUL handling", stamp)
    cluster = None
    server = os.environ.get("PLACEHARM_BENCH_PG")
    if not server:
        from pg_server import ThrowawayCluster

        cluster = ThrowawayCluster()
        server = cluster.url
    variants = ("none", "replace", "store")
    results: dict[str, Any] = {}
    try:
        with PostgresStore(server) as store:
            t0 = time.perf_counter()
            for name, path in area_paths():
                import_areas(store, path, name)
            files = sorted(northumbria_dir().glob("*-street.csv.gz"))[-args.months :]
            assert all(r.ok for r in ingest(store, files))
            clean = store.crime_frame().drop("rowid", strict=False)
            print(
                f"  built: {clean.height:,} crimes from {[f.name[:7] for f in files]}, "
                f"{clean.width} columns ({sum(t == pl.String for t in clean.dtypes)} text) "
                f"in {time.perf_counter() - t0:.0f} s"
            )
            marked = clean.with_columns(
                pl.when(pl.int_range(pl.len()) % (clean.height // 20) == 0)
                .then(pl.lit("bad\x00byte"))
                .otherwise(pl.col("context"))
                .alias("context")
            )
            for label, frame in (("clean", clean), ("20 NULs", marked)):
                # the same CSV text, whichever way it was made
                csv = _csv(frame)
                assert postgres._without_nul(csv) == _csv(_replace_every_column(frame))
                # `none` cannot COPY a NUL (the server refuses it): compared on clean text
                chosen = [v for v in variants if label == "clean" or v != "none"]
                copy: dict[str, list[float]] = {v: [] for v in chosen}
                alone: dict[str, list[float]] = {v: [] for v in chosen}
                _timed_copy(store, frame, "store")  # warm-up
                for _ in range(args.runs):
                    for name in chosen:  # alternating: the load hits each alike
                        copy[name].append(_timed_copy(store, frame, name))
                        alone[name].append(_timed_step(frame, csv, name))
                med = {v: statistics.median(copy[v]) for v in chosen}
                med_alone = {v: statistics.median(alone[v]) for v in chosen}
                floor = med.get("none") or results["clean"]["copy_median_s"]["none"]
                results[label] = {
                    "rows": frame.height,
                    "copy_median_s": {v: round(x, 4) for v, x in med.items()},
                    "nul_step_alone_median_s": {v: round(x, 5) for v, x in med_alone.items()},
                    "copy_runs_s": {v: [round(x, 4) for x in xs] for v, xs in copy.items()},
                    "replace_over_clean_none": round(med["replace"] / floor, 3),
                    "store_over_clean_none": round(med["store"] / floor, 3),
                    "load_avg_after": round(os.getloadavg()[0], 2),
                }
                print(
                    f"  {label}: COPY of {frame.height:,} rows, median of {args.runs}: "
                    + ", ".join(f"{v} {x * 1000:.0f} ms" for v, x in med.items())
                    + f"; over clean none: replace {med['replace'] / floor:.3f}, "
                    f"store {med['store'] / floor:.3f}; the NUL step alone: "
                    + ", ".join(f"{v} {x * 1000:.1f} ms" for v, x in med_alone.items())
                    + f" (load {os.getloadavg()[0]:.1f})"
                )
    finally:
        if cluster is not None:
            cluster.stop()
    save_results("pg-copy-nul", stamp, {**info, "frames": results}, "pg-copy-nul-latest.json")


if __name__ == "__main__":
    main()
