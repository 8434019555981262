"""A PostgreSQL server for the tests that run on both engines (issue 17).

PLACEHARM_TEST_PG=postgresql://... names a server to use; otherwise a throwaway cluster is
made with Debian's initdb/pg_ctl in a temporary folder, listening on loopback only, and
removed at the end of the session. PostgreSQL refuses to run as root: as root the cluster is
made and run as the `postgres` user (runuser). Each test gets its own schema, dropped after.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path
from urllib.parse import quote


class ServerUnavailable(RuntimeError):
    """No PostgreSQL server could be reached or started (the reason says why)."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    if found:
        return found[0]
    path = shutil.which(name)
    if path is None:
        raise ServerUnavailable(
            f"PostgreSQL's {name} is not installed (Debian: apt-get install postgresql), "
            "and PLACEHARM_TEST_PG names no server"
        )
    return path


class ThrowawayCluster:
    """initdb + pg_ctl start in a temporary folder; `stop()` removes it all."""

    def __init__(self) -> None:
        initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
        self.pg_ctl = pg_ctl
        self.folder = Path(tempfile.mkdtemp(prefix="placeharm-pg-"))
        self.port = _free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:  # the server refuses root: run it as postgres
            if shutil.which("runuser") is None:
                raise ServerUnavailable("running as root and runuser is missing")
            try:
                shutil.chown(self.folder, user="postgres")
            except (LookupError, OSError) as exc:
                raise ServerUnavailable(f"running as root and no postgres user: {exc}") from exc
            self.as_user = ["runuser", "-u", "postgres", "--"]
        data = self.folder / "data"
        self._call(
            [initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"]
        )
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.folder} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._call(
            [pg_ctl, "-D", str(data), "-o", options, "-l", str(self.folder / "log"), "-w", "start"]
        )
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _call(self, argv: list[str]) -> None:
        done = subprocess.run(
            [*self.as_user, *argv], capture_output=True, text=True, timeout=120, check=False
        )
        if done.returncode != 0:
            shutil.rmtree(self.folder, ignore_errors=True)
            raise ServerUnavailable(
                f"could not start a throwaway PostgreSQL ({Path(argv[0]).name} failed: "
                f"{(done.stderr or done.stdout).strip()[-300:]})"
            )

    def stop(self) -> None:
        subprocess.run(
            [
                *self.as_user,
                self.pg_ctl,
                "-D",
                str(self.folder / "data"),
                "-m",
                "immediate",
                "stop",
            ],
            capture_output=True,
            timeout=60,
            check=False,
        )
        shutil.rmtree(self.folder, ignore_errors=True)


def check_server(url: str) -> None:
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=5) as con:
            con.execute("SELECT 1")
    except psycopg.Error as exc:
        raise ServerUnavailable(f"cannot connect to PLACEHARM_TEST_PG: {exc}") from exc


def new_schema(url: str) -> tuple[str, str]:
    """A fresh schema on the server: (its name, a URL whose connections use it)."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(url, autocommit=True) as con:
        con.execute(f"CREATE SCHEMA {name}")
    sep = "&" if "?" in url else "?"
    return name, f"{url}{sep}options={quote(f'-c search_path={name}')}"


def drop_schema(url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as con:
        con.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
