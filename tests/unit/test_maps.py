"""services/maps.py on crafted rows: a crime point's details, a partner's generalised cells,
street labels and the CHB before/after split (issue 15)."""

from __future__ import annotations

import datetime as dt

import polars as pl
import shapely

from placeharm.services import evaluation, maps
from placeharm.services.policy import Role, User

OFFICER = User("o", "Officer", Role.officer)
PARTNER = User("p", "Partner", Role.partner)
LEADER = User("l", "Leader", Role.senior_leader)
MARCH, FEB = dt.date(2022, 3, 1), dt.date(2022, 2, 1)


def _details() -> pl.DataFrame:
    # two police.uk points 0.001 degrees apart (one 1 km partner cell), one on two streets
    return pl.DataFrame(
        {
            "month": [MARCH, MARCH, FEB, MARCH],
            "crime_type": ["Drugs", "Drugs", "Burglary", "Drugs"],
            "longitude": [-1.6131, -1.6131, -1.6131, -1.6141],
            "latitude": [54.9701, 54.9701, 54.9701, 54.9711],
            "location": [
                "On or near Bigg Market",
                "On or near Bigg Market",
                "On or near Bigg Market",
                "On or near Grey Street",
            ],
            "latest_outcome": ["Suspect charged", None, "Suspect charged", None],
            "crimes": [2, 1, 3, 4],
        }
    )


def test_a_crime_point_says_its_street_types_months_and_outcomes():
    points = maps.crime_points(OFFICER, _details())
    assert points["crimes"].to_list() == [6, 4]  # busiest first
    bigg = points.row(0, named=True)
    assert bigg["location"] == "On or near Bigg Market"
    assert bigg["types"] == "Burglary 3; Drugs 3"
    assert bigg["months"] == "2022-02 to 2022-03"
    assert bigg["outcomes"] == "Suspect charged 5; No outcome recorded 1"
    assert bigg["details"] == [  # newest month first, then the most crimes
        {"month": "2022-03", "crime_type": "Drugs", "outcome": "Suspect charged", "crimes": 2},
        {"month": "2022-03", "crime_type": "Drugs", "outcome": "No outcome recorded", "crimes": 1},
        {"month": "2022-02", "crime_type": "Burglary", "outcome": "Suspect charged", "crimes": 3},
    ]
    labels = maps.street_labels(points)
    assert [s["name"] for s in labels] == ["Bigg Market", "Grey Street"]


def test_a_partner_gets_one_generalised_cell_with_no_street():
    points = maps.crime_points(PARTNER, _details())
    assert points.height == 1 and "location" not in points.columns
    cell = points.row(0, named=True)
    assert (cell["longitude"], cell["latitude"]) == (-1.61, 54.97)
    assert cell["crimes"] == 10
    assert sum(line["crimes"] for line in cell["details"]) == 10
    assert maps.street_labels(points) == []
    layers = maps.layer_list({"crimes": points})
    assert "location" not in [key for key, _ in layers[0]["columns"]]


def test_chb_points_split_by_period_and_place_and_leave_out_the_rest():
    site = shapely.Point(-1.6131, 54.9701).buffer(0.002)
    ring = evaluation.buffer_ring(site, 250)
    crimes = pl.DataFrame(
        {
            "month": [FEB, MARCH, MARCH, MARCH, dt.date(2021, 1, 1)],
            "crime_type": ["Drugs"] * 5,
            "location": ["On or near A", "On or near A", "On or near B", "On or near C", "x"],
            # in the site, in the site, in the ring (~190 m out), 2 km away, before anything
            "longitude": [-1.6131, -1.6131, -1.6131, -1.5831, -1.6131],
            "latitude": [54.9701, 54.9701, 54.9738, 54.9701, 54.9701],
        }
    )
    points = maps.chb_points(OFFICER, crimes, site, ring, (FEB, FEB), (MARCH, MARCH))
    got = {(r["period"], r["place"], r["location"]): r["crimes"] for r in points.to_dicts()}
    assert got == {
        ("before", "site", "On or near A"): 1,
        ("after", "site", "On or near A"): 1,
        ("after", "buffer", "On or near B"): 1,
    }
    assert maps.chb_counts(points).to_dicts() == [
        {"period": "before", "site_crimes": 1, "buffer_crimes": 0},
        {"period": "after", "site_crimes": 1, "buffer_crimes": 1},
    ]


def test_a_senior_leader_sees_members_counted_by_cell_not_their_homes():
    homes = pl.DataFrame(
        {
            "nominal_id": ["N1", "N2", "N3"],
            "role": ["principal", "member", "member"],
            "longitude": [-1.6131, -1.6139, -1.5],
            "latitude": [54.9701, 54.9702, 54.9],
        }
    )
    exact = maps.home_points(OFFICER, homes)
    assert exact["nominal_id"].to_list() == ["N1", "N2", "N3"]
    cells = maps.home_points(LEADER, homes)
    assert cells.columns == ["longitude", "latitude", "members"]
    assert cells["members"].to_list() == [2, 1]
