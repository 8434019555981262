"""The GeoPackage writer at unit level (issue 19: no fast test reached it, so mutation testing
could not judge it): columns, geometry types, the marking in all three places, and errors."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pyogrio
import pytest
import shapely

from placeharm.errors import DataError
from placeharm.services.exports import MEDIA_TYPE, write_geopackage

MARK = "OFFICIAL-SENSITIVE"


def _point(x: float, y: float) -> dict[str, object]:
    return {"type": "Point", "coordinates": [x, y]}


def _square(x: float, y: float) -> dict[str, object]:
    ring = [[x, y], [x + 1, y], [x + 1, y + 1], [x, y + 1], [x, y]]
    return {"type": "Polygon", "coordinates": [ring]}


def _contents(path: Path) -> dict[str, tuple[str, str]]:
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT table_name, identifier, description FROM gpkg_contents")
        return {name: (ident, desc) for name, ident, desc in rows}


def test_layers_columns_and_marking(tmp_path: Path):
    path = tmp_path / "out.gpkg"
    write_geopackage(
        path,
        {
            "crimes": [
                {
                    "properties": {"ref": "A1", "n": 3, "empty": None},
                    "geometry": _point(-1.5, 54.9),
                },
                {"properties": {"ref": "A2", "empty": None}, "geometry": _point(-1.6, 55.0)},
                {"geometry": None},
            ],
            "areas": [{"properties": {"code": "E1"}, "geometry": _square(0, 0)}],
        },
        marking=MARK,
        title="Crimes near a place",
        data_as_of="2024-03",
    )
    assert MEDIA_TYPE == "application/geopackage+sqlite3"
    assert pyogrio.list_layers(path).tolist() == [["crimes", "Point"], ["areas", "Polygon"]]
    meta, table = pyogrio.read_arrow(path, layer="crimes")
    assert meta["crs"] == "EPSG:4326"
    assert meta["geometry_type"] == "Point"
    assert table.column_names == ["ref", "n", "empty", "marking", "geom"]
    rows = table.to_pylist()
    assert [r["ref"] for r in rows] == ["A1", "A2", None]
    assert [r["n"] for r in rows] == [3, None, None]
    assert [r["empty"] for r in rows] == [None, None, None]
    assert [r["marking"] for r in rows] == [MARK, MARK, MARK]
    shapes = [None if r["geom"] is None else shapely.from_wkb(r["geom"]) for r in rows]
    assert shapes[0].equals(shapely.Point(-1.5, 54.9))
    assert shapes[1].equals(shapely.Point(-1.6, 55.0))
    assert shapes[2] is None
    info = pyogrio.read_info(path, layer="crimes")
    assert dict(zip(info["fields"], info["dtypes"], strict=True))["empty"] == "object"  # text
    assert info["dataset_metadata"] == {
        "marking": MARK,
        "title": "Crimes near a place",
        "data_as_of": "2024-03",
    }
    assert info["layer_metadata"] == {
        "marking": MARK,
        "IDENTIFIER": f"crimes ({MARK})",
        "DESCRIPTION": f"{MARK}. Crimes near a place: crimes.",
    }
    assert pyogrio.read_info(path, layer="areas")["layer_metadata"]["marking"] == MARK
    assert _contents(path) == {
        "crimes": (f"crimes ({MARK})", f"{MARK}. Crimes near a place: crimes."),
        "areas": (f"areas ({MARK})", f"{MARK}. Crimes near a place: areas."),
    }


def test_no_data_as_of_and_an_empty_layer(tmp_path: Path):
    path = tmp_path / "out.gpkg"
    write_geopackage(path, {"none": []}, marking=MARK, title="T")
    assert pyogrio.read_info(path, layer="none")["dataset_metadata"] == {
        "marking": MARK,
        "title": "T",
    }
    meta, table = pyogrio.read_arrow(path, layer="none")
    assert table.num_rows == 0
    assert table.column_names == ["marking", "geom"]
    assert meta["geometry_type"] == "Unknown"


def test_mixed_single_and_multi_parts_become_multi(tmp_path: Path):
    path = tmp_path / "out.gpkg"
    multi_point = {"type": "MultiPoint", "coordinates": [[1, 1], [2, 2]]}
    line = {"type": "LineString", "coordinates": [[0, 0], [1, 1]]}
    multi_line = {"type": "MultiLineString", "coordinates": [[[0, 0], [1, 0]]]}
    multi_square = {"type": "MultiPolygon", "coordinates": [_square(5, 5)["coordinates"]]}
    write_geopackage(
        path,
        {
            "points": [
                {"properties": {"i": 1}, "geometry": _point(0, 0)},
                {"properties": {"i": 2}, "geometry": multi_point},
                {"properties": {"i": 3}, "geometry": None},
            ],
            "lines": [
                {"properties": {"i": 1}, "geometry": line},
                {"properties": {"i": 2}, "geometry": multi_line},
            ],
            "squares": [
                {"properties": {"i": 1}, "geometry": _square(0, 0)},
                {"properties": {"i": 2}, "geometry": multi_square},
            ],
            "mixed": [
                {"properties": {"i": 1}, "geometry": _point(0, 0)},
                {"properties": {"i": 2}, "geometry": _square(0, 0)},
            ],
        },
        marking=MARK,
        title="T",
    )
    assert pyogrio.list_layers(path).tolist() == [
        ["points", "MultiPoint"],
        ["lines", "MultiLineString"],
        ["squares", "MultiPolygon"],
        ["mixed", "Unknown"],
    ]
    expected = {
        "points": ["MULTIPOINT ((0 0))", "MULTIPOINT ((1 1), (2 2))", None],
        "lines": ["MULTILINESTRING ((0 0, 1 1))", "MULTILINESTRING ((0 0, 1 0))"],
        "squares": [
            "MULTIPOLYGON (((0 0, 1 0, 1 1, 0 1, 0 0)))",
            "MULTIPOLYGON (((5 5, 6 5, 6 6, 5 6, 5 5)))",
        ],
        "mixed": ["POINT (0 0)", "POLYGON ((0 0, 1 0, 1 1, 0 1, 0 0))"],
    }
    for layer, wkts in expected.items():
        _, table = pyogrio.read_arrow(path, layer=layer)
        got = [
            None if g is None else shapely.to_wkt(shapely.from_wkb(g), rounding_precision=0)
            for g in table.column("geom").to_pylist()
        ]
        assert got == wkts, layer


def test_a_file_that_cannot_be_written_is_a_data_error(tmp_path: Path):
    path = tmp_path / "absent" / "out.gpkg"
    with pytest.raises(DataError) as failed:
        write_geopackage(path, {"crimes": [{"geometry": _point(0, 0)}]}, marking=MARK, title="T")
    assert str(failed.value).startswith("could not write the GeoPackage layer crimes: ")
    assert not path.exists()


def test_a_geopackage_whatever_the_file_name_and_a_property_seen_late(tmp_path: Path):
    path = tmp_path / "download"  # no .gpkg suffix for GDAL to guess the format from
    features = [{"properties": {"i": i}, "geometry": _point(i, 0)} for i in range(100)]
    features.append({"properties": {"i": 100, "late": "only here"}, "geometry": _point(0, 1)})
    write_geopackage(path, {"points": features}, marking=MARK, title="T")
    assert pyogrio.read_info(path)["driver"] == "GPKG"
    _, table = pyogrio.read_arrow(path, layer="points")
    assert table.column_names == ["i", "late", "marking", "geom"]
    assert table.column("late").to_pylist() == [None] * 100 + ["only here"]
    assert table.column("i").to_pylist() == list(range(101))


def test_a_layer_of_features_without_geometry(tmp_path: Path):
    path = tmp_path / "out.gpkg"
    features = [{"properties": {"ref": "A"}, "geometry": None}, {"properties": {"ref": "B"}}]
    write_geopackage(path, {"records": features}, marking=MARK, title="T")
    meta, table = pyogrio.read_arrow(path, layer="records")
    assert meta["geometry_type"] == "Unknown"
    assert table.column("ref").to_pylist() == ["A", "B"]
    assert table.column("geom").to_pylist() == [None, None]
