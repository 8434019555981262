"""SOC ranking benchmark: `placeharm.services.soc.soc_rank` of every ward, 12-month windows.

    .venv/bin/python bench/soc_rank.py               # demo slice and Northumbria 33 months
    .venv/bin/python bench/soc_rank.py --demo-only   # the bundled demo slice only
    .venv/bin/python bench/soc_rank.py --quick       # Northumbria 33 months at 10x only
    .venv/bin/python bench/run.py --only soc         # the same as the first, from the driver

Four stores, each with the synthetic SOC overlay (`soc.build_overlay`, seed 1) at scale 1 and
at scale 10: the bundled demo slice (police.uk 2021-11..2022-03) and the real Northumbria
street files (33 months, 2020-05..2023-02). For each dataset, the same seeded sequence of
12-month windows is ranked on its 1x and 10x stores, interleaved window by window, after a
warm-up; then the cost of building the SOC cells (placeharm.soc.cells, what the first call
after an import pays) is timed on each store. The demo slice holds 5 months, so no 12-month
window fits inside it: its windows are the 12 months ending at a month of the slice. The
stores are built once under bench/work/soc/ (gitignored) and reused while their manifests
match. Results go to
bench/results/soc-<UTC>.json and bench/results/soc-latest.json. See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import gc
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from common import (
    REPO,
    WORK,
    area_paths,
    northumbria_dir,
    run_info,
    save_results,
    shown,
    source_hash,
    street_files,
    target_line,
    utc_stamp,
    write_json,
)
from common import (
    manifest_path as _manifest,
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
from placeharm.model import month_range as months_between
from placeharm.model import shift_month as shift
from placeharm.services import demo, soc
from placeharm.services.areas import import_areas
from placeharm.services.ingest import ingest
from placeharm.soc import cells as soc_cells
from placeharm.soc.measures import MeasureSet, load_measures
from placeharm.store.duckdb import DuckDBStore
from placeharm.store.migrations import LATEST_VERSION

BY = "ward"
INDEX = "css"
WINDOW_MONTHS = 12
SCALES = (1, 10)
OVERLAY_SEED = 1  # soc.build_overlay(seed=...)
TARGET_SCALE = 10  # the target applies to the 10x overlays
TARGET_MS = 10.0  # issue 14: SOC ranking, 33 months, 10x overlay
BUILD_RUNS = 5  # timed builds of the SOC cells per store
DEFAULT_SEED = 20240601  # the window sequence
BASE_AREA_SETS = ("lsoa", "ward")  # of common.area_paths(); no msoa, no populations
NORTHUMBRIA_CRIMES = 524_070
# rows shown per store (store.soc_frame(table).height)
SOC_TABLES = (
    "soc_nominals",
    "soc_force_crimes",
    "soc_intelligence",
    "soc_incidents",
    "soc_addresses",
)
# what a store file holds, checked against its manifest before reuse
COUNT_SQL = """
SELECT
    (SELECT count(*) FROM crimes) AS crimes,
    (SELECT count(*) FROM soc_nominals) AS soc_nominals,
    (SELECT count(*) FROM soc_force_crimes) AS soc_force_crimes,
    (SELECT count(*) FROM soc_intelligence) AS soc_intelligence,
    (SELECT count(*) FROM soc_incidents) AS soc_incidents,
    (SELECT count(*) FROM soc_addresses) AS soc_addresses
"""
# the dated SOC records, as soc_rank reads them (table, date column)
DATED = (
    ("soc_force_crimes", "recorded_date"),
    ("soc_intelligence", "reported_date"),
    ("soc_incidents", "occurred_date"),
    ("soc_partner_events", "event_date"),
)
# placeharm files whose change makes a built overlay stale (plus the store schema version)
OVERLAY_CODE = ("soc/generate.py", "soc/importer.py", "soc/schema.py")
DATASETS = {
    "demo_slice": "demo slice (bundled, police.uk 2021-11..2022-03)",
    "northumbria": "Northumbria 33 months (real street files, 2020-05..2023-02)",
}


@dataclass(frozen=True, slots=True)
class Window:
    first: dt.date
    last: dt.date

    def label(self) -> str:
        return f"{self.first:%Y-%m}..{self.last:%Y-%m}"


def make_windows(
    seed: int, first_held: dt.date, last_held: dt.date, n: int
) -> tuple[list[Window], str]:
    """n 12-month windows from random.Random(seed), and how they were drawn.

    Where 12 months fit inside the months held, each window starts on a month drawn uniformly
    from those where it fits. Where they do not (the demo slice), each window ends on a month
    drawn uniformly from the months held, and so reaches back before the data.
    """
    rng = random.Random(seed)
    held = months_between(first_held, last_held)
    if len(held) >= WINDOW_MONTHS:
        starts = held[: len(held) - WINDOW_MONTHS + 1]
        picks = [rng.choice(starts) for _ in range(n)]
        windows = [Window(s, shift(s, WINDOW_MONTHS - 1)) for s in picks]
        how = (
            f"starting on a month drawn uniformly from {starts[0]:%Y-%m}..{starts[-1]:%Y-%m}, "
            f"so every window is inside the months held"
        )
    else:
        ends = [rng.choice(held) for _ in range(n)]
        windows = [Window(shift(e, 1 - WINDOW_MONTHS), e) for e in ends]
        how = (
            f"ending on a month drawn uniformly from {held[0]:%Y-%m}..{held[-1]:%Y-%m} "
            f"(e.g. {shift(held[-1], 1 - WINDOW_MONTHS):%Y-%m}..{held[-1]:%Y-%m}): the data "
            f"spans only {len(held)} months, so no {WINDOW_MONTHS}-month window fits inside "
            f"it and each window covers months before {held[0]:%Y-%m} that hold nothing"
        )
    return windows, how


# -- the stores -----------------------------------------------------------------------------


@functools.cache
def _code_hash() -> str:
    """sha256 of OVERLAY_CODE, taken once per run (main calls it first, near the imports)."""
    return source_hash(OVERLAY_CODE)


def _sources(files: list[Path]) -> list[list[Any]]:
    return [[p.name, p.stat().st_size] for p in files]


def store_counts(path: Path) -> dict[str, int] | None:
    """Crimes and every SOC table's rows in a finished store file (read-only); else None."""
    if not path.exists() or _wal(path).exists():
        return None
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error:
        return None
    try:
        cur = con.execute(COUNT_SQL)
        names = [d[0] for d in cur.description]
        row = cur.fetchone()
    except duckdb.Error:
        return None
    finally:
        con.close()
    return {n: int(v) for n, v in zip(names, row, strict=True)} if row else None


def reusable(path: Path, config: dict[str, Any]) -> dict[str, Any] | None:
    """The manifest of a store that may be reused: same config, same counts; else None."""
    try:
        manifest = json.loads(_manifest(path).read_text())
    except (OSError, ValueError):
        return None
    if manifest.get("config") != config or store_counts(path) != manifest.get("counts"):
        return None
    return dict(manifest)


def finish(building: Path, path: Path, config: dict[str, Any], build: dict[str, Any]) -> None:
    """Rename a complete store into place, then write its manifest (temp name, rename)."""
    counts = store_counts(building)
    if counts is None:
        raise SystemExit(f"{shown(building)} did not open after its build")
    building.replace(path)
    tmp = _manifest(path).with_suffix(".tmp")
    write_json(tmp, {"config": config, "counts": counts, "build": build})
    tmp.replace(_manifest(path))


def overlay_into(store: DuckDBStore, scale: int, tmp: Path) -> dict[str, Any]:
    """soc.build_overlay on an open store; its CSVs go to a temporary folder."""
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="overlay-", dir=tmp) as out:
        result = soc.build_overlay(store, seed=OVERLAY_SEED, scale=scale, out_dir=Path(out))
    bad = [f"{r.source_file}: {r.status}" for r in result.results if r.status != "ok"]
    if bad:
        raise RuntimeError("overlay files not imported ok: " + "; ".join(bad))
    return {"overlay_s": time.perf_counter() - t0, "overlay_counts": result.overlay.counts}


def demo_store(work: Path, scale: int, rebuild: bool, tmp: Path) -> tuple[Path, dict[str, Any]]:
    """The bundled demo slice (demo.build_demo) with the overlay at `scale`."""
    path = work / f"demo-{scale}x.duckdb"
    config = {
        "kind": "demo",
        "scale": scale,
        "overlay_seed": OVERLAY_SEED,
        "schema": LATEST_VERSION,
        "demo_data": _sources(sorted(demo.demo_data_dir().rglob("*.*"))),
        "code": _code_hash(),
    }
    if not rebuild and (manifest := reusable(path, config)):
        return path, {"reused": True, **manifest["build"]}
    _remove(path)
    _manifest(path).unlink(missing_ok=True)
    building = work / f"demo-{scale}x.duckdb.building"
    _remove(building)
    t0 = time.perf_counter()
    store = DuckDBStore(building)
    try:
        demo.build_demo(store)
        data_s = time.perf_counter() - t0
        build = {"data_s": data_s, **overlay_into(store, scale, tmp)}
    finally:
        store.close()
    build["build_s"] = time.perf_counter() - t0
    finish(building, path, config, build)
    return path, {"reused": False, **build}


def base_config() -> dict[str, Any]:
    return {
        "kind": "northumbria-base",
        "schema": LATEST_VERSION,
        "street_files": _sources(street_files()),
        "areas": [[n, p.name, p.stat().st_size] for n, p in area_paths() if n in BASE_AREA_SETS],
    }


def base_store(work: Path, rebuild: bool) -> tuple[Path, dict[str, Any]]:
    """Northumbria without the overlay: the lsoa and ward sets, one ingest of the 33 street
    files. The 1x and 10x stores are copies of it."""
    path = work / "northumbria-base.duckdb"
    config = base_config()
    if not rebuild and (manifest := reusable(path, config)):
        return path, {"reused": True, **manifest["build"]}
    _remove(path)
    _manifest(path).unlink(missing_ok=True)
    building = work / "northumbria-base.duckdb.building"
    _remove(building)
    t0 = time.perf_counter()
    store = DuckDBStore(building)
    try:
        for name, area_path in area_paths():
            if name in BASE_AREA_SETS:
                import_areas(store, area_path, name)
        results = ingest(store, street_files())
    finally:
        store.close()
    build = {"build_s": time.perf_counter() - t0}
    bad = [str(r.source_file) for r in results if r.status != "ok"]
    crimes = (store_counts(building) or {}).get("crimes")
    if crimes != NORTHUMBRIA_CRIMES or bad:
        raise SystemExit(
            f"the Northumbria store holds {crimes} crimes, expected {NORTHUMBRIA_CRIMES:,}"
            f"{'; files not ok: ' + ', '.join(bad) if bad else ''}"
        )
    finish(building, path, config, build)
    return path, {"reused": False, **build}


def northumbria_store(
    work: Path, base: Path, scale: int, rebuild: bool, tmp: Path
) -> tuple[Path, dict[str, Any]]:
    """A copy of the base store with the overlay at `scale`."""
    path = work / f"northumbria-{scale}x.duckdb"
    config = {
        "kind": "northumbria",
        "scale": scale,
        "overlay_seed": OVERLAY_SEED,
        "base": base_config(),
        "code": _code_hash(),
    }
    if not rebuild and (manifest := reusable(path, config)):
        return path, {"reused": True, **manifest["build"]}
    _remove(path)
    _manifest(path).unlink(missing_ok=True)
    building = work / f"northumbria-{scale}x.duckdb.building"
    _remove(building)
    t0 = time.perf_counter()
    shutil.copyfile(base, building)
    store = DuckDBStore(building)
    try:
        build = overlay_into(store, scale, tmp)
    finally:
        store.close()
    build["build_s"] = time.perf_counter() - t0
    finish(building, path, config, build)
    return path, {"reused": False, **build}


def built(how: dict[str, Any]) -> str:
    overlay = f", overlay {how['overlay_s']:.1f} s" if "overlay_s" in how else ""
    if how["reused"]:
        return f"reused; it was built in {how['build_s']:.1f} s{overlay}"
    return f"built in {how['build_s']:.1f} s{overlay}"


def describe_store(path: Path) -> dict[str, Any]:
    """Rows of the SOC tables shown, held police.uk months and the dates of SOC records."""
    store = DuckDBStore(path)
    try:
        rows = {table: store.soc_frame(table).height for table in SOC_TABLES}
        held = store.coverage().filter(pl.col("source_kind") == "street")["month"]
        dates: list[dt.date] = []
        for table, column in DATED:
            frame = store.soc_frame(table)
            if frame.height:
                dates += [
                    d for d in (frame[column].min(), frame[column].max()) if isinstance(d, dt.date)
                ]
        wards = store.area_list(BY).height
    finally:
        store.close()
    first, last = held.min(), held.max()
    assert isinstance(first, dt.date) and isinstance(last, dt.date)
    return {
        "soc_rows": rows,
        "held_first": first,
        "held_last": last,
        "held_months": held.n_unique(),
        "soc_dates": [min(dates), max(dates)] if dates else None,
        "wards": wards,
    }


# -- measuring ------------------------------------------------------------------------------


def rank_once(
    store: DuckDBStore, index: HarmIndex, measures: MeasureSet, w: Window
) -> pl.DataFrame:
    return soc.soc_rank(store, BY, w.first, w.last, index, measures).table


def measure(
    paths: dict[int, Path],
    wards: int,
    windows: list[Window],
    index: HarmIndex,
    measures: MeasureSet,
    args: argparse.Namespace,
) -> dict[int, dict[str, Any]]:
    """Time soc_rank on each scale's store, the same windows, interleaved window by window."""
    stores = {scale: DuckDBStore(path) for scale, path in paths.items()}
    try:
        # a warm-up that also checks the answer: one row per ward, some SOC harm
        for w in windows[: args.warmup]:
            for scale, store in stores.items():
                table = rank_once(store, index, measures, w)
                total = float(table["soc_harm"].sum())
                if table.height != wards or not total > 0:
                    raise SystemExit(
                        f"soc_rank {w.label()} at {scale}x: {table.height} rows (expected "
                        f"{wards} wards), total SOC harm {total}"
                    )
        times: dict[int, list[float]] = {scale: [] for scale in stores}
        load = os.getloadavg()[0]
        gc.collect()
        order = list(stores)
        for i, w in enumerate(windows):
            for scale in order if i % 2 == 0 else order[::-1]:
                t0 = time.perf_counter()
                rank_once(stores[scale], index, measures, w)
                times[scale].append((time.perf_counter() - t0) * 1000)
        # what the first request after a committed import pays once: the cells' build
        builds: dict[int, list[float]] = {scale: [] for scale in stores}
        for _ in range(BUILD_RUNS):
            for scale, store in stores.items():
                t0 = time.perf_counter()
                soc_cells.build(store, BY)
                builds[scale].append((time.perf_counter() - t0) * 1000)
    finally:
        for store in stores.values():
            store.close()
    return {
        scale: {
            "load_avg_1m_at_start": load,
            **summary(ms),
            "cells_build_ms": builds[scale],
            "cells_build_median_ms": statistics.median(builds[scale]),
        }
        for scale, ms in times.items()
    }


def dataset(
    key: str,
    builders: dict[int, Any],
    index: HarmIndex,
    measures: MeasureSet,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Build (or reuse) one dataset's 1x and 10x stores, then time both."""
    print(f"\n{DATASETS[key]}", flush=True)
    out: dict[str, Any] = {"title": DATASETS[key]}
    paths: dict[int, Path] = {}
    info: dict[int, dict[str, Any]] = {}
    for scale, build in builders.items():
        name = f"{scale}x"
        t0 = time.perf_counter()
        try:
            path, how = build()
        except Exception as exc:  # report exactly what happened, time the rest
            took = time.perf_counter() - t0
            text = "".join(traceback.format_exception_only(exc)).strip()
            print(f"  {name}: building the store FAILED after {took:.1f} s: {text}")
            out[name] = {
                "scale": scale,
                "error": text,
                "traceback": traceback.format_exc(),
                "failed_after_s": took,
            }
            continue
        paths[scale] = path
        info[scale] = describe_store(path)
        rows = info[scale]["soc_rows"]
        print(f"  {name}: store {shown(path)} ({built(how)})")
        print("      SOC rows: " + ", ".join(f"{t} {n:,}" for t, n in rows.items()))
        out[name] = {"scale": scale, "store": shown(path), "build": how, **info[scale]}
    if not paths:
        return out

    first = next(iter(info.values()))
    windows, how = make_windows(args.seed, first["held_first"], first["held_last"], args.runs)
    soc_dates = first["soc_dates"] or ["none", "none"]
    print(
        f"  police.uk months held {first['held_first']:%Y-%m}..{first['held_last']:%Y-%m} "
        f"({first['held_months']} with a file); dated SOC records (force crimes, intelligence, "
        f"incidents, partner events) {soc_dates[0]}..{soc_dates[1]}"
    )
    print(f"  windows: {args.runs} random {WINDOW_MONTHS}-month windows (seed {args.seed}), {how}")
    print(
        f"  {args.warmup} warm-up windows, then {args.runs} timed soc_rank calls per scale "
        f"(the scales interleaved window by window), every {first['wards']} wards per call",
        flush=True,
    )
    timed = measure(paths, first["wards"], windows, index, measures, args)
    out |= {"windows": [w.label() for w in windows], "window_rule": how}
    for scale, s in timed.items():
        name = f"{scale}x"
        out[name] |= {"timing": s}
        print(
            f"    {name:<4} median {s['median_ms']:7.1f} ms   p95 {s['p95_ms']:7.1f} ms   (min "
            f"{s['min_ms']:.1f}, max {s['max_ms']:.1f}; load {s['load_avg_1m_at_start']:.1f} "
            f"at start); building the SOC cells {s['cells_build_median_ms']:.0f} ms (median of "
            f"{BUILD_RUNS}, once per committed write)"
        )
    if len(timed) == len(SCALES) == 2:
        lo, hi = (timed[s]["runs_ms"] for s in SCALES)
        ratio = timed[SCALES[1]]["median_ms"] / timed[SCALES[0]]["median_ms"]
        per_window = statistics.median(b / a for a, b in zip(lo, hi, strict=True))
        out["scaling"] = {"ratio_of_medians": ratio, "median_per_window_ratio": per_window}
        print(
            f"    scaling {SCALES[1]}x/{SCALES[0]}x: {ratio:.2f}x (of medians), "
            f"{per_window:.2f}x (median of per-window ratios)"
        )
    if TARGET_SCALE in timed:
        value = timed[TARGET_SCALE]["median_ms"]
        ok = value <= TARGET_MS
        out["targets"] = {"median_ms_10x": {"target": TARGET_MS, "value": value, "pass": ok}}
        print(target_line(f"{TARGET_SCALE}x median <= {TARGET_MS:.0f} ms", ok, f"{value:.1f} ms"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=50, help="timed calls per store (50)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed windows first (3)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="window sequence seed")
    parser.add_argument("--demo-only", action="store_true", help="the demo slice only")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="Northumbria 33 months at 10x only, 20 timed calls (the target; under 2 minutes)",
    )
    parser.add_argument("--rebuild", action="store_true", help="rebuild the stores")
    parser.add_argument(
        "--work-dir", type=Path, default=WORK / "soc", help="where the stores go (bench/work/soc)"
    )
    parser.add_argument("--strict", action="store_true", help="exit 2 when a target is missed")
    parser.add_argument("--stamp", help=argparse.SUPPRESS)  # run.py: share its timestamp
    args = parser.parse_args()
    if args.quick:
        if args.demo_only:
            parser.error("--quick times Northumbria; it cannot go with --demo-only")
        args.runs = min(args.runs, 20)
        args.warmup = min(args.warmup, 2)
    if args.runs < 20:
        parser.error("--runs must be at least 20 (for a p95)")

    if not args.demo_only:
        missing = [p for n, p in area_paths() if n in BASE_AREA_SETS and not p.exists()]
        if not street_files() or missing:
            raise SystemExit(
                f"real data not found under {northumbria_dir().parent.parent} (set "
                "PLACEHARM_SHARED_DATA to the folder holding policeuk/ and boundaries/, "
                "or use --demo-only)"
            )
    _code_hash()  # the code this process imported, as near as can be
    stamp = args.stamp or utc_stamp()
    info = run_info("placeharm SOC ranking benchmark", stamp)
    scales = (TARGET_SCALE,) if args.quick else SCALES
    args.work_dir.mkdir(parents=True, exist_ok=True)
    index = load_index(INDEX)  # loaded once, not timed
    measures = load_measures()
    print(
        f"\nsoc.soc_rank by {BY}, index {INDEX!r}, {len(measures.measures)} measures "
        f"({shown(Path(measures.source))}); overlay soc.build_overlay(seed={OVERLAY_SEED}) at "
        f"scale {' and '.join(map(str, scales))}. Each call scores its window and the "
        f"{WINDOW_MONTHS} months before it (for the change columns). "
        f"Target: median <= {TARGET_MS:.0f} ms at {TARGET_SCALE}x."
    )
    results: dict[str, Any] = dict(info)
    results |= {
        "seed": args.seed,
        "runs": args.runs,
        "warmup": args.warmup,
        "by": BY,
        "index": INDEX,
        "measures": [m.id for m in measures.measures],
        "window_months": WINDOW_MONTHS,
        "overlay_seed": OVERLAY_SEED,
        "overlay_code_sha256": _code_hash(),
        "scales": list(scales),
        "quick": args.quick,
    }
    with tempfile.TemporaryDirectory(prefix="placeharm-soc-bench-") as tmp_name:
        tmp = Path(tmp_name)
        work = args.work_dir

        def demo_builder(scale: int) -> Any:
            return lambda: demo_store(work, scale, args.rebuild, tmp)

        if args.quick:
            results["demo_slice"] = "skipped"
            print("\ndemo slice: skipped (--quick)")
        else:
            results["demo_slice"] = dataset(
                "demo_slice", {s: demo_builder(s) for s in SCALES}, index, measures, args
            )
        if args.demo_only:
            results["northumbria"] = "skipped"
            print("\nNorthumbria 33 months: skipped (--demo-only)")
        else:
            print("\nNorthumbria base store (lsoa and ward sets, 33 street files) ...", flush=True)
            base, base_build = base_store(work, args.rebuild)
            print(f"  store {shown(base)} ({built(base_build)})")

            def north_builder(scale: int) -> Any:
                return lambda: northumbria_store(work, base, scale, args.rebuild, tmp)

            results["northumbria"] = dataset(
                "northumbria", {s: north_builder(s) for s in scales}, index, measures, args
            )
            results["northumbria"]["base"] = {"store": shown(base), "build": base_build}

    path = save_results("soc", stamp, results, "soc-latest.json")
    print(f"\nresults: {path.relative_to(REPO)} (and bench/results/soc-latest.json)")
    parts = {k: results[k] for k in DATASETS if isinstance(results[k], dict)}
    failed = [
        f"{k} {s}x" for k, p in parts.items() for s in SCALES if "error" in p.get(f"{s}x", {})
    ]
    targets = [t for p in parts.values() for t in p.get("targets", {}).values()]
    if failed:
        print(f"store builds failed: {', '.join(failed)} (see above)")
        sys.exit(1)
    if args.strict and not all(t["pass"] for t in targets):
        sys.exit(2)


if __name__ == "__main__":
    main()
