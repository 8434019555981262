"""The web app: every page as HTML and as a JSON twin (the API), tables as CSV, maps as GeoJSON.

Run with `placeharm serve`. One DuckDB store, written only by this process (uploads and the
watched drop folder), read under a lock. Nothing is fetched from outside: MapLibre GL and
Plotly.js are served from the installed wheels.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import polars as pl
from fastapi import Depends, FastAPI, File, Form, Query, Request, UploadFile
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
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from placeharm.config import Settings
from placeharm.errors import DataError, NotFound, PermissionDenied, PlaceharmError
from placeharm.services import auth, basemap, exports, pages, policy
from placeharm.services.pages import MARKING, Filters, Page
from placeharm.services.policy import User
from placeharm.store.duckdb import DuckDBStore
from placeharm.web import authz
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
MAX_UPLOAD = 200 * 1024 * 1024
SESSION_RECHECK_S = 60.0  # a disabled account or ended session is noticed within a minute
# MapLibre draws in web workers made from blob: URLs; Plotly sets inline styles.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; worker-src 'self' blob:; child-src blob:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
TILE_CACHE = "private, max-age=86400"  # base map tiles: per user, kept a day
COOKIE = "placeharm_session"
VENDOR = {
    "maplibre-gl.js": ("maplibre", "srcjs/maplibre-gl.js", "text/javascript"),
    "maplibre-gl.css": ("maplibre", "srcjs/maplibre-gl.css", "text/css"),
    "plotly.min.js": ("plotly", "package_data/plotly.min.js", "text/javascript"),
}


class SecurityHeaders:
    """Headers on every response (a plain ASGI middleware: Starlette's `@app.middleware`
    costs a task and a stream per request)."""

    def __init__(self, app: ASGIApp, csp: str = CSP) -> None:
        self.app = app
        self.csp = csp

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
                headers["Referrer-Policy"] = "no-referrer"
            await send(message)

        await self.app(scope, receive, send_with_headers)


class PageCache:
    """Built pages by (page, user, arguments, data version): LRU, cleared when data changes.
    The user is part of the key, so one role's page is never served to another.

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


class _Pending:
    """A page being built, for the requests waiting on it."""

    __slots__ = ("done", "error", "page")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.page: Page | None = None
        self.error: BaseException | None = None


class State:
    """The store and what the live machinery needs, shared by every request."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = DuckDBStore(
            settings.db, threads=settings.threads, memory_limit=settings.memory_limit
        )
        self.write_lock = threading.RLock()
        self.changed = asyncio.Event()
        self.version = 0
        self.loop: asyncio.AbstractEventLoop | None = None
        self.importer = Importer(self)
        self.cache = PageCache()
        self.throttle = auth.LoginThrottle()
        self.sessions: dict[str, tuple[User, float]] = {}  # token -> (user, last checked)
        self.as_of: dict[str, Any] = {}
        self.watcher: DropFolder | None = None

    @contextmanager
    def read(self) -> Iterator[DuckDBStore]:
        """The store for reading: no lock, each thread reads through its own connection and
        sees committed data only, so page builds run side by side and never wait for an
        import."""
        yield self.store

    @contextmanager
    def write(self) -> Iterator[DuckDBStore]:
        """The store for writing: one writer at a time (imports, sign-ins, sign-outs)."""
        with self.write_lock:
            yield self.store

    def notify(self) -> None:
        """Tell every open page that data changed (called from any thread)."""
        self.version += 1
        self.cache.clear()
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self.changed.set)


def create_app(settings: Settings, drop_folder: Path | None = None) -> FastAPI:
    state = State(settings)
    with state.read() as store:
        state.as_of = pages.data_as_of(store)
    tiles = basemap.open_archive(settings)
    csp = _csp(basemap.tile_origin(settings))
    base_source = basemap.source(settings, tiles)
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.globals["MARKING"] = MARKING
    templates.env.globals["BASEMAP"] = _script_json(base_source) if base_source else None
    templates.env.filters["fmt"] = _fmt
    templates.env.globals["network_drawing"] = network_drawing

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        state.loop = asyncio.get_running_loop()
        if drop_folder is not None:
            state.watcher = DropFolder(state, drop_folder)
            state.watcher.start()
        try:
            yield
        finally:
            if state.watcher is not None:
                state.watcher.stop()
            state.store.close()
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
    app.mount(
        "/static", authz.PublicApp(StaticFiles(directory=str(HERE / "static"))), name="static"
    )

    def _remembered(token: str) -> User | None:
        cached = state.sessions.get(token)
        if cached is not None and time.monotonic() - cached[1] < SESSION_RECHECK_S:
            return cached[0]
        return None

    def _look_up(token: str) -> User | None:
        now = time.monotonic()
        with state.read() as store:
            user = auth.user_for(store, token)
        if user is None:
            state.sessions.pop(token, None)
        else:
            state.sessions[token] = (user, now)
        return user

    async def signed_in(request: Request) -> User:
        """The signed-in user, or 403. A session seen in the last minute is answered from
        memory on the event loop; otherwise the store is asked from a worker thread."""
        token = request.cookies.get(COOKIE)
        user = None
        if token:
            user = _remembered(token) or await run_in_threadpool(_look_up, token)
        if user is None:
            raise PermissionDenied("sign in first")
        return user

    def allowed(action: str) -> Any:
        """A route's policy: `dependencies=[allowed("ward")]` refuses (403, or the sign-in
        redirect for a page) anyone whose role may not do the action, before anything else
        runs, and names the action for the authorisation matrix (web/authz.py)."""
        return authz.requires(action, signed_in)

    @app.exception_handler(PlaceharmError)
    async def _errors(request: Request, exc: PlaceharmError) -> Response:
        status = (
            403 if isinstance(exc, PermissionDenied) else 404 if isinstance(exc, NotFound) else 400
        )
        wants_html = not request.url.path.startswith("/api") and "text/html" in request.headers.get(
            "accept", ""
        )
        if status == 403 and str(exc) == "sign in first" and wants_html:
            return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
        if wants_html:
            return templates.TemplateResponse(
                request,
                "error.html",
                {"status": status, "message": str(exc), "user": None},
                status_code=status,
            )
        return JSONResponse({"error": str(exc), "status": status}, status_code=status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_errors(request: Request, exc: StarletteHTTPException) -> Response:
        """Starlette's own refusals (no such path, a method not allowed, a malformed form)
        in the same shape as ours: an error page for a browser, else {"error", "status"}."""
        status, headers = exc.status_code, exc.headers
        if not request.url.path.startswith("/api") and "text/html" in request.headers.get(
            "accept", ""
        ):
            context = {"status": status, "message": str(exc.detail), "user": None}
            return templates.TemplateResponse(
                request, "error.html", context, status_code=status, headers=headers
            )
        return JSONResponse(
            {"error": str(exc.detail), "status": status}, status_code=status, headers=headers
        )

    def render(request: Request, template: str, page: Page, user: User) -> HTMLResponse:
        return templates.TemplateResponse(
            request,
            template,
            {
                "page": page,
                "user": user,
                "d": page.data,
                "t": page.tables,
                "json": _script_json(page.to_json()),
            },
        )

    def build(fn: Callable[..., Page], *args: Any) -> Page:
        """A page's data, built once per (page, user, arguments) until new data arrives."""
        version = state.version
        key = (fn.__name__, *map(repr, args), version)

        def builder() -> Page:
            with state.read() as store:
                return fn(store, *args)

        return state.cache.get_or_build(key, builder, keep=lambda: state.version == version)

    async def page_json(fn: Callable[..., Page], *args: Any) -> Response:
        """A page's JSON twin. A cached page is answered on the event loop; a page to build
        (or to serialise the first time) goes to a worker thread."""
        key = (fn.__name__, *map(repr, args), state.version)
        page = state.cache.get(key)
        if page is None or page.json_bytes is None:
            return await run_in_threadpool(lambda: _page_json(build(fn, *args)))
        return _page_json(page)

    @app.get(
        "/api/openapi.json", dependencies=[allowed("api_description")], include_in_schema=False
    )
    def openapi(user: User = Depends(signed_in)) -> Any:
        return app.openapi()

    app.add_middleware(SecurityHeaders, csp=csp)

    # -- sign in -------------------------------------------------------------------------
    @app.get(
        "/login", dependencies=[authz.PUBLIC], response_class=HTMLResponse, include_in_schema=False
    )
    def login_form(request: Request, next: str = "/overview", error: str | None = None) -> Any:
        return templates.TemplateResponse(
            request, "login.html", {"next": _safe_next(next), "error": error, "user": None}
        )

    @app.post("/login", dependencies=[authz.PUBLIC], include_in_schema=False)
    def login(
        username: str = Form(...), password: str = Form(...), next: str = Form("/overview")
    ) -> Response:
        try:
            state.throttle.check(username)
            with state.read() as store:
                record = store.user(username)
                real = store.real_soc_records() > 0
            auth.check_password(record, password, real)  # slow: outside the store lock
            with state.write() as store:
                token = auth.start_session(store, username)
        except PermissionDenied:
            state.throttle.failed(username)
            return RedirectResponse(f"/login?error=1&next={_safe_next(next)}", status_code=303)
        state.throttle.succeeded(username)
        response = RedirectResponse(_safe_next(next), status_code=303)
        response.set_cookie(
            COOKIE,
            token,
            httponly=True,
            samesite="strict",
            secure=settings.secure_cookie,
            max_age=auth.SESSION_HOURS * 3600,
        )
        return response

    @app.post("/logout", dependencies=[authz.PUBLIC], include_in_schema=False)
    def logout(request: Request) -> Response:
        token = request.cookies.get(COOKIE)
        if token:
            state.sessions.pop(token, None)
        with state.write() as store:
            auth.logout(store, token)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE)
        return response

    @app.get("/", dependencies=[authz.PUBLIC], include_in_schema=False)
    def home() -> Response:
        return RedirectResponse("/overview", status_code=303)

    # -- overview --------------------------------------------------------------------------
    async def page_filters(
        by: Annotated[str | None, Query(description="area set: ward (default) or lsoa")] = None,
        first: Annotated[
            str | None, Query(alias="from", description="first month, YYYY-MM")
        ] = None,
        to: Annotated[str | None, Query(description="last month, YYYY-MM")] = None,
        index: Annotated[str | None, Query(description="harm index (default css)")] = None,
        measures: Annotated[list[str] | None, Query(description="SOC measure ids")] = None,
        types: Annotated[list[str] | None, Query(description="police.uk crime types")] = None,
    ) -> Filters:
        """The filters in the URL (`from` is a Python keyword, hence the alias; `measures` and
        `types` may repeat, as a form of checkboxes sends them, or be comma-separated)."""
        return Filters.parse(by, first, to, index, measures, types)

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
    ) -> Any:
        return render(request, "overview.html", build(pages.overview, user, f), user)

    @app.get("/api/overview", dependencies=[allowed("overview")])
    async def overview_api(
        user: User = Depends(signed_in),
        f: Filters = Depends(page_filters),
    ) -> Any:
        return await page_json(pages.overview, user, f)

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
        return _json(build(pages.area_geojson, user, f).data, "application/geo+json")

    @app.get(
        "/api/overview.gpkg",
        dependencies=[allowed("overview")],
        response_class=GeoPackageResponse,
    )
    def overview_gpkg(
        user: User = Depends(signed_in),
        f: Filters = Depends(page_filters),
    ) -> Response:
        page = build(pages.area_geojson, user, f)
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
        page = build(pages.ward, user, code, f)
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
        return _json(build(pages.ward_geojson, user, code, f).data, "application/geo+json")

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
        page = build(pages.ward_geojson, user, code, f)
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
    def chb_page(request: Request, site: str, user: User = Depends(signed_in)) -> Any:
        return render(request, "chb.html", build(pages.chb, user, site), user)

    @app.get("/api/chb/{site}", dependencies=[allowed("chb")])
    async def chb_api(site: str, user: User = Depends(signed_in)) -> Any:
        return await page_json(pages.chb, user, site)

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
        built = build(pages.records, user, kind, f, q, sort, desc, 1, area, 1000)
        return _csv(built.tables["records"], f"{kind}.csv")

    # -- nominals and groups ---------------------------------------------------------------
    @app.get(
        "/nominal/{nominal_id}",
        dependencies=[allowed("nominal")],
        response_class=HTMLResponse,
        include_in_schema=False,
    )
    def nominal_page(request: Request, nominal_id: str, user: User = Depends(signed_in)) -> Any:
        return render(request, "nominal.html", build(pages.nominal, user, nominal_id), user)

    @app.get("/api/nominal/{nominal_id}", dependencies=[allowed("nominal")])
    async def nominal_api(nominal_id: str, user: User = Depends(signed_in)) -> Any:
        return await page_json(pages.nominal, user, nominal_id)

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

    # -- help, admin, upload, live ---------------------------------------------------------
    @app.get(
        "/help",
        dependencies=[allowed("help")],
        response_class=HTMLResponse,
        include_in_schema=False,
    )
    def help_page(request: Request, user: User = Depends(signed_in)) -> Any:
        policy.require(user, "help")
        with state.read() as store:
            data = pages.data_as_of(store) | {"record_kinds": policy.record_kinds(user)}
        page = Page("help", "Help: how to use placeharm", data)
        return render(request, "help.html", page, user)

    @app.get(
        "/admin",
        dependencies=[allowed("admin")],
        response_class=HTMLResponse,
        include_in_schema=False,
    )
    def admin_page(request: Request, user: User = Depends(signed_in)) -> Any:
        page = build(_admin, user)
        return render(request, "admin.html", page, user)

    @app.get("/api/admin", dependencies=[allowed("admin")])
    def admin_api(user: User = Depends(signed_in)) -> Any:
        return _json(build(_admin, user).to_json())

    @app.post("/api/upload", dependencies=[allowed("upload")])
    def upload(
        kind: str = Form(...), file: UploadFile = File(...), user: User = Depends(signed_in)
    ) -> Any:
        policy.require(user, "upload")
        name = Path(file.filename or "").name
        if name in ("", ".", ".."):
            name = "upload.csv"
        content = file.file.read(MAX_UPLOAD + 1)
        if len(content) > MAX_UPLOAD:
            raise DataError(f"the file is over {MAX_UPLOAD // 2**20} MB; use the drop folder")
        result = state.importer.import_bytes(kind, name, content)
        return _json(result)

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
                if state.version != seen:
                    seen = state.version
                    yield f"event: data\ndata: {json.dumps(state.as_of)}\n\n"
                if time.monotonic() - checked > 15:
                    checked = time.monotonic()
                    if await run_in_threadpool(_session_alive, token) is None:
                        yield "event: signed-out\ndata: {}\n\n"
                        return
                    yield ": keep-alive\n\n"
                await asyncio.sleep(0.1)

        return StreamingResponse(
            stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
        )

    def _session_alive(token: str | None) -> User | None:
        with state.read() as store:
            return auth.user_for(store, token)

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


def _admin(store: DuckDBStore, user: User) -> Page:
    policy.require(user, "admin")
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
        pages.data_as_of(store) | {"record_kinds": policy.record_kinds(user)},
        {
            "imports": imports.drop([c for c in ("file_sha256",) if c in imports.columns]),
            "quarantine": summary,
            "users": store.users(),
        },
    )


def _csp(tile_origin: str | None) -> str:
    """The Content-Security-Policy: the force tile server's origin is allowed only when set."""
    if tile_origin is None:
        return CSP
    return CSP.replace("img-src 'self'", f"img-src 'self' {tile_origin}").replace(
        "connect-src 'self'", f"connect-src 'self' {tile_origin}"
    )


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
    return FileResponse(
        path,
        media_type=exports.MEDIA_TYPE,
        filename=filename,
        headers={"X-Security-Marking": MARKING},
        background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True),
    )


def _script_json(payload: Any) -> str:
    """JSON safe inside a <script> element: no '<', '>' or '&' characters at all."""
    text = json.dumps(payload, default=str)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _safe_next(target: str) -> str:
    """Only a path on this site (never another host) after signing in."""
    return target if target.startswith("/") and not target.startswith("//") else "/overview"


def _page_json(page: Page) -> Response:
    """A built page's JSON twin, serialised once and reused while the page is cached."""
    if page.json_bytes is None:
        page.json_bytes = json.dumps(page.to_json(), default=str).encode()
    return Response(
        page.json_bytes, media_type="application/json", headers={"X-Security-Marking": MARKING}
    )


def _json(payload: Any, media_type: str = "application/json") -> Response:
    return Response(
        json.dumps(payload, default=str),
        media_type=media_type,
        headers={"X-Security-Marking": MARKING},
    )


def _csv(frame: pl.DataFrame, filename: str) -> Response:
    buffer = io.StringIO()
    buffer.write(f"# {MARKING}\n")
    # a cell starting = + - @ would run as a formula in a spreadsheet: quote it
    frame = frame.with_columns(pl.col(pl.String).str.replace(r"^([=+\-@\t\r])", "'$1"))
    frame.write_csv(buffer)
    return Response(
        buffer.getvalue(),
        media_type="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "X-Security-Marking": MARKING,
        },
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
