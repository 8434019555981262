"""The briefing's server-drawn map and trend (services/drawings.py) on crafted shapes."""

from __future__ import annotations

import re

import polars as pl
import shapely

from placeharm.services import drawings


def _areas(boxes: dict[str, tuple[float, float, float, float]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "area_code": list(boxes),
            "area_name": [f"Area {c}" for c in boxes],
            "geometry_wkb": [shapely.to_wkb(shapely.box(*b)) for b in boxes.values()],
        }
    )


# three wards in a row near Newcastle, and one far away
AREAS = _areas(
    {
        "A": (-1.62, 54.97, -1.61, 54.98),
        "B": (-1.61, 54.97, -1.60, 54.98),
        "C": (-1.60, 54.97, -1.59, 54.98),
        "FAR": (-1.20, 55.30, -1.19, 55.31),
    }
)


def test_harm_classes_no_harm_apart_then_quarters():
    harm = {"z": 0.0, "n": None, **{f"a{i}": float(i) for i in range(1, 9)}}
    classes, legend = drawings.harm_classes(harm)
    assert classes["z"] == classes["n"] == 0  # no SOC harm, or none computed: never shaded
    assert [classes[f"a{i}"] for i in range(1, 9)] == [1, 1, 2, 2, 3, 3, 4, 4]
    assert legend[0] == "No SOC harm" and len(legend) == 5
    assert drawings.harm_classes({"z": 0.0}) == ({"z": 0}, ["No SOC harm"])


def test_the_map_shows_the_area_among_its_neighbours_shaded_by_harm():
    drawn = drawings.area_map(AREAS, "B", {"A": 0.0, "B": 10.0, "C": 5.0, "FAR": 20.0})
    assert drawn is not None
    codes = [a["code"] for a in drawn["areas"]]
    assert codes[-1] == "B" and set(codes) == {"A", "B", "C"}  # the far area is off the map
    by_code = {a["code"]: a for a in drawn["areas"]}
    assert by_code["A"]["fill"] == drawings.NO_HARM_FILL
    assert by_code["B"]["fill"] != by_code["A"]["fill"] and by_code["B"]["selected"]
    assert by_code["B"]["label"] is not None
    width, height = drawn["width"], drawn["height"]
    assert width == drawings.MAP_WIDTH
    # a square ward at 55 degrees north is taller than wide on the page (cos(lat) < 1)
    assert height > width
    for area in drawn["areas"]:
        numbers = [float(n) for n in re.findall(r"-?\d+\.\d", area["d"])]
        assert area["d"].startswith("M") and area["d"].endswith("Z")
        assert all(-0.1 <= n <= max(width, height) + 0.1 for n in numbers)
    assert drawn["legend"][0]["label"] == "No SOC harm"


def test_no_boundary_no_map():
    assert drawings.area_map(AREAS, "NONE", {}) is None


def test_the_trend_draws_a_gap_month_as_a_gap_never_zero():
    monthly = pl.DataFrame(
        {
            "month": ["2021-11", "2021-12", "2022-01", "2022-02"],
            "crimes": [10, 20, None, 0],
            "soc_crimes": [1, 2, 3, 4],
        }
    )
    drawn = drawings.trend(monthly)
    crimes, soc = drawn["panels"][0], drawn["panels"][1]
    assert crimes["title"] == "police.uk crimes" and crimes["gaps"] == ["2022-01"]
    gap = crimes["bars"][2]
    assert gap["value"] is None and gap["h"] == 0
    assert crimes["bars"][3]["value"] == 0  # a real zero stays a zero
    assert crimes["bars"][1]["h"] == drawings.PANEL_HEIGHT  # the highest fills the panel
    assert crimes["total"] == 30 and soc["gaps"] == []
    assert soc["top"] > crimes["base"]  # panels one under the other
    assert [p["title"] for p in drawn["panels"]] == ["police.uk crimes", "SOC crimes"]
