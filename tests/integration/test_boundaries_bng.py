"""A boundary file in British National Grid gives the same assignment as its WGS84 original."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pyogrio.raw
import pytest
import shapely
from pyproj import Transformer

from placeharm.services.areas import import_areas
from placeharm.services.ingest import ingest
from placeharm.store.duckdb import DuckDBStore


@pytest.fixture(scope="module")
def ward_bng(tmp_path_factory: pytest.TempPathFactory, boundaries: Path) -> Path:
    """The real ward file reprojected to EPSG:27700 and written as a GeoPackage."""
    meta, _, geometry, fields = pyogrio.raw.read(boundaries / "northumbria_ward2013.geojson")
    to_bng = Transformer.from_crs("EPSG:4326", "EPSG:27700", always_xy=True)
    geoms = shapely.transform(
        shapely.from_wkb(geometry),
        lambda xy: np.column_stack(to_bng.transform(xy[:, 0], xy[:, 1])),
    )
    bounds = shapely.total_bounds(geoms)
    assert bounds[0] > 300_000 and bounds[1] > 500_000  # metres east/north: really BNG
    path = tmp_path_factory.mktemp("bng") / "ward_bng.gpkg"
    pyogrio.raw.write(
        path,
        shapely.to_wkb(geoms),
        fields,
        fields=meta["fields"],
        geometry_type="MultiPolygon",
        crs="EPSG:27700",
        driver="GPKG",
        promote_to_multi=True,
    )
    return path


def test_bng_geopackage_assigns_like_the_wgs84_original(
    store: DuckDBStore, boundaries: Path, northumbria: Path, ward_bng: Path
):
    wgs = import_areas(store, boundaries / "northumbria_ward2013.geojson", "ward")
    bng = import_areas(store, ward_bng, "ward_bng")
    assert "27700" in bng.info.source_crs
    assert bng.info.code_field == "WD13CD"
    assert bng.info.feature_count == wgs.info.feature_count == 177
    assert bng.rejected == []

    ingest(store, [northumbria / "2021-05-northumbria-street.csv.gz"])
    crimes = store.crime_frame(["located", "area_ward", "area_ward_bng", "longitude", "latitude"])
    located = crimes.filter("located")
    assert located.height > 15_000
    same = located["area_ward"].eq_missing(located["area_ward_bng"])
    differing = located.filter(~same)
    print(f"\nBNG vs WGS84 ward assignment: {same.mean():.5%} of {located.height:,} rows identical")
    # A round trip through BNG moves vertices by millimetres at most: only points on an edge
    # may change side.
    if differing.height:
        polys = store.area_polygons("ward")
        by_code = dict(zip(polys["area_code"], polys["geometry_wkb"], strict=True))
        for lon, lat, code in differing.select("longitude", "latitude", "area_ward").rows():
            edge = shapely.from_wkb(by_code[code]).boundary
            assert shapely.distance(edge, shapely.Point(lon, lat)) < 1e-6
    assert same.mean() >= 0.9995


def test_bng_polygons_are_stored_in_wgs84(store: DuckDBStore, ward_bng: Path, boundaries: Path):
    import_areas(store, ward_bng, "ward_bng")
    import_areas(store, boundaries / "northumbria_ward2013.geojson", "ward")
    a = store.area_polygons("ward_bng")
    b = store.area_polygons("ward")
    assert a["area_code"].to_list() == b["area_code"].to_list()
    for wkb_a, wkb_b in zip(a["geometry_wkb"][:20], b["geometry_wkb"][:20], strict=True):
        ga, gb = shapely.from_wkb(wkb_a), shapely.from_wkb(wkb_b)
        assert ga.bounds[0] == pytest.approx(gb.bounds[0], abs=1e-6)
        assert ga.bounds[1] == pytest.approx(gb.bounds[1], abs=1e-6)
        assert ga.symmetric_difference(gb).area < 1e-5 * gb.area  # sub-millimetre shifts
    assert pl.Series(a["area_name"]).equals(pl.Series(b["area_name"]))
