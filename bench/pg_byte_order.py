"""What migration 16 costs on a big PostgreSQL store (issue 17): it makes every text column
COLLATE "C" (store/pg_migrations.TEXT_IN_BYTE_ORDER), so text sorts in byte order as on
DuckDB whatever the database's collation.

The store: a database made with a locale collation (ICU en-GB, as a force's DBA may make it;
the database default if the server has no ICU), the lsoa, ward and msoa sets, four Northumbria
months ingested and their crimes copied until the table holds `--rows` (1,000,000) rows; then
its text columns are put back in the database's collation and version 16 unrecorded, as a
store made before it. The timed step is opening it (`PostgresStore(url)`), which migrates.
Also reported: whether the crimes table was rewritten (its relfilenode), its size, and an
area list's order before and after.

    .venv/bin/python bench/pg_byte_order.py              # 1,000,000 crimes
    .venv/bin/python bench/pg_byte_order.py --rows 200000
    PLACEHARM_BENCH_PG=postgresql://... to use a server; else a throwaway cluster (as the
    tests make, tests/pg_server.py) with fsync off.

Results: printed, and bench/results/pg-byte-order-<UTC>.json (+ pg-byte-order-latest.json).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from common import area_paths, northumbria_dir, run_info, save_results, utc_stamp  # type: ignore[import-not-found]
from placeharm.services.areas import import_areas
from placeharm.services.ingest import ingest
from placeharm.store.postgres import PostgresStore


def _database(server: str, name: str) -> tuple[str, str]:
    """A new database, in ICU en-GB order if the server has ICU: its URL and collation."""
    with psycopg.connect(server, autocommit=True) as con:
        try:
            con.execute(
                f"CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' "
                "LOCALE_PROVIDER icu ICU_LOCALE 'en-GB' LOCALE 'C'"
            )
            collation = "ICU en-GB"
        except psycopg.errors.FeatureNotSupported:
            con.execute(f"CREATE DATABASE {name}")
            collation = "the server's default"
    return server.rsplit("/", 1)[0] + "/" + name, collation


def _crimes_info(store: PostgresStore) -> dict[str, Any]:
    row = store._one(
        "SELECT pg_relation_filenode('crimes'), pg_total_relation_size('crimes'), "
        "pg_relation_size('crimes'), (SELECT count(*) FROM crimes), "
        "pg_relation_filenode('crimes_crime_id_idx')"
    )
    assert row is not None
    return {
        "filenode": int(row[0]),
        "crime_id_index_filenode": int(row[4]),
        "total_mb_with_indexes": round(int(row[1]) / 2**20, 1),
        "table_mb": round(int(row[2]) / 2**20, 1),
        "rows": int(row[3]),
    }


def _text_columns(store: PostgresStore, collation: str) -> int:
    row = store._one(
        "SELECT count(*) FROM information_schema.columns WHERE table_schema = "
        "current_schema() AND collation_name IS NOT DISTINCT FROM ?",
        [collation],
    )
    return int(row[0]) if row else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    stamp = utc_stamp()
    info = run_info("PostgreSQL migration 16 (text in byte order)", stamp)
    cluster = None
    server = os.environ.get("PLACEHARM_BENCH_PG")
    if not server:
        from pg_server import ThrowawayCluster

        cluster = ThrowawayCluster()
        server = cluster.url
    out: dict[str, Any] = {}
    try:
        url, collation = _database(server, f"bench_byte_order_{stamp.lower()}")
        out["database_collation"] = collation
        t0 = time.perf_counter()
        with PostgresStore(url) as store:
            for name, path in area_paths():
                import_areas(store, path, name)
            files = sorted(northumbria_dir().glob("*-street.csv.gz"))[-4:]
            assert all(r.ok for r in ingest(store, files))
            cols = [
                str(r[0])
                for r in store._run(
                    "SELECT column_name FROM information_schema.columns WHERE table_schema = "
                    "current_schema() AND table_name = 'crimes' AND column_name <> 'rowid' "
                    "ORDER BY ordinal_position"
                )
            ]
            listed = ", ".join(f'"{c}"' for c in cols)
            while True:
                (held,) = store._one("SELECT count(*) FROM crimes") or (0,)
                if held >= args.rows:
                    break
                store._exec(  # the column names read from the catalogue above
                    f"INSERT INTO crimes ({listed}) SELECT {listed} FROM crimes LIMIT ?",  # noqa: S608
                    [args.rows - int(held)],
                )
            # as a store made before version 16: text in the database's collation
            with store.transaction():
                for table, column in store._run(
                    "SELECT table_name, column_name FROM information_schema.columns "
                    "WHERE table_schema = current_schema() AND collation_name = 'C'"
                ):
                    store._exec(
                        f'ALTER TABLE "{table}" ALTER COLUMN "{column}" TYPE VARCHAR '
                        'COLLATE "default"'
                    )
                store._exec("DELETE FROM schema_migrations WHERE version >= 16")
            store._exec("VACUUM ANALYZE crimes")
            out["before"] = {
                **_crimes_info(store),
                "text_columns_in_c": _text_columns(store, "C"),
                "ward_order_first_5": store.area_list("ward")["area_code"].head(5).to_list(),
            }
        out["build_seconds"] = round(time.perf_counter() - t0, 1)
        print(
            f"  built in {out['build_seconds']} s: {out['before']['rows']:,} crimes, "
            f"{out['before']['total_mb_with_indexes']} MB with indexes; database collation "
            f"{collation}; text columns in C before: {out['before']['text_columns_in_c']}"
        )
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        store = PostgresStore(url)  # migrates: version 16
        seconds = time.perf_counter() - t0
        try:
            assert store.schema_version() >= 16
            out["after"] = {
                **_crimes_info(store),
                "text_columns_in_c": _text_columns(store, "C"),
                "text_columns_not_c": int(
                    (
                        store._one(
                            "SELECT count(*) FROM information_schema.columns WHERE "
                            "table_schema = current_schema() AND collation_name IS NOT NULL "
                            "AND collation_name <> 'C'"
                        )
                        or (0,)
                    )[0]
                ),
                "ward_order_first_5": store.area_list("ward")["area_code"].head(5).to_list(),
            }
        finally:
            store.close()
        out["migration_seconds"] = round(seconds, 2)
        out["table_rewritten"] = out["after"]["filenode"] != out["before"]["filenode"]
        out["text_index_rebuilt"] = (
            out["after"]["crime_id_index_filenode"] != out["before"]["crime_id_index_filenode"]
        )
        out["load_avg_before"] = round(load, 2)
        out["load_avg_after"] = round(os.getloadavg()[0], 2)
        print(
            f"  migration 16 on {out['after']['rows']:,} crimes: {seconds:.1f} s (load "
            f"{load:.1f} before, {out['load_avg_after']:.1f} after); crimes table rewritten: "
            f"{out['table_rewritten']}, its crime_id index rebuilt: "
            f"{out['text_index_rebuilt']}; text columns in C after: "
            f"{out['after']['text_columns_in_c']}, not C: {out['after']['text_columns_not_c']}"
        )
    finally:
        if cluster is not None:
            cluster.stop()
    save_results("pg-byte-order", stamp, {**info, **out}, "pg-byte-order-latest.json")


if __name__ == "__main__":
    main()
