"""A set's point-in-polygon grid, kept in the store, is used only for the polygons it was built
over: a replaced set, or bytes that cannot be read, mean a grid built again; the areas found
are the same either way (issue 14)."""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import shapely

from placeharm.geo import GRID_MIN_POINTS, PreparedPolygons, assign_points
from placeharm.geo.assign import grid_from_bytes
from placeharm.services.areas import Assigner, import_areas, keep_grids, load_sets
from placeharm.services.ingest import ingest

WARD = "northumbria_ward2013.geojson"
MSOA = "northumbria_msoa2011.geojson"


def _points(store: object, n: int, seed: int) -> pl.DataFrame:
    """n random distinct points over the ward set's bounds (some outside every ward)."""
    (ward,) = load_sets(store)  # type: ignore[arg-type]
    minx, miny, maxx, maxy = shapely.total_bounds(ward.polygons)
    rng = np.random.default_rng(seed)
    return pl.DataFrame(
        {"longitude": rng.uniform(minx, maxx, n), "latitude": rng.uniform(miny, maxy, n)}
    )


def _exact(store: object, points: pl.DataFrame) -> list[str | None]:
    """Each point's code found by shapely alone over the set's polygons (no grid)."""
    (area,) = load_sets(store)  # type: ignore[arg-type]
    exact = PreparedPolygons.build(area.polygons.copy())  # never a grid, whatever the count
    found = assign_points(points["longitude"].to_numpy(), points["latitude"].to_numpy(), exact)
    return [None if i < 0 else str(area.codes[i]) for i in found]


def test_kept_grid_is_used_only_for_the_polygons_it_was_built_over(store, boundaries: Path):
    import_areas(store, boundaries / WARD, "ward")
    points = _points(store, GRID_MIN_POINTS + 500, seed=1)
    expected = _exact(store, points)

    sets = load_sets(store)
    first = Assigner(sets, 2, 0.0).assign(points)
    assert first["area_ward"].to_list() == expected
    assert store.area_grid("ward") is None
    assert keep_grids(store, sets) == ["ward"]
    digest, data = store.area_grid("ward")
    assert digest == sets[0].digest
    built, read = sets[0]._grid, grid_from_bytes(sets[0].polygons, data)
    assert built is not None and read.bounds == built.bounds and read.levels == built.levels
    assert np.array_equal(read.coarse, built.coarse) and np.array_equal(read.fine, built.fine)
    assert keep_grids(store, sets) == []  # kept already

    # Another run uses the kept grid and finds the same areas.
    again = load_sets(store)
    second = Assigner(again, 2, 0.0).assign(points)
    assert again[0].grid_kept
    assert second["area_ward"].to_list() == expected
    assert keep_grids(store, again) == []

    # The set replaced by other polygons (MSOAs under the name "ward"): the kept grid is not
    # theirs, so it is not used; the areas are the new set's, and its grid is kept instead.
    import_areas(store, boundaries / MSOA, "ward")
    replaced = load_sets(store)
    assert replaced[0].digest != digest
    found = Assigner(replaced, 2, 0.0).assign(points)
    assert not replaced[0].grid_kept
    expected = _exact(store, points)
    assert found["area_ward"].to_list() == expected
    assert set(found["area_ward"].drop_nulls()) <= {str(c) for c in replaced[0].codes}
    assert keep_grids(store, replaced) == ["ward"]
    assert store.area_grid("ward")[0] == replaced[0].digest != digest

    # Bytes that are not a grid, under the right digest: built again, the same answers.
    store.save_area_grid("ward", replaced[0].digest, b"not a grid")
    damaged = load_sets(store)
    found = Assigner(damaged, 2, 0.0).assign(points)
    assert not damaged[0].grid_kept
    assert found["area_ward"].to_list() == expected
    assert keep_grids(store, damaged) == ["ward"]
    assert store.area_grid("ward")[1] != b"not a grid"


def _street_file(path: Path, points: pl.DataFrame, seed: int, month: str) -> Path:
    """A police.uk street file of one month, one crime at each point."""
    header = [
        "Crime ID",
        "Month",
        "Reported by",
        "Falls within",
        "Longitude",
        "Latitude",
        "Location",
        "LSOA code",
        "LSOA name",
        "Crime type",
        "Last outcome category",
        "Context",
    ]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    for i, (lon, lat) in enumerate(points.iter_rows()):
        crime_id = f"{seed:02d}{i:062x}"
        writer.writerow(
            [
                crime_id,
                month,
                "Northumbria Police",
                "Northumbria Police",
                f"{lon:.6f}",
                f"{lat:.6f}",
                "On or near Test Street",
                "",
                "",
                "Burglary",
                "Under investigation",
                "",
            ]
        )
    path.write_bytes(gzip.compress(buffer.getvalue().encode("utf-8")))
    return path


@pytest.mark.both_engines  # issue 17: DuckDB and PostgreSQL
def test_ingest_keeps_the_grid_and_the_next_import_places_points_the_same(
    store, boundaries: Path, tmp_path: Path
):
    import_areas(store, boundaries / WARD, "ward")
    first = _points(store, GRID_MIN_POINTS + 200, seed=2)
    ingest(
        store, [_street_file(tmp_path / "2022-03-northumbria-street.csv.gz", first, 1, "2022-03")]
    )
    kept = store.area_grid("ward")
    assert kept is not None and kept[0] == load_sets(store)[0].digest

    later = _points(store, GRID_MIN_POINTS + 300, seed=3)
    (result,) = ingest(
        store, [_street_file(tmp_path / "2022-04-northumbria-street.csv.gz", later, 2, "2022-04")]
    )
    assert result.status == "ok" and result.inserted == later.height
    crimes = store.crime_frame(["longitude", "latitude", "area_ward"])
    assert crimes.height == first.height + later.height
    assert crimes["area_ward"].to_list() == _exact(store, crimes.select("longitude", "latitude"))
