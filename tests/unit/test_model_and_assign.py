"""Small pieces: months, area set names, the row account, and point-in-polygon tie-breaks."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import shapely

from placeharm.errors import DataError
from placeharm.geo import assign as assign_module
from placeharm.geo import assign_points
from placeharm.model import ImportResult, check_area_set_name, month_range, parse_month


@pytest.mark.parametrize(
    ("text", "expected"),
    [("2021-01", dt.date(2021, 1, 1)), (" 2022-12 ", dt.date(2022, 12, 1))],
)
def test_parse_month(text: str, expected: dt.date):
    assert parse_month(text) == expected


@pytest.mark.parametrize("text", ["2021-13", "2021-00", "May 2021", "2021-1", "21-01", ""])
def test_parse_month_refuses(text: str):
    with pytest.raises(DataError, match="YYYY-MM"):
        parse_month(text)


def test_month_range_crosses_years():
    got = month_range(dt.date(2021, 11, 1), dt.date(2022, 2, 1))
    assert [m.strftime("%Y-%m") for m in got] == ["2021-11", "2021-12", "2022-01", "2022-02"]
    assert month_range(dt.date(2022, 2, 1), dt.date(2021, 11, 1)) == []


@pytest.mark.parametrize("name", ["lsoa", "ward", "chb_sites", "a1", "x" * 40])
def test_area_set_names_allowed(name: str):
    assert check_area_set_name(name) == name


@pytest.mark.parametrize("name", ["Ward", "1ward", "_x", "ward-13", "x" * 41, "w d", ""])
def test_area_set_names_refused(name: str):
    with pytest.raises(DataError):
        check_area_set_name(name)


def test_import_result_balance():
    r = ImportResult("f", "street", "ok", rows_read=10, inserted=4, updated=3, unchanged=2)
    assert not r.balanced
    r.quarantined = 1
    assert r.balanced


SQUARES = np.array(
    [
        shapely.box(0, 0, 1, 1),  # 0
        shapely.box(1, 0, 2, 1),  # 1: shares the edge x=1 with 0
        shapely.box(0.5, 0.5, 1.5, 1.5),  # 2: overlaps both
    ],
    dtype=object,
)


def test_assign_points_edges_overlaps_and_outside():
    x = np.array([0.5, 1.0, 1.5, 1.2, 5.0, np.nan, 0.0])
    y = np.array([0.2, 0.2, 0.2, 0.8, 5.0, 0.5, 0.0])
    idx = assign_points(x, y, SQUARES, threads=1)
    # on the shared edge -> lowest index; in the overlap -> lowest index; outside/NaN -> -1;
    # a corner counts as inside.
    assert idx.tolist() == [0, 0, 1, 1, -1, -1, 0]
    assert idx.dtype == np.int32


def test_assign_points_empty_inputs():
    assert assign_points(np.array([]), np.array([]), SQUARES).tolist() == []
    empty = np.array([], dtype=object)
    assert assign_points(np.array([0.5]), np.array([0.5]), empty).tolist() == [-1]


def test_assign_points_chunks_on_threads_agree(monkeypatch: pytest.MonkeyPatch):
    rng = np.random.default_rng(7)
    x = rng.uniform(-0.5, 2.5, 5_000)
    y = rng.uniform(-0.5, 2.0, 5_000)
    one = assign_points(x, y, SQUARES, threads=1)
    monkeypatch.setattr(assign_module, "_CHUNK", 333)
    many = assign_points(x, y, SQUARES, threads=2)
    assert np.array_equal(one, many)
    # And against a plain loop.
    expected = [
        next((i for i, p in enumerate(SQUARES) if p.intersects(shapely.Point(a, b))), -1)
        for a, b in zip(x, y, strict=True)
    ]
    assert one.tolist() == expected


def test_prepared_polygons_answer_as_the_raw_polygons(monkeypatch: pytest.MonkeyPatch):
    """Polygons prepared once (a set answering many small batches) give the same answers,
    batch after batch, and are not prepared again."""
    rng = np.random.default_rng(11)
    ready = assign_module.PreparedPolygons.build(shapely.from_wkb(shapely.to_wkb(SQUARES)))
    calls = []
    original = assign_module._prepared
    monkeypatch.setattr(
        assign_module, "_prepared", lambda polygons: calls.append(1) or original(polygons)
    )
    for _ in range(3):
        x = rng.uniform(-0.5, 2.5, 500)
        y = rng.uniform(-0.5, 2.0, 500)
        assert np.array_equal(
            assign_points(x, y, ready, threads=2), assign_points(x, y, SQUARES, threads=2)
        )
    assert len(calls) == 3  # only for the raw polygons, once per call


def test_assigner_when_every_point_is_already_remembered():
    """Was a bug: a frame whose points were all cached failed (empty fresh frame had no area
    columns); seen on the real stop-and-search files after the street files."""
    import polars as pl

    from placeharm.services.areas import Assigner, LoadedSet

    square = shapely.box(0, 0, 1, 1)
    assigner = Assigner([LoadedSet("a", np.array(["A1"]), np.array([square]))], 1, 0.0)
    frame = pl.DataFrame({"longitude": [0.5, 2.0, None], "latitude": [0.5, 2.0, None]})
    first = assigner.assign(frame)
    again = assigner.assign(frame)  # every located point is remembered now
    for out in (first, again):
        assert out["area_a"].to_list() == ["A1", None, None]
        assert out["in_area"].to_list() == [True, False, None]
        assert out["located"].to_list() == [True, True, False]


def test_import_result_ok_needs_status_and_balance():
    refused = ImportResult("f.csv", "unknown", "refused", message="bad header")
    assert refused.balanced and not refused.ok
    fine = ImportResult("f.csv", "street", "ok", rows_read=2, inserted=1, quarantined=1)
    assert fine.ok
