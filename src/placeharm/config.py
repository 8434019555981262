"""Settings: `PLACEHARM_`-prefixed environment variables, then an optional TOML config file."""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from placeharm.errors import ConfigError
from placeharm.services.policy import Role

CONFIG_ENV = "PLACEHARM_CONFIG"
DEFAULT_CONFIG_FILE = "placeharm.toml"
# scheme, host[:port], then a path with the {z}/{x}/{y} placeholders: nothing that could end a
# Content-Security-Policy source (space, quote, semicolon, comma) or a JavaScript string
TILE_URL_RE = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?/[A-Za-z0-9._~/{}%=&?@+-]*")


class Settings(BaseSettings):
    """Every setting placeharm reads. Environment variables win over the config file."""

    model_config = SettingsConfigDict(env_prefix="PLACEHARM_", extra="forbid")

    db: Path | str = Field(
        default=Path("placeharm.duckdb"),
        description="Path of the embedded DuckDB store file, or a PostgreSQL server's URL "
        "(postgresql://user@host:port/database) for the PostgreSQL store (docs/deploy.md).",
    )
    shared_data: Path | None = Field(
        default=None,
        description="Folder of the shared real data (tests and benchmarks only).",
    )
    threads: int = Field(
        default=2,
        ge=1,
        le=64,
        description="Worker threads for point-in-polygon assignment and DuckDB.",
    )
    memory_limit: str = Field(
        default="1GB",
        description="DuckDB memory limit, e.g. '1GB': its working memory and its cache of the "
        "store's blocks; keeps large ingests inside a small machine.",
    )
    harm_index: str = Field(
        default="css",
        description="Harm index used when a query names none: css, css:<force>, cchi, "
        "cchi:<force>, or a custom index registered with `placeharm harm add` (the dashboard "
        "refuses to start on anything else; the CLI also accepts a local CSV/YAML file).",
    )
    asb_weight: float | None = Field(
        default=None,
        ge=0,
        description="Weight of anti-social behaviour in harm (unset: the index's own, 0 for "
        "the shipped indices).",
    )
    tile_url: str | None = Field(
        default=None,
        description="Base map: an XYZ raster tile URL template on the force network, e.g. "
        "https://tiles.force.local/{z}/{x}/{y}.png, drawn beneath the area polygons (unset: "
        "a plain background).",
    )
    tile_attribution: str = Field(
        default="",
        description="Base map: the attribution shown on the map for tile_url or pmtiles "
        "(plain text).",
    )
    tile_size: int = Field(
        default=256,
        description="Base map: the pixel size of raster tiles, 256 or 512.",
    )
    pmtiles: Path | None = Field(
        default=None,
        description="Base map: a local PMTiles archive (raster PNG/JPEG/WebP or vector MVT), "
        "served by placeharm itself at /tiles/{z}/{x}/{y} (unset: a plain background).",
    )

    @field_validator("db", mode="before")
    @classmethod
    def _db_path_or_url(cls, value: object) -> object:
        """A PostgreSQL URL stays text (as a path, its `//` would collapse); else a path. A
        value that begins like a PostgreSQL URL but is not one (`postgresql:/host/db`) is
        refused, not opened as a DuckDB file of that name."""
        if isinstance(value, str) and value.startswith(("postgresql://", "postgres://")):
            return value
        if isinstance(value, str) and re.match(r"postgres(?:ql)?:", value, re.IGNORECASE):
            raise ValueError(
                f"{value!r} is not a PostgreSQL URL: write postgresql://user@host:5432/database"
            )
        return Path(value) if isinstance(value, str) else value

    @field_validator("tile_url")
    @classmethod
    def _tile_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not TILE_URL_RE.fullmatch(value) or not all(f"{{{k}}}" in value for k in "zxy"):
            raise ValueError(
                "tile_url must be an http(s) URL template with {z}, {x} and {y}, "
                "e.g. https://tiles.force.local/{z}/{x}/{y}.png"
            )
        return value

    @field_validator("tile_size")
    @classmethod
    def _tile_size(cls, value: int) -> int:
        if value not in (256, 512):
            raise ValueError("tile_size is 256 or 512")
        return value

    @model_validator(mode="after")
    def _one_base_map(self) -> Settings:
        if self.tile_url and self.pmtiles:
            raise ValueError("set tile_url or pmtiles for the base map, not both")
        return self

    secure_cookie: bool = Field(
        default=False,
        description="Send the session cookie only over HTTPS (its Secure flag). Set it "
        "when the dashboard is served behind TLS, as it should be on a force network.",
    )
    session_idle_minutes: int = Field(
        default=30,
        ge=1,
        le=24 * 60,
        description="A dashboard session ends this many minutes after its last request "
        "(idle timeout).",
    )
    session_max_hours: int = Field(
        default=10,
        ge=1,
        le=7 * 24,
        description="A dashboard session ends this many hours after signing in, however "
        "active (absolute lifetime; one shift).",
    )
    login_failures_per_address: int = Field(
        default=10,
        ge=1,
        le=10_000,
        description="Failed sign-ins from one client address (any usernames) within 15 "
        "minutes before that address is paused; raise it when many users sign in through "
        "one proxy address.",
    )

    audit_hmac_key: SecretStr | None = Field(
        default=None,
        description="Audit log: a secret (32 characters or more) keying an HMAC-SHA256 of "
        "every entry, so an edit by someone who can write the database but lacks the key "
        "is detected. Prefer audit_hmac_key_file. Unset: the hash chain only.",
    )
    audit_hmac_key_file: Path | None = Field(
        default=None,
        description="Audit log: a file holding the HMAC key (readable by placeharm only), "
        "used when audit_hmac_key is unset.",
    )
    audit_syslog: str | None = Field(
        default=None,
        description="Audit log: also send every entry to syslog at this address, "
        "udp://host:port, tcp://host:port or a socket path such as /dev/log (unset: the "
        "store only).",
    )

    tls: bool = Field(
        default=False,
        description="The dashboard is served over HTTPS (directly or behind a TLS-terminating "
        "proxy): cookies get the Secure flag, responses carry Strict-Transport-Security, and "
        "the CSRF origin check expects https.",
    )
    allowed_hosts: list[str] = Field(
        default=["*"],
        description="Host names the dashboard answers to (the Host header), e.g. "
        '["placeharm.force.local"]; any other is refused with 400. Set it on a force '
        "network: with it, a page on another site cannot reach the dashboard through a host "
        "name it controls (DNS rebinding). '*' (the default, for the demo) answers any.",
    )
    upload_max_mb: int = Field(
        default=200,
        ge=1,
        le=10_240,
        description="Largest upload body accepted at /api/upload, in MB; a larger declared or "
        "streamed body is refused (413) before or while it is read.",
    )
    max_decompressed_mb: int = Field(
        default=256,
        ge=1,
        le=65_536,
        description="Largest size, in MB, of one imported file once decompressed (uploads, the "
        "drop folder and the CLI): a gzip bomb is refused after reading at most this much.",
    )
    max_line_kb: int = Field(
        default=1024,
        ge=1,
        le=1_048_576,
        description="Longest line, in KB, of an imported CSV file; a file with a longer line is "
        "refused whole (no police.uk or SOC line comes near it).",
    )
    password_hash_concurrency: int = Field(
        default=2,
        ge=1,
        le=64,
        description="Password hashes (argon2id, 64 MiB each) computed at once; further sign-ins "
        "wait up to 10 s for a turn, then get 503 'busy, try again'.",
    )

    # -- single sign-on (OpenID Connect; docs/security/sso.md) ----------------------------
    oidc_issuer: str | None = Field(
        default=None,
        description="Single sign-on: the OpenID Connect issuer URL, e.g. "
        "https://login.microsoftonline.com/<tenant-id>/v2.0 (unset: no single sign-on).",
    )
    oidc_provider_name: str = Field(
        default="your force account",
        description="Single sign-on: the name on the sign-in button ('Sign in with ...').",
    )
    oidc_client_id: str | None = Field(
        default=None,
        description="Single sign-on: the client (application) ID registered at the provider.",
    )
    oidc_client_secret: SecretStr | None = Field(
        default=None,
        description="Single sign-on: the client secret (never logged or shown); prefer "
        "oidc_client_secret_file. Unset with no file: a public client (PKCE only).",
    )
    oidc_client_secret_file: Path | None = Field(
        default=None,
        description="Single sign-on: a file holding the client secret (read at start-up).",
    )
    oidc_redirect_url: str | None = Field(
        default=None,
        description="Single sign-on: the external URL of this server's /auth/callback, "
        "exactly as registered at the provider.",
    )
    oidc_scopes: list[str] = Field(
        default=["openid", "profile", "email"],
        description="Single sign-on: the scopes asked for ('openid' is always included).",
    )
    oidc_group_claim: str = Field(
        default="groups",
        description="Single sign-on: the ID-token claim listing the user's groups or roles, "
        "e.g. 'groups' or 'roles'.",
    )
    oidc_role_map: dict[str, Role] = Field(
        default={},
        description="Single sign-on: group claim value -> placeharm role, e.g. "
        '{"<group-object-id>" = "analyst"}; a user with no mapped group is refused.',
    )
    oidc_username_claim: str = Field(
        default="preferred_username",
        description="Single sign-on: the claim naming the account (then 'email' if absent); "
        "fixed at the first sign-in.",
    )
    read_only: bool = Field(
        default=False,
        description="Open the store read-only (queries only; imports and changes are refused). "
        "A store file or folder that cannot be written is opened read-only anyway.",
    )
    backup_dir: Path | None = Field(
        default=None,
        description="Folder the dashboard writes backups into (admin page, POST /admin/backup); "
        "default: a 'backups' folder beside the store file.",
    )
    backup_every_hours: float = Field(
        default=0,
        ge=0,
        description="The dashboard backs its store up into backup_dir every this many hours "
        "(0: only when an admin asks).",
    )
    backup_keep: int = Field(
        default=7,
        ge=1,
        description="Backups the dashboard keeps in backup_dir (its own, newest first); older "
        "ones are deleted after each new backup.",
    )
    local_accounts: bool = Field(
        default=True,
        description="Allow password sign-in with local accounts; false: single sign-on only "
        "(needs oidc_issuer) and local accounts' sessions end at start-up.",
    )
    debug: bool = Field(
        default=False,
        description="The command line prints the full traceback of a failure (as --debug "
        "does); without it no traceback is shown. The web app never sends one.",
    )

    # several app processes on one PostgreSQL server (issue 17, docs/deploy.md)
    request_threads: int = Field(
        default=16,
        ge=1,
        le=256,
        description="Threads per app process for requests' blocking work (page builds, store "
        "reads). On PostgreSQL each holds one connection while it lives, so one process opens "
        "at most this many plus up to 6 of its own, and one per export in progress.",
    )

    # rising to prominence (issue 16, docs/analysis.md): the RFG bands, each part 0-5 points
    prominence_recency_days: list[float] = Field(
        default=[90, 180, 365, 730],
        description="Prominence score, recency: days since the last linked crime at most each "
        "of these score 5, 4, 3, 2 points; longer 1; no linked crime 0.",
    )
    prominence_frequency_bands: list[float] = Field(
        default=[1, 2, 4, 7, 11],
        description="Prominence score, frequency: linked crimes in the last 12 months at least "
        "each of these score 1 to 5 points.",
    )
    prominence_gravity_bands: list[float] = Field(
        default=[10, 100, 365, 1000, 3650],
        description="Prominence score, gravity: summed harm of those crimes (harm-index days) "
        "at least each of these score 1 to 5 points.",
    )
    prominence_intelligence_bands: list[float] = Field(
        default=[1, 3, 6, 10, 15],
        description="Prominence score, intelligence: graded weight of reports naming the "
        "nominal in the last 12 months (1 for a 1A report) at least each of these score 1 to "
        "5 points.",
    )

    @field_validator("oidc_issuer", "oidc_redirect_url")
    @classmethod
    def _oidc_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        parts = urlsplit(value)
        loopback = parts.hostname in ("127.0.0.1", "::1", "localhost")
        if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
            raise ValueError(
                "the OpenID Connect URLs must be https:// (http:// only on this machine, for tests)"
            )
        if parts.query or parts.fragment:
            raise ValueError("the OpenID Connect URLs carry no query or fragment")
        return value

    @field_validator("oidc_scopes")
    @classmethod
    def _oidc_scopes(cls, value: list[str]) -> list[str]:
        if any(not s or not s.isascii() or " " in s or '"' in s for s in value):
            raise ValueError("oidc_scopes are single words, e.g. ['openid', 'profile']")
        return value if "openid" in value else ["openid", *value]

    @model_validator(mode="after")
    def _oidc_complete(self) -> Settings:
        if self.oidc_issuer is None:
            if not self.local_accounts:
                raise ValueError(
                    "local_accounts = false needs single sign-on (oidc_issuer); otherwise "
                    "nobody could sign in"
                )
            return self
        missing = [
            name for name in ("oidc_client_id", "oidc_redirect_url") if not getattr(self, name)
        ]
        if missing:
            raise ValueError(f"single sign-on (oidc_issuer) also needs {', '.join(missing)}")
        if not self.oidc_role_map:
            raise ValueError(
                "single sign-on needs oidc_role_map (group -> role); without it every "
                "sign-in would be refused"
            )
        if self.oidc_client_secret is not None and self.oidc_client_secret_file is not None:
            raise ValueError("set oidc_client_secret or oidc_client_secret_file, not both")
        if not str(self.oidc_redirect_url).endswith("/auth/callback"):
            raise ValueError(
                "oidc_redirect_url is the external URL of /auth/callback, e.g. "
                "https://placeharm.force.local/auth/callback"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        config_file = Path(os.environ.get(CONFIG_ENV, DEFAULT_CONFIG_FILE))
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if config_file.is_file():
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        elif CONFIG_ENV in os.environ:
            raise ConfigError(
                f"config file {config_file} (from {CONFIG_ENV}) does not exist; "
                "create it or unset the variable"
            )
        return tuple(sources)


def load_settings(**overrides: object) -> Settings:
    """Build settings at an entry point (never at import time), with explicit overrides."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ConfigError:
        raise
    except ValidationError as exc:
        # the messages without the input values: those may hold the OIDC client secret
        problems = "; ".join(
            f"{'.'.join(map(str, error['loc'])) or 'settings'}: {error['msg']}"
            for error in exc.errors(include_url=False, include_input=False)
        )
        raise ConfigError(f"settings are not valid: {problems}") from None
    except Exception as exc:  # TOML errors
        raise ConfigError(f"settings are not valid: {exc}") from exc
