"""Vintages (issue 13): the same month downloaded twice, and a Crime ID seen again in a later
month, give the same store whatever order the files arrive in; an older download reverts
nothing and is reported."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import os
from collections import Counter
from pathlib import Path

import polars as pl
import pytest

from placeharm.ingest.vintage import file_vintage
from placeharm.services.ingest import ingest
from placeharm.store.duckdb import DuckDBStore

MAY = "2021-05-northumbria-street.csv.gz"
JUNE = "2021-06-northumbria-street.csv.gz"
OUTCOMES = "2021-06-northumbria-outcomes.csv.gz"
# Stated publication dates: the shared copies' own file times are when they were copied (a
# copy resets them), so the test states both, as an operator would (--published).
OLDER = dt.date(2023, 4, 20)
NEWER = dt.date(2026, 12, 1)
# provenance that depends on ingest order, left out of the comparison
ORDER_DEPENDENT = {"import_id", "replaced_by_import", "replaced_at"}


def _rows(path: Path) -> tuple[list[str], list[list[str]]]:
    rows = list(csv.reader(io.StringIO(gzip.decompress(path.read_bytes()).decode(), newline="")))
    return rows[0], rows[1:]


def _write(path: Path, header: list[str], rows: list[list[str]], mtime: int = 0) -> Path:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows([header, *rows])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(buffer.getvalue().encode(), mtime=mtime))
    return path


@pytest.fixture
def downloads(northumbria: Path, tmp_path: Path) -> dict[str, list[Path] | dict[str, object]]:
    """The old download (the real files, with a June street file in which five May crimes
    are published again) and a newer download of May street and June outcomes with changed
    outcomes."""
    header, may = _rows(northumbria / MAY)
    id_i, month_i = header.index("Crime ID"), header.index("Month")
    cat_i = header.index("Last outcome category")
    with_id = [r for r in may if r[id_i]]
    again = [list(r) for r in with_id[100:105]]
    for row in again:  # seen again a month later, with a later status
        row[month_i] = "2021-06"
        row[cat_i] = "Offender given a caution"
    _, june = _rows(northumbria / JUNE)
    june_file = _write(tmp_path / "old" / JUNE, header, [*june, *again], mtime=1795314422)

    new_may = [list(r) for r in may]
    revised = {}
    for i, row in enumerate(new_may):
        if row[id_i] and i % 53 == 0:
            row[cat_i] = (
                "Awaiting court outcome"
                if row[cat_i] != "Awaiting court outcome"
                else ("Unable to prosecute suspect")
            )
            revised[row[id_i]] = row[cat_i]
    o_header, outcomes = _rows(northumbria / OUTCOMES)
    type_i = o_header.index("Outcome type")
    new_outcomes = [list(r) for r in outcomes]
    changed_outcomes = {}
    for i, row in enumerate(new_outcomes):
        if i % 41 == 0:
            row[type_i] = "Offender sent to prison"
            changed_outcomes[row[o_header.index("Crime ID")]] = row[type_i]
    new_dir = tmp_path / "new"
    return {
        "old": [northumbria / MAY, june_file, northumbria / OUTCOMES],
        "new": [
            _write(new_dir / MAY, header, new_may),
            _write(new_dir / OUTCOMES, o_header, new_outcomes),
        ],
        "facts": {
            "again": {r[id_i] for r in again},
            "revised": revised,
            "changed_outcomes": changed_outcomes,
        },
    }


def _table(store: DuckDBStore, table: str) -> pl.DataFrame:
    frame = store._frame(f"SELECT * FROM {table}")
    keep = [c for c in frame.columns if c not in ORDER_DEPENDENT]
    return frame.select(keep).sort(keep, nulls_last=True)


def _state(store: DuckDBStore) -> dict[str, pl.DataFrame]:
    return {t: _table(store, t) for t in ("crimes", "outcomes", "crime_history", "outcome_history")}


def test_two_downloads_give_the_same_store_in_either_order(store_at, downloads):
    old, new = downloads["old"], downloads["new"]
    facts = downloads["facts"]
    assert isinstance(old, list) and isinstance(new, list) and isinstance(facts, dict)

    forward = store_at("forward")
    first = ingest(forward, old, published=OLDER)
    second = ingest(forward, new, published=NEWER)
    assert all(r.status == "ok" and r.balanced for r in first + second)
    assert all(r.published_how == "stated" for r in first + second)

    backward = store_at("backward")
    newest = ingest(backward, new, published=NEWER)
    late = ingest(backward, list(reversed(old)), published=OLDER)
    assert all(r.status == "ok" and r.balanced for r in newest + late)

    a, b = _state(forward), _state(backward)
    for table in a:
        assert a[table].height == b[table].height, table
        assert a[table].equals(b[table]), table

    # The newer download's values are held; the older one, arriving last, reverted nothing
    # and said so.
    revised = facts["revised"]
    assert len(revised) > 100
    held = dict(
        forward.crime_frame(["crime_id", "last_outcome_category"])
        .filter(pl.col("crime_id").is_in(list(revised)))
        .rows()
    )
    assert held == revised
    late_may = next(r for r in late if r.source_file.endswith(MAY))
    assert late_may.stale == len(revised) and late_may.updated == 0
    late_outcomes = next(r for r in late if r.source_file.endswith(OUTCOMES))
    assert late_outcomes.stale > 0 and late_outcomes.updated == late_outcomes.inserted == 0
    changed = facts["changed_outcomes"]
    assert isinstance(changed, dict)
    outcomes = forward._frame(
        "SELECT crime_id, outcome_type FROM outcomes WHERE month = DATE '2021-06-01'"
    )
    by_crime = outcomes.group_by("crime_id").agg(pl.col("outcome_type"))
    got = dict(by_crime.filter(pl.col("crime_id").is_in(list(changed))).rows())
    assert all(changed[c] in types for c, types in got.items())
    assert forward.table_counts()["outcomes"] == sum(1 for _ in _rows(new[1])[1])
    assert not forward._frame("SELECT * FROM outcome_history").is_empty()

    # Crimes seen again in a later month keep their first month; the sighting is history.
    again = facts["again"]
    assert isinstance(again, set)
    months = forward._frame(
        "SELECT crime_id, month FROM crimes WHERE crime_id IN (SELECT unnest(?::VARCHAR[]))",
        [sorted(again)],
    )
    assert set(months["month"]) == {dt.date(2021, 5, 1)} and months.height == len(again)
    later = forward._frame(
        "SELECT crime_id, month FROM crime_history WHERE month = DATE '2021-06-01'"
    )
    assert set(later["crime_id"]) == again
    june = next(r for r in first if r.source_file.endswith(JUNE))
    assert june.later_sightings == len(again)

    # Derived columns agree too, and both stores pass `check`.
    for store in (forward, backward):
        assert all(n == 0 for n in store.invariant_failures().values())
    forward.close()
    backward.close()


def test_re_importing_any_file_again_changes_nothing(store: DuckDBStore, downloads):
    old, new = downloads["old"], downloads["new"]
    assert isinstance(old, list) and isinstance(new, list)
    ingest(store, old, published=OLDER)
    ingest(store, new, published=NEWER)
    before = _state(store)
    for path in [*old, *new]:
        (result,) = ingest(store, [path], published=NEWER if path in new else OLDER)
        assert result.ok and result.inserted == result.updated == 0
        assert result.unchanged + result.quarantined == result.rows_read
        assert (result.stale > 0) == (path in old and path.name != JUNE)  # older copies only
    after = _state(store)
    for table in before:
        assert before[table].equals(after[table]), table


def test_file_vintage_evidence(tmp_path: Path):
    """Stated beats any guess; a gzip header's time, else the file's; a time before the
    file's latest month ended is impossible and gives way to that month."""
    path = _write(tmp_path / "2021-05-x-street.csv.gz", ["a"], [["1"]], mtime=1795314422)
    stamp = dt.datetime(2026, 11, 22, 2, 27, 2)
    assert file_vintage(path, "2021-05", "ab").published_at == stamp
    assert file_vintage(path, "2021-05", "ab").how == "gzip-mtime"
    stated = file_vintage(path, "2021-05", "ab", stated=dt.date(2026, 11, 22))
    assert stated.how == "stated" and stated.key > file_vintage(path, "2021-05", "ab").key
    early = _write(tmp_path / "early.csv.gz", ["a"], [["1"]], mtime=1_000_000_000)  # 2001
    floor = file_vintage(early, "2021-05", "ab")
    assert (floor.published_at, floor.how) == (dt.datetime(2021, 6, 1), "latest-month")
    plain = tmp_path / "archive" / "2021-07" / "2021-05-x-street.csv"
    plain.parent.mkdir(parents=True)
    (tmp_path / "archive" / "2021-08").mkdir()
    plain.write_text("a\n1\n")
    import os

    os.utime(plain, (1_000_000_000, 1_000_000_000))
    from_archive = file_vintage(plain, "2021-05", "ab")
    assert (from_archive.published_at, from_archive.how) == (dt.datetime(2021, 9, 1), "archive")
    os.utime(plain, (1795314422, 1795314422))
    assert file_vintage(plain, "2021-05", "ab").how == "file-mtime"


def test_a_stated_date_before_the_files_month_ended_is_refused(store: DuckDBStore, northumbria):
    (result,) = ingest(store, [northumbria / MAY], published=dt.date(2021, 5, 20))
    assert result.status == "refused" and "before the end of 2021-05" in result.message
    assert store.table_counts()["crimes"] == 0


# -- outcome sets across downloads in one call (issue 13) ------------------------------------


def _plain(path: Path, header: list[str], rows: list[list[str]], mtime: int) -> Path:
    """A plain .csv download whose vintage is its file time (set explicitly: deterministic)."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows([header, *rows])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue().encode())
    os.utime(path, (mtime, mtime))
    return path


def _outcome_sets(store: DuckDBStore) -> tuple[dict[tuple[object, ...], tuple], Counter]:
    """The held set of each crime-month, and every set held anywhere with how often."""
    row = "outcome_ordinal, outcome_type, reported_by, falls_within, location"
    held: dict[tuple[object, ...], list[tuple[object, ...]]] = {}
    anywhere: Counter[tuple[object, ...]] = Counter()
    for crime_id, month, *values in store._con.execute(
        f"SELECT crime_id, month, {row} FROM outcomes"
    ).fetchall():
        held.setdefault((crime_id, month), []).append(tuple(values))
    current = {unit: tuple(sorted(rows, key=repr)) for unit, rows in held.items()}
    anywhere.update((*unit, rows) for unit, rows in current.items())
    history: dict[tuple[object, ...], list[tuple[object, ...]]] = {}
    for crime_id, month, vintage, *values in store._con.execute(
        f"SELECT crime_id, month, vintage, {row} FROM outcome_history"
    ).fetchall():
        history.setdefault((crime_id, month, vintage), []).append(tuple(values))
    anywhere.update(
        (crime_id, month, tuple(sorted(rows, key=repr)))
        for (crime_id, month, _), rows in history.items()
    )
    return current, anywhere


@pytest.fixture
def outcome_downloads(northumbria: Path, tmp_path: Path) -> dict[str, Path]:
    """Downloads of one outcomes month (real rows), as plain files whose vintage is their
    file time: `b` a minute after `a` changes some crime-months' sets, `c` a minute later
    changes others and some of `b`'s again; `b_tie` holds `c`'s sets in `b`'s second (the
    file digests decide which of `b` and `b_tie` is newer)."""
    header, rows = _rows(northumbria / OUTCOMES)
    rows = rows[:120]
    type_i = header.index("Outcome type")
    b = [list(r) for r in rows]
    c = [list(r) for r in rows]
    for i in range(0, 120, 7):
        b[i][type_i] = "Offender sent to prison"
    for i in range(0, 120, 5):
        c[i][type_i] = "Offender given a caution"
    t = 1796119200  # 2026-12-01 10:00 UTC
    return {
        "a": _plain(tmp_path / "a" / "2021-06-northumbria-outcomes.csv", header, rows, t),
        "b": _plain(tmp_path / "b" / "2021-06-northumbria-outcomes.csv", header, b, t + 60),
        "c": _plain(tmp_path / "c" / "2021-06-northumbria-outcomes.csv", header, c, t + 120),
        # the same second as b: the file digest decides which is newer
        "b_tie": _plain(tmp_path / "bt" / "2021-06-northumbria-outcomes.csv", header, c, t + 60),
    }


_CALLS = {
    "one by one": [["a"], ["b"], ["c"]],
    "newest first": [["c"], ["b"], ["a"]],
    "one call": [["a", "b", "c"]],
    "one call, newest first": [["c", "b", "a"]],
    "one call, older after newer": [["b", "a", "c"]],
    "inserted and replaced in one call": [["a", "c"], ["b"]],
    "older file in a later call": [["c", "a"], ["b"]],
    "tie, one call": [["a", "b", "b_tie", "c"]],
    "tie, reversed": [["c", "b_tie", "b", "a"]],
    "tie in separate calls": [["b_tie"], ["b"], ["c", "a"]],
    "tie then newer": [["b", "b_tie"], ["a", "c"]],
}


@pytest.mark.parametrize("name", list(_CALLS))
def test_outcome_sets_do_not_depend_on_order_ties_or_calls(
    store_at, outcome_downloads: dict[str, Path], name: str
):
    """Whatever the order, ties and grouping into calls, each crime-month holds the set of
    its newest download and every other set seen is kept once in outcome_history."""
    calls = _CALLS[name]
    files = sorted({f for call in calls for f in call})
    with store_at("ref") as ref:
        order = sorted(files, key=lambda f: ingest(ref, [outcome_downloads[f]])[0].vintage or "")
    with store_at("one-by-one") as reference:
        for f in order:  # oldest first, one call each: the plain case
            assert ingest(reference, [outcome_downloads[f]])[0].status == "ok"
        want_current, want_anywhere = _outcome_sets(reference)
    with store_at("store") as store:
        for call in calls:
            results = ingest(store, [outcome_downloads[f] for f in call])
            assert all(r.status == "ok" and r.balanced for r in results), results
        current, anywhere = _outcome_sets(store)
        assert all(n == 0 for n in store.invariant_failures().values())
    twice = [k for k, n in anywhere.items() if n > 1]
    assert not twice, f"{len(twice)} outcome sets held twice"
    lost = set(want_anywhere) - set(anywhere)
    assert not lost, f"{len(lost)} outcome sets lost"
    assert set(anywhere) == set(want_anywhere)
    assert current == want_current
