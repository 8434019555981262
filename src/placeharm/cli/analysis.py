"""Analysis commands (issue 16): rising to prominence and emerging-risk alerts."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import polars as pl
import typer

from placeharm.cli.common import (
    DbOption,
    Format,
    FormatOption,
    _disclosed,
    _emit,
    _month,
    _open,
    _settings,
    err,
    out,
)
from placeharm.cli.harm import IndexOption, _index
from placeharm.services import alerts as alert_service
from placeharm.services import prominence as prominence_service

FdrOption = Annotated[
    float, typer.Option("--fdr", help="False discovery rate held across all tests (0-1).")
]
MonthOption = Annotated[
    str | None, typer.Option("--month", help="Month to test, YYYY-MM (default: last held).")
]
LimitOption = Annotated[int | None, typer.Option(help="Only the first N rows.")]


def register(app: typer.Typer) -> None:
    app.command("prominence")(prominence)
    app.command("alerts")(alerts)


def prominence(
    window: Annotated[int, typer.Option("--window", help="Recent months tested.")] = 3,
    baseline: Annotated[
        int, typer.Option("--baseline", help="Months before the window to compare with.")
    ] = 12,
    fdr: FdrOption = 0.1,
    month: MonthOption = None,
    index: IndexOption = None,
    all_rows: Annotated[
        bool, typer.Option("--all", help="Every nominal scored, not only those rising.")
    ] = False,
    limit: LimitOption = None,
    db: DbOption = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Nominals rising to prominence: RFG score (recency, frequency, gravity, graded
    intelligence) and an exact test of their recent events against their own baseline, with
    the false discovery rate held across all nominals (Benjamini-Hochberg)."""
    settings = _settings(db)
    params = prominence_service.params_from(settings, window, baseline, fdr)
    with _open(settings) as store:
        harm_index = _index(settings, index, None, store)
        result = prominence_service.prominence(
            store, params, harm_index, last_month=_month(month) if month else None
        )
        table = result.table
        if not all_rows and not table.is_empty():
            table = table.filter(pl.col("rising"))
        if limit:
            table = table.head(limit)
        listed = set(table["nominal_id"].to_list()) if not table.is_empty() else set()
        # only the listed nominals' records go out, and they are in the audit entry
        spark = {k: v for k, v in result.spark.items() if k in listed}
        if not table.is_empty():
            _disclosed(  # a list naming people: a consultation on screen, else a disclosure
                store,
                "placeharm prominence",
                "prominence",
                table.height,
                {"window": window, "baseline": baseline, "fdr": fdr, "month": month},
                action="consultation" if fmt is Format.table else "disclosure",
                record_ids={
                    "nominal": [str(v) for v in table["nominal_id"]],
                    **_why_ids(spark),
                },
            )
    if fmt is Format.json:
        body = {
            **result.meta,
            "nominals": table.to_dicts(),
            "spark": {k: {"months": v[0], "events": v[1], "why": v[2]} for k, v in spark.items()},
        }
        sys.stdout.write(json.dumps(body, default=str, indent=2) + "\n")
        return
    if not table.is_empty():
        table = table.select(
            "nominal_id",
            "forename",
            "surname",
            "score",
            "recency_points",
            "frequency_points",
            "gravity_points",
            "intelligence_points",
            "recent",
            "baseline_events",
            "expected",
            "rate_ratio",
            "p",
            "q",
            "rising",
        ).with_columns(pl.col(pl.Float64).round(4))
    if fmt is Format.table:
        out.print(result.meta.get("method", ""), highlight=False)
    _emit(table, fmt, f"Nominals rising to prominence, window {result.meta.get('window', '')}")
    if fmt is Format.table:
        for nid, (_, _, why) in list(result.spark.items())[: limit or 10]:
            if table.is_empty() or nid not in set(table["nominal_id"].to_list()):
                continue
            moved = "; ".join(f"{r['day']} {r['detail']} ({r['ref']})" for r in why)
            out.print(f"{nid}: {moved}", highlight=False)
        if "note" in result.meta:
            err.print(f"[yellow]Note[/]: {result.meta['note']}", highlight=False)
        err.print(f"[yellow]Limits[/]: {result.meta['limits']}", highlight=False)


def alerts(
    by: Annotated[str, typer.Option("--by", help="Area set.")] = "ward",
    month: MonthOption = None,
    baseline: Annotated[
        int, typer.Option("--baseline", help="Months before the alert month to compare with.")
    ] = 12,
    fdr: FdrOption = 0.1,
    index: IndexOption = None,
    all_rows: Annotated[
        bool, typer.Option("--all", help="Every test, not only the alerts.")
    ] = False,
    limit: LimitOption = None,
    db: DbOption = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Emerging-risk alerts: per area and measure (SOC harm, each SOC measure, police.uk
    crime types), the month's count against the area's own history and the force's season,
    flagged when significant across all tests (Benjamini-Hochberg)."""
    settings = _settings(db)
    with _open(settings) as store:
        harm_index = _index(settings, index, None, store)
        result = alert_service.alerts(
            store, by, _month(month) if month else None, baseline, fdr, harm_index
        )
    table = result.table
    if not all_rows and not table.is_empty():
        table = table.filter(pl.col("alert"))
    if limit:
        table = table.head(limit)
    if fmt is Format.json:
        body = {**result.meta, "alerts": table.to_dicts()}
        sys.stdout.write(json.dumps(body, default=str, indent=2) + "\n")
        return
    if fmt is Format.table:
        out.print(result.meta.get("method", ""), highlight=False)
        if not table.is_empty():
            for text in table["reason"].drop_nulls().to_list():
                out.print(f"- {text}", highlight=False)
            table = table.drop("reason").with_columns(pl.col(pl.Float64).round(4))
    _emit(table, fmt, f"Emerging-risk alerts, {result.meta.get('month', '')}")
    if fmt is Format.table:
        for note in [result.meta.get("note"), *result.meta.get("notes", [])]:
            if note:
                err.print(f"[yellow]Note[/]: {note}", highlight=False)
        err.print(
            f"[yellow]Risk level[/]: {result.meta.get('risk_rule_beside', '')}", highlight=False
        )


def _why_ids(spark: dict[str, Any]) -> dict[str, list[str]]:
    """The records behind listed nominals' rises, by audit kind (crime refs, intelligence)."""
    kinds = {"crime": "force_crime", "intelligence": "intelligence"}
    out: dict[str, list[str]] = {}
    for _months, _events, why in spark.values():
        for item in why:
            kind = kinds.get(str(item.get("kind")))
            if kind and item.get("ref"):
                out.setdefault(kind, []).append(str(item["ref"]))
    return out
