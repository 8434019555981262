"""Which policy action governs each route, declared on the route itself (issue 12).

Every route states its action in its decorator, and the same declaration enforces it:

    @app.get("/api/ward/{code}", dependencies=[allowed("ward")])   # app.py: requires(...)
    @app.get("/login", dependencies=[PUBLIC])                      # anyone, signed in or not
    app.mount("/static", PublicApp(StaticFiles(...)))              # a mounted app anyone may read

`requires(action, signed_in)` answers 403 (or, for a page, the sign-in redirect) before the
handler or any other dependency runs, unless the signed-in user's role may do `action` in
services/policy.py. `route_policies(app)` reads the declarations back: the authorisation-matrix
test (tests/web/test_authz_matrix.py) takes its expectations from them and the policy table,
and fails on any route that declares no action, so a route cannot be added without one and
what is enforced is what is tested.
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from placeharm.services import policy
from placeharm.services.policy import User

PUBLIC_ACTION = "public"
_ACTION_OF: weakref.WeakKeyDictionary[Callable[..., Any], str] = weakref.WeakKeyDictionary()


def requires(action: str, signed_in: Callable[[Request], Awaitable[User]]) -> Any:
    """A route dependency: the signed-in user if the policy lets their role do `action`,
    else PermissionDenied (403). An action the policy does not know fails here, when the
    app is built."""
    policy.roles_for(action)

    async def allowed(user: User = Depends(signed_in)) -> User:
        return policy.require(user, action)

    _ACTION_OF[allowed] = action
    return Depends(allowed)


async def _public() -> None:
    """Declares a route anyone may open, signed in or not (sign-in, vendored assets)."""


_ACTION_OF[_public] = PUBLIC_ACTION
PUBLIC: Any = Depends(_public)


class PublicApp:
    """A mounted ASGI app (the static files) declared open to anyone."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


@dataclass(frozen=True, slots=True)
class RoutePolicy:
    """One route and method with the actions it declares (exactly one when well declared)."""

    path: str
    method: str  # "*" for a mounted app
    name: str
    actions: tuple[str, ...]
    route: Any  # the APIRoute or Mount


def route_policies(app: FastAPI) -> list[RoutePolicy]:
    """Every route of `app` by method, with the actions its declaration names; a route
    type this module does not know (a plain Starlette route, a websocket) declares none."""
    out = []
    for route in app.routes:
        if isinstance(route, APIRoute):
            actions = tuple(dict.fromkeys(_declared(route.dependant)))
            for method in sorted(route.methods or ()):
                out.append(RoutePolicy(route.path, method, route.name, actions, route))
        elif isinstance(route, Mount):
            actions = (PUBLIC_ACTION,) if isinstance(route.app, PublicApp) else ()
            out.append(RoutePolicy(route.path, "*", route.name or "", actions, route))
        else:
            path = str(getattr(route, "path", route))
            name = str(getattr(route, "name", ""))
            out.append(RoutePolicy(path, "*", name, (), route))
    return out


def _declared(dependant: Dependant) -> list[str]:
    found = []
    for sub in dependant.dependencies:
        if sub.call is not None and sub.call in _ACTION_OF:
            found.append(_ACTION_OF[sub.call])
        found.extend(_declared(sub))
    return found
