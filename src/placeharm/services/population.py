"""Resident populations per area: loaded from ONS files, or built up from smaller areas.

Harm per resident needs a population for each area. ONS publishes mid-year estimates for
LSOAs (and local authorities); wards, sectors and beats are built by best fit: each LSOA's
whole population goes to the area that contains the LSOA's interior point (docs/harm.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl
import shapely

from placeharm.errors import DataError, NotFound
from placeharm.model import check_area_set_name
from placeharm.store.base import Store

_CODE_HINTS = ("code",)
_POP_HINTS = ("total_population", "population")


@dataclass(slots=True)
class PopulationResult:
    """What a population load stored and what it could not place."""

    set_name: str
    year: int
    method: str
    areas: int  # areas of the set
    stored: int  # areas given a population
    total: float
    not_in_set: int  # file rows (or source areas) for areas outside this set
    areas_without: list[str]  # codes of the set with no population

    def to_dict(self) -> dict[str, object]:
        return {
            "set": self.set_name,
            "year": self.year,
            "method": self.method,
            "areas": self.areas,
            "stored": self.stored,
            "total_population": self.total,
            "not_in_set": self.not_in_set,
            "areas_without_population": self.areas_without,
        }


def _set_codes(store: Store, set_name: str) -> pl.DataFrame:
    check_area_set_name(set_name)
    if set_name not in {s.name for s in store.area_sets()}:
        raise NotFound(
            f"no area set called {set_name!r}; import its boundaries first with "
            "`placeharm areas import`"
        )
    return store.area_list(set_name)


def _column(frame: pl.DataFrame, given: str | None, hints: tuple[str, ...], what: str) -> str:
    if given:
        if given not in frame.columns:
            raise DataError(
                f"no column {given!r}; the file's columns are {', '.join(frame.columns)}"
            )
        return given
    for hint in hints:
        found = [c for c in frame.columns if hint in c.lower()]
        if len(found) == 1:
            return found[0]
    raise DataError(
        f"cannot tell which column holds the {what} (columns: {', '.join(frame.columns)}); "
        f"pass --{what.replace(' ', '-')}-column"
    )


def import_population(
    store: Store,
    path: Path | str,
    set_name: str,
    year: int,
    code_column: str | None = None,
    population_column: str | None = None,
) -> PopulationResult:
    """Load populations for a set's areas from a CSV (e.g. ONS LSOA mid-year estimates).

    Rows for areas outside the set (a national file loaded for one force) are counted, not
    stored. A row with a missing or non-numeric population refuses the whole file.
    """
    path = Path(path)
    areas = _set_codes(store, set_name)
    try:
        frame = pl.read_csv(path, infer_schema=False)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise DataError(f"cannot read population file {path}: {exc}") from exc
    code_col = _column(frame, code_column, _CODE_HINTS, "code")
    pop_col = _column(frame, population_column, _POP_HINTS, "population")
    frame = frame.with_row_index("line", offset=2).select(
        "line",
        pl.col(code_col).str.strip_chars().alias("area_code"),
        pl.col(pop_col).str.strip_chars().alias("raw"),
    )
    frame = frame.with_columns(
        pl.col("raw").str.replace_all(",", "").cast(pl.Float64, strict=False).alias("population")
    )
    bad = frame.filter(
        pl.col("population").is_null() | (pl.col("population") < 0) | pl.col("area_code").is_null()
    )
    if bad.height:
        shown = [
            f"{path}:{r['line']}: {r['area_code']!r} population {r['raw']!r}"
            for r in bad.head(20).to_dicts()
        ]
        raise DataError(
            f"{bad.height} rows of {path} have no usable population (nothing stored):\n  "
            + "\n  ".join(shown)
        )
    duplicated = frame.filter(pl.col("area_code").is_duplicated())["area_code"].unique()
    if duplicated.len():
        raise DataError(
            f"{path}: area codes appear more than once: {', '.join(duplicated.head(10))}"
        )
    matched = frame.join(areas.select("area_code"), on="area_code", how="semi")
    if matched.is_empty():
        raise DataError(
            f"no code in {path} ({code_col}) is an area of set {set_name!r}; is it the right "
            "file, edition and column?"
        )
    rows = matched.select(
        "area_code",
        "population",
        pl.lit("file").alias("method"),
        pl.lit(str(path)).alias("source_file"),
    )
    with store.transaction():
        store.replace_populations(set_name, year, rows)
    return _result(set_name, year, "file", areas, rows, frame.height - matched.height)


def derive_population(store: Store, set_name: str, from_set: str, year: int) -> PopulationResult:
    """Best fit: give each area of `set_name` the populations of the `from_set` areas whose
    interior point (shapely `point_on_surface`) falls inside it."""
    targets = _set_codes(store, set_name)
    _set_codes(store, from_set)
    source = store.populations(from_set).filter(pl.col("year") == year)
    if source.is_empty():
        raise NotFound(
            f"no {year} populations held for {from_set!r}; load them first with "
            f"`placeharm areas population FILE --set {from_set} --year {year}`"
        )
    small = store.area_polygons(from_set).join(source, on="area_code")
    points = shapely.point_on_surface(shapely.from_wkb(small["geometry_wkb"].to_numpy()))
    big = store.area_polygons(set_name)
    polygons = shapely.from_wkb(big["geometry_wkb"].to_numpy())
    tree = shapely.STRtree(polygons)
    point_idx, poly_idx = tree.query(points, predicate="within")
    # a point on a shared edge may fall in two areas: the lowest code wins, as in assignment
    pairs = (
        pl.DataFrame({"point": point_idx, "poly": poly_idx})
        .sort("poly")
        .unique("point", keep="first")
    )
    placed = pl.DataFrame(
        {
            "area_code": big["area_code"].gather(pairs["poly"]),
            "population": small["population"].gather(pairs["point"]),
        }
    )
    method = f"best fit from {from_set} {year} (interior points)"
    rows = (
        placed.group_by("area_code")
        .agg(pl.col("population").sum())
        .with_columns(
            pl.lit(method).alias("method"),
            pl.lit(", ".join(sorted(set(source["source_file"].to_list())))).alias("source_file"),
        )
    )
    with store.transaction():
        store.replace_populations(set_name, year, rows)
    return _result(set_name, year, method, targets, rows, small.height - pairs.height)


def _result(
    set_name: str,
    year: int,
    method: str,
    areas: pl.DataFrame,
    rows: pl.DataFrame,
    not_in_set: int,
) -> PopulationResult:
    without = areas.join(rows, on="area_code", how="anti")["area_code"].to_list()
    return PopulationResult(
        set_name,
        year,
        method,
        areas.height,
        rows.height,
        float(rows["population"].sum()),
        not_in_set,
        without,
    )
