"""An area set imported after records are stored is assigned to them at the next ingest."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from placeharm.services.areas import import_areas
from placeharm.services.ingest import ingest
from placeharm.store.duckdb import DuckDBStore

pytestmark = pytest.mark.both_engines  # issue 17: DuckDB and PostgreSQL

MONTH_FILE = "2021-05-northumbria-street.csv.gz"


def test_ward_loaded_after_ingest_is_assigned_on_next_ingest(
    store: DuckDBStore, northumbria: Path, boundaries: Path, geojson_areas, independent_pip
):
    path = northumbria / MONTH_FILE
    import_areas(store, boundaries / "northumbria_lsoa2011.geojson", "lsoa")
    first = ingest(store, [path])[0]
    assert first.status == "ok"
    assert first.inserted == first.rows_read
    lsoa_cols = ["longitude", "latitude", "lsoa_code_file", "area_lsoa"]
    lsoa_before = store.crime_frame(lsoa_cols).sort(lsoa_cols, nulls_last=True)
    assert "area_ward" not in store.crime_frame().columns

    import_areas(store, boundaries / "northumbria_ward2013.geojson", "ward")
    (ward_set,) = [s for s in store.area_sets() if s.name == "ward"]
    assert ward_set.assigned is False
    assert store.crime_frame(["area_ward"])["area_ward"].null_count() == first.rows_read

    again = ingest(store, [path])[0]
    assert again.status == "ok" and again.balanced
    assert again.inserted == 0
    assert again.updated == 0
    assert again.unchanged == again.rows_read == first.rows_read
    (ward_set,) = [s for s in store.area_sets() if s.name == "ward"]
    assert ward_set.assigned is True

    crimes = store.crime_frame(
        ["longitude", "latitude", "located", "in_area", "area_lsoa", "area_ward"]
    )
    located = crimes.filter("located")
    # Every located row got an assignment decision equal to an independent point-in-polygon.
    points = located.select("longitude", "latitude").unique()
    codes, polys = geojson_areas(boundaries / "northumbria_ward2013.geojson", "WD13CD")
    expected = independent_pip(codes, polys, points["longitude"], points["latitude"])
    check = located.join(
        points.with_columns(pl.Series("expected", expected, dtype=pl.String)),
        on=["longitude", "latitude"],
    )
    assert check.height == located.height
    mismatched = check.filter(~pl.col("area_ward").eq_missing(pl.col("expected")))
    assert mismatched.height == 0, mismatched.head()
    assert located["area_ward"].null_count() < located.height * 0.01  # nearly all inside
    # in_area was refreshed: a located row is in an area iff it has a ward or lsoa code.
    flag = located.select(
        (pl.col("area_ward").is_not_null() | pl.col("area_lsoa").is_not_null()).alias("any"),
        "in_area",
    )
    assert (flag["any"] == flag["in_area"]).all()
    # Rows without a location stay unassigned; the lsoa assignment was not disturbed.
    assert crimes.filter(~pl.col("located"))["area_ward"].null_count() == (
        crimes.height - located.height
    )
    assert store.crime_frame(lsoa_cols).sort(lsoa_cols, nulls_last=True).equals(lsoa_before)


def test_replacing_an_area_set_reassigns_every_record(
    store: DuckDBStore, northumbria: Path, boundaries: Path, tmp_path: Path
):
    import json

    from placeharm.services.areas import assign_pending

    ward_file = boundaries / "northumbria_ward2013.geojson"
    import_areas(store, ward_file, "ward")
    ingest(store, [northumbria / MONTH_FILE])
    data = json.loads(ward_file.read_text())
    counts = store.crime_frame(["area_ward"])["area_ward"].value_counts()
    gone, n_gone = counts.filter(pl.col("area_ward").is_not_null()).sort("count").row(-1)
    assert n_gone > 100
    data["features"] = [f for f in data["features"] if f["properties"]["WD13CD"] != gone]
    smaller = tmp_path / "wards_minus_one.geojson"
    smaller.write_text(json.dumps(data))

    result = import_areas(store, smaller, "ward")
    assert result.info.feature_count == 176
    done = assign_pending(store, 2, 25.0)
    located = int(store.crime_frame(["located"])["located"].sum())
    assert done == {"ward": located}
    after = store.crime_frame(["area_ward", "in_area"])
    assert after.filter(pl.col("area_ward") == gone).is_empty()
    assert (
        after["area_ward"].null_count()
        == counts.filter(pl.col("area_ward").is_null())["count"].sum() + n_gone
    )
    assert assign_pending(store, 2, 25.0) == {}  # nothing left to do
