"""Period arithmetic on small hand-built stores (issue 19): which months like-for-like
comparison leaves out, the sign of a rank movement, and which of a nominal's addresses is
their home in a period. Expected values are worked out by hand in the comments.
"""

from __future__ import annotations

import datetime as dt
import json

import polars as pl
import pytest

from placeharm.errors import UnknownArea
from placeharm.harm import custom_index
from placeharm.services import harm, soc
from placeharm.services.areas import assign_pending, import_areas
from placeharm.services.ingest import ingest
from placeharm.soc import cells as soc_cells
from placeharm.soc.importer import import_entity
from placeharm.store.base import EVERYTHING
from shapes import square

HEADER = (
    "Crime ID,Month,Reported by,Falls within,Longitude,Latitude,Location,LSOA code,LSOA name,"
    "Crime type,Last outcome category,Context"
)
CENTRE = {"A": (-1.605, 54.975), "B": (-1.595, 54.975), "C": (-1.585, 54.975)}
# police.uk street months: 2021-03 is a gap. Index: Burglary 10, Robbery 100.
ROWS = {
    "2021-01": [("A", "Burglary"), ("B", "Robbery")],  # A 10, B 100: B 1st, A 2nd
    "2021-02": [("A", "Robbery"), ("B", "Burglary")],  # A 100, B 10: A 1st, B 2nd
    "2021-04": [("A", "Burglary"), ("A", "Burglary"), ("B", "Robbery")],  # A 20, B 100
    "2021-05": [("A", "Robbery"), ("A", "Robbery"), ("B", "Burglary")],  # A 200, B 10
}
INDEX = "name: hand\nedition: '1'\nsource: hand\ncrime_types: {Burglary: 10, Robbery: 100}\n"
D = dt.date


@pytest.fixture(scope="module")
def hand(tmp_path_factory: pytest.TempPathFactory, module_store_at):
    store, index = _hand_store(tmp_path_factory.mktemp("periods"), module_store_at)
    yield store, index
    store.close()


def _hand_store(tmp, store_at):
    """The hand-made store, opened on the engine under test by `store_at`."""
    areas = tmp / "areas.geojson"
    features = [square(k, *v) for k, v in CENTRE.items()]
    areas.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    files = []
    n = 0
    for month, rows in ROWS.items():
        lines = [HEADER]
        for area, crime_type in rows:
            n += 1
            lon, lat = CENTRE[area]
            lines.append(f"{n:064x},{month},T,T,{lon},{lat},On or near X,,,{crime_type},,")
        path = tmp / f"{month}-test-street.csv"
        path.write_text("\n".join(lines) + "\n")
        files.append(path)
    (tmp / "index.yaml").write_text(INDEX)
    store = store_at("hand")
    import_areas(store, areas, "patch", code_field="code", name_field="name")
    assert all(r.status == "ok" for r in ingest(store, files))
    return store, custom_index(tmp / "index.yaml")


def _rows(result: harm.HarmResult) -> dict[str, dict]:
    return {r["area_code"]: r for r in result.table.to_dicts() if r["area_code"]}


def test_rank_movement_is_previous_rank_minus_current(hand):
    store, index = hand
    result = harm.compare(store, "patch", D(2021, 2, 1), D(2021, 2, 1), "previous", index)
    rows = _rows(result)
    # January: B 100 (1st), A 10 (2nd). February: A 100 (1st), B 10 (2nd), C 0 (3rd both).
    assert (rows["A"]["rank_previous"], rows["A"]["rank_current"]) == (2, 1)
    assert rows["A"]["rank_movement"] == 1  # up the ranking, towards rank 1: positive
    assert rows["B"]["rank_movement"] == -1
    assert rows["C"]["rank_movement"] == 0
    assert rows["A"]["change"] == 90.0 and rows["B"]["change"] == -90.0
    assert rows["A"]["pct_change"] == pytest.approx(900.0)  # 100 / 10 - 1
    assert rows["B"]["pct_change"] == pytest.approx(-90.0)  # 10 / 100 - 1
    assert result.meta["excluded_pairs"] == []


def test_like_for_like_leaves_a_gap_out_of_both_periods(hand):
    store, index = hand
    # 2021-04..05 against 2021-02..03: April pairs with February, May with March (a gap).
    result = harm.compare(store, "patch", D(2021, 4, 1), D(2021, 5, 1), "previous", index)
    meta = result.meta
    assert (meta["previous_first_month"], meta["previous_last_month"]) == ("2021-02", "2021-03")
    assert meta["current_months_compared"] == ["2021-04"]
    assert meta["previous_months_compared"] == ["2021-02"]
    assert meta["months_compared"] == 1
    assert meta["excluded_pairs"] == [
        {"current": "2021-05", "previous": "2021-03", "no_data": ["2021-03"]}
    ]
    rows = _rows(result)
    # May (A 200, B 10) is left out although it has data: April A 20, B 100 vs February
    assert (rows["A"]["harm_current"], rows["A"]["harm_previous"]) == (20.0, 100.0)
    assert (rows["B"]["harm_current"], rows["B"]["harm_previous"]) == (100.0, 10.0)
    assert (meta["harm_current"], meta["harm_previous"]) == (120.0, 110.0)
    assert any("1 of 2 months compared" in n and "2021-05 with 2021-03" in n for n in result.notes)


def test_like_for_like_when_the_current_month_is_the_gap(hand):
    store, index = hand
    # 2021-03..04 against 2021-01..02: March (gap) pairs with January, April with February
    result = harm.compare(store, "patch", D(2021, 3, 1), D(2021, 4, 1), "previous", index)
    assert result.meta["excluded_pairs"] == [
        {"current": "2021-03", "previous": "2021-01", "no_data": ["2021-03"]}
    ]
    rows = _rows(result)
    # January (A 10, B 100) is left out of the previous period: only February counts
    assert (rows["A"]["harm_current"], rows["A"]["harm_previous"]) == (20.0, 100.0)
    assert (rows["B"]["harm_current"], rows["B"]["harm_previous"]) == (100.0, 10.0)
    # a year before: 2020-04..05 hold nothing, so no month can be compared
    with pytest.raises(Exception, match="can be compared"):
        harm.compare(store, "patch", D(2021, 4, 1), D(2021, 5, 1), "year", index)


def test_like_for_like_every_pair_kept_when_both_periods_are_whole(hand):
    store, index = hand
    result = harm.compare(store, "patch", D(2021, 2, 1), D(2021, 2, 1), "previous", index)
    assert result.meta["current_months_compared"] == ["2021-02"]
    assert result.meta["previous_months_compared"] == ["2021-01"]
    assert not any("like for like" in n for n in result.notes)


# -- a nominal's home in a period -------------------------------------------------------------

NOMINALS = "nominal_id,surname,forename\n" + "".join(f"N{i},Demo{i},X\n" for i in range(1, 7))
# nominal, address, link, area, from, to
ADDRESSES = [
    ("N1", "AD1", "home", "A", "", "2020-12-31"),  # moved from A ...
    ("N1", "AD2", "home", "B", "2021-01-01", ""),  # ... to B on 1 January 2021
    ("N1", "AD3", "home", "C", "2021-03-15", "2021-04-30"),  # a later stay in C
    ("N2", "AD4", "home", "A", "", "2021-02-01"),  # left A on 1 February
    ("N2", "AD5", "home", "C", "2021-03-01", ""),
    ("N3", "AD6", "home", "B", "2021-02-28", ""),  # arrived in B on 28 February
    ("N4", "AD7", "home", "A", "2021-01-01", ""),  # two homes from the same day:
    ("N4", "AD8", "home", "C", "2021-01-01", ""),  # the later address id counts
    ("N5", "AD9", "home", "A", "", ""),  # no dates at all: the earliest start
    ("N5", "AD10", "home", "B", "2020-06-01", ""),
    ("N6", "AD11", "home", "A", "", "2020-01-31"),
    ("N6", "AD12", "associated", "B", "", ""),  # not a home
]


@pytest.fixture(scope="module")
def homes(hand, tmp_path_factory: pytest.TempPathFactory):
    store, _ = hand
    tmp = tmp_path_factory.mktemp("homes")
    (tmp / "nominals.csv").write_text(NOMINALS)
    lines = ["nominal_id,address_id,link_type,from_date,to_date,latitude,longitude"]
    for nominal, address, link, area, start, end in ADDRESSES:
        lon, lat = CENTRE[area]
        lines.append(f"{nominal},{address},{link},{start},{end},{lat},{lon}")
    (tmp / "addresses.csv").write_text("\n".join(lines) + "\n")
    for kind in soc.IMPORT_ORDER:
        if (tmp / f"{kind}.csv").exists():
            import_entity(store, kind, tmp / f"{kind}.csv")
    return soc_cells.cells(store, "patch")


def _home_in(model: soc_cells.SocCells, first: dt.date, last: dt.date) -> dict[str, str]:
    rows = model._placed(first, last, EVERYTHING)
    frame = model.homes.frame[rows]
    return dict(zip(frame["nominal_id"], frame["address_id"], strict=True))


def test_home_before_and_after_a_move(homes):
    assert _home_in(homes, D(2020, 6, 1), D(2020, 6, 30)) == {
        "N1": "AD1",
        "N2": "AD4",
        "N5": "AD10",  # from 2020-06-01, later than an open start
    }
    # December 2020: N1 still at AD1 (to 31 December); N6 left AD11 in January 2020
    assert _home_in(homes, D(2020, 12, 1), D(2020, 12, 31))["N1"] == "AD1"
    assert "N6" not in _home_in(homes, D(2020, 12, 1), D(2020, 12, 31))
    # January 2021: AD1 ended the day before the period; AD2 started on its first day
    assert _home_in(homes, D(2021, 1, 1), D(2021, 1, 31))["N1"] == "AD2"
    # a period spanning the move: the later home (greatest from date)
    assert _home_in(homes, D(2020, 12, 1), D(2021, 1, 31))["N1"] == "AD2"


def test_home_is_the_latest_overlapping_address(homes):
    # March: AD2 (from January) and AD3 (from 15 March) both overlap: AD3, the later
    assert _home_in(homes, D(2021, 3, 1), D(2021, 3, 31))["N1"] == "AD3"
    assert _home_in(homes, D(2021, 4, 1), D(2021, 4, 30))["N1"] == "AD3"
    # May: AD3 ended on 30 April, so back to AD2
    assert _home_in(homes, D(2021, 5, 1), D(2021, 5, 31))["N1"] == "AD2"


def test_home_dates_count_on_their_first_and_last_day(homes):
    february = _home_in(homes, D(2021, 2, 1), D(2021, 2, 28))
    assert february["N2"] == "AD4"  # left on 1 February, the period's first day
    assert february["N3"] == "AD6"  # arrived on 28 February, the period's last day
    january = _home_in(homes, D(2021, 1, 1), D(2021, 1, 31))
    assert "N3" not in january  # not yet arrived
    assert _home_in(homes, D(2021, 2, 2), D(2021, 2, 27)).get("N2") is None


def test_home_ties_and_open_dates(homes):
    january = _home_in(homes, D(2021, 1, 1), D(2021, 1, 31))
    assert january["N4"] == "AD8"  # same from date: the greater address id
    assert january["N5"] == "AD10"  # a dated start beats an open one
    assert "N6" not in january  # an associated address is never a home
    assert set(january) == {"N1", "N2", "N4", "N5"}


def test_comparison_is_against_the_previous_period_unless_asked(hand):
    store, index = hand
    result = harm.compare(store, "patch", D(2021, 2, 1), D(2021, 2, 1), index=index)
    assert result.meta["against"] == "previous"
    assert result.meta["previous_months_compared"] == ["2021-01"]


def test_comparison_counts_only_the_crime_types_asked_for(hand):
    store, index = hand
    result = harm.compare(
        store, "patch", D(2021, 2, 1), D(2021, 2, 1), "previous", index, crime_types=["Robbery"]
    )
    rows = _rows(result)
    # Robbery only: February A 100, B none; January A none, B 100
    assert (rows["A"]["harm_current"], rows["A"]["harm_previous"]) == (100.0, 0.0)
    assert (rows["B"]["harm_current"], rows["B"]["harm_previous"]) == (0.0, 100.0)


# -- series, rank, concentration and compare's edges (issue 19, third pass) ------------------
# Per month, by the index above: 2021-01 A 10, B 100; 2021-02 A 100, B 10; 2021-03 no data;
# 2021-04 A 20, B 100; 2021-05 A 200, B 10; area C never holds a record. Nothing before 2021.


def _by_area(result: harm.HarmResult, column: str) -> dict[str, list]:
    out: dict[str, list] = {}
    for row in result.table.to_dicts():
        out.setdefault(row["area_code"], []).append(row[column])
    return out


def test_series_gap_months_are_null_never_zero(hand):
    store, index = hand
    result = harm.series(store, "patch", D(2020, 12, 1), D(2021, 5, 1), index)
    months = ["2020-12", "2021-01", "2021-02", "2021-03", "2021-04", "2021-05"]
    assert result.table["month"].to_list() == months * 3
    assert _by_area(result, "harm") == {
        "A": [None, 10.0, 100.0, None, 20.0, 200.0],
        "B": [None, 100.0, 10.0, None, 100.0, 10.0],
        "C": [None, 0.0, 0.0, None, 0.0, 0.0],  # no record in a month with data: zero
    }
    assert _by_area(result, "records") == {
        "A": [None, 1, 1, None, 2, 2],
        "B": [None, 1, 1, None, 1, 1],
        "C": [None, 0, 0, None, 0, 0],
    }
    assert result.table["area_name"].to_list()[:1] == ["Area A"]
    meta = result.meta
    assert meta["gap_months"] == ["2020-12", "2021-03"]
    assert (meta["months"], meta["months_covered"], meta["areas"]) == (6, 4, 3)
    assert (meta["first_month"], meta["last_month"]) == ("2020-12", "2021-05")
    assert meta["records_outside_set"] == 0
    assert (result.kind, meta["area_set"], meta["partial_months"]) == ("series", "patch", [])
    assert result.notes == ["no data for 2020-12, 2021-03 (gap): figures cover 4 of 6 months"]


def test_series_of_chosen_areas_and_filters(hand):
    store, index = hand
    result = harm.series(store, "patch", D(2021, 1, 1), D(2021, 3, 1), index, areas=["B"])
    assert _by_area(result, "harm") == {"B": [100.0, 10.0, None]}
    assert result.meta["areas"] == 1
    robbery = harm.series(
        store, "patch", D(2021, 1, 1), D(2021, 2, 1), index, crime_types=["Robbery"]
    )
    assert _by_area(robbery, "harm") == {"A": [0.0, 100.0], "B": [100.0, 0.0], "C": [0.0, 0.0]}
    assert robbery.meta["crime_types"] == ["Robbery"]
    # police.uk records carry no offence code, so an offence-code filter keeps none of them;
    # blank codes are no filter
    coded = harm.series(store, "patch", D(2021, 1, 1), D(2021, 1, 1), index, offence_codes=["8"])
    assert _by_area(coded, "harm") == {"A": [0.0], "B": [0.0], "C": [0.0]}
    assert coded.meta["offence_codes"] == ["8"]
    blank = harm.series(store, "patch", D(2021, 1, 1), D(2021, 1, 1), index, offence_codes=[" "])
    assert _by_area(blank, "harm") == {"A": [10.0], "B": [100.0], "C": [0.0]}
    assert blank.meta["offence_codes"] is None
    with pytest.raises(UnknownArea, match=r"^no area Y, Z in set 'patch'; list them with") as e:
        harm.series(store, "patch", D(2021, 1, 1), D(2021, 1, 1), index, areas=["Z", "B", "Y"])
    assert (e.value.by, e.value.codes) == ("patch", ["Y", "Z"])  # for the page's own wording


def test_rank_ties_share_the_best_rank_and_the_unranked_row(hand):
    store, index = hand
    result = harm.rank(store, "patch", D(2021, 1, 1), D(2021, 2, 1), index)
    # January + February: A 110, B 110 (tied: both 1st, A first by code), C 0 (3rd)
    assert result.table.to_dicts() == [
        {
            "rank": r,
            "area_code": code,
            "area_name": name,
            "records": n,
            "harm": h,
            "harm_share": share,
            "population": None,
            "harm_per_resident": None,
            "unweighted": 0,  # records with no weight in this index
        }
        for r, code, name, n, h, share in [
            (1, "A", "Area A", 2, 110.0, 0.5),
            (1, "B", "Area B", 2, 110.0, 0.5),
            (3, "C", "Area C", 0, 0.0, 0.0),
            (None, None, "(no location, or outside every patch area)", 0, 0.0, 0.0),
        ]
    ]
    assert (result.meta["total_records"], result.meta["total_harm"]) == (4, 220.0)
    assert result.kind == "rank" and result.meta["weights_from"]
    # the columns keep their types with no population held (not polars' Null)
    assert result.table.schema["population"] == pl.Float64
    assert result.table.schema["harm_per_resident"] == pl.Float64
    assert result.meta["partial_months"] == []
    assert result.notes == [
        "no populations held for 'patch': harm_per_resident is empty; load them with "
        "`placeharm areas population`"
    ]
    later = harm.rank(store, "patch", D(2021, 4, 1), D(2021, 5, 1), index)
    assert later.table["rank"].to_list() == [1, 2, 3, None]
    assert later.table["area_code"].to_list() == ["A", "B", "C", None]
    assert later.table["harm"].to_list() == [220.0, 110.0, 0.0, 0.0]


def test_rank_with_a_crime_type_or_offence_code_filter(hand):
    store, index = hand
    burglary = harm.rank(store, "patch", D(2021, 1, 1), D(2021, 5, 1), index, ["Burglary"])
    # Burglary only: A January 10 + April 2 x 10 = 30 (3 records), B February 10 + May 10
    # = 20 (2 records); all crimes would give A 330, B 220
    assert burglary.table["area_code"].to_list() == ["A", "B", "C", None]
    assert burglary.table["harm"].to_list() == [30.0, 20.0, 0.0, 0.0]
    assert burglary.table["records"].to_list() == [3, 2, 0, 0]
    assert burglary.meta["area_set"] == "patch"
    assert (burglary.meta["crime_types"], burglary.meta["offence_codes"]) == (["Burglary"], None)
    # police.uk street records have no offence code: a code filter matches none of them
    coded = harm.rank(store, "patch", D(2021, 1, 1), D(2021, 5, 1), index, None, ["0101"])
    assert coded.table["records"].to_list() == [0, 0, 0, 0]
    assert coded.meta["total_harm"] == 0.0
    assert coded.meta["offence_codes"] == ["0101"]


def test_rank_per_resident_uses_the_population_held_for_the_last_year(tmp_path, store_at):
    import polars as pl

    store, index = _hand_store(tmp_path, store_at)
    try:
        for year, people in (
            (2019, {"A": 500.0, "B": 400.0, "C": 300.0}),
            (2021, {"A": 1000.0, "B": 0.0, "C": 1.0}),
        ):
            store.replace_populations(
                "patch",
                year,
                pl.DataFrame(
                    {
                        "area_code": list(people),
                        "population": list(people.values()),
                        "method": ["hand"] * 3,
                        "source_file": ["hand.csv"] * 3,
                    }
                ),
            )
        result = harm.rank(store, "patch", D(2021, 1, 1), D(2021, 5, 1), index)
        rows = _rows(result)
        # 2021's populations (the last month's year): A 330 / 1,000; B has none to divide by
        # (0 people: no figure, never infinity); C 0 harm / 1 person = 0
        assert rows["A"]["population"] == 1000.0
        assert rows["A"]["harm_per_resident"] == pytest.approx(0.33)
        assert rows["B"]["population"] == 0.0 and rows["B"]["harm_per_resident"] is None
        assert rows["C"]["harm_per_resident"] == 0.0
        assert result.meta["population_year"] == 2021
        assert result.table.schema == {
            "rank": pl.Int64,
            "area_code": pl.String,
            "area_name": pl.String,
            "records": pl.Int64,
            "harm": pl.Float64,
            "harm_share": pl.Float64,
            "population": pl.Float64,
            "harm_per_resident": pl.Float64,
            "unweighted": pl.Int64,
        }
    finally:
        store.close()


def test_rank_of_a_gap_has_no_shares(hand):
    store, index = hand
    result = harm.rank(store, "patch", D(2021, 3, 1), D(2021, 3, 1), index)
    assert result.table["rank"].to_list() == [1, 1, 1, None]  # all 0: tied
    assert result.table.schema["harm_share"] == pl.Float64  # no shares, still a number column
    assert result.table["harm_share"].to_list() == [None] * 4  # 0 of 0 is no share
    assert result.meta["gap_months"] == ["2021-03"]
    assert result.notes[0] == "no data for 2021-03 (gap): figures cover 0 of 1 months"


def test_concentration_by_hand(hand):
    store, index = hand
    result = harm.concentration(store, "patch", D(2021, 4, 1), D(2021, 5, 1), index, top_areas=2)
    # April + May: A 220, B 110, C 0 (total 330). Top 1% .. 20% of 3 areas: ceil -> 1 area,
    # 220/330; 50%: 2 areas (ceil 1.5), all of it; the top 2 areas: 2/3 of the areas.
    assert result.table["top_percent"].to_list() == pytest.approx([1, 5, 10, 20, 50, 200 / 3])
    assert result.table["areas"].to_list() == [1, 1, 1, 1, 2, 2]
    assert result.table["harm_share"].to_list() == pytest.approx([2 / 3] * 4 + [1.0, 1.0])
    # Lorenz, ascending 0, 110, 220: points (0,0) (1/3,0) (2/3,1/3) (1,1); area under it
    # 0 + 1/18 + 4/18 = 5/18, so Gini = 1 - 10/18 = 4/9.
    lorenz = result.extra["lorenz"]
    assert lorenz["area_share"].to_list() == pytest.approx([0, 1 / 3, 2 / 3, 1])
    assert lorenz["harm_share"].to_list() == pytest.approx([0, 0, 1 / 3, 1])
    assert result.meta["gini"] == pytest.approx(4 / 9)
    assert result.meta["areas"] == 3
    assert result.notes[-1] == "the top 2 of 3 patch areas (66.7%) hold 100.0% of harm"
    assert result.notes[-6] == "the top 1 of 3 patch areas (1%) hold 66.7% of harm"
    whole = harm.concentration(
        store, "patch", D(2021, 4, 1), D(2021, 5, 1), index, (100,), top_areas=9
    )
    assert whole.table.to_dicts() == [
        {"top_percent": 100.0, "areas": 3, "harm_share": 1.0},
        {"top_percent": 100.0, "areas": 3, "harm_share": 1.0},
    ]
    for pct in (0, 100.5):
        with pytest.raises(Exception, match=f"^top percent {pct} must be above 0 and at most"):
            harm.concentration(store, "patch", D(2021, 4, 1), D(2021, 5, 1), index, (50, pct))
    with pytest.raises(
        Exception,
        match=r"^no harm in 'patch' areas for 2021-03\.\.2021-03 with these filters; "
        r"concentration needs some$",
    ):
        harm.concentration(store, "patch", D(2021, 3, 1), D(2021, 3, 1), index)
    assert result.kind == "concentration"
    assert result.meta["total_harm"] == 330.0  # rank's metadata is kept beside the Gini
    assert result.table.schema == {
        "top_percent": pl.Float64,
        "areas": pl.Int64,
        "harm_share": pl.Float64,
    }
    # 33.4% of 3 areas is 1.002 areas: ceil -> 2 (the top 2 hold everything)
    third = harm.concentration(store, "patch", D(2021, 4, 1), D(2021, 5, 1), index, (33.4,))
    assert third.table["areas"].to_list() == [2]
    none = harm.concentration(store, "patch", D(2021, 4, 1), D(2021, 5, 1), index, ())
    assert none.table.schema == result.table.schema and none.table.height == 0


def test_concentration_with_filters_and_small_or_single_area_sets(hand, tmp_path, store_at):
    store, index = hand
    # Burglary only, January to May: A 30, B 20, C 0 (all crimes: A 330, B 220)
    burglary = harm.concentration(
        store, "patch", D(2021, 1, 1), D(2021, 5, 1), index, (50,), crime_types=["Burglary"]
    )
    assert burglary.meta["total_harm"] == 50.0
    # no police.uk street record has an offence code: nothing matches, so no harm to share
    with pytest.raises(Exception, match=r"^no harm in 'patch' areas"):
        harm.concentration(
            store, "patch", D(2021, 1, 1), D(2021, 5, 1), index, offence_codes=["0101"]
        )
    # a harm total below 1 is still harm: Burglary weighted 0.5, January (A's one burglary)
    small = tmp_path / "small.yaml"
    small.write_text(
        "name: small\nedition: '1'\nsource: hand\ncrime_types: {Burglary: 0.5, Robbery: 0}\n"
    )
    half = harm.concentration(
        store, "patch", D(2021, 1, 1), D(2021, 1, 1), custom_index(small), (50,)
    )
    assert half.meta["total_harm"] == 0.5 and half.table["harm_share"].to_list() == [1.0]
    # a set of one area: its one area holds all harm; the Lorenz curve is the diagonal
    # (0,0)-(1,1), area under it 1/2, so the Gini is 0
    one = tmp_path / "one.geojson"
    one.write_text(
        json.dumps({"type": "FeatureCollection", "features": [square("A", *CENTRE["A"])]})
    )
    fresh, _ = _hand_store(tmp_path, store_at)  # not the module's store: a set of its own
    try:
        import_areas(fresh, one, "solo", code_field="code", name_field="name")
        assign_pending(fresh, threads=1, tolerance_m=0)
        alone = harm.concentration(fresh, "solo", D(2021, 1, 1), D(2021, 2, 1), index, (50,))
    finally:
        fresh.close()
    assert alone.table.to_dicts() == [{"top_percent": 50.0, "areas": 1, "harm_share": 1.0}]
    assert alone.meta["gini"] == pytest.approx(0.0)


def test_compare_periods_named_in_its_refusals(hand):
    store, index = hand
    # a year before 2021-04..05 is 2020-04..05 (12 months back), which holds nothing
    with pytest.raises(Exception, match=r"^no month of 2021-04\.\.2021-05 can be compared: ea"):
        harm.compare(store, "patch", D(2021, 4, 1), D(2021, 5, 1), "year", index)
    with pytest.raises(Exception, match=r"its pair in 2020-04\.\.2020-05, has no data \(see"):
        harm.compare(store, "patch", D(2021, 4, 1), D(2021, 5, 1), "year", index)
    # the previous period of 2021-01..03 is 2020-10..12 (3 months back)
    with pytest.raises(Exception, match=r"its pair in 2020-10\.\.2020-12, has no data"):
        harm.compare(store, "patch", D(2021, 1, 1), D(2021, 3, 1), "previous", index)
    with pytest.raises(Exception, match=r"^--against must be 'previous' or 'year', not 'Year'$"):
        harm.compare(store, "patch", D(2021, 4, 1), D(2021, 5, 1), "Year", index)


def test_compare_with_no_previous_harm_has_no_percentage(hand):
    store, index = hand
    # Robbery only, February against January: A 100 against none, B none against 100
    result = harm.compare(
        store, "patch", D(2021, 2, 1), D(2021, 2, 1), "previous", index, crime_types=["Robbery"]
    )
    assert (result.kind, result.meta["crime_types"]) == ("compare", ["Robbery"])
    rows = _rows(result)
    assert rows["A"]["pct_change"] is None  # no harm before: no percentage, not infinity
    assert rows["B"]["pct_change"] == pytest.approx(-100.0)
    assert rows["C"]["pct_change"] is None
    assert [r["area_code"] for r in result.table.to_dicts()] == ["A", "B", "C"]
    assert (rows["B"]["rank_current"], rows["C"]["rank_current"]) == (2, 2)  # tied at 0
    assert (rows["A"]["rank_previous"], rows["B"]["rank_previous"]) == (2, 1)
    assert (rows["A"]["records_current"], rows["A"]["records_previous"]) == (1, 0)
    coded = harm.compare(
        store, "patch", D(2021, 2, 1), D(2021, 2, 1), "previous", index, offence_codes=["8"]
    )
    assert (coded.meta["harm_current"], coded.meta["harm_previous"]) == (0.0, 0.0)
    assert coded.meta["offence_codes"] == ["8"]


def test_compare_across_a_gap_with_the_year_before(hand):
    store, index = hand
    # 2021-03..05 against 2021-01..03 with against="previous" is 3 months back; pairs
    # (03, 12-2020) ... are all out. Instead 2021-04..05 against 2021-02..03 (previous): the
    # months compared and the notes name the pair left out.
    result = harm.compare(store, "patch", D(2021, 2, 1), D(2021, 5, 1), "previous", index)
    # 2021-02..05 against 2020-10..2021-01: only May (with January) has data on both sides
    meta = result.meta
    assert (meta["previous_first_month"], meta["previous_last_month"]) == ("2020-10", "2021-01")
    assert meta["current_months_compared"] == ["2021-05"]
    assert meta["previous_months_compared"] == ["2021-01"]
    assert [e["no_data"] for e in meta["excluded_pairs"]] == [
        ["2020-10"],
        ["2021-03", "2020-11"],
        ["2020-12"],
    ]
    assert meta["gap_months"] == ["2021-03"]
    assert (meta["months"], meta["months_covered"]) == (4, 3)
    rows = _rows(result)
    assert (rows["A"]["harm_current"], rows["A"]["harm_previous"]) == (200.0, 10.0)
    assert (rows["B"]["harm_current"], rows["B"]["harm_previous"]) == (10.0, 100.0)
    assert result.notes == [
        "like for like: 1 of 4 months compared; left out of both periods: 2021-02 with "
        "2020-10 (no data for 2020-10); 2021-03 with 2020-11 (no data for 2021-03, 2020-11); "
        "2021-04 with 2020-12 (no data for 2020-12)"
    ]


def test_an_index_registered_in_the_store_is_used_by_name(hand, tmp_path):
    from placeharm.services import indices

    store, _ = hand
    path = tmp_path / "doubled.yaml"
    path.write_text("name: x\nedition: '1'\nsource: hand\ncrime_types: {Burglary: 1, Robbery: 2}\n")
    if "doubled" not in indices.registered(store):
        indices.add(store, path, "doubled")
    # February against January: A 2 (robbery) against 1, B 1 against 2
    result = harm.compare(store, "patch", D(2021, 2, 1), D(2021, 2, 1), "previous", "doubled")
    rows = _rows(result)
    assert (rows["A"]["harm_current"], rows["A"]["harm_previous"]) == (2.0, 1.0)
    # a previous harm of 1 (not only above 1) gives a percentage: 2 / 1 - 1, 1 / 2 - 1
    assert (rows["A"]["pct_change"], rows["B"]["pct_change"]) == (100.0, -50.0)
    assert result.meta["area_set"] == "patch"
    ranked = harm.rank(store, "patch", D(2021, 2, 1), D(2021, 2, 1), "doubled")
    assert ranked.table["harm"].to_list() == [2.0, 1.0, 0.0, 0.0]
    series = harm.series(store, "patch", D(2021, 2, 1), D(2021, 2, 1), "doubled", areas=["B"])
    assert series.table["harm"].to_list() == [1.0]


# -- which months a SOC score holds (services/soc.period_data, default_period) ----------------
# Force crimes: 7 in each of 2021-01, 02 and 04 (21 in 4 months, 5 or more a month: dense, so
# the empty 2021-03 is a gap). Drug-related deaths: 2021-02-10 and 2021-05-20 (sparse: every
# month from the first to the last is held, 02..05).
FORCE_CRIMES = "crime_ref,recorded_date,offence_code,latitude,longitude\n" + "".join(
    f"F{month}{i},2021-{month:02d}-{10 + i:02d},92A,{CENTRE['A'][1]},{CENTRE['A'][0]}\n"
    for month in (1, 2, 4)
    for i in range(7)
)
DEATHS = (
    "event_id,event_date,partner,event_type,latitude,longitude\n"
    f"E1,2021-02-10,coroner,drug_related_death,{CENTRE['B'][1]},{CENTRE['B'][0]}\n"
    f"E2,2021-05-20,coroner,drug_related_death,{CENTRE['B'][1]},{CENTRE['B'][0]}\n"
)


@pytest.fixture(scope="module")
def soc_months(hand, homes, tmp_path_factory: pytest.TempPathFactory):
    from placeharm.services import pages

    store, _ = hand
    tmp = tmp_path_factory.mktemp("socmonths")
    for kind, text in (("force-crimes", FORCE_CRIMES), ("partner-events", DEATHS)):
        (tmp / f"{kind}.csv").write_text(text)
        assert import_entity(store, kind, tmp / f"{kind}.csv").status == "ok"
    every = pages.Filters().measure_set()
    deaths = pages.Filters(measures=("drug_related_deaths",)).measure_set()
    residents = pages.Filters(measures=("ocg_members_pis",)).measure_set()
    return soc_cells.cells(store, "patch"), every, deaths, residents


def test_soc_period_held_and_gaps_in_both_periods(soc_months):
    model, every, deaths, residents = soc_months
    assert soc.dated_sources(every) == ("force_crimes", "intelligence", "partner_events")
    assert soc.dated_sources(residents) == ()
    # every measure: the months the dense source (force crimes) holds; deaths are sparse and
    # intelligence holds nothing, so neither narrows them
    assert soc.soc_held_months(model, every) == {D(2021, 1, 1), D(2021, 2, 1), D(2021, 4, 1)}
    assert soc.soc_held_months(model, deaths) == {D(2021, m, 1) for m in (2, 3, 4, 5)}
    assert soc.soc_held_months(model, residents) is None
    # 2021-02..04 against the 3 months before, 2020-11..2021-01
    assert soc.period_data(model, every, D(2021, 2, 1), D(2021, 4, 1)) == soc.PeriodData(
        ["2021-02", "2021-04"],
        ["2021-03"],
        ["2021-01"],
        ["2020-11", "2020-12"],
        "2021-01",
        "2021-04",
        False,
    )
    # one month: against the month before
    assert soc.period_data(model, deaths, D(2021, 5, 1), D(2021, 5, 1)) == soc.PeriodData(
        ["2021-05"], [], ["2021-04"], [], "2021-02", "2021-05", False
    )
    after = soc.period_data(model, deaths, D(2021, 6, 1), D(2021, 7, 1))
    assert (after.held, after.gaps) == ([], ["2021-06", "2021-07"])
    assert (after.previous_held, after.previous_gaps) == (["2021-04", "2021-05"], [])
    assert after.empty
    only = soc.period_data(model, residents, D(2021, 2, 1), D(2021, 4, 1))
    assert only == soc.PeriodData([], [], [], [], None, None, True)
    assert not only.empty  # residents are a snapshot: never "no data"


def test_soc_default_period_is_held_in_full_with_its_comparison(soc_months):
    model, every, deaths, residents = soc_months
    # deaths held 02..05: 04..05 against 02..03 is the longest whole pair ending in May
    assert soc.default_period(model, deaths) == (D(2021, 4, 1), D(2021, 5, 1))
    assert soc.default_period(model, deaths, months=1) == (D(2021, 5, 1), D(2021, 5, 1))
    # every measure: held 01, 02, 04; April's previous month (March) is a gap: no period
    assert soc.default_period(model, every) is None
    assert soc.default_period(model, residents) is None


def test_soc_default_period_length_by_hand(soc_months, tmp_path, store_at):
    from placeharm.services import pages

    model, _, deaths, _ = soc_months
    # at most 3 months: 03..05 against 12..02 is not held, so the longest is 2, not 1
    assert soc.default_period(model, deaths, months=3) == (D(2021, 4, 1), D(2021, 5, 1))
    # a sparse source held 27 months (2019-01..2021-03): the default is 12 months against
    # the 12 before, 2020-04..2021-03
    store, _ = _hand_store(tmp_path, store_at)
    try:
        deaths_csv = tmp_path / "partner-events.csv"
        deaths_csv.write_text(
            "event_id,event_date,partner,event_type,latitude,longitude\n"
            f"E1,2019-01-10,coroner,drug_related_death,{CENTRE['B'][1]},{CENTRE['B'][0]}\n"
            f"E2,2021-03-20,coroner,drug_related_death,{CENTRE['B'][1]},{CENTRE['B'][0]}\n"
        )
        assert import_entity(store, "partner-events", deaths_csv).status == "ok"
        long = soc_cells.cells(store, "patch")
    finally:
        store.close()
    only_deaths = pages.Filters(measures=("drug_related_deaths",)).measure_set()
    assert soc.default_period(long, only_deaths) == (D(2020, 4, 1), D(2021, 3, 1))


def test_soc_periods_of_a_store_with_no_soc_records(tmp_path, store_at):
    from placeharm.services import pages

    store, _ = _hand_store(tmp_path, store_at)  # street crimes only
    try:
        empty = soc_cells.cells(store, "patch")
    finally:
        store.close()
    every = pages.Filters().measure_set()
    data = soc.period_data(empty, every, D(2021, 2, 1), D(2021, 3, 1))
    # nothing held: no first or last month held, every month a gap, never an error
    assert data == soc.PeriodData(
        [], ["2021-02", "2021-03"], [], ["2020-12", "2021-01"], None, None, False
    )
    assert soc.default_period(empty, every) is None
    assert soc.snapshot_as_of(empty, D(2021, 3, 1)) == D(2021, 3, 31)  # no dated record


def test_soc_residents_stand_at_the_period_end_or_the_last_record(soc_months):
    model, *_ = soc_months
    # the last dated record of the force's systems (Store.soc_summary: force crimes,
    # intelligence, incidents; partner events are not among them): the crime of 2021-04-16
    assert soc.snapshot_as_of(model, D(2021, 3, 1)) == D(2021, 3, 31)
    assert soc.snapshot_as_of(model, D(2021, 4, 1)) == D(2021, 4, 16)
    assert soc.snapshot_as_of(model, D(2021, 9, 1)) == D(2021, 4, 16)
