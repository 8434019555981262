"""The web app's one place for failures nothing else answered: any exception a route raises
that is not a refusal (a bug, a database failure, a native library's panic: pyo3's
PanicException is a BaseException, which Starlette's own error middleware does not catch)
becomes the documented 500 answer, an error page or `{"error", "status"}`, naming an incident
reference; the traceback goes to the server log under that reference, never to the client.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from placeharm.errors import describe, is_fatal

log = logging.getLogger("placeharm.web")

Render = Callable[[Request, int, str], Response]


def incident_message(reference: str) -> str:
    """What the user reads: what happened, what to do, the reference the log holds."""
    return (
        f"An unexpected failure stopped this request (incident {reference}). Try again; if "
        f"it happens again, give the reference {reference} to your administrator: the "
        "server log holds the details."
    )


class Incidents:
    """A plain ASGI middleware, inside the security headers (the 500 answer gets them too)
    and outside everything that may fail (RequestGuard, the routes)."""

    def __init__(self, app: ASGIApp, render: Render) -> None:
        self.app = app
        self.render = render

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except BaseException as exc:
            if is_fatal(exc):  # a client gone away (a cancelled task), the server stopping
                raise
            reference = secrets.token_hex(4)
            log.error(
                "incident %s: %s %s failed (%s)",
                reference,
                scope.get("method", ""),
                scope.get("path", ""),
                describe(exc),
                exc_info=exc,
            )
            if started:  # a response under way cannot become a 500: it ends here
                return
            response = self.render(Request(scope), 500, incident_message(reference))
            response.headers["X-Incident"] = reference
            await response(scope, receive, send)
