"""Which area of a set each point falls in.

Most points are answered by a grid laid over the set (`PolygonGrid`): a cell that no polygon
edge comes near lies wholly inside one polygon (or outside all), so its answer is known
without testing the point. Only points in cells that an edge crosses are tested exactly
with shapely: an STRtree built over those points and queried with the polygons
(`predicate="intersects"`), which is several times faster than one polygon query per point
(../shared/STACK.md); chunks run on a small thread pool because shapely releases the GIL.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shapely

_CHUNK = 1_000_000
# Fewer points than this are tested on one thread.
_MIN_CHUNK = 50_000
# Below this many points a grid costs more to build than it saves.
GRID_MIN_POINTS = 20_000
# Coarse cells per polygon, and halvings from a coarse cell to the finest (32 x 32 fine
# cells per coarse cell). Measured on the Northumbria sets and the jittered 10M-row points:
# 92% (LSOA) to 95% (ward) of points land in a cell with a known answer; the LSOA grid
# takes about 3 s of CPU to build. 4 levels: 85 to 90%, 1.3 s; the 10M ingest was 2.5 s
# slower with 4.
_COARSE_CELLS_PER_POLYGON = 64
_COARSE_CELLS_MIN = 4_096
_COARSE_CELLS_MAX = 1_000_000
_LEVELS = 5
# At most this many fine cells (4 bytes each) per grid.
_FINE_CELLS_MAX = 1 << 24

_OUTSIDE = -1  # no polygon holds the point
_EXACT = -2  # an edge may pass through the cell: test the point itself


@dataclass(frozen=True, slots=True)
class PolygonGrid:
    """A two-level grid over one set of polygons, answering most points without shapely.

    A coarse grid covers the polygons' bounds. A coarse cell that no polygon edge comes near
    holds its answer: the lowest polygon index holding it, or -1. A cell an edge comes near
    points to a block of ``2**levels`` by ``2**levels`` fine cells, each holding its answer
    or -2 (an edge comes near: the point must be tested exactly). Cells are classified by
    halving blocks edges come near, down to the fine level.

    A cell no edge comes near lies wholly in the interior or the exterior of each polygon
    (it is connected and no boundary crosses it), so every point in it is held by exactly
    the polygons holding its centre, which is tested with shapely like any point: the
    answers are identical to testing every point. "Comes near" is decided on each edge
    segment's bounding box widened by `margin` (many times the rounding of a point's cell
    index, so a point is never placed in a cell it lies outside).
    """

    polygons: npt.NDArray[np.object_]
    bounds: tuple[float, float, float, float]
    fine_size: tuple[float, float]
    levels: int
    margin: float
    coarse: npt.NDArray[np.int32]  # (rows, columns): polygon index, -1, or -2 - block
    fine: npt.NDArray[np.int32]  # (blocks, 2**levels, 2**levels): polygon index, -1 or -2

    @classmethod
    def build(
        cls,
        polygons: npt.NDArray[np.object_],
        coarse_cells: int | None = None,
        levels: int = _LEVELS,
        threads: int = 2,
    ) -> PolygonGrid:
        """Lay a grid over `polygons` (ordered as ties should break) and classify its cells.

        Parameters
        ----------
        polygons
            Shapely (Multi)Polygons in one CRS.
        coarse_cells
            About how many coarse cells to lay over the bounds; by default 64 per polygon
            (between 4,096 and a million).
        levels
            Halvings from a coarse cell to a fine one (fewer if the fine cells would pass
            16 million).
        threads
            Worker threads for testing the cells' centres.
        """
        polygons = _prepared(polygons)
        present = polygons[~shapely.is_empty(polygons)] if len(polygons) else polygons
        if len(present) == 0:
            empty = np.full((1, 1), _OUTSIDE, dtype=np.int32)
            no_blocks = np.empty((0, 1 << levels, 1 << levels), dtype=np.int32)
            return cls(polygons, (0.0, 0.0, 0.0, 0.0), (1.0, 1.0), levels, 0.0, empty, no_blocks)
        minx, miny, maxx, maxy = (float(v) for v in shapely.total_bounds(present))
        width, height = max(maxx - minx, 1e-9), max(maxy - miny, 1e-9)
        if coarse_cells is None:
            coarse_cells = _COARSE_CELLS_PER_POLYGON * len(polygons)
            coarse_cells = min(max(coarse_cells, _COARSE_CELLS_MIN), _COARSE_CELLS_MAX)
        side = np.sqrt(width * height / coarse_cells)
        columns = max(1, int(np.ceil(width / side)))
        rows = max(1, int(np.ceil(height / side)))
        spacing = float(np.spacing(max(abs(minx), abs(maxx), abs(miny), abs(maxy), 1.0)))
        margin = max(1e-8 * min(width / columns, height / rows), 1e3 * spacing)

        # Every edge segment of every polygon (exterior and holes), as bounding boxes.
        lines = shapely.get_parts(shapely.boundary(present))
        coords, ring = shapely.get_coordinates(lines, return_index=True)
        same = ring[1:] == ring[:-1]
        ends = np.column_stack([coords[:-1][same], coords[1:][same]])  # x0, y0, x1, y1

        # Fewer levels where the fine blocks would take too much memory (a national set).
        near_coarse = len(
            _touched_cells(ends, margin, minx, miny, width / columns, height / rows, columns, rows)
        )
        while levels > 0 and near_coarse << (2 * levels) > _FINE_CELLS_MAX:
            levels -= 1
        fine_w, fine_h = width / (columns << levels), height / (rows << levels)

        # Halve the cells edges come near, level by level; keep those no edge comes near.
        free_cells = []  # per level: (columns, rows) of cells no edge comes near
        near = np.empty(0, dtype=np.int64)  # flat ids of cells edges come near
        for level in range(levels + 1):
            cols = columns << level
            scale = 1 << (levels - level)
            touched = _touched_cells(
                ends, margin, minx, miny, fine_w * scale, fine_h * scale, cols, rows << level
            )
            if level == 0:
                candidates = np.arange(cols * rows, dtype=np.int64)
            else:  # the four children of each cell an edge came near one level up
                r, c = np.divmod(near, cols >> 1)
                candidates = np.concatenate(
                    [(2 * r + dr) * cols + 2 * c + dc for dr in (0, 1) for dc in (0, 1)]
                )
            hit = np.isin(candidates, touched)
            free = candidates[~hit]
            free_cells.append((free % cols, free // cols))
            near = candidates[hit]
            if level == 0:
                coarse_near = near

        # One exact test per cell no edge comes near: its centre.
        centre_x, centre_y = [], []
        for level, (c, r) in enumerate(free_cells):
            scale = 1 << (levels - level)
            centre_x.append(minx + (c + 0.5) * fine_w * scale)
            centre_y.append(miny + (r + 0.5) * fine_h * scale)
        answers = _assign_exact(
            np.concatenate(centre_x), np.concatenate(centre_y), polygons, threads
        )

        coarse = np.full((rows, columns), _OUTSIDE, dtype=np.int32)
        c, r = free_cells[0]
        coarse[r, c] = answers[: len(c)]
        done = len(c)
        coarse.flat[coarse_near] = -2 - np.arange(len(coarse_near), dtype=np.int32)
        k = 1 << levels
        fine = np.full((len(coarse_near), k, k), _EXACT, dtype=np.int32)
        for level, (c, r) in enumerate(free_cells[1:], start=1):
            size = 1 << (levels - level)
            block = -2 - coarse[r >> level, c >> level]
            low = (1 << level) - 1
            fy = ((r & low) * size)[:, None, None] + np.arange(size)[None, :, None]
            fx = ((c & low) * size)[:, None, None] + np.arange(size)[None, None, :]
            fine[block[:, None, None], fy, fx] = answers[done : done + len(c), None, None]
            done += len(c)
        return cls(
            polygons, (minx, miny, maxx, maxy), (fine_w, fine_h), levels, margin, coarse, fine
        )

    def lookup(
        self, x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.int32]:
        """Each point's polygon index, -1 if none holds it, or -2 if it must be tested."""
        minx, miny, maxx, maxy = self.bounds
        if self.margin == 0.0:  # no polygons
            return np.full(len(x), _OUTSIDE, dtype=np.int32)
        rows, columns = self.coarse.shape
        k = 1 << self.levels
        # Fine cell of each point, clipped into the grid (fmax takes NaN to 0; NaN and far
        # points are masked below).
        gx = np.fmin(np.fmax((x - minx) / self.fine_size[0], 0), columns * k - 1)
        gy = np.fmin(np.fmax((y - miny) / self.fine_size[1], 0), rows * k - 1)
        gx, gy = gx.astype(np.int64), gy.astype(np.int64)
        out: npt.NDArray[np.int32] = self.coarse.ravel().take(
            (gy >> self.levels) * columns + (gx >> self.levels)
        )
        sub = np.flatnonzero(out <= -2)
        if len(sub):
            cell = (-2 - out[sub].astype(np.int64)) * (k * k)
            cell += (gy[sub] & (k - 1)) * k + (gx[sub] & (k - 1))
            out[sub] = self.fine.ravel().take(cell)
        # NaN compares False, so NaN coordinates get -1; so do points outside the bounds.
        out[~((x >= minx) & (x <= maxx) & (y >= miny) & (y <= maxy))] = _OUTSIDE
        return out


@dataclass(frozen=True, slots=True)
class PreparedPolygons:
    """Polygons prepared, with their lazy indexes built, once (see `_prepared`).

    For a set that answers many small batches without a grid: preparing and warming up
    ~1,000 polygons costs a few milliseconds per call otherwise (Northumbria's 33 monthly
    files, three sets: 0.27 s of the run). Like any prepared polygon, one instance must not be
    queried from two threads at once (`Assigner` holds a lock; `_assign_exact` splits the
    polygons between its threads).
    """

    polygons: npt.NDArray[np.object_]

    @classmethod
    def build(cls, polygons: npt.NDArray[np.object_]) -> PreparedPolygons:
        return cls(_prepared(np.asarray(polygons, dtype=object)))


def assign_points(
    x: npt.NDArray[np.float64],
    y: npt.NDArray[np.float64],
    polygons: npt.NDArray[np.object_] | PolygonGrid | PreparedPolygons,
    threads: int = 2,
) -> npt.NDArray[np.int32]:
    """Index into `polygons` of the polygon holding each point, or -1 if none does.

    One set at a time; see `assign_points_to_sets`.
    """
    return assign_points_to_sets(x, y, [polygons], threads)[0]


def assign_points_to_sets(
    x: npt.NDArray[np.float64],
    y: npt.NDArray[np.float64],
    polygon_sets: Sequence[npt.NDArray[np.object_] | PolygonGrid | PreparedPolygons],
    threads: int = 2,
) -> list[npt.NDArray[np.int32]]:
    """For each set of polygons, the index of the polygon holding each point, or -1.

    A point on a shared edge, or inside two overlapping polygons (generalised boundaries can
    overlap slightly), goes to the polygon with the lowest index, so the result is
    deterministic. Points with NaN coordinates get -1. The answer is exactly shapely's
    `intersects` of each point with each polygon; a grid (`PolygonGrid`) only decides which
    points need testing.

    Parameters
    ----------
    x, y
        Longitudes and latitudes (or any coordinates in the polygons' CRS).
    polygon_sets
        Per area set, its shapely (Multi)Polygons ordered as ties should break, or a
        `PolygonGrid` or `PreparedPolygons` built over them (build it once when assigning
        many batches).
    threads
        Worker threads; points tested exactly are split into chunks (at most a million)
        across them.

    Returns
    -------
    list of numpy.ndarray
        One int32 array per set, one entry per point.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    results = []
    for polygons in polygon_sets:
        grid = polygons if isinstance(polygons, PolygonGrid) else None
        ready = polygons if isinstance(polygons, PreparedPolygons) else None
        if grid is None and len(x) >= GRID_MIN_POINTS:
            raw = ready.polygons if ready is not None else polygons
            grid = PolygonGrid.build(np.asarray(raw, dtype=object), threads=threads)
        if grid is not None:
            found = grid.lookup(x, y)
            exact = np.flatnonzero(found == _EXACT)
            found[exact] = _assign_exact(x[exact], y[exact], grid.polygons, threads)
        else:
            prepared = (
                ready.polygons
                if ready is not None
                else _prepared(np.asarray(polygons, dtype=object))
            )
            valid = np.isfinite(x) & np.isfinite(y)
            found = np.full(len(x), _OUTSIDE, dtype=np.int32)
            found[valid] = _assign_exact(x[valid], y[valid], prepared, threads)
        results.append(found)
    return results


def _touched_cells(
    ends: npt.NDArray[np.float64],
    margin: float,
    minx: float,
    miny: float,
    w: float,
    h: float,
    columns: int,
    rows: int,
) -> npt.NDArray[np.int64]:
    """Flat ids (row * columns + column) of the cells each segment comes within `margin` of.

    Row by row: the part of the segment in the row's band (widened by `margin`) spans an
    x range, widened by `margin`; every cell that range overlaps is listed. Conservative:
    the rounding of the clipping is far below `margin`.
    """
    x0, y0, x1, y1 = ends.T
    ylo, yhi = np.minimum(y0, y1), np.maximum(y0, y1)
    r0 = np.clip(np.floor((ylo - margin - miny) / h), 0, rows - 1).astype(np.int64)
    r1 = np.clip(np.floor((yhi + margin - miny) / h), 0, rows - 1).astype(np.int64)
    seg, row = _expand(r0, r1)
    band_lo = np.clip(miny + row * h - margin, ylo[seg], yhi[seg])
    band_hi = np.clip(miny + (row + 1) * h + margin, ylo[seg], yhi[seg])
    dy = (y1 - y0)[seg]
    slope = np.divide((x1 - x0)[seg], dy, out=np.zeros_like(dy), where=dy != 0)
    xa = np.where(dy != 0, x0[seg] + (band_lo - y0[seg]) * slope, x0[seg])
    xb = np.where(dy != 0, x0[seg] + (band_hi - y0[seg]) * slope, x1[seg])
    c0 = np.floor((np.minimum(xa, xb) - margin - minx) / w)
    c1 = np.floor((np.maximum(xa, xb) + margin - minx) / w)
    c0, c1 = (np.clip(v, 0, columns - 1).astype(np.int64) for v in (c0, c1))
    pair, col = _expand(c0, c1)
    return np.unique(row[pair] * columns + col)


def _expand(
    first: npt.NDArray[np.int64], last: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Every integer of each range first..last (inclusive), with the index of its range."""
    count = last - first + 1
    owner = np.repeat(np.arange(len(first)), count)
    offset = np.arange(len(owner)) - np.repeat(np.cumsum(count) - count, count)
    return owner, first[owner] + offset


def _prepared(polygons: npt.NDArray[np.object_]) -> npt.NDArray[np.object_]:
    """Prepare the polygons and build their lazy indexes now, on this thread.

    GEOS builds a prepared polygon's point locator lazily, on first use, which is not safe
    from two threads at once (as with its STRtree, libgeos/geos#458). Without this warm-up
    the previous code, querying 200,000 points on two threads from the start, hung in 1 of
    4 runs here, and one comparison script crashed with "unaligned tcache chunk detected".
    """
    polygons = np.asarray(polygons, dtype=object)
    shapely.prepare(polygons)
    present = polygons[~shapely.is_empty(polygons)] if len(polygons) else polygons
    shapely.intersects(present, shapely.point_on_surface(present))
    return polygons


def _assign_exact(
    x: npt.NDArray[np.float64],
    y: npt.NDArray[np.float64],
    polygons: npt.NDArray[np.object_],
    threads: int,
) -> npt.NDArray[np.int32]:
    """Lowest index of a (prepared) polygon intersecting each point, or -1; shapely only."""
    n = len(x)
    result = np.full(n, _OUTSIDE, dtype=np.int32)
    if n == 0 or len(polygons) == 0:
        return result
    # Chunks of at most _CHUNK points (memory), one after another. Within a chunk the
    # threads share one point tree and split the polygons between them, so no prepared
    # polygon is ever used by two threads at once (its lazy indexes are not thread-safe).
    parts = [np.arange(i, len(polygons), max(threads, 1)) for i in range(max(threads, 1))]
    for start in range(0, n, _CHUNK):
        stop = min(start + _CHUNK, n)
        tree = shapely.STRtree(shapely.points(x[start:stop], y[start:stop]))

        def run(part: npt.NDArray[np.intp], tree: shapely.STRtree = tree) -> npt.NDArray[np.intp]:
            found = tree.query(polygons[part], predicate="intersects")
            return np.stack([part[found[0]], found[1]])  # (polygon index, point index)

        if threads <= 1 or stop - start < _MIN_CHUNK:
            pairs = [run(part) for part in parts]
        else:
            with ThreadPoolExecutor(max_workers=threads) as pool:
                pairs = list(pool.map(run, parts))
        poly_idx, point_idx = np.concatenate(pairs, axis=1)
        # Lowest polygon index wins: write in descending polygon order so it lands last.
        order = np.argsort(-poly_idx, kind="stable")
        result[start:stop][point_idx[order]] = poly_idx[order]
    return result


# -- a grid kept in the store (issue 14) ----------------------------------------------------

# What a stored grid was built by: a grid stored under another format, or over other
# polygons, is never used (`grid_digest`). Change it whenever the grid's construction or
# its constants change.
GRID_FORMAT = (
    f"placeharm-grid-2/cells={_COARSE_CELLS_PER_POLYGON},{_COARSE_CELLS_MIN},"
    f"{_COARSE_CELLS_MAX}/levels={_LEVELS}/fine={_FINE_CELLS_MAX}"
)
_GRID_MAGIC = b"PHGRID2\n"


def grid_digest(codes: Sequence[str], wkb: Sequence[bytes]) -> str:
    """The identity of a set's polygons, in order, for the grid built over them: sha256 of
    `GRID_FORMAT`, then each area's code and WKB (length-prefixed, so no two sets collide)."""
    h = hashlib.sha256(GRID_FORMAT.encode())
    for code, geometry in zip(codes, wkb, strict=True):
        text = str(code).encode()
        h.update(len(text).to_bytes(8, "little") + text)
        h.update(len(geometry).to_bytes(8, "little") + geometry)
    return h.hexdigest()


def _runs(values: npt.NDArray[np.int32]) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int64]]:
    """Run-length encoding of a flat array: the value and length of each run."""
    if len(values) == 0:
        return values, np.empty(0, dtype=np.int64)
    starts = np.concatenate([[0], np.flatnonzero(values[1:] != values[:-1]) + 1])
    return values[starts], np.diff(np.append(starts, len(values)))


def grid_to_bytes(grid: PolygonGrid) -> bytes:
    """A grid's cells as bytes to keep in the store (not its polygons: they are the set's).

    The cell arrays are run-length encoded (most neighbouring cells share their answer) and
    compressed: Northumbria's LSOA grid, 34 MB in memory, is about half a megabyte.
    """
    header = {
        "bounds": list(grid.bounds),
        "fine_size": list(grid.fine_size),
        "levels": grid.levels,
        "margin": grid.margin,
        "coarse": list(grid.coarse.shape),
        "fine": list(grid.fine.shape),
    }
    parts = []
    for cells in (grid.coarse, grid.fine):
        values, lengths = _runs(cells.ravel())
        parts += [len(values).to_bytes(8, "little"), values.astype("<i4").tobytes()]
        parts.append(lengths.astype("<i8").tobytes())
    text = json.dumps(header).encode()
    body = zlib.compress(b"".join(parts), 1)
    return _GRID_MAGIC + len(text).to_bytes(8, "little") + text + body


def grid_from_bytes(polygons: npt.NDArray[np.object_], data: bytes) -> PolygonGrid:
    """The grid `grid_to_bytes` wrote, over `polygons` (the set's, in the same order: the
    caller checks `grid_digest`). Raises ValueError on bytes it did not write."""
    if not data.startswith(_GRID_MAGIC):
        raise ValueError("not a stored placeharm grid")
    at = len(_GRID_MAGIC)
    size = int.from_bytes(data[at : at + 8], "little")
    header = json.loads(data[at + 8 : at + 8 + size])
    body = zlib.decompress(data[at + 8 + size :])
    arrays = []
    offset = 0
    for shape in (header["coarse"], header["fine"]):
        n = int.from_bytes(body[offset : offset + 8], "little")
        offset += 8
        values = np.frombuffer(body, dtype="<i4", count=n, offset=offset)
        offset += 4 * n
        lengths = np.frombuffer(body, dtype="<i8", count=n, offset=offset)
        offset += 8 * n
        cells = np.repeat(values.astype(np.int32), lengths)
        if cells.size != int(np.prod(shape)):
            raise ValueError("a stored grid's cells do not fill its shape")
        arrays.append(cells.reshape(shape))
    if offset != len(body):
        raise ValueError("a stored grid has bytes after its cells")
    bounds = tuple(float(v) for v in header["bounds"])
    fine_w, fine_h = (float(v) for v in header["fine_size"])
    return PolygonGrid(
        _prepared(np.asarray(polygons, dtype=object)),
        (bounds[0], bounds[1], bounds[2], bounds[3]),
        (fine_w, fine_h),
        int(header["levels"]),
        float(header["margin"]),
        arrays[0],
        arrays[1],
    )
