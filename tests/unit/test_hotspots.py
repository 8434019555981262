"""Getis-Ord Gi* hot spots (issue 16): the wiring against a hand calculation, against esda
called directly, on real LSOA polygons (a planted cluster is found, random counts are not),
and the area-code alignment."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import shapely
from pyproj import Transformer

from placeharm.analysis import hotspots as hs
from placeharm.errors import DataError


def _square(x: int, y: int) -> shapely.Geometry:
    return shapely.box(x * 100.0, y * 100.0, (x + 1) * 100.0, (y + 1) * 100.0)


def _ord_getis_z(values: list[float], neighbours: list[set[int]]) -> list[float]:
    """Gi* z by hand, Ord & Getis (1995) eq. for binary weights with w_ii = 1:
    z_i = (sum_j w_ij x_j - xbar W_i) / (S sqrt((n W_i - W_i^2) / (n - 1))),
    W_i = sum_j w_ij (the area itself included), S^2 = sum x^2 / n - xbar^2."""
    n = len(values)
    xbar = sum(values) / n
    s = math.sqrt(sum(v * v for v in values) / n - xbar * xbar)
    out = []
    for i in range(n):
        near = neighbours[i] | {i}
        w = len(near)
        num = sum(values[j] for j in near) - xbar * w
        out.append(num / (s * math.sqrt((n * w - w * w) / (n - 1))))
    return out


def test_gi_star_equals_a_hand_calculation_on_a_lattice() -> None:
    # a 4 x 3 lattice of 100 m squares; codes given in an order unrelated to the grid, so a
    # mix-up of values, codes or neighbours shows
    cells = [(x, y) for y in range(3) for x in range(4)]
    values = [3.0, 9.0, 1.0, 0.0, 7.0, 12.0, 2.0, 5.0, 4.0, 8.0, 6.0, 0.0]
    codes = [f"A{(7 * k) % 12:02d}" for k in range(12)]
    neighbours = hs.contiguity([_square(x, y) for x, y in cells], tolerance_m=0)
    # Queen: corners count (the middle cells of the 4 x 3 lattice have 8 neighbours)
    assert neighbours.cardinalities.tolist() == [3, 5, 5, 3, 5, 8, 8, 5, 3, 5, 5, 3]
    by_hand = _ord_getis_z(values, [set(n) for n in neighbours.lists])
    result = hs.gi_star(codes, values, neighbours, permutations=99, seed=1)
    z_of = dict(zip(result.codes, result.z.tolist(), strict=True))
    value_of = dict(zip(result.codes, result.values.tolist(), strict=True))
    for k, code in enumerate(codes):
        assert value_of[code] == values[k]
        assert z_of[code] == pytest.approx(by_hand[k], rel=1e-9)
    assert result.codes == sorted(codes)


def test_bh_adjust_matches_the_step_up_rule_by_hand() -> None:
    # p sorted: 0.005, 0.01, 0.03, 0.04, 0.5 (m = 5): p(k) m / k = 0.025, 0.025, 0.05, 0.05,
    # 0.5; running minimum from the top: the same (monotone)
    q = hs.bh_adjust(np.array([0.04, 0.5, 0.01, 0.005, 0.03]))
    assert q.tolist() == pytest.approx([0.05, 0.5, 0.025, 0.025, 0.05], abs=1e-12)
    # at FDR 0.04 the step-up rule rejects the two smallest only (0.03 > 3 x 0.04 / 5)
    assert (q <= 0.04).tolist() == [False, False, True, True, False]
    # a larger p-value may pull a smaller one's q down to its own (monotone step-up)
    assert hs.bh_adjust(np.array([0.02, 0.021])).tolist() == pytest.approx([0.021, 0.021])


@pytest.fixture(scope="module")
def lsoas(boundaries: Path) -> tuple[list[str], list[shapely.Geometry]]:
    frame = pyogrio.read_dataframe(boundaries / "northumbria_lsoa2011.geojson")
    to_bng = Transformer.from_crs("EPSG:4326", "EPSG:27700", always_xy=True)
    geoms = shapely.transform(
        np.asarray(list(frame.geometry), dtype=object),
        lambda c: np.column_stack(to_bng.transform(c[:, 0], c[:, 1])),
    )
    return list(frame["LSOA11CD"]), list(geoms)


def test_contiguity_on_real_lsoas_has_no_islands(
    lsoas: tuple[list[str], list[shapely.Geometry]],
) -> None:
    codes, geoms = lsoas
    neighbours = hs.contiguity(geoms)
    cards = neighbours.cardinalities
    assert len(codes) == 916
    assert cards.min() >= 1  # the generalised boundaries overlap or nearly touch: no island
    assert 4.5 < cards.mean() < 7  # about six neighbours each, as LSOAs have
    for i, near in enumerate(neighbours.lists):  # symmetric, never itself
        assert i not in near
        assert all(i in neighbours.lists[j] for j in near)


def test_z_and_p_equal_esda_g_local_on_the_same_weights(
    lsoas: tuple[list[str], list[shapely.Geometry]],
) -> None:
    import esda  # type: ignore[import-untyped]
    from libpysal.weights import W  # type: ignore[import-untyped]

    codes, geoms = lsoas
    neighbours = hs.contiguity(geoms)
    # continuous values: no permuted Gi* ties with the observed one, where esda's p_sim and
    # ours agree exactly (ties: the next test)
    values = np.random.default_rng(7).gamma(2.0, 5.0, len(codes))
    result = hs.gi_star(codes, values, neighbours, permutations=199, seed=5)
    # esda directly, on the same areas in area-code order with the same neighbours
    order = sorted(range(len(codes)), key=lambda i: codes[i])
    at = {old: new for new, old in enumerate(order)}
    weights = W(
        {at[i]: sorted(at[j] for j in neighbours.lists[i]) for i in order}, silence_warnings=True
    )
    with pytest.warns(Warning):  # esda's notice about its default alternative
        direct = esda.G_Local(
            values[order], weights, transform="B", star=True, permutations=199, seed=5, n_jobs=1
        )
    np.testing.assert_allclose(result.z, direct.Zs, rtol=1e-12)
    # esda keeps p_sim as float32: equal to its precision
    np.testing.assert_allclose(result.p_sim, direct.p_sim, rtol=1e-6)
    np.testing.assert_allclose(result.p_value, np.minimum(1, 2 * direct.p_sim), rtol=1e-6)


def test_a_block_of_zeros_is_not_a_cold_spot(
    lsoas: tuple[list[str], list[shapely.Geometry]],
) -> None:
    # counts held in one part of the force only (as a slice of records is): most areas have
    # none. Every permuted Gi* of an area among zeros ties with its observed 0; esda's p_sim
    # calls such areas significant (0.002 with 999 permutations), ours counts ties on both
    # sides and does not
    codes, geoms = lsoas
    neighbours = hs.contiguity(geoms)
    values = np.zeros(len(codes))
    block = list(_cluster(neighbours, 300, 4))
    values[block] = np.random.default_rng(21).poisson(3, len(block))
    result = hs.gi_star(codes, values, neighbours, seed=21)
    zeros = [k for k, v in enumerate(result.values) if v == 0 and result.z[k] < 0]
    surrounded = [k for k in zeros if result.p_sim[k] <= 0.002]
    assert len(surrounded) > 100  # esda's p_sim: the smallest possible for most of them
    assert result.count(hs.COLD) == 0
    # their draws tie with 0 or lie above it: large p-values
    assert min(result.p_value[k] for k in surrounded) > 0.1
    # the block itself stands out: the highest Gi* z are there
    top = {result.codes[k] for k in np.argsort(-np.nan_to_num(result.z, nan=-99))[:10]}
    assert top <= {codes[i] for i in _cluster(neighbours, 300, 5)}


def _cluster(neighbours: hs.Neighbours, start: int, steps: int) -> set[int]:
    """An area and every area within `steps` contiguity steps of it."""
    chosen = {start}
    for _ in range(steps):
        chosen |= {j for i in list(chosen) for j in neighbours.lists[i]}
    return chosen


def test_a_planted_cluster_is_found_and_random_counts_are_not(
    lsoas: tuple[list[str], list[shapely.Geometry]],
) -> None:
    codes, geoms = lsoas
    neighbours = hs.contiguity(geoms)
    # random: Poisson(20) counts with no spatial structure; at FDR 0.05 nothing is called a
    # hot or cold spot (three seeds; each false discovery would fail the test)
    for seed in (101, 102, 103):
        values = np.random.default_rng(seed).poisson(20, len(codes)).astype(float)
        result = hs.gi_star(codes, values, neighbours, seed=seed)
        assert result.count(hs.HOT) + result.count(hs.COLD) == 0, seed
    # planted: 20 more in a block of LSOAs within 5 steps of one (a few dozen areas)
    for seed, start in ((104, 100), (105, 600)):
        values = np.random.default_rng(seed).poisson(20, len(codes)).astype(float)
        block = _cluster(neighbours, start, 5)
        assert 40 <= len(block) <= 120
        values[list(block)] += 20
        result = hs.gi_star(codes, values, neighbours, seed=seed)
        planted = {codes[i] for i in block}
        hot = {c for c, k in zip(result.codes, result.classes, strict=True) if k == hs.HOT}
        assert len(hot & planted) >= 0.6 * len(planted), (seed, len(hot), len(planted))
        assert not hot - planted  # no hot spot outside the block


def test_results_follow_area_codes_whatever_the_row_order(
    lsoas: tuple[list[str], list[shapely.Geometry]],
) -> None:
    codes, geoms = lsoas
    values = np.random.default_rng(11).poisson(5, len(codes)).astype(float)
    first = hs.gi_star(codes, values, hs.contiguity(geoms), permutations=99, seed=3)
    shuffle = np.random.default_rng(12).permutation(len(codes))
    again = hs.gi_star(
        [codes[i] for i in shuffle],
        values[shuffle],
        hs.contiguity([geoms[i] for i in shuffle]),
        permutations=99,
        seed=3,
    )
    assert again.codes == first.codes
    np.testing.assert_array_equal(again.values, first.values)
    np.testing.assert_array_equal(again.z, first.z)
    np.testing.assert_array_equal(again.p_sim, first.p_sim)
    assert again.classes == first.classes


def test_an_area_with_no_neighbour_is_not_tested_and_left_out() -> None:
    # a row of five squares 100 m apart (centroids), and one far away: a 150 m band
    geoms = [_square(x, 0) for x in range(5)] + [_square(50, 0)]
    codes = ["a", "b", "c", "d", "e", "far"]
    values = [1.0, 5.0, 2.0, 8.0, 3.0, 100.0]
    band = hs.distance_band(geoms, 150)
    result = hs.gi_star(codes, values, band, permutations=99, seed=2)
    assert result.islands == ["far"]
    assert result.classes[-1] == hs.NOT_TESTED and math.isnan(result.z[-1])
    assert result.tested == 5
    # the others are tested as if the island were not there (its value is not in the mean)
    alone = hs.gi_star(codes[:5], values[:5], hs.distance_band(geoms[:5], 150), 99, seed=2)
    np.testing.assert_allclose(result.z[:5], alone.z)


def test_refusals_are_messages() -> None:
    geoms = [_square(x, 0) for x in range(4)]
    near = hs.contiguity(geoms, 0)
    with pytest.raises(DataError, match="same value"):
        hs.gi_star(list("abcd"), [2.0] * 4, near, 99)
    with pytest.raises(DataError, match="permutations"):
        hs.gi_star(list("abcd"), [1.0, 2, 3, 4], near, 5)
    with pytest.raises(DataError, match="false discovery rate"):
        hs.gi_star(list("abcd"), [1.0, 2, 3, 4], near, 99, fdr=0)
    with pytest.raises(DataError, match="at least 3"):
        hs.gi_star(list("abcd"), [1.0, 2, 3, 4], hs.distance_band(geoms, 1), 99)
    with pytest.raises(DataError, match="distance band"):
        hs.distance_band(geoms, -1)
