"""Month rules pinned at their edges (issue 19): the earliest police.uk month, the month
window of street and outcomes files, the month pattern, and a CHB site's before period and
monthly means. Expected months are worked out by hand in each test.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from placeharm.errors import DataError
from placeharm.ingest import policeuk
from placeharm.ingest.policeuk import parse_file
from placeharm.model import parse_month
from placeharm.services import soc
from placeharm.services.ingest import _name_month

STREET = ",".join(policeuk.STREET_HEADER)
OUTCOMES = ",".join(policeuk.OUTCOMES_HEADER)
D = dt.date


def _street_row(i: int, month: str) -> str:
    return f"{i:064x},{month},Test Police,Test Police,-1.6,54.97,On or near X,,,Burglary,,"


def _outcome_row(i: int, month: str) -> str:
    return f"{i:064x},{month},Test Police,Test Police,-1.6,54.97,On or near X,,,Suspect charged"


def _parse(tmp_path: Path, name: str, header: str, rows: list[str], latest: str):
    path = tmp_path / name
    path.write_text("\n".join([header, *rows]) + "\n")
    return parse_file(path, latest)


def _months_kept(parsed) -> list[str]:
    return sorted(f"{m:%Y-%m}" for m in parsed.frame["month"].to_list())


# -- the earliest month and the street file's window ------------------------------------------


def test_first_police_uk_month_is_december_2010():
    assert policeuk.FIRST_MONTH == "2010-12"


def test_street_rows_from_2010_12_to_the_latest_month(tmp_path: Path):
    months = ["2010-11", "2010-12", "2011-01", "2021-04", "2021-05", "2021-06", "2022-01"]
    rows = [_street_row(i, m) for i, m in enumerate(months)]
    parsed = _parse(tmp_path, "rows.csv", STREET, rows, latest="2021-05")
    assert _months_kept(parsed) == ["2010-12", "2011-01", "2021-04", "2021-05"]
    reasons = {q.line: q.reason for q in parsed.quarantine}
    # line 1 is the header: 2010-11 is line 2, 2021-06 line 7, 2022-01 line 8
    assert sorted(reasons) == [2, 7, 8]
    assert all(
        "outside the data.police.uk range (2010-12 to 2021-05)" in r for r in reasons.values()
    )


def test_outcome_rows_may_be_one_month_after_the_latest(tmp_path: Path):
    months = ["2010-11", "2010-12", "2021-05", "2021-06", "2021-07"]
    rows = [_outcome_row(i, m) for i, m in enumerate(months)]
    parsed = _parse(tmp_path, "outcomes.csv", OUTCOMES, rows, latest="2021-05")
    assert _months_kept(parsed) == ["2010-12", "2021-05", "2021-06"]
    assert sorted(q.line for q in parsed.quarantine) == [2, 6]  # 2010-11, 2021-07
    assert all("2010-12 to 2021-06" in q.reason for q in parsed.quarantine)


def test_outcome_window_crosses_the_year_end(tmp_path: Path):
    rows = [_outcome_row(i, m) for i, m in enumerate(["2021-12", "2022-01", "2022-02"])]
    parsed = _parse(tmp_path, "outcomes.csv", OUTCOMES, rows, latest="2021-12")
    assert _months_kept(parsed) == ["2021-12", "2022-01"]
    assert [q.line for q in parsed.quarantine] == [4]
    assert "2010-12 to 2022-01" in parsed.quarantine[0].reason


@pytest.mark.parametrize(
    ("month", "kept"),
    [
        ("2021-05", True),
        (" 2021-05 ", True),  # spaces around are trimmed
        ("2021-5", False),
        ("2021-13", False),
        ("2021-00", False),
        ("2021-05-01", False),
        ("202105", False),
        ("21-05", False),
        ("May 2021", False),
    ],
)
def test_row_month_pattern(tmp_path: Path, month: str, kept: bool):
    parsed = _parse(tmp_path, "rows.csv", STREET, [_street_row(1, month)], latest="2030-12")
    assert (parsed.frame.height, len(parsed.quarantine)) == ((1, 0) if kept else (0, 1))
    if not kept:
        assert "month" in parsed.quarantine[0].reason


# -- the month a file's name gives ------------------------------------------------------------


@pytest.mark.parametrize("month", ["2010-12", "2021-01", "2021-12"])
def test_named_months_accepted(tmp_path: Path, month: str):
    parsed = _parse(
        tmp_path, f"{month}-test-street.csv", STREET, [_street_row(1, month)], "2030-12"
    )
    assert parsed.file_months == (month,)
    assert _name_month(month) == D(int(month[:4]), int(month[5:]), 1)


@pytest.mark.parametrize("month", ["2010-11", "2009-12", "2021-13", "2021-00"])
def test_named_months_refused(tmp_path: Path, month: str):
    with pytest.raises(DataError, match=f"gives the month {month}"):
        _parse(tmp_path, f"{month}-test-street.csv", STREET, [_street_row(1, "2021-01")], "2030-12")
    assert _name_month(month) is None


# -- the API's month window -------------------------------------------------------------------


def _api_record(month: str) -> dict:
    return {
        "category": "burglary",
        "location_type": "Force",
        "location": {
            "latitude": "54.97",
            "longitude": "-1.6",
            "street": {"id": 1, "name": "On or near X"},
        },
        "context": "",
        "outcome_status": None,
        "persistent_id": f"{7:064x}",
        "id": 90000001,
        "location_subtype": "",
        "month": month,
    }


@pytest.mark.parametrize(
    ("month", "reason"),
    [
        ("2010-11", "outside the data.police.uk range (2010-12 to 2021-05)"),
        ("2010-12", None),
        ("2021-05", None),
        ("2021-06", "outside the data.police.uk range (2010-12 to 2021-05)"),
        ("2021-5", "bad month"),
        ("2021-13", "bad month"),
        ("2021-05-01", "bad month"),
    ],
)
def test_api_month_window(tmp_path: Path, month: str, reason: str | None):
    path = tmp_path / "api.json"
    path.write_text(json.dumps([_api_record(month)]))
    parsed = parse_file(path, "2021-05")
    if reason is None:
        assert _months_kept(parsed) == [month]
    else:
        assert parsed.frame.height == 0
        assert reason in parsed.quarantine[0].reason


# -- months typed in a filter -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "month"),
    [("1900-01", D(1900, 1, 1)), ("2199-12", D(2199, 12, 1)), (" 2021-05 ", D(2021, 5, 1))],
)
def test_filter_months_accepted(text: str, month: dt.date):
    assert parse_month(text) == month


@pytest.mark.parametrize(
    "text", ["1899-12", "2200-01", "2021-00", "2021-13", "2021-5", "2021-05-01", "0000-01", ""]
)
def test_filter_months_refused(text: str):
    with pytest.raises(DataError, match="between 1900-01 and 2199-12"):
        parse_month(text)


# -- a CHB site's before period ---------------------------------------------------------------


def test_chb_before_period_is_as_long_as_the_phases():
    phases = [
        ("Clear", D(2021, 3, 10), D(2021, 5, 20)),  # 2021-03..05: 3 months
        ("Hold", D(2021, 6, 1), D(2021, 8, 31)),  # 2021-06..08: 3 months
        ("Build", D(2021, 9, 1), None),  # ongoing: 2021-09..12 (last held): 4 months
    ]
    clear, periods, length, wanted, before = soc.chb_periods(phases, D(2019, 1, 1), D(2021, 12, 1))
    assert clear == D(2021, 3, 1)
    assert periods == [
        ("Clear", D(2021, 3, 1), D(2021, 5, 1)),
        ("Hold", D(2021, 6, 1), D(2021, 8, 1)),
        ("Build", D(2021, 9, 1), D(2021, 12, 1)),
    ]
    # 3 + 3 + 4 = 10 months, ending the month before Clear: 2020-05..2021-02
    assert (length, wanted, before) == (10, D(2020, 5, 1), (D(2020, 5, 1), D(2021, 2, 1)))


@pytest.mark.parametrize(
    ("last_phase_month", "length", "first_before"),
    [
        (D(2021, 11, 1), 11, D(2020, 2, 1)),  # 2021-01..11: 11 months
        (D(2021, 12, 1), 12, D(2020, 1, 1)),  # 12 months: the most
        (D(2022, 1, 1), 12, D(2020, 1, 1)),  # 13 months: still 12
        (D(2023, 6, 1), 12, D(2020, 1, 1)),
    ],
)
def test_chb_before_period_is_at_most_12_months(
    last_phase_month: dt.date, length: int, first_before: dt.date
):
    phases = [("Clear", D(2021, 1, 4), last_phase_month)]
    _, _, got_length, wanted, before = soc.chb_periods(phases, D(2010, 12, 1), D(2024, 1, 1))
    assert (got_length, wanted) == (length, first_before)
    assert before == (first_before, D(2020, 12, 1))


def test_chb_before_period_starts_no_earlier_than_the_data():
    phases = [("Clear", D(2021, 3, 1), D(2021, 8, 31))]  # 6 months: wanted 2020-09..2021-02
    _, _, length, wanted, before = soc.chb_periods(phases, D(2020, 12, 1), D(2021, 12, 1))
    assert (length, wanted) == (6, D(2020, 9, 1))
    assert before == (D(2020, 12, 1), D(2021, 2, 1))  # 3 months held
    # data from the very month Clear starts: an empty before period (first after last)
    _, _, _, _, before = soc.chb_periods(phases, D(2021, 3, 1), D(2021, 12, 1))
    assert before == (D(2021, 3, 1), D(2021, 2, 1))


def test_chb_phases_are_clipped_to_the_months_held():
    phases = [
        ("Clear", D(2021, 3, 1), D(2021, 4, 1)),  # 2 months
        ("Hold", D(2021, 11, 15), D(2022, 6, 30)),  # clipped to 2021-11..12: 2 months
        ("Build", D(2022, 2, 1), None),  # starts after the last month held: left out
    ]
    _, periods, length, wanted, before = soc.chb_periods(phases, D(2015, 1, 1), D(2021, 12, 1))
    assert periods == [
        ("Clear", D(2021, 3, 1), D(2021, 4, 1)),
        ("Hold", D(2021, 11, 1), D(2021, 12, 1)),
    ]
    assert (length, wanted, before) == (4, D(2020, 11, 1), (D(2020, 11, 1), D(2021, 2, 1)))


def test_chb_with_no_phase_in_the_data_still_has_a_one_month_before_period():
    phases = [("Clear", D(2022, 2, 1), None)]
    _, periods, length, wanted, before = soc.chb_periods(phases, D(2015, 1, 1), D(2021, 12, 1))
    assert periods == []
    assert (length, wanted, before) == (1, D(2022, 1, 1), (D(2022, 1, 1), D(2022, 1, 1)))


def test_chb_clear_month_is_the_earliest_phase_start_in_any_order():
    phases = [("Hold", D(2021, 6, 1), D(2021, 6, 30)), ("Clear", D(2021, 4, 30), None)]
    clear, _, _, _, before = soc.chb_periods(phases, D(2015, 1, 1), D(2021, 7, 1))
    assert clear == D(2021, 4, 1)
    assert before[1] == D(2021, 3, 1)


@pytest.mark.parametrize(
    ("total", "months", "mean"),
    [
        (12, 4, 3.0),  # 6 months before, 2 without data: 12 / 4, not 12 / 6
        (7, 3, 2.33),
        (2, 3, 0.67),
        (0, 3, 0.0),  # held months with no record: a true zero
        (5, 1, 5.0),
        (5, 0, None),  # no month with data: no figure, never 0
        (0, 0, None),
    ],
)
def test_chb_monthly_mean_divides_by_months_with_data(total: int, months: int, mean: float | None):
    assert soc.monthly_mean(total, months) == mean
