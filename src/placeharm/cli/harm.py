"""Harm commands: rank, compare, series, concentration, css, harm indices, populations."""

from __future__ import annotations

import datetime as dt
import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import polars as pl
import typer

from placeharm.cli.common import (
    DbOption,
    Format,
    FormatOption,
    _emit,
    _month,
    _open,
    _settings,
    err,
    out,
)
from placeharm.config import Settings
from placeharm.harm import HarmIndex, builtin_index, custom_index, load_index
from placeharm.services import harm as harm_service
from placeharm.services import indices as index_service
from placeharm.services import population as population_service
from placeharm.services import queries
from placeharm.services.harm import HarmResult
from placeharm.store import is_server_url
from placeharm.store.base import Store

harm_app = typer.Typer(help="Harm indices: list them and show their weights.", no_args_is_help=True)


class Against(StrEnum):
    previous = "previous"
    year = "year"


ByOption = Annotated[str, typer.Option("--by", help="Area set, e.g. ward, lsoa, msoa.")]
FromOption = Annotated[
    str | None, typer.Option("--from", help="First month, YYYY-MM (default: see the command).")
]
ToOption = Annotated[
    str | None, typer.Option("--to", help="Last month, YYYY-MM (default: last held).")
]
TypeOption = Annotated[
    list[str] | None, typer.Option("--type", help="Only this crime type (repeatable).")
]
CodeOption = Annotated[
    list[str] | None,
    typer.Option("--offence-code", help="Only this Home Office offence code (repeatable)."),
]
IndexOption = Annotated[
    str | None,
    typer.Option(
        "--index",
        help="Harm index: css, css:<force>, cchi, cchi:<force>, a registered custom index "
        "(placeharm harm list), or a local CSV/YAML file (default: PLACEHARM_HARM_INDEX or css).",
    ),
]
AsbOption = Annotated[
    float | None,
    typer.Option("--asb-weight", help="Weight for anti-social behaviour (index default: 0)."),
]


def _is_file(spec: str) -> bool:
    """A spec the command line reads as a local file (the CLI user is on the server; the web
    never reads a file)."""
    return "/" in spec or spec.lower().endswith((".csv", ".yaml", ".yml"))


def _index(
    settings: Settings, spec: str | None, asb_weight: float | None, store: Store | None
) -> HarmIndex:
    """The index a command asked for: a local file, else a shipped or registered name (the
    registry needs the store; without one, shipped names only)."""
    weight = asb_weight if asb_weight is not None else settings.asb_weight
    spec = spec or settings.harm_index
    if _is_file(spec):
        return custom_index(Path(spec)).with_asb_weight(weight)
    if store is None:
        return load_index(spec, weight)
    return index_service.resolve(store, spec, weight)


def _period(
    store: Store, from_month: str | None, to_month: str | None, default_months: int | None
) -> tuple[dt.date, dt.date]:
    """The months asked for; by default the last `default_months` held (None: all held)."""
    first = _month(from_month) if from_month else None
    last = _month(to_month) if to_month else None
    return queries.default_period(store, first, last, default_months)


def _index_line(result: HarmResult) -> str:
    index = result.meta["index"]
    assert isinstance(index, dict)
    secondary = " [secondary index]" if index["secondary"] else ""
    return (
        f"Harm index {index['name']}{secondary}: {index['title']}; type weights from "
        f"{index['type_weights_from']}; ASB weight {index['asb_weight']}. "
        f"Edition: {index['edition']}"
    )


def _show(result: HarmResult, fmt: Format, title: str, limit: int | None = None) -> None:
    if fmt is Format.json:
        if limit:
            result.table = result.table.head(limit)
        sys.stdout.write(json.dumps(result.to_dict(), default=str, indent=2) + "\n")
        return
    table = result.table.head(limit) if limit else result.table
    if fmt is Format.table:
        floats = [c for c, t in table.schema.items() if t == pl.Float64]
        table = table.with_columns(pl.col(floats).round(4))
        if "index" in result.meta:
            out.print(_index_line(result), highlight=False)
    _emit(table, fmt, title)
    for note in result.notes:
        err.print(f"[yellow]Note[/]: {note}", highlight=False)


def register(app: typer.Typer, areas_app: typer.Typer) -> None:
    """Add the harm commands to the `placeharm` app."""
    app.command("rank")(rank)
    app.command("compare")(compare)
    app.command("series")(series)
    app.command("concentration")(concentration)
    app.command("css")(css)
    app.add_typer(harm_app, name="harm")
    areas_app.command("population")(areas_population)


def rank(
    by: ByOption = "ward",
    from_month: FromOption = None,
    to_month: ToOption = None,
    crime_type: TypeOption = None,
    offence_code: CodeOption = None,
    index: IndexOption = None,
    asb_weight: AsbOption = None,
    limit: Annotated[int | None, typer.Option(help="Only the top N areas.")] = None,
    db: DbOption = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Areas ranked by harm (default: the last 12 months held): count, harm, share, per resident."""
    settings = _settings(db)
    with _open(settings) as store:
        harm_index = _index(settings, index, asb_weight, store)
        first, last = _period(store, from_month, to_month, 12)
        result = harm_service.rank(store, by, first, last, harm_index, crime_type, offence_code)
    title = f"{by} areas ranked by harm, {first:%Y-%m} to {last:%Y-%m}"
    _show(result, fmt, title, limit)


def compare(
    by: ByOption = "ward",
    from_month: FromOption = None,
    to_month: ToOption = None,
    against: Annotated[
        Against,
        typer.Option(help="previous: the period just before; year: the same months a year back."),
    ] = Against.previous,
    crime_type: TypeOption = None,
    offence_code: CodeOption = None,
    index: IndexOption = None,
    asb_weight: AsbOption = None,
    limit: Annotated[int | None, typer.Option(help="Only the top N areas.")] = None,
    db: DbOption = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Harm this period against the previous one or a year earlier, like for like (default:
    the last 3 months held)."""
    settings = _settings(db)
    with _open(settings) as store:
        harm_index = _index(settings, index, asb_weight, store)
        first, last = _period(store, from_month, to_month, 3)
        result = harm_service.compare(
            store, by, first, last, against.value, harm_index, crime_type, offence_code
        )
    title = (
        f"{by} harm, {first:%Y-%m}..{last:%Y-%m} against "
        f"{result.meta['previous_first_month']}..{result.meta['previous_last_month']}"
    )
    _show(result, fmt, title, limit)


def series(
    by: ByOption = "ward",
    from_month: FromOption = None,
    to_month: ToOption = None,
    area: Annotated[
        list[str] | None, typer.Option("--area", help="Only this area code (repeatable).")
    ] = None,
    crime_type: TypeOption = None,
    offence_code: CodeOption = None,
    index: IndexOption = None,
    asb_weight: AsbOption = None,
    wide: Annotated[bool, typer.Option(help="One row per area, a harm column per month.")] = False,
    db: DbOption = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Monthly records and harm per area (default: every month held); gaps are empty."""
    settings = _settings(db)
    with _open(settings) as store:
        harm_index = _index(settings, index, asb_weight, store)
        first, last = _period(store, from_month, to_month, None)
        result = harm_service.series(
            store, by, first, last, harm_index, area, crime_type, offence_code
        )
    if wide:
        result.table = result.table.pivot(
            on="month", index=["area_code", "area_name"], values="harm", maintain_order=True
        )
    _show(result, fmt, f"Monthly harm by {by}, {first:%Y-%m} to {last:%Y-%m}")


def concentration(
    by: ByOption = "ward",
    from_month: FromOption = None,
    to_month: ToOption = None,
    top_percent: Annotated[
        list[float] | None,
        typer.Option("--top-percent", help="Share of harm in the top N% of areas (repeatable)."),
    ] = None,
    top_areas: Annotated[
        int | None, typer.Option("--top-areas", help="Also: share of harm in the top N areas.")
    ] = None,
    lorenz: Annotated[bool, typer.Option(help="Print the Lorenz curve points instead.")] = False,
    crime_type: TypeOption = None,
    offence_code: CodeOption = None,
    index: IndexOption = None,
    asb_weight: AsbOption = None,
    db: DbOption = None,
    fmt: FormatOption = Format.table,
) -> None:
    """How concentrated harm is: top N% of areas, Gini, Lorenz curve (default: last 12 months)."""
    settings = _settings(db)
    with _open(settings) as store:
        harm_index = _index(settings, index, asb_weight, store)
        first, last = _period(store, from_month, to_month, 12)
        result = harm_service.concentration(
            store,
            by,
            first,
            last,
            harm_index,
            tuple(top_percent) if top_percent else (1, 5, 10, 20, 50),
            top_areas,
            crime_type,
            offence_code,
        )
    if lorenz:
        result.table = result.extra.pop("lorenz")
    title = (
        f"Harm concentration across {result.meta['areas']} {by} areas, {first:%Y-%m} to "
        f"{last:%Y-%m}: Gini {result.meta['gini']:.3f}"
    )
    _show(result, fmt, title)


def css(
    counts: Annotated[
        Path, typer.Option("--counts", help="CSV: area, offence code, number of offences.")
    ],
    population: Annotated[
        Path, typer.Option("--population", help="CSV: area code or name, population.")
    ],
    index: IndexOption = None,
    area_column: Annotated[
        str | None, typer.Option(help="Column of the counts file naming the area.")
    ] = None,
    population_column: Annotated[
        str | None, typer.Option(help="Column of the population file to use.")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--out", help="Also write the table to this CSV file.")
    ] = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Crime Severity Score per area: sum(offences x weight) / resident population."""
    settings = _settings(None)
    spec = index or settings.harm_index
    if _is_file(spec) or not (is_server_url(settings.db) or Path(settings.db).exists()):
        harm_index = _index(settings, spec, None, None)
    else:  # a registered name needs the store's registry
        with _open(settings) as store:
            harm_index = _index(settings, spec, None, store)
    result = harm_service.css(counts, population, harm_index, area_column, population_column)
    if output:
        result.table.write_csv(output)
        err.print(f"Wrote {result.table.height} areas to {output}.")
    _show(result, fmt, f"Crime Severity Score from {counts.name}")


@harm_app.command("list")
def harm_list(db: DbOption = None, fmt: FormatOption = Format.table) -> None:
    """The harm indices a query may name: shipped, and custom ones registered in the store."""
    with _open(_settings(db)) as store:
        frame = index_service.listing(store)
    if fmt is Format.table:
        frame = frame.with_columns(pl.col("file_sha256").str.slice(0, 12))
    _emit(frame, fmt, "Harm indices (shipped, and registered with `placeharm harm add`)")


@harm_app.command("add")
def harm_add(
    file: Annotated[Path, typer.Argument(help="The index as CSV or YAML (docs/harm.md).")],
    name: Annotated[
        str,
        typer.Option("--name", help="Name to select it by: lowercase letters, digits, - and _."),
    ],
    edition: Annotated[
        str | None,
        typer.Option(help="Edition, e.g. 2026-11 (default: the file's own, else unversioned)."),
    ] = None,
    description: Annotated[
        str | None, typer.Option(help="What it is for, e.g. the tasking decision.")
    ] = None,
    db: DbOption = None,
) -> None:
    """Validate a custom harm index file once and register it in the store; the dashboard and
    every query can then select it by name. Stop the dashboard first (it holds the store)."""
    with _open(_settings(db)) as store:
        entry = index_service.add(store, file, name, edition, description)
    index = entry.index
    out.print(
        f"Registered harm index {index.name}: {len(index.code_weights)} offence-code and "
        f"{len(index.type_weights)} crime-type weights; edition {index.edition}; from "
        f"{entry.source_file} (sha256 {entry.file_sha256}), added by {entry.added_by}.",
        highlight=False,
    )


@harm_app.command("remove")
def harm_remove(
    name: Annotated[str, typer.Argument(help="A registered index's name.")],
    db: DbOption = None,
) -> None:
    """Unregister a custom harm index (links that name it then get the unknown-index 400)."""
    settings = _settings(db)
    with _open(settings) as store:
        if settings.harm_index.strip().lower() == name:
            err.print(
                f"[yellow]Note[/]: the harm_index setting names {name}; change it before the "
                "dashboard next starts, or it will refuse to start.",
                highlight=False,
            )
        index_service.remove(store, name)
    out.print(f"Removed harm index {name}.", highlight=False)


@harm_app.command("show")
def harm_show(
    name: Annotated[str, typer.Argument(help="css, cchi or a registered index.")] = "css",
    force: Annotated[
        str | None, typer.Option(help="That force's type weights, e.g. northumbria.")
    ] = None,
    codes: Annotated[bool, typer.Option(help="Offence-code weights instead of types.")] = False,
    db: DbOption = None,
    fmt: FormatOption = Format.table,
) -> None:
    """An index's weights per police.uk crime type (or per offence code)."""
    index = builtin_index(name, force) if name in ("css", "cchi") or force else None
    if index is None:
        with _open(_settings(db)) as store:
            index = index_service.resolve(store, name)
    frame = index.code_table() if codes else index.type_table()
    _emit(frame, fmt, f"{index.name}: {index.title} ({index.type_scope} type weights)")
    if fmt is Format.table:
        out.print(f"Edition: {index.edition}\nSource: {index.source}", highlight=False)


def areas_population(
    file: Annotated[
        Path | None, typer.Argument(help="Population CSV (omit with --from-set).")
    ] = None,
    set_name: Annotated[str, typer.Option("--set", help="Area set the figures are for.")] = "lsoa",
    year: Annotated[int, typer.Option(help="Year of the estimate, e.g. 2020.")] = 2020,
    from_set: Annotated[
        str | None,
        typer.Option(help="Build from this set's populations by best fit instead of a file."),
    ] = None,
    code_column: Annotated[str | None, typer.Option(help="Column with the area code.")] = None,
    population_column: Annotated[
        str | None, typer.Option(help="Column with the population.")
    ] = None,
    db: DbOption = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Load resident populations for a set (e.g. ONS LSOA estimates), or build them up."""
    if (file is None) == (from_set is None):
        raise typer.BadParameter("give a FILE, or --from-set to build from another set")
    with _open(_settings(db)) as store:
        if from_set:
            result = population_service.derive_population(store, set_name, from_set, year)
        else:
            assert file is not None
            result = population_service.import_population(
                store, file, set_name, year, code_column, population_column
            )
    if fmt is Format.json:
        sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n")
        return
    out.print(
        f"{result.stored} of {result.areas} {set_name} areas have a {year} population "
        f"(total {result.total:,.0f}; {result.method}); {result.not_in_set} rows were for "
        "areas outside this set.",
        highlight=False,
    )
    if result.areas_without:
        shown = ", ".join(result.areas_without[:10])
        more = (
            f" and {len(result.areas_without) - 10} more" if len(result.areas_without) > 10 else ""
        )
        err.print(f"[yellow]Note[/]: no population for {shown}{more}", highlight=False)
