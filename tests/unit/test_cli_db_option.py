"""`--db` takes a DuckDB file's path or a PostgreSQL URL as written (was: Typer read it as a
Path, which folds `postgresql://host` to `postgresql:/host`, so every command refused a
PostgreSQL store given with --db)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from placeharm.cli.common import _settings
from placeharm.cli.main import app
from placeharm.errors import ConfigError

URL = "postgresql://analyst@db.example:5432/placeharm?options=-c%20search_path%3Dforce"


def test_a_postgresql_url_is_kept_as_written():
    assert _settings(URL).db == URL


def test_a_file_stays_a_path_and_no_db_is_the_setting(tmp_path: Path, monkeypatch):
    assert _settings(str(tmp_path / "s.duckdb")).db == tmp_path / "s.duckdb"
    monkeypatch.setenv("PLACEHARM_DB", str(tmp_path / "env.duckdb"))
    assert Path(_settings(None).db) == tmp_path / "env.duckdb"


def test_a_command_names_the_url_it_was_given(tmp_path: Path):
    """A server nobody listens on: the message names the URL as given, `//` included."""
    url = "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2"
    result = CliRunner().invoke(app, ["coverage", "--db", url])
    assert result.exit_code != 0
    assert "postgresql://nobody@127.0.0.1:1/none" in str(result.exception) + result.output


def test_the_cli_prints_a_store_url_without_its_password():
    """--db may now carry a PostgreSQL URL with a password: what the CLI prints of it
    (serve's banner, a backup's summary) never shows the password (review finding)."""
    from placeharm.cli.common import shown_db

    assert shown_db("postgresql://analyst:s3cret@db/placeharm") == (
        "postgresql://analyst:***@db/placeharm"
    )
    assert "s3cret" not in shown_db("postgresql://db/placeharm?user=a&password=s3cret")
    assert shown_db(Path("store.duckdb")) == "store.duckdb"


def test_an_empty_or_mangled_db_is_refused_with_what_to_write(tmp_path: Path, monkeypatch):
    """An empty --db (an unset shell variable) is refused, not taken as no option, which
    opened or created the default store in the working folder; a value that begins like a
    PostgreSQL URL but is not one is refused, not opened as a DuckDB file named
    "postgresql:/..." (whose error spoke of DuckDB extensions)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PLACEHARM_DB", raising=False)
    for value in ("", "  "):
        result = CliRunner().invoke(app, ["coverage", "--db", value])
        assert isinstance(result.exception, ConfigError), result.output  # exit 4 in main()
        assert "--db is empty" in str(result.exception)
    for value in ("postgresql:/host/db", "Postgres:db"):
        result = CliRunner().invoke(app, ["coverage", "--db", value])
        assert isinstance(result.exception, ConfigError), result.output
        assert "is not a PostgreSQL URL: write postgresql://" in str(result.exception)
    assert list(tmp_path.iterdir()) == []  # no store made anywhere
