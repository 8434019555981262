"""Live data: uploads and a watched drop folder, imported by the server (DuckDB's one writer),
then announced to every open page over server-sent events."""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from placeharm.audit import DROP_FOLDER, Actor
from placeharm.errors import DataError
from placeharm.services.ingest import ingest
from placeharm.services.pages import data_as_of
from placeharm.soc.importer import import_entity
from placeharm.soc.schema import ENTITIES

if TYPE_CHECKING:
    from placeharm.web.app import State

log = logging.getLogger(__name__)
POLICE_UK = "police.uk"


class Importer:
    """Imports one file as the store's one writer and notifies open pages."""

    def __init__(self, state: State) -> None:
        self.state = state

    def import_path(self, kind: str, path: Path, actor: Actor) -> dict[str, Any]:
        """Import one file; `actor` (who uploaded, or the drop folder) goes in the import log
        and the audit log."""
        if kind != POLICE_UK and kind not in ENTITIES:
            raise DataError(
                f"unknown kind {kind!r}; use {POLICE_UK} or one of {', '.join(ENTITIES)}"
            )
        with self.state.write() as store:
            try:
                if kind == POLICE_UK:
                    results = ingest(
                        store, [path], threads=self.state.settings.threads, actor=actor
                    )
                else:
                    results = [
                        import_entity(
                            store, kind, path, threads=self.state.settings.threads, actor=actor
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

    def import_bytes(self, kind: str, name: str, content: bytes, actor: Actor) -> dict[str, Any]:
        folder = Path(tempfile.mkdtemp(prefix="placeharm-upload-"))
        try:
            path = folder / name
            path.write_bytes(content)
            return self.import_path(kind, path, actor)
        finally:
            shutil.rmtree(folder, ignore_errors=True)


class DropFolder:
    """Watches a folder: `KIND__anything.csv` (a SOC entity) or a police.uk file name
    (`YYYY-MM-force-street.csv[.gz]`). Imported files move to `done/`, failures to `failed/`
    with a `.error.txt` beside them."""

    def __init__(self, state: State, folder: Path, interval: float = 0.25) -> None:
        self.state = state
        self.folder = folder
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="drop-folder", daemon=True)
        for sub in ("done", "failed"):
            (folder / sub).mkdir(parents=True, exist_ok=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        sizes: dict[Path, int] = {}
        while not self._stop.wait(self.interval):
            seen: dict[Path, int] = {}
            for path in sorted(self.folder.iterdir()):
                if (
                    not path.is_file()
                    or path.name.startswith(".")
                    or path.suffix not in (".csv", ".gz", ".json")
                ):
                    continue  # e.g. name.csv.part while a copy is still being written
                size = path.stat().st_size
                seen[path] = size
                if size and sizes.get(path) == size:  # unchanged since the last look
                    self._one(path)
                    seen.pop(path, None)
            sizes = seen

    def _one(self, path: Path) -> None:
        kind = path.name.split("__", 1)[0] if "__" in path.name else POLICE_UK
        try:
            outcome = self.state.importer.import_path(kind, path, DROP_FOLDER)
            problems = [
                f"{r['file']}: {r['status']}: {r['message']}"
                for r in outcome["results"]
                if r["status"] != "ok"
            ]
            if problems:
                raise DataError("; ".join(problems))
            path.rename(self.folder / "done" / path.name)
        except Exception as exc:  # one bad file must not stop the watcher
            log.warning("drop folder: %s refused: %s", path.name, exc)
            target = self.folder / "failed" / path.name
            path.rename(target)
            target.with_name(target.name + ".error.txt").write_text(str(exc) + "\n")
