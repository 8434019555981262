"""The demo: a store built from the real Northumbria slice bundled with the package."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from placeharm.model import ImportResult
from placeharm.services.areas import import_areas, import_lookup
from placeharm.services.ingest import ProgressFn, ingest
from placeharm.services.population import derive_population, import_population
from placeharm.services.sectors import SECTOR_SET, import_demo_sectors
from placeharm.store.base import Store

DEMO_FIRST_MONTH = "2021-11"
DEMO_LAST_MONTH = "2022-03"  # 2022-01 is a real gap in the published data
DEMO_POPULATION_YEAR = 2020


@dataclass(slots=True)
class DemoResult:
    """What building the demo store did."""

    results: list[ImportResult]
    area_sets: list[str]


def demo_data_dir() -> Path:
    """Folder of the bundled slice (data.police.uk, ONS boundaries and lookups; OGL v3.0)."""
    return Path(str(resources.files("placeharm") / "demo" / "data"))


def build_demo(store: Store, threads: int = 2, progress: ProgressFn | None = None) -> DemoResult:
    """Load the bundled boundaries, lookups, populations and four months of police.uk files
    (idempotent)."""
    data = demo_data_dir()
    boundaries = data / "boundaries"
    loaded = {s.name for s in store.area_sets()}
    for name, file in (
        ("lsoa", "northumbria_lsoa2011.geojson.gz"),
        ("ward", "northumbria_ward2013.geojson.gz"),
    ):
        if name not in loaded:
            import_areas(store, boundaries / file, name)
    if SECTOR_SET not in loaded:  # illustrative sectors derived from the wards (issue 15)
        import_demo_sectors(store, boundaries / "northumbria_ward2013.geojson.gz")
    lookups = data / "lookups"
    import_lookup(
        store,
        lookups / "lookup_lsoa11_msoa11_northumbria.csv",
        "lsoa",
        "lsoa11_code",
        "msoa",
        "msoa11_code",
        "msoa11_name",
    )
    import_lookup(
        store,
        lookups / "lookup_lsoa11_ltla21_northumbria.csv",
        "lsoa",
        "lsoa11_code",
        "lad",
        "ltla21_code",
        "ltla21_name",
    )
    import_lookup(
        store,
        lookups / "lookup_ltla24_csp24_pfa24_northumbria.csv",
        "lad",
        "ltla24_code",
        "csp",
        "csp24_code",
        "csp24_name",
    )
    import_lookup(
        store,
        lookups / "lookup_ltla24_csp24_pfa24_northumbria.csv",
        "lad",
        "ltla24_code",
        "force",
        "pfa24_code",
        "pfa24_name",
    )
    import_population(
        store,
        data / "population" / "population20_lsoa11_northumbria.csv",
        "lsoa",
        DEMO_POPULATION_YEAR,
        "lsoa11_code",
        "total_population",
    )
    derive_population(store, "ward", "lsoa", DEMO_POPULATION_YEAR)
    results = ingest(store, [data / "policeuk"], threads=threads, progress=progress)
    return DemoResult(results, [s.name for s in store.area_sets()])
