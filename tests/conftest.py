"""Shared fixtures: the real public data in ../shared/data (or $PLACEHARM_SHARED_DATA)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from placeharm.services.areas import import_areas
from placeharm.store.duckdb import DuckDBStore

REPO = Path(__file__).resolve().parents[1]


def _shared_data() -> Path:
    env = os.environ.get("PLACEHARM_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Folder of the real data; tests needing it fail loudly in CI if it is missing."""
    path = _shared_data()
    if not (path / "policeuk" / "northumbria").is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"shared data not found at {path}; CI must run with ../shared beside the repo")
        pytest.skip(f"shared data not found at {path}; set PLACEHARM_SHARED_DATA")
    return path


@pytest.fixture(scope="session")
def northumbria(shared_data: Path) -> Path:
    return shared_data / "policeuk" / "northumbria"


@pytest.fixture(scope="session")
def boundaries(shared_data: Path) -> Path:
    return shared_data / "boundaries"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DuckDBStore]:
    """An empty DuckDB store in a temporary file."""
    with DuckDBStore(tmp_path / "test.duckdb") as s:
        yield s


@pytest.fixture
def store_with_areas(store: DuckDBStore, boundaries: Path) -> DuckDBStore:
    """A store with the real Northumbria LSOA, ward and MSOA boundaries loaded."""
    import_areas(store, boundaries / "northumbria_lsoa2011.geojson", "lsoa")
    import_areas(store, boundaries / "northumbria_ward2013.geojson", "ward")
    import_areas(store, boundaries / "northumbria_msoa2011.geojson", "msoa")
    return store
