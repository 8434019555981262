"""Boundary files: invalid polygons repaired and reported; features without a code rejected
and reported (never silently dropped); CRS handled."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import shapely

from placeharm.errors import DataError
from placeharm.geo import assign_points
from placeharm.ingest.boundaries import read_boundaries
from placeharm.services import queries
from placeharm.services.areas import import_areas
from placeharm.store.duckdb import DuckDBStore

SQUARE = [[[-1.6, 54.9], [-1.5, 54.9], [-1.5, 55.0], [-1.6, 55.0], [-1.6, 54.9]]]
# Self-intersecting "bow-tie": two triangles meeting at (-1.35, 54.95).
BOW_TIE = [[[-1.4, 54.9], [-1.3, 55.0], [-1.3, 54.9], [-1.4, 55.0], [-1.4, 54.9]]]


def _feature(code: str | None, name: str | None, coords, kind: str = "Polygon") -> dict:
    return {
        "type": "Feature",
        "properties": {"AREA20CD": code, "AREA20NM": name},
        "geometry": {"type": kind, "coordinates": coords},
    }


def _geojson(path: Path, features: list[dict]) -> Path:
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return path


@pytest.fixture
def crafted(tmp_path: Path) -> Path:
    return _geojson(
        tmp_path / "crafted.geojson",
        [
            _feature("E1", "Square", SQUARE),  # feature 1
            _feature("E2", "Bow tie", BOW_TIE),  # feature 2: invalid, repairable
            _feature(None, "No code", SQUARE),  # feature 3: rejected
            _feature("  ", "Blank code", SQUARE),  # feature 4: rejected
            _feature("E1", "Square again", SQUARE),  # feature 5: duplicate code
            _feature("E5", "A point", [-1.55, 54.95], kind="Point"),  # feature 6: not a polygon
        ],
    )


def test_read_boundaries_repairs_and_rejects(crafted: Path):
    b = read_boundaries(crafted)
    assert b.code_field == "AREA20CD"
    assert b.name_field == "AREA20NM"
    assert b.codes == ["E1", "E2"]
    assert b.names == ["Square", "Bow tie"]
    assert len(b.repaired) == 1 and b.repaired[0].startswith("E2")
    assert "Self-intersection" in b.repaired[0]
    rejected = {r.line: r.reason for r in b.rejected}
    assert rejected[3] == "area has no code"
    assert rejected[4] == "area has no code"
    assert "appears twice" in rejected[5]
    assert "not a polygon" in rejected[6]
    assert len(rejected) == 4
    assert all(r.source_file == str(crafted) for r in b.rejected)
    # Every feature is accounted for: stored or rejected.
    assert len(b.codes) + len(b.rejected) == 6
    fixed = b.polygons[1]
    assert fixed.is_valid
    assert isinstance(fixed, shapely.MultiPolygon)
    assert fixed.area == pytest.approx(0.005)  # two triangles, base 0.1 and height 0.05


def test_repaired_bow_tie_assigns_points_in_both_lobes(crafted: Path):
    b = read_boundaries(crafted)
    x = np.array([-1.55, -1.38, -1.32, -1.35, -1.0])
    y = np.array([54.95, 54.95, 54.95, 54.99, 54.95])
    idx = assign_points(x, y, b.polygons)
    assert [b.codes[i] if i >= 0 else None for i in idx] == ["E1", "E2", "E2", None, None]


def test_import_areas_reports_and_stores_rejections(crafted: Path, store: DuckDBStore):
    result = import_areas(store, crafted, "custom")
    assert result.info.feature_count == 2
    assert result.info.repaired_count == 1
    assert result.info.rejected_count == 4
    assert [r.line for r in result.rejected] == [3, 4, 5, 6]
    (info,) = store.area_sets()
    assert (info.name, info.feature_count, info.rejected_count) == ("custom", 2, 4)
    q = queries.quarantine(store)
    assert sorted(q["line"].to_list()) == [3, 4, 5, 6]
    assert "area has no code" in q["reason"].to_list()
    polys = store.area_polygons("custom")
    assert polys["area_code"].to_list() == ["E1", "E2"]
    assert all(shapely.from_wkb(w).is_valid for w in polys["geometry_wkb"])


def test_explicit_fields_and_bad_field_names(crafted: Path, tmp_path: Path):
    b = read_boundaries(crafted, code_field="AREA20NM", name_field="AREA20CD")
    assert "Square" in b.codes
    with pytest.raises(DataError, match="no attribute 'NOPE'"):
        read_boundaries(crafted, code_field="NOPE")
    ambiguous = _geojson(
        tmp_path / "two.geojson",
        [
            {
                "type": "Feature",
                "properties": {"LSOA11CD": "E1", "MSOA11CD": "E2"},
                "geometry": {"type": "Polygon", "coordinates": SQUARE},
            }
        ],
    )
    with pytest.raises(DataError, match="cannot tell which attribute"):
        read_boundaries(ambiguous)


def test_every_feature_rejected_is_an_error(tmp_path: Path):
    path = _geojson(tmp_path / "none.geojson", [_feature(None, "x", SQUARE)])
    with pytest.raises(DataError, match="no usable areas"):
        read_boundaries(path)


def test_missing_file_is_an_error(tmp_path: Path):
    with pytest.raises(DataError, match="does not exist"):
        read_boundaries(tmp_path / "nope.geojson")


def test_bad_area_set_name_is_refused(crafted: Path, store: DuckDBStore):
    for bad in ["Ward", "1ward", "ward-2013", 'x"; DROP TABLE crimes; --', ""]:
        with pytest.raises(DataError, match="not allowed"):
            import_areas(store, crafted, bad)
    assert store.area_sets() == []
