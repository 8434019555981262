"""Issue 16 on the demo store: the CHB page's evaluation against a control and a buffer and
the disruption impact page, their JSON twins, and who may open them."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from placeharm.analysis.wdd import Counts, wdd

from .conftest import sign_in


@pytest.fixture(scope="module")
def cookies(app_client: TestClient) -> dict[str, dict[str, str]]:
    return {n: sign_in(app_client, n) for n in ("analyst", "partner", "leader", "auditor")}


def _get(client: TestClient, cookie: dict[str, str], url: str) -> Any:
    client.cookies.clear()
    for key, value in cookie.items():
        client.cookies.set(key, value)
    return client.get(url)


def test_chb_evaluation_json_twin_agrees_with_its_counts_and_the_page(app_client, cookies):
    page = _get(app_client, cookies["analyst"], "/api/chb/DEMO-CHB1").json()
    ev = page["evaluation"]
    assert ev["available"] is True and ev["buffer_m"] == 500
    assert ev["control"]["code"] != ev["buffer_control"]["code"]
    rows = page["tables"]["evaluation"]
    phases = {p["phase"] for p in page["phases"]}
    assert {r["period"] for r in rows} == phases
    assert len(rows) == 4 * len(phases)  # crime, ASB, SOC crime, intelligence per phase
    compared = [r for r in rows if r["refused"] is None]
    assert compared, "the demo site has phases with data"
    for r in compared:  # each row's WDD is its own counts' (time-weighted) WDD
        side = {
            s: Counts(r[f"{s}_before"], r[f"{s}_after"])
            for s in ("target", "control", "buffer", "buffer_control")
        }
        expected = wdd(
            side["target"],
            side["control"],
            side["buffer"],
            side["buffer_control"],
            r["before_months"],
            r["after_months"],
        )
        assert r["wdd"] == pytest.approx(expected.wdd, abs=0.01)
        assert r["se"] == pytest.approx(expected.se, abs=0.01)
    for r in rows:  # a refused row has no figures and says why
        if r["refused"] is not None:
            assert r["wdd"] is None and r["result"].startswith("no comparison")
    # the site's police.uk crime after Clear is what the raw before/after counts there
    raw = {p["phase"]: p for p in page["tables"]["phases"]}
    for r in compared:
        if r["measure"] == "crimes" and raw[r["period"]]["police_uk_months"] == r["after_months"]:
            per_month = raw[r["period"]]["crimes_per_month"]
            assert r["target_after"] == round(per_month * r["after_months"])
    html = _get(app_client, cookies["analyst"], "/chb/DEMO-CHB1").text
    assert "Against a control area and a buffer" in html and ev["control"]["name"] in html
    first = compared[0]
    assert f"{first['target_before']} → {first['target_after']}" in html


def test_partner_evaluation_counts_only_shareable_intelligence(app_client, cookies):
    mine = _get(app_client, cookies["partner"], "/api/chb/DEMO-CHB1").json()
    theirs = _get(app_client, cookies["analyst"], "/api/chb/DEMO-CHB1").json()
    assert mine["evaluation"]["available"] is True
    key = lambda rows: {(r["period"], r["measure"]): r for r in rows}  # noqa: E731
    a, p = key(theirs["tables"]["evaluation"]), key(mine["tables"]["evaluation"])
    intel = [k for k in a if k[1] == "intelligence" and a[k]["refused"] is None]
    assert intel
    assert all(p[k]["target_after"] <= a[k]["target_after"] for k in intel)
    assert sum(p[k]["target_after"] for k in intel) < sum(a[k]["target_after"] for k in intel)


def test_disruptions_page_json_twin_and_roles(app_client, cookies):
    body = _get(app_client, cookies["analyst"], "/api/disruptions?months=3").json()
    assert body["kind"] == "disruptions" and body["months"] == 3
    assert body["referrals"] > 0 and body["referral_type"] == "diversion referral"
    by_4p = body["tables"]["by_four_p"]
    events = body["tables"]["events"]
    assert {r["four_p"] for r in by_4p} <= {"Pursue", "Prevent", "Protect", "Prepare"}
    for r in by_4p:  # the summary counts the events' outcomes
        mine = [
            e
            for e in events
            if e["four_p"] == r["four_p"] and e["measure_label"] == r["measure_label"]
        ]
        assert r["events"] == len(mine)
        assert r["clear_falls"] + r["clear_rises"] + r["no_clear_change"] + r["not_compared"] == (
            len(mine)
        )
    referrals = body["tables"]["referrals"]
    assert referrals and all("nominal_id" not in r for r in referrals)  # names no one
    html = _get(app_client, cookies["analyst"], "/disruptions").text
    assert "Diversion referrals" in html and "By 4P" in html
    # senior leaders see disruptions; partners and auditors do not
    assert _get(app_client, cookies["leader"], "/api/disruptions").status_code == 200
    for name in ("partner", "auditor"):
        assert _get(app_client, cookies[name], "/api/disruptions").status_code == 403
        assert _get(app_client, cookies[name], "/disruptions").status_code == 403
    assert _get(app_client, cookies["auditor"], "/api/chb/DEMO-CHB1").status_code == 403
    assert _get(app_client, cookies["analyst"], "/api/disruptions?months=0").status_code in (
        400,
        422,
    )


def test_the_reader_may_choose_the_buffer_and_controls(app_client, cookies):
    offered = _get(app_client, cookies["analyst"], "/api/chb/DEMO-CHB1").json()["evaluation"]
    options = [o["code"] for o in offered["control_options"]]
    other = next(c for c in options if c not in (offered["control"]["code"],))
    url = f"/api/chb/DEMO-CHB1?buffer_m=300&control={other}"
    chosen = _get(app_client, cookies["analyst"], url).json()["evaluation"]
    assert chosen["buffer_m"] == 300 and chosen["control"]["code"] == other
    assert chosen["control"]["chosen_by"] == "given"
    assert chosen["buffer_control"]["chosen_by"] == "offered"
    # a ward that is not one: the page still opens and says why there is no evaluation
    bad = _get(app_client, cookies["analyst"], "/chb/DEMO-CHB1?control=NOPE")
    assert bad.status_code == 200 and "No evaluation: no area" in bad.text
    too_wide = _get(app_client, cookies["analyst"], "/api/chb/DEMO-CHB1?buffer_m=99999")
    assert too_wide.status_code in (400, 422)
