"""`placeharm load-parquet DIR`: load the Spark job's output (services/spark.py) into the
store, by the same write path as `placeharm ingest`, in one transaction.

Every file the job read is accounted for as `placeharm ingest` accounts for it (inserted,
updated, unchanged, quarantined, in the import log and the audit log); the harm cube is kept
in the same transaction. A folder whose manifest is missing, of another schema version, or
does not match its Parquet files (a file missing, changed or added, a count that differs) is
refused before anything is written, as is a store whose area sets are not the ones the job
assigned (their polygons are compared by digest).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import polars as pl

from placeharm.audit import Actor
from placeharm.errors import DataError, ImportFailed, PlaceharmError
from placeharm.ingest.policeuk import CRIME_COLUMNS, OUTCOME_COLUMNS, SEARCH_COLUMNS, ParsedFile
from placeharm.ingest.vintage import Vintage
from placeharm.model import ImportResult, QuarantineRow, SourceKind
from placeharm.services.areas import assign_pending
from placeharm.services.ingest import _Parsed, _write_files
from placeharm.services.spark import (
    KIND_OUTPUT,
    MANIFEST,
    OUTPUTS,
    SCHEMA_VERSION,
    area_digest,
    kind_schema,
    output_files,
)
from placeharm.store.base import Store

ROUTE = "load-parquet"  # what the audit log names as the way in
_EMPTY_QUARANTINE = pl.DataFrame(
    schema={"source_file": pl.String, "line": pl.Int64, "raw_text": pl.String, "reason": pl.String}
)


def read_manifest(folder: Path) -> dict[str, Any]:
    """The folder's manifest, checked against its Parquet files; DataError if anything is
    wrong (what, and what to do)."""
    path = folder / MANIFEST
    if not folder.is_dir():
        raise DataError(
            f"{folder} is not a folder; give the --out folder of `placeharm spark ingest`"
        )
    if not path.is_file():
        raise DataError(
            f"{folder} has no {MANIFEST}, so it is not the output of a finished `placeharm spark "
            "ingest` (a job that failed or is still running writes none); run the job again "
            "into an empty folder"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path} cannot be read as JSON ({exc}); run the job again") from None
    if not isinstance(manifest, dict):
        raise DataError(f"{path} is not a placeharm manifest (not a JSON object)")
    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION:
        raise DataError(
            f"{path} has schema version {version!r}; this placeharm loads version "
            f"{SCHEMA_VERSION}. Run the job with this placeharm's `placeharm spark ingest`"
        )
    needed = ("area_sets", "source_files", "outputs", "counts", "tolerance_m")
    missing = [k for k in needed if k not in manifest]
    if missing:
        raise DataError(f"{path} lacks {', '.join(missing)}; it is damaged: run the job again")
    _check_outputs(folder, manifest)
    return manifest


def _check_outputs(folder: Path, manifest: dict[str, Any]) -> None:
    """Every Parquet file the manifest lists is there with its SHA-256 and row count, no other
    is, and the counts add up to the manifest's."""
    outputs = manifest["outputs"]
    rows: dict[str, int] = {}
    for name in OUTPUTS:
        listed = {entry["file"]: entry for entry in outputs.get(name, [])}
        present = {f"{name}/{f.name}" for f in output_files(folder, name)}
        extra, gone = sorted(present - set(listed)), sorted(set(listed) - present)
        if extra or gone:
            what = "; ".join(
                ([f"not in the manifest: {', '.join(extra)}"] if extra else [])
                + ([f"missing: {', '.join(gone)}"] if gone else [])
            )
            raise DataError(
                f"{folder}: the Parquet files do not match {MANIFEST} ({what}); the folder was "
                "changed after the job wrote it. Run the job again"
            )
        for file, entry in listed.items():
            digest = hashlib.sha256((folder / file).read_bytes()).hexdigest()
            if digest != entry.get("sha256"):
                raise DataError(
                    f"{folder / file} is not the file the job wrote (its SHA-256 differs from "
                    f"{MANIFEST}'s); it was changed or damaged. Run the job again"
                )
        rows[name] = sum(int(entry["rows"]) for entry in listed.values())
    ok = [f for f in manifest["source_files"] if f.get("status") == "ok"]
    counts = manifest["counts"]
    expected = {
        output: sum(int(f["records"]) for f in ok if f.get("kind") == kind)
        for kind, output in KIND_OUTPUT.items()
    }
    expected |= {
        "quarantine": sum(int(f["quarantined"]) for f in ok),
        "repeats": sum(int(f["differing_repeats"]) for f in ok),
    }
    for name, total in expected.items():
        key = {"quarantine": "quarantined", "repeats": "differing_repeats"}.get(name, name)
        if rows[name] != total or counts.get(key) != total:
            raise DataError(
                f"{folder}: {name} holds {rows[name]:,} rows, the manifest's files account for "
                f"{total:,} and its counts say {counts.get(key)!r}; the folder is inconsistent. "
                "Run the job again"
            )


def _check_sets(store: Store, manifest: dict[str, Any]) -> list[str]:
    """The store must hold exactly the job's area sets with the same polygons (else its
    records would carry areas the store does not have, or lack some it does)."""
    job = {s["name"]: s["digest"] for s in manifest["area_sets"]}
    held = [s.name for s in store.area_sets()]
    for name, digest in job.items():
        if name not in held:
            raise DataError(
                f"the store has no area set {name!r}, which the job assigned; import the same "
                f"boundary file first (`placeharm areas import FILE --name {name}`)"
            )
        polygons = store.area_polygons(name)
        mine = area_digest(polygons["area_code"].to_list(), polygons["geometry_wkb"].to_list())
        if mine != digest:
            raise DataError(
                f"the store's area set {name!r} is not the one the job assigned (its polygons "
                "differ); import the boundary file the job used, or run the job with the "
                "store's boundaries"
            )
    extra = [name for name in held if name not in job]
    if extra:
        raise DataError(
            f"the store has area set(s) {', '.join(extra)}, which the job did not assign; run "
            "the job with --areas for every set the store holds"
        )
    return list(job)


def load_parquet(
    store: Store, folder: Path, actor: Actor | None = None, threads: int = 2
) -> list[ImportResult]:
    """Load the job's output into `store` in one transaction; one account per source file
    the job was given (a file it refused or that failed there is logged as refused or failed,
    with the job's message, as `placeharm ingest` logs one). Raises before writing anything
    when the folder or the store does not match (see the module's docstring)."""
    manifest = read_manifest(folder)
    set_names = _check_sets(store, manifest)
    tolerance_m = float(manifest["tolerance_m"])
    rows_by_kind = {}
    for kind, output in KIND_OUTPUT.items():
        schema = kind_schema(kind, set_names)
        rows = _read(folder, output, manifest)
        if rows.height and set(rows.columns) != set(schema):
            raise DataError(
                f"{folder}/{output} has columns {', '.join(rows.columns)}, not the job's "
                f"({', '.join(schema)}); run the job again"
            )
        rows_by_kind[kind] = _by_file(rows)
    repeats_by_file = _by_file(_read(folder, "repeats", manifest))
    held_by_file = _by_file(_read(folder, "quarantine", manifest))
    started = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    items = []
    for account in manifest["source_files"]:
        key = (account["source_file"],)
        kind = str(account.get("kind"))
        schema = kind_schema(kind, set_names)
        frame = rows_by_kind.get(kind, {}).get(key, pl.DataFrame(schema=schema))
        held = held_by_file.get(key, _EMPTY_QUARANTINE)
        differing = repeats_by_file.get(key, pl.DataFrame(schema=schema))
        items.append(_item(account, frame, differing, held, started))
    assign_pending(store, threads, tolerance_m)
    with store.transaction():
        results = _write_files(store, items, actor, ROUTE)
        for result, account in zip(results, manifest["source_files"], strict=True):
            if result.status == "ok" and result.rows_read != account["rows_read"]:
                raise PlaceharmError(
                    f"{result.source_file}: loaded {result.rows_read:,} rows, the manifest "
                    f"says the file had {account['rows_read']:,}; nothing was loaded"
                )
    return results


def _by_file(rows: pl.DataFrame) -> dict[Any, pl.DataFrame]:
    return rows.partition_by("source_file", as_dict=True) if rows.height else {}


def _read(folder: Path, name: str, manifest: dict[str, Any]) -> pl.DataFrame:
    files = [folder / entry["file"] for entry in manifest["outputs"][name]]
    return pl.read_parquet(files) if files else pl.DataFrame()


def _item(
    account: dict[str, Any],
    frame: pl.DataFrame,
    differing: pl.DataFrame,
    held: pl.DataFrame,
    started: dt.datetime,
) -> _Parsed:
    """One source file as `services.ingest` writes it: its parsed rows (for a street file:
    records, each identical repeat again, and the repeats with other content, as the file had
    them) with their areas, its quarantine and vintage. The street repeats with other content
    are quarantined again by the write path (`_split_duplicates`), with their raw text from
    the quarantine."""
    path = Path(account["source_file"])
    status = account["status"]
    if status != "ok":
        message = str(account.get("message") or "refused by the Spark job")
        failure = ImportFailed(message) if status == "failed" else DataError(message)
        return _Parsed(path, failure, account.get("sha256", ""), started)
    if account.get("kind") != SourceKind.STREET.value:
        return _keyed_item(account, frame, held, started)
    if (
        frame.height != account["records"]
        or held.height != account["quarantined"]
        or differing.height != account["differing_repeats"]
    ):
        raise DataError(
            f"{path}: the Parquet holds {frame.height:,} records and {held.height:,} "
            f"quarantined rows, the manifest {account['records']:,} and "
            f"{account['quarantined']:,}; run the job again"
        )
    repeats = frame["identical_repeats"].cast(pl.Int64) if frame.height else None
    if repeats is not None and int(repeats.sum()) != account["identical_repeats"]:
        raise DataError(f"{path}: the repeats in the Parquet differ from the manifest's")
    if repeats is not None and repeats.sum():
        frame = frame.gather(
            pl.int_range(frame.height, eager=True).repeat_by(repeats + 1).explode()
        )
    frame = (
        pl.concat([frame, differing])
        .sort("source_line", maintain_order=True)
        .with_columns(pl.col("crime_hash").reinterpret(signed=False))
        .drop("source_file", "identical_repeats")
    )
    again = set(differing["source_line"].to_list())
    raw_text = {}
    quarantine = []
    for line, raw, reason in held.sort("line").select("line", "raw_text", "reason").iter_rows():
        if line in again:
            raw_text[int(line)] = raw
        else:
            quarantine.append(QuarantineRow(str(path), int(line), raw, reason))
    parsed = ParsedFile(
        path,
        SourceKind.STREET,
        str(account.get("force") or "unknown"),
        frame.select(list(CRIME_COLUMNS)),
        quarantine,
        int(account["rows_read"]),
        tuple(account.get("file_months") or ()),
        raw_text,
    )
    item = _Parsed(path, parsed, account["sha256"], started)
    item.assigned = frame.drop("vintage")
    item.vintage = Vintage(
        dt.datetime.fromisoformat(account["published_at"]),
        account["published_how"],
        account["vintage"],
    )
    return item


def _keyed_item(
    account: dict[str, Any], frame: pl.DataFrame, held: pl.DataFrame, started: dt.datetime
) -> _Parsed:
    """An outcomes or stop-and-search file as `services.ingest` writes it: every usable row
    (its areas, for stop and search, as `services.ingest._assign` gave them), its quarantine
    and vintage."""
    path = Path(account["source_file"])
    kind = SourceKind(account["kind"])
    if frame.height != account["records"] or held.height != account["quarantined"]:
        raise DataError(
            f"{path}: the Parquet holds {frame.height:,} records and {held.height:,} "
            f"quarantined rows, the manifest {account['records']:,} and "
            f"{account['quarantined']:,}; run the job again"
        )
    columns = OUTCOME_COLUMNS if kind is SourceKind.OUTCOMES else SEARCH_COLUMNS
    hash_col = "crime_hash" if kind is SourceKind.OUTCOMES else "search_hash"
    frame = (
        frame.sort("source_line")
        .with_columns(pl.col(hash_col).reinterpret(signed=False))
        .drop("source_file", "vintage", strict=False)
    )
    quarantine = [
        QuarantineRow(str(path), int(line), raw, reason)
        for line, raw, reason in held.sort("line").select("line", "raw_text", "reason").iter_rows()
    ]
    parsed = ParsedFile(
        path,
        kind,
        str(account.get("force") or "unknown"),
        frame.select(list(columns)),
        quarantine,
        int(account["rows_read"]),
        tuple(account.get("file_months") or ()),
    )
    item = _Parsed(path, parsed, account["sha256"], started)
    # the rows as services.ingest._assign returns them: outcomes as parsed, searches with
    # their areas in the Assigner's column order
    if kind is SourceKind.STOP_SEARCH:
        areas = [c for c in frame.columns if c.startswith("area_")]
        item.assigned = frame.select(*columns, "located", *areas, "in_area")
    else:
        item.assigned = parsed.frame
    item.vintage = Vintage(
        dt.datetime.fromisoformat(account["published_at"]),
        account["published_how"],
        account["vintage"],
    )
    return item
