"""Shared fixtures: the real public data in ../shared/data (or $PLACEHARM_SHARED_DATA)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engines import default_engine, engines_for
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
            pytest.fail(
                f"shared data not found at {path}; CI must run with ../shared beside the repo"
            )
        pytest.skip(f"shared data not found at {path}; set PLACEHARM_SHARED_DATA")
    return path


@pytest.fixture(scope="session")
def northumbria(shared_data: Path) -> Path:
    return shared_data / "policeuk" / "northumbria"


@pytest.fixture(scope="session")
def boundaries(shared_data: Path) -> Path:
    return shared_data / "boundaries"


@pytest.fixture
def store(engine: str, store_at: Callable[[str], Any]) -> Iterator[DuckDBStore]:
    """An empty store: a DuckDB file in a temporary folder, or (tests marked both_engines,
    run once per engine) a fresh schema on the test PostgreSQL server."""
    with store_at("test") as s:
        yield s


@pytest.fixture
def store_with_areas(store: DuckDBStore, boundaries: Path) -> DuckDBStore:
    """A store with the real Northumbria LSOA, ward and MSOA boundaries loaded."""
    import_areas(store, boundaries / "northumbria_lsoa2011.geojson", "lsoa")
    import_areas(store, boundaries / "northumbria_ward2013.geojson", "ward")
    import_areas(store, boundaries / "northumbria_msoa2011.geojson", "msoa")
    return store


# -- helpers shared by the new suite (independent of placeharm's own code) ------------------

SAMPLE_STREET = "2021-05-northumbria-street.csv.gz"


@pytest.fixture(scope="session")
def street_sample(northumbria: Path) -> tuple[str, list[str]]:
    """Header and data lines (no line endings) of one real street file, read with gzip."""
    import gzip

    text = gzip.decompress((northumbria / SAMPLE_STREET).read_bytes()).decode("utf-8")
    lines = text.replace("\r\n", "\n").split("\n")
    return lines[0], [line for line in lines[1:] if line]


@pytest.fixture(scope="session")
def geojson_areas() -> Callable[[Path, str], tuple[np.ndarray, np.ndarray]]:
    """Read a GeoJSON's codes and shapely polygons with json + shapely (not placeharm)."""

    def load(path: Path, code_field: str) -> tuple[np.ndarray, np.ndarray]:
        import json

        import shapely.geometry

        features = json.loads(path.read_text())["features"]
        codes = np.array([f["properties"][code_field] for f in features], dtype=object)
        polys = np.array([shapely.geometry.shape(f["geometry"]) for f in features], dtype=object)
        return codes, polys

    return load


@pytest.fixture(scope="session")
def independent_pip() -> Callable[..., list[str | None]]:
    """Point-in-polygon with a polygon tree: the lowest code among areas touching the point.

    A point on an edge counts as inside (as placeharm documents); ties go to the lowest code.
    """

    def pip(codes: np.ndarray, polys: np.ndarray, lon: list[float], lat: list[float]):
        import shapely

        points = shapely.points(np.asarray(lon, dtype=float), np.asarray(lat, dtype=float))
        tree = shapely.STRtree(polys)
        point_idx, poly_idx = tree.query(points, predicate="intersects")
        best: list[str | None] = [None] * len(points)
        for p, g in zip(point_idx.tolist(), poly_idx.tolist(), strict=True):
            code = str(codes[g])
            if best[p] is None or code < best[p]:  # type: ignore[operator]
                best[p] = code
        return best

    return pip


# -- both engines (issue 17): DuckDB always, PostgreSQL where a test is marked both_engines ---
# PLACEHARM_TEST_ENGINE=postgresql runs every store test on PostgreSQL instead (CI's second
# pass, so that across its two passes every test runs on each engine); tests marked
# duckdb_only(reason=...) stay on DuckDB in every mode.


def pytest_configure(config: pytest.Config) -> None:
    default_engine()  # a misspelt PLACEHARM_TEST_ENGINE stops the run before any test
    config.addinivalue_line(
        "markers",
        "both_engines: run once on DuckDB and once on PostgreSQL (PLACEHARM_TEST_PG or a "
        "throwaway cluster); the test's `store`/`store_at` fixtures give each engine's store",
    )
    config.addinivalue_line(
        "markers",
        "duckdb_only(reason): a test of something only the DuckDB store has (its file, file "
        "lock, backup file...): it runs on DuckDB even with PLACEHARM_TEST_ENGINE=postgresql",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        marker = item.get_closest_marker("duckdb_only")
        if marker is not None and not marker.kwargs.get("reason"):
            raise pytest.UsageError(f"{item.nodeid}: duckdb_only needs reason=...")
        _check_engine_fixtures(item)


def _check_engine_fixtures(item: pytest.Item) -> None:
    """Refuse a test whose engine fixtures would not follow its marks: a module store
    (`module_engine`) takes its engine from PLACEHARM_TEST_ENGINE unless the module
    parametrizes it, so both_engines or duckdb_only on such a test would silently run one
    engine (test_stop_search ran DuckDB twice so); and `engine` with `web_engine` in one
    both_engines test would run every pairing of the two."""
    names = set(getattr(item, "fixturenames", ()))
    marked = item.get_closest_marker("both_engines") or item.get_closest_marker("duckdb_only")
    params = getattr(getattr(item, "callspec", None), "params", {})
    if (
        "module_engine" in names
        and "web_engine" not in names
        and marked
        and ("module_engine" not in params)
    ):
        raise pytest.UsageError(
            f"{item.nodeid}: a module store (module_engine) does not follow both_engines "
            "or duckdb_only; parametrize module_engine (tests/conftest.py) instead"
        )
    if {"engine", "web_engine"} <= names and item.get_closest_marker("both_engines"):
        raise pytest.UsageError(
            f"{item.nodeid}: takes both `engine` and `web_engine` under both_engines, which "
            "runs every pairing of the two; use web_db / own_demo, or one of them"
        )


def pytest_report_header(config: pytest.Config) -> str:
    return f"placeharm store engine: {default_engine()} (PLACEHARM_TEST_ENGINE)"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "engine" in metafunc.fixturenames:
        engines = engines_for(metafunc.definition)
        if engines:
            metafunc.parametrize("engine", engines, indirect=True)


@pytest.fixture
def engine(request: pytest.FixtureRequest) -> str:
    """The store engine under test: DuckDB (or PLACEHARM_TEST_ENGINE) unless the test is
    marked both_engines (then once per engine) or duckdb_only."""
    return str(getattr(request, "param", default_engine()))


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A PostgreSQL server's URL: PLACEHARM_TEST_PG, else a throwaway cluster for the
    session. Without one the PostgreSQL runs skip (fail when PLACEHARM_REQUIRE_PG=1, as CI
    sets it)."""
    from pg_server import ServerUnavailable, ThrowawayCluster, check_server

    cluster = None
    try:
        url = os.environ.get("PLACEHARM_TEST_PG")
        if url:
            check_server(url)
        else:
            cluster = ThrowawayCluster()
            url = cluster.url
    except ServerUnavailable as exc:
        if os.environ.get("PLACEHARM_REQUIRE_PG") == "1":
            pytest.fail(f"PostgreSQL is required (PLACEHARM_REQUIRE_PG=1): {exc}")
        pytest.skip(f"no PostgreSQL server for the PostgreSQL runs: {exc}")
    try:
        yield url
    finally:
        if cluster is not None:
            cluster.stop()


@pytest.fixture
def db_at(
    engine: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[[str], str]]:
    """Where the store called `name` lives on the engine under test, as a CLI command or
    PLACEHARM_DB takes it: a DuckDB file in tmp_path, or the URL of a schema of its own on
    the PostgreSQL server (the same name gives the same place again; schemas are dropped
    when the test ends)."""
    yield from _store_places(engine, tmp_path, request)


@pytest.fixture
def store_at(engine: str, db_at: Callable[[str], str]) -> Callable[[str], Any]:
    """Open the store called `name` on the engine under test: a DuckDB file in tmp_path, or
    a schema of its own on the PostgreSQL server (the same name opens the same store again,
    as a path does)."""

    def open_named(name: str) -> Any:
        if engine == "duckdb":
            return DuckDBStore(db_at(name))
        from placeharm.store.postgres import PostgresStore

        return PostgresStore(db_at(name))

    return open_named


# -- module-scoped stores on the engine under test (issue 17, s20-intb) ----------------------
# For a module that builds one store and only reads it in its tests. The engine is
# PLACEHARM_TEST_ENGINE's (default DuckDB); a module that wants both engines parametrizes
# `module_engine`: pytest.mark.parametrize("module_engine", ENGINES, indirect=True,
# scope="module") with ENGINES from tests/engines.py.


@pytest.fixture(scope="module")
def module_engine(request: pytest.FixtureRequest) -> str:
    """The engine of a module's shared store (see module_store_at)."""
    return str(getattr(request, "param", default_engine()))


@pytest.fixture(scope="module")
def module_db_at(
    module_engine: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Callable[[str], str]]:
    """db_at for a whole module: a DuckDB file in a folder of the module's own, or a schema
    of its own on the PostgreSQL server (dropped when the module ends)."""
    yield from _store_places(module_engine, tmp_path_factory.mktemp("module"), request)


@pytest.fixture(scope="module")
def module_store_at(module_engine: str, module_db_at: Callable[[str], str]) -> Callable[[str], Any]:
    """store_at for a whole module: open the store called `name` on the module's engine."""

    def open_named(name: str) -> Any:
        if module_engine == "duckdb":
            return DuckDBStore(module_db_at(name))
        from placeharm.store.postgres import PostgresStore

        return PostgresStore(module_db_at(name))

    return open_named


def _store_places(
    engine: str, folder: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[[str], str]]:
    """The body of db_at and module_db_at: where the store called `name` lives on `engine`
    (a DuckDB file in `folder`, or the URL of a schema of its own on the PostgreSQL server;
    the same name gives the same place again), the schemas dropped when the caller ends."""
    from pg_server import drop_schema, new_schema

    schemas: dict[str, tuple[str, str]] = {}

    def place(name: str) -> str:
        if engine == "duckdb":
            return str(folder / f"{name}.duckdb")
        server = request.getfixturevalue("pg_url")
        if name not in schemas:
            schemas[name] = new_schema(server)
        return schemas[name][1]

    yield place
    if schemas:
        server = request.getfixturevalue("pg_url")
        for schema, _ in schemas.values():
            drop_schema(server, schema)
