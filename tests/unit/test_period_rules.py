"""Period rules pinned with hand-worked values (issue 19, second mutation pass): a one-month
CHB phase, and the refusal of a month that is not YYYY-MM.

Every expected value is written out here, never computed by the code under test.
"""

from __future__ import annotations

import datetime as dt

import pytest

from placeharm.errors import DataError
from placeharm.model.records import parse_month
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
