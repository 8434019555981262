"""Single sign-on with OpenID Connect: the authorisation code flow with PKCE (S256).

One `OidcClient` per web app. It reads the identity provider's discovery document and signing
keys (fetched when first needed, then cached), starts a sign-in (`begin`: state, nonce and PKCE
verifier go into a short-lived signed cookie, never into the server's memory) and finishes it
(`finish`: the code is exchanged with authlib's OAuth 2 client, the ID token's signature is
checked against the provider's JWKS and its iss, aud, exp, iat and nonce against this sign-in).
`sign_in` then creates or updates the account and starts a session like a password sign-in.

Accounts are keyed by the provider's (issuer, sub), never by username: a local account of the
same name is never taken over, and a provider-side rename never moves a session to another
account. The role comes from the group claim through `oidc_role_map`, again at every sign-in.
See docs/security/sso.md.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import logging
import re
import secrets
import threading
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from placeharm import audit
from placeharm.config import Settings
from placeharm.errors import ConfigError, DataError, PermissionDenied, PlaceharmError
from placeharm.services import auth
from placeharm.services.policy import Role
from placeharm.store.base import Store

if TYPE_CHECKING:
    import httpx
    from joserfc.jwk import KeySet

log = logging.getLogger(__name__)

FLOW_COOKIE = "placeharm_sso"
CALLBACK_PATH = "/auth/callback"  # oidc_redirect_url is this path's external URL
FLOW_SECONDS = 600  # a sign-in at the provider must finish within 10 minutes
METADATA_SECONDS = 3600  # the discovery document is read again after an hour
JWKS_REFETCH_SECONDS = 60  # an unknown key id fetches the key set again, at most once a minute
HTTP_TIMEOUT_S = 10.0
LEEWAY_S = 60  # clock skew allowed on exp, iat, nbf
MAX_USERNAME = 200
# Where several of a user's groups map to roles, the first of these wins. Each data role sees
# all that the data roles after it see (docs/web.md, Roles); supervisor and analyst see the
# same data. The auditor comes last: it is a separate duty (the audit log, no data), held only
# by someone whose groups map to no data role, so nobody reviews the log of their own use of
# the data and a data user put in an auditors' group keeps their data role (a warning is
# logged). docs/security/sso.md, Role.
ROLE_PRECEDENCE = (
    Role.admin,
    Role.supervisor,
    Role.analyst,
    Role.officer,
    Role.senior_leader,
    Role.partner,
    Role.auditor,
)
# ID tokens signed with a public key only: never "none", never a shared secret (HS*).
SIGNING_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
_ERROR_CODE = re.compile(r"[a-z_]{1,64}")  # an OAuth error code; anything else is not shown


class SsoUnavailable(PlaceharmError):
    """The identity provider could not be reached or answered something unusable (a 502)."""


@dataclass(frozen=True, slots=True)
class Identity:
    """Who the provider says signed in, and the role their groups map to (None: unmapped)."""

    issuer: str
    subject: str
    username: str
    display_name: str
    role: Role | None
    mapped_groups: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Flow:
    """One sign-in in progress, kept in the browser's signed flow cookie."""

    state: str
    nonce: str
    code_verifier: str
    next_path: str
    expires_at: float


class OidcClient:
    """The relying party for one issuer (settings oidc_*)."""

    def __init__(self, settings: Settings) -> None:
        if not (settings.oidc_issuer and settings.oidc_client_id and settings.oidc_redirect_url):
            raise ConfigError("single sign-on needs oidc_issuer, oidc_client_id, oidc_redirect_url")
        self.issuer = settings.oidc_issuer
        self.client_id = settings.oidc_client_id
        self.redirect_url = settings.oidc_redirect_url
        self.callback_path = urlsplit(settings.oidc_redirect_url).path
        self.provider_name = settings.oidc_provider_name
        self.scopes = " ".join(settings.oidc_scopes)
        self.group_claim = settings.oidc_group_claim
        self.username_claim = settings.oidc_username_claim
        self.role_map = dict(settings.oidc_role_map)
        self._secret = _client_secret(settings)
        # Signs flow cookies. Made afresh at each start: a restart only means a sign-in that
        # was half-way through at the provider must be started again.
        self._key = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._metadata: dict[str, Any] | None = None
        self._metadata_at = 0.0
        self._keys: KeySet | None = None
        self._keys_at = 0.0

    # -- starting and finishing a sign-in -----------------------------------------------------

    def begin(self, next_path: str) -> tuple[str, str]:
        """The provider's authorisation URL to send the browser to, and the flow cookie."""
        metadata = self.metadata()
        flow = Flow(
            state=secrets.token_urlsafe(32),
            nonce=secrets.token_urlsafe(32),
            code_verifier=secrets.token_urlsafe(64),  # 86 characters (RFC 7636: 43 to 128)
            next_path=safe_next(next_path),
            expires_at=time.time() + FLOW_SECONDS,
        )
        with self._oauth() as client:
            url, _ = client.create_authorization_url(
                metadata["authorization_endpoint"],
                state=flow.state,
                code_verifier=flow.code_verifier,  # sends code_challenge and method S256
                nonce=flow.nonce,
            )
        return str(url), self._seal(flow)

    def finish(self, params: Mapping[str, str], cookie: str | None) -> tuple[Identity, str]:
        """Check the provider's answer to a sign-in this browser started, exchange the code
        and validate the ID token: who signed in, and where to go next.

        Raises PermissionDenied (the provider or placeharm refuses), DataError (a response
        that belongs to no sign-in here) or SsoUnavailable (the provider misbehaves)."""
        error = params.get("error")
        if error is not None:
            shown = error if _ERROR_CODE.fullmatch(error) else "an unrecognised error"
            log.warning("single sign-on: the identity provider answered %s", shown)
            raise PermissionDenied(
                f"{self.provider_name} did not sign you in ({shown}). Try again, or ask your "
                "IT service desk if it keeps happening"
            )
        flow = self._open(cookie)
        state = params.get("state") or ""
        if not hmac.compare_digest(state.encode(), flow.state.encode()):
            log.warning("single sign-on: a callback's state does not match its flow cookie")
            raise DataError(
                "this sign-in answer does not belong to the sign-in this browser started; "
                "start again from the sign-in page"
            )
        code = params.get("code")
        if not code:
            raise DataError("the sign-in answer has no code; start again from the sign-in page")
        metadata = self.metadata()
        token = self._exchange(metadata, code, flow.code_verifier)
        claims = self.validate_id_token(token, flow.nonce)
        return self._identity(metadata["issuer"], claims), flow.next_path

    # -- the provider's documents ----------------------------------------------------------

    def metadata(self) -> dict[str, Any]:
        """The discovery document (/.well-known/openid-configuration), checked and cached."""
        with self._lock:
            if self._metadata is not None and time.monotonic() - self._metadata_at < (
                METADATA_SECONDS
            ):
                return self._metadata
        url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
        metadata = self._get_json(url, "discovery document")
        issuer = metadata.get("issuer")
        # OpenID Connect Discovery 1.0, 4.3: the document's issuer is the one configured
        if not isinstance(issuer, str) or issuer.rstrip("/") != self.issuer.rstrip("/"):
            raise SsoUnavailable(
                "the identity provider's discovery document names another issuer; check "
                "oidc_issuer (for Entra ID, the tenant's v2.0 issuer)"
            )
        for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            value = metadata.get(key)
            # endpoints over TLS whenever the issuer is (http only for a loopback test issuer)
            if not isinstance(value, str) or not _secure_url(value, self.issuer):
                raise SsoUnavailable(
                    f"the identity provider's discovery document has no usable {key}"
                )
        with self._lock:
            self._metadata, self._metadata_at = metadata, time.monotonic()
        return metadata

    def _key_set(self, metadata: dict[str, Any], refetch: bool = False) -> KeySet:
        from joserfc.errors import JoseError
        from joserfc.jwk import KeySet

        with self._lock:
            fresh = time.monotonic() - self._keys_at < JWKS_REFETCH_SECONDS
            if self._keys is not None and (not refetch or fresh):
                return self._keys
        document = self._get_json(metadata["jwks_uri"], "signing keys (JWKS)")
        try:
            keys = KeySet.import_key_set(document)  # type: ignore[arg-type]
        except (JoseError, KeyError, TypeError, ValueError):
            raise SsoUnavailable(
                "the identity provider's signing keys (JWKS) are not usable"
            ) from None
        with self._lock:
            self._keys, self._keys_at = keys, time.monotonic()
        return keys

    def _get_json(self, url: str, what: str) -> dict[str, Any]:
        import httpx

        try:
            with _http() as client:
                response = client.get(url)
                response.raise_for_status()
                document = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("single sign-on: cannot read the provider's %s: %s", what, type(exc))
            raise SsoUnavailable(
                f"cannot read {self.provider_name}'s {what}; try again in a minute, or tell "
                "the administrator if it keeps happening"
            ) from None
        if not isinstance(document, dict):
            raise SsoUnavailable(f"the identity provider's {what} is not a JSON object")
        return document

    # -- code and token ------------------------------------------------------------------------

    def _oauth(self) -> Any:
        """authlib's OAuth 2 client (over httpx), with PKCE S256."""
        with warnings.catch_warnings():
            # authlib prefers the httpx2 package and warns when it falls back to httpx
            warnings.simplefilter("ignore")
            from authlib.integrations.httpx_client import (  # type: ignore[import-untyped]
                OAuth2Client,
            )
        metadata = self._metadata or {}
        methods = metadata.get("token_endpoint_auth_methods_supported", ["client_secret_basic"])
        if self._secret is None:
            method = "none"  # a public client: PKCE alone binds the code to this sign-in
        elif "client_secret_basic" in methods:
            method = "client_secret_basic"
        else:
            method = "client_secret_post"
        return OAuth2Client(
            client_id=self.client_id,
            client_secret=self._secret,
            token_endpoint_auth_method=method,
            scope=self.scopes,
            redirect_uri=self.redirect_url,
            code_challenge_method="S256",
            timeout=HTTP_TIMEOUT_S,
            follow_redirects=False,
        )

    def _exchange(self, metadata: dict[str, Any], code: str, code_verifier: str) -> dict[str, Any]:
        import httpx
        from authlib.integrations.httpx_client import OAuthError

        try:
            with self._oauth() as client:
                token = client.fetch_token(
                    metadata["token_endpoint"],
                    grant_type="authorization_code",
                    code=code,
                    code_verifier=code_verifier,
                )
        except OAuthError as exc:
            error = str(exc.error or "")
            shown = error if _ERROR_CODE.fullmatch(error) else "an unrecognised error"
            log.warning("single sign-on: the token endpoint refused the code: %s", shown)
            raise PermissionDenied(
                f"{self.provider_name} refused the sign-in code ({shown}); start again from "
                "the sign-in page"
            ) from None
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("single sign-on: the token request failed: %s", type(exc))
            raise SsoUnavailable(
                f"{self.provider_name} did not answer the sign-in; try again in a minute"
            ) from None
        return dict(token)

    def validate_id_token(
        self, token: Mapping[str, Any], nonce: str, now: int | None = None
    ) -> dict[str, Any]:
        """The ID token's claims once its signature (the provider's JWKS), iss, aud, exp, iat
        and nonce (this sign-in's) are checked; PermissionDenied otherwise."""
        from authlib.oidc.core import CodeIDToken  # type: ignore[import-untyped]
        from joserfc import jwt
        from joserfc.errors import ClaimError, InvalidKeyIdError, JoseError
        from joserfc.jws import JWSRegistry

        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise PermissionDenied(
                f"{self.provider_name} sent no ID token; check that oidc_scopes has 'openid'"
            )
        metadata = self.metadata()
        offered = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
        algorithms = [a for a in offered if a in SIGNING_ALGORITHMS]
        if not algorithms:
            raise SsoUnavailable("the identity provider signs ID tokens with no accepted algorithm")
        registry = JWSRegistry(algorithms=algorithms, strict_check_header=False)
        try:
            try:
                decoded = jwt.decode(id_token, self._key_set(metadata), registry=registry)
            except InvalidKeyIdError:  # the provider rolled its keys over
                keys = self._key_set(metadata, refetch=True)
                decoded = jwt.decode(id_token, keys, registry=registry)
            claims = CodeIDToken(
                decoded.claims,
                decoded.header,
                {
                    "iss": {"essential": True, "value": metadata["issuer"]},
                    "aud": {"essential": True, "value": self.client_id},
                    "sub": {"essential": True},
                },
                {
                    "nonce": nonce,
                    "client_id": self.client_id,
                    "access_token": token.get("access_token"),
                },
            )
            claims.validate(now=now, leeway=LEEWAY_S)
        except JoseError as exc:
            # the error code and the claim's name (never a claim's value or the token)
            reason = str(exc.error or "invalid")
            if isinstance(exc, ClaimError):
                reason += f": {exc.claim}"
            log.warning("single sign-on: an ID token was refused: %s", exc)
            raise PermissionDenied(
                f"the ID token from {self.provider_name} is not valid ({reason}); start again "
                "from the sign-in page, or tell the administrator if it keeps happening"
            ) from None
        return dict(claims)

    # -- who signed in ---------------------------------------------------------------------

    def _identity(self, issuer: str, claims: Mapping[str, Any]) -> Identity:
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject:
            raise PermissionDenied("the ID token has no subject (sub)")
        username = claims.get(self.username_claim)
        if not isinstance(username, str) or not username.strip():
            username = claims.get("email")
        if not isinstance(username, str) or not _good_name(username):
            raise PermissionDenied(
                f"the ID token has no usable {self.username_claim} or email claim (an account "
                "name of up to 200 printable characters); tell the administrator"
            )
        display_name = claims.get("name")
        if not isinstance(display_name, str) or not _good_name(display_name):
            display_name = username
        groups = self._groups(claims)
        mapped = tuple(sorted(g for g in groups if g in self.role_map))
        role = role_for(groups, self.role_map)
        if (
            role is not None
            and role is not Role.auditor
            and Role.auditor in (self.role_map[g] for g in mapped)
        ):
            log.warning(
                "single sign-on: %s is in an auditors' group and a data role's; signed in as "
                "%s, without the audit log (separation of duties)",
                username.strip(),
                role.value,
            )
        return Identity(issuer, subject, username.strip(), display_name.strip(), role, mapped)

    def _groups(self, claims: Mapping[str, Any]) -> list[str]:
        value = claims.get(self.group_claim)
        if value is None:
            claim_names = claims.get("_claim_names")
            if isinstance(claim_names, dict) and self.group_claim in claim_names:
                # Entra ID's "groups overage": over 200 groups, the token points elsewhere
                raise PermissionDenied(
                    f"{self.provider_name} left out your groups because you are in too many. "
                    "Ask the administrator to send only the groups assigned to placeharm's "
                    "app registration, or app roles (docs/security/sso.md)"
                )
            return []
        if isinstance(value, str):
            return [value]
        if isinstance(value, list):
            return [v for v in value if isinstance(v, str)]
        return []

    # -- the flow cookie -----------------------------------------------------------------------

    def _seal(self, flow: Flow) -> str:
        fields = [flow.state, flow.nonce, flow.code_verifier, flow.next_path, flow.expires_at]
        body = _b64(json.dumps(fields).encode())
        return body + "." + _b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest())

    def _open(self, cookie: str | None) -> Flow:
        refused = DataError(
            "this sign-in was not started in this browser, or took over 10 minutes; start "
            "again from the sign-in page"
        )
        body, _, mac = (cookie or "").partition(".")
        expected = _b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest())
        if not body or not hmac.compare_digest(mac.encode(), expected.encode()):
            raise refused
        try:
            fields = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
            flow = Flow(*fields)
        except (ValueError, TypeError):
            raise refused from None
        if flow.expires_at < time.time():
            raise refused
        return flow


def role_for(groups: list[str], role_map: Mapping[str, Role]) -> Role | None:
    """The role a user's groups map to: the most privileged by ROLE_PRECEDENCE; None if none."""
    roles = {role_map[g] for g in groups if g in role_map}
    return next((role for role in ROLE_PRECEDENCE if role in roles), None)


def sign_in(
    store: Store,
    identity: Identity,
    now: dt.datetime | None = None,
    rules: auth.SessionRules = auth.DEFAULT_RULES,
    address: str | None = None,
) -> tuple[str, str]:
    """Create or update the identity's account and start a session (call under the write
    lock), with its audit entry in the same transaction. The account is the one keyed by
    (issuer, sub); a name held by any other account (local, or another subject) is refused,
    never taken over. A user whose groups no longer map loses their existing sessions as well
    as this sign-in; a user whose groups now map to another role loses their old sessions
    (as a role change on the admin page does). Returns the session token and the account's
    username (fixed at the first sign-in, so it may differ from the identity's name now)."""
    with store.transaction():
        record = store.user_by_subject(identity.issuer, identity.subject)
        if identity.role is None and record is not None:
            store.end_user_sessions(record["username"])  # committed, then refused below
    if identity.role is None:
        log.warning("single sign-on refused %s: no group in oidc_role_map", identity.username)
        raise PermissionDenied(
            "your account is in none of the groups allowed to use placeharm. Ask your "
            "supervisor or the administrator to add you to a placeharm group"
        )
    with store.transaction():
        record = store.user_by_subject(identity.issuer, identity.subject)
        if record is None:
            if store.user(identity.username) is not None:
                log.warning(
                    "single sign-on refused %s: the name belongs to another account",
                    identity.username,
                )
                raise PermissionDenied(
                    f"the account name {identity.username} already belongs to another "
                    "placeharm account (a local one, or another identity). An administrator "
                    "must rename or remove that account first"
                )
            store.add_sso_user(
                identity.username,
                identity.display_name,
                identity.role.value,
                auth.NO_PASSWORD,
                identity.issuer,
                identity.subject,
            )
            username = identity.username
        else:
            if record["disabled"]:
                raise PermissionDenied("this account is disabled; ask the administrator")
            username = record["username"]  # fixed at the first sign-in
            if record["role"] != identity.role.value:
                store.end_user_sessions(username)  # they carry the old role
            store.update_sso_user(username, identity.display_name, identity.role.value)
        token = auth.start_session(store, username, now, rules)
        actor = audit.Actor(username, identity.role.value, address, audit.session_key(token))
        audit.log_for(store).record(
            store, actor, "sign-in", "session", CALLBACK_PATH, query={"via": "oidc"}
        )
    log.info(
        "single sign-on: %s signed in as %s (groups %s)",
        username,
        identity.role.value,
        ", ".join(identity.mapped_groups),
    )
    return token, username


def end_local_sessions(store: Store) -> int:
    """End every local account's session (when local_accounts is switched off)."""
    with store.transaction():
        return store.end_sessions_by_source("local")


def safe_next(target: str) -> str:
    """A path on this site to go to after signing in or stating a justification (the one
    check, for local and single sign-on alike): never another host (one leading '/', no '\\',
    which browsers read as '/'), no control, format or separator characters and no space
    (browsers drop or rewrite them, so '/<tab>/host' can become '//host'), at most 2000 long."""
    ok = (
        target.startswith("/")
        and not target.startswith("//")
        and "\\" not in target
        and target.isprintable()  # no C0/C1 controls, DEL, bidi or zero-width, line separators
        and " " not in target  # isprintable() lets a space through
        and len(target) <= 2000
    )
    return target if ok else "/overview"


def _client_secret(settings: Settings) -> str | None:
    if settings.oidc_client_secret is not None:
        return settings.oidc_client_secret.get_secret_value()
    path: Path | None = settings.oidc_client_secret_file
    if path is None:
        return None
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        raise ConfigError(
            "oidc_client_secret_file cannot be read; check it and its permissions"
        ) from None
    if not secret:
        raise ConfigError("oidc_client_secret_file is empty")
    return secret


def _http() -> httpx.Client:
    import httpx

    return httpx.Client(timeout=HTTP_TIMEOUT_S, follow_redirects=False)


def _secure_url(url: str, issuer: str) -> bool:
    """https, or http on this machine when the issuer itself is (a test provider)."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        return bool(parts.hostname)
    loopback = parts.hostname in ("127.0.0.1", "::1", "localhost")
    return parts.scheme == "http" and loopback and issuer.startswith("http:")


def _good_name(name: str) -> bool:
    return 0 < len(name.strip()) <= MAX_USERNAME and name.isprintable()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
