"""A file whose write fails part-way leaves nothing behind, and the next import works."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
from pathlib import Path

import polars as pl
import pytest

from placeharm.services import queries
from placeharm.services.ingest import ingest
from placeharm.store.duckdb import DuckDBStore

pytestmark = pytest.mark.both_engines  # issue 17: DuckDB and PostgreSQL

MAY = "2021-05-northumbria-street.csv.gz"
JUNE = "2021-06-northumbria-street.csv.gz"
DATA_TABLES = ("crimes", "crime_history", "outcomes", "stop_searches", "quarantine")


class Boom(RuntimeError):
    pass


def _snapshot(store: DuckDBStore) -> tuple[dict[str, int], pl.DataFrame, pl.DataFrame]:
    crimes = store.crime_frame(["crime_id", "month", "last_outcome_category"]).sort(
        ["crime_id", "month", "last_outcome_category"], nulls_last=True
    )
    return store.table_counts(), store.coverage(), crimes


def _fail_after_insert_of(
    month: dt.date, monkeypatch: pytest.MonkeyPatch, engine: type = DuckDBStore
) -> list[int]:
    """Make insert_rows raise *after* writing any frame holding `month` rows."""
    original = engine.insert_rows
    calls: list[int] = []

    def insert_then_fail(self: DuckDBStore, table: str, frame: pl.DataFrame) -> None:
        original(self, table, frame)
        if "month" in frame.columns and (frame["month"] == month).any():
            calls.append(frame.height)
            raise Boom("disk on fire")

    monkeypatch.setattr(engine, "insert_rows", insert_then_fail)
    return calls


def test_failed_insert_rolls_back_the_whole_file(
    store: DuckDBStore, northumbria: Path, monkeypatch: pytest.MonkeyPatch
):
    assert ingest(store, [northumbria / MAY])[0].status == "ok"
    counts, coverage, crimes = _snapshot(store)

    calls = _fail_after_insert_of(dt.date(2021, 6, 1), monkeypatch, type(store))
    (result,) = ingest(store, [northumbria / JUNE])
    assert calls  # the rows really were written before the failure
    assert result.status == "failed"
    assert "rolled back" in result.message and "disk on fire" in result.message
    after_counts, after_coverage, after_crimes = _snapshot(store)
    assert {t: after_counts[t] for t in DATA_TABLES} == {t: counts[t] for t in DATA_TABLES}
    assert after_counts["imports"] == counts["imports"] + 1  # the failure is logged
    assert after_coverage.equals(coverage)
    assert after_crimes.equals(crimes)
    assert store.imports(1)["status"][0] == "failed"

    monkeypatch.undo()
    (retry,) = ingest(store, [northumbria / JUNE])
    assert retry.status == "ok"
    assert retry.inserted == retry.rows_read > 0
    assert store.table_counts()["crimes"] == counts["crimes"] + retry.inserted
    assert "2021-06" in queries.coverage(store)["month"].to_list()


def test_failure_in_a_group_keeps_the_other_files(
    store: DuckDBStore, northumbria: Path, monkeypatch: pytest.MonkeyPatch
):
    """Files written in one transaction are replayed alone when one of them fails."""
    calls = _fail_after_insert_of(dt.date(2021, 6, 1), monkeypatch, type(store))
    results = ingest(store, [northumbria / MAY, northumbria / JUNE])
    assert calls
    assert [r.status for r in results] == ["ok", "failed"]
    may = results[0]
    assert store.table_counts()["crimes"] == may.inserted == may.rows_read
    months = {m.strftime("%Y-%m") for m in store.crime_frame(["month"])["month"]}
    assert months == {"2021-05"}
    assert queries.coverage(store)["month"].to_list() == ["2021-05"]


def test_failed_update_leaves_crimes_and_history_unchanged(
    store: DuckDBStore, northumbria: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    original = northumbria / MAY
    rows = list(
        csv.reader(io.StringIO(gzip.decompress(original.read_bytes()).decode(), newline=""))
    )
    header, body = rows[0], rows[1:]
    col = header.index("Last outcome category")
    changed = 0
    for row in body[:40]:  # crimes and ASB rows alike (an ASB key ignores the outcome)
        changed += row[col] != "Awaiting court outcome"
        row[col] = "Awaiting court outcome"
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows([header, *body])
    revised = tmp_path / MAY.removesuffix(".gz")
    revised.write_text(buffer.getvalue())

    assert ingest(store, [original])[0].status == "ok"
    counts, coverage, crimes = _snapshot(store)
    real_update = type(store).update_crimes

    def update_then_fail(self: DuckDBStore, frame: pl.DataFrame, import_id: int) -> None:
        real_update(self, frame, import_id)
        raise Boom("update exploded")

    monkeypatch.setattr(type(store), "update_crimes", update_then_fail)
    (result,) = ingest(store, [revised])
    assert result.status == "failed"
    after_counts, after_coverage, after_crimes = _snapshot(store)
    assert {t: after_counts[t] for t in DATA_TABLES} == {t: counts[t] for t in DATA_TABLES}
    assert after_counts["crime_history"] == 0
    assert after_crimes.equals(crimes)
    assert after_coverage.equals(coverage)

    monkeypatch.undo()
    (retry,) = ingest(store, [revised])
    assert retry.status == "ok"
    assert retry.updated == changed > 0
    assert store.table_counts()["crime_history"] == changed
