"""schemathesis against the app's OpenAPI description, signed in as each role (issue 12):
no request, however malformed, is a server error."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi

from placeharm.config import load_settings
from placeharm.services import auth
from placeharm.web.app import create_app

from .conftest import build_demo_store, sign_in

ANONYMOUS = "anonymous"
WHO = (*auth.DEMO_USERS, ANONYMOUS)
EXAMPLES = 10


def _description() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        app = create_app(load_settings(db=Path(folder) / "schema.duckdb"))
        try:
            return app.openapi()
        finally:
            app.state.placeharm.store.close()


schema = schemathesis.openapi.from_dict(_description())


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, dict[str, str]]]:
    path = tmp_path_factory.mktemp("schemathesis") / "api.duckdb"
    build_demo_store(path)
    app = create_app(load_settings(db=path))
    with TestClient(app) as client:
        cookies = {name: sign_in(client, name)["placeharm_session"] for name in auth.DEMO_USERS}
        yield asgi.get_client(app, max_stream_events=1), cookies


@pytest.mark.parametrize("who", WHO)
@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_server_error(case: Any, api: Any, who: str) -> None:
    session, cookies = api
    headers = {} if who == ANONYMOUS else {"Cookie": f"placeharm_session={cookies[who]}"}
    case.call_and_validate(
        session=session, headers=headers, checks=[not_a_server_error], timeout=10
    )
