"""Benchmark child: one month's update into a 10M-record store, cube maintenance included.

The store: the 10M files of every month but the last, ingested with the three area sets
(built once, not timed, and kept in --work as base.duckdb while its manifest matches). Each
round copies it to a fresh file and times, each through its commit:

1. *new month*: `ingest` of the last month's file (~300k rows), a month the store lacks;
2. *revision*: `ingest` of a later download of that month in which every 50th row has
   another crime type and every 50th (others) moved ~300 m, so both the old and the new
   cells of those crimes change.

Each `ingest` call is the whole import: reading, areas, comparing with what is held,
writing, the harm cube's recount of the touched months (timed alone as `cells_s`), the
commit. Afterwards the cube is checked against a full recount (not timed).

    .venv/bin/python bench/placeharm_update.py --files big.json --work bench/work/10m-update \
        --out r.json [--rounds 3]
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import shutil
import time
from pathlib import Path
from typing import Any

from common import area_paths, read_file_list, remove_store, self_peak_rss_mb, write_json

BASE_VERSION = 1
EVERY = 50  # every 50th row gets another crime type; every 50th (offset) another place


def _manifest(files: list[Path]) -> dict[str, Any]:
    return {
        "version": BASE_VERSION,
        "files": [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files],
    }


def build_base(files: list[Path], work: Path) -> tuple[Path, bool]:
    """The store of every file but the last (cached); returns its path and whether reused."""
    from placeharm.services.areas import import_areas
    from placeharm.services.ingest import ingest
    from placeharm.store.duckdb import DuckDBStore

    base = work / "base.duckdb"
    manifest = work / "base.json"
    want = _manifest(files[:-1])
    if base.exists() and manifest.exists() and json.loads(manifest.read_text()) == want:
        _keep_grids(base)
        return base, True
    work.mkdir(parents=True, exist_ok=True)
    remove_store(base)
    manifest.unlink(missing_ok=True)
    with DuckDBStore(base) as store:
        for name, path in area_paths():
            import_areas(store, path, name)
        results = ingest(store, files[:-1])
        if any(r.status != "ok" for r in results):
            raise SystemExit("building the base store failed: a file did not import")
    manifest.write_text(json.dumps(want))
    return base, False


def _keep_grids(base: Path) -> None:
    """A base store built before grids were kept in the store (migration 12) gets the grids
    its ingest of 9.7M rows would have kept (built from its own polygons, not timed)."""
    from placeharm.geo import GRID_MIN_POINTS
    from placeharm.services.areas import keep_grids, load_sets
    from placeharm.store.duckdb import DuckDBStore

    with DuckDBStore(base) as store:
        sets = load_sets(store)
        for area in sets:
            if store.area_grid(area.name) is None:
                area.index_for(GRID_MIN_POINTS, 2)
        keep_grids(store, sets)


def revised_file(source: Path, work: Path) -> Path:
    """A later download of `source`'s month: other crime types and places for some rows."""
    out = work / f"revised-{source.name}"
    if out.exists() and out.stat().st_mtime > source.stat().st_mtime:
        return out
    text = gzip.decompress(source.read_bytes()).decode("utf-8")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    header, body = rows[0], rows[1:]
    kind, lon, lat, cid = (
        header.index(c) for c in ("Crime type", "Longitude", "Latitude", "Crime ID")
    )
    for i, row in enumerate(body):
        if not row[cid]:
            continue  # a row without a Crime ID is keyed by its content: a new row, not a revision
        if i % EVERY == 0:
            row[kind] = "Drugs" if row[kind] != "Drugs" else "Shoplifting"
        elif i % EVERY == EVERY // 2 and row[lon] and row[lat]:
            row[lon] = f"{float(row[lon]) + 0.004:.6f}"
            row[lat] = f"{float(row[lat]) + 0.001:.6f}"
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerows([header, *body])
    out.write_bytes(gzip.compress(buffer.getvalue().encode("utf-8"), mtime=time.time()))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=Path, required=True, help="JSON list of the 10M files")
    parser.add_argument("--work", type=Path, required=True, help="where the base store is kept")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from placeharm.services import ingest as ingest_mod
    from placeharm.store.duckdb import DuckDBStore

    files = sorted(read_file_list(args.files), key=lambda p: p.name)
    t0 = time.perf_counter()
    base, reused = build_base(files, args.work)
    base_s = time.perf_counter() - t0
    new_file = files[-1]
    revised = revised_file(new_file, args.work)

    # the recount of touched cells, timed alone (it runs inside each ingest's transaction)
    cells: list[float] = []
    original = DuckDBStore._maintain_cells

    def timed(self: DuckDBStore) -> None:
        t = time.perf_counter()
        try:
            original(self)
        finally:
            cells.append(time.perf_counter() - t)

    DuckDBStore._maintain_cells = timed  # type: ignore[method-assign]

    rounds = []
    for _ in range(args.rounds):
        store_path = args.work / "round.duckdb"
        remove_store(store_path)
        shutil.copyfile(base, store_path)
        t0 = time.perf_counter()
        store = DuckDBStore(store_path)
        open_s = time.perf_counter() - t0
        row: dict[str, Any] = {"open_s": open_s}
        for label, path in (("new_month", new_file), ("revision", revised)):
            cells.clear()
            t0, c0 = time.perf_counter(), time.process_time()
            results = ingest_mod.ingest(store, [path])
            row[f"{label}_s"] = time.perf_counter() - t0
            row[f"{label}_cpu_s"] = time.process_time() - c0  # every thread's CPU time
            row[f"{label}_cells_s"] = sum(cells)
            (result,) = results
            row[f"{label}_result"] = {
                "status": result.status,
                "rows_read": result.rows_read,
                "inserted": result.inserted,
                "updated": result.updated,
                "unchanged": result.unchanged,
            }
        t0 = time.perf_counter()
        differing = store._cells_differing()  # that invariant of `placeharm check` alone
        row["check_s"] = time.perf_counter() - t0
        row["cells_differing"] = differing
        row["crimes"] = store.table_counts()["crimes"]
        store.close()
        remove_store(store_path)
        rounds.append(row)

    write_json(
        args.out,
        {
            "impl": "placeharm",
            "base_store_reused": reused,
            "base_store_s": base_s,
            "new_file": new_file.name,
            "revised_file": revised.name,
            "rounds": rounds,
            "peak_rss_self_mb": self_peak_rss_mb(),
        },
    )


if __name__ == "__main__":
    main()
