"""The Spark job (`placeharm spark ingest`) against `placeharm ingest`, and `load-parquet`
(issue 17). One local SparkSession for the module (starting Spark takes tens of seconds):
real Northumbria street, outcomes and stop-and-search months plus one real month of each kind
with bad and repeated rows appended, and a file the job must refuse; the job runs once,
`placeharm ingest` runs once on the same files, and every test compares the two."""

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

from placeharm.errors import DataError, PlaceharmError
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


def _write(path: Path, header: list[str], rows: list[list[str]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.write_text(buffer.getvalue())


def _real(northumbria: Path, name: str) -> tuple[list[str], list[list[str]]]:
    return _rows(gzip.decompress((northumbria / name).read_bytes()).decode("utf-8"))


@pytest.fixture(scope="module")
def inputs(northumbria: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two real months of street, outcomes and stop-and-search files as downloaded, a third
    real month of each with planted faults, and a file that is not police.uk's (refused by
    both)."""
    folder = tmp_path_factory.mktemp("spark-inputs")
    for month in MONTHS:
        for kind in ("street", "outcomes", "stop-and-search"):
            shutil.copy(northumbria / f"{month}-northumbria-{kind}.csv.gz", folder)
    _plant_outcomes(northumbria, folder)
    _plant_searches(northumbria, folder)
    header, rows = _real(northumbria, "2021-07-northumbria-street.csv.gz")
    rows = rows[:2000]  # a slice of the month is enough for the planted rows
    with_id = [r for r in rows if r[0]]
    bad_month = [*with_id[0][:1], "2021-13", *with_id[0][2:]]
    bad_month[0] = "f" * 64
    bad_lon = list(with_id[1])
    bad_lon[0], bad_lon[4] = "e" * 64, "not-a-number"
    differing = list(with_id[2])
    differing[10] = "Under investigation (edited)"
    identical = list(with_id[3])
    _write(
        folder / "2021-07-northumbria-street.csv",
        header,
        [*rows, bad_month, bad_lon, differing, identical],
    )
    (folder / "not-police.csv").write_text("a,b,c\n1,2,3\n")
    return folder


def _plant_outcomes(northumbria: Path, folder: Path) -> None:
    """A slice of a real outcomes month with: no outcome type, a month that does not exist,
    a longitude that is not a number (quarantined), and a row given twice (two outcomes)."""
    header, rows = _real(northumbria, "2021-07-northumbria-outcomes.csv.gz")
    rows = rows[:1500]
    no_type = [*rows[0][:9], ""]
    bad_month = [rows[1][0], "2021-13", *rows[1][2:]]
    bad_lon = [*rows[2][:4], "west", *rows[2][5:]]
    _write(
        folder / "2021-07-northumbria-outcomes.csv",
        header,
        [*rows, no_type, bad_month, bad_lon, list(rows[3])],
    )


def _plant_searches(northumbria: Path, folder: Path) -> None:
    """A real stop-and-search month with: a date that is not one, a search type police.uk
    does not use, a latitude out of range (quarantined), and a search given twice (two
    searches: they have no ID, so identical rows are distinct records)."""
    header, rows = _real(northumbria, "2021-07-northumbria-stop-and-search.csv.gz")
    bad_date = [rows[0][0], "yesterday", *rows[0][2:]]
    bad_type = ["Boat search", *rows[1][1:]]
    bad_lat = [*rows[2][:4], "95.5", *rows[2][5:]]
    _write(
        folder / "2021-07-northumbria-stop-and-search.csv",
        header,
        [*rows, bad_date, bad_type, bad_lat, list(rows[3])],
    )


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
    """The same files through `placeharm ingest`."""
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


def _kind_cells(store: Any, name: str, kind: str) -> pl.DataFrame:
    """The store's outcomes per area of their crime, or its stop and search per area, by
    month and type (independent SQL: the job's aggregates must say the same)."""
    col = f"area_{name}"
    if kind == "outcomes":
        sql = (
            f"SELECT c.{col} AS area_code, o.month, o.outcome_type, count(*) AS outcomes "
            "FROM outcomes o LEFT JOIN crimes c ON c.crime_id = o.crime_id "
            "GROUP BY c.{col}, o.month, o.outcome_type"
        ).replace("{col}", col)
        order = ["area_code", "month", "outcome_type"]
    else:
        sql = (
            f"SELECT {col} AS area_code, month, search_type, count(*) AS searches "
            f"FROM stop_searches GROUP BY {col}, month, search_type"
        )
        order = ["area_code", "month", "search_type"]
    return store._frame(sql).sort(order, nulls_last=True)


@pytest.mark.parametrize("kind", ["outcomes", "searches"])
def test_spark_outcome_and_search_counts_match_ingest(job, ingested, kind) -> None:
    out, manifest = job
    store, _ = ingested
    folder = {"outcomes": "outcome_aggregates", "searches": "search_aggregates"}[kind]
    aggregates = pl.read_parquet(out / folder / "*.parquet")
    for name in SETS:
        mine = aggregates.filter(pl.col("set_name") == name).drop("set_name")
        theirs = _kind_cells(store, name, kind)
        mine = mine.sort(theirs.columns[:3], nulls_last=True)
        assert mine.height > 50, name
        assert mine.equals(theirs.cast(mine.schema)), name
        # every held row counted once, placed or not (outcomes of crimes the files lack
        # have no area)
        assert int(mine[:, -1].sum()) == manifest["counts"][kind]
    months = {f"{m:%Y-%m}" for m in aggregates["month"].unique().to_list()}
    assert {*MONTHS, "2021-07"} <= months


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
    for kind in ("outcomes", "stop-and-search"):  # the three planted faults of each
        planted_rows = mine.filter(
            pl.col("source_file") == str(inputs / f"2021-07-northumbria-{kind}.csv")
        )
        assert planted_rows.height == 3, kind
    assert mine.equals(theirs)
    accounts = {f["source_file"]: f for f in manifest["source_files"]}
    assert accounts[planted]["identical_repeats"] == 1
    refused = str(inputs / "not-police.csv")
    assert accounts[refused]["status"] == "refused"
    assert accounts[refused]["message"] == results[refused].message
    # every file is read or refused with a message: none is skipped or dropped
    assert sorted(accounts) == sorted(results)
    assert {a["status"] for a in accounts.values()} == {"ok", "refused"}
    kinds = [a["kind"] for a in accounts.values() if a["status"] == "ok"]
    assert sorted(kinds) == sorted(["street", "outcomes", "stop-and-search"] * 3)
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
    assert sorted(r.status for r in loaded) == ["ok"] * 9 + ["refused"]
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
        assert result.source_kind == theirs.source_kind
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
    for sql in (
        # the outcomes held, and each crime's latest outcome derived from them
        "SELECT crime_id, month, outcome_type, outcome_ordinal, longitude, source_line, "
        "vintage FROM outcomes",
        "SELECT crime_id, latest_outcome, latest_outcome_month FROM crimes",
        # stop and search with its areas
        "SELECT search_key, month, search_type, searched_at, latitude, longitude, area_lsoa, "
        "area_ward, area_msoa, located, in_area, source_line FROM stop_searches",
        # every kind's quarantine, by file, line and reason
        "SELECT source_file, line, raw_text, reason FROM quarantine",
    ):
        theirs_rows = reference._frame(sql).sort(pl.all(), nulls_last=True)
        mine_rows = store_with_areas._frame(sql).cast(theirs_rows.schema)
        assert theirs_rows.height >= 9, sql
        assert mine_rows.sort(pl.all(), nulls_last=True).equals(theirs_rows), sql
    for kind in ("outcomes", "searches"):
        for name in SETS:
            mine_cells = _kind_cells(store_with_areas, name, kind)
            assert mine_cells.equals(_kind_cells(reference, name, kind).cast(mine_cells.schema))
    assert (
        store_with_areas._frame(
            "SELECT count(*) AS n FROM crimes WHERE latest_outcome IS NOT NULL"
        )["n"][0]
        > 1000
    )


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


def test_a_file_of_a_kind_the_job_does_not_read_is_refused_with_a_message(
    shared_data: Path,
) -> None:
    """An API response (which `placeharm ingest` reads, the job does not) is refused by the
    job's per-file step with what to do, so load-parquet logs it as refused: never dropped.
    The step runs here as it runs on an executor, without Spark."""
    from placeharm.services.areas import Assigner

    api = sorted((shared_data / "policeuk_api").glob("*.json"))[0]
    options = spark_job._Options("t", "2026-01", 25.0, 1 << 30, 1 << 20, None, ())
    rows = spark_job._file_rows(api.as_uri(), api.read_bytes(), options, Assigner([], 1, 25.0))
    assert rows["tag"].to_list() == ["file"]  # no records, no quarantine: an account only
    account = json.loads(rows["account"][0])
    assert (account["status"], account["kind"]) == ("refused", "api")
    assert "API response" in account["message"]
    assert "Import it with `placeharm ingest`" in account["message"]
    assert account["source_file"] == str(api)


def test_the_job_refuses_to_finish_when_a_file_given_has_no_account() -> None:
    """A file given that the job's output does not account for (read, refused or failed)
    stops the job before the manifest is written: a file is never silently missing."""
    accounts = [{"source_file": "/d/a.csv"}, {"source_file": "/d/b.csv"}]
    spark_job._check_every_file(["file:///d/a.csv", "file:///d/b.csv", "s3a://x/y"], accounts)
    with pytest.raises(PlaceharmError, match=r"not read: /d/c\.csv"):
        spark_job._check_every_file(["file:///d/a.csv", "file:///d/c.csv"], accounts)
    with pytest.raises(PlaceharmError, match=r"read twice: /d/a\.csv"):
        spark_job._check_every_file(["file:///d/a.csv"], [accounts[0], accounts[0]])
