"""`placeharm users`: accounts are created with argon2id hashes and can sign in."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from placeharm.cli.main import app
from placeharm.errors import PermissionDenied
from placeharm.services import auth
from placeharm.store.duckdb import DuckDBStore


def test_users_add_list_and_sign_in(tmp_path: Path):
    db = str(tmp_path / "u.duckdb")
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
    with DuckDBStore(db) as store:
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
