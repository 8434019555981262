"""Ingest police.uk files: every row accounted for, each file one transaction."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from placeharm.errors import DataError, PlaceharmError
from placeharm.ingest.policeuk import CRIME_CONTENT, OUTCOME_KEY, ParsedFile, parse_file
from placeharm.model import ImportResult, QuarantineRow, SourceKind
from placeharm.services.areas import Assigner, assign_pending, load_sets
from placeharm.store.base import Store

log = logging.getLogger(__name__)

_PATTERNS = ("*.csv", "*.csv.gz", "*.json", "*.json.gz")
# A street record wins over the same crime seen in an API response (the bulk file has more).
_PRECEDENCE = {SourceKind.API.value: 0, SourceKind.STREET.value: 1}

ProgressFn = Callable[[ImportResult], None]


def find_files(paths: Iterable[Path]) -> list[Path]:
    """Files to ingest: each path itself, or the police.uk files inside a folder (recursive)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted({p for pat in _PATTERNS for p in path.rglob(pat) if p.is_file()}))
        elif path.is_file():
            found.append(path)
        else:
            raise DataError(f"{path} does not exist; give a file or a folder of police.uk files")
    if not found:
        raise DataError("no .csv, .csv.gz or .json files found in the paths given")
    return found


# Files are committed in groups of about this many rows: a commit per small file costs more
# than writing it (measured: 33 monthly files, 33 commits 6.7 s against 1 commit 2.3 s).
_GROUP_ROWS = 600_000


def ingest(
    store: Store,
    paths: Iterable[Path],
    threads: int = 2,
    tolerance_m: float = 25.0,
    progress: ProgressFn | None = None,
) -> list[ImportResult]:
    """Import police.uk bulk CSVs and API JSON files; return one account per file.

    Files are read and validated on a small thread pool while earlier files are written.
    Each file is all or nothing. For speed, consecutive files are committed together in one
    transaction; if writing any of them fails, that transaction is rolled back and the
    group is replayed one file per transaction, so the failing file leaves nothing behind
    and the others still land. Area sets imported since the last ingest are assigned to
    every stored record first.
    """
    files = find_files(paths)
    assign_pending(store, threads, tolerance_m)
    assigner = Assigner(load_sets(store), threads, tolerance_m)
    latest = dt.date.today().strftime("%Y-%m")
    results: list[ImportResult] = []
    group: list[_Parsed] = []

    def flush() -> None:
        for result in _write_group(store, group, assigner):
            log.info(
                "import %s %s: read %d = inserted %d + updated %d + unchanged %d + quarantined %d",
                result.source_file,
                result.status,
                result.rows_read,
                result.inserted,
                result.updated,
                result.unchanged,
                result.quarantined,
            )
            results.append(result)
            if progress:
                progress(result)
        group.clear()

    for item in _prefetch(files, latest, threads):
        group.append(item)
        if (
            sum(p.parsed.rows_read for p in group if isinstance(p.parsed, ParsedFile))
            >= _GROUP_ROWS
        ):
            flush()
    if group:
        flush()
    if any(r.inserted or r.updated for r in results):
        # Each crime's latest outcome is derived from the outcomes held; one set-based
        # refresh per run (not per file) keeps a 33-month load fast. Idempotent.
        with store.transaction():
            store.refresh_latest_outcomes()
    return results


@dataclass(slots=True)
class _Parsed:
    path: Path
    parsed: ParsedFile | PlaceharmError
    sha256: str
    started: dt.datetime


def _prefetch(files: list[Path], latest: str, threads: int) -> Iterator[_Parsed]:
    """Parse files ahead of the writer, keeping at most `threads` in flight."""

    def parse(path: Path) -> _Parsed:
        started = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        sha = _sha256(path)
        try:
            return _Parsed(path, parse_file(path, latest), sha, started)
        except PlaceharmError as exc:
            return _Parsed(path, exc, sha, started)

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        pending: deque[Future[_Parsed]] = deque()
        queue = iter(files)
        for path in queue:
            pending.append(pool.submit(parse, path))
            if len(pending) >= max(1, threads):
                break
        while pending:
            future = pending.popleft()
            nxt = next(queue, None)
            if nxt is not None:
                pending.append(pool.submit(parse, nxt))
            yield future.result()


def _write_group(store: Store, group: list[_Parsed], assigner: Assigner) -> list[ImportResult]:
    """Write a group of files in one transaction; on failure, replay them one by one."""
    try:
        with store.transaction():
            return [_write_file(store, item, assigner) for item in group]
    except Exception:
        log.warning("a file in a group of %d failed; replaying them one by one", len(group))
    results = []
    for item in group:
        try:
            with store.transaction():
                results.append(_write_file(store, item, assigner))
        except Exception as exc:
            log.exception("import of %s failed; the store is unchanged", item.path)
            assert isinstance(item.parsed, ParsedFile)
            failed = ImportResult(
                str(item.path),
                item.parsed.kind.value,
                "failed",
                rows_read=item.parsed.rows_read,
                message=f"import failed and was rolled back, nothing was written: {exc}",
            )
            with store.transaction():
                failed.import_id = store.next_import_id()
                store.log_import(failed, item.started, item.sha256)
            results.append(failed)
    return results


def _write_file(store: Store, item: _Parsed, assigner: Assigner) -> ImportResult:
    """Write one file inside the caller's transaction; raise if anything goes wrong."""
    parsed, path = item.parsed, item.path
    if isinstance(parsed, PlaceharmError):
        result = ImportResult(str(path), "unknown", "refused", message=str(parsed))
        result.import_id = store.next_import_id()
        store.log_import(result, item.started, item.sha256)
        return result
    result = ImportResult(str(path), parsed.kind.value, "ok", rows_read=parsed.rows_read)
    result.import_id = store.next_import_id()
    extra = _apply(store, parsed, result, assigner)
    result.quarantined = len(parsed.quarantine) + len(extra)
    quarantine = sorted([*parsed.quarantine, *extra], key=lambda q: q.line)
    result.quarantine_sample = quarantine[:20]
    store.add_quarantine(result.import_id, quarantine)
    if not result.balanced:  # a bug, never bad input: refuse to commit it
        raise PlaceharmError(
            f"row accounting does not balance for {path}: read {result.rows_read}, "
            f"inserted {result.inserted} + updated {result.updated} + unchanged "
            f"{result.unchanged} + quarantined {result.quarantined}"
        )
    store.log_import(result, item.started, item.sha256)
    return result


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _apply(
    store: Store,
    parsed: ParsedFile,
    result: ImportResult,
    assigner: Assigner,
) -> list[QuarantineRow]:
    """Write one parsed file inside the caller's transaction; return extra quarantine rows."""
    assert result.import_id is not None
    frame = parsed.frame
    provenance = [pl.lit(result.import_id, dtype=pl.Int64).alias("import_id")]
    if parsed.kind in (SourceKind.STREET, SourceKind.API):
        frame = assigner.assign(frame).with_columns(
            *provenance, pl.lit(parsed.kind.value).alias("source_kind")
        )
        extra = _apply_crimes(store, frame, result, parsed)
    elif parsed.kind is SourceKind.OUTCOMES:
        frame = frame.with_columns(*provenance)
        extra = _apply_keyed(store, frame, result, "outcomes", list(OUTCOME_KEY), "crime_hash")
    else:
        frame = assigner.assign(frame).drop("lsoa_reconciled")
        frame = frame.with_columns(*provenance)
        extra = _apply_keyed(store, frame, result, "stop_searches", ["search_key"], "search_hash")
    if "located" in frame.columns:
        result.no_location = int((~frame["located"]).sum())
        result.outside_areas = int((frame["in_area"] == False).sum())  # noqa: E712
    if parsed.kind is not SourceKind.API:
        months = _month_counts(frame, parsed.file_months)
        store.record_coverage(
            parsed.kind.value, parsed.force, months, result.import_id, str(parsed.path)
        )
        result.months = tuple(m.strftime("%Y-%m") for m in sorted(months))
    return extra


def _month_counts(frame: pl.DataFrame, file_months: tuple[str, ...]) -> dict[dt.date, int]:
    counts = {m: int(n) for m, n in frame.group_by("month").len().iter_rows()}
    for text in file_months:  # a month file with no usable rows still covers its month
        month = dt.date(int(text[:4]), int(text[5:7]), 1)
        counts.setdefault(month, 0)
    return counts


def _split_duplicates(
    frame: pl.DataFrame, key: str, content: list[str], source: str
) -> tuple[pl.DataFrame, int, list[QuarantineRow]]:
    """Keep a key's first row in the file; identical repeats are unchanged, others quarantined."""
    if frame.select(pl.col(key).is_unique().all()).item():
        return frame, 0, []
    first = frame.unique(key, keep="first", maintain_order=True)
    repeats = frame.filter(~pl.col(key).is_first_distinct())
    joined = repeats.join(first.select(key, *content, "source_line"), on=key, suffix="_first")
    same = pl.all_horizontal(pl.col(c).eq_missing(pl.col(f"{c}_first")) for c in content)
    identical = joined.filter(same)
    differing = joined.filter(~same)
    quarantine = [
        QuarantineRow(
            source,
            line,
            str(record_key),
            f"the same record appears again in this file with different content "
            f"(first at line {first_line}); fix the file and import it again",
        )
        for line, record_key, first_line in differing.select(
            "source_line", key, "source_line_first"
        ).iter_rows()
    ]
    return first, identical.height, quarantine


def _apply_crimes(
    store: Store, frame: pl.DataFrame, result: ImportResult, parsed: ParsedFile
) -> list[QuarantineRow]:
    frame, repeats, extra = _split_duplicates(
        frame, "crime_key", list(CRIME_CONTENT), str(parsed.path)
    )
    result.unchanged += repeats
    existing = store.matching_rows("crimes", "crime_hash", frame["crime_hash"])
    if existing.is_empty():
        store.insert_rows("crimes", _stored(frame))
        result.inserted += frame.height
        return extra
    old = existing.select(
        "_rid",
        "crime_hash",
        pl.coalesce("crime_id", "record_key").alias("_old_key"),
        pl.col("source_kind").alias("_old_kind"),
        *[pl.col(c).alias(f"{c}_old") for c in CRIME_CONTENT],
    )
    joined = frame.join(old, on="crime_hash", how="left")
    collision = joined.filter(
        pl.col("_rid").is_not_null() & (pl.col("_old_key") != pl.col("crime_key"))
    )
    if collision.height:
        raise DataError(
            f"{collision.height} record keys share a 64-bit join key with different records; "
            "report this to the placeharm team with the file"
        )
    new = joined.filter(pl.col("_rid").is_null())
    matched = joined.filter(pl.col("_rid").is_not_null())
    same = pl.all_horizontal(pl.col(c).eq_missing(pl.col(f"{c}_old")) for c in CRIME_CONTENT)
    lower = pl.col("source_kind").replace_strict(_PRECEDENCE, default=1) < pl.col(
        "_old_kind"
    ).replace_strict(_PRECEDENCE, default=1)
    keep = matched.filter(same | lower)
    changed = matched.filter(~(same | lower))
    drop_cols = ["_rid", "_old_key", "_old_kind", *[f"{c}_old" for c in CRIME_CONTENT]]
    if new.height:
        store.insert_rows("crimes", _stored(new.drop(drop_cols)))
    if changed.height:
        store.update_crimes(
            _stored(changed.drop([c for c in drop_cols if c != "_rid"])), result.import_id or 0
        )
    result.inserted += new.height
    result.updated += changed.height
    result.unchanged += keep.height
    return extra


def _stored(frame: pl.DataFrame) -> pl.DataFrame:
    """Crimes as stored: the Crime ID is the key; a digest key is kept only for rows without."""
    return frame.with_columns(
        pl.when(pl.col("crime_id").is_null()).then(pl.col("crime_key")).alias("record_key")
    ).drop("crime_key")


def _apply_keyed(
    store: Store,
    frame: pl.DataFrame,
    result: ImportResult,
    table: str,
    key: list[str],
    hash_col: str,
) -> list[QuarantineRow]:
    """Records keyed by their content: a key already held is unchanged, anything else new."""
    existing = store.matching_rows(table, hash_col, frame[hash_col])
    new = frame if existing.is_empty() else frame.join(existing.select(key), on=key, how="anti")
    if new.height:
        store.insert_rows(table, new)
    result.inserted += new.height
    result.unchanged += frame.height - new.height
    return []


def assign(store: Store, threads: int = 2, tolerance_m: float = 25.0) -> dict[str, int]:
    """Assign stored records to area sets imported since the last assignment."""
    return assign_pending(store, threads, tolerance_m)
