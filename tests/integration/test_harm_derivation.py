"""The shipped harm indices against the public reference files, and force CSS for 2017/18.

The hand calculation here uses only the csv module, so it does not share code with
placeharm.harm.derive: w(type) = sum(offences x code weight) / sum(offences), over the
2017/18 rows whose code has a CSS weight.
"""

from __future__ import annotations

import csv
import os
from collections import defaultdict
from pathlib import Path

import polars as pl
import pytest

from placeharm.harm import builtin_index, force_scopes, load_index
from placeharm.harm.derive import DATA_DIR, derive
from placeharm.services import harm

ARTEFACTS = Path(os.environ.get("PLACEHARM_TEST_ARTEFACTS", "test-artefacts"))


@pytest.fixture(scope="module")
def reference(shared_data: Path) -> Path:
    return shared_data / "reference"


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _hand_code_weights(reference: Path) -> dict[str, float]:
    """code_original -> weight; the 2017/18 table's codes are code_original spellings."""
    return {r["code_original"]: float(r["weight"]) for r in _csv(reference / "severity_codes.csv")}


def _hand_type_weights(reference: Path, force: str | None) -> dict[str, tuple[float, int]]:
    weights = _hand_code_weights(reference)
    weighted: dict[str, float] = defaultdict(float)
    offences: dict[str, int] = defaultdict(int)
    for row in _csv(reference / "prc-pfa-201718_new.csv"):
        if force and row["Force_Name"] != force:
            continue
        code = row["Offence_Code"]
        if code not in weights:
            continue
        crime_type = row["Policeuk_Cat"].lower()
        n = int(row["Number_of_Offences"])
        weighted[crime_type] += n * weights[code]
        offences[crime_type] += n
    return {t: (weighted[t] / offences[t], offences[t]) for t in offences}


@pytest.mark.parametrize("force", [None, "Northumbria", "North Yorkshire", "Metropolitan Police"])
def test_type_weights_equal_a_hand_calculation(reference: Path, force: str | None):
    expected = _hand_type_weights(reference, force)
    index = builtin_index("css", force)
    assert len(expected) == 13  # every police.uk crime type except anti-social behaviour
    for crime_type, (weight, _) in expected.items():
        shipped = next(v for k, v in index.type_weights.items() if k.lower() == crime_type)
        assert shipped == pytest.approx(weight, rel=1e-9), crime_type
    assert index.type_weights["Anti-social behaviour"] == 0.0


def test_hand_spot_checks(reference: Path):
    national = builtin_index("css")
    codes = _hand_code_weights(reference)
    # Bicycle theft is one offence code (44): its weight is that code's
    assert national.type_weights["Bicycle theft"] == pytest.approx(codes["44"])
    # Robbery: 34A (business) and 34B (personal) weighted by their 2017/18 counts
    rows = [
        r for r in _csv(reference / "prc-pfa-201718_new.csv") if r["Offence_Code"] in ("34A", "34B")
    ]
    n = {
        c: sum(int(r["Number_of_Offences"]) for r in rows if r["Offence_Code"] == c)
        for c in ("34A", "34B")
    }
    robbery = (n["34A"] * codes["34A"] + n["34B"] * codes["34B"]) / (n["34A"] + n["34B"])
    assert national.type_weights["Robbery"] == pytest.approx(robbery)
    # code spellings: the ONS grouping code and the recorded code carry the same weight
    assert national.code_weights["28C"] == national.code_weights["28A"] == codes["28A"]
    assert national.code_weights["1"] == national.code_weights["4.10"] == codes["1"]


def test_cchi_type_weights_follow_subgroups(reference: Path):
    cchi = builtin_index("cchi")
    assert cchi.secondary
    days = {
        r["prc_subgroup"]: float(r["cchi_days"])
        for r in _csv(reference / "cchi_weights_derived.csv")
    }
    assert cchi.type_weights["Shoplifting"] == days["Shoplifting"]
    assert cchi.type_weights["Robbery"] == days["Robbery of personal property"]
    assert cchi.code_weights["92A"] == days["Trafficking of drugs"]  # 92A: trafficking
    assert cchi.type_weights["Vehicle crime"] == days["Vehicle offences"]  # crosswalked


def test_shipped_files_equal_a_fresh_derivation(reference: Path):
    codes, types = derive(reference)
    shipped_codes = pl.read_csv(
        DATA_DIR / "code_weights.csv", schema_overrides={"offence_code": pl.String}
    )
    shipped_types = pl.read_csv(DATA_DIR / "type_weights.csv")
    assert (
        shipped_codes.select("index", "offence_code").rows()
        == codes.select("index", "offence_code").rows()
    )
    assert shipped_codes["weight"].to_list() == pytest.approx(codes["weight"].to_list(), rel=1e-12)
    assert (
        shipped_types.select("index", "scope", "crime_type", "offences").rows()
        == types.select("index", "scope", "crime_type", "offences").rows()
    )
    assert shipped_types["weight"].to_list() == pytest.approx(types["weight"].to_list(), rel=1e-9)
    assert len(force_scopes("css")) == 44  # 43 territorial forces and British Transport Police


def test_force_css_2017_18(shared_data: Path, reference: Path):
    """CSS of every force from the Home Office 2017/18 counts, written to a file."""
    result = harm.css(
        reference / "prc-pfa-201718_new.csv",
        shared_data / "boundaries" / "pfa_population_MYE2018.csv",
        load_index("css"),
    )
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    out = ARTEFACTS / "css_forces_2017_18.csv"
    result.table.write_csv(out)
    table = {r["area"]: r for r in result.table.to_dicts()}
    weights = _hand_code_weights(reference)
    populations = {
        r["name"]: float(r["MYE2018"])
        for r in _csv(shared_data / "boundaries" / "pfa_population_MYE2018.csv")
    }
    for force, pop_name in (
        ("Northumbria", "Northumbria"),
        ("North Yorkshire", "North Yorkshire"),
        ("London, City of", "City of London"),
    ):
        total = sum(
            int(r["Number_of_Offences"]) * weights[r["Offence_Code"]]
            for r in _csv(reference / "prc-pfa-201718_new.csv")
            if r["Force_Name"] == force and r["Offence_Code"] in weights
        )
        assert table[force]["css"] == pytest.approx(total / populations[pop_name], rel=1e-9)
    # 43 territorial forces get a score; the fraud bodies and BTP have no resident population
    assert sum(1 for r in table.values() if r["css"] is not None) == 43
    assert table["Action Fraud"]["css"] is None and table["Action Fraud"]["weighted_offences"] == 0
    assert result.meta["codes_without_weight"].keys() == {"AF", "CIFAS", "FFA UK", "UK Finance"}
    assert out.read_text().count("\n") == 49
