"""SOC commands: import/export entities, the demo overlay, SOC ranking, ward and CHB views."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import polars as pl
import typer
from rich.markup import escape

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
from placeharm.cli.harm import AsbOption, FromOption, IndexOption, ToOption, _index, _period, _show
from placeharm.ingest.csvfile import ReadLimits
from placeharm.model import ImportResult
from placeharm.services import soc as soc_service
from placeharm.soc.importer import export_entity, import_entity, load_mapping
from placeharm.soc.measures import load_measures
from placeharm.soc.schema import ENTITIES

soc_app = typer.Typer(help="SOC overlay: SOC primary harm score, ward view.", no_args_is_help=True)

KindArg = Annotated[str, typer.Argument(help=f"Entity: {', '.join(ENTITIES)}.")]
MeasuresOption = Annotated[
    Path | None,
    typer.Option("--measures", help="Measures file (default: the shipped Northumbria nine)."),
]


def register(app: typer.Typer) -> None:
    app.command("import")(import_cmd)
    app.command("export")(export_cmd)
    app.command("demo-data")(demo_data)
    app.command("chb")(chb)
    app.add_typer(soc_app, name="soc")


def _accounts(results: list[ImportResult]) -> None:
    frame = pl.DataFrame(
        [
            {
                "file": Path(r.source_file).name,
                "kind": r.source_kind,
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
    for r in results:
        for q in r.quarantine_sample[:5]:
            err.print(
                "[yellow]quarantined[/] "
                + escape(f"{Path(q.source_file).name}:{q.line}: {q.reason}"),
                highlight=False,
            )
        if r.quarantined > 5:
            err.print(
                f"  ... {r.quarantined} in all: `placeharm quarantine --import-id {r.import_id}`",
                highlight=False,
            )


def import_cmd(
    kind: KindArg,
    file: Annotated[Path, typer.Argument(help="CSV export.")],
    mapping: Annotated[
        Path | None, typer.Option(help="YAML mapping of the export's columns and codes.")
    ] = None,
    db: DbOption = None,
) -> None:
    """Import a force's CSV export of one SOC entity (docs/reference/soc-schema.md)."""
    settings = _settings(db)
    loaded = load_mapping(mapping, kind) if mapping else None
    with _open(settings) as store:
        limits = ReadLimits.of(settings.max_decompressed_mb, settings.max_line_kb)
        result = import_entity(store, kind, file, loaded, threads=settings.threads, limits=limits)
    _accounts([result])


def export_cmd(
    kind: KindArg,
    file: Annotated[Path, typer.Argument(help="CSV file to write.")],
    db: DbOption = None,
) -> None:
    """Export every stored row of one SOC entity as CSV, in the documented schema."""
    with _open(_settings(db)) as store:
        n = export_entity(store, kind, file)
        try:
            _disclosed(store, "placeharm export", kind, n, {"kind": kind, "file": file.name})
        except BaseException:
            file.unlink(missing_ok=True)  # not logged: not given
            raise
    out.print(f"Wrote {n:,} {kind} rows to {file}.")


def demo_data(
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same data.")] = 1,
    scale: Annotated[int, typer.Option(help="Multiply groups, people and events.")] = 1,
    keep: Annotated[
        Path | None, typer.Option("--out", help="Also keep the generated CSVs in this folder.")
    ] = None,
    db: DbOption = None,
) -> None:
    """Generate and import the synthetic SOC overlay (DEMO DATA) on the stored police.uk
    crimes; needs the `ward` area set (run `placeharm demo` first)."""
    settings = _settings(db)
    with _open(settings) as store:
        result = soc_service.build_overlay(store, seed, scale, keep, settings.threads)
    _accounts(result.results)
    err.print(
        f"[bold yellow]{soc_service.DEMO_BANNER}[/]; every row is flagged synthetic.",
        highlight=False,
    )
    if keep:
        out.print(f"CSV files kept in {keep}.")


@soc_app.command("rank")
def soc_rank(
    by: Annotated[str, typer.Option("--by", help="Area set.")] = "ward",
    from_month: FromOption = None,
    to_month: ToOption = None,
    index: IndexOption = None,
    asb_weight: AsbOption = None,
    measures: MeasuresOption = None,
    limit: Annotated[int | None, typer.Option(help="Only the top N areas.")] = None,
    db: DbOption = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Areas ranked by SOC primary harm score (default: the last 12 months held), each
    measure's count and harm, change against the previous period."""
    settings = _settings(db)
    measure_set = load_measures(measures)
    with _open(settings) as store:
        harm_index = _index(settings, index, asb_weight, store)
        first, last = _period(store, from_month, to_month, 12)
        result = soc_service.soc_rank(store, by, first, last, harm_index, measure_set)
    if fmt is Format.table:
        keep = [
            "rank",
            "area_code",
            "area_name",
            "soc_harm",
            "harm_share",
            "change",
            "rank_movement",
            *[m.id for m in measure_set.measures],
        ]
        result.table = result.table.select(keep)
    _show(
        result, fmt, f"{by} areas by SOC primary harm score, {first:%Y-%m} to {last:%Y-%m}", limit
    )


@soc_app.command("ward")
def soc_ward(
    ward: Annotated[str, typer.Argument(help="Ward code, e.g. E05001111.")],
    by: Annotated[str, typer.Option("--by", help="Area set of the code.")] = "ward",
    from_month: FromOption = None,
    to_month: ToOption = None,
    index: IndexOption = None,
    measures: MeasuresOption = None,
    db: DbOption = None,
    fmt: FormatOption = Format.table,
) -> None:
    """One ward: monthly crime, ASB, SOC crimes, incidents, intelligence; its measures,
    groups and latest graded intelligence (default: the last 12 months held)."""
    settings = _settings(db)
    with _open(settings) as store:
        harm_index = _index(settings, index, None, store)
        first, last = _period(store, from_month, to_month, 12)
        result = soc_service.ward_view(
            store, ward, first, last, by, harm_index, load_measures(measures)
        )
        latest = result.extra["latest_intelligence"]
        _disclosed(  # the ward's latest intelligence is shown: a consultation, as on the web
            store,
            "placeharm soc ward",
            "ward",
            result.table.height + latest.height,
            {"by": by, "from": f"{first:%Y-%m}", "to": f"{last:%Y-%m}"},
            action="consultation",
            record_ids={
                by: [ward],
                "intelligence": [str(v) for v in latest["intel_id"]]
                if "intel_id" in latest.columns
                else [],
            },
        )
    if fmt is not Format.table:
        _show(result, fmt, "")
        return
    meta = result.meta
    ranked = (
        f"rank {meta['rank']} of {meta['areas_ranked']} with SOC harm"
        if meta["rank"] is not None
        else "no SOC harm recorded in this period"
    )
    title = (
        f"{meta['area_name']} ({ward}): SOC primary harm {meta['soc_harm']:,.0f}, "
        f"{ranked}, {first:%Y-%m} to {last:%Y-%m}"
    )
    _emit(result.table, Format.table, title)
    _emit(
        result.extra["measures"].with_columns(pl.col("harm").round(1)), Format.table, "SOC measures"
    )
    _emit(result.extra["groups"], Format.table, "Groups with members living here")
    _emit(result.extra["latest_intelligence"], Format.table, "Latest intelligence (3x5x2)")
    for note in result.notes:
        err.print(f"[yellow]Note[/]: {note}", highlight=False)


def chb(
    site: Annotated[str, typer.Argument(help="CHB site code (the `chb` area set), or `evaluate`.")],
    evaluate_site: Annotated[
        str | None,
        typer.Argument(help="After `evaluate`: the site to evaluate against a control."),
    ] = None,
    db: DbOption = None,
    fmt: FormatOption = Format.table,
) -> None:
    """A Clear, Hold, Build site: its phases and before/after monthly figures by phase.
    `placeharm chb evaluate SITE` evaluates it against a control and a buffer (as
    `placeharm evaluate chb SITE`, which also takes --buffer-m and --control)."""
    if site == "evaluate" and evaluate_site is not None:  # issue 16
        from placeharm.cli.evaluate import chb_cmd

        chb_cmd(evaluate_site, db=db, fmt=fmt)
        return
    if evaluate_site is not None:
        raise typer.BadParameter(f"one site at a time; did you mean `chb evaluate {site}`?")
    with _open(_settings(db)) as store:
        result = soc_service.chb_view(store, site)
    if fmt is Format.json:
        sys.stdout.write(json.dumps(result.to_dict(), default=str, indent=2) + "\n")
        return
    if fmt is Format.table:
        listed = result.meta["phases"]
        assert isinstance(listed, list)
        phases = ", ".join(f"{p['phase']} {p['start']}..{p['end'] or 'ongoing'}" for p in listed)
        out.print(f"{result.meta['site_name']}: {phases}", highlight=False)
    _show(result, fmt, f"CHB site {site}: monthly means by phase, change against before")
