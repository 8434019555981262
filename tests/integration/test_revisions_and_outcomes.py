"""A revised month updates only what changed (history kept); outcomes set the latest outcome."""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path

import polars as pl
import pytest

from placeharm.services.ingest import ingest
from placeharm.store.duckdb import DuckDBStore

pytestmark = pytest.mark.both_engines  # issue 17: DuckDB and PostgreSQL

MONTH = "2021-05"
STREET = f"{MONTH}-northumbria-street.csv.gz"


def _rows(path: Path) -> tuple[list[str], list[list[str]]]:
    text = gzip.decompress(path.read_bytes()).decode("utf-8")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    return rows[0], rows[1:]


def _write_gz(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.write_bytes(gzip.compress(buffer.getvalue().encode("utf-8")))
    return path


def test_revised_month_updates_changed_rows_and_keeps_history(
    store: DuckDBStore, northumbria: Path, tmp_path: Path
):
    original = northumbria / STREET
    header, rows = _rows(original)
    outcome_col = header.index("Last outcome category")
    id_col = header.index("Crime ID")
    revised_rows = [list(r) for r in rows]
    previous: dict[str, str] = {}
    for i, row in enumerate(revised_rows):
        if row[id_col] and i % 97 == 0:
            previous[row[id_col]] = row[outcome_col]
            row[outcome_col] = (
                "Under investigation"
                if row[outcome_col] != "Under investigation"
                else "Unable to prosecute suspect"
            )
    assert len(previous) > 50
    revised = _write_gz(tmp_path / STREET, header, revised_rows)

    first = ingest(store, [original])[0]
    assert first.status == "ok" and first.inserted == len(rows)
    second = ingest(store, [revised])[0]
    assert second.status == "ok" and second.balanced
    assert second.rows_read == len(rows)
    assert second.updated == len(previous)
    assert second.inserted == 0
    assert second.quarantined == 0
    assert second.unchanged == len(rows) - len(previous)
    assert store.table_counts()["crimes"] == len(rows)

    history = store.arrow("crime_history")
    hist = pl.from_arrow(history)
    assert isinstance(hist, pl.DataFrame)
    assert hist.height == len(previous)
    assert dict(zip(hist["crime_id"], hist["last_outcome_category"], strict=True)) == previous
    assert set(hist["source_file"]) == {str(original)}  # the version replaced came from here
    assert set(hist["replaced_by_import"]) == {second.import_id}

    now = store.crime_frame(["crime_id", "last_outcome_category"]).filter(
        pl.col("crime_id").is_in(list(previous))
    )
    expected_now = {r[id_col]: r[outcome_col] for r in revised_rows if r[id_col] in previous}
    assert dict(now.rows()) == expected_now

    # Importing the revision again is a no-op; importing the original again (an older
    # download: its gzip header is older than the revision's) reverts nothing: its differing
    # rows are reported stale, and its versions are already in the history (issue 13).
    again = ingest(store, [revised])[0]
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, len(rows))
    back = ingest(store, [original])[0]
    assert back.updated == 0 and back.stale == len(previous)
    assert back.unchanged == len(rows)
    assert dict(now.rows()) == expected_now
    assert store.table_counts()["crime_history"] == len(previous)


def _outcome_files(northumbria: Path, first_month: str) -> list[Path]:
    return sorted(
        p for p in northumbria.glob("*-northumbria-outcomes.csv.gz") if p.name[:7] >= first_month
    )


def _latest_outcomes(
    files: list[Path], crime_ids: set[str]
) -> tuple[dict[str, tuple[str, str]], dict[str, set[str]], int]:
    """Independent: walk outcomes in (month, line) order; the last one seen for a crime wins."""
    latest: dict[str, tuple[str, str]] = {}
    months_seen: dict[str, set[str]] = {}
    total = 0
    for path in files:
        header, rows = _rows(path)
        total += len(rows)
        cid_i, month_i, type_i = (header.index(c) for c in ("Crime ID", "Month", "Outcome type"))
        for row in sorted(rows, key=lambda r: r[month_i]):  # stable: keeps line order
            if row[cid_i] in crime_ids:
                previous = latest.get(row[cid_i])
                if previous is None or row[month_i] >= previous[0]:
                    latest[row[cid_i]] = (row[month_i], row[type_i])
                months_seen.setdefault(row[cid_i], set()).add(row[month_i])
    return latest, months_seen, total


@pytest.mark.slow
def test_latest_outcome_comes_from_the_latest_outcome_month(
    store: DuckDBStore, store_at, northumbria: Path, tmp_path: Path
):
    street = northumbria / STREET
    _, street_rows = _rows(street)
    crime_ids = {r[0] for r in street_rows if r[0]}
    outcome_files = _outcome_files(northumbria, MONTH)
    assert len(outcome_files) >= 20

    latest, months_seen, outcome_rows = _latest_outcomes(outcome_files, crime_ids)
    multi = sorted(c for c, months in months_seen.items() if len(months) > 1)
    assert len(multi) > 100  # plenty of crimes with outcomes in several months

    results = ingest(store, [street, *outcome_files])
    assert all(r.status == "ok" and r.balanced for r in results)
    assert sum(r.rows_read for r in results if r.source_kind == "outcomes") == outcome_rows

    crimes = store.crime_frame(["crime_id", "latest_outcome", "latest_outcome_month"]).filter(
        pl.col("crime_id").is_not_null()
    )
    got = {
        cid: (m.strftime("%Y-%m") if m else None, o)
        for cid, o, m in crimes.select("crime_id", "latest_outcome", "latest_outcome_month").rows()
    }
    sample = multi[::7][:300]
    assert sample
    for cid in sample:
        assert got[cid] == latest[cid], cid
    # Every crime with at least one outcome has one; none is invented for the others.
    assert {c for c, v in got.items() if v[1] is not None} == set(latest)
    assert all(got[c] == latest[c] for c in latest)

    # A revised street month (updated rows) keeps each crime's latest outcome.
    header, rows = _rows(street)
    col = header.index("Last outcome category")
    revised_ids = set(sample[:50])
    for row in rows:
        if row[0] in revised_ids:
            row[col] = "Formal action is not in the public interest"
    revised = _write_gz(tmp_path / STREET, header, rows)
    assert ingest(store, [revised])[0].updated == len(revised_ids)
    after = dict(
        store.crime_frame(["crime_id", "latest_outcome"])
        .filter(pl.col("crime_id").is_in(list(revised_ids)))
        .rows()
    )
    assert after == {c: latest[c][1] for c in revised_ids}

    # Outcomes imported before their street month still end up on the crime.
    other = store_at("other")
    ingest(other, outcome_files[:3])
    ingest(other, [street])
    early = dict(
        other.crime_frame(["crime_id", "latest_outcome"])
        .filter(pl.col("latest_outcome").is_not_null())
        .rows()
    )
    expected_early = {c: v[1] for c, v in _latest_outcomes(outcome_files[:3], crime_ids)[0].items()}
    assert early == expected_early
    assert early
    other.close()


def test_history_keeps_the_source_file_when_both_versions_come_in_one_run(
    store: DuckDBStore, northumbria: Path, tmp_path: Path
):
    """Was a bug (introduced in e9dc5c8, fixed in f08e596): history rows got source_file
    NULL because the group's imports were logged only after its writes."""
    original = northumbria / STREET
    header, rows = _rows(original)
    col = header.index("Last outcome category")
    for row in rows[:30]:
        row[col] = "Court result unavailable"
    revised = _write_gz(tmp_path / STREET, header, rows)
    first, second = ingest(store, [original, revised])
    assert first.status == second.status == "ok"
    assert second.updated > 0
    hist = pl.from_arrow(store.arrow("crime_history"))
    assert isinstance(hist, pl.DataFrame)
    assert hist.height == second.updated
    assert set(hist["source_file"]) == {str(original)}
