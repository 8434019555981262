"""The web app: every page as HTML and as a JSON twin (the API), tables as CSV, maps as GeoJSON.

Run with `placeharm serve`. One DuckDB store, written only by this process (uploads and the
watched drop folder), read under a lock. Nothing is fetched from outside: MapLibre GL and
Plotly.js are served from the installed wheels.
"""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import gzip
import io
import json
import logging
import re
import shutil
import tempfile
import threading
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from importlib import resources
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

import orjson
import polars as pl
from anyio import to_thread
from fastapi import Depends, FastAPI, Form, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape
from pydantic import BeforeValidator
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from placeharm import audit
from placeharm.analysis.hotspots import PERMUTATIONS as HOTSPOT_PERMUTATIONS
from placeharm.audit import Actor, Justification
from placeharm.audit.entry import clip
from placeharm.config import Settings
from placeharm.errors import (
    AuditError,
    Busy,
    ConfigError,
    DataError,
    JustificationRequired,
    NotFound,
    PermissionDenied,
    PlaceharmError,
    StoreError,
    StoreUnavailable,
    TooLarge,
    TooManyAttempts,
    UnknownArea,
)
from placeharm.services import (
    audit_view,
    auth,
    basemap,
    dashboard,
    exports,
    indices,
    labels,
    mopi,
    pages,
    policy,
    radius,
    sso,
)
from placeharm.services import hotspots as hotspot_service  # issue 16
from placeharm.services.pages import MARKING, Filters, Page
from placeharm.services.policy import User
from placeharm.store import AnyStore, PostgresStore, open_db
from placeharm.web import audited, authz, uploads, workers
from placeharm.web.backups import Backups
from placeharm.web.csrf import Csrf, RequestGuard
from placeharm.web.incidents import Incidents
from placeharm.web.limits import SignInGate
from placeharm.web.live import DropFolder, Importer
from placeharm.web.network import drawing as network_drawing
from placeharm.web.openapi import (
    ERRORS,
    EVENTS,
    CSVResponse,
    EventStreamResponse,
    GeoJSONResponse,
    GeoPackageResponse,
)

HERE = Path(__file__).parent
log = logging.getLogger("placeharm.web")
# error kind -> HTTP status (first match; any other PlaceharmError is 400)
ERROR_STATUS: tuple[tuple[type[PlaceharmError], int], ...] = (
    (PermissionDenied, 403),
    (NotFound, 404),
    (TooLarge, 413),
    (Busy, 503),
    (StoreUnavailable, 503),  # the database cannot be reached or written: try again later
    (AuditError, 503),  # the audit entry cannot be written: nothing is served
    (JustificationRequired, 428),
    (TooManyAttempts, 429),
)
# A remembered session is re-checked against the store, and its last-seen time written, at
# most this often. Account changes made in this app end the user's sessions at once.
SESSION_RECHECK_S = auth.TOUCH_S
# MapLibre draws in web workers made from blob: URLs. Styles come from our files only, no
# 'unsafe-inline': MapLibre and Plotly set styles through the CSSOM, which style-src does not
# govern; the one hash is of the empty string, the empty <style> element Plotly fills through
# the CSSOM (checked in Chromium, docs/security/csrf-and-limits.md).
EMPTY_STYLE = "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='"
CSP = (
    f"default-src 'self'; script-src 'self'; style-src 'self' {EMPTY_STYLE}; "
    "img-src 'self' data: blob:; worker-src 'self' blob:; child-src blob:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
TILE_CACHE = "private, max-age=86400"  # base map tiles: per user, kept a day
# Browser features no page uses, switched off for the page and anything it might embed.
PERMISSIONS_POLICY = ", ".join(
    f"{feature}=()"
    for feature in (
        "accelerometer",
        "autoplay",
        "camera",
        "display-capture",
        "encrypted-media",
        "geolocation",
        "gyroscope",
        "hid",
        "idle-detection",
        "magnetometer",
        "microphone",
        "midi",
        "payment",
        "picture-in-picture",
        "publickey-credentials-get",
        "screen-wake-lock",
        "serial",
        "usb",
        "xr-spatial-tracking",
    )
)
HSTS = "max-age=31536000"  # a year; no includeSubDomains: other hosts of a force domain
COOKIE = "placeharm_session"
VENDOR = {
    "maplibre-gl.js": ("maplibre", "srcjs/maplibre-gl.js", "text/javascript"),
    "maplibre-gl.css": ("maplibre", "srcjs/maplibre-gl.css", "text/css"),
    "plotly.min.js": ("plotly", "package_data/plotly.min.js", "text/javascript"),
}


class SecurityHeaders:
    """Headers on every response (a plain ASGI middleware: Starlette's `@app.middleware`
    costs a task and a stream per request)."""

    def __init__(self, app: ASGIApp, csp: str = CSP, tls: bool = False) -> None:
        self.app = app
        self.csp = csp
        self.tls = tls

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        assets = path.startswith(("/static/", "/vendor/"))
        tile = path.startswith("/tiles/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                # assets and found tiles keep their own caching; everything else is never stored
                if not (assets or (tile and message["status"] == 200)):
                    headers["Cache-Control"] = "no-store"
                headers["Content-Security-Policy"] = self.csp
                headers["X-Content-Type-Options"] = "nosniff"
                headers["X-Frame-Options"] = "DENY"
                # same-origin, not no-referrer: with no-referrer a browser sends
                # `Origin: null` on our own form posts, and the CSRF check needs the origin
                headers["Referrer-Policy"] = "same-origin"
                headers["Permissions-Policy"] = PERMISSIONS_POLICY
                if self.tls:
                    headers["Strict-Transport-Security"] = HSTS
            await send(message)

        await self.app(scope, receive, send_with_headers)


class PageCache:
    """Built pages by (page, reader, arguments, data version): LRU, cleared when data
    changes. The reader is the role for the pages whose content the policy decides by role
    alone (`pages.ROLE_PAGES`: 50 users of a role share one build), else the user; so one
    role's page is never served to another.

    `get_or_build` builds a missing page once however many requests ask for it at the same
    time: the first builds, the others wait for its result (or its error)."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._items: OrderedDict[tuple[Any, ...], Page] = OrderedDict()
        self._pending: dict[tuple[Any, ...], _Pending] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> Page | None:
        with self._lock:
            page = self._items.get(key)
            if page is not None:
                self._items.move_to_end(key)
            return page

    def put(self, key: tuple[Any, ...], page: Page) -> None:
        with self._lock:
            self._items[key] = page
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def get_or_build(
        self, key: tuple[Any, ...], builder: Callable[[], Page], keep: Callable[[], bool]
    ) -> Page:
        """The cached page, else one built by `builder` (once for concurrent callers), kept
        if `keep()` still holds when it is ready (the data has not changed meanwhile)."""
        with self._lock:
            page = self._items.get(key)
            if page is not None:
                self._items.move_to_end(key)
                return page
            pending = self._pending.get(key)
            owner = pending is None
            if pending is None:
                pending = self._pending[key] = _Pending()
        if not owner:
            pending.done.wait()
            if pending.error is not None:
                raise pending.error
            assert pending.page is not None
            return pending.page
        try:
            page = builder()
        except BaseException as exc:
            pending.error = exc
            raise
        else:
            pending.page = page
            if keep():
                self.put(key, page)
            return page
        finally:
            with self._lock:
                self._pending.pop(key, None)
            pending.done.set()

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


class BuildGate:
    """At most `slots` page builds at a time, the others waiting their turn in order; a
    build someone is waiting on to see new data (a live update's refresh) goes first.

    Under 50 clients asking for pages never built, forty builds side by side each took forty
    times as long and all finished late together; in turn, each takes its own time after the
    ones before it, and the page a browser refreshes after an import is built next (issue 14).
    """

    def __init__(self, slots: int) -> None:
        self.slots = max(1, slots)
        self._busy = 0
        self._urgent: deque[threading.Event] = deque()
        self._waiting: deque[threading.Event] = deque()
        self._lock = threading.Lock()

    @contextmanager
    def slot(self, urgent: bool = False) -> Iterator[None]:
        with self._lock:
            turn = None
            if self._busy < self.slots and not self._urgent and not self._waiting:
                self._busy += 1
            else:
                turn = threading.Event()
                (self._urgent if urgent else self._waiting).append(turn)
        if turn is not None:
            turn.wait()  # the slot is handed over by the build that ends
        try:
            yield
        finally:
            with self._lock:
                queue = self._urgent or self._waiting
                if queue:
                    queue.popleft().set()
                else:
                    self._busy -= 1


LIVE_HEADER = "X-Placeharm-Live"  # sent by app.js when it refreshes a page for new data
_LIVE: contextvars.ContextVar[bool] = contextvars.ContextVar("live_refresh", default=False)


class _Pending:
    """A page being built, for the requests waiting on it."""

    __slots__ = ("done", "error", "page")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.page: Page | None = None
        self.error: BaseException | None = None


class State:
    """The store and what the live machinery needs, shared by every request."""

    def __init__(self, settings: Settings, clock: auth.Clock | None = None) -> None:
        self.settings = settings
        self.clock = clock or auth.utcnow
        self.store = open_db(
            settings.db,
            threads=settings.threads,
            memory_limit=settings.memory_limit,
            read_only=True if settings.read_only else None,
        )
        _refuse_read_only(self.store)
        self.write_lock = threading.RLock()
        self.changed = asyncio.Event()
        self.version = 0
        self.loop: asyncio.AbstractEventLoop | None = None
        self.importer = Importer(self)
        self.cache = PageCache()
        self.builds = BuildGate(2 * settings.threads)  # page builds side by side
        self.session_rules = auth.SessionRules.from_settings(settings)
        self.throttle = auth.LoginThrottle(
            per_address=settings.login_failures_per_address,
            clock=time.monotonic if clock is None else lambda: _seconds(self.clock()),
        )
        self.sessions = auth.SessionCache(self.session_rules, self.clock, SESSION_RECHECK_S)
        auth.limit_hashing(settings.password_hash_concurrency)
        self.sign_ins = SignInGate(settings.password_hash_concurrency)
        self.as_of: dict[str, Any] = {}
        self.watcher: DropFolder | None = None
        self.today: mopi.Clock = mopi.system_today  # "today" for MoPI reviews; tests set it
        # several app processes on one PostgreSQL store: another's import refreshes ours
        # (LISTEN/NOTIFY, issue 17); one DuckDB file has one process
        if isinstance(self.store, PostgresStore):
            self._share(self.store, clock)
        self.audit = audit.AuditLog.from_settings(settings)  # cannot be switched off
        audit.attach(self.store, self.audit)
        self.backups = Backups(  # on request and on a schedule (issue 13)
            self.store,
            self.audit,
            settings.backup_dir or Path(settings.db).resolve().parent / "backups",
            settings.backup_every_hours * 3600,
            settings.backup_keep,
        )

    @contextmanager
    def read(self) -> Iterator[AnyStore]:
        """The store for reading: no lock, each thread reads through its own connection and
        sees committed data only, so page builds run side by side and never wait for an
        import."""
        yield self.store

    @contextmanager
    def write(self) -> Iterator[AnyStore]:
        """The store for writing: one writer at a time (imports, sign-ins, sign-outs)."""
        with self.write_lock:
            yield self.store

    def _share(self, store: PostgresStore, clock: auth.Clock | None) -> None:
        """On a store other processes write too (issue 17): every request asks the store
        about its session, sign-in failures are counted in the store, and a commit by any
        process refreshes this one's pages."""
        self.sessions = auth.SessionCache(
            self.session_rules, self.clock, recheck_s=0, touch_s=SESSION_RECHECK_S
        )
        self.throttle = auth.StoreLoginThrottle(
            store,
            per_address=self.settings.login_failures_per_address,
            clock=time.time if clock is None else lambda: _seconds(self.clock()),
        )
        store.listen(self._changed_elsewhere)

    def _changed_elsewhere(self) -> None:
        """A commit by any process (this one's own included): what this process remembers
        of the data is stale."""
        with suppress(PlaceharmError):  # the store unreachable: pages say so themselves
            self.as_of = pages.data_as_of(self.store)
        self.sessions.forget_real_data()
        self.notify()

    def notify(self) -> None:
        """Tell every open page that data changed (called from any thread)."""
        self.version += 1
        self.cache.clear()
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        """On the event loop: wake every open event stream now (they wait on `changed`),
        and give the next waiters a fresh event."""
        self.changed.set()
        self.changed = asyncio.Event()


# the CHB page's evaluation (issue 16): the reader may change the buffer and the controls
BufferQuery = Annotated[
    float | None, Query(gt=0, le=5000, description="Buffer ring width in metres (default 500).")
]
ControlQuery = Annotated[
    str | None, Query(max_length=64, description="Control ward code (default: offered).")
]
BufferControlQuery = Annotated[
    str | None,
    Query(max_length=64, description="The buffer's control ward code (default: offered)."),
]


def create_app(
    settings: Settings, drop_folder: Path | None = None, clock: auth.Clock | None = None
) -> FastAPI:
    """The app on the store in `settings`; `clock` (naive UTC now) is for tests of expiry."""
    state = State(settings, clock)
    with state.read() as store:
        state.as_of = pages.data_as_of(store)
        # the dashboard's default index: shipped or registered, never a file (issue 12)
        try:
            default_index = indices.check_default(store, settings.harm_index)
        except ConfigError:
            store.close()
            raise
    tiles = basemap.open_archive(settings)
    csp = _csp(basemap.tile_origin(settings))
    base_source = basemap.source(settings, tiles)
    csrf = Csrf(COOKIE, settings.tls)
    templates = Jinja2Templates(
        directory=str(HERE / "templates"),
        # every template can put {{ csrf_token }} in its forms (docs/security/csrf-and-limits.md)
        context_processors=[lambda request: {"csrf_token": csrf.token(request)}],
    )
    templates.env.globals["MARKING"] = MARKING
    templates.env.globals["BASEMAP"] = _script_json(base_source) if base_source else None
    templates.env.filters["fmt"] = _fmt
    templates.env.globals["spark_svg"] = _spark
    templates.env.globals["network_drawing"] = network_drawing
    templates.env.globals["allowed"] = policy.allowed
    templates.env.globals.update(labels.template_helpers())  # plain words on pages (issue 15)
    templates.env.globals["PLOTLY_MAPLIBRE_CSS_ID"] = _plotly_maplibre_css_id()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        state.loop = asyncio.get_running_loop()
        # requests' blocking work runs on at most this many threads; on PostgreSQL each holds
        # a connection while it lives, so this bounds a worker's connections (issue 17)
        to_thread.current_default_thread_limiter().total_tokens = settings.request_threads
        election = None
        if drop_folder is not None and isinstance(state.store, PostgresStore):
            election = workers.DropElection(state, drop_folder)  # one process watches
            election.start()
        elif drop_folder is not None:
            state.watcher = DropFolder(state, drop_folder)
            state.watcher.start()
        state.backups.start()
        try:
            yield
        finally:
            state.backups.stop()
            if election is not None:
                election.stop()
            elif state.watcher is not None:
                state.watcher.stop()
            state.store.close()
            state.audit.close()
            if tiles is not None:
                tiles.close()

    app = FastAPI(
        lifespan=lifespan,
        title="placeharm",
        version="0.1",
        docs_url=None,  # Swagger UI loads from a CDN: not on an air-gapped network
        redoc_url=None,
        openapi_url=None,
        responses=ERRORS,
    )
    app.state.placeharm = state
    app.router.route_class = audited.AuditedRoute  # every data route logged (web/audited.py)
    app.mount(
        "/static", authz.PublicApp(StaticFiles(directory=str(HERE / "static"))), name="static"
    )

    def _look_up(token: str) -> User | None:
        with state.read() as store:
            return state.sessions.look_up(store, token, state.write_lock)

    async def signed_in(request: Request) -> User:
        """The signed-in user, or 403. A session checked in the last minute is answered from
        memory on the event loop; otherwise the store is asked from a worker thread."""
        token = request.cookies.get(COOKIE)
        user = None
        if token:
            user = state.sessions.remembered(token) or await run_in_threadpool(_look_up, token)
        if user is None:
            raise PermissionDenied("sign in first")
        assert token is not None
        await audited.signed_in(request, user, token)  # the Actor; a justification if needed
        _LIVE.set(request.headers.get(LIVE_HEADER) == "1")  # a page refreshed for new data
        return user

    def allowed(action: str) -> Any:
        """A route's policy: `dependencies=[allowed("ward")]` refuses (403, or the sign-in
        redirect for a page) anyone whose role may not do the action, before anything else
        runs, and names the action for the authorisation matrix (web/authz.py)."""
        return authz.requires(action, signed_in)

    secure_cookies = settings.tls or settings.secure_cookie  # Secure flag on every cookie

    def set_session_cookie(response: Response, token: str) -> None:
        """The session cookie, as password and single sign-on set it alike."""
        response.set_cookie(
            COOKIE,
            token,
            httponly=True,
            samesite="strict",
            secure=secure_cookies,
            max_age=int(state.session_rules.max_age.total_seconds()),
        )

    @app.exception_handler(PlaceharmError)
    async def _errors(request: Request, exc: PlaceharmError) -> Response:
        status = _status(exc)
        wants_html = _wants_html(request)
        if isinstance(exc, JustificationRequired) and wants_html:
            back = _safe_next(
                request.url.path + (f"?{request.url.query}" if request.url.query else "")
            )
            query = urlencode({"purpose": exc.purpose, "next": back})
            return RedirectResponse(f"/justification?{query}", status_code=303)
        response = error_response(request, status, _page_message(exc))
        if isinstance(exc, TooManyAttempts):
            response.headers["Retry-After"] = str(exc.retry_after_s)
        elif status == 503:
            response.headers["Retry-After"] = "5"
        return response

    def error_response(request: Request, status: int, message: str) -> Response:
        """The one error answer (PlaceharmError, RequestGuard's refusals): an HTML page or a
        JSON body of the same shape."""
        wants_html = _wants_html(request)
        if status == 403 and message == "sign in first" and wants_html:
            back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            query = urlencode({"next": _safe_next(back)})  # filters kept, encoded
            return RedirectResponse(f"/login?{query}", status_code=303)
        if wants_html:
            return templates.TemplateResponse(
                request,
                "error.html",
                {"status": status, "message": message, "user": None},
                status_code=status,
            )
        return JSONResponse({"error": message, "status": status}, status_code=status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_errors(request: Request, exc: StarletteHTTPException) -> Response:
        """Starlette's own refusals (no such path, a method not allowed, a malformed form)
        in the same shape as ours: an error page for a browser, else {"error", "status"}."""
        status, headers = exc.status_code, exc.headers
        if _wants_html(request):
            context = {"status": status, "message": str(exc.detail), "user": None}
            return templates.TemplateResponse(
                request, "error.html", context, status_code=status, headers=headers
            )
        return JSONResponse(
            {"error": str(exc.detail), "status": status}, status_code=status, headers=headers
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        """A parameter or form field missing or of the wrong type: the same 400 shape as every
        other refusal, naming the fields and what they need (never echoing the values)."""
        problems = []
        for error in exc.errors()[:10]:
            where = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
            problems.append(f"{where or 'request'}: {error.get('msg', 'not valid')}")
        return error_response(request, 400, "not a valid request: " + "; ".join(problems))

    def render(
        request: Request, template: str, page: Page, user: User, extra: dict[str, Any] | None = None
    ) -> HTMLResponse:
        context = {
            "page": page,
            "user": user,
            "d": page.data,
            "t": page.tables,
            "json": _script_page(page, user),
            **(extra or {}),
        }
        if (
            template in ROLE_TEMPLATES
            and not extra
            and page.kind in ("overview", "ward", "chb", "records")
        ):
            # the page's content (its main block) depends on the page and the role only: made
            # once per built page (a table of every area is most of a page's cost to send)
            main = page.encoded.get(f"main:{template}")
            if main is None:
                main = templates.get_template(template).render(
                    {**context, "request": request, "main_only": True}
                )
                page.encoded[f"main:{template}"] = main
            context["main_html"] = Markup(main)
        return templates.TemplateResponse(request, template, context)

    def cache_key(fn: Callable[..., Page], args: tuple[Any, ...], version: int) -> tuple[Any, ...]:
        """(page, reader, arguments, data version): the reader is the role for a page the
        policy shapes by role alone (`pages.ROLE_PAGES`), else the user."""
        user, rest = args[0], args[1:]
        if fn.__name__ in pages.ROLE_PAGES and isinstance(user, User):
            reader: tuple[str, str] = ("role", user.role.value)
        else:
            reader = ("user", repr(user))
        # the module too: two builders may share a short name (hot spots' `page`)
        return (f"{fn.__module__}.{fn.__qualname__}", reader, *map(repr, rest), version)

    def build(fn: Callable[..., Page], *args: Any, **given: Any) -> Page:
        """A page's data, built once per (page, reader, arguments) until new data arrives.
        A page shared by a role is built for the role (`pages.role_reader`: no one's name
        in it); its "user" entry is the requester's when it is sent. `given`: a page it is
        made from, already built for the same reader and arguments (not part of the key)."""
        version = state.version
        key = cache_key(fn, args, version)
        user, rest = args[0], args[1:]
        reader = pages.role_reader(user) if key[1][0] == "role" else user

        def builder() -> Page:
            with (
                state.builds.slot(urgent=_LIVE.get()),
                state.read() as store,
                pages.reading(store),  # one read: figures match "as of"
            ):
                return fn(store, reader, *rest, **given)

        page = state.cache.get_or_build(key, builder, keep=lambda: state.version == version)
        audited.saw(page)  # cached or not, this request's audit entry names what it holds
        return page

    async def page_json(fn: Callable[..., Page], *args: Any) -> Response:
        """A page's JSON twin. A cached page is answered on the event loop; a page to build
        (or to serialise the first time) goes to a worker thread."""
        page = state.cache.get(cache_key(fn, args, state.version))
        if page is None or "json" not in page.encoded:
            return await run_in_threadpool(lambda: _page_json(build(fn, *args), args[0]))
        audited.saw(page)
        return _page_json(page, args[0])

    @app.get(
        "/api/openapi.json", dependencies=[allowed("api_description")], include_in_schema=False
    )
    def openapi(user: User = Depends(signed_in)) -> Any:
        return app.openapi()

    # CSRF and body limits on every route (the inner middleware: its refusals get headers too)
    upload_max = settings.upload_max_mb * 2**20
    app.add_middleware(
        RequestGuard, csrf=csrf, stream_limits={"/api/upload": upload_max}, render=error_response
    )
    # any other failure, a native panic included: a 500 with an incident reference, logged
    app.add_middleware(Incidents, render=error_response)
    app.add_middleware(SecurityHeaders, csp=csp, tls=settings.tls)
    if settings.allowed_hosts != ["*"]:  # outermost: an unknown Host is refused before all
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=settings.allowed_hosts)

    # -- sign in -------------------------------------------------------------------------
    oidc = sso.OidcClient(settings) if settings.oidc_issuer else None
    if not settings.local_accounts:
        with state.write() as store:
            sso.end_local_sessions(store)

    @app.get(
        "/login", dependencies=[authz.PUBLIC], response_class=HTMLResponse, include_in_schema=False
    )
    def login_form(request: Request, next: str = "/overview", error: str | None = None) -> Any:
        return templates.TemplateResponse(
            request,
            "login.html",
            {
                "next": _safe_next(next),
                "error": error,
                "user": None,
                "sso_name": oidc.provider_name if oidc else None,
                "local_accounts": settings.local_accounts,
            },
        )

    @app.post("/login", dependencies=[authz.PUBLIC], include_in_schema=False)
    async def login(
        request: Request,
        username: str = Form(...),
        password: str = Form(...),
        next: str = Form("/overview"),
    ) -> Response:
        if not settings.local_accounts:  # single sign-on only (docs/security/sso.md)
            return RedirectResponse(_login_again("local", next), 303)
        # a paused address or name is answered at once, without waiting for a hashing turn
        paused = await run_in_threadpool(_paused, request, username, next)
        if paused is not None:
            return paused
        # the turn to hash is awaited here: sign-ins waiting for one hold no worker thread
        async with state.sign_ins.turn():
            refused = await run_in_threadpool(_paused, request, username, next, True)
            if refused is not None:  # paused meanwhile, or too many attempts in flight
                return refused
            return await run_in_threadpool(_login, request, username, password, next)

    def _paused(request: Request, username: str, next: str, begin: bool = False) -> Response | None:
        """The refusal for a sign-in from a paused address or (username, address), logged;
        None when it may go on. With `begin`, the attempt is also counted as in flight, and
        refused while the failures plus the attempts in flight reach the limit (so guesses
        sent at once, to one process or several, are not all checked)."""
        address = request.client.host if request.client else None
        try:
            if begin:
                state.throttle.begin(username, address)
            else:
                state.throttle.check(username, address)
        except TooManyAttempts as exc:
            # the name attempted (never the password), refused before any check
            attempt = Actor(clip(username)[:100], "unknown", address)
            state.audit.record(
                state.store, attempt, "sign-in", "session", "/login", outcome="throttled"
            )
            if "text/html" not in request.headers.get("accept", ""):
                raise  # 429 with Retry-After, as JSON
            return templates.TemplateResponse(
                request,
                "login.html",
                {
                    "next": _safe_next(next),
                    "error": None,
                    "message": str(exc),
                    "user": None,
                    "sso_name": oidc.provider_name if oidc else None,
                    "local_accounts": settings.local_accounts,
                },
                status_code=429,
                headers={"Retry-After": str(exc.retry_after_s)},
            )
        return None

    def _login(request: Request, username: str, password: str, next: str) -> Response:
        address = request.client.host if request.client else None
        decided = False  # the attempt begun is ended by a verdict, or else abandoned
        try:
            try:
                with state.read() as store:
                    record = store.user(username)
                    real = state.sessions.real_data(store)
                auth.check_password(record, password, real)  # slow: outside the store lock
                assert record is not None
                with state.write() as store, store.transaction():
                    token = auth.start_session(store, username, state.clock(), state.session_rules)
                    actor = Actor(username, record["role"], address, audit.session_key(token))
                    state.audit.record(store, actor, "sign-in", "session", "/login")
            except PermissionDenied:
                state.throttle.failed(username, address)
                decided = True
                # the name attempted (never the password)
                attempt = Actor(clip(username)[:100], "unknown", address)
                state.audit.record(
                    state.store, attempt, "sign-in", "session", "/login", outcome="failed"
                )
                return RedirectResponse(_login_again("1", next), status_code=303)
            state.throttle.succeeded(username, address)
            decided = True
        finally:
            if not decided:  # no verdict on the password (a server failure): not counted
                with suppress(Exception):
                    state.throttle.abandon(username, address)
        if record["role"] == policy.Role.auditor.value and _safe_next(next) == "/overview":
            next = "/audit"  # the auditor sees no data pages
        response = RedirectResponse(_safe_next(next), status_code=303)
        set_session_cookie(response, token)
        # the CSRF token is bound to the session from now on
        response.delete_cookie(
            csrf.pre_session_cookie, secure=settings.tls, httponly=True, samesite="strict"
        )
        return response

    @app.get("/login/sso", dependencies=[authz.PUBLIC], include_in_schema=False)
    def login_sso(request: Request, next: str = "/overview") -> Response:
        """Single sign-on: send the browser to the identity provider (docs/security/sso.md)."""
        if oidc is None:
            raise NotFound("single sign-on is not set up on this server")
        try:
            url, flow = oidc.begin(next)
        except PlaceharmError as exc:
            return _sso_refused(request, exc)
        response = RedirectResponse(url, status_code=303)
        # Lax, not Strict: the provider's redirect back is a cross-site top-level GET
        response.set_cookie(
            sso.FLOW_COOKIE,
            flow,
            max_age=sso.FLOW_SECONDS,
            path=oidc.callback_path,
            httponly=True,
            samesite="lax",
            secure=secure_cookies,
        )
        return response

    @app.get(sso.CALLBACK_PATH, dependencies=[authz.PUBLIC], include_in_schema=False)
    def auth_callback(
        request: Request,
        code: str | None = None,
        flow_state: Annotated[str | None, Query(alias="state")] = None,
        error: str | None = None,
    ) -> Response:
        """Single sign-on: the provider's answer; a session cookie and a same-site page."""
        if oidc is None:
            raise NotFound("single sign-on is not set up on this server")
        response: Response
        identity: sso.Identity | None = None
        answer = {"code": code, "state": flow_state, "error": error}  # what finish() reads
        try:
            flow = request.cookies.get(sso.FLOW_COOKIE)
            identity, target = oidc.finish({k: v for k, v in answer.items() if v is not None}, flow)
            with state.write() as store:
                token, username = sso.sign_in(
                    store, identity, state.clock(), state.session_rules, _address(request)
                )
        except PlaceharmError as exc:
            name = clip(identity.username)[:100] if identity else "(single sign-on)"
            if identity is not None:  # its sessions were ended if no group maps now
                with state.read() as store:
                    known = store.user_by_subject(identity.issuer, identity.subject)
                state.sessions.forget_user(known["username"] if known else identity.username)
            state.audit.record(
                state.store,
                Actor(name, "unknown", _address(request)),
                "sign-in",
                "session",
                sso.CALLBACK_PATH,
                query={"via": "oidc"},
                outcome="refused",
            )
            response = _sso_refused(request, exc)
        else:
            if identity.role is policy.Role.auditor and target == "/overview":
                target = "/audit"  # the auditor sees no data pages (as POST /login)
            # A 200 page that moves on by itself: a redirect here would still count as the
            # provider's cross-site navigation, and the Strict session cookie would not go.
            response = templates.TemplateResponse(
                request, "signed_in.html", {"next": target, "name": identity.display_name}
            )
            state.sessions.forget_user(username)  # a role change ended the old sessions
            set_session_cookie(response, token)  # the same cookie as POST /login sets
        response.delete_cookie(
            sso.FLOW_COOKIE,
            path=oidc.callback_path,
            httponly=True,
            samesite="lax",
            secure=secure_cookies,
        )
        return response

    def _sso_refused(request: Request, exc: PlaceharmError) -> Response:
        status = 502 if isinstance(exc, sso.SsoUnavailable) else _status(exc)
        return templates.TemplateResponse(
            request,
            "sso_error.html",
            {"status": status, "message": str(exc), "user": None},
            status_code=status,
        )

    @app.post("/logout", dependencies=[authz.PUBLIC], include_in_schema=False)
    def logout(request: Request) -> Response:
        token = request.cookies.get(COOKIE)
        with state.read() as store:
            user = auth.user_for(store, token, state.clock(), state.session_rules)
        with state.write() as store, store.transaction():
            auth.logout(store, token)
            if token and user is not None:
                key = audit.session_key(token)
                store.end_justifications(key)
                actor = Actor(user.username, user.role.value, _address(request), key)
                state.audit.record(store, actor, "sign-out", "session", "/logout")
        if token:  # after the store: a request in between cannot cache it again
            state.sessions.forget(token)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, secure=secure_cookies, httponly=True, samesite="strict")
        return response

    @app.get("/", dependencies=[authz.PUBLIC], include_in_schema=False)
    def home() -> Response:
        return RedirectResponse("/overview", status_code=303)

    # -- overview --------------------------------------------------------------------------
    async def page_filters(
        by: Annotated[str | None, Query(description="Area set, e.g. ward or lsoa.")] = None,
        first: Annotated[
            str | None, Query(alias="from", description="First month, YYYY-MM.")
        ] = None,
        to: Annotated[str | None, Query(description="Last month, YYYY-MM.")] = None,
        index: Annotated[
            str | None,
            Query(
                description="Harm index: css, cchi, css:<force>, cchi:<force> or a "
                "registered custom index's name (never a file)."
            ),
        ] = None,
        measures: Annotated[
            list[str], Query(description="SOC measure ids; repeat or comma-separate.")
        ] = [],  # noqa: B006 (FastAPI copies defaults per request)
        types: Annotated[
            list[str], Query(description="police.uk crime types; repeat or comma-separate.")
        ] = [],  # noqa: B006
    ) -> Filters:
        """The filters in the URL (`measures` and `types` may repeat, as a form of
        checkboxes sends them). The index is checked against the shipped and registered
        indices held in memory: an unknown one is the same 400 whatever it is."""
        return Filters.parse(
            by,
            first,
            to,
            index or default_index,
            measures,
            types,
            indices.indices(state.store),
        )

    @app.get(
        "/overview",
        dependencies=[allowed("overview")],
        response_class=HTMLResponse,
        include_in_schema=False,
    )
    def overview_page(
        request: Request,
        user: User = Depends(signed_in),
        f: Filters = Depends(page_filters),
        area: Annotated[str | None, Query(max_length=64)] = None,
    ) -> Any:
        page = build(pages.overview, user, f)
        if area:  # the dashboard cross-filtered to one area (issue 15)
            page = build(dashboard.overview_focus, user, f, area, page=page)
        return render(request, "overview.html", page, user)

    @app.get("/api/overview", dependencies=[allowed("overview")])
    async def overview_api(
        user: User = Depends(signed_in),
        f: Filters = Depends(page_filters),
        area: Annotated[
            str | None,
            Query(max_length=64, description="Cross-filter the dashboard to this area's code."),
        ] = None,
    ) -> Any:
        if not area:
            return await page_json(pages.overview, user, f)

        def focused() -> Response:
            page = build(pages.overview, user, f)
            return _page_json(build(dashboard.overview_focus, user, f, area, page=page), user)

        return await run_in_threadpool(focused)

    @app.get(
        "/api/overview.csv",
        dependencies=[allowed("overview")],
        response_class=CSVResponse,
    )
    def overview_csv(
        user: User = Depends(signed_in),
        f: Filters = Depends(page_filters),
    ) -> Response:
        page = build(pages.overview, user, f)
        return _csv(page.tables["areas"].drop("monthly_harm"), "overview.csv")

    @app.get(
        "/api/overview.geojson",
        dependencies=[allowed("overview")],
        response_class=GeoJSONResponse,
    )
    def overview_geojson(
        user: User = Depends(signed_in),
        f: Filters = Depends(page_filters),
    ) -> Any:
        page = build(pages.area_geojson, user, f, page=build(pages.overview, user, f))
        return _data_json(page, "application/geo+json")

    @app.get(
        "/api/overview.gpkg",
        dependencies=[allowed("overview")],
        response_class=GeoPackageResponse,
    )
    def overview_gpkg(
        user: User = Depends(signed_in),
        f: Filters = Depends(page_filters),
    ) -> Response:
        page = build(pages.area_geojson, user, f, page=build(pages.overview, user, f))
        return _gpkg({"areas": page.data["features"]}, page, "overview.gpkg")

    # -- ward ------------------------------------------------------------------------------
    @app.get(
        "/ward/{code}",
        dependencies=[allowed("ward")],
        response_class=HTMLResponse,
        include_in_schema=False,
    )
    def ward_page(
        request: Request,
        code: str,
        briefing: bool = False,
        user: User = Depends(signed_in),
        f: Filters = Depends(page_filters),
    ) -> Any:
        page = build(pages.briefing if briefing else pages.ward, user, code, f)
        return render(request, "briefing.html" if briefing else "ward.html", page, user)

    @app.get(
        "/api/ward/{code}.csv",
        dependencies=[allowed("ward")],
        response_class=CSVResponse,
    )
    def ward_csv(
        code: str,
        user: User = Depends(signed_in),
        f: Filters = Depends(page_filters),
    ) -> Response:
        return _csv(build(pages.ward, user, code, f).tables["monthly"], f"ward-{code}.csv")

    # declared before /api/ward/{code}, which would otherwise take "CODE.gpkg" as a code
    @app.get(
        "/api/ward/{code}.geojson",
        dependencies=[allowed("ward")],
        response_class=GeoJSONResponse,
    )
    def ward_geojson(
        code: str,
        user: User = Depends(signed_in),
        f: Filters = Depends(page_filters),
    ) -> Response:
        page = build(pages.ward_geojson, user, code, f, page=build(pages.ward, user, code, f))
        return _data_json(page, "application/geo+json")

    @app.get(
        "/api/ward/{code}.gpkg",
        dependencies=[allowed("ward")],
        response_class=GeoPackageResponse,
    )
    def ward_gpkg(
        code: str,
        user: User = Depends(signed_in),
        f: Filters = Depends(page_filters),
    ) -> Response:
        page = build(pages.ward_geojson, user, code, f, page=build(pages.ward, user, code, f))
        layers: dict[str, list[dict[str, Any]]] = {name: [] for name in page.data["layers"]}
        for feature in page.data["features"]:
            layers[feature["properties"]["layer"]].append(feature)
        return _gpkg(layers, page, f"ward-{code}.gpkg")

    @app.get("/api/ward/{code}", dependencies=[allowed("ward")])
    async def ward_api(
        code: str,
        user: User = Depends(signed_in),
        f: Filters = Depends(page_filters),
    ) -> Any:
        return await page_json(pages.ward, user, code, f)

    # -- CHB -------------------------------------------------------------------------------
    @app.get(
        "/chb/{site}",
        dependencies=[allowed("chb")],
        response_class=HTMLResponse,
        include_in_schema=False,
    )
    def chb_page(
        request: Request,
        site: str,
        user: User = Depends(signed_in),
        buffer_m: BufferQuery = None,
        control: ControlQuery = None,
        buffer_control: BufferControlQuery = None,
    ) -> Any:
        page = build(pages.chb, user, site, buffer_m, control, buffer_control)
        return render(request, "chb.html", page, user)

    @app.get("/api/chb/{site}", dependencies=[allowed("chb")])
    async def chb_api(
        site: str,
        user: User = Depends(signed_in),
        buffer_m: BufferQuery = None,
        control: ControlQuery = None,
        buffer_control: BufferControlQuery = None,
    ) -> Any:
        return await page_json(pages.chb, user, site, buffer_m, control, buffer_control)

    # -- disruption impact (issue 16) --------------------------------------------------------
    @app.get(
        "/disruptions",
        dependencies=[allowed("disruptions")],
        response_class=HTMLResponse,
        include_in_schema=False,
    )
    def disruptions_page(
        request: Request,
        user: User = Depends(signed_in),
        months: int = Query(3, ge=1, le=12),
    ) -> Any:
        return render(request, "disruptions.html", build(pages.disruptions, user, months), user)

    @app.get("/api/disruptions", dependencies=[allowed("disruptions")])
    async def disruptions_api(
        user: User = Depends(signed_in), months: int = Query(3, ge=1, le=12)
    ) -> Any:
        return await page_json(pages.disruptions, user, months)

    # -- significant hot spots (issue 16; web/templates/hotspots.html, static/hotspots.js) ----
    hotspot_service.warm()  # esda and libpysal take seconds to import: start now, in the background

    def hotspot_options(
        measure: Annotated[
            str, Query(description="harm, crimes, soc_harm or a SOC measure id.")
        ] = hotspot_service.HARM,
        weights: Annotated[str, Query(description="contiguity or distance.")] = "contiguity",
        distance: Annotated[
            float | None,
            Query(description="Metres: the distance band, or the contiguity tolerance."),
        ] = None,
        fdr: Annotated[float, Query(description="False discovery rate (0 to 1).")] = 0.05,
        permutations: Annotated[
            int, Query(description="Conditional permutations, 99 to 9999.")
        ] = HOTSPOT_PERMUTATIONS,
    ) -> hotspot_service.Options:
        return hotspot_service.Options(measure, weights, distance, permutations, fdr).checked()

    @app.get(
        "/hotspots",
        dependencies=[allowed("overview")],
        response_class=HTMLResponse,
        include_in_schema=False,
    )
    def hotspots_page(
        request: Request,
        user: User = Depends(signed_in),
        f: Filters = Depends(page_filters),
        o: hotspot_service.Options = Depends(hotspot_options),
    ) -> Any:
        return render(request, "hotspots.html", build(hotspot_service.page, user, f, o), user)

    @app.get("/api/hotspots", dependencies=[allowed("overview")])
    async def hotspots_api(
        user: User = Depends(signed_in),
        f: Filters = Depends(page_filters),
        o: hotspot_service.Options = Depends(hotspot_options),
    ) -> Any:
        return await page_json(hotspot_service.page, user, f, o)

    @app.get("/api/hotspots.csv", dependencies=[allowed("overview")], response_class=CSVResponse)
    def hotspots_csv(
        user: User = Depends(signed_in),
        f: Filters = Depends(page_filters),
        o: hotspot_service.Options = Depends(hotspot_options),
    ) -> Response:
        page = build(hotspot_service.page, user, f, o)
        return _csv(page.tables["areas"], "hotspots.csv")

    @app.get(
        "/api/hotspots.geojson",
        dependencies=[allowed("overview")],
        response_class=GeoJSONResponse,
    )
    def hotspots_geojson(
        user: User = Depends(signed_in),
        f: Filters = Depends(page_filters),
        o: hotspot_service.Options = Depends(hotspot_options),
    ) -> Any:
        built = build(hotspot_service.page, user, f, o)
        page = build(hotspot_service.geojson, user, f, o, built=built)
        return _data_json(page, "application/geo+json")

    # -- records ---------------------------------------------------------------------------
    @app.get(
        "/records",
        dependencies=[allowed("records")],
        response_class=HTMLResponse,
        include_in_schema=False,
    )
    def records_page(
        request: Request,
        kind: str = "crimes",
        q: str | None = None,
        sort: str | None = None,
        desc: bool = True,
        page: int = 1,
        area: str | None = None,
        user: User = Depends(signed_in),
        f: Filters = Depends(page_filters),
    ) -> Any:
        built = build(pages.records, user, kind, f, q, sort, desc, page, area)
        return render(request, "records.html", built, user)

    @app.get("/api/records", dependencies=[allowed("records")])
    async def records_api(
        kind: str = "crimes",
        q: str | None = None,
        sort: str | None = None,
        desc: bool = True,
        page: int = 1,
        page_size: int = pages.PAGE_SIZE,
        area: str | None = None,
        user: User = Depends(signed_in),
        f: Filters = Depends(page_filters),
    ) -> Any:
        return await page_json(pages.records, user, kind, f, q, sort, desc, page, area, page_size)

    @app.get(
        "/api/records.csv",
        dependencies=[allowed("records")],
        response_class=CSVResponse,
    )
    def records_csv(
        kind: str = "crimes",
        q: str | None = None,
        sort: str | None = None,
        desc: bool = True,
        area: str | None = None,
        user: User = Depends(signed_in),
        f: Filters = Depends(page_filters),
    ) -> Response:
        with state.read() as store:  # every matching row, streamed (issue 15)
            export = pages.records_export(store, user, kind, f, q, sort, desc, area)
        return _csv_stream(export, f"{kind}.csv")

    @app.get(
        "/crime/{crime_id}",
        dependencies=[allowed("records")],
        response_class=HTMLResponse,
        include_in_schema=False,
    )
    def crime_history_page(request: Request, crime_id: str, user: User = Depends(signed_in)) -> Any:
        return render(
            request, "crime_history.html", build(pages.crime_history, user, crime_id), user
        )

    @app.get("/api/crime/{crime_id}/history", dependencies=[allowed("records")])
    async def crime_history_api(crime_id: str, user: User = Depends(signed_in)) -> Any:
        """A crime's versions and outcomes, each with its import, file and vintage."""
        return await page_json(pages.crime_history, user, crime_id)

    # -- radius search (cleared roles) ------------------------------------------------------
    def _consult(
        user: User, action: str, run: Callable[[], tuple[Page, dict[str, list[str]]]]
    ) -> Page:
        """The one place a radius search is authorised and recorded: the justification was
        checked before the handler ran (`audited.purpose_needed`); the identifiers of the
        records shown go into the request's audit entry, written before the page is sent."""
        policy.require(user, action)
        built, record_ids = run()
        audited.saw(built)  # its rows (searches skip the page cache)
        audited.shown(record_ids)
        return built

    async def radius_query(
        lat: Annotated[float | None, _DEGREES, Query(description=radius.LAT_HELP)] = None,
        lon: Annotated[float | None, _DEGREES, Query(description=radius.LON_HELP)] = None,
        address_id: Annotated[str | None, Query(description="centre: a SOC address id")] = None,
        address: Annotated[str | None, Query(description=radius.ADDRESS_HELP)] = None,
        radius_m: Annotated[
            int, _METRES, Query(description=radius.RADIUS_HELP)
        ] = radius.DEFAULT_RADIUS_M,
        kinds: Annotated[list[str] | None, Query(description=radius.KINDS_HELP)] = None,
        first: Annotated[
            str | None, Query(alias="from", description="first month, YYYY-MM")
        ] = None,
        to: Annotated[str | None, Query(description="last month, YYYY-MM")] = None,
    ) -> dict[str, Any]:
        """The radius search's query parameters, as sent (checked by `radius.Query.parse`)."""
        return {
            "lat": lat,
            "lon": lon,
            "address_id": address_id,
            "address": address,
            "radius_m": radius_m,
            "kinds": kinds,
            "from": first,
            "to": to,
        }

    def radius_search(user: User, raw: dict[str, Any], form: bool) -> Page:
        """A radius search (or, on the HTML page with no centre, only its form)."""
        policy.require(user, "radius")  # before the query is even read
        query = radius.Query.parse(
            raw["lat"],
            raw["lon"],
            raw["address_id"],
            raw["address"],
            raw["radius_m"],
            raw["kinds"],
            raw["from"],
            raw["to"],
            need_centre=not form,
        )

        def run() -> tuple[Page, dict[str, list[str]]]:
            with state.read() as store, store.snapshot():
                built, result = radius.page(store, user, query)
            return built, result.record_ids() if result is not None else {}

        return _consult(user, "radius", run)

    @app.get(
        "/radius",
        dependencies=[allowed("radius")],
        response_class=HTMLResponse,
        include_in_schema=False,
    )
    def radius_page(
        request: Request,
        user: User = Depends(signed_in),
        raw: dict[str, Any] = Depends(radius_query),
    ) -> Any:
        try:
            built = radius_search(user, raw, form=True)
        except DataError as exc:  # the form again, as filled in, with what was wrong
            with state.read() as store:
                built = radius.form_page(store, user, raw, str(exc))
            response = render(request, "radius.html", built, user)
            response.status_code = 400
            return response
        return render(request, "radius.html", built, user)

    @app.get("/api/radius", dependencies=[allowed("radius")])
    def radius_api(
        request: Request,
        user: User = Depends(signed_in),
        raw: dict[str, Any] = Depends(radius_query),
    ) -> Response:
        """What is known within `radius_m` metres of a point or SOC address (cleared roles)."""
        return _page_json(radius_search(user, raw, form=False), user)

    # -- nominals and groups ---------------------------------------------------------------
    @app.get(
        "/nominal/{nominal_id}",
        dependencies=[allowed("nominal")],
        response_class=HTMLResponse,
        include_in_schema=False,
    )
    def nominal_page(request: Request, nominal_id: str, user: User = Depends(signed_in)) -> Any:
        page = build(pages.nominal, user, nominal_id, state.today())
        return render(request, "nominal.html", page, user)

    @app.get("/api/nominal/{nominal_id}", dependencies=[allowed("nominal")])
    async def nominal_api(nominal_id: str, user: User = Depends(signed_in)) -> Any:
        return await page_json(pages.nominal, user, nominal_id, state.today())

    @app.get(
        "/group/{group_id}",
        dependencies=[allowed("group")],
        response_class=HTMLResponse,
        include_in_schema=False,
    )
    def group_page(request: Request, group_id: str, user: User = Depends(signed_in)) -> Any:
        return render(request, "group.html", build(pages.group, user, group_id), user)

    @app.get("/api/group/{group_id}", dependencies=[allowed("group")])
    async def group_api(group_id: str, user: User = Depends(signed_in)) -> Any:
        return await page_json(pages.group, user, group_id)

    # -- MoPI reviews (services/mopi.py) ---------------------------------------------------
    @app.get(
        "/mopi",
        dependencies=[allowed("mopi")],
        response_class=HTMLResponse,
        include_in_schema=False,
    )
    def mopi_page(request: Request, user: User = Depends(signed_in)) -> Any:
        return render(request, "mopi.html", build(pages.mopi_reviews, user, state.today()), user)

    @app.get("/api/mopi", dependencies=[allowed("mopi")])
    async def mopi_api(user: User = Depends(signed_in)) -> Any:
        return await page_json(pages.mopi_reviews, user, state.today())

    @app.get("/api/mopi.csv", dependencies=[allowed("mopi")], response_class=CSVResponse)
    def mopi_csv(user: User = Depends(signed_in)) -> Response:
        page = build(pages.mopi_reviews, user, state.today(), None)
        return _csv(page.tables["overdue"], "mopi-overdue.csv")

    # -- analysis (issue 16): rising to prominence, emerging-risk alerts -------------------
    import dataclasses

    from placeharm.model import parse_month
    from placeharm.services import analysis_pages
    from placeharm.services import prominence as prominence_service

    analysis_defaults = prominence_service.params_from(settings)
    # (parameter types written out in each route: the app's annotations are strings,
    # resolved against this module's names, so a local alias would not resolve)

    def _analysis_month(month: str | None) -> dt.date | None:
        return parse_month(month) if month else None

    def _prominence_args(window: int, baseline: int, fdr: float) -> Any:
        return dataclasses.replace(analysis_defaults, window=window, baseline=baseline, fdr=fdr)

    @app.get(
        "/prominence",
        dependencies=[allowed("nominal")],
        response_class=HTMLResponse,
        include_in_schema=False,
    )
    def prominence_page(
        request: Request,
        window: Annotated[int, Query(ge=1, le=24, description="Recent months.")] = 3,
        baseline: Annotated[int, Query(ge=1, le=60, description="Months before.")] = 12,
        fdr: Annotated[float, Query(gt=0, lt=1, description="False discovery rate.")] = 0.1,
        month: Annotated[str | None, Query(description="Month tested, YYYY-MM.")] = None,
        user: User = Depends(signed_in),
    ) -> Any:
        params = _prominence_args(window, baseline, fdr)
        page = build(analysis_pages.prominence, user, params, _analysis_month(month))
        return render(request, "prominence.html", page, user)

    @app.get("/api/prominence", dependencies=[allowed("nominal")])
    async def prominence_api(
        window: Annotated[int, Query(ge=1, le=24, description="Recent months.")] = 3,
        baseline: Annotated[int, Query(ge=1, le=60, description="Months before.")] = 12,
        fdr: Annotated[float, Query(gt=0, lt=1, description="False discovery rate.")] = 0.1,
        month: Annotated[str | None, Query(description="Month tested, YYYY-MM.")] = None,
        user: User = Depends(signed_in),
    ) -> Any:
        params = _prominence_args(window, baseline, fdr)
        return await page_json(analysis_pages.prominence, user, params, _analysis_month(month))

    @app.get(
        "/alerts",
        dependencies=[allowed("overview")],
        response_class=HTMLResponse,
        include_in_schema=False,
    )
    def alerts_page(
        request: Request,
        by: Annotated[str, Query(description="Area set, e.g. ward or lsoa.")] = "ward",
        baseline: Annotated[int, Query(ge=1, le=60, description="Months before.")] = 12,
        fdr: Annotated[float, Query(gt=0, lt=1, description="False discovery rate.")] = 0.1,
        month: Annotated[str | None, Query(description="Month tested, YYYY-MM.")] = None,
        user: User = Depends(signed_in),
    ) -> Any:
        page = build(analysis_pages.alerts, user, by, _analysis_month(month), baseline, fdr)
        return render(request, "alerts.html", page, user)

    @app.get("/api/alerts", dependencies=[allowed("overview")])
    async def alerts_api(
        by: Annotated[str, Query(description="Area set, e.g. ward or lsoa.")] = "ward",
        baseline: Annotated[int, Query(ge=1, le=60, description="Months before.")] = 12,
        fdr: Annotated[float, Query(gt=0, lt=1, description="False discovery rate.")] = 0.1,
        month: Annotated[str | None, Query(description="Month tested, YYYY-MM.")] = None,
        user: User = Depends(signed_in),
    ) -> Any:
        return await page_json(
            analysis_pages.alerts, user, by, _analysis_month(month), baseline, fdr
        )

    # -- help, admin, upload, live ---------------------------------------------------------
    @app.get(
        "/help",
        dependencies=[allowed("help")],
        response_class=HTMLResponse,
        include_in_schema=False,
    )
    def help_page(request: Request, user: User = Depends(signed_in)) -> Any:
        policy.require(user, "help")
        with state.read() as store, store.snapshot():
            data = pages.data_as_of(store) | {"record_kinds": policy.record_kinds(user)}
        page = Page("help", "Help: how to use placeharm", data)
        return render(request, "help.html", page, user)

    @app.get(
        "/admin",
        dependencies=[allowed("admin")],
        response_class=HTMLResponse,
        include_in_schema=False,
    )
    def admin_page(
        request: Request,
        done: str | None = None,
        who: str | None = None,
        backup: str | None = None,
        user: User = Depends(signed_in),
    ) -> Any:
        page = build(_admin, user, state.today())
        # the outcome of an account change (a fixed sentence per action in the template)
        outcome: dict[str, Any] = (
            {"done": done, "who": who} if done in auth.ACCOUNT_ACTIONS and who else {}
        )
        if backup and re.fullmatch(r"placeharm-[0-9TZ]+\.duckdb", backup):
            outcome["backup"] = backup
        outcome["backups"] = {
            "every_hours": settings.backup_every_hours,
            "keep": settings.backup_keep,
            "last": state.backups.last,
        }
        return render(request, "admin.html", page, user, outcome | {"watcher": watcher()})

    @app.get("/api/admin", dependencies=[allowed("admin")])
    def admin_api(user: User = Depends(signed_in)) -> Any:
        return _json(build(_admin, user, state.today()).to_json() | {"drop_folder": watcher()})

    def watcher() -> dict[str, Any] | None:
        """The drop-folder watcher's health, live (not part of the cached page), or None
        when no folder is watched."""
        return state.watcher.health().to_json() if state.watcher is not None else None

    @app.post(
        "/admin/users/{username}/{action}",
        dependencies=[allowed("admin")],
        include_in_schema=False,
    )
    def admin_account(
        request: Request,
        username: str,
        action: str,
        role: str = Form(""),
        password: str = Form(""),
        user: User = Depends(signed_in),
    ) -> Response:
        """Disable, enable, change the role of or set the password of an account: every
        session of that user ends at once, in the store and in this server's memory."""
        policy.require(user, "admin")
        with state.write() as store:
            ended = auth.change_account(
                store,
                user,
                username,
                action,
                role if action == "role" else password,
                Actor(user.username, user.role.value, _address(request)),
            )
        state.sessions.forget_user(username)
        state.notify()  # the admin page lists the accounts: build it afresh
        if "text/html" in request.headers.get("accept", ""):
            return RedirectResponse(f"/admin?done={action}&who={username}#u-h", status_code=303)
        return _json({"username": username, "action": action, "sessions_ended": ended})

    @app.post("/admin/backup", dependencies=[allowed("admin")], include_in_schema=False)
    def admin_backup(request: Request, user: User = Depends(signed_in)) -> Response:
        """A consistent copy of the store, written by this server (which holds the store)
        into the backup_dir folder while it goes on serving; a disclosure in the audit log."""
        policy.require(user, "admin")
        made = state.backups.make(Actor(user.username, user.role.value, _address(request)))
        if "text/html" in request.headers.get("accept", ""):
            return RedirectResponse(f"/admin?backup={made['file']}#b-h", status_code=303)
        return _json(made)

    @app.post("/api/upload", dependencies=[allowed("upload")], openapi_extra=uploads.OPENAPI)
    async def upload(request: Request, user: User = Depends(signed_in)) -> Any:
        """Import one file. The session and role are checked before any of the body is read;
        the body is streamed to a temporary file, capped by the upload_max_mb setting."""
        policy.require(user, "upload")
        actor = Actor(user.username, user.role.value, _address(request))
        return _json(await uploads.receive_upload(request, state.importer, actor))

    # -- justification and the audit log ---------------------------------------------------
    def _actor(request: Request, user: User) -> Actor:
        token = request.cookies.get(COOKIE) or ""
        return Actor(user.username, user.role.value, _address(request), audit.session_key(token))

    @app.get(
        "/justification",
        dependencies=[allowed("justification")],
        response_class=HTMLResponse,
        include_in_schema=False,
    )
    def justification_form(
        request: Request,
        purpose: str = "nominal",
        next: str = "/overview",
        error: str | None = None,
        user: User = Depends(signed_in),
    ) -> Any:
        if purpose not in audit.PURPOSES:
            raise DataError(f"no purpose {purpose!r}; use one of {', '.join(audit.PURPOSES)}")
        policy.require_purpose(user, purpose)
        context = {
            "user": user,
            "purpose": purpose,
            "purpose_text": audit.PURPOSES[purpose],
            "reasons": audit.REASONS,
            "max_text": audit.MAX_REASON_TEXT,
            "next": _safe_next(next),
            "error": error,
        }
        return templates.TemplateResponse(request, "justification.html", context)

    @app.post("/justification", dependencies=[allowed("justification")], include_in_schema=False)
    def justification_submit(
        request: Request,
        purpose: str = Form(...),
        reason: str = Form(""),
        text: str = Form(""),
        next: str = Form("/overview"),
        user: User = Depends(signed_in),
    ) -> Response:
        try:
            stated = _state_justification(request, user, purpose, reason, text)
        except DataError as exc:
            query = urlencode({"purpose": purpose, "next": _safe_next(next), "error": str(exc)})
            return RedirectResponse(f"/justification?{query}", status_code=303)
        assert stated
        return RedirectResponse(_safe_next(next), status_code=303)

    @app.post("/api/justification", dependencies=[allowed("justification")])
    def justification_api(
        request: Request,
        purpose: str = Form(...),
        reason: str = Form(...),
        text: str = Form(""),
        user: User = Depends(signed_in),
    ) -> Any:
        """State why you need personal data (once per purpose and session): then ask again."""
        stated = _state_justification(request, user, purpose, reason, text)
        return _json({"purpose": purpose, "reason": stated.reason_code, "text": stated.text})

    def _state_justification(
        request: Request, user: User, purpose: str, reason: str, text: str
    ) -> Justification:
        if purpose not in audit.PURPOSES:
            raise DataError(f"no purpose {purpose!r}; use one of {', '.join(audit.PURPOSES)}")
        policy.require_purpose(user, purpose)
        stated = Justification.parse(reason, text)
        with state.write() as store:
            audit.state_justification(store, _actor(request, user), purpose, stated)
        return stated

    async def audit_search(
        username: Annotated[
            str | None, Query(alias="user", description="Who acted: a username.")
        ] = None,
        record: Annotated[
            str | None, Query(description="A record identifier the entry names.")
        ] = None,
        first: Annotated[
            str | None, Query(alias="from", description="First day, YYYY-MM-DD.")
        ] = None,
        last: Annotated[str | None, Query(alias="to", description="Last day, YYYY-MM-DD.")] = None,
        action: Annotated[
            str | None, Query(description=f"One of {', '.join(audit.ACTIONS)}.")
        ] = None,
        page: Annotated[str, Query(description="Page of entries, from 1.")] = "1",
    ) -> dict[str, str | None]:
        """The audit search's parameters, declared (so the API description lists them) and
        checked by `audit_view.audit_page`."""
        return {
            "username": username,
            "record": record,
            "first": first,
            "last": last,
            "action": action,
            "page": page,
        }

    @app.get(
        "/audit",
        dependencies=[allowed("audit")],
        response_class=HTMLResponse,
        include_in_schema=False,
    )
    def audit_page(
        request: Request,
        user: User = Depends(signed_in),
        search: dict[str, str | None] = Depends(audit_search),
    ) -> Any:
        page = _audit_page(user, search)
        return render(request, "audit.html", page, user)

    @app.get("/api/audit", dependencies=[allowed("audit")])
    def audit_api(
        user: User = Depends(signed_in),
        search: dict[str, str | None] = Depends(audit_search),
    ) -> Any:
        """Audit log entries matching the search, newest first, and the usage summary."""
        return _json(_audit_page(user, search).to_json())

    def _audit_page(user: User, search: dict[str, Any]) -> Page:
        with state.read() as store, store.snapshot():
            page = audit_view.audit_page(store, state.audit, user, **search)
        audited.saw(page)
        return page

    @app.get(
        "/events",
        dependencies=[allowed("live")],
        response_class=EventStreamResponse,
        responses=EVENTS,
    )
    async def events(request: Request, user: User = Depends(signed_in)) -> StreamingResponse:
        """Server-sent events: `data` whenever an import lands. Never takes the store lock
        on the event loop; re-checks the session every 15 s and ends when it is gone."""
        token = request.cookies.get(COOKIE)

        async def stream() -> AsyncIterator[str]:
            seen = -1
            checked = time.monotonic()
            while not await request.is_disconnected():
                changed = state.changed  # before the version: a later notify sets this one
                if state.version != seen:
                    seen = state.version
                    yield f"event: data\ndata: {json.dumps(state.as_of)}\n\n"
                if time.monotonic() - checked > 15:
                    checked = time.monotonic()
                    if await run_in_threadpool(_session_alive, token) is None:
                        yield "event: signed-out\ndata: {}\n\n"
                        return
                    yield ": keep-alive\n\n"
                if state.version == seen:  # wait for the next change (issue 14: no polling
                    # delay), looking at the connection and the session at least every second
                    with suppress(TimeoutError):
                        await asyncio.wait_for(changed.wait(), EVENTS_WAIT_S)

        return StreamingResponse(
            stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
        )

    def _session_alive(token: str | None) -> User | None:
        if not token:
            return None
        with state.read() as store:  # a live stream is not activity: the idle timeout runs
            return state.sessions.look_up(store, token, state.write_lock, activity=False)

    @app.get("/tiles/{z}/{x}/{y}", dependencies=[allowed("basemap")], include_in_schema=False)
    def tile(z: int, x: int, y: int, request: Request, user: User = Depends(signed_in)) -> Response:
        """A base map tile from the local PMTiles archive (signed-in users; 404 where none)."""
        found = tiles.get(z, x, y) if tiles is not None else None
        if found is None:
            raise NotFound(f"no base map tile {z}/{x}/{y}")
        data, headers = found.data, {"Cache-Control": TILE_CACHE}
        if found.encoding:
            headers["Vary"] = "Accept-Encoding"  # the same URL, encoded or not
        if found.encoding == "gzip" and "gzip" not in request.headers.get("accept-encoding", ""):
            data = gzip.decompress(data)
        elif found.encoding:
            headers["Content-Encoding"] = found.encoding
        return Response(data, media_type=found.media_type, headers=headers)

    @app.get("/vendor/{name}", dependencies=[authz.PUBLIC], include_in_schema=False)
    def vendor(name: str) -> Response:
        if name not in VENDOR:
            raise NotFound(f"no vendor file {name}")
        package, relative, media = VENDOR[name]
        path = Path(str(resources.files(package) / relative))
        return FileResponse(path, media_type=media, headers={"Cache-Control": "max-age=86400"})

    return app


# The radius form's numbers, read as the API declares them (numbers, so the OpenAPI says so),
# but an empty field is no value (the form sends lat= when the centre is an address) and text
# that is not a number is the same clear 400 as any other bad search (DataError is not a
# ValueError, so pydantic lets it through to the error handler).
_DEGREES = BeforeValidator(lambda v: radius.number(v, "lat and lon are decimal degrees"))
_METRES = BeforeValidator(radius.metres)


def _wants_html(request: Request) -> bool:
    """A browser asking for a page (not the API): errors answer with a page or a redirect."""
    return not request.url.path.startswith("/api") and "text/html" in request.headers.get(
        "accept", ""
    )


def _status(exc: PlaceharmError) -> int:
    """The HTTP status of a refusal (ERROR_STATUS; any other PlaceharmError is a 400)."""
    return next((code for kind, code in ERROR_STATUS if isinstance(exc, kind)), 400)


def _refuse_read_only(store: AnyStore) -> None:
    """The dashboard writes to its store on every page (the section 62 audit log) and at
    every sign-in, so it cannot serve a read-only one (issue 13; docs/ingest.md)."""
    if store.read_only:
        store.close()
        raise StoreError(
            f"the store {store.path} is read-only (the file or its folder cannot be written, "
            "or the read_only setting is on). The dashboard must write its audit log and "
            "sessions to the store, so it needs a writable one; query a read-only store with "
            "the command line (placeharm counts, rank, coverage, ...)."
        )


def _admin(store: AnyStore, user: User, today: dt.date) -> Page:
    policy.require(user, "admin")
    reviews = pages.mopi_reviews(store, user, today, 200)
    imports = store.imports(30)
    quarantine = store.quarantine(limit=200)
    summary = (
        quarantine.group_by("source_file", "reason").len().sort("len", descending=True)
        if quarantine.height
        else pl.DataFrame(schema={"source_file": pl.String, "reason": pl.String, "len": pl.UInt32})
    )
    return Page(
        "admin",
        "Administration: imports, quarantine, users",
        pages.data_as_of(store)
        | {
            "record_kinds": policy.record_kinds(user),
            "mopi": reviews.data,
            "roles": [r.value for r in policy.Role],
            # issue 18: which placeharm serves which store (version, commit, schema)
            "installation": _installation(store.schema_version()),
        },
        {
            "imports": imports.drop([c for c in ("file_sha256",) if c in imports.columns]),
            "quarantine": summary,
            "users": store.users(),
            "mopi": reviews.tables["overdue"],
        },
    )


def _installation(schema_version: int) -> dict[str, object]:
    """The admin page's "About this installation" (issue 18; placeharm/version.py)."""
    from placeharm.version import describe

    return describe(schema_version).to_json()


def _seconds(moment: dt.datetime) -> float:
    """A naive UTC time as seconds since the epoch (the throttle's clock under a test clock)."""
    return (moment - dt.datetime(1970, 1, 1)).total_seconds()


def _csp(tile_origin: str | None) -> str:
    """The Content-Security-Policy: the force tile server's origin is allowed only when set."""
    if tile_origin is None:
        return CSP
    return CSP.replace("img-src 'self'", f"img-src 'self' {tile_origin}").replace(
        "connect-src 'self'", f"connect-src 'self' {tile_origin}"
    )


def _plotly_maplibre_css_id() -> str:
    """The element id under which Plotly injects MapLibre's CSS as an inline <style> (for map
    traces, which we do not draw): a page that loads Plotly links /vendor/maplibre-gl.css under
    this id, so Plotly finds it and injects nothing the CSP would refuse."""
    script = resources.files("plotly") / "package_data/plotly.min.js"
    found = re.search(
        r'getElementById\("([0-9a-f]{64})"\)\)\{var \w+=document\.createElement\("style"\)',
        script.read_text(encoding="utf-8"),
    )
    return found.group(1) if found else "plotly-maplibre-css"


def _gpkg(layers: dict[str, list[dict[str, Any]]], page: Page, filename: str) -> Response:
    """GeoJSON features as a GeoPackage download: written to a temporary file (a GeoPackage
    is an SQLite database), streamed, then removed."""
    folder = Path(tempfile.mkdtemp(prefix="placeharm-gpkg-"))
    try:
        path = folder / filename
        exports.write_geopackage(
            path, layers, marking=MARKING, title=page.title, data_as_of=page.data.get("data_as_of")
        )
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    audited.wrote(sum(len(features) for features in layers.values()))
    return FileResponse(
        path,
        media_type=exports.MEDIA_TYPE,
        filename=filename,
        headers={"X-Security-Marking": MARKING},
        background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True),
    )


def _script_json(payload: Any) -> str:
    """JSON safe inside a <script> element: no '<', '>' or '&' characters at all."""
    return _script_safe(json.dumps(payload, default=str))


def _script_safe(text: str) -> str:
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _address(request: Request) -> str | None:
    """The client's address as the server sees it (the proxy's, behind a reverse proxy)."""
    return request.client.host if request.client else None


def _safe_next(target: str) -> str:
    """Only a path on this site (never another host) after signing in: the same check as
    single sign-on's (services/sso.safe_next), so the two cannot drift apart."""
    return sso.safe_next(target)


# The templates of `pages.ROLE_PAGES` whose main block shows the page and the role's policy
# only (never the user's name, the request or a CSRF token): rendered once per built page.
ROLE_TEMPLATES = frozenset({"overview.html", "ward.html", "chb.html", "records.html"})
# orjson, as the json module wrote them: datetimes as str() does, non-string keys as strings
_ORJSON = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_NON_STR_KEYS
EVENTS_WAIT_S = 1.0  # an event stream looks at its connection at least this often


def _dumps(payload: Any) -> bytes:
    try:
        return orjson.dumps(payload, default=str, option=_ORJSON)
    except orjson.JSONEncodeError:  # an integer beyond 64 bits (a hostile value echoed back)
        return json.dumps(payload, default=str).encode()


def _reader_entry(page: Page, user: User) -> bytes:
    """`{"user": ...}` for the requester of a page that names its reader, else b"": a page
    shared by a role is built with no one's name in it."""
    if "user" not in page.data:
        return b""
    return _dumps({"user": {"username": user.username, "role": user.role.value}})


def _page_body(page: Page) -> bytes:
    """The JSON twin without its "user" entry, serialised once per built page."""
    body = page.encoded.get("json")
    if body is None:
        body = page.encoded["json"] = _dumps(
            {k: v for k, v in page.to_json().items() if k != "user"}
        )
    return bytes(body)


def _with_reader(page: Page, user: User, body: bytes) -> bytes:
    head = _reader_entry(page, user)
    return head[:-1] + b"," + body[1:] if head else body


def _page_json(page: Page, user: User) -> Response:
    """A built page's JSON twin for `user`: serialised once and reused while the page is
    cached, with the requester's own "user" entry."""
    return Response(
        _with_reader(page, user, _page_body(page)),
        media_type="application/json",
        headers={"X-Security-Marking": MARKING},
    )


def _script_page(page: Page, user: User) -> str:
    """The JSON twin for `user` inside a <script> element (see `_script_json`)."""
    text = page.encoded.get("script")
    if text is None:
        text = page.encoded["script"] = _script_safe(_page_body(page).decode())
    head = _reader_entry(page, user)
    if not head:
        return str(text)
    return _script_safe(head[:-1].decode()) + "," + str(text)[1:]


def _data_json(page: Page, media_type: str) -> Response:
    """A page whose data is the document (GeoJSON), serialised once per built page."""
    body = page.encoded.get("data")
    if body is None:
        body = page.encoded["data"] = _dumps(page.data)
    features = page.data.get("features")
    if isinstance(features, list):
        audited.wrote(len(features))  # a GeoJSON download
    return Response(bytes(body), media_type=media_type, headers={"X-Security-Marking": MARKING})


def _json(payload: Any, media_type: str = "application/json") -> Response:
    if isinstance(payload, dict) and isinstance(payload.get("features"), list):
        audited.wrote(len(payload["features"]))  # a GeoJSON download
    return Response(
        json.dumps(payload, default=str),
        media_type=media_type,
        headers={"X-Security-Marking": MARKING},
    )


def _csv(frame: pl.DataFrame, filename: str) -> Response:
    buffer = io.StringIO()
    buffer.write(f"# {MARKING}\n")
    # a cell starting = + - @ would run as a formula in a spreadsheet: quote it
    frame = exports.neutralise_formulas(frame)
    frame.write_csv(buffer)
    audited.wrote(frame.height)
    return Response(
        buffer.getvalue(),
        media_type="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "X-Security-Marking": MARKING,
        },
    )


def _spark(values: list[float | None] | None) -> Markup:
    """A sparkline of monthly figures (a gap where a month has none), as the template's
    `spark` macro drew it: 10 units a month, the highest month at the top."""
    vals = list(values or [])
    nums = [v for v in vals if v is not None]
    if not nums:
        return Markup("")
    high = max(nums) or 1
    width = (len(vals) - 1) * 10 if len(vals) > 1 else 10
    label = ", ".join(_fmt(v) for v in vals)
    path, pen = "", False
    for i, v in enumerate(vals):
        if v is None:
            pen = False
        else:
            path += f"{'L' if pen else 'M'}{i * 10},{round(20 - 18 * v / high, 1)} "
            pen = True
    return Markup(
        f'<svg class="spark" viewBox="0 0 {width} 20" width="80" height="20" role="img" '
        f'aria-label="monthly police.uk harm: {escape(label)}">\n'
        f'<path d="{escape(path)}" fill="none" stroke="currentColor" stroke-width="1.5"/></svg>'
    )


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        if value != value:
            return "—"
        if value == 0:
            return "0"
        return f"{value:,.1f}" if abs(value) >= 1 else f"{value:.3f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


# -- issue 15: pages in plain words, links that survive signing in ---------------------------


STORE_UNAVAILABLE = (
    "The data store cannot be reached just now, so nothing could be read or saved. Try again "
    "in a minute; if it goes on, tell your system administrator."
)


def _page_message(exc: PlaceharmError) -> str:
    """What a page or the API says for a refusal: an unknown area in the reader's words,
    without the command line's advice (the CLI prints `str(exc)`)."""
    if isinstance(exc, UnknownArea):
        return labels.area_not_found(exc.by, ", ".join(exc.codes))
    if isinstance(exc, StoreUnavailable):  # the details (the server, the cause) are the log's
        log.warning("store unavailable: %s", exc)
        return STORE_UNAVAILABLE
    return str(exc)


def _login_again(error: str, next: str) -> str:
    """The sign-in form again after a refusal, keeping the whole `next` (its filters) as one
    encoded query value: unencoded, a shared link's '&from=..&to=..' fell off at the first '&'."""
    return "/login?" + urlencode({"error": error, "next": _safe_next(next)})


def _csv_stream(export: pages.RecordsExport, filename: str) -> Response:
    """Every row of a records export as CSV, written as it is read: the marking line, the
    header, then each batch with formulas neutralised as `_csv` does. The audit entry (written
    before the response is sent) names the first rows' identifiers and counts every row."""
    try:
        first = next(export.batches, None)
    except BaseException:
        _close(export.batches)
        raise
    shown = first if first is not None else pl.DataFrame(schema=dict.fromkeys(export.columns))
    audited.saw(Page("records", filename, {}, {"records": shown}))
    audited.wrote(export.total)

    def chunks() -> Iterator[str]:
        try:
            yield f"# {MARKING}\n"
            yield pl.DataFrame(schema=dict.fromkeys(export.columns, pl.String)).write_csv()
            if first is not None:
                yield _csv_rows(first)
            for frame in export.batches:
                yield _csv_rows(frame)
        finally:
            _close(export.batches)

    return StreamingResponse(
        chunks(),
        media_type="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "X-Security-Marking": MARKING,
            "X-Total-Rows": str(export.total),
        },
        # the store's read ends even if the response is never sent (its audit entry failed)
        background=BackgroundTask(_close, export.batches),
    )


def _csv_rows(frame: pl.DataFrame) -> str:
    """Rows as CSV without the header, a cell starting = + - @ quoted as in `_csv`."""
    frame = exports.neutralise_formulas(frame)
    return frame.write_csv(include_header=False)


def _close(frames: Iterator[Any]) -> None:
    close = getattr(frames, "close", None)
    if close is not None:
        close()
