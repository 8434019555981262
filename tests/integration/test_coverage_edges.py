"""Coverage at the edges (issue 13): API-only stores are covered; header-only and future-month
files claim nothing and move no default window; a file is hashed and parsed from one read."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import threading
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

import placeharm
from placeharm.cli.main import app
from placeharm.ingest.csvfile import read_snapshot
from placeharm.services import queries
from placeharm.services.areas import import_areas
from placeharm.services.ingest import ingest
from placeharm.store.duckdb import DuckDBStore

pytestmark = pytest.mark.both_engines  # issue 17: DuckDB and PostgreSQL

MAY = "2021-05-northumbria-street.csv.gz"


def _month_after_this() -> str:
    today = dt.date.today()
    return f"{today.year + today.month // 12:04d}-{today.month % 12 + 1:02d}"


def _distinct_api_crimes(files: list[Path]) -> int:
    keys = set()
    for path in files:
        for rec in json.loads(path.read_text()):
            keys.add(rec["persistent_id"] or f"api-{rec['id']}")
    return len(keys)


def test_a_store_of_api_responses_only_is_covered_and_counts_exits_0(
    db_at, shared_data: Path, boundaries: Path
):
    """Was: `placeharm counts` exited 3 ("no street data") on a store of API responses."""
    files = sorted((shared_data / "policeuk_api").glob("*.json"))
    db = db_at("api")
    with placeharm.open_store(db) as store:
        import_areas(store, boundaries / "northumbria_ward2013.geojson", "ward")
        results = ingest(store, files)
        assert all(r.status == "ok" and not r.message for r in results)
        assert {r.months for r in results} == {("2018-06",)}
        cov = queries.coverage(store).to_dicts()
        assert len(cov) == 1
        assert cov[0] | {"source_file": None} == {
            "source_kind": "api",
            "force": "api",
            "month": "2018-06",
            "covered": True,
            "partial": True,
            # the API records held for the month: a crime in two responses counts once
            "rows": _distinct_api_crimes(files),
            "source_file": None,
        }
        assert queries.held_months(store) == (dt.date(2018, 6, 1), dt.date(2018, 6, 1))
        june = dt.date(2018, 6, 1)
        assert queries.gap_months(store, june, june) == []
        assert queries.partial_months(store, june, june) == ["2018-06"]
    runner = CliRunner()
    counted = runner.invoke(app, ["counts", "--db", str(db), "--format", "json"])
    assert counted.exit_code == 0, counted.output
    body = json.loads(counted.stdout)
    assert (body["first_month"], body["last_month"], body["months_covered"]) == (
        "2018-06",
        "2018-06",
        1,
    )
    assert body["gap_months"] == [] and body["partial_months"] == ["2018-06"]
    assert sum(r["records"] for r in body["rows"]) == _distinct_api_crimes(files)
    table = runner.invoke(app, ["counts", "--db", str(db)])
    assert table.exit_code == 0
    assert "API responses only" in table.stderr
    # harm figures too: was "figures cover 0 of 1 months"
    ranked = runner.invoke(app, ["rank", "--db", str(db), "--format", "json"])
    assert ranked.exit_code == 0, ranked.output
    meta = json.loads(ranked.stdout)
    assert (meta["months"], meta["months_covered"], meta["gap_months"]) == (1, 1, [])
    assert meta["total_records"] == _distinct_api_crimes(files)
    assert meta["partial_months"] == ["2018-06"]
    assert any("API responses only" in note for note in meta["notes"])


def test_a_street_file_for_the_month_makes_it_whole(
    store: DuckDBStore, shared_data: Path, northumbria: Path
):
    """API months are partial only while no street file covers them."""
    files = sorted((shared_data / "policeuk_api").glob("*.json"))[:2]
    ingest(store, [*files, northumbria / MAY])
    first, last = dt.date(2018, 6, 1), dt.date(2021, 5, 1)
    assert queries.held_months(store) == (first, last)
    assert queries.partial_months(store, first, last) == ["2018-06"]
    gaps = queries.gap_months(store, first, last)
    assert "2018-06" not in gaps and "2021-05" not in gaps and len(gaps) == 34


@pytest.fixture
def may_store(store: DuckDBStore, northumbria: Path) -> DuckDBStore:
    (result,) = ingest(store, [northumbria / MAY])
    assert result.status == "ok" and result.months == ("2021-05",)
    return store


def _state(store: DuckDBStore) -> tuple[pl.DataFrame, tuple[dt.date, dt.date]]:
    return store.coverage(), queries.default_period(store, None, None, 12)


def test_header_only_and_future_month_files_claim_no_coverage_and_move_no_window(
    may_store: DuckDBStore, tmp_path: Path, street_sample
):
    header, lines = street_sample
    before = _state(may_store)
    assert before[1] == (dt.date(2021, 5, 1), dt.date(2021, 5, 1))
    future = _month_after_this()
    header_only = tmp_path / "2021-06-northumbria-street.csv"
    header_only.write_text(header + "\n")
    named_future = tmp_path / f"{future}-northumbria-street.csv"
    moved = [line.replace(",2021-05,", f",{future},") for line in lines[:40]]
    named_future.write_text("\n".join([header, *moved]) + "\n")
    unnamed_future = tmp_path / "extract.csv"
    unnamed_future.write_text("\n".join([header, *moved[:5]]) + "\n")
    not_a_month = tmp_path / "2021-13-northumbria-street.csv"
    not_a_month.write_text("\n".join([header, *lines[:3]]) + "\n")
    results = ingest(may_store, [header_only, named_future, unnamed_future, not_a_month])
    by_name = {Path(r.source_file).name: r for r in results}
    refused = by_name.pop(not_a_month.name)
    # a police.uk name with an impossible month is refused, saying what to rename it to
    assert refused.status == "refused" and "2021-13" in refused.message
    assert "not a" in refused.message and "month" in refused.message
    results = list(by_name.values())
    assert all(r.status == "ok" and r.balanced for r in results), results
    assert [r.months for r in results[:3]] == [(), (), ()]
    assert "header-only" in by_name[header_only.name].message
    assert f"{future}, is after this month" in by_name[named_future.name].message
    assert by_name[named_future.name].quarantined == 40  # rows of a month not yet published
    assert "no usable rows" in by_name[unnamed_future.name].message
    after = _state(may_store)
    assert after[0].equals(before[0])
    assert after[1] == before[1]


def test_a_header_only_redownload_keeps_the_months_coverage(
    may_store: DuckDBStore, tmp_path: Path, street_sample
):
    header, _ = street_sample
    held = may_store.coverage()
    assert held["rows"].to_list()[0] > 10_000
    again = tmp_path / MAY
    again.write_bytes(gzip.compress((header + "\r\n").encode()))
    (result,) = ingest(may_store, [again])
    assert (result.status, result.rows_read) == ("ok", 0)
    assert may_store.coverage().equals(held)


def test_the_cli_reports_a_header_only_file_and_exits_0(tmp_path: Path, db_at, street_sample):
    header, _ = street_sample
    path = tmp_path / "2021-06-northumbria-street.csv"
    path.write_text(header + "\n")
    result = CliRunner().invoke(app, ["ingest", str(path), "--db", db_at("s")])
    assert result.exit_code == 0, result.output
    assert "1 of 1 files imported" in result.stdout
    assert "note" in result.stderr and "header-only" in result.stderr


def test_the_hash_is_of_the_bytes_parsed(store: DuckDBStore, northumbria: Path):
    path = northumbria / MAY
    snapshot = read_snapshot(path)
    on_disk = path.read_bytes()
    assert snapshot.sha256 == hashlib.sha256(on_disk).hexdigest()
    assert snapshot.data == gzip.decompress(on_disk)
    (result,) = ingest(store, [path])
    assert store.imports(1).row(0, named=True)["file_sha256"] == snapshot.sha256
    assert result.rows_read == snapshot.data.count(b"\n") - 1


def test_a_file_that_grows_while_read_is_refused(store: DuckDBStore, tmp_path: Path, street_sample):
    """A copy still in progress: the bytes read are not the bytes of the finished file."""
    header, lines = street_sample
    path = tmp_path / "2021-05-northumbria-street.csv"
    body = ("\n".join(lines) + "\n").encode()
    path.write_bytes(header.encode() + b"\n" + body * 20)  # ~40 MB: reading takes a while
    stop = threading.Event()
    started = threading.Event()

    def copy_in_progress() -> None:
        with path.open("ab") as out:
            while not stop.is_set():
                out.write(body[:4096])
                out.flush()
                started.set()

    writer = threading.Thread(target=copy_in_progress)
    writer.start()
    try:
        started.wait(5)
        (result,) = ingest(store, [path])
    finally:
        stop.set()
        writer.join()
    assert result.status == "refused", result
    assert "changed while it was read" in result.message
    assert "once it has been copied" in result.message
    counts = store.table_counts()
    assert (counts["crimes"], counts["quarantine"], counts["imports"]) == (0, 0, 1)
    assert store.coverage().is_empty()
