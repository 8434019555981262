"""The synthetic overlay on the bundled real slice: determinism, plausibility, round trip."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from placeharm.services import demo, soc
from placeharm.services.areas import import_areas
from placeharm.soc.generate import generate
from placeharm.soc.importer import export_entity, import_entity, stored_json
from placeharm.soc.schema import ENTITIES

CRIME_COLUMNS = [
    "crime_id",
    "month",
    "crime_type",
    "longitude",
    "latitude",
    "location",
    "area_ward",
]


@pytest.fixture(scope="module")
def overlay_store(tmp_path_factory: pytest.TempPathFactory, module_store_at):
    tmp = tmp_path_factory.mktemp("overlay")
    store = module_store_at("demo")
    demo.build_demo(store)
    built = soc.build_overlay(store, seed=3, out_dir=tmp / "csv")
    yield store, built, tmp
    store.close()


def test_overlay_imports_every_row(overlay_store):
    _, built, _ = overlay_store
    for result in built.results:
        assert result.ok, result
        assert result.quarantined == 0, result.quarantine_sample
        assert result.inserted == built.overlay.counts[result.source_kind.removeprefix("soc:")]
    counts = built.overlay.counts
    assert counts["groups"] == 30
    assert counts["nominals"] == 2000


def test_same_seed_same_overlay(overlay_store, tmp_path: Path):
    store, built, _ = overlay_store
    crimes = store.crime_frame(CRIME_COLUMNS).filter(
        pl.col("crime_type") != "Anti-social behaviour"
    )
    again = generate(crimes, tmp_path / "again", seed=3)
    other = generate(crimes, tmp_path / "other", seed=4)
    for kind, path in built.overlay.files.items():
        assert path.read_bytes() == again.files[kind].read_bytes(), kind
    assert built.overlay.files["nominals"].read_bytes() != other.files["nominals"].read_bytes()


def test_overlay_is_plausible(overlay_store):
    store, _, _ = overlay_store
    nominals = store.soc_frame("soc_nominals")
    assert nominals["synthetic"].all()
    assert nominals["surname"].str.starts_with("Demo").all()
    # groups are based where real SOC-type crime concentrates
    crimes = store.crime_frame(["crime_type", "area_ward"]).filter(
        pl.col("crime_type").is_in(
            ["Drugs", "Possession of weapons", "Robbery", "Violence and sexual offences"]
        )
    )
    ranked = crimes.group_by("area_ward").len().sort("len", descending=True)
    top_fifth = set(ranked["area_ward"].head(ranked.height // 5).to_list())
    homes = (
        store.soc_frame("soc_addresses", "ward")
        .join(store.soc_frame("soc_memberships"), on="nominal_id")
        .filter(pl.col("link_type") == "home")
    )
    share = homes["area_code"].is_in(list(top_fifth)).mean()
    assert share > 0.6, share
    # 3x5x2 grading mix: mostly untested sources (2), B/C assessments, few E
    intel = store.soc_frame("soc_intelligence")
    source = intel["source_evaluation"].value_counts(normalize=True)
    mix = dict(zip(source["source_evaluation"], source["proportion"], strict=True))
    assert 0.6 < mix["2"] < 0.8 and 0.12 < mix["1"] < 0.3
    assessment = intel["intelligence_assessment"]
    assert (assessment == "E").mean() < 0.08 and (assessment.is_in(["B", "C"])).mean() > 0.6
    assert 0.7 < (intel["handling_code"] == "P").mean() < 0.9
    # links are consistent
    ids = set(nominals["nominal_id"])
    assert set(store.soc_frame("soc_memberships")["nominal_id"]) <= ids
    assert set(store.soc_frame("soc_memberships")["group_id"]) <= set(
        store.soc_frame("soc_groups")["group_id"]
    )
    refs = set(store.soc_frame("soc_force_crimes")["crime_ref"])
    assert set(store.soc_frame("soc_nominal_crimes")["crime_ref"]) <= refs
    linked = set(store.soc_frame("soc_force_crimes")["policeuk_crime_id"].drop_nulls())
    assert linked <= set(store.crime_frame(["crime_id"])["crime_id"].drop_nulls())
    links = store.soc_frame("soc_nominal_links")
    exploited = links.filter(pl.col("link_type") == "exploitation")["to_nominal"]
    victims = nominals.filter(pl.col("cce_victim") | pl.col("cse_victim"))["nominal_id"]
    assert set(exploited) == set(victims)
    # offence codes belong to the crime's police.uk type
    from placeharm.soc.importer import _code_types

    types = _code_types()
    for code, crime_type in (
        store.soc_frame("soc_force_crimes").select("offence_code", "crime_type").iter_rows()
    ):
        assert types[code] == crime_type or crime_type == "Violence and sexual offences"


def test_export_import_round_trip(overlay_store, tmp_path: Path, store_at):
    store, built, _ = overlay_store
    fresh = store_at("fresh")
    try:
        # CHB site polygons are an area set (GeoJSON), not a CSV entity
        import_areas(fresh, built.overlay.chb_sites, "chb", code_field="code", name_field="name")
        for kind in soc.IMPORT_ORDER:
            path = tmp_path / f"{kind}.csv"
            written = export_entity(store, kind, path)
            result = import_entity(fresh, kind, path)
            assert result.ok and result.inserted == written, (kind, result)
        for kind in ENTITIES:
            assert stored_json(fresh, kind) == stored_json(store, kind), kind
    finally:
        fresh.close()


def test_soc_views_on_the_demo(overlay_store):
    store, _, _ = overlay_store
    first, last = dt.date(2021, 11, 1), dt.date(2022, 3, 1)
    ranked = soc.soc_rank(store, "ward", first, last)
    assert ranked.notes[0] == soc.DEMO_BANNER and ranked.meta["synthetic"]
    assert ranked.table["rank"][0] == 1 and ranked.table.height == 177
    top = ranked.table["area_code"][0]
    ward = soc.ward_view(store, top, first, last)
    assert ward.table["crimes"].null_count() == 1  # 2022-01, the real gap
    assert ward.table.filter(pl.col("month") == "2022-01")["intelligence"].item() >= 0
    assert ward.meta["rank"] == 1 and ward.extra["measures"].height == 9
    chb = soc.chb_view(store, "DEMO-CHB1")
    assert chb.table["phase"].to_list()[0] == "Before"
    assert "Before/after alone" in chb.notes[-1]


def test_store_scoring_equals_the_reference_scoring(overlay_store):
    """The SQL scoring used by `soc rank` agrees with the plain polars implementation."""
    from placeharm.harm import load_index
    from placeharm.soc.measures import load_frames, load_measures, score, score_in_store

    store, _, _ = overlay_store
    index, measures = load_index("css"), load_measures().measures
    periods = {
        "now": (dt.date(2022, 2, 1), dt.date(2022, 3, 31)),
        "previous": (dt.date(2021, 11, 1), dt.date(2021, 12, 31)),
    }
    frames = load_frames(store, "ward", dt.date(2021, 11, 1), dt.date(2022, 3, 31), index)
    keys = ["area_code", "period"]
    reference = score(frames, measures, index, periods).sort(keys)
    fast = score_in_store(store, "ward", measures, index, periods).sort(keys)
    columns = reference.columns
    assert fast.columns == columns
    reference = reference.fill_null(0)
    fast = fast.fill_null(0)
    for col in columns[2:]:
        left, right = reference[col].to_list(), fast[col].to_list()
        assert left == pytest.approx(right), col
    assert reference.select(keys).equals(fast.select(keys))
