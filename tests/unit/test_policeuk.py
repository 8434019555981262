"""Parsing police.uk files: kind, months, force, record keys and API records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from placeharm.errors import DataError
from placeharm.ingest.policeuk import parse_file
from placeharm.model import SourceKind
from placeharm.services.ingest import ingest
from placeharm.store.duckdb import DuckDBStore

LATEST = "2030-12"


def _write(tmp_path: Path, name: str, header: str, lines: list[str]) -> Path:
    path = tmp_path / name
    path.write_text("\n".join([header, *lines]) + "\n")
    return path


def test_kind_months_and_force_from_the_name(tmp_path: Path, street_sample):
    header, lines = street_sample
    parsed = parse_file(
        _write(tmp_path, "2021-05-northumbria-street.csv", header, lines[:5]), LATEST
    )
    assert parsed.kind is SourceKind.STREET
    assert parsed.file_months == ("2021-05",)
    assert parsed.force == "northumbria"
    assert parsed.rows_read == 5 and parsed.frame.height == 5


def test_force_from_falls_within_when_the_name_is_not_standard(tmp_path: Path, street_sample):
    header, lines = street_sample
    parsed = parse_file(_write(tmp_path, "my export.csv", header, lines[:5]), LATEST)
    assert parsed.force == "northumbria"  # "Northumbria Police" -> slug
    assert parsed.file_months == ()


def test_asb_keys_do_not_depend_on_row_order(tmp_path: Path, street_sample):
    header, lines = street_sample
    asb = [line for line in lines if line.startswith(",")][:30]
    asb += asb[:3]  # three identical repeats: distinct incidents
    a = parse_file(_write(tmp_path, "a.csv", header, asb), LATEST)
    b = parse_file(_write(tmp_path, "b.csv", header, asb[::-1]), LATEST)
    keys_a = a.frame["crime_key"].to_list()
    assert len(set(keys_a)) == len(asb)
    assert sorted(keys_a) == sorted(b.frame["crime_key"].to_list())
    assert a.frame["crime_hash"].null_count() == 0


def test_crime_id_is_the_key(tmp_path: Path, street_sample):
    header, lines = street_sample
    crimes = [line for line in lines if not line.startswith(",")][:10]
    parsed = parse_file(_write(tmp_path, "c.csv", header, crimes), LATEST)
    assert parsed.frame["crime_key"].to_list() == [line.split(",")[0] for line in crimes]
    assert parsed.frame["crime_hash"].to_list() == [
        int(line.split(",")[0][:16], 16) for line in crimes
    ]


def test_api_records_are_validated_one_by_one(tmp_path: Path):
    good = {
        "category": "burglary",
        "location": {"latitude": "54.9", "longitude": "-1.6", "street": {"name": "On or near X"}},
        "context": "",
        "outcome_status": {"category": "Under investigation", "date": "2018-07"},
        "persistent_id": "ab" * 32,
        "id": 1,
        "month": "2018-06",
    }
    records = [
        good,
        {**good, "id": 2, "persistent_id": "", "category": "anti-social-behaviour"},
        {**good, "id": 3, "category": "jaywalking"},
        {**good, "id": 4, "month": "June 2018"},
        {**good, "id": "5"},
        {**good, "id": 6, "location": {"latitude": "54.9", "longitude": ""}},
        {**good, "id": 7, "location": {"latitude": "95", "longitude": "-1.6"}},
        "not an object",
        {**good, "id": 9, "persistent_id": "cd" * 32, "location": None},
    ]
    path = tmp_path / "api.json"
    path.write_text(json.dumps(records))
    parsed = parse_file(path, LATEST)
    assert parsed.kind is SourceKind.API
    assert parsed.rows_read == 9
    assert parsed.frame["api_id"].to_list() == [1, 2, 9]
    reasons = {q.line: q.reason for q in parsed.quarantine}
    assert set(reasons) == {3, 4, 5, 6, 7, 8}
    assert "unknown crime category 'jaywalking'" in reasons[3]
    assert "bad month" in reasons[4]
    assert "no numeric id" in reasons[5]
    assert "only one of longitude and latitude" in reasons[6]
    assert "impossible coordinates" in reasons[7]
    assert "not a JSON object" in reasons[8]
    row = parsed.frame.row(0, named=True)
    assert row["crime_type"] == "Burglary"
    assert row["last_outcome_category"] == "Under investigation"
    assert row["location"] == "On or near X"
    assert (row["longitude"], row["latitude"]) == (-1.6, 54.9)
    assert parsed.frame.row(1, named=True)["crime_id"] is None
    assert parsed.frame.row(2, named=True)["longitude"] is None


def test_wrong_header_raises_data_error(tmp_path: Path):
    with pytest.raises(DataError, match="header does not match"):
        parse_file(_write(tmp_path, "x.csv", "a,b,c", ["1,2,3"]), LATEST)


def test_ids_sharing_a_64_bit_prefix_can_be_reimported(
    store: DuckDBStore, tmp_path: Path, street_sample
):
    """Was a bug (fixed in e9dc5c8): both IDs were inserted, then every re-import failed
    with 'record keys share a 64-bit join key'."""
    header, lines = street_sample
    a = lines[[line.startswith(",") for line in lines].index(False)].split(",")
    b = list(a)
    a[0] = "0123456789abcdef" + "0" * 48
    b[0] = "0123456789abcdef" + "1" * 48
    path = _write(tmp_path, "2021-05-northumbria-street.csv", header, [",".join(a), ",".join(b)])
    first = ingest(store, [path])[0]
    if first.status != "ok":  # refusing the clash up front, loudly, is also consistent
        assert "64-bit" in first.message
        assert store.table_counts()["crimes"] == 0
        return
    assert first.inserted == 2
    again = ingest(store, [path])[0]
    assert again.status == "ok", again.message
    assert again.unchanged == 2


def test_digest_keys_are_blake2b_of_the_utf8_text():
    """ASB keys must never change: stored keys are compared on re-import."""
    import hashlib

    import polars as pl

    from placeharm.ingest.policeuk import _digest

    texts = ["Anti-social behaviour\x1f2021-05\x1fOn or near Café Street\x1f0", "", "ü" * 300]
    expected = [hashlib.blake2b(t.encode("utf-8"), digest_size=16).hexdigest() for t in texts]
    assert _digest(pl.Series(texts)).to_list() == expected
    assert expected[1] == "cae66941d9efbd404e4d88758ea67670"  # blake2b-128 of b""
