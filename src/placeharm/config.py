"""Settings: `PLACEHARM_`-prefixed environment variables, then an optional TOML config file."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from placeharm.errors import ConfigError

CONFIG_ENV = "PLACEHARM_CONFIG"
DEFAULT_CONFIG_FILE = "placeharm.toml"


class Settings(BaseSettings):
    """Every setting placeharm reads. Environment variables win over the config file."""

    model_config = SettingsConfigDict(env_prefix="PLACEHARM_", extra="forbid")

    db: Path = Field(
        default=Path("placeharm.duckdb"),
        description="Path of the embedded DuckDB store file.",
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
        default="2GB",
        description="DuckDB memory limit, e.g. '2GB'; keeps large ingests inside a small machine.",
    )
    harm_index: str = Field(
        default="css",
        description="Harm index used when a query names none: css, css:<force>, cchi, or a "
        "custom CSV/YAML file (docs/harm.md).",
    )
    asb_weight: float | None = Field(
        default=None,
        ge=0,
        description="Weight of anti-social behaviour in harm (unset: the index's own, 0 for "
        "the shipped indices).",
    )

    secure_cookie: bool = Field(
        default=False,
        description="Send the session cookie only over HTTPS (its Secure flag). Set it "
        "when the dashboard is served behind TLS, as it should be on a force network.",
    )

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
    except Exception as exc:  # pydantic's ValidationError, TOML errors
        raise ConfigError(f"settings are not valid: {exc}") from exc
