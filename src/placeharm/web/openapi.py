"""What /api/openapi.json says beyond the routes' own signatures: the error answers."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorBody(BaseModel):
    """Every refusal's JSON body (one exception handler writes it; see web/app.py)."""

    error: str = Field(description="What went wrong and what to do; never file content.")
    status: int = Field(description="The HTTP status again: 400, 403 or 404.")


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {
        "model": ErrorBody,
        "description": "A parameter is not valid (an unknown harm index, month, measure, "
        "crime type, sort column or page); the message names the valid choices.",
    },
    403: {
        "model": ErrorBody,
        "description": "Not signed in, or the role may not open this page or record kind.",
    },
    404: {
        "model": ErrorBody,
        "description": "No such area set, area, site, nominal or group (or one the role "
        "may not see: the answer is the same).",
    },
}
