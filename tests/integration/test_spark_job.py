"""The Spark job (`placeharm spark ingest`) against `placeharm ingest`, and `load-parquet`
(issue 17). One local SparkSession for the module (starting Spark takes tens of seconds):
real Northumbria months plus one real month with bad and repeated rows appended, and files
the job must refuse or skip; the job runs once, `placeharm ingest` runs once on the same
files, and every test compares the two."""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from placeharm.errors import DataError
from placeharm.services import integrity
from placeharm.services import spark as spark_job
from placeharm.services.areas import import_areas
from placeharm.services.ingest import ingest
from placeharm.services.parquet_load import load_parquet
from placeharm.store.duckdb import DuckDBStore

pytestmark = pytest.mark.spark

MONTHS = ("2021-05", "2021-06")
SETS = ("lsoa", "ward", "msoa")
BOUNDARY = {
    "lsoa": "northumbria_lsoa2011.geojson",
    "ward": "northumbria_ward2013.geojson",
    "msoa": "northumbria_msoa2011.geojson",
}


def _java_present() -> bool:
    if os.environ.get("JAVA_HOME"):
        return Path(os.environ["JAVA_HOME"], "bin", "java").exists()
    return shutil.which("java") is not None


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    pytest.importorskip("pyspark", reason="the spark extra is not installed (make setup has it)")
    if not _java_present():
        if os.environ.get("CI"):
            pytest.fail("Java is missing: .ci/run installs openjdk-17-jre-headless")
        pytest.skip("no Java 17 on this machine (apt-get install openjdk-17-jre-headless)")
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", os.sys.executable)  # type: ignore[attr-defined]
    session = (
        SparkSession.builder.master("local[2]")
        .appName("placeharm tests")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def _rows(text: str) -> tuple[list[str], list[list[str]]]:
    rows = list(csv.reader(io.StringIO(text)))
    return rows[0], [r for r in rows[1:] if r]


@pytest.fixture(scope="module")
def inputs(northumbria: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two real months as downloaded, a third real month with planted faults, an outcomes
    file (skipped by the job) and a file that is not police.uk's (refused by both)."""
    folder = tmp_path_factory.mktemp("spark-inputs")
    for month in MONTHS:
        shutil.copy(northumbria / f"{month}-northumbria-street.csv.gz", folder)
    shutil.copy(northumbria / "2021-06-northumbria-outcomes.csv.gz", folder)
    text = gzip.decompress((northumbria / "2021-07-northumbria-street.csv.gz").read_bytes())
    header, rows = _rows(text.decode("utf-8"))
    rows = rows[:2000]  # a slice of the month is enough for the planted rows
    with_id = [r for r in rows if r[0]]
    bad_month = [*with_id[0][:1], "2021-13", *with_id[0][2:]]
    bad_month[0] = "f" * 64
    bad_lon = list(with_id[1])
    bad_lon[0], bad_lon[4] = "e" * 64, "not-a-number"
    differing = list(with_id[2])
    differing[10] = "Under investigation (edited)"
    identical = list(with_id[3])
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([*rows, bad_month, bad_lon, differing, identical])
    (folder / "2021-07-northumbria-street.csv").write_text(buffer.getvalue())
    (folder / "not-police.csv").write_text("a,b,c\n1,2,3\n")
    return folder


@pytest.fixture(scope="module")
def job(spark: Any, inputs: Path, boundaries: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("spark-out") / "out"
    areas = spark_job.parse_area_specs(f"{s}={boundaries / BOUNDARY[s]}" for s in SETS)
    manifest = spark_job.run([str(inputs)], areas, out, spark=spark)
    return out, manifest


def _store_with_sets(path: Path, boundaries: Path) -> DuckDBStore:
    store = DuckDBStore(path)
    for name in SETS:
        import_areas(store, boundaries / BOUNDARY[name], name)
    return store


@pytest.fixture(scope="module")
def ingested(inputs: Path, boundaries: Path, tmp_path_factory: pytest.TempPathFactory):
    """The same files through `placeharm ingest` (the outcomes file too: it touches no cell)."""
    store = _store_with_sets(tmp_path_factory.mktemp("ingest") / "i.duckdb", boundaries)
    results = ingest(store, [inputs])
    yield store, {r.source_file: r for r in results}
    store.close()


def _cells(store: DuckDBStore, name: str) -> pl.DataFrame:
    return (
        store.crime_cells(name)
        .drop("offence_code")
        .sort("area_code", "month", "crime_type", nulls_last=True)
    )


def test_spark_counts_match_ingest_per_area_month_and_crime_type(job, ingested) -> None:
    out, _ = job
    store, _ = ingested
    aggregates = pl.read_parquet(out / "aggregates" / "*.parquet")
    for name in SETS:
        mine = (
            aggregates.filter(pl.col("set_name") == name)
            .drop("set_name")
            .sort("area_code", "month", "crime_type", nulls_last=True)
        )
        theirs = _cells(store, name)
        assert mine.height > 1000
        assert mine.equals(theirs.cast(mine.schema)), name
    months = aggregates["month"].unique().sort().to_list()
    assert [f"{m:%Y-%m}" for m in months] == [*MONTHS, "2021-07"]


def test_spark_quarantines_the_same_rows_with_reason_file_and_line(job, ingested, inputs) -> None:
    out, manifest = job
    store, results = ingested
    mine = pl.read_parquet(out / "quarantine" / "*.parquet").sort("source_file", "line")
    theirs = (
        store._frame("SELECT source_file, line, raw_text, reason FROM quarantine")
        .sort("source_file", "line")
        .cast(mine.schema)
    )
    planted = str(inputs / "2021-07-northumbria-street.csv")
    # the bad month, the bad longitude and the repeat with other content; the identical
    # repeat is not quarantined (it is the same record again)
    assert mine.filter(pl.col("source_file") == planted).height == 3
    assert mine.equals(theirs)
    accounts = {f["source_file"]: f for f in manifest["source_files"]}
    assert accounts[planted]["identical_repeats"] == 1
    refused = str(inputs / "not-police.csv")
    assert accounts[refused]["status"] == "refused"
    assert accounts[refused]["message"] == results[refused].message
    outcomes = accounts[str(inputs / "2021-06-northumbria-outcomes.csv.gz")]
    assert outcomes["status"] == "skipped"
    for source, account in accounts.items():
        if account["status"] == "ok":
            assert account["rows_read"] == results[source].rows_read
            assert account["quarantined"] == results[source].quarantined
            assert account["sha256"] == _sha(Path(source))


def _sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.both_engines
def test_load_parquet_gives_the_store_ingest_gives(job, ingested, store_with_areas) -> None:
    out, _ = job
    reference, results = ingested
    loaded = load_parquet(store_with_areas, out)
    assert sorted(r.status for r in loaded) == ["ok", "ok", "ok", "refused"]
    for result in loaded:
        theirs = results[result.source_file]
        assert (result.status, result.message) == (theirs.status, theirs.message)
        mine = (result.rows_read, result.inserted, result.updated, result.unchanged)
        assert mine == (theirs.rows_read, theirs.inserted, theirs.updated, theirs.unchanged)
        assert (result.quarantined, result.months) == (theirs.quarantined, theirs.months)
        assert (result.no_location, result.outside_areas) == (
            theirs.no_location,
            theirs.outside_areas,
        )
        assert result.vintage == theirs.vintage
    for name in SETS:
        mine_cells = store_with_areas.crime_cells(name).drop("offence_code")
        theirs_cells = _cells(reference, name)
        assert mine_cells.sort(theirs_cells.columns, nulls_last=True).equals(
            theirs_cells.cast(mine_cells.schema)
        ), name
    report = integrity.check(store_with_areas)
    assert report.ok, report
    columns = "crime_id, month, crime_type, longitude, latitude, area_lsoa, area_ward, vintage"
    sql = f"SELECT {columns} FROM crimes"
    theirs_rows = reference._frame(sql).sort(pl.all(), nulls_last=True)
    mine_rows = store_with_areas._frame(sql).cast(theirs_rows.schema)
    assert mine_rows.sort(pl.all(), nulls_last=True).equals(theirs_rows)


def _copy(out: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    return copy


def _imports(store: DuckDBStore) -> int:
    return int(store._frame("SELECT count(*) AS n FROM imports")["n"][0])


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        ("no manifest", "has no manifest.json"),
        ("schema version", "schema version 99"),
        ("count", "the folder is inconsistent"),
        ("parquet changed", "is not the file the job wrote"),
        ("parquet added", "not in the manifest"),
        ("store lacks a set", "the store has no area set 'msoa'"),
    ],
)
def test_load_parquet_refuses_a_wrong_folder_and_writes_nothing(
    job, tmp_path, store_at, boundaries, damage, says
) -> None:
    out, _ = job
    copy = _copy(out, tmp_path)
    manifest_path = copy / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    if damage == "no manifest":
        manifest_path.unlink()
    elif damage == "schema version":
        manifest["schema_version"] = 99
    elif damage == "count":
        manifest["counts"]["records"] += 1
    elif damage == "parquet changed":
        part = next((copy / "records").glob("*.parquet"))
        part.write_bytes(part.read_bytes() + b"\0")
    elif damage == "parquet added":
        shutil.copy(
            next((copy / "quarantine").glob("*.parquet")), copy / "quarantine" / "x.parquet"
        )
    if damage != "no manifest":
        manifest_path.write_text(json.dumps(manifest))
    store = store_at("s")
    for name in SETS if damage != "store lacks a set" else SETS[:2]:
        import_areas(store, boundaries / BOUNDARY[name], name)
    before = _imports(store)
    with pytest.raises(DataError, match=says):
        load_parquet(store, copy)
    assert _imports(store) == before
    assert store._frame("SELECT count(*) AS n FROM crimes")["n"][0] == 0


def test_load_parquet_command_refuses_with_a_message_not_a_traceback(job, tmp_path) -> None:
    out, _ = job
    copy = _copy(out, tmp_path)
    (copy / "manifest.json").write_text("{not json")
    env = {**os.environ, "PLACEHARM_DB": str(tmp_path / "s.duckdb")}
    done = subprocess.run(
        [str(Path(os.sys.executable).parent / "placeharm"), "load-parquet", str(copy)],  # type: ignore[attr-defined]
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 2
    assert "cannot be read as JSON" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_spark_ingest_without_java_ends_in_a_message(northumbria, boundaries, tmp_path) -> None:
    """Java missing (JAVA_HOME pointing nowhere): the job says what to install, exit 4
    (configuration), no traceback, and leaves no output folder behind."""
    out = tmp_path / "out"
    env = {**os.environ, "JAVA_HOME": str(tmp_path / "no-java")}
    done = subprocess.run(
        [
            str(Path(os.sys.executable).parent / "placeharm"),  # type: ignore[attr-defined]
            "spark",
            "ingest",
            str(northumbria / "2021-05-northumbria-street.csv.gz"),
            "--areas",
            f"ward={boundaries / BOUNDARY['ward']}",
            "--out",
            str(out),
            "--master",
            "local[1]",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 4, done.stderr
    assert "Spark could not start Java" in done.stderr
    assert "openjdk-17-jre-headless" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert not out.exists()
