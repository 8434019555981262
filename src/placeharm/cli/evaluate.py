"""Evaluation commands (issue 16): the WDD/WDQ calculator, a CHB site against a control and a
buffer, and disruption impact."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

from placeharm.analysis.wdd import Counts, wdd, wdq
from placeharm.cli.common import DbOption, Format, FormatOption, _emit, _open, _settings, err, out
from placeharm.services import evaluation

evaluate_app = typer.Typer(
    help="Evaluate interventions against a control and a buffer (WDD, WDQ).",
    no_args_is_help=True,
)

Pair = tuple[int, int]


def register(app: typer.Typer) -> None:
    app.add_typer(evaluate_app, name="evaluate")


def _print(data: dict[str, Any], fmt: Format) -> None:
    if fmt is Format.json:
        sys.stdout.write(json.dumps(data, default=str, indent=2) + "\n")
        return
    for key, value in data.items():
        out.print(f"{key}: {value}", highlight=False)


@evaluate_app.command("wdd")
def wdd_cmd(
    target: Annotated[Pair, typer.Option(help="Target: before and after counts, e.g. 80 20.")],
    control: Annotated[Pair, typer.Option(help="Target's control: before and after counts.")],
    buffer: Annotated[
        Pair | None, typer.Option(help="Buffer (displacement area): before and after counts.")
    ] = None,
    buffer_control: Annotated[
        Pair | None, typer.Option(help="The buffer's control: before and after counts.")
    ] = None,
    before_months: Annotated[
        int | None, typer.Option(help="Length of the before period, if not the after's.")
    ] = None,
    after_months: Annotated[
        int | None, typer.Option(help="Length of the after period (with --before-months).")
    ] = None,
    fmt: FormatOption = Format.table,
) -> None:
    """WDD with its SE, z and two-sided p (Wheeler & Ratcliffe 2018); with --buffer, also WDQ
    and total net effect (Bowers & Johnson 2003; the target's control is WDQ's control)."""
    t, c = Counts(*target), Counts(*control)
    b = Counts(*buffer) if buffer else None
    bc = Counts(*buffer_control) if buffer_control else None
    if b is not None and bc is None:
        err.print("Note: no --buffer-control: the WDD leaves the buffer out", highlight=False)
    result = wdd(
        t,
        c,
        b if bc is not None else None,
        bc if b is not None else None,
        before_months,
        after_months,
    )
    data: dict[str, Any] = {**result.as_dict(), "result": evaluation.verdict(result)}
    if b is not None:
        data.update({f"wdq_{k}" if k != "wdq" else k: v for k, v in wdq(t, c, b).as_dict().items()})
    _print(data, fmt)


@evaluate_app.command("chb")
def chb_cmd(
    site: Annotated[str, typer.Argument(help="CHB site code (the `chb` area set).")],
    buffer_m: Annotated[
        float, typer.Option("--buffer-m", help="Buffer ring width in metres.")
    ] = evaluation.DEFAULT_BUFFER_M,
    control: Annotated[
        str | None, typer.Option(help="Control ward code (default: offered by trend).")
    ] = None,
    buffer_control: Annotated[
        str | None, typer.Option(help="The buffer's control ward code (default: offered).")
    ] = None,
    db: DbOption = None,
    fmt: FormatOption = Format.table,
) -> None:
    """A CHB site's phases against a control ward and a buffer ring: WDD, SE, z, p and WDQ
    for crime, ASB, SOC crime and intelligence (also `placeharm chb evaluate SITE`)."""
    with _open(_settings(db)) as store:
        result = evaluation.chb_evaluation(
            store, site, buffer_m=buffer_m, control=control, buffer_control=buffer_control
        )
    show_evaluation(result, fmt)


def show_evaluation(result: evaluation.Evaluation, fmt: Format) -> None:
    if fmt is Format.json:
        sys.stdout.write(json.dumps(result.to_dict(), default=str, indent=2) + "\n")
        return
    meta = result.meta
    if fmt is Format.table:
        for key in ("site_name", "before", "phases", "control", "buffer_control", "method"):
            if key in meta:
                out.print(f"{key}: {meta[key]}", highlight=False)
    table = result.table
    if fmt is Format.table:  # the figures; --format csv/json carry every column
        table = table.select(
            [c for c in evaluation.TABLE_COLUMNS if c in table.columns and c != "result"]
        )
    _emit(table, fmt, "Each period against before: WDD, SE, z, p, WDQ")
    if fmt is Format.table:
        for row in result.table.iter_rows(named=True):
            label = row.get("period") or row.get("label")
            out.print(f"{label}, {row['measure_label']}: {row['result']}", highlight=False)
    for note in [*result.notes, *meta.get("limitations", [])]:
        err.print(f"Note: {note}", highlight=False)


_IMPACT_TABLES = ("by-four-p", "events", "groups", "referrals-summary", "referrals")


@evaluate_app.command("disruptions")
def disruptions_cmd(
    months: Annotated[
        int, typer.Option(help="Months before and after each disruption's month.")
    ] = 3,
    table: Annotated[
        str, typer.Option(help=f"Which table: {', '.join(_IMPACT_TABLES)}.")
    ] = "by-four-p",
    db: DbOption = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Disruption impact against a control: events by 4P against control wards, groups
    against undisrupted groups, diversion referrals against comparable nominals."""
    from placeharm.errors import DataError
    from placeharm.services import disruptions

    if table not in _IMPACT_TABLES:
        raise DataError(f"no table {table!r}; choose one of {', '.join(_IMPACT_TABLES)}")
    with _open(_settings(db)) as store:
        impact = disruptions.disruption_impact(store, months=months)
    frame = impact.tables[table.replace("-", "_")]
    if fmt is Format.json:
        body = {**impact.meta, "notes": impact.notes, table: frame.to_dicts()}
        sys.stdout.write(json.dumps(body, default=str, indent=2) + "\n")
        return
    if fmt is Format.table:
        wanted = [
            c
            for c in frame.columns
            if c not in ("result", "refused", "types", "area_code", "gap_months", "measure")
            and not c.startswith("wdd_")
        ]
        frame = frame.select(wanted) if wanted else frame
    _emit(frame, fmt, f"Disruptions: {table} ({months} months before and after)")
    for note in [*impact.notes, impact.meta["area_method"], *impact.meta["limitations"]]:
        err.print(f"Note: {note}", highlight=False)
