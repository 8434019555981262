"""Harm weights pinned (issue 19, mutation testing): the shipped tables as the files hold them
(values copied by hand from harm/data/*.csv), national and force type weights, spec
resolution, re-weighting anti-social behaviour, precedence, and custom CSV refusals."""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl
import pytest

from placeharm.errors import DataError, NotFound
from placeharm.harm import indices
from placeharm.harm.indices import (
    UnknownIndex,
    builtin_index,
    canonical_spec,
    custom_index,
    load_index,
    weigh,
)


def test_the_shipped_css_index():
    css = builtin_index("css")
    assert css.name == "css"
    assert css.title == "ONS Crime Severity Score"
    assert css.edition.startswith("ONS CSS weights, circa 2020 edition (homicide 7,973.39)")
    assert css.source.startswith("ONS Crime Severity Score weights by Home Office offence code")
    assert css.unit == "weighted offences (days of custody implied by sentencing, roughly)"
    assert css.secondary is False
    assert css.type_scope == "national"
    assert len(css.code_weights) == 134
    assert css.code_weights["92A"] == 512.9573593857484
    assert css.code_weights["8N"] == 189.15388706397988
    assert len(css.type_weights) == 14
    assert css.type_weights["Drugs"] == 102.6005621634
    assert css.type_weights["Robbery"] == 799.6288702315
    assert css.type_weights["Anti-social behaviour"] == 0.0
    assert css.describe() == {
        "name": "css",
        "title": "ONS Crime Severity Score",
        "edition": css.edition,
        "source": css.source,
        "unit": css.unit,
        "secondary": False,
        "type_weights_from": "national",
        "asb_weight": 0.0,
    }


def test_the_shipped_cchi_index_and_force_weights():
    cchi = builtin_index("cchi")
    assert (cchi.secondary, cchi.type_scope, len(cchi.code_weights)) == (True, "national", 134)
    assert cchi.code_weights["92A"] == 5.0
    assert cchi.type_weights["Burglary"] == 247.2074146007
    north = builtin_index("css", "NORTHUMBRIA ")
    assert (north.name, north.type_scope) == ("css:northumbria", "Northumbria")
    assert north.type_weights["Drugs"] == 122.5000004582
    assert north.code_weights["92A"] == 512.9573593857484  # codes are national
    assert builtin_index("css", "avon-and-somerset").type_scope == "Avon and Somerset"
    with pytest.raises(NotFound) as none:
        builtin_index("severity")
    assert str(none.value) == "no harm index 'severity'; shipped: css, cchi"
    with pytest.raises(NotFound) as gotham:
        builtin_index("css", "Gotham")
    assert str(gotham.value).startswith(
        "no css type weights for force 'Gotham'; forces: avon-and-somerset, bedfordshire, "
    )


def test_spec_resolution():
    assert canonical_spec(None) == "css"
    assert canonical_spec(" CCHI ") == "cchi"
    assert canonical_spec("CSS:Northumbria") == "css:northumbria"
    assert canonical_spec("cchi:north yorkshire") == "cchi:north-yorkshire"
    mine = custom_index_from_text("drugs", "crime_type,weight\nDrugs,5\n")
    assert canonical_spec("Drugs", {"drugs": mine}) == "drugs"
    assert load_index("drugs", registered={"drugs": mine}) is mine
    assert load_index("drugs", 2.0, {"drugs": mine}).type_weights == {
        "Anti-social behaviour": 2.0,
        "Drugs": 5.0,
    }
    assert load_index("css", registered={"drugs": mine}).name == "css"
    for spec in ("drugs:x", "css:", "css:gotham", "c" * 81, "x"):
        with pytest.raises(UnknownIndex):
            canonical_spec(spec, {"drugs": mine, "x" * 81: mine})
    long_name = "d" * 80
    assert canonical_spec(long_name, {long_name: mine}) == long_name  # 80 is not too long
    with pytest.raises(UnknownIndex):
        canonical_spec("d" * 81, {"d" * 81: mine})
    assert load_index("css:northumbria").type_weights["Drugs"] == 122.5000004582


def custom_index_from_text(name: str, text: str):
    return indices.parse_index_file(f"{name}.csv", text.encode())


def test_anti_social_behaviour_reweighted():
    css = builtin_index("css")
    assert css.with_asb_weight(None) is css
    heavier = css.with_asb_weight(3)
    assert heavier.type_weights["Anti-social behaviour"] == 3.0
    assert isinstance(heavier.type_weights["Anti-social behaviour"], float)
    assert heavier.type_weights["Drugs"] == 102.6005621634
    assert heavier.describe()["asb_weight"] == 3.0
    assert css.type_weights["Anti-social behaviour"] == 0.0
    assert css.with_asb_weight(0).type_weights["Anti-social behaviour"] == 0.0
    for bad, message in (
        (-0.5, "--asb-weight: weight -0.5 must be a finite number, 0 or more"),
        (math.inf, "--asb-weight: weight inf must be a finite number, 0 or more"),
        (math.nan, "--asb-weight: weight nan must be a finite number, 0 or more"),
        ("lots", "--asb-weight: weight 'lots' is not a number"),
    ):
        with pytest.raises(DataError) as refused:
            css.with_asb_weight(bad)  # type: ignore[arg-type]
        assert str(refused.value) == message
    with pytest.raises(DataError, match="weight \\[1\\] is not a number"):
        indices._check_weight([1], "w")


def test_weigh_precedence_and_tables():
    index = custom_index_from_text(
        "w", "offence_code,crime_type,weight\n92A,,50\n,Drugs,2\n,Burglary,0\n"
    )
    frame = pl.DataFrame(
        {
            "crime_type": ["Drugs", "Drugs", "Robbery", "Burglary", "Robbery"],
            "offence_code": ["92A", "8N", "92A", None, None],
            "n": [1, 2, 3, 4, 5],
        }
    )
    weighed = weigh(frame, index)
    assert weighed.columns == ["crime_type", "offence_code", "n", "weight", "weight_source"]
    assert weighed.rows() == [
        ("Drugs", "92A", 1, 50.0, "offence code"),
        ("Drugs", "8N", 2, 2.0, "crime type"),
        ("Robbery", "92A", 3, 50.0, "offence code"),
        ("Burglary", None, 4, 0.0, "crime type"),  # a zero weight is a weight
        ("Robbery", None, 5, None, "none"),
    ]
    assert index.type_table().rows() == [
        ("Anti-social behaviour", 0.0),
        ("Burglary", 0.0),
        ("Drugs", 2.0),
    ]
    assert index.type_table().schema == {"crime_type": pl.String, "weight": pl.Float64}
    assert index.code_table().rows() == [("92A", 50.0)]
    assert index.code_table().schema == {"offence_code": pl.String, "weight": pl.Float64}


def test_custom_csv_refusals_word_for_word(tmp_path: Path):
    path = tmp_path / "bad.csv"
    path.write_text(
        "Offence_Code , Crime_Type,WEIGHT\n92A,Drugs,1\n,,3\n,Piracy,2\n,Drugs,lots\n"
        ",Drugs,-4\n8N,,1\n8N,,2\n, drugs ,0\n,Drugs,1\n"
    )
    with pytest.raises(DataError) as caught:
        custom_index(path)
    assert str(caught.value) == (
        "the harm index file has errors:\n"
        "  bad.csv:2: give an offence_code or a crime_type, not both or none\n"
        "  bad.csv:3: give an offence_code or a crime_type, not both or none\n"
        "  bad.csv:4: 'Piracy' is not a police.uk crime type; use one of: "
        + ", ".join(indices.CRIME_TYPES)
        + "\n"
        "  bad.csv:5: weight 'lots' is not a number\n"
        "  bad.csv:6: weight '-4' must be a finite number, 0 or more\n"
        "  bad.csv:8: '8N' appears twice\n"
        "  bad.csv:10: 'Drugs' appears twice"
    )
    path.write_text("code,value\n1,2\n")
    with pytest.raises(DataError) as header:
        custom_index(path)
    assert str(header.value) == (
        "bad.csv: the header must have a 'weight' column and an 'offence_code' or 'crime_type' "
        "column (found: code, value)"
    )
    path.write_text("weight\n1\n")
    with pytest.raises(DataError, match="column \\(found: weight\\)"):
        custom_index(path)
    path.write_text("")
    with pytest.raises(DataError, match="column \\(found: nothing\\)"):
        custom_index(path)
    path.write_text("crime_type,weight\n")
    with pytest.raises(DataError) as empty:
        custom_index(path)
    assert str(empty.value) == "bad.csv: no weights found"
    path.write_text("offence_code,weight\n 92a ,7.5\n")
    assert custom_index(path).code_weights == {"92a": 7.5}


def test_custom_csv_rows_with_more_fields_than_the_header(tmp_path: Path):
    path = tmp_path / "wide.csv"
    path.write_text("offence_code,weight\n92A,1,2,3\n8N,2\nBurglary,3,x\n")
    with pytest.raises(DataError) as caught:
        custom_index(path)
    assert str(caught.value) == (
        "the harm index file has errors:\n"
        "  wide.csv:2: 2 more field(s) than the header; put double quotes around a field that "
        "contains a comma\n"
        "  wide.csv:4: 1 more field(s) than the header; put double quotes around a field that "
        "contains a comma"
    )
    path.write_text('offence_code,weight\n"92A,1",2\n8N\n')
    with pytest.raises(DataError, match=r"wide\.csv:3: weight '' is not a number"):
        custom_index(path)
