"""Pages in plain English (issue 15, item 9): index, measure and topic names instead of codes,
shares one way (percentages), no command-line advice on a page, the partner map note stating
how far points are generalised (from the policy's grid), a favicon; and shared links that
keep their filters through the sign-in form and single sign-on's `next`."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
import shapely
from fastapi.testclient import TestClient

from placeharm.services import auth, labels, policy

from .conftest import login_token, origin, sign_in

WARD = "E05001111"


def _html(client: TestClient, path: str, cookie: dict[str, str]) -> str:
    client.cookies.clear()
    response = client.get(path, cookies=cookie, headers={"Accept": "text/html"})
    assert response.status_code == 200, response.text[:300]
    return response.text


def _visible(html: str) -> str:
    """The page's text as read: no tags, attributes, scripts (the JSON twin keeps codes)."""
    html = re.sub(r"<script.*?</script>", "", html, flags=re.S)
    return re.sub(r"<[^>]+>", " ", html)


def test_labels_come_from_the_configuration():
    assert labels.index_label("css") == "ONS Crime Severity Score"
    assert labels.index_label("css:northumbria") == (
        "ONS Crime Severity Score, Northumbria offence mix"
    )
    assert labels.index_label("cchi").startswith("Cambridge Crime Harm Index")
    assert labels.index_label("cchi").endswith("(secondary)")
    assert labels.index_label("my_index", fallback="Our index") == "Our index"
    assert labels.measure_label("drug_supply") == "Drug supply offences"  # measures.yaml
    assert labels.topics_label("drug_supply;exploitation") == "Drug supply, exploitation"
    assert labels.topics_label("") == ""
    assert set(labels.TOPIC_LABELS) == set(labels.known_topics())  # every topic worded
    assert labels.percent(0.05) == "5.0%" and labels.percent(None) == "—"
    assert labels.short_id("a" * 64) == "a" * 10 + "…"
    assert labels.short_id("DEMO-I0000375") is None


def test_the_generalised_distance_follows_the_policy_grid(monkeypatch: pytest.MonkeyPatch):
    assert labels.generalised_distance() == "about 1 km"  # 0.01 degrees
    monkeypatch.setattr(policy, "GENERALISE_DEGREES", 0.05)
    assert labels.generalised_distance() == "about 6 km"
    monkeypatch.setattr(policy, "GENERALISE_DEGREES", 0.002)
    assert labels.generalised_distance() == "about 220 m"


def test_pages_use_names_not_codes(app_client: TestClient):
    cookie = sign_in(app_client, "analyst")
    overview = _visible(_html(app_client, "/overview?from=2021-11&to=2022-03", cookie))
    assert "ONS Crime Severity Score" in overview
    for code in ("(css)", "css:northumbria", "cchi"):
        assert code not in overview, code
    narrowed = _visible(
        _html(app_client, f"/ward/{WARD}?from=2021-11&to=2022-03&measures=drug_supply", cookie)
    )
    assert "measures: Drug supply offences" in narrowed
    assert "drug_supply" not in narrowed
    ward = _visible(_html(app_client, f"/ward/{WARD}?from=2021-11&to=2022-03", cookie))
    assert "Drug supply" in ward  # the latest intelligence's topics
    assert not re.search(r"\b[a-z]+_[a-z_]+;", ward), "raw topic codes on the page"
    for code in labels.TOPIC_LABELS:
        if "_" in code:
            assert code not in ward, code


def test_shares_are_percentages_on_the_page(app_client: TestClient):
    cookie = sign_in(app_client, "officer")
    with app_client.app.state.placeharm.read() as store:  # type: ignore[attr-defined]
        sites = [shapely.from_wkb(w) for w in store.area_polygons("chb")["geometry_wkb"]]
        wards = store.area_polygons("ward")
    code = next(
        c
        for c, _, wkb in wards.iter_rows()
        if any(shapely.intersects(shapely.from_wkb(wkb), site) for site in sites)
    )
    app_client.cookies.clear()
    listed = app_client.get(f"/api/ward/{code}", cookies=cookie).json()["tables"]["chb_sites"]
    share = listed[0]["share_in_ward"]
    html = _html(app_client, f"/ward/{code}", cookie)
    assert f"{100 * share:.1f}%" in html
    assert f">{share:.3f}<" not in html  # not 0.050 beside 14.6%


def test_an_unknown_ward_page_gives_no_command_line_advice(app_client: TestClient):
    cookie = sign_in(app_client, "officer")
    app_client.cookies.clear()
    page = app_client.get("/ward/E05999999", cookies=cookie, headers={"Accept": "text/html"})
    assert page.status_code == 404
    assert "placeharm rank" not in page.text and "`" not in _visible(page.text)
    assert "There is no ward with the code or name" in page.text
    api = app_client.get("/api/ward/E05999999", cookies=cookie)
    assert api.status_code == 404 and "placeharm rank" not in api.json()["error"]


def test_the_partner_map_note_says_points_are_generalised(app_client: TestClient):
    partner = sign_in(app_client, "partner")
    app_client.cookies.clear()
    note = app_client.get(f"/api/ward/{WARD}", cookies=partner).json()["crime_points"]["note"]
    assert "generalised" in note and labels.generalised_distance() in note
    assert "10 m" not in note
    officer = sign_in(app_client, "officer")
    app_client.cookies.clear()
    note = app_client.get(f"/api/ward/{WARD}", cookies=officer).json()["crime_points"]["note"]
    assert "about 10 m" in note


def test_the_favicon_is_served_locally(app_client: TestClient):
    cookie = sign_in(app_client, "officer")
    html = _html(app_client, "/help", cookie)
    assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in html
    icon = app_client.get("/static/favicon.svg")
    assert icon.status_code == 200 and icon.text.startswith("<svg")


SHARED = "/overview?from=2021-11&to=2022-03&measures=drug_supply,cannabis_farms"


def test_a_shared_link_survives_the_sign_in_form(app_client: TestClient):
    app_client.cookies.clear()
    start = app_client.get(SHARED, headers={"Accept": "text/html"}, follow_redirects=False)
    assert start.status_code == 303
    login = start.headers["location"]
    assert parse_qs(urlsplit(login).query)["next"] == [SHARED]
    form = app_client.get(login, headers={"Accept": "text/html"})
    next_field = re.search(r'name="next" value="([^"]+)"', form.text)
    assert next_field and next_field.group(1).replace("&amp;", "&") == SHARED
    token = login_token(app_client)
    wrong = app_client.post(
        "/login",
        data={"username": "supervisor", "password": "wrong", "next": SHARED, "csrf_token": token},
        headers={"Origin": origin(app_client)},
        follow_redirects=False,
    )
    assert wrong.status_code == 303
    assert parse_qs(urlsplit(wrong.headers["location"]).query)["next"] == [SHARED]
    token = login_token(app_client)
    right = app_client.post(
        "/login",
        data={
            "username": "supervisor",
            "password": f"supervisor{auth.DEMO_PASSWORD_SUFFIX}",
            "next": SHARED,
            "csrf_token": token,
        },
        headers={"Origin": origin(app_client)},
        follow_redirects=False,
    )
    assert right.status_code == 303 and right.headers["location"] == SHARED
    # another site is never a destination
    token = login_token(app_client)
    away = app_client.post(
        "/login",
        data={
            "username": "supervisor",
            "password": f"supervisor{auth.DEMO_PASSWORD_SUFFIX}",
            "next": "//evil.example/overview?from=2021-11",
            "csrf_token": token,
        },
        headers={"Origin": origin(app_client)},
        follow_redirects=False,
    )
    assert away.headers["location"] == "/overview"


def test_the_biggest_rises_show_shares_and_changes_as_percentages(app_client: TestClient):
    cookie = sign_in(app_client, "analyst")
    query = "/overview?from=2022-03&to=2022-03"  # against 2022-02 (2022-01 is a gap month)
    app_client.cookies.clear()
    rising = app_client.get(f"/api{query}", cookies=cookie).json()["tables"]["rising"]
    assert rising, "the window needs rises to show"
    html = _html(app_client, query, cookie)
    section = html[html.index('id="rise-h"') : html.index('id="rank-h"')]
    assert "share of force SOC harm" in section and "change (%)" in section
    for row in rising:
        assert f"{100 * row['harm_share']:.1f}%" in section
        if row["pct_change"] is not None:
            assert f"{row['pct_change']:+.1f}%" in section
    assert not re.search(r">0\.\d{3}<", section), "a share as a fraction"


def test_the_radius_search_names_topics_in_words(app_client: TestClient):
    store = app_client.app.state.placeharm.store  # type: ignore[attr-defined]
    intel = store.soc_frame("soc_intelligence")
    row = (
        intel.filter(intel["topics"].str.contains("_") & intel["latitude"].is_not_null())
        .sort("intel_id")
        .row(0, named=True)
    )
    query = f"lat={row['latitude']}&lon={row['longitude']}&radius_m=50&kinds=intelligence"
    cookie = sign_in(app_client, "analyst")
    html = _html(app_client, f"/radius?{query}", cookie)
    table = html[html.index('id="table-intelligence"') :]
    table = table[: table.index("</table>")]
    assert labels.topics_label(row["topics"]) in table
    assert row["topics"] not in table
    assert '<script type="application/json" id="topic-labels">' in html  # for the popups
