"""Live data: uploads and a watched drop folder, imported by the server (DuckDB's one writer),
then announced to every open page over server-sent events."""

from __future__ import annotations

import datetime as dt
import logging
import os
import stat
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from placeharm import audit
from placeharm.audit import DROP_FOLDER, Actor
from placeharm.errors import DataError, PlaceharmError, TooLarge
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
            finally:
                self.state.as_of = data_as_of(store)
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
        return {"results": out}

    def import_upload(self, kind: str, path: Path, name: str, actor: Actor) -> dict[str, Any]:
        """Import an uploaded file saved at `path` (in its own temporary folder) under its
        sanitised name `name`. What comes back, results or error, names the file by `name`
        only: no temporary path, no control characters, no more than MESSAGE_MAX characters.
        A refused file is a DataError (400), whichever importer refused it; a file over a
        content limit too (it is the file, not the request, that is too large).
        """
        try:
            outcome = self.import_path(kind, path, actor)
        except PlaceharmError as exc:
            error = DataError if isinstance(exc, TooLarge) else type(exc)
            raise error(_public(str(exc), path, name)) from None
        for r in outcome["results"]:
            r["message"] = _public(r["message"], path, name)
            for q in r["quarantine_sample"]:
                q["reason"] = _public(q["reason"], path, name)
        refused = [r for r in outcome["results"] if r["status"] == "refused"]
        if refused and len(refused) == len(outcome["results"]):
            raise DataError(refused[0]["message"])
        return outcome

    def record_refusal(self, kind: str, path: Path, message: str, actor: Actor) -> int:
        """Log a file refused before any import began (the import log on the admin page
        holds the reason, which may quote the file); returns its import id."""
        started = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        result = ImportResult(str(path), kind, "refused", message=message)
        with self.state.write() as store, store.transaction():
            result.import_id = store.next_import_ids(1)[0]
            audit.record_imports(store, actor, [(result, started, "")], "import refused")
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


class DropFolder:
    """Watches a folder: `KIND__anything.csv` (a SOC entity) or a police.uk file name
    (`YYYY-MM-force-street.csv[.gz]`). Imported files move to `done/`, failures to `failed/`
    with a `.error.txt` beside them.

    A file is first moved into `.processing/` (a folder only placeharm writes), so what is
    imported is the regular file that was checked, never a link swapped in meanwhile.
    Symbolic links are never followed: one is moved to `failed/` unread. The error file and
    the log never quote a file's content (they may reach people or systems the data may not):
    the full reason is in the import log on the admin page.
    """

    def __init__(self, state: State, folder: Path, interval: float = 0.25) -> None:
        self.state = state
        self.folder = folder
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="drop-folder", daemon=True)
        for sub in ("done", "failed"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        self._processing = folder / PROCESSING
        self._processing.mkdir(mode=0o700, exist_ok=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        sizes: dict[Path, int] = {}
        failing = False
        while not self._stop.wait(self.interval):
            try:
                sizes = self._look(sizes)
                failing = False
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException:  # the watcher lives on; the next look tries again
                if not failing:  # once, not every quarter second (a folder gone, say)
                    log.exception("drop folder: a look at the folder failed; trying again")
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
        return seen

    def _refuse_link(self, path: Path) -> None:
        message = (
            "a symbolic link: the drop folder never follows links (its target was not read); "
            "copy the file itself into the folder"
        )
        log.warning("drop folder: %s refused: %s", _log_name(path.name), message)
        try:
            import_id = self.state.importer.record_refusal("unknown", path, message, DROP_FOLDER)
        except Exception:  # the refusal stands even if the store cannot log it
            log.exception("drop folder: could not log the refusal of %s", _log_name(path.name))
            import_id = None
        self._fail(path, path.name, message, import_id)

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
        import_id: int | None = None
        try:
            outcome = self.state.importer.import_path(kind, working, DROP_FOLDER)
            failed = [r for r in outcome["results"] if r["status"] != "ok"]
            if not failed:
                working.rename(self.folder / "done" / path.name)
                return
            status, import_id = failed[0]["status"], failed[0]["import_id"]
            summary = f"{status}, nothing imported"
        except TooLarge as exc:  # a limit's message names no content
            summary = str(exc).replace(str(working), path.name)
            import_id = self._log_refusal(kind, working, summary)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # one bad file must not stop the watcher: a native
            # library's panic (pyo3's PanicException) is a BaseException, not an Exception
            summary = f"refused, nothing imported ({type(exc).__name__})"
            import_id = self._log_refusal(kind, working, str(exc))
        log.warning(
            "drop folder: %s %s (reason: import %s on the admin page)",
            _log_name(path.name),
            summary,
            import_id,
        )
        self._fail(working, path.name, summary, import_id)

    def _log_refusal(self, kind: str, path: Path, message: str) -> int | None:
        try:
            return self.state.importer.record_refusal(kind, path, message, DROP_FOLDER)
        except Exception:
            log.exception("drop folder: could not log the refusal of %s", _log_name(path.name))
            return None

    def _fail(self, path: Path, name: str, summary: str, import_id: int | None) -> None:
        """Move `path` to failed/ as `name`, with an error file that quotes none of it."""
        target = self.folder / "failed" / name
        where = (
            f"the full reason is import {import_id} in the import log on the admin page"
            if import_id is not None
            else "the server log has the details"
        )
        try:
            path.rename(target)
            error = target.with_name(target.name + ".error.txt")
            # O_NOFOLLOW: a link planted at the error file's name is never written through
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
            with os.fdopen(os.open(error, flags, 0o640), "w") as handle:
                handle.write(f"{name}: {summary}.\n{where}.\n")
        except OSError:
            log.exception("drop folder: could not move %s to failed/", _log_name(name))


def _log_name(name: str) -> str:
    """A file name fit for one log line: printable, bounded."""
    name = "".join(c if c.isprintable() else "?" for c in name)
    return repr(name[:200])
