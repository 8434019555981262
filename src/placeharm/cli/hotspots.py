"""`placeharm hotspots`: significant hot and cold spots (Getis-Ord Gi*, issue 16)."""

from __future__ import annotations

from typing import Annotated

import polars as pl
import typer

from placeharm.analysis import hotspots as hs
from placeharm.cli.common import DbOption, Format, FormatOption, _month, _open, _settings, err, out
from placeharm.cli.harm import AsbOption, IndexOption, TypeOption, _index, _show
from placeharm.services import hotspots as service


def register(app: typer.Typer) -> None:
    """Add `placeharm hotspots` to the app."""
    app.command("hotspots")(hotspots)


def hotspots(
    by: Annotated[str, typer.Option("--by", help="Area set, e.g. lsoa, ward.")] = "lsoa",
    measure: Annotated[
        str,
        typer.Option(
            "--measure",
            help="harm (police.uk harm, --index), crimes (police.uk count, --type), soc_harm "
            "(SOC primary harm score) or a SOC measure id (e.g. drug_supply).",
        ),
    ] = service.HARM,
    from_month: Annotated[
        str | None, typer.Option("--from", help="First month, YYYY-MM (default: 12 months).")
    ] = None,
    to_month: Annotated[
        str | None, typer.Option("--to", help="Last month, YYYY-MM (default: last held).")
    ] = None,
    weights: Annotated[
        str, typer.Option("--weights", help="contiguity (Queen) or distance (a band).")
    ] = hs.CONTIGUITY,
    distance_m: Annotated[
        float | None,
        typer.Option(
            "--distance",
            help=f"Metres: the distance band (default {service.DISTANCE_M:,.0f}), or for "
            f"contiguity the gap still counted as touching (default {hs.TOLERANCE_M:g}).",
        ),
    ] = None,
    fdr: Annotated[
        float, typer.Option("--fdr", help="False discovery rate held across areas.")
    ] = hs.FDR,
    permutations: Annotated[
        int, typer.Option("--permutations", help="Conditional permutations (99 to 9,999).")
    ] = hs.PERMUTATIONS,
    seed: Annotated[int, typer.Option("--seed", help="The permutations' seed.")] = hs.SEED,
    crime_type: TypeOption = None,
    index: IndexOption = None,
    asb_weight: AsbOption = None,
    significant: Annotated[
        bool, typer.Option("--significant", help="List only hot and cold spots.")
    ] = False,
    db: DbOption = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Significant hot and cold spots of harm or a measure: Getis-Ord Gi* with permutation
    p-values and Benjamini-Hochberg FDR control (method: docs/analysis.md)."""
    settings = _settings(db)
    options = service.Options(measure, weights, distance_m, permutations, fdr, seed).checked()
    with _open(settings) as store:
        harm_index = _index(settings, index, asb_weight, store)
        first = _month(from_month) if from_month else None
        last = _month(to_month) if to_month else None
        first, last = service.default_period(store, by, measure, first, last)
        result = service.hotspots(store, by, first, last, options, harm_index, crime_type)
    if significant:
        result.table = result.table.filter(pl.col("class").is_in([hs.HOT, hs.COLD]))
    counts = result.meta["classes"]
    assert isinstance(counts, dict)
    title = (
        f"{by} hot spots of {result.meta['measure_label']}, {first:%Y-%m} to {last:%Y-%m}: "
        f"{service.describe_classes(counts, fdr)}"
    )
    if fmt is Format.table:
        out.print(str(result.meta["method"]), highlight=False)
    _show(result, fmt, title)
    if fmt is Format.table:
        err.print(
            f"{result.meta['tested']} of {result.meta['areas']} areas tested; "
            f"{counts[hs.NOT_SIGNIFICANT]} not significant.",
            highlight=False,
        )
