"""Area assignment rules on hand-made polygons, with every expected value worked out by hand.

A point on an edge or a corner counts as inside; a point in two polygons goes to the lowest
index; NaN and infinite coordinates go nowhere. The grid path (`PolygonGrid`) is pinned
cell by cell on a grid small enough to draw: an 8 x 8 square with 16 coarse cells (2 x 2
units each) and one halving (1 x 1 fine cells), so the cells an edge comes near are the
ring of fine cells along the square's border (issue 19; docs/testing.md).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import shapely

from placeharm.geo import (
    PolygonGrid,
    assign_points,
    assign_points_to_sets,
)
from placeharm.geo import assign as assign_module
from placeharm.geo.assign import (
    GRID_FORMAT,
    grid_digest,
    grid_from_bytes,
    grid_to_bytes,
)

SQUARE = np.array([shapely.box(0, 0, 8, 8)], dtype=object)

# The 16 coarse cells (row = y, column = x, 2 units each): the 4 in the middle are far from
# every edge and hold the square (0); the 12 on the border point to blocks 0 to 11 (-2 - k),
# numbered in flat order (row * 4 + column).
COARSE = [
    [-2, -3, -4, -5],
    [-6, 0, 0, -7],
    [-8, 0, 0, -9],
    [-10, -11, -12, -13],
]
# Each block's 2 x 2 fine cells ([y][x]): -2 where the border runs along the fine cell.
FINE = [
    [[-2, -2], [-2, 0]],  # coarse (0, 0): the corner
    [[-2, -2], [0, 0]],  # (0, 1): bottom edge
    [[-2, -2], [0, 0]],  # (0, 2)
    [[-2, -2], [0, -2]],  # (0, 3): the corner
    [[-2, 0], [-2, 0]],  # (1, 0): left edge
    [[0, -2], [0, -2]],  # (1, 3): right edge
    [[-2, 0], [-2, 0]],  # (2, 0)
    [[0, -2], [0, -2]],  # (2, 3)
    [[-2, 0], [-2, -2]],  # (3, 0): the corner
    [[0, 0], [-2, -2]],  # (3, 1): top edge
    [[0, 0], [-2, -2]],  # (3, 2)
    [[0, -2], [-2, -2]],  # (3, 3): the corner
]


def _square_grid() -> PolygonGrid:
    return PolygonGrid.build(SQUARE, coarse_cells=16, levels=1, threads=1)


def test_grid_cells_of_a_square_by_hand() -> None:
    grid = _square_grid()
    assert grid.bounds == (0.0, 0.0, 8.0, 8.0)
    assert grid.fine_size == (1.0, 1.0)
    assert grid.levels == 1
    # 1e-8 of a coarse cell's side (2): far above the rounding at 8 (1.8e-15 x 1000).
    assert grid.margin == pytest.approx(2e-8, rel=1e-12)
    assert grid.coarse.tolist() == COARSE
    assert grid.fine.tolist() == FINE
    assert grid.coarse.dtype == np.int32 and grid.fine.dtype == np.int32


def test_grid_lookup_by_hand() -> None:
    grid = _square_grid()
    points = [
        (3.0, 3.0, 0),  # middle coarse cell: answered by the coarse grid
        (5.9, 2.1, 0),
        (1.5, 1.5, 0),  # corner block, its inner fine cell
        (6.5, 1.5, 0),  # (0, 3) block's inner fine cell
        (1.5, 6.5, 0),  # (3, 0) block's inner fine cell
        (6.5, 6.5, 0),  # (3, 3) block's inner fine cell
        (0.5, 0.5, -2),  # on the border ring: must be tested exactly
        (0.5, 4.5, -2),
        (7.5, 3.0, -2),
        (4.5, 7.5, -2),
        (8.0, 8.0, -2),  # the far corner lies in the last fine cell (clipped into the grid)
        (8.0, 0.0, -2),
        (0.0, 8.0, -2),
        (1.0, 1.0, 0),  # a fine cell's lower corner belongs to that cell
        (8.5, 4.0, -1),  # outside the bounds, on each side
        (-0.5, 4.0, -1),
        (4.0, 8.5, -1),
        (4.0, -0.5, -1),
        (np.nan, 4.0, -1),
        (4.0, np.nan, -1),
        (np.inf, 4.0, -1),
    ]
    x = np.array([p[0] for p in points])
    y = np.array([p[1] for p in points])
    assert grid.lookup(x, y).tolist() == [p[2] for p in points]


def test_grid_path_answers_edges_corners_and_outside_by_hand() -> None:
    """Through the grid, points in exact cells are tested with shapely: on an edge or a
    corner is inside, just outside is outside."""
    grid = _square_grid()
    x = np.array([0.0, 8.0, 8.0, 4.0, 0.5, 7.999, 8.001, -1e-9, 3.0, np.nan])
    y = np.array([4.0, 8.0, 0.0, 0.0, 0.5, 7.999, 4.0, 4.0, 3.0, 1.0])
    expected = [0, 0, 0, 0, 0, 0, -1, -1, 0, -1]
    assert assign_points(x, y, grid, threads=1).tolist() == expected
    assert assign_points(x, y, SQUARE, threads=1).tolist() == expected


# Two squares sharing the edge x = 4, and a third overlapping both; a fourth, far away,
# widens the bounds so that the grid has cells outside every polygon.
TIES = np.array(
    [
        shapely.box(0, 0, 4, 4),  # 0
        shapely.box(4, 0, 8, 4),  # 1: shares x = 4 with 0
        shapely.box(2, 2, 6, 6),  # 2: overlaps 0 and 1
        shapely.box(14, 14, 16, 16),  # 3
    ],
    dtype=object,
)
TIE_POINTS = [
    (4.0, 1.0, 0),  # on the shared edge: the lower index
    (4.0, 3.0, 0),  # on the shared edge and inside 2
    (3.0, 3.0, 0),  # in 0 and 2
    (5.0, 3.0, 1),  # in 1 and 2
    (5.0, 5.0, 2),  # in 2 only
    (6.0, 6.0, 2),  # 2's corner
    (2.0, 2.0, 0),  # 2's corner inside 0
    (10.0, 10.0, -1),  # between them
    (15.0, 15.0, 3),
    (16.0, 14.0, 3),
    (0.0, 15.0, -1),
]


@pytest.mark.parametrize("order", ["given", "reversed"])
def test_ties_go_to_the_lowest_index_on_every_path(order: str) -> None:
    polygons = TIES if order == "given" else TIES[::-1].copy()
    x = np.array([p[0] for p in TIE_POINTS])
    y = np.array([p[1] for p in TIE_POINTS])
    expected = [p[2] for p in TIE_POINTS]
    if order == "reversed":  # index i is 3 - i; ties now go to the other polygon
        # polygon i is now 3 - i, so the shared edge goes to old 1 (2), and the overlaps
        # with old 2 (now 1) go to it
        expected = [2, 1, 1, 1, 1, 1, 1, -1, 0, 0, -1]
    grids = [
        PolygonGrid.build(polygons, coarse_cells=c, levels=lv, threads=1)
        for c, lv in [(16, 1), (64, 2), (1, 0)]
    ]
    for polygons_or_grid in [polygons, *grids]:
        for threads in (1, 2):
            found = assign_points(x, y, polygons_or_grid, threads=threads)
            assert found.tolist() == expected
            assert found.dtype == np.int32


def test_grid_cells_hold_the_lowest_index_of_overlapping_polygons() -> None:
    """The same square twice: every free cell holds 0, never 1."""
    twice = np.array([shapely.box(0, 0, 8, 8), shapely.box(0, 0, 8, 8)], dtype=object)
    grid = PolygonGrid.build(twice, coarse_cells=16, levels=1, threads=1)
    assert grid.coarse.tolist() == COARSE
    assert grid.fine.tolist() == FINE


def test_grid_cells_outside_every_polygon_hold_minus_one() -> None:
    """Two unit squares in opposite corners of a 4 x 4 box: 2 x 2 coarse cells of 2 units,
    levels 0. The coarse cells holding a square are near its edges; the other two are
    outside every polygon."""
    corners = np.array([shapely.box(0, 0, 1, 1), shapely.box(3, 3, 4, 4)], dtype=object)
    grid = PolygonGrid.build(corners, coarse_cells=4, levels=0, threads=1)
    assert grid.coarse.tolist() == [[-2, -1], [-1, -3]]
    assert grid.fine.tolist() == [[[-2]], [[-2]]]
    x = np.array([0.5, 3.5, 3.0, 1.0, 2.0, 1.5])
    y = np.array([0.5, 3.5, 1.0, 3.0, 2.0, 1.5])
    assert grid.lookup(x, y).tolist() == [-2, -2, -1, -1, -2, -2]
    assert assign_points(x, y, grid, threads=1).tolist() == [0, 1, -1, -1, -1, -1]


def test_grid_of_a_hole() -> None:
    """A 12 x 12 square with a hole from 3.75 to 8.25, 64 coarse cells (1.5 units), levels 0.
    The outer edges come near the outer ring of cells, the hole's edges the ring of cells 2
    and 5; the ring between them holds the square (0), the four cells in the hole nothing."""
    hole = [(3.75, 3.75), (8.25, 3.75), (8.25, 8.25), (3.75, 8.25)]
    holed = np.array([shapely.Polygon([(0, 0), (12, 0), (12, 12), (0, 12)], holes=[hole])])
    grid = PolygonGrid.build(holed, coarse_cells=64, levels=0, threads=1)
    near = 9
    assert np.where(grid.coarse >= -1, grid.coarse, near).tolist() == [
        [9, 9, 9, 9, 9, 9, 9, 9],
        [9, 0, 0, 0, 0, 0, 0, 9],
        [9, 0, 9, 9, 9, 9, 0, 9],
        [9, 0, 9, -1, -1, 9, 0, 9],
        [9, 0, 9, -1, -1, 9, 0, 9],
        [9, 0, 9, 9, 9, 9, 0, 9],
        [9, 0, 0, 0, 0, 0, 0, 9],
        [9, 9, 9, 9, 9, 9, 9, 9],
    ]
    x = np.array([6.0, 5.0, 1.0, 3.75, 8.25, 2.0, 0.0])
    y = np.array([6.0, 5.0, 1.0, 6.0, 8.25, 2.0, 12.0])
    assert grid.lookup(x, y).tolist() == [-1, -1, -2, -2, -2, 0, -2]
    assert assign_points(x, y, grid, threads=1).tolist() == [-1, -1, 0, 0, 0, 0, 0]


def test_default_coarse_cells_are_64_per_polygon_within_limits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    square = shapely.box(0, 0, 8, 8)
    # 1 polygon: 64 cells, below the floor of 4,096: sqrt(64 * 64 / 4,096) = 1 unit cells.
    grid = PolygonGrid.build(np.array([square], dtype=object), levels=0, threads=1)
    assert grid.coarse.shape == (64, 64)
    # 100 polygons (the empty ones count): 6,400 cells, 80 x 80 (side 0.1).
    hundred = np.array([square] + [shapely.Polygon()] * 99, dtype=object)
    grid = PolygonGrid.build(hundred, levels=0, threads=1)
    assert grid.coarse.shape == (80, 80)
    # A ceiling of 100 cells: 10 x 10 (side 0.8) however many polygons.
    monkeypatch.setattr(assign_module, "_COARSE_CELLS_MAX", 100)
    grid = PolygonGrid.build(hundred, levels=0, threads=1)
    assert grid.coarse.shape == (10, 10)


def test_a_thin_set_has_one_row_of_cells() -> None:
    """8 x 0.5 with 4 coarse cells: side sqrt(4 / 4) = 1, so 8 columns and 1 row (0.5
    rounded up), never 0 rows."""
    thin = np.array([shapely.box(0, 0, 8, 0.5)], dtype=object)
    grid = PolygonGrid.build(thin, coarse_cells=4, levels=0, threads=1)
    assert grid.coarse.shape == (1, 8)
    assert grid.fine_size == (1.0, 0.5)
    x = np.array([0.5, 4.0, 8.0, 8.5, 4.0])
    y = np.array([0.25, 0.5, 0.0, 0.25, 0.6])
    assert assign_points(x, y, grid, threads=1).tolist() == [0, 0, 0, -1, -1]


def test_fine_levels_are_cut_to_the_memory_ceiling(monkeypatch: pytest.MonkeyPatch) -> None:
    """The square's 12 border coarse cells need 12 x 4 fine cells at one level: 48 fit a
    ceiling of 48, not of 47 (then no halving: levels 0, every border cell exact)."""
    monkeypatch.setattr(assign_module, "_FINE_CELLS_MAX", 48)
    assert _square_grid().fine.tolist() == FINE
    monkeypatch.setattr(assign_module, "_FINE_CELLS_MAX", 47)
    grid = _square_grid()
    assert grid.levels == 0
    assert grid.fine_size == (2.0, 2.0)
    assert grid.coarse.tolist() == COARSE
    assert grid.fine.tolist() == [[[-2]]] * 12
    x = np.array([1.5, 3.0, 0.0])
    y = np.array([1.5, 3.0, 0.0])
    assert grid.lookup(x, y).tolist() == [-2, 0, -2]
    assert assign_points(x, y, grid, threads=1).tolist() == [0, 0, 0]


def test_two_levels_of_halving_by_hand() -> None:
    """The square with 4 coarse cells (4 units, each on the border) and 2 levels (1 unit fine
    cells): level 1 keeps the four 2-unit cells in the middle, level 2 the fine cells off the
    border in the rest; every fine cell holds 0 but the border ring."""
    grid = PolygonGrid.build(SQUARE, coarse_cells=4, levels=2, threads=1)
    assert grid.coarse.tolist() == [[-2, -3], [-4, -5]]
    assert grid.fine_size == (1.0, 1.0)
    ring = [[1 if i in (0, 7) or j in (0, 7) else 0 for j in range(8)] for i in range(8)]
    for block, (r0, c0) in enumerate([(0, 0), (0, 4), (4, 0), (4, 4)]):
        expected = [[-2 if ring[r0 + i][c0 + j] else 0 for j in range(4)] for i in range(4)]
        assert grid.fine[block].tolist() == expected


def test_the_grid_is_built_for_a_big_batch_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """`assign_points_to_sets` builds a grid from GRID_MIN_POINTS points (here 4), not for
    one fewer, and gives each set its own answers."""
    built: list[int] = []
    original = PolygonGrid.build.__func__  # type: ignore[attr-defined]

    def spy(
        cls: type[PolygonGrid], polygons: np.ndarray, *args: object, **kw: object
    ) -> PolygonGrid:
        built.append(len(polygons))
        return original(cls, polygons, *args, **kw)

    monkeypatch.setattr(PolygonGrid, "build", classmethod(spy))
    monkeypatch.setattr(assign_module, "GRID_MIN_POINTS", 4)
    x, y = np.array([4.0, 5.0, 10.0]), np.array([1.0, 5.0, 10.0])
    small = assign_points_to_sets(x, y, [TIES, SQUARE], threads=1)
    assert built == []
    assert [a.tolist() for a in small] == [[0, 2, -1], [0, 0, -1]]
    x, y = np.array([4.0, 5.0, 10.0, np.nan]), np.array([1.0, 5.0, 10.0, 1.0])
    big = assign_points_to_sets(x, y, [TIES, SQUARE], threads=2)
    assert built == [4, 1]
    assert [a.tolist() for a in big] == [[0, 2, -1, -1], [0, 0, -1, -1]]
    ready = assign_module.PreparedPolygons.build(TIES)
    assert assign_points(x, y, ready, threads=1).tolist() == [0, 2, -1, -1]
    assert built == [4, 1, 4]


def test_exact_assignment_in_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of 3 points (the last one short) on one and two threads give the hand answers."""
    monkeypatch.setattr(assign_module, "_CHUNK", 3)
    monkeypatch.setattr(assign_module, "_MIN_CHUNK", 2)
    x = np.array([p[0] for p in TIE_POINTS])
    y = np.array([p[1] for p in TIE_POINTS])
    expected = [p[2] for p in TIE_POINTS]
    for threads in (1, 2, 3):
        assert assign_points(x, y, TIES, threads=threads).tolist() == expected


def test_touched_cells_by_hand() -> None:
    """Cells of a 4 x 4 grid of unit cells that segments come within 0.01 of (flat ids)."""
    touched = assign_module._touched_cells

    def cells(*segments: tuple[float, float, float, float]) -> list[int]:
        ends = np.array(segments, dtype=np.float64)
        return touched(ends, 0.01, 0.0, 0.0, 1.0, 1.0, 4, 4).tolist()

    assert cells((0.5, 0.5, 2.5, 0.5)) == [0, 1, 2]  # horizontal
    assert cells((2.5, 0.5, 0.5, 0.5)) == [0, 1, 2]  # drawn the other way
    assert cells((1.5, 0.2, 1.5, 3.7)) == [1, 5, 9, 13]  # vertical
    assert cells((1.5, 3.7, 1.5, 0.2)) == [1, 5, 9, 13]
    # Diagonal: row 0's band (y up to 1.01) spans x 0.5 to 1.01, row 1's 0.99 to 2.01,
    # row 2's 1.99 to 2.5.
    assert cells((0.5, 0.5, 2.5, 2.5)) == [0, 1, 4, 5, 6, 9, 10]
    assert cells((2.5, 2.5, 0.5, 0.5)) == [0, 1, 4, 5, 6, 9, 10]
    # Falling to the right (slope -2): row 0 spans x 2.48 to 3.5, row 1 x 1.5 to 2.52.
    assert cells((1.5, 1.5, 3.5, 0.5)) == [2, 3, 5, 6]
    # Within the margin of a cell border: both cells; further than it: one.
    assert cells((0.5, 0.995, 0.7, 0.995)) == [0, 4]
    assert cells((0.5, 0.98, 0.7, 0.98)) == [0]
    assert cells((0.995, 0.5, 0.995, 0.7)) == [0, 1]
    assert cells((0.98, 0.5, 0.98, 0.7)) == [0]
    # Beyond the grid: clipped to its border cells.
    assert cells((-1.0, 3.5, 5.0, 3.5)) == [12, 13, 14, 15]
    assert cells((3.5, -1.0, 3.5, 5.0)) == [3, 7, 11, 15]
    # Several segments: each cell once, in order.
    assert cells((0.5, 0.5, 0.6, 0.6), (0.5, 0.5, 0.7, 0.7), (3.5, 3.5, 3.6, 3.6)) == [0, 15]
    # dy exactly 1 (slope 3): row 0 spans x 0.5 to 2.03, row 1 x 1.97 to 3.5.
    assert cells((0.5, 0.5, 3.5, 1.5)) == [0, 1, 2, 5, 6, 7]
    # A shallow segment crossing y = 1 (slope 100): row 0's band reaches y 1.01, x 2.5.
    assert cells((0.5, 0.99, 3.5, 1.02)) == [0, 1, 2, 4, 5, 6, 7]
    # Rows of 0.5 (8 rows would span 4): row 0's band ends at y 0.51, x 2.05 (slope 5);
    # row 1 starts at y 0.49, x 1.95.
    halves = np.array([[0.5, 0.2, 3.5, 0.8]])
    assert touched(halves, 0.01, 0.0, 0.0, 1.0, 0.5, 4, 4).tolist() == [0, 1, 2, 5, 6, 7]
    # The origin and cell size are used.
    ends = np.array([[10.5, 20.5, 10.7, 20.7]])
    # Rows 1 (y 20.24 to 20.51) and 2 (20.49 to 20.76) of 0.25; columns 0 and 1 of 0.5.
    assert touched(ends, 0.01, 10.0, 20.0, 0.5, 0.25, 4, 4).tolist() == [4, 5, 8, 9]


def test_expand_by_hand() -> None:
    owner, values = assign_module._expand(np.array([2, 5, 0]), np.array([3, 5, 2]))
    assert owner.tolist() == [0, 0, 1, 2, 2, 2]
    assert values.tolist() == [2, 3, 5, 0, 1, 2]


def test_runs_by_hand() -> None:
    values, lengths = assign_module._runs(np.array([5, 5, 7, 7, 7, -1], dtype=np.int32))
    assert values.tolist() == [5, 7, -1]
    assert lengths.tolist() == [2, 3, 1]
    values, lengths = assign_module._runs(np.array([4], dtype=np.int32))
    assert (values.tolist(), lengths.tolist()) == ([4], [1])
    values, lengths = assign_module._runs(np.array([], dtype=np.int32))
    assert (values.tolist(), lengths.tolist()) == ([], [])


def test_grid_digest_by_hand() -> None:
    wkb = [b"\x01\x02", b"\x03"]
    h = hashlib.sha256(GRID_FORMAT.encode())
    h.update((2).to_bytes(8, "little") + b"E1" + (2).to_bytes(8, "little") + b"\x01\x02")
    h.update((3).to_bytes(8, "little") + b"E22" + (1).to_bytes(8, "little") + b"\x03")
    assert grid_digest(["E1", "E22"], wkb) == h.hexdigest()
    # Length prefixes: moving a character from one code to the next is another set.
    assert grid_digest(["E1", "E22"], wkb) != grid_digest(["E12", "E2"], wkb)
    assert GRID_FORMAT == "placeharm-grid-2/cells=64,4096,1000000/levels=5/fine=16777216"
    with pytest.raises(ValueError):
        grid_digest(["E1"], wkb)


def test_grid_bytes_round_trip_and_refusals() -> None:
    grid = _square_grid()
    data = grid_to_bytes(grid)
    assert data.startswith(b"PHGRID2\n")
    again = grid_from_bytes(SQUARE, data)
    assert again.bounds == grid.bounds and again.fine_size == grid.fine_size
    assert again.levels == 1 and again.margin == grid.margin
    assert again.coarse.tolist() == COARSE and again.fine.tolist() == FINE
    assert again.coarse.dtype == np.int32 and again.fine.dtype == np.int32
    x = np.array([3.0, 0.0, 9.0])
    y = np.array([3.0, 4.0, 9.0])
    assert assign_points(x, y, again, threads=1).tolist() == [0, 0, -1]
    with pytest.raises(ValueError, match=r"^not a stored placeharm grid$"):
        grid_from_bytes(SQUARE, b"PHGRID1\n" + data[8:])
    import json
    import zlib

    size = int.from_bytes(data[8:16], "little")
    header = json.loads(data[16 : 16 + size])
    body = zlib.decompress(data[16 + size :])
    assert header == {
        "bounds": [0.0, 0.0, 8.0, 8.0],
        "fine_size": [1.0, 1.0],
        "levels": 1,
        "margin": grid.margin,
        "coarse": [4, 4],
        "fine": [12, 2, 2],
    }

    def with_body(new_body: bytes, new_header: dict[str, object] = header) -> bytes:
        text = json.dumps(new_header).encode()
        return b"PHGRID2\n" + len(text).to_bytes(8, "little") + text + zlib.compress(new_body)

    assert grid_from_bytes(SQUARE, with_body(body)).coarse.tolist() == COARSE
    with pytest.raises(ValueError, match=r"^a stored grid has bytes after its cells$"):
        grid_from_bytes(SQUARE, with_body(body + b"\x00"))
    with pytest.raises(ValueError, match=r"^a stored grid's cells do not fill its shape$"):
        grid_from_bytes(SQUARE, with_body(body, {**header, "coarse": [4, 5]}))
    # The coarse cells' runs by hand: 14 runs (the 12 block ids and the middle 0s split by
    # them: -2,-3,-4,-5,-6,0,0,-7,-8,0,0,-9,... gives -6 | 0 0 | -7 -8 | 0 0 | -9).
    n = int.from_bytes(body[:8], "little")
    values = np.frombuffer(body, dtype="<i4", count=n, offset=8).tolist()
    lengths = np.frombuffer(body, dtype="<i8", count=n, offset=8 + 4 * n).tolist()
    assert values == [-2, -3, -4, -5, -6, 0, -7, -8, 0, -9, -10, -11, -12, -13]
    assert lengths == [1, 1, 1, 1, 1, 2, 1, 1, 2, 1, 1, 1, 1, 1]


def test_infinite_coordinates_go_nowhere() -> None:
    x = np.array([np.inf, 4.0, -np.inf, np.nan, 1.0])
    y = np.array([1.0, np.inf, 1.0, np.nan, 1.0])
    assert assign_points(x, y, TIES, threads=1).tolist() == [-1, -1, -1, -1, 0]
    assert assign_points(x, y, _square_grid(), threads=1).tolist() == [-1, -1, -1, -1, 0]


def test_grid_of_no_polygons_by_hand() -> None:
    for polygons in (np.array([], dtype=object), np.array([shapely.Polygon()], dtype=object)):
        grid = PolygonGrid.build(polygons, levels=2, threads=1)
        assert len(grid.polygons) == len(polygons)
        assert (grid.bounds, grid.fine_size, grid.levels, grid.margin) == (
            (0.0, 0.0, 0.0, 0.0),
            (1.0, 1.0),
            2,
            0.0,
        )
        assert grid.coarse.tolist() == [[-1]] and grid.coarse.dtype == np.int32
        assert grid.fine.shape == (0, 4, 4) and grid.fine.dtype == np.int32
        found = grid.lookup(np.array([0.0, 0.5, np.nan]), np.array([0.0, 0.5, 1.0]))
        assert found.tolist() == [-1, -1, -1] and found.dtype == np.int32
        assert assign_points(np.array([0.0]), np.array([0.0]), grid).tolist() == [-1]


# 8 x 6 from (10, 20), 16 coarse cells: side sqrt(48 / 16) = 1.73, so 5 columns of 1.6 and
# 4 rows of 1.5 (levels 0). The border cells are near an edge; the 6 inside hold 0.
RECT = np.array([shapely.box(10, 20, 18, 26)], dtype=object)


def test_grid_with_an_origin_and_cells_that_are_not_square() -> None:
    grid = PolygonGrid.build(RECT, coarse_cells=16, levels=0, threads=1)
    assert grid.bounds == (10.0, 20.0, 18.0, 26.0)
    assert grid.fine_size == pytest.approx((1.6, 1.5))
    assert grid.margin == pytest.approx(1.5e-8, rel=1e-12)  # 1e-8 of the shorter side
    assert np.where(grid.coarse >= -1, grid.coarse, 9).tolist() == [
        [9, 9, 9, 9, 9],
        [9, 0, 0, 0, 9],
        [9, 0, 0, 0, 9],
        [9, 9, 9, 9, 9],
    ]
    x = np.array([11.7, 16.2, 16.2, 16.2, 17.0, 10.5, 9.9, 14.0])
    y = np.array([21.6, 21.6, 24.4, 24.6, 22.0, 22.0, 22.0, 26.1])
    # columns: 1.7 / 1.6 -> 1, 6.2 / 1.6 -> 3, 7.0 / 1.6 -> 4; rows: 1.6 / 1.5 -> 1,
    # 4.4 / 1.5 -> 2, 4.6 / 1.5 -> 3
    assert grid.lookup(x, y).tolist() == [0, 0, 0, -2, -2, -2, -1, -1]
    assert assign_points(x, y, grid, threads=1).tolist() == [0, 0, 0, 0, 0, 0, -1, -1]
    again = grid_from_bytes(RECT, grid_to_bytes(grid))
    assert again.bounds == (10.0, 20.0, 18.0, 26.0)
    assert again.lookup(x, y).tolist() == [0, 0, 0, -2, -2, -2, -1, -1]
    # Turned a quarter: 4 columns of 1.5 and 5 rows of 1.6; the margin is 1e-8 x 1.5 again.
    tall = PolygonGrid.build(np.array([shapely.box(0, 0, 6, 8)]), coarse_cells=16, levels=0)
    assert tall.coarse.shape == (5, 4)
    assert tall.margin == pytest.approx(1.5e-8, rel=1e-12)


def test_grid_shape_of_small_and_single_cell_sets() -> None:
    # 0.5 x 0.25 with 8 cells: side 0.125, 4 columns and 2 rows
    small = PolygonGrid.build(np.array([shapely.box(0, 0, 0.5, 0.25)]), coarse_cells=8, levels=0)
    assert small.coarse.shape == (2, 4)
    assert small.fine_size == (0.125, 0.125)
    one = PolygonGrid.build(SQUARE, coarse_cells=1, levels=0, threads=1)
    assert one.coarse.tolist() == [[-2]] and one.fine.tolist() == [[[-2]]]


@pytest.mark.parametrize(
    "box",
    [
        (1_048_570, 0, 1_048_580, 10),  # the largest magnitude is max x
        (-1_048_580, 0, -1_048_570, 10),  # min x
        (0, 1_048_570, 10, 1_048_580),  # max y
        (0, -1_048_580, 10, -1_048_570),  # min y
    ],
)
def test_the_margin_covers_the_rounding_of_large_coordinates(box: tuple[int, ...]) -> None:
    """At 1,048,580 (above 2**20) a double's spacing is 2**-32: the margin is 1000 of them
    (2.3e-7), more than 1e-8 of a 2.5-unit cell; at 1,048,570 it would be half that."""
    grid = PolygonGrid.build(np.array([shapely.box(*box)]), coarse_cells=16, levels=0)
    assert grid.margin == 1000 * 2.0**-32


def test_the_margin_of_a_tiny_set_is_at_least_the_rounding_at_one() -> None:
    """A 0.0001-unit square in 64 cells: 1e-8 of a cell (1.25e-13) is below 1000 x the
    spacing of doubles at 1 (2**-52), which is the margin then."""
    grid = PolygonGrid.build(np.array([shapely.box(0, 0, 1e-4, 1e-4)]), coarse_cells=64)
    assert grid.margin == 1000 * 2.0**-52


def test_fine_levels_never_go_below_none(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a ceiling below the 12 border cells themselves, the grid still has one level of
    cells (levels 0), never fewer."""
    monkeypatch.setattr(assign_module, "_FINE_CELLS_MAX", 11)
    grid = _square_grid()
    assert grid.levels == 0
    assert grid.coarse.tolist() == COARSE


def test_polygons_are_prepared_once_for_every_path() -> None:
    raw = shapely.from_wkb(shapely.to_wkb(TIES))
    assert not shapely.is_prepared(raw).any()
    assert shapely.is_prepared(assign_module.PreparedPolygons.build(raw).polygons).all()
    raw = shapely.from_wkb(shapely.to_wkb(TIES))
    grid = PolygonGrid.build(raw, coarse_cells=16, levels=1, threads=1)
    assert shapely.is_prepared(grid.polygons).all()
    raw = shapely.from_wkb(shapely.to_wkb(TIES))
    assert shapely.is_prepared(grid_from_bytes(raw, grid_to_bytes(grid)).polygons).all()
