"""Pages shared by the users of one role (issue 14): the page cache keys the pages whose
content the policy decides by role alone (`pages.ROLE_PAGES`) by role, so 50 analysts share
one build. A page is never served to a role, or a user, the policy would show something
else; every request still has its own audit entry naming what it held."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

import placeharm
from placeharm.config import load_settings
from placeharm.services import auth, pages
from placeharm.services.policy import Role
from placeharm.web.app import create_app

from .conftest import sign_in

WARD = "E05001111"
SHARED_URLS = (
    "/api/overview",
    "/api/overview?from=2021-06&to=2022-01&index=cchi",
    f"/api/ward/{WARD}",
    "/api/chb/DEMO-CHB1",
    "/api/records?kind=crimes&page=2",
    "/api/records?kind=intelligence",
    "/api/records?kind=incidents&sort=occurred_date&desc=false",
    "/api/overview.geojson",
    f"/api/ward/{WARD}.geojson",
)
ROLES = ("officer", "analyst", "supervisor", "leader", "partner", "admin")


@pytest.fixture(scope="module")
def roles_db(module_demo: str) -> str:
    """The module's copy of the demo store with a second analyst and a second officer."""
    with placeharm.open_store(module_demo) as store:
        for name, role in (("analyst2", Role.analyst), ("officer2", Role.officer)):
            password = name + auth.DEMO_PASSWORD_SUFFIX
            auth.create_user(store, name, name, role, password, demo=True)
    return module_demo


@pytest.fixture()
def client(roles_db: str) -> Iterator[TestClient]:
    """An app of its own (an empty page cache) on the module's store: each test signs in
    afresh and counts what it adds."""
    with TestClient(create_app(load_settings(db=roles_db))) as test_client:
        yield test_client


def _get(client: TestClient, url: str, cookie: dict[str, str], html: bool = False) -> Any:
    client.cookies.clear()
    headers = {"Accept": "text/html"} if html else {}
    return client.get(url, cookies=cookie, headers=headers)


def _state(client: TestClient) -> Any:
    return client.app.state.placeharm  # type: ignore[attr-defined]


def _body(response: Any) -> tuple[int, Any]:
    if response.headers["content-type"].startswith(("application/json", "application/geo")):
        return response.status_code, response.json()
    return response.status_code, response.text


def test_users_of_a_role_share_one_build_with_their_own_name(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
):
    built: list[str] = []
    original = pages.overview

    @functools.wraps(original)
    def counted(store: Any, user: Any, *args: Any) -> pages.Page:
        built.append(user.username)
        return original(store, user, *args)

    monkeypatch.setattr(pages, "overview", counted)
    first, second = sign_in(client, "analyst"), sign_in(client, "analyst2")
    a = _get(client, "/api/overview", first).json()
    b = _get(client, "/api/overview", second).json()
    assert built == [""], "built once, for the role: no one's name in the shared page"
    assert a["user"] == {"username": "analyst", "role": "analyst"}
    assert b["user"] == {"username": "analyst2", "role": "analyst"}
    assert {k: v for k, v in a.items() if k != "user"} == {
        k: v for k, v in b.items() if k != "user"
    }
    html = _get(client, "/overview", second, html=True)  # the same build, as HTML
    assert html.status_code == 200 and built == [""]
    start = html.text.index('id="page-data">') + len('id="page-data">')
    embedded = json.loads(html.text[start : html.text.index("</script>", start)])
    assert embedded["user"]["username"] == "analyst2" and embedded["tables"] == a["tables"]
    # another role builds its own
    _get(client, "/api/overview", sign_in(client, "officer"))
    assert built == ["", ""]


def test_a_shared_page_is_never_served_to_another_role(client: TestClient):
    """Each role's answer to each shared URL, built alone on an empty cache, is what it gets
    when the roles ask one after another (so from the cache where the policy allows)."""
    state = _state(client)
    cookies = {role: sign_in(client, role) for role in ROLES}
    alone: dict[tuple[str, str], tuple[int, Any]] = {}
    for url in SHARED_URLS:
        for role in ROLES:
            state.notify()  # an empty cache: this role's page built for it alone
            alone[url, role] = _body(_get(client, url, cookies[role]))
    state.notify()
    for url in SHARED_URLS:
        for role in (*ROLES, *reversed(ROLES)):  # each role after every other, then again
            assert _body(_get(client, url, cookies[role])) == alone[url, role], (url, role)
    # the test compares pages that differ: the policy shows these roles different things
    for url in ("/api/records?kind=intelligence", f"/api/ward/{WARD}"):
        partner, analyst = alone[url, "partner"], alone[url, "analyst"]
        assert partner[0] == analyst[0] == 200
        assert partner[1]["tables"] != analyst[1]["tables"], url
    officer, analyst = alone[f"/api/ward/{WARD}", "officer"], alone[f"/api/ward/{WARD}", "analyst"]
    assert "nominals" in analyst[1]["tables"]
    assert officer[1]["tables"] != analyst[1]["tables"]


def test_a_page_needing_a_justification_is_not_served_without_one(client: TestClient):
    """The analyst who stated why sees the nominals; the one who did not is asked (428), the
    cached page notwithstanding, and sees no name."""
    justified = sign_in(client, "analyst")
    unjustified = sign_in(client, "analyst2", justify=False)
    url = "/api/records?kind=nominals"
    shown = _get(client, url, justified)
    assert shown.status_code == 200 and shown.json()["tables"]["records"]
    names = {r["surname"] for r in shown.json()["tables"]["records"]}
    asked = _get(client, url, unjustified)
    assert asked.status_code == 428 and not any(n in asked.text for n in names if n)
    client.cookies.clear()  # the HTML page sends the browser to the justification form
    form = client.get(
        "/records?kind=nominals",
        cookies=unjustified,
        headers={"Accept": "text/html"},
        follow_redirects=False,
    )
    assert form.status_code == 303 and form.headers["location"].startswith("/justification")
    assert _get(client, url, justified).status_code == 200  # and still for the one who did


def test_every_request_of_a_shared_page_is_audited(client: TestClient):
    """Built or from the cache, each request writes its own entry with what it held."""
    store = _state(client).store
    cookies = [sign_in(client, "officer"), sign_in(client, "officer2")]
    before = len(store.audit_entries(0, 1_000_000))
    for cookie in (*cookies, *cookies):
        assert _get(client, f"/api/ward/{WARD}", cookie).status_code == 200
    entries = [
        e for e in store.audit_entries(0, 1_000_000)[before:] if e["route"] == "/api/ward/{code}"
    ]
    assert [e["username"] for e in entries] == ["officer", "officer2", "officer", "officer2"]
    held = [json.loads(e["record_ids"]) for e in entries]
    assert all(h == held[0] for h in held) and held[0]["ward"] == [WARD]
    assert len({e["row_count"] for e in entries}) == 1 and entries[0]["row_count"] > 0
