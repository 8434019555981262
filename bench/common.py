"""Shared by the benchmark driver and its child processes: data paths and output counts."""

from __future__ import annotations

import json
import os
import resource
import sys
from pathlib import Path

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
