"""Truthful figures (issue 15) on a small hand-built store: risk levels, empty periods, gaps,
residents as a snapshot, the default period and CHB before/after.

Twelve square wards A01..A12 in a row. police.uk street files for 2021-01..2021-07 except
2021-04 (a gap), one burglary in A01 each. SOC force crimes (drug supply, 92A; the shipped
index's weights) in 2021-01, 02, 03, 05 and 06 (none in 2021-04, a gap; none in 2021-07, a
month police.uk holds and the SOC data does not): A01 3 a month (4 in 2021-06; all linked to
an OCG member), A02 and A03 2 a month each (a tie); a cannabis farm (8N) in A05 on
2021-06-12, the last SOC record. Two drug-related deaths in A12 (2021-02, 2021-05: a sparse
source). One OCG member lives in A06 (a resident, counted in every period). Two CHB sites: S1
over A01 (Clear 2021-03, Hold 2021-04 = the gap month, Build from 2021-05) and S2 over A02
(Clear from 2021-01: nothing before it).
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from placeharm.harm import load_index
from placeharm.services import pages, soc
from placeharm.services.areas import import_areas
from placeharm.services.ingest import ingest
from placeharm.services.policy import Role, User
from placeharm.soc import cells as soc_cells
from placeharm.soc.importer import import_entity

HEADER = (
    "Crime ID,Month,Reported by,Falls within,Longitude,Latitude,Location,LSOA code,LSOA name,"
    "Crime type,Last outcome category,Context"
)
WARDS = {f"A{i:02d}": (-1.70 + 0.01 * i, 54.975) for i in range(1, 13)}
POLICE_MONTHS = ("2021-01", "2021-02", "2021-03", "2021-05", "2021-06", "2021-07")
SOC_MONTHS = ("2021-01", "2021-02", "2021-03", "2021-05", "2021-06")
LEADER = User("leader", "leader", Role.senior_leader)


def _square(code: str, lon: float, lat: float) -> dict:
    d = 0.005
    ring = [[lon - d, lat - d], [lon + d, lat - d], [lon + d, lat + d], [lon - d, lat + d]]
    return {
        "type": "Feature",
        "properties": {"code": code, "name": f"Ward {code}"},
        "geometry": {"type": "Polygon", "coordinates": [[*ring, ring[0]]]},
    }


def _links() -> str:
    """Every force crime in A01 has the OCG member N1 as suspect: SOC crimes there."""
    refs = [f"F{n}" for n, ward in _crime_wards() if ward == "A01"]
    return "nominal_id,crime_ref,role\n" + "".join(f"N1,{r},suspect\n" for r in refs)


def _crime_wards() -> list[tuple[int, str]]:
    out, n = [], 0
    for month in SOC_MONTHS:
        per = {"A01": 4 if month == "2021-06" else 3, "A02": 2, "A03": 2}
        for ward, count in per.items():
            for _ in range(count):
                n += 1
                out.append((n, ward))
    return out


def _force_crimes() -> str:
    rows = [
        "crime_ref,recorded_date,offence_code,firearms_discharged,cannabis_production,"
        "latitude,longitude"
    ]
    n = 0
    for month in SOC_MONTHS:
        per = {"A01": 4 if month == "2021-06" else 3, "A02": 2, "A03": 2}
        for ward, count in per.items():
            lon, lat = WARDS[ward]
            for _ in range(count):
                n += 1
                rows.append(f"F{n},{month}-10,92A,N,N,{lat},{lon}")
    lon, lat = WARDS["A05"]
    rows.append(f"F{n + 1},2021-06-12,8N,N,Y,{lat},{lon}")
    return "\n".join(rows) + "\n"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, module_store_at):
    tmp = tmp_path_factory.mktemp("truth")
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
                "features": [_square("S1", *WARDS["A01"]), _square("S2", *WARDS["A02"])],
            }
        )
    )
    files = []
    for month in POLICE_MONTHS:
        lon, lat = WARDS["A01"]
        path = tmp / f"{month}-test-street.csv"
        path.write_text(
            f"{HEADER}\nc{month},{month},Test,Test,{lon},{lat},On or near X,,,Burglary,,\n"
        )
        files.append(path)
    db = module_store_at("truth")
    import_areas(db, wards, "ward", code_field="code", name_field="name")
    import_areas(db, sites, soc.CHB_SET, code_field="code", name_field="name")
    assert all(r.status == "ok" for r in ingest(db, files))
    lon, lat = WARDS["A06"]
    soc_files = {
        "nominals": "nominal_id,surname,forename,ocg_member,priority_individual,pcg_member,"
        "ucg_member\nN1,Demoa,Xa,Y,N,N,N\n",
        "addresses": f"nominal_id,address_id,link_type,latitude,longitude\n"
        f"N1,AD1,home,{lat},{lon}\n",
        "groups": "group_id,name,group_type,ocg_band,status\nG1,Test OCG,OCG,2A,active\n",
        "memberships": "group_id,nominal_id,role\nG1,N1,principal\n",
        "force-crimes": _force_crimes(),
        "partner-events": "event_id,event_date,partner,event_type,latitude,longitude\n"
        f"E1,2021-02-03,coroner,drug_related_death,{WARDS['A12'][1]},{WARDS['A12'][0]}\n"
        f"E2,2021-05-03,coroner,drug_related_death,{WARDS['A12'][1]},{WARDS['A12'][0]}\n",
        "nominal-crimes": _links(),
        "chb-phases": "site_code,phase,start_date,end_date\n"
        "S1,Clear,2021-03-01,2021-03-31\nS1,Hold,2021-04-01,2021-04-30\nS1,Build,2021-05-01,\n"
        "S2,Clear,2021-01-01,2021-01-31\nS2,Hold,2021-02-01,\n",
    }
    for kind, text in soc_files.items():
        path = tmp / f"{kind}.csv"
        path.write_text(text)
        result = import_entity(db, kind, path)
        assert result.ok and not result.quarantined, (kind, result)
    yield db, load_index("css")
    db.close()


@pytest.fixture(scope="module")
def overview(store):
    db, _ = store

    def make(first=None, last=None, measures=()):
        chosen = pages.Filters(
            "ward",
            dt.date.fromisoformat(f"{first}-01") if first else None,
            dt.date.fromisoformat(f"{last}-01") if last else None,
            "css",
            tuple(measures),
        )
        return pages.overview(db, LEADER, chosen)

    return make


def _rows(page) -> dict[str, dict]:
    return {r["area_code"]: r for r in page.tables["areas"].to_dicts()}


def test_zero_harm_is_never_ranked_or_rated_medium_or_high(overview):
    page = overview("2021-06", "2021-06")
    rows = _rows(page)
    harmed = {c for c, r in rows.items() if r["soc_harm"] > 0}
    assert harmed == {"A01", "A02", "A03", "A05", "A06"}
    for code, r in rows.items():
        if code not in harmed:
            assert (r["risk"], r["rank"], r["rank_movement"]) == ("None", None, None), code
    # 5 areas with harm: High = rank 1 (top 10%), Medium = rank 2 or better (top 25%)
    assert rows["A01"]["risk"] == "High" and rows["A01"]["rank"] == 1
    # A02 and A03 tie: one rank, one level
    assert rows["A02"]["rank"] == rows["A03"]["rank"]
    assert rows["A02"]["risk"] == rows["A03"]["risk"]
    assert "among the 5 areas with SOC harm" in page.data["risk_rule"]
    assert "None: no SOC harm recorded in this period" in page.data["risk_rule"]
    assert page.data["areas_with_soc_harm"] == 5


def test_a_narrowed_measure_rates_only_the_areas_it_counts(overview):
    page = overview("2021-06", "2021-06", measures=["cannabis_farms"])
    risks = [r["risk"] for r in page.tables["areas"].to_dicts()]
    assert risks.count("High") == 1 and risks.count("None") == 11
    assert _rows(page)["A05"]["risk"] == "High"
    assert "among the 1 areas with SOC harm" in page.data["risk_rule"]


def test_residents_are_a_snapshot_and_never_change(overview):
    page = overview("2021-06", "2021-06")
    a06 = _rows(page)["A06"]
    assert a06["ocg_members_pis"] == 1 and a06["soc_harm"] > 0
    assert a06["change"] == 0  # the same residents in both periods: no rise, no fall
    assert "A06" not in page.tables["rising"]["area_code"].to_list()
    assert page.data["snapshot"]["measures"] == ["ocg_members_pis", "ucg_pcg_members"]
    # the period's last day, or the last SOC record if earlier: nothing later is known
    assert page.data["snapshot"]["as_of"] == "2021-06-12"
    assert any("snapshot as of 12 June 2021" in n for n in page.data["notes"])
    only = overview("2021-05", "2021-06", measures=["ocg_members_pis"])
    assert only.data["change_reason"].startswith("no change over time")
    assert only.tables["rising"].is_empty()
    assert _rows(only)["A06"]["change"] is None


def test_an_empty_window_says_so_and_rates_nobody(overview, store):
    page = overview("2022-01", "2022-03")
    assert page.data["no_soc_data"] is True
    rows = page.tables["areas"].to_dicts()
    assert all(r["risk"] is None and r["rank"] is None and r["soc_harm"] is None for r in rows)
    assert all(r["drug_supply"] is None for r in rows)  # a dated count: no data, not 0
    assert page.tables["rising"].is_empty()
    assert page.data["risk_rule"] == "No SOC data in this period: no area is rated."
    assert any(
        n.startswith("No SOC data for 2022-01 to 2022-03: SOC data is held from 2021-01 to 2021-06")
        for n in page.data["notes"]
    )
    db, _ = store
    geo = pages.area_geojson(
        db, LEADER, pages.Filters("ward", dt.date(2022, 1, 1), dt.date(2022, 3, 1))
    )
    assert geo.data["no_soc_data"] is True
    assert all(f["properties"]["soc_harm"] is None for f in geo.data["features"])


def test_a_gap_month_is_a_gap_and_stops_a_like_for_like_change(overview):
    page = overview("2021-04", "2021-06")  # 2021-04 holds no SOC data
    assert page.data["soc_months"]["gaps"] == ["2021-04"]
    assert "2021-04" in page.data["change_reason"]
    assert all(r["change"] is None for r in page.tables["areas"].to_dicts())
    assert page.tables["rising"].is_empty()
    assert any("No SOC data for 2021-04: those months are gaps" in n for n in page.data["notes"])


def test_ward_series_leave_gap_months_empty(store):
    db, _ = store
    filters = pages.Filters("ward", dt.date(2021, 3, 1), dt.date(2021, 7, 1))
    page = pages.ward(db, LEADER, "A01", filters)
    monthly = {r["month"]: r for r in page.tables["monthly"].to_dicts()}
    assert monthly["2021-03"]["soc_crimes"] == 3 and monthly["2021-05"]["soc_crimes"] == 3
    assert monthly["2021-04"]["soc_crimes"] is None  # the SOC gap month
    assert monthly["2021-04"]["crimes"] is None  # the police.uk gap month
    assert monthly["2021-07"]["crimes"] == 1  # police.uk holds 2021-07 ...
    assert monthly["2021-07"]["soc_crimes"] is None  # ... the SOC data does not


def test_a_ward_without_soc_harm_is_not_ranked(store):
    db, _ = store
    filters = pages.Filters("ward", dt.date(2021, 6, 1), dt.date(2021, 6, 1))
    quiet = pages.ward(db, LEADER, "A09", filters)
    assert quiet.data["rank"] is None
    assert quiet.data["rank_text"] == "no SOC harm recorded in this period"
    busy = pages.ward(db, LEADER, "A01", filters)
    assert busy.data["rank_text"] == "rank 1 of 5 wards with SOC harm"
    empty = pages.ward(
        db, LEADER, "A01", pages.Filters("ward", dt.date(2022, 1, 1), dt.date(2022, 3, 1))
    )
    assert (empty.data["soc_harm"], empty.data["rank"]) == (None, None)
    assert empty.data["rank_text"] == "no SOC data in this period"


def test_the_default_period_can_show_change(store, overview):
    db, index = store
    model = soc_cells.cells(db, "ward")
    # 2021-05..06 would compare with 2021-03..04 (a gap): the longest held in full is 1 month
    assert soc.default_period(model, pages.Filters().measure_set()) == (
        dt.date(2021, 6, 1),
        dt.date(2021, 6, 1),
    )
    page = overview()
    assert page.data["period"] == {"from": "2021-06", "to": "2021-06"}
    assert page.data["change_reason"] is None
    a01 = _rows(page)["A01"]
    # one more drug supply offence (10), linked to an OCG member (an OCG crime: 10 more)
    assert a01["change"] == pytest.approx(2 * index.code_weights["92A"], abs=1e-5)
    assert a01["rank_movement"] == 0
    assert page.tables["rising"]["area_code"].to_list()[0] == "A01"


def test_chb_gap_month_inside_a_phase_and_a_short_before(store):
    db, _ = store
    view = soc.chb_view(db, "S1")
    rows = {r["phase"]: r for r in view.table.to_dicts()}
    # phases span 5 months (2021-03..2021-07), but police.uk is held from 2021-01 only
    assert (rows["Before"]["from"], rows["Before"]["to"], rows["Before"]["months"]) == (
        "2021-01",
        "2021-02",
        2,
    )
    assert view.meta["before_months"] == 2 and view.meta["before_wanted_months"] == 5
    assert any("should be 5 months" in n and "covers 2 months" in n for n in view.notes)
    hold = rows["Hold"]  # 2021-04: no police.uk and no SOC data
    assert hold["crimes_per_month"] is None and hold["soc_crimes_per_month"] is None
    assert hold["crimes_change_%"] is None and hold["soc_crimes_change_%"] is None
    assert "2021-04" in hold["months_without_data"]
    build = rows["Build"]  # 2021-05..2021-07: SOC data for 05 and 06 only
    assert (build["months"], build["soc_crimes_months"], build["police_uk_months"]) == (3, 2, 3)
    assert build["soc_crimes_per_month"] == 3.5  # (3 + 4) / 2 in A01's square
    assert "SOC crimes 2021-07" in build["months_without_data"]
    assert view.meta["comparable"] is True


def test_chb_refuses_without_a_before_period(store):
    db, _ = store
    view = soc.chb_view(db, "S2")  # Clear starts in the first month held
    assert view.meta["comparable"] is False and view.meta["before_months"] == 0
    assert all(
        r[c] is None
        for r in view.table.to_dicts()
        for c in view.table.columns
        if c.endswith("_change_%")
    )
    assert any(
        n.startswith("no comparison: there is no police.uk data before Clear") for n in view.notes
    )


def test_held_months_dense_and_sparse_sources(store):
    db, _ = store
    model = soc_cells.cells(db, "ward")
    month = lambda m: dt.date(2021, m, 1)  # noqa: E731
    # force crimes: 7+ a month, so the month without any (2021-04) is a gap
    assert model.dense("force_crimes")
    assert model.held_months("force_crimes") == {month(m) for m in (1, 2, 3, 5, 6)}
    # two deaths in four months: a quiet month may be a true zero, so 02..05 are all held
    assert not model.dense("partner_events")
    assert model.held_months("partner_events") == {month(m) for m in (2, 3, 4, 5)}
    assert model.held_months("intelligence") == frozenset()  # none held: not a source here
    every = pages.Filters().measure_set()
    assert soc.soc_held_months(model, every) == model.held_months("force_crimes")
    deaths = pages.Filters(measures=("drug_related_deaths",)).measure_set()
    assert soc.soc_held_months(model, deaths) == model.held_months("partner_events")
    assert soc.period_data(model, deaths, month(6), month(6)).empty
    assert not soc.period_data(model, deaths, month(4), month(4)).empty
