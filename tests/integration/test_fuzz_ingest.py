"""Property-based fuzzing: real rows mixed with mutations never crash ingest or lose a row."""

from __future__ import annotations

import csv
import io
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from placeharm.services import queries
from placeharm.services.ingest import ingest
from placeharm.store.duckdb import DuckDBStore

NAME = "2021-05-northumbria-street.csv"
N_SAMPLE = 200
FUZZ = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,  # `fresh` makes a new store for every example
    ],
)


@pytest.fixture
def fresh(engine: str, request: pytest.FixtureRequest) -> Callable[[], AbstractContextManager[Any]]:
    """A new empty store for each example, on the engine under test: DuckDB in memory, or a
    schema of its own on the PostgreSQL server, dropped when the example is done."""
    from pg_server import drop_schema, new_schema

    @contextmanager
    def make() -> Iterator[Any]:
        if engine == "duckdb":
            with DuckDBStore(":memory:") as store:
                yield store
            return
        from placeharm.store.postgres import PostgresStore

        server = request.getfixturevalue("pg_url")
        schema, url = new_schema(server)
        try:
            with PostgresStore(url) as store:
                yield store
        finally:
            drop_schema(server, schema)

    return make


def _mutation(allow_quotes: bool, allow_breaks: bool) -> st.SearchStrategy:
    banned = (b"" if allow_breaks else b"\r\n") + (b"" if allow_quotes else b'"')
    raw = st.binary(min_size=1, max_size=40)
    text = st.text(min_size=1, max_size=8)
    if banned:
        pattern = "[" + re.escape(banned.decode()) + "]"
        raw = raw.map(lambda b: bytes(c for c in b if c not in banned) or b"x")
        text = text.map(lambda t: re.sub(pattern, "", t) or "x")
    kinds = [
        st.tuples(st.just("commas"), st.integers(0, 14)),
        st.tuples(st.just("valid")),
        st.tuples(st.just("bytes"), raw),
        st.tuples(st.just("insert_bytes"), st.integers(0, 300), raw),
        st.tuples(st.just("extra_comma"), st.integers(0, 300)),
        st.tuples(st.just("drop_comma"), st.integers(0, 11)),
        st.tuples(st.just("unicode"), st.integers(0, 300), text),
    ]
    if allow_quotes:
        kinds.append(st.tuples(st.just("quote"), st.integers(0, 300)))
    return st.one_of(*kinds)


def _apply(line: bytes, mutation: tuple) -> bytes:
    kind = mutation[0]
    if kind == "bytes":
        return mutation[1]
    if kind == "commas":
        return b"," * mutation[1]
    if kind == "insert_bytes":
        i = mutation[1] % (len(line) + 1)
        return line[:i] + mutation[2] + line[i:]
    if kind == "extra_comma":
        i = mutation[1] % (len(line) + 1)
        return line[:i] + b"," + line[i:]
    if kind == "drop_comma":
        parts = line.split(b",")
        k = mutation[1] % max(1, len(parts) - 1)
        return b",".join(parts[:k]) + b"".join(parts[k : k + 2]) + b"," + b",".join(parts[k + 2 :])
    if kind == "unicode":
        i = mutation[1] % (len(line) + 1)
        return line[:i] + mutation[2].encode("utf-8", "surrogatepass") + line[i:]
    if kind == "quote":
        i = mutation[1] % (len(line) + 1)
        return line[:i] + b'"' + line[i:]
    return line


def _rows(allow_quotes: bool, allow_breaks: bool) -> st.SearchStrategy:
    mutation = _mutation(allow_quotes, allow_breaks)
    return st.lists(st.tuples(st.integers(0, N_SAMPLE - 1), mutation), min_size=0, max_size=25)


def _build(street_sample, picks, crlf: bool, final_newline: bool) -> tuple[bytes, list[bytes]]:
    header, lines = street_sample
    data_lines = [_apply(lines[i].encode(), m) for i, m in picks]
    ending = b"\r\n" if crlf else b"\n"
    data = ending.join([header.encode(), *data_lines]) + (ending if final_newline else b"")
    return data, data_lines


def _ingest(fresh, data: bytes) -> tuple[object, pl.DataFrame, pl.DataFrame]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / NAME
        path.write_bytes(data)
        with fresh() as store:
            (result,) = ingest(store, [path])
            q = queries.quarantine(store, limit=10_000)
            crimes = store.crime_frame(["crime_id", "source_line"])
    return result, q, crimes


def _physical_lines(data: bytes) -> int:
    return data.count(b"\n") + (0 if data.endswith(b"\n") else 1)


def _check_common(result, q: pl.DataFrame, data: bytes) -> None:
    assert result.status in {"ok", "refused"}, result.message
    assert result.balanced
    n_lines = _physical_lines(data)
    assert all(2 <= line <= n_lines for line in q["line"]), (q["line"].to_list(), n_lines)
    assert q.height == result.quarantined


@pytest.mark.slow
@FUZZ
@given(
    picks=_rows(allow_quotes=True, allow_breaks=True),
    crlf=st.booleans(),
    final_newline=st.booleans(),
)
# Regression (fixed in e9dc5c8): an opened quote made polars raise out of ingest().
@example(picks=[(0, ("insert_bytes", 10_000, b',"'))], crlf=False, final_newline=True)
def test_fuzz_ingest_never_raises_and_balances(fresh, street_sample, picks, crlf, final_newline):
    data, _ = _build(street_sample, picks, crlf, final_newline)
    result, q, _ = _ingest(fresh, data)
    _check_common(result, q, data)


def _csv_module_records(data_lines: list[bytes], crlf: bool) -> int:
    """Records Python's csv module reads (blank lines aside), plus one per non-UTF-8 line."""
    bad, good = 0, []
    for line in data_lines:
        try:
            good.append(line.decode("utf-8") + ("\r" if crlf else ""))
        except UnicodeDecodeError:
            bad += 1
    reader = csv.reader(io.StringIO("\n".join(good) + "\n", newline=""), strict=False)
    return bad + sum(1 for record in reader if record)


@pytest.mark.slow
@FUZZ
@given(picks=_rows(allow_quotes=True, allow_breaks=False), crlf=st.booleans())
# Regression (fixed in f08e596): a quote right after a 64-character Crime ID, at the end of
# an unquoted field, used to merge lines by quote parity.
@example(picks=[(0, ("valid",)), (1, ("insert_bytes", 64, b'"')), (2, ("valid",))], crlf=False)
def test_fuzz_records_match_the_csv_module(fresh, street_sample, picks, crlf):
    """With no stray line breaks, placeharm reads as many records as the csv module does."""
    data, data_lines = _build(street_sample, picks, crlf, final_newline=True)
    result, q, _ = _ingest(fresh, data)
    _check_common(result, q, data)
    assert result.rows_read == _csv_module_records(data_lines, crlf)


@pytest.mark.slow
@FUZZ
@given(
    picks=_rows(allow_quotes=False, allow_breaks=False),
    crlf=st.booleans(),
    final_newline=st.booleans(),
)
def test_fuzz_without_quotes_every_line_is_one_record(
    fresh, street_sample, picks, crlf, final_newline
):
    """Without quote characters every non-blank line is exactly one record, on either path
    (rows of empty fields included: the slow path used to drop them, fixed in e9dc5c8)."""
    data, data_lines = _build(street_sample, picks, crlf, final_newline)
    result, q, crimes = _ingest(fresh, data)
    _check_common(result, q, data)
    assert result.status == "ok"
    nonblank = {n for n, line in enumerate(data_lines, start=2) if line}
    assert result.rows_read == len(nonblank)
    assert set(q["line"]) <= nonblank
    assert set(crimes["source_line"]) <= nonblank - set(q["line"])
    for crime_id, line in crimes.rows():
        if crime_id:
            assert crime_id.encode() in data_lines[line - 2]
