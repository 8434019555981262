"""The demo builds from the bundled slice alone, with the 2022-01 gap reported as a gap."""

from __future__ import annotations

import datetime as dt

from placeharm.services import demo, queries
from placeharm.store.duckdb import DuckDBStore


def test_demo_builds_and_counts_with_gap(store: DuckDBStore) -> None:
    result = demo.build_demo(store)
    assert all(r.status == "ok" and r.balanced for r in result.results)
    # 4 street months of the real slice: 14,819 + 13,281 + 14,196 + 15,871 rows.
    street = [r for r in result.results if r.source_kind == "street"]
    assert sum(r.rows_read for r in street) == 14_819 + 13_281 + 14_196 + 15_871
    counted = queries.counts(
        store, "ward", dt.date(2021, 11, 1), dt.date(2022, 3, 1), by_month=True
    )
    assert counted.gap_months == ["2022-01"]
    assert counted.table["2022-01"].null_count() == counted.table.height
    assert counted.table["records"].sum() == sum(r.rows_read for r in street)
    again = demo.build_demo(store)
    assert all(r.inserted == 0 and r.updated == 0 for r in again.results)


def test_demo_ranks_wards_by_harm_with_populations(store: DuckDBStore) -> None:
    from placeharm.services import harm

    demo.build_demo(store)
    ranked = harm.rank(store, "ward", dt.date(2021, 11, 1), dt.date(2022, 3, 1))
    assert ranked.meta["population_year"] == 2020
    assert ranked.meta["gap_months"] == ["2022-01"]
    wards = ranked.table.drop_nulls("area_code")
    assert wards.height == 177 and wards["population"].null_count() == 1
    assert wards["rank"].to_list()[0] == 1
