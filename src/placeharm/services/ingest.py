"""Ingest police.uk files: every row accounted for, each file one transaction."""

from __future__ import annotations

import datetime as dt
import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from placeharm import audit
from placeharm.audit import Actor
from placeharm.errors import (
    DataError,
    ImportFailed,
    PlaceharmError,
    StoreUnavailable,
    describe,
    is_fatal,
)
from placeharm.ingest.csvfile import DEFAULT_LIMITS, ReadLimits, file_label, held, read_snapshot
from placeharm.ingest.policeuk import (
    CRIME_CONTENT,
    FIRST_MONTH,
    OUTCOME_COLUMNS,
    OUTCOME_KEY,
    ParsedFile,
    parse_file,
)
from placeharm.ingest.vintage import Vintage, file_vintage
from placeharm.model import ImportResult, QuarantineRow, SourceKind
from placeharm.services.areas import Assigner, assign_pending, keep_grids, load_sets
from placeharm.store.base import Store

log = logging.getLogger(__name__)

_PATTERNS = ("*.csv", "*.csv.gz", "*.json", "*.json.gz")
# A street record wins over the same crime seen in an API response (the bulk file has more).
_PRECEDENCE = {SourceKind.API.value: 0, SourceKind.STREET.value: 1}

ProgressFn = Callable[[ImportResult], None]


def find_files(paths: Iterable[Path | str]) -> list[Path]:
    """Files to ingest: each path itself, or the police.uk files inside a folder (recursive)."""
    found: list[Path] = []
    for path in map(Path, paths):
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
_GROUP_ROWS = 300_000
ROUTE = "ingest police.uk"  # what the audit log names as the way in


def ingest(
    store: Store,
    paths: Iterable[Path | str],
    threads: int = 2,
    tolerance_m: float = 25.0,
    progress: ProgressFn | None = None,
    actor: Actor | None = None,
    limits: ReadLimits = DEFAULT_LIMITS,
    published: dt.date | None = None,
) -> list[ImportResult]:
    """Import police.uk bulk CSVs and API JSON files; return one account per file.
    `published`: the date the files were published (else each file's own evidence decides
    its vintage: docs/ingest.md, "Vintages and derived state").
    `actor` is who imports (the import log and the audit log say so; default: the
    operating-system user).

    Files are read and validated on a small thread pool while earlier files are written.
    Each file is all or nothing. For speed, consecutive files are committed together in one
    transaction; if writing any of them fails, that transaction is rolled back and the
    group is replayed one file per transaction, so the failing file leaves nothing behind
    and the others still land. Area sets imported since the last ingest are assigned to
    every stored record first. A file over `limits` (decompressed size, line length) is
    refused with a message, having cost at most the limit in memory.
    """
    files = find_files(paths)
    assign_pending(store, threads, tolerance_m)
    assigner = Assigner(load_sets(store), threads, tolerance_m)
    latest = dt.date.today().strftime("%Y-%m")
    results: list[ImportResult] = []
    group: list[_Parsed] = []

    def flush() -> None:
        for result in _write_group(store, group, actor):
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

    for item in _prefetch(files, latest, threads, assigner, limits, published):
        group.append(item)
        if (
            sum(p.parsed.rows_read for p in group if isinstance(p.parsed, ParsedFile))
            >= _GROUP_ROWS
        ):
            flush()
    if group:
        flush()
    keep_grids(store, assigner.sets)  # a grid built for these files serves the next import
    return results


@dataclass(slots=True)
class _Parsed:
    path: Path
    parsed: ParsedFile | PlaceharmError
    sha256: str
    started: dt.datetime
    # The rows with their areas (assigned on the prefetch thread), or what went wrong there:
    # raised again by the writer, so a failure is handled like any failure while writing.
    assigned: pl.DataFrame | Exception | None = None
    vintage: Vintage | None = None


# Files are parsed ahead of the writer while their sizes on disk sum to at most this (and
# always `threads` files at once): with only `threads` files ahead, parsing stopped while the
# writer spent a second on a group's insert (Northumbria: the writer waited 2.9 s of 5.6 s).
# Small monthly files run far ahead; large ones (the 10M benchmark's ~13 MB each) keep to
# `threads`, so memory stays bounded.
_PREFETCH_BYTES = 32 << 20


def _prefetch(
    files: list[Path],
    latest: str,
    threads: int,
    assigner: Assigner,
    limits: ReadLimits,
    published: dt.date | None = None,
) -> Iterator[_Parsed]:
    """Parse files and assign their areas ahead of the writer (see `_PREFETCH_BYTES`)."""

    def parse(path: Path) -> _Parsed:
        started = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        sha = ""
        try:
            # one read: the hash is of the very bytes parsed (a file still being copied in
            # is refused, not half-imported under the hash of another version)
            snapshot = read_snapshot(path, limits)
            sha = snapshot.sha256
            parsed = parse_file(path, latest, limits, snapshot.release())
        except BaseException as exc:  # this file only: the others still import
            if is_fatal(exc):
                raise
            return _Parsed(path, _unreadable(path, exc), sha, started)
        latest_held = _latest_month(parsed)
        refusal = published_refusal(path, published, latest_held)
        if refusal is not None:
            return _Parsed(path, refusal, sha, started)
        item = _Parsed(path, parsed, sha, started)
        item.vintage = file_vintage(path, latest_held, sha, published)
        try:
            item.assigned = _assign(parsed, assigner)
        except BaseException as exc:  # raised again when the file is written
            if is_fatal(exc):
                raise
            item.assigned = exc if isinstance(exc, Exception) else _unforeseen(exc, "areas")
        return item

    workers = max(1, threads)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: deque[tuple[Future[_Parsed], int]] = deque()
        queue = deque(files)
        ahead = 0  # bytes (on disk) of the files submitted and not yet handed to the writer

        def refill() -> None:
            nonlocal ahead
            while queue:
                size = _file_size(queue[0])
                if len(pending) >= workers and ahead + size > _PREFETCH_BYTES:
                    return
                path = queue.popleft()
                pending.append((pool.submit(parse, path), size))
                ahead += size

        refill()
        while pending:
            future, size = pending.popleft()
            ahead -= size
            refill()
            yield future.result()


def published_refusal(
    path: Path, published: dt.date | None, latest_held: str | None
) -> DataError | None:
    """Why a stated publication date cannot be right for a file holding `latest_held`, or None
    (also used by the Spark job, services/spark.py)."""
    if published and latest_held and published.strftime("%Y-%m") <= latest_held:
        return DataError(
            f"{file_label(path)}: --published {published} is before the end of "
            f"{latest_held}, the latest month this file holds, so police.uk cannot have "
            "published it then; check the date (or leave it out: the file's own evidence "
            "is used)"
        )
    return None


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0  # parse_file reports the unreadable file


def _write_group(store: Store, group: list[_Parsed], actor: Actor | None) -> list[ImportResult]:
    """Write a group of files in one transaction; on failure, replay them one by one."""
    try:
        with store.transaction():
            return _write_files(store, group, actor)
    except StoreUnavailable:
        raise  # a full disk, a damaged or read-only store: no file can be written (issue 13)
    except BaseException as exc:  # a native panic too (pyo3's PanicException)
        if is_fatal(exc):
            raise
        log.warning("a file in a group of %d failed; replaying them one by one", len(group))
    results = []
    for item in group:
        try:
            with store.transaction():
                results.extend(_write_files(store, [item], actor))
        except StoreUnavailable:
            raise
        except BaseException as exc:
            if is_fatal(exc):
                raise
            log.warning("import of %s failed; the store is unchanged", item.path, exc_info=exc)
            parsed = item.parsed
            detail = str(exc) if isinstance(exc, PlaceharmError | OSError) else describe(exc)
            failed = ImportResult(
                file_label(item.path),
                parsed.kind.value if isinstance(parsed, ParsedFile) else "unknown",
                "failed",
                rows_read=parsed.rows_read if isinstance(parsed, ParsedFile) else 0,
                message=f"import failed and was rolled back, nothing was written: {detail}",
            )
            with store.transaction():
                failed.import_id = store.next_import_ids(1)[0]
                audit.record_imports(store, actor, [(failed, item.started, item.sha256)], ROUTE)
            results.append(failed)
    return results


# The tables each kind of file writes: (table, key columns, join hash column).
_TARGETS: dict[SourceKind, tuple[str, tuple[str, ...], str]] = {
    SourceKind.STREET: ("crimes", ("crime_key",), "crime_hash"),
    SourceKind.API: ("crimes", ("crime_key",), "crime_hash"),
    SourceKind.OUTCOMES: ("outcomes", OUTCOME_KEY, "crime_hash"),
    SourceKind.STOP_SEARCH: ("stop_searches", ("search_key",), "search_hash"),
}


def _write_files(
    store: Store, items: list[_Parsed], actor: Actor | None, route: str = ROUTE
) -> list[ImportResult]:
    """Write files inside the caller's transaction; raise if anything goes wrong.

    Files writing the same table are written with one statement per step when no record key
    repeats across them; otherwise file by file, in order, so that a later file meets the
    rows of an earlier one (the same crime in two API responses, a month downloaded twice).
    """
    import_ids = store.next_import_ids(len(items))
    results: list[ImportResult] = []
    frames: dict[str, list[pl.DataFrame]] = {}
    extra: dict[int, list[QuarantineRow]] = {}
    coverage: list[dict[str, object]] = []
    raw_texts = [i.parsed.raw_text if isinstance(i.parsed, ParsedFile) else {} for i in items]
    for index, (item, import_id) in enumerate(zip(items, import_ids, strict=True)):
        parsed = item.parsed
        if isinstance(parsed, PlaceharmError):
            status = "failed" if isinstance(parsed, ImportFailed) else "refused"
            results.append(
                ImportResult(
                    file_label(item.path),
                    "unknown",
                    status,
                    message=str(parsed),
                    import_id=import_id,
                )
            )
            continue
        result = ImportResult(
            file_label(item.path),
            parsed.kind.value,
            "ok",
            rows_read=parsed.rows_read,
            import_id=import_id,
        )
        results.append(result)
        frame = _prepare(item, parsed, import_id).with_columns(
            pl.lit(index, dtype=pl.Int32).alias("_file")
        )
        if item.vintage is not None:
            result.published_at = item.vintage.published_at
            result.published_how = item.vintage.how
            result.vintage = item.vintage.key
            if parsed.kind is not SourceKind.STOP_SEARCH:  # keyed by content: no versions
                frame = frame.with_columns(pl.lit(item.vintage.key).alias("vintage"))
        if "located" in frame.columns:
            result.no_location = int((~frame["located"]).sum())
            result.outside_areas = int((frame["in_area"] == False).sum())  # noqa: E712
        months, named, notes = _claimed_months(frame, parsed)
        result.months = tuple(m.strftime("%Y-%m") for m in sorted(months))
        result.message = "; ".join(notes)
        coverage.extend(
            {
                "source_kind": parsed.kind.value,
                "force": parsed.force,
                "month": month,
                "rows": rows,
                "import_id": import_id,
                "source_file": file_label(item.path),
                "named": named,
            }
            for month, rows in months.items()
        )
        frames.setdefault(_TARGETS[parsed.kind][0], []).append(frame)
    touched: list[pl.Series] = []  # crimes given outcomes
    written: list[pl.Series] = []  # crimes written
    for table, parts in frames.items():
        _, key, hash_col = next(t for t in _TARGETS.values() if t[0] == table)
        whole = pl.concat(parts, how="vertical_relaxed")
        if _repeats_across_files(whole, table, key):
            counts = [
                _write_table(store, table, p, key, hash_col, results, extra, raw_texts)
                for p in parts
            ]
        else:
            counts = [_write_table(store, table, whole, key, hash_col, results, extra, raw_texts)]
        if table == "outcomes":
            touched.append(whole["crime_hash"])
        elif table == "crimes":
            written.append(whole["crime_hash"])
        for count in counts:
            for index, inserted, updated, unchanged, stale, later in count.iter_rows():
                results[index].inserted += inserted
                results[index].updated += updated
                results[index].unchanged += unchanged
                results[index].stale += stale
                results[index].later_sightings += later
    if written:
        # A crime written keeps the latest outcome it had (a revision leaves it; a new crime
        # has none): it can change only where outcomes are held for the crime, perhaps from
        # an outcomes file imported before its street file. Only those are looked at, not a
        # join of every crime written with the outcomes (a month into 10M crimes: ~1 s).
        touched.append(store.held_hashes("outcomes", "crime_hash", pl.concat(written)))
    if touched and (hashes := pl.concat(touched).unique()).len():
        # Derived state commits with the data it derives from (issue 13): the latest outcome
        # of every crime these files wrote or gave an outcome to, in this transaction.
        store.refresh_latest_outcomes(hashes)
    for index, (item, result) in enumerate(zip(items, results, strict=True)):
        if result.status != "ok":
            continue
        assert isinstance(item.parsed, ParsedFile)
        quarantine = sorted([*item.parsed.quarantine, *extra.get(index, [])], key=lambda q: q.line)
        result.quarantined = len(quarantine)
        result.quarantine_sample = quarantine[:20]
        if quarantine:
            store.add_quarantine(import_ids[index], quarantine)
        if not result.balanced:  # a bug, never bad input: refuse to commit it
            raise PlaceharmError(
                f"row accounting does not balance for {item.path}: read {result.rows_read}, "
                f"inserted {result.inserted} + updated {result.updated} + unchanged "
                f"{result.unchanged} + quarantined {result.quarantined}"
            )
    if coverage:
        store.record_coverage(pl.DataFrame(coverage))
    # last, so the audit log's lock is held for the commit only
    audit.record_imports(
        store,
        actor,
        [(result, item.started, item.sha256) for item, result in zip(items, results, strict=True)],
        route,
    )
    return results


def _unreadable(path: Path, exc: BaseException) -> PlaceharmError:
    """What a file that could not be read is refused or failed with (this file only)."""
    if isinstance(exc, PlaceharmError):
        return exc
    if isinstance(exc, OSError):
        return DataError(
            f"{file_label(path)} cannot be read ({exc.strerror or type(exc).__name__}); check "
            "that it exists and may be read, then import it again"
        )
    log.warning("reading %s failed unexpectedly; it is not imported", path, exc_info=exc)
    return _unforeseen(exc, "reading", path)


def _unforeseen(exc: BaseException, stage: str, path: Path | None = None) -> ImportFailed:
    """A failure placeharm did not foresee while `stage` (reading, areas) a file, as this
    file's failure: the message says what and what to do; the original is the cause."""
    what = "reading it" if stage == "reading" else "finding its areas"
    failure = ImportFailed(
        (f"{file_label(path)} failed, nothing imported: " if path else "")
        + f"an unexpected failure while {what} ({describe(exc)}). The other files are not "
        "affected; keep this file and report the failure (the log has the details)"
    )
    failure.__cause__ = exc
    return failure


def _assign(parsed: ParsedFile, assigner: Assigner) -> pl.DataFrame:
    """A parsed file's rows with their areas (outcomes have none: they follow their crime)."""
    if parsed.kind in (SourceKind.STREET, SourceKind.API):
        return assigner.assign(parsed.frame)
    if parsed.kind is SourceKind.STOP_SEARCH:
        return assigner.assign(parsed.frame).drop("lsoa_reconciled")
    return parsed.frame


def _prepare(item: _Parsed, parsed: ParsedFile, import_id: int) -> pl.DataFrame:
    """A parsed file's rows as they will be stored: areas assigned, provenance added."""
    if isinstance(item.assigned, Exception):
        raise item.assigned
    frame = item.assigned if item.assigned is not None else parsed.frame
    provenance = pl.lit(import_id, dtype=pl.Int64).alias("import_id")
    if parsed.kind in (SourceKind.STREET, SourceKind.API):
        return frame.with_columns(provenance, pl.lit(parsed.kind.value).alias("source_kind"))
    return frame.with_columns(provenance)


def _write_table(
    store: Store,
    table: str,
    frame: pl.DataFrame,
    key: tuple[str, ...],
    hash_col: str,
    results: list[ImportResult],
    extra: dict[int, list[QuarantineRow]],
    raw_texts: list[dict[int, str]],
) -> pl.DataFrame:
    """Write one table's rows (from one or more files); counts per `_file`."""
    if table == "crimes":
        index = int(frame["_file"][0]) if frame.height else 0
        if frame.height and frame["_file"].n_unique() == 1:
            # Only a single file can repeat a key (a group with repeats goes file by file).
            frame, repeats, quarantined = _split_duplicates(
                frame,
                "crime_key",
                list(CRIME_CONTENT),
                results[index].source_file,
                raw_texts[index],
            )
            results[index].unchanged += repeats
            extra.setdefault(index, []).extend(quarantined)
        sources = {r.import_id: r.source_file for r in results if r.import_id is not None}
        return _write_crimes(store, frame, sources)
    if table == "outcomes":
        sources = {r.import_id: r.source_file for r in results if r.import_id is not None}
        return _write_outcomes(store, frame, sources)
    return _write_keyed(store, table, frame, list(key), hash_col)


_COUNTS = ("inserted", "updated", "unchanged", "stale", "later")


def _counts(**parts: pl.DataFrame) -> pl.DataFrame:
    """Rows per `_file` of each named part, as columns inserted, updated, unchanged, stale
    (a subset of unchanged: an older download's rows) and later (also unchanged: a crime
    seen again in a later month)."""
    frames = [part.group_by("_file").len().rename({"len": name}) for name, part in parts.items()]
    out = pl.concat([f.select(pl.col("_file").cast(pl.Int32)) for f in frames]).unique()
    for f in frames:
        out = out.join(f.with_columns(pl.col("_file").cast(pl.Int32)), on="_file", how="left")
    return out.select(
        "_file",
        *[
            (pl.col(n).fill_null(0) if n in out.columns else pl.lit(0)).cast(pl.Int64).alias(n)
            for n in _COUNTS
        ],
    )


def _claimed_months(
    frame: pl.DataFrame, parsed: ParsedFile
) -> tuple[dict[dt.date, int], bool, list[str]]:
    """The months a file covers (with its usable rows in each), whether they come from its
    police.uk name, and notes on what it does not claim (docs/ingest.md, "API responses and
    coverage").

    A file covers only months in which it has usable rows, and never a month after this one:
    a header-only download (or one whose every row was quarantined) must neither mark a
    month covered nor blank a month held. A police.uk file named for a month covers that
    month only, so a stray row of another month cannot claim, or replace, that month's
    coverage; a name whose month is not a real month up to this one is ignored. A file
    without such a name, and an API response, covers the months of its usable rows.
    """
    this_month = dt.date.today().replace(day=1)
    keep = "; a month already held keeps its coverage"
    if parsed.rows_read == 0:
        return {}, False, [f"no data rows (a header-only file), so it marks no month covered{keep}"]
    notes = []
    named = []
    for text in parsed.file_months:
        month = _name_month(text)
        if month is None or month > this_month:
            when = "is not a month" if month is None else "is after this month"
            notes.append(f"the month in its name, {text}, {when}, so it is not marked covered")
        else:
            named.append(month)
    counts = {m: int(n) for m, n in frame.group_by("month").len().iter_rows()}
    if named:
        claimed = {month: counts[month] for month in named if counts.get(month)}
        if not claimed:
            notes.append(
                f"no usable rows of {', '.join(parsed.file_months)}, so it marks no "
                f"month covered{keep}"
            )
        return claimed, True, notes
    future = sorted(m for m in counts if m > this_month)
    if future:
        notes.append(
            f"rows of {', '.join(f'{m:%Y-%m}' for m in future)} (after this month) "
            "mark no month covered"
        )
    claimed = {m: n for m, n in counts.items() if m <= this_month}
    if not claimed:
        notes.append(f"no usable rows, so it marks no month covered{keep}")
    return claimed, False, notes


def _name_month(text: str) -> dt.date | None:
    """The month in a police.uk file name (YYYY-MM), or None if it is not one from FIRST_MONTH."""
    try:
        month = dt.date(int(text[:4]), int(text[5:7]), 1)
    except ValueError:
        return None
    return month if f"{month:%Y-%m}" >= FIRST_MONTH else None


def _split_duplicates(
    frame: pl.DataFrame, key: str, content: list[str], source: str, raw_text: dict[int, str]
) -> tuple[pl.DataFrame, int, list[QuarantineRow]]:
    """Keep a key's first row in the file; identical repeats are unchanged, others quarantined
    with their whole raw row (`raw_text`, by line, from the parser)."""
    if frame.select(pl.col(key).is_unique().all()).item():
        return frame, 0, []
    first = frame.unique(key, keep="first", maintain_order=True)
    repeats = frame.filter(~pl.col(key).is_first_distinct())
    joined = repeats.join(first.select(key, *content, "source_line"), on=key, suffix="_first")
    same = pl.all_horizontal(pl.col(c).eq_missing(pl.col(f"{c}_first")) for c in content)
    key_name = "Crime ID" if key == "crime_key" else key
    identical = joined.filter(same)
    differing = joined.filter(~same)
    quarantine = [
        QuarantineRow(
            source,
            line,
            raw_text.get(line) or _described(differing, line),
            held(
                f"the same record ({key_name} {record_key}) appears again in this file with "
                f"different content (first at line {first_line}, which is the one used)",
                "give each record its own ID",
            ),
        )
        for line, record_key, first_line in differing.select(
            "source_line", key, "source_line_first"
        ).iter_rows()
    ]
    return first, identical.height, quarantine


def _described(rows: pl.DataFrame, line: int) -> str:
    """A row's stored fields as text: only if a reader did not give its raw text (never
    expected; the quarantine row must still hold the whole record)."""
    row = rows.filter(pl.col("source_line") == line).row(0, named=True)
    return ", ".join(f"{k}={v}" for k, v in row.items() if not k.endswith("_first"))


def _write_crimes(store: Store, frame: pl.DataFrame, sources: dict[int, str]) -> pl.DataFrame:
    """Insert new crimes, update changed ones (keeping history); counts per `_file`.

    Which version of a crime is current does not depend on the order files arrive in: the
    earliest month wins (a crime keeps the month it was first published in), then a street
    record over an API one, then the newer vintage. Every other distinct version is kept in
    `crime_history`, once, at its newest vintage (docs/ingest.md, "Vintages and derived
    state").
    """
    frame = _with_vintage(frame)
    existing = store.matching_rows("crimes", "crime_hash", frame["crime_hash"])
    if existing.is_empty():
        store.insert_rows("crimes", _stored(frame.drop("_file")))
        return _counts(inserted=frame)
    old = existing.select(
        "_rid",
        "crime_hash",
        pl.coalesce("crime_id", "record_key").alias("_old_key"),
        pl.col("source_kind").alias("_old_kind"),
        _vintage_of(existing).alias("_old_vintage"),
        pl.col("import_id").alias("_old_import"),
        *[pl.col(c).alias(f"{c}_old") for c in CRIME_CONTENT],
    )
    # The 64-bit hash only narrows the search; the full key decides (two IDs may share a hash).
    joined = frame.join(
        old, left_on=["crime_hash", "crime_key"], right_on=["crime_hash", "_old_key"], how="left"
    )
    new = joined.filter(pl.col("_rid").is_null())
    matched = joined.filter(pl.col("_rid").is_not_null())
    rank = pl.col("source_kind").replace_strict(_PRECEDENCE, default=1)
    old_rank = pl.col("_old_kind").replace_strict(_PRECEDENCE, default=1)
    same = pl.all_horizontal(pl.col(c).eq_missing(pl.col(f"{c}_old")) for c in CRIME_CONTENT) & (
        pl.col("source_kind") == pl.col("_old_kind")
    )
    month, old_month = pl.col("month"), pl.col("month_old")
    newer = pl.col("vintage") > pl.col("_old_vintage")
    wins = (month < old_month) | (
        (month == old_month) & ((rank > old_rank) | ((rank == old_rank) & newer))
    )
    matched = matched.with_columns(same.alias("_same"), wins.alias("_wins"))
    confirmed = matched.filter(pl.col("_same") & pl.col("_wins"))  # a newer copy, same content
    keep = matched.filter(pl.col("_same") & ~pl.col("_wins"))
    changed = matched.filter(~pl.col("_same") & pl.col("_wins"))
    lost = matched.filter(~pl.col("_same") & ~pl.col("_wins"))
    stale = lost.filter((month == old_month) & (rank == old_rank))
    later = lost.filter(month > old_month)
    drop_cols = [
        "_file",
        "_old_kind",
        "_old_vintage",
        "_old_import",
        "_same",
        "_wins",
        *[f"{c}_old" for c in CRIME_CONTENT],
    ]
    if new.height:
        store.insert_rows("crimes", _stored(new.drop(["_rid", *drop_cols], strict=False)))
    if changed.height or lost.height:
        _file_history(store, changed, lost, sources)
    if changed.height:
        # import_id on each row is the revising import, recorded with the history row.
        store.update_crimes(_stored(changed.drop(drop_cols)), sources)
    if confirmed.height:
        store.update_crimes_provenance(
            confirmed.select("_rid", "vintage", "import_id", "source_line")
        )
    return _counts(
        inserted=new,
        updated=changed,
        unchanged=pl.concat([keep, confirmed, lost]),
        stale=stale,
        later=later,
    )


_HISTORY_CONTENT = ("source_kind", *CRIME_CONTENT)


def _file_history(
    store: Store, changed: pl.DataFrame, lost: pl.DataFrame, sources: dict[int, str]
) -> None:
    """Keep `crime_history` one row per distinct other version of a crime, at its newest
    vintage: a version that becomes current leaves it; a losing version joins it unless it
    holds that content already from a newer download (the older row then makes way)."""
    hashes = pl.concat([changed["crime_hash"], lost["crime_hash"]])
    held = store.matching_rows("crime_history", "crime_hash", hashes)
    drop: list[pl.Series] = []
    if not held.is_empty():
        held = held.select(
            "_rid",
            "crime_hash",
            pl.coalesce("crime_id", "record_key").alias("crime_key"),
            _vintage_of(held).alias("_held_vintage"),
            *[pl.col(c).alias(f"{c}_held") for c in _HISTORY_CONTENT],
        )
        same = pl.all_horizontal(
            pl.col(c).eq_missing(pl.col(f"{c}_held")) for c in _HISTORY_CONTENT
        )
        for part in (changed, lost):
            match = (
                part.select("crime_hash", "crime_key", "vintage", *_HISTORY_CONTENT)
                .join(held, on=["crime_hash", "crime_key"])
                .filter(same)
            )
            if part is changed:  # now current: not history any more
                drop.append(match["_rid"])
            else:
                lost = lost.join(
                    match.filter(pl.col("_held_vintage") >= pl.col("vintage")).select(
                        "crime_hash", "crime_key"
                    ),
                    on=["crime_hash", "crime_key"],
                    how="anti",
                )
                drop.append(match.filter(pl.col("_held_vintage") < pl.col("vintage"))["_rid"])
    rids = pl.concat(drop) if drop else pl.Series("_rid", [], dtype=pl.Int64)
    if rids.len():
        store.delete_history_rows("crime_history", rids)
    if lost.height:
        versions = _stored(lost).select(
            "crime_hash",
            "record_key",
            *_HISTORY_CONTENT,
            "api_id",
            "import_id",
            "source_line",
            "vintage",
            pl.col("import_id")
            .replace_strict(sources, default=None, return_dtype=pl.String)
            .alias("source_file"),
            pl.lit(dt.datetime.now(dt.UTC).replace(tzinfo=None)).alias("replaced_at"),
            pl.col("_old_import").alias("replaced_by_import"),
        )
        store.insert_history_rows("crime_history", versions)


def _with_vintage(frame: pl.DataFrame) -> pl.DataFrame:
    if "vintage" in frame.columns:
        return frame
    return frame.with_columns(pl.lit("").alias("vintage"))


def _vintage_of(frame: pl.DataFrame) -> pl.Expr:
    """A stored version's vintage; versions stored before vintages existed are the oldest."""
    if "vintage" not in frame.columns:
        return pl.lit("")
    return pl.col("vintage").fill_null("")


def _stored(frame: pl.DataFrame) -> pl.DataFrame:
    """Crimes as stored: the Crime ID is the key; a digest key is kept only for rows without."""
    return frame.with_columns(
        pl.when(pl.col("crime_id").is_null()).then(pl.col("crime_key")).alias("record_key")
    ).drop("crime_key")


def _write_keyed(
    store: Store, table: str, frame: pl.DataFrame, key: list[str], hash_col: str
) -> pl.DataFrame:
    """Records keyed by their content: a key already held is unchanged, anything else new."""
    existing = store.matching_rows(table, hash_col, frame[hash_col])
    new = frame if existing.is_empty() else frame.join(existing.select(key), on=key, how="anti")
    held = (
        frame.clear()
        if existing.is_empty()
        else frame.join(existing.select(key), on=key, how="semi")
    )
    if new.height:
        store.insert_rows(table, new.drop("_file"))
    return _counts(inserted=new, updated=frame.clear(), unchanged=held)


# -- vintages (issue 13) ---------------------------------------------------------------------

_UNIT = ["crime_id", "month"]  # the outcomes of one crime in one month come from one download
# What an outcome says, beside the (crime_id, month) unit it belongs to and its provenance.
_OUTCOME_CONTENT = [
    c for c in OUTCOME_COLUMNS if c not in ("crime_id", "crime_hash", "month", "source_line")
]


def _latest_month(parsed: ParsedFile) -> str | None:
    """The latest month a file holds (its name's month for a police.uk file name)."""
    months = list(parsed.file_months)
    if "month" in parsed.frame.columns and parsed.frame.height:
        latest = parsed.frame["month"].max()
        if isinstance(latest, dt.date):
            months.append(latest.strftime("%Y-%m"))
    return max(months) if months else None


def _repeats_across_files(whole: pl.DataFrame, table: str, key: tuple[str, ...]) -> bool:
    """True when two files of a group write the same record (or, for outcomes, the same
    crime's outcomes in the same month): they are then written one after the other."""
    if table == "outcomes":
        # police.uk outcomes files hold one month each: files of different months cannot
        # share a crime-month, so the full test runs only when their months overlap
        months = whole.group_by("_file").agg(pl.col("month").unique())["month"].explode()
        if months.is_unique().all():
            return False
        units = whole.group_by(_UNIT).agg(pl.col("_file").n_unique().alias("n"))
        return bool((units["n"] > 1).any())
    return bool(whole.select(pl.struct(key).is_duplicated().any()).item())


def _outcome_text() -> pl.Expr:
    """One outcome row's content as one text, to compare sets of outcomes."""
    return pl.concat_str(
        [pl.col(c).cast(pl.String).fill_null("") for c in _OUTCOME_CONTENT], separator="\x1f"
    )


def _unit_signature(frame: pl.DataFrame) -> pl.DataFrame:
    """One row per (crime_id, month): the content of its outcomes as one text, and vintage."""
    return frame.group_by(_UNIT).agg(
        _outcome_text().sort().str.join("\x1e").alias("_sig"), pl.col("vintage").max().alias("_v")
    )


def _rows_of(part: pl.DataFrame, source: pl.DataFrame) -> pl.DataFrame:
    """The rows of `source` in the (crime_id, month) units of `part`."""
    return source.join(part.select(_UNIT), on=_UNIT, how="semi")


def _write_outcomes(store: Store, frame: pl.DataFrame, sources: dict[int, str]) -> pl.DataFrame:
    """Outcomes by crime and month: the set from the newest download of that month is held;
    every other set is kept in `outcome_history`, once, at its newest vintage. Counts per
    `_file`; an older download's differing sets count as unchanged and stale."""
    frame = _with_vintage(frame)
    existing = store.matching_rows("outcomes", "crime_hash", frame["crime_hash"])
    if not existing.is_empty():
        existing = existing.with_columns(_vintage_of(existing).alias("vintage")).join(
            frame.select(_UNIT).unique(), on=_UNIT, how="semi"
        )
    if existing.is_empty():
        store.insert_rows("outcomes", frame.drop("_file"))
        return _counts(inserted=frame)
    incoming = _unit_signature(frame)
    held = _unit_signature(existing).rename({"_sig": "_held_sig", "_v": "_held_v"})
    units = incoming.join(held, on=_UNIT, how="left")
    fresh = units.filter(pl.col("_held_sig").is_null())
    same = units.filter(pl.col("_sig") == pl.col("_held_sig"))
    differ = units.filter(
        pl.col("_held_sig").is_not_null() & (pl.col("_sig") != pl.col("_held_sig"))
    )
    replace = pl.concat(
        [
            same.filter(pl.col("_v") > pl.col("_held_v")),
            differ.filter(pl.col("_v") > pl.col("_held_v")),
        ]
    )
    older = differ.filter(pl.col("_v") <= pl.col("_held_v"))
    stale_rows = _rows_of(older, frame)

    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    history = store.matching_rows("outcome_history", "crime_hash", frame["crime_hash"])
    drop: list[pl.Series] = []
    add: list[pl.DataFrame] = []
    if not history.is_empty():
        history = history.with_columns(_vintage_of(history).alias("vintage"))
        versions = history.group_by([*_UNIT, "vintage"]).agg(pl.col("_rid"))
        sigs = (
            history.with_columns(_outcome_text().alias("_row"))
            .group_by([*_UNIT, "vintage"])
            .agg(pl.col("_row").sort().str.join("\x1e").alias("_sig"))
            .join(versions, on=[*_UNIT, "vintage"])
        )
        # a set that becomes current leaves the history
        gone = sigs.join(
            replace.filter(pl.col("_sig") != pl.col("_held_sig")).select(*_UNIT, "_sig"),
            on=[*_UNIT, "_sig"],
        )
        drop.append(gone["_rid"].explode())
        # an older download's set: kept once, at its newest vintage
        dup = sigs.join(older.select(*_UNIT, "_sig", "_v"), on=[*_UNIT, "_sig"])
        drop.append(dup.filter(pl.col("vintage") < pl.col("_v"))["_rid"].explode())
        older = older.join(
            dup.filter(pl.col("vintage") >= pl.col("_v")).select(_UNIT), on=_UNIT, how="anti"
        )
    superseded = _rows_of(differ.filter(pl.col("_v") > pl.col("_held_v")), existing)
    if superseded.height:
        replacing = frame.group_by(_UNIT).agg(pl.col("import_id").first().alias("_by"))
        add.append(
            superseded.drop("_rid")
            .join(replacing, on=_UNIT)
            .with_columns(
                pl.lit(now).alias("replaced_at"), pl.col("_by").alias("replaced_by_import")
            )
            .drop("_by")
        )
    to_history = _rows_of(older, frame)  # less the sets history holds from a newer copy
    if to_history.height:
        current_import = existing.group_by(_UNIT).agg(pl.col("import_id").max().alias("_by"))
        add.append(
            to_history.join(current_import, on=_UNIT)
            .drop("_file")
            .with_columns(
                pl.lit(now).alias("replaced_at"), pl.col("_by").alias("replaced_by_import")
            )
            .drop("_by")
        )
    rids = pl.concat(drop) if drop else pl.Series("_rid", [], dtype=pl.Int64)
    if rids.len():
        store.delete_history_rows("outcome_history", rids)
    if add:
        versions_in = pl.concat(add, how="diagonal_relaxed").with_columns(
            pl.col("import_id")
            .replace_strict(sources, default=None, return_dtype=pl.String)
            .alias("source_file")
        )
        store.insert_history_rows("outcome_history", versions_in)
    replaced = _rows_of(replace, existing)
    if replaced.height:
        store.delete_history_rows("outcomes", replaced["_rid"])
    written = pl.concat([_rows_of(fresh, frame), _rows_of(replace, frame)])
    if written.height:
        store.insert_rows("outcomes", written.drop("_file"))
    # each incoming row: a new unit inserted; a replaced unit's rows updated where their
    # key or content is new to it; everything else unchanged
    row_cols = list(dict.fromkeys([*OUTCOME_KEY, *_OUTCOME_CONTENT]))
    held_rows = existing.select(row_cols).unique()
    updating = _rows_of(differ.filter(pl.col("_v") > pl.col("_held_v")), frame)
    updated = updating.join(held_rows, on=row_cols, how="anti", nulls_equal=True)
    unchanged = pl.concat(
        [
            _rows_of(same, frame),
            updating.join(updated.select(OUTCOME_KEY), on=list(OUTCOME_KEY), how="anti"),
            stale_rows,
        ]
    )
    return _counts(
        inserted=_rows_of(fresh, frame), updated=updated, unchanged=unchanged, stale=stale_rows
    )
