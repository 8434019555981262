"""What every `placeharm` command shares: output formats, options, opening the store."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import polars as pl
import typer
from rich.console import Console
from rich.table import Table

from placeharm import audit
from placeharm.config import Settings, load_settings
from placeharm.errors import ConfigError
from placeharm.model import parse_month
from placeharm.store import AnyStore, is_server_url, open_db

out = Console(width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 200)


class Format(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


# text, not a Path: a postgresql:// URL as a Path would lose its `//` (the setting's own
# validator makes any other value a path)
DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Store file or postgresql:// URL (default: PLACEHARM_DB or ./placeharm.duckdb).",
    ),
]
FormatOption = Annotated[Format, typer.Option("--format", "-f", help="Output format.")]


def _settings(db: Path | str | None) -> Settings:
    """The settings, with `--db` if given. An empty `--db` (an unset shell variable) is
    refused rather than taken as no option, which would open or create the default store."""
    if db is not None and not str(db).strip():
        raise ConfigError("--db is empty: give a store file's path or a postgresql:// URL")
    return load_settings(**({"db": db} if db is not None else {}))


def shown_db(db: Path | str) -> str:
    """Where the store is, as the CLI may print it: a PostgreSQL URL without its password."""
    text = str(db)
    if not is_server_url(text):
        return text
    from placeharm.store.postgres import _redact

    return _redact(text)


def _open(settings: Settings) -> AnyStore:
    """The store, with the audit log as configured (HMAC key, syslog) for what it writes."""
    store = open_db(
        settings.db,
        threads=settings.threads,
        memory_limit=settings.memory_limit,
        read_only=True if settings.read_only else None,  # else: read-only if not writable
    )
    try:
        audit.attach(store, audit.AuditLog.from_settings(settings))
    except BaseException:
        store.close()
        raise
    return store


def _disclosed(
    store: AnyStore,
    command: str,
    page: str,
    rows: int,
    query: dict[str, Any],
    action: str = "disclosure",
    record_ids: dict[str, list[str]] | None = None,
) -> None:
    """A command that hands records naming people (or raw refused rows) to whoever ran it: a
    disclosure (or, shown on screen, a consultation) in the audit log, as the operating-system
    user. Raises AuditError when the entry cannot be written; the caller then withholds what
    it was about to give."""
    from placeharm.services.pages import MARKING

    audit.log_for(store).record(
        store,
        audit.Actor.cli(),
        action,
        page,
        command,
        fmt="cli",
        record_ids=record_ids,
        query=query,
        row_count=rows,
        marking=MARKING,
    )


def _emit(frame: pl.DataFrame, fmt: Format, title: str | None = None) -> None:
    if fmt is Format.csv:
        buffer = io.StringIO()
        frame.write_csv(buffer)
        sys.stdout.write(buffer.getvalue())
    elif fmt is Format.json:
        sys.stdout.write(json.dumps(frame.to_dicts(), default=str, indent=2) + "\n")
    else:
        table = Table(title=title, show_lines=False)
        for col in frame.columns:
            numeric = frame.schema[col].is_numeric()
            table.add_column(col, justify="right" if numeric else "left")
        for row in frame.iter_rows():
            table.add_row(*["—" if v is None else str(v) for v in row])
        out.print(table)


def _command_name() -> str:
    """How the user ran us (e.g. `.venv/bin/placeharm`), for hints they can paste."""
    argv0 = Path(sys.argv[0])
    if argv0.name == "placeharm" and argv0.exists():
        relative = os.path.relpath(argv0)
        return relative if "/" in relative else f"./{relative}"
    return "placeharm"


def _month(text: str) -> dt.date:
    return parse_month(text)
