"""Analysis benchmark (issue 16): emerging-risk alerts for every ward and rising to
prominence for every nominal, on the Northumbria 33-month store with the 10x overlay.

    .venv/bin/python bench/analysis_bench.py            # build (or reuse) the store, time
    .venv/bin/python bench/analysis_bench.py --runs 15

The store is bench/soc_rank.py's `northumbria-10x` (the real street files, overlay seed 1 at
scale 10), built under bench/work/soc/ or reused while its manifest matches. Timed, after a
warm-up that builds the read models (harm cube, SOC cells, the nominals' events) once:
`services.alerts.alerts` (every ward x every measure: 14 police.uk types, the dated SOC
measures, SOC harm; not the per-generation cache) and `services.prominence.prominence`
(every nominal: score, test, Benjamini-Hochberg, sparklines), interleaved run by run. The
read models' build cost (what the first request after an import pays) is timed apart.
Target: each under 1 s median. Results: bench/results/analysis-<UTC>.json and
bench/results/analysis-latest.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from common import WORK, run_info, save_results, shown, target_line, utc_stamp
from common import timing_summary as summary
from placeharm.analysis.prominence import Params
from placeharm.services import alerts, readmodel
from placeharm.services import prominence as prominence_service
from placeharm.soc import cells as soc_cells
from placeharm.store.duckdb import DuckDBStore
from soc_rank import base_store, northumbria_store

TARGET_MS = 1000.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=11)
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--stamp", default=None)
    parser.add_argument("--strict", action="store_true", help="exit 2 when a target is missed")
    args = parser.parse_args()
    stamp = args.stamp or utc_stamp()
    info = run_info("analysis: alerts and prominence, Northumbria 33 months, 10x overlay", stamp)
    work = WORK / "soc"
    work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        base, _ = base_store(work, args.rebuild)
        path, how = northumbria_store(work, base, 10, args.rebuild, Path(tmp))
    store = DuckDBStore(path, read_only=True)
    try:
        t0 = time.perf_counter()
        readmodel.cells(store, "ward")
        cube_ms = (time.perf_counter() - t0) * 1000
        t0 = time.perf_counter()
        soc_cells.cells(store, "ward")
        cells_ms = (time.perf_counter() - t0) * 1000
        t0 = time.perf_counter()
        params = Params()
        first = prominence_service.prominence(store, params)
        events_ms = (time.perf_counter() - t0) * 1000
        warm = alerts.alerts(store, "ward")
        times: dict[str, list[float]] = {"alerts": [], "prominence": []}
        for i in range(args.runs):
            order = ("alerts", "prominence") if i % 2 == 0 else ("prominence", "alerts")
            for name in order:
                t0 = time.perf_counter()
                if name == "alerts":
                    alerts.alerts(store, "ward")
                else:
                    prominence_service.prominence(store, params)
                times[name].append((time.perf_counter() - t0) * 1000)
        counts = {
            "wards": len(soc_cells.cells(store, "ward").codes),
            "alert_tests": warm.meta["tested"],
            "alerts": warm.meta["alerts"],
            "alert_month": warm.meta["month"],
            "nominals": first.table.height,
            "nominals_tested": first.meta["tested"],
            "nominals_rising": first.meta["rising"],
        }
    finally:
        store.close()
    results: dict[str, Any] = {
        **info,
        "store": shown(path),
        "store_build": how,
        "counts": counts,
        "load_avg_at_end": os.getloadavg(),
        "read_model_build_ms": {
            "harm_cube": cube_ms,
            "soc_cells": cells_ms,
            "nominal_events_first_prominence": events_ms,
        },
        "alerts": summary(times["alerts"]),
        "prominence": summary(times["prominence"]),
        "target_ms": TARGET_MS,
    }
    out = save_results("analysis", stamp, results, "analysis-latest.json")
    ok = True
    for name in ("alerts", "prominence"):
        median = statistics.median(times[name])
        ok &= median < TARGET_MS
        print(target_line(f"{name} median < 1 s", median < TARGET_MS, f"{median:.1f} ms"))
    print(f"counts: {counts}")
    print(
        f"read models: cube {cube_ms:.0f} ms, SOC cells {cells_ms:.0f} ms, events+first "
        f"prominence {events_ms:.0f} ms"
    )
    print(f"results: {shown(out)}")
    return 2 if args.strict and not ok else 0


if __name__ == "__main__":
    raise SystemExit(main())
