"""data.police.uk bulk CSVs (street, outcomes, stop and search) and API crimes-street JSON.

Turns a file into a typed polars frame of usable rows plus quarantined rows. Nothing here
touches the store: `services.ingest` decides what is new, changed or unchanged.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from placeharm.errors import DataError, TooLarge
from placeharm.ingest.csvfile import (
    DEFAULT_LIMITS,
    HELD_SUFFIX,
    LINE_COL,
    RawTable,
    ReadLimits,
    check_line_lengths,
    file_label,
    held,
    read_bytes,
    read_table,
    split_header,
)
from placeharm.model import CRIME_TYPES, QuarantineRow, SourceKind

STREET_HEADER = (
    "Crime ID",
    "Month",
    "Reported by",
    "Falls within",
    "Longitude",
    "Latitude",
    "Location",
    "LSOA code",
    "LSOA name",
    "Crime type",
    "Last outcome category",
    "Context",
)
OUTCOMES_HEADER = (
    "Crime ID",
    "Month",
    "Reported by",
    "Falls within",
    "Longitude",
    "Latitude",
    "Location",
    "LSOA code",
    "LSOA name",
    "Outcome type",
)
STOP_SEARCH_HEADER = (
    "Type",
    "Date",
    "Part of a policing operation",
    "Policing operation",
    "Latitude",
    "Longitude",
    "Gender",
    "Age range",
    "Self-defined ethnicity",
    "Officer-defined ethnicity",
    "Legislation",
    "Object of search",
    "Outcome",
    "Outcome linked to object of search",
    "Removal of more than just outer clothing",
)
HEADERS: dict[SourceKind, tuple[str, ...]] = {
    SourceKind.STREET: STREET_HEADER,
    SourceKind.OUTCOMES: OUTCOMES_HEADER,
    SourceKind.STOP_SEARCH: STOP_SEARCH_HEADER,
}
SEARCH_TYPES = ("Person search", "Vehicle search", "Person and Vehicle search")

# API category slugs -> bulk-file crime types (https://data.police.uk/docs/method/crime-categories/)
API_CATEGORIES: dict[str, str] = {
    "anti-social-behaviour": "Anti-social behaviour",
    "bicycle-theft": "Bicycle theft",
    "burglary": "Burglary",
    "criminal-damage-arson": "Criminal damage and arson",
    "drugs": "Drugs",
    "other-crime": "Other crime",
    "other-theft": "Other theft",
    "possession-of-weapons": "Possession of weapons",
    "public-order": "Public order",
    "robbery": "Robbery",
    "shoplifting": "Shoplifting",
    "theft-from-the-person": "Theft from the person",
    "vehicle-crime": "Vehicle crime",
    "violent-crime": "Violence and sexual offences",
}

# The first data.police.uk month is 2010-12; later months are checked against today at use.
FIRST_MONTH = "2010-12"
_MONTH_PATTERN = r"^\d{4}-(0[1-9]|1[0-2])$"
_FILE_RE = re.compile(r"^(\d{4}-\d{2})-(.+?)-(street|outcomes|stop-and-search)\.csv(\.gz)?$")
_KEY_SEP = "\x1f"

CRIME_COLUMNS: dict[str, type[pl.DataType]] = {
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
    "api_id": pl.Int64,
    "source_line": pl.Int64,
}
# The columns whose change makes a crime "updated" (source file and line are provenance).
CRIME_CONTENT = (
    "crime_id",
    "month",
    "reported_by",
    "falls_within",
    "longitude",
    "latitude",
    "location",
    "lsoa_code_file",
    "lsoa_name_file",
    "crime_type",
    "last_outcome_category",
    "context",
)
OUTCOME_COLUMNS: dict[str, type[pl.DataType]] = {
    "crime_id": pl.String,
    "crime_hash": pl.UInt64,
    "outcome_ordinal": pl.Int32,
    "month": pl.Date,
    "reported_by": pl.String,
    "falls_within": pl.String,
    "longitude": pl.Float64,
    "latitude": pl.Float64,
    "location": pl.String,
    "lsoa_code_file": pl.String,
    "lsoa_name_file": pl.String,
    "outcome_type": pl.String,
    "source_line": pl.Int64,
}
OUTCOME_KEY = ("crime_id", "month", "outcome_type", "outcome_ordinal")
SEARCH_COLUMNS: dict[str, type[pl.DataType]] = {
    "search_key": pl.String,
    "search_hash": pl.UInt64,
    "search_type": pl.String,
    "searched_at": pl.String,
    "month": pl.Date,
    "part_of_operation": pl.String,
    "policing_operation": pl.String,
    "latitude": pl.Float64,
    "longitude": pl.Float64,
    "gender": pl.String,
    "age_range": pl.String,
    "self_defined_ethnicity": pl.String,
    "officer_defined_ethnicity": pl.String,
    "legislation": pl.String,
    "object_of_search": pl.String,
    "outcome": pl.String,
    "outcome_linked": pl.String,
    "removal_outer_clothing": pl.String,
    "source_line": pl.Int64,
}


@dataclass(slots=True)
class ParsedFile:
    """A file's usable rows in the store's column names, and its quarantined rows."""

    path: Path
    kind: SourceKind
    force: str
    frame: pl.DataFrame
    quarantine: list[QuarantineRow]
    rows_read: int
    file_months: tuple[str, ...]
    # The raw text of usable rows whose key repeats in the file, by line (see services.ingest).
    raw_text: dict[int, str] = field(default_factory=dict)


def detect_kind(header: tuple[str, ...], path: Path) -> SourceKind:
    """Which police.uk file this is, from its header; refuse anything else."""
    for kind, expected in HEADERS.items():
        if header == expected:
            return kind
    names = {k.value: ", ".join(h) for k, h in HEADERS.items()}
    found = ", ".join(header)
    found = found if len(found) <= 200 else found[:200] + " …"
    hint = _hint(path)
    raise DataError(
        f"{file_label(path)}: the header does not match a data.police.uk file, so nothing "
        "was imported.\n"
        f"  found:    {found}\n"
        f"  expected: street: {names['street']}\n"
        f"            outcomes: {names['outcomes']}\n"
        f"            stop-and-search: {names['stop-and-search']}\n" + hint
    )


def _hint(path: Path) -> str:
    """What to do with a file that is not a police.uk file."""
    if path.name.lower().endswith((".geojson", ".geojson.gz", ".gpkg", ".shp")):
        return (
            "This looks like a boundary file: import it with "
            "`placeharm areas import FILE --name NAME`."
        )
    return "Check that this is an unedited data.police.uk download."


def parse_file(
    path: Path, latest_month: str, limits: ReadLimits = DEFAULT_LIMITS, data: bytes | None = None
) -> ParsedFile:
    """Read and validate one police.uk bulk CSV (plain or gzip) or API JSON file. `data` is
    the file's bytes when the caller has read them already (`csvfile.read_snapshot`)."""
    if path.suffix.lower() == ".json" or path.name.lower().endswith(".json.gz"):
        return parse_api_json(path, latest_month, limits, data)
    if data is None:
        data = read_bytes(path, limits)
    try:
        check_line_lengths(data, path, limits.max_line_bytes)
    except TooLarge as exc:  # e.g. a GeoJSON boundary file: one long line
        raise TooLarge(f"{exc}\n{_hint(path)}") from None
    header, body = split_header(data, path)
    del data  # each copy of a large file's bytes held to the end adds to peak memory
    kind = detect_kind(header, path)
    raw = read_table(path, header, body)
    del body
    name = _FILE_RE.match(file_label(Path(path.name)))
    file_months = (name.group(1),) if name else ()
    _check_named_month(file_months, path)
    if kind is SourceKind.STREET:
        frame, bad = _validate_street(raw, latest_month)
    elif kind is SourceKind.OUTCOMES:
        frame, bad = _validate_outcomes(raw, latest_month)
    else:
        frame, bad = _validate_stop_search(raw, latest_month)
    source = file_label(path)
    quarantine = sorted(
        [*raw.quarantine, *_quarantine_rows(source, bad, raw)], key=lambda q: q.line
    )
    force = name.group(2) if name else _force_slug(frame)
    parsed = ParsedFile(path, kind, force, frame, quarantine, raw.rows_read, file_months)
    if kind is SourceKind.STREET:
        parsed.raw_text = _texts_of_repeated_keys(raw, frame)
    return parsed


def _check_named_month(file_months: tuple[str, ...], path: Path) -> None:
    """Refuse a file whose police.uk-style name gives a month that does not exist
    (`2021-13-northumbria-street.csv`): the name decides the month the file covers."""
    for month in file_months:
        if not re.match(_MONTH_PATTERN, month) or month < FIRST_MONTH:
            raise DataError(
                f"{file_label(path)}: the file name gives the month {month}, which is not a "
                f"data.police.uk month (YYYY-MM, from {FIRST_MONTH}); the name says which month "
                "the file covers, so nothing was imported. Rename the file with the month of "
                "its rows, as police.uk names it (2021-05-northumbria-street.csv)"
            )


def _texts_of_repeated_keys(raw: RawTable, frame: pl.DataFrame) -> dict[int, str]:
    """The raw text of every usable row whose record key appears more than once in the file:
    a repeat with other content is quarantined when the file is written (whole row kept)."""
    if frame.select(pl.col("crime_key").is_unique().all()).item():
        return {}
    lines = frame.filter(pl.col("crime_key").is_duplicated())["source_line"]
    rows = raw.frame.filter(pl.col(LINE_COL).is_in(lines.implode())).select(
        LINE_COL, _raw_line(raw)
    )
    return {line: raw.text_of(line, text) for line, text in rows.iter_rows()}


def _force_slug(frame: pl.DataFrame) -> str:
    if "falls_within" in frame.columns and frame.height:
        value = frame["falls_within"].drop_nulls().mode().sort().first()
        if isinstance(value, str):
            slug = re.sub(r"\s+(police|constabulary)$", "", value.strip().lower())
            return re.sub(r"[^a-z0-9]+", "-", slug).strip("-")
    return "unknown"


def _raw_line(raw: RawTable) -> pl.Expr:
    """The row as CSV text again, for the quarantine: its line exactly, unless quoted
    (`RawTable.text_of` then gives the line as read)."""
    return pl.concat_str([pl.col(c).fill_null("") for c in raw.header], separator=",")


def _quarantine_rows(source: str, bad: pl.DataFrame, raw: RawTable) -> list[QuarantineRow]:
    return [
        QuarantineRow(source, line, raw.text_of(line, text), reason)
        for line, text, reason in bad.select(LINE_COL, "_raw", "_reason").iter_rows()
    ]


Check = tuple[pl.Expr, pl.Expr]  # (row is bad, reason text)


def _says(*parts: str | pl.Expr) -> pl.Expr:
    """A quarantine reason: text and column values (a missing value reads as ''), followed by
    what happens to the row (`csvfile.held`).

    Not `pl.format`: in polars 2.1's streaming engine it reads past the end of a filtered
    string column made of several chunks and panics (`assertion failed: i < self.len()`, a
    Rust PanicException that killed whole ingests, issue 13): two bad rows in one chunk of a
    large file were enough. `concat_str` has no such fault.
    """
    columns = [pl.lit(p) if isinstance(p, str) else p.cast(pl.String).fill_null("") for p in parts]
    return pl.concat_str([*columns, pl.lit(HELD_SUFFIX)])


def _coordinates(lon: str, lat: str) -> tuple[list[pl.Expr], list[pl.Expr], list[Check]]:
    """Coordinates parsed once (`prepare`), as stored (`select`), and the checks that make a
    row's coordinates unusable."""
    prepare = [
        pl.col(lon).str.strip_chars().cast(pl.Float64, strict=False).alias("_lon"),
        pl.col(lat).str.strip_chars().cast(pl.Float64, strict=False).alias("_lat"),
    ]
    lon_v, lat_v = pl.col("_lon"), pl.col("_lat")
    lon_given, lat_given = pl.col(lon).is_not_null(), pl.col(lat).is_not_null()
    checks: list[Check] = [
        (lon_given != lat_given, _says("only one of longitude and latitude is given")),
        (lon_given & lon_v.is_null(), _says("longitude '", pl.col(lon), "' is not a number")),
        (lat_given & lat_v.is_null(), _says("latitude '", pl.col(lat), "' is not a number")),
        (
            lon_given & (~lon_v.is_finite() | (lon_v.abs() > 180)),
            _says("longitude ", pl.col(lon), " is impossible (must be -180 to 180)"),
        ),
        (
            lat_given & (~lat_v.is_finite() | (lat_v.abs() > 90)),
            _says("latitude ", pl.col(lat), " is impossible (must be -90 to 90)"),
        ),
    ]
    return prepare, [lon_v.alias("longitude"), lat_v.alias("latitude")], checks


def _month_checks(col: str, latest_month: str) -> tuple[list[pl.Expr], list[Check]]:
    """The month parsed once (`prepare`: `_month`, null where it is not YYYY-MM) and the checks
    that make a row's month unusable."""
    value = pl.col(col).str.strip_chars()
    prepare = [value.str.to_date("%Y-%m", strict=False).alias("_month")]
    first, latest = _month_date(FIRST_MONTH), _month_date(latest_month)
    return prepare, [
        (pl.col(col).is_null(), _says("month is missing")),
        (
            (value.str.len_bytes() != 7) | pl.col("_month").is_null(),
            _says("bad month '", pl.col(col), "' (expected YYYY-MM)"),
        ),
        (
            (pl.col("_month") < first) | (pl.col("_month") > latest),
            _says(
                "month '",
                pl.col(col),
                f"' is outside the data.police.uk range ({FIRST_MONTH} to {latest_month})",
            ),
        ),
    ]


def _split_valid(
    raw: RawTable, prepare: list[pl.Expr], checks: list[Check], select: list[pl.Expr]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Rows that pass every check (as `select`), and the rest with the first failing reason.

    One lazy plan: values are parsed once (`prepare`, temporary columns the checks and
    `select` read), conditions are evaluated on every row, reason strings only on bad rows.
    """
    flagged = (
        raw.frame.lazy()
        .with_columns(prepare)
        .with_columns(pl.any_horizontal([cond.fill_null(True) for cond, _ in checks]).alias("_bad"))
    )
    reason = pl.coalesce([pl.when(cond.fill_null(True)).then(text) for cond, text in checks])
    good, bad = pl.collect_all(
        [
            flagged.filter(~pl.col("_bad")).select(select),
            flagged.filter("_bad").with_columns(
                reason.alias("_reason"), _raw_line(raw).alias("_raw")
            ),
        ]
    )
    return good, bad


_CRIME_ID = pl.col("Crime ID").str.strip_chars()


def _shared_columns(coords: list[pl.Expr]) -> list[pl.Expr]:
    """The columns street and outcomes files share, as stored."""
    return [
        _CRIME_ID.alias("crime_id"),
        pl.col("_month").alias("month"),
        pl.col("Reported by").alias("reported_by"),
        pl.col("Falls within").alias("falls_within"),
        *coords,
        pl.col("Location").alias("location"),
        pl.col("LSOA code").alias("lsoa_code_file"),
        pl.col("LSOA name").alias("lsoa_name_file"),
    ]


def _validate_street(raw: RawTable, latest_month: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    prepare, coords, coord_checks = _coordinates("Longitude", "Latitude")
    month_prepare, month_checks = _month_checks("Month", latest_month)
    type_checks: list[Check] = [
        (pl.col("Crime type").is_null(), _says("crime type is missing")),
        (
            ~pl.col("Crime type").is_in(CRIME_TYPES),
            _says("unknown crime type '", pl.col("Crime type"), "' (not a police.uk crime type)"),
        ),
    ]
    frame, bad = _split_valid(
        raw,
        [*prepare, *month_prepare],
        [*month_checks, *coord_checks, *type_checks],
        [
            *_shared_columns(coords),
            pl.col("Crime type").alias("crime_type"),
            pl.col("Last outcome category").alias("last_outcome_category"),
            pl.col("Context").alias("context"),
            pl.lit(None, dtype=pl.Int64).alias("api_id"),
            pl.col(LINE_COL).alias("source_line"),
        ],
    )
    frame = _with_keys(
        frame,
        id_col="crime_id",
        key_col="crime_key",
        hash_col="crime_hash",
        content=[
            "month",
            "falls_within",
            "longitude",
            "latitude",
            "location",
            "lsoa_code_file",
            "crime_type",
            "context",
        ],
    )
    return frame.select(list(CRIME_COLUMNS)), bad


def _validate_outcomes(raw: RawTable, latest_month: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    prepare, coords, coord_checks = _coordinates("Longitude", "Latitude")
    # An outcome's month may be the month after the last street month; allow one more.
    month_prepare, month_checks = _month_checks("Month", _next_month(latest_month))
    id_checks: list[Check] = [
        (pl.col("Crime ID").is_null(), _says("outcome row has no Crime ID")),
        (pl.col("Outcome type").is_null(), _says("outcome type is missing")),
    ]
    # An outcome is its crime, month and type, plus its rank among identical rows (OUTCOME_KEY);
    # the join hash is the crime's, so every outcome of a crime is compared on re-import.
    frame, bad = _split_valid(
        raw,
        [*prepare, *month_prepare],
        [*month_checks, *coord_checks, *id_checks],
        [
            *_shared_columns(coords),
            pl.col("Outcome type").alias("outcome_type"),
            pl.col(LINE_COL).alias("source_line"),
            _hash_of(_CRIME_ID).alias("crime_hash"),
        ],
    )
    frame = _fill_hash(frame, "crime_id", "crime_hash")
    frame = frame.with_columns(
        _rank_among_identical(frame, ["crime_id", "month", "outcome_type"]).alias("outcome_ordinal")
    )
    return frame.select(list(OUTCOME_COLUMNS)), bad


def _validate_stop_search(raw: RawTable, latest_month: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    prepare, coords, coord_checks = _coordinates("Longitude", "Latitude")
    stamp = pl.col("Date").str.strip_chars()
    parsed = stamp.str.to_datetime("%Y-%m-%dT%H:%M:%S%z", strict=False).dt.convert_time_zone("UTC")
    month_text = parsed.dt.convert_time_zone("Europe/London").dt.strftime("%Y-%m")
    checks: list[Check] = [
        (pl.col("Date").is_null(), _says("date is missing")),
        (parsed.is_null(), _says("bad date '", pl.col("Date"), "' (expected ISO 8601)")),
        (
            (month_text < FIRST_MONTH) | (month_text > latest_month),
            _says("date '", pl.col("Date"), "' is outside the data.police.uk range"),
        ),
        (pl.col("Type").is_null(), _says("search type is missing")),
        (~pl.col("Type").is_in(SEARCH_TYPES), _says("unknown search type '", pl.col("Type"), "'")),
    ]
    frame, bad = _split_valid(
        raw,
        prepare,
        [*checks, *coord_checks],
        [
            *[pl.col(src).alias(dst) for src, dst in _SEARCH_NAMES.items()],
            *coords,
            # police.uk months are UK months: 00:05 BST on 1 June is published as
            # 2020-05-31T23:05:00+00:00 in the June file.
            parsed.dt.convert_time_zone("Europe/London")
            .dt.date()
            .dt.truncate("1mo")
            .alias("month"),
            pl.col(LINE_COL).alias("source_line"),
        ],
    )
    frame = _with_keys(
        frame,
        id_col=None,
        key_col="search_key",
        hash_col="search_hash",
        content=[
            c for c in SEARCH_COLUMNS if c not in {"search_key", "search_hash", "source_line"}
        ],
    )
    return frame.select(list(SEARCH_COLUMNS)), bad


# Stop-and-search header -> stored column (coordinates are parsed separately).
_SEARCH_NAMES = {
    "Type": "search_type",
    "Date": "searched_at",
    "Part of a policing operation": "part_of_operation",
    "Policing operation": "policing_operation",
    "Gender": "gender",
    "Age range": "age_range",
    "Self-defined ethnicity": "self_defined_ethnicity",
    "Officer-defined ethnicity": "officer_defined_ethnicity",
    "Legislation": "legislation",
    "Object of search": "object_of_search",
    "Outcome": "outcome",
    "Outcome linked to object of search": "outcome_linked",
    "Removal of more than just outer clothing": "removal_outer_clothing",
}


def _next_month(month: str) -> str:
    y, m = int(month[:4]), int(month[5:7])
    y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return f"{y:04d}-{m:02d}"


def _hash_of(key: pl.Expr) -> pl.Expr:
    """64-bit join key: the first 16 hex digits of a hex key (police.uk IDs are SHA-256)."""
    return key.str.slice(0, 16).str.to_integer(base=16, dtype=pl.UInt64, strict=False)


def _digest(values: pl.Series) -> pl.Series:
    """Stable 128-bit hex digest of each string (BLAKE2b; polars' own hash is not stable).
    The UTF-8 bytes come from polars (a cast to binary), not from str.encode per row."""
    blake2b = hashlib.blake2b
    return pl.Series(
        [blake2b(v, digest_size=16).hexdigest() for v in values.cast(pl.Binary).to_list()],
        dtype=pl.String,
    )


def _rank_among_identical(frame: pl.DataFrame, columns: list[str]) -> pl.Series:
    """Each row's rank (0, 1, ...) among the earlier rows with the same values in `columns`.

    Only rows whose values repeat need a window; finding them first is ~10x cheaper than
    ranking every row (most rows are unique).
    """
    ranks = pl.zeros(frame.height, dtype=pl.Int32, eager=True)
    repeated = frame.select(pl.struct(columns).is_duplicated()).to_series()
    if repeated.any():
        within = frame.filter(repeated).select(pl.int_range(pl.len(), dtype=pl.Int32).over(columns))
        ranks = ranks.scatter(repeated.arg_true(), within.to_series())
    return ranks


def _with_keys(
    frame: pl.DataFrame, id_col: str | None, key_col: str, hash_col: str, content: list[str]
) -> pl.DataFrame:
    """Add the record key: its own ID where it has one, else a digest of its content.

    Rows without an ID (anti-social behaviour, stop and search) get a digest of the content
    plus the row's rank among identical rows of the file, so identical incidents stay
    distinct and re-importing the same file gives the same keys.
    """
    no_id = pl.col(id_col).is_null() if id_col else pl.lit(True)
    text = pl.concat_str(
        [pl.col(c).cast(pl.String).fill_null("") for c in content], separator=_KEY_SEP
    )
    keyless = (
        frame.lazy().with_row_index("_pos").filter(no_id).select("_pos", text.alias("_text"))
    ).collect()
    key = (
        frame[id_col].alias(key_col)
        if id_col
        else pl.repeat(None, frame.height, dtype=pl.String, eager=True).alias(key_col)
    )
    if keyless.height:
        rank = _rank_among_identical(keyless, ["_text"]).cast(pl.String)
        keyed = keyless["_text"] + _KEY_SEP + rank
        key = key.scatter(keyless["_pos"].cast(pl.Int64), _digest(keyed))
    frame = (
        frame.lazy()
        .with_columns(key)
        .with_columns(_hash_of(pl.col(key_col)).alias(hash_col))
        .collect()
    )
    return _fill_hash(frame, key_col, hash_col)


def _fill_hash(frame: pl.DataFrame, key_col: str, hash_col: str) -> pl.DataFrame:
    """Keys that are not hex (unusual IDs) get their join hash from a digest instead."""
    missing = frame[hash_col].is_null() & frame[key_col].is_not_null()
    if not missing.any():
        return frame
    fallback = _digest(frame.filter(missing)[key_col]).str.slice(0, 16)
    fixed = frame[hash_col].scatter(
        missing.arg_true(), fallback.str.to_integer(base=16, dtype=pl.UInt64)
    )
    return frame.with_columns(fixed.alias(hash_col))


def parse_api_json(
    path: Path, latest_month: str, limits: ReadLimits = DEFAULT_LIMITS, data: bytes | None = None
) -> ParsedFile:
    """Read a data.police.uk API crimes-street JSON response (a list of crimes).

    A document that is not a JSON list (not UTF-8, not JSON, cut short, nested past what
    the parser can follow, an object instead of a list) refuses the file. Each element is
    then checked on its own: one that is not a usable crime goes to the quarantine with its
    position in the list (1-based) and its exact text in the file. An API response is one
    line, so only the decompressed size is capped (`limits`). `data` is the file's bytes when
    the caller has read them already (one snapshot: `csvfile.read_snapshot`).
    """
    source = file_label(path)
    if data is None:
        data = read_bytes(path, limits)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{file_label(path)}: byte {exc.start:,} is not UTF-8, so this is not a data.police.uk "
            "API response; nothing was imported. Save the API response unchanged, or request it "
            "again"
        ) from None
    del data
    rows: list[dict[str, object]] = []
    spans: dict[int, tuple[int, int]] = {}  # position -> where a usable record's text is
    quarantine: list[QuarantineRow] = []
    read = 0
    for read, (start, end, record) in enumerate(_json_elements(text, path), start=1):
        reason, row = _api_row(record, latest_month)
        if reason is None and row is not None:
            row["source_line"] = read
            rows.append(row)
            spans[read] = (start, end)
        else:
            quarantine.append(
                QuarantineRow(
                    source,
                    read,
                    text[start:end],
                    held(reason or "bad record", "save the API response unchanged"),
                )
            )
    schema = {k: v for k, v in CRIME_COLUMNS.items() if k not in {"crime_key", "crime_hash"}}
    frame = _api_keys(pl.DataFrame(rows, schema=schema))
    frame, repeats = _api_repeats(frame)
    quarantine.extend(
        QuarantineRow(
            source,
            line,
            text[spans[line][0] : spans[line][1]],
            held(
                f"the same crime is record {first} of this response, with different content "
                f"(record {first} is used)",
                "give each record its own ID",
            ),
        )
        for line, first in repeats
    )
    quarantine.sort(key=lambda q: q.line)
    return ParsedFile(
        path, SourceKind.API, "api", frame.select(list(CRIME_COLUMNS)), quarantine, read, ()
    )


_JSON_SPACE = re.compile(r"[ \t\n\r]*")
# A crimes-street record nests 3 deep (record, location, street). A record nested a little
# deeper is read and quarantined field by field; hundreds of levels are not a response, and the
# file is refused. Python 3.11's decoder stopped near its recursion limit (about 1,000 levels,
# less the stack in use); 3.12 and later decode many thousands, so the limit is stated here,
# the same on every Python.
_JSON_MAX_DEPTH = 500


def _json_depth(value: object) -> int:
    """How deep lists and objects nest in a decoded JSON value (a scalar is 0), without
    recursion."""
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: list[object] = list(item.values())
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth + 1)
        if deepest > _JSON_MAX_DEPTH:
            return deepest
        stack.extend((child, depth + 1) for child in children)
    return deepest


def _json_elements(text: str, path: Path) -> Iterator[tuple[int, int, object]]:
    """Each element of the JSON list in `text`, with where its text starts and ends.

    Decoded one element at a time, so a quarantined record keeps its exact text. Anything
    that makes the document not a JSON list refuses the whole file (DataError).
    """
    decoder = json.JSONDecoder()
    pos = _json_skip(text, 0)
    if not text.startswith("[", pos):
        raise DataError(
            f"{file_label(path)}: expected a JSON list of crimes (a data.police.uk crimes-street "
            f"response), found {_json_found(text, pos)}; nothing was imported. Save the "
            "response of a crimes-street request unchanged"
        )
    pos = _json_skip(text, pos + 1)
    number = 0
    while not (number == 0 and text.startswith("]", pos)):
        number += 1
        try:
            value, end = decoder.raw_decode(text, pos)
        except RecursionError:
            raise _damaged(path, number, pos, "it nests deeper than any API response") from None
        except json.JSONDecodeError as exc:
            raise _damaged(path, number, exc.pos, exc.msg) from None
        except ValueError:  # Python refuses integers of over 4,300 digits
            raise _damaged(path, number, pos, "a number has thousands of digits") from None
        if _json_depth(value) > _JSON_MAX_DEPTH:  # Python 3.12+ decodes deep nesting
            raise _damaged(path, number, pos, "it nests deeper than any API response")
        yield pos, end, value
        pos = _json_skip(text, end)
        if text.startswith(",", pos):
            pos = _json_skip(text, pos + 1)
        elif text.startswith("]", pos):
            break
        else:
            raise _damaged(path, number, pos, "expected ',' or ']' after it")
    pos = _json_skip(text, pos + 1)
    if pos < len(text):
        raise _damaged(path, number, pos, "there is more text after the list")


def _json_skip(text: str, pos: int) -> int:
    match = _JSON_SPACE.match(text, pos)
    return match.end() if match else pos


def _json_found(text: str, pos: int) -> str:
    """What a JSON document that is not a list is, in words (never its content)."""
    if pos >= len(text):
        return "an empty file"
    first = text[pos]
    kinds = {"{": "a JSON object", '"': "a JSON string", "t": "true", "f": "false", "n": "null"}
    if first in kinds:
        return kinds[first]
    if first == "-" or first.isdigit():
        return "a number"
    return "text that is not JSON"


def _damaged(path: Path, number: int, pos: int, what: str) -> DataError:
    return DataError(
        f"{file_label(path)}: not a JSON document (at character {pos:,}, record {number} of the "
        f"list: {what}); the response is incomplete or damaged, so nothing was imported. "
        "Request it again"
    )


_API_MONTH = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])")
_API_ID_MAX = 2**63 - 1  # stored as BIGINT; data.police.uk ids are far smaller
_SURROGATE = re.compile("[\ud800-\udfff]")


class _BadRecord(Exception):
    """Why one API record cannot be used (its quarantine reason)."""


def _api_row(record: object, latest_month: str) -> tuple[str | None, dict[str, object] | None]:
    """One API record as a crimes row, or the reason it cannot be used."""
    if not isinstance(record, dict):
        return f"record is {_json_kind(record)}, not a JSON object (one crime)", None
    try:
        return None, _api_fields(record, latest_month)
    except _BadRecord as exc:
        return str(exc), None


def _api_fields(record: dict[str, object], latest_month: str) -> dict[str, object]:
    category = record.get("category")
    if not isinstance(category, str) or category not in API_CATEGORIES:
        raise _BadRecord(f"unknown crime category {_json_show(category)}")
    month = record.get("month")
    if not isinstance(month, str) or not _API_MONTH.fullmatch(month):
        raise _BadRecord(f"bad month {_json_show(month)} (expected YYYY-MM)")
    if not FIRST_MONTH <= month <= latest_month:
        raise _BadRecord(
            f"month '{month}' is outside the data.police.uk range ({FIRST_MONTH} to {latest_month})"
        )
    api_id = record.get("id")
    if isinstance(api_id, bool) or not isinstance(api_id, int):
        raise _BadRecord(
            f"record has no numeric id (id is {_json_kind(api_id)} {_json_show(api_id)}; "
            "an API id is a whole number)"
        )
    if not 1 <= api_id <= _API_ID_MAX:
        raise _BadRecord(f"id {_json_show(api_id)} is out of range (1 to 2^63-1)")
    location = record.get("location")
    lon = lat = None
    street = None
    if location is not None:
        if not isinstance(location, dict):
            raise _BadRecord(f"location is {_json_kind(location)}, not an object")
        lat = _api_coordinate(location, "latitude", 90)
        lon = _api_coordinate(location, "longitude", 180)
        if (lat is None) != (lon is None):
            raise _BadRecord("only one of longitude and latitude is given")
        place = location.get("street")
        if place is not None:
            if not isinstance(place, dict):
                raise _BadRecord(f"location.street is {_json_kind(place)}, not an object")
            street = _api_text(place, "name", "location.street.name")
    outcome = record.get("outcome_status")
    if outcome is not None and not isinstance(outcome, dict):
        raise _BadRecord(f"outcome_status is {_json_kind(outcome)}, not an object")
    return {
        "crime_id": _api_text(record, "persistent_id", "persistent_id"),
        "month": _month_date(month),
        "reported_by": None,
        "falls_within": None,
        "longitude": lon,
        "latitude": lat,
        "location": street,
        "lsoa_code_file": None,
        "lsoa_name_file": None,
        "crime_type": API_CATEGORIES[category],
        "last_outcome_category": (
            _api_text(outcome, "category", "outcome_status.category") if outcome else None
        ),
        "context": _api_text(record, "context", "context"),
        "api_id": api_id,
    }


def _api_text(record: dict[str, object], key: str, name: str) -> str | None:
    """A text field: absent, null or empty is None; anything but text refuses the record."""
    value = record.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _BadRecord(f"{name} is {_json_kind(value)}, not text")
    if _SURROGATE.search(value):
        # "\ud800" is valid JSON but not a character: it cannot be stored as text
        raise _BadRecord(f"{name} holds a lone UTF-16 surrogate, which is not a character")
    if "\x00" in value:  # "\u0000" is valid JSON, but no text in the store holds a NUL
        raise _BadRecord(f"{name} holds a NUL character (\\u0000), which is not text")
    return value


def _api_coordinate(location: dict[str, object], key: str, bound: int) -> float | None:
    """A coordinate (the API gives text, e.g. "54.895645"), checked as the CSV path checks:
    a finite number within +-`bound`; absent, null or empty is None."""
    value = location.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise _BadRecord(f"{key} is {_json_kind(value)}, not a number")
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (ValueError, OverflowError):
        raise _BadRecord(f"{key} {_json_show(value)} is not a number") from None
    if not math.isfinite(number) or abs(number) > bound:
        raise _BadRecord(
            f"impossible coordinates: {key} {_json_show(value)} (must be a finite number "
            f"from -{bound} to {bound})"
        )
    return number


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    return "an object"


def _json_show(value: object) -> str:
    """A short, printable rendering of a JSON value for a reason (never a whole structure)."""
    if isinstance(value, str):
        return repr(value[:60]) + ("…" if len(value) > 60 else "")
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int):
        digits = len(str(abs(value)))
        return str(value) if digits <= 30 else f"({digits} digits)"
    if isinstance(value, float):
        return repr(value)
    return _json_kind(value)


def _api_keys(frame: pl.DataFrame) -> pl.DataFrame:
    """Each API record's key: its persistent_id, else a digest of its numeric id.

    The digest is of "api-<id>" plus rank 0, as keys were made before issue 13, so stores
    built then keep matching; unlike then, a record repeated in one response gets the same
    key (it is the same crime, not a second one).
    """
    no_id = frame["crime_id"].is_null()
    key = frame["crime_id"].alias("crime_key")
    if no_id.any():
        texts = frame.filter(no_id).select(pl.format("api-{}", "api_id") + pl.lit(_KEY_SEP + "0"))
        key = key.scatter(no_id.arg_true(), _digest(texts.to_series()))
    frame = frame.with_columns(key).with_columns(_hash_of(pl.col("crime_key")).alias("crime_hash"))
    return _fill_hash(frame, "crime_key", "crime_hash")


def _api_repeats(frame: pl.DataFrame) -> tuple[pl.DataFrame, list[tuple[int, int]]]:
    """Drop the records of a response that repeat an earlier record's key with different
    content; return them as (position, position of the first). Identical repeats stay (the
    writer counts them as unchanged)."""
    if frame.select(pl.col("crime_key").is_unique().all()).item():
        return frame, []
    first = frame.unique("crime_key", keep="first", maintain_order=True)
    later = frame.filter(~pl.col("crime_key").is_first_distinct())
    joined = later.join(
        first.select("crime_key", *CRIME_CONTENT, "source_line"), on="crime_key", suffix="_first"
    )
    same = pl.all_horizontal(pl.col(c).eq_missing(pl.col(f"{c}_first")) for c in CRIME_CONTENT)
    differing = joined.filter(~same).select("source_line", "source_line_first")
    if differing.is_empty():
        return frame, []
    dropped = differing["source_line"]
    return frame.filter(~pl.col("source_line").is_in(dropped)), [
        (int(a), int(b)) for a, b in differing.iter_rows()
    ]


def _month_date(month: str) -> dt.date:
    return dt.date(int(month[:4]), int(month[5:7]), 1)
