"""Spark ingest against `placeharm ingest` on the same machine (issue 17).

For one set of police.uk files (all 33 Northumbria months of street, outcomes and
stop-and-search files, or bench/gen10m.py's 10M-row street files with --ten-million), on one
machine:

1. `placeharm ingest` into a fresh DuckDB store with the lsoa, ward and msoa sets (timed from
   the first file read to the store closed, as bench/placeharm_ingest.py times it);
2. the Spark job (`services.spark.run`, `local[*]` unless --master) into a fresh folder,
   timed without the SparkSession start (reported apart: a cluster pays it once per job);
3. `load-parquet` of that folder into a second fresh store;

then checks that the job's aggregates equal the ingested store's harm cube for every set
(counts per area x month x crime type), that its outcome and stop-and-search aggregates
equal the ingested store's outcomes (per area of their crime) and stop and search (per area)
by month and type, that the quarantines are the same rows with the same reasons, and that
the loaded store equals the ingested one (the cube, the outcomes held, every crime's latest
outcome, the stop and search rows). Prints the figures, rows per second and rows per second
per core, and writes bench/results/spark-<stamp>.json.

    .venv/bin/python bench/spark_ingest.py [--ten-million] [--master local[2]]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import polars as pl

from common import (
    WORK,
    area_paths,
    northumbria_dir,
    run_info,
    save_results,
    street_files,
    utc_stamp,
)
from placeharm.services import spark as spark_job
from placeharm.services.areas import import_areas
from placeharm.services.ingest import ingest
from placeharm.services.integrity import check
from placeharm.services.parquet_load import load_parquet
from placeharm.store.duckdb import DuckDBStore


class TreeCpu:
    """CPU seconds used by this process's descendants (Spark's JVM and its Python workers)
    while sampling, read from /proc every 0.2 s: on a shared machine wall time mostly measures
    the other jobs, CPU time measures the work."""

    def __init__(self) -> None:
        self.ticks: dict[int, int] = {}  # pid -> highest utime + stime seen
        self.start: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _tree() -> dict[int, int]:
        parents: dict[int, int] = {}
        ticks: dict[int, int] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(fields[1])
            ticks[int(entry.name)] = int(fields[11]) + int(fields[12])
        me = os.getpid()
        found = {}
        for pid in ticks:
            seen, up = 0, parents.get(pid)
            while up and up != me and seen < 64:
                up, seen = parents.get(up), seen + 1
            if up == me:
                found[pid] = ticks[pid]
        return found

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            for pid, t in self._tree().items():
                self.ticks[pid] = max(self.ticks.get(pid, 0), t)

    def __enter__(self) -> TreeCpu:
        self.start = self._tree()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for pid, t in self._tree().items():
            self.ticks[pid] = max(self.ticks.get(pid, 0), t)
        self._stop.set()
        self._thread.join()

    @property
    def seconds(self) -> float:
        hz = os.sysconf("SC_CLK_TCK")
        return sum(t - self.start.get(pid, 0) for pid, t in self.ticks.items()) / hz


def _store(path: Path) -> DuckDBStore:
    store = DuckDBStore(path)
    for name, boundary in area_paths():
        import_areas(store, boundary, name)
    return store


def _cells(store: DuckDBStore, name: str) -> pl.DataFrame:
    return (
        store.crime_cells(name)
        .drop("offence_code")
        .sort("area_code", "month", "crime_type", nulls_last=True)
    )


# What the loaded store must hold as the ingested one does (beside the cube).
_ROWS_SQL = {
    "outcomes": "SELECT crime_id, month, outcome_type, outcome_ordinal, vintage FROM outcomes",
    "latest_outcomes": "SELECT crime_id, latest_outcome, latest_outcome_month FROM crimes",
    "stop_searches": "SELECT search_key, month, search_type, area_lsoa, area_ward, area_msoa, "
    "located, in_area FROM stop_searches",
}


def _kind_cells(store: DuckDBStore, name: str, kind: str) -> pl.DataFrame:
    """The ingested store's outcomes per area of their crime, or its stop and search per
    area, by month and type (SQL of its own, not the job's code)."""
    col = f"area_{name}"  # the bench's own set names (common.AREA_SETS), no input
    if kind == "outcomes":
        sql = (
            f"SELECT c.{col} AS area_code, o.month, o.outcome_type, count(*) AS outcomes "  # noqa: S608 - fixed names
            "FROM outcomes o LEFT JOIN crimes c ON c.crime_id = o.crime_id "
            f"GROUP BY c.{col}, o.month, o.outcome_type"
        )
        order = ["area_code", "month", "outcome_type"]
    else:
        sql = (
            f"SELECT {col} AS area_code, month, search_type, count(*) AS searches "  # noqa: S608 - fixed names
            f"FROM stop_searches GROUP BY {col}, month, search_type"
        )
        order = ["area_code", "month", "search_type"]
    return store._frame(sql).sort(order, nulls_last=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ten-million", action="store_true", help="bench/gen10m.py's files")
    parser.add_argument("--work-dir", type=Path, default=WORK / "10m")
    parser.add_argument("--master", default="local[*]")
    parser.add_argument("--first", type=int, help="only the first N files (a second size)")
    parser.add_argument(
        "--street-only", action="store_true", help="Northumbria's street files only (as before)"
    )
    args = parser.parse_args()
    files = street_files(args.work_dir if args.ten_million else None)[: args.first]
    if not args.ten_million and not args.street_only:
        folder = northumbria_dir()
        for kind in ("outcomes", "stop-and-search"):
            files += sorted(folder.glob(f"*-{kind}.csv.gz"))[: args.first]
    if not files:
        print("no street files found (run bench/gen10m.py for --ten-million)", file=sys.stderr)
        return 1
    stamp = utc_stamp()
    info = run_info("Spark ingest against placeharm ingest", stamp)
    tmp = Path(tempfile.mkdtemp(prefix="placeharm-spark-bench-"))
    results: dict[str, Any] = {**info, "files": len(files), "ten_million": args.ten_million}
    results["files_by_kind"] = {
        kind: sum(f.name.endswith(f"-{kind}.csv.gz") for f in files)
        for kind in ("street", "outcomes", "stop-and-search")
    }
    try:
        # 1. placeharm ingest
        reference = _store(tmp / "ingest.duckdb")
        started, cpu = time.perf_counter(), time.process_time()
        accounts = ingest(reference, files)
        reference.close()
        ingest_s, ingest_cpu = time.perf_counter() - started, time.process_time() - cpu
        reference = DuckDBStore(tmp / "ingest.duckdb")
        rows = sum(a.rows_read for a in accounts)
        results["placeharm_ingest"] = {
            "seconds": round(ingest_s, 2),
            "cpu_seconds": round(ingest_cpu, 2),
            "rows": rows,
            "rows_per_cpu_second": round(rows / ingest_cpu),
        }

        # 2. the Spark job
        started = time.perf_counter()
        session = spark_job._spark_session(args.master)
        start_s = time.perf_counter() - started
        cores = session.sparkContext.defaultParallelism
        out = tmp / "out"
        started, cpu = time.perf_counter(), time.process_time()
        with TreeCpu() as tree:
            manifest = spark_job.run(
                [str(f) for f in files],
                [spark_job.AreaSource(name, path) for name, path in area_paths()],
                out,
                spark=session,
            )
        job_s, driver_cpu = time.perf_counter() - started, time.process_time() - cpu
        session.stop()
        results["spark_job"] = {
            "session_start_seconds": round(start_s, 2),
            "seconds": round(job_s, 2),
            "cores": cores,
            "rows": manifest["counts"]["rows_read"],
            "rows_per_second": round(manifest["counts"]["rows_read"] / job_s),
            "rows_per_second_per_core": round(manifest["counts"]["rows_read"] / job_s / cores),
            "cpu_seconds_jvm_and_workers": round(tree.seconds, 2),
            "cpu_seconds_driver_python": round(driver_cpu, 2),
            "rows_per_cpu_second": round(
                manifest["counts"]["rows_read"] / (tree.seconds + driver_cpu)
            ),
            "output_mb": round(sum(f.stat().st_size for f in out.rglob("*.parquet")) / 2**20, 1),
        }

        # 3. load-parquet
        loaded = _store(tmp / "loaded.duckdb")
        started = time.perf_counter()
        load_parquet(loaded, out)
        loaded.close()
        load_s = time.perf_counter() - started
        loaded = DuckDBStore(tmp / "loaded.duckdb")
        results["load_parquet"] = {"seconds": round(load_s, 2)}

        # checks
        aggregates = pl.read_parquet(out / "aggregates" / "*.parquet")
        same_counts = {}
        same_loaded = {}
        for name, _ in area_paths():
            theirs = _cells(reference, name)
            mine = (
                aggregates.filter(pl.col("set_name") == name)
                .drop("set_name")
                .sort("area_code", "month", "crime_type", nulls_last=True)
            )
            same_counts[name] = mine.equals(theirs.cast(mine.schema))
            same_loaded[name] = _cells(loaded, name).equals(theirs)
        spark_q = pl.read_parquet(out / "quarantine" / "*.parquet")
        q_sql = "SELECT source_file, line, raw_text, reason FROM quarantine"
        ingest_q = reference._frame(q_sql).cast(spark_q.schema)
        same_quarantine = spark_q.sort("source_file", "line").equals(
            ingest_q.sort("source_file", "line")
        )
        same_kinds = {}
        for kind, folder_name in (
            ("outcomes", "outcome_aggregates"),
            ("searches", "search_aggregates"),
        ):
            cells = pl.read_parquet(out / folder_name / "*.parquet")
            for name, _ in area_paths():
                theirs = _kind_cells(reference, name, kind)
                mine = (
                    cells.filter(pl.col("set_name") == name)
                    .drop("set_name")
                    .sort(theirs.columns[:3], nulls_last=True)
                )
                same_kinds[f"{kind}/{name}"] = mine.equals(theirs.cast(mine.schema))
        same_rows = {}
        for what, sql in _ROWS_SQL.items():
            theirs = reference._frame(sql).sort(pl.all(), nulls_last=True)
            mine = loaded._frame(sql).cast(theirs.schema).sort(pl.all(), nulls_last=True)
            same_rows[what] = mine.equals(theirs)
        report = check(loaded)
        results["checks"] = {
            "aggregates_equal_ingest_cube": same_counts,
            "outcome_and_search_aggregates_equal_ingest": same_kinds,
            "loaded_rows_equal_ingest": same_rows,
            "outcomes_held": manifest["counts"]["outcomes"],
            "searches_held": manifest["counts"]["searches"],
            "loaded_cube_equals_ingest_cube": same_loaded,
            "quarantine_equal": same_quarantine,
            "quarantined_rows": spark_q.height,
            "loaded_store_check_ok": report.ok,
            "cells": aggregates.height,
        }
        reference.close()
        loaded.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    results["load_avg_at_end"] = os.getloadavg()
    s, j = results["placeharm_ingest"], results["spark_job"]
    print(f"  files: {len(files)} {results['files_by_kind']}, rows: {s['rows']:,}")
    print(
        f"  placeharm ingest: {s['seconds']:.1f} s ({s['rows'] / s['seconds']:,.0f} rows/s); "
        f"CPU {s['cpu_seconds']:.1f} s ({s['rows_per_cpu_second']:,} rows per CPU-second)"
    )
    print(
        f"  Spark job: {j['seconds']:.1f} s on {j['cores']} cores ({j['rows_per_second']:,} rows/s,"
        f" {j['rows_per_second_per_core']:,} rows/s per core) + session start "
        f"{j['session_start_seconds']:.1f} s; Parquet {j['output_mb']} MB; CPU "
        f"{j['cpu_seconds_jvm_and_workers']:.1f} s JVM and Python workers + "
        f"{j['cpu_seconds_driver_python']:.1f} s driver ({j['rows_per_cpu_second']:,} rows per "
        "CPU-second)"
    )
    print(f"  load-parquet into DuckDB: {results['load_parquet']['seconds']:.1f} s")
    print(f"  checks: {results['checks']}")
    print(f"  load average at end: {results['load_avg_at_end']}")
    path = save_results("spark", stamp, results, "spark-latest.json")
    print(f"  results: {path}")
    checks = results["checks"]
    ok = (
        all(checks["aggregates_equal_ingest_cube"].values())
        and all(checks["outcome_and_search_aggregates_equal_ingest"].values())
        and all(checks["loaded_rows_equal_ingest"].values())
        and all(checks["loaded_cube_equals_ingest_cube"].values())
        and checks["quarantine_equal"]
        and checks["loaded_store_check_ok"]
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
