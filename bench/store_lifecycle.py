"""Store lifecycle figures (issue 13): backup and restore of a real store, and pages read
while imports commit, with and without one snapshot per read.

    .venv/bin/python bench/store_lifecycle.py            # Northumbria, all months
    .venv/bin/python bench/store_lifecycle.py --months 6 # a shorter run

It needs the real data ($PLACEHARM_SHARED_DATA, else ../shared/data). Prints the figures and
writes bench/results/store-<UTC>.json and store-latest.json.

The mixing check: a writer thread imports the street months one file per import; a reader
thread loops reading "data as of" (the newest import id) and then the figures (crimes held),
either inside `store.snapshot()` or as two separate reads. After the run every pair is
checked against the crimes held after each import: a pair that matches no import's state
mixed two imports.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from placeharm.services.areas import import_areas  # noqa: E402
from placeharm.services.ingest import ingest  # noqa: E402
from placeharm.store.duckdb import DuckDBStore, restore_store  # noqa: E402


def _data() -> Path:
    env = os.environ.get("PLACEHARM_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


def mixing(folder: Path, files: list[Path], boundaries: Path, snapshot: bool) -> dict[str, int]:
    path = folder / f"mix-{snapshot}.duckdb"
    with DuckDBStore(path) as store:
        import_areas(store, boundaries / "northumbria_ward2013.geojson", "ward")
        held: dict[int, int] = {store.latest_import()[0]: 0}
        pairs: list[tuple[int, int]] = []
        done = threading.Event()

        def write() -> None:
            for file in files:
                ingest(store, [file])
                with store.snapshot():
                    held[store.latest_import()[0]] = store.table_counts()["crimes"]
            done.set()

        def read() -> None:
            while not done.is_set():
                if snapshot:
                    with store.snapshot():
                        as_of = store.latest_import()[0]
                        crimes = store.table_counts()["crimes"]
                else:
                    as_of = store.latest_import()[0]
                    crimes = store.table_counts()["crimes"]
                pairs.append((as_of, crimes))

        threads = [threading.Thread(target=write), threading.Thread(target=read)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    # imports without crimes (none here) would share a count; each import adds crimes
    mixed = sum(1 for as_of, crimes in pairs if held.get(as_of) != crimes)
    return {"reads": len(pairs), "mixed": mixed, "imports": len(files)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--months", type=int, default=0, help="street months (0: all)")
    args = parser.parse_args()
    data = _data()
    northumbria = data / "policeuk" / "northumbria"
    boundaries = data / "boundaries"
    street = sorted(northumbria.glob("*-street.csv.gz"))
    outcomes = sorted(northumbria.glob("*-outcomes.csv.gz"))
    if args.months:
        street, outcomes = street[: args.months], outcomes[: args.months]
    figures: dict[str, object] = {"when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        db = folder / "store.duckdb"
        t0 = time.perf_counter()
        with DuckDBStore(db) as store:
            import_areas(store, boundaries / "northumbria_ward2013.geojson", "ward")
            ingest(store, [*street, *outcomes])
            counts = store.table_counts()
            t1 = time.perf_counter()
            info = store.backup(folder / "backup.duckdb")
            t2 = time.perf_counter()
        restore_store(folder / "backup.duckdb", db)
        t3 = time.perf_counter()
        with DuckDBStore(db) as store:
            assert store.table_counts() == counts
        figures |= {
            "files": len(street) + len(outcomes),
            "crimes": counts["crimes"],
            "outcomes": counts["outcomes"],
            "build_s": round(t1 - t0, 2),
            "store_bytes": db.stat().st_size,
            "backup_bytes": info["bytes"],
            "backup_s": round(t2 - t1, 2),
            "restore_s": round(t3 - t2, 2),
        }
        (folder / "backup.duckdb").unlink()
        figures["without_snapshot"] = mixing(folder, street, boundaries, snapshot=False)
        figures["with_snapshot"] = mixing(folder, street, boundaries, snapshot=True)
    print(json.dumps(figures, indent=2))
    results = REPO / "bench" / "results"
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    for name in (f"store-{stamp}.json", "store-latest.json"):
        (results / name).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
