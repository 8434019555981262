"""`placeharm serve --workers 2` on a PostgreSQL store (issue 17): a real server, two worker
processes sharing one socket, checked from outside over HTTP.

Which worker answers a request is the kernel's choice. The tests hold several keep-alive
connections open and find, from /proc, which worker process owns the server end of each;
a request sent on a connection is answered by the worker that owns it. So "refused by the
other worker" is checked on connections known to reach each worker, not hoped for.
"""

from __future__ import annotations

import gzip
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from placeharm.services import auth
from placeharm.store.postgres import PostgresStore

PASSWORD = "Kestrel-harbour-lantern-42"
USERS = ("aisha", "bryn", "cora")
COOKIE = "placeharm_session"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _placeharm(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from placeharm.cli.main import main; main()", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


class Server:
    """A running `placeharm serve --workers 2` and what the tests need of it."""

    def __init__(self, process: subprocess.Popen[str], port: int, url: str, env: dict[str, str]):
        self.process = process
        self.port = port
        self.url = url
        self.env = env
        self.base = f"http://127.0.0.1:{port}"
        self.drop = Path()

    def workers(self) -> list[int]:
        """The worker processes: the server's descendants that hold connections or listen."""
        out = subprocess.run(
            ["ps", "-o", "pid=,ppid=", "-A"], capture_output=True, text=True, check=True
        ).stdout
        children: dict[int, list[int]] = {}
        for line in out.splitlines():
            pid, ppid = (int(x) for x in line.split())
            children.setdefault(ppid, []).append(pid)
        found, todo = [], [self.process.pid]
        while todo:
            for child in children.get(todo.pop(), []):
                found.append(child)
                todo.append(child)
        return found

    def owner(self, client: httpx.Client) -> int | None:
        """The worker process owning the server end of `client`'s open connection."""
        ports = _client_ports(self.port)
        inodes = {inode for local, inode in ports.items() if local in _open_client_ports(client)}
        for pid in self.workers():
            try:
                fds = os.listdir(f"/proc/{pid}/fd")
            except OSError:
                continue
            for fd in fds:
                try:
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                except OSError:
                    continue
                if target.startswith("socket:[") and int(target[8:-1]) in inodes:
                    return pid
        return None


def _client_ports(server_port: int) -> dict[int, int]:
    """Established connections to `server_port` on loopback: the client's port -> the inode
    of the server's end (from /proc/net/tcp: local address, remote address, state, inode)."""
    out: dict[int, int] = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, state, inode = fields[1], fields[2], fields[3], int(fields[9])
        if state == "01" and int(local.split(":")[1], 16) == server_port:
            out[int(remote.split(":")[1], 16)] = inode
    return out


def _open_client_ports(client: httpx.Client) -> set[int]:
    """The local ports of the client's open connections (the one per client it keeps)."""
    ports = set()
    pool = client._transport._pool  # type: ignore[attr-defined]
    for connection in pool.connections:
        stream = connection._connection._network_stream  # type: ignore[union-attr]
        sock = stream.get_extra_info("socket")
        ports.add(sock.getsockname()[1])
    return ports


@pytest.fixture(scope="module")
def server(
    pg_url: str, northumbria: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    from pg_server import drop_schema, new_schema

    schema, url = new_schema(pg_url)
    with PostgresStore(url) as store:
        for username in USERS:
            auth.create_user(store, username, username.title() + " Tester", "analyst", PASSWORD)
    port = _free_port()
    home = tmp_path_factory.mktemp("workers")
    env = {**os.environ, "PLACEHARM_DB": url, "PLACEHARM_CONFIG": str(home / "none.toml")}
    (home / "none.toml").write_text("")
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from placeharm.cli.main import main; main()",
            "serve",
            "--workers",
            "2",
            "--port",
            str(port),
            "--drop",
            str(home / "drop"),
        ],
        env=env,
        cwd=home,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    running = Server(process, port, url, env)
    running.drop = home / "drop"
    try:
        deadline = time.monotonic() + 240  # a loaded machine takes long to import placeharm
        while True:  # a worker up
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            try:
                if httpx.get(running.base + "/login").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
        yield running
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
        drop_schema(pg_url, schema)


def _sign_in(server: Server, username: str, password: str = PASSWORD) -> httpx.Response:
    with httpx.Client(base_url=server.base) as client:
        return _sign_in_on(client, server, username, password)


def _sign_in_on(
    client: httpx.Client, server: Server, username: str, password: str
) -> httpx.Response:
    """The sign-in form as a browser submits it, on `client`'s connection."""
    page = client.get("/login", headers={"Accept": "text/html"})
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token, page.text
    return client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": token.group(1)},
        headers={"Origin": server.base},
    )


def _clients_on_both_workers(
    server: Server, cookie: dict[str, str] | None = None
) -> dict[int, httpx.Client]:
    """One open keep-alive connection to each worker (opened until both are reached)."""
    by_worker: dict[int, httpx.Client] = {}
    spare = []
    for _ in range(60):
        client = httpx.Client(base_url=server.base, cookies=cookie)
        client.get("/login")  # opens the connection, kept alive
        pid = server.owner(client)
        if pid is not None and pid not in by_worker:
            by_worker[pid] = client
        else:
            spare.append(client)
        if len(by_worker) == 2:
            break
    for client in spare:
        client.close()
    assert len(by_worker) == 2, f"60 connections all reached one worker: {list(by_worker)}"
    return by_worker


def test_two_workers_share_the_socket_and_a_sign_out_holds_on_both(server: Server) -> None:
    signed = _sign_in(server, "aisha")
    assert signed.status_code == 303, signed.text
    cookie = {COOKIE: signed.cookies[COOKIE]}
    clients = _clients_on_both_workers(server, cookie)
    try:
        for client in clients.values():  # signed in on both
            assert client.get("/api/records").status_code == 200
        signer = next(iter(clients.values()))
        page = signer.get("/help", headers={"Accept": "text/html"})
        csrf = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text)
        assert csrf
        out = signer.post("/logout", headers={"Origin": server.base, "X-CSRF-Token": csrf.group(1)})
        assert out.status_code == 303
        for pid, client in clients.items():  # at once, on both, the one signed out on too
            assert server.owner(client) == pid  # the same connection, the same worker
            assert client.get("/api/records").status_code == 403, pid
    finally:
        for client in clients.values():
            client.close()


def test_sign_in_failures_count_across_workers(server: Server) -> None:
    # five wrong passwords for one account from one address lock it out (per_account 5):
    # three reach one worker and two the other, and still count as five
    clients = list(_clients_on_both_workers(server).values())
    try:
        for attempt in range(5):
            failed = _sign_in_on(clients[attempt % 2], server, "bryn", "wrong-password-0")
            assert failed.status_code == 303 and COOKIE not in failed.cookies
        for client in clients:  # the right password, during the lock-out, on either worker
            refused = _sign_in_on(client, server, "bryn", PASSWORD)
            assert refused.status_code == 429, refused.text
            assert COOKIE not in refused.cookies
        signed = _sign_in_on(clients[0], server, "cora", PASSWORD)  # another account
        assert signed.status_code == 303 and COOKIE in signed.cookies
    finally:
        for client in clients:
            client.close()
    with psycopg.connect(server.url) as con:
        row = con.execute(
            "SELECT strikes, cardinality(failures) FROM sign_in_tallies WHERE key LIKE '%bryn%'"
        ).fetchone()
    assert row == (1, 0)  # one lock-out; its failures are spent


def test_a_cli_import_reaches_both_workers_and_so_does_a_lost_listener(
    server: Server, northumbria: Path, tmp_path: Path
) -> None:
    signed = _sign_in(server, "cora")
    cookie = {COOKIE: signed.cookies[COOKIE]}
    clients = _clients_on_both_workers(server, cookie)
    month_file = tmp_path / "2021-12-northumbria-street.csv"
    with gzip.open(northumbria / "2021-12-northumbria-street.csv.gz", "rt") as source:
        month_file.write_text("".join(source.readline() for _ in range(201)))  # 200 records

    def records(client: httpx.Client) -> int:
        body = client.get("/api/records", params={"from": "2021-12", "to": "2021-12"}).json()
        return int(body["total"])

    try:
        before = {pid: records(c) for pid, c in clients.items()}  # now cached by each
        done = _placeharm("ingest", str(month_file), env=server.env)
        assert done.returncode == 0, done.stderr
        wait_for(lambda: all(records(c) == before[p] + 200 for p, c in clients.items()))

        # every worker's LISTEN connection killed: they reconnect and refresh, and a later
        # import still reaches both
        with psycopg.connect(server.url, autocommit=True) as con:
            killed = con.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE query LIKE 'LISTEN placeharm_changed%' AND pid <> pg_backend_pid()"
            ).fetchone()
        assert killed and killed[0] >= 2
        again = month_file.with_name("2022-02-northumbria-street.csv")
        with gzip.open(northumbria / "2022-02-northumbria-street.csv.gz", "rt") as source:
            again.write_text("".join(source.readline() for _ in range(101)))
        wait_for(lambda: listening(server) >= 2)  # reconnected (within the first backoff)
        before = {pid: records(c) for pid, c in clients.items()}
        done = _placeharm("ingest", str(again), env=server.env)
        assert done.returncode == 0, done.stderr
        wait_for(
            lambda: all(
                int(
                    c.get("/api/records", params={"from": "2022-02", "to": "2022-02"}).json()[
                        "total"
                    ]
                )
                == 100
                for c in clients.values()
            )
        )
    finally:
        for client in clients.values():
            client.close()


def listening(server: Server) -> int:
    with psycopg.connect(server.url, autocommit=True) as con:
        row = con.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'LISTEN placeharm_changed%' "
            "AND pid <> pg_backend_pid()"
        ).fetchone()
    return int(row[0]) if row else 0


def wait_for(condition: object, seconds: float = 15.0) -> None:
    """Until `condition()` holds (a notice crosses processes), failing after `seconds`."""
    assert callable(condition)
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "not reached in time"
        time.sleep(0.1)


def test_one_worker_watches_the_drop_folder(server: Server, northumbria: Path) -> None:
    from placeharm.store.postgres import DROP_FOLDER_LOCK

    def holders() -> int:
        with psycopg.connect(server.url, autocommit=True) as con:
            row = con.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND objsubid = 2 AND classid::BIGINT = %s",  # two keys: lock, schema
                [DROP_FOLDER_LOCK],
            ).fetchone()
        return int(row[0]) if row else 0

    wait_for(lambda: holders() == 1)  # one worker holds the watch; the other waits for it
    dropped = server.drop / "2021-11-northumbria-street.csv"
    with gzip.open(northumbria / "2021-11-northumbria-street.csv.gz", "rt") as source:
        part = server.drop / "incoming.part"  # written aside, then renamed in: one whole file
        part.write_text("".join(source.readline() for _ in range(51)))
        part.rename(dropped)
    wait_for(lambda: (server.drop / "done" / dropped.name).exists(), 60)
    with psycopg.connect(server.url) as con:
        row = con.execute(
            "SELECT count(*), sum(inserted) FROM imports WHERE source_file LIKE %s",
            ["%2021-11-northumbria-street.csv"],
        ).fetchone()
    assert row == (1, 50)  # imported once, by the one watcher
    assert holders() == 1


@pytest.mark.parametrize("command", ["serve", "demo"])
def test_several_workers_on_a_duckdb_store_are_refused(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from placeharm.cli.main import main

    store = tmp_path / "one.duckdb"
    monkeypatch.setenv("PLACEHARM_DB", str(store))
    monkeypatch.setattr(sys, "argv", ["placeharm", command, "--workers", "2", "--port", "1"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 4  # configuration
    message = " ".join(capsys.readouterr().err.split())
    assert "--workers 2 needs the PostgreSQL store" in message
    assert "PLACEHARM_DB=postgresql://" in message and "Traceback" not in message
    assert not store.exists()  # refused before opening (or, for the demo, building) anything
