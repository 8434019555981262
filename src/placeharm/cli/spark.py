"""`placeharm spark ingest` and `placeharm load-parquet` (issue 17; docs/deploy.md, "The Spark
job on a cluster")."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from placeharm.cli.common import DbOption, _open, _settings, err, out
from placeharm.config import load_settings
from placeharm.ingest.csvfile import ReadLimits


def register(app: typer.Typer) -> None:
    """Add `spark ingest` and `load-parquet` to the `placeharm` command."""
    spark_app = typer.Typer(
        help="The Spark job: police.uk bulk files at national scale, as Parquet.",
        no_args_is_help=True,
    )
    app.add_typer(spark_app, name="spark")

    @spark_app.command("ingest")
    def spark_ingest(
        paths: Annotated[
            list[str],
            typer.Argument(
                help="police.uk street, outcomes and stop-and-search CSVs (.csv, .csv.gz), "
                "folders, or Spark URIs."
            ),
        ],
        out_dir: Annotated[
            Path, typer.Option("--out", help="A new (or empty) folder for the Parquet output.")
        ],
        areas: Annotated[
            list[str] | None,
            typer.Option(
                "--areas",
                help="An area set to assign, as SET=FILE (a boundary file); repeat for each "
                "set the store holds.",
            ),
        ] = None,
        master: Annotated[
            str | None,
            typer.Option(help="Spark master, e.g. local[*]; leave out under spark-submit."),
        ] = None,
        tolerance_m: Annotated[
            float,
            typer.Option(
                help="Keep police.uk's own LSOA code when the point is this close to it (0: off)."
            ),
        ] = 25.0,
        published: Annotated[
            str | None,
            typer.Option(help="The date police.uk published these files (YYYY-MM-DD)."),
        ] = None,
    ) -> None:
        """Validate, key and assign police.uk street, outcomes and stop-and-search files on
        Spark (as `placeharm ingest` does) and write records, aggregates and quarantine as
        Parquet, with a manifest."""
        from placeharm.cli.main import _published_date
        from placeharm.services import spark as spark_job

        settings = load_settings()
        manifest = spark_job.run(
            paths,
            spark_job.parse_area_specs(areas or []),
            out_dir,
            master=master,
            tolerance_m=tolerance_m,
            limits=ReadLimits.of(settings.max_decompressed_mb, settings.max_line_kb),
            published=_published_date(published),
        )
        counts = manifest["counts"]
        out.print(
            f"Wrote {out_dir}: {counts['files_ok']} of {counts['files']} files read = "
            f"{counts['rows_read']:,} rows = {counts['records']:,} street records + "
            f"{counts['outcomes']:,} outcomes + {counts['searches']:,} stop-and-search records + "
            f"{counts['identical_repeats']:,} identical repeats + {counts['quarantined']:,} "
            f"quarantined; {counts['aggregate_cells']:,} aggregate cells. Load it with "
            f"`placeharm load-parquet {out_dir}`.",
            highlight=False,
        )
        bad = [f for f in manifest["source_files"] if f["status"] != "ok"]
        for f in bad:
            err.print(
                f"[bold red]{f['status']}[/]: {escape(f['source_file'])}\n  {escape(f['message'])}"
            )
        if bad:
            raise typer.Exit(2)

    @app.command("load-parquet")
    def load_parquet(
        folder: Annotated[
            Path, typer.Argument(help="The --out folder of `placeharm spark ingest`.")
        ],
        db: DbOption = None,
    ) -> None:
        """Load the Spark job's Parquet output into the store, in one transaction."""
        from placeharm.cli.main import _refuse_read_only, _summary
        from placeharm.services.parquet_load import load_parquet as load

        settings = _settings(db)
        with _open(settings) as store:
            _refuse_read_only(store, "loaded")
            results = load(store, folder, threads=settings.threads)
        _summary(results)
        if any(r.status != "ok" for r in results):
            raise typer.Exit(2)
