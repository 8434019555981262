"""A crime's history in the records explorer (issue 13): the page and its JSON twin show the
same versions, under the records page's policy, and the audit entry names the crime."""

from __future__ import annotations

from fastapi.testclient import TestClient

from .conftest import sign_in


def _get(client: TestClient, url: str, cookie: dict[str, str], html: bool = False):
    client.cookies.clear()
    for name, value in cookie.items():
        client.cookies.set(name, value)
    return client.get(url, headers={"Accept": "text/html"} if html else {})


def test_history_page_and_json_agree(app_client: TestClient):
    analyst = sign_in(app_client, "analyst")
    records = _get(app_client, "/api/records?kind=crimes&q=Robbery&page_size=1", analyst).json()
    crime_id = records["tables"]["records"][0]["crime_id"]
    page = _get(app_client, "/records?kind=crimes&q=Robbery", analyst, html=True)
    assert f'href="/crime/{crime_id}"' in page.text  # the explorer links each crime

    body = _get(app_client, f"/api/crime/{crime_id}/history", analyst).json()
    versions = body["tables"]["versions"]
    assert versions[0]["version"] == "current" and versions[0]["crime_id"] == crime_id
    assert versions[0]["vintage"] and versions[0]["published_how"]
    assert versions[0]["source_file"] and versions[0]["import_id"] is not None
    html = _get(app_client, f"/crime/{crime_id}", analyst, html=True)
    assert html.status_code == 200
    assert versions[0]["published_how"] in html.text and "Versions" in html.text

    store = app_client.app.state.placeharm.store  # type: ignore[attr-defined]
    entries, _ = store.audit_search(None, crime_id, None, None, None, 5)
    assert entries.height >= 2  # the page and the JSON, each naming the crime

    missing = _get(app_client, "/api/crime/not-a-crime/history", analyst)
    assert missing.status_code == 404
