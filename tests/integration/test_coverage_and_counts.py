"""Coverage (a month with no file is a gap) and counts by area, against independent counts."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
from collections import Counter
from pathlib import Path

import polars as pl
import pytest

import placeharm
from placeharm.errors import DataError, NotFound
from placeharm.services import queries
from placeharm.services.areas import import_areas
from placeharm.services.ingest import ingest
from placeharm.store.duckdb import DuckDBStore

MONTHS = ("2021-12", "2022-02")  # 2022-01 is the real gap


def _rows(path: Path) -> tuple[list[str], list[list[str]]]:
    rows = list(csv.reader(io.StringIO(gzip.decompress(path.read_bytes()).decode(), newline="")))
    return rows[0], rows[1:]


@pytest.fixture(scope="module")
def counted_store(module_db_at, northumbria: Path, boundaries: Path):
    store = placeharm.open_store(module_db_at("counts"))  # the engine under test
    import_areas(store, boundaries / "northumbria_ward2013.geojson", "ward")
    files = [northumbria / f"{m}-northumbria-street.csv.gz" for m in MONTHS]
    results = ingest(store, files)
    assert all(r.status == "ok" for r in results)
    yield store, files
    store.close()


def test_counts_by_ward_match_independent_point_in_polygon(
    counted_store, boundaries: Path, geojson_areas, independent_pip
):
    store, files = counted_store
    per_month: dict[str, Counter[str | None]] = {}
    drugs: Counter[str | None] = Counter()
    codes, polys = geojson_areas(boundaries / "northumbria_ward2013.geojson", "WD13CD")
    for month, path in zip(MONTHS, files, strict=True):
        header, rows = _rows(path)
        lon_i, lat_i, type_i = (header.index(c) for c in ("Longitude", "Latitude", "Crime type"))
        located = [r for r in rows if r[lon_i] and r[lat_i]]
        wards = independent_pip(
            codes, polys, [float(r[lon_i]) for r in located], [float(r[lat_i]) for r in located]
        )
        tally: Counter[str | None] = Counter(wards)
        tally[None] += len(rows) - len(located)
        per_month[month] = tally
        drugs.update(w for w, r in zip(wards, located, strict=True) if r[type_i] == "Drugs")
        drugs[None] += sum(1 for r in rows if r[type_i] == "Drugs" and not (r[lon_i] and r[lat_i]))

    result = queries.counts(store, "ward", dt.date(2021, 12, 1), dt.date(2022, 2, 1), by_month=True)
    assert result.months == ["2021-12", "2022-01", "2022-02"]
    assert result.gap_months == ["2022-01"]
    table = result.table
    assert table.height == 177 + 1  # every ward, plus the no-location / outside row
    assert table["2022-01"].null_count() == table.height  # a gap is null, never zero
    for month in MONTHS:
        got = {code: n for code, n in table.select("area_code", month).rows() if n}
        assert got == {k: v for k, v in per_month[month].items() if v}
    totals = dict(table.select("area_code", "records").rows())
    assert sum(totals.values()) == sum(sum(c.values()) for c in per_month.values())
    # Sorted by records, largest first.
    assert table["records"].to_list() == sorted(table["records"].to_list(), reverse=True)

    only_drugs = queries.counts(
        store, "ward", dt.date(2021, 12, 1), dt.date(2022, 2, 1), crime_types=["Drugs"]
    )
    got = {code: n for code, n in only_drugs.table.select("area_code", "records").rows() if n}
    assert got == {k: v for k, v in drugs.items() if v}


def test_counts_refuses_bad_arguments(counted_store):
    store, _ = counted_store
    first, last = dt.date(2021, 12, 1), dt.date(2022, 2, 1)
    with pytest.raises(NotFound, match="no area set called 'parish'"):
        queries.counts(store, "parish", first, last)
    with pytest.raises(DataError, match="unknown crime type"):
        queries.counts(store, "ward", first, last, crime_types=["Jaywalking"])
    with pytest.raises(DataError, match="before"):
        queries.counts(store, "ward", last, first)
    with pytest.raises(DataError):
        queries.counts(store, "Ward; DROP TABLE crimes", first, last)


def test_header_only_file_claims_no_coverage(store: DuckDBStore, tmp_path: Path, street_sample):
    """Issue 13: a header-only file used to mark its month covered with 0 rows."""
    header, _ = street_sample
    path = tmp_path / "2021-03-northumbria-street.csv"
    path.write_text(header + "\n")
    result = ingest(store, [path])[0]
    assert result.status == "ok"
    assert (result.rows_read, result.inserted) == (0, 0)
    assert result.months == ()
    assert "header-only" in result.message
    assert queries.coverage(store).is_empty()


def test_refused_file_adds_no_coverage(store: DuckDBStore, tmp_path: Path):
    path = tmp_path / "2021-03-northumbria-street.csv"
    path.write_text("Not,A,Police,File\n1,2,3,4\n")
    assert ingest(store, [path])[0].status == "refused"
    assert queries.coverage(store).is_empty()


def test_a_stray_row_of_another_month_does_not_overwrite_that_months_coverage(
    store: DuckDBStore, tmp_path: Path, northumbria: Path
):
    """Was a bug (fixed in e9dc5c8): the 2021-05 file's one 2021-06 row replaced 2021-06's
    coverage (17,110 rows) with rows=1 from the 2021-05 file."""
    june = northumbria / "2021-06-northumbria-street.csv.gz"
    june_rows = len(_rows(june)[1])
    header, may_rows = _rows(northumbria / "2021-05-northumbria-street.csv.gz")
    stray = list(may_rows[0])
    stray[0] = "f" * 64  # a new crime
    stray[1] = "2021-06"
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows([header, *may_rows, stray])
    may = tmp_path / "2021-05-northumbria-street.csv"
    may.write_text(buffer.getvalue())

    assert ingest(store, [june])[0].status == "ok"
    assert ingest(store, [may])[0].status == "ok"
    cov = queries.coverage(store, "street")
    june_cov = cov.filter(pl.col("month") == "2021-06").row(0, named=True)
    assert june_cov["rows"] >= june_rows
    assert june_cov["source_file"] == str(june)


def test_counts_for_an_area_set_not_yet_assigned(
    store: DuckDBStore, northumbria: Path, boundaries: Path
):
    """Was a bug (fixed in e9dc5c8): every record was silently counted as outside every ward
    when the set had been imported after the records and not yet assigned."""
    from placeharm.errors import PlaceharmError

    result = ingest(store, [northumbria / "2021-05-northumbria-street.csv.gz"])[0]
    import_areas(store, boundaries / "northumbria_ward2013.geojson", "ward")
    month = dt.date(2021, 5, 1)
    try:
        counted = queries.counts(store, "ward", month, month)
    except PlaceharmError as exc:  # refusing, and saying why, would also be right
        assert "assign" in str(exc)
        return
    outside = counted.table.filter(pl.col("area_code").is_null())["records"].item()
    assert outside < result.rows_read * 0.05


def test_an_unnamed_extract_does_not_shrink_a_months_coverage(
    store: DuckDBStore, tmp_path: Path, northumbria: Path
):
    """Was a bug (fixed in f08e596): a 3-row extract without a police.uk name replaced
    2021-06 coverage (17,110 rows) with rows=3."""
    june = northumbria / "2021-06-northumbria-street.csv.gz"
    header, rows = _rows(june)
    assert ingest(store, [june])[0].status == "ok"
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows([header, *rows[:3]])
    extract = tmp_path / "extract for the analyst.csv"
    extract.write_text(buffer.getvalue())
    result = ingest(store, [extract])[0]
    assert (result.status, result.unchanged) == ("ok", 3)
    june_cov = queries.coverage(store, "street").row(0, named=True)
    assert june_cov["month"] == "2021-06"
    assert june_cov["rows"] >= len(rows)
