"""data.police.uk bulk CSVs (street, outcomes, stop and search) and API crimes-street JSON.

Turns a file into a typed polars frame of usable rows plus quarantined rows. Nothing here
touches the store: `services.ingest` decides what is new, changed or unchanged.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
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
_FILE_RE = re.compile(r"^(\d{4}-\d{2})-(.+?)-(street|outcomes|stop-and-search)\.csv(\.gz)?$")
_MONTH_PATTERN = r"^\d{4}-(0[1-9]|1[0-2])$"
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


def parse_file(path: Path, latest_month: str, limits: ReadLimits = DEFAULT_LIMITS) -> ParsedFile:
    """Read and validate one police.uk bulk CSV (plain or gzip) or API JSON file."""
    if path.suffix.lower() == ".json" or path.name.lower().endswith(".json.gz"):
        return parse_api_json(path, latest_month, limits)
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
    path: Path, latest_month: str, limits: ReadLimits = DEFAULT_LIMITS
) -> ParsedFile:
    """Read a data.police.uk API crimes-street JSON response (a list of crimes). An API
    response is one line, so only the decompressed size is capped."""
    source = file_label(path)
    data = read_bytes(path, limits)
    try:
        records = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(
            f"{file_label(path)}: not a JSON document ({exc}); save the API response unchanged"
        ) from exc
    if not isinstance(records, list):
        raise DataError(
            f"{file_label(path)}: expected a JSON list of crimes (a crimes-street response), "
            f"found {type(records).__name__}"
        )
    rows: list[dict[str, object]] = []
    quarantine: list[QuarantineRow] = []
    for index, record in enumerate(records, start=1):
        reason, row = _api_row(record, latest_month)
        if reason is None and row is not None:
            row["source_line"] = index
            rows.append(row)
        else:
            quarantine.append(
                QuarantineRow(source, index, json.dumps(record)[:2000], reason or "bad record")
            )
    schema = {k: v for k, v in CRIME_COLUMNS.items() if k not in {"crime_key", "crime_hash"}}
    frame = pl.DataFrame(rows, schema=schema)
    frame = frame.with_columns(
        pl.when(pl.col("crime_id").is_null())
        .then(pl.concat_str([pl.lit("api-"), pl.col("api_id").cast(pl.String)]))
        .otherwise(pl.col("crime_id"))
        .alias("_id")
    )
    frame = _with_keys(
        frame, id_col="crime_id", key_col="crime_key", hash_col="crime_hash", content=["_id"]
    )
    return ParsedFile(
        path,
        SourceKind.API,
        "api",
        frame.select(list(CRIME_COLUMNS)),
        quarantine,
        len(records),
        (),
        _records_of_repeated_keys(frame, records),
    )


def _records_of_repeated_keys(frame: pl.DataFrame, records: list[object]) -> dict[int, str]:
    """The JSON text of every usable record whose key repeats in the response, by its
    position (its `line`): a repeat with other content is quarantined whole when written."""
    repeated = frame.filter(pl.col("crime_key").is_duplicated())["source_line"]
    return {int(i): json.dumps(records[int(i) - 1]) for i in repeated}


def _api_row(record: object, latest_month: str) -> tuple[str | None, dict[str, object] | None]:
    if not isinstance(record, dict):
        return "record is not a JSON object", None
    category = record.get("category")
    if category not in API_CATEGORIES:
        return f"unknown crime category '{category}'", None
    month = record.get("month")
    if not isinstance(month, str) or not re.match(_MONTH_PATTERN, month):
        return f"bad month '{month}' (expected YYYY-MM)", None
    if not FIRST_MONTH <= month <= latest_month:
        return f"month '{month}' is outside the data.police.uk range", None
    api_id = record.get("id")
    if not isinstance(api_id, int):
        return "record has no numeric id", None
    location = record.get("location")
    lat = lon = None
    street = None
    if isinstance(location, dict):
        try:
            lat = float(location["latitude"]) if location.get("latitude") else None
            lon = float(location["longitude"]) if location.get("longitude") else None
        except (TypeError, ValueError):
            return "latitude or longitude is not a number", None
        if (lat is None) != (lon is None):
            return "only one of longitude and latitude is given", None
        if lat is not None and lon is not None and (abs(lat) > 90 or abs(lon) > 180):
            return f"impossible coordinates ({lon}, {lat})", None
        if isinstance(location.get("street"), dict):
            street = location["street"].get("name")
    outcome = record.get("outcome_status")
    persistent = record.get("persistent_id") or None
    return None, {
        "crime_id": persistent,
        "month": _month_date(month),
        "reported_by": None,
        "falls_within": None,
        "longitude": lon,
        "latitude": lat,
        "location": street,
        "lsoa_code_file": None,
        "lsoa_name_file": None,
        "crime_type": API_CATEGORIES[str(category)],
        "last_outcome_category": outcome.get("category") if isinstance(outcome, dict) else None,
        "context": record.get("context") or None,
        "api_id": api_id,
    }


def _month_date(month: str) -> dt.date:
    return dt.date(int(month[:4]), int(month[5:7]), 1)
