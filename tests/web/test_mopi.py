"""Issue 12 item 9: nominals and intelligence past their MoPI review date are flagged to
the roles that review them (analysts, supervisors, admins), with "today" from the app's clock."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from fastapi.testclient import TestClient

from placeharm.soc.importer import import_entity

from .conftest import ROLES, sign_in

TODAY = dt.date(2023, 3, 31)  # a year after the demo data ends
REVIEWERS = {"analyst", "supervisor", "admin"}


@pytest.fixture
def client(app_client: TestClient) -> Iterator[TestClient]:
    """The shared app with its clock set to TODAY (restored afterwards)."""
    state = app_client.app.state.placeharm  # type: ignore[attr-defined]
    before = state.today
    state.today = lambda: TODAY
    try:
        yield app_client
    finally:
        state.today = before


def _get(client: TestClient, who: str, url: str, html: bool = False):
    client.cookies.clear()
    client.cookies.set("placeharm_session", sign_in(client, who)["placeharm_session"])
    return client.get(url, headers={"Accept": "text/html"} if html else {})


def _listed(client: TestClient, who: str, kind: str) -> list[dict]:
    rows: list[dict] = []
    page = 1
    while True:
        body = _get(client, who, f"/api/records?kind={kind}&page_size=1000&page={page}").json()
        rows += body["tables"]["records"]
        if page >= body["pages"]:
            return rows
        page += 1


def test_overdue_list_is_the_records_past_review_on_the_clocks_date(client: TestClient):
    body = _get(client, "analyst", "/api/mopi").json()
    assert body["today"] == TODAY.isoformat()
    expected = []
    for kind, key in (("nominals", "nominal_id"), ("intelligence", "intel_id")):
        for row in _listed(client, "analyst", kind):
            review = row["mopi_review_date"]
            if review is not None and dt.date.fromisoformat(review) < TODAY:
                days = (TODAY - dt.date.fromisoformat(review)).days
                expected.append((kind, row[key], review, days))
    got = [
        (r["kind"], r["record_id"], r["review_date"], r["days_overdue"])
        for r in body["tables"]["overdue"]
    ]
    assert sorted(got) == sorted(expected)
    assert body["counts"]["nominals"] > 0 and body["counts"]["intelligence"] > 0
    assert body["total"] == len(expected) == sum(body["counts"].values())
    days = [r[3] for r in got]
    assert days == sorted(days, reverse=True) and min(days) >= 1
    # identifiers and dates only: nothing of what the records say
    assert set(body["tables"]["overdue"][0]) == {"kind", "record_id", "review_date", "days_overdue"}
    assert "DEMO DATA: invented report" not in _get(client, "analyst", "/api/mopi").text
    # the CSV has the same records
    text = _get(client, "analyst", "/api/mopi.csv").text.split("\n", 1)[1]
    assert len(list(csv.DictReader(io.StringIO(text)))) == len(expected)


def test_the_clock_decides_what_is_overdue(client: TestClient):
    state = client.app.state.placeharm  # type: ignore[attr-defined]
    state.today = lambda: dt.date(2021, 1, 1)  # before every review date
    assert _get(client, "admin", "/api/mopi").json()["total"] == 0
    state.today = lambda: dt.date(2040, 1, 1)  # after every one
    later = _get(client, "admin", "/api/mopi").json()
    dated = [
        r
        for kind in ("nominals", "intelligence")
        for r in _listed(client, "admin", kind)
        if r["mopi_review_date"]
    ]
    assert later["total"] == len(dated)


@pytest.mark.parametrize("name", ROLES)
def test_only_reviewers_see_the_list(client: TestClient, name: str):
    allowed = name in REVIEWERS
    for url in ("/api/mopi", "/api/mopi.csv"):
        assert _get(client, name, url).status_code == (200 if allowed else 403), url
    page = _get(client, name, "/mopi", html=True)
    assert page.status_code == (200 if allowed else 403)
    overview = _get(client, name, "/overview", html=True).text
    assert ('href="/mopi"' in overview) == allowed
    if allowed:
        assert "past their MoPI review date" in page.text


def test_admin_page_lists_past_review(client: TestClient):
    body = _get(client, "admin", "/api/admin").json()
    full = _get(client, "admin", "/api/mopi").json()
    assert body["mopi"]["counts"] == full["counts"]
    assert body["tables"]["mopi"] == full["tables"]["overdue"][:200]
    html = _get(client, "admin", "/admin", html=True).text
    assert "Past MoPI review" in html and full["tables"]["overdue"][0]["record_id"] in html


def test_nominal_page_flags_an_overdue_nominal(client: TestClient):
    overdue = [
        r
        for r in _get(client, "analyst", "/api/mopi").json()["tables"]["overdue"]
        if r["kind"] == "nominals"
    ]
    late = overdue[0]
    page = _get(client, "analyst", f"/api/nominal/{late['record_id']}").json()
    assert page["mopi"] == {
        "review_date": late["review_date"],
        "overdue": True,
        "days_overdue": late["days_overdue"],
    }
    html = _get(client, "analyst", f"/nominal/{late['record_id']}", html=True).text
    assert 'id="mopi-flag"' in html and f"{late['days_overdue']:,} days overdue" in html
    # an officer opening the same nominal sees the same flag (its review date is on the page)
    officer = _get(client, "officer", f"/api/nominal/{late['record_id']}").json()
    assert officer["mopi"]["overdue"] is True
    ids = {r["record_id"] for r in overdue}
    current = next(
        r["nominal_id"]
        for r in _listed(client, "analyst", "nominals")
        if r["nominal_id"] not in ids and r["mopi_review_date"]
    )
    page = _get(client, "analyst", f"/api/nominal/{current}").json()
    assert page["mopi"]["overdue"] is False
    assert 'id="mopi-flag"' not in _get(client, "analyst", f"/nominal/{current}", html=True).text


def test_demo_intelligence_has_review_dates_some_before_the_data_ends(client: TestClient):
    rows = _listed(client, "analyst", "intelligence")
    dates = [(r["reported_date"], r["mopi_review_date"]) for r in rows]
    assert all(review and review > reported for reported, review in dates)
    assert 0 < sum(review <= "2022-03-31" for _, review in dates) < len(dates) // 10


def test_an_older_store_gains_the_column_and_imports_take_it(
    tmp_path: Path, store_at: Callable[[str], Any]
):
    with store_at("old") as store:
        store._run("ALTER TABLE soc_intelligence DROP COLUMN mopi_review_date")
        store._run("DELETE FROM schema_migrations WHERE version = 9")
    with store_at("old") as store:  # opening migrates
        assert 9 in store._frame("SELECT version FROM schema_migrations")["version"].to_list()
        header = "intel_id,reported_date,source_evaluation,intelligence_assessment,handling_code"
        without = tmp_path / "intel-a.csv"
        without.write_text(f"{header}\nI1,2022-01-05,2,B,P\n")
        with_dates = tmp_path / "intel-b.csv"
        with_dates.write_text(
            f"{header},mopi_review_date\nI2,2022-01-05,2,B,C,2023-01-05\nI3,2022-01-06,2,B,P,soon\n"
        )
        import_entity(store, "intelligence", without)
        result = import_entity(store, "intelligence", with_dates)
        assert result.quarantined == 1  # "soon" is not a date
        frame = store.soc_frame("soc_intelligence").sort("intel_id")
        assert frame.select("intel_id", "mopi_review_date").rows() == [
            ("I1", None),
            ("I2", dt.date(2023, 1, 5)),
        ]
        overdue = store.mopi_overdue(dt.date(2023, 2, 1), ("intelligence",))
        assert overdue.rows() == [("intelligence", "I2", dt.date(2023, 1, 5), 27)]
        assert store.mopi_overdue(dt.date(2023, 1, 5), ("intelligence",)).is_empty()
    assert isinstance(overdue, pl.DataFrame)
