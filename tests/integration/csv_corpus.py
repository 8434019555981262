"""A seeded corpus of mutated real police.uk CSV files, and the checks every ingest of it must
pass (issue 13). Shared by tests/integration/test_fuzz_corpus_csv.py (a bounded sample in CI)
and bench/fuzz_csv.py (thousands of files).

Each case is a slice (200 to 400 rows) of a real Northumbria street, outcomes or
stop-and-search file, mutated from `random.Random(seed)`: the same seed gives the same bytes.
A case says what must happen: `ok` (imported, every marked line quarantined with a reason
starting as given), `refused` (nothing written), or `any` (either, with the same invariants).
Nothing here uses placeharm's reading code: line splitting and decoding are done here.
"""

from __future__ import annotations

import datetime as dt
import gzip
import os
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from placeharm.ingest.policeuk import CRIME_CONTENT, parse_file
from placeharm.model import ImportResult

KINDS = ("street", "outcomes", "stop-and-search")
MONTHS = ("2020-08", "2021-05", "2022-03")
# column numbers of the real headers
MONTH_COL = {"street": 1, "outcomes": 1, "stop-and-search": 1}
LON_COL = {"street": 4, "outcomes": 4, "stop-and-search": 5}
LAT_COL = {"street": 5, "outcomes": 5, "stop-and-search": 4}
DATA_TABLES = ("crimes", "crime_history", "outcomes", "stop_searches", "quarantine")


class _Statements:
    """Statements with `?` placeholders run by the store itself, on either engine (the
    store's own `_run`: DuckDB as it is, PostgreSQL after translating the placeholders)."""

    def __init__(self, store: object) -> None:
        self._store = store

    def execute(self, sql: str, params: list[object] | None = None) -> _Rows:
        return _Rows(self._store._run(sql, params))  # type: ignore[attr-defined]


class _Rows:
    def __init__(self, rows: list[tuple[object, ...]]) -> None:
        self._rows = rows

    def fetchall(self) -> list[tuple[object, ...]]:
        return self._rows

    def fetchone(self) -> tuple[object, ...] | None:
        return self._rows[0] if self._rows else None


@dataclass(slots=True)
class Base:
    kind: str
    month: str
    header: bytes
    rows: list[bytes]  # without line ends


@dataclass(slots=True)
class Case:
    """One mutated file: its bytes, name, and what must happen to it."""

    index: int
    mutation: str
    name: str  # file name (may hold bytes that are not UTF-8, as surrogate escapes)
    data: bytes  # as written
    expect: str  # "ok", "refused" or "any"
    logical: list[str] | None  # the file's lines as text (header = line 1), for raw rows
    marked: dict[int, str] = field(default_factory=dict)  # line -> reason prefix
    rows: int | None = None  # exact rows read, when known
    exact: bool = False  # the quarantined lines are exactly the marked ones
    mtime: int = 0  # the file time written (its vintage): from the seed, see `build`

    def write(self, folder: Path) -> Path:
        path = folder / f"case-{self.index:05d}" / self.name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.data)
        if self.mtime:
            os.utime(path, (self.mtime, self.mtime))
        return path


def load_bases(northumbria: Path) -> list[Base]:
    bases = []
    for kind in KINDS:
        for month in MONTHS:
            raw = gzip.decompress((northumbria / f"{month}-northumbria-{kind}.csv.gz").read_bytes())
            lines = raw.replace(b"\r\n", b"\n").rstrip(b"\n").split(b"\n")
            bases.append(Base(kind, month, lines[0], lines[1:]))
    return bases


def logical_lines(data: bytes) -> list[str]:
    """A UTF-8 file's lines as text: split at LF, CRs removed, bad bytes and NULs as \\xNN
    escapes (as the quarantine keeps them)."""
    return [
        line.decode("utf-8", errors="backslashreplace").replace("\r", "").replace("\x00", "\\x00")
        for line in data.split(b"\n")
    ]


def _set(line: bytes, column: int, value: bytes) -> bytes:
    parts = line.split(b",")
    if column < len(parts):
        parts[column] = value
    return b",".join(parts)


def _rows(rng: random.Random, rows: list[bytes], k: int) -> list[int]:
    """k distinct row indexes (0-based among data rows)."""
    return rng.sample(range(len(rows)), min(k, len(rows)))


# -- row mutations: (rng, kind, rows) -> {row index: reason prefix} -------------------------

RowMutation = Callable[[random.Random, str, list[bytes]], dict[int, str]]


def _bad_month(rng: random.Random, kind: str, rows: list[bytes]) -> dict[int, str]:
    marked = {}
    for i in _rows(rng, rows, rng.randint(1, 3)):
        if kind == "stop-and-search":
            value, prefix = rng.choice(
                [
                    (b"2021-13-01T00:00:00+00:00", "bad date"),
                    (b"yesterday", "bad date"),
                    (b"", "date is missing"),
                    (b"2009-01-01T00:00:00+00:00", "date '"),
                ]
            )
        else:
            value, prefix = rng.choice(
                [
                    (b"2021-3", "bad month '2021-3'"),
                    (b"2021-13", "bad month '2021-13'"),
                    (b"May 2021", "bad month"),
                    (b"", "month is missing"),
                    (b"2009-01", "month '2009-01' is outside"),
                    (b"2999-01", "month '2999-01' is outside"),
                ]
            )
        rows[i] = _set(rows[i], MONTH_COL[kind], value)
        marked[i] = prefix
    return marked


def _bad_coordinate(rng: random.Random, kind: str, rows: list[bytes]) -> dict[int, str]:
    located = [
        i for i, r in enumerate(rows) if len(r.split(b",")) > LAT_COL[kind] and r.split(b",")[4]
    ]
    marked = {}
    for i in rng.sample(located, min(rng.randint(1, 3), len(located))):
        column = rng.choice([LON_COL[kind], LAT_COL[kind]])
        value = rng.choice([b"abc", b"-999", b"999", b"NaN", b"inf", b"1e400", b"", b"1,5"])
        rows[i] = _set(rows[i], column, value)
        marked[i] = "" if value != b"1,5" else "wrong number of columns"
    return marked


def _unknown_type(rng: random.Random, kind: str, rows: list[bytes]) -> dict[int, str]:
    marked = {}
    for i in _rows(rng, rows, rng.randint(1, 3)):
        if kind == "street":
            rows[i] = _set(rows[i], 9, rng.choice([b"Alien abduction", b"burglary", b""]))
            marked[i] = "crime type is missing" if rows[i].split(b",")[9] == b"" else "unknown"
        elif kind == "stop-and-search":
            rows[i] = _set(rows[i], 0, rng.choice([b"Boat search", b""]))
            marked[i] = "unknown search type" if rows[i].split(b",")[0] else "search type is"
        else:
            rows[i] = _set(rows[i], 0, b"")
            marked[i] = "outcome row has no Crime ID"
    return marked


def _column_count(rng: random.Random, kind: str, rows: list[bytes]) -> dict[int, str]:
    marked = {}
    for i in _rows(rng, rows, rng.randint(1, 4)):
        roll = rng.random()
        if roll < 0.1:
            rows[i] = rows[i] + b"," * rng.randint(1000, 20000)
        elif roll < 0.5:
            rows[i] = rows[i] + b",extra" * rng.randint(1, 3)
        else:
            rows[i] = rows[i].rsplit(b",", rng.randint(1, 3))[0]
        marked[i] = "wrong number of columns"
    return marked


def _not_utf8(rng: random.Random, kind: str, rows: list[bytes]) -> dict[int, str]:
    marked = {}
    for i in _rows(rng, rows, rng.randint(1, 3)):
        at = rng.randrange(len(rows[i]) + 1)
        rows[i] = rows[i][:at] + rng.choice([b"\xe9", b"\xff", b"\xc3(", b"\x80"]) + rows[i][at:]
        marked[i] = "bad encoding"
    return marked


def _nul(rng: random.Random, kind: str, rows: list[bytes]) -> dict[int, str]:
    for i in _rows(rng, rows, rng.randint(1, 3)):
        at = rng.randrange(len(rows[i]) + 1)
        rows[i] = rows[i][:at] + b"\x00" * rng.randint(1, 4) + rows[i][at:]
    return {}


def _lone_cr(rng: random.Random, kind: str, rows: list[bytes]) -> dict[int, str]:
    for i in _rows(rng, rows, rng.randint(1, 3)):
        at = rng.randrange(len(rows[i]) + 1)
        rows[i] = rows[i][:at] + b"\r" + rows[i][at:]
    return {}


def _stray_quote(rng: random.Random, kind: str, rows: list[bytes]) -> dict[int, str]:
    for i in _rows(rng, rows, rng.randint(1, 3)):
        at = rng.randrange(len(rows[i]) + 1)
        rows[i] = rows[i][:at] + b'"' + rows[i][at:]
    return {}


def _quoted_valid(rng: random.Random, kind: str, rows: list[bytes]) -> dict[int, str]:
    """Quote some fields properly (commas, doubled quotes, a line break inside): still valid."""
    text_columns = [3, 11, 12] if kind == "stop-and-search" else [2, 3, 6, 8]
    for i in _rows(rng, rows, rng.randint(1, 5)):
        parts = rows[i].split(b",")
        j = rng.choice([c for c in text_columns if c < len(parts)] or [0])
        inner = parts[j] + rng.choice([b", quoted", b' ""12""', b"\nsecond line", b""])
        parts[j] = b'"' + inner + b'"'
        rows[i] = b",".join(parts)
    return {}


def _huge_field(rng: random.Random, kind: str, rows: list[bytes]) -> dict[int, str]:
    i = rng.randrange(len(rows))
    column = 6 if kind != "stop-and-search" else 3
    rows[i] = _set(rows[i], column, b"On or near " + b"x" * rng.randint(100_000, 400_000))
    return {}


def _byte_flips(rng: random.Random, kind: str, rows: list[bytes]) -> dict[int, str]:
    for _ in range(rng.randint(1, 8)):
        i = rng.randrange(len(rows))
        if rows[i]:
            at = rng.randrange(len(rows[i]))
            rows[i] = rows[i][:at] + bytes([rng.randrange(256)]) + rows[i][at + 1 :]
    return {}


def _duplicate_id(rng: random.Random, kind: str, rows: list[bytes]) -> dict[int, str]:
    with_id = [i for i, r in enumerate(rows) if not r.startswith(b",")]
    if kind != "street" or not with_id:
        return {}
    i = rng.choice(with_id)
    rows.append(_set(rows[i], 6, b"On or near Somewhere Else"))
    return {len(rows) - 1: "the same record (Crime ID"}


ROW_MUTATIONS: dict[str, RowMutation] = {
    "bad-month": _bad_month,
    "bad-coordinate": _bad_coordinate,
    "unknown-type": _unknown_type,
    "column-count": _column_count,
    "not-utf8": _not_utf8,
    "nul-bytes": _nul,
    "stray-quote": _stray_quote,
    "lone-cr": _lone_cr,
    "quoted-valid": _quoted_valid,
    "huge-field": _huge_field,
    "byte-flips": _byte_flips,
    "duplicate-id": _duplicate_id,
}
# mutations after which the marked lines are certain and no other line goes bad
_EXACT = {"bad-month", "bad-coordinate", "unknown-type", "column-count", "not-utf8"}
_VALID = {"quoted-valid"}


def _whole_file(lines: list[bytes], ending: bytes) -> bytes:
    return ending.join(lines) + ending


def _encode(rng: random.Random, data: bytes) -> tuple[str, bytes]:
    """Re-save the (UTF-8) text as a spreadsheet or editor might."""
    text = data.decode("utf-8")
    how = rng.choice(
        ["utf-8-bom", "utf-16-le-bom", "utf-16-be-bom", "utf-16-le", "utf-16-be", "cr-only"]
    )
    if how == "cr-only" and "\r" in text.replace("\r\n", ""):
        how = "utf-8-bom"  # a lone CR in a row would end a line once every line end is a CR
    if how == "utf-8-bom":
        return how, b"\xef\xbb\xbf" + data
    if how == "cr-only":
        return how, text.replace("\r\n", "\n").replace("\n", "\r").encode()
    codec = how.removesuffix("-bom")
    bom = (
        {"utf-16-le": b"\xff\xfe", "utf-16-be": b"\xfe\xff"}[codec] if how.endswith("bom") else b""
    )
    return how, bom + text.encode(codec)


def make_case(rng: random.Random, bases: list[Base], index: int) -> Case:
    base = rng.choice(bases)
    n = min(len(base.rows), rng.randint(200, 400))
    start = rng.randrange(len(base.rows) - n + 1)
    rows = base.rows[start : start + n]
    ending = rng.choice([b"\r\n", b"\r\n", b"\n"])
    name = f"{base.month}-northumbria-{base.kind}.csv"
    roll = rng.random()
    if roll < 0.55:
        return _row_case(rng, base, rows, ending, name, index)
    if roll < 0.8:
        return _file_case(rng, base, rows, ending, name, index)
    return _ok_file_case(rng, base, rows, ending, name, index)


def _row_case(
    rng: random.Random, base: Base, rows: list[bytes], ending: bytes, name: str, index: int
) -> Case:
    kinds = rng.sample(sorted(ROW_MUTATIONS), rng.choice([1, 1, 1, 2, 3]))
    # quoting adds commas inside fields: after it, setting a field by its comma count would
    # change another field, so it comes last
    kinds.sort(key=lambda kind: kind == "quoted-valid")
    marked: dict[int, str] = {}
    exact = True
    for kind in kinds:
        for i, prefix in ROW_MUTATIONS[kind](rng, base.kind, rows).items():
            marked[i] = prefix
        exact = exact and kind in _EXACT | _VALID
    # a row mutated twice keeps one of its reasons: only say "quarantined"
    marked = {i: (p if len(kinds) == 1 else "") for i, p in marked.items()}
    if {"stray-quote", "byte-flips", "lone-cr"} & set(kinds):
        marked = {}  # a quote or a flipped byte can join or split the rows around it
    blank = rng.random() < 0.15
    lines, where = [base.header], {}
    for i, row in enumerate(rows):
        while blank and rng.random() < 0.02:
            lines.append(b"")  # blank lines are not rows; line numbers move
        where[i] = len(lines)
        lines.append(row)
    first_line = [1]  # the file line each element of `lines` starts on (quoted line breaks)
    for line in lines[:-1]:
        first_line.append(first_line[-1] + 1 + line.count(b"\n"))
    marked = {first_line[where[i]]: p for i, p in marked.items()}
    mixed = rng.random() < 0.1
    if mixed:  # LF and CRLF line ends mixed in one file
        data = b"".join(line + rng.choice([b"\n", b"\r\n"]) for line in lines)
    else:
        data = _whole_file(lines, ending)
    logical = logical_lines(data)
    mutation = (
        "+".join(kinds) + ("+blank-lines" if blank else "") + ("+mixed-ends" if mixed else "")
    )
    expect = "ok"
    if rng.random() < 0.1 and "byte-flips" not in kinds:
        # truncated mid-row: the cut row may fail; everything before it is read
        cut = rng.randrange(len(lines[0]) + 2, len(data))
        data = data[:cut]
        logical = logical_lines(data)
        marked = {line: p for line, p in marked.items() if line < len(logical) - 1}
        mutation += "+truncated"
        exact = False
    if "byte-flips" in kinds:
        expect = "any"  # a flip can hit a comma, a quote or a line end
    rows_read = sum(1 for line in lines[1:] if line) if exact else None
    case = Case(index, mutation, name, data, expect, logical, marked, rows_read, exact)
    _maybe_reencode(rng, case)
    _maybe_gzip(rng, case)
    return case


def _file_case(
    rng: random.Random, base: Base, rows: list[bytes], ending: bytes, name: str, index: int
) -> Case:
    """Whole-file damage: every one of these must be refused, with nothing written."""
    header = base.header.split(b",")
    table = [r.split(b",") for r in rows]
    how = rng.choice(
        [
            "delete-column",
            "duplicate-column",
            "swap-columns",
            "wrong-delimiter",
            "empty",
            "blank-only",
            "concatenated",
            "header-cr",
            "name-month",
            "gzip-truncated",
            "gzip-corrupt",
            "utf16-damaged",
            "huge-header",
            "not-csv",
            "header-flip",
        ]
    )
    data = _whole_file([base.header, *rows], ending)
    if how in ("delete-column", "duplicate-column", "swap-columns"):
        j = rng.randrange(len(header))
        k = rng.choice([c for c in range(len(header)) if header[c] != header[j]])

        def change(parts: list[bytes]) -> list[bytes]:
            parts = list(parts)
            if how == "delete-column":
                del parts[j]
            elif how == "duplicate-column":
                parts.insert(j, parts[j])
            else:
                parts[j], parts[k] = parts[k], parts[j]
            return parts

        lines = [b",".join(change(header)), *(b",".join(change(p)) for p in table)]
        data = _whole_file(lines, ending)
    elif how == "wrong-delimiter":
        sep = rng.choice([b";", b"\t", b"|"])
        data = data.replace(b",", sep)
    elif how == "empty":
        data = b""
    elif how == "blank-only":
        data = ending * rng.randint(1, 5)
    elif how == "concatenated":
        data = data + (b"\xef\xbb\xbf" if rng.random() < 0.3 else b"") + data
    elif how == "header-cr":
        cut = rng.choice([i for i, byte in enumerate(base.header) if byte == ord(",")])
        data = base.header[:cut] + b"\r" + base.header[cut:] + data[len(base.header) :]
    elif how == "name-month":
        name = rng.choice(["2021-13", "2021-00", "1999-05"]) + name[7:]
    elif how == "gzip-truncated":
        packed = _gzip(data)
        data = packed[: rng.randrange(10, len(packed) - 8)]
        name += ".gz"
    elif how == "gzip-corrupt":
        packed = bytearray(_gzip(data))
        for _ in range(rng.randint(1, 4)):
            packed[rng.randrange(20, len(packed) - 8)] ^= 1 << rng.randrange(8)
        data = bytes(packed)
        name += ".gz"
    elif how == "utf16-damaged":
        data = b"\xff\xfe" + data.decode().encode("utf-16-le")[: -rng.choice([1, 3])]
        data = data[:-2] + b"\x00\xd8" if rng.random() < 0.5 else data  # a lone surrogate
    elif how == "huge-header":
        data = base.header + b"x" * rng.randint(70_000, 300_000) + data[len(base.header) :]
    elif how == "not-csv":
        data = bytes(rng.randrange(256) for _ in range(rng.randint(1, 5000)))
    elif how == "header-flip":
        at = rng.randrange(len(base.header))
        flipped = bytearray(base.header)
        flipped[at] = rng.choice(b"#;\x00\xe9Zz")
        if bytes(flipped) == base.header:
            flipped[at] = ord("#")
        data = bytes(flipped) + data[len(base.header) :]
    return Case(index, how, name, data, "refused", None)


def _ok_file_case(
    rng: random.Random, base: Base, rows: list[bytes], ending: bytes, name: str, index: int
) -> Case:
    """Files that must import: re-saved encodings, other names, header only, gzip."""
    how = rng.choice(["encoding", "name", "header-only", "gzip", "plain", "header-spaces"])
    data = _whole_file([base.header, *rows], ending)
    case = Case(index, how, name, data, "ok", logical_lines(data), {}, len(rows), True)
    if how == "encoding":
        case.mutation, case.data = _encode(rng, data)
    elif how == "name":
        case.mutation, case.name = rng.choice(
            [
                ("name-not-utf8", os.fsdecode(name[:12].encode() + b"\xe9" + name[12:].encode())),
                ("name-not-police-uk", "my export (copy).csv"),
                ("name-spaces", " " + name),
            ]
        )
    elif how == "header-only":
        case.data = base.header + ending
        case.rows = 0
        case.logical = logical_lines(case.data)
    elif how == "gzip":
        _maybe_gzip(rng, case, always=True)
    elif how == "header-spaces":  # spaces around the header's names, as some exports add
        padded = b",".join(b" " + name + b" " for name in base.header.split(b","))
        case.data = padded + data[len(base.header) :]
        case.logical = logical_lines(case.data)
    return case


def _maybe_reencode(rng: random.Random, case: Case) -> None:
    if rng.random() < 0.15:
        try:
            case.data.decode("utf-8")
        except UnicodeDecodeError:
            return
        if b"\x00" in case.data:
            return  # NUL bytes would make the UTF-16 guess ambiguous
        how, case.data = _encode(rng, case.data)
        case.mutation += f"+{how}"


def _maybe_gzip(rng: random.Random, case: Case, always: bool = False) -> None:
    if always or rng.random() < 0.25:
        members = rng.choice([1, 1, 2])
        if members == 1 or len(case.data) < 2:
            case.data = _gzip(case.data)
        else:  # a multi-member gzip file (gzip a b > c), split at a line end
            cut = case.data.find(b"\n", len(case.data) // 2) + 1 or len(case.data)
            case.data = _gzip(case.data[:cut]) + _gzip(case.data[cut:])
        case.name += ".gz"
        case.mutation += "+gzip"


# Vintages from the seed, not from how fast the files were written: a plain file's vintage is
# its file time (gzip members carry none, `_gzip`), drawn within a few minutes so that many
# files tie to the second (the digest then decides) and later files are often older.
_MTIME_BASE = 1748736000  # 2025-06-01 00:00 UTC: after every month held, before any clock
_MTIME_SPREAD = 180


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)  # no member time: the same bytes on every run


def build(seed: int, files: int, northumbria: Path) -> list[Case]:
    rng = random.Random(seed)
    bases = load_bases(northumbria)
    cases = [make_case(rng, bases, i) for i in range(files)]
    times = random.Random(f"{seed}-mtime")  # its own stream: the bytes do not change
    for case in cases:
        case.mtime = _MTIME_BASE + times.randrange(_MTIME_SPREAD)
    return cases


# -- checks --------------------------------------------------------------------------------


def data_counts(store: object) -> dict[str, int]:
    counts = store.table_counts()  # type: ignore[attr-defined]
    return {t: counts[t] for t in DATA_TABLES} | {
        "coverage": store.coverage().height  # type: ignore[attr-defined]
    }


# A crime version: its key and everything a download can change about it (as `placeharm
# check` compares them); an outcome set: one crime-month's rows from one download.
_CRIME_VERSION = (
    "coalesce(crime_id, record_key), source_kind, month, reported_by, falls_within, "
    "longitude, latitude, location, lsoa_code_file, lsoa_name_file, crime_type, "
    "last_outcome_category, context"
)
_OUTCOME_ROW = (
    "outcome_ordinal, outcome_type, reported_by, falls_within, longitude, latitude, "
    "location, lsoa_code_file, lsoa_name_file"
)


@dataclass(slots=True)
class Held:
    """What the store holds, as versions: every crime version (current or in crime_history,
    with the import that wrote it), every outcome set (held or in outcome_history), the
    crime-months whose outcomes are held with their row counts, and the sets in
    outcome_history by crime-month (import that wrote each, rows). Compared as Python
    tuples: NULLs and floats exactly as stored."""

    crimes: Counter[tuple[object, ...]]
    crime_imports: dict[tuple[object, ...], int]
    outcome_sets: Counter[tuple[object, ...]]
    units: dict[tuple[object, object], int]
    superseded: dict[tuple[object, object], list[tuple[int, int]]]


def held_versions(store: object) -> Held:
    con = _Statements(store)
    crimes: Counter[tuple[object, ...]] = Counter()
    imports: dict[tuple[object, ...], int] = {}
    for table in ("crimes", "crime_history"):
        for *version, import_id in con.execute(
            f"SELECT {_CRIME_VERSION}, import_id FROM {table}"
        ).fetchall():
            crimes[tuple(version)] += 1
            imports[tuple(version)] = import_id
    sets: Counter[tuple[object, ...]] = Counter()
    units: dict[tuple[object, object], int] = {}
    superseded: dict[tuple[object, object], list[tuple[int, int]]] = {}
    for table, version in (("outcomes", "NULL"), ("outcome_history", "vintage")):
        grouped: dict[tuple[object, ...], list[tuple[object, ...]]] = {}
        for crime_id, month, vintage, import_id, *row in con.execute(
            f"SELECT crime_id, month, {version}, import_id, {_OUTCOME_ROW} FROM {table}"
        ).fetchall():
            grouped.setdefault((crime_id, month, vintage, import_id), []).append(tuple(row))
        for (crime_id, month, _vintage, import_id), rows in grouped.items():
            if table == "outcome_history":
                superseded.setdefault((crime_id, month), []).append((import_id, len(rows)))
        merged: dict[tuple[object, object, object], list[tuple[object, ...]]] = {}
        for (crime_id, month, vintage, _), rows in grouped.items():
            merged.setdefault((crime_id, month, vintage), []).extend(rows)
        for (crime_id, month, _), rows in merged.items():
            sets[(crime_id, month, *sorted(rows, key=repr))] += 1
            if table == "outcomes":
                units[(crime_id, month)] = len(rows)
    return Held(crimes, imports, sets, units, superseded)


def check_results(
    store: object,
    cases: list[Case],
    paths: list[Path],
    results: list[ImportResult],
    before: dict[str, int],
    imports_before: int,
    held_before: Held,
) -> list[str]:
    """Every invariant of one ingest call over `cases`; returns the failures as text."""
    failures: list[str] = []
    by_file = {r.source_file: r for r in results}
    if len(results) != len(cases):
        failures.append(f"{len(results)} results for {len(cases)} files")
    con = _Statements(store)
    for case, path in zip(cases, paths, strict=True):
        label = os.fsencode(path).decode("utf-8", errors="backslashreplace")
        result = by_file.get(label)
        where = f"case {case.index} ({case.mutation})"
        if result is None:
            failures.append(f"{where}: no result")
            continue
        if result.status == "failed":
            failures.append(f"{where}: failed: {result.message}")
            continue
        if case.expect != "any" and result.status != case.expect:
            failures.append(f"{where}: {result.status}, expected {case.expect}: {result.message}")
            continue
        if result.status == "refused":
            if not result.message or "Traceback" in result.message:
                failures.append(f"{where}: refused without a clear message")
            for table in ("crimes", "outcomes", "stop_searches", "quarantine", "coverage"):
                n = con.execute(
                    f"SELECT count(*) FROM {table} WHERE import_id = ?", [result.import_id]
                ).fetchone()[0]
                if n:
                    failures.append(f"{where}: refused but {n} rows in {table}")
            continue
        if not result.balanced:
            failures.append(f"{where}: does not balance: {result}")
        if case.rows is not None and result.rows_read != case.rows:
            failures.append(f"{where}: read {result.rows_read} rows, expected {case.rows}")
        rows = con.execute(
            "SELECT source_file, line, raw_text, reason FROM quarantine WHERE import_id = ?",
            [result.import_id],
        ).fetchall()
        if len(rows) != result.quarantined:
            failures.append(f"{where}: {len(rows)} quarantine rows, account {result.quarantined}")
        held = {}
        for source, line, raw, reason in rows:
            held[line] = reason
            if source != label or not reason or not raw:
                failures.append(f"{where}: line {line}: incomplete quarantine row")
            elif case.logical is not None:
                span = raw.replace("\r", "").count("\n") + 1
                expected = "\n".join(case.logical[line - 1 : line - 1 + span])
                if raw.replace("\r", "") != expected:
                    failures.append(f"{where}: line {line}: raw text is not the file's line")
        for line, prefix in case.marked.items():
            if line not in held:
                failures.append(f"{where}: line {line} was not quarantined")
            elif not held[line].startswith(prefix):
                failures.append(f"{where}: line {line}: reason {held[line]!r}, not {prefix!r}")
        if case.exact and set(held) != set(case.marked):
            failures.append(f"{where}: quarantined lines {sorted(held)}, not {sorted(case.marked)}")
    ok = [r for r in results if r.status == "ok"]
    after = data_counts(store)
    failures += _check_versions(store, ok, before, after, held_before)
    now = held_versions(store)
    for path, result in zip(paths, results, strict=False):
        if result.status == "ok" and result.source_kind in ("street", "outcomes"):
            failures += _check_rows_held(store, path, result, now)
    if after["quarantine"] - before["quarantine"] != sum(r.quarantined for r in ok):
        failures.append("quarantine does not match the accounts")
    if store.table_counts()["imports"] - imports_before != len(cases):  # type: ignore[attr-defined]
        failures.append("not one import log entry per file")
    return failures


def _check_rows_held(store: object, path: Path, result: ImportResult, now: Held) -> list[str]:
    """Nothing read is lost: every row of an imported street file that was not quarantined
    is held as a crime version (current or in crime_history: an older download's differing
    row and a later sighting included), and every crime-month's outcome set of an imported
    outcomes file is held (current or in outcome_history). The rows are read here by
    placeharm's parser: this checks what the writing keeps, not how the file was read."""
    con = _Statements(store)
    lines = {
        line
        for (line,) in con.execute(
            "SELECT line FROM quarantine WHERE import_id = ?", [result.import_id]
        ).fetchall()
    }
    frame = parse_file(path, dt.date.today().strftime("%Y-%m")).frame
    frame = frame.filter(~pl.col("source_line").is_in(sorted(lines)))
    where = f"{path.name} (import {result.import_id})"
    if result.source_kind == "street":
        versions = frame.select(
            pl.coalesce("crime_id", "crime_key"),
            pl.lit("street"),
            *[c for c in CRIME_CONTENT if c != "crime_id"],
        ).rows()
        missing = sum(1 for v in versions if v not in now.crimes)
        return [f"{where}: {missing} rows read are held nowhere"] if missing else []
    columns = [c.strip() for c in _OUTCOME_ROW.split(",")]
    sets: dict[tuple[object, object], list[tuple[object, ...]]] = {}
    for crime_id, month, *row in frame.select("crime_id", "month", *columns).rows():
        sets.setdefault((crime_id, month), []).append(tuple(row))
    missing = sum(
        1
        for (c, m), rows in sets.items()
        if (c, m, *sorted(rows, key=repr)) not in now.outcome_sets
    )
    return [f"{where}: {missing} crime-months' outcome sets held nowhere"] if missing else []


def _check_versions(
    store: object,
    ok: list[ImportResult],
    before: dict[str, int],
    after: dict[str, int],
    held_before: Held,
) -> list[str]:
    """The vintage semantics' exact invariants (docs/ingest.md, "Vintages and derived state").

    Before vintages every counted row meant one stored row, so the three tables grew by
    exactly `inserted` and crime_history by exactly `updated`. That no longer holds for two
    tables, by design: a crime-month's outcomes are held as a SET from the newest download
    (a newer set replaces the old one whole: it may be larger or smaller, and an identical
    row in it is `unchanged`), and crime_history keeps each other version once (an older
    download's differing row, counted `unchanged` + `stale`, or a later sighting, joins it
    unless it is held already; a version that becomes current again leaves it). What the
    product promises instead, checked here from the store before and after the call:
    """
    failures: list[str] = []
    now = held_versions(store)
    ids = {r.import_id for r in ok}

    def inserted(kind: str) -> int:
        return sum(r.inserted for r in ok if r.source_kind == kind)

    # 1. Crimes and stop-and-search records are one row each: the tables grow by exactly the
    #    rows counted inserted (a crime's other versions replace it in place or go to history).
    for table, kind in (("crimes", "street"), ("stop_searches", "stop-and-search")):
        grew = after[table] - before[table]
        if grew != inserted(kind):
            failures.append(f"{table} grew by {grew}, {kind} files inserted {inserted(kind)}")
    # 2. Crime versions: nothing held before is lost; each version is held once (current or
    #    in crime_history); every new version was written by a file of this call; and each
    #    new version of a crime that already had one comes from a row counted updated, stale
    #    or a later sighting (so with none of those, crime_history does not change).
    twice = sum(n - 1 for n in now.crimes.values() if n > 1)
    if twice:
        failures.append(f"{twice} crime versions held twice (crimes and crime_history)")
    lost = sum((held_before.crimes - now.crimes).values())
    if lost:
        failures.append(f"{lost} crime versions held before are lost")
    new = [v for v in now.crimes if v not in held_before.crimes]
    foreign = sum(1 for v in new if now.crime_imports[v] not in ids)
    if foreign:
        failures.append(f"{foreign} new crime versions not written by a file of this call")
    street = [r for r in ok if r.source_kind == "street"]
    others = len(new) - (after["crimes"] - before["crimes"])
    may = sum(r.updated + r.stale + r.later_sightings for r in street)
    if not 0 <= others <= may:
        failures.append(
            f"{others} new versions of held crimes, from {may} rows updated, stale or later"
        )
    history = after["crime_history"] - before["crime_history"]
    if history != len(new) - (after["crimes"] - before["crimes"]):
        failures.append(f"crime_history grew by {history}, not by the new other versions")
    # 3. Outcomes: no crime-month held before loses its outcomes; every outcome set held
    #    before (held or in outcome_history) is still held, each once; and the rows of the
    #    crime-months new to the store are exactly the rows counted inserted.
    gone = [u for u in held_before.units if u not in now.units]
    if gone:
        failures.append(f"{len(gone)} crime-months lost their outcomes")
    sets_lost = sum((held_before.outcome_sets - now.outcome_sets).values())
    if sets_lost:
        failures.append(f"{sets_lost} outcome sets held before are lost")
    sets_twice = sum(n - 1 for n in now.outcome_sets.values() if n > 1)
    if sets_twice:
        crime_id, month = next(k for k, n in now.outcome_sets.items() if n > 1)[:2]
        where = [
            con_row
            for table in ("outcomes", "outcome_history")
            for con_row in _Statements(store)
            .execute(
                f"SELECT '{table}', import_id, vintage, count(*) FROM {table} "
                "WHERE crime_id = ? AND month = ? GROUP BY 1, 2, 3",
                [crime_id, month],
            )
            .fetchall()
        ]
        failures.append(f"{sets_twice} outcome sets held twice, e.g. {month}: {where}")
    # The rows counted inserted are those of crime-months new to the store, as the first
    # file of this call holding each wrote them. When a later file of the same call wrote
    # the crime-month again, that first set may since have been replaced by a newer one (the
    # first then sits in outcome_history) or itself been kept over an older one (which then
    # sits there): such a crime-month contributed the rows of one of its sets. Exact
    # wherever no crime-month new to the store was written differently twice in the call.
    single = 0
    low = high = 0
    for unit, n in now.units.items():
        if unit in held_before.units:
            continue
        sizes = [k for i, k in now.superseded.get(unit, []) if i in ids]
        if sizes:
            low += min([n, *sizes])
            high += max([n, *sizes])
        else:
            single += n
    if not single + low <= inserted("outcomes") <= single + high:
        failures.append(
            f"new crime-months hold {single} outcome rows (+{low} to {high} from crime-months "
            f"written twice), outcomes files inserted {inserted('outcomes')}"
        )
    return failures


def outcome_counts(cases: list[Case], results: list[ImportResult]) -> Counter[str]:
    """Files by first mutation and outcome (results in the order of `cases`)."""
    return Counter(
        f"{c.mutation.split('+')[0]}:{r.status}" for c, r in zip(cases, results, strict=True)
    )
