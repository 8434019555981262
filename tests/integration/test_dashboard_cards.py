"""The overview's dashboard cards (issue 15) on the hand-built store of test_truthful_figures
(twelve square wards; CHB site S1 over A01: Clear 2021-03, Hold 2021-04, Build from 2021-05;
S2 over A02: Clear 2021-01, Hold from 2021-02)."""

from __future__ import annotations

import pytest
from test_truthful_figures import LEADER, overview, store  # noqa: F401 (fixtures)

from placeharm.errors import NotFound
from placeharm.services import dashboard


def _sites(card: dict) -> dict[str, tuple[str, str | None]]:
    return {s["site"]: (s["status"], s["since"]) for s in card["sites"]}


@pytest.mark.parametrize(
    ("month", "expected"),
    [
        ("2021-01", {"S1": ("Not started", None), "S2": ("Clear", "2021-01-01")}),
        ("2021-03", {"S1": ("Clear", "2021-03-01"), "S2": ("Hold", "2021-02-01")}),
        ("2021-06", {"S1": ("Build", "2021-05-01"), "S2": ("Hold", "2021-02-01")}),
    ],
)
def test_chb_card_gives_each_site_its_phase_at_the_period_end(overview, month, expected):  # noqa: F811
    chb = overview(month, month).data["dashboard"]["cards"]["chb"]
    assert _sites(chb) == expected


def test_force_cards_are_the_table_summed_and_counted(overview):  # noqa: F811
    page = overview("2021-06", "2021-06")
    cards = page.data["dashboard"]["cards"]
    rows = page.tables["areas"].to_dicts()
    now = sum(r["soc_harm"] for r in rows)
    assert cards["harm"]["value"] == pytest.approx(now, abs=1e-6)
    previous = now - sum(r["change"] for r in rows)
    assert cards["harm"]["previous"] == pytest.approx(previous, abs=1e-6)
    assert cards["harm"]["pct_change"] == pytest.approx(100 * (now / previous - 1), abs=0.05)
    levels = cards["risk"]["levels"]
    for level in ("High", "Medium", "Low", "None"):
        assert levels[level] == sum(r["risk"] == level for r in rows), level
    assert levels["None"] == 7  # 12 wards, 5 with SOC harm
    rising = sorted((r for r in rows if (r["change"] or 0) > 0), key=lambda r: -r["change"])
    assert [a["area_code"] for a in cards["risers"]["areas"]] == [
        r["area_code"] for r in rising[:3]
    ]


def test_no_soc_data_says_why_and_counts_nothing(overview):  # noqa: F811
    cards = overview("2021-07", "2021-07").data["dashboard"]["cards"]  # police.uk only
    assert cards["harm"]["value"] is None and cards["harm"]["change"] is None
    assert cards["harm"]["why_no_change"] == "no SOC data in this period"
    assert cards["risk"]["no_soc_data"] is True
    assert cards["risers"]["areas"] == [] and cards["risers"]["why_none"]


def test_focus_on_one_area(store, overview):  # noqa: F811
    db, _ = store
    page = overview("2021-06", "2021-06")
    filters = dashboard.Filters("ward")
    focused = dashboard.overview_focus(db, LEADER, filters, "A02", page)
    board = focused.data["dashboard"]
    a02 = next(r for r in page.tables["areas"].to_dicts() if r["area_code"] == "A02")
    assert board["focus"] == {"area_code": "A02", "area_name": "Ward A02"}
    assert board["cards"]["harm"]["value"] == a02["soc_harm"]
    assert board["cards"]["risk"]["level"] == a02["risk"]
    # only S2 lies over A02 (S1 over A01 touches A02's edge: not an overlap)
    assert _sites(board["cards"]["chb"]) == {"S2": ("Hold", "2021-02-01")}
    assert focused.data["outcomes"]["area_code"] == "A02"
    assert focused.tables is page.tables  # the table stays whole
    with pytest.raises(NotFound):
        dashboard.overview_focus(db, LEADER, filters, "A99", page)


def test_a_missing_harm_figure_is_never_a_fall_to_zero():
    from placeharm.services.dashboard import _harm_card

    card = _harm_card(None, 120.0, {}, "the force")
    assert card["value"] is None and card["change"] is None and card["pct_change"] is None
    assert card["why_no_change"] == "no SOC harm figure for this period"
    card = _harm_card(90.0, 120.0, {}, "the force")
    assert (card["change"], card["pct_change"]) == (-30.0, -25.0)
