"""The LSOA tolerance rule (`services/areas._reconcile_lsoa`), worked out by hand.

Two 100 m squares side by side on the British National Grid, A (x 424,000 to 424,100) and
B (424,100 to 424,200). A record whose point falls in B (or in no LSOA) but which police.uk
filed under A keeps A when the point lies within the tolerance of A's polygon, measured in
metres: 10 m from A's edge with 25 m tolerance keeps A, 30 m does not (docs/areas.md).
"""

from __future__ import annotations

import numpy as np
import polars as pl
import shapely
from pyproj import Transformer

from placeharm.services.areas import Assigner, LoadedSet, _reconcile_lsoa

_TO_LONLAT = Transformer.from_crs("EPSG:27700", "EPSG:4326", always_xy=True)
_TO_BNG = Transformer.from_crs("EPSG:4326", "EPSG:27700", always_xy=True)
NORTH = 564_050.0  # every point lies half way up the squares


def _lonlat(geometry: shapely.Geometry) -> shapely.Geometry:
    return shapely.transform(
        geometry, lambda xy: np.column_stack(_TO_LONLAT.transform(xy[:, 0], xy[:, 1]))
    )


def _lsoa() -> LoadedSet:
    squares = [
        shapely.box(424_000, 564_000, 424_100, 564_100),
        shapely.box(424_100, 564_000, 424_200, 564_100),
    ]
    polygons = np.array([_lonlat(s) for s in squares], dtype=object)
    return LoadedSet("lsoa", np.array(["A", "B"], dtype=object), polygons)


def _frame(rows: list[tuple[float | None, str | None]]) -> pl.DataFrame:
    """Records at these eastings (None: no location), filed under these LSOA codes."""
    lon, lat = [], []
    for easting, _ in rows:
        if easting is None:
            lon.append(None)
            lat.append(None)
        else:
            x, y = _TO_LONLAT.transform(easting, NORTH)
            lon.append(float(x))
            lat.append(float(y))
    return pl.DataFrame(
        {
            "row": list(range(len(rows))),
            "longitude": lon,
            "latitude": lat,
            "lsoa_code_file": [code for _, code in rows],
        },
        schema={
            "row": pl.Int64,
            "longitude": pl.Float64,
            "latitude": pl.Float64,
            "lsoa_code_file": pl.String,
        },
    )


ROWS = [
    # (easting, police.uk's code) -> (area kept, reconciled)
    (424_110.0, "A", "A", True),  # in B, 10 m from A: keeps A
    (424_130.0, "A", "B", False),  # in B, 30 m from A: B
    (424_150.0, "B", "B", False),  # agrees
    (424_150.0, None, "B", False),  # no code filed
    (424_110.0, "E01099999", "B", False),  # a code the set does not hold
    (424_210.0, "B", "B", True),  # in no LSOA, 10 m outside B: keeps B
    (424_250.0, "B", None, False),  # in no LSOA, 50 m outside B
    (424_250.0, "A", None, False),  # 150 m from A
    (None, "A", None, False),  # no location
    (424_110.0, "A", "A", True),  # the same point and code again: kept again
    (424_110.0, "B", "B", False),  # the same point filed under B
    (424_050.0, "B", "A", False),  # in A, 50 m from B
    (424_040.0, "B", "A", False),  # in A, 60 m from B: not with 25 m
]


def test_records_near_their_filed_lsoa_keep_it() -> None:
    frame = _frame([(e, c) for e, c, _, _ in ROWS])
    out = Assigner([_lsoa()], 1, 25.0).assign(frame)
    assert out["row"].to_list() == list(range(len(ROWS)))  # rows keep their order
    expected = [(a, r) for _, _, a, r in ROWS]
    assert (
        list(zip(out["area_lsoa"].to_list(), out["lsoa_reconciled"].to_list(), strict=True))
        == expected
    )
    assert out["in_area"].to_list() == [
        True,
        True,
        True,
        True,
        True,
        True,
        False,
        False,
        None,
        True,
        True,
        True,
        True,
    ]


def test_the_tolerance_is_in_metres() -> None:
    """With 55 m, the point 50 m from B (in A, filed under B) keeps B; 60 m does not."""
    frame = _frame([(e, c) for e, c, _, _ in ROWS])
    out = Assigner([_lsoa()], 1, 55.0).assign(frame)
    assert out["area_lsoa"].to_list()[11:] == ["B", "A"]
    assert out["lsoa_reconciled"].to_list()[11:] == [True, False]
    assert out["area_lsoa"].to_list()[1] == "A"  # 30 m from A is now within it
    assert out["area_lsoa"].to_list()[6] == "B"  # 50 m outside B
    assert out["area_lsoa"].to_list()[7] is None  # 150 m from A


def test_no_tolerance_means_no_reconciliation() -> None:
    frame = _frame([(e, c) for e, c, _, _ in ROWS])
    out = Assigner([_lsoa()], 1, 0.0).assign(frame)
    assert out["area_lsoa"].to_list() == [
        "B",
        "B",
        "B",
        "B",
        "B",
        None,
        None,
        None,
        None,
        "B",
        "B",
        "A",
        "A",
    ]
    assert not out["lsoa_reconciled"].any()


def test_a_point_exactly_at_the_tolerance_is_kept() -> None:
    """`distance <= tolerance`: A's polygon (on the grid) is drawn with its east edge exactly
    25 m west of the point as the code measures it, so the distance is exactly 25."""
    lon, lat = _TO_LONLAT.transform(424_125.0, NORTH)
    bx, _ = _TO_BNG.transform(lon, lat)
    edge = float(bx) - 25.0  # exact: both numbers lie between 2**18 and 2**19
    a = shapely.box(edge - 100.0, 564_000.0, edge, 564_100.0)
    assert shapely.distance(a, shapely.points(*_TO_BNG.transform(lon, lat))) == 25.0
    lsoa = LoadedSet(
        "lsoa",
        np.array(["A", "B"], dtype=object),
        np.array([_lonlat(a), _lonlat(shapely.box(edge, 564_000, edge + 100, 564_100))]),
        _bng=np.array([a, shapely.box(edge, 564_000, edge + 100, 564_100)], dtype=object),
    )
    frame = pl.DataFrame(
        {
            "longitude": [float(lon), float(lon)],
            "latitude": [float(lat), float(lat)],
            "lsoa_code_file": ["A", "A"],
            "located": [True, True],
            "area_lsoa": ["B", "B"],
        }
    )
    fixed, taken = _reconcile_lsoa(frame, lsoa, 25.0)
    assert fixed["area_lsoa"].to_list() == ["A", "A"]
    assert taken.tolist() == [True, True]
    fixed, taken = _reconcile_lsoa(frame, lsoa, 24.999)
    assert fixed["area_lsoa"].to_list() == ["B", "B"]
    assert taken.tolist() == [False, False]


def test_nothing_to_reconcile_returns_the_frame_as_it_was() -> None:
    frame = pl.DataFrame(
        {
            "longitude": [-1.6, None],
            "latitude": [54.9, None],
            "lsoa_code_file": ["A", "A"],
            "located": [True, False],
            "area_lsoa": ["A", None],
        }
    )
    fixed, taken = _reconcile_lsoa(frame, _lsoa(), 25.0)
    assert fixed.equals(frame)
    assert taken.tolist() == [False, False]
    assert taken.dtype == np.bool_
