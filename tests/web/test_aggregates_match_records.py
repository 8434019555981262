"""Issue 12 item 6: whatever a role may not see as a record it may not count.

For every page with totals and every role that may open it, the page's figures equal the
number of records that same role can list through /api/records with the same filters (area,
period, kind). The expected numbers come from the records API, never from the aggregate code.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from fastapi.testclient import TestClient

from placeharm.harm import load_index
from placeharm.model import month_range, parse_month
from placeharm.services import auth, policy
from placeharm.services.policy import User
from placeharm.soc.measures import Measure, score_in_store

from .conftest import ROLES, sign_in

ROLE_OF = {name: role for name, (_, role) in auth.DEMO_USERS.items()}  # demo accounts
# per ward-page monthly column: the record kind it counts
MONTHLY_KINDS = {
    "intelligence": "intelligence",
    "incidents": "incidents",
    "disruptions": "disruptions",
}


def _user(name: str) -> User:
    return User(name, name, ROLE_OF[name])


def _roles_for(*actions: str) -> list[str]:
    """The demo roles the policy lets open every one of `actions` (the auditor opens no data
    page: its refusal is checked in test_roles_without_data_pages_are_refused)."""
    return [n for n in ROLES if all(policy.allowed(_user(n), a) for a in actions)]


# the pages with totals, each with the records its figures are checked against
OVERVIEW_ROLES = _roles_for("overview", "records")
WARD_ROLES = _roles_for("ward", "records")
CHB_ROLES = _roles_for("chb", "records")


@pytest.fixture(scope="module")
def cookies(app_client: TestClient) -> dict[str, dict[str, str]]:
    return {name: sign_in(app_client, name) for name in ROLES}


class As:
    """The API as one signed-in user."""

    def __init__(self, client: TestClient, cookie: dict[str, str]) -> None:
        self.client, self.cookie = client, cookie

    def get(self, url: str) -> Any:
        self.client.cookies.clear()
        for key, value in self.cookie.items():
            self.client.cookies.set(key, value)
        response = self.client.get(url)
        assert response.status_code == 200, (url, response.text)
        return response

    def json(self, url: str) -> Any:
        return self.get(url).json()

    def total(self, kind: str, **params: str) -> int:
        """How many records of `kind` this user can list with these filters."""
        query = "&".join(f"{k}={v}" for k, v in params.items())
        return int(self.json(f"/api/records?kind={kind}&page_size=1&{query}")["total"])

    def rows(self, kind: str, **params: str) -> list[dict[str, Any]]:
        """Every record of `kind` this user can list with these filters."""
        query = "&".join(f"{k}={v}" for k, v in params.items())
        out: list[dict[str, Any]] = []
        page = 1
        while True:
            body = self.json(f"/api/records?kind={kind}&page_size=1000&page={page}&{query}")
            out += body["tables"]["records"]
            if page >= body["pages"]:
                assert len(out) == body["total"]
                return out
            page += 1


@pytest.fixture(scope="module")
def setting(app_client: TestClient, cookies) -> dict[str, Any]:
    """The period every page shows by default, and wards to check: the three with most
    firearms intelligence, one with intelligence coded C (not shareable), and the ward
    around the first CHB site."""
    analyst = As(app_client, cookies["analyst"])
    overview = analyst.json("/api/overview")
    period = overview["period"]
    areas = sorted(
        overview["tables"]["areas"], key=lambda r: (-r["firearms_intelligence"], r["area_code"])
    )
    wards = [r["area_code"] for r in areas[:3]]
    restricted = None
    for row in areas:
        codes = [
            r["handling_code"]
            for r in analyst.rows("intelligence", area=row["area_code"], **period)
        ]
        if "C" in codes and "P" in codes:
            restricted = row["area_code"]
            break
    assert restricted is not None, "the demo has intelligence coded C"
    chb = analyst.json("/api/chb/DEMO-CHB1")["site_name"]
    chb_ward = chb.split("(")[-1].rstrip(")")
    wards = list(dict.fromkeys([restricted, *wards, chb_ward]))
    return {"period": period, "wards": wards, "restricted": restricted}


@pytest.mark.parametrize("name", OVERVIEW_ROLES)
def test_overview_measures_equal_the_records_the_role_can_list(
    app_client: TestClient, cookies, setting, name: str
):
    me = As(app_client, cookies[name])
    period = setting["period"]
    rows = {r["area_code"]: r for r in me.json("/api/overview")["tables"]["areas"]}
    for ward in setting["wards"]:
        row = rows[ward]
        assert row["firearms_intelligence"] == me.total(
            "intelligence", area=ward, q="firearms", **period
        ), (name, ward)
        assert row["drug_related_deaths"] == me.total(
            "partner_events", area=ward, q="drug_related_death", **period
        ), (name, ward)
    # the downloads render the same figures
    table = list(csv.DictReader(io.StringIO(me.get("/api/overview.csv").text.split("\n", 1)[1])))
    assert {r["area_code"]: int(r["firearms_intelligence"]) for r in table} == {
        code: r["firearms_intelligence"] for code, r in rows.items()
    }
    features = me.json("/api/overview.geojson")["features"]
    for feature in features:
        props = feature["properties"]
        if props["area_code"] in setting["wards"]:
            assert props["drug_related_deaths"] == rows[props["area_code"]]["drug_related_deaths"]


@pytest.mark.parametrize("name", WARD_ROLES)
def test_ward_page_totals_equal_the_records_the_role_can_list(
    app_client: TestClient, cookies, setting, name: str
):
    me = As(app_client, cookies[name])
    kinds = policy.record_kinds(_user(name))
    period = setting["period"]
    for ward in setting["wards"]:
        page = me.json(f"/api/ward/{ward}")
        monthly = page["tables"]["monthly"]
        for column, kind in MONTHLY_KINDS.items():
            if kind not in kinds:
                continue  # aggregates only (partners: force records); nothing to list
            assert sum(r[column] for r in monthly) == me.total(kind, area=ward, **period), (
                name,
                ward,
                column,
            )
        measures = {r["measure"]: r["count"] for r in page["tables"]["measures"]}
        assert measures["Firearms intelligence reports"] == me.total(
            "intelligence", area=ward, q="firearms", **period
        )
        assert measures["Drug-related deaths"] == me.total(
            "partner_events", area=ward, q="drug_related_death", **period
        )
        listed = {r["intel_id"] for r in me.rows("intelligence", area=ward, **period)}
        points = {p["intel_id"] for p in page["points"]["intelligence"]}
        assert points == listed, (name, ward)
        latest = [r["intel_id"] for r in page["tables"]["latest_intelligence"]]
        assert set(latest) <= listed and len(latest) == min(10, len(listed))
        if "nominals" in kinds:
            nominals = {r["nominal_id"] for r in me.rows("nominals")}
            assert {r["nominal_id"] for r in page["tables"]["nominals"]} <= nominals
        # the CSV and GeoJSON downloads carry the same figures and points
        table = me.get(f"/api/ward/{ward}.csv").text.split("\n", 1)[1]
        assert sum(int(r["intelligence"]) for r in csv.DictReader(io.StringIO(table))) == sum(
            r["intelligence"] for r in monthly
        )
        layers = me.json(f"/api/ward/{ward}.geojson")["features"]
        assert {
            f["properties"]["intel_id"]
            for f in layers
            if f["properties"]["layer"] == "intelligence"
        } == points


def test_ward_months_one_by_one(app_client: TestClient, cookies, setting):
    """Each month of the ward with C-coded intelligence, for every role, against the records
    of that month alone."""
    ward = setting["restricted"]
    for name in WARD_ROLES:
        me = As(app_client, cookies[name])
        for row in me.json(f"/api/ward/{ward}")["tables"]["monthly"]:
            month = row["month"]
            assert row["intelligence"] == me.total(
                "intelligence", area=ward, **{"from": month, "to": month}
            ), (name, month)


def test_partner_counts_only_shareable_intelligence(app_client: TestClient, cookies, setting):
    """The finding: a partner's ward intelligence total was the analyst's (P and C); it is
    the partner's listed P records, and differs from the analyst's where C records exist."""
    ward, period = setting["restricted"], setting["period"]
    partner = As(app_client, cookies["partner"])
    analyst = As(app_client, cookies["analyst"])
    every = analyst.rows("intelligence", area=ward, **period)
    shareable = [r for r in every if r["handling_code"] == "P"]
    assert 0 < len(shareable) < len(every)
    listed = partner.rows("intelligence", area=ward, **period)
    assert {r["handling_code"] for r in listed} == {"P"}
    assert {r["intel_id"] for r in listed} == {r["intel_id"] for r in shareable}
    for who, expected in ((partner, len(shareable)), (analyst, len(every))):
        monthly = who.json(f"/api/ward/{ward}")["tables"]["monthly"]
        assert sum(r["intelligence"] for r in monthly) == expected
    firearms = [r for r in shareable if "firearms" in (r["topics"] or "").split(";")]
    area = {r["area_code"]: r for r in partner.json("/api/overview")["tables"]["areas"]}
    assert area[ward]["firearms_intelligence"] == len(firearms)
    # coroner's reports (handling code C) count for the analyst, never for the partner
    deaths = analyst.rows("partner_events", q="drug_related_death", **period)
    assert deaths and {r["handling_code"] for r in deaths} == {"C"}
    assert partner.total("partner_events", q="drug_related_death", **period) == 0
    assert all(r["drug_related_deaths"] == 0 for r in area.values())
    # the partner's score is its own: it differs from the analyst's where C records count
    analysts = {r["area_code"]: r for r in analyst.json("/api/overview")["tables"]["areas"]}
    assert analysts[ward]["firearms_intelligence"] >= area[ward]["firearms_intelligence"]
    assert sum(r["soc_harm"] for r in area.values()) < sum(r["soc_harm"] for r in analysts.values())


@pytest.mark.parametrize("name", CHB_ROLES)
def test_chb_before_after_equals_the_records(app_client: TestClient, cookies, name: str):
    """Each phase's monthly means times its months are the records listed in the site for
    that period. Partners cannot filter records by CHB site (wards only), so theirs are
    the shareable (P) ones among the records an analyst lists there."""
    me = As(app_client, cookies[name])
    analyst = As(app_client, cookies["analyst"])
    kinds = policy.record_kinds(_user(name))
    page = me.json("/api/chb/DEMO-CHB1")
    for phase in page["tables"]["phases"]:
        span = {"from": phase["from"], "to": phase["to"]}
        months = len(month_range(parse_month(span["from"]), parse_month(span["to"])))
        assert months == phase["months"]
        for column, kind in MONTHLY_KINDS.items():
            # a month the source holds nothing for, force-wide, is a gap left out of the
            # mean (issue 15): the mean times the months with data is what is listed
            per_month, held = phase[f"{column}_per_month"], phase[f"{column}_months"]
            shown = 0 if per_month is None else round(per_month * held)
            assert (per_month is None) == (held == 0), (name, phase["phase"], column)
            if name == "partner" and kind == "intelligence":
                rows = analyst.rows(kind, by="chb", area="DEMO-CHB1", **span)
                expected = sum(r["handling_code"] == "P" for r in rows)
            elif kind in kinds:
                expected = me.total(kind, by="chb", area="DEMO-CHB1", **span)
            else:
                continue
            assert shown == expected, (name, phase["phase"], column)


@pytest.mark.parametrize(
    "name", [n for n in ROLES if n not in set(OVERVIEW_ROLES) & set(WARD_ROLES) & set(CHB_ROLES)]
)
def test_roles_without_data_pages_are_refused(app_client: TestClient, cookies, setting, name: str):
    """A role the policy keeps from a page with totals (the auditor) gets none of its
    figures, in any format: a 403 carrying nothing but the refusal."""
    ward = setting["wards"][0]
    urls = {
        "overview": ["/api/overview", "/api/overview.csv", "/api/overview.geojson"],
        "ward": [f"/api/ward/{ward}", f"/api/ward/{ward}.csv", f"/api/ward/{ward}.geojson"],
        "chb": ["/api/chb/DEMO-CHB1"],
        "records": ["/api/records?kind=intelligence"],
    }
    refused = 0
    for action, paths in urls.items():
        if policy.allowed(_user(name), action):
            continue
        for url in paths:
            app_client.cookies.clear()
            response = app_client.get(url, cookies=cookies[name])
            assert response.status_code == 403, (name, url)
            assert set(response.json()) == {"error", "status"}, (name, url)
            refused += 1
    assert refused, name


@pytest.mark.parametrize("name", [n for n in ROLES if policy.allowed(_user(n), "group")])
def test_group_page_counts_what_the_role_can_list(app_client: TestClient, cookies, name: str):
    me = As(app_client, cookies[name])
    kinds = policy.record_kinds(_user(name))
    groups = me.rows("groups")
    disruptions = me.rows("disruptions") if "disruptions" in kinds else []
    for group in [g["group_id"] for g in groups][:4]:
        page = me.json(f"/api/group/{group}")
        targeted = {d["disruption_id"] for d in disruptions if d["target_group_id"] == group}
        assert {d["disruption_id"] for d in page["tables"]["disruptions"]} == targeted
        if "nominals" in kinds:
            listable = {r["nominal_id"] for r in me.rows("nominals")}
            members = {m["nominal_id"] for m in page["tables"]["members"]}
            assert page["member_count"] == len(members) and members <= listable
        if page["network"]:
            people = {n["ref"] for n in page["network"]["nodes"] if n["kind"] == "nominal"}
            assert people <= {r["nominal_id"] for r in me.rows("nominals")}


def test_uncleared_roles_never_count_exploitation_only_nominals(app_client: TestClient):
    """A measure on residents counts no nominal known only for child exploitation, and no
    restricted flag, for an uncleared role (policy.scope); a cleared role counts both."""
    store = app_client.app.state.placeharm.store  # type: ignore[attr-defined]
    index = load_index("css")
    measures = (
        Measure("residents", "every resident nominal", "nominals", {}, 1.0),
        Measure("cce", "CCE victims", "nominals", {"flags_any": ["cce_victim"]}, 1.0),
        # exploiters are group members an officer may see, but not their restricted flag
        Measure(
            "exploiters",
            "CCE/CSE perpetrators",
            "nominals",
            {"flags_any": ["cce_perpetrator", "cse_perpetrator"]},
            1.0,
        ),
        Measure(
            "pis", "priority individuals", "nominals", {"flags_any": ["priority_individual"]}, 1.0
        ),
    )
    first, last = parse_month("2021-11"), parse_month("2022-03")
    periods = {"now": (first, last.replace(day=31))}
    hidden = set(store.restricted_only_nominals())
    assert hidden
    totals = {}
    for name in ("analyst", "officer", "leader", "partner"):
        scope = policy.scope(store, _user(name))
        scored = score_in_store(store, "ward", measures, index, periods, scope)
        totals[name] = {m.id: int(scored[m.id].fill_null(0).sum()) for m in measures}
    assert totals["analyst"]["cce"] > 0 and totals["analyst"]["exploiters"] > 0
    for name in ("officer", "leader", "partner"):
        assert totals[name]["cce"] == 0, name
        assert totals[name]["exploiters"] == 0, name
        assert totals[name]["pis"] == totals["analyst"]["pis"], name  # nothing else changes
        # every hidden nominal has a home in a ward of the demo: each is one fewer resident
        assert totals[name]["residents"] == totals["analyst"]["residents"] - len(hidden), name


@pytest.mark.parametrize("name", ["partner", "officer", "analyst"])
def test_store_scoring_equals_the_reference_scoring_in_scope(app_client: TestClient, name: str):
    """The SQL scoring under a role's scope agrees with the plain polars scoring of the
    same scoped rows (the two paths apply the scope independently)."""
    from placeharm.soc.measures import load_frames, load_measures, score

    store = app_client.app.state.placeharm.store  # type: ignore[attr-defined]
    index, measures = load_index("css"), load_measures().measures
    scope = policy.scope(store, _user(name))
    first, last = parse_month("2021-11"), parse_month("2022-03")
    periods = {"now": (parse_month("2022-02"), last.replace(day=31))}
    periods["previous"] = (first, parse_month("2021-12").replace(day=31))
    keys = ["area_code", "period"]
    frames = load_frames(store, "ward", first, last.replace(day=31), index, scope)
    reference = score(frames, measures, index, periods).sort(keys).fill_null(0)
    fast = score_in_store(store, "ward", measures, index, periods, scope).sort(keys).fill_null(0)
    assert fast.columns == reference.columns
    for col in reference.columns[2:]:
        assert reference[col].to_list() == pytest.approx(fast[col].to_list()), col
