"""Files that are not police.uk data are refused whole: nothing but the import log is written."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from placeharm.services.ingest import ingest
from placeharm.store.duckdb import DuckDBStore

DATA_TABLES = ("crimes", "crime_history", "outcomes", "stop_searches", "quarantine")


@pytest.fixture
def loaded(store: DuckDBStore, northumbria: Path) -> DuckDBStore:
    """A store already holding one real month, so 'unchanged' means something."""
    assert ingest(store, [northumbria / "2021-05-northumbria-street.csv.gz"])[0].status == "ok"
    return store


def _assert_refused_and_nothing_written(store: DuckDBStore, path: Path, *needles: str) -> None:
    before = store.table_counts()
    coverage_before = store.coverage()
    (result,) = ingest(store, [path])
    assert result.status == "refused", result
    assert result.balanced
    assert (result.rows_read, result.inserted, result.updated, result.quarantined) == (0, 0, 0, 0)
    for needle in needles:
        assert needle.lower() in result.message.lower(), result.message
    after = store.table_counts()
    assert {t: after[t] for t in DATA_TABLES} == {t: before[t] for t in DATA_TABLES}
    assert after["imports"] == before["imports"] + 1  # the refusal itself is logged
    assert store.coverage().equals(coverage_before)
    log = store.imports(1).row(0, named=True)
    assert log["status"] == "refused"
    assert log["source_file"] == str(path)


def test_wrong_header_is_refused(loaded: DuckDBStore, tmp_path: Path, street_sample):
    header, lines = street_sample
    bad_header = header.replace("Crime type", "Offence")
    path = tmp_path / "2021-05-northumbria-street.csv"
    path.write_text("\n".join([bad_header, *lines[:50]]) + "\n")
    _assert_refused_and_nothing_written(loaded, path, "header", "Offence")


def test_header_with_a_missing_column_is_refused(loaded, tmp_path: Path, street_sample):
    header, lines = street_sample
    path = tmp_path / "2021-05-northumbria-street.csv"
    path.write_text(header.rsplit(",", 1)[0] + "\n" + lines[0] + "\n")
    _assert_refused_and_nothing_written(loaded, path, "header")


def test_non_gzip_file_named_gz_is_refused(loaded: DuckDBStore, tmp_path: Path):
    path = tmp_path / "2021-05-northumbria-street.csv.gz"
    path.write_bytes(b"PK\x03\x04\x14\x00\x00\x00\x08\x00\xff\xfe\x00\x81 binary junk")
    _assert_refused_and_nothing_written(loaded, path, "not UTF-8")


def test_truncated_gzip_is_refused(loaded: DuckDBStore, tmp_path: Path, northumbria: Path):
    data = (northumbria / "2021-06-northumbria-street.csv.gz").read_bytes()
    path = tmp_path / "2021-06-northumbria-street.csv.gz"
    path.write_bytes(data[: len(data) // 2])
    _assert_refused_and_nothing_written(loaded, path, "cannot be decompressed")


def test_empty_files_are_refused(loaded: DuckDBStore, tmp_path: Path):
    empty = tmp_path / "2021-05-northumbria-street.csv"
    empty.write_bytes(b"")
    _assert_refused_and_nothing_written(loaded, empty, "empty")
    empty_gz = tmp_path / "2021-04-northumbria-street.csv.gz"
    empty_gz.write_bytes(gzip.compress(b""))
    _assert_refused_and_nothing_written(loaded, empty_gz, "empty")


def test_json_that_is_not_a_list_is_refused(loaded: DuckDBStore, tmp_path: Path):
    path = tmp_path / "crimes.json"
    path.write_text('{"category": "burglary", "id": 1, "month": "2018-06"}')
    _assert_refused_and_nothing_written(loaded, path, "expected a JSON list")


def test_invalid_json_is_refused(loaded: DuckDBStore, tmp_path: Path):
    path = tmp_path / "crimes.json"
    path.write_text('[{"category": "burglary", "id": 1')
    _assert_refused_and_nothing_written(loaded, path, "not a JSON document")


def test_refused_file_does_not_stop_the_others(store: DuckDBStore, tmp_path: Path, northumbria):
    bad = tmp_path / "2021-05-northumbria-street.csv"
    bad.write_text("a,b,c\n1,2,3\n")
    good = northumbria / "2021-06-northumbria-street.csv.gz"
    results = ingest(store, [bad, good])
    assert [r.status for r in results] == ["refused", "ok"]
    assert store.table_counts()["crimes"] == results[1].inserted > 0


def test_ingest_a_folder_takes_only_police_uk_files(
    store: DuckDBStore, tmp_path: Path, northumbria: Path
):
    folder = tmp_path / "downloads"
    (folder / "2021-05").mkdir(parents=True)
    src = northumbria / "2021-05-northumbria-street.csv.gz"
    (folder / "2021-05" / src.name).write_bytes(src.read_bytes())
    (folder / "README.txt").write_text("not data")
    (folder / "notes.md").write_text("# not data")
    results = ingest(store, [folder])
    assert [Path(r.source_file).name for r in results] == [src.name]
    assert results[0].status == "ok"


def test_ingest_missing_path_or_empty_folder_is_a_data_error(store: DuckDBStore, tmp_path: Path):
    from placeharm.errors import DataError

    with pytest.raises(DataError, match="does not exist"):
        ingest(store, [tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"no \.csv"):
        ingest(store, [tmp_path / "empty"])
    assert store.table_counts()["imports"] == 0


def test_boundary_file_given_to_ingest_is_refused_with_a_short_helpful_message(
    store: DuckDBStore, boundaries: Path
):
    (result,) = ingest(store, [boundaries / "northumbria_lsoa2011.geojson"])
    assert result.status == "refused" and not result.ok
    assert "placeharm areas import" in result.message
    assert len(result.message) < 2_000  # not the 2 MB first line of the GeoJSON
    assert store.table_counts()["crimes"] == 0
