"""Several app processes on one PostgreSQL store (`placeharm serve --workers N`, issue 17).

uvicorn starts N processes that share one listening socket; each builds the app with
`app_from_environment` (uvicorn's app factory), from the same settings as the command that
started them. Each process keeps its own page cache and read models and refreshes them when
any process (or the CLI) commits (LISTEN/NOTIFY, `PostgresStore.listen`); sessions are
checked against the store on every request and sign-in failures are counted in the store
(services/auth.py), so what one process does holds at once in every other.

A DuckDB store is one file written by one process: it is served by one process only.
The drop folder is watched by exactly one process: the one holding a PostgreSQL advisory
lock (`DropElection`); if that process ends, another takes the watch within
`ELECTION_RETRY_S`.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from placeharm.config import Settings, load_settings
from placeharm.errors import ConfigError, StoreUnavailable
from placeharm.store import is_server_url
from placeharm.store.postgres import DROP_FOLDER_LOCK, PostgresStore

if TYPE_CHECKING:
    from fastapi import FastAPI

    from placeharm.web.app import State
    from placeharm.web.live import DropFolder

log = logging.getLogger(__name__)

# The folder to watch, handed from `placeharm serve` to its worker processes (not a setting).
DROP_ENV = "_PLACEHARM_SERVE_DROP"
# How often a process without the drop folder's watch asks for it again.
ELECTION_RETRY_S = 5.0
APP_FACTORY = "placeharm.web.workers:app_from_environment"


def check_workers(settings: Settings, workers: int) -> None:
    """Refuse more than one worker on a DuckDB store, with what to do instead."""
    if workers < 1:
        raise ConfigError("--workers is a number of processes: 1 or more")
    if workers > 1 and not is_server_url(settings.db):
        raise ConfigError(
            f"--workers {workers} needs the PostgreSQL store: a DuckDB store is written by one "
            "process. Serve it with --workers 1, or move to PostgreSQL "
            "(PLACEHARM_DB=postgresql://user@host/database; docs/deploy.md)"
        )


def hand_over(settings: Settings, drop: Path | None) -> None:
    """Put what the worker processes need in the environment they inherit: the store the
    command chose (`--db` included) and the drop folder."""
    os.environ["PLACEHARM_DB"] = str(settings.db)
    if drop is not None:
        os.environ[DROP_ENV] = str(drop.resolve())
    else:
        os.environ.pop(DROP_ENV, None)


def app_from_environment() -> FastAPI:
    """uvicorn's app factory in each worker process: the app on the settings the starting
    command handed over (`hand_over`)."""
    from placeharm.web.app import create_app

    root = logging.getLogger()
    if not root.handlers:  # a fresh process: warnings to standard error, as the CLI's
        handler = logging.StreamHandler()
        handler.setLevel(logging.WARNING)
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s")
        )
        root.addHandler(handler)
    drop = os.environ.get(DROP_ENV)
    return create_app(load_settings(), Path(drop) if drop else None)


class DropElection:
    """Watches the drop folder in this process only while it holds the store's drop-folder
    lock (a PostgreSQL advisory lock on a connection of its own): so of N processes, and of
    several servers on one store, exactly one imports each dropped file. The others ask
    again every `retry_s`; a lost lock connection stops this process's watch."""

    def __init__(self, state: State, folder: Path, retry_s: float = ELECTION_RETRY_S) -> None:
        self.state = state
        self.folder = folder
        self.retry_s = retry_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="drop-election", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        watcher = self.state.watcher
        if watcher is not None:
            watcher.stop()

    def _run(self) -> None:
        from placeharm.web.live import DropFolder

        store = self.state.store
        assert isinstance(store, PostgresStore)
        while not self._stop.is_set():
            try:
                held = store.hold_lock(DROP_FOLDER_LOCK)
            except StoreUnavailable:
                log.warning("drop folder: cannot reach the store to take the watch; retrying")
                held = None
            if held is None:
                self._stop.wait(self.retry_s)
                continue
            watcher: DropFolder = DropFolder(self.state, self.folder)
            self.state.watcher = watcher
            watcher.start()
            log.warning("drop folder %s: watched by this process (%d)", self.folder, os.getpid())
            while not self._stop.wait(self.retry_s):
                if not held():
                    log.warning("drop folder: lost the lock connection; stopped watching")
                    watcher.stop()
                    self.state.watcher = None
                    break
