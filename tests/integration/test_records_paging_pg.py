"""The records explorer on PostgreSQL pages crimes by month from the harm cube's counts, one
month at a time through the (month, rowid) index of PostgreSQL migration 15 (issue 17: a
12-month window took about 12 s of SQL at 10M records, a count(*) and a sort of every row of
the window). Every page must be the rows a plain query gives, in the same order: first and
last page, past the end, a page across a month boundary, either order, with the area, type
and period filters; on real police.uk data (as test_records_paging.py on DuckDB)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from placeharm.model import month_end
from placeharm.services import pages
from placeharm.services.areas import import_areas
from placeharm.services.ingest import ingest
from placeharm.services.policy import Role, User

MONTHS = ("2021-04", "2021-05", "2021-06")
ANALYST = User("analyst", "Analyst", Role.analyst)
COLUMNS = pages._RECORDS["crimes"][2]


@pytest.fixture(scope="module")
def pg_store(pg_url: str, northumbria: Path, boundaries: Path) -> Iterator[Any]:
    from pg_server import drop_schema, new_schema
    from placeharm.store.postgres import PostgresStore

    schema, url = new_schema(pg_url)
    try:
        with PostgresStore(url) as store:
            import_areas(store, boundaries / "northumbria_ward2013.geojson", "ward")
            files = [northumbria / f"{m}-northumbria-street.csv.gz" for m in MONTHS]
            assert all(r.status == "ok" for r in ingest(store, files))
            yield store
    finally:
        drop_schema(pg_url, schema)


def _direct(
    store: Any,
    descending: bool,
    limit: int,
    offset: int,
    area: str | None = None,
    types: tuple[str, ...] = (),
    first: dt.date | None = None,
    last: dt.date | None = None,
) -> tuple[pl.DataFrame, int]:
    """The page as one plain query over the crimes: count, sort, OFFSET."""
    where, params = ["TRUE"], []
    if area is not None:
        where.append("area_ward = ?")
        params.append(area)
    if types:
        where.append("crime_type = ANY(?::VARCHAR[])")
        params.append(list(types))
    if first is not None and last is not None:
        where.append("month BETWEEN ? AND ?")
        params += [first, month_end(last)]
    clause = " AND ".join(where)
    total = store._one(f"SELECT count(*) FROM crimes WHERE {clause}", params)
    assert total is not None
    frame = store._frame(
        f"SELECT {', '.join(COLUMNS)} FROM crimes WHERE {clause} "
        f"ORDER BY month {'DESC' if descending else 'ASC'}, rowid LIMIT ? OFFSET ?",
        [*params, limit, offset],
    )
    return frame, int(total[0])


def _page(store: Any, page: int, size: int, descending: bool = True, **case: Any) -> pages.Page:
    types = list(case.get("types", ()))
    filters = pages.Filters.parse("ward", case.get("first"), case.get("last"), None, [], types)
    with pages.reading(store):  # as the web app builds it: memo and all
        return pages.records(
            store,
            ANALYST,
            "crimes",
            filters,
            None,
            "month",
            descending,
            page,
            case.get("area"),
            size,
        )


def _check(built: pages.Page, expected: tuple[pl.DataFrame, int]) -> None:
    frame, total = expected
    assert built.data["total"] == total
    assert built.tables["records"].equals(frame), "the page is not the direct query's rows"


def test_postgresql_pages_by_month_equal_the_plain_query(
    pg_store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = pg_store
    counted: list[int] = []  # pages read by month from the cube's counts, not by a count(*)
    by_counts = type(store)._page_of_counts

    def spied(self: Any, *args: Any, **kwargs: Any) -> Any:
        counted.append(1)
        return by_counts(self, *args, **kwargs)

    monkeypatch.setattr(type(store), "_page_of_counts", spied)
    sizes = {m: int(n) for m, n in store._run("SELECT month, count(*) FROM crimes GROUP BY 1")}
    total = sum(sizes.values())
    last_page = -(-total // 50)
    for page in (1, 2, last_page, last_page + 1):
        for descending in (True, False):
            built = _page(store, page, 50, descending)
            _check(built, _direct(store, descending, 50, (page - 1) * 50))
    assert _page(store, last_page + 1, 50).tables["records"].height == 0
    # the page that starts at the end of one month and ends in the next, both orders
    for descending, month in ((True, max(sizes)), (False, min(sizes))):
        assert sizes[month] % 1000, "the boundary falls between two pages"
        page = sizes[month] // 1000 + 1
        built = _page(store, page, 1000, descending)
        _check(built, _direct(store, descending, 1000, (page - 1) * 1000))
        assert len(set(built.tables["records"]["month"])) == 2
    assert len(counted) >= 10  # every page above came by the counts path


def test_postgresql_pages_by_month_with_filters(pg_store: Any) -> None:
    store = pg_store
    (area,) = store._one(
        "SELECT area_ward FROM crimes WHERE area_ward IS NOT NULL "
        "GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1"
    ) or (None,)
    cases: list[dict[str, Any]] = [
        {"area": area, "types": ("Burglary", "Vehicle crime")},
        {"first": "2021-05", "last": "2021-06"},
        {"area": area, "first": "2021-05", "last": "2021-05"},
        {"types": ("Robbery",), "first": "2021-04", "last": "2021-05"},
    ]
    for case in cases:
        first = pages.Filters.parse("ward", case.get("first"), None, None).first
        last = pages.Filters.parse("ward", case.get("last"), None, None).first
        args = {"area": case.get("area"), "types": tuple(case.get("types", ()))}
        _, total = _direct(store, True, 1, 0, first=first, last=last, **args)
        assert total > 20, case
        for page in (1, 2, -(-total // 20)):
            _check(
                _page(store, page, 20, True, **case),
                _direct(store, True, 20, (page - 1) * 20, first=first, last=last, **args),
            )


def test_postgresql_reads_a_month_through_the_month_rowid_index(pg_store: Any) -> None:
    """The plan, not a timing: a month's rows in rowid order come from the index."""
    store = pg_store
    store._exec("SET enable_seqscan = off")  # a tiny table: ask whether the index serves it
    try:
        plan = "\n".join(
            str(r[0])
            for r in store._run(
                "EXPLAIN SELECT rowid FROM crimes WHERE month = ? ORDER BY rowid LIMIT 10",
                [dt.date(2021, 5, 1)],
            )
        )
    finally:
        store._exec("RESET enable_seqscan")
    assert "crimes_month_rowid_idx" in plan and "Sort" not in plan, plan
