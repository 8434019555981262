"""The records explorer of issue 15: an export of every matching row (streamed, with its
count on the page and in the audit entry), the area box taking a name as well as a code,
and long identifiers shortened on screen but whole in the export."""

from __future__ import annotations

import csv
import io
import re

import pytest
from fastapi.testclient import TestClient

from placeharm.services import pages

from .conftest import sign_in

# issue 17: on DuckDB and on PostgreSQL (the demo store moved by migrate-store)
pytestmark = pytest.mark.both_engines

WARD, WARD_NAME = "E05001111", "Westgate"


def _get(client: TestClient, path: str, cookie: dict[str, str], html: bool = False):
    client.cookies.clear()
    headers = {"Accept": "text/html"} if html else {}
    return client.get(path, cookies=cookie, headers=headers, follow_redirects=False)


def _rows(text: str) -> list[list[str]]:
    marking, body = text.split("\n", 1)
    assert marking == f"# {pages.MARKING}"
    return list(csv.reader(io.StringIO(body)))


def _latest(client: TestClient) -> dict:
    store = client.app.state.placeharm.store  # type: ignore[attr-defined]
    entries, _ = store.audit_search(None, None, None, None, None, 1)
    return entries.row(0, named=True)


def test_the_export_has_every_matching_row_not_a_thousand(app_client: TestClient):
    cookie = sign_in(app_client, "analyst")
    query = "kind=crimes&from=2021-11&to=2021-11&sort=record_key&desc=false"
    page = _get(app_client, f"/api/records?{query}", cookie).json()
    assert page["total"] > 1000, "the window must hold more rows than the old cap"
    response = _get(app_client, f"/api/records.csv?{query}", cookie)
    assert response.status_code == 200
    assert response.headers["x-total-rows"] == str(page["total"])
    entry = _latest(app_client)  # written before the first byte was sent
    assert entry["format"] == "csv" and entry["row_count"] == page["total"]
    rows = _rows(response.text)
    header, body = rows[0], rows[1:]
    assert header == page["columns"]
    assert len(body) == page["total"]
    # the same rows in the same order as the pages of the JSON twin, across the stream's batches
    paged = []
    for n in range(1, -(-page["total"] // 1000) + 1):
        listed = _get(app_client, f"/api/records?{query}&page_size=1000&page={n}", cookie)
        paged += [
            (r["record_key"] or "", r["crime_id"] or "") for r in listed.json()["tables"]["records"]
        ]
    key, crime = header.index("record_key"), header.index("crime_id")
    assert [(r[key], r[crime]) for r in body] == paged


def test_the_stream_reads_in_batches_and_matches_the_pages(app_client: TestClient):
    """The store's stream with a small batch size gives the rows records_page pages through."""
    store = app_client.app.state.placeharm.store  # type: ignore[attr-defined]
    args = ("crimes", ["record_key", "crime_type"], None, None, "month", ("ward", WARD), None)
    total, batches = store.records_stream(*args, "record_key", False, batch_rows=7)
    frames = list(batches)
    assert total > 7 and max(f.height for f in frames) == 7
    streamed = [k for f in frames for k in f["record_key"].to_list()]
    paged, paged_total = store.records_page(*args, "record_key", False, total + 5, 0)
    assert paged_total == total == len(streamed)
    assert streamed == paged["record_key"].to_list()


def test_the_page_says_how_many_match_and_will_be_exported(app_client: TestClient):
    cookie = sign_in(app_client, "analyst")
    html = _get(app_client, "/records?kind=crimes&from=2021-11&to=2021-11", cookie, True).text
    total = _get(app_client, "/api/records?kind=crimes&from=2021-11&to=2021-11", cookie).json()
    count = f"{total['total']:,}"
    assert f"{count} records match" in html
    assert f"Export all {count} as CSV" in html
    assert "up to 1,000" not in html


def test_the_area_box_takes_a_name_with_suggestions(app_client: TestClient):
    cookie = sign_in(app_client, "analyst")
    by_code = _get(app_client, f"/api/records?kind=crimes&area={WARD}", cookie).json()
    by_name = _get(app_client, f"/api/records?kind=crimes&area={WARD_NAME}", cookie).json()
    lower = _get(app_client, f"/api/records?kind=crimes&area={WARD_NAME.lower()}", cookie).json()
    assert by_code["total"] > 0
    assert by_name["total"] == lower["total"] == by_code["total"]
    assert by_name["area_code"] == WARD and by_name["tables"] == by_code["tables"]
    assert f"{WARD_NAME} ({WARD})" in by_name["notes"][0]
    html = _get(app_client, f"/records?kind=crimes&area={WARD_NAME}", cookie, True).text
    assert 'list="area-names"' in html and f'<option value="{WARD_NAME}">' in html
    exported = _rows(
        _get(app_client, f"/api/records.csv?kind=crimes&area={WARD_NAME}", cookie).text
    )
    assert len(exported) - 1 == by_code["total"]


def test_an_area_that_matches_nothing_says_so(app_client: TestClient):
    cookie = sign_in(app_client, "analyst")
    found = _get(app_client, "/api/records?kind=crimes&area=Nowhere%20Ward", cookie).json()
    assert found["total"] == 0 and found["area_matched"] is False
    assert "No ward has the code or name 'Nowhere Ward'" in found["notes"][0]
    html = _get(app_client, "/records?kind=crimes&area=Nowhere%20Ward", cookie, True).text
    assert "No ward has the code or name" in html and 'role="alert"' in html
    assert "Export all" not in html
    exported = _rows(_get(app_client, "/api/records.csv?kind=crimes&area=Nowhere", cookie).text)
    assert len(exported) == 1  # the header only


def test_long_identifiers_are_short_on_screen_and_whole_in_exports(app_client: TestClient):
    cookie = sign_in(app_client, "analyst")
    query = f"kind=crimes&area={WARD}&sort=crime_id"
    listed = _get(app_client, f"/api/records?{query}", cookie).json()["tables"]["records"]
    crime_id = next(r["crime_id"] for r in listed if r["crime_id"])
    assert len(crime_id) == 64
    html = _get(app_client, f"/records?{query}", cookie, True).text
    shown = re.search(rf'<a href="/crime/{crime_id}" title="{crime_id}">([^<]*)</a>', html)
    assert shown, "the link keeps the whole id, its text is short"
    assert shown.group(1) == crime_id[:10] + "…"
    assert f">{crime_id}<" not in html
    exported = _get(app_client, f"/api/records.csv?{query}", cookie).text
    assert crime_id in exported


def test_a_partners_export_is_shaped_as_their_page(app_client: TestClient):
    """The export applies the page's policy: shareable intelligence only, generalised
    locations, no columns naming people."""
    partner = sign_in(app_client, "partner")
    page = _get(app_client, "/api/records?kind=intelligence", partner).json()
    rows = _rows(_get(app_client, "/api/records.csv?kind=intelligence", partner).text)
    header, body = rows[0], rows[1:]
    assert header == page["columns"] and len(body) == page["total"] > 0
    assert "subjects" not in header and "summary" not in header
    assert {r[header.index("handling_code")] for r in body} == {"P"}
    for r in body:
        lat = r[header.index("latitude")]
        assert not lat or len(lat.split(".")[-1]) <= 2  # generalised to 0.01 degrees
