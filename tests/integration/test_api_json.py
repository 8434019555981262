"""data.police.uk API responses: the same crime in two ward responses is stored once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from placeharm.services.ingest import ingest
from placeharm.store.duckdb import DuckDBStore


@pytest.fixture(scope="module")
def api_files(shared_data: Path) -> list[Path]:
    files = sorted((shared_data / "policeuk_api").glob("*.json"))
    assert len(files) == 20
    return files


def _records(path: Path) -> list[dict]:
    data = json.loads(path.read_text())
    assert isinstance(data, list)
    return data


def test_api_json_same_crime_in_two_responses_is_stored_once(
    store: DuckDBStore, api_files: list[Path]
):
    keys: set[str] = set()
    per_file: dict[str, int] = {}
    months: set[str] = set()
    for path in api_files:
        records = _records(path)
        per_file[str(path)] = len(records)
        for rec in records:
            keys.add(rec["persistent_id"] or f"api-{rec['id']}")
            months.add(rec["month"])
    total = sum(per_file.values())
    assert months == {"2018-06"}
    assert len(keys) < total  # some crimes really are in two responses

    results = ingest(store, api_files)
    assert [r.status for r in results] == ["ok"] * 20
    assert all(r.balanced for r in results)
    assert {r.source_file: r.rows_read for r in results} == per_file
    assert sum(r.quarantined for r in results) == 0
    assert sum(r.inserted for r in results) == len(keys)
    assert sum(r.unchanged for r in results) == total - len(keys)
    assert sum(r.updated for r in results) == 0
    assert store.table_counts()["crimes"] == len(keys)

    crimes = store.crime_frame(["crime_id", "api_id", "source_kind", "month", "crime_type"])
    stored = {
        cid if cid else f"api-{aid}" for cid, aid in crimes.select("crime_id", "api_id").rows()
    }
    assert stored == keys
    assert set(crimes["source_kind"]) == {"api"}
    assert {m.strftime("%Y-%m") for m in crimes["month"]} == {"2018-06"}

    again = ingest(store, api_files)
    assert sum(r.inserted + r.updated for r in again) == 0
    assert sum(r.unchanged for r in again) == total
    assert store.table_counts()["crimes"] == len(keys)


def test_api_json_category_maps_to_bulk_crime_type(store: DuckDBStore, api_files: list[Path]):
    path = api_files[0]
    records = _records(path)
    ingest(store, [path])
    by_id = dict(store.crime_frame(["api_id", "crime_type"]).rows())
    slug_to_type = {
        "anti-social-behaviour": "Anti-social behaviour",
        "violent-crime": "Violence and sexual offences",
        "criminal-damage-arson": "Criminal damage and arson",
        "vehicle-crime": "Vehicle crime",
    }
    checked = 0
    for rec in records:
        if rec["category"] in slug_to_type:
            assert by_id[rec["id"]] == slug_to_type[rec["category"]]
            checked += 1
    assert checked > 0
