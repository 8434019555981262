"""The `placeharm` command, through typer's CliRunner, against a temporary store on the
engine under test (`--db` a DuckDB file or a PostgreSQL URL)."""

from __future__ import annotations

import csv
import gzip
import io
import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from placeharm.cli.main import app, main

MONTHS = ("2021-11", "2021-12", "2022-02")  # 2022-01 is the real gap


@pytest.fixture(scope="module")
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture(scope="module")
def cli_db(
    tmp_path_factory: pytest.TempPathFactory,
    module_db_at,
    runner: CliRunner,
    boundaries: Path,
    northumbria: Path,
    street_sample,
) -> tuple[str, dict]:
    """A store built only through the CLI: ward areas, three street months, one bad file."""
    tmp = tmp_path_factory.mktemp("cli")
    db = module_db_at("cli")
    ward = runner.invoke(
        app,
        [
            "areas",
            "import",
            str(boundaries / "northumbria_ward2013.geojson"),
            "--name",
            "ward",
            "--db",
            str(db),
        ],
    )
    assert ward.exit_code == 0, ward.output
    assert "177 areas" in ward.stdout

    header, lines = street_sample
    bad = tmp / "2021-10-northumbria-street.csv"
    crafted = [line.replace(",2021-05,", ",2021-10,") for line in lines[:3]]
    crafted[1] = crafted[1].replace(",2021-10,", ",2021-13,")
    bad.write_text("\n".join([header, *crafted]) + "\n")
    files = [northumbria / f"{m}-northumbria-street.csv.gz" for m in MONTHS]
    ingested = runner.invoke(app, ["ingest", *map(str, files), str(bad), "--db", str(db)])
    assert ingested.exit_code == 0, ingested.output
    assert "4 of 4 files imported" in ingested.stdout

    rows = {}
    for month, path in zip(MONTHS, files, strict=True):
        with gzip.open(path, "rt", newline="") as handle:
            rows[month] = sum(1 for _ in csv.reader(handle)) - 1
    return db, {"rows": rows, "bad": bad}


def test_cli_help(runner: CliRunner):
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("ingest", "coverage", "quarantine", "counts", "areas"):
        assert command in result.stdout


def test_cli_coverage_gaps(runner: CliRunner, cli_db):
    db, _ = cli_db
    result = runner.invoke(app, ["coverage", "--gaps", "--format", "csv", "--db", str(db)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(r["source_kind"], r["month"], r["covered"], r["rows"]) for r in rows] == [
        ("street", "2022-01", "false", "")
    ]
    table = runner.invoke(app, ["coverage", "--gaps", "--db", str(db)])
    assert table.exit_code == 0
    assert "gap" in table.stdout and "2022-01" in table.stdout


def test_cli_coverage_json(runner: CliRunner, cli_db):
    db, info = cli_db
    result = runner.invoke(app, ["coverage", "--format", "json", "--db", str(db)])
    assert result.exit_code == 0
    rows = {r["month"]: r for r in json.loads(result.stdout)}
    assert sorted(rows) == ["2021-10", "2021-11", "2021-12", "2022-01", "2022-02"]
    for month, n in info["rows"].items():
        assert rows[month]["rows"] == n and rows[month]["covered"] is True
    assert rows["2022-01"]["covered"] is False and rows["2022-01"]["rows"] is None


def test_cli_quarantine_csv(runner: CliRunner, cli_db):
    db, info = cli_db
    result = runner.invoke(app, ["quarantine", "--format", "csv", "--db", str(db)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 1
    (row,) = rows
    assert row["source_file"] == str(info["bad"])
    assert row["line"] == "3"
    assert "bad month '2021-13'" in row["reason"]
    assert "2021-13" in row["raw_text"]


def test_cli_counts_json(runner: CliRunner, cli_db):
    db, info = cli_db
    result = runner.invoke(
        app,
        [
            "counts",
            "--by",
            "ward",
            "--from",
            "2021-01",
            "--to",
            "2021-12",
            "--format",
            "json",
            "--db",
            str(db),
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["area_set"] == "ward"
    assert data["gap_months"] == [f"2021-{m:02d}" for m in range(1, 10)]  # 10, 11, 12 held
    assert data["months_covered"] == 3
    assert len(data["rows"]) == 178
    assert set(data["rows"][0]) >= {"area_code", "area_name", "records"}
    # 2021-10 is the crafted file: 2 of its 3 rows are valid.
    assert (
        sum(r["records"] for r in data["rows"])
        == info["rows"]["2021-11"] + info["rows"]["2021-12"] + 2
    )


def test_cli_counts_csv_by_month(runner: CliRunner, cli_db):
    db, info = cli_db
    result = runner.invoke(
        app,
        [
            "counts",
            "--by",
            "ward",
            "--from",
            "2021-11",
            "--to",
            "2022-02",
            "--by-month",
            "--format",
            "csv",
            "--db",
            str(db),
        ],
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 178
    assert all(r["2022-01"] == "" for r in rows)  # gap: empty, not 0
    for month in MONTHS:
        assert sum(int(r[month]) for r in rows) == info["rows"][month]


def test_cli_unknown_area_set(runner: CliRunner, cli_db, monkeypatch, capsys):
    db, _ = cli_db
    args = ["counts", "--by", "parish", "--from", "2021-01", "--to", "2021-12", "--db", str(db)]
    result = runner.invoke(app, args)
    assert result.exit_code != 0
    assert "no area set called 'parish'" in str(result.exception)
    assert "ward" in str(result.exception)  # says which sets exist

    # The installed entry point turns the error into a message and exit code 3 (not found).
    monkeypatch.setattr(sys, "argv", ["placeharm", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 3
    err = capsys.readouterr().err
    assert "no area set called 'parish'" in err
    assert "areas import" in err


def test_cli_bad_month_argument(runner: CliRunner, cli_db, monkeypatch, capsys):
    db, _ = cli_db
    monkeypatch.setattr(sys, "argv", ["placeharm", "counts", "--from", "2021-13", "--db", str(db)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    assert "2021-13" in capsys.readouterr().err


def test_cli_ingest_refused_file_exits_non_zero(runner: CliRunner, tmp_path: Path, db_at):
    bad = tmp_path / "not-police.csv"
    bad.write_text("a,b\n1,2\n")
    result = runner.invoke(app, ["ingest", str(bad), "--db", db_at("x")])
    assert result.exit_code == 2
    assert "refused" in result.output


def test_cli_areas_parents(runner: CliRunner, db_at, shared_data: Path):
    db = db_at("h")
    ref = shared_data / "reference"
    lad = ["--from-set", "lsoa", "--from-column", "lsoa11_code", "--to-set", "lad"]
    lad += ["--to-column", "ltla21_code", "--to-name-column", "ltla21_name"]
    force = ["--from-set", "lad", "--from-column", "ltla24_code", "--to-set", "force"]
    force += ["--to-column", "pfa24_code", "--to-name-column", "pfa24_name"]
    steps = [
        ["areas", "lookup", str(ref / "lookup_lsoa11_ltla21.csv"), *lad],
        ["areas", "lookup", str(ref / "lookup_ltla24_csp24_pfa24.csv"), *force],
    ]
    for step in steps:
        result = runner.invoke(app, [*step, "--db", db])
        assert result.exit_code == 0, result.output
    result = runner.invoke(
        app, ["areas", "parents", "lsoa", "E01008288", "--format", "json", "--db", db]
    )
    assert result.exit_code == 0, result.output
    chain = {r["area_set"]: (r["area_code"], r["area_name"]) for r in json.loads(result.stdout)}
    assert chain == {
        "lad": ("E08000021", "Newcastle upon Tyne"),
        "force": ("E23000007", "Northumbria"),
    }
