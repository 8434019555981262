"""Harm queries: area ranking, period comparison, monthly series, concentration, CSS.

Every query takes a harm index (`placeharm.harm.load_index`) and returns a `HarmResult`: a
table plus the metadata that makes the figure reproducible (index and edition, period,
months covered and gaps, filters, population year). Method: docs/harm.md.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from placeharm.errors import DataError, NotFound, UnknownArea
from placeharm.harm import HarmIndex, load_index, weigh
from placeharm.model import month_range, shift_month
from placeharm.services import indices
from placeharm.services.queries import check_area_query, gap_months, partial_months
from placeharm.store.base import Store


@dataclass(slots=True)
class HarmResult:
    """A harm query's table, its metadata, notes for the reader and any extra tables."""

    kind: str
    meta: dict[str, object]
    table: pl.DataFrame
    notes: list[str] = field(default_factory=list)
    extra: dict[str, pl.DataFrame] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"kind": self.kind, **self.meta, "notes": self.notes}
        out["rows"] = self.table.to_dicts()
        for name, frame in self.extra.items():
            out[name] = frame.to_dicts()
        return out


def _label(month: dt.date) -> str:
    return month.strftime("%Y-%m")


def _index(index: HarmIndex | str | None, store: Store | None = None) -> HarmIndex:
    """An index as given, or by name: shipped, or registered in `store` (never a file)."""
    if isinstance(index, HarmIndex):
        return index
    return indices.resolve(store, index) if store is not None else load_index(index)


def _weighed_cube(
    store: Store,
    by: str,
    first: dt.date,
    last: dt.date,
    index: HarmIndex,
    crime_types: list[str] | None,
    offence_codes: list[str] | None,
    by_month: bool,
) -> pl.DataFrame:
    """Records per area (and month), type and code, with weight, weight_source and harm."""
    cube = store.crime_cube(by, first, last, crime_types, offence_codes, by_month)
    return weigh(cube, index).with_columns(
        (pl.col("records") * pl.col("weight").fill_null(0.0)).alias("harm")
    )


def _weight_sources(cube: pl.DataFrame) -> dict[str, int]:
    sums = cube.group_by("weight_source").agg(pl.col("records").sum())
    found = dict(zip(sums["weight_source"], sums["records"], strict=True))
    return {k: int(found.get(k, 0)) for k in ("offence code", "crime type", "none")}


def _per_area(cube: pl.DataFrame) -> pl.DataFrame:
    return cube.group_by("area_code").agg(
        pl.col("records").sum().cast(pl.Int64),
        pl.col("harm").sum(),
        pl.col("records").filter(pl.col("weight_source") == "none").sum().alias("unweighted"),
    )


def _ranked(areas: pl.DataFrame, totals: pl.DataFrame) -> pl.DataFrame:
    """Every area of the set with its records and harm (0 where none), ranked by harm."""
    return (
        areas.join(totals, on="area_code", how="left")
        .with_columns(
            pl.col("records").fill_null(0).cast(pl.Int64),
            pl.col("harm").fill_null(0.0),
            pl.col("unweighted").fill_null(0).cast(pl.Int64),
        )
        .sort(["harm", "area_code"], descending=[True, False])
        .with_columns(pl.col("harm").rank("min", descending=True).cast(pl.Int64).alias("rank"))
    )


def population_for(store: Store, by: str, year: int) -> tuple[pl.DataFrame, dict[str, object]]:
    """The set's populations for the latest year held at or before `year` (else the earliest)."""
    held = store.populations(by)
    if held.is_empty():
        empty = pl.DataFrame(schema={"area_code": pl.String, "population": pl.Float64})
        return empty, {"population_year": None, "population_method": None}
    years = sorted(set(held["year"].to_list()))
    earlier = [y for y in years if y <= year]
    chosen = earlier[-1] if earlier else years[0]
    rows = held.filter(pl.col("year") == chosen)
    methods = sorted(set(rows["method"].to_list()))
    return rows.select("area_code", "population"), {
        "population_year": chosen,
        "population_method": "; ".join(methods),
    }


def _base_meta(
    by: str,
    first: dt.date,
    last: dt.date,
    gaps: list[str],
    index: HarmIndex,
    crime_types: list[str] | None,
    offence_codes: list[str] | None,
) -> dict[str, object]:
    months = month_range(first, last)
    return {
        "area_set": by,
        "first_month": _label(first),
        "last_month": _label(last),
        "months": len(months),
        "months_covered": len(months) - len(gaps),
        "gap_months": gaps,
        "crime_types": crime_types,
        "offence_codes": offence_codes,
        "index": index.describe(),
    }


def _gap_note(meta: dict[str, object]) -> list[str]:
    gaps = meta["gap_months"]
    partial = meta.get("partial_months") or []
    assert isinstance(gaps, list) and isinstance(partial, list)
    notes = []
    if gaps:
        notes.append(
            f"no data for {', '.join(gaps)} (gap): figures cover {meta['months_covered']} of "
            f"{meta['months']} months"
        )
    if partial:  # docs/ingest.md, "API responses and coverage"
        notes.append(
            f"{', '.join(partial)}: held from data.police.uk API responses only, so figures "
            "cover just the areas those responses were requested for"
        )
    return notes


def _weight_note(sources: dict[str, int]) -> list[str]:
    if not sources["none"]:
        return []
    return [
        f"{sources['none']} records have no weight in this index (harm counted as 0); "
        "give their crime type or offence code a weight, or choose another index"
    ]


def _prepare(
    store: Store,
    by: str,
    first: dt.date,
    last: dt.date,
    crime_types: list[str] | None,
    offence_codes: list[str] | None,
) -> tuple[list[str] | None, list[str] | None]:
    check_area_query(store, by, first, last, crime_types)
    codes = [c.strip() for c in offence_codes if c.strip()] if offence_codes else None
    return crime_types or None, codes or None


def rank(
    store: Store,
    by: str,
    first: dt.date,
    last: dt.date,
    index: HarmIndex | str | None = None,
    crime_types: list[str] | None = None,
    offence_codes: list[str] | None = None,
) -> HarmResult:
    """Areas of set `by` ranked by harm over [first, last] (months).

    Every area is listed, zero where it had no records. Records with no location or outside
    every area form one unranked row with a null code; `harm_share` is each row's share of
    the harm of all records matched, so the column sums to 1. `harm_per_resident` is harm
    divided by the area's population (see `population_for`), null where none is held.
    """
    crime_types, offence_codes = _prepare(store, by, first, last, crime_types, offence_codes)
    harm_index = _index(index, store)
    gaps = gap_months(store, first, last)
    cube = _weighed_cube(
        store, by, first, last, harm_index, crime_types, offence_codes, by_month=False
    )
    totals = _per_area(cube)
    table = _ranked(store.area_list(by), totals.filter(pl.col("area_code").is_not_null()))
    outside = totals.filter(pl.col("area_code").is_null()).with_columns(
        pl.lit(f"(no location, or outside every {by} area)").alias("area_name"),
        pl.lit(None, dtype=pl.Int64).alias("rank"),
    )
    if outside.is_empty():
        outside = pl.DataFrame(
            {
                "area_code": [None],
                "area_name": [f"(no location, or outside every {by} area)"],
                "records": [0],
                "harm": [0.0],
                "unweighted": [0],
                "rank": [None],
            },
            schema=table.schema,
        )
    table = pl.concat([table, outside.select(table.columns)])
    populations, pop_meta = population_for(store, by, last.year)
    total_harm = float(table["harm"].sum())
    table = (
        table.join(populations, on="area_code", how="left", maintain_order="left")
        .with_columns(
            (pl.col("harm") / total_harm if total_harm else pl.lit(None, pl.Float64)).alias(
                "harm_share"
            ),
            pl.when(pl.col("population") > 0)
            .then(pl.col("harm") / pl.col("population"))
            .alias("harm_per_resident"),
        )
        .select(
            "rank",
            "area_code",
            "area_name",
            "records",
            "harm",
            "harm_share",
            "population",
            "harm_per_resident",
            "unweighted",
        )
    )
    sources = _weight_sources(cube)
    meta = _base_meta(by, first, last, gaps, harm_index, crime_types, offence_codes)
    meta["partial_months"] = partial_months(store, first, last)
    meta |= pop_meta | {
        "total_records": int(table["records"].sum()),
        "total_harm": total_harm,
        "weights_from": sources,
    }
    notes = _gap_note(meta) + _weight_note(sources)
    if pop_meta["population_year"] is None:
        notes.append(
            f"no populations held for {by!r}: harm_per_resident is empty; load them with "
            "`placeharm areas population`"
        )
    return HarmResult("rank", meta, table, notes)


def compare(
    store: Store,
    by: str,
    first: dt.date,
    last: dt.date,
    against: str = "previous",
    index: HarmIndex | str | None = None,
    crime_types: list[str] | None = None,
    offence_codes: list[str] | None = None,
) -> HarmResult:
    """This period against the previous one of equal length, or the same months a year before.

    Like is compared with like: months pair up in order (first with first), and a pair where
    either month has no data is left out of both periods. The result says which months were
    left out. `rank_movement` = previous rank - current rank (positive: moved up the harm
    ranking, towards rank 1).
    """
    crime_types, offence_codes = _prepare(store, by, first, last, crime_types, offence_codes)
    harm_index = _index(index, store)
    months = month_range(first, last)
    if against == "previous":
        shift = -len(months)
    elif against == "year":
        shift = -12
    else:
        raise DataError(f"--against must be 'previous' or 'year', not {against!r}")
    before = [shift_month(m, shift) for m in months]
    gaps_now = set(gap_months(store, first, last))
    gaps_before = set(gap_months(store, before[0], before[-1]))
    kept_now, kept_before, excluded = [], [], []
    for now, then in zip(months, before, strict=True):
        missing = [
            _label(m) for m, gaps in ((now, gaps_now), (then, gaps_before)) if _label(m) in gaps
        ]
        if missing:
            excluded.append({"current": _label(now), "previous": _label(then), "no_data": missing})
        else:
            kept_now.append(now)
            kept_before.append(then)
    if not kept_now:
        raise DataError(
            f"no month of {_label(first)}..{_label(last)} can be compared: each, or its pair in "
            f"{_label(before[0])}..{_label(before[-1])}, has no data (see `placeharm coverage`)"
        )
    span_first, span_last = min(before[0], first), max(before[-1], last)
    cube = _weighed_cube(
        store, by, span_first, span_last, harm_index, crime_types, offence_codes, by_month=True
    ).filter(pl.col("area_code").is_not_null())
    areas = store.area_list(by)
    now_rank = _ranked(areas, _per_area(cube.filter(pl.col("month").is_in(kept_now))))
    then_rank = _ranked(areas, _per_area(cube.filter(pl.col("month").is_in(kept_before))))
    table = (
        now_rank.select(
            "area_code",
            "area_name",
            pl.col("rank").alias("rank_current"),
            pl.col("records").alias("records_current"),
            pl.col("harm").alias("harm_current"),
        )
        .join(
            then_rank.select(
                "area_code",
                pl.col("rank").alias("rank_previous"),
                pl.col("records").alias("records_previous"),
                pl.col("harm").alias("harm_previous"),
            ),
            on="area_code",
        )
        .with_columns(
            (pl.col("harm_current") - pl.col("harm_previous")).alias("change"),
            pl.when(pl.col("harm_previous") > 0)
            .then((pl.col("harm_current") / pl.col("harm_previous") - 1) * 100)
            .alias("pct_change"),
            (pl.col("rank_previous") - pl.col("rank_current")).alias("rank_movement"),
        )
        .sort(["rank_current", "area_code"])
    )
    meta = _base_meta(by, first, last, sorted(gaps_now), harm_index, crime_types, offence_codes)
    meta |= {
        "against": against,
        "previous_first_month": _label(before[0]),
        "previous_last_month": _label(before[-1]),
        "months_compared": len(kept_now),
        "current_months_compared": [_label(m) for m in kept_now],
        "previous_months_compared": [_label(m) for m in kept_before],
        "excluded_pairs": excluded,
        "harm_current": float(table["harm_current"].sum()),
        "harm_previous": float(table["harm_previous"].sum()),
    }
    notes = []
    if excluded:
        pairs = "; ".join(
            f"{e['current']} with {e['previous']} (no data for {', '.join(e['no_data'])})"
            for e in excluded
        )
        notes.append(
            f"like for like: {len(kept_now)} of {len(months)} months compared; left out of "
            f"both periods: {pairs}"
        )
    return HarmResult("compare", meta, table, notes)


def series(
    store: Store,
    by: str,
    first: dt.date,
    last: dt.date,
    index: HarmIndex | str | None = None,
    areas: list[str] | None = None,
    crime_types: list[str] | None = None,
    offence_codes: list[str] | None = None,
) -> HarmResult:
    """Records and harm per area and month; months with no data are null, never zero."""
    crime_types, offence_codes = _prepare(store, by, first, last, crime_types, offence_codes)
    harm_index = _index(index, store)
    area_list = store.area_list(by)
    if areas:
        unknown = sorted(set(areas) - set(area_list["area_code"].to_list()))
        if unknown:
            raise UnknownArea(
                by,
                unknown,
                f"no area {', '.join(unknown)} in set {by!r}; list them with "
                f"`placeharm rank --by {by}`",
            )
        area_list = area_list.filter(pl.col("area_code").is_in(areas))
    gaps = gap_months(store, first, last)
    months = month_range(first, last)
    cube = _weighed_cube(
        store, by, first, last, harm_index, crime_types, offence_codes, by_month=True
    )
    outside = int(cube.filter(pl.col("area_code").is_null())["records"].sum())
    monthly = cube.group_by("area_code", "month").agg(
        pl.col("records").sum().cast(pl.Int64), pl.col("harm").sum()
    )
    grid = area_list.join(pl.DataFrame({"month": months}, schema={"month": pl.Date}), how="cross")
    gap_dates = [m for m in months if _label(m) in gaps]
    table = (
        grid.join(monthly, on=["area_code", "month"], how="left")
        .with_columns(
            pl.when(pl.col("month").is_in(gap_dates))
            .then(None)
            .otherwise(pl.col("records").fill_null(0))
            .alias("records"),
            pl.when(pl.col("month").is_in(gap_dates))
            .then(None)
            .otherwise(pl.col("harm").fill_null(0.0))
            .alias("harm"),
            pl.col("month").dt.strftime("%Y-%m"),
        )
        .sort("area_code", "month")
    )
    meta = _base_meta(by, first, last, gaps, harm_index, crime_types, offence_codes)
    meta["partial_months"] = partial_months(store, first, last)
    meta |= {"records_outside_set": outside, "areas": len(area_list)}
    return HarmResult("series", meta, table, _gap_note(meta))


def concentration(
    store: Store,
    by: str,
    first: dt.date,
    last: dt.date,
    index: HarmIndex | str | None = None,
    top_percents: tuple[float, ...] = (1, 5, 10, 20, 50),
    top_areas: int | None = None,
    crime_types: list[str] | None = None,
    offence_codes: list[str] | None = None,
) -> HarmResult:
    """How concentrated harm is: share held by the top N% of areas, Lorenz curve, Gini.

    All areas of the set count, including those with no harm; records outside every area
    are left out. The top N% is the ceil(N% x areas) most harmful areas. Gini is computed
    from the Lorenz curve (trapezium rule), 0 = harm spread evenly, near 1 = in one area.
    """
    ranked = rank(store, by, first, last, index, crime_types, offence_codes)
    harms = ranked.table.filter(pl.col("area_code").is_not_null())["harm"].sort(descending=True)
    n = harms.len()
    total = float(harms.sum())
    if n == 0 or total <= 0:
        raise DataError(
            f"no harm in {by!r} areas for {_label(first)}..{_label(last)} with these filters; "
            "concentration needs some"
        )
    cumulative = harms.cum_sum() / total
    rows = []
    for pct in top_percents:
        if not 0 < pct <= 100:
            raise DataError(f"top percent {pct} must be above 0 and at most 100")
        k = math.ceil(pct / 100 * n)
        rows.append({"top_percent": float(pct), "areas": k, "harm_share": float(cumulative[k - 1])})
    if top_areas:
        k = min(top_areas, n)
        rows.append(
            {"top_percent": 100 * k / n, "areas": k, "harm_share": float(cumulative[k - 1])}
        )
    table = pl.DataFrame(
        rows, schema={"top_percent": pl.Float64, "areas": pl.Int64, "harm_share": pl.Float64}
    )
    ascending = harms.sort()
    lorenz_y = [0.0, *(ascending.cum_sum() / total).to_list()]
    lorenz_x = [i / n for i in range(n + 1)]
    area_under = sum(
        (lorenz_x[i] - lorenz_x[i - 1]) * (lorenz_y[i] + lorenz_y[i - 1]) / 2
        for i in range(1, n + 1)
    )
    gini = 1 - 2 * area_under
    lorenz = pl.DataFrame({"area_share": lorenz_x, "harm_share": lorenz_y})
    meta = dict(ranked.meta)
    meta |= {"areas": n, "gini": gini}
    notes = list(ranked.notes)
    for row in rows:
        notes.append(
            f"the top {row['areas']} of {n} {by} areas ({row['top_percent']:.3g}%) hold "
            f"{100 * row['harm_share']:.1f}% of harm"
        )
    return HarmResult("concentration", meta, table, notes, {"lorenz": lorenz})


# -- Crime Severity Score from a counts table ------------------------------------------------

_AREA_COLUMNS = ("area_code", "area", "force_name", "force", "area_name", "code", "name")
_CODE_COLUMNS = ("offence_code", "code")
_COUNT_COLUMNS = ("number_of_offences", "offences", "count", "records")
_POP_COLUMNS = ("population", "total_population")


def _norm_header(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")


def _name_keys(value: str) -> set[str]:
    """Ways an area may be written: 'London, City of' also matches 'City of London'."""

    def squash(text: str) -> str:
        return re.sub(r"[^a-z0-9]+", "", text.lower())

    keys = {squash(value)}
    if "," in value:
        head, _, tail = value.partition(",")
        keys.add(squash(f"{tail} {head}"))
    return keys


def _read_table(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    if not path.is_file():
        raise NotFound(f"{path} does not exist")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text; save it as UTF-8 CSV") from None
    reader = csv.DictReader(text.splitlines())
    header = [_norm_header(h) for h in reader.fieldnames or []]
    rows = []
    for line, row in enumerate(reader, start=2):
        rows.append((line, {_norm_header(k or ""): (v or "").strip() for k, v in row.items()}))
    return header, rows


def _pick(header: list[str], options: tuple[str, ...], what: str, path: Path) -> str:
    for option in options:
        if option in header:
            return option
    raise DataError(
        f"{path}: no {what} column (looked for {', '.join(options)}; found "
        f"{', '.join(header) or 'nothing'}); rename one, or pass the column name"
    )


def css(
    counts_file: Path | str,
    population_file: Path | str,
    index: HarmIndex | str | None = None,
    area_column: str | None = None,
    population_column: str | None = None,
) -> HarmResult:
    """Crime Severity Score per area: sum(offences x code weight) / resident population.

    `counts_file`: one row per area and offence code with a count (the Home Office
    table's Force_Name, Offence_Code and Number_of_Offences work as they are; rows for the
    same area and code are summed, e.g. quarters). `population_file`: an area code or name
    column and a population column (`population`, `total_population`, or the only `MYE...`
    column). Offences whose code has no weight are counted and reported, not weighted.
    """
    harm_index = _index(index)
    counts_file, population_file = Path(counts_file), Path(population_file)
    header, rows = _read_table(counts_file)
    area_col = (
        _norm_header(area_column)
        if area_column
        else _pick(header, _AREA_COLUMNS, "area", counts_file)
    )
    if area_col not in header:
        raise DataError(f"{counts_file}: no column {area_column!r} (found {', '.join(header)})")
    code_col = _pick(header, _CODE_COLUMNS, "offence code", counts_file)
    count_col = _pick(header, _COUNT_COLUMNS, "count", counts_file)
    problems, parsed = [], []
    for line, row in rows:
        area, code, raw = row.get(area_col, ""), row.get(code_col, ""), row.get(count_col, "")
        try:
            count = int(raw.replace(",", ""))
        except ValueError:
            problems.append(f"{counts_file}:{line}: count {raw!r} is not a whole number")
            continue
        if not area or not code:
            problems.append(f"{counts_file}:{line}: empty area or offence code")
            continue
        parsed.append((area, code, count))
    if problems:
        shown = problems[:20] + (
            [f"... and {len(problems) - 20} more"] if len(problems) > 20 else []
        )
        raise DataError("the counts file has rows that cannot be used:\n  " + "\n  ".join(shown))
    counts = pl.DataFrame(
        parsed,
        schema={"area": pl.String, "offence_code": pl.String, "offences": pl.Int64},
        orient="row",
    )
    weights = harm_index.code_table()
    joined = counts.join(weights, on="offence_code", how="left")
    per_area = joined.group_by("area", maintain_order=True).agg(
        pl.col("offences").sum().alias("offences"),
        (pl.col("offences") * pl.col("weight")).sum().alias("weighted_offences"),
        pl.col("offences").filter(pl.col("weight").is_null()).sum().alias("unweighted_offences"),
    )
    populations, pop_meta = _population_table(population_file, population_column)
    pop_rows = []
    for area in per_area["area"].to_list():
        match = next((populations[k] for k in _name_keys(area) if k in populations), None)
        pop_rows.append(
            {
                "area": area,
                "population": match[0] if match else None,
                "population_area": match[1] if match else None,
            }
        )
    table = (
        per_area.join(
            pl.DataFrame(
                pop_rows,
                schema={"area": pl.String, "population": pl.Float64, "population_area": pl.String},
            ),
            on="area",
        )
        .with_columns(
            pl.when(pl.col("population") > 0)
            .then(pl.col("weighted_offences") / pl.col("population"))
            .alias("css")
        )
        .sort("area")
    )
    unweighted_codes = (
        joined.filter(pl.col("weight").is_null())
        .group_by("offence_code")
        .agg(pl.col("offences").sum())
        .sort("offence_code")
    )
    meta: dict[str, object] = {
        "counts_file": str(counts_file),
        "population_file": str(population_file),
        "rows_read": len(rows),
        "areas": table.height,
        "index": harm_index.describe(),
        **pop_meta,
        "codes_without_weight": dict(
            zip(unweighted_codes["offence_code"], unweighted_codes["offences"], strict=True)
        ),
    }
    notes = []
    missing = table.filter(pl.col("population").is_null())["area"].to_list()
    if missing:
        notes.append(f"no population for {', '.join(missing)}: CSS left empty")
    if unweighted_codes.height:
        notes.append(
            "offences with codes that have no weight (not weighted, counted in "
            f"unweighted_offences): {', '.join(unweighted_codes['offence_code'])}"
        )
    return HarmResult("css", meta, table, notes)


def _population_table(
    path: Path, column: str | None
) -> tuple[dict[str, tuple[float, str]], dict[str, object]]:
    """Population by every key an area may be matched on (code and name variants)."""
    header, rows = _read_table(path)
    if column:
        pop_col = _norm_header(column)
        if pop_col not in header:
            raise DataError(f"{path}: no column {column!r} (found {', '.join(header)})")
    else:
        candidates = [h for h in header if h in _POP_COLUMNS] or [
            h for h in header if h.startswith("mye")
        ]
        if len(candidates) != 1:
            raise DataError(
                f"{path}: cannot tell which column is the population (found "
                f"{', '.join(header)}); pass --population-column"
            )
        pop_col = candidates[0]
    key_cols = [h for h in header if h != pop_col and ("code" in h or "name" in h)]
    if not key_cols:
        raise DataError(f"{path}: needs an area code or name column (found {', '.join(header)})")
    table: dict[str, tuple[float, str]] = {}
    problems = []
    for line, row in rows:
        raw = row.get(pop_col, "").replace(",", "")
        if not raw:
            continue
        try:
            value = float(raw)
        except ValueError:
            problems.append(f"{path}:{line}: population {raw!r} is not a number")
            continue
        label = " / ".join(row[c] for c in key_cols if row.get(c))
        for col in key_cols:
            if row.get(col):
                for key in _name_keys(row[col]):
                    table.setdefault(key, (value, label))
    if problems:
        raise DataError(
            "the population file has rows that cannot be used:\n  " + "\n  ".join(problems[:20])
        )
    return table, {"population_column": pop_col}
