"""The ward map's outlines: the ward's boundary and the CHB sites overlapping it."""

from __future__ import annotations

import json

import shapely
from fastapi.testclient import TestClient

from .conftest import sign_in


def test_ward_page_outlines_its_boundary_and_the_chb_sites_overlapping_it(app_client: TestClient):
    with app_client.app.state.placeharm.read() as store:  # type: ignore[attr-defined]
        wards = store.area_polygons("ward")
        sites = store.area_polygons("chb")
    assert sites.height >= 1
    site_shapes = {c: shapely.from_wkb(w) for c, _, w in sites.iter_rows()}
    overlapping = {
        code: {s for s, shape in site_shapes.items() if shapely.intersects(shape, ward)}
        for code, _, wkb in wards.iter_rows()
        for ward in [shapely.from_wkb(wkb)]
    }
    with_site = next(c for c, s in overlapping.items() if s)
    without = next(c for c, s in overlapping.items() if not s)

    app_client.cookies.clear()
    app_client.cookies.set("placeharm_session", sign_in(app_client, "officer")["placeharm_session"])
    page = app_client.get(f"/api/ward/{with_site}").json()
    features = page["outlines"]["features"]
    assert [f["properties"]["code"] for f in features if f["properties"]["kind"] == "ward"] == [
        with_site
    ]
    chb = {f["properties"]["code"] for f in features if f["properties"]["kind"] == "chb"}
    assert chb == overlapping[with_site]
    listed = page["tables"]["chb_sites"]
    assert {r["site"] for r in listed} == chb  # the map's list equivalent
    assert all(0 < r["share_in_ward"] <= 1 for r in listed)
    # the outline is the stored ward polygon, simplified by at most a few metres
    stored = shapely.from_wkb(wards.filter(wards["area_code"] == with_site)["geometry_wkb"][0])
    drawn = shapely.from_geojson(
        json.dumps(next(f for f in features if f["properties"]["kind"] == "ward")["geometry"])
    )
    assert shapely.hausdorff_distance(stored, drawn) < 0.0001

    html = app_client.get(f"/ward/{with_site}").text
    assert 'data-layer="chb"' in html
    for site in chb:
        assert f'href="/chb/{site}"' in html

    other = app_client.get(f"/api/ward/{without}").json()
    kinds = [f["properties"]["kind"] for f in other["outlines"]["features"]]
    assert kinds == ["ward"] and other["tables"]["chb_sites"] == []
    assert 'data-layer="chb"' not in app_client.get(f"/ward/{without}").text
