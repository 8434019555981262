"""Single sign-on end to end: a real OpenID Connect provider (oidc-provider-mock, a Flask app
built on authlib's authorisation server) on a loopback port, placeharm served by uvicorn on
another, and an httpx client in the browser's place following every redirect by hand.

Nothing is mocked: the provider issues real codes and RS256-signed ID tokens from its own key,
placeharm fetches its discovery document and JWKS over HTTP, and the test reads what went over
the wire (the authorize URL, the token request) to check PKCE."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
import oidc_provider_mock
import pytest
import uvicorn
import werkzeug.serving

from placeharm import open_store
from placeharm.config import load_settings
from placeharm.errors import ConfigError, DataError, PermissionDenied
from placeharm.services import auth, demo, sso
from placeharm.services.policy import Role
from placeharm.store import AnyStore
from placeharm.web.app import COOKIE, create_app

CLIENT_ID = "placeharm-test"
CLIENT_SECRET = "a-test-client-secret-0123456789"
GROUPS = {
    "grp-analysts": "analyst",
    "grp-officers": "officer",
    "grp-admins": "admin",
    "grp-partners": "partner",
    "grp-auditors": "auditor",
}
# local accounts' passwords pass the password rules (services/passwords.py)
ALICE_PASSWORD = "quartz-lantern-meadow-orbit"
BOB_PASSWORD = "velvet-harbour-cactus-nimbus"


class _Recorder:
    """WSGI middleware in front of the provider: keeps each token request's form body."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app
        self.token_requests: list[dict[str, list[str]]] = []

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("PATH_INFO") == "/oauth2/token":
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            self.token_requests.append(parse_qs(body.decode()))
            environ["wsgi.input"] = io.BytesIO(body)
        return self.app(environ, start_response)


class Provider:
    def __init__(self, url: str, recorder: _Recorder) -> None:
        self.url = url
        self.recorder = recorder

    def set_user(self, sub: str, claims: dict[str, Any]) -> None:
        """The claims the provider puts in this subject's ID token (its REST API)."""
        response = httpx.put(f"{self.url}/users/{sub}", json=claims)
        assert response.status_code == 204, response.text


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    recorder = _Recorder(oidc_provider_mock.app(require_nonce=True))
    server = werkzeug.serving.make_server("127.0.0.1", 0, recorder, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    try:
        yield Provider(f"http://127.0.0.1:{server.server_port}", recorder)
    finally:
        server.shutdown()
        thread.join(5)
        server.server_close()


@contextmanager
def _serve(make_app: Callable[[str], Any]) -> Iterator[tuple[str, Any]]:
    """placeharm under uvicorn on a free loopback port (its URL is needed for the settings)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    app = make_app(base)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]})
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        yield base, app
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


def _settings(db: str, base: str, provider: Provider, **extra: Any) -> Any:
    values: dict[str, Any] = {
        "db": db,
        "oidc_issuer": provider.url,
        "oidc_provider_name": "Test Force Entra ID",
        "oidc_client_id": CLIENT_ID,
        "oidc_client_secret": CLIENT_SECRET,
        "oidc_redirect_url": f"{base}/auth/callback",
        "oidc_role_map": GROUPS,
    }
    return load_settings(**(values | extra))


@pytest.fixture(scope="module")
def store_path(module_db_at: Callable[[str], str]) -> str:
    """The demo store with a local account, on the engine under test, for the module."""
    path = module_db_at("sso")
    with open_store(path) as store:
        demo.build_demo(store)
        auth.create_user(store, "alice", "Alice (local analyst)", "analyst", ALICE_PASSWORD)
    return path


@pytest.fixture(scope="module")
def site(store_path: str, provider: Provider) -> Iterator[tuple[str, Any]]:
    with _serve(lambda base: create_app(_settings(store_path, base, provider))) as served:
        yield served


def _browser() -> httpx.Client:
    return httpx.Client(follow_redirects=False, timeout=30)


def _to_provider(
    browser: httpx.Client, base: str, provider: Provider, next_path: str = "/overview"
) -> httpx.Response:
    """Sign-in up to the provider's login form; returns placeharm's redirect to it."""
    start = browser.get(f"{base}/login/sso", params={"next": next_path})
    assert start.status_code == 303, start.text
    assert start.headers["location"].startswith(f"{provider.url}/oauth2/authorize?")
    form = browser.get(start.headers["location"])
    assert form.status_code == 200 and 'name="sub"' in form.text
    return start


def _at_provider(browser: httpx.Client, authorize_url: str, sub: str) -> str:
    """The user signs in at the provider as `sub`; returns the callback URL it redirects to."""
    answer = browser.post(authorize_url, data={"sub": sub})
    assert answer.status_code == 302, answer.text
    return answer.headers["location"]


def sso_sign_in(
    browser: httpx.Client,
    base: str,
    provider: Provider,
    sub: str,
    claims: dict[str, Any],
    next_path: str = "/overview",
) -> httpx.Response:
    """The whole flow as a browser does it; returns the callback's response."""
    provider.set_user(sub, claims)
    start = _to_provider(browser, base, provider, next_path)
    callback = _at_provider(browser, start.headers["location"], sub)
    assert callback.startswith(f"{base}/auth/callback?")
    return browser.get(callback)


def _page_token(browser: httpx.Client, url: str) -> str:
    """The CSRF token a page carries (its csrf-token meta), as a browser's form or script has."""
    page = browser.get(url, headers={"accept": "text/html"})
    found = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text)
    assert found, page.text
    return found.group(1)


def _password_sign_in(
    browser: httpx.Client, base: str, username: str, password: str
) -> httpx.Response:
    """Submit the sign-in form as a browser does: the login page's CSRF token, and Origin."""
    token = _page_token(browser, f"{base}/login")
    return browser.post(
        f"{base}/login",
        data={"username": username, "password": password, "csrf_token": token},
        headers={"Origin": base},
    )


def _justify(browser: httpx.Client, base: str, purpose: str) -> None:
    """State a justification for `purpose`, as the justification form's script does."""
    headers = {"Origin": base, "X-CSRF-Token": _page_token(browser, f"{base}/help")}
    data = {"purpose": purpose, "reason": "investigation", "text": "sso test"}
    stated = browser.post(f"{base}/api/justification", data=data, headers=headers)
    assert stated.status_code == 200, stated.text


def _set_cookies(response: httpx.Response) -> dict[str, str]:
    return {h.split("=", 1)[0]: h for h in response.headers.get_list("set-cookie")}


def _store(app: Any) -> AnyStore:
    store: AnyStore = app.state.placeharm.store
    return store


def _account(app: Any, username: str) -> dict[str, Any] | None:
    rows = _store(app)._frame(
        "SELECT username, display_name, role, auth_source, external_issuer, external_subject, "
        "password_hash FROM users WHERE username = ?",
        [username],
    )
    return rows.to_dicts()[0] if rows.height else None


def _sessions(app: Any, username: str) -> int:
    row = _store(app)._one("SELECT count(*) FROM sessions WHERE username = ?", [username])
    assert row is not None
    return int(row[0])


# -- the happy path ------------------------------------------------------------------------------


def test_sso_signs_in_with_the_role_mapped_from_the_group(site, provider: Provider) -> None:
    base, app = site
    with _browser() as browser:
        done = sso_sign_in(
            browser,
            base,
            provider,
            "sub-analyst-1",
            {
                "preferred_username": "jo.bloggs@force.police.uk",
                "name": "Jo Bloggs",
                "email": "jo.bloggs@force.police.uk",
                "groups": ["grp-analysts", "some-unrelated-group"],
            },
            next_path="/help",
        )
        assert done.status_code == 200, done.text
        # the callback page moves on to `next` by itself, from this site (see signed_in.html)
        assert '<meta http-equiv="refresh" content="0; url=/help">' in done.text
        assert "Signed in as Jo Bloggs" in done.text
        cookies = _set_cookies(done)
        session = cookies[COOKIE].lower()
        assert "httponly" in session and "samesite=strict" in session
        assert browser.cookies.get(COOKIE, domain="127.0.0.1")
        # the flow cookie is spent at the callback
        assert sso.FLOW_COOKIE in cookies and "max-age=0" in cookies[sso.FLOW_COOKIE].lower()
        assert browser.cookies.get(sso.FLOW_COOKIE) is None

        overview = browser.get(f"{base}/api/overview")
        assert overview.status_code == 200
        assert overview.json()["kind"] == "overview" and overview.json()["tables"]["areas"]
        assert browser.get(f"{base}/api/admin").status_code == 403
        assert browser.get(f"{base}/admin", headers={"accept": "text/html"}).status_code == 403
        # the nominal explorer's data is open to analysts, once they say why they download
        # records that name people (the s62 audit log)
        nominals = {"kind": "nominals"}
        assert browser.get(f"{base}/api/records", params=nominals).status_code == 428
        _justify(browser, base, "export")
        assert browser.get(f"{base}/api/records", params=nominals).status_code == 200

    account = _account(app, "jo.bloggs@force.police.uk")
    assert account is not None
    assert account["role"] == "analyst"
    assert account["display_name"] == "Jo Bloggs"
    assert account["auth_source"] == "oidc"
    assert (account["external_issuer"], account["external_subject"]) == (
        provider.url,
        "sub-analyst-1",
    )
    assert account["password_hash"] == auth.NO_PASSWORD
    # no token or code reaches the account row
    assert all("eyJ" not in str(v) for v in account.values())


def test_an_sso_auditor_lands_on_the_audit_log_and_sees_no_data(site, provider) -> None:
    base, app = site
    with _browser() as browser:
        claims = {"preferred_username": "audrey", "groups": ["grp-auditors"]}
        done = sso_sign_in(browser, base, provider, "sub-auditor", claims)
        assert done.status_code == 200, done.text
        assert '<meta http-equiv="refresh" content="0; url=/audit">' in done.text
        assert browser.get(f"{base}/api/audit").status_code == 200
        assert browser.get(f"{base}/api/overview").status_code == 403
        # and an auditor who is also in a data group is that data role, without the log
        both = {"preferred_username": "audrey.analyst", "groups": ["grp-auditors", "grp-analysts"]}
        assert sso_sign_in(browser, base, provider, "sub-both", both).status_code == 200
        assert browser.get(f"{base}/api/overview").status_code == 200
        assert browser.get(f"{base}/api/audit").status_code == 403
    assert _account(app, "audrey")["role"] == "auditor"  # type: ignore[index]
    assert _account(app, "audrey.analyst")["role"] == "analyst"  # type: ignore[index]


def test_flow_cookie_is_lax_short_lived_and_scoped_to_the_callback(site, provider) -> None:
    base, _ = site
    with _browser() as browser:
        start = _to_provider(browser, base, provider)
    flow = _set_cookies(start)[sso.FLOW_COOKIE].lower()
    assert "httponly" in flow
    # Lax: the provider's redirect back is a cross-site top-level GET, which Strict would drop
    assert "samesite=lax" in flow
    assert "path=/auth/callback" in flow
    assert f"max-age={sso.FLOW_SECONDS}" in flow


def test_authorize_request_uses_pkce_s256_state_and_nonce(site, provider) -> None:
    base, _ = site
    provider.set_user("sub-pkce", {"preferred_username": "pkce.user", "groups": ["grp-officers"]})
    before = len(provider.recorder.token_requests)
    with _browser() as browser:
        start = _to_provider(browser, base, provider)
        query = parse_qs(urlsplit(start.headers["location"]).query)
        assert query["response_type"] == ["code"]
        assert query["client_id"] == [CLIENT_ID]
        assert query["redirect_uri"] == [f"{base}/auth/callback"]
        assert "openid" in query["scope"][0].split()
        assert query["code_challenge_method"] == ["S256"]
        assert len(query["state"][0]) >= 32 and len(query["nonce"][0]) >= 32
        challenge = query["code_challenge"][0]

        callback = _at_provider(browser, start.headers["location"], "sub-pkce")
        assert browser.get(callback).status_code == 200

    token_request = provider.recorder.token_requests[before]
    assert token_request["grant_type"] == ["authorization_code"]
    verifier = token_request["code_verifier"][0]
    assert 43 <= len(verifier) <= 128
    # RFC 7636 4.2: the challenge is BASE64URL(SHA256(verifier)) without padding
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    assert base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == challenge
    # and the secret never travels in the browser's URL
    assert CLIENT_SECRET not in start.headers["location"]
    assert verifier not in start.headers["location"]


def test_highest_role_wins_and_the_role_is_re_evaluated_at_each_sign_in(site, provider) -> None:
    base, app = site
    claims = {"preferred_username": "sam.admin", "groups": ["grp-officers", "grp-admins"]}
    with _browser() as browser:
        assert sso_sign_in(browser, base, provider, "sub-sam", claims).status_code == 200
        assert browser.get(f"{base}/api/admin").status_code == 200
    assert _account(app, "sam.admin")["role"] == "admin"  # type: ignore[index]

    # removed from the admins group at the provider: the next sign-in is an officer's
    claims = {"preferred_username": "sam.admin", "groups": ["grp-officers"], "name": "Sam Smith"}
    with _browser() as browser:
        assert sso_sign_in(browser, base, provider, "sub-sam", claims).status_code == 200
        assert browser.get(f"{base}/api/admin").status_code == 403
        assert browser.get(f"{base}/api/overview").status_code == 200
    account = _account(app, "sam.admin")
    assert account is not None and account["role"] == "officer"
    assert account["display_name"] == "Sam Smith"


def test_the_account_name_is_fixed_at_the_first_sign_in(site, provider) -> None:
    """Keyed by (issuer, sub): a rename at the provider neither moves nor copies the account."""
    base, app = site
    with _browser() as browser:
        first = {"preferred_username": "pat.first", "groups": ["grp-partners"]}
        assert sso_sign_in(browser, base, provider, "sub-pat", first).status_code == 200
        renamed = {"preferred_username": "pat.renamed", "groups": ["grp-partners"]}
        assert sso_sign_in(browser, base, provider, "sub-pat", renamed).status_code == 200
    assert _account(app, "pat.first") is not None
    assert _account(app, "pat.renamed") is None


# -- refusals --------------------------------------------------------------------------------------


def test_a_user_in_no_mapped_group_is_refused(site, provider) -> None:
    base, app = site
    with _browser() as browser:
        claims = {"preferred_username": "no.group", "groups": ["grp-canteen", "grp-all-staff"]}
        refused = sso_sign_in(browser, base, provider, "sub-nogroup", claims)
        assert refused.status_code == 403
        assert "none of the groups allowed to use placeharm" in refused.text
        assert "Traceback" not in refused.text and "eyJ" not in refused.text
        assert COOKIE not in _set_cookies(refused)
        assert browser.get(f"{base}/api/overview").status_code == 403
        # no groups claim at all: the same refusal
        refused = sso_sign_in(
            browser, base, provider, "sub-nogroup2", {"preferred_username": "no.claim"}
        )
        assert refused.status_code == 403 and "none of the groups" in refused.text
    assert _account(app, "no.group") is None and _account(app, "no.claim") is None


def test_losing_every_mapped_group_ends_the_existing_sessions(site, provider) -> None:
    base, app = site
    with _browser() as browser:
        claims = {"preferred_username": "leaver", "groups": ["grp-officers"]}
        assert sso_sign_in(browser, base, provider, "sub-leaver", claims).status_code == 200
    assert _sessions(app, "leaver") == 1
    with _browser() as browser:
        claims = {"preferred_username": "leaver", "groups": []}
        assert sso_sign_in(browser, base, provider, "sub-leaver", claims).status_code == 403
    assert _sessions(app, "leaver") == 0


def test_a_tampered_state_is_refused(site, provider) -> None:
    base, _ = site
    provider.set_user("sub-state", {"preferred_username": "state.user", "groups": ["grp-admins"]})
    with _browser() as browser:
        start = _to_provider(browser, base, provider)
        callback = _at_provider(browser, start.headers["location"], "sub-state")
        parts = urlsplit(callback)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        query["state"] = query["state"][:-2] + ("AA" if not query["state"].endswith("AA") else "BB")
        tampered = urlunsplit(parts._replace(query=urlencode(query)))
        refused = browser.get(tampered)
        assert refused.status_code == 400
        assert "does not belong to the sign-in this browser started" in refused.text
        assert COOKIE not in _set_cookies(refused)
        assert query["code"] not in refused.text
        assert browser.get(f"{base}/api/overview").status_code == 403


def test_a_callback_from_another_browser_or_a_replay_is_refused(site, provider) -> None:
    """Login CSRF: an attacker's own code and state, sent to a victim's browser, has no flow
    cookie there; and a callback already used cannot be used again."""
    base, _ = site
    provider.set_user("sub-csrf", {"preferred_username": "attacker", "groups": ["grp-admins"]})
    with _browser() as attacker:
        start = _to_provider(attacker, base, provider)
        callback = _at_provider(attacker, start.headers["location"], "sub-csrf")
    with _browser() as victim:
        refused = victim.get(callback)
        assert refused.status_code == 400
        assert "not started in this browser" in refused.text
        assert COOKIE not in _set_cookies(refused)

    with _browser() as browser:
        start = _to_provider(browser, base, provider)
        callback = _at_provider(browser, start.headers["location"], "sub-csrf")
        assert browser.get(callback).status_code == 200
        browser.cookies.clear()
        assert browser.get(callback).status_code == 400


def test_a_refusal_at_the_provider_is_a_clear_page(site, provider) -> None:
    base, _ = site
    with _browser() as browser:
        start = _to_provider(browser, base, provider)
        denied = browser.post(start.headers["location"], data={"action": "deny"})
        assert denied.status_code == 302
        refused = browser.get(denied.headers["location"])
        assert refused.status_code == 403
        assert "Test Force Entra ID did not sign you in (access_denied)" in refused.text
        # a made-up error description is never shown
        forged = browser.get(
            f"{base}/auth/callback",
            params={"error": "<b>call 0800</b>", "error_description": "call 0800 123"},
        )
        assert forged.status_code == 403
        assert "0800" not in forged.text and "an unrecognised error" in forged.text


def test_a_local_account_cannot_be_taken_over_by_sso(site, provider) -> None:
    base, app = site
    with _browser() as browser:
        claims = {"preferred_username": "alice", "groups": ["grp-admins"], "name": "Mallory"}
        refused = sso_sign_in(browser, base, provider, "sub-mallory", claims)
        assert refused.status_code == 403
        assert "already belongs to another placeharm account" in refused.text
        assert COOKIE not in _set_cookies(refused)
    account = _account(app, "alice")
    assert account is not None
    assert (account["role"], account["auth_source"], account["external_subject"]) == (
        "analyst",
        "local",
        None,
    )
    assert account["display_name"] == "Alice (local analyst)"
    # and alice's password still works, with her own role
    with _browser() as browser:
        signed = _password_sign_in(browser, base, "alice", ALICE_PASSWORD)
        assert signed.status_code == 303 and browser.cookies.get(COOKIE)
        assert browser.get(f"{base}/api/admin").status_code == 403


def test_another_subject_cannot_take_an_sso_name(site, provider) -> None:
    base, app = site
    with _browser() as browser:
        owner = {"preferred_username": "kim", "groups": ["grp-officers"]}
        assert sso_sign_in(browser, base, provider, "sub-kim", owner).status_code == 200
        other = {"preferred_username": "kim", "groups": ["grp-admins"]}
        refused = sso_sign_in(browser, base, provider, "sub-not-kim", other)
        assert refused.status_code == 403
    account = _account(app, "kim")
    assert account is not None and account["external_subject"] == "sub-kim"
    assert account["role"] == "officer"


def test_an_sso_account_cannot_sign_in_with_a_password(site, provider) -> None:
    base, app = site
    with _browser() as browser:
        claims = {"preferred_username": "nopass", "groups": ["grp-officers"]}
        assert sso_sign_in(browser, base, provider, "sub-nopass", claims).status_code == 200
    with _browser() as browser:
        for password in (auth.NO_PASSWORD, "", "any-long-password-at-all"):
            refused = _password_sign_in(browser, base, "nopass", password or "x")
            assert refused.status_code == 303
            assert refused.headers["location"].startswith("/login?error=1")
            assert browser.cookies.get(COOKIE) is None
    # nor can an administrator turn it into a password account by "creating" it
    with pytest.raises(DataError, match="single sign-on account"):
        auth.create_user(_store(app), "nopass", "X", "admin", "a-long-enough-password")
    assert _account(app, "nopass")["auth_source"] == "oidc"  # type: ignore[index]


def test_login_page_offers_the_provider(site) -> None:
    base, _ = site
    page = httpx.get(f"{base}/login", params={"next": "/ward/E05001554?by=ward&x=1"})
    assert page.status_code == 200
    # `next` goes on to /login/sso as one query value
    assert 'href="/login/sso?next=/ward/E05001554%3Fby%3Dward%26x%3D1"' in page.text
    assert "Sign in with Test Force Entra ID" in page.text
    assert 'name="password"' in page.text  # local accounts stay available by default


def test_next_cannot_leave_the_site(site, provider) -> None:
    base, _ = site
    with _browser() as browser:
        claims = {"preferred_username": "next.user", "groups": ["grp-officers"]}
        for evil in ("//evil.example/", "/\\evil.example/", "https://evil.example/"):
            done = sso_sign_in(browser, base, provider, "sub-next", claims, next_path=evil)
            assert done.status_code == 200
            assert 'content="0; url=/overview"' in done.text
            assert "evil" not in done.text


# -- the ID token itself ---------------------------------------------------------------------------


def _flow_fields(cookie: str) -> list[Any]:
    """What a flow cookie carries (signed, not secret from the browser that holds it)."""
    body = cookie.split(".")[0]
    fields: list[Any] = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    return fields


def test_id_token_signature_issuer_audience_expiry_and_nonce_are_checked(
    site, store_path, provider
) -> None:
    """A real token from the provider passes; changed in any way, it is refused."""
    base, _ = site
    client = sso.OidcClient(_settings(store_path, base, provider))
    provider.set_user("sub-token", {"preferred_username": "tok", "groups": ["grp-officers"]})
    # a sign-in started by this client: its flow cookie holds the nonce and the verifier
    url, cookie = client.begin("/overview")
    _, nonce, verifier, _, _ = _flow_fields(cookie)
    with _browser() as browser:
        callback = _at_provider(browser, url, "sub-token")
    code = parse_qs(urlsplit(callback).query)["code"][0]
    token = client._exchange(client.metadata(), code, verifier)

    claims = client.validate_id_token(token, nonce)
    assert claims["sub"] == "sub-token" and claims["aud"] in (CLIENT_ID, [CLIENT_ID])
    assert claims["iss"] == provider.url and claims["nonce"] == nonce

    with pytest.raises(PermissionDenied, match="nonce"):
        client.validate_id_token(token, "another-sign-ins-nonce")
    with pytest.raises(PermissionDenied, match="exp"):
        client.validate_id_token(token, nonce, now=int(claims["exp"]) + sso.LEEWAY_S + 1)
    other = sso.OidcClient(_settings(store_path, base, provider, oidc_client_id="another-app"))
    with pytest.raises(PermissionDenied, match="aud"):
        other.validate_id_token(token, nonce)
    header, payload, signature = token["id_token"].split(".")
    forged_claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    forged_claims["sub"] = "sub-someone-else"
    forged = base64.urlsafe_b64encode(json.dumps(forged_claims).encode()).rstrip(b"=").decode()
    with pytest.raises(PermissionDenied, match="not valid"):
        client.validate_id_token(token | {"id_token": f"{header}.{forged}.{signature}"}, nonce)
    unsigned = base64.urlsafe_b64encode(b'{"alg":"none"}').rstrip(b"=").decode()
    with pytest.raises(PermissionDenied, match="not valid"):
        client.validate_id_token(token | {"id_token": f"{unsigned}.{payload}."}, nonce)
    with pytest.raises(PermissionDenied, match="no ID token"):
        client.validate_id_token({"access_token": token["access_token"]}, nonce)
    # the code was single-use at the provider
    with pytest.raises(PermissionDenied, match="invalid_grant"):
        client._exchange(client.metadata(), code, verifier)


def test_an_unreachable_provider_is_a_502_page(db_at: Callable[[str], str], provider) -> None:
    """A wrong issuer path: the discovery document is not found; no traceback."""
    with _serve(
        lambda base: create_app(
            _settings(
                db_at("other"),
                base,
                provider,
                oidc_issuer=f"{provider.url}/nowhere",
            )
        )
    ) as (base, _):
        page = httpx.get(f"{base}/login/sso")
        assert page.status_code == 502
        assert "discovery document" in page.text and "Traceback" not in page.text


# -- local accounts switched off -----------------------------------------------------------------


def test_local_accounts_off_refuses_passwords_and_ends_local_sessions(
    db_at: Callable[[str], str], provider: Provider
) -> None:
    db = db_at("sso-only")
    with open_store(db) as store:
        auth.create_user(store, "bob", "Bob (local)", "admin", BOB_PASSWORD)
        old_token = auth.start_session(store, "bob")
    with _serve(lambda base: create_app(_settings(db, base, provider, local_accounts=False))) as (
        base,
        app,
    ):
        assert _sessions(app, "bob") == 0  # ended at start-up
        assert httpx.get(f"{base}/help", cookies={COOKIE: old_token}).status_code == 403
        page = httpx.get(f"{base}/login")
        assert "Sign in with Test Force Entra ID" in page.text
        assert 'name="password"' not in page.text
        with _browser() as browser:
            # a sign-in form still open from before the switch: its token and Origin are
            # good, and the password is still refused
            refused = _password_sign_in(browser, base, "bob", BOB_PASSWORD)
            assert refused.status_code == 303
            assert refused.headers["location"].startswith("/login?error=local")
            assert browser.cookies.get(COOKIE) is None
            assert (
                "Password sign-in is switched off"
                in browser.get(f"{base}{refused.headers['location']}").text
            )
            # single sign-on still works
            claims = {"preferred_username": "sso.only", "groups": ["grp-officers"]}
            assert sso_sign_in(browser, base, provider, "sub-only", claims).status_code == 200
            assert browser.get(f"{base}/help").status_code == 200


def test_without_sso_settings_the_routes_are_not_found(db_at: Callable[[str], str]) -> None:
    from fastapi.testclient import TestClient

    with TestClient(create_app(load_settings(db=db_at("plain")))) as client:
        assert client.get("/login/sso", follow_redirects=False).status_code == 404
        assert client.get("/auth/callback?code=x&state=y").status_code == 404
        assert "Sign in with" not in client.get("/login").text


# -- settings and role mapping ------------------------------------------------------------------


def test_role_precedence_takes_the_most_privileged_mapped_group() -> None:
    role_map = {k: Role(v) for k, v in GROUPS.items()}
    assert sso.role_for(["grp-partners", "grp-officers"], role_map) is Role.officer
    assert sso.role_for(["grp-officers", "grp-admins", "x"], role_map) is Role.admin
    assert sso.role_for(["grp-partners"], role_map) is Role.partner
    assert sso.role_for(["x", "y"], role_map) is None
    assert sso.role_for([], role_map) is None
    # the auditor is a separate duty, held only without a data role (docs/security/sso.md)
    assert sso.role_for(["grp-auditors"], role_map) is Role.auditor
    assert sso.role_for(["grp-auditors", "grp-analysts"], role_map) is Role.analyst
    assert sso.role_for(["grp-partners", "grp-auditors"], role_map) is Role.partner
    assert sso.role_for(["grp-admins", "grp-auditors"], role_map) is Role.admin
    assert sso.ROLE_PRECEDENCE[-1] is Role.auditor
    assert list(sso.ROLE_PRECEDENCE) == sorted(Role, key=sso.ROLE_PRECEDENCE.index)


def test_sso_settings_are_validated(tmp_path: Path) -> None:
    good = {
        "oidc_issuer": "https://login.microsoftonline.com/tenant-id/v2.0",
        "oidc_client_id": "app-id",
        "oidc_redirect_url": "https://placeharm.force.local/auth/callback",
        "oidc_role_map": {"g": "analyst"},
    }
    settings = load_settings(**good)
    assert settings.oidc_scopes == ["openid", "profile", "email"]
    assert load_settings(**good, oidc_scopes=["profile"]).oidc_scopes == ["openid", "profile"]
    with pytest.raises(ConfigError, match="oidc_role_map"):
        load_settings(**(good | {"oidc_role_map": {"g": "superuser"}}))
    with pytest.raises(ConfigError, match="needs oidc_role_map"):
        load_settings(**(good | {"oidc_role_map": {}}))
    with pytest.raises(ConfigError, match="https"):
        load_settings(**(good | {"oidc_issuer": "http://idp.example.org/"}))
    with pytest.raises(ConfigError, match="/auth/callback"):
        load_settings(**(good | {"oidc_redirect_url": "https://placeharm.force.local/cb"}))
    with pytest.raises(ConfigError, match="nobody could sign in"):
        load_settings(local_accounts=False)
    with pytest.raises(ConfigError, match="oidc_redirect_url"):
        load_settings(oidc_issuer=good["oidc_issuer"], oidc_client_id="x")
    secret_file = tmp_path / "secret"
    secret_file.write_text("s3cr3t-from-file\n")
    with pytest.raises(ConfigError, match="not both") as refused:
        load_settings(
            **good, oidc_client_secret="s3cr3t-value", oidc_client_secret_file=secret_file
        )
    assert "s3cr3t" not in str(refused.value)  # the secret is never echoed
    settings = load_settings(**good, oidc_client_secret="s3cr3t-value")
    assert "s3cr3t" not in repr(settings) and "s3cr3t" not in str(settings.model_dump())
    client = sso.OidcClient(load_settings(**good, oidc_client_secret_file=secret_file))
    assert client._secret == "s3cr3t-from-file"
    with pytest.raises(ConfigError, match="cannot be read"):
        sso.OidcClient(load_settings(**good, oidc_client_secret_file=tmp_path / "missing"))


def test_role_map_from_the_environment_is_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLACEHARM_OIDC_ISSUER", "https://idp.example.org/realms/force")
    monkeypatch.setenv("PLACEHARM_OIDC_CLIENT_ID", "placeharm")
    monkeypatch.setenv("PLACEHARM_OIDC_REDIRECT_URL", "https://placeharm.example.org/auth/callback")
    monkeypatch.setenv("PLACEHARM_OIDC_ROLE_MAP", '{"analysts": "analyst", "admins": "admin"}')
    settings = load_settings()
    assert settings.oidc_role_map == {"analysts": Role.analyst, "admins": Role.admin}


def test_the_documented_example_is_valid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/settings.md's single sign-on example loads as it stands (its secret file aside)."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "settings.md").read_text()
    section = text.split("## Single sign-on", 1)[1]
    example = section.split("```toml\n", 1)[1].split("```", 1)[0]
    secret = tmp_path / "secret"
    secret.write_text("from-a-file\n")
    config = tmp_path / "placeharm.toml"
    config.write_text(example.replace("/etc/placeharm/oidc-client-secret", str(secret)))
    monkeypatch.setenv("PLACEHARM_CONFIG", str(config))
    settings = load_settings()
    assert settings.local_accounts is False
    assert set(settings.oidc_role_map.values()) == {Role.officer, Role.analyst, Role.admin}
    assert sso.OidcClient(settings)._secret == "from-a-file"


def test_a_disabled_sso_account_is_refused(site, provider) -> None:
    base, app = site
    claims = {"preferred_username": "disabled.user", "groups": ["grp-officers"]}
    with _browser() as browser:
        assert sso_sign_in(browser, base, provider, "sub-disabled", claims).status_code == 200
    with app.state.placeharm.write() as store:
        store._run("UPDATE users SET disabled = TRUE WHERE username = 'disabled.user'")
    with _browser() as browser:
        refused = sso_sign_in(browser, base, provider, "sub-disabled", claims)
        assert refused.status_code == 403 and "disabled" in refused.text
        assert COOKIE not in _set_cookies(refused)


def test_a_shared_filtered_link_survives_single_sign_on(site, provider) -> None:
    """Issue 15: a link to a filtered page, opened signed out, lands on that page after SSO:
    the sign-in page's provider link carries it as `next`, and the callback moves on to it."""
    base, _ = site
    shared = "/overview?from=2021-11&to=2022-03&measures=drug_supply,cannabis_farms"
    with _browser() as browser:
        start = browser.get(f"{base}{shared}", headers={"accept": "text/html"})
        assert start.status_code == 303 and start.headers["location"].startswith("/login?")
        login = browser.get(f"{base}{start.headers['location']}", headers={"accept": "text/html"})
        link = re.search(r'href="(/login/sso\?next=[^"]+)"', login.text)
        assert link, login.text
        sso_start = httpx.URL(f"{base}{link.group(1).replace('&amp;', '&')}")
        assert sso_start.params["next"] == shared
        done = sso_sign_in(
            browser,
            base,
            provider,
            "sub-shared",
            {"preferred_username": "shared.link", "groups": ["grp-officers"]},
            next_path=sso_start.params["next"],
        )
        assert done.status_code == 200, done.text
        target = re.search(r'url=([^"]+)">', done.text)
        assert target and target.group(1).replace("&amp;", "&") == shared
        landed = browser.get(f"{base}{shared}", headers={"accept": "text/html"})
        assert landed.status_code == 200 and 'value="2021-11"' in landed.text
