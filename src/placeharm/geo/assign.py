"""Which area of a set each point falls in.

The tree is built over the points and queried with the polygons (`predicate="intersects"`),
which is several times faster than one polygon query per point (../shared/STACK.md); chunks
run on a small thread pool because shapely releases the GIL.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import numpy.typing as npt
import shapely

_CHUNK = 1_000_000
_MIN_CHUNK = 50_000


def assign_points(
    x: npt.NDArray[np.float64],
    y: npt.NDArray[np.float64],
    polygons: npt.NDArray[np.object_],
    threads: int = 2,
) -> npt.NDArray[np.int32]:
    """Index into `polygons` of the polygon holding each point, or -1 if none does.

    One set at a time; see `assign_points_to_sets`, which shares the point tree.
    """
    return assign_points_to_sets(x, y, [polygons], threads)[0]


def assign_points_to_sets(
    x: npt.NDArray[np.float64],
    y: npt.NDArray[np.float64],
    polygon_sets: list[npt.NDArray[np.object_]],
    threads: int = 2,
) -> list[npt.NDArray[np.int32]]:
    """For each set of polygons, the index of the polygon holding each point, or -1.

    A point on a shared edge, or inside two overlapping polygons (generalised boundaries can
    overlap slightly), goes to the polygon with the lowest index, so the result is
    deterministic. Points with NaN coordinates get -1. The points and their STRtree are
    built once per chunk and queried with every set.

    Parameters
    ----------
    x, y
        Longitudes and latitudes (or any coordinates in the polygons' CRS).
    polygon_sets
        One array of shapely (Multi)Polygons per area set, ordered as ties should break.
    threads
        Worker threads; the points are split into chunks (at most a million) across them.

    Returns
    -------
    list of numpy.ndarray
        One int32 array per set, one entry per point.
    """
    n = len(x)
    results = [np.full(n, -1, dtype=np.int32) for _ in polygon_sets]
    if n == 0:
        return results
    for polygons in polygon_sets:
        shapely.prepare(polygons)
    # Enough chunks to keep every thread busy, none over _CHUNK points (memory).
    chunk = min(_CHUNK, max(_MIN_CHUNK, -(-n // max(threads, 1))))
    starts = range(0, n, chunk)

    def run(start: int) -> None:
        stop = min(start + chunk, n)
        tree = shapely.STRtree(shapely.points(x[start:stop], y[start:stop]))
        for polygons, result in zip(polygon_sets, results, strict=True):
            if len(polygons) == 0:
                continue
            poly_idx, point_idx = tree.query(polygons, predicate="intersects")
            if len(point_idx) == 0:
                continue
            # Lowest polygon index wins: write in descending polygon order so it lands last.
            order = np.argsort(-poly_idx, kind="stable")
            result[start:stop][point_idx[order]] = poly_idx[order]

    if threads <= 1 or len(starts) == 1:
        for s in starts:
            run(s)
    else:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(run, starts))
    return results
