"""SOC outcome rates from what is read once per generation (issue 14) equal a recount.

On the demo store (real slice, synthetic overlay): the SOC force crimes a role may count,
read once per generation and scope (`outcomes._soc_crimes`), filtered to a period and area,
are the rows the store returns for that period and area and scope; the outcomes of every
SOC Crime ID read once (`outcomes.soc_outcomes`) are what the store reads for the period's
IDs alone.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

import placeharm
from placeharm.model import month_end
from placeharm.services import outcomes, policy
from placeharm.services.policy import Role, User

WINDOWS = [
    (dt.date(2021, 11, 1), dt.date(2022, 3, 1)),
    (dt.date(2022, 1, 1), dt.date(2022, 1, 1)),
    (dt.date(2020, 1, 1), dt.date(2030, 12, 1)),
]
COLUMNS = ["crime_ref", "recorded_date", "policeuk_crime_id"]


def _recount(store, by, first, last, area, scope) -> pl.DataFrame:
    """The period's SOC crimes as the rates read them per request before issue 14."""
    crimes = store.soc_frame(
        "soc_force_crimes",
        by,
        ("recorded_date", first, month_end(last)),
        columns=[*COLUMNS, "firearms_discharged", "cannabis_production"],
        area_code=area,
        scope=scope,
    )
    members = store.soc_frame("soc_memberships", columns=["nominal_id"], scope=scope)
    linked = (
        store.soc_frame("soc_nominal_crimes", columns=["nominal_id", "crime_ref"], scope=scope)
        .join(members, on="nominal_id", how="semi")["crime_ref"]
        .unique()
    )
    return crimes.filter(
        pl.col("crime_ref").is_in(linked.implode())
        | pl.col("firearms_discharged").fill_null(False)
        | pl.col("cannabis_production").fill_null(False)
    ).select(COLUMNS)


def test_soc_outcome_aggregates_equal_a_recount(web_db: str) -> None:
    # reads only: the shared demo store (its SOC records are the demo's as built)
    with placeharm.open_store(web_db) as store:
        areas = store.soc_frame("soc_force_crimes", "ward")["area_code"].drop_nulls()
        busiest = areas.value_counts(sort=True)["area_code"].head(2).to_list()
        checked = 0
        for role in (Role.analyst, Role.partner):
            scope = policy.scope(store, User("t", "T", role))
            _crimes, soc = outcomes._soc_crimes(store, "ward", scope)
            for first, last in WINDOWS:
                for area in [None, *busiest]:
                    keep = pl.col("recorded_date").is_between(first, month_end(last))
                    if area is not None:
                        keep = keep & (pl.col("area_code") == area)
                    got = soc.filter(keep).select(COLUMNS).sort("crime_ref")
                    want = _recount(store, "ward", first, last, area, scope).sort("crime_ref")
                    assert got.to_dicts() == want.to_dicts(), (role, first, last, area)
                    ids = sorted({i for i in want["policeuk_crime_id"].to_list() if i})
                    found = outcomes.soc_outcomes(store).filter(pl.col("crime_id").is_in(ids))
                    key = "crime_id"
                    assert (
                        found.sort(key).to_dicts()
                        == store.outcomes_of_crime_ids(ids).sort(key).to_dicts()
                    )
                    checked += len(ids)
        assert checked > 0  # the demo's SOC crimes carry police.uk Crime IDs
