"""Period rules pinned with hand-worked values (issue 19, third mutation pass): a one-month
CHB phase, month ranges and month ends, and the refusals of a month that is not YYYY-MM and
of an area set name that is not an identifier.

Every expected value is written out here, never computed by the code under test.
"""

from __future__ import annotations

import datetime as dt

import pytest

from placeharm.errors import DataError
from placeharm.model.records import check_area_set_name, month_end, month_range, parse_month
from placeharm.services.soc import chb_periods

D = dt.date


def test_a_phase_within_one_month_counts_as_one_month():
    phases = [
        ("clear", D(2021, 3, 5), D(2021, 3, 20)),  # March only
        ("hold", D(2021, 4, 1), None),  # April on, ongoing
    ]
    clear, periods, length, wanted, before = chb_periods(phases, D(2019, 1, 1), D(2021, 6, 1))
    assert clear == D(2021, 3, 1)
    assert periods == [
        ("clear", D(2021, 3, 1), D(2021, 3, 1)),
        ("hold", D(2021, 4, 1), D(2021, 6, 1)),
    ]
    # 1 + 3 months of phases: a before period of 4 months, November to February
    assert (length, wanted) == (4, D(2020, 11, 1))
    assert before == (D(2020, 11, 1), D(2021, 2, 1))


def test_a_bad_month_is_named_by_its_first_twenty_characters():
    with pytest.raises(DataError) as refused:
        parse_month("2021-01-01T00:00:00Z and more")
    assert str(refused.value) == (
        "month '2021-01-01T00:00:00Z' is not valid: write it as YYYY-MM between 1900-01 and "
        "2199-12, e.g. 2021-01"
    )


def test_a_month_range_holds_the_first_day_of_each_month():
    assert month_range(D(2021, 11, 15), D(2022, 2, 3)) == [
        D(2021, 11, 1),
        D(2021, 12, 1),
        D(2022, 1, 1),
        D(2022, 2, 1),
    ]
    assert month_range(D(2021, 5, 1), D(2021, 5, 31)) == [D(2021, 5, 1)]
    assert month_range(D(2021, 6, 1), D(2021, 5, 1)) == []


@pytest.mark.parametrize(
    ("month", "end"),
    [
        (D(2021, 2, 1), D(2021, 2, 28)),
        (D(2020, 2, 1), D(2020, 2, 29)),
        (D(2021, 4, 10), D(2021, 4, 30)),
        (D(2021, 12, 1), D(2021, 12, 31)),
        (D(2022, 1, 31), D(2022, 1, 31)),
    ],
)
def test_month_end(month: dt.date, end: dt.date):
    assert month_end(month) == end


def test_an_area_set_name_that_is_not_an_identifier_is_refused_with_the_rule():
    with pytest.raises(DataError) as refused:
        check_area_set_name("Ward")
    assert str(refused.value) == (
        "area set name 'Ward' is not allowed: use lower-case letters, digits and underscores, "
        "starting with a letter (e.g. 'ward', 'chb_sites')"
    )
