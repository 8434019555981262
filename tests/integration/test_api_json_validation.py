"""Malformed data.police.uk API responses (issue 13): each record-level problem is quarantined
with its reason, position and exact text; each file-level problem refuses the file and leaves
the store as it was. Built from a real response in ../shared/data/policeuk_api."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import math
from pathlib import Path

import pytest

from placeharm.ingest.csvfile import ReadLimits
from placeharm.services.ingest import ingest
from placeharm.store.duckdb import DuckDBStore

RESPONSE = "output_month_2017_01_area_E05001067_0.json"
DATA_TABLES = ("crimes", "crime_history", "outcomes", "stop_searches", "quarantine")


@pytest.fixture(scope="module")
def real(shared_data: Path) -> list[dict]:
    records = json.loads((shared_data / "policeuk_api" / RESPONSE).read_text())
    assert isinstance(records, list) and len(records) == 94
    return records


def _crime(real: list[dict]) -> dict:
    """A real record with a persistent_id and a location (a crime, not ASB)."""
    return next(r for r in real if r["persistent_id"] and r["location"])


def _next_month() -> str:
    today = dt.date.today()
    return f"{today.year + today.month // 12:04d}-{today.month % 12 + 1:02d}"


def _write(tmp_path: Path, texts: list[str], name: str = "response.json") -> Path:
    path = tmp_path / name
    path.write_text("[" + ",".join(texts) + "]", encoding="utf-8")
    return path


def _with(record: dict, **changes: object) -> dict:
    out = json.loads(json.dumps(record))
    out.update(changes)
    return out


def _bad_records(real: list[dict]) -> list[tuple[str, str]]:
    """(exact JSON text of the record, a phrase its reason must contain)."""
    good = _crime(real)
    loc = good["location"]
    cases: list[tuple[object, str]] = [
        (_with(good, persistent_id=["a", "list"]), "persistent_id is a list, not text"),
        (_with(good, persistent_id={"an": "object"}), "persistent_id is an object, not text"),
        (_with(good, context=["x"]), "context is a list, not text"),
        (_with(good, category=["burglary"]), "unknown crime category a list"),
        (_with(good, category="jaywalking"), "unknown crime category 'jaywalking'"),
        (_with(good, month=["2018-06"]), "bad month a list"),
        (_with(good, month="2018-6"), "bad month '2018-6'"),
        (_with(good, month="2018-13"), "bad month '2018-13'"),
        (_with(good, month="2018-06-01"), "bad month '2018-06-01'"),
        (_with(good, month="2018-06\n"), "bad month '2018-06\\n'"),
        (_with(good, month="June 2018"), "bad month 'June 2018'"),
        (_with(good, month="2009-01"), "outside the data.police.uk range"),
        (_with(good, month=_next_month()), "outside the data.police.uk range"),
        (_with(good, id=2**63), "is out of range"),
        (_with(good, id=2**70), "is out of range"),
        (_with(good, id=-5), "id -5 is out of range"),
        (_with(good, id=0), "id 0 is out of range"),
        (_with(good, id=12.5), "record has no numeric id (id is a number 12.5"),
        (_with(good, id="65778062"), "record has no numeric id (id is text"),
        (_with(good, id=True), "record has no numeric id (id is true/false"),
        (_with(good, id=None), "record has no numeric id (id is null"),
        ({k: v for k, v in good.items() if k != "id"}, "record has no numeric id"),
        ({k: v for k, v in good.items() if k != "category"}, "unknown crime category null"),
        ({k: v for k, v in good.items() if k != "month"}, "bad month null"),
        (_with(good, location=["54.9", "-1.6"]), "location is a list, not an object"),
        (_with(good, location={**loc, "street": "High St"}), "location.street is text"),
        (_with(good, location={**loc, "street": {"name": ["x"]}}), "location.street.name is a"),
        (_with(good, location={**loc, "latitude": ["54.9"]}), "latitude is a list, not a number"),
        (_with(good, location={**loc, "latitude": "north"}), "latitude 'north' is not a number"),
        (_with(good, location={**loc, "latitude": "NaN"}), "impossible coordinates: latitude"),
        (_with(good, location={**loc, "longitude": "inf"}), "impossible coordinates: longitude"),
        (_with(good, location={**loc, "latitude": 1e308}), "impossible coordinates: latitude"),
        (_with(good, location={**loc, "latitude": "95"}), "impossible coordinates: latitude"),
        (_with(good, location={**loc, "longitude": "-181"}), "impossible coordinates: longitude"),
        (_with(good, location={**loc, "longitude": ""}), "only one of longitude and latitude"),
        (_with(good, outcome_status="Under investigation"), "outcome_status is text"),
        (_with(good, outcome_status={"category": 7}), "outcome_status.category is a number"),
        (["not", "an", "object"], "record is a list, not a JSON object"),
        ("a string", "record is text, not a JSON object"),
        (42, "record is a number, not a JSON object"),
        (None, "record is null, not a JSON object"),
    ]
    texts = [(json.dumps(record), reason) for record, reason in cases]
    # JSON that json.dumps would not write: bare NaN / Infinity, lone surrogates
    for literal in ("NaN", "Infinity", "-Infinity"):
        text = json.dumps(_with(good, id=900)).replace('"latitude": "', '"latitude": "X', 1)
        start = text.index('"X')
        end = text.index('"', start + 1)
        texts.append((text[:start] + literal + text[end + 1 :], "impossible coordinates: latitude"))
    for field in ("persistent_id", "context"):
        text = json.dumps(_with(good, **{field: "PLACEHOLDER"}))
        texts.append(
            (text.replace('"PLACEHOLDER"', '"ab\\ud800cd"'), f"{field} holds a lone UTF-16")
        )
        # "\u0000" is valid JSON too: stored on DuckDB, it failed the file on PostgreSQL
        texts.append((text.replace('"PLACEHOLDER"', '"ab\\u0000cd"'), f"{field} holds a NUL"))
    name_text = json.dumps(_with(good, location={**loc, "street": {"id": 1, "name": "PH"}}))
    texts.append((name_text.replace('"PH"', '"\\udfff"'), "location.street.name holds a lone"))
    return texts


def test_each_malformed_record_is_quarantined_with_reason_position_and_text(
    store: DuckDBStore, real: list[dict], tmp_path: Path
):
    bad = _bad_records(real)
    # the real records first, then the bad ones, then a real record again: positions matter
    good_texts = [json.dumps(r) for r in real[:10]]
    texts = [*good_texts, *[t for t, _ in bad], json.dumps(real[10])]
    path = _write(tmp_path, texts)
    (result,) = ingest(store, [path])
    assert result.status == "ok", result.message
    assert result.balanced
    assert (result.rows_read, result.quarantined) == (len(texts), len(bad))
    assert result.inserted == 11
    held = store.quarantine(result.import_id)
    assert held.height == len(bad)
    for row, (text, phrase) in zip(held.iter_rows(named=True), bad, strict=True):
        position = texts.index(text) + 1  # 1-based position in the list
        assert row["source_file"] == str(path)
        assert row["line"] == position
        assert row["raw_text"] == text  # the record's exact text in the file
        assert phrase in row["reason"], (phrase, row["reason"])
    # every stored coordinate is a finite, possible one (NaN coordinates were once stored)
    stored = store.crime_frame(["api_id", "latitude", "longitude"])
    for _, lat, lon in stored.rows():
        assert lat is not None and math.isfinite(lat) and abs(lat) <= 90
        assert lon is not None and math.isfinite(lon) and abs(lon) <= 180
    assert 900 not in stored["api_id"].to_list()


def test_nan_coordinates_are_not_stored(store: DuckDBStore, real: list[dict], tmp_path: Path):
    good = _crime(real)
    text = json.dumps(good).replace(f'"{good["location"]["latitude"]}"', "NaN", 1)
    assert "NaN" in text
    (result,) = ingest(store, [_write(tmp_path, [text])])
    assert (result.status, result.inserted, result.quarantined) == ("ok", 0, 1)
    assert store.table_counts()["crimes"] == 0


def test_a_repeated_record_is_one_crime_and_a_changed_repeat_is_quarantined(
    store: DuckDBStore, real: list[dict], tmp_path: Path
):
    asb = next(r for r in real if not r["persistent_id"])  # keyed by its numeric id
    crime = _crime(real)
    changed = _with(crime, context="edited")
    texts = [json.dumps(asb), json.dumps(crime), json.dumps(asb), json.dumps(changed)]
    (result,) = ingest(store, [_write(tmp_path, texts)])
    assert result.balanced
    assert (result.inserted, result.unchanged, result.quarantined) == (2, 1, 1)
    (row,) = store.quarantine(result.import_id).iter_rows(named=True)
    assert (row["line"], row["raw_text"]) == (4, texts[3])
    assert "record 2 of this response" in row["reason"]
    # the same response again changes nothing
    (again,) = ingest(store, [_write(tmp_path, texts, "again.json")])
    assert (again.inserted, again.updated, again.unchanged, again.quarantined) == (0, 0, 3, 1)
    assert store.table_counts()["crimes"] == 2


def _refused(store: DuckDBStore, path: Path, phrase: str, limits: ReadLimits | None = None):
    before = store.table_counts()
    coverage = store.coverage()
    (result,) = ingest(store, [path], limits=limits) if limits else ingest(store, [path])
    assert result.status == "refused", result
    assert phrase.lower() in result.message.lower(), result.message
    assert len(result.message) < 600  # says what is wrong, never echoes the file
    after = store.table_counts()
    assert {t: after[t] for t in DATA_TABLES} == {t: before[t] for t in DATA_TABLES}
    assert after["imports"] == before["imports"] + 1
    assert store.coverage().equals(coverage)


@pytest.fixture
def loaded(store: DuckDBStore, shared_data: Path) -> DuckDBStore:
    (result,) = ingest(store, [shared_data / "policeuk_api" / RESPONSE])
    assert result.status == "ok" and result.inserted > 0
    return store


def test_file_level_problems_refuse_the_file(loaded: DuckDBStore, real: list[dict], tmp_path: Path):
    whole = json.dumps(real)
    cases: list[tuple[bytes, str]] = [
        (json.dumps({"error": "rate limited"}).encode(), "found a JSON object"),
        (b'"just text"', "found a JSON string"),
        (b"12", "found a number"),
        (b"", "found an empty file"),
        (b"   \n", "found an empty file"),
        (b"<html>busy</html>", "found text that is not JSON"),
        (whole[: len(whole) // 2].encode(), "not a JSON document"),  # cut short
        (whole[:-1].encode(), "not a JSON document"),  # the closing ] lost
        (b"[", "not a JSON document"),
        ((whole + "[]").encode(), "more text after the list"),
        (whole.replace("}, {", "} {", 1).encode(), "expected ',' or ']'"),
        (whole.replace('"month"', "'month'", 1).encode(), "not a JSON document"),
        (b"[" * 100_000 + b"]" * 100_000, "nests deeper"),  # a JSON bomb of nested lists
        (
            ("[" + json.dumps(real[0])[:-1] + ', "x": ' + "[" * 5000 + "]" * 5000 + "}]").encode(),
            "nests deeper",
        ),
        (b'[{"id": ' + b"9" * 5000 + b"}]", "thousands of digits"),
        (b'[{"id": 1, "context": "\xff\xfe"}]', "is not UTF-8"),
        (whole.encode("utf-16"), "is not UTF-8"),
        (b'[{"id": 1,}]', "not a JSON document"),
    ]
    for index, (data, phrase) in enumerate(cases):
        path = tmp_path / f"bad-{index}.json"
        path.write_bytes(data)
        _refused(loaded, path, phrase)


def test_an_api_response_respects_the_read_limit(loaded: DuckDBStore, real: list[dict], tmp_path):
    big = tmp_path / "big.json"
    big.write_text(json.dumps(real))
    _refused(loaded, big, "max_decompressed_mb", ReadLimits(max_bytes=4096))
    bomb = tmp_path / "bomb.json.gz"
    bomb.write_bytes(gzip.compress(b"[" + b" " * 10_000_000 + b"]"))
    _refused(loaded, bomb, "gzip bomb", ReadLimits(max_bytes=1 << 20))
