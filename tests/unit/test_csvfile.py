"""The CSV reader: gzip by content, header handling, and the fast and slow paths agreeing."""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path

import pytest

from placeharm.errors import DataError, TooLarge
from placeharm.ingest.csvfile import (
    LINE_COL,
    ReadLimits,
    check_line_lengths,
    read_bytes,
    read_table,
    split_header,
)

HEADER = ("a", "b", "c")


def _table(body: bytes, tmp_path: Path):
    return read_table(tmp_path / "x.csv", HEADER, body)


def test_read_bytes_gunzips_by_content_not_name(tmp_path: Path):
    plain = tmp_path / "plain.csv.gz"
    plain.write_bytes(b"a,b,c\n1,2,3\n")
    assert read_bytes(plain) == b"a,b,c\n1,2,3\n"
    zipped = tmp_path / "zipped.csv"
    zipped.write_bytes(gzip.compress(b"a,b,c\n1,2,3\n"))
    assert read_bytes(zipped) == b"a,b,c\n1,2,3\n"


def test_read_bytes_reads_every_gzip_member(tmp_path: Path):
    path = tmp_path / "multi.csv.gz"
    path.write_bytes(gzip.compress(b"a,b,c\n1,2,3\n") + gzip.compress(b"4,5,6\n"))
    assert read_bytes(path) == b"a,b,c\n1,2,3\n4,5,6\n"


def test_read_bytes_truncated_gzip_is_a_data_error(tmp_path: Path):
    path = tmp_path / "cut.csv.gz"
    path.write_bytes(gzip.compress(b"a,b,c\n" + b"1,2,3\n" * 1000)[:40])
    with pytest.raises(DataError, match="cannot be decompressed"):
        read_bytes(path)


def test_read_bytes_missing_file_is_a_data_error(tmp_path: Path):
    with pytest.raises(DataError, match="cannot read"):
        read_bytes(tmp_path / "nope.csv")


def test_split_header_strips_bom_cr_and_spaces(tmp_path: Path):
    header, body = split_header(b'\xef\xbb\xbf a ,"b", c\r\n1,2,3\r\n', tmp_path / "x.csv")
    assert header == HEADER
    assert body == b"1,2,3\r\n"


@pytest.mark.parametrize("data", [b"", b"\n", b"   \r\n1,2,3\n"])
def test_split_header_refuses_empty(tmp_path: Path, data: bytes):
    with pytest.raises(DataError, match="empty"):
        split_header(data, tmp_path / "x.csv")


def test_fast_path_line_numbers_and_values(tmp_path: Path):
    body = b'1,2,3\n\n"x,y","multi\nline",z\n4,5\n"q""uote",7,8\n9,10,11'
    t = _table(body, tmp_path)
    assert t.rows_read == 5
    assert t.frame[LINE_COL].to_list() == [2, 4, 7, 8]
    assert t.frame["a"].to_list() == ["1", "x,y", 'q"uote', "9"]
    assert t.frame["b"].to_list() == ["2", "multi\nline", "7", "10"]
    assert [(q.line, q.raw_text) for q in t.quarantine] == [(6, "4,5")]
    assert t.quarantine[0].reason.startswith("wrong number of columns: 2 instead of 3; ")


def _csv_module_rows(body: bytes) -> list[list[str]]:
    return [r for r in csv.reader(io.StringIO(body.decode(), newline="")) if r]


@pytest.mark.parametrize("crlf", [False, True])
def test_slow_path_agrees_with_fast_path(tmp_path: Path, crlf: bool):
    lines = [b"1,2,3", b'"x,y","multi', b'line",z', b"", b"4,5", b'"q""uote",7,8', b"9,,11"]
    ending = b"\r\n" if crlf else b"\n"
    body = ending.join(lines) + ending
    fast = _table(body, tmp_path)
    slow = _table(body + b"\xff,\xfe,x" + ending, tmp_path)  # a non-UTF-8 line forces it
    assert slow.rows_read == fast.rows_read + 1
    assert [q.line for q in slow.quarantine] == [q.line for q in fast.quarantine] + [9]
    assert "bad encoding: byte 0xff at column 1" in slow.quarantine[-1].reason
    cols = ["a", "b", "c", LINE_COL]
    # Same values on both paths, including a CRLF kept inside the quoted field.
    assert slow.frame.select(cols).equals(fast.frame.select(cols))
    assert fast.frame["b"][1] == "multi" + ending.decode() + "line"
    assert fast.frame["c"].to_list() == ["3", "z", "8", "11"]
    assert fast.frame["b"][3] is None  # an empty field is null on both paths


def test_fast_path_matches_the_csv_module_on_a_real_file(northumbria: Path, tmp_path: Path):
    data = gzip.decompress((northumbria / "2020-05-northumbria-street.csv.gz").read_bytes())
    header, body = split_header(data, tmp_path / "x.csv")
    t = read_table(tmp_path / "x.csv", header, body)
    expected = _csv_module_rows(body)
    assert t.rows_read == len(expected) and t.quarantine == []
    got = t.frame.drop(LINE_COL).fill_null("").rows()
    assert [list(r) for r in got] == expected
    assert t.frame[LINE_COL].to_list() == list(range(2, len(expected) + 2))


def test_unclosed_quote_at_end_is_reported(tmp_path: Path):
    t = _table(b'1,2,3\n4,"5,6\n7,8,9\n', tmp_path)
    assert t.frame[LINE_COL].to_list() == [2]
    assert len(t.quarantine) == 1
    assert t.quarantine[0].line == 3
    assert "a quote is never closed" in t.quarantine[0].reason
    assert t.rows_read == 2


def test_read_bytes_stops_a_gzip_bomb_at_the_limit(tmp_path: Path):
    """64 MB of zeros compress to ~64 KB; with a 1 MB limit the read stops after ~1 MB."""
    bomb = tmp_path / "bomb.csv.gz"
    bomb.write_bytes(gzip.compress(b"\0" * (64 << 20), compresslevel=9))
    assert bomb.stat().st_size < 100_000
    with pytest.raises(TooLarge, match="over 1 MB once decompressed"):
        read_bytes(bomb, ReadLimits(max_bytes=1 << 20))


def test_read_bytes_limit_is_exact_across_members_and_padding(tmp_path: Path):
    body = b"a,b,c\n" + b"1,2,3\n" * 100  # 606 bytes
    path = tmp_path / "members.csv.gz"
    # two members with the zero padding some tools write between them
    path.write_bytes(gzip.compress(body[:300]) + b"\0" * 8 + gzip.compress(body[300:]))
    assert read_bytes(path, ReadLimits(max_bytes=len(body))) == body
    with pytest.raises(TooLarge):
        read_bytes(path, ReadLimits(max_bytes=len(body) - 1))
    plain = tmp_path / "plain.csv"
    plain.write_bytes(body)
    assert read_bytes(plain, ReadLimits(max_bytes=len(body))) == body
    with pytest.raises(TooLarge, match="max_decompressed_mb"):
        read_bytes(plain, ReadLimits(max_bytes=len(body) - 1))


def test_check_line_lengths_names_the_first_long_line(tmp_path: Path):
    path = tmp_path / "x.csv"
    check_line_lengths(b"ab\n" + b"x" * 10 + b"\ncd", path, 10)  # a line of exactly 10
    check_line_lengths(b"x" * 10, path, 10)  # the last line has no newline
    with pytest.raises(TooLarge, match="line 3 is longer than"):
        check_line_lengths(b"ab\ncd\n" + b"x" * 11 + b"\nef\n", path, 10)
    with pytest.raises(TooLarge, match="line 1 is longer"):
        check_line_lengths(b"x" * 11, path, 10)
    many = b"".join(b"y" * (i % 10) + b"\n" for i in range(10_000))
    check_line_lengths(many, path, 10)
    with pytest.raises(TooLarge, match="line 10001 is"):
        check_line_lengths(many + b"z" * 11, path, 10)


def test_a_header_field_over_the_csv_limit_is_a_data_error(tmp_path: Path):
    with pytest.raises(DataError, match="header line is 200,002 bytes long"):
        split_header(b"a," + b"b" * 200_000 + b"\n1,2\n", tmp_path / "x.csv")
