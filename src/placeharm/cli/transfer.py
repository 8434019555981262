"""`placeharm migrate-store`: move a DuckDB store into an empty PostgreSQL store (issue 17)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from placeharm import audit
from placeharm.cli.common import err, out
from placeharm.config import load_settings
from placeharm.services.migrate_store import MoveMismatch, MoveReport, migrate_store
from placeharm.store.postgres import _redact


def register(app: typer.Typer) -> None:
    app.command("migrate-store")(migrate_store_command)


def migrate_store_command(
    source: Annotated[
        Path,
        typer.Option("--from", help="The DuckDB store file to move (opened read-only)."),
    ],
    target: Annotated[
        str,
        typer.Option(
            "--to",
            help="The empty PostgreSQL store: postgresql://user@host:port/database "
            "(a password here is never printed; prefer PGPASSWORD or ~/.pgpass).",
        ),
    ],
    batch_rows: Annotated[
        int, typer.Option("--batch-rows", min=1_000, help="Rows per COPY batch.")
    ] = 100_000,
) -> None:
    """Move a whole store (every table, the audit chain as it is) into an EMPTY PostgreSQL
    store in one transaction; `placeharm check` runs on the target before it commits.
    Exit 5 (nothing written) if the target is not empty or anything fails."""
    key = audit.hmac_key(load_settings())
    shown = _redact(target)
    out.print(f"Moving {source} to {shown} ...", highlight=False, markup=False)

    def moved(table: str, rows: int) -> None:
        out.print(f"  {table}: {rows:,} rows copied", highlight=False, markup=False)

    try:
        report = migrate_store(source, target, key, batch_rows, moved)
    except MoveMismatch as exc:
        _counts(exc.report)
        raise
    _counts(report)
    if report.nul_replaced:
        err.print(
            f"note: {report.nul_replaced:,} text values held NUL characters, which PostgreSQL "
            "text cannot hold; each NUL is U+FFFD in the target (as the PostgreSQL store "
            "does on import).",
            highlight=False,
        )
    if not report.analyzed:
        err.print(
            "note: gathering the planner's statistics (ANALYZE) failed after the move, which "
            "is committed and whole; the first pages may be slow until autovacuum gathers "
            "them. Run ANALYZE on the target's tables to gather them now.",
            highlight=False,
        )
    out.print(
        f"[green]Moved[/] {len(report.source_rows)} tables, {report.total_rows:,} rows, in "
        f"{report.seconds:.1f} s. Every table's count matches; on the target "
        f"{report.invariants} invariants hold, the harm cube equals its recount and the "
        f"audit chain of {report.audit_entries:,} entries verifies. Point the app at it: "
        "PLACEHARM_DB set to the --to URL.",
        highlight=False,
    )


def _counts(report: MoveReport) -> None:
    table = Table(title="Rows per table", show_lines=False)
    table.add_column("table")
    table.add_column("source", justify="right")
    table.add_column("target", justify="right")
    table.add_column("")
    for name, rows in report.source_rows.items():
        held = report.target_rows.get(name)
        table.add_row(
            name,
            f"{rows:,}",
            "—" if held is None else f"{held:,}",
            "" if held == rows else "DIFFERS",
        )
    out.print(table)
