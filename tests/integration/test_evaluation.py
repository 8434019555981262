"""CHB evaluation against a control and a buffer (issue 16) on a small hand-built store.

Six square wards A01..A06 in a row (0.01 degrees apart, about 640 m). CHB site S1 is a small
square (half-side 0.002 degrees) in the middle of A01; its 500 m buffer ring reaches into A02
but not A03. police.uk street files for 2021-01..2021-06 except 2021-04 (a gap). Burglaries:

    month       01  02  03  05  06
    site         10  10   4   6   6   (A01 centre)
    ring          5   5   6   5   5   (0.004 degrees east of the centre: in the ring, in A01)
    A03           3   3   3   3   3
    A04          11  10  10   9  11
    A05           8   8   8   8   8
    A06          40  40  40  40  40

Phases of S1: Clear 2021-03, Hold 2021-04 (the gap month), Build from 2021-05 (to 2021-06, the
last month held); S2, a second small site in A06, is cleared from 2021-01 (nothing before it).
Before S1: as long as its phases (4 months: 2020-11..2021-02) but data is held from 2021-01,
so 2021-01..2021-02. Intelligence only in 2021-05 and 2021-06: none before.
"""

from __future__ import annotations

import json
import math

import pytest

import placeharm
from placeharm.errors import DataError, NotFound
from placeharm.services import disruptions, evaluation, soc
from placeharm.services.areas import import_areas
from placeharm.services.ingest import ingest
from placeharm.soc.importer import import_entity
from placeharm.store.base import EVERYTHING

HEADER = (
    "Crime ID,Month,Reported by,Falls within,Longitude,Latitude,Location,LSOA code,LSOA name,"
    "Crime type,Last outcome category,Context"
)
LAT = 54.975
WARDS = {f"A{i:02d}": (-1.70 + 0.01 * i, LAT) for i in range(1, 7)}
CENTRE = WARDS["A01"]
RING = (CENTRE[0] + 0.004, LAT)
MONTHS = ("2021-01", "2021-02", "2021-03", "2021-05", "2021-06")
COUNTS = {
    CENTRE: (10, 10, 4, 6, 6),
    RING: (5, 5, 6, 5, 5),
    WARDS["A03"]: (3, 3, 3, 3, 3),
    WARDS["A04"]: (11, 10, 10, 9, 11),
    WARDS["A05"]: (8, 8, 8, 8, 8),
    WARDS["A06"]: (40, 40, 40, 40, 40),
}


# Referrals and groups: UCG members R1 (referred on 2021-04-10), C1 and C2, OCG member C3;
# groups G1 (UCG: R1, C1; a Pursue disruption on 2021-04-10), G2 (UCG: C2), G3 (OCG: C3).
# Crimes they are suspects in (at A03's centre), by month:
#     R1: 02, 03          C1: 02, 03, 05, 06     C2: 02, 03, 05     C3: 02, 03, 05 x3, 06 x2
LINKED = {
    "R1": ("2021-02", "2021-03"),
    "C1": ("2021-02", "2021-03", "2021-05", "2021-06"),
    "C2": ("2021-02", "2021-03", "2021-05"),
    "C3": ("2021-02", "2021-03", "2021-05", "2021-05", "2021-05", "2021-06", "2021-06"),
}
_A03 = WARDS["A03"]
_CRIMES = [
    (f"F{i}", nid, month)
    for i, (nid, month) in enumerate((n, m) for n, months in LINKED.items() for m in months)
]
PEOPLE = {
    "nominals": "nominal_id,surname,forename,ocg_member,priority_individual,pcg_member,"
    "ucg_member\nR1,Demoa,Xa,N,N,N,Y\nC1,Demob,Xb,N,N,N,Y\nC2,Democ,Xc,N,N,N,Y\n"
    "C3,Demod,Xd,Y,N,N,N\n",
    "groups": "group_id,name,group_type,ocg_band,status\nG1,Test UCG 1,UCG,,active\n"
    "G2,Test UCG 2,UCG,,active\nG3,Test OCG,OCG,2A,active\n",
    "memberships": "group_id,nominal_id,role\nG1,R1,member\nG1,C1,member\nG2,C2,member\n"
    "G3,C3,member\n",
    "force-crimes": "crime_ref,recorded_date,offence_code,firearms_discharged,"
    "cannabis_production,latitude,longitude\n"
    + "".join(f"{ref},{month}-12,92A,N,N,{_A03[1]},{_A03[0]}\n" for ref, _, month in _CRIMES),
    "nominal-crimes": "nominal_id,crime_ref,role\n"
    + "".join(f"{nid},{ref},suspect\n" for ref, nid, _ in _CRIMES),
    "disruptions": "disruption_id,disruption_date,four_p,disruption_type,target_group_id,"
    f"target_nominal_id,latitude,longitude\nD1,2021-04-10,Pursue,arrest,G1,,{_A03[1]},"
    f"{_A03[0]}\nD2,2021-04-10,Prevent,diversion referral,,R1,{_A03[1]},{_A03[0]}\n",
}


def _square(code: str, lon: float, lat: float, d: float = 0.005) -> dict:
    ring = [[lon - d, lat - d], [lon + d, lat - d], [lon + d, lat + d], [lon - d, lat + d]]
    return {
        "type": "Feature",
        "properties": {"code": code, "name": f"Area {code}"},
        "geometry": {"type": "Polygon", "coordinates": [[*ring, ring[0]]]},
    }


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, module_db_at):
    """A small store by hand, on the engine under test, shared by the module's tests (they
    only read it)."""
    tmp = tmp_path_factory.mktemp("evaluation")
    wards = tmp / "wards.geojson"
    wards.write_text(
        json.dumps(
            {"type": "FeatureCollection", "features": [_square(k, *v) for k, v in WARDS.items()]}
        )
    )
    sites = tmp / "chb.geojson"
    sites.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [_square("S1", *CENTRE, 0.002), _square("S2", *WARDS["A06"], 0.002)],
            }
        )
    )
    files = []
    for i, month in enumerate(MONTHS):
        rows = [HEADER]
        for (lon, lat), counts in COUNTS.items():
            rows += [
                f"c{month}{lon}{n},{month},T,T,{lon},{lat},On or near X,,,Burglary,,"
                for n in range(counts[i])
            ]
        path = tmp / f"{month}-test-street.csv"
        path.write_text("\n".join(rows) + "\n")
        files.append(path)
    db = placeharm.open_store(module_db_at("evaluation"))
    import_areas(db, wards, "ward", code_field="code", name_field="name")
    import_areas(db, sites, soc.CHB_SET, code_field="code", name_field="name")
    assert all(r.status == "ok" for r in ingest(db, files))
    soc_files = {
        "intelligence": "intel_id,reported_date,source_evaluation,intelligence_assessment,"
        f"handling_code,topics,latitude,longitude\nI1,2021-05-03,1,B,P,drug_supply,{LAT},"
        f"{CENTRE[0]}\nI2,2021-06-03,1,B,P,drug_supply,{LAT},{CENTRE[0]}\n",
        **PEOPLE,
        "chb-phases": "site_code,phase,start_date,end_date\n"
        "S1,Clear,2021-03-01,2021-03-31\nS1,Hold,2021-04-01,2021-04-30\nS1,Build,2021-05-01,\n"
        "S2,Clear,2021-01-01,\n",
    }
    for kind, text in soc_files.items():
        path = tmp / f"{kind}.csv"
        path.write_text(text)
        result = import_entity(db, kind, path)
        assert result.ok and not result.quarantined, (kind, result)
    yield db
    db.close()


def _rows(result: evaluation.Evaluation) -> dict[tuple[str, str], dict]:
    return {(r["period"], r["measure"]): r for r in result.table.to_dicts()}


def test_periods_and_offered_controls(store):
    result = evaluation.chb_evaluation(store, "S1")
    assert result.meta["before"] == "2021-01..2021-02"
    assert result.meta["phases"] == [
        {"phase": "Clear", "months": "2021-03..2021-03"},
        {"phase": "Hold", "months": "2021-04..2021-04"},
        {"phase": "Build", "months": "2021-05..2021-06"},
    ]
    # A01 (the site) and A02 (its buffer reaches it) cannot be controls; before-period crime:
    # site 20; A04 21, A05 16 (within a factor of 2: fewer than 3 months, so by level),
    # A03 6 and A06 80 (not within)
    assert result.meta["control"]["code"] == "A04"
    assert result.meta["buffer_control"]["code"] == "A05"
    assert result.meta["control"]["before_crimes"] == 21


def test_clear_by_hand_with_time_weights(store):
    row = _rows(evaluation.chb_evaluation(store, "S1"))[("Clear", "crimes")]
    # before 2 months, after 1: before counts scaled by 1/2 (and their variance by 1/4)
    assert (row["target_before"], row["target_after"]) == (20, 4)
    assert (row["control_before"], row["control_after"]) == (21, 10)
    assert (row["buffer_before"], row["buffer_after"]) == (10, 6)
    assert (row["buffer_control_before"], row["buffer_control_after"]) == (16, 8)
    assert (row["before_months"], row["after_months"]) == (2, 1)
    # dT = 4 - 10 = -6, dC = 10 - 10.5 = -0.5, dD = 6 - 5 = 1, dCD = 8 - 8 = 0
    assert row["wdd"] == pytest.approx(-4.5)
    # variance = (4 + 20/4) + (10 + 21/4) + (6 + 10/4) + (8 + 16/4) = 44.75
    assert row["se"] == pytest.approx(math.sqrt(44.75), abs=0.01)
    assert row["z"] == pytest.approx(-4.5 / math.sqrt(44.75), abs=0.001)
    assert row["p"] == pytest.approx(math.erfc(4.5 / math.sqrt(44.75) / math.sqrt(2)), abs=1e-4)


def test_build_by_hand_with_wdq(store):
    row = _rows(evaluation.chb_evaluation(store, "S1"))[("Build", "crimes")]
    # 2021-05..06 against 2021-01..02: T 20->12, C 21->20, D 10->10, CD 16->16
    assert row["wdd"] == pytest.approx(-8 + 1)
    assert row["se"] == pytest.approx(math.sqrt(20 + 12 + 21 + 20 + 10 + 10 + 16 + 16), abs=0.01)
    # WDQ = (10/20 - 10/21) / (12/20 - 20/21)
    assert row["wdq"] == pytest.approx((10 / 20 - 10 / 21) / (12 / 20 - 20 / 21), abs=1e-3)
    assert row["result"].startswith("no clear change")


def test_gap_month_and_empty_side_are_refused(store):
    rows = _rows(evaluation.chb_evaluation(store, "S1"))
    hold = rows[("Hold", "crimes")]  # 2021-04: no police.uk file
    assert hold["wdd"] is None and hold["target_before"] is None
    assert hold["refused"] == (
        "no comparison: no police.uk crime (not ASB) data in Hold (2021-04..2021-04)"
    )
    assert hold["gap_months"] == "2021-04"
    intel = rows[("Build", "intelligence")]  # intelligence held 2021-05..06 only
    assert intel["wdd"] is None
    assert intel["refused"].startswith(
        "no comparison: no intelligence reports data in the before period (2021-01..2021-02)"
    )


def test_controls_can_be_given_and_are_checked(store):
    result = evaluation.chb_evaluation(store, "S1", control="A06", buffer_control="A03")
    assert result.meta["control"] == {
        "code": "A06",
        "name": "Area A06",
        "chosen_by": "given",
        "correlation": None,
        "before_crimes": 80,
        "near_a_site": True,  # A06 holds the second CHB site, S2
    }
    assert result.meta["buffer_control"]["near_a_site"] is False  # A03 is away from both
    assert any(
        "Area A06, touches the site, its buffer ring or another CHB" in n for n in result.notes
    )
    row = _rows(result)[("Build", "crimes")]
    assert (row["control_before"], row["control_after"]) == (80, 80)
    # a control far from the site in level is named in a note
    assert any("Area A06, had 80 police.uk crimes" in n for n in result.notes)
    with pytest.raises(NotFound):
        evaluation.chb_evaluation(store, "S1", control="NOPE")
    with pytest.raises(DataError, match="need different control areas"):
        evaluation.chb_evaluation(store, "S1", control="A03", buffer_control="A03")
    for width in (float("inf"), float("nan"), 0.0, 5001.0):
        with pytest.raises(DataError, match="the buffer must be more than 0"):
            evaluation.chb_evaluation(store, "S1", buffer_m=width)


def test_the_buffer_width_is_in_metres(store):
    # 100 m from the site's edge does not reach the ring's points (about 128 m out)
    narrow = _rows(evaluation.chb_evaluation(store, "S1", buffer_m=100))
    assert narrow[("Build", "crimes")]["buffer_before"] == 0
    wide = _rows(evaluation.chb_evaluation(store, "S1", buffer_m=200))
    assert wide[("Build", "crimes")]["buffer_before"] == 10


def test_referral_against_matched_nominals_by_hand(store):
    impact = disruptions.disruption_impact(store, months=2)
    rows = {r["measure_label"]: r for r in impact.tables["referrals"].to_dicts()}
    crimes = rows["linked crimes"]
    # 2021-04-10: before 2021-02..03, after 2021-05..06. R1 2 -> 0. Matched: UCG members
    # never referred with R1's 2 crimes before: C1 (2 -> 2) and C2 (2 -> 1); C3 is OCG
    assert crimes["disruption_id"] == "D2" and crimes["kind"] == "UCG"
    assert (crimes["before"], crimes["after"]) == ("2021-02..2021-03", "2021-05..2021-06")
    assert crimes["comparison_units"] == 2
    assert (crimes["treated_before"], crimes["treated_after"]) == (2, 0)
    assert (crimes["comparison_mean_before"], crimes["comparison_mean_after"]) == (2, 1.5)
    # WDD = (0 - 2) - (1.5 - 2) = -1.5; variance = 2 + 0 + (4 + 3) / 2^2 = 3.75
    assert crimes["wdd"] == pytest.approx(-1.5)
    assert crimes["se"] == pytest.approx(math.sqrt(3.75), abs=0.01)
    assert "nominal_id" not in impact.tables["referrals"].columns  # names no one
    # intelligence is held 2021-05..06 only: no comparison before
    assert rows["intelligence naming them"]["refused"].startswith("no intelligence naming them")


def test_group_against_undisrupted_groups_by_hand(store):
    impact = disruptions.disruption_impact(store, months=2)
    rows = {r["measure_label"]: r for r in impact.tables["groups"].to_dicts()}
    crimes = rows["linked crimes"]
    # G1 (R1 + C1): 4 -> 2. Undisrupted G2 (2 -> 1) and G3 (2 -> 5): mean 2 -> 3
    assert (crimes["group_id"], crimes["first_disruption"]) == ("G1", "2021-04-10")
    assert (crimes["treated_before"], crimes["treated_after"]) == (4, 2)
    assert (crimes["comparison_mean_before"], crimes["comparison_mean_after"]) == (2, 3)
    # WDD = (2 - 4) - (3 - 2) = -3; variance = 4 + 2 + (2 + 1 + 2 + 5) / 2^2 = 8.5
    assert crimes["wdd"] == pytest.approx(-3)
    assert crimes["se"] == pytest.approx(math.sqrt(8.5), abs=0.01)
    by_4p = {r["four_p"]: r for r in impact.tables["by_four_p"].to_dicts()}
    assert set(by_4p) == {"Pursue", "Prevent"}
    assert all(r["events"] == 1 for r in impact.tables["by_four_p"].to_dicts())
    assert impact.meta["referrals"] == 1 and impact.meta["disruptions"] == 2


def test_no_before_period_is_refused_with_the_reason(store):
    with pytest.raises(DataError, match=r"no police.uk data before Clear starts \(2021-01\)"):
        evaluation.chb_evaluation(store, "S2")
    section, table = evaluation.chb_section(store, "S2", EVERYTHING)
    assert section["available"] is False and "before Clear starts" in section["reason"]
    assert table.is_empty()


def test_wdd_calculator_command():
    from typer.testing import CliRunner

    from placeharm.cli.main import app

    runner = CliRunner()
    args = ["evaluate", "wdd", "--target", "207", "110", "--control", "308", "318"]
    args += ["--buffer", "178", "157", "--buffer-control", "150", "140", "--format", "json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    # Wheeler & Ratcliffe 2018's example: WDD -118, SE sqrt(1568), z -2.98
    assert body["wdd"] == -118 and body["se"] == pytest.approx(math.sqrt(1568))
    assert round(body["z"], 2) == -2.98 and body["p"] < 0.01
    # WDQ with the target's control: (157/318 - 178/308) / (110/318 - 207/308)
    assert body["wdq"] == pytest.approx((157 / 318 - 178 / 308) / (110 / 318 - 207 / 308))
    assert body["wdq_reading"] == "diffusion of benefit to the buffer"
    text = runner.invoke(app, ["evaluate", "wdd", "--target", "80", "20", "--control", "100", "50"])
    assert text.exit_code == 0
    assert "wdd: -10.0" in text.stdout and "no clear change beyond the control" in text.stdout
