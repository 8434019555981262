"""Text sorts and compares in byte order on both engines, whatever the PostgreSQL database's
collation (issue 17, left open: on a database a force's DBA made with a locale collation, a
custom area set whose codes mix case or punctuation was listed in another order than on
DuckDB, which compares bytes). PostgreSQL's text columns are COLLATE "C" from migration 16.

The PostgreSQL runs use a database of their own made with an ICU en-GB collation (the test
machine and CI's Debian image have no libc locale but C and C.UTF-8, which already sort by
code point; PostgreSQL 15 on Debian is built with ICU)."""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
import pytest

from placeharm import open_store
from placeharm.errors import StoreError
from placeharm.services import harm
from placeharm.services.areas import import_areas
from placeharm.services.ingest import ingest
from shapes import square

pytestmark = pytest.mark.both_engines

# mixed case and punctuation: a locale collation orders these by letter first, ignoring
# case and punctuation at first; bytes put every capital before every small letter
CODES = ["a-1", "B2", "b1", "A_2", "A1", "a1", "Z9", "e01000001"]
HEADER = (
    "Crime ID,Month,Reported by,Falls within,Longitude,Latitude,Location,LSOA code,LSOA name,"
    "Crime type,Last outcome category,Context"
)


def _bytes(values: list[str]) -> list[str]:
    return sorted(values, key=lambda v: v.encode())


def _centre(i: int) -> tuple[float, float]:
    return -1.70 + 0.02 * i, 54.975


def _locale_database(server: str) -> tuple[str, str]:
    """A new database on the test server whose default collation is a locale's (ICU en-GB):
    its name and URL."""
    name = f"placeharm_icu_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as con:
        try:
            con.execute(
                f"CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' "
                "LOCALE_PROVIDER icu ICU_LOCALE 'en-GB' LOCALE 'C'"
            )
        except psycopg.errors.FeatureNotSupported as exc:
            if os.environ.get("PLACEHARM_REQUIRE_PG") == "1":  # CI: migration 16's proof
                pytest.fail(f"the PostgreSQL server has no ICU collations: {exc}")
            pytest.skip(f"the PostgreSQL server has no ICU collations: {exc}")
    parts = urlsplit(server)
    return name, urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture
def place(engine: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """Where the test's store lives: a DuckDB file, or a locale-collated database."""
    if engine == "duckdb":
        yield str(tmp_path / "codes.duckdb")
        return
    server = request.getfixturevalue("pg_url")
    name, url = _locale_database(server)
    try:
        with psycopg.connect(url) as con:  # the premise: this database sorts by locale
            rows = con.execute(
                "SELECT v FROM unnest(%s::text[]) AS v ORDER BY v", [CODES]
            ).fetchall()
            assert [r[0] for r in rows] != _bytes(CODES)
        yield url
    finally:
        with psycopg.connect(server, autocommit=True) as con:
            con.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _fill(store: object, tmp_path: Path) -> None:
    areas = tmp_path / "codes.geojson"
    features = [square(code, *_centre(i)) for i, code in enumerate(CODES)]
    areas.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    assert import_areas(store, areas, "custom", code_field="code", name_field="name")  # type: ignore[arg-type]
    lines = [HEADER]
    for i, code in enumerate(CODES):  # one burglary in each area: every area ties
        lon, lat = _centre(i)
        lines.append(f"c{i:04d},2021-01,Test,Test,{lon},{lat},On or near {code} Lane,,,Burglary,,")
    path = tmp_path / "2021-01-test-street.csv"
    path.write_text("\n".join(lines) + "\n")
    (result,) = ingest(store, [path])  # type: ignore[arg-type]
    assert result.ok


def _orders(store: object) -> dict[str, list[str]]:
    s: object = store
    listed = s.area_list("custom")["area_code"].to_list()  # type: ignore[attr-defined]
    ranked = harm.rank(s, "custom", dt.date(2021, 1, 1), dt.date(2021, 1, 1))  # type: ignore[arg-type]
    by_rank = [c for c in ranked.table["area_code"].to_list() if c is not None]
    page, _ = s.records_page(  # type: ignore[attr-defined]
        "crimes", ["location"], None, None, "month", None, None, "location", False, 100, 0
    )
    by_area, _ = s.records_page(  # type: ignore[attr-defined]
        "crimes", ["area_custom"], None, None, "month", None, None, "area_custom", True, 100, 0
    )
    (lowest,) = s._one(  # type: ignore[attr-defined]
        "SELECT min(area_code) FROM areas WHERE set_name = 'custom'"
    )
    return {
        "area list": listed,
        "rank (all tied)": by_rank,
        "records by location": page["location"].to_list(),
        "records by area, descending": by_area["area_custom"].to_list(),
        "min": [lowest],
    }


def test_text_sorts_in_byte_order_on_both_engines(place: str, tmp_path: Path) -> None:
    with open_store(place) as store:
        _fill(store, tmp_path)
        orders = _orders(store)
    expected = {
        "area list": _bytes(CODES),
        "rank (all tied)": _bytes(CODES),  # ties go to the lowest code
        "records by location": [f"On or near {c} Lane" for c in _bytes(CODES)],
        "records by area, descending": _bytes(CODES)[::-1],
        "min": _bytes(CODES)[:1],
    }
    assert orders == expected


def test_an_older_store_is_put_in_byte_order_by_its_upgrade(
    place: str, tmp_path: Path, engine: str
) -> None:
    """A store made before migration 16 on a locale-collated database (its text columns in
    the database's collation) sorts in byte order once upgraded."""
    if engine == "duckdb":
        pytest.skip("DuckDB always compared bytes: migration 16 changes nothing there")
    with open_store(place) as store:
        _fill(store, tmp_path)
        with store.transaction():  # back to what versions before 16 made
            for table, column in store._run(
                "SELECT table_name, column_name FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND collation_name = 'C'"
            ):
                store._exec(
                    f'ALTER TABLE "{table}" ALTER COLUMN "{column}" TYPE VARCHAR COLLATE "default"'
                )
            store._exec("DELETE FROM schema_migrations WHERE version >= 16")
        assert store.area_list("custom")["area_code"].to_list() != _bytes(CODES)
    with open_store(place) as store:  # opening migrates
        assert store.schema_version() >= 16
        assert store.area_list("custom")["area_code"].to_list() == _bytes(CODES)
        left = store._run(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND collation_name IS NOT NULL "
            "AND collation_name <> 'C'"
        )
        assert left == []


def test_a_search_folds_accented_capitals_on_both_engines(place: str, tmp_path: Path) -> None:
    """Case-insensitive search still folds letters beyond ASCII once text is in byte order
    (review finding: in COLLATE "C" PostgreSQL folds only A to Z, so "école" missed
    "ÉCOLE", which DuckDB finds)."""
    path = tmp_path / "2021-02-test-street.csv"
    path.write_text(
        f"{HEADER}\ne0001,2021-02,Test,Test,-1.70,54.975,On or near Rue de l'ÉCOLE,,,Burglary,,\n",
        encoding="utf-8",
    )
    with open_store(place) as store:
        (result,) = ingest(store, [path])
        assert result.ok
        for text in ("école", "ÉCOLE", "rue de l'é"):
            page, total = store.records_page(
                "crimes",
                ["location"],
                None,
                None,
                "month",
                None,
                ("location", text),
                "month",
                False,
                10,
                0,
            )
            assert (total, page["location"].to_list()) == (1, ["On or near Rue de l'ÉCOLE"]), text


def test_a_store_in_a_mixed_case_schema_is_put_in_byte_order(
    engine: str, request: pytest.FixtureRequest
) -> None:
    """Migration 16 finds the store's schema by its name as written (review finding: a
    schema "Northumbria" was looked up as northumbria, so the upgrade failed, or changed
    another schema's tables)."""
    if engine == "duckdb":
        pytest.skip("a PostgreSQL schema's name")
    server = request.getfixturevalue("pg_url")
    schema = f"Force_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as con:
        con.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in server else "?"
    url = f"{server}{sep}options={quote(f'-c search_path={chr(34)}{schema}{chr(34)}')}"
    try:
        with open_store(url) as store:
            assert store.schema_version() >= 16
            (schema_seen,) = store._one("SELECT current_schema()")
            assert schema_seen == schema
            left = store._run(
                "SELECT table_name, column_name FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND collation_name IS NOT NULL "
                "AND collation_name <> 'C'"
            )
            assert left == []
    finally:
        with psycopg.connect(server, autocommit=True) as con:
            con.execute(f'DROP SCHEMA "{schema}" CASCADE')


def test_a_view_over_a_store_column_stops_the_upgrade_with_what_to_do(
    place: str, tmp_path: Path, engine: str
) -> None:
    """A view of the force's own over a store column blocks migration 16 (PostgreSQL will not
    change a column's collation under a view): the store says so in one message, nothing is
    changed, and once the view is dropped the store upgrades."""
    if engine == "duckdb":
        pytest.skip("DuckDB always compared bytes: migration 16 changes nothing there")
    with open_store(place) as store:
        _fill(store, tmp_path)
        with store.transaction():  # back to what versions before 16 made, plus a view
            store._exec('ALTER TABLE crimes ALTER COLUMN crime_type TYPE VARCHAR COLLATE "default"')
            store._exec("DELETE FROM schema_migrations WHERE version >= 16")
            store._exec("CREATE VIEW force_crime_types AS SELECT DISTINCT crime_type FROM crimes")
    with pytest.raises(StoreError) as refused:
        open_store(place)
    message = str(refused.value)
    assert "schema version 16" in message and "Nothing was changed" in message
    assert "view" in message and "drop it" in message
    with psycopg.connect(place, autocommit=True) as con:
        (version,) = con.execute("SELECT max(version) FROM schema_migrations").fetchone() or (0,)
        assert version == 15
        con.execute("DROP VIEW force_crime_types")
    with open_store(place) as store:
        assert store.schema_version() >= 16
