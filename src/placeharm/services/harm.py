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

import numpy as np
import polars as pl

from placeharm.errors import DataError, NotFound, UnknownArea
from placeharm.harm import HarmIndex, load_index
from placeharm.harm.indices import WEIGHT_SOURCES
from placeharm.model import month_range, shift_month
from placeharm.services import indices, readmodel
from placeharm.services.queries import check_area_query_among
from placeharm.services.readmodel import FloatArray, IntArray
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


def _ranking(harm: FloatArray, code_order: IntArray) -> tuple[IntArray, IntArray]:
    """Areas ordered by harm (highest first, then code) and each one's rank there ("min":
    tied areas share the best rank), as `sort` then `rank("min", descending=True)`."""
    order = np.lexsort((code_order, -harm))
    ordered = -harm[order]  # ascending
    return order, np.searchsorted(ordered, ordered, side="left").astype(np.int64) + 1


def _weight_sources(totals: readmodel.Totals, weights: readmodel.Weights) -> dict[str, int]:
    """Records matched, by where their weight came from (every record: outside too)."""
    return {
        name: int(totals.by_key[weights.source == code].sum())
        for code, name in enumerate(WEIGHT_SOURCES)
    }


def population_for(store: Store, by: str, year: int) -> tuple[pl.DataFrame, dict[str, object]]:
    """The set's populations for the latest year held at or before `year` (else the earliest)."""
    return readmodel.populations_of_year(store.populations(by), year)


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
) -> tuple[readmodel.SetCells, list[str] | None, list[str] | None]:
    """The set's read model, once the query is checked; the filters as the queries use them."""
    check_area_query_among(readmodel.area_sets(store), by, first, last, crime_types)
    codes = [c.strip() for c in offence_codes if c.strip()] if offence_codes else None
    return readmodel.cells(store, by), crime_types or None, codes or None


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
    Answered from the set's read model (`services.readmodel`): no store query when warm.
    """
    cells, crime_types, offence_codes = _prepare(store, by, first, last, crime_types, offence_codes)
    harm_index = _index(index, store)
    gaps = cells.gap_months(first, last)
    weights = cells.weights(harm_index)
    totals = cells.totals(first, last, weights, cells.key_filter(crime_types, offence_codes))
    order, ranks = _ranking(totals.harm[: len(cells.codes)], cells.code_order)
    rows = np.append(order, cells.outside)  # every area by rank, then the unranked row
    _, population, pop_meta = cells.population(last.year)
    populations = np.append(population[order], np.nan)
    harms = totals.harm[rows]
    total_harm = float(harms.sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        per_resident = np.where(populations > 0, harms / populations, np.nan)
    table = pl.DataFrame(
        {
            "rank": [*ranks.tolist(), None],
            "area_code": [*(cells.codes[i] for i in order), None],
            "area_name": [
                *(cells.names[i] for i in order),
                f"(no location, or outside every {by} area)",
            ],
            "records": totals.records[rows],
            "harm": harms,
            "harm_share": harms / total_harm if total_harm else [None] * len(rows),
            "population": pl.Series(populations, nan_to_null=True),
            "harm_per_resident": pl.Series(per_resident, nan_to_null=True),
            "unweighted": totals.unweighted[rows],
        },
        schema={
            "rank": pl.Int64,
            "area_code": pl.String,
            "area_name": pl.String,
            "records": pl.Int64,
            "harm": pl.Float64,
            "harm_share": pl.Float64,
            "population": pl.Float64,
            "harm_per_resident": pl.Float64,
            "unweighted": pl.Int64,
        },
    )
    sources = _weight_sources(totals, weights)
    meta = _base_meta(by, first, last, gaps, harm_index, crime_types, offence_codes)
    meta["partial_months"] = cells.partial_months(first, last)
    meta |= pop_meta | {
        "total_records": int(totals.records[rows].sum()),
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
    cells, crime_types, offence_codes = _prepare(store, by, first, last, crime_types, offence_codes)
    harm_index = _index(index, store)
    months = month_range(first, last)
    if against == "previous":
        shift = -len(months)
    elif against == "year":
        shift = -12
    else:
        raise DataError(f"--against must be 'previous' or 'year', not {against!r}")
    before = [shift_month(m, shift) for m in months]
    gaps_now = set(cells.gap_months(first, last))
    gaps_before = set(cells.gap_months(before[0], before[-1]))
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
    weights = cells.weights(harm_index)
    keep = cells.key_filter(crime_types, offence_codes)
    areas = len(cells.codes)
    periods = []
    for kept in (kept_now, kept_before):
        totals = cells.totals(span_first, span_last, weights, keep, months=kept)
        harms = totals.harm[:areas]
        order, ranks = _ranking(harms, cells.code_order)
        rank_of = np.empty(areas, dtype=np.int64)
        rank_of[order] = ranks
        periods.append((order, rank_of, totals.records[:areas], harms))
    (order, rank_now, records_now, harm_now), (_, rank_then, records_then, harm_then) = periods
    table = pl.DataFrame(
        {
            "area_code": [cells.codes[i] for i in order],
            "area_name": [cells.names[i] for i in order],
            "rank_current": rank_now[order],
            "records_current": records_now[order],
            "harm_current": harm_now[order],
            "rank_previous": rank_then[order],
            "records_previous": records_then[order],
            "harm_previous": harm_then[order],
        },
        schema={
            "area_code": pl.String,
            "area_name": pl.String,
            "rank_current": pl.Int64,
            "records_current": pl.Int64,
            "harm_current": pl.Float64,
            "rank_previous": pl.Int64,
            "records_previous": pl.Int64,
            "harm_previous": pl.Float64,
        },
    ).with_columns(
        (pl.col("harm_current") - pl.col("harm_previous")).alias("change"),
        pl.when(pl.col("harm_previous") > 0)
        .then((pl.col("harm_current") / pl.col("harm_previous") - 1) * 100)
        .alias("pct_change"),
        (pl.col("rank_previous") - pl.col("rank_current")).alias("rank_movement"),
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
    cells, crime_types, offence_codes = _prepare(store, by, first, last, crime_types, offence_codes)
    harm_index = _index(index, store)
    chosen = list(range(len(cells.codes)))
    if areas:
        unknown = sorted(set(areas) - set(cells.codes))
        if unknown:
            raise UnknownArea(
                by,
                unknown,
                f"no area {', '.join(unknown)} in set {by!r}; list them with "
                f"`placeharm rank --by {by}`",
            )
        wanted = set(areas)
        chosen = [i for i in chosen if cells.codes[i] in wanted]
    picked = sorted(chosen, key=lambda i: int(cells.code_order[i]))
    gaps = cells.gap_months(first, last)
    months = month_range(first, last)
    weights = cells.weights(harm_index)
    held, records, harms = cells.monthly(
        first, last, weights, cells.key_filter(crime_types, offence_codes)
    )
    outside = int(records[cells.outside].sum())
    # each month of the period: its column among the months held, else a column of zeros
    position = {m: k for k, m in enumerate(held)}
    columns = np.array([position.get(m, len(held)) for m in months], dtype=np.int64)
    rows = np.array(picked, dtype=np.int64)
    zero = np.zeros((records.shape[0], 1))
    grid_records = np.hstack([records, zero.astype(np.int64)])[rows][:, columns].ravel()
    grid_harm = np.hstack([harms, zero])[rows][:, columns].ravel()
    gap = np.array([_label(m) in gaps for m in months], dtype=np.bool_)
    n = len(months)
    table = (
        pl.DataFrame(
            {
                "area_code": [cells.codes[i] for i in picked for _ in range(n)],
                "area_name": [cells.names[i] for i in picked for _ in range(n)],
                "month": [_label(m) for m in months] * len(picked),
                "records": grid_records,
                "harm": grid_harm,
                "_gap": np.tile(gap, len(picked)),
            },
            schema={
                "area_code": pl.String,
                "area_name": pl.String,
                "month": pl.String,
                "records": pl.Int64,
                "harm": pl.Float64,
                "_gap": pl.Boolean,
            },
        )
        .with_columns(
            pl.when(pl.col("_gap")).then(None).otherwise(pl.col("records")).alias("records"),
            pl.when(pl.col("_gap")).then(None).otherwise(pl.col("harm")).alias("harm"),
        )
        .drop("_gap")
    )
    meta = _base_meta(by, first, last, gaps, harm_index, crime_types, offence_codes)
    meta["partial_months"] = cells.partial_months(first, last)
    meta |= {"records_outside_set": outside, "areas": len(picked)}
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
