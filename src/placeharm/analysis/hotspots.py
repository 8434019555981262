"""Significant hot and cold spots: Getis-Ord Gi* with permutation inference and FDR control.

The statistic and its conditional permutation test are esda's (`esda.G_Local`, star=True,
binary weights with each area its own neighbour); this module only builds the neighbours from
area polygons, lines values up with area codes, leaves out areas with no neighbour, turns
esda's one-sided pseudo p-values into two-sided ones and controls the false discovery rate
across areas (Benjamini-Hochberg). Method, references and limits: docs/analysis.md.

References
----------
Getis, A. and Ord, J. K. (1992). The analysis of spatial association by use of distance
statistics. Geographical Analysis 24(3), 189-206.
Ord, J. K. and Getis, A. (1995). Local spatial autocorrelation statistics: distributional
issues and an application. Geographical Analysis 27(4), 286-306.
Benjamini, Y. and Hochberg, Y. (1995). Controlling the false discovery rate: a practical and
powerful approach to multiple testing. JRSS B 57(1), 289-300.
"""

from __future__ import annotations

import math
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shapely

from placeharm.analysis.stats import bh_adjust
from placeharm.errors import DataError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

CONTIGUITY, DISTANCE = "contiguity", "distance"
WEIGHT_KINDS = (CONTIGUITY, DISTANCE)
HOT, COLD, NOT_SIGNIFICANT, NOT_TESTED = "hot spot", "cold spot", "not significant", "not tested"
CLASSES = (HOT, COLD, NOT_SIGNIFICANT, NOT_TESTED)
# Generalised boundaries are simplified one area at a time, so neighbours may overlap a little
# or leave slivers: areas within this distance of each other count as touching (Queen).
TOLERANCE_M = 10.0
# 9,999 by default: with 999 the smallest p-value (0.002) is too coarse for Benjamini-Hochberg
# over hundreds of areas (37 of 916 LSOAs must reach it at FDR 0.05); on real LSOA crime
# counts 999 found nothing while 9,999 found the city-centre cluster (docs/analysis.md)
PERMUTATIONS = 9_999
SEED = 16
FDR = 0.05
# at most 9,999: the permuted Gi* are kept (areas x permutations x 8 bytes: 73 MB for 916
# areas) to count ties on both sides
PERMUTATIONS_RANGE = (99, 9_999)

# esda seeds numpy's global random state (np.random.seed) before drawing its permutations:
# one Gi* at a time in this process, so concurrent requests cannot interleave their draws.
_ESDA_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class Neighbours:
    """Who neighbours whom: for each area (in the order the geometries were given) the
    positions of its neighbours, never itself. Symmetric by construction."""

    kind: str  # CONTIGUITY or DISTANCE
    distance_m: float  # the contiguity tolerance, or the distance band
    lists: tuple[tuple[int, ...], ...]

    @property
    def cardinalities(self) -> IntArray:
        return np.array([len(n) for n in self.lists], dtype=np.int64)

    def describe(self) -> str:
        if self.kind == CONTIGUITY:
            return (
                "contiguity (Queen): areas whose boundaries touch or overlap, or lie within "
                f"{self.distance_m:g} m of each other"
            )
        return f"distance band: areas whose centroids lie within {self.distance_m:,.0f} m"


def _lists(n: int, left: IntArray, right: IntArray) -> tuple[tuple[int, ...], ...]:
    keep = left != right
    pairs = sorted(set(zip(left[keep].tolist(), right[keep].tolist(), strict=True)))
    out: list[list[int]] = [[] for _ in range(n)]
    for i, j in pairs:
        out[i].append(j)
    return tuple(tuple(x) for x in out)


def contiguity(
    geometries_m: Sequence[shapely.Geometry], tolerance_m: float = TOLERANCE_M
) -> Neighbours:
    """Queen contiguity from polygons in a metric projection (e.g. British National Grid):
    two areas are neighbours when their polygons touch, overlap or lie within `tolerance_m`.

    Geometric, not by shared vertices: libpysal's vertex-based Queen finds no neighbour at all
    among the published generalised LSOA boundaries, whose shared edges do not share vertices.
    """
    if tolerance_m < 0 or not math.isfinite(tolerance_m):
        raise DataError(f"the contiguity tolerance must be 0 m or more, not {tolerance_m}")
    geoms = np.asarray(geometries_m, dtype=object)
    tree = shapely.STRtree(geoms)
    if tolerance_m > 0:
        left, right = tree.query(geoms, predicate="dwithin", distance=tolerance_m)
    else:
        left, right = tree.query(geoms, predicate="intersects")
    return Neighbours(CONTIGUITY, float(tolerance_m), _lists(len(geoms), left, right))


def distance_band(geometries_m: Sequence[shapely.Geometry], distance_m: float) -> Neighbours:
    """Binary distance-band neighbours: areas whose centroids (metric projection) lie within
    `distance_m` of each other."""
    if not distance_m > 0 or not math.isfinite(distance_m):
        raise DataError(f"the distance band must be more than 0 m, not {distance_m}")
    points = shapely.centroid(np.asarray(geometries_m, dtype=object))
    tree = shapely.STRtree(points)
    left, right = tree.query(points, predicate="dwithin", distance=distance_m)
    return Neighbours(DISTANCE, float(distance_m), _lists(len(points), left, right))


@dataclass(frozen=True, slots=True)
class GiStar:
    """Gi* per area, in area-code order. NaN statistics for areas not tested (no neighbour)."""

    codes: list[str]
    values: FloatArray
    neighbours: IntArray  # neighbours of each area, not counting itself
    z: FloatArray  # Ord & Getis (1995) z of Gi* (esda G_Local.Zs)
    p_sim: FloatArray  # esda's pseudo p-value, one-sided in the observed direction
    p_value: FloatArray  # two-sided, ties counted on both sides (`_two_sided`)
    q_value: FloatArray  # Benjamini-Hochberg adjusted over the areas tested
    classes: list[str]
    permutations: int
    seed: int
    fdr: float

    @property
    def tested(self) -> int:
        return int(np.isfinite(self.z).sum())

    @property
    def islands(self) -> list[str]:
        return [c for c, k in zip(self.codes, self.neighbours, strict=True) if k == 0]

    @property
    def smallest_p(self) -> float:
        """The smallest two-sided p-value the permutations can give."""
        return min(1.0, 2 / (self.permutations + 1))

    @property
    def areas_needed(self) -> int:
        """How many areas must reach the smallest p-value before Benjamini-Hochberg can call
        any significant at this FDR (the permutations' resolution limit)."""
        return max(1, math.ceil(self.tested * self.smallest_p / self.fdr - 1e-9))

    @property
    def at_floor(self) -> int:
        """Areas whose p-value is the smallest the permutations can give."""
        return int((self.p_value <= self.smallest_p * (1 + 1e-9)).sum())

    @property
    def resolution_limited(self) -> bool:
        """Some areas reach the smallest p-value, too few for any to be called significant:
        more permutations could change the answer."""
        return 0 < self.at_floor < self.areas_needed

    def count(self, cls: str) -> int:
        return sum(1 for c in self.classes if c == cls)


def gi_star(
    codes: Sequence[str],
    values: Sequence[float] | FloatArray,
    neighbours: Neighbours,
    permutations: int = PERMUTATIONS,
    fdr: float = FDR,
    seed: int = SEED,
) -> GiStar:
    """Getis-Ord Gi* of `values` (one per area code, in the order of `neighbours`), with
    `permutations` conditional permutations (esda, seeded) and Benjamini-Hochberg control of
    the false discovery rate at `fdr` across the areas tested.

    Parameters
    ----------
    codes, values : one per area, in the order the neighbours were built from.
    neighbours : `contiguity` or `distance_band` of the same areas.
    permutations : conditional permutations per area (esda's `crand`).
    fdr : the false discovery rate controlled across areas (Benjamini & Hochberg 1995).
    seed : the permutations' seed: the same input gives the same result.

    Returns
    -------
    GiStar in area-code order (so the input's row order cannot change any result). Areas with
    no neighbour are not tested (Gi* of one area alone says nothing about a cluster).
    """
    n = len(codes)
    y_in = np.asarray(values, dtype=np.float64)
    if y_in.shape != (n,) or len(neighbours.lists) != n:
        raise DataError("one value and one neighbour list per area are needed")
    if len(set(codes)) != n:
        raise DataError("area codes must be unique")
    if not np.isfinite(y_in).all():
        raise DataError("every area needs a value (no gaps) for Gi*")
    lo, hi = PERMUTATIONS_RANGE
    if not lo <= permutations <= hi:
        raise DataError(f"permutations must be from {lo} to {hi:,}, not {permutations}")
    if not 0 < fdr < 1:
        raise DataError(f"the false discovery rate must be above 0 and below 1, not {fdr}")
    order = np.array(sorted(range(n), key=lambda i: codes[i]), dtype=np.int64)
    position = np.empty(n, dtype=np.int64)
    position[order] = np.arange(n)
    sorted_codes = [codes[i] for i in order]
    y = y_in[order]
    lists = [sorted(int(position[j]) for j in neighbours.lists[i]) for i in order]
    cardinality = np.array([len(x) for x in lists], dtype=np.int64)
    tested = np.flatnonzero(cardinality > 0)
    if tested.size < 3:
        raise DataError(
            f"only {tested.size} areas have a neighbour: Gi* needs at least 3 (widen the "
            "distance band, or choose a larger area set)"
        )
    y_t = y[tested]
    if float(np.ptp(y_t)) == 0.0:
        raise DataError(
            f"every area tested has the same value ({y_t[0]:g}): there is no hot or cold spot "
            "to find"
        )
    z = np.full(n, np.nan)
    p_sim = np.full(n, np.nan)
    z_t, p_t, g_t, simulated = _esda_gi_star(y_t, lists, tested, permutations, seed)
    z[tested], p_sim[tested] = z_t, p_t
    p_value = np.full(n, np.nan)
    p_value[tested] = _two_sided(g_t, simulated)
    q_value = np.full(n, np.nan)
    q_value[tested] = bh_adjust(p_value[tested])
    classes = []
    for k in range(n):
        if cardinality[k] == 0:
            classes.append(NOT_TESTED)
        elif q_value[k] <= fdr and z[k] > 0:
            classes.append(HOT)
        elif q_value[k] <= fdr and z[k] < 0:
            classes.append(COLD)
        else:
            classes.append(NOT_SIGNIFICANT)
    return GiStar(
        sorted_codes,
        y,
        cardinality,
        z,
        p_sim,
        p_value,
        q_value,
        classes,
        permutations,
        seed,
        fdr,
    )


def _two_sided(observed: FloatArray, simulated: FloatArray) -> FloatArray:
    """Two-sided permutation p-values: 2 x (the fewer of the draws at or above and at or below
    the observed Gi*, + 1) / (draws + 1), at most 1.

    esda's own p_sim counts draws at or above the observed value and, when those are the
    majority, takes the rest as the lower tail: a draw equal to the observed one then counts
    for neither side. With many tied values (areas with no records at all) every draw of a
    block of zeros ties with it, and esda reports the smallest p-value, calling the block a
    cold spot; here a tie counts on both sides, so it cannot. Without ties this is exactly
    min(1, 2 x p_sim).
    """
    draws = simulated.shape[1]
    # Gi* is a ratio of sums: equal sums may differ in the last bits, so compare with a
    # relative tolerance
    slack = 1e-9 * np.maximum(np.abs(observed), 1e-300)[:, None]
    above = (simulated >= observed[:, None] - slack).sum(axis=1)
    below = (simulated <= observed[:, None] + slack).sum(axis=1)
    extreme = np.minimum(above, below)
    return np.asarray(np.minimum(1.0, 2 * (extreme + 1) / (draws + 1)), dtype=np.float64)


def _esda_gi_star(
    y: FloatArray, lists: list[list[int]], tested: IntArray, permutations: int, seed: int
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """esda's Gi* (binary weights, self-weight 1) over the areas `tested`, renumbered 0..m-1."""
    # imported here: esda and libpysal take seconds to import, and only this needs them
    import esda  # type: ignore[import-untyped]
    from libpysal.weights import W  # type: ignore[import-untyped]

    renumber = {int(old): new for new, old in enumerate(tested)}
    neighbour_dict = {new: [renumber[j] for j in lists[old]] for old, new in renumber.items()}
    with _ESDA_LOCK, warnings.catch_warnings():
        # esda warns that its default alternative ("directed") will change: we use it as
        # documented and make it two-sided ourselves
        warnings.simplefilter("ignore")
        weights = W(neighbour_dict, silence_warnings=True)
        result = esda.G_Local(
            y,
            weights,
            transform="B",
            permutations=permutations,
            star=True,
            keep_simulations=True,
            n_jobs=1,  # joblib's worker processes cost more than they save here
            seed=seed,
        )
    return (
        np.asarray(result.Zs, dtype=np.float64),
        np.asarray(result.p_sim, dtype=np.float64),
        np.asarray(result.Gs, dtype=np.float64),
        np.asarray(result.rGs, dtype=np.float64),  # areas x permutations
    )
