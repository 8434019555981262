"""Benchmark child: a fresh placeharm store, the three area sets, then one `ingest` call.

Run by bench/run.py in its own process so that peak RSS belongs to this run alone.
Writes its timings as JSON to --out. With --profile, the ingest call runs under cProfile
(main thread, plus every `parse_file` call on the prefetch threads, merged).

    .venv/bin/python bench/placeharm_ingest.py --store /tmp/x.duckdb --files list.json --out r.json
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import area_paths, read_file_list, self_peak_rss_mb, write_json

PROFILE_FILTER = r"placeharm|duckdb|polars"


def _profiled_parse(
    original: Callable[..., Any], profiles: list[cProfile.Profile]
) -> Callable[..., Any]:
    """Wrap parse_file so that calls on the prefetch threads are profiled too."""
    lock = threading.Lock()

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        prof = cProfile.Profile()
        prof.enable()
        try:
            return original(*args, **kwargs)
        finally:
            prof.disable()
            with lock:
                profiles.append(prof)

    return wrapper


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--files", type=Path, required=True, help="JSON list of files")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--profile", type=Path, help="write pstats here (and .txt beside)")
    args = parser.parse_args()

    t0 = time.perf_counter()
    from placeharm.services import ingest as ingest_mod
    from placeharm.services.areas import import_areas
    from placeharm.store.duckdb import DuckDBStore

    import_s = time.perf_counter() - t0
    files = read_file_list(args.files)

    t0 = time.perf_counter()
    store = DuckDBStore(args.store)
    open_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    for name, path in area_paths():
        import_areas(store, path, name)
    areas_s = time.perf_counter() - t0
    rss_after_areas = self_peak_rss_mb()

    # the harm cube's maintenance (issue 14), timed alone: it runs inside each commit
    cells: list[float] = []
    maintain = getattr(DuckDBStore, "_maintain_cells", None)
    if maintain is not None:

        def timed(self: DuckDBStore) -> None:
            t = time.perf_counter()
            try:
                maintain(self)
            finally:
                cells.append(time.perf_counter() - t)

        DuckDBStore._maintain_cells = timed  # type: ignore[method-assign]

    profiles: list[cProfile.Profile] = []
    main_prof = cProfile.Profile() if args.profile else None
    if main_prof is not None:
        ingest_mod.parse_file = _profiled_parse(ingest_mod.parse_file, profiles)  # type: ignore[attr-defined]
        main_prof.enable()
    t0 = time.perf_counter()
    results = ingest_mod.ingest(store, files)
    ingest_s = time.perf_counter() - t0
    if main_prof is not None:
        main_prof.disable()

    t0 = time.perf_counter()
    store.close()
    close_s = time.perf_counter() - t0

    statuses: dict[str, int] = {}
    for r in results:
        statuses[r.status] = statuses.get(r.status, 0) + 1
    out: dict[str, Any] = {
        "impl": "placeharm",
        "files": len(files),
        "import_s": import_s,
        "open_s": open_s,
        "areas_s": areas_s,
        "ingest_s": ingest_s,
        "close_s": close_s,
        "cells_s": sum(cells) if maintain is not None else None,
        "ingest_close_s": ingest_s + close_s,
        "rows_read": sum(r.rows_read for r in results),
        "inserted": sum(r.inserted for r in results),
        "updated": sum(r.updated for r in results),
        "unchanged": sum(r.unchanged for r in results),
        "quarantined": sum(r.quarantined for r in results),
        "statuses": statuses,
        "failed_messages": [r.message for r in results if r.status != "ok"][:5],
        "peak_rss_after_areas_mb": rss_after_areas,
        "peak_rss_self_mb": self_peak_rss_mb(),
    }
    if main_prof is not None and args.profile is not None:
        stats = pstats.Stats(main_prof)
        for prof in profiles:
            stats.add(prof)
        stats.dump_stats(str(args.profile))
        text = io.StringIO()
        pstats.Stats(str(args.profile), stream=text).sort_stats("cumulative").print_stats(
            PROFILE_FILTER, 15
        )
        args.profile.with_suffix(".txt").write_text(text.getvalue())
    write_json(args.out, out)


if __name__ == "__main__":
    main()
