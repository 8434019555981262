"""Outcome rates (issue 15) on a hand-built store, and the demo's sector set.

Two square wards W1 and W2. police.uk street files for 2021-01, 2021-02 and 2021-04 (2021-03
is a gap); an outcomes file for 2021-02 only. W1, 2021-01: crimes C1..C4 (C1 "Under
investigation" in the street file, then "Suspect charged" in the 2021-02 outcomes file; C2
"Offender given a caution"; C3 "Investigation complete; no suspect identified"; C4 "Court
result unavailable", a court result after a charge) and one anti-social behaviour report
(no Crime ID: no outcome). W2, 2021-02: C5 "Unable to prosecute suspect". 2021-04: C6 in W1,
recorded after the last outcomes file held, so its month is a gap.

By hand: W1 2021-01: 4 crimes, charged C1 and C4 = 2, rate 50.0% (a small count: under 10).
Force 2021-01..2021-02: 5 crimes, 2 charged, 40.0%. 2021-03 (no street file) and 2021-04
(after the last outcomes file) are gaps, never 0.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from placeharm.services import outcomes
from placeharm.services.areas import import_areas
from placeharm.services.demo import demo_data_dir
from placeharm.services.ingest import ingest
from placeharm.services.sectors import Ward, demo_sectors, group_wards
from placeharm.store.duckdb import DuckDBStore

STREET = (
    "Crime ID,Month,Reported by,Falls within,Longitude,Latitude,Location,LSOA code,LSOA name,"
    "Crime type,Last outcome category,Context\n"
)
OUTCOMES = (
    "Crime ID,Month,Reported by,Falls within,Longitude,Latitude,Location,LSOA code,LSOA name,"
    "Outcome type\n"
)
W1, W2 = (-1.60, 54.97), (-1.58, 54.97)


def _square(code: str, lon: float, lat: float) -> dict:
    d = 0.005
    ring = [[lon - d, lat - d], [lon + d, lat - d], [lon + d, lat + d], [lon - d, lat + d]]
    return {
        "type": "Feature",
        "properties": {"code": code, "name": f"Ward {code}"},
        "geometry": {"type": "Polygon", "coordinates": [[*ring, ring[0]]]},
    }


def _row(cid: str, month: str, at: tuple[float, float], ctype: str, last: str) -> str:
    return (
        f"{cid},{month},Northumbria Police,Northumbria Police,{at[0]},{at[1]},"
        f"On or near X,E01000001,X 001A,{ctype},{last},\n"
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, module_store_at):
    root = tmp_path_factory.mktemp("outcomes")
    wards = root / "wards.geojson"
    wards.write_text(
        json.dumps(
            {"type": "FeatureCollection", "features": [_square("W1", *W1), _square("W2", *W2)]}
        )
    )
    files = root / "policeuk"
    files.mkdir()
    (files / "2021-01-northumbria-street.csv").write_text(
        STREET
        + _row("C1", "2021-01", W1, "Burglary", "Under investigation")
        + _row("C2", "2021-01", W1, "Shoplifting", "Offender given a caution")
        + _row("C3", "2021-01", W1, "Burglary", "Investigation complete; no suspect identified")
        + _row("C4", "2021-01", W1, "Drugs", "Court result unavailable")
        + _row("", "2021-01", W1, "Anti-social behaviour", "")
    )
    (files / "2021-02-northumbria-street.csv").write_text(
        STREET + _row("C5", "2021-02", W2, "Burglary", "Unable to prosecute suspect")
    )
    (files / "2021-04-northumbria-street.csv").write_text(
        STREET + _row("C6", "2021-04", W1, "Burglary", "Suspect charged")
    )
    (files / "2021-02-northumbria-outcomes.csv").write_text(
        OUTCOMES + "C1,2021-02,Northumbria Police,Northumbria Police,-1.60,54.97,On or near X,"
        "E01000001,X 001A,Suspect charged\n"
    )
    s = module_store_at("o")
    import_areas(s, wards, "ward", "code", "name")
    ingest(s, [files], threads=1)
    yield s
    s.close()


def test_groups_are_stated_and_total() -> None:
    assert outcomes.group_of("Suspect charged") == "charged"
    assert outcomes.group_of("Court result unavailable") == "charged"
    assert outcomes.group_of("Offender given a caution") == "out_of_court"
    assert outcomes.group_of("Unable to prosecute suspect") == "not_proceeded"
    assert outcomes.group_of("Investigation complete; no suspect identified") == "no_suspect"
    assert outcomes.group_of("Under investigation") == "open"
    assert outcomes.group_of("Something new") == "other"
    assert outcomes.group_of(None) == "none"
    assert set(outcomes.OUTCOME_GROUPS.values()) <= set(outcomes.GROUP_LABELS)


def test_area_rates_by_hand(store: DuckDBStore) -> None:
    got = outcomes.outcome_rates(store, "ward", dt.date(2021, 1, 1), dt.date(2021, 4, 1), "W1")
    months = {m["month"]: m for m in got["police_uk"]["months"]}
    jan = months["2021-01"]
    assert (jan["crimes"], jan["charged"], jan["charge_rate_pct"]) == (4, 2, 50.0)
    assert jan["small_count"] is True
    assert months["2021-02"]["crimes"] == 0 and months["2021-02"]["charge_rate_pct"] is None
    for gap in ("2021-03", "2021-04"):  # no street file; after the last outcomes file
        assert months[gap]["gap"] is True
        assert months[gap]["crimes"] is None and months[gap]["charge_rate_pct"] is None
    assert got["gap_months"] == ["2021-03", "2021-04"]
    groups = {g["group"]: g["crimes"] for g in got["police_uk"]["groups"]}
    assert groups == {
        "charged": 2,
        "out_of_court": 1,
        "not_proceeded": 0,
        "no_suspect": 1,
        "open": 0,
        "other": 0,
        "none": 0,
    }


def test_force_rates_by_hand(store: DuckDBStore) -> None:
    got = outcomes.outcome_rates(store, "ward", dt.date(2021, 1, 1), dt.date(2021, 2, 1))
    p = got["police_uk"]
    assert (p["crimes"], p["charged"], p["charge_rate_pct"]) == (5, 2, 40.0)
    assert got["gap_months"] == []
    assert got["soc"] is None  # no SOC records held


def test_demo_sectors_hold_every_ward_once() -> None:
    ward_file = demo_data_dir() / "boundaries" / "northumbria_ward2013.geojson.gz"
    sectors, outlines = demo_sectors(ward_file)
    members = [c for s in sectors for c in s.ward_codes]
    assert len(members) == len(set(members)) == 177  # every demo ward in exactly one sector
    assert len({s.code for s in sectors}) == len(sectors) == len(outlines)
    assert len({s.name for s in sectors}) == len(sectors)  # names are distinct
    for s in sectors:  # a sector never crosses a local authority
        assert s.code.startswith(s.lad_code)
    again, _ = demo_sectors(ward_file)
    assert again == sectors  # deterministic


def test_grouping_rule_by_hand() -> None:
    # six wards in a row in one authority, three per sector: k = round(6 / 3) = 2
    wards = [Ward(f"W{i}", f"Ward {i}", "L1", "Town", float(i * 1000), 0.0) for i in range(6)]
    sectors = group_wards(wards, per_sector=3)
    assert [s.ward_codes for s in sectors] == [("W0", "W1", "W2"), ("W3", "W4", "W5")]
    assert [s.name for s in sectors] == ["Town West", "Town East"]
    assert [s.code for s in sectors] == ["L1S01", "L1S02"]
