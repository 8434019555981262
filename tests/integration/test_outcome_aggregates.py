"""What pages read once per store generation (issue 14) equals a recount from the store.

The outcome rates' police.uk counts (`outcomes.police_counts`: one `store.outcome_counts`
over every month, per set) and the ward page's monthly police.uk crimes from the harm read
model (`SetCells.area_monthly`) are compared, for every window of the months held and every
area and the force, with what the store counts from its records per request (the way pages
read them before), on both engines. An import between reads makes a new generation, and the
aggregates follow it.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest

from placeharm.model import month_range
from placeharm.services import outcomes, readmodel
from placeharm.services.areas import import_areas
from placeharm.services.ingest import ingest
from shapes import square

pytestmark = pytest.mark.both_engines

STREET = (
    "Crime ID,Month,Reported by,Falls within,Longitude,Latitude,Location,LSOA code,LSOA name,"
    "Crime type,Last outcome category,Context\n"
)
OUTCOMES = (
    "Crime ID,Month,Reported by,Falls within,Longitude,Latitude,Location,LSOA code,LSOA name,"
    "Outcome type\n"
)
W1, W2, AWAY = (-1.60, 54.97), (-1.58, 54.97), (-1.40, 54.90)  # AWAY: in no ward


def _row(cid: str, month: str, at: tuple[float, float], ctype: str, last: str) -> str:
    return (
        f"{cid},{month},Northumbria Police,Northumbria Police,{at[0]},{at[1]},"
        f"On or near X,E01000001,X 001A,{ctype},{last},\n"
    )


def _street(files: Path, month: str, rows: list[str]) -> None:
    (files / f"{month}-northumbria-street.csv").write_text(STREET + "".join(rows))


def _recount(store, by: str, first: dt.date, last: dt.date, area: str | None) -> dict:
    counts = store.outcome_counts(by, first, last, area)
    if counts.is_empty():
        return {}
    return {
        (m, o): int(n)
        for m, o, n in counts.group_by("month", "outcome").agg(pl.col("crimes").sum()).iter_rows()
    }


def _held(store, by: str, first: dt.date, last: dt.date, area: str | None) -> dict:
    frame = outcomes._police_counts(store, by, first, last, area)
    return {(m, o): int(n) for m, o, n in frame.select("month", "outcome", "crimes").iter_rows()}


def _check_every_window(store, areas: list[str]) -> None:
    months = month_range(dt.date(2021, 1, 1), dt.date(2021, 5, 1))
    held = readmodel.cells(store, "ward")
    for i, first in enumerate(months):
        for last in months[i:]:
            for area in [None, *areas]:
                assert _held(store, "ward", first, last, area) == _recount(
                    store, "ward", first, last, area
                ), (first, last, area)
            for area in areas:
                recount = store.month_counts("crimes", "month", "ward", first, last, area)
                got = held.area_monthly(area, first, last)
                key = ["month", "kind"]
                assert got.sort(key).to_dicts() == recount.drop("area_code").sort(key).to_dicts()


def test_per_generation_aggregates_equal_a_recount(store, tmp_path: Path) -> None:
    wards = tmp_path / "wards.geojson"
    wards.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [square("W1", *W1, label="Ward"), square("W2", *W2, label="Ward")],
            }
        )
    )
    files = tmp_path / "policeuk"
    files.mkdir()
    _street(
        files,
        "2021-01",
        [
            _row("C1", "2021-01", W1, "Burglary", "Under investigation"),
            _row("C2", "2021-01", W1, "Shoplifting", "Offender given a caution"),
            _row("C3", "2021-01", W2, "Burglary", "Investigation complete; no suspect identified"),
            _row("C4", "2021-01", AWAY, "Drugs", "Court result unavailable"),
            _row("", "2021-01", W1, "Anti-social behaviour", ""),
        ],
    )
    _street(
        files,
        "2021-02",
        [
            _row("C5", "2021-02", W2, "Burglary", "Unable to prosecute suspect"),
            _row("C6", "2021-02", W2, "Burglary", ""),
            _row("C7", "2021-02", W1, "Vehicle crime", "Something new"),
        ],
    )
    (files / "2021-02-northumbria-outcomes.csv").write_text(
        OUTCOMES + "C1,2021-02,Northumbria Police,Northumbria Police,-1.60,54.97,On or near X,"
        "E01000001,X 001A,Suspect charged\n"
    )
    import_areas(store, wards, "ward", "code", "name")
    ingest(store, [files], threads=1)
    before = store.generation
    _check_every_window(store, ["W1", "W2"])
    force = outcomes._police_counts(store, "ward", dt.date(2021, 1, 1), dt.date(2021, 2, 1), None)
    assert int(force["crimes"].sum()) == 7  # C1..C7: the one outside every ward counts too

    # new data: a new generation, and the aggregates are the new recount (2021-04's crime
    # and a revised outcome for C5)
    later = tmp_path / "later"
    later.mkdir()
    _street(later, "2021-04", [_row("C8", "2021-04", W1, "Robbery", "Suspect charged")])
    (later / "2021-04-northumbria-outcomes.csv").write_text(
        OUTCOMES + "C5,2021-04,Northumbria Police,Northumbria Police,-1.58,54.97,On or near X,"
        "E01000001,X 001A,Offender fined\n"
    )
    ingest(store, [later], threads=1)
    assert store.generation != before
    _check_every_window(store, ["W1", "W2"])
    rates = outcomes.outcome_rates(store, "ward", dt.date(2021, 1, 1), dt.date(2021, 4, 1), "W2")
    months = {m["month"]: m for m in rates["police_uk"]["months"]}
    assert (months["2021-02"]["crimes"], months["2021-02"]["charged"]) == (2, 1)  # C5 fined
    assert months["2021-03"]["gap"] is True
