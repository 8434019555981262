"""Harm on real Northumbria data: populations, ranking across the 2022-01 gap, comparison.

Expected totals are recomputed from the police.uk files with the csv module and the
shipped type weights (police.uk records carry no offence code, so each weighs its type).
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
from collections import Counter
from pathlib import Path

import pytest

import placeharm
from placeharm.errors import DataError, NotFound
from placeharm.harm import load_index
from placeharm.services import harm
from placeharm.services.areas import import_areas
from placeharm.services.ingest import ingest
from placeharm.services.population import derive_population, import_population

MONTHS = ("2021-10", "2021-11", "2021-12", "2022-02", "2022-03", "2022-04", "2022-05")


@pytest.fixture(scope="module")
def real(module_db_at, northumbria: Path, boundaries: Path, shared_data: Path):
    store = placeharm.open_store(module_db_at("real"))  # the engine under test
    import_areas(store, boundaries / "northumbria_lsoa2011.geojson", "lsoa")
    import_areas(store, boundaries / "northumbria_ward2013.geojson", "ward")
    files = [northumbria / f"{m}-northumbria-street.csv.gz" for m in MONTHS]
    assert all(r.status == "ok" for r in ingest(store, files))
    yield store, files, shared_data / "reference"
    store.close()


def _type_counts(files: list[Path]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for path in files:
        reader = csv.DictReader(io.StringIO(gzip.decompress(path.read_bytes()).decode()))
        counts.update(row["Crime type"] for row in reader)
    return counts


def test_populations_from_lsoa_file_and_best_fit(real):
    store, _, reference = real
    lsoa = import_population(store, reference / "population20_lsoa11_totals.csv", "lsoa", 2020)
    assert (lsoa.areas, lsoa.stored, lsoa.areas_without) == (916, 916, [])
    assert lsoa.not_in_set == 34753 - 916  # the rest of England and Wales, counted not stored
    ward = derive_population(store, "ward", "lsoa", 2020)
    assert ward.total == lsoa.total  # every LSOA's interior point is in some ward
    assert ward.stored == 176 and len(ward.areas_without) == 1
    with pytest.raises(NotFound, match="no 2017 populations held for 'lsoa'"):
        derive_population(store, "ward", "lsoa", 2017)


def test_population_file_errors(real, tmp_path: Path):
    store, _, _ = real
    bad = tmp_path / "bad.csv"
    bad.write_text("lsoa11_code,total_population\nE01008162,12x\nE01008163,\n")
    with pytest.raises(DataError, match=r"2 rows of .* have no usable population") as caught:
        import_population(store, bad, "lsoa", 2019)
    assert "bad.csv:2" in str(caught.value) and "bad.csv:3" in str(caught.value)
    other = tmp_path / "elsewhere.csv"
    other.write_text("code,population\nW01000001,100\n")
    with pytest.raises(DataError, match=r"no code in .* is an area of set 'lsoa'"):
        import_population(store, other, "lsoa", 2019)
    assert store.populations("lsoa").filter(store.populations("lsoa")["year"] == 2019).is_empty()


def test_rank_across_the_gap_matches_the_files(real):
    store, files, reference = real
    import_population(store, reference / "population20_lsoa11_totals.csv", "lsoa", 2020)
    derive_population(store, "ward", "lsoa", 2020)
    index = load_index("css:northumbria")
    result = harm.rank(store, "ward", dt.date(2021, 10, 1), dt.date(2022, 5, 1), index)
    counts = _type_counts(files)
    assert result.meta["gap_months"] == ["2022-01"]
    assert result.meta["months_covered"] == 7 and result.meta["months"] == 8
    assert result.meta["total_records"] == sum(counts.values())
    expected = sum(n * index.type_weights[t] for t, n in counts.items())
    assert result.meta["total_harm"] == pytest.approx(expected, rel=1e-9)
    assert result.meta["weights_from"]["none"] == 0
    assert result.meta["population_year"] == 2020
    top = result.table.row(0, named=True)
    assert top["rank"] == 1
    assert top["harm_per_resident"] == pytest.approx(top["harm"] / top["population"])
    assert result.table["harm_share"].sum() == pytest.approx(1)
    drugs = harm.rank(store, "ward", dt.date(2021, 10, 1), dt.date(2022, 5, 1), index, ["Drugs"])
    assert drugs.meta["total_records"] == counts["Drugs"]
    assert drugs.meta["total_harm"] == pytest.approx(counts["Drugs"] * index.type_weights["Drugs"])


def test_compare_skips_the_gap_pair(real):
    store, _, _ = real
    result = harm.compare(store, "ward", dt.date(2022, 2, 1), dt.date(2022, 5, 1))
    # 2022-02..05 against 2021-10..2022-01: 2022-05 pairs with the 2022-01 gap
    assert result.meta["previous_first_month"] == "2021-10"
    assert result.meta["current_months_compared"] == ["2022-02", "2022-03", "2022-04"]
    assert result.meta["previous_months_compared"] == ["2021-10", "2021-11", "2021-12"]
    assert result.meta["excluded_pairs"] == [
        {"current": "2022-05", "previous": "2022-01", "no_data": ["2022-01"]}
    ]
    total_now = harm.rank(store, "ward", dt.date(2022, 2, 1), dt.date(2022, 4, 1))
    assert result.meta["harm_current"] == pytest.approx(
        total_now.table.drop_nulls("area_code")["harm"].sum()
    )
    ranks = result.table["rank_current"].to_list()
    assert ranks == sorted(ranks) and ranks[0] == 1


def test_concentration_is_consistent_with_rank(real):
    store, _, _ = real
    first, last = dt.date(2021, 10, 1), dt.date(2022, 5, 1)
    ranked = harm.rank(store, "ward", first, last).table.drop_nulls("area_code")
    result = harm.concentration(store, "ward", first, last, top_areas=20)
    top20 = ranked["harm"].head(20).sum() / ranked["harm"].sum()
    row = result.table.filter(result.table["areas"] == 20).row(0, named=True)
    assert row["harm_share"] == pytest.approx(top20)
    assert 0 < result.meta["gini"] < 1
    assert any(n.startswith("the top 20 of 177 ward areas") for n in result.notes)
