"""The network view on nominal and group pages: the policy decides its nodes and edges exactly
as for the rest of the page, HTML and JSON agree, the layout is the same every time and the
cap is stated when it bites."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from placeharm import open_store
from placeharm.config import load_settings
from placeharm.services import auth, network, policy
from placeharm.services.policy import Role, User
from placeharm.soc.importer import import_entity
from placeharm.web.app import create_app

from .conftest import ROLES, sign_in

ROLE_OF = {
    "officer": Role.officer,
    "analyst": Role.analyst,
    "supervisor": Role.supervisor,
    "leader": Role.senior_leader,
    "partner": Role.partner,
    "admin": Role.admin,
    "auditor": Role.auditor,
}
BIG = 45  # members of T-G2: more than the cap

# A small crafted case. T-HUB (OCG member) is linked to:
#   T-FAM (family), T-SECRET (associate and exploitation; a CCE victim and nothing else, so
#   uncleared roles must not learn it exists), T-EXP (exploitation only; a UCG member, so
#   visible, but the link is not); T-SECRET is linked to T-BEYOND, reachable only through it.
# T-G1 has T-HUB and T-PAL; T-G2 has BIG members.
NOMINALS = """nominal_id,surname,forename,ocg_member,ucg_member,cce_victim,cse_victim
T-HUB,Hubperson,Alex,true,false,false,false
T-FAM,Famperson,Sam,false,false,false,false
T-SECRET,Secretchild,Robin,false,false,true,false
T-EXP,Expperson,Jo,false,true,false,true
T-BEYOND,Beyondperson,Lee,false,false,false,false
T-PAL,Palperson,Kim,true,false,false,false
""" + "".join(f"T-M{i:02d},Member{i:02d},Pat,false,true,false,false\n" for i in range(BIG))
GROUPS = "group_id,name,group_type\nT-G1,Test OCG one,OCG\nT-G2,Test UCG two,UCG\n"
MEMBERSHIPS = "group_id,nominal_id,role\nT-G1,T-HUB,principal\nT-G1,T-PAL,member\n" + "".join(
    f"T-G2,T-M{i:02d},peripheral\n" for i in range(BIG)
)
LINKS = """from_nominal,to_nominal,link_type
T-HUB,T-FAM,family
T-HUB,T-SECRET,associate
T-HUB,T-SECRET,exploitation
T-HUB,T-EXP,exploitation
T-SECRET,T-BEYOND,associate
"""
EVERYONE = {"T-HUB", "T-FAM", "T-SECRET", "T-EXP", "T-BEYOND", "T-PAL", "T-G1"}
HIDDEN_FROM_UNCLEARED = {"T-SECRET", "T-EXP", "T-BEYOND"}


def _build(db: str, folder: Path) -> str:
    """The crafted store at `db` (a DuckDB file or a PostgreSQL URL), imported through the
    importer as a force's files would be (the files written in `folder`)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open_store(db) as store:
        for kind, text in (
            ("nominals", NOMINALS),
            ("groups", GROUPS),
            ("memberships", MEMBERSHIPS),
            ("nominal-links", LINKS),
        ):
            path = folder / f"{kind}.csv"
            path.write_text(text)
            result = import_entity(store, kind, path, synthetic=True)
            assert not result.quarantined, (kind, result)
        auth.create_demo_users(store)
        assert store.restricted_only_nominals() == ["T-SECRET"]
    return db


@pytest.fixture(scope="module")
def crafted_db(module_db_at: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory) -> str:
    return _build(module_db_at("network"), tmp_path_factory.mktemp("network"))


@pytest.fixture(scope="module")
def client(crafted_db: str) -> Iterator[TestClient]:
    with TestClient(create_app(load_settings(db=crafted_db))) as c:
        yield c


def _as(client: TestClient, who: str) -> TestClient:
    client.cookies.clear()
    client.cookies.set("placeharm_session", sign_in(client, who)["placeharm_session"])
    return client


def _refs(net: dict) -> set[str]:
    return {n["ref"] for n in net["nodes"]}


def _check_shape(net: dict) -> None:
    ids = [n["id"] for n in net["nodes"]]
    assert len(ids) == len(set(ids))
    assert net["centre"] in ids
    for e in net["edges"]:
        assert e["from"] in ids and e["to"] in ids, e


@pytest.mark.parametrize("name", ROLES)
def test_network_shows_only_what_the_role_may_see(client: TestClient, name: str):
    user = User(name, name, ROLE_OF[name])
    c = _as(client, name)
    nominal = c.get("/api/nominal/T-HUB")
    group = c.get("/api/group/T-G1")
    if not policy.allowed(user, "nominal"):
        assert nominal.status_code == 403 and set(nominal.json()) == {"error", "status"}
    if not policy.allowed(user, "group"):
        assert group.status_code == 403 and set(group.json()) == {"error", "status"}
        return
    assert group.status_code == 200
    if not policy.allowed(user, "nominal"):  # senior leaders: groups, but no people
        assert group.json()["network"] is None
        assert "T-HUB" not in group.text and "T-PAL" not in group.text
        return
    visible = EVERYONE if policy.cleared(user) else EVERYONE - HIDDEN_FROM_UNCLEARED
    body = nominal.json()
    net = body["network"]
    _check_shape(net)
    assert _refs(net) == visible
    assert net["nodes_within_hops"] == len(visible)  # counts do not leak either
    assert not net["capped"]
    types = {e["link_type"] for e in net["edges"]}
    if policy.cleared(user):
        assert types == {"member", "family", "associate", "exploitation"}
        hop = {n["ref"]: n["hop"] for n in net["nodes"]}
        assert hop["T-BEYOND"] == 2 and hop["T-PAL"] == 2 and hop["T-EXP"] == 1
    else:
        assert types == {"member", "family"}
        # nowhere in the page's JSON: not as a node, edge, subject or name
        for hidden in ("T-SECRET", "Secretchild", "T-BEYOND", "Beyondperson"):
            assert hidden not in nominal.text, hidden
        exp = c.get("/api/nominal/T-EXP").json()["network"]
        assert _refs(exp) == {"T-EXP"} and exp["edges"] == []
        assert c.get("/api/nominal/T-SECRET").status_code == 404
    group_net = group.json()["network"]
    _check_shape(group_net)
    assert _refs(group_net) == {"T-G1", "T-HUB", "T-PAL", "T-FAM"} | (
        {"T-SECRET", "T-EXP"} if policy.cleared(user) else set()
    )


def test_demo_network_hides_exploitation_from_uncleared_roles(app_client: TestClient):
    """On the demo overlay: a CCE/CSE perpetrator's network, officer against analyst."""
    analyst = _as(app_client, "analyst")
    rows = analyst.get("/api/records?kind=nominals&page_size=1000").json()["tables"]["records"]
    with app_client.app.state.placeharm.read() as store:  # type: ignore[attr-defined]
        hidden = set(store.restricted_only_nominals())
    assert hidden
    perpetrator = next(r["nominal_id"] for r in rows if r["cce_perpetrator"])
    cleared = analyst.get(f"/api/nominal/{perpetrator}").json()["network"]
    assert "exploitation" in {e["link_type"] for e in cleared["edges"]}
    assert _refs(cleared) & hidden
    officer = _as(app_client, "officer")
    for url in (f"/api/nominal/{perpetrator}", "/api/group/DEMO-G001"):
        net = officer.get(url).json()["network"]
        _check_shape(net)
        assert "exploitation" not in {e["link_type"] for e in net["edges"]}
        assert not _refs(net) & hidden, url


def _embedded(html: str) -> dict:
    found = re.search(r'<script type="application/json" id="page-data">(.*?)</script>', html, re.S)
    assert found is not None
    return json.loads(found.group(1))


@pytest.mark.parametrize("name", ["officer", "analyst"])
@pytest.mark.parametrize("url", ["/nominal/T-HUB", "/group/T-G1", "/group/T-G2"])
def test_html_and_json_agree_on_the_network(client: TestClient, name: str, url: str):
    c = _as(client, name)
    net = c.get(f"/api{url}").json()["network"]
    html = c.get(url, headers={"Accept": "text/html"}).text
    assert _embedded(html)["network"] == net
    svg = html[
        html.index('<svg class="network-svg"') : html.index("</svg>", html.index("network-svg"))
    ]
    assert '<title id="network-title">' in svg and '<desc id="network-desc">' in svg
    links = re.findall(r'<a class="node" href="([^"]+)" aria-label="([^"]+)">', svg)
    expected = [n for n in net["nodes"] if n["id"] != net["centre"]]
    assert [href for href, _ in links] == [f"/{n['id']}" for n in expected]
    assert all(label.startswith(("Nominal ", "Group ")) for _, label in links)
    assert len(re.findall(r'<path class="edge edge-', svg)) == len(net["edges"])
    table = html[
        html.index('id="network-edges"') : html.index("</table>", html.index('id="network-edges"'))
    ]
    rows = re.findall(r"<tr><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td></tr>", table)
    refs = {n["id"]: n["ref"] for n in net["nodes"]}
    assert len(rows) == len(net["edges"])
    for (a, b, kind), e in zip(rows, net["edges"], strict=True):
        assert f">{refs[e['from']]}<" in a and f">{refs[e['to']]}<" in b
        assert kind.startswith(e["link_type"])


def test_layout_is_deterministic(tmp_path: Path, db_at: Callable[[str], str]):
    """Same positions every time the network is built, and on a second store built alike."""
    user = User("a", "a", Role.analyst)
    pages = (("nominal", "T-HUB"), ("group", "T-G1"), ("group", "T-G2"))
    built = []
    for name in ("one", "two"):
        with open_store(_build(db_at(name), tmp_path / name)) as store:
            for _ in range(2):
                built.append([network.network(store, user, kind, ref) for kind, ref in pages])
    assert built[0] == built[1] == built[2] == built[3]
    positions = [(n["x"], n["y"]) for n in built[0][2]["nodes"]]
    assert len(set(positions)) == len(positions)  # no two nodes on one spot
    assert all(0 <= x <= network.WIDTH and 0 <= y <= network.HEIGHT for x, y in positions)


def test_cap_is_stated_when_it_bites(client: TestClient):
    c = _as(client, "analyst")
    net = c.get("/api/group/T-G2").json()["network"]
    assert net["capped"] and net["node_cap"] == network.NODE_CAP == 40
    assert len(net["nodes"]) == 40 and net["nodes_within_hops"] == BIG + 1
    assert {n["hop"] for n in net["nodes"]} == {0, 1}
    html = c.get("/group/T-G2", headers={"Accept": "text/html"}).text
    assert 'id="network-cap"' in html
    assert f"showing 40 of the {BIG + 1} people and groups within 2 links" in html
    small = c.get("/group/T-G1", headers={"Accept": "text/html"}).text
    assert 'id="network-cap"' not in small and "Capped" not in small
