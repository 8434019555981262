"""The Spark job (issue 17): police.uk street, outcomes and stop-and-search files at
national scale, as Parquet that `placeharm load-parquet` (services/parquet_load.py) loads
into either store.

Nothing here re-states a rule. Each file is read, validated and keyed by the same functions as
`placeharm ingest` (ingest/policeuk.parse_file, services/ingest._split_duplicates), and its
records (street and stop-and-search rows: outcomes have no place of their own, they follow
their crime) are given their areas by the same `Assigner` (services/areas.py via
services/ingest._assign), inside `mapInArrow` on the executors: the area sets' polygons are
broadcast once as WKB and prepared once per Python worker. Spark contributes the parallelism
(files spread over the executors) and the aggregation (counts per area set x area x month x
type, each crime counted once at the version `placeharm ingest` would keep current).

Output, in the folder given (`--out`):

    records/     Parquet: every usable row of every street file, with its areas (one row per
                 record of a file; `identical_repeats` says how many later lines repeat it
                 exactly)
    repeats/     Parquet: street rows repeating a record's key with other content (quarantined;
                 kept so that load-parquet accounts for them as `placeharm ingest` does)
    outcomes/    Parquet: every usable row of every outcomes file (`vintage` of its download)
    searches/    Parquet: every usable row of every stop-and-search file, with its areas
    quarantine/  Parquet: source_file, line, raw_text, reason (as `placeharm quarantine`)
    aggregates/  Parquet: set_name, area_code, month, crime_type, records
    outcome_aggregates/  Parquet: set_name, area_code, month, outcome_type, outcomes (the
                 outcomes held, per the area of their crime among the job's street records;
                 area_code null where the crime is not among them)
    search_aggregates/   Parquet: set_name, area_code, month, search_type, searches
    manifest.json  written last: schema version, the options, the area sets (with a digest
                 of their polygons), every source file with its SHA-256 and row account,
                 every output file with its SHA-256 and rows, and the totals

`crime_hash` and `search_hash` (unsigned 64-bit join hashes in the store) are written as the
signed 64-bit integers with the same bits, since Spark has no unsigned type.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import sys
import uuid
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import shapely

from placeharm.errors import (
    ConfigError,
    DataError,
    ImportFailed,
    PlaceharmError,
    describe,
    is_fatal,
)
from placeharm.ingest.boundaries import read_boundaries
from placeharm.ingest.csvfile import ReadLimits, file_label, snapshot_of
from placeharm.ingest.policeuk import (
    CRIME_COLUMNS,
    CRIME_CONTENT,
    OUTCOME_COLUMNS,
    SEARCH_COLUMNS,
    ParsedFile,
    parse_file,
)
from placeharm.ingest.vintage import file_vintage
from placeharm.model import QuarantineRow, SourceKind, check_area_set_name
from placeharm.services.areas import Assigner, LoadedSet
from placeharm.services.ingest import (
    _assign,
    _latest_month,
    _split_duplicates,
    _unforeseen,
    _unreadable,
    find_files,
    published_refusal,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

# 2: outcomes and stop-and-search files (outcomes/, searches/ and their aggregates)
SCHEMA_VERSION = 2
MANIFEST = "manifest.json"
OUTPUTS = (
    "records",
    "repeats",
    "outcomes",
    "searches",
    "quarantine",
    "aggregates",
    "outcome_aggregates",
    "search_aggregates",
)
# The output folder of each kind of file's usable rows, and its row tag in mapInArrow.
KIND_OUTPUT = {
    SourceKind.STREET.value: "records",
    SourceKind.OUTCOMES.value: "outcomes",
    SourceKind.STOP_SEARCH.value: "searches",
}
# Columns every record row carries besides its areas (`area_<set>`), in this order.
RECORD_EXTRA: dict[str, type[pl.DataType]] = {
    "located": pl.Boolean,
    "in_area": pl.Boolean,
    "lsoa_reconciled": pl.Boolean,
    "vintage": pl.String,
    "identical_repeats": pl.Int32,
}
_SPARK_TYPES = {
    pl.String: "string",
    pl.UInt64: "bigint",
    pl.Int64: "bigint",
    pl.Int32: "int",
    pl.Float64: "double",
    pl.Date: "date",
    pl.Boolean: "boolean",
}


@dataclass(frozen=True, slots=True)
class AreaSource:
    """An area set the job assigns: its name and boundary file (`--areas SET=FILE`)."""

    name: str
    path: Path


def parse_area_specs(specs: Iterable[str]) -> list[AreaSource]:
    """`SET=FILE` texts as area sources; a bad one is refused with what to write instead."""
    sources: list[AreaSource] = []
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise DataError(
                f"--areas {spec!r}: give an area set as SET=FILE, e.g. "
                "--areas lsoa=boundaries/lsoa2011.geojson"
            )
        check_area_set_name(name)
        if any(s.name == name for s in sources):
            raise DataError(f"--areas names the set {name!r} twice; give each set once")
        if not Path(path).is_file():
            raise DataError(f"--areas {name}={path}: no such boundary file")
        sources.append(AreaSource(name, Path(path)))
    return sources


def area_digest(codes: Sequence[str], wkbs: Sequence[bytes]) -> str:
    """SHA-256 of an area set's codes and polygons (WKB) in code order: the same for the
    boundaries the job assigned with and a store that imported the same file."""
    digest = hashlib.sha256()
    for code, wkb in sorted(zip(codes, wkbs, strict=True)):
        digest.update(code.encode() + b"\x00" + len(wkb).to_bytes(8, "big") + wkb)
    return digest.hexdigest()


def record_schema(set_names: Sequence[str]) -> dict[str, type[pl.DataType]]:
    """The records' columns as written (crime_hash as a signed 64-bit integer)."""
    columns: dict[str, type[pl.DataType]] = {"source_file": pl.String}
    columns |= {k: (pl.Int64 if k == "crime_hash" else v) for k, v in CRIME_COLUMNS.items()}
    columns |= {f"area_{name}": pl.String for name in set_names}
    return columns | RECORD_EXTRA


def outcome_schema() -> dict[str, type[pl.DataType]]:
    """The outcomes' columns as written (crime_hash signed), with their download's vintage."""
    columns: dict[str, type[pl.DataType]] = {"source_file": pl.String}
    columns |= {k: (pl.Int64 if k == "crime_hash" else v) for k, v in OUTCOME_COLUMNS.items()}
    return columns | {"vintage": pl.String}


def search_schema(set_names: Sequence[str]) -> dict[str, type[pl.DataType]]:
    """The stop-and-search rows' columns as written (search_hash signed), with their areas
    (as `placeharm ingest` stores them: no LSOA reconciliation, no vintage column)."""
    columns: dict[str, type[pl.DataType]] = {"source_file": pl.String}
    columns |= {k: (pl.Int64 if k == "search_hash" else v) for k, v in SEARCH_COLUMNS.items()}
    columns |= {f"area_{name}": pl.String for name in set_names}
    return columns | {"located": pl.Boolean, "in_area": pl.Boolean}


def kind_schema(kind: str, set_names: Sequence[str]) -> dict[str, type[pl.DataType]]:
    """The written columns of one kind of file's usable rows."""
    if kind == SourceKind.OUTCOMES.value:
        return outcome_schema()
    if kind == SourceKind.STOP_SEARCH.value:
        return search_schema(set_names)
    return record_schema(set_names)


_QUARANTINE_SCHEMA: dict[str, type[pl.DataType]] = {
    "source_file": pl.String,
    "line": pl.Int64,
    "raw_text": pl.String,
    "reason": pl.String,
}


@dataclass(frozen=True, slots=True)
class _Options:
    """What every executor needs (pickled with the function that runs there)."""

    job: str  # caches on a Python worker are per job
    latest_month: str
    tolerance_m: float
    max_bytes: int
    max_line_bytes: int
    published: dt.date | None
    set_names: tuple[str, ...]


def _tagged_schema(set_names: Sequence[str]) -> dict[str, type[pl.DataType]]:
    """One row per record, per quarantined row and per file (`tag`), as mapInArrow returns
    them: the columns of every kind's rows (a name shared by two kinds has one type), then
    the quarantine's, then the file's account as JSON."""
    columns: dict[str, type[pl.DataType]] = {"tag": pl.String}
    for part in (record_schema(set_names), outcome_schema(), search_schema(set_names)):
        for name, kind in part.items():
            if columns.setdefault(name, kind) is not kind:  # a bug: say so
                raise AssertionError(f"column {name} has two types: {columns[name]}, {kind}")
    columns |= {k: v for k, v in _QUARANTINE_SCHEMA.items() if k != "source_file"}
    return columns | {"account": pl.String}


def _ddl(schema: dict[str, type[pl.DataType]]) -> str:
    return ", ".join(f"`{name}` {_SPARK_TYPES[kind]}" for name, kind in schema.items())


# -- the executors' side ---------------------------------------------------------------------

_WORKER: dict[str, Assigner] = {}


def _worker_assigner(options: _Options, sets: list[tuple[str, list[str], list[bytes]]]) -> Assigner:
    """This Python worker's assigner for the job: the broadcast polygons, prepared once
    (Spark reuses a Python worker for the job's tasks), and the points already assigned."""
    assigner = _WORKER.get(options.job)
    if assigner is None:
        _WORKER.clear()
        loaded = [
            LoadedSet(name, np.asarray(codes, dtype=object), shapely.from_wkb(np.asarray(wkbs)))
            for name, codes, wkbs in sets
        ]
        assigner = _WORKER[options.job] = Assigner(loaded, 1, options.tolerance_m)
    return assigner


def _local_path(uri: str) -> str:
    """A Spark file URI as the path `placeharm ingest` would name (file:/x/y -> /x/y)."""
    parsed = urlparse(uri)
    return unquote(parsed.path) if parsed.scheme in ("", "file") else uri


def _file_rows(uri: str, content: bytes, options: _Options, assigner: Assigner) -> pl.DataFrame:
    """One file as tagged rows: its records (with areas), its quarantine, its account."""
    label = _local_path(uri)
    path = Path(label)
    source = file_label(path)
    limits = ReadLimits(options.max_bytes, options.max_line_bytes)
    account: dict[str, Any] = {"source_file": source, "sha256": "", "kind": "unknown"}
    schema = _tagged_schema(options.set_names)

    def only_account(status: str, message: str, rows_read: int = 0) -> pl.DataFrame:
        account.update(status=status, message=message, rows_read=rows_read)
        account.update(records=0, identical_repeats=0, quarantined=0)
        return _account_row(account, schema)

    try:
        snapshot = snapshot_of(content, path, limits)
        account["sha256"] = snapshot.sha256
        del content
        parsed = parse_file(path, options.latest_month, limits, snapshot.release())
    except BaseException as exc:  # this file only: the others still go on
        if is_fatal(exc):
            raise
        failure = _unreadable(path, exc)
        return only_account(
            "failed" if isinstance(failure, ImportFailed) else "refused", str(failure)
        )
    account.update(kind=parsed.kind.value, force=parsed.force)
    if parsed.kind.value not in KIND_OUTPUT:  # API responses: small, for `placeharm ingest`
        # refused, not passed over: load-parquet then logs it as `placeharm ingest` logs a
        # file it refuses, so no file given is dropped without a word
        return only_account(
            "refused",
            f"{source}: a data.police.uk {parsed.kind.value.upper()} response; the Spark job "
            "reads the bulk street, outcomes and stop-and-search files only, so nothing of it "
            "was read. Import it with `placeharm ingest`",
            parsed.rows_read,
        )
    latest_held = _latest_month(parsed)
    refusal = published_refusal(path, options.published, latest_held)
    if refusal is not None:
        return only_account("refused", str(refusal))
    vintage = file_vintage(path, latest_held, account["sha256"], options.published)
    account.update(
        file_months=list(parsed.file_months),
        published_at=vintage.published_at.isoformat(),
        published_how=vintage.how,
        vintage=vintage.key,
    )
    try:
        frame = _assign(parsed, assigner)
    except BaseException as exc:
        if is_fatal(exc):
            raise
        failure = exc if isinstance(exc, PlaceharmError) else _unforeseen(exc, "areas", path)
        return only_account("failed", str(failure), parsed.rows_read)
    if parsed.kind is not SourceKind.STREET:
        return _keyed_rows(parsed, frame, account, vintage.key, schema)
    first, identical, repeats = _split_duplicates(
        frame, "crime_key", list(CRIME_CONTENT), source, parsed.raw_text
    )
    counts = _identical_repeats(frame, first) if identical else None
    quarantine = sorted([*parsed.quarantine, *repeats], key=lambda q: q.line)
    provenance = [
        pl.lit(source).alias("source_file"),
        pl.col("crime_hash").reinterpret(signed=True),
        pl.lit(vintage.key).alias("vintage"),
    ]
    # rows repeating a record's key with other content: quarantined, and kept for the loader
    # so that it accounts for them as `placeharm ingest` does
    differing = frame.filter(pl.col("source_line").is_in([q.line for q in repeats])).with_columns(
        *provenance, pl.lit(0, dtype=pl.Int32).alias("identical_repeats")
    )
    records = first.with_columns(
        pl.lit(source).alias("source_file"),
        pl.col("crime_hash").reinterpret(signed=True),
        pl.lit(vintage.key).alias("vintage"),
        (
            first.select("crime_key")
            .join(counts, on="crime_key", how="left")["n"]
            .fill_null(0)
            .cast(pl.Int32)
            if counts is not None
            else pl.lit(0, dtype=pl.Int32)
        ).alias("identical_repeats"),
    )
    account.update(
        status="ok",
        message="",
        rows_read=parsed.rows_read,
        records=records.height,
        identical_repeats=identical,
        differing_repeats=differing.height,
        quarantined=len(quarantine),
        no_location=int((~frame["located"]).sum()),
        outside_areas=int((frame["in_area"] == False).sum()),  # noqa: E712
    )
    if parsed.rows_read != records.height + identical + len(quarantine):  # a bug: say so
        return only_account(
            "failed",
            f"{source}: row accounting does not balance in the Spark job (read "
            f"{parsed.rows_read}, records {records.height} + repeats {identical} + "
            f"quarantined {len(quarantine)}); nothing of this file is written",
            parsed.rows_read,
        )
    parts = [
        records.with_columns(pl.lit("records").alias("tag")),
        differing.with_columns(pl.lit("repeats").alias("tag")),
        _quarantine_frame(quarantine)
        .drop("source_file")
        .with_columns(pl.lit("quarantine").alias("tag"), pl.lit(source).alias("source_file")),
        _account_row(account, schema),
    ]
    return pl.concat(
        [p.select([c for c in schema if c in p.columns]) for p in parts], how="diagonal_relaxed"
    )


def _keyed_rows(
    parsed: ParsedFile,
    frame: pl.DataFrame,
    account: dict[str, Any],
    vintage: str,
    schema: dict[str, type[pl.DataType]],
) -> pl.DataFrame:
    """An outcomes or stop-and-search file's tagged rows. Their keys cannot repeat within a
    file (an outcome's key and a search's key carry the row's rank among identical rows), so
    `placeharm ingest` splits no duplicates of these: every usable row is written, and its
    store decides new, changed or unchanged."""
    source = account["source_file"]
    kind = parsed.kind.value
    columns = kind_schema(kind, ())
    hash_col = "crime_hash" if parsed.kind is SourceKind.OUTCOMES else "search_hash"
    rows = frame.with_columns(
        pl.lit(source).alias("source_file"), pl.col(hash_col).reinterpret(signed=True)
    )
    if "vintage" in columns:  # outcomes: the set of a crime-month from the newest download
        rows = rows.with_columns(pl.lit(vintage).alias("vintage"))
    account.update(
        status="ok",
        message="",
        rows_read=parsed.rows_read,
        records=rows.height,
        identical_repeats=0,
        differing_repeats=0,
        quarantined=len(parsed.quarantine),
    )
    if "located" in frame.columns:  # as services.ingest._write_files counts them
        account.update(
            no_location=int((~frame["located"]).sum()),
            outside_areas=int((frame["in_area"] == False).sum()),  # noqa: E712
        )
    if parsed.rows_read != rows.height + len(parsed.quarantine):  # a bug: say so
        account.update(
            status="failed",
            message=f"{source}: row accounting does not balance in the Spark job (read "
            f"{parsed.rows_read}, records {rows.height} + quarantined "
            f"{len(parsed.quarantine)}); nothing of this file is written",
            records=0,
            quarantined=0,
        )
        return _account_row(account, schema)
    parts = [
        rows.with_columns(pl.lit(KIND_OUTPUT[kind]).alias("tag")),
        _quarantine_frame(parsed.quarantine)
        .drop("source_file")
        .with_columns(pl.lit("quarantine").alias("tag"), pl.lit(source).alias("source_file")),
        _account_row(account, schema),
    ]
    return pl.concat(
        [p.select([c for c in schema if c in p.columns]) for p in parts], how="diagonal_relaxed"
    )


def _identical_repeats(frame: pl.DataFrame, first: pl.DataFrame) -> pl.DataFrame:
    """Per record key, how many later rows of the file repeat its first row exactly (the
    rows `_split_duplicates` counts as unchanged)."""
    content = list(CRIME_CONTENT)
    later = frame.filter(~pl.col("crime_key").is_first_distinct())
    same = later.join(
        first.select("crime_key", *content),
        on=["crime_key", *content],
        how="semi",
        nulls_equal=True,
    )
    return same.group_by("crime_key").len("n")


def _quarantine_frame(rows: list[QuarantineRow]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "source_file": [q.source_file for q in rows],
            "line": [q.line for q in rows],
            "raw_text": [q.raw_text for q in rows],
            "reason": [q.reason for q in rows],
        },
        schema=_QUARANTINE_SCHEMA,
    )


def _account_row(account: dict[str, Any], schema: dict[str, type[pl.DataType]]) -> pl.DataFrame:
    return pl.DataFrame(
        {"tag": ["file"], "source_file": [account["source_file"]], "account": [json.dumps(account)]}
    )


def _to_batches(frame: pl.DataFrame, schema: dict[str, type[pl.DataType]]) -> list[pa.RecordBatch]:
    """Tagged rows as Arrow batches of exactly the declared types (strings as Arrow strings,
    not polars' string views, which Spark does not read)."""
    full = frame.select(
        [
            pl.col(c).cast(k) if c in frame.columns else pl.lit(None, dtype=k).alias(c)
            for c, k in schema.items()
        ]
    )
    table = full.to_arrow()
    target = pa.schema(
        [
            pa.field(name, pa.string() if kind is pl.String else table.schema.field(name).type)
            for name, kind in schema.items()
        ]
    )
    batches: list[pa.RecordBatch] = table.cast(target).to_batches()
    return batches


def _map_files(
    options: _Options, sets: Any
) -> Any:  # a function of an iterator of Arrow batches, for mapInArrow
    schema = _tagged_schema(options.set_names)

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        assigner = _worker_assigner(options, sets.value)
        for batch in batches:
            paths = batch.column("path").to_pylist()
            contents = batch.column("content")
            for index, uri in enumerate(paths):
                content = contents[index].as_py()
                yield from _to_batches(_file_rows(uri, content, options, assigner), schema)

    return run


# -- the driver's side -----------------------------------------------------------------------


def _spark_session(master: str | None) -> SparkSession:
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise ConfigError(
            "the Spark job needs pyspark, which this installation lacks: install placeharm "
            "with its `spark` extra (pip install 'placeharm[spark]'; `make setup` does)"
        ) from exc
    # Executors in local mode run this Python (with placeharm); on a cluster, spark-submit's
    # PYSPARK_PYTHON names the executors' Python (docs/deploy.md).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    # pyspark 4.3 warns that it "does not yet fully support pandas >= 3"; the job uses no
    # pandas (mapInArrow hands Arrow batches over), so the warning says nothing to the user
    warnings.filterwarnings("ignore", "PySpark does not yet fully support pandas", FutureWarning)
    builder = SparkSession.builder.appName("placeharm spark ingest")
    if master:
        builder = builder.master(master)
        if master.startswith("local"):
            # local mode runs the tasks in the driver's JVM, whose default heap is 1 GB
            builder = builder.config("spark.driver.memory", "2g")
    builder = (
        builder.config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.python.worker.reuse", "true")
    )
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def _read_areas(areas: Sequence[AreaSource]) -> list[dict[str, Any]]:
    """Each set's codes and polygons (WKB, as `placeharm areas import` stores them) in code
    order, the order `load_sets` gives the assigner (ties go to the lowest code)."""
    sets = []
    for source in areas:
        boundaries = read_boundaries(source.path)
        order = np.argsort(np.asarray(boundaries.codes, dtype=object), kind="stable")
        codes = [boundaries.codes[i] for i in order]
        wkbs = [bytes(w) for w in shapely.to_wkb(boundaries.polygons[order])]
        sets.append(
            {
                "name": source.name,
                "source_file": str(source.path),
                "sha256": hashlib.sha256(source.path.read_bytes()).hexdigest(),
                "features": len(codes),
                "rejected": len(boundaries.rejected),
                "digest": area_digest(codes, wkbs),
                "_codes": codes,
                "_wkbs": wkbs,
            }
        )
    return sets


def _input_uris(paths: Sequence[str]) -> list[str]:
    """Local files and folders as file URIs (folders searched as `placeharm ingest` does);
    anything with a scheme (hdfs://, s3a://) is passed to Spark as given."""
    local = [p for p in paths if "://" not in p]
    remote = [p for p in paths if "://" in p]
    found = [f.resolve().as_uri() for f in find_files(local)] if local else []
    return [*found, *remote]


def run(
    paths: Sequence[str],
    areas: Sequence[AreaSource],
    out: Path,
    master: str | None = None,
    tolerance_m: float = 25.0,
    limits: ReadLimits | None = None,
    published: dt.date | None = None,
    spark: SparkSession | None = None,
) -> dict[str, Any]:
    """Run the job; return the manifest it wrote in `out` (a new or empty folder).

    `master` is Spark's (e.g. local[*]); None leaves it to spark-submit. `spark`: a session
    to use (tests share one). A failure of Spark or Java ends in a PlaceharmError saying what
    to do; `out` is then left without a manifest, which `load-parquet` refuses.
    """
    limits = limits or ReadLimits()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(
            f"{out} already exists and is not an empty folder; give a new folder for the "
            "job's output (nothing there is overwritten)"
        )
    if not (0 <= tolerance_m < 1000):
        raise DataError(f"--tolerance-m {tolerance_m} must be from 0 to 1000 metres")
    uris = _input_uris(paths)
    sets = _read_areas(areas)
    latest = dt.date.today().strftime("%Y-%m")
    options = _Options(
        uuid.uuid4().hex,
        latest,
        tolerance_m,
        limits.max_bytes,
        limits.max_line_bytes,
        published,
        tuple(s["name"] for s in sets),
    )
    started = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        session = spark or _spark_session(master)
        files, written = _run_spark(session, uris, sets, options, out)
    except BaseException as exc:
        if is_fatal(exc):
            raise
        for name in OUTPUTS:  # what this job wrote, and the folder if it made it
            shutil.rmtree(out / name, ignore_errors=True)
        if created:
            shutil.rmtree(out, ignore_errors=True)
        if isinstance(exc, PlaceharmError):
            raise
        raise _spark_failure(exc) from exc
    manifest = _manifest(out, sets, files, written, options, started)
    partial = out / f".{MANIFEST}.partial"
    partial.write_text(json.dumps(manifest, indent=2) + "\n")
    partial.replace(out / MANIFEST)  # last: a folder with a manifest is a finished job
    return manifest


def _run_spark(
    spark: SparkSession,
    uris: list[str],
    sets: list[dict[str, Any]],
    options: _Options,
    out: Path,
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    from pyspark import StorageLevel
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    broadcast = spark.sparkContext.broadcast([(s["name"], s["_codes"], s["_wkbs"]) for s in sets])
    schema = _tagged_schema(options.set_names)
    files_df = spark.read.format("binaryFile").load(uris).select("path", "content")
    # Kept on disk, not in memory: the outputs are written from it without parsing again,
    # and a task's rows (several files) need not fit the executor's heap (MEMORY_AND_DISK
    # ran out of a 1 GB heap on four of the 10M benchmark's files).
    tagged = files_df.mapInArrow(_map_files(options, broadcast), _ddl(schema)).persist(
        StorageLevel.DISK_ONLY
    )
    try:
        names = options.set_names
        records = tagged.filter(F.col("tag") == "records").select(*record_schema(names))
        outcomes = tagged.filter(F.col("tag") == "outcomes").select(*outcome_schema())
        searches = tagged.filter(F.col("tag") == "searches").select(*search_schema(names))
        quarantine = tagged.filter(F.col("tag") == "quarantine").select(*_QUARANTINE_SCHEMA)
        accounts = [
            json.loads(row["account"])
            for row in tagged.filter(F.col("tag") == "file").select("account").collect()
        ]
        repeats = tagged.filter(F.col("tag") == "repeats").select(*record_schema(names))
        records.write.parquet(_uri(out / "records"))
        repeats.write.parquet(_uri(out / "repeats"))
        outcomes.write.parquet(_uri(out / "outcomes"))
        searches.write.parquet(_uri(out / "searches"))
        quarantine.write.parquet(_uri(out / "quarantine"))
        # Each crime counted once, at the version `placeharm ingest` keeps current: its
        # earliest month, then the newer download (services/ingest._write_crimes).
        window = Window.partitionBy("crime_key").orderBy(
            F.col("month").asc(), F.col("vintage").desc()
        )
        current = records.withColumn("_n", F.row_number().over(window)).filter("_n = 1")
        aggregates = _aggregates(current, names, "crime_type", "records", spark)
        aggregates.coalesce(1).write.parquet(_uri(out / "aggregates"))
        # The outcomes of a crime in a month are the set of the newest download of that
        # month (services/ingest._write_outcomes; on a tie of vintages the first file, as
        # `placeharm ingest` writes them in path order), placed at their crime's areas.
        unit = Window.partitionBy("crime_id", "month").orderBy(
            F.col("vintage").desc(), F.col("source_file").asc()
        )
        held = outcomes.withColumn("_from", F.first("source_file").over(unit)).filter(
            F.col("_from") == F.col("source_file")
        )
        placed = held.select("crime_id", "month", "outcome_type").join(
            current.select(
                F.col("crime_id").alias("_crime"), *[F.col(f"area_{n}") for n in names]
            ).filter(F.col("_crime").isNotNull()),
            F.col("crime_id") == F.col("_crime"),
            "left",
        )
        outcome_cells = _aggregates(placed, names, "outcome_type", "outcomes", spark)
        outcome_cells.coalesce(1).write.parquet(_uri(out / "outcome_aggregates"))
        # A search is keyed by its content: the same search in two downloads is held once.
        search_cells = _aggregates(
            searches.dropDuplicates(["search_key"]), names, "search_type", "searches", spark
        )
        search_cells.coalesce(1).write.parquet(_uri(out / "search_aggregates"))
    finally:
        tagged.unpersist()
        broadcast.unpersist()
    _check_every_file(uris, accounts)
    written = {"files": len(accounts)}
    return sorted(accounts, key=lambda a: a["source_file"]), written


def _check_every_file(uris: Sequence[str], accounts: list[dict[str, Any]]) -> None:
    """Every local file given has exactly one account (read, refused or failed): a file Spark
    did not list would otherwise be missing from the output without a word."""
    given = [file_label(Path(_local_path(u))) for u in uris if urlparse(u).scheme in ("", "file")]
    seen = [a["source_file"] for a in accounts]
    missing = sorted(set(given) - set(seen))
    twice = sorted({s for s in seen if seen.count(s) > 1})
    if missing or twice:
        raise PlaceharmError(
            "the Spark job did not account for every file exactly once ("
            + "; ".join(
                ([f"not read: {', '.join(missing[:5])}"] if missing else [])
                + ([f"read twice: {', '.join(twice[:5])}"] if twice else [])
            )
            + "); nothing was written. Run the job again; if it recurs, report it"
        )


def _aggregates(
    rows: DataFrame, set_names: Sequence[str], kind: str, count: str, spark: SparkSession
) -> DataFrame:
    """Rows per set x area x month x `kind` (crime type, outcome type, search type), as the
    column `count`."""
    from pyspark.sql import functions as F

    parts = [
        rows.select(
            F.lit(name).alias("set_name"),
            F.col(f"area_{name}").alias("area_code"),
            "month",
            kind,
        )
        for name in set_names
    ]
    if not parts:
        return spark.createDataFrame(
            [], f"set_name string, area_code string, month date, {kind} string, {count} bigint"
        )
    union = parts[0]
    for part in parts[1:]:
        union = union.unionByName(part)
    return union.groupBy("set_name", "area_code", "month", kind).agg(F.count(F.lit(1)).alias(count))


def _uri(path: Path) -> str:
    return path.resolve().as_uri()


def _spark_failure(exc: BaseException) -> PlaceharmError:
    """Spark's and Java's failures (Py4J errors, a JVM that did not start) as a message."""
    text = describe(exc)
    if (
        "JAVA_GATEWAY_EXITED" in text
        or "JAVA_HOME" in text
        or ("java" in text.lower() and ("not found" in text.lower() or "No such file" in text))
    ):
        return ConfigError(
            "Spark could not start Java. Install Java 17 (Debian: apt-get install "
            f"openjdk-17-jre-headless) or set JAVA_HOME, then run the job again ({text})"
        )
    return PlaceharmError(
        f"the Spark job failed and wrote no manifest, so nothing can be loaded from it: "
        f"{text}. Spark's log has the details; fix the cause and run the job again into an "
        "empty folder"
    )


def output_files(out: Path, name: str) -> list[Path]:
    """The Parquet files of one output folder, in name order."""
    return sorted((out / name).glob("*.parquet"))


def _manifest(
    out: Path,
    sets: list[dict[str, Any]],
    files: list[dict[str, Any]],
    written: dict[str, int],
    options: _Options,
    started: dt.datetime,
) -> dict[str, Any]:
    from placeharm.version import describe as installation

    outputs: dict[str, list[dict[str, Any]]] = {}
    for name in OUTPUTS:
        outputs[name] = [
            {
                "file": f"{name}/{f.name}",
                "sha256": hashlib.sha256(f.read_bytes()).hexdigest(),
                "rows": pq.read_metadata(f).num_rows,
            }
            for f in output_files(out, name)
        ]
    ok = [f for f in files if f["status"] == "ok"]
    of_kind = {
        output: sum(f["records"] for f in ok if f["kind"] == kind)
        for kind, output in KIND_OUTPUT.items()
    }
    aggregate_records = 0
    if outputs["aggregates"]:
        aggregate_records = int(
            pl.read_parquet([out / f["file"] for f in outputs["aggregates"]])["records"].sum()
        )
    return {
        "schema_version": SCHEMA_VERSION,
        "written_by": f"placeharm {installation().version}",
        "started_at": started.isoformat(),
        "finished_at": dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(),
        "latest_month": options.latest_month,
        "tolerance_m": options.tolerance_m,
        "published": options.published.isoformat() if options.published else None,
        "crime_hash": "signed 64-bit (the store's unsigned hash, same bits)",
        "area_sets": [{k: v for k, v in s.items() if not k.startswith("_")} for s in sets],
        "source_files": files,
        "outputs": outputs,
        "counts": {
            "files": written["files"],
            "files_ok": len(ok),
            "rows_read": sum(f["rows_read"] for f in ok),
            "records": of_kind["records"],
            "outcomes": of_kind["outcomes"],
            "searches": of_kind["searches"],
            "identical_repeats": sum(f["identical_repeats"] for f in ok),
            "differing_repeats": sum(f["differing_repeats"] for f in ok),
            "quarantined": sum(f["quarantined"] for f in ok),
            "aggregate_cells": sum(o["rows"] for o in outputs["aggregates"]),
            "aggregate_records": aggregate_records,
        },
    }
