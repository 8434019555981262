"""The nominal page's intelligence over time, checked against the raw intelligence rows."""

from __future__ import annotations

import datetime as dt
from collections import Counter

from fastapi.testclient import TestClient

from .conftest import sign_in


def _reliable(row: dict) -> bool:
    if (row.get("grading_scheme") or "3x5x2") == "5x5x5":
        return row["source_evaluation"] in ("A", "B") and row["intelligence_assessment"] in (
            "1",
            "2",
        )
    return row["source_evaluation"] == "1" and row["intelligence_assessment"] in ("A", "B")


def test_intelligence_by_month_counts_every_log_naming_the_person(app_client: TestClient):
    with app_client.app.state.placeharm.read() as store:  # type: ignore[attr-defined]
        rows = store.soc_frame("soc_intelligence").to_dicts()
    named = Counter(s for r in rows for s in (r.get("subjects") or "").split(";") if s)
    nominal_id, count = named.most_common(1)[0]
    mine = [r for r in rows if nominal_id in (r.get("subjects") or "").split(";")]
    assert len(mine) == count >= 2

    app_client.cookies.clear()
    app_client.cookies.set("placeharm_session", sign_in(app_client, "analyst")["placeharm_session"])
    page = app_client.get(f"/api/nominal/{nominal_id}").json()
    by_month = page["tables"]["intelligence_by_month"]
    assert len(page["tables"]["intelligence"]) == count
    assert sum(m["logs"] for m in by_month) == count

    # every month from the first log to the last, zeros included, in order
    first = min(r["reported_date"] for r in mine).replace(day=1)
    last = max(r["reported_date"] for r in mine)
    expected, month = [], first
    while month <= last:
        expected.append(f"{month:%Y-%m}")
        month = (month + dt.timedelta(days=32)).replace(day=1)
    assert [m["month"] for m in by_month] == expected

    # per month, by hand from the stored rows
    want_logs = Counter(f"{r['reported_date']:%Y-%m}" for r in mine)
    want_reliable = Counter(f"{r['reported_date']:%Y-%m}" for r in mine if _reliable(r))
    assert sum(want_reliable.values()) > 0
    for m in by_month:
        assert m["logs"] == want_logs.get(m["month"], 0)
        assert m["reliable_and_known"] == want_reliable.get(m["month"], 0)

    html = app_client.get(f"/nominal/{nominal_id}").text
    assert "by month reported" in html
