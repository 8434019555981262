"""Every data route is audited at the route layer, once per request, whether its page was
built or served from the page cache: `AuditedRoute` writes the entry after the handler made
the response and before it is sent, and refuses the response (503) if the entry cannot be
written. A route is either classified in `ROUTES` or exempt in `EXEMPT` with its reason;
an unclassified route is still logged (as a consultation) and the audit-coverage test fails.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import polars as pl
from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from placeharm import audit
from placeharm.audit import Actor
from placeharm.audit.entry import clip
from placeharm.errors import (
    AuditError,
    JustificationRequired,
    NotFound,
    PermissionDenied,
    PlaceharmError,
)
from placeharm.services import policy
from placeharm.services.pages import MARKING, Page
from placeharm.services.policy import User


@dataclass(frozen=True, slots=True)
class Audited:
    """How a route is logged: the action, the page kind and the output format."""

    action: str
    page: str
    fmt: str


def _c(page: str) -> Audited:
    return Audited("consultation", page, "html")


def _d(page: str, fmt: str = "json") -> Audited:
    return Audited("disclosure", page, fmt)


ROUTES: dict[str, Audited] = {
    "/overview": _c("overview"),
    "/api/overview": _d("overview"),
    "/api/overview.csv": _d("overview", "csv"),
    "/api/overview.geojson": _d("overview", "geojson"),
    "/api/overview.gpkg": _d("overview", "gpkg"),
    "/ward/{code}": _c("ward"),
    "/api/ward/{code}": _d("ward"),
    "/api/ward/{code}.csv": _d("ward", "csv"),
    "/api/ward/{code}.geojson": _d("ward", "geojson"),
    "/api/ward/{code}.gpkg": _d("ward", "gpkg"),
    "/chb/{site}": _c("chb"),
    "/api/chb/{site}": _d("chb"),
    "/records": _c("records"),
    "/api/records": _d("records"),
    "/api/records.csv": _d("records", "csv"),
    "/crime/{crime_id}": _c("records"),
    "/api/crime/{crime_id}/history": _d("records"),
    "/nominal/{nominal_id}": _c("nominal"),
    "/api/nominal/{nominal_id}": _d("nominal"),
    "/group/{group_id}": _c("group"),
    "/api/group/{group_id}": _d("group"),
    "/admin": _c("admin"),
    "/api/admin": _d("admin"),
    "/audit": _c("audit"),
    "/api/audit": _d("audit"),
    "/radius": _c("radius"),
    "/api/radius": _d("radius"),
    "/mopi": _c("mopi"),
    "/api/mopi": _d("mopi"),
    "/api/mopi.csv": _d("mopi", "csv"),
    "/disruptions": _c("disruptions"),  # issue 16
    "/api/disruptions": _d("disruptions"),
    "/prominence": _c("prominence"),
    "/api/prominence": _d("prominence"),
    "/alerts": _c("alerts"),
    "/api/alerts": _d("alerts"),
    "/hotspots": _c("hotspots"),  # issue 16
    "/api/hotspots": _d("hotspots"),
    "/api/hotspots.csv": _d("hotspots", "csv"),
    "/api/hotspots.geojson": _d("hotspots", "geojson"),
}
# Routes that serve no police data, or log in their own handler, and why.
EXEMPT: dict[str, str] = {
    "/": "a redirect to /overview",
    "/login": "the sign-in form; sign-ins and failures are logged by the handler",
    "/logout": "sign-outs are logged by the handler",
    "/help": "help text and the data-as-of time only; no records",
    "/events": "a stream saying that data changed; no records",
    "/tiles/{z}/{x}/{y}": "base map tiles (OpenStreetMap-style background); no police data",
    "/vendor/{name}": "MapLibre GL and Plotly.js files",
    "/static": "the app's own CSS and JavaScript",
    "/api/openapi.json": "the API's description; no data",
    "/api/upload": "a collection: logged in the import's own transaction (imported_by)",
    "/justification": "the justification form; stating one is logged by the handler",
    "/api/justification": "stating a justification is logged by the handler",
    "/login/sso": "starts single sign-on (a redirect to the identity provider); no data",
    "/auth/callback": "single sign-on's return: sign-ins and refusals are logged by the handler",
    "/admin/users/{username}/{action}": "account changes are logged as alterations in their "
    "own transaction (services/auth.py)",
    "/admin/backup": "a backup is logged by the handler as a disclosure of the whole store",
}
# path parameter -> identifier kind in the entry (the area code's kind is the area set)
_PATH_IDS = {"site": "chb_site", "nominal_id": "nominal", "group_id": "group", "crime_id": "crime"}
# columns of a page's tables that identify records about people or from intelligence
_ID_COLUMNS = {
    "nominal_id": "nominal",
    "from_nominal": "nominal",
    "to_nominal": "nominal",
    "target_nominal_id": "nominal",
    "group_id": "group",
    "target_group_id": "group",
    "intel_id": "intelligence",
    "disruption_id": "disruption",
    "address_id": "address",
    "crime_ref": "force_crime",
    "incident_id": "incident",
    "event_id": "partner_event",
    "import_id": "import",
}
MAX_IDS = 1000  # identifiers kept per kind in one entry
_ID_KINDS = ("nominal", "group")  # node kinds of a network drawing


@dataclass
class _Note:
    """What one request's handler tells the audit entry: who, and what it showed."""

    actor: Actor | None = None
    rows: int | None = None
    written: int | None = None  # rows in a download (CSV, GeoJSON, GeoPackage)
    ids: dict[str, dict[str, None]] = field(default_factory=dict)

    def add(self, kind: str, values: Any) -> None:
        kept = self.ids.setdefault(kind, {})
        for value in values:
            if value is not None and value != "" and len(kept) < MAX_IDS:
                kept[str(value)] = None


_NOTE: contextvars.ContextVar[_Note | None] = contextvars.ContextVar("audit_note", default=None)


def purpose_needed(path: str, params: Any, user: User) -> str | None:
    """The purpose a user must have stated a justification for before this route answers:
    opening a nominal (and its exploitation links) or a list of nominals on screen;
    downloading records that name people."""
    kind = params.get("kind", "crimes")
    if (
        path in ("/radius", "/api/radius")
        and policy.allowed(user, "radius")
        and any(params.get(name) for name in ("lat", "lon", "address_id", "address"))
    ):
        return "radius"  # a search (the page with no centre is only its form)
    if path in ("/nominal/{nominal_id}", "/api/nominal/{nominal_id}") and policy.allowed(
        user, "nominal"
    ):
        return "nominal"  # (a role that may not open nominals gets its 403, not a question)
    if path == "/records" and kind == "nominals" and policy.allowed(user, "nominal"):
        return "nominal"
    if path in ("/prominence", "/api/prominence") and policy.allowed(user, "nominal"):
        return "nominal"  # a list of nominals (issue 16)
    if path in ("/api/records", "/api/records.csv") and policy.names_people(user, kind):
        return "export"
    return None


async def signed_in(request: Request, user: User, token: str) -> None:
    """Called by the sign-in dependency on every route: makes the request's `Actor` and,
    where the route needs one, checks the session's justification (JustificationRequired
    if none was stated)."""
    note = _NOTE.get()
    if note is None:
        return  # an exempt route
    actor = Actor(
        user.username,
        user.role.value,
        request.client.host if request.client else None,
        audit.session_key(token),
    )
    note.actor = actor
    route = request.scope.get("route")
    path = getattr(route, "path", request.url.path)
    purpose = purpose_needed(path, request.query_params, user)
    if purpose is None:
        return
    state = request.app.state.placeharm
    reason = await run_in_threadpool(audit.justification_for, state.store, actor, purpose)
    if reason is None:
        raise JustificationRequired(
            f"state why you need this first ({audit.PURPOSES[purpose]}): open "
            f"/justification?purpose={purpose}, or POST /api/justification with purpose="
            f"{purpose}, reason (one of {', '.join(audit.REASONS)}) and text, then ask again",
            purpose,
        )
    note.actor = actor.with_justification(reason)


def saw(page: Page) -> None:
    """Note what a built (or cached) page holds: its rows and the identifiers in it (found
    once per built page, the first time it is sent, and kept with it)."""
    note = _NOTE.get()
    if note is None:
        return
    seen = page.encoded.get("seen")
    if seen is None:
        found = _Note()
        _saw(found, page)
        seen = page.encoded["seen"] = (found.rows, {k: list(v) for k, v in found.ids.items()})
    note.rows = seen[0]
    for kind, values in seen[1].items():
        note.add(kind, values)


# the records named in a prominence row's "why" (kind, ref), as audit kinds
_WHY_KINDS = {"crime": "force_crime", "intelligence": "intelligence"}


def _rows_ids(note: _Note, rows: object) -> None:
    """Note the ids of people and records in a list of row dicts shown on a page."""
    if not isinstance(rows, list):
        return
    for row in rows:
        if isinstance(row, dict):
            for column, kind in _ID_COLUMNS.items():
                if row.get(column) is not None:
                    note.add(kind, [row[column]])


def _saw(note: _Note, page: Page) -> None:
    note.rows = sum(frame.height for frame in page.tables.values())
    for frame in page.tables.values():
        _frame_ids(note, frame)
    for name, kind in (("nominal", "nominal"), ("group", "group")):
        item = page.data.get(name)
        if isinstance(item, dict) and item.get(f"{kind}_id"):
            note.add(kind, [item[f"{kind}_id"]])
    layers = [page.data.get("points")]
    shown_map = page.data.get("map")  # the CHB and group maps (issue 15)
    if isinstance(shown_map, dict):
        layers.append(shown_map.get("points"))
    for points in layers:
        if isinstance(points, dict):
            for rows in points.values():
                _rows_ids(note, rows)
    listed = page.data.get("nominals")  # the prominence page's nominals and their records
    if isinstance(listed, list):
        _rows_ids(note, listed)
        for row in listed:
            for why in row.get("why", []) if isinstance(row, dict) else []:
                why_kind = _WHY_KINDS.get(str(why.get("kind")))
                if why_kind and why.get("ref"):
                    note.add(why_kind, [why["ref"]])
    drawing = page.data.get("network")
    if isinstance(drawing, dict):
        for node in drawing.get("nodes", []):
            if node.get("kind") in _ID_KINDS:
                note.add(node["kind"], [node.get("ref")])
    links = page.tables.get("links")
    if links is not None and "link_type" in links.columns:
        exploitation = links.filter(pl.col("link_type") == "exploitation")
        note.add(
            "exploitation_link",
            [f"{a}>{b}" for a, b in exploitation.select("from_nominal", "to_nominal").iter_rows()],
        )


def _frame_ids(note: _Note, frame: pl.DataFrame) -> None:
    for column, kind in _ID_COLUMNS.items():
        if column in frame.columns:
            note.add(kind, frame[column].head(MAX_IDS).to_list())
    if "subjects" in frame.columns:  # intelligence: the nominals it names
        for subjects in frame["subjects"].head(MAX_IDS).to_list():
            note.add("nominal", (subjects or "").split(";"))


def shown(ids: dict[str, list[str]]) -> None:
    """Note the identifiers of records a response shows, per kind (a radius search)."""
    note = _NOTE.get()
    if note is not None:
        for kind, values in ids.items():
            note.add(kind, values)


def wrote(rows: int) -> None:
    """Note how many rows a download carries."""
    note = _NOTE.get()
    if note is not None:
        note.written = rows


def _query(request: Request) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in request.query_params:
        values = [clip(v) for v in request.query_params.getlist(key)]
        out[clip(key)] = values[0] if len(values) == 1 else values
    return out


def _record_ids(request: Request, note: _Note) -> dict[str, list[str]]:
    ids: dict[str, list[str]] = {}
    for name, value in request.path_params.items():
        kind = _PATH_IDS.get(name) or (
            request.query_params.get("by", "ward") if name == "code" else name
        )
        ids[clip(kind)] = [clip(str(value))]
    for kind, values in note.ids.items():
        merged = dict.fromkeys(ids.get(kind, []))
        merged.update(values)
        ids[kind] = list(merged)[:MAX_IDS]
    return ids


def _outcome(exc: BaseException) -> str:
    if isinstance(exc, JustificationRequired):
        return "justification required"
    if isinstance(exc, PermissionDenied):
        return "denied"
    if isinstance(exc, NotFound):
        return "not found"
    return "refused"


class AuditedRoute(APIRoute):
    """An APIRoute whose every answer is logged before it is sent (see the module)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.path in EXEMPT:
            return handler
        spec = ROUTES.get(self.path, Audited("consultation", self.path, "unclassified"))

        async def audited_handler(request: Request) -> Response:
            note = _Note()
            token = _NOTE.set(note)
            try:
                response = await handler(request)
            except PlaceharmError as exc:
                if note.actor is not None:  # signed in: a refused attempt is logged too
                    await _log(request, spec, note, None, _outcome(exc))
                raise
            finally:
                _NOTE.reset(token)
            try:
                if note.actor is None:
                    raise AuditError(
                        "this page cannot be served: it is not tied to a signed-in user, so "
                        "it cannot be audited"
                    )
                outcome = "ok" if response.status_code < 400 else str(response.status_code)
                await _log(request, spec, note, response, outcome)
            except BaseException:
                if response.background is not None:  # e.g. a GeoPackage's temporary file
                    await response.background()  # is removed though it is never sent
                raise
            return response

        return audited_handler


async def _log(
    request: Request, spec: Audited, note: _Note, response: Response | None, outcome: str
) -> None:
    assert note.actor is not None
    state = request.app.state.placeharm
    served = response is not None and outcome == "ok"
    rows = note.written if note.written is not None else note.rows
    await run_in_threadpool(
        state.audit.record,
        state.store,
        note.actor,
        spec.action,
        spec.page,
        getattr(request.scope.get("route"), "path", request.url.path),
        fmt=spec.fmt,
        record_ids=_record_ids(request, note),
        query=_query(request),
        row_count=rows if served else None,
        marking=(response.headers.get("X-Security-Marking") or MARKING)
        if response is not None and served
        else None,
        outcome=outcome,
    )
