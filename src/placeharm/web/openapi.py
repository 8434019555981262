"""What the OpenAPI description at /api/openapi.json says beyond the route signatures: the
refusals every operation may answer and the media types of the downloads (issue 12).

Integrators read the description, and schemathesis (tests/web/test_schemathesis.py) checks
every answer against it, so it must list every status and media type the API really sends.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict

from placeharm.services import exports


class Refusal(BaseModel):
    """The body of every refusal: what went wrong and what to do, and the HTTP status."""

    model_config = ConfigDict(extra="forbid")  # nothing but the refusal

    error: str
    status: int


def _refusal(description: str) -> dict[str, Any]:
    # inline, not `model=`: FastAPI would file a model under the route's media type (text/csv
    # for a CSV download), but a refusal is always JSON
    schema = Refusal.model_json_schema()
    return {"description": description, "content": {"application/json": {"schema": schema}}}


# answered by any operation (the web layer's one error handler), so declared on the app
ERRORS: dict[int | str, dict[str, Any]] = {
    400: _refusal("The request cannot be answered as it stands; the message says what is valid"),
    403: _refusal("Not signed in, or the role may not see this"),
    404: _refusal("No such ward, site, nominal, group or file"),
    413: _refusal("The body, a decompressed file or a line is over its configured limit"),
    428: _refusal(
        "State a justification first (POST /api/justification with purpose, reason and text), "
        "then ask again: opening nominals, radius searches and exports naming people"
    ),
    429: _refusal("Too many failed sign-ins from here: try again after Retry-After seconds"),
    503: _refusal(
        "The audit log cannot be written (nothing is served unaudited), or the server is busy "
        "signing people in: try again after Retry-After seconds"
    ),
    500: _refusal(
        "An unexpected failure: the message names an incident reference (also in the "
        "X-Incident header) under which the server log holds the details"
    ),
}


class CSVResponse(Response):
    """A table as CSV; the first line is the security marking."""

    media_type = "text/csv"


class GeoJSONResponse(JSONResponse):
    """A GeoJSON FeatureCollection (JSON, so described as an object, not a string)."""

    media_type = "application/geo+json"


class GeoPackageResponse(Response):
    media_type = exports.MEDIA_TYPE


class EventStreamResponse(Response):
    """Server-sent events."""

    media_type = "text/event-stream"


# each event's data is a JSON object: `data` events carry what the pages show as "data as
# of"; a `signed-out` event carries {}
EVENTS: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Server-sent events: `data` when new data lands, `signed-out` at the end",
        "content": {
            "text/event-stream": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "import_id": {"type": ["integer", "null"]},
                        "data_as_of": {"type": ["string", "null"]},
                        "synthetic": {"type": "boolean"},
                    },
                }
            }
        },
    }
}
