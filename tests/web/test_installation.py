"""The admin page says which placeharm serves which store (issue 18)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from placeharm.store.migrations import LATEST_VERSION
from placeharm.version import describe

from .conftest import sign_in


def test_admin_page_and_its_twin_show_version_commit_and_schema(app_client: TestClient):
    cookie = sign_in(app_client, "admin", justify=False)
    data = app_client.get("/api/admin", cookies=cookie).json()["installation"]
    this = describe(LATEST_VERSION)
    assert data["version"] == this.version
    assert data["commit"] == this.commit and data["commit"]
    assert data["schema_version"] == LATEST_VERSION == data["schema_latest"]
    html = app_client.get("/admin", cookies=cookie, headers={"Accept": "text/html"}).text
    section = html[html.index('id="installation"') :]
    section = section[: section.index("</dl>")]
    assert f"<dd>{this.version}</dd>" in section
    assert f"<code>{this.commit}</code>" in section
    assert f"version {LATEST_VERSION} (current)" in section
    # the page is for administrators only
    leader = sign_in(app_client, "leader", justify=False)
    assert app_client.get("/api/admin", cookies=leader).status_code == 403
