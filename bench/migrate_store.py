"""`placeharm migrate-store` timings (issue 17): a DuckDB store moved into an empty PostgreSQL
database, on the demo store and on Northumbria's 33 months (street, outcomes, stop and
search, with the lsoa, ward and msoa sets and the synthetic SOC overlay at 1x).

    .venv/bin/python bench/migrate_store.py                  # both stores
    .venv/bin/python bench/migrate_store.py --only demo
    PLACEHARM_BENCH_PG=postgresql://... to use a server; else a throwaway cluster (as the
    tests make, tests/pg_server.py) with fsync off: a production server with fsync on
    commits once, at the end, so the difference is small.

Each store is built once in bench/work/ and reused; each move goes into a new database.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from common import (  # type: ignore[import-not-found]
    WORK,
    area_paths,
    northumbria_dir,
    run_info,
    save_results,
    utc_stamp,
)
from placeharm.services import auth, demo, soc
from placeharm.services.areas import import_areas
from placeharm.services.ingest import ingest
from placeharm.services.migrate_store import migrate_store
from placeharm.store.duckdb import DuckDBStore


def build_demo(path: Path) -> None:
    with DuckDBStore(path) as store:
        demo.build_demo(store)
        soc.build_overlay(store, seed=1)
        auth.create_demo_users(store)


def build_northumbria(path: Path) -> None:
    with DuckDBStore(path) as store, tempfile.TemporaryDirectory() as tmp:
        for name, area_path in area_paths():
            import_areas(store, area_path, name)
        ingest(store, sorted(northumbria_dir().glob("*.csv.gz")))
        soc.build_overlay(store, seed=1, out_dir=Path(tmp))
        auth.create_demo_users(store)


BUILDERS = {"demo": build_demo, "northumbria": build_northumbria}


def store_file(name: str) -> Path:
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / f"migrate-{name}.duckdb"
    if not path.exists():
        building = path.with_suffix(".building")
        building.unlink(missing_ok=True)
        t0 = time.perf_counter()
        BUILDERS[name](building)
        building.rename(path)
        print(f"  built {path.name} in {time.perf_counter() - t0:.0f} s")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(BUILDERS), action="append")
    args = parser.parse_args()
    stamp = utc_stamp()
    info = run_info("migrate-store: DuckDB to PostgreSQL", stamp)
    import psycopg

    cluster = None
    server = os.environ.get("PLACEHARM_BENCH_PG")
    if not server:
        from pg_server import ThrowawayCluster

        cluster = ThrowawayCluster()
        server = cluster.url
    results: dict[str, Any] = {}
    try:
        for name in args.only or sorted(BUILDERS):
            source = store_file(name)
            database = f"bench_{name}_{stamp.lower()}"
            with psycopg.connect(server, autocommit=True) as con:
                con.execute(f"CREATE DATABASE {database}")
            target = server.rsplit("/", 1)[0] + "/" + database
            load = os.getloadavg()[0]
            report = migrate_store(source, target)
            rows = report.total_rows
            results[name] = {
                "source_mb": round(source.stat().st_size / 2**20, 1),
                "tables": len(report.source_rows),
                "rows": rows,
                "rows_by_table": report.source_rows,
                "seconds": round(report.seconds, 2),
                "copy_seconds": round(report.copy_seconds, 2),
                "check_seconds": round(report.check_seconds, 2),
                "rows_per_s": round(rows / report.seconds),
                "load_avg_before": round(load, 2),
                "load_avg_after": round(os.getloadavg()[0], 2),
                "audit_entries": report.audit_entries,
            }
            print(
                f"  {name}: {len(report.source_rows)} tables, {rows:,} rows "
                f"({results[name]['source_mb']} MB file) in {report.seconds:.1f} s "
                f"= {rows / report.seconds:,.0f} rows/s (schema and copy "
                f"{report.copy_seconds:.1f} s, counts and check {report.check_seconds:.1f} s; "
                f"load {load:.1f} before, "
                f"{results[name]['load_avg_after']:.1f} after); crimes "
                f"{report.source_rows.get('crimes', 0):,}"
            )
    finally:
        if cluster is not None:
            cluster.stop()
    save_results("migrate-store", stamp, {**info, "stores": results}, "migrate-store-latest.json")


if __name__ == "__main__":
    main()
