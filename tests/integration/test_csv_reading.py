"""Reading police.uk CSV files safely (issue 13): the polars panic on bad rows, encodings and
line endings a re-saved file can arrive in, refusals with what to do, whole raw rows in the
quarantine. Every file is a real Northumbria file or a slice of one."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import polars as pl
import pytest

from placeharm.errors import DataError
from placeharm.ingest.csvfile import HELD_SUFFIX
from placeharm.services import queries
from placeharm.services.ingest import ingest
from placeharm.store.duckdb import DuckDBStore

DATA_TABLES = ("crimes", "crime_history", "outcomes", "stop_searches", "quarantine")


def _lines(northumbria: Path, name: str) -> list[bytes]:
    """The file's lines without line ends (police.uk files end lines with CRLF)."""
    text = gzip.decompress((northumbria / name).read_bytes())
    return text.replace(b"\r\n", b"\n").rstrip(b"\n").split(b"\n")


def _set(line: bytes, column: int, value: bytes) -> bytes:
    parts = line.split(b",")
    parts[column] = value
    return b",".join(parts)


def _data_counts(store: DuckDBStore) -> dict[str, int]:
    counts = store.table_counts()
    return {t: counts[t] for t in DATA_TABLES} | {"coverage": store.coverage().height}


# -- the Rust panic ------------------------------------------------------------------------

STREET = "2021-05-northumbria-street.csv.gz"
SEARCH = "2021-05-northumbria-stop-and-search.csv.gz"


@pytest.mark.parametrize(
    ("gz", "far"), [(False, False), (True, False), (False, True)], ids=["csv", "gz", "csv-far"]
)
def test_bad_rows_in_one_chunk_of_a_large_file_are_quarantined_not_a_panic(
    store: DuckDBStore, tmp_path: Path, northumbria: Path, gz: bool, far: bool
):
    """The whole real street file (16,828 rows; polars reads it in several chunks) with its
    last two rows bad (and, `far`, rows 100 and 15,000 too): `pl.format` in the reasons
    panicked (`assertion failed: i < self.len()`, checked against commit 4afbf3a for the
    first two cases) when bad rows fell together in a later chunk."""
    lines = _lines(northumbria, STREET)
    last = len(lines) - 1
    bad = {
        last - 1: _set(lines[last - 1], 9, b"Alien abduction"),  # unknown crime type
        last: _set(lines[last], 5, b"-999"),  # impossible latitude
    }
    if far:
        bad[100] = _set(lines[100], 1, b"2021-3")  # bad month
        bad[15000] = _set(lines[15000], 4, b"abc")  # longitude not a number
    for index, line in bad.items():
        lines[index] = line
    data = b"\r\n".join(lines) + b"\r\n"
    path = tmp_path / (STREET if gz else STREET.removesuffix(".gz"))
    path.write_bytes(gzip.compress(data) if gz else data)

    result = ingest(store, [path])[0]
    assert result.status == "ok", result.message
    assert result.balanced and result.rows_read == last
    assert (result.inserted, result.quarantined) == (last - len(bad), len(bad))
    q = queries.quarantine(store)
    assert q["line"].to_list() == sorted(i + 1 for i in bad)  # header is line 1
    for line, raw, reason in q.select("line", "raw_text", "reason").rows():
        assert raw == bad[line - 1].decode()
        assert reason.endswith(HELD_SUFFIX)
    reasons = dict(q.select("line", "reason").rows())
    if far:
        assert reasons[101].startswith("bad month '2021-3'")
        assert reasons[15001].startswith("longitude 'abc' is not a number")
    assert reasons[last].startswith("unknown crime type 'Alien abduction'")
    assert reasons[last + 1].startswith("latitude -999 is impossible")


def test_bad_stop_and_search_rows_at_the_end_are_quarantined(
    store: DuckDBStore, tmp_path: Path, northumbria: Path
):
    lines = _lines(northumbria, SEARCH)
    last = len(lines) - 1
    lines[last - 1] = _set(lines[last - 1], 0, b"Boat search")
    lines[last] = _set(lines[last], 1, b"2021-13-01T00:00:00+00:00")
    path = tmp_path / SEARCH.removesuffix(".gz")
    path.write_bytes(b"\n".join(lines) + b"\n")
    result = ingest(store, [path])[0]
    assert result.status == "ok" and result.balanced
    assert result.quarantined == 2
    reasons = dict(queries.quarantine(store).select("line", "reason").rows())
    assert reasons[last].startswith("unknown search type 'Boat search'")
    assert reasons[last + 1].startswith("bad date '2021-13-01T00:00:00+00:00'")


# -- encodings and line endings ------------------------------------------------------------


def _slice(northumbria: Path, rows: int = 300) -> list[bytes]:
    return _lines(northumbria, STREET)[: rows + 1]


ENCODINGS = {
    "crlf": lambda t: t.replace("\n", "\r\n").encode(),
    "cr-only": lambda t: t.replace("\n", "\r").encode(),
    "utf-8-bom": lambda t: b"\xef\xbb\xbf" + t.encode(),
    "utf-16-le-bom": lambda t: b"\xff\xfe" + t.encode("utf-16-le"),
    "utf-16-be-bom": lambda t: b"\xfe\xff" + t.encode("utf-16-be"),
    "utf-16-le": lambda t: t.encode("utf-16-le"),
    "utf-16-be": lambda t: t.replace("\n", "\r\n").encode("utf-16-be"),
    "crcrlf-header": lambda t: t.replace("\n", "\r\r\n", 1).replace("\n", "\r\n"),
}


@pytest.mark.parametrize("encoding", list(ENCODINGS))
def test_a_resaved_file_reads_as_the_original(
    store: DuckDBStore, tmp_path: Path, northumbria: Path, encoding: str
):
    text = b"\n".join(_slice(northumbria)).decode() + "\n"
    plain = tmp_path / "plain" / STREET.removesuffix(".gz")
    plain.parent.mkdir()
    plain.write_text(text)
    other = tmp_path / "other" / plain.name
    other.parent.mkdir()
    made = ENCODINGS[encoding](text)
    other.write_bytes(made if isinstance(made, bytes) else made.encode())

    first = ingest(store, [plain])[0]
    again = ingest(store, [other])[0]
    assert first.status == again.status == "ok", again.message
    assert (first.rows_read, first.inserted, first.quarantined) == (300, 300, 0)
    assert (again.rows_read, again.unchanged, again.quarantined) == (300, 300, 0)


def _refused(store: DuckDBStore, path: Path, match: str) -> None:
    before = _data_counts(store)
    result = ingest(store, [path])[0]
    assert result.status == "refused", result
    assert match in result.message, result.message
    assert _data_counts(store) == before


def test_a_stray_cr_in_the_header_is_refused(store: DuckDBStore, tmp_path: Path, northumbria):
    lines = _slice(northumbria)
    lines[0] = lines[0].replace(b"Month,", b"Month\r,")
    path = tmp_path / STREET.removesuffix(".gz")
    path.write_bytes(b"\r\n".join(lines) + b"\r\n")
    _refused(store, path, "stray carriage return (CR) after 'Month'")


def test_an_edited_header_ending_in_a_lone_cr_reads(store, tmp_path: Path, northumbria):
    lines = _slice(northumbria)
    path = tmp_path / STREET.removesuffix(".gz")
    path.write_bytes(lines[0] + b"\r" + b"\r\n".join(lines[1:]) + b"\r\n")
    result = ingest(store, [path])[0]
    assert (result.status, result.inserted) == ("ok", 300)


@pytest.mark.parametrize("how", ["plain", "gzip-members", "bom"])
def test_a_file_joined_to_itself_is_refused(store, tmp_path: Path, northumbria: Path, how: str):
    """`cat a.csv a.csv`: the ASB rows (no Crime ID) would count twice."""
    data = b"\r\n".join(_slice(northumbria)) + b"\r\n"
    path = tmp_path / STREET.removesuffix(".gz")
    if how == "gzip-members":
        path = tmp_path / STREET
        path.write_bytes(gzip.compress(data) + gzip.compress(data))
    elif how == "bom":
        path.write_bytes(b"\xef\xbb\xbf" + data + b"\xef\xbb\xbf" + data)
    else:
        path.write_bytes(data + data)
    _refused(store, path, "line 302 repeats the header line")


def test_a_damaged_utf16_file_and_a_huge_header_are_refused(store, tmp_path, northumbria):
    text = b"\n".join(_slice(northumbria)).decode() + "\n"
    path = tmp_path / STREET.removesuffix(".gz")
    path.write_bytes(b"\xff\xfe" + text.encode("utf-16-le")[:-1])  # odd length
    _refused(store, path, "UTF-16 text but is damaged")
    header = text.split("\n", 1)[0].replace("Context", "Context" + "x" * (130 << 10))
    path.write_text(header + "\n" + text.split("\n", 1)[1])
    _refused(store, path, "far more than any police.uk header")


def test_an_impossible_month_in_the_name_is_refused(store, tmp_path, northumbria):
    path = tmp_path / "2021-13-northumbria-street.csv"
    path.write_bytes(b"\n".join(_slice(northumbria)) + b"\n")
    _refused(store, path, "the file name gives the month 2021-13")


def test_a_file_name_that_is_not_utf8_imports_and_prints(store, tmp_path, northumbria):
    name = os.fsdecode(b"2021-05-north\xe9umbria-street.csv")
    path = tmp_path / name
    path.write_bytes(b"\n".join(_slice(northumbria)) + b"\n")
    result = ingest(store, [path])[0]
    assert result.status == "ok" and result.inserted == 300
    assert result.source_file.endswith("2021-05-north\\xe9umbria-street.csv")
    result.source_file.encode("utf-8")  # printable: no lone surrogates
    assert store.imports(1)["source_file"][0] == result.source_file


def test_the_header_functions_refuse_with_data_errors(tmp_path: Path):
    from placeharm.ingest.csvfile import split_header

    with pytest.raises(DataError, match="empty or has no header"):
        split_header(b"\r\n\r\n", tmp_path / "x.csv")
    with pytest.raises(DataError, match="not UTF-8 or UTF-16 text"):
        split_header(b"\xff\xff\xff,abc\n1,2\n", tmp_path / "x.csv")


# -- whole rows in the quarantine ----------------------------------------------------------


def test_a_repeated_crime_id_keeps_the_whole_row(store, tmp_path: Path, northumbria: Path):
    lines = _slice(northumbria, 50)
    with_id = [i for i, line in enumerate(lines[1:], 1) if not line.startswith(b",")]
    first = lines[with_id[0]]
    changed = _set(first, 6, b'"On or near Somewhere, Else"')  # a quoted field, as read
    lines.append(changed)
    path = tmp_path / STREET.removesuffix(".gz")
    path.write_bytes(b"\n".join(lines) + b"\n")
    result = ingest(store, [path])[0]
    assert result.status == "ok" and result.balanced and result.quarantined == 1
    row = queries.quarantine(store).row(0, named=True)
    assert row["line"] == len(lines)
    assert row["raw_text"] == changed.decode()
    assert f"first at line {with_id[0] + 1}" in row["reason"]
    assert row["reason"].startswith("the same record (Crime ID ")
    assert "fix the file" not in row["reason"]
    got = store.crime_frame(["location"]).filter(pl.col("location").str.contains("Somewhere"))
    assert got.is_empty()


def test_a_repeated_api_record_keeps_the_whole_record(store, tmp_path: Path, shared_data: Path):
    import json

    source = sorted((shared_data / "policeuk_api").glob("*.json"))[0]
    records = json.loads(source.read_text())
    first = next(r for r in records if r.get("persistent_id"))
    changed = json.loads(json.dumps(first))
    changed["location"]["street"]["name"] = "On or near Somewhere Else"
    records.append(changed)
    path = tmp_path / source.name
    path.write_text(json.dumps(records))
    result = ingest(store, [path])[0]
    assert result.status == "ok" and result.balanced and result.quarantined == 1
    row = queries.quarantine(store).row(0, named=True)
    assert row["line"] == len(records)
    assert json.loads(row["raw_text"]) == changed
    assert row["reason"].endswith(
        HELD_SUFFIX + "; if you exported or edited this file yourself, give each record its own ID"
    )
