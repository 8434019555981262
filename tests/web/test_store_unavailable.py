"""When the store cannot be reached (a PostgreSQL server down or failing over, a disk gone),
a page or the API answers 503 with Retry-After, in the reader's words: the server's address
and the cause go to the server log, not to the browser (issue 17: it was a 400 naming the
connection URL)."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient

from placeharm.errors import StoreUnavailable
from placeharm.services import pages

from .conftest import sign_in

CAUSE = (
    "cannot connect to the PostgreSQL store postgresql://placeharm:***@db.force.internal/ph: "
    "connection refused. Check PLACEHARM_DB (host, port, database, user) and that the server runs."
)


def test_an_unreachable_store_is_a_503_in_plain_words(
    app_client: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    analyst = sign_in(app_client, "analyst")

    def unreachable(*args: object, **kwargs: object) -> None:
        raise StoreUnavailable(CAUSE)

    monkeypatch.setattr(pages, "overview", unreachable)
    with caplog.at_level(logging.WARNING, logger="placeharm.web"):
        api = app_client.get("/api/overview?from=2021-04&to=2021-06", cookies=analyst)
        page = app_client.get(
            "/overview?from=2021-04&to=2021-06", cookies=analyst, headers={"Accept": "text/html"}
        )
    for response in (api, page):
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "5"
        assert "The data store cannot be reached just now" in response.text
        assert "db.force.internal" not in response.text and "PLACEHARM_DB" not in response.text
    assert "db.force.internal" in caplog.text  # the administrator's log keeps the cause
