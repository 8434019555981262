"""The configurable base map: a local PMTiles archive served at /tiles/{z}/{x}/{y}, or a force
tile server allowed by the Content-Security-Policy only when configured."""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pmtiles.tile import Compression, TileType

from placeharm.config import load_settings
from placeharm.errors import ConfigError
from placeharm.web.app import create_app

from .conftest import sign_in
from .tiles import png, write_pmtiles

BLUE = png((166, 206, 227))
GREEN = png((178, 223, 138))
TILE_URL = "https://tiles.force.local:8443/osm/{z}/{x}/{y}.png"


def _signed_in(client: TestClient, who: str = "officer") -> TestClient:
    client.cookies.clear()
    client.cookies.set("placeharm_session", sign_in(client, who)["placeharm_session"])
    return client


def _basemap(html: str) -> dict | None:
    found = re.search(r'<script type="application/json" id="basemap">(.*?)</script>', html, re.S)
    return json.loads(found.group(1)) if found else None


@pytest.fixture(scope="module")
def raster(web_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    path = tmp_path_factory.mktemp("tiles") / "base.pmtiles"
    write_pmtiles(path, {(0, 0, 0): BLUE, (1, 0, 0): GREEN})
    with TestClient(create_app(load_settings(db=web_db, pmtiles=path))) as client:
        yield client


def test_pmtiles_tiles_are_served_to_signed_in_users(raster: TestClient):
    raster.cookies.clear()
    assert raster.get("/tiles/1/0/0").status_code == 403  # sign in first
    client = _signed_in(raster)
    for url, body in (("/tiles/0/0/0", BLUE), ("/tiles/1/0/0", GREEN)):
        response = client.get(url)
        assert response.status_code == 200, url
        assert response.content == body
        assert response.headers["content-type"] == "image/png"
        assert "content-encoding" not in response.headers
        assert response.headers["cache-control"] == "private, max-age=86400"
        assert response.headers["x-content-type-options"] == "nosniff"
    for missing in ("/tiles/1/1/1", "/tiles/2/0/0", "/tiles/1/2/0", "/tiles/1/-1/0"):
        response = client.get(missing)
        assert response.status_code == 404, missing
        assert response.headers["cache-control"] == "no-store"
    # coordinates are integers: nothing else reaches the archive, nor the file system
    assert client.get("/tiles/1/0/..%2F..%2Fetc").status_code in (404, 422)
    assert client.get("/tiles/a/0/0").status_code == 400


def test_pages_carry_the_tile_source_and_the_csp_stays_self(raster: TestClient):
    client = _signed_in(raster)
    page = client.get("/overview", headers={"Accept": "text/html"})
    spec = _basemap(page.text)
    assert spec == {
        "source": {
            "type": "raster",
            "tiles": ["/tiles/{z}/{x}/{y}"],
            "minzoom": 0,
            "maxzoom": 1,
            "tileSize": 256,
            "bounds": [-180.0, -85.0, 180.0, 85.0],
            "attribution": "Test tiles",
        }
    }
    csp = page.headers["content-security-policy"]
    assert "img-src 'self' data: blob:;" in csp and "connect-src 'self';" in csp


def test_vector_pmtiles_are_served_gzip_with_plain_layers(web_db: str, tmp_path: Path) -> None:
    mvt = b"\x1a\x00fake vector tile"
    path = write_pmtiles(
        tmp_path / "vector.pmtiles",
        {(0, 0, 0): gzip.compress(mvt)},
        TileType.MVT,
        Compression.GZIP,
        {"vector_layers": [{"id": "roads"}, {"id": "water"}], "attribution": "<a>© OSM</a>"},
    )
    with TestClient(create_app(load_settings(db=web_db, pmtiles=path))) as client:
        _signed_in(client)
        response = client.get("/tiles/0/0/0")  # httpx asks for gzip and decodes it
        assert response.headers["content-type"] == "application/vnd.mapbox-vector-tile"
        assert response.headers["content-encoding"] == "gzip"
        assert response.headers["vary"] == "Accept-Encoding"
        assert response.content == mvt
        plain = client.get("/tiles/0/0/0", headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in plain.headers and plain.content == mvt
        spec = _basemap(client.get("/ward/E05001111", headers={"Accept": "text/html"}).text)
        assert spec is not None
        assert spec["source"]["type"] == "vector" and "tileSize" not in spec["source"]
        assert spec["vector_layers"] == ["roads", "water"]
        assert spec["source"]["attribution"] == "© OSM"  # markup from the file is dropped


def test_tile_server_origin_is_in_the_csp_only_when_configured(web_db: str, app_client: TestClient):
    settings = load_settings(db=web_db, tile_url=TILE_URL, tile_attribution="Force <GIS>")
    with TestClient(create_app(settings)) as client:
        _signed_in(client)
        page = client.get("/overview", headers={"Accept": "text/html"})
        csp = page.headers["content-security-policy"]
        assert "img-src 'self' https://tiles.force.local:8443 data: blob:;" in csp
        assert "connect-src 'self' https://tiles.force.local:8443;" in csp
        assert _basemap(page.text) == {
            "source": {
                "type": "raster",
                "tiles": [TILE_URL],
                "tileSize": 256,
                "attribution": "Force &lt;GIS&gt;",
            }
        }
        assert client.get("/tiles/0/0/0").status_code == 404  # no local archive
    _signed_in(app_client)
    plain = app_client.get("/overview", headers={"Accept": "text/html"})
    assert "tiles.force.local" not in plain.headers["content-security-policy"]
    assert _basemap(plain.text) is None  # nothing configured: the map is as it was
    assert app_client.get("/tiles/0/0/0").status_code == 404


def test_a_bad_pmtiles_file_stops_the_start(web_db: str, tmp_path: Path):
    bad = tmp_path / "bad.pmtiles"
    bad.write_bytes(b"not a pmtiles archive at all" * 10)
    with pytest.raises(ConfigError, match="not a PMTiles v3 archive"):
        create_app(load_settings(db=web_db, pmtiles=bad))
    with pytest.raises(ConfigError, match="cannot be opened"):
        create_app(load_settings(db=web_db, pmtiles=tmp_path / "missing.pmtiles"))
