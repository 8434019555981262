"""Backups made by the dashboard, which holds the store (DuckDB allows one writing process per
file, so no other process can even read a served store): on an admin's request and, with the
`backup_every_hours` setting, on a schedule. Each is a consistent copy (`DuckDBStore.backup`)
written into one folder, logged in the audit log as a disclosure of the whole store; the
newest `backup_keep` are kept (docs/ingest.md, The store)."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from pathlib import Path
from typing import Any

from placeharm.audit import Actor, AuditLog
from placeharm.errors import Busy, StoreError
from placeharm.services.backups import back_up
from placeharm.store import AnyStore

log = logging.getLogger(__name__)
PREFIX = "placeharm-"
SCHEDULE = Actor("scheduled-backup", "system")


class Backups:
    """The server's backups of its store into `folder`: one at a time."""

    def __init__(
        self, store: AnyStore, audit: AuditLog, folder: Path, every_s: float, keep: int
    ) -> None:
        self.store = store
        self.audit = audit
        self.folder = folder
        self.every_s = every_s
        self.keep = keep
        self.last: dict[str, Any] = {}  # the newest attempt: when, file or error (admin page)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="backups", daemon=True)

    def make(self, actor: Actor) -> dict[str, Any]:
        """Write one backup now; its file name, schema version, rows per table and size."""
        if not self._lock.acquire(blocking=False):
            raise Busy("a backup is being made already; try again when it has finished")
        try:
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(
                    f"the backup folder {self.folder} cannot be made: {exc.strerror}"
                ) from exc
            stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
            dest = self.folder / f"{PREFIX}{stamp}.duckdb"
            info = back_up(self.store, dest, actor, "/admin/backup", self.audit)
            self._prune()
            self.last = {"at": stamp, "file": dest.name, "by": actor.username}
            return {"file": dest.name, "folder": str(self.folder), **info}
        except BaseException as exc:
            self.last = {"at": dt.datetime.now(dt.UTC).isoformat(), "error": str(exc)}
            raise
        finally:
            self._lock.release()

    def _prune(self) -> None:
        """Keep the newest `keep` backups this server made (its own names only)."""
        made = sorted(self.folder.glob(f"{PREFIX}*.duckdb"))
        for old in made[: max(0, len(made) - self.keep)]:
            old.unlink(missing_ok=True)

    def start(self) -> None:
        if self.every_s > 0:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                made = self.make(SCHEDULE)
                log.info("scheduled backup %s written", made["file"])
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException:  # the schedule lives on; the admin page shows the error
                log.exception("scheduled backup failed; trying again at the next one")
