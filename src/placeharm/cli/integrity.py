"""`placeharm check` (the store's invariants, `--repair` for derived columns) and
`placeharm history CRIME_ID` (a crime's versions with their imports, files and vintages)."""

from __future__ import annotations

from typing import Annotated

import polars as pl
import typer

from placeharm import audit
from placeharm.cli.common import (
    DbOption,
    Format,
    FormatOption,
    _disclosed,
    _emit,
    _open,
    _settings,
    err,
    out,
)
from placeharm.services import integrity
from placeharm.version import describe


def register(app: typer.Typer) -> None:
    app.command("check")(check)
    app.command("history")(history)


def check(
    db: DbOption = None,
    repair: Annotated[
        bool,
        typer.Option(
            "--repair",
            help="Recompute the derived columns (latest outcomes, in_area) in one transaction.",
        ),
    ] = False,
) -> None:
    """Verify the store: every import's account balances, no row without its import,
    derived columns current, the audit chain intact. Exit 5 if anything fails."""
    settings = _settings(db)
    with _open(settings) as store:
        installed = describe(store.schema_version())
        out.print(
            f"placeharm {installed.version}, commit {installed.commit_text()}; store schema "
            f"version {installed.schema_version} (this placeharm writes "
            f"{installed.schema_latest}).",
            highlight=False,
            markup=False,
        )
        report = integrity.check(store, repair, audit.hmac_key(settings))
    for name, rows in report.repaired.items():
        out.print(f"[green]repaired[/]: {name}: {rows:,} rows recomputed", highlight=False)
    for name, rows in report.failures.items():
        if rows:
            hint = "" if name not in integrity.DERIVED else " (`placeharm check --repair` fixes it)"
            err.print(f"[bold red]fails[/]: {name}: {rows:,}{hint}", highlight=False)
    if report.audit_problem:
        err.print(
            f"[bold red]fails[/]: the audit log: {report.audit_problem} "
            "(`placeharm audit verify` says more)",
            highlight=False,
        )
    if not report.ok:
        raise typer.Exit(5)
    out.print(
        f"The store holds: {len(report.failures)} invariants checked, audit chain of "
        f"{report.audit_entries:,} entries intact.",
        highlight=False,
    )


def history(
    crime_id: Annotated[str, typer.Argument(help="The police.uk Crime ID.")],
    db: DbOption = None,
    fmt: FormatOption = Format.table,
) -> None:
    """A crime's versions (current, earlier downloads, later-month sightings) and outcomes,
    each with its import, file and vintage (publication date and how it was known)."""
    with _open(_settings(db)) as store:
        versions, outcomes = integrity.crime_history(store, crime_id)
        _disclosed(
            store,
            "placeharm history",
            "records",
            versions.height + outcomes.height,
            {"crime_id": crime_id},
            action="consultation" if fmt is Format.table else "disclosure",
            record_ids={"crime": [crime_id]},
        )
    if fmt is Format.table:  # what tells versions apart, on one screen
        file = pl.col("source_file").str.split("/").list.last().alias("file")
        published = pl.col("published_at").dt.strftime("%Y-%m-%d").alias("published")
        versions = versions.select(
            "version",
            "source_kind",
            "month",
            "crime_type",
            "last_outcome_category",
            "location",
            "import_id",
            file,
            published,
            "published_how",
        )
        outcomes = outcomes.select(
            "version", "month", "outcome_type", "import_id", file, published, "published_how"
        )
    _emit(versions, fmt, f"Versions of crime {crime_id}")
    if fmt is Format.table:
        _emit(outcomes, fmt, "Outcomes (held, and superseded by a newer download)")
    elif not outcomes.is_empty():
        err.print("outcomes: use --format table to see them with the versions")
