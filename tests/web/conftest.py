"""A demo store (real slice, synthetic overlay, demo users) shared by the web tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from placeharm.config import load_settings
from placeharm.services import auth, demo, soc
from placeharm.store.duckdb import DuckDBStore
from placeharm.web.app import create_app

ROLES = ("officer", "analyst", "supervisor", "leader", "partner", "admin")


def build_demo_store(path: Path) -> Path:
    """The web tests' demo store at `path`: real slice, synthetic overlay, demo users."""
    with DuckDBStore(path) as store:
        demo.build_demo(store)
        soc.build_overlay(store, seed=1)
        auth.create_demo_users(store)
    return path


@pytest.fixture(scope="session")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_demo_store(tmp_path_factory.mktemp("web") / "web.duckdb")


@pytest.fixture(scope="session")
def app_client(demo_db: Path) -> Iterator[TestClient]:
    app = create_app(load_settings(db=demo_db))
    with TestClient(app) as client:
        yield client


def sign_in(client: TestClient, username: str) -> dict[str, str]:
    response = client.post(
        "/login",
        data={"username": username, "password": f"{username}{auth.DEMO_PASSWORD_SUFFIX}"},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    token = response.cookies.get("placeharm_session")
    assert token
    return {"placeharm_session": token}
