"""SOC import and the SOC primary harm score on a small hand-built dataset.

Two square areas A and B; a hand index (92A = 10, 8N = 5, 10B = 3) so the shipped measures
weigh: crimes by their code, OCG members and deaths 10 (92A), UCG/PCG members 5 (8N),
firearms intelligence 3 (10B). Expected figures are worked out in `test_soc_score_by_hand`.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from placeharm.errors import DataError
from placeharm.harm import custom_index
from placeharm.services import soc
from placeharm.services.areas import import_areas
from placeharm.soc.importer import import_entity, load_mapping
from shapes import square

A, B = (-1.605, 54.975), (-1.595, 54.975)
FILES = {
    "groups": "group_id,name,group_type,ocg_band,status\nG1,Test OCG,OCG,2A,active\n"
    "G2,Test PCG,pcg,,active\n",
    "nominals": "nominal_id,surname,forename,ocg_member,priority_individual,pcg_member,"
    "ucg_member\nN1,Demoa,Xa,Y,Y,N,N\nN2,Demob,Xb,Y,N,N,N\nN3,Democ,Xc,N,N,Y,N\n"
    "N4,Demod,Xd,N,N,N,Y\nN5,Demoe,Xe,N,N,N,N\n",
    "memberships": "group_id,nominal_id,role\nG1,N1,principal\nG1,N2,member\nG2,N3,member\n",
    "addresses": "nominal_id,address_id,link_type,latitude,longitude\n"
    f"N1,AD1,home,{A[1]},{A[0]}\nN2,AD2,home,{B[1]},{B[0]}\nN3,AD3,home,{A[1]},{A[0]}\n"
    f"N4,AD4,home,{A[1]},{A[0]}\nN5,AD5,home,{B[1]},{B[0]}\n",
    "force-crimes": "crime_ref,recorded_date,offence_code,firearms_discharged,"
    "cannabis_production,latitude,longitude\n"
    f"C1,2021-03-02,92A,N,N,{A[1]},{A[0]}\nC2,2021-03-05,8N,Y,N,{A[1]},{A[0]}\n"
    f"C3,2021-03-09,92A,N,Y,{B[1]},{B[0]}\nC4,2021-03-09,8N,N,N,{B[1]},{B[0]}\n"
    f"C5,2020-12-01,92A,N,N,{A[1]},{A[0]}\n",
    "nominal-crimes": "nominal_id,crime_ref,role\nN1,C1,suspect\nN3,C2,offender\n"
    "N5,C4,victim\nN1,C5,suspect\n",
    "intelligence": "intel_id,reported_date,source_evaluation,intelligence_assessment,"
    f"handling_code,topics,latitude,longitude\nI1,2021-03-01,1,B,P,firearms,{A[1]},{A[0]}\n"
    f"I2,2021-03-01,2,C,P,drug_supply,{B[1]},{B[0]}\n"
    f"I3,2021-04-01,2,B,C,firearms;drug_supply,{B[1]},{B[0]}\n",
    "partner-events": "event_id,event_date,partner,event_type,latitude,longitude\n"
    f"E1,2021-02-10,coroner,drug_related_death,{B[1]},{B[0]}\n"
    f"E2,2021-02-11,crimestoppers,crimestoppers_report,{A[1]},{A[0]}\n",
}
INDEX = "offence_codes: {'92A': 10, '8N': 5, '10B': 3}\ncrime_types: {Drugs: 1}\n"


@pytest.fixture
def hand(tmp_path: Path, store_at):
    areas = tmp_path / "areas.geojson"
    areas.write_text(
        json.dumps({"type": "FeatureCollection", "features": [square("A", *A), square("B", *B)]})
    )
    store = store_at("soc")
    import_areas(store, areas, "patch", code_field="code", name_field="name")
    results = {}
    for kind in soc.IMPORT_ORDER:
        if kind in FILES:
            path = tmp_path / f"{kind}.csv"
            path.write_text(FILES[kind])
            results[kind] = import_entity(store, kind, path)
    index = tmp_path / "index.yaml"
    index.write_text(INDEX)
    yield store, custom_index(index), results, tmp_path
    store.close()


def test_every_row_is_accounted_for(hand):
    _, _, results, _ = hand
    for kind, result in results.items():
        assert result.ok, (kind, result)
        assert result.inserted == FILES[kind].count("\n") - 1
    assert results["force-crimes"].outside_areas == 0


def test_soc_score_by_hand(hand):
    store, index, _, _ = hand
    result = soc.soc_rank(store, "patch", dt.date(2021, 1, 1), dt.date(2021, 6, 1), index)
    rows = {r["area_code"]: r for r in result.table.to_dicts()}
    a, b = rows["A"], rows["B"]
    # A: C1 (OCG crime, drug supply: 10 each), C2 (PCG crime, firearms discharge: 5 each);
    #    N1 OCG member/PI (10); N3 PCG + N4 UCG (2 x 5); I1 firearms intel (3). C5 is in 2020.
    assert (a["ocg_crimes"], a["ocg_crimes_harm"]) == (1, 10.0)
    assert (a["pcg_crimes"], a["pcg_crimes_harm"]) == (1, 5.0)
    assert (a["drug_supply"], a["cannabis_farms"], a["firearms_discharges"]) == (1, 0, 1)
    assert (a["ocg_members_pis"], a["ocg_members_pis_harm"]) == (1, 10.0)
    assert (a["ucg_pcg_members"], a["ucg_pcg_members_harm"]) == (2, 10.0)
    assert (a["firearms_intelligence"], a["drug_related_deaths"]) == (1, 0)
    assert a["soc_harm"] == 10 + 5 + 10 + 0 + 5 + 10 + 10 + 0 + 3
    # B: C3 (drug supply and cannabis farm: 10 each), C4 links a victim only (not counted);
    #    N2 OCG member (10); E1 drug-related death (10); I3 firearms intel (3)
    assert (b["ocg_crimes"], b["drug_supply"], b["cannabis_farms"]) == (0, 1, 1)
    assert (b["ocg_members_pis"], b["drug_related_deaths"], b["firearms_intelligence"]) == (
        1,
        1,
        1,
    )
    assert b["soc_harm"] == 10 + 10 + 10 + 10 + 3
    assert (a["rank"], b["rank"]) == (1, 2)
    # previous period 2020-07..2020-12: the same residents (20 in A, 10 in B) and C5, an OCG
    # crime and drug supply offence in A in 2020-12 (10 + 10)
    assert (a["previous_soc_harm"], b["previous_soc_harm"]) == (40.0, 10.0)
    assert a["change"] == 53 - 40
    assert a["harm_share"] == pytest.approx(53 / 96)
    measures = {m["id"]: m for m in result.meta["measures"]}
    assert measures["ucg_pcg_members"]["weight_value"] == 5.0
    assert "rationale" in measures["ocg_members_pis"]


def test_reimport_is_idempotent_and_updates_keep_history(hand):
    store, _, _, tmp = hand
    path = tmp / "force-crimes.csv"
    again = import_entity(store, "force-crimes", path)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 5)
    path.write_text(FILES["force-crimes"].replace("C3,2021-03-09,92A,N,Y", "C3,2021-03-09,8N,N,Y"))
    revised = import_entity(store, "force-crimes", path)
    assert (revised.inserted, revised.updated, revised.unchanged) == (0, 1, 4)
    history = store.soc_history("force-crimes")
    assert history["entity_key"].to_list() == ["C3"]
    assert json.loads(history["previous"][0])["offence_code"] == "92A"
    assert history["source_file"][0] == str(path)
    crimes = store.soc_frame("soc_force_crimes")
    assert crimes.filter(crimes["crime_ref"] == "C3")["offence_code"][0] == "8N"


def test_bad_rows_are_quarantined_with_line_and_reason(hand):
    store, _, _, tmp = hand
    path = tmp / "nominals-bad.csv"
    path.write_text(
        "nominal_id,date_of_birth,ocg_member\nN10,1990-01-01,Y\nN11,31/02/1990,N\n"
        "N12,1990-01-01,maybe\nN10,1991-01-01,N\nN13,1990-01-01\n,1990-01-01,N\n"
        "N14,1990-01-01,N\n"
    )
    result = import_entity(store, "nominals", path)
    assert result.balanced and result.rows_read == 7
    assert (result.inserted, result.quarantined) == (2, 5)
    quarantined = store.quarantine(import_id=result.import_id).to_dicts()
    reasons = {r["line"]: r["reason"] for r in quarantined}
    assert "is not a date" in reasons[3]
    assert "is not yes/no" in reasons[4]
    assert "same key as line 2" in reasons[5]
    assert "2 fields, the header has 3" in reasons[6]
    assert "nominal_id is empty" in reasons[7]


def test_a_bad_header_refuses_the_file_and_writes_nothing(hand):
    store, _, _, tmp = hand
    before = store.soc_frame("soc_groups").height
    path = tmp / "groups-bad.csv"
    path.write_text("group_id,name,colour\nG9,X,red\n")
    with pytest.raises(DataError, match="columns not in the groups schema: 'colour'") as caught:
        import_entity(store, "groups", path)
    assert "required columns missing: group_type" in str(caught.value)
    assert store.soc_frame("soc_groups").height == before


def test_a_binary_file_is_refused_without_its_bytes_in_the_message(hand):
    """An upload of the wrong file (binary, or UTF-16) is refused with a message that quotes
    no raw bytes: control characters and undecodable bytes become '?', each field is bounded."""
    store, _, _, tmp = hand
    path = tmp / "incidents-binary.csv"
    path.write_bytes(b"\xff\xfe\x00bad\x00" * 10 + b"," + b"\x01" * 300 + b"\n")
    with pytest.raises(DataError) as caught:
        import_entity(store, "incidents", path)
    message = str(caught.value)
    assert "columns not in the incidents schema" in message
    assert all(c.isprintable() for c in message), repr(message)
    assert "\ufffd" not in message and "\x00" not in message
    assert len(message) < 1000


def test_mapping_file_loads_a_force_export(hand):
    store, _, _, tmp = hand
    export = tmp / "RMS_EXPORT.csv"
    # British National Grid coordinates of point A; dates as dd/mm/yyyy; Y/N flags as J/N
    export.write_text(
        "CRIME_NO,DATE_REC,HO_CODE,GUN,GROW,X,Y,OFFICER\n"
        "RMS1,02/03/2021,92A,N,J,425382,564559,PC 1\n"
        "RMS2,05/03/2021,8N,J,N,,,PC 2\n"
    )
    mapping = tmp / "rms.yaml"
    mapping.write_text(
        "entity: force-crimes\n"
        "columns: {CRIME_NO: crime_ref, DATE_REC: recorded_date, HO_CODE: offence_code,\n"
        "          GUN: firearms_discharged, GROW: cannabis_production, X: easting, Y: northing}\n"
        "ignore: [OFFICER]\n"
        "date_format: '%d/%m/%Y'\n"
        "true_values: [J]\n"
    )
    result = import_entity(store, "force-crimes", export, load_mapping(mapping, "force-crimes"))
    assert result.ok and result.inserted == 2 and result.no_location == 1
    rows = {r["crime_ref"]: r for r in store.soc_frame("soc_force_crimes", "patch").to_dicts()}
    assert rows["RMS1"]["recorded_date"] == dt.date(2021, 3, 2)
    assert rows["RMS1"]["cannabis_production"] and not rows["RMS1"]["firearms_discharged"]
    assert rows["RMS1"]["crime_type"] == "Drugs"  # from the offence code
    assert rows["RMS1"]["area_code"] == "A" and rows["RMS1"]["located"] is True
    assert rows["RMS1"]["in_area"] is True
    assert rows["RMS1"]["latitude"] == pytest.approx(A[1], abs=0.001)
    assert rows["RMS2"]["firearms_discharged"] and rows["RMS2"]["located"] is False
    with pytest.raises(DataError, match="maps 'force-crimes' exports, not 'nominals'"):
        load_mapping(mapping, "nominals")


def test_links_to_unknown_records_are_quarantined(hand):
    store, _, _, tmp = hand
    path = tmp / "memberships-2.csv"
    path.write_text("group_id,nominal_id,role\nG1,N4,member\nG9,N4,member\nG2,N99,member\n")
    result = import_entity(store, "memberships", path)
    assert (result.inserted, result.quarantined) == (1, 2) and result.balanced
    reasons = [q.reason for q in result.quarantine_sample]
    assert "group_id 'G9' is not a stored group; import the groups first" in reasons
    assert "nominal_id 'N99' is not a stored nominal; import the nominals first" in reasons
    phases = tmp / "phases.csv"
    phases.write_text("site_code,phase,start_date\nS1,Clear,2021-01-01\n")
    refused = import_entity(store, "chb-phases", phases)
    assert refused.quarantined == 1 and "CHB site" in refused.quarantine_sample[0].reason


def test_value_codes_and_constants_from_a_mapping(hand):
    store, _, _, tmp = hand
    export = tmp / "INTEL.csv"
    export.write_text("REF,DATED,SRC,INT,HC,SUBJ\nX1,2021-05-01,2,B,P,N1\nX2,2021-05-02,B,2,1,N2\n")
    mapping = tmp / "intel.yaml"
    mapping.write_text(
        "columns: {REF: intel_id, DATED: reported_date, SRC: source_evaluation,\n"
        "          INT: intelligence_assessment, HC: handling_code, SUBJ: subjects}\n"
        "values: {handling_code: {P: P, '1': '1'}}\n"
        "constants: {grading_scheme: 3x5x2}\n"
    )
    result = import_entity(store, "intelligence", export, load_mapping(mapping))
    # X2 is graded 5x5x5 but the mapping says every row is 3x5x2: quarantined, not guessed
    assert (result.inserted, result.quarantined) == (1, 1)
    assert "not a 3x5x2 grade" in result.quarantine_sample[0].reason
