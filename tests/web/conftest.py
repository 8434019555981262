"""A demo store (real slice, synthetic overlay, demo users) shared by the web tests."""

from __future__ import annotations

import itertools
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from engines import default_engine, engines_for
from placeharm.config import load_settings
from placeharm.services import auth, demo, policy, soc
from placeharm.services.policy import Role, User
from placeharm.store.duckdb import DuckDBStore
from placeharm.web.app import create_app

ROLES = ("officer", "analyst", "supervisor", "leader", "partner", "admin", "auditor")


def build_demo_store(path: Path) -> Path:
    """The web tests' demo store at `path`: real slice, synthetic overlay, demo users."""
    with DuckDBStore(path) as store:
        demo.build_demo(store)
        soc.build_overlay(store, seed=1)
        auth.create_demo_users(store)
    return path


@pytest.fixture(scope="session")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = build_demo_store(tmp_path_factory.mktemp("web") / "web.duckdb")
    shutil.copy(path, path.with_name("pristine.duckdb"))  # before any test signs in
    return path


@pytest.fixture(scope="session")
def pristine_db(demo_db: Path) -> Path:
    """The demo store as built: no sessions, sign-ins or audit entries from other tests (copy
    it for a test that counts them)."""
    return demo_db.with_name("pristine.duckdb")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # issue 17: web tests marked both_engines run against the demo store on DuckDB and on
    # PostgreSQL (the same store moved by migrate-store); PLACEHARM_TEST_ENGINE=postgresql
    # runs the others on PostgreSQL, duckdb_only ones on DuckDB (tests/conftest.py)
    if "web_engine" in metafunc.fixturenames:
        engines = engines_for(metafunc.definition)
        if engines:
            metafunc.parametrize("web_engine", engines, indirect=True, scope="module")


@pytest.fixture(scope="session")
def web_engine(request: pytest.FixtureRequest) -> str:
    """The engine the web app's store runs on: DuckDB (or PLACEHARM_TEST_ENGINE) unless the
    test is marked both_engines (then once per engine) or duckdb_only."""
    return str(getattr(request, "param", default_engine()))


def pg_copy(source: Path, request: pytest.FixtureRequest) -> str:
    """A DuckDB store file moved by migrate-store into a schema of its own on the test
    PostgreSQL server, dropped when the requesting test (or fixture) ends: the URL."""
    from pg_server import drop_schema, new_schema
    from placeharm.services.migrate_store import migrate_store

    server = request.getfixturevalue("pg_url")
    schema, url = new_schema(server)
    request.addfinalizer(lambda: drop_schema(server, schema))
    migrate_store(source, url)
    return url


@pytest.fixture(scope="session")
def duckdb_app_client(demo_db: Path) -> Iterator[TestClient]:
    """The app on the demo store's DuckDB file, one for the whole session."""
    app = create_app(load_settings(db=demo_db))
    with TestClient(app) as client:
        yield client


@pytest.fixture(scope="session")
def pg_demo_url(pristine_db: Path, request: pytest.FixtureRequest) -> str:
    """The demo store as built, moved into PostgreSQL by `migrate-store` (as a force would
    move theirs), one for the whole session: its URL."""
    return pg_copy(pristine_db, request)


@pytest.fixture(scope="session")
def pg_app_client(pg_demo_url: str) -> Iterator[TestClient]:
    """The app on the demo store in PostgreSQL, one for the whole session."""
    app = create_app(load_settings(db=pg_demo_url))
    with TestClient(app) as client:
        yield client


@pytest.fixture(scope="session")
def web_db(web_engine: str, request: pytest.FixtureRequest) -> str:
    """Where the shared demo store (the one `app_client` serves) lives on the engine under
    test: its DuckDB file or its PostgreSQL URL, for a test that starts another app on it."""
    if web_engine == "postgresql":
        return str(request.getfixturevalue("pg_demo_url"))
    return str(request.getfixturevalue("demo_db"))


@pytest.fixture
def own_demo(
    web_engine: str, pristine_db: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> Callable[[], str]:
    """Make a fresh copy of the demo store as built, for one test to change, on the engine
    under test: a DuckDB file in tmp_path or a PostgreSQL schema of its own (dropped when the
    test ends). Returns where it lives, as PLACEHARM_DB or a CLI command's --db takes it."""
    made = itertools.count()

    def copy() -> str:
        if web_engine == "postgresql":
            return pg_copy(pristine_db, request)
        target = tmp_path / f"own{next(made)}.duckdb"
        shutil.copy(pristine_db, target)
        return str(target)

    return copy


@pytest.fixture(scope="session")
def app_client(web_engine: str, request: pytest.FixtureRequest) -> TestClient:
    """The app on the demo store, on the engine under test. Tests not marked both_engines
    and the DuckDB run of those that are share one app (and its store's state)."""
    if web_engine == "postgresql":
        return request.getfixturevalue("pg_app_client")  # type: ignore[no-any-return]
    return request.getfixturevalue("duckdb_app_client")  # type: ignore[no-any-return]


def post_login(client: TestClient, username: str, password: str) -> Response:
    """Submit the sign-in form as a browser does: the login page's CSRF token, and Origin."""
    return client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": login_token(client)},
        headers={"Origin": origin(client)},
        follow_redirects=False,
    )


def sign_in(client: TestClient, username: str, justify: bool = True) -> dict[str, str]:
    """Sign in as a demo user; with `justify`, also state a justification for every purpose
    that needs one (as a user would on the justification form), so tests that are not about
    justification open nominals and export records as before."""
    response = post_login(client, username, f"{username}{auth.DEMO_PASSWORD_SUFFIX}")
    assert response.status_code == 303, response.text
    token = response.cookies.get("placeharm_session")
    assert token
    cookie = {"placeharm_session": token}
    if justify:
        client.cookies.clear()
        headers = csrf_headers(client, cookie)
        for purpose in purposes_of(client, username):
            client.cookies.clear()
            stated = client.post(
                "/api/justification",
                data={"purpose": purpose, "reason": "investigation", "text": "web test"},
                cookies=cookie,
                headers=headers,
            )
            assert stated.status_code == 200, stated.text
        client.cookies.clear()
    return cookie


def purposes_of(client: TestClient, username: str) -> list[str]:
    """The justification purposes this account's role may state (the others are refused)."""
    record = client.app.state.placeharm.store.user(username)  # type: ignore[attr-defined]
    assert record is not None, username
    return policy.purposes(User(username, record["display_name"], Role(record["role"])))


def origin(client: TestClient) -> str:
    """This site's origin, as a browser names it in the Origin header."""
    return str(client.base_url).rstrip("/")


def login_token(client: TestClient) -> str:
    """The login form's CSRF token; the client keeps the pre-session cookie it is bound to."""
    page = client.get("/login", headers={"Accept": "text/html"})
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


def csrf_headers(client: TestClient, cookies: dict[str, str] | None = None) -> dict[str, str]:
    """What our JavaScript sends with a POST: this site's Origin and the session's CSRF token,
    read from a page as app.js reads it."""
    page = client.get("/help", cookies=cookies, headers={"Accept": "text/html"})
    found = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text)
    assert found, page.text
    return {"Origin": origin(client), "X-CSRF-Token": found.group(1)}


# -- issue 17: the engine of a module's shared store is the web tests' engine ---------------


@pytest.fixture(scope="module")
def module_engine(web_engine: str) -> str:
    """The engine of `module_db_at` / `module_store_at` (tests/conftest.py) in the web tests:
    the app's (`web_engine`), which follows both_engines and duckdb_only."""
    return web_engine


# -- one copy of the demo store per test module (issue 17) --------------------------------------


@pytest.fixture(scope="module")
def module_demo(
    web_engine: str,
    pristine_db: Path,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> str:
    """A fresh copy of the demo store as built, shared by one module's tests (own_demo's
    module-scoped twin, for tests that change it in ways the others do not meet, e.g. their
    own sessions or audit entries): a DuckDB file or a PostgreSQL schema of its own (dropped
    when the module ends). Where it lives, as PLACEHARM_DB or a CLI command's --db takes it."""
    if web_engine == "postgresql":
        return pg_copy(pristine_db, request)
    target = tmp_path_factory.mktemp("module_demo") / "demo.duckdb"
    shutil.copy(pristine_db, target)
    return str(target)
