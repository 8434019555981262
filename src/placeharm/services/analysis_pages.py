"""The pages of issue 16's analysis: /prominence, /alerts and the overview's alerts panel.
Each asks the policy first and builds from the reader's scope, as every page does."""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl

from placeharm.analysis.prominence import Params
from placeharm.services import alerts as alert_service
from placeharm.services import policy
from placeharm.services import prominence as prominence_service
from placeharm.services.pages import Page, data_as_of
from placeharm.services.policy import User
from placeharm.store.base import Store

PANEL_ROWS = 8  # alerts the overview panel lists (the rest on /alerts)
SHOWN = 25  # nominals the prominence page lists when none is rising


def _user(user: User) -> dict[str, str]:
    return {"username": user.username, "role": user.role.value}


def prominence(store: Store, user: User, params: Params, month: dt.date | None = None) -> Page:
    """The nominals rising to prominence (roles as for nominals)."""
    policy.require(user, "nominal")
    scope = policy.scope(store, user)
    result = prominence_service.prominence(store, params, scope=scope, last_month=month)
    table = result.table
    rows: list[dict[str, Any]] = []
    if not table.is_empty():
        rising = table.filter(pl.col("rising"))
        chosen = rising if rising.height else table.filter(pl.col("p").is_not_null()).head(10)
        for r in chosen.to_dicts():
            months, events, why = result.spark.get(r["nominal_id"], ([], [], []))
            rows.append(
                {
                    **{k: v for k, v in r.items() if k != "last_crime"},
                    "last_crime": str(r["last_crime"]) if r["last_crime"] else None,
                    "months": months,
                    "events_by_month": events,
                    "why": [{**w, "day": str(w["day"])} for w in why],
                }
            )
    top = (
        table.sort(["score", "nominal_id"], descending=[True, False])
        .head(SHOWN)
        .select(
            "nominal_id",
            "forename",
            "surname",
            "score",
            "recency_points",
            "frequency_points",
            "gravity_points",
            "intelligence_points",
            "recency_days",
            "frequency",
            "gravity_days",
            "intelligence",
        )
        if not table.is_empty()
        else pl.DataFrame()
    )
    data = {
        **data_as_of(store),
        "user": _user(user),
        "record_kinds": policy.record_kinds(user),
        "analysis": result.meta,
        "nominals": rows,
        "any_rising": any(r["rising"] for r in rows),
    }
    return Page("prominence", "Nominals rising to prominence", data, {"highest_scores": top})


def alerts(
    store: Store,
    user: User,
    by: str = "ward",
    month: dt.date | None = None,
    baseline: int = 12,
    fdr: float = 0.1,
) -> Page:
    """Emerging-risk alerts for the areas of `by`, from the rows the reader may count."""
    policy.require(user, "overview")
    policy.partner_area_set(user, by)
    scope = policy.scope(store, user)
    result = alert_service.cached_alerts(store, by, month, baseline, fdr, scope=scope)
    table = result.table
    raised = table.filter(pl.col("alert")) if not table.is_empty() else table
    data = {
        **data_as_of(store),
        "user": _user(user),
        "record_kinds": policy.record_kinds(user),
        "analysis": result.meta,
        "filters": {"by": by, "baseline": baseline, "fdr": fdr},
    }
    return Page("alerts", "Emerging-risk alerts", data, {"alerts": raised})


def alerts_panel(store: Store, user: User) -> dict[str, Any]:
    """The overview's panel: the strongest alerts by ward in words, and how many in all."""
    scope = policy.scope(store, user)
    result = alert_service.cached_alerts(store, "ward", scope=scope)
    table = result.table
    raised = table.filter(pl.col("alert")) if not table.is_empty() else table
    return {
        "month": result.meta.get("month"),
        "tested": result.meta.get("tested", 0),
        "count": raised.height,
        "fdr": result.meta.get("fdr"),
        "reasons": raised.head(PANEL_ROWS)["reason"].to_list() if raised.height else [],
        "areas": raised.head(PANEL_ROWS)["area_code"].to_list() if raised.height else [],
        "note": result.meta.get("note"),
        "beside": alert_service.RISK_BESIDE,
    }
