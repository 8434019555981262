"""GeoPackage twins of the GeoJSON exports: same features and properties, same refusals, and
the OFFICIAL-SENSITIVE marking inside the file."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import pyogrio
import pytest
import shapely
from fastapi.testclient import TestClient

from .conftest import sign_in

WARD = "E05001111"
MARKING = "OFFICIAL-SENSITIVE"


def _as(client: TestClient, who: str | None) -> TestClient:
    client.cookies.clear()
    if who:
        client.cookies.set("placeharm_session", sign_in(client, who)["placeharm_session"])
    return client


def _download(client: TestClient, url: str, tmp_path: Path) -> Path:
    response = client.get(url)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/geopackage+sqlite3"
    assert response.headers["content-disposition"].startswith("attachment; filename=")
    assert response.headers["x-security-marking"] == MARKING
    assert response.headers["cache-control"] == "no-store"
    path = tmp_path / url.rsplit("/", 1)[1].split("?")[0]
    path.write_bytes(response.content)
    return path


def _plain(value: object) -> object:
    """A GeoPackage value as its GeoJSON twin writes it (dates as ISO text)."""
    return value.isoformat() if isinstance(value, dt.date) else value


def _same_value(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float | int):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    return a == b


def _assert_twins(gpkg: Path, layer: str, features: list[dict]) -> None:
    """The layer holds exactly these GeoJSON features, in order, plus a marking column."""
    meta, table = pyogrio.read_arrow(gpkg, layer=layer)
    assert meta["crs"] == "EPSG:4326"
    rows = table.to_pylist()
    assert len(rows) == len(features)
    columns = [c for c in table.column_names if c not in ("geom", "marking")]
    keys = list(dict.fromkeys(k for f in features for k in f["properties"]))
    assert columns == keys
    for row, feature in zip(rows, features, strict=True):
        assert row["marking"] == MARKING
        for key in keys:
            got, want = _plain(row[key]), feature["properties"].get(key)
            assert _same_value(got, want), (layer, key, got, want)
        geometry = shapely.from_wkb(row["geom"])
        assert shapely.equals(geometry, shapely.geometry.shape(feature["geometry"]))


def test_overview_geopackage_is_the_geojson(app_client: TestClient, tmp_path: Path):
    client = _as(app_client, "analyst")
    query = "?from=2021-11&to=2022-03"
    geo = client.get(f"/api/overview.geojson{query}").json()
    gpkg = _download(client, f"/api/overview.gpkg{query}", tmp_path)
    info = pyogrio.read_info(gpkg)
    assert info["layer_name"] == "areas" and info["driver"] == "GPKG"
    assert info["features"] == len(geo["features"]) == 177
    assert info["geometry_type"] == "MultiPolygon"
    _assert_twins(gpkg, "areas", geo["features"])
    # the marking, in the file: layer description and identifier, layer and dataset metadata
    assert info["layer_metadata"]["DESCRIPTION"].startswith(MARKING)
    assert MARKING in info["layer_metadata"]["IDENTIFIER"]
    assert info["layer_metadata"]["marking"] == MARKING
    assert info["dataset_metadata"]["marking"] == MARKING
    assert info["dataset_metadata"]["data_as_of"] == geo["data_as_of"]


@pytest.mark.parametrize("who", ["analyst", "officer", "leader", "partner"])
def test_ward_geopackage_is_the_geojson_as_the_role_allows(
    app_client: TestClient, tmp_path: Path, who: str
):
    client = _as(app_client, who)
    geo = client.get(f"/api/ward/{WARD}.geojson").json()
    assert geo["marking"] == MARKING
    ward = client.get(f"/api/ward/{WARD}").json()
    assert geo["layers"] == list(ward["points"])
    gpkg = _download(client, f"/api/ward/{WARD}.gpkg", tmp_path)
    layers = [str(name) for name, _ in pyogrio.list_layers(gpkg)]
    assert layers == geo["layers"]
    for layer in layers:
        features = [f for f in geo["features"] if f["properties"]["layer"] == layer]
        assert len(features) == sum(p["longitude"] is not None for p in ward["points"][layer])
        _assert_twins(gpkg, layer, features)
        assert pyogrio.read_info(gpkg, layer=layer)["layer_metadata"]["marking"] == MARKING
    if who == "partner":
        assert "incidents" not in layers
        _, intel = pyogrio.read_arrow(gpkg, layer="intelligence")
        assert set(intel["handling_code"].to_pylist()) == {"P"}
        assert not {"subjects", "summary"} & set(intel.column_names)
        for column in ("latitude", "longitude"):
            assert all(round(v, 2) == v for v in intel[column].to_pylist())


def test_geopackage_refused_where_the_geojson_is(app_client: TestClient):
    for who, url in (
        (None, "/api/overview.{ext}"),
        (None, f"/api/ward/{WARD}.{{ext}}"),
        ("partner", "/api/overview.{ext}?by=lsoa"),
        ("partner", f"/api/ward/{WARD}.{{ext}}?by=lsoa"),
    ):
        client = _as(app_client, who)
        geojson = client.get(url.format(ext="geojson"))
        gpkg = client.get(url.format(ext="gpkg"))
        assert geojson.status_code == gpkg.status_code == 403, (who, url)
        assert gpkg.json() == geojson.json() and set(gpkg.json()) == {"error", "status"}
    client = _as(app_client, "analyst")
    assert client.get("/api/ward/E00000000.gpkg").status_code == 404


def test_pages_link_the_geopackage(app_client: TestClient):
    client = _as(app_client, "officer")
    overview = client.get("/overview", headers={"Accept": "text/html"}).text
    assert 'href="/api/overview.gpkg?' in overview
    ward = client.get(f"/ward/{WARD}", headers={"Accept": "text/html"}).text
    assert f'href="/api/ward/{WARD}.gpkg?' in ward
    assert f'href="/api/ward/{WARD}.geojson?' in ward
