"""The records explorer pages crimes from the harm cube's counts per month (issue 14): the
total is the cube's, and a page reads only the months it falls in. Every page must be the
rows a direct query gives, in the same order: first page, last page, past the end, a page
that starts in one month and ends in the next, either order, with the area, type and
period filters; on real police.uk data."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from placeharm.model import month_end
from placeharm.services import pages
from placeharm.services.areas import import_areas
from placeharm.services.ingest import ingest
from placeharm.services.policy import Role, User
from placeharm.store.duckdb import DuckDBStore

MONTHS = ("2021-04", "2021-05", "2021-06")
ANALYST = User("analyst", "Analyst", Role.analyst)
COLUMNS = pages._RECORDS["crimes"][2]


@pytest.fixture(scope="module")
def crimes_store(module_store_at, northumbria: Path, boundaries: Path) -> Iterator[DuckDBStore]:
    with module_store_at("paging") as store:
        import_areas(store, boundaries / "northumbria_ward2013.geojson", "ward")
        files = [northumbria / f"{m}-northumbria-street.csv.gz" for m in MONTHS]
        assert all(r.status == "ok" for r in ingest(store, files))
        yield store


def _direct(
    store: DuckDBStore,
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
        where.append(f"crime_type IN ({', '.join('?' for _ in types)})")
        params += list(types)
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


def _page(
    store: DuckDBStore,
    page: int,
    page_size: int,
    descending: bool = True,
    area: str | None = None,
    types: tuple[str, ...] = (),
    first: str | None = None,
    last: str | None = None,
) -> pages.Page:
    filters = pages.Filters.parse("ward", first, last, None, [], list(types))
    with pages.reading(store):  # as the web app builds it: memo and all
        return pages.records(
            store, ANALYST, "crimes", filters, None, "month", descending, page, area, page_size
        )


def _month_sizes(store: DuckDBStore) -> dict[dt.date, int]:
    rows = store._run("SELECT month, count(*) FROM crimes GROUP BY month")
    return {m: int(n) for m, n in rows}


def _check(store: DuckDBStore, built: pages.Page, expected: tuple[pl.DataFrame, int]) -> None:
    frame, total = expected
    assert built.data["total"] == total
    assert built.tables["records"].equals(frame), "the page is not the direct query's rows"


def test_first_last_and_past_the_end(crimes_store: DuckDBStore):
    store = crimes_store
    total = sum(_month_sizes(store).values())
    size = 50
    last_page = -(-total // size)
    for page in (1, 2, last_page - 1, last_page, last_page + 1):
        for descending in (True, False):
            built = _page(store, page, size, descending)
            _check(store, built, _direct(store, descending, size, (page - 1) * size))
            assert built.data["pages"] == last_page
    assert _page(store, last_page, size).tables["records"].height == total - (last_page - 1) * size
    assert _page(store, last_page + 1, size).tables["records"].height == 0


def test_a_page_across_a_month_boundary(crimes_store: DuckDBStore):
    """The page whose first rows are the end of the newest month and whose last rows are the
    start of the month before (and the same, oldest first)."""
    store = crimes_store
    sizes = _month_sizes(store)
    newest, oldest = max(sizes), min(sizes)
    for descending, first_month in ((True, newest), (False, oldest)):
        offset = sizes[first_month] - 3  # 3 rows of one month, then 7 of the next
        built = store.records_page(
            "crimes",
            COLUMNS,
            None,
            None,
            "month",
            None,
            None,
            "month",
            descending,
            10,
            offset,
            sort_counts=list(sizes.items()),
        )
        expected = _direct(store, descending, 10, offset)
        assert built[1] == expected[1] and built[0].equals(expected[0])
        months = built[0]["month"].to_list()
        assert months[:3] == [first_month] * 3 and months[3] != first_month
        # and the page the explorer shows there: 1000 rows, starting in this month
        page = sizes[first_month] // 1000 + 1
        assert sizes[first_month] % 1000, "the boundary falls between two pages"
        built_page = _page(store, page, 1000, descending)
        _check(store, built_page, _direct(store, descending, 1000, (page - 1) * 1000))
        assert len(set(built_page.tables["records"]["month"])) == 2


def test_filters_area_types_and_period(crimes_store: DuckDBStore):
    store = crimes_store
    (area,) = store._one(
        "SELECT area_ward FROM crimes WHERE area_ward IS NOT NULL "
        "GROUP BY 1 ORDER BY count(*) DESC LIMIT 1"
    ) or (None,)
    types = ("Burglary", "Vehicle crime")
    cases = [
        {"area": area},
        {"types": types},
        {"area": area, "types": types},
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
        size = 20
        for page in (1, 2, -(-total // size)):
            built = _page(
                store, page, size, True, first=case.get("first"), last=case.get("last"), **args
            )
            _check(
                store,
                built,
                _direct(store, True, size, (page - 1) * size, first=first, last=last, **args),
            )


def test_other_sorts_and_searches_still_count_the_records(crimes_store: DuckDBStore):
    """Sorting by another column or searching reads the records as before: same answers."""
    store = crimes_store
    filters = pages.Filters.parse("ward", None, None, None)
    with pages.reading(store):
        by_type = pages.records(store, ANALYST, "crimes", filters, None, "crime_type", False, 3)
        searched = pages.records(store, ANALYST, "crimes", filters, "Burglary", None, True, 1)
    (n,) = store._one("SELECT count(*) FROM crimes") or (0,)
    assert by_type.data["total"] == n
    (burglaries,) = store._one(
        "SELECT count(*) FROM crimes WHERE crime_type ILIKE '%Burglary%'"
    ) or (0,)
    assert searched.data["total"] == burglaries > 0
    assert set(searched.tables["records"]["crime_type"]) == {"Burglary"}
