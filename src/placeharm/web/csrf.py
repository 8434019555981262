"""Cross-site request forgery (CSRF) protection and request body limits: one ASGI middleware
in front of every route, so a new route is covered without code of its own (issue 12).

Every state-changing request (any method but GET, HEAD, OPTIONS, TRACE) must

1. come from this site: its `Origin` header, else its `Referer`, names this site's own origin
   (scheme, host, port). A request with neither is accepted only when the token comes in the
   `X-CSRF-Token` header, which a browser sends cross-site only after a CORS preflight that
   placeharm never grants; so a cross-site form, which cannot set headers, always needs
   an Origin or Referer and is refused when it is not ours;
2. carry the CSRF token: the `X-CSRF-Token` header, or a `csrf_token` form field. The token
   is an HMAC of the session token (signed in), or of a random pre-session secret held in an
   HttpOnly, SameSite=Strict cookie (signing in: login CSRF), so only pages served to this
   browser know it and it needs no server-side storage.

Bodies are capped before and while they are read: `/api/upload` at the `upload_max_mb`
setting (its route streams the body itself), everything else at FORM_MAX_BYTES. A refusal is
403 (CSRF) or 413 (too large) with a message saying what to do.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import AsyncGenerator, Callable
from urllib.parse import urlsplit

from starlette.datastructures import FormData, Headers, MutableHeaders
from starlette.formparsers import FormParser, MultiPartException, MultiPartParser
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from placeharm.errors import TooLarge

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
FIELD = "csrf_token"  # the hidden form field
HEADER = "X-CSRF-Token"  # the header our JavaScript sends
PRE_SESSION_COOKIE = "placeharm_csrf"
PRE_SESSION_COOKIE_TLS = "__Host-placeharm_csrf"  # __Host-: Secure, Path=/, no Domain
FORM_MAX_BYTES = 256 * 1024  # any body but an upload's: forms are a few hundred bytes
# Paths that must accept a cross-site POST, each with its own protection (e.g. an OpenID
# Connect form_post callback, checked by its `state`). None today: add one only with a reason.
EXEMPT: frozenset[str] = frozenset()
_NEW_SECRET = "placeharm_csrf_new_secret"  # scope["state"]: a pre-session secret to set
_MESSAGE = b"placeharm csrf v1"

ErrorRenderer = Callable[[Request, int, str], Response]


def token_for(secret: str) -> str:
    """The CSRF token bound to `secret` (a session token or a pre-session secret)."""
    digest = hmac.new(secret.encode(), _MESSAGE, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class Csrf:
    """Which cookies bind the token, and the token a page should carry."""

    def __init__(self, session_cookie: str, tls: bool) -> None:
        self.session_cookie = session_cookie
        self.tls = tls
        self.pre_session_cookie = PRE_SESSION_COOKIE_TLS if tls else PRE_SESSION_COOKIE

    def _secrets(self, cookies: dict[str, str]) -> list[str]:
        return [
            s for s in (cookies.get(self.session_cookie), cookies.get(self.pre_session_cookie)) if s
        ]

    def token(self, request: Request) -> str:
        """The token for the page being rendered (a template's `csrf_token`). Without a
        session or pre-session cookie, a new pre-session secret is made and the middleware
        sets its cookie on this response."""
        found = self._secrets(request.cookies)
        if found:
            return token_for(found[0])
        state = request.scope.setdefault("state", {})
        if _NEW_SECRET not in state:
            state[_NEW_SECRET] = secrets.token_urlsafe(32)
        return token_for(str(state[_NEW_SECRET]))

    def valid(self, token: str | None, cookies: dict[str, str]) -> bool:
        if not token:
            return False
        return any(hmac.compare_digest(token, token_for(s)) for s in self._secrets(cookies))

    def pre_session_cookie_header(self, secret: str) -> str:
        secure = "; Secure" if self.tls else ""
        return f"{self.pre_session_cookie}={secret}; Path=/; HttpOnly; SameSite=Strict{secure}"


class RequestGuard:
    """The middleware: body limits on every request, the CSRF checks on state-changing ones.

    `stream_limits` maps a path whose route reads the body itself (streaming) to its cap;
    there the token must come in the header, since the body is not read here.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        csrf: Csrf,
        stream_limits: dict[str, int],
        render: ErrorRenderer,
    ) -> None:
        self.app = app
        self.csrf = csrf
        self.stream_limits = stream_limits
        self.render = render

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        path = str(scope.get("path", ""))
        headers = Headers(scope=scope)
        streamed = path in self.stream_limits
        limit = self.stream_limits.get(path, FORM_MAX_BYTES)

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start" and _NEW_SECRET in state:
                cookie = self.csrf.pre_session_cookie_header(str(state[_NEW_SECRET]))
                MutableHeaders(scope=message).append("set-cookie", cookie)
            await send(message)

        async def refuse(status: int, message: str) -> None:
            response = self.render(Request(scope), status, message)
            await response(scope, receive, send_with_cookie)

        declared = _content_length(headers)
        unsafe = scope["method"] not in SAFE_METHODS and path not in EXEMPT
        if unsafe:
            problem = self._origin_problem(scope, headers)
            if problem:
                await refuse(403, problem)
                return
        if declared is not None and declared > limit:
            await refuse(413, _too_large_message(limit, streamed))
            return
        if not unsafe or streamed:
            if unsafe and not self.csrf.valid(headers.get(HEADER), Request(scope).cookies):
                await refuse(403, _token_message(header_only=True))
                return
            await self.app(scope, _counting(receive, limit, streamed), send_with_cookie)
            return
        # a small body: read it here (bounded), find the token, then hand the body on
        try:
            body = await _read_body(receive, limit)
        except TooLarge:
            await refuse(413, _too_large_message(limit, streamed))
            return
        token = headers.get(HEADER) or await _form_token(headers, body)
        if not self.csrf.valid(token, Request(scope).cookies):
            await refuse(403, _token_message(header_only=False))
            return
        await self.app(scope, _replay(body, receive), send_with_cookie)

    def _origin_problem(self, scope: Scope, headers: Headers) -> str | None:
        """Why the request may be cross-site, or None when it comes from this site."""
        own = _netloc(headers.get("host", ""), "https" if self.csrf.tls else scope["scheme"])
        claimed = headers.get("origin") or headers.get("referer")
        if claimed is None:
            if headers.get(HEADER):  # only same-origin script or a non-browser client sends it
                return None
            return (
                "refused: the request did not say which site it came from (no Origin or "
                f"Referer header); send the {HEADER} header from a script, or use the form on "
                "placeharm's own page"
            )
        parts = urlsplit(claimed)
        schemes = ("https",) if self.csrf.tls else ("http", "https")
        if own and parts.scheme in schemes and _netloc(parts.netloc, parts.scheme) == own:
            return None
        return (
            "refused: the request came from another site (cross-site request forgery "
            "protection); use placeharm's own pages"
        )


def _netloc(netloc: str, scheme: str) -> str | None:
    """host[:port] in lower case without the scheme's default port; None if malformed."""
    try:
        parts = urlsplit(f"//{netloc}")
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not host or parts.username is not None or parts.path:
        return None
    if ":" in host:
        host = f"[{host}]"
    default = {"http": 80, "https": 443}.get(scheme)
    return host if port is None or port == default else f"{host}:{port}"


def _content_length(headers: Headers) -> int | None:
    value = headers.get("content-length")
    if value is None:
        return None
    try:
        return max(0, int(value))
    except ValueError:
        return None  # counted while read instead


def _too_large_message(limit: int, streamed: bool) -> str:
    if streamed:
        return (
            f"the upload is over {limit / 2**20:g} MB (setting upload_max_mb); nothing was "
            "imported. Put large files in the drop folder instead"
        )
    return f"the request body is over {limit // 1024} KB; nothing was done"


def _token_message(header_only: bool) -> str:
    where = f"the {HEADER} header" if header_only else f"the {FIELD} field or {HEADER} header"
    return (
        f"refused: the security token ({where}) is missing or out of date (cross-site request "
        "forgery protection); reload the page and try again"
    )


def _counting(receive: Receive, limit: int, streamed: bool) -> Receive:
    """`receive`, raising TooLarge once the body passes `limit` bytes (a chunked body has no
    Content-Length to check first). The route's error handler turns it into 413."""
    seen = 0

    async def counted() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise TooLarge(_too_large_message(limit, streamed))
        return message

    return counted


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break  # the client went away: the route sees an empty body
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise TooLarge("over the limit")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # e.g. http.disconnect

    return replayed


async def _form_token(headers: Headers, body: bytes) -> str | None:
    """The csrf_token field of a urlencoded or multipart form body (already bounded)."""

    async def stream() -> AsyncGenerator[bytes, None]:
        yield body

    content_type = headers.get("content-type", "")
    parser: FormParser | MultiPartParser
    if content_type.startswith("application/x-www-form-urlencoded"):
        parser = FormParser(headers, stream())
    elif content_type.startswith("multipart/form-data"):
        parser = MultiPartParser(headers, stream(), max_files=1, max_fields=50)
    else:
        return None
    form: FormData | None = None
    try:
        form = await parser.parse()
        value = form.get(FIELD)
    except (MultiPartException, KeyError, ValueError):
        return None
    finally:
        if form is not None:
            await form.close()
    return value if isinstance(value, str) else None
