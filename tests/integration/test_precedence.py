"""The same crime from an API response and a bulk street file: the street record wins."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from placeharm.services.ingest import ingest
from placeharm.store.duckdb import DuckDBStore

pytestmark = pytest.mark.both_engines  # issue 17: DuckDB and PostgreSQL


def test_street_record_wins_over_api_record(
    store: DuckDBStore, shared_data: Path, tmp_path: Path, street_sample
):
    api_file = sorted((shared_data / "policeuk_api").glob("*.json"))[0]
    records = json.loads(api_file.read_text())
    rec = next(r for r in records if r["persistent_id"] and r["location"]["latitude"])
    header, _ = street_sample
    street_row = ",".join(
        [
            rec["persistent_id"],
            rec["month"],
            "Northumbria Police",
            "Northumbria Police",
            rec["location"]["longitude"],
            rec["location"]["latitude"],
            rec["location"]["street"]["name"],
            "E01008162",
            "Gateshead 017A",
            "Burglary",
            "Investigation complete; no suspect identified",
            "",
        ]
    )
    street = tmp_path / f"{rec['month']}-northumbria-street.csv"
    street.write_text(header + "\n" + street_row + "\n")

    api_result = ingest(store, [api_file])[0]
    assert api_result.inserted == len(records)
    street_result = ingest(store, [street])[0]
    assert (street_result.inserted, street_result.updated) == (0, 1)
    history = pl.from_arrow(store.arrow("crime_history"))
    assert history["crime_id"].to_list() == [rec["persistent_id"]]
    assert history["source_kind"].to_list() == ["api"]
    assert history["source_file"].to_list() == [str(api_file)]

    def stored() -> dict:
        return (
            store.crime_frame(["crime_id", "source_kind", "reported_by", "crime_type"])
            .filter(pl.col("crime_id") == rec["persistent_id"])
            .row(0, named=True)
        )

    assert stored() == {
        "crime_id": rec["persistent_id"],
        "source_kind": "street",
        "reported_by": "Northumbria Police",
        "crime_type": "Burglary",
    }
    again = ingest(store, [api_file])[0]
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, len(records))
    assert stored()["source_kind"] == "street"  # the API does not overwrite the bulk file
    assert store.table_counts()["crimes"] == len(records)
