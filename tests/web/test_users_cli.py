"""`placeharm users`: accounts are created with argon2id hashes and can sign in; disabling,
role and password changes end every session of the user."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from click.testing import Result
from typer.testing import CliRunner

from placeharm import open_store
from placeharm.cli.main import app
from placeharm.errors import PermissionDenied, StoreError
from placeharm.services import auth
from placeharm.store.duckdb import DuckDBStore

from .conftest import post_login


def test_users_add_list_and_sign_in(db_at: Callable[[str], str]):
    db = db_at("u")
    runner = CliRunner()
    short = runner.invoke(
        app,
        [
            "users",
            "add",
            "pc1",
            "--role",
            "officer",
            "--name",
            "PC",
            "--password",
            "short",
            "--db",
            db,
        ],
    )
    # (CliRunner runs the app without main(), so a refusal is the raised DataError)
    assert short.exit_code != 0 and "at least 12" in str(short.exception)
    bad_role = runner.invoke(
        app,
        [
            "users",
            "add",
            "pc1",
            "--role",
            "sheriff",
            "--name",
            "PC",
            "--password",
            "long-enough-secret",
            "--db",
            db,
        ],
    )
    assert bad_role.exit_code != 0 and "unknown role" in str(bad_role.exception)
    ok = runner.invoke(
        app,
        ["users", "add", "pc1", "--role", "officer", "--name", "PC", "--db", db],
        input="long-enough-secret\nlong-enough-secret\n",
    )
    assert ok.exit_code == 0, ok.output
    listed = runner.invoke(app, ["users", "list", "--db", db, "--format", "csv"])
    assert "pc1,PC,officer" in listed.stdout and "argon2" not in listed.stdout
    with open_store(db) as store:
        record = store.user("pc1")
        assert record is not None and record["password_hash"].startswith("$argon2id$")
        token = auth.login(store, "pc1", "long-enough-secret")
        user = auth.user_for(store, token)
        assert user is not None and user.role.value == "officer"
        try:
            auth.login(store, "pc1", "wrong-password-here")
        except PermissionDenied as exc:
            assert str(exc) == "wrong username or password"
        else:
            raise AssertionError("a wrong password signed in")
        auth.logout(store, token)
        assert auth.user_for(store, token) is None


def _cli(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(app, ["users", *args], input=input)


def test_users_disable_enable_role_and_password(db_at: Callable[[str], str]):
    db = db_at("u")
    assert _cli("add", "pc2", "--role", "officer", "--name", "PC", "--password",
                "heron-quarry-velvet", "--db", db).exit_code == 0  # fmt: skip
    again = _cli("add", "pc2", "--role", "admin", "--name", "PC", "--password",
                 "heron-quarry-velvet", "--db", db)  # fmt: skip
    assert again.exit_code != 0 and "already exists" in str(again.exception)
    with open_store(db) as store:
        tokens = [auth.login(store, "pc2", "heron-quarry-velvet") for _ in range(2)]
    disabled = _cli("disable", "pc2", "--db", db)
    assert disabled.exit_code == 0 and "2 sessions ended" in disabled.stdout
    with open_store(db) as store:
        assert all(auth.user_for(store, t) is None for t in tokens)
        with pytest.raises(PermissionDenied):
            auth.login(store, "pc2", "heron-quarry-velvet")
        assert store.user("pc2")["disabled_at"] is not None  # type: ignore[index]
    assert _cli("enable", "pc2", "--db", db).exit_code == 0
    with open_store(db) as store:
        token = auth.login(store, "pc2", "heron-quarry-velvet")
    role = _cli("role", "pc2", "analyst", "--db", db)
    assert role.exit_code == 0 and "now analyst; 1 session ended" in role.stdout
    bad_role = _cli("role", "pc2", "sheriff", "--db", db)
    assert bad_role.exit_code != 0 and "unknown role" in str(bad_role.exception)
    with open_store(db) as store:
        assert auth.user_for(store, token) is None
        token = auth.login(store, "pc2", "heron-quarry-velvet")
        assert auth.user_for(store, token).role.value == "analyst"  # type: ignore[union-attr]
    weak = _cli("password", "pc2", "--db", db, input="password1234\npassword1234\n")
    assert weak.exit_code != 0 and "too easy to guess" in str(weak.exception)
    named = _cli("password", "pc2", "--password", "pc2-is-my-name", "--db", db)
    assert named.exit_code != 0 and "contains the username" in str(named.exception)
    done = _cli("password", "pc2", "--db", db, input="gorse-anvil-lighthouse\n" * 2)
    assert done.exit_code == 0 and "1 session ended" in done.stdout
    with open_store(db) as store:
        assert auth.user_for(store, token) is None
        with pytest.raises(PermissionDenied):
            auth.login(store, "pc2", "heron-quarry-velvet")
        assert auth.login(store, "pc2", "gorse-anvil-lighthouse")
    missing = _cli("disable", "nobody", "--db", db)
    assert missing.exit_code != 0 and "no user 'nobody'" in str(missing.exception)


@pytest.mark.duckdb_only(
    reason="DuckDB's file lock lets one process write the store, so the commands refuse while "
    "`placeharm serve` holds it; a PostgreSQL server takes writers from every process by design "
    "(tests/integration/test_workers.py runs a CLI import beside running workers on PostgreSQL)"
)
def test_account_commands_refuse_while_the_dashboard_runs(tmp_path: Path):
    """DuckDB lets one process open the store for writing: while `placeharm serve` runs, the
    commands refuse (saying to stop it or use the admin page) and change nothing; once it
    stops they work, and the next server starts with no session of the user."""
    db = tmp_path / "served.duckdb"
    with DuckDBStore(db) as store:
        auth.create_user(store, "pc3", "PC", "officer", "heron-quarry-velvet")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("placeharm")),
            "serve",
            "--db",
            str(db),
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                httpx.get(f"{base}/login", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        # the sign-in form as a browser submits it (its CSRF token and this site's Origin)
        with httpx.Client(base_url=base) as browser:
            signed = post_login(browser, "pc3", "heron-quarry-velvet")  # type: ignore[arg-type]
        assert signed.status_code == 303, signed.text
        cookie = signed.cookies["placeharm_session"]
        refused = _cli("disable", "pc3", "--db", str(db))
        assert refused.exit_code != 0 and isinstance(refused.exception, StoreError)
        assert "Stop it first, or make the change on its admin page" in str(refused.exception)
        alive = httpx.get(f"{base}/api/openapi.json", cookies={"placeharm_session": cookie})
        assert alive.status_code == 200  # nothing changed
    finally:
        server.terminate()
        server.wait(30)
    assert "1 session ended" in _cli("disable", "pc3", "--db", str(db)).stdout
    with DuckDBStore(db) as store:
        assert auth.user_for(store, cookie) is None
