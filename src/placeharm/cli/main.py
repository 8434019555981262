"""The `placeharm` command: a thin layer over the service functions."""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Annotated

import polars as pl
import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from placeharm import audit
from placeharm.cli import analysis as analysis_cli
from placeharm.cli import audit as audit_cli
from placeharm.cli import evaluate as evaluate_cli
from placeharm.cli import harm as harm_cli
from placeharm.cli import hotspots as hotspots_cli
from placeharm.cli import integrity as integrity_cli
from placeharm.cli import soc as soc_cli
from placeharm.cli import spark as spark_cli
from placeharm.cli import transfer as transfer_cli
from placeharm.cli.common import (
    DbOption,
    Format,
    FormatOption,
    _command_name,
    _disclosed,
    _emit,
    _month,
    _open,
    _settings,
    err,
    out,
    shown_db,
)
from placeharm.config import Settings, load_settings
from placeharm.errors import (
    ConfigError,
    DataError,
    NotFound,
    PlaceharmError,
    StoreError,
    is_fatal,
)
from placeharm.ingest.csvfile import ReadLimits
from placeharm.model import ImportResult
from placeharm.services import areas as area_service
from placeharm.services import auth as auth_service
from placeharm.services import demo as demo_service
from placeharm.services import harm as harm_service
from placeharm.services import ingest as ingest_service
from placeharm.services import queries
from placeharm.services import soc as soc_service
from placeharm.services.backups import back_up
from placeharm.store import AnyStore, is_server_url

app = typer.Typer(
    help="placeharm: serious and organised crime harm by place (police.uk data, areas, counts).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
areas_app = typer.Typer(
    help="Area sets: boundaries, hierarchy lookups, assignment.", no_args_is_help=True
)
app.add_typer(areas_app, name="areas")
harm_cli.register(app, areas_app)
soc_cli.register(app)
audit_cli.register(app)
integrity_cli.register(app)
evaluate_cli.register(app)
analysis_cli.register(app)
hotspots_cli.register(app)  # issue 16
spark_cli.register(app)  # issue 17: spark ingest, load-parquet
transfer_cli.register(app)  # issue 17: migrate-store

_EXIT = {DataError: 2, NotFound: 3, ConfigError: 4, StoreError: 5}  # 6: audit verify failed


def _summary(results: list[ImportResult]) -> None:
    frame = pl.DataFrame(
        [
            {
                "file": Path(r.source_file).name,
                "kind": r.source_kind,
                "status": r.status,
                "read": r.rows_read,
                "inserted": r.inserted,
                "updated": r.updated,
                "unchanged": r.unchanged,
                "quarantined": r.quarantined,
                "no_location": r.no_location,
                "outside_areas": r.outside_areas,
            }
            for r in results
        ]
    )
    _emit(frame, Format.table, "Imports (read = inserted + updated + unchanged + quarantined)")
    ok = [r for r in results if r.status == "ok"]
    total = {
        k: sum(getattr(r, k) for r in ok)
        for k in ("rows_read", "inserted", "updated", "unchanged", "quarantined")
    }
    out.print(
        f"{len(ok)} of {len(results)} files imported: read {total['rows_read']:,} = inserted "
        f"{total['inserted']:,} + updated {total['updated']:,} + unchanged {total['unchanged']:,} "
        f"+ quarantined {total['quarantined']:,}"
    )
    for r in results:
        if r.status != "ok":
            # escaped: a file name or a reason may hold [brackets] rich would read as markup
            err.print(f"[bold red]{r.status}[/]: {escape(r.source_file)}\n  {escape(r.message)}")
        elif r.message:  # imported, with a note (e.g. a header-only file claims no month)
            err.print(
                f"[yellow]note[/]: {escape(r.source_file)}\n  {escape(r.message)}", highlight=False
            )
    if total["quarantined"]:
        out.print("See the quarantined rows with `placeharm quarantine`.")
    for r in ok:  # an older download than the one held reverts nothing (issue 13)
        if r.stale:
            err.print(
                f"[yellow]older download[/]: {Path(r.source_file).name} (published "
                f"{r.published_at:%Y-%m-%d}, from its {r.published_how}) would have reverted "
                f"{r.stale:,} rows to older values; the newer values were kept. "
                "`placeharm history CRIME_ID` shows both; `--published` states a date.",
                highlight=False,
            )


def _run_ingest(
    store: AnyStore,
    settings: Settings,
    paths: list[Path],
    tolerance_m: float,
    published: dt.date | None = None,
) -> list[ImportResult]:
    files = ingest_service.find_files(paths)
    limits = ReadLimits.of(settings.max_decompressed_mb, settings.max_line_kb)
    if not sys.stderr.isatty():
        return ingest_service.ingest(
            store, files, settings.threads, tolerance_m, limits=limits, published=published
        )
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as progress:
        task = progress.add_task("Importing", total=len(files))

        def step(result: ImportResult) -> None:
            progress.update(
                task, advance=1, description=f"Imported {Path(result.source_file).name}"
            )

        return ingest_service.ingest(
            store,
            files,
            settings.threads,
            tolerance_m,
            progress=step,
            limits=limits,
            published=published,
        )


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="police.uk CSV/JSON files or folders.")],
    db: DbOption = None,
    tolerance_m: Annotated[
        float,
        typer.Option(
            help="Keep police.uk's own LSOA code when the point is this close to it (0: off)."
        ),
    ] = 25.0,
    published: Annotated[
        str | None,
        typer.Option(
            help="The date police.uk published these files (YYYY-MM-DD); wins over the "
            "files' own evidence when deciding which download is newer."
        ),
    ] = None,
) -> None:
    """Import police.uk street, outcomes and stop-and-search CSVs (plain or .gz) and API JSON."""
    settings = _settings(db)
    stated = _published_date(published)
    with _open(settings) as store:
        _refuse_read_only(store, "imported")
        results = _run_ingest(store, settings, paths, tolerance_m, stated)
    _summary(results)
    if any(r.status != "ok" for r in results):
        raise typer.Exit(2)


def _published_date(text: str | None) -> dt.date | None:
    if text is None:
        return None
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise DataError(f"--published {text!r} is not a date; use YYYY-MM-DD") from None
    if day > dt.date.today() or day < dt.date(2010, 12, 1):
        raise DataError(f"--published {text}: police.uk published nothing then; check the date")
    return day


@app.command()
def coverage(
    db: DbOption = None,
    source: Annotated[str | None, typer.Option(help="street, outcomes or stop-and-search.")] = None,
    gaps_only: Annotated[
        bool, typer.Option("--gaps", help="Show only the missing months.")
    ] = False,
    fmt: FormatOption = Format.table,
) -> None:
    """Which months each source covers; a month with no file is a gap."""
    with _open(_settings(db)) as store:
        frame = queries.coverage(store, source)
    if gaps_only:
        frame = frame.filter(~pl.col("covered"))
    _emit(frame, fmt, "Coverage (rows — = no file for that month: a gap)")
    if fmt is Format.table:
        gaps = frame.filter(~pl.col("covered"))
        for kind, month in gaps.select("source_kind", "month").iter_rows():
            out.print(f"[yellow]gap[/]: {kind} {month} has no file; download it or accept the gap")


@app.command()
def quarantine(
    db: DbOption = None,
    import_id: Annotated[int | None, typer.Option(help="Only this import.")] = None,
    file: Annotated[
        str | None, typer.Option(help="Only files whose path contains this text.")
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many rows.")] = 1000,
    fmt: FormatOption = Format.table,
) -> None:
    """Rows that could not be used: file, line, reason and the raw text."""
    with _open(_settings(db)) as store:
        frame = queries.quarantine(store, import_id, file, limit)
        # refused rows are shown raw, and a SOC file's rows name people
        query = {"import_id": import_id, "file": file, "limit": limit}
        _disclosed(store, "placeharm quarantine", "quarantine", frame.height, query)
    _emit(frame, fmt, "Quarantine")
    if fmt is Format.table and frame.is_empty():
        out.print("Nothing is quarantined: every row read so far was usable.")


@app.command()
def imports(db: DbOption = None, limit: int = 50, fmt: FormatOption = Format.table) -> None:
    """The import log, newest first."""
    with _open(_settings(db)) as store:
        frame = queries.imports(store, limit).drop("file_sha256")
    if fmt is Format.table:  # the file name matters more than its folder on a screen
        frame = frame.drop("finished_at").with_columns(
            pl.col("source_file").str.split("/").list.last(),
            pl.col("started_at").dt.strftime("%Y-%m-%d %H:%M:%S"),
        )
    _emit(frame, fmt, "Imports")


@app.command()
def counts(
    by: Annotated[str, typer.Option(help="Area set, e.g. ward, lsoa, msoa.")] = "ward",
    from_month: Annotated[
        str | None, typer.Option("--from", help="First month, YYYY-MM (default: first held).")
    ] = None,
    to_month: Annotated[
        str | None, typer.Option("--to", help="Last month, YYYY-MM (default: last held).")
    ] = None,
    crime_type: Annotated[
        list[str] | None, typer.Option("--type", help="Crime type (repeatable).")
    ] = None,
    by_month: Annotated[
        bool, typer.Option("--by-month", help="A column per month (gaps empty).")
    ] = False,
    limit: Annotated[int | None, typer.Option(help="Only the top N areas.")] = None,
    db: DbOption = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Crimes by area over a period; missing months are reported as gaps, never zeros."""
    with _open(_settings(db)) as store:
        if from_month and to_month:
            first, last = _month(from_month), _month(to_month)
        else:
            held_first, held_last = queries.held_months(store)
            first = _month(from_month) if from_month else held_first
            last = _month(to_month) if to_month else held_last
        result = queries.counts(store, by, first, last, crime_type, by_month)
    if limit:
        result.table = result.table.head(limit)
    if fmt is Format.json:
        sys.stdout.write(json.dumps(result.to_dict(), default=str, indent=2) + "\n")
        return
    table = result.table
    _emit(table, fmt, f"Records by {by}, {result.first_month} to {result.last_month}")
    if fmt is Format.table and result.gap_months:
        err.print(
            f"[yellow]Note[/]: no data for {', '.join(result.gap_months)} (gap); totals cover "
            f"{len(result.months) - len(result.gap_months)} of {len(result.months)} months."
        )
    if fmt is Format.table and result.partial_months:
        err.print(
            f"[yellow]Note[/]: {', '.join(result.partial_months)} held from API responses only: "
            "figures cover just the areas those responses were requested for.",
            highlight=False,
        )


@app.command()
def demo(
    db: DbOption = None,
    top: Annotated[int, typer.Option(help="Wards to print.")] = 20,
    serve_app: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Start the dashboard afterwards.")
    ] = True,
    host: Annotated[str, typer.Option(help="Address to serve on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to serve on.")] = 8000,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="App processes sharing the port: more than 1 needs the PostgreSQL store.",
        ),
    ] = 1,
) -> None:
    """Build the demo store (bundled real Northumbria slice, synthetic SOC overlay, demo
    users), rank wards by harm, then start the dashboard."""
    settings = _settings(db)
    if serve_app:
        from placeharm.web.workers import check_workers

        check_workers(settings, workers)  # before building: refused at once
    with _open(settings) as store:
        result = demo_service.build_demo(store, settings.threads)
        _summary(result.results)
        if not store.soc_frame("soc_nominals").height:
            soc_service.build_overlay(store, seed=1, threads=settings.threads)
        logins = auth_service.create_demo_users(store)
        ranked = harm_service.rank(
            store,
            "ward",
            _month(demo_service.DEMO_FIRST_MONTH),
            _month(demo_service.DEMO_LAST_MONTH),
            harm_cli._index(settings, None, None, store),
        )
    meta = ranked.meta
    table = ranked.table.head(top).select(
        "rank",
        "area_code",
        "area_name",
        "records",
        pl.col("harm").round(0),
        (pl.col("harm_share") * 100).round(1).alias("harm_%"),
        "population",
        pl.col("harm_per_resident").round(2),
    )
    index = meta["index"]
    assert isinstance(index, dict)
    _emit(
        table,
        Format.table,
        f"Top {top} wards by harm ({index['title']}), {meta['first_month']} to "
        f"{meta['last_month']}: real data.police.uk slice (OGL v3.0)",
    )
    gaps = meta["gap_months"]
    assert isinstance(gaps, list)
    err.print(
        f"[yellow]Note[/]: {', '.join(gaps)} has no published data (a gap); "
        f"figures cover {meta['months_covered']} of {meta['months']} months. Harm = records x "
        "the ONS Crime Severity Score weight of their police.uk crime type (ASB 0); see "
        "docs/harm.md.",
        highlight=False,
    )
    command = _command_name()
    shown = shown_db(settings.db)
    out.print(
        f"Store: {shown}. Try: {command} compare --by ward --db {shown}\n"
        f"      or: {command} soc rank --db {shown}\n"
        f"      or: {command} --help",
        highlight=False,
    )
    if serve_app:
        _serve(settings, host, port, None, logins, workers)


WORKER_HEALTHCHECK_S = 60


def _serve(
    settings: Settings,
    host: str,
    port: int,
    drop: Path | None,
    logins: dict[str, str] | None,
    workers: int = 1,
) -> None:
    import uvicorn

    from placeharm.web import workers as web_workers
    from placeharm.web.app import create_app

    web_workers.check_workers(settings, workers)

    out.print(f"\n[bold]Dashboard: http://{host}:{port}/[/]  (Ctrl+C to stop)", highlight=False)
    if logins:
        out.print("Demo sign-ins (one per role; demo only):", highlight=False)
        for username, password in logins.items():
            out.print(f"  {username:<11} {password}", highlight=False)
    if drop:
        out.print(f"Watching {drop} for new files.", highlight=False)
    # the server log is the administrator's: it keeps tracebacks (never sent to a browser)
    _log_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    if workers > 1:  # issue 17: N processes on one socket, each its own app (app factory)
        _open(settings).close()  # the store reachable and migrated before any worker starts
        out.print(f"{workers} worker processes on {shown_db(settings.db)}.", highlight=False)
        web_workers.hand_over(settings, drop)
        uvicorn.run(
            web_workers.APP_FACTORY,
            factory=True,
            workers=workers,
            host=host,
            port=port,
            log_level="warning",
            # a worker answers the supervisor's health check only once its interpreter has
            # imported placeharm: seconds on a busy machine, so allow a minute before it is
            # counted as hung and replaced (uvicorn's 5 s restarted them in a loop)
            timeout_worker_healthcheck=WORKER_HEALTHCHECK_S,
        )
        return
    uvicorn.run(create_app(settings, drop), host=host, port=port, log_level="warning")


users_app = typer.Typer(help="Local user accounts for the dashboard.", no_args_is_help=True)
app.add_typer(users_app, name="users")


@users_app.command("add")
def users_add(
    username: Annotated[str, typer.Argument(help="Sign-in name.")],
    role: Annotated[
        str,
        typer.Option(
            help="officer, analyst, supervisor, senior_leader, partner, admin or auditor."
        ),
    ],
    name: Annotated[str, typer.Option(help="Display name (a role title, e.g. 'PCSO, Westgate').")],
    password: Annotated[
        str,
        typer.Option(
            prompt=True,
            hide_input=True,
            confirmation_prompt=True,
            help="At least 12 characters (asked for if not given).",
        ),
    ],
    db: DbOption = None,
) -> None:
    """Create a user account (argon2id password hash; the password rules apply)."""
    from placeharm.services.policy import Role

    if role not in {r.value for r in Role}:
        raise DataError(f"unknown role {role!r}; use one of: {', '.join(r.value for r in Role)}")
    with _users_store(db) as store, store.transaction():
        if store.user(username) is not None:
            raise DataError(
                f"user {username} already exists; change it with `placeharm users role`, "
                "`users password`, `users disable` or `users enable`"
            )
        auth_service.create_user(store, username, name, role, password)
        audit.log_for(store).record(
            store,
            audit.Actor.cli(),
            "alteration",
            "user",
            "placeharm users add",
            fmt="cli",
            record_ids={"user": [username]},
            query={"role": role},
        )
    out.print(f"User {username} ({role}) saved.", highlight=False)


@users_app.command("list")
def users_list(db: DbOption = None, fmt: FormatOption = Format.table) -> None:
    """The user accounts (never their passwords)."""
    with _open(_settings(db)) as store:
        _emit(store.users(), fmt, "Users (sessions: open sessions in the store)")


def _users_store(db: Path | str | None) -> AnyStore:
    """The store for an account change. DuckDB lets one process open a store file for
    writing, so while the dashboard runs on it this refuses (change accounts on the admin
    page instead, which also ends sessions the server holds in memory)."""
    try:
        return _open(_settings(db))
    except StoreError as exc:
        if "another process" not in str(exc):  # damaged, full, read-only: its own advice
            raise
        raise StoreError(
            f"{exc}\nIs the dashboard running on this store? Stop it first, or make the "
            "change on its admin page (/admin)."
        ) from exc


def _ended(count: int) -> str:
    return f"{count} session{'s' if count != 1 else ''} ended"


@users_app.command("disable")
def users_disable(
    username: Annotated[str, typer.Argument(help="Sign-in name.")], db: DbOption = None
) -> None:
    """Disable an account: it cannot sign in, and all its sessions end at once."""
    with _users_store(db) as store:
        ended = auth_service.disable_user(store, username, audit.Actor.cli())
    out.print(f"User {username} disabled; {_ended(ended)}.", highlight=False)


@users_app.command("enable")
def users_enable(
    username: Annotated[str, typer.Argument(help="Sign-in name.")], db: DbOption = None
) -> None:
    """Enable a disabled account again (it signs in afresh)."""
    with _users_store(db) as store:
        auth_service.enable_user(store, username, audit.Actor.cli())
    out.print(f"User {username} enabled.", highlight=False)


@users_app.command("role")
def users_role(
    username: Annotated[str, typer.Argument(help="Sign-in name.")],
    role: Annotated[
        str,
        typer.Argument(help="officer, analyst, supervisor, senior_leader, partner or admin."),
    ],
    db: DbOption = None,
) -> None:
    """Change an account's role; all its sessions end at once."""
    with _users_store(db) as store:
        ended = auth_service.set_role(store, username, role, audit.Actor.cli())
    out.print(f"User {username} is now {role}; {_ended(ended)}.", highlight=False)


@users_app.command("password")
def users_password(
    username: Annotated[str, typer.Argument(help="Sign-in name.")],
    password: Annotated[
        str,
        typer.Option(
            prompt="New password",
            hide_input=True,
            confirmation_prompt=True,
            help="The new password (asked for if not given; the password rules apply).",
        ),
    ],
    db: DbOption = None,
) -> None:
    """Set (reset) an account's password; all its sessions end at once."""
    with _users_store(db) as store:
        ended = auth_service.set_password(store, username, password, audit.Actor.cli())
    out.print(f"Password of {username} set; {_ended(ended)}.", highlight=False)


@app.command()
def serve(
    db: DbOption = None,
    host: Annotated[str, typer.Option(help="Address to serve on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to serve on.")] = 8000,
    drop: Annotated[
        Path | None, typer.Option(help="A folder to watch for new files to import.")
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="App processes sharing the port: more than 1 needs the PostgreSQL store.",
        ),
    ] = 1,
) -> None:
    """Start the dashboard on the store (accounts: `placeharm users add`)."""
    _serve(_settings(db), host, port, drop, None, workers)


@areas_app.command("import")
def areas_import(
    file: Annotated[Path, typer.Argument(help="GeoJSON, GeoPackage or Shapefile (WGS84 or BNG).")],
    name: Annotated[str, typer.Option(help="Area set name, e.g. lsoa, ward, msoa, chb_sites.")],
    code_field: Annotated[str | None, typer.Option(help="Attribute with the area code.")] = None,
    name_field: Annotated[str | None, typer.Option(help="Attribute with the area name.")] = None,
    db: DbOption = None,
) -> None:
    """Import a boundary file as a named area set (records are assigned at the next ingest)."""
    with _open(_settings(db)) as store:
        result = area_service.import_areas(store, file, name, code_field, name_field)
    info = result.info
    out.print(
        f"Area set {info.name!r}: {info.feature_count} areas from {file} "
        f"({info.code_field}/{info.name_field}, {info.source_crs}); "
        f"{len(result.repaired)} repaired, {len(result.rejected)} rejected."
    )
    for item in result.repaired:
        out.print(f"  repaired invalid geometry: {item}")
    for row in result.rejected:
        err.print(
            f"  [red]rejected[/] feature {row.line}: {escape(f'{row.raw_text}: {row.reason}')}"
        )
    out.print(
        "Run `placeharm areas assign` (or the next `placeharm ingest`) to assign stored records."
    )


@areas_app.command("list")
def areas_list(db: DbOption = None, fmt: FormatOption = Format.table) -> None:
    """The area sets held, with their source and whether records are assigned."""
    with _open(_settings(db)) as store:
        sets = store.area_sets()
    frame = pl.DataFrame(
        [
            {
                "name": s.name,
                "areas": s.feature_count,
                "repaired": s.repaired_count,
                "rejected": s.rejected_count,
                "assigned": s.assigned,
                "crs": s.source_crs,
                "source_file": s.source_file,
            }
            for s in sets
        ]
    )
    _emit(frame, fmt, "Area sets")


@areas_app.command("assign")
def areas_assign(
    db: DbOption = None,
    tolerance_m: Annotated[
        float, typer.Option(help="LSOA reconciliation distance in metres (0: off).")
    ] = 25.0,
) -> None:
    """Assign stored records to area sets imported since the last assignment."""
    settings = _settings(db)
    with _open(settings) as store:
        done = area_service.assign_pending(store, settings.threads, tolerance_m)
    if not done:
        out.print("Every area set is already assigned.")
    for name, rows in done.items():
        out.print(f"Assigned {rows:,} records to area set {name!r}.")


@areas_app.command("lookup")
def areas_lookup(
    file: Annotated[Path, typer.Argument(help="Lookup CSV, e.g. lookup_lsoa11_msoa11.csv.")],
    from_set: Annotated[str, typer.Option(help="Lower level, e.g. lsoa.")],
    from_column: Annotated[str, typer.Option(help="Column with the lower level's code.")],
    to_set: Annotated[str, typer.Option(help="Higher level, e.g. msoa, lad, force.")],
    to_column: Annotated[str, typer.Option(help="Column with the higher level's code.")],
    to_name_column: Annotated[
        str | None, typer.Option(help="Column with the higher level's name.")
    ] = None,
    db: DbOption = None,
) -> None:
    """Load a hierarchy lookup (LSOA -> ward -> MSOA -> local authority -> force)."""
    with _open(_settings(db)) as store:
        n = area_service.import_lookup(
            store, file, from_set, from_column, to_set, to_column, to_name_column
        )
    out.print(f"Loaded {n:,} {from_set} -> {to_set} links from {file}.")


@areas_app.command("parents")
def areas_parents(
    area_set: Annotated[str, typer.Argument(help="Area set of the code, e.g. lsoa.")],
    code: Annotated[str, typer.Argument(help="Area code, e.g. E01008288.")],
    db: DbOption = None,
    fmt: FormatOption = Format.table,
) -> None:
    """The areas above one area, following the loaded lookups."""
    with _open(_settings(db)) as store:
        chain = area_service.parents(store, area_set, code)
    frame = pl.DataFrame(chain, schema=["area_set", "area_code", "area_name"], orient="row")
    _emit(frame, fmt, f"Areas above {area_set} {code}")
    if fmt is Format.table and not chain:
        out.print(
            f"No lookup from {area_set} {code} is loaded. Load the ONS lookups with "
            "`placeharm areas lookup` (see docs/areas.md)."
        )


_debug = False  # --debug (or the `debug` setting): show tracebacks


def _print_version(value: bool) -> None:
    """--version (issue 18): this placeharm's version, commit and the schema it writes."""
    if value:
        from placeharm.version import describe

        out.print(describe().line(), highlight=False, markup=False)
        raise typer.Exit()


_log_handler: logging.Handler = logging.NullHandler()  # main()'s, on standard error


@app.callback()
def _options(
    debug: Annotated[
        bool,
        typer.Option(
            "--debug",
            help="Print the full traceback of a failure (else only the message).",
            envvar="PLACEHARM_DEBUG",
        ),
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            is_eager=True,
            callback=_print_version,
            help="Print the version, git commit and store schema, then exit.",
        ),
    ] = False,
) -> None:
    """placeharm: serious and organised crime harm by place."""
    global _debug
    if debug:
        _debug = True
        _log_handler.setFormatter(_formatter(True))


class _Brief(logging.Formatter):
    """Log lines without tracebacks: only --debug shows them to the user."""

    def formatException(self, ei: object) -> str:
        return ""

    def formatStack(self, stack_info: str) -> str:
        return ""

    def format(self, record: logging.LogRecord) -> str:
        record.exc_text = None  # never one cached by another handler
        return super().format(record)


def _formatter(debug: bool) -> logging.Formatter:
    fmt = "%(levelname)s %(name)s: %(message)s"
    return logging.Formatter(fmt) if debug else _Brief(fmt)


def _debugging() -> bool:
    """--debug given, or the `debug` setting (environment or config file) on."""
    if _debug:
        return True
    try:
        return load_settings().debug
    except BaseException as exc:  # settings that do not load: the command said so already
        if is_fatal(exc):
            raise
        return False


# -- the store's lifecycle: backup and restore (issue 13; docs/ingest.md, The store) ---------


def _refuse_read_only(store: AnyStore, what: str) -> None:
    if store.read_only:
        raise StoreError(
            f"the store {store.path} is open read-only (the file or its folder cannot be "
            f"written, or the read_only setting is on), so nothing can be {what}. Queries "
            "work; make the file writable to change it."
        )


@app.command()
def backup(
    dest: Annotated[Path, typer.Argument(help="The copy to write (a new file).")],
    db: DbOption = None,
) -> None:
    """Write a consistent copy of the store to DEST (while the dashboard runs on the store,
    back it up from the dashboard's admin page instead: it holds the store)."""
    settings = _settings(db)
    try:
        store = _open(settings)
    except StoreError as exc:
        raise StoreError(
            f"{exc}\nIf the dashboard is running on this store, make the backup on its admin "
            "page (Back up now) or with POST /admin/backup: it writes a consistent copy into "
            "the backup_dir folder while it serves."
        ) from exc
    with store:
        _refuse_read_only(store, "recorded in its audit log (a backup discloses every record)")
        info = back_up(store, dest, audit.Actor.cli(), "placeharm backup")
    out.print(
        f"Backed up {shown_db(settings.db)} to {dest}: schema version {info['schema_version']}, "
        f"{sum(info['rows'].values()):,} rows in {len(info['rows'])} tables, "
        f"{info['bytes']:,} bytes.",
        highlight=False,
    )


@app.command()
def restore(
    source: Annotated[Path, typer.Argument(help="A backup made by `placeharm backup`.")],
    db: DbOption = None,
) -> None:
    """Put a backup in place of the store: the backup is checked first (it opens, every
    block reads, its schema is known) and the current file is kept aside. Stop the dashboard
    first."""
    from placeharm.store.duckdb import restore_store

    settings = _settings(db)
    if is_server_url(settings.db):
        raise StoreError(
            "the store is a PostgreSQL database: restore it with pg_restore (docs/deploy.md, "
            "Backups); `placeharm restore` puts a DuckDB backup file in place of a DuckDB store"
        )
    target = Path(settings.db)
    kept = restore_store(source, target)
    try:
        with _open(settings) as store:  # upgrades a backup of an older schema
            _refuse_read_only(store, "restored")
            audit.log_for(store).record(
                store,
                audit.Actor.cli(),
                "alteration",
                "store",
                "placeharm restore",
                fmt="cli",
                query={"file": source.name, "kept": kept.name if kept else ""},
            )
            version = store.schema_version()
    except BaseException:  # not opened or not recorded: put the store back as it was
        if kept is not None:
            kept.replace(target)
            if Path(f"{kept}.wal").exists():
                Path(f"{kept}.wal").replace(Path(f"{target}.wal"))
        else:
            target.unlink(missing_ok=True)
        raise
    out.print(f"Restored {source} to {target} (schema version {version}).", highlight=False)
    if kept is not None:
        out.print(f"The previous store file is kept as {kept}.", highlight=False)


def main() -> None:
    """Entry point: turn placeharm errors into messages and exit codes; a traceback only
    with --debug (or the `debug` setting)."""
    global _debug, _log_handler
    _debug = False
    root = logging.getLogger()
    root.removeHandler(_log_handler)
    _log_handler = logging.StreamHandler()
    _log_handler.setLevel(logging.WARNING)
    _log_handler.setFormatter(_formatter(_debugging()))
    root.addHandler(_log_handler)
    try:
        app()
    except PlaceharmError as exc:
        if _debugging():
            err.print("".join(traceback.format_exception(exc)), highlight=False, markup=False)
        err.print(f"[bold red]error[/]: {escape(str(exc))}")
        code = next((c for kind, c in _EXIT.items() if isinstance(exc, kind)), 1)
        sys.exit(code)
    except BaseException as exc:  # a native library's panic (pyo3) is not an Exception
        if is_fatal(exc):
            raise
        sys.exit(_unexpected(exc))


def _unexpected(exc: BaseException) -> int:
    """A failure placeharm did not foresee: one message (what, and where the details are),
    never a traceback on screen unless --debug; exit code 1."""
    if _debugging():
        err.print("".join(traceback.format_exception(exc)), highlight=False, markup=False)
        err.print(
            f"[bold red]error[/]: an unexpected failure stopped the command "
            f"({type(exc).__name__}; the traceback is above). Each file is one transaction: "
            f"files imported before it are kept (see `placeharm imports`), the file in "
            f"progress is not. Please report it.",
            highlight=False,
        )
        return 1
    details = Path(tempfile.mkstemp(prefix="placeharm-error-", suffix=".txt")[1])
    details.write_text("".join(traceback.format_exception(exc)))
    err.print(
        f"[bold red]error[/]: an unexpected failure stopped the command "
        f"({type(exc).__name__}). Each file is one transaction: files imported before it "
        f"are kept (see `placeharm imports`), the file in progress is not. The details are "
        f"in {details}; please report them.",
        highlight=False,
    )
    return 1
