"""The grid prefilter gives exactly shapely's answer: lowest index of an intersecting polygon.

Checked against a brute force over every (point, polygon) pair with plain shapely
`intersects` (and `contains`, which differs only on edges), on the real Northumbria
boundaries, with points on vertices, on edges, near edges, outside, and NaN.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from placeharm.geo import PolygonGrid, assign_points, assign_points_to_sets
from placeharm.ingest.boundaries import read_boundaries

SETS = ["northumbria_ward2013.geojson", "northumbria_msoa2011.geojson"]
LSOA = "northumbria_lsoa2011.geojson"


def _brute_force(
    x: np.ndarray, y: np.ndarray, polygons: np.ndarray, predicate: str = "intersects"
) -> np.ndarray:
    """Lowest index of a polygon intersecting (or containing) each point, pair by pair."""
    points = shapely.points(x, y)
    hits = getattr(shapely, predicate)(polygons[None, :], points[:, None])  # (points, polygons)
    return np.where(hits.any(axis=1), hits.argmax(axis=1), -1).astype(np.int32)


def _ordered(path: Path) -> np.ndarray:
    """The set's polygons as placeharm stores them (repaired), ordered by code (ties)."""
    found = read_boundaries(path)
    polygons = np.asarray(found.polygons, dtype=object)[np.argsort(found.codes)]
    shapely.prepare(polygons)  # for the brute force's speed only
    return polygons


def _test_points(polygons: np.ndarray, rng: np.random.Generator, n: int) -> tuple:
    """Random points over the bounds, vertices, points on edges, near edges, outside, NaN."""
    minx, miny, maxx, maxy = shapely.total_bounds(polygons)
    coords = shapely.get_coordinates(shapely.boundary(polygons))
    vertices = coords[rng.integers(0, len(coords) - 1, n // 4)]
    i = rng.integers(0, len(coords) - 1, n // 4)
    t = rng.uniform(0, 1, (len(i), 1))
    on_edges = coords[i] * (1 - t) + coords[i + 1] * t  # on (or within rounding of) an edge
    near = vertices + rng.normal(0, 1e-6, vertices.shape)
    uniform = np.column_stack([rng.uniform(minx, maxx, n // 4), rng.uniform(miny, maxy, n // 4)])
    special = np.array(
        [
            [np.nan, np.nan],
            [np.nan, miny + 0.1],
            [minx + 0.1, np.nan],
            [minx, miny],
            [maxx, maxy],
            [minx - 1, miny],
            [np.inf, miny],
            [maxx + 1e-12, maxy],
        ]
    )
    xy = np.concatenate([vertices, on_edges, near, uniform, special])
    return xy[:, 0].copy(), xy[:, 1].copy()


@pytest.mark.parametrize("name", [LSOA, *SETS])
def test_grid_matches_brute_force_on_real_boundaries(boundaries: Path, name: str) -> None:
    polygons = _ordered(boundaries / name)
    rng = np.random.default_rng(20261122)
    x, y = _test_points(polygons, rng, 4_000)
    expected = _brute_force(x, y, polygons)
    grid = PolygonGrid.build(polygons)
    got = assign_points(x, y, grid, threads=2)
    assert got.dtype == np.int32
    assert np.array_equal(got, expected)
    # Without the grid too (small batches go straight to shapely).
    assert np.array_equal(assign_points(x, y, polygons, threads=1), expected)
    # The grid decided most of these points itself, and sent the edge points to shapely.
    looked_up = grid.lookup(x, y)
    decided = looked_up != -2
    assert np.array_equal(looked_up[decided], expected[decided])
    assert decided[-8:].all()  # NaN, infinite and out-of-bounds points need no test
    # Every vertex is held (intersects counts edges). contains (interior only) differs from
    # intersects only on edges: where a polygon contains the point, the answer is that one
    # or a lower one holding the point on its edge.
    vertices = 4_000 // 4  # _test_points puts them first
    assert (got[:vertices] >= 0).all()
    inside = _brute_force(x, y, polygons, "contains")
    assert (got[inside >= 0] <= inside[inside >= 0]).all()
    assert (got[inside >= 0] >= 0).all()


def test_grid_matches_brute_force_at_every_level_and_cell_count(boundaries: Path) -> None:
    polygons = _ordered(boundaries / "northumbria_ward2013.geojson")
    rng = np.random.default_rng(7)
    x, y = _test_points(polygons, rng, 2_000)
    expected = _brute_force(x, y, polygons)
    for coarse_cells, levels in [(1, 0), (4_096, 2), (20_000, 5), (200, 7)]:
        grid = PolygonGrid.build(polygons, coarse_cells=coarse_cells, levels=levels)
        assert np.array_equal(assign_points(x, y, grid), expected), (coarse_cells, levels)


def test_grid_interior_points_need_no_shapely_test(boundaries: Path) -> None:
    """The point of the grid: on jittered points like the 10M benchmark's, most are decided."""
    polygons = _ordered(boundaries / LSOA)
    rng = np.random.default_rng(3)
    centres = shapely.get_coordinates(shapely.point_on_surface(polygons))
    xy = np.repeat(centres, 50, axis=0) + rng.uniform(-0.0005, 0.0005, (len(centres) * 50, 2))
    found = PolygonGrid.build(polygons).lookup(xy[:, 0], xy[:, 1])
    assert np.mean(found == -2) < 0.25


SQUARES = np.array(
    [
        shapely.box(0, 0, 1, 1),  # 0
        shapely.box(1, 0, 2, 1),  # 1: shares the edge x=1 with 0
        shapely.box(0.5, 0.5, 1.5, 1.5),  # 2: overlaps both
        shapely.Polygon(
            [(3, 0), (4, 0), (4, 1), (3, 1)],
            holes=[[(3.25, 0.25), (3.75, 0.25), (3.75, 0.75), (3.25, 0.75)]],
        ),
        shapely.Polygon(),  # 4: empty, never holds anything
        shapely.MultiPolygon([shapely.box(5, 5, 6, 6), shapely.box(7, 7, 8, 8)]),  # 5
    ],
    dtype=object,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    points=st.lists(
        st.tuples(
            st.one_of(
                st.floats(-1, 9, allow_nan=False),
                st.sampled_from([0.0, 0.5, 1.0, 1.5, 2.0, 3.25, 3.5, 5.0, 8.0, float("nan")]),
            ),
            st.one_of(
                st.floats(-1, 9, allow_nan=False),
                st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 6.0, 7.0, float("nan")]),
            ),
        ),
        min_size=1,
        max_size=200,
    ),
    coarse_cells=st.integers(1, 5_000),
    levels=st.integers(0, 6),
)
def test_grid_matches_brute_force_hypothesis(
    points: list[tuple[float, float]], coarse_cells: int, levels: int
) -> None:
    """Squares sharing edges, an overlap, a hole, an empty and a multipolygon: any grid
    shape gives the brute-force answer, with points drawn on edges and corners often."""
    x = np.array([p[0] for p in points])
    y = np.array([p[1] for p in points])
    grid = PolygonGrid.build(SQUARES, coarse_cells=coarse_cells, levels=levels, threads=1)
    assert np.array_equal(assign_points(x, y, grid, threads=1), _brute_force(x, y, SQUARES))


def test_large_batches_build_a_grid_and_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    """assign_points_to_sets builds a grid itself for a big batch; same answers as without."""
    from placeharm.geo import assign as assign_module

    rng = np.random.default_rng(11)
    x = rng.uniform(-0.5, 8.5, 3_000)
    y = rng.uniform(-0.5, 8.5, 3_000)
    x[::97] = np.nan
    small = assign_points_to_sets(x, y, [SQUARES, SQUARES[::-1].copy()], threads=1)
    monkeypatch.setattr(assign_module, "GRID_MIN_POINTS", 10)
    built = assign_points_to_sets(x, y, [SQUARES, SQUARES[::-1].copy()], threads=2)
    for a, b, polygons in zip(small, built, [SQUARES, SQUARES[::-1]], strict=True):
        assert np.array_equal(a, b)
        assert np.array_equal(a, _brute_force(x, y, polygons))


def test_grid_of_no_polygons() -> None:
    grid = PolygonGrid.build(np.array([], dtype=object))
    assert grid.lookup(np.array([0.5, np.nan]), np.array([0.5, 1.0])).tolist() == [-1, -1]
    empty_only = PolygonGrid.build(np.array([shapely.Polygon()], dtype=object))
    assert assign_points(np.array([0.0]), np.array([0.0]), empty_only).tolist() == [-1]


def test_assigner_direct_mode_gives_the_same_rows(boundaries: Path) -> None:
    """Unsnapped points (mostly distinct) switch the Assigner to testing each row directly;
    the codes, flags and row order are those of the remembering path."""
    import polars as pl

    from placeharm.services.areas import Assigner, LoadedSet

    found = read_boundaries(boundaries / "northumbria_ward2013.geojson")
    order = np.argsort(found.codes)
    ward = LoadedSet("ward", np.asarray(found.codes, dtype=object)[order], found.polygons[order])
    rng = np.random.default_rng(5)
    minx, miny, maxx, maxy = shapely.total_bounds(ward.polygons)
    n = 60_000
    lon = rng.uniform(minx - 0.01, maxx + 0.01, n)
    lat = rng.uniform(miny - 0.01, maxy + 0.01, n)
    frame = pl.DataFrame({"longitude": lon, "latitude": lat, "row": np.arange(n)})
    frame = frame.with_columns(
        pl.when(pl.col("row") % 50 == 0)
        .then(None)
        .otherwise(pl.col("longitude"))
        .alias("longitude")
    )
    direct = Assigner([ward], 2, 0.0)
    first = direct.assign(frame)  # mostly new points: switches to direct testing
    assert not direct.remember
    second = direct.assign(frame)
    expected = Assigner([ward], 1, 0.0).assign(frame.head(1_000))  # small: remembers
    for out in (first, second):
        assert out["row"].to_list() == list(range(n))
        assert out.head(1_000).equals(expected)
    assert first.equals(second)
    assert second["area_ward"].null_count() > n // 50  # the rows without a location, and outside
    codes = ward.codes_at(_brute_force(lon, lat, ward.polygons))
    assert second["area_ward"].to_list() == [
        None if r % 50 == 0 else c for r, c in enumerate(codes.to_list())
    ]


def test_grid_uses_fewer_levels_rather_than_too_much_memory(
    boundaries: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from placeharm.geo import assign as assign_module

    polygons = _ordered(boundaries / "northumbria_msoa2011.geojson")
    monkeypatch.setattr(assign_module, "_FINE_CELLS_MAX", 200_000)
    grid = PolygonGrid.build(polygons)
    assert grid.levels < 5
    assert grid.fine.size <= 200_000
    x, y = _test_points(polygons, np.random.default_rng(9), 2_000)
    assert np.array_equal(assign_points(x, y, grid), _brute_force(x, y, polygons))
