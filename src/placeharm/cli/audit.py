"""`placeharm audit`: check the audit log's hash chain and export it for a SIEM."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Annotated

import typer

from placeharm import audit
from placeharm.cli.common import DbOption, _open, _settings, err, out
from placeharm.errors import DataError

audit_app = typer.Typer(
    help="The audit log (DPA 2018 s.62): verify its hash chain, export it as JSON lines.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(audit_app, name="audit")


def _day(text: str | None, what: str) -> dt.date | None:
    if text is None:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise DataError(f"--{what} {text!r} is not a date; use YYYY-MM-DD") from None


@audit_app.command("verify")
def verify(
    db: DbOption = None,
    keyed_from: Annotated[
        int,
        typer.Option(help="With an HMAC key set: entries from this number on must carry it."),
    ] = 1,
) -> None:
    """Walk the whole chain; report the first edited, deleted, inserted or moved entry."""
    settings = _settings(db)
    key = audit.hmac_key(settings)
    with _open(settings) as store:
        report = audit.verify(store, key, keyed_from)
    keyed = "hash chain and HMAC" if key else "hash chain (no HMAC key set)"
    if report.ok:
        out.print(
            f"The audit log holds: {report.checked:,} entries verified ({keyed}). Newest entry "
            f"{report.head_seq}, hash {report.head_hash}: compare it with the copy in the SIEM.",
            highlight=False,
        )
        return
    err.print(
        f"[bold red]The audit log has been tampered with[/]: {report.problem}. "
        f"{report.checked:,} entries before it verified ({keyed}).",
        highlight=False,
    )
    raise typer.Exit(6)


@audit_app.command("export")
def export(
    first: Annotated[
        str | None, typer.Option("--from", help="First day (YYYY-MM-DD, UTC).")
    ] = None,
    last: Annotated[
        str | None, typer.Option("--to", help="Last day, included (YYYY-MM-DD, UTC).")
    ] = None,
    path: Annotated[
        Path | None, typer.Option("--out", help="File to write (default: standard output).")
    ] = None,
    db: DbOption = None,
) -> None:
    """Write the entries logged between two days as JSON lines (one object per entry, with
    its hashes, so a SIEM or `verify` can check it). The export is itself logged."""
    since, until = _day(first, "from"), _day(last, "to")
    if since and until and since > until:
        raise DataError("--from is after --to")
    start = dt.datetime.combine(since, dt.time()) if since else None
    end = dt.datetime.combine(until + dt.timedelta(days=1), dt.time()) if until else None
    settings = _settings(db)
    with _open(settings) as store:
        if path is None:
            written = audit.export_lines(store, sys.stdout, start, end)
        else:
            with path.open("w", encoding="utf-8") as handle:
                written = audit.export_lines(store, handle, start, end)
        audit.log_for(store).record(
            store,
            audit.Actor.cli(),
            "disclosure",
            "audit",
            "placeharm audit export",
            fmt="jsonl",
            query={"from": first, "to": last, "out": path.name if path else "stdout"},
            row_count=written,
        )
    if path is not None:
        out.print(f"{written:,} audit entries written to {path}.", highlight=False)
