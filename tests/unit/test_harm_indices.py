"""Harm index resolution, weight precedence and custom index files."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from placeharm.errors import DataError
from placeharm.harm import (
    UnknownIndex,
    builtin_index,
    custom_index,
    list_indices,
    load_index,
    unknown_index_message,
    weigh,
)


def _frame(rows: list[tuple[str, str | None]]) -> pl.DataFrame:
    return pl.DataFrame(
        rows, schema={"crime_type": pl.String, "offence_code": pl.String}, orient="row"
    ).with_columns(pl.lit(1).alias("records"))


def test_offence_code_wins_then_crime_type_then_none(tmp_path: Path):
    path = tmp_path / "w.yaml"
    path.write_text("offence_codes: {'92A': 50}\ncrime_types: {Drugs: 2}\n")
    weighed = weigh(
        _frame(
            [
                ("Drugs", "92A"),
                ("Drugs", "ZZZ"),
                ("Drugs", None),
                ("Robbery", "92A"),
                ("Robbery", None),
            ]
        ),
        custom_index(path),
    )
    assert weighed.select("weight", "weight_source").rows() == [
        (50.0, "offence code"),
        (2.0, "crime type"),
        (2.0, "crime type"),
        (50.0, "offence code"),  # the code decides even when the type has no weight
        (None, "none"),
    ]


def test_asb_is_zero_by_default_and_configurable():
    css = load_index("css")
    assert css.type_weights["Anti-social behaviour"] == 0.0
    assert load_index("css", asb_weight=3.5).type_weights["Anti-social behaviour"] == 3.5
    assert css.type_weights["Anti-social behaviour"] == 0.0  # the original is unchanged
    with pytest.raises(DataError, match="0 or more"):
        load_index("css", asb_weight=-1)


def test_index_specs():
    assert load_index(None).name == "css"
    north = load_index("css:Northumbria")
    assert north.name == "css:northumbria" and north.type_scope == "Northumbria"
    assert north.type_weights["Drugs"] != load_index("css").type_weights["Drugs"]
    assert load_index("cchi:north-yorkshire").type_scope == "North Yorkshire"
    assert load_index("CSS").code_weights == load_index("css").code_weights
    # every value that is not a valid choice gets one and the same refusal, naming the choices
    expected = unknown_index_message()
    assert "css:<force>" in expected and "northumbria" in expected
    for spec in ("css:Gotham", "severity", "missing/weights.csv", "css:", "x" * 500):
        with pytest.raises(UnknownIndex) as caught:
            load_index(spec)
        assert str(caught.value) == expected, spec
    assert set(list_indices()["name"]) == {"css", "cchi"}
    described = builtin_index("cchi").describe()
    assert described["secondary"] is True and "edition" in described


def test_custom_csv(tmp_path: Path):
    path = tmp_path / "local.csv"
    path.write_text("offence_code,crime_type,weight\n92A,,120\n,drugs,40\n,Burglary,300\n")
    index = custom_index(path)
    assert index.code_weights == {"92A": 120.0}
    assert index.type_weights == {"Anti-social behaviour": 0.0, "Drugs": 40.0, "Burglary": 300.0}
    assert index.name == "local" and "sha256" in index.edition
    path.write_text("offence_code,crime_type,weight\n92A,,120\n")
    assert "sha256" in custom_index(path).edition  # a changed file is a new edition


def test_custom_csv_errors_name_every_line(tmp_path: Path):
    path = tmp_path / "bad.csv"
    path.write_text(
        "offence_code,crime_type,weight\n92A,Drugs,1\n,Piracy,2\n,Drugs,lots\n,Drugs,-4\n"
        "8N,,1\n8N,,2\n"
    )
    with pytest.raises(DataError) as caught:
        custom_index(path)
    message = str(caught.value)
    for line, reason in (
        (2, "not both"),
        (3, "Piracy"),
        (4, "not a number"),
        (5, "0 or more"),
        (7, "appears twice"),
    ):
        assert f"bad.csv:{line}" in message and reason in message
    path.write_text("code,value\n1,2\n")
    with pytest.raises(DataError, match="must have a 'weight' column"):
        custom_index(path)


def test_custom_yaml_with_base(tmp_path: Path):
    path = tmp_path / "drugs.yaml"
    path.write_text(
        "name: drugs-focus\nedition: '2026-11'\nsource: tasking meeting\nbase: css\n"
        "crime_types: {Drugs: 500}\noffence_codes: {'92A': 900}\n"
    )
    index = custom_index(path)
    css = load_index("css")
    assert index.type_weights["Drugs"] == 500 and index.code_weights["92A"] == 900
    assert index.type_weights["Burglary"] == css.type_weights["Burglary"]
    assert index.code_weights["8N"] == css.code_weights["8N"]
    assert index.name == "drugs-focus" and index.edition.startswith("2026-11")
    path.write_text("base: nonsense\ncrime_types: {Drugs: x}\ncolour: red\n")
    with pytest.raises(DataError, match="unknown keys colour"):
        custom_index(path)
    path.write_text("base: nonsense\ncrime_types: {Drugs: x}\n")
    with pytest.raises(DataError, match="not a number") as caught:
        custom_index(path)
    assert "base must be a shipped index" in str(caught.value)
    path.write_text("crime_types: [1, 2\n")
    with pytest.raises(DataError, match="not valid YAML"):
        custom_index(path)
