"""Read-side use cases: coverage, counts by area, the quarantine and the import log."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

import polars as pl

from placeharm.errors import DataError, NotFound
from placeharm.model import (
    CRIME_TYPES,
    AreaSetInfo,
    SourceKind,
    check_area_set_name,
    month_range,
    shift_month,
)
from placeharm.store.base import Store


@dataclass(slots=True)
class CountsResult:
    """Crimes per area over a period; gap months are listed and are null, never zero."""

    area_set: str
    first_month: str
    last_month: str
    months: list[str]
    gap_months: list[str]
    crime_types: list[str] | None
    table: pl.DataFrame  # area_code, area_name, crimes, then one column per month if asked
    # covered by API responses only: only the areas those responses were for
    partial_months: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {
            "area_set": self.area_set,
            "first_month": self.first_month,
            "last_month": self.last_month,
            "months_covered": len(self.months) - len(self.gap_months),
            "gap_months": self.gap_months,
            "partial_months": self.partial_months,
            "crime_types": self.crime_types,
            "rows": self.table.to_dicts(),
        }


def coverage(store: Store, source_kind: str | None = None) -> pl.DataFrame:
    """Every month from each source's first to last month: covered, or a gap (rows null).
    `partial` marks API months: responses cover only the areas they were requested for."""
    held = store.coverage()
    if source_kind:
        held = held.filter(pl.col("source_kind") == source_kind)
    if held.is_empty():
        return pl.DataFrame(
            schema={
                "source_kind": pl.String,
                "force": pl.String,
                "month": pl.String,
                "covered": pl.Boolean,
                "partial": pl.Boolean,
                "rows": pl.Int64,
                "source_file": pl.String,
            }
        )
    frames = []
    for (kind, force), group in held.group_by(["source_kind", "force"], maintain_order=True):
        months = month_range(group["month"].min(), group["month"].max())  # type: ignore[arg-type]
        grid = pl.DataFrame({"month": months}, schema={"month": pl.Date}).with_columns(
            pl.lit(kind).alias("source_kind"), pl.lit(force).alias("force")
        )
        frames.append(grid.join(group, on=["source_kind", "force", "month"], how="left"))
    return (
        pl.concat(frames)
        .with_columns(
            pl.col("rows").is_not_null().alias("covered"),
            (pl.col("rows").is_not_null() & (pl.col("source_kind") == SourceKind.API.value)).alias(
                "partial"
            ),
            pl.col("month").dt.strftime("%Y-%m"),
        )
        .select("source_kind", "force", "month", "covered", "partial", "rows", "source_file")
        .sort("source_kind", "force", "month")
    )


# Crimes come from street files and API responses: "street" coverage means either.
CRIME_SOURCES = (SourceKind.STREET.value, SourceKind.API.value)


def _covered(store: Store, kind: str) -> pl.DataFrame:
    """Coverage rows of `kind`; for "street" (crime records) street files or API responses."""
    kinds = CRIME_SOURCES if kind == SourceKind.STREET.value else (kind,)
    return store.coverage().filter(pl.col("source_kind").is_in(kinds))


def held_months(store: Store, kind: str = "street") -> tuple[dt.date, dt.date]:
    """First and last month for which a file of `kind` has been imported (for "street", a
    street file or an API response)."""
    months = _covered(store, kind)["month"]
    if months.is_empty():
        raise NotFound(f"no {kind} data imported yet; run `placeharm ingest FILES` first")
    first, last = months.min(), months.max()
    assert isinstance(first, dt.date) and isinstance(last, dt.date)
    return first, last


def default_period(
    store: Store, first: dt.date | None, last: dt.date | None, months: int | None
) -> tuple[dt.date, dt.date]:
    """The period asked for; a missing end is the last month held, a missing start the
    `months` before it (never before the first month held; None: from the first held)."""
    if first and last:
        return first, last
    held_first, held_last = held_months(store)
    last = last or held_last
    if first:
        return first, last
    if months is None:
        return held_first, last
    return max(held_first, shift_month(last, 1 - months)), last


def gap_months(store: Store, first: dt.date, last: dt.date, kind: str = "street") -> list[str]:
    """Months in [first, last] for which no file of `kind` has been imported (for "street",
    neither a street file nor an API response)."""
    return gaps_among(set(_covered(store, kind)["month"].to_list()), first, last)


def gaps_among(covered: Collection[dt.date], first: dt.date, last: dt.date) -> list[str]:
    """The months of [first, last] not in `covered` (the rule of `gap_months`, on months
    already read: the harm read model keeps them)."""
    return [m.strftime("%Y-%m") for m in month_range(first, last) if m not in covered]


def partial_months(store: Store, first: dt.date, last: dt.date) -> list[str]:
    """Months in [first, last] whose crimes come from API responses only: covered, but only
    for the areas those responses were requested for (no street file for the month)."""
    held = _covered(store, SourceKind.STREET.value)
    street = set(held.filter(pl.col("source_kind") == SourceKind.STREET.value)["month"])
    api = set(held.filter(pl.col("source_kind") == SourceKind.API.value)["month"])
    return partial_among(street, api, first, last)


def partial_among(
    street: Collection[dt.date], api: Collection[dt.date], first: dt.date, last: dt.date
) -> list[str]:
    """The months of [first, last] held from API responses and no street file (the rule of
    `partial_months`, on months already read)."""
    return [m.strftime("%Y-%m") for m in month_range(first, last) if m in api and m not in street]


def check_area_query(
    store: Store, by: str, first: dt.date, last: dt.date, crime_types: list[str] | None
) -> None:
    """Refuse a query on an unknown or unassigned area set, a reversed period or bad types."""
    check_area_query_among({s.name: s for s in store.area_sets()}, by, first, last, crime_types)


def check_area_query_among(
    sets: Mapping[str, AreaSetInfo],
    by: str,
    first: dt.date,
    last: dt.date,
    crime_types: list[str] | None,
) -> None:
    """`check_area_query` against the area sets already read (by name)."""
    check_area_set_name(by)
    if last < first:
        raise DataError(f"--to {last:%Y-%m} is before --from {first:%Y-%m}")
    if by not in sets:
        known = ", ".join(sets) or "none yet"
        raise NotFound(
            f"no area set called {by!r} (loaded: {known}); import one with "
            "`placeharm areas import FILE --name NAME`"
        )
    if not sets[by].assigned:
        raise DataError(
            f"area set {by!r} was imported after the records it should count; run "
            "`placeharm areas assign` (or the next `placeharm ingest`) first"
        )
    if crime_types:
        unknown = [t for t in crime_types if t not in CRIME_TYPES]
        if unknown:
            raise DataError(
                f"unknown crime type {', '.join(unknown)}; use one of: {', '.join(CRIME_TYPES)}"
            )


def counts(
    store: Store,
    by: str,
    first: dt.date,
    last: dt.date,
    crime_types: list[str] | None = None,
    by_month: bool = False,
) -> CountsResult:
    """Crimes per area of set `by` from `first` to `last` (months), optionally per month.

    Every area of the set is listed (zero where it had no crimes in covered months); records
    with no location or outside every area of the set form one row with a null code. Months
    with no imported street file are gaps: their monthly columns are null and they are
    listed in `gap_months`, so a total over a period with a gap is never mistaken for a
    complete one.
    """
    check_area_query(store, by, first, last, crime_types)
    months = month_range(first, last)
    gaps = gap_months(store, first, last)
    partial = partial_months(store, first, last)
    raw = store.counts_by_area_month(by, first, last, crime_types)
    areas = store.area_polygons(by).select("area_code", "area_name")
    outside = pl.DataFrame(
        {"area_code": [None], "area_name": [f"(no location, or outside every {by} area)"]},
        schema={"area_code": pl.String, "area_name": pl.String},
    )
    table = pl.concat([areas, outside])
    totals = raw.group_by("area_code").agg(pl.col("records").sum())
    table = table.join(totals, on="area_code", how="left", nulls_equal=True).with_columns(
        pl.col("records").fill_null(0).cast(pl.Int64)
    )
    if by_month:
        for month in months:
            label = month.strftime("%Y-%m")
            per = raw.filter(pl.col("month") == month).select(
                "area_code", pl.col("records").alias(label)
            )
            table = table.join(per, on="area_code", how="left", nulls_equal=True)
            fill = pl.lit(None, dtype=pl.Int64) if label in gaps else pl.col(label).fill_null(0)
            table = table.with_columns(fill.cast(pl.Int64).alias(label))
    table = table.sort(["records", "area_code"], descending=[True, False], nulls_last=True)
    return CountsResult(
        by,
        first.strftime("%Y-%m"),
        last.strftime("%Y-%m"),
        [m.strftime("%Y-%m") for m in months],
        gaps,
        crime_types,
        table,
        partial,
    )


def quarantine(
    store: Store,
    import_id: int | None = None,
    source_file: str | None = None,
    limit: int = 1000,
) -> pl.DataFrame:
    """Quarantined rows: file, line, reason and raw text."""
    return store.quarantine(import_id, source_file, limit)


def imports(store: Store, limit: int = 50) -> pl.DataFrame:
    """The import log, newest first."""
    return store.imports(limit)
