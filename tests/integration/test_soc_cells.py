"""SOC cells (placeharm.soc.cells) equal the direct computation: the SOC measures scored from
the records (`score`, `score_in_store`) and the monthly counts of the ward and CHB views, for
random periods, every role's scope and every measure; after SOC imports of new and revised
records too. The demo slice with the synthetic overlay (seed 5)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from placeharm.harm import load_index
from placeharm.model import month_end, shift_month
from placeharm.services import demo, policy, soc
from placeharm.soc import cells as soc_cells
from placeharm.soc.importer import import_entity
from placeharm.soc.measures import load_frames, load_measures, score, score_in_store
from placeharm.store.base import Scope
from placeharm.store.duckdb import DuckDBStore

KEYS = ["area_code", "period"]
ROLES = [r for r in policy.Role if r is not policy.Role.auditor]
# the overlay's dated records lie in 2021-11..2022-03; periods reach before and after them
MONTHS = [shift_month(dt.date(2021, 8, 1), i) for i in range(10)]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, module_store_at):
    tmp = tmp_path_factory.mktemp("cells")
    store = module_store_at("demo")
    demo.build_demo(store)
    overlay = soc.build_overlay(store, seed=5, out_dir=tmp / "csv")
    yield store, overlay, tmp
    store.close()


def _scopes(store: DuckDBStore) -> dict[str, Scope]:
    return {r.value: policy.scope(store, policy.User("u", "U", r)) for r in ROLES}


def _periods(rng: np.random.Generator) -> dict[str, tuple[dt.date, dt.date]]:
    """Two random whole-month periods, `previous` ending before `now` starts (as the callers
    ask: the cells answer whole, disjoint months only)."""
    a, b, c = sorted(rng.choice(len(MONTHS), 3, replace=False))
    start = int(rng.integers(0, a + 1))
    return {
        "now": (MONTHS[b], month_end(MONTHS[c])),
        "previous": (MONTHS[start], month_end(MONTHS[a])),
    }


def _assert_equal(cells: pl.DataFrame, direct: pl.DataFrame, what: str) -> None:
    """Cells (every area, zeros included) against a direct result (areas with records, null
    area included): equal on every area of the set, zero where the direct one has no row."""
    assert cells.columns == direct.columns, what
    direct = direct.filter(pl.col("area_code").is_not_null())
    joined = cells.join(direct, on=KEYS, how="left", suffix="_direct")
    assert direct.height == cells.join(direct, on=KEYS, how="semi").height, what
    for col in cells.columns[2:]:
        got = joined[col].to_list()
        want = joined[f"{col}_direct"].fill_null(0).to_list()
        if cells.schema[col] == pl.Int64:
            assert got == want, (what, col)
        else:
            assert got == pytest.approx(want, rel=1e-12, abs=1e-9), (what, col)


def test_cells_equal_the_store_scoring_for_every_role_and_random_periods(built):
    store, _, _ = built
    index, measures = load_index("css"), load_measures().measures
    rng = np.random.default_rng(14)
    model = soc_cells.cells(store, "ward")
    scopes = _scopes(store)
    assert scopes["officer"].drop and scopes["partner"].keep  # the scopes do hide something
    for _ in range(4):
        periods = _periods(rng)
        for role, scope in scopes.items():
            every = ("force_crimes", "homes", "incidents", "intelligence", "partner_events")
            assert model.applies(scope, every), role
            got = model.score(measures, index, periods, scope).sort(KEYS)
            direct = score_in_store(store, "ward", measures, index, periods, scope)
            _assert_equal(got, direct.sort(KEYS), f"{role} {periods}")


def test_cells_equal_the_reference_scoring_one_measure_at_a_time(built):
    """Each measure alone, under another index, against the plain polars `score`."""
    store, _, _ = built
    index, measures = load_index("cchi"), load_measures().measures
    rng = np.random.default_rng(7)
    model = soc_cells.cells(store, "lsoa")
    for role, scope in _scopes(store).items():
        periods = _periods(rng)
        first = min(p[0] for p in periods.values())
        last = max(p[1] for p in periods.values())
        frames = load_frames(store, "lsoa", first, last, index, scope)
        for measure in measures:
            got = model.score((measure,), index, periods, scope).sort(KEYS)
            reference = score(frames, (measure,), index, periods)
            _assert_equal(got, reference.sort(KEYS), f"{role} {measure.id}")


def test_a_total_is_what_the_role_can_list(built):
    """Per ward and month, the cells' intelligence and partner events for each role equal
    the records that role's scope lists (a partner: handling code P only)."""
    store, _, _ = built
    model = soc_cells.cells(store, "ward")
    first, last = dt.date(2021, 11, 1), dt.date(2022, 3, 31)
    for role, scope in _scopes(store).items():
        for source, table, date_col in (
            ("intelligence", "soc_intelligence", "reported_date"),
            ("incidents", "soc_incidents", "occurred_date"),
        ):
            listed = store.soc_frame(table, "ward", (date_col, first, last), scope=scope)
            per = listed.filter(pl.col("area_code").is_not_null()).group_by("area_code").len()
            for code, n in per.head(15).iter_rows():
                counts = model.monthly(source, code, first, last, scope)
                assert sum(counts.values()) == n, (role, source, code)
        events = model.cells("partner_events")
        shown = store.soc_frame("soc_partner_events", "ward", scope=scope).height
        kept = events
        if role == "partner":
            kept = events.filter(pl.col("handling_code") == "P")
        assert int(kept["records"].sum()) == shown, role


def test_monthly_counts_equal_the_records(built):
    """The ward and CHB views' monthly SOC counts from the cells equal those counted from
    the records (`_soc_crimes_monthly`, `Store.month_counts`) for every role."""
    store, _, _ = built
    first, last = dt.date(2021, 10, 1), dt.date(2022, 4, 1)
    for set_name in ("ward", soc.CHB_SET):
        model = soc_cells.cells(store, set_name)
        codes = model.codes[:: max(1, len(model.codes) // 12)]
        for role, scope in _scopes(store).items():
            for code in codes:
                direct = soc._soc_crimes_monthly(store, set_name, code, first, last, scope)
                want = dict(direct.iter_rows())
                assert model.monthly("soc_crimes", code, first, last, scope) == want
                for what, (table, date_col) in soc._SOC_MONTHLY.items():
                    rows = store.month_counts(
                        table, date_col, set_name, first, month_end(last), code, scope
                    )
                    want = dict(rows.group_by("month").agg(pl.col("records").sum()).iter_rows())
                    assert model.monthly(what, code, first, last, scope) == want, (role, what)


def test_groups_living_in_an_area_equal_the_records(built):
    store, _, _ = built
    model = soc_cells.cells(store, "ward")
    codes = model.group_homes["area_code"].drop_nulls().unique().sort().to_list()
    assert len(codes) > 5
    for role, scope in _scopes(store).items():
        assert model.applies(scope, ("groups",)), role
        for code in codes[:: max(1, len(codes) // 10)]:
            got = model.groups_in(code, scope)
            assert got.height > 0
            assert got.equals(soc._groups_from_records(store, "ward", code, scope)), (role, code)


def test_a_scope_the_cells_cannot_apply_is_scored_from_the_records(built):
    store, _, _ = built
    index, measures = load_index("css"), load_measures()
    narrow = Scope(keep=(("soc_force_crimes", "offence_code", ("92A",)),))
    model = soc_cells.cells(store, "ward")
    assert not model.applies(narrow, ("force_crimes",))
    assert model.applies(narrow, ("intelligence", "homes"))
    # a group member dropped from the links: their crimes' links would change
    member = sorted(model.members)[0]
    assert not model.applies(
        Scope(drop=(("soc_memberships", "nominal_id", (member,)),)), ("force_crimes",)
    )
    first, last = dt.date(2021, 11, 1), dt.date(2022, 3, 1)
    ranked = soc.soc_rank(store, "ward", first, last, index, measures, narrow)
    periods = {"now": (first, month_end(last))}
    direct = score_in_store(store, "ward", measures.measures, index, periods, narrow)
    direct = direct.filter(pl.col("area_code").is_not_null())
    assert direct.height > 0
    ranked_rows = {r["area_code"]: r for r in ranked.table.to_dicts()}
    for row in direct.to_dicts():
        for m in measures.measures:
            assert ranked_rows[row["area_code"]][m.id] == (row[m.id] or 0), m.id
    # only 92A crimes are counted: every force-crime measure counts only drug supply crimes
    assert int(ranked.table["drug_supply"].sum()) > 0
    assert ranked.table["ocg_crimes"].sum() <= ranked.table["drug_supply"].sum()


def test_cells_follow_a_soc_import_of_new_and_revised_records(built, tmp_path: Path):
    """Runs last in this module: it imports into the shared store."""
    store, _, _ = built
    index, measures = load_index("css"), load_measures().measures
    before = soc_cells.cells(store, "ward")
    assert soc_cells.cells(store, "ward") is before  # kept while nothing is written
    crimes = store.soc_frame("soc_force_crimes", "ward").filter(pl.col("area_code").is_not_null())
    revised = crimes.row(0, named=True)
    elsewhere = crimes.filter(pl.col("area_code") != revised["area_code"]).row(0, named=True)
    member = store.soc_frame("soc_memberships").row(0, named=True)["nominal_id"]
    path = tmp_path / "force-crimes.csv"
    path.write_text(
        "crime_ref,recorded_date,offence_code,firearms_discharged,cannabis_production,"
        "latitude,longitude\n"
        # a revision: moved to another ward and month, now a firearms discharge
        f"{revised['crime_ref']},2022-02-14,92A,Y,N,{elsewhere['latitude']},"
        f"{elsewhere['longitude']}\n"
        f"NEW-1,2022-03-03,92A,N,Y,{elsewhere['latitude']},{elsewhere['longitude']}\n"
    )
    result = import_entity(store, "force-crimes", path)
    assert (result.inserted, result.updated) == (1, 1), result
    links = tmp_path / "nominal-crimes.csv"
    links.write_text(f"nominal_id,crime_ref,role\n{member},NEW-1,suspect\n")
    assert import_entity(store, "nominal-crimes", links).inserted == 1
    intel = tmp_path / "intelligence.csv"
    intel.write_text(
        "intel_id,reported_date,source_evaluation,intelligence_assessment,handling_code,"
        f"topics,latitude,longitude\nNEW-I,2022-01-20,1,B,C,firearms,{elsewhere['latitude']},"
        f"{elsewhere['longitude']}\n"
    )
    assert import_entity(store, "intelligence", intel).inserted == 1
    officer = policy.scope(store, policy.User("o", "O", policy.Role.officer))
    assert policy.scope(store, policy.User("p", "P", policy.Role.senior_leader)) is officer
    nominals = tmp_path / "nominals.csv"
    nominals.write_text("nominal_id,cce_victim\nNEW-N,Y\n")  # known only for CCE
    assert import_entity(store, "nominals", nominals).inserted == 1
    hidden = policy.hidden_nominals(policy.scope(store, policy.User("o", "O", policy.Role.officer)))
    assert "NEW-N" in hidden and "NEW-N" not in policy.hidden_nominals(officer)
    after = soc_cells.cells(store, "ward")
    assert after is not before and after.generation == store.generation
    grew = int(after.cells("force_crimes")["records"].sum())
    assert grew == int(before.cells("force_crimes")["records"].sum()) + 1
    periods = {"now": (dt.date(2021, 11, 1), dt.date(2022, 3, 31))}
    for role, scope in _scopes(store).items():
        got = after.score(measures, index, periods, scope).sort(KEYS)
        direct = score_in_store(store, "ward", measures, index, periods, scope)
        _assert_equal(got, direct.sort(KEYS), role)
    ward = elsewhere["area_code"]
    counts = after.monthly("soc_crimes", ward, dt.date(2022, 2, 1), dt.date(2022, 3, 1))
    old = before.monthly("soc_crimes", ward, dt.date(2022, 2, 1), dt.date(2022, 3, 1))
    assert sum(counts.values()) >= sum(old.values()) + 2  # the revision and the new farm
    partner = _scopes(store)["partner"]
    assert after.monthly("intelligence", ward, dt.date(2022, 1, 1), dt.date(2022, 1, 1)) != (
        after.monthly("intelligence", ward, dt.date(2022, 1, 1), dt.date(2022, 1, 1), partner)
    )
