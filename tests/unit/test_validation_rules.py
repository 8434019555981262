"""Row and file validation of police.uk files pinned by whole messages (issue 19, mutation
testing): each check's boundary and the exact quarantine reason or refusal it gives, for
street, outcomes, stop-and-search and API files, and the CSV reader's file-level refusals.
Expected values are written out by hand."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path

import polars as pl
import pytest

from placeharm.errors import DataError, TooLarge
from placeharm.ingest import csvfile, policeuk
from placeharm.ingest.csvfile import ReadLimits, check_line_lengths, read_bytes, split_header
from placeharm.ingest.policeuk import parse_file

HELD = "; the row is kept out of the figures and held in quarantine for review"
API_FIX = HELD + "; if you exported or edited this file yourself, save the API response unchanged"
STREET = (
    "Crime ID,Month,Reported by,Falls within,Longitude,Latitude,Location,LSOA code,LSOA name,"
    "Crime type,Last outcome category,Context"
)
OUTCOMES = (
    "Crime ID,Month,Reported by,Falls within,Longitude,Latitude,Location,LSOA code,LSOA name,"
    "Outcome type"
)
SEARCH = (
    "Type,Date,Part of a policing operation,Policing operation,Latitude,Longitude,Gender,"
    "Age range,Self-defined ethnicity,Officer-defined ethnicity,Legislation,Object of search,"
    "Outcome,Outcome linked to object of search,Removal of more than just outer clothing"
)


def _street(i: int, month: str = "2021-05", lon: str = "-1.6", lat: str = "54.97", kind="Burglary"):
    return f"{i:064x},{month},P,P,{lon},{lat},On or near X,,,{kind},,"


def _reasons(tmp_path: Path, name: str, header: str, rows: list[str], latest: str):
    path = tmp_path / name
    path.write_text("\n".join([header, *rows]) + "\n")
    parsed = parse_file(path, latest)
    return parsed, {q.line: q.reason for q in parsed.quarantine}


def test_street_rows_each_check_and_its_reason(tmp_path: Path):
    rows = [
        _street(1),  # line 2: kept
        _street(2, month=""),
        _street(3, month="2021-5"),
        _street(4, month="2010-11"),
        _street(5, month="2021-06"),
        _street(6, lon=""),
        _street(7, lat=""),
        _street(8, lon="abc"),
        _street(9, lat="x"),
        _street(10, lon="180.5"),
        _street(11, lon="-180.5"),
        _street(12, lat="90.01"),
        _street(13, lat="-90.01"),
        _street(14, lon="inf"),
        _street(15, lat="NaN"),
        _street(16, kind=""),
        _street(17, kind="Arson"),
        _street(18, month="2021-13", kind="Arson"),  # the month is checked first
        _street(19, lon="180", lat="90"),  # kept: the bounds are allowed
        _street(20, lon="-180", lat="-90"),  # kept
        _street(21, lon="", lat=""),  # kept: no location is allowed
        _street(22, month="2010-12"),  # kept: the first month
        _street(23, month=" 2021-05 "),  # kept: spaces trimmed
        _street(24, lon=" -1.5 ", lat=" 54.9 "),  # kept
    ]
    parsed, reasons = _reasons(tmp_path, "rows.csv", STREET, rows, "2021-05")
    range_ = "is outside the data.police.uk range (2010-12 to 2021-05)"
    assert reasons == {
        3: "month is missing" + HELD,
        4: "bad month '2021-5' (expected YYYY-MM)" + HELD,
        5: f"month '2010-11' {range_}" + HELD,
        6: f"month '2021-06' {range_}" + HELD,
        7: "only one of longitude and latitude is given" + HELD,
        8: "only one of longitude and latitude is given" + HELD,
        9: "longitude 'abc' is not a number" + HELD,
        10: "latitude 'x' is not a number" + HELD,
        11: "longitude 180.5 is impossible (must be -180 to 180)" + HELD,
        12: "longitude -180.5 is impossible (must be -180 to 180)" + HELD,
        13: "latitude 90.01 is impossible (must be -90 to 90)" + HELD,
        14: "latitude -90.01 is impossible (must be -90 to 90)" + HELD,
        15: "longitude inf is impossible (must be -180 to 180)" + HELD,
        16: "latitude NaN is impossible (must be -90 to 90)" + HELD,
        17: "crime type is missing" + HELD,
        18: "unknown crime type 'Arson' (not a police.uk crime type)" + HELD,
        19: "bad month '2021-13' (expected YYYY-MM)" + HELD,
    }
    kept = parsed.frame
    assert kept["source_line"].to_list() == [2, 20, 21, 22, 23, 24, 25]
    assert kept["month"].to_list() == [dt.date(2021, 5, 1)] * 4 + [
        dt.date(2010, 12, 1),
        dt.date(2021, 5, 1),
        dt.date(2021, 5, 1),
    ]
    assert kept["longitude"].to_list() == [-1.6, 180.0, -180.0, None, -1.6, -1.6, -1.5]
    assert kept["latitude"].to_list() == [54.97, 90.0, -90.0, None, 54.97, 54.97, 54.9]
    assert kept["crime_type"].to_list() == ["Burglary"] * 7
    assert parsed.rows_read == 24
    assert dict(kept.schema) == {
        "crime_key": pl.String,
        "crime_hash": pl.UInt64,
        "crime_id": pl.String,
        "month": pl.Date,
        "reported_by": pl.String,
        "falls_within": pl.String,
        "longitude": pl.Float64,
        "latitude": pl.Float64,
        "location": pl.String,
        "lsoa_code_file": pl.String,
        "lsoa_name_file": pl.String,
        "crime_type": pl.String,
        "last_outcome_category": pl.String,
        "context": pl.String,
        "api_id": pl.Int64,  # a CSV row has no API id: null, typed as the store's column
        "source_line": pl.Int64,
    }
    # the quarantine keeps each row's text as it was in the file
    assert {q.line: q.raw_text for q in parsed.quarantine}[18] == _street(17, kind="Arson")


def test_outcome_rows_each_check_and_its_reason(tmp_path: Path):
    def row(crime_id: str, month: str = "2021-05", outcome: str = "Suspect charged") -> str:
        return f"{crime_id},{month},P,P,-1.6,54.97,On or near X,,,{outcome}"

    rows = [
        row("a" * 64),
        row(""),
        row("b" * 64, outcome=""),
        row("c" * 64, month="2021-06"),  # kept: one month after the latest
        row("d" * 64, month="2021-07"),
        row("", month="2021-07"),  # the month is checked before the ID
    ]
    parsed, reasons = _reasons(tmp_path, "outcomes.csv", OUTCOMES, rows, "2021-05")
    assert reasons == {
        3: "outcome row has no Crime ID" + HELD,
        4: "outcome type is missing" + HELD,
        6: "month '2021-07' is outside the data.police.uk range (2010-12 to 2021-06)" + HELD,
        7: "month '2021-07' is outside the data.police.uk range (2010-12 to 2021-06)" + HELD,
    }
    assert parsed.frame["source_line"].to_list() == [2, 5]
    assert parsed.frame["outcome_type"].to_list() == ["Suspect charged"] * 2


def test_stop_and_search_rows_each_check_and_its_reason(tmp_path: Path):
    def row(kind: str, date: str, lat: str = "54.97", lon: str = "-1.6") -> str:
        return f"{kind},{date},False,,{lat},{lon},Male,18-24,,,,Stolen goods,A no further action,,"

    rows = [
        row("Person search", "2020-05-01T10:00:00+00:00"),
        row("Person search", ""),
        row("Person search", "2020-05-01"),
        row("Person search", "2010-11-30T12:00:00+00:00"),
        # 00:05 BST on 1 June is a June search, after the latest month
        row("Person search", "2020-05-31T23:05:00+00:00"),
        row("Person search", "2020-05-31T22:05:00+00:00"),  # 23:05 BST on 31 May: kept
        row("", "2020-05-01T10:00:00+00:00"),
        row("Dog search", "2020-05-01T10:00:00+00:00"),
        row("Vehicle search", "2020-05-01T10:00:00+00:00", lat="95"),
        row("Person and Vehicle search", "2010-12-01T00:00:00+00:00"),  # kept: first month
    ]
    parsed, reasons = _reasons(tmp_path, "search.csv", SEARCH, rows, "2020-05")
    assert reasons == {
        3: "date is missing" + HELD,
        4: "bad date '2020-05-01' (expected ISO 8601)" + HELD,
        5: "date '2010-11-30T12:00:00+00:00' is outside the data.police.uk range" + HELD,
        6: "date '2020-05-31T23:05:00+00:00' is outside the data.police.uk range" + HELD,
        8: "search type is missing" + HELD,
        9: "unknown search type 'Dog search'" + HELD,
        10: "latitude 95 is impossible (must be -90 to 90)" + HELD,
    }
    assert parsed.frame["source_line"].to_list() == [2, 7, 11]
    assert parsed.frame["month"].to_list() == [
        dt.date(2020, 5, 1),
        dt.date(2020, 5, 1),
        dt.date(2010, 12, 1),
    ]


def test_month_helpers():
    assert policeuk._next_month("2021-05") == "2021-06"
    assert policeuk._next_month("2021-12") == "2022-01"
    assert policeuk._next_month("2009-09") == "2009-10"
    assert policeuk._month_date("2021-07") == dt.date(2021, 7, 1)


@pytest.mark.parametrize("month", ["2021-13", "2010-11", "2021-00"])
def test_a_file_named_with_an_impossible_month_is_refused(tmp_path: Path, month: str):
    path = tmp_path / f"{month}-test-street.csv"
    path.write_text(STREET + "\n" + _street(1) + "\n")
    with pytest.raises(DataError) as refused:
        parse_file(path, "2030-12")
    assert str(refused.value) == (
        f"{path}: the file name gives the month {month}, which is not a data.police.uk month "
        "(YYYY-MM, from 2010-12); the name says which month the file covers, so nothing was "
        "imported. Rename the file with the month of its rows, as police.uk names it "
        "(2021-05-northumbria-street.csv)"
    )


def test_a_header_that_is_not_police_uk(tmp_path: Path):
    path = tmp_path / "x.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(DataError) as refused:
        parse_file(path, "2030-12")
    assert str(refused.value) == (
        f"{path}: the header does not match a data.police.uk file, so nothing was imported.\n"
        "  found:    a, b\n"
        f"  expected: street: {STREET.replace(',', ', ')}\n"
        f"            outcomes: {OUTCOMES.replace(',', ', ')}\n"
        f"            stop-and-search: {SEARCH.replace(',', ', ')}\n"
        "Check that this is an unedited data.police.uk download."
    )
    boundary = tmp_path / "wards.geojson"
    boundary.write_text("a,b\n1,2\n")
    with pytest.raises(DataError) as refused:
        parse_file(boundary, "2030-12")
    assert str(refused.value).endswith(
        "\nThis looks like a boundary file: import it with "
        "`placeharm areas import FILE --name NAME`."
    )
    wide = tmp_path / "wide.csv"
    wide.write_text(",".join(["c" * 9] * 30) + "\n")  # 299 characters as found
    with pytest.raises(DataError) as refused:
        parse_file(wide, "2030-12")
    assert f"  found:    {', '.join(['c' * 9] * 30)[:200]} …\n" in str(refused.value)


# -- API records ------------------------------------------------------------------------------


def _api(**changes: object) -> dict[str, object]:
    record: dict[str, object] = {
        "category": "burglary",
        "location": {"latitude": "54.9", "longitude": "-1.6", "street": {"name": "On X"}},
        "context": "",
        "outcome_status": None,
        "persistent_id": "ab" * 32,
        "id": 1,
        "month": "2021-05",
    }
    record.update(changes)
    return record


def test_api_records_each_check_and_its_reason(tmp_path: Path):
    loc = {"latitude": "54.9", "longitude": "-1.6"}
    records = [
        _api(),
        _api(category=3),
        _api(month=202105),
        _api(month="2010-11"),
        _api(month="2021-06"),
        _api(id=True),
        _api(id=0),
        _api(id=2**63),
        _api(location=[1]),
        _api(location={"latitude": "54.9"}),
        _api(location={**loc, "street": "x"}),
        _api(outcome_status="closed"),
        _api(context=5),
        _api(context="\ud800"),
        _api(location={"latitude": [1], "longitude": "1"}),
        _api(location={"latitude": "north", "longitude": "1"}),
        _api(location={"latitude": "90.5", "longitude": "1"}),
        _api(location={"latitude": "1", "longitude": -180.5}),
        _api(location={"latitude": "1", "longitude": "1e999"}),
        _api(
            id=2**63 - 1,
            month="2010-12",
            persistent_id="cd" * 32,
            location={"latitude": 90, "longitude": " -180 "},
        ),
        _api(id=7, location={"latitude": " ", "longitude": None}, persistent_id=""),
        _api(location={**loc, "street": {"name": 5}}),
        _api(persistent_id=5),
        _api(outcome_status={"category": 5}),
        _api(
            id=8,
            persistent_id="ef" * 32,
            context="a note",
            outcome_status={"category": "Under investigation"},
        ),
    ]
    path = tmp_path / "api.json"
    path.write_text(json.dumps(records))
    parsed = parse_file(path, "2021-05")
    reasons = {q.line: q.reason.removesuffix(API_FIX) for q in parsed.quarantine}
    assert reasons == {
        2: "unknown crime category 3",
        3: "bad month 202105 (expected YYYY-MM)",
        4: "month '2010-11' is outside the data.police.uk range (2010-12 to 2021-05)",
        5: "month '2021-06' is outside the data.police.uk range (2010-12 to 2021-05)",
        6: "record has no numeric id (id is true/false true; an API id is a whole number)",
        7: "id 0 is out of range (1 to 2^63-1)",
        8: "id 9223372036854775808 is out of range (1 to 2^63-1)",
        9: "location is a list, not an object",
        10: "only one of longitude and latitude is given",
        11: "location.street is text, not an object",
        12: "outcome_status is text, not an object",
        13: "context is a number, not text",
        14: "context holds a lone UTF-16 surrogate, which is not a character",
        15: "latitude is a list, not a number",
        16: "latitude 'north' is not a number",
        17: "impossible coordinates: latitude '90.5' (must be a finite number from -90 to 90)",
        18: "impossible coordinates: longitude -180.5 (must be a finite number from -180 to 180)",
        19: "impossible coordinates: longitude '1e999' (must be a finite number from -180 to 180)",
        22: "location.street.name is a number, not text",
        23: "persistent_id is a number, not text",
        24: "outcome_status.category is a number, not text",
    }
    rows = parsed.frame.sort("source_line").to_dicts()
    assert [r["api_id"] for r in rows] == [1, 2**63 - 1, 7, 8]
    assert rows[2]["location"] is None  # no street given
    assert (rows[3]["context"], rows[3]["last_outcome_category"]) == (
        "a note",
        "Under investigation",
    )
    assert (rows[0]["context"], rows[0]["last_outcome_category"]) == (None, None)
    assert (rows[1]["latitude"], rows[1]["longitude"]) == (90.0, -180.0)
    assert rows[1]["month"] == dt.date(2010, 12, 1)
    assert (rows[2]["latitude"], rows[2]["longitude"], rows[2]["crime_id"]) == (None, None, None)
    assert (rows[0]["location"], rows[0]["context"], rows[0]["crime_id"]) == (
        "On X",
        None,
        "ab" * 32,
    )


# -- the CSV reader's file-level refusals ------------------------------------------------------


def test_line_length_limit_is_inclusive(tmp_path: Path):
    path = tmp_path / "f.csv"
    check_line_lengths(b"abcd\nefgh\n", path, 4)  # 4 bytes and its line end: allowed
    check_line_lengths(b"abcd", path, 4)
    check_line_lengths(b"\nabcd\nefgh", path, 4)  # an empty first line
    with pytest.raises(TooLarge) as long:
        check_line_lengths(b"abcd\nefghi\nj\n", path, 4)
    assert str(long.value) == (
        f"{path}: line 2 is longer than 0.00390625 KB (setting max_line_kb); no police.uk or "
        "SOC record comes near that, so the file was refused whole, nothing imported. Is it a "
        "CSV file?"
    )
    with pytest.raises(TooLarge, match="line 3 is longer than 2 KB"):
        check_line_lengths(b"a\rb\r" + b"c" * 2049, path, 2048)  # CR-only line ends
    check_line_lengths(b"a\rb\r" + b"c" * 2048, path, 2048)


def test_read_bytes_limits(tmp_path: Path):
    plain = tmp_path / "plain.csv"
    plain.write_bytes(b"x" * 1024)
    assert read_bytes(plain, ReadLimits(max_bytes=1024)) == b"x" * 1024
    with pytest.raises(TooLarge) as big:
        read_bytes(plain, ReadLimits(max_bytes=1023))
    assert str(big.value) == (
        f"{plain} is over 0.000975609 MB, the most one imported file may hold (setting "
        "max_decompressed_mb); nothing was imported. Split the file, or raise the setting if "
        "it is genuine"
    )
    packed = tmp_path / "packed.csv"
    packed.write_bytes(gzip.compress(b"y" * 2048) + b"\x00\x00" + gzip.compress(b"z"))
    assert read_bytes(packed, ReadLimits(max_bytes=2049)) == b"y" * 2048 + b"z"
    with pytest.raises(TooLarge) as bomb:
        read_bytes(packed, ReadLimits(max_bytes=2048))
    assert "once decompressed (a gzip bomb?), the most one imported file may hold" in str(
        bomb.value
    )
    cut = tmp_path / "cut.csv"
    cut.write_bytes(gzip.compress(b"y" * 2048)[:-12])
    with pytest.raises(DataError) as truncated:
        read_bytes(cut)
    assert str(truncated.value) == (
        f"{cut} looks gzipped but cannot be decompressed (the gzip stream ends early "
        "(truncated download?)); download it again"
    )
    with pytest.raises(DataError) as absent:
        read_bytes(tmp_path / "none.csv")
    assert str(absent.value) == (
        f"cannot read {tmp_path / 'none.csv'}: No such file or directory; check the path"
    )


def test_split_header_encodings_and_refusals(tmp_path: Path):
    path = tmp_path / "f.csv"
    assert split_header(b"\xef\xbb\xbfa,b\r\n1,2\r\n", path) == (("a", "b"), b"1,2\r\n")
    assert split_header("a, b\n1,2\n".encode("utf-16"), path) == (("a", "b"), b"1,2\n")
    assert split_header("ab,c\n1,2\n".encode("utf-16-le"), path) == (("ab", "c"), b"1,2\n")
    assert split_header("ab,c\n1,2\n".encode("utf-16-be"), path) == (("ab", "c"), b"1,2\n")
    assert split_header(b"a,b\r1,2\r3,4", path) == (("a", "b"), b"1,2\n3,4")
    assert split_header(b"a,b\r\r\n1,2\n", path) == (("a", "b"), b"1,2\n")
    assert split_header(b"a,b", path) == (("a", "b"), b"")
    # a header saved with a CR-only end before LF rows
    assert split_header(b"a,b\r1,2\n3,4\n", path) == (("a", "b"), b"1,2\n3,4\n")
    with pytest.raises(DataError) as broken:
        split_header(b"a,b\rc\n1,2\n", path)
    assert str(broken.value) == (
        f"{path}: the header line is broken by a stray carriage return (CR) after 'b', so its "
        "columns cannot be trusted and nothing was imported. The file was edited after "
        "download: download it again, or remove the stray line break"
    )
    for data, after in (
        (b"a,b\rc\rd\n", "b"),  # the first CR is where the header breaks
        (b"a,b\r1\r,2\nx,y\n", "b"),  # as many commas after it, but another CR
        (b"abc\rd,e\n", "abc"),  # no comma before it
        # the last field before the CR, not UTF-8, shown with a replacement character
        (b"a,b, \xffcolumn" + b"y" * 40 + b"\rz\n", "\ufffdcolumn" + "y" * 33),
    ):
        with pytest.raises(DataError) as stray:
            split_header(data, path)
        assert str(stray.value).startswith(
            f"{path}: the header line is broken by a stray carriage return (CR) after '{after}', so"
        ), data
    with pytest.raises(DataError) as empty:
        split_header(b" \n1,2\n", path)
    assert str(empty.value) == (
        f"{path}: the file is empty or has no header line; nothing was imported"
    )
    with pytest.raises(DataError) as binary:
        split_header(b"\xff\xfa\xfb,b\n", path)
    assert str(binary.value) == (
        f"{path}: the header line is not UTF-8 or UTF-16 text, so nothing was imported; is "
        "this a CSV file? If a spreadsheet saved it, save it again as CSV UTF-8"
    )
    with pytest.raises(DataError) as long:
        split_header(b"a" * (64 * 1024 + 1) + b"\n", path)
    assert str(long.value) == (
        f"{path}: the header line is 65,537 bytes long, far more than any police.uk header; "
        "nothing was imported. Is this a CSV file?"
    )
    assert split_header(b"a" * (64 * 1024) + b"\n", path)[0] == ("a" * 64 * 1024,)
    with pytest.raises(DataError) as damaged:
        split_header(b"\xff\xfea\x00\x00\xd8", path)
    assert str(damaged.value) == (
        f"{path}: the file is UTF-16 text but is damaged at byte 4 (a truncated copy?), so "
        "nothing was imported; download it again, or save it again as CSV UTF-8"
    )
    with pytest.raises(DataError) as twice:
        split_header(b"a,b\n1,2\na,b\r\n3,4\n", path)
    assert str(twice.value) == (
        f"{path}: line 3 repeats the header line, so this looks like two files joined into "
        "one; nothing was imported (rows without an ID would count twice). Import each file "
        "on its own"
    )
    for data, line in (
        (b"a,b\na,b\n1,2\n", 2),  # right after the header
        (b"a,b\n\na,b\n", 3),  # after an empty line
        (b"a,b\n1,2\n3,4\na,b\n", 4),
        (b"a,b\n1,2\na,b\nxa,b\n", 3),  # a later line only contains it
    ):
        with pytest.raises(DataError) as repeated:
            split_header(data, path)
        assert str(repeated.value).startswith(f"{path}: line {line} repeats the header"), data
    for data, line in (
        (b"a,b\n1,2\na,b", 3),  # the last line, without a line end
        (b"a,b\nxa,b\na,b\n", 3),  # after a line that only contains it
        (b"a,b\nxa,b\na,b\nya,b\n", 3),
        (b"a,b \n1,2\na,b \n", 3),  # trailing spaces are part of the header line
    ):
        with pytest.raises(DataError) as repeated:
            split_header(data, path)
        assert str(repeated.value).startswith(f"{path}: line {line} repeats the header"), data
    with pytest.raises(DataError, match="the file is empty or has no header line"):
        split_header(b"\na,b\n", path)  # an empty first line
    assert split_header(b"a,BOX\r\n1,2\r\n", path) == (("a", "BOX"), b"1,2\r\n")
    # UTF-16 without a byte-order mark, told by its NUL bytes: 4 bytes are enough, and only
    # the first 4 characters are looked at
    assert split_header("ab".encode("utf-16-le"), path) == (("ab",), b"")
    assert split_header("abcdĀ,x\n".encode("utf-16-le"), path) == (("abcdĀ", "x"), b"")
    assert split_header("abcdĀ,x\n".encode("utf-16-be"), path) == (("abcdĀ", "x"), b"")
    # the header's text inside a longer line is not a repeat
    assert split_header(b"a,b\n1,2\nxa,b\na,bc\n", path)[1] == b"1,2\nxa,b\na,bc\n"
    with pytest.raises(DataError, match="line 2 repeats"):
        split_header(b"a,b\n\xef\xbb\xbfa,b\n", path)


def test_held_reasons_and_wrong_columns():
    assert csvfile.held("bad") == "bad" + HELD
    assert csvfile.held("bad", "fix it") == (
        "bad" + HELD + "; if you exported or edited this file yourself, fix it"
    )
    assert csvfile._wrong_columns(3, 12, False) == (
        "wrong number of columns: 3 instead of 12" + HELD + "; if you exported or edited this "
        "file yourself, put double quotes around every field that contains a comma"
    )
    assert csvfile._wrong_columns(1, 12, True) == (
        "wrong number of columns: 1 instead of 12 (a quote is never closed, so every line after "
        "it was read into one field)" + HELD + "; if you exported or edited this file yourself, "
        "close the quote"
    )


def test_identical_outcome_rows_are_ranked(tmp_path: Path):
    def row(crime_id: str, outcome: str, month: str = "2021-05") -> str:
        return f"{crime_id},{month},P,P,-1.6,54.97,On or near X,,,{outcome}"

    a, b = "a" * 64, "b" * 64
    rows = [
        row(a, "Suspect charged"),
        row(b, "Suspect charged"),
        row(a, "Suspect charged"),
        row(a, "Under investigation"),
        row(a, "Suspect charged", month="2021-04"),
        row(a, "Suspect charged"),
    ]
    parsed, reasons = _reasons(tmp_path, "outcomes.csv", OUTCOMES, rows, "2021-05")
    assert reasons == {}
    assert parsed.frame["outcome_ordinal"].to_list() == [0, 0, 1, 0, 0, 2]
