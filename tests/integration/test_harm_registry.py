"""The store's registry of custom harm indices (issue 12): `placeharm harm add|list|remove`,
validated once, stored with its edition and origin, chosen by name."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import placeharm
from placeharm.cli.main import app
from placeharm.errors import DataError, NotFound, StoreError
from placeharm.harm import load_index
from placeharm.services import indices
from placeharm.store import AnyStore

CSV = "offence_code,crime_type,weight\n92A,,250\n,Drugs,120\n,Anti-social behaviour,1\n"
YAML = """\
name: ignored-file-name
title: Drugs focus
edition: "2026-11"
source: "Tasking meeting decision, November 2026"
base: css:northumbria
offence_codes: {"92A": 250}
crime_types: {Drugs: 120}
"""


def _empty(store: AnyStore) -> bool:
    return store.harm_indices().is_empty() and store.harm_index_weights().is_empty()


def test_add_stores_validated_weights_and_origin_and_survives_reopening(tmp_path: Path, store_at):
    folder = tmp_path / "secret-folder"
    folder.mkdir()
    csv_file = folder / "local.csv"
    csv_file.write_text(CSV)
    yaml_file = folder / "drugs.yaml"
    yaml_file.write_text(YAML)
    with store_at("r") as store:
        local = indices.add(store, csv_file, "local", added_by="admin1")
        drugs = indices.add(store, yaml_file, "drugs-focus", description="for the November tasking")
        assert local.index.code_weights == {"92A": 250.0}
        assert local.index.type_weights == {"Anti-social behaviour": 1.0, "Drugs": 120.0}
        assert local.index.edition == f"unversioned (file sha256 {_sha(CSV)[:12]})"
        assert local.added_by == "admin1" and local.source_file == "local.csv"
        assert local.file_sha256 == _sha(CSV)
        north = load_index("css:northumbria")
        assert drugs.index.name == "drugs-focus"  # --name wins over the file's own name
        assert drugs.index.title == "Drugs focus"
        assert drugs.index.edition == f"2026-11 (file sha256 {_sha(YAML)[:12]})"
        assert drugs.index.type_scope == "custom (base css:northumbria)"
        assert drugs.index.type_weights["Drugs"] == 120
        assert drugs.index.type_weights["Burglary"] == north.type_weights["Burglary"]
        assert drugs.index.code_weights == {**north.code_weights, "92A": 250.0}
        assert drugs.description == "for the November tasking" and drugs.added_by
        # nothing in the store names the folder the file came from
        stored = store.harm_indices().write_csv()
        assert "secret-folder" not in stored and str(tmp_path) not in stored
        assert (
            indices.resolve(store, "drugs-focus", asb_weight=2).type_weights[
                "Anti-social behaviour"
            ]
            == 2.0
        )
    # the file may go; the registry is the store's
    csv_file.unlink()
    yaml_file.unlink()
    with store_at("r") as store:
        again = indices.registered(store)
        assert sorted(again) == ["drugs-focus", "local"]
        assert again["drugs-focus"].index == drugs.index
        assert again["local"].index == local.index
        assert again["local"].added_at == local.added_at
        listing = indices.listing(store)
        assert listing["name"].to_list() == ["css", "cchi", "drugs-focus", "local"]
        assert listing["kind"].to_list() == ["shipped", "shipped", "registered", "registered"]
        indices.remove(store, "local")
        with pytest.raises(NotFound, match="no registered harm index 'local'"):
            indices.remove(store, "local")
        with pytest.raises(DataError, match="unknown harm index"):
            indices.resolve(store, "local")
    with store_at("r") as store:
        assert list(indices.registered(store)) == ["drugs-focus"]
        assert set(store.harm_index_weights()["index_name"]) == {"drugs-focus"}


@pytest.mark.parametrize(
    ("text", "suffix", "reason"),
    [
        (CSV + ",Drugs,5\n", ".csv", "local.csv:5: 'Drugs' appears twice"),
        (CSV + ",Piracy,5\n", ".csv", "local.csv:5: 'Piracy' is not a police.uk crime type"),
        (CSV + "8N,,lots\n", ".csv", "local.csv:5: weight 'lots' is not a number"),
        ("code,value\n1,2\n", ".csv", "must have a 'weight' column"),
        ("offence_code,weight\n", ".csv", "no weights found"),
        ("crime_types: {Drugs: -1}\n", ".yaml", "must be a finite number, 0 or more"),
        ("base: /etc/passwd\ncrime_types: {Drugs: 1}\n", ".yaml", "base must be a shipped"),
        ("crime_types: [1, 2\n", ".yaml", "not valid YAML"),
        (CSV, ".txt", "a harm index file is .csv, .yaml or .yml"),
    ],
)
def test_add_refuses_a_bad_file_and_stores_nothing(
    tmp_path: Path, store_at, text: str, suffix: str, reason: str
):
    path = tmp_path / f"local{suffix}"
    path.write_text(text)
    with store_at("r") as store:
        with pytest.raises(DataError) as caught:
            indices.add(store, path, "local")
        assert reason in str(caught.value)
        assert str(tmp_path) not in str(caught.value)  # the file's name, never its folder
        assert _empty(store) and indices.registered(store) == {}


@pytest.mark.parametrize(
    "name",
    ["css", "cchi", "CSS", "Drugs", "a", "css:drugs", "../x", "a/b", "a.csv", "-x", "x" * 41],
)
def test_add_refuses_names_that_clash_or_read_as_paths(tmp_path: Path, store_at, name: str):
    path = tmp_path / "local.csv"
    path.write_text(CSV)
    with store_at("r") as store:
        with pytest.raises(DataError, match=r"is not allowed|is a shipped index"):
            indices.add(store, path, name)
        assert _empty(store)


def test_add_refuses_a_second_index_of_the_same_name_and_missing_or_huge_files(
    tmp_path: Path, store_at
):
    path = tmp_path / "local.csv"
    path.write_text(CSV)
    with store_at("r") as store:
        indices.add(store, path, "local")
        with pytest.raises(DataError, match="already registered; remove it first"):
            indices.add(store, path, "local")
        with pytest.raises(StoreError, match="already registered"):  # the store checks too
            store.add_harm_index(
                {c: "x" for c in store._HARM_INDEX_COLUMNS} | {"name": "local"},
                store.harm_index_weights().drop("index_name"),
            )
        with pytest.raises(NotFound, match=r"missing\.csv does not exist"):
            indices.add(store, tmp_path / "missing.csv", "other")
        huge = tmp_path / "huge.csv"
        huge.write_bytes(b"offence_code,weight\n" + b"1,1\n" * 600_000)
        with pytest.raises(DataError, match="larger than 2 MB"):
            indices.add(store, huge, "other")
        assert list(indices.registered(store)) == ["local"]
        assert store.harm_index_weights().height == 3


def test_cli_add_list_show_remove_and_use(tmp_path: Path, db_at):
    db = db_at("cli")
    good = tmp_path / "drugs.yaml"
    good.write_text(YAML)
    bad = tmp_path / "bad.csv"
    bad.write_text(CSV + ",Drugs,lots\n")
    runner = CliRunner()

    def run(*args: str) -> tuple[int, str, str]:
        result = runner.invoke(app, [*args, "--db", str(db)])
        if isinstance(result.exception, Exception) and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result.exit_code, result.stdout, result.stderr

    with pytest.raises(DataError, match=r"bad\.csv:5: weight 'lots' is not a number"):
        run("harm", "add", str(bad), "--name", "bad")
    code, stdout, _ = run("harm", "add", str(good), "--name", "drugs-focus", "--edition", "2026-12")
    assert code == 0
    assert "Registered harm index drugs-focus" in stdout and _sha(YAML) in stdout
    code, stdout, _ = run("harm", "list", "--format", "json")
    listed = {row["name"]: row for row in json.loads(stdout)}
    assert set(listed) == {"css", "cchi", "drugs-focus"}
    assert listed["drugs-focus"]["kind"] == "registered"
    assert listed["drugs-focus"]["edition"] == f"2026-12 (file sha256 {_sha(YAML)[:12]})"
    assert listed["drugs-focus"]["source_file"] == "drugs.yaml"
    code, stdout, _ = run("harm", "show", "drugs-focus", "--format", "json")
    drugs = {row["crime_type"]: row["weight"] for row in json.loads(stdout)}
    assert drugs["Drugs"] == 120
    with pytest.raises(DataError, match="unknown harm index"):
        run("rank", "--index", "nobody", "--format", "json")
    with pytest.raises(DataError, match="already registered"):
        run("harm", "add", str(good), "--name", "drugs-focus")
    code, stdout, _ = run("harm", "remove", "drugs-focus")
    assert code == 0 and "Removed harm index drugs-focus" in stdout
    with pytest.raises(NotFound):
        run("harm", "remove", "drugs-focus")
    with placeharm.open_store(db) as store:
        assert _empty(store)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_adding_and_removing_an_index_are_audited_alterations(tmp_path: Path, store_at):
    """Each registry change is an `alteration` entry naming the index, in the change's own
    transaction; a refused file leaves no entry."""
    from placeharm.audit import Actor, verify

    csv_file = tmp_path / "local.csv"
    csv_file.write_text(CSV)
    bad = tmp_path / "bad.csv"
    bad.write_text("offence_code,crime_type,weight\n92A,,-5\n")
    admin = Actor("admin1", "admin", None)
    with store_at("r") as store:
        indices.add(store, csv_file, "local", actor=admin)
        with pytest.raises(DataError):
            indices.add(store, bad, "broken", actor=admin)
        indices.remove(store, "local", actor=admin)
        entries, total = store.audit_search(None, None, None, None, "alteration", 10)
        rows = entries.sort("seq").to_dicts()
        assert total == 2
        assert [r["route"] for r in rows] == ["placeharm harm add", "placeharm harm remove"]
        assert all(r["username"] == "admin1" and '"local"' in r["record_ids"] for r in rows)
        assert _sha(CSV) in rows[0]["query"] and "broken" not in str(rows)
        assert verify(store).problem is None
