"""Shared by the benchmarks and their child processes: data paths, counts, machine info."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
RESULTS = BENCH / "results"
WORK = BENCH / "work"  # gitignored

AREA_SETS = (
    ("lsoa", "northumbria_lsoa2011.geojson"),
    ("ward", "northumbria_ward2013.geojson"),
    ("msoa", "northumbria_msoa2011.geojson"),
)
AREA_NAMES = tuple(name for name, _ in AREA_SETS)

# The figures both implementations must agree on (from the same SQL on each output file).
COUNT_SQL = """
SELECT
    (SELECT count(*) FROM crimes) AS crimes,
    (SELECT count(*) FROM outcomes) AS outcomes,
    (SELECT count(*) FROM quarantine) AS quarantined,
    (SELECT count(*) FROM crimes WHERE longitude IS NULL OR latitude IS NULL) AS no_location,
    (SELECT count(*) FROM crimes
       WHERE longitude IS NOT NULL AND latitude IS NOT NULL
         AND area_lsoa IS NULL AND area_ward IS NULL AND area_msoa IS NULL) AS outside_areas,
    (SELECT count(area_lsoa) FROM crimes) AS in_lsoa,
    (SELECT count(area_ward) FROM crimes) AS in_ward,
    (SELECT count(area_msoa) FROM crimes) AS in_msoa,
    (SELECT count(latest_outcome) FROM crimes) AS with_latest_outcome,
    (SELECT count(*) FROM crimes WHERE lsoa_reconciled) AS lsoa_reconciled
"""
# Must be equal between placeharm and the baseline (the brief's acceptance figures).
REQUIRED_EQUAL = ("crimes", "outcomes", "no_location", "outside_areas")


def shared_data() -> Path:
    """$PLACEHARM_SHARED_DATA, else ../shared/data beside the repository."""
    env = os.environ.get("PLACEHARM_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


def northumbria_dir() -> Path:
    return shared_data() / "policeuk" / "northumbria"


def boundaries_dir() -> Path:
    return shared_data() / "boundaries"


def street_files(folder: Path | None = None) -> list[Path]:
    return sorted((folder or northumbria_dir()).glob("*-street.csv.gz"))


def outcome_files(folder: Path | None = None) -> list[Path]:
    return sorted((folder or northumbria_dir()).glob("*-outcomes.csv.gz"))


def area_paths() -> list[tuple[str, Path]]:
    return [(name, boundaries_dir() / file) for name, file in AREA_SETS]


def output_counts(db_path: Path) -> dict[str, int]:
    """The comparison figures of a finished store file (read-only, after the timed run)."""
    import duckdb

    con = duckdb.connect(str(db_path), read_only=True)
    try:
        cur = con.execute(COUNT_SQL)
        names = [d[0] for d in cur.description]
        row = cur.fetchone()
    finally:
        con.close()
    assert row is not None
    return {n: int(v) for n, v in zip(names, row, strict=True)}


def self_peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MiB (Linux reports KiB)."""
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 1024 if sys.platform != "darwin" else kib / 1024 / 1024


def write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")


def read_file_list(path: Path) -> list[Path]:
    return [Path(p) for p in json.loads(path.read_text())]


# -- reporting ------------------------------------------------------------------------------


def mark(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def target_line(label: str, ok: bool, value: str) -> str:
    return f"    target {label} {'.' * max(3, 40 - len(label))} {mark(ok)}  ({value})"


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_avg_at_start": os.getloadavg(),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        mem = Path("/proc/meminfo").read_text().split()
        info["mem_gib"] = round(int(mem[1]) / 2**20, 1)
    except OSError:
        pass
    from importlib.metadata import version

    for pkg in ("duckdb", "polars", "pyarrow", "shapely", "pandas", "geopandas"):
        info[pkg] = version(pkg)
    return info


def git_state() -> dict[str, Any]:
    def git(*args: str) -> str:
        res = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
        return res.stdout.strip()

    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain"))}


def utc_stamp() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


def run_info(title: str, stamp: str) -> dict[str, Any]:
    """Timestamp, machine, git state and argv for a results file; prints them as a header."""
    info = {"timestamp_utc": stamp, "machine": machine(), "git": git_state(), "argv": sys.argv[1:]}
    m = info["machine"]
    print(
        f"{title} {stamp}  commit {info['git']['commit'][:10]}"
        f"{' (dirty)' if info['git']['dirty'] else ''}"
    )
    print(
        f"  {m.get('cpu', '?')}, {m['cpus']} CPUs, {m.get('mem_gib', '?')} GiB, load "
        f"{m['load_avg_at_start'][0]:.2f}; duckdb {m['duckdb']}, polars {m['polars']}, "
        f"pandas {m['pandas']}, geopandas {m['geopandas']}"
    )
    if m["load_avg_at_start"][0] > 0.5 * (m["cpus"] or 1):
        print(
            "  WARNING: the machine is busy (load average above half the CPUs); "
            "timings will be noisy"
        )
    return info


def save_results(prefix: str, stamp: str, results: dict[str, Any], latest: str) -> Path:
    """Write bench/results/<prefix>-<stamp>.json and a copy as <latest> (both atomically)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{prefix}-{stamp}.json"
    tmp_path = path.with_suffix(".tmp")
    write_json(tmp_path, results)
    tmp_path.replace(path)
    latest_tmp = (RESULTS / latest).with_suffix(".tmp")
    write_json(latest_tmp, results)
    latest_tmp.replace(RESULTS / latest)
    return path


# -- shared by the query benchmarks (harm_rank, soc_rank, web_load) --------------------------


def shown(path: Path) -> str:
    """A path as printed: relative to the repository when inside it."""
    path = path.resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def wal_path(path: Path) -> Path:
    return path.with_name(path.name + ".wal")


def manifest_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def remove_store(path: Path) -> None:
    path.unlink(missing_ok=True)
    wal_path(path).unlink(missing_ok=True)


def source_hash(names: tuple[str, ...] | list[str]) -> str:
    """sha256 of these files under src/placeharm: a store built by other code is rebuilt."""
    src = REPO / "src" / "placeharm"
    digest = hashlib.sha256()
    for name in names:
        digest.update(name.encode() + b"\0" + (src / name).read_bytes() + b"\0")
    return digest.hexdigest()


def timing_summary(ms: list[float]) -> dict[str, Any]:
    """Median, p95, mean, min, max and every run (milliseconds)."""
    return {
        "runs": len(ms),
        "median_ms": statistics.median(ms),
        "p95_ms": statistics.quantiles(ms, n=20, method="inclusive")[18],
        "mean_ms": statistics.fmean(ms),
        "min_ms": min(ms),
        "max_ms": max(ms),
        "runs_ms": [round(x, 3) for x in ms],
    }
