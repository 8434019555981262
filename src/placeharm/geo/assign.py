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


def assign_points(
    x: npt.NDArray[np.float64],
    y: npt.NDArray[np.float64],
    polygons: npt.NDArray[np.object_],
    threads: int = 2,
) -> npt.NDArray[np.int32]:
    """Index into `polygons` of the polygon holding each point, or -1 if none does.

    A point on a shared edge, or inside two overlapping polygons (generalised boundaries can
    overlap slightly), goes to the polygon with the lowest index, so the result is
    deterministic. Points with NaN coordinates get -1.

    Parameters
    ----------
    x, y
        Longitudes and latitudes (or any coordinates in the polygons' CRS).
    polygons
        Shapely polygons or multipolygons, ordered as the caller wants ties broken.
    threads
        Worker threads; chunks of a million points are spread across them.

    Returns
    -------
    numpy.ndarray
        int32 array, one entry per point.
    """
    n = len(x)
    result = np.full(n, -1, dtype=np.int32)
    if n == 0 or len(polygons) == 0:
        return result
    shapely.prepare(polygons)
    starts = range(0, n, _CHUNK)

    def run(start: int) -> None:
        stop = min(start + _CHUNK, n)
        points = shapely.points(x[start:stop], y[start:stop])
        tree = shapely.STRtree(points)
        poly_idx, point_idx = tree.query(polygons, predicate="intersects")
        if len(point_idx) == 0:
            return
        # Lowest polygon index wins: write in descending polygon order so it lands last.
        order = np.argsort(-poly_idx, kind="stable")
        chunk = result[start:stop]
        chunk[point_idx[order]] = poly_idx[order]

    if threads <= 1 or len(starts) == 1:
        for s in starts:
            run(s)
    else:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(run, starts))
    return result
