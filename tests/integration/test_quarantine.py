"""Crafted files with the real street header: every bad row quarantined with file, line, text
and reason; every good row stored with its own line number; nothing lost."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from placeharm.services import queries
from placeharm.services.ingest import ingest
from placeharm.store.duckdb import DuckDBStore

pytestmark = pytest.mark.both_engines  # issue 17: DuckDB and PostgreSQL

NAME = "2021-05-northumbria-street.csv"
ID, MONTH, LON, LAT, LOCATION, CRIME_TYPE = 0, 1, 4, 5, 6, 9


def _pick(lines: list[str]) -> tuple[list[list[str]], list[str]]:
    """Distinct real crime rows (with an ID, no quotes) and one real ASB row, as fields."""
    crimes = [
        line.split(",")
        for line in lines
        if '"' not in line and line.split(",")[ID] and line.split(",")[LON]
    ]
    asb = next(
        line.split(",")
        for line in lines
        if '"' not in line and not line.split(",")[ID] and line.split(",")[LON]
    )
    return crimes[:12], asb


def _with(fields: list[str], index: int, value: str) -> list[str]:
    out = list(fields)
    out[index] = value
    return out


def _crafted(street_sample: tuple[str, list[str]], bad_utf8: bool) -> tuple[list[bytes], dict]:
    """Physical lines (without endings) and what is expected of them."""
    header, lines = street_sample
    crimes, asb = _pick(lines)
    a, b, c, d = crimes[0], crimes[1], crimes[2], crimes[3]
    j = ",".join
    multi = j(_with(c, LOCATION, '"On or near\nHigh Street"'))
    d_line = j(d).encode()
    if bad_utf8:
        d_line = j(_with(d, LOCATION, "On or near X")).encode().replace(b" X", b" \xff")
    physical = [
        header.encode(),  # 1
        j(a).encode(),  # 2 valid
        (j(a) + ",extra").encode(),  # 3 too many columns
        j(a[:-1]).encode(),  # 4 too few columns
        j(_with(crimes[4], MONTH, "2021-13")).encode(),  # 5
        j(_with(crimes[5], MONTH, "May 2021")).encode(),  # 6
        j(_with(crimes[6], LON, "abc")).encode(),  # 7
        j(_with(crimes[7], LAT, "95")).encode(),  # 8
        j(_with(crimes[8], LAT, "")).encode(),  # 9 only one coordinate
        *multi.encode().split(b"\n"),  # 10-11 quoted field with a line break: valid
        j(_with(crimes[9], CRIME_TYPE, "Jaywalking")).encode(),  # 12
        d_line,  # 13 valid, or bad UTF-8
        j(b).encode(),  # 14 valid
        j(asb).encode(),  # 15 ASB
        j(asb).encode(),  # 16 the same ASB row again: a second incident
    ]
    reasons = {
        3: "wrong number of columns: 13 instead of 12",
        4: "wrong number of columns: 11 instead of 12",
        5: "bad month '2021-13'",
        6: "bad month 'May 2021'",
        7: "longitude 'abc' is not a number",
        8: "latitude 95 is impossible",
        9: "only one of longitude and latitude",
        12: "unknown crime type 'Jaywalking'",
    }
    if bad_utf8:
        reasons[13] = "bad encoding: byte 0xff"
    stored_lines = {a[ID]: 2, c[ID]: 10, b[ID]: 14}
    if not bad_utf8:
        stored_lines[d[ID]] = 13
    return physical, {"reasons": reasons, "stored_lines": stored_lines, "asb": asb}


@pytest.mark.parametrize("crlf", [False, True], ids=["lf", "crlf"])
@pytest.mark.parametrize("bad_utf8", [False, True], ids=["utf8", "bad-utf8"])
def test_crafted_bad_rows_are_quarantined_with_line_reason_and_text(
    store: DuckDBStore, tmp_path: Path, street_sample, crlf: bool, bad_utf8: bool
):
    physical, expected = _crafted(street_sample, bad_utf8)
    ending = b"\r\n" if crlf else b"\n"
    path = tmp_path / NAME
    path.write_bytes(ending.join(physical) + ending)

    result = ingest(store, [path])[0]
    assert result.status == "ok", result.message
    assert result.rows_read == 14  # 15 data lines, one record spans two of them
    assert result.balanced
    assert result.quarantined == len(expected["reasons"])
    assert result.inserted == 14 - len(expected["reasons"])
    assert (result.updated, result.unchanged) == (0, 0)

    q = queries.quarantine(store).filter(pl.col("import_id") == result.import_id)
    assert q["line"].to_list() == sorted(expected["reasons"])
    assert set(q["source_file"]) == {str(path)}
    for line, reason, raw in q.select("line", "reason", "raw_text").rows():
        assert expected["reasons"][line] in reason, (line, reason)
        text = physical[line - 1].decode("utf-8", errors="backslashreplace")
        assert raw.rstrip("\r") == text, (line, raw)

    crimes = store.crime_frame(["crime_id", "source_line", "location", "crime_type"])
    with_id = crimes.filter(pl.col("crime_id").is_not_null())
    assert dict(with_id.select("crime_id", "source_line").rows()) == expected["stored_lines"]
    multi = with_id.filter(pl.col("source_line") == 10)["location"].item()
    assert multi == "On or near" + ending.decode() + "High Street"  # kept as written
    # Two identical ASB rows are two incidents, each with its own line.
    asb = crimes.filter(pl.col("crime_id").is_null())
    assert sorted(asb["source_line"]) == [15, 16]
    assert set(asb["crime_type"]) == {"Anti-social behaviour"}

    before = store.table_counts()
    again = ingest(store, [path])[0]
    assert again.balanced
    assert (again.inserted, again.updated) == (0, 0)
    assert again.unchanged == result.inserted
    assert again.quarantined == result.quarantined
    after = store.table_counts()
    assert after["crimes"] == before["crimes"]
    assert after["crime_history"] == 0


def test_blank_lines_and_bom_keep_line_numbers(store: DuckDBStore, tmp_path: Path, street_sample):
    header, lines = street_sample
    crimes, _ = _pick(lines)
    body = [",".join(crimes[0]), "", ",".join(crimes[1]), "", "", ",".join(crimes[2])]
    path = tmp_path / NAME
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join([header, *body]).encode() + b"\r\n")
    result = ingest(store, [path])[0]
    assert result.status == "ok"
    assert (result.rows_read, result.inserted, result.quarantined) == (3, 3, 0)
    got = dict(store.crime_frame(["crime_id", "source_line"]).rows())
    assert got == {crimes[0][ID]: 2, crimes[1][ID]: 4, crimes[2][ID]: 7}


def test_duplicate_crime_id_in_one_file(store: DuckDBStore, tmp_path: Path, street_sample):
    header, lines = street_sample
    crimes, _ = _pick(lines)
    a, b = crimes[0], crimes[1]
    changed = _with(a, LOCATION, "On or near Somewhere Else")
    body = [",".join(a), ",".join(b), ",".join(a), ",".join(changed)]
    path = tmp_path / NAME
    path.write_text("\n".join([header, *body]) + "\n")
    result = ingest(store, [path])[0]
    assert result.status == "ok" and result.balanced
    assert result.rows_read == 4
    assert result.inserted == 2
    assert result.unchanged == 1  # the identical repeat
    assert result.quarantined == 1  # the repeat with different content
    q = queries.quarantine(store)
    assert q["line"].to_list() == [5]
    assert "first at line 2" in q["reason"][0]
    assert (
        store.crime_frame(["location"])
        .filter(pl.col("location") == "On or near Somewhere Else")
        .is_empty()
    )


def test_months_outside_the_police_uk_range_are_quarantined(
    store: DuckDBStore, tmp_path: Path, street_sample
):
    header, lines = street_sample
    crimes, _ = _pick(lines)
    body = [
        ",".join(_with(crimes[0], MONTH, "2009-01")),
        ",".join(_with(crimes[1], MONTH, "2999-01")),
        ",".join(_with(crimes[2], MONTH, "")),
        ",".join(crimes[3]),
    ]
    path = tmp_path / NAME
    path.write_text("\n".join([header, *body]) + "\n")
    result = ingest(store, [path])[0]
    assert (result.rows_read, result.inserted, result.quarantined) == (4, 1, 3)
    reasons = dict(queries.quarantine(store).select("line", "reason").rows())
    assert "outside the data.police.uk range" in reasons[2]
    assert "outside the data.police.uk range" in reasons[3]
    assert "month is missing" in reasons[4]


def test_outcome_row_without_crime_id_is_quarantined(
    store: DuckDBStore, tmp_path: Path, northumbria: Path
):
    import gzip

    text = gzip.decompress(
        (northumbria / "2021-06-northumbria-outcomes.csv.gz").read_bytes()
    ).decode()
    lines = text.replace("\r\n", "\n").split("\n")
    header, rows = lines[0], [line for line in lines[1:] if line][:5]
    no_id = "," + rows[0].split(",", 1)[1]
    no_type = rows[1].rsplit(",", 1)[0] + ","
    path = tmp_path / "2021-06-northumbria-outcomes.csv"
    path.write_text("\n".join([header, no_id, no_type, *rows[2:]]) + "\n")
    result = ingest(store, [path])[0]
    assert result.source_kind == "outcomes"
    assert (result.rows_read, result.inserted, result.quarantined) == (5, 3, 2)
    reasons = dict(queries.quarantine(store).select("line", "reason").rows())
    assert reasons[2].startswith("outcome row has no Crime ID; the row is kept out")
    assert reasons[3].startswith("outcome type is missing; the row is kept out")


# -- quotes in the wrong place (regressions for bugs fixed in e9dc5c8 and f08e596) ------------


def _stray_file(tmp_path: Path, header: str, rows: list[list[str]]) -> Path:
    path = tmp_path / NAME
    path.write_text("\n".join([header, *(",".join(r) for r in rows)]) + "\n")
    return path


def test_one_stray_quote_inside_a_field_loses_only_that_row(
    store: DuckDBStore, tmp_path: Path, street_sample
):
    """A quote in the middle of an unquoted field is text (csv module, RFC 4180 readers).

    Was a bug: quote parity swallowed every later line into one quarantined record.
    """
    header, lines = street_sample
    crimes, _ = _pick(lines)
    stray = _with(crimes[1], LOCATION, 'On or near 5" Street')
    path = _stray_file(tmp_path, header, [crimes[0], stray, crimes[2], crimes[3], crimes[4]])
    result = ingest(store, [path])[0]
    assert result.status == "ok"
    assert result.rows_read == 5  # Python's csv module reads five 12-field records here
    assert result.inserted == 5
    stored = dict(store.crime_frame(["crime_id", "location"]).rows())
    assert stored[crimes[1][ID]] == 'On or near 5" Street'


def test_two_stray_quotes_in_different_rows_do_not_crash_ingest(
    store: DuckDBStore, tmp_path: Path, street_sample
):
    """Was a bug: polars raised ComputeError ('CSV malformed'), which escaped ingest()."""
    header, lines = street_sample
    crimes, _ = _pick(lines)
    stray_1 = _with(crimes[1], LOCATION, 'On or near 5" Street')
    stray_2 = _with(crimes[3], LOCATION, 'On or near 7" Road')
    path = _stray_file(tmp_path, header, [crimes[0], stray_1, crimes[2], stray_2, crimes[4]])
    result = ingest(store, [path])[0]
    assert result.balanced
    assert (result.rows_read, result.inserted) == (5, 5)


def test_stray_quote_at_the_end_of_a_field_loses_only_that_row(
    store: DuckDBStore, tmp_path: Path, street_sample
):
    """Was a bug (fixed in f08e596): a quote at the END of an unquoted field passed the
    structural-quote check, and quote parity swallowed the later lines (5 read as 2)."""
    header, lines = street_sample
    crimes, _ = _pick(lines)
    stray = _with(crimes[1], LOCATION, 'On or near 12"')
    path = _stray_file(tmp_path, header, [crimes[0], stray, crimes[2], crimes[3], crimes[4]])
    result = ingest(store, [path])[0]
    assert result.status == "ok"
    assert result.rows_read == 5  # the csv module reads five 12-field records
    stored = set(store.crime_frame(["crime_id"])["crime_id"])
    assert {crimes[0][ID], crimes[2][ID], crimes[3][ID], crimes[4][ID]} <= stored


def test_row_of_empty_fields_is_quarantined_on_the_slow_path_too(
    store: DuckDBStore, tmp_path: Path, street_sample
):
    """Was a bug: the slow path skipped ',,,,,,,,,,,' as blank (not read, not quarantined)."""
    header, lines = street_sample
    crimes, _ = _pick(lines)
    path = tmp_path / NAME
    path.write_bytes(
        "\n".join([header, ",".join(crimes[0]), "," * 11, ",".join(crimes[1]), ",,,"]).encode()
        + b"\n\xff,not utf-8\n"
    )
    result = ingest(store, [path])[0]
    assert result.rows_read == 5  # five data lines, each one record
    reasons = dict(queries.quarantine(store).select("line", "reason").rows())
    assert set(reasons) == {3, 5, 6}
    assert "month is missing" in reasons[3]
    assert "wrong number of columns: 4" in reasons[5]
    assert "bad encoding" in reasons[6]


def test_unclosed_quote_does_not_crash_ingest(
    store: DuckDBStore, tmp_path: Path, street_sample, northumbria: Path
):
    """Was a bug: polars raised ComputeError on the open quote and ingest() crashed."""
    header, lines = street_sample
    crimes, _ = _pick(lines)
    path = tmp_path / "2021-07-northumbria-street.csv"
    # The last field (Context) opens a quote that never closes: 12 fields, then end of file.
    opened = ",".join(crimes[0][:-1]) + ',"'
    path.write_text(header + "\n" + ",".join(crimes[1]) + "\n" + opened + "\n")
    good = northumbria / "2021-05-northumbria-street.csv.gz"
    results = ingest(store, [good, path])
    assert results[0].status == "ok"
    assert results[1].status == "ok"
    assert results[1].balanced
    assert results[1].rows_read == 2


def test_unclosed_quote_does_not_swallow_the_rows_after_it(
    store: DuckDBStore, tmp_path: Path, street_sample
):
    """Was a bug (introduced in e9dc5c8, fixed in f08e596): the slow path's
    csv.reader(strict=False) read every later line into the open field and accepted it."""
    header, lines = street_sample
    crimes, _ = _pick(lines)
    opened = ",".join(crimes[0][:-1]) + ',"'  # Context opens a quote that never closes
    after = [",".join(crimes[1]), ",".join(crimes[2])]
    path = tmp_path / NAME
    path.write_text("\n".join([header, opened, *after]) + "\n")
    result = ingest(store, [path])[0]
    assert result.status == "ok" and result.balanced
    stored = store.crime_frame(["crime_id", "context"])
    # No stored field holds other rows of the file ...
    assert not any("\n" in (c or "") for c in stored["context"])
    # ... and each later row is either stored as itself or visible in the quarantine.
    quarantined_text = "\n".join(queries.quarantine(store)["raw_text"])
    for row in (crimes[1], crimes[2]):
        assert row[ID] in set(stored["crime_id"]) or row[ID] in quarantined_text
    assert crimes[0][ID] not in set(stored["crime_id"])  # the malformed record is not data


@pytest.mark.both_engines
def test_a_line_with_a_nul_is_quarantined_with_its_text_escaped(
    store: DuckDBStore, tmp_path: Path, street_sample
):
    """Was a bug on PostgreSQL (issue 17): a NUL in a field was stored on DuckDB but failed
    the whole file on PostgreSQL, whose text cannot hold one. A NUL is not text and no
    police.uk field holds one: the line is quarantined on either engine, its raw text showing
    the NUL as \\x00 (as bad bytes are shown), and the other lines import."""
    header, lines = street_sample
    crimes, _ = _pick(lines)
    damaged = ",".join(_with(crimes[1], LOCATION, "On or near \x00Park"))
    path = tmp_path / NAME
    path.write_text("\n".join([header, ",".join(crimes[0]), damaged, ",".join(crimes[2])]) + "\n")
    result = ingest(store, [path])[0]
    assert result.status == "ok" and result.rows_read == 3 and result.quarantined == 1
    held = queries.quarantine(store).select("line", "raw_text", "reason").rows()
    assert len(held) == 1
    line, raw, reason = held[0]
    assert line == 3 and raw == damaged.replace("\x00", "\\x00")
    assert reason.startswith("bad character: a NUL (0x00) at column ")
    stored = set(store.crime_frame(["crime_id"])["crime_id"])
    assert {crimes[0][ID], crimes[2][ID]} <= stored and crimes[1][ID] not in stored


@pytest.mark.both_engines
def test_a_nul_inside_a_record_of_several_lines_is_escaped_in_every_text_held(
    store: DuckDBStore, tmp_path: Path, street_sample
):
    """Review finding: the raw text of a record spanning lines (a quoted field with a line
    break) kept the NUL of one of its lines, so DuckDB held a NUL that PostgreSQL could not."""
    header, lines = street_sample
    crimes, _ = _pick(lines)
    damaged = ",".join(_with(crimes[1], LOCATION, '"On or near\nPark \x00Road"'))
    path = tmp_path / NAME
    path.write_text("\n".join([header, ",".join(crimes[0]), damaged, ",".join(crimes[2])]) + "\n")
    result = ingest(store, [path])[0]
    assert result.status == "ok" and result.quarantined >= 1
    held = queries.quarantine(store).select("raw_text").to_series().to_list()
    assert held and all("\x00" not in text for text in held)
    assert any("\\x00" in text for text in held)
    # the NUL line is held on its own, so the record's quote is never closed: the lines
    # after it are that record's (held with it); the line before it imports
    assert (result.rows_read, result.inserted, result.quarantined) == (3, 1, 2)
    assert set(store.crime_frame(["crime_id"])["crime_id"]) == {crimes[0][ID]}
