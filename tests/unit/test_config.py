"""Settings: PLACEHARM_* variables, an optional TOML file (PLACEHARM_CONFIG); env wins."""

from __future__ import annotations

from pathlib import Path

import pytest

from placeharm.config import load_settings
from placeharm.errors import ConfigError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No PLACEHARM_* variables from outside, and no ./placeharm.toml in the working dir."""
    import os

    for name in list(os.environ):
        if name.startswith("PLACEHARM_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def _toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "conf" / "placeharm.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path


def test_defaults():
    s = load_settings()
    assert s.db == Path("placeharm.duckdb")
    assert s.threads == 2
    assert s.memory_limit == "1GB"


def test_db_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("PLACEHARM_DB", str(tmp_path / "env.duckdb"))
    monkeypatch.setenv("PLACEHARM_THREADS", "3")
    s = load_settings()
    assert s.db == tmp_path / "env.duckdb"
    assert s.threads == 3


def test_toml_file_from_placeharm_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    conf = _toml(tmp_path, 'db = "/data/file.duckdb"\nthreads = 4\nmemory_limit = "1GB"\n')
    monkeypatch.setenv("PLACEHARM_CONFIG", str(conf))
    s = load_settings()
    assert s.db == Path("/data/file.duckdb")
    assert s.threads == 4
    assert s.memory_limit == "1GB"


def test_environment_wins_over_the_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    conf = _toml(tmp_path, 'db = "/data/file.duckdb"\nthreads = 4\n')
    monkeypatch.setenv("PLACEHARM_CONFIG", str(conf))
    monkeypatch.setenv("PLACEHARM_DB", "/data/env.duckdb")
    s = load_settings()
    assert s.db == Path("/data/env.duckdb")  # env
    assert s.threads == 4  # file, where env says nothing


def test_explicit_override_wins_over_env(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PLACEHARM_DB", "/data/env.duckdb")
    assert load_settings(db=Path("/x/cli.duckdb")).db == Path("/x/cli.duckdb")


def test_default_config_file_in_working_directory(tmp_path: Path):
    (tmp_path / "placeharm.toml").write_text("threads = 5\n")
    assert load_settings().threads == 5


def test_missing_config_file_is_an_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("PLACEHARM_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings()


@pytest.mark.parametrize(
    "text",
    ["threads = 0\n", "threads = 100\n", 'colour = "blue"\n', "db = [1, 2\n"],
    ids=["too-few-threads", "too-many-threads", "unknown-key", "bad-toml"],
)
def test_invalid_config_is_a_config_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, text):
    monkeypatch.setenv("PLACEHARM_CONFIG", str(_toml(tmp_path, text)))
    with pytest.raises(ConfigError):
        load_settings()


def test_invalid_env_value_is_a_config_error(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PLACEHARM_THREADS", "lots")
    with pytest.raises(ConfigError, match="threads"):
        load_settings()


def test_base_map_settings_are_checked(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    assert load_settings().tile_url is None and load_settings().pmtiles is None
    url = "https://tiles.force.local/{z}/{x}/{y}.png"
    monkeypatch.setenv("PLACEHARM_TILE_URL", url)
    monkeypatch.setenv("PLACEHARM_TILE_SIZE", "512")
    s = load_settings()
    assert s.tile_url == url and s.tile_size == 512
    for bad in (
        "javascript:alert(1)//{z}/{x}/{y}",
        "https://tiles.force.local/{z}/{x}.png",  # no {y}
        "https://tiles.force.local/{z}/{x}/{y}.png; script-src *",  # would extend the CSP
        "https://tiles.force.local/{z}/{x}/{y}.png'",
        "ftp://tiles.force.local/{z}/{x}/{y}.png",
    ):
        with pytest.raises(ConfigError, match="tile_url must be"):
            load_settings(tile_url=bad)
    with pytest.raises(ConfigError, match="not both"):
        load_settings(pmtiles=tmp_path / "base.pmtiles")
    monkeypatch.delenv("PLACEHARM_TILE_URL")
    assert load_settings(pmtiles=tmp_path / "base.pmtiles").pmtiles == tmp_path / "base.pmtiles"
    with pytest.raises(ConfigError, match="256 or 512"):
        load_settings(tile_size=300)
