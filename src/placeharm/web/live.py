"""Live data: uploads and a watched drop folder, imported by the server (DuckDB's one writer),
then announced to every open page over server-sent events."""

from __future__ import annotations

import datetime as dt
import logging
import os
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from placeharm import audit
from placeharm.audit import DROP_FOLDER, Actor
from placeharm.errors import (
    DataError,
    ImportFailed,
    PlaceharmError,
    StoreUnavailable,
    TooLarge,
    describe,
    is_fatal,
)
from placeharm.ingest.csvfile import ReadLimits
from placeharm.model import ImportResult
from placeharm.services.ingest import ingest
from placeharm.services.pages import data_as_of
from placeharm.soc.importer import import_entity
from placeharm.soc.schema import ENTITIES

if TYPE_CHECKING:
    from placeharm.web.app import State

log = logging.getLogger(__name__)
POLICE_UK = "police.uk"
PROCESSING = ".processing"  # files being imported, out of reach of the folder's writers


MESSAGE_MAX = 2000  # characters of an error message shown for an upload


class Importer:
    """Imports one file as the store's one writer and notifies open pages."""

    def __init__(self, state: State) -> None:
        self.state = state

    @property
    def limits(self) -> ReadLimits:
        settings = self.state.settings
        return ReadLimits.of(settings.max_decompressed_mb, settings.max_line_kb)

    def import_path(self, kind: str, path: Path, actor: Actor) -> dict[str, Any]:
        """Import one file; `actor` (who uploaded, or the drop folder) goes in the import log
        and the audit log."""
        _check_kind(kind)
        threads = self.state.settings.threads
        with self.state.write() as store:
            try:
                if kind == POLICE_UK:
                    results = ingest(
                        store, [path], threads=threads, limits=self.limits, actor=actor
                    )
                else:
                    results = [
                        import_entity(
                            store, kind, path, threads=threads, limits=self.limits, actor=actor
                        )
                    ]
                committed_at = time.time()  # the import's transaction is in (issue 14)
            finally:
                self.state.as_of = data_as_of(store)
                self.state.cache.clear()  # a refused or failed file is in the import log too
            # real SOC records end demo sessions, in the store and in memory, before any
            # other request is answered from memory
            self.state.sessions.data_changed(store)
        self.state.notify()
        out = []
        for r in results:
            out.append(
                {
                    "file": Path(r.source_file).name,
                    "kind": r.source_kind,
                    "status": r.status,
                    "read": r.rows_read,
                    "inserted": r.inserted,
                    "updated": r.updated,
                    "unchanged": r.unchanged,
                    "quarantined": r.quarantined,
                    "message": r.message,
                    "import_id": r.import_id,
                    "quarantine_sample": [
                        {"line": q.line, "reason": q.reason} for q in r.quarantine_sample[:10]
                    ],
                }
            )
        log.info("imported %d file(s) of kind %s", len(out), kind)
        # when the data went live (seconds since the epoch): what a live update is timed from
        return {"results": out, "committed_at": committed_at}

    def import_upload(self, kind: str, path: Path, name: str, actor: Actor) -> dict[str, Any]:
        """Import an uploaded file saved at `path` (in its own temporary folder) under its
        sanitised name `name`. What comes back, results or error, names the file by `name`
        only: no temporary path, no control characters, no more than MESSAGE_MAX characters.
        A file refused or failed is a DataError (400) with the reason, whichever importer
        refused it and whatever failed (a native library's panic included: logged, with the
        import log's entry); a file over a content limit too (it is the file, not the
        request, that is too large).
        """
        try:
            outcome = self.import_path(kind, path, actor)
        except PlaceharmError as exc:
            error = DataError if isinstance(exc, TooLarge) else type(exc)
            raise error(_public(str(exc), path, name)) from None
        except BaseException as exc:
            if is_fatal(exc):
                raise
            log.warning("upload of %s failed unexpectedly", name[:200], exc_info=exc)
            message = (
                f"{name} failed, nothing imported: an unexpected failure ({describe(exc)}); "
                "keep the file and report the failure (the server log has the details)"
            )
            self.record_refusal(kind, path, message, actor, "failed")
            raise ImportFailed(_public(message, path, name)) from None
        for r in outcome["results"]:
            r["message"] = _public(r["message"], path, name)
            for q in r["quarantine_sample"]:
                q["reason"] = _public(q["reason"], path, name)
        refused = [r for r in outcome["results"] if r["status"] != "ok"]
        if refused and len(refused) == len(outcome["results"]):
            raise DataError(refused[0]["message"])
        return outcome

    def record_refusal(
        self, kind: str, path: Path, message: str, actor: Actor, status: str = "refused"
    ) -> int:
        """Log a file refused before any import began, or failed unexpectedly (the import
        log on the admin page holds the reason, which may quote the file); returns its
        import id."""
        started = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        result = ImportResult(str(path), kind, status, message=message)
        with self.state.write() as store, store.transaction():
            result.import_id = store.next_import_ids(1)[0]
            audit.record_imports(store, actor, [(result, started, "")], "import refused")
        self.state.cache.clear()  # the admin page lists the import log
        return result.import_id


def _check_kind(kind: str) -> None:
    if kind != POLICE_UK and kind not in ENTITIES:
        raise DataError(f"unknown kind {kind!r}; use {POLICE_UK} or one of {', '.join(ENTITIES)}")


def _public(text: str, path: Path, name: str) -> str:
    """`text` as the uploader may see it: the temporary path replaced by the file's name,
    characters that are not printable (raw bytes of a binary file) replaced, bounded."""
    folder = str(path.parent)
    text = text.replace(str(path), name).replace(folder + os.sep, "").replace(folder, "upload")
    text = "".join(c if c.isprintable() or c == "\n" else "\ufffd" for c in text)
    return text if len(text) <= MESSAGE_MAX else text[:MESSAGE_MAX] + "… (shortened)"


@dataclass(slots=True)
class WatcherHealth:
    """How the drop-folder watcher is doing, for the admin page (a snapshot)."""

    folder: str
    running: bool = False
    last_look_at: dt.datetime | None = None
    imported: int = 0
    failed: int = 0
    last_error: dict[str, str] | None = None  # message, file, at

    def to_json(self) -> dict[str, Any]:
        return {
            "folder": self.folder,
            "running": self.running,
            "last_look_at": _iso(self.last_look_at),
            "imported": self.imported,
            "failed": self.failed,
            "last_error": self.last_error,
        }


class DropFolder:
    """Watches a folder: `KIND__anything.csv` (a SOC entity) or a police.uk file name
    (`YYYY-MM-force-street.csv[.gz]`). Imported files move to `done/`; a file refused or
    failed, for whatever reason (a native library's panic included), moves to `failed/` with
    a `NAME.reason.txt` beside it (what went wrong, what to do, when), and the watcher goes
    on with the next file. `health()` says whether it runs, when it last looked, how many
    files it imported and failed, and the last error.

    A file is first moved into `.processing/` (a folder only placeharm writes), so what is
    imported is the regular file that was checked, never a link swapped in meanwhile.
    Symbolic links are never followed: one is moved to `failed/` unread. The reason file and
    the log never quote a file's content (they may reach people or systems the data may not):
    the full reason is in the import log on the admin page.
    """

    def __init__(self, state: State, folder: Path, interval: float = 0.25) -> None:
        self.state = state
        self.folder = folder
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="drop-folder", daemon=True)
        self._lock = threading.Lock()
        self._health = WatcherHealth(str(folder))
        for sub in ("done", "failed"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        self._processing = folder / PROCESSING
        self._processing.mkdir(mode=0o700, exist_ok=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def health(self) -> WatcherHealth:
        """A snapshot of the watcher's health (any thread)."""
        with self._lock:
            last = dict(self._health.last_error) if self._health.last_error else None
            return WatcherHealth(
                self._health.folder,
                self._thread.is_alive() and not self._stop.is_set(),
                self._health.last_look_at,
                self._health.imported,
                self._health.failed,
                last,
            )

    def _run(self) -> None:
        sizes: dict[Path, int] = {}
        failing = False
        while not self._stop.wait(self.interval):
            try:
                sizes = self._look(sizes)
                failing = False
            except BaseException as exc:  # the watcher lives on; the next look tries again
                if is_fatal(exc):
                    raise
                if not failing:  # once, not every quarter second (a folder gone, say)
                    log.exception("drop folder: a look at the folder failed; trying again")
                    self._note_error(
                        f"a look at the folder failed ({type(exc).__name__}); trying again "
                        "every look: check that the folder exists and may be read",
                        "",
                    )
                failing = True

    def _look(self, sizes: dict[Path, int]) -> dict[Path, int]:
        """One look at the folder: import the files whose size has not changed since the
        last look; returns the sizes seen this time."""
        seen: dict[Path, int] = {}
        for path in sorted(self.folder.iterdir()):
            if path.name.startswith(".") or path.name in ("done", "failed"):
                continue
            try:
                info = path.lstat()  # the entry itself: a link is never followed
            except OSError:
                continue  # gone meanwhile
            if stat.S_ISLNK(info.st_mode):
                self._refuse_link(path)
                continue
            if not stat.S_ISREG(info.st_mode) or path.suffix not in (".csv", ".gz", ".json"):
                continue  # e.g. name.csv.part while a copy is still being written
            seen[path] = info.st_size
            if info.st_size and sizes.get(path) == info.st_size:  # unchanged since last look
                self._one(path)
                seen.pop(path, None)
        with self._lock:
            self._health.last_look_at = _now()
        return seen

    def _refuse_link(self, path: Path) -> None:
        message = (
            "a symbolic link: the drop folder never follows links (its target was not read); "
            "copy the file itself into the folder"
        )
        log.warning("drop folder: %s refused: %s", _log_name(path.name), message)
        import_id = self._log_refusal("unknown", path, message)
        self._fail(path, path.name, "refused", message, import_id)

    def _one(self, path: Path) -> None:
        kind = path.name.split("__", 1)[0] if "__" in path.name else POLICE_UK
        working = self._processing / path.name
        try:
            path.rename(working)  # renames the entry itself, never a link's target
            info = working.lstat()
        except OSError:
            return  # gone or replaced meanwhile: looked at again on the next pass
        if not stat.S_ISREG(info.st_mode):
            self._refuse_link(working)
            return
        detail = ""
        try:
            outcome = self.state.importer.import_path(kind, working, DROP_FOLDER)
            failed = [r for r in outcome["results"] if r["status"] != "ok"]
            if not failed:
                working.rename(self.folder / "done" / path.name)
                with self._lock:
                    self._health.imported += 1
                return
            status, import_id = failed[0]["status"], failed[0]["import_id"]
        except StoreUnavailable as exc:  # the store, not the file: put it back for later
            try:
                working.rename(path)
            except OSError:
                log.exception("drop folder: could not put %s back", _log_name(path.name))
            self._note_error(
                f"the store cannot take files now ({exc}); the file stays in the folder and "
                "is tried again on the next look",
                path.name,
            )
            return
        except PlaceharmError as exc:  # refused by the SOC importer, which logged it
            status = "failed" if isinstance(exc, ImportFailed) else "refused"
            if not isinstance(exc, DataError):  # the store or the audit log: not the file
                status, detail = "failed", f"the store could not take it ({type(exc).__name__})"
            elif isinstance(exc, TooLarge):  # a limit's message names no content
                detail = str(exc).replace(str(working), path.name)
            elif isinstance(exc, ImportFailed) and exc.__cause__ is not None:
                detail = f"an unexpected failure ({type(exc.__cause__).__name__})"
            import_id = exc.import_id if isinstance(exc, DataError) else None
            if import_id is None:
                import_id = self._log_refusal(kind, working, str(exc), status)
        except BaseException as exc:  # one bad file must not stop the watcher: a native
            # library's panic (pyo3's PanicException) is a BaseException, not an Exception
            if is_fatal(exc):
                raise
            log.warning("drop folder: %s failed unexpectedly", _log_name(path.name), exc_info=exc)
            status, detail = "failed", f"an unexpected failure ({type(exc).__name__})"
            message = (
                f"{working} failed, nothing imported: an unexpected failure ({describe(exc)}); "
                "keep the file and report the failure (the server log has the details)"
            )
            import_id = self._log_refusal(kind, working, message, status)
        log.warning(
            "drop folder: %s %s, nothing imported (reason: import %s on the admin page)",
            _log_name(path.name),
            status,
            import_id,
        )
        self._fail(working, path.name, status, detail, import_id)

    def _log_refusal(
        self, kind: str, path: Path, message: str, status: str = "refused"
    ) -> int | None:
        try:
            return self.state.importer.record_refusal(kind, path, message, DROP_FOLDER, status)
        except BaseException as exc:  # the refusal stands even if the store cannot log it
            if is_fatal(exc):
                raise
            log.exception("drop folder: could not log the refusal of %s", _log_name(path.name))
            return None

    def _fail(self, path: Path, name: str, status: str, detail: str, import_id: int | None) -> None:
        """Move `path` to failed/ as `name`, with a reason file that quotes none of it."""
        when = _now()
        target = self.folder / "failed" / name
        text = _reason(name, status, detail, import_id, when)
        try:
            path.rename(target)
            reason = target.with_name(target.name + ".reason.txt")
            # O_NOFOLLOW: a link planted at the reason file's name is never written through
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
            with os.fdopen(os.open(reason, flags, 0o640), "w") as handle:
                handle.write(text)
        except OSError:
            log.exception("drop folder: could not move %s to failed/", _log_name(name))
        summary = f"{status}, nothing imported" + (f": {detail}" if detail else "")
        if import_id is not None:
            summary += f" (import {import_id} in the import log has the full reason)"
        with self._lock:
            self._health.failed += 1
        self._note_error(summary, name, when)

    def _note_error(self, message: str, name: str, when: dt.datetime | None = None) -> None:
        error = {"message": message, "file": _shown_name(name), "at": _stamp(when or _now())}
        with self._lock:
            self._health.last_error = error


def _reason(name: str, status: str, detail: str, import_id: int | None, when: dt.datetime) -> str:
    """A failed file's reason file: what went wrong, what to do, when (none of its content)."""
    if status == "refused":
        what = "it was refused: it cannot be used as it stands"
        todo = (
            "read the full reason, correct the file or download it again, then copy it "
            "into the drop folder again"
        )
    else:
        what = "its import failed and was rolled back"
        todo = (
            "keep the file and report the failure (with the import number); once it is "
            "fixed, copy the file into the drop folder again"
        )
    where = (
        f"import {import_id} in the import log on the admin page (not repeated here: it "
        "may quote the file)"
        if import_id is not None
        else "the server log"
    )
    return (
        f"{_shown_name(name)}: {status}, nothing imported.\n"
        f"What went wrong: {what}" + (f"; {detail}" if detail else "") + ".\n"
        f"The full reason: {where}.\n"
        f"What to do: {todo}. Files before and after it are not affected.\n"
        f"When: {_stamp(when)}.\n"
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)


def _stamp(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _iso(moment: dt.datetime | None) -> str | None:
    return None if moment is None else _stamp(moment)


def _shown_name(name: str) -> str:
    """A file name fit to show: printable, bounded."""
    return "".join(c if c.isprintable() else "?" for c in name)[:200]


def _log_name(name: str) -> str:
    """A file name fit for one log line: printable, bounded."""
    name = "".join(c if c.isprintable() else "?" for c in name)
    return repr(name[:200])
