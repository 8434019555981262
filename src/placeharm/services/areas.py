"""Area sets: import boundaries, hierarchy lookups, and point-in-polygon assignment."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import shapely
from pyproj import Transformer

from placeharm import audit
from placeharm.audit import Actor
from placeharm.errors import DataError, NotFound, describe
from placeharm.geo import GRID_MIN_POINTS, PolygonGrid, PreparedPolygons, assign_points_to_sets
from placeharm.geo.assign import grid_digest, grid_from_bytes, grid_to_bytes
from placeharm.ingest.boundaries import read_boundaries
from placeharm.model import AreaSetInfo, ImportResult, QuarantineRow, check_area_set_name
from placeharm.store.base import Store
from placeharm.store.sqlstore import RECORD_TABLES

# The set whose codes police.uk also publishes per record (2011 LSOAs in the bulk files).
RECONCILED_SET = "lsoa"
_CACHE_POINTS = 1_000_000
# A batch of at least this many located rows, more than this share of them new distinct
# points, switches the assigner to direct testing (see `Assigner`).
_DIRECT_MIN_ROWS = 50_000
_DIRECT_SHARE = 0.5
_TO_BNG = Transformer.from_crs("EPSG:4326", "EPSG:27700", always_xy=True)
log = logging.getLogger(__name__)


@dataclass(slots=True)
class AreaImportResult:
    """What an `areas import` stored, repaired and rejected."""

    info: AreaSetInfo
    repaired: list[str]
    rejected: list[QuarantineRow]


@dataclass(slots=True)
class LoadedSet:
    """A set's polygons in memory, ready for point-in-polygon."""

    name: str
    codes: np.ndarray
    polygons: np.ndarray
    _bng: np.ndarray | None = field(default=None)
    _grid: PolygonGrid | None = field(default=None)
    _ready: PreparedPolygons | None = field(default=None)
    # The identity of these polygons for a grid kept in the store (`grid_digest`), the kept
    # grid's bytes while not yet needed, and whether the store holds the grid in use.
    digest: str = ""
    _kept: bytes | None = field(default=None)
    grid_kept: bool = False

    def codes_at(self, index: np.ndarray) -> pl.Series:
        """The code of each polygon index, null for -1 (no area)."""
        codes = pl.Series([*self.codes.tolist(), None], dtype=pl.String)  # null at the end
        return codes.gather(np.where(index < 0, len(self.codes), index))

    def index_for(self, points: int, threads: int) -> PolygonGrid | PreparedPolygons:
        """What to assign `points` points with: the set's grid, built once a batch is big
        enough to repay it (about a second for ~1,000 LSOAs), else the polygons, prepared
        once. Not thread-safe: `Assigner` calls it under its lock."""
        if self._grid is None and points >= GRID_MIN_POINTS:
            self._grid = self._kept_grid() or PolygonGrid.build(self.polygons, threads=threads)
        if self._grid is not None:
            return self._grid
        if self._ready is None:
            self._ready = PreparedPolygons.build(self.polygons)
        return self._ready

    def _kept_grid(self) -> PolygonGrid | None:
        """The grid the store keeps for these polygons (see `load_sets`), or None."""
        kept, self._kept = self._kept, None
        if kept is None:
            return None
        try:
            grid = grid_from_bytes(self.polygons, kept)
        except (ValueError, KeyError, TypeError, zlib.error) as exc:  # built again, kept again
            log.warning("the grid kept for area set %s cannot be read (%s)", self.name, exc)
            return None
        self.grid_kept = True
        return grid

    def bng_polygons(self) -> np.ndarray:
        if self._bng is None:
            self._bng = shapely.transform(
                self.polygons,
                lambda xy: np.column_stack(_TO_BNG.transform(xy[:, 0], xy[:, 1])),
            )
        return self._bng


def import_areas(
    store: Store,
    path: Path | str,
    set_name: str,
    code_field: str | None = None,
    name_field: str | None = None,
    actor: Actor | None = None,
) -> AreaImportResult:
    """Import a boundary file as a named area set, replacing an earlier set of that name.

    Records are assigned to the new set by the next `ingest` (or `assign_pending`).
    """
    check_area_set_name(set_name)
    path = Path(path)
    boundaries = read_boundaries(path, code_field, name_field)
    info = AreaSetInfo(
        name=set_name,
        source_file=str(path),
        code_field=boundaries.code_field,
        name_field=boundaries.name_field,
        source_crs=boundaries.source_crs,
        feature_count=len(boundaries.codes),
        repaired_count=len(boundaries.repaired),
        rejected_count=len(boundaries.rejected),
        imported_at=dt.datetime.now(dt.UTC).replace(tzinfo=None),
        assigned=False,
    )
    areas = pl.DataFrame(
        {
            "area_code": boundaries.codes,
            "area_name": boundaries.names,
            "geometry_wkb": shapely.to_wkb(boundaries.polygons).tolist(),
        },
        schema={"area_code": pl.String, "area_name": pl.String, "geometry_wkb": pl.Binary},
    )
    started = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with store.transaction():
        store.replace_area_set(info, areas)
        import_id = store.next_import_ids(1)[0]
        store.add_quarantine(import_id, boundaries.rejected)
        account = ImportResult(
            str(path),
            "areas",
            "ok",
            rows_read=len(boundaries.codes) + len(boundaries.rejected),
            inserted=len(boundaries.codes),
            quarantined=len(boundaries.rejected),
            message=f"area set {set_name}; repaired: {', '.join(boundaries.repaired) or 'none'}",
            import_id=import_id,
        )
        audit.record_imports(store, actor, [(account, started, "")], "areas import")
    return AreaImportResult(info, boundaries.repaired, boundaries.rejected)


def load_sets(store: Store) -> list[LoadedSet]:
    """Every area set's polygons, ordered by code (the tie-break order)."""
    loaded = []
    for info in store.area_sets():
        frame = store.area_polygons(info.name)
        polygons = shapely.from_wkb(frame["geometry_wkb"].to_numpy())
        area = LoadedSet(info.name, frame["area_code"].to_numpy(), polygons)
        # A grid kept for exactly these polygons is used instead of building one (decoded
        # only when a batch is large enough to need a grid); any other is ignored.
        area.digest = grid_digest(frame["area_code"].to_list(), frame["geometry_wkb"].to_list())
        kept = store.area_grid(info.name)
        if kept is not None and kept[0] == area.digest:
            area._kept = kept[1]
        loaded.append(area)
    return loaded


def keep_grids(store: Store, sets: list[LoadedSet]) -> list[str]:
    """Keep in the store each set's grid built in this process and not kept yet, so later
    imports (another process, a new month) use it instead of building it again (several
    seconds of CPU for ~1,000 LSOAs). Returns the names of the sets whose grid was kept.

    A grid is a cache: failing to keep one (a full disk, another process keeping the same
    set's grid at that moment) is logged, and the import it follows stands as committed.
    """
    kept = []
    for area in sets:
        grid = area._grid
        if grid is None or area.grid_kept or not area.digest:
            continue
        try:
            store.save_area_grid(area.name, area.digest, grid_to_bytes(grid))
        except Exception as exc:  # a cache: the next import builds it again
            log.warning("the grid of area set %s was not kept: %s", area.name, describe(exc))
            continue
        area.grid_kept = True
        kept.append(area.name)
    return kept


class Assigner:
    """Assigns records to every loaded set, remembering coordinates already assigned.

    police.uk snaps every record to one of ~750,000 map points, so successive monthly files
    repeat the same coordinates: each distinct point is tested once per run (33 months of
    Northumbria: 6% of located rows are distinct points). Points that are not snapped (a
    force's own records, the jittered benchmark rows: 97% distinct) gain nothing from that
    and pay for the look-ups, so once a large batch is mostly new points the assigner stops
    remembering and tests every row's point directly.

    Safe to share between threads (ingest assigns files on its prefetch threads): finding
    codes is serialised by a lock, since a prepared polygon must never be used by two
    threads at once (see `placeharm.geo.assign`).
    """

    def __init__(self, sets: list[LoadedSet], threads: int, tolerance_m: float) -> None:
        self.sets = sets
        self.threads = threads
        self.tolerance_m = tolerance_m
        self.remember = True
        self._lock = threading.Lock()
        self._known = pl.DataFrame(
            schema={"longitude": pl.Float64, "latitude": pl.Float64}
            | {f"area_{s.name}": pl.String for s in sets}
        )

    def _with_codes(self, frame: pl.DataFrame) -> pl.DataFrame:
        """`frame` (points) with an `area_<set>` column per set, tested now."""
        x, y = frame["longitude"].to_numpy(), frame["latitude"].to_numpy()  # null -> NaN
        indexes = [s.index_for(len(x), self.threads) for s in self.sets]
        found = assign_points_to_sets(x, y, indexes, self.threads)
        return frame.with_columns(
            s.codes_at(idx).alias(f"area_{s.name}") for s, idx in zip(self.sets, found, strict=True)
        )

    def _codes_for(self, points: pl.DataFrame, rows: int) -> pl.DataFrame:
        """Codes for exactly these distinct points: remembered ones, and the rest tested now."""
        on = ["longitude", "latitude"]
        # One join tells remembered points from fresh ones (`_known` marks every row).
        looked_up = points.join(
            self._known.with_columns(pl.lit(True).alias("_known")), on=on, how="left"
        )
        remembered = looked_up["_known"].is_not_null()
        hits = looked_up.filter(remembered).drop("_known")
        fresh = looked_up.filter(~remembered).select(on)
        if rows >= _DIRECT_MIN_ROWS and fresh.height > rows * _DIRECT_SHARE:
            self.remember = False
            self._known = self._known.clear()
        if fresh.height:
            fresh = self._with_codes(fresh)
            # Remember at most _CACHE_POINTS points: police.uk repeats ~750k map points
            # nationally, while jittered or force-recorded points would only grow the cache.
            if self.remember and self._known.height + fresh.height <= _CACHE_POINTS:
                self._known = pl.concat([self._known, fresh], how="vertical")
        if not fresh.height:
            return hits  # every point was remembered (fresh has no area columns then)
        return pl.concat([hits, fresh], how="vertical") if hits.height else fresh

    def assign(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Add `area_<set>` for every set, plus `located`, `in_area` and `lsoa_reconciled`.

        For the `lsoa` set, where the record carries police.uk's own LSOA code and its point
        lies within `tolerance_m` metres of that LSOA's polygon, the record's code is kept:
        generalised boundaries move edges by up to ~20 m, and police.uk assigned the code on
        full-resolution boundaries (docs/areas.md).
        """
        located = pl.col("longitude").is_not_null() & pl.col("latitude").is_not_null()
        out = frame.with_columns(located.alias("located"))
        if not self.sets:
            return out.with_columns(
                pl.lit(None, dtype=pl.Boolean).alias("in_area"),
                pl.lit(False).alias("lsoa_reconciled"),
            )
        with self._lock:  # one thread at a time tests points and updates what is remembered
            if self.remember:
                located_rows = out.filter("located").select("longitude", "latitude")
                codes = self._codes_for(located_rows.unique(), located_rows.height)
            else:
                codes = None
                # Rows without a location have a NaN coordinate here, so they get no area.
                out = self._with_codes(out)
            lsoa = next((s for s in self.sets if s.name == RECONCILED_SET), None)
            reconcile = lsoa is not None and "lsoa_code_file" in out.columns
            if lsoa is not None and reconcile and self.tolerance_m > 0:
                lsoa.bng_polygons()  # built once, here, not by two threads at once
        if codes is not None:
            out = out.join(codes, on=["longitude", "latitude"], how="left")
        reconciled = pl.lit(False)
        if lsoa is not None and reconcile and self.tolerance_m > 0:
            out, reconciled_mask = _reconcile_lsoa(out, lsoa, self.tolerance_m)
            reconciled = pl.lit(pl.Series(reconciled_mask))
        area_cols = [f"area_{s.name}" for s in self.sets]
        in_area = pl.when(pl.col("located")).then(
            pl.any_horizontal(pl.col(c).is_not_null() for c in area_cols)
        )
        return out.with_columns(in_area.alias("in_area"), reconciled.alias("lsoa_reconciled"))


def assign_frame(
    frame: pl.DataFrame, sets: list[LoadedSet], threads: int, tolerance_m: float
) -> pl.DataFrame:
    """One-off assignment of a frame of records (see `Assigner.assign`)."""
    return Assigner(sets, threads, tolerance_m).assign(frame)


def _reconcile_lsoa(
    frame: pl.DataFrame, lsoa: LoadedSet, tolerance_m: float
) -> tuple[pl.DataFrame, np.ndarray]:
    col = f"area_{lsoa.name}"
    index = {str(c): i for i, c in enumerate(lsoa.codes)}
    differs = (
        pl.col("located")
        & pl.col("lsoa_code_file").is_not_null()
        & pl.col("lsoa_code_file").ne_missing(pl.col(col))
        & pl.col("lsoa_code_file").is_in(list(index))
    )
    mask = frame.select(differs.fill_null(False)).to_series().to_numpy()
    if not mask.any():
        return frame, mask
    # Distinct (point, code) pairs are measured once; rows keep their order (no join back).
    on = ["longitude", "latitude", "lsoa_code_file"]
    rows = np.flatnonzero(mask)
    cand = frame.filter(pl.Series(mask)).select(on).with_row_index("_row")
    pairs = cand.unique(subset=on, keep="first")
    bx, by = _TO_BNG.transform(pairs["longitude"].to_numpy(), pairs["latitude"].to_numpy())
    polygon = pairs["lsoa_code_file"].replace_strict(list(index), list(index.values()))
    polys = lsoa.bng_polygons()[polygon.to_numpy()]
    distance = shapely.distance(polys, shapely.points(bx, by))
    near = pairs.filter(pl.Series(distance <= tolerance_m)).select(on)
    take = np.zeros(len(mask), dtype=bool)
    take[rows[cand.join(near, on=on, how="semi")["_row"].to_numpy()]] = True
    fixed = frame.with_columns(
        pl.when(pl.Series(take)).then(pl.col("lsoa_code_file")).otherwise(pl.col(col)).alias(col)
    )
    return fixed, take


def assign_pending(store: Store, threads: int, tolerance_m: float) -> dict[str, int]:
    """Assign every stored record to each area set not yet assigned; return rows per set."""
    pending = [s.name for s in store.area_sets() if not s.assigned]
    if not pending:
        return {}
    sets = [s for s in load_sets(store) if s.name in pending]
    done: dict[str, int] = {}
    for s in sets:
        with store.transaction():
            total = 0
            for table in RECORD_TABLES:
                points = store.unassigned_points(table)
                if points.is_empty():
                    continue
                assigned = assign_frame(points, [s], threads, tolerance_m)
                store.set_area_codes(
                    table,
                    s.name,
                    assigned.select(
                        "_rid",
                        pl.col(f"area_{s.name}").alias("code"),
                        pl.col("lsoa_reconciled").alias("reconciled"),
                    ),
                )
                total += points.height
            store.mark_assigned(s.name)
        done[s.name] = total
    keep_grids(store, sets)
    return done


def import_lookup(
    store: Store,
    path: Path | str,
    from_set: str,
    from_column: str,
    to_set: str,
    to_column: str,
    to_name_column: str | None = None,
) -> int:
    """Load a hierarchy lookup (e.g. LSOA -> ward) from a CSV; replaces that pair's rows."""
    check_area_set_name(from_set)
    check_area_set_name(to_set)
    path = Path(path)
    try:
        frame = pl.read_csv(path, infer_schema=False)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise DataError(f"cannot read lookup file {path}: {exc}") from exc
    wanted = [from_column, to_column] + ([to_name_column] if to_name_column else [])
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise DataError(
            f"{path} has no column {', '.join(missing)}; its columns are {', '.join(frame.columns)}"
        )
    rows = (
        frame.select(
            pl.lit(from_set).alias("from_set"),
            pl.col(from_column).str.strip_chars().alias("from_code"),
            pl.lit(to_set).alias("to_set"),
            pl.col(to_column).str.strip_chars().alias("to_code"),
            (pl.col(to_name_column) if to_name_column else pl.lit(None, dtype=pl.String)).alias(
                "to_name"
            ),
            pl.lit(str(path)).alias("source_file"),
        )
        .drop_nulls(["from_code", "to_code"])
        .unique(["from_code"], keep="first", maintain_order=True)
    )
    with store.transaction():
        return store.replace_lookup(rows)


def parents(store: Store, set_name: str, code: str) -> list[tuple[str, str, str | None]]:
    """The chain of areas above one area (e.g. LSOA -> ward, MSOA, local authority -> force)."""
    chain: list[tuple[str, str, str | None]] = []
    seen = {(set_name, code)}
    frontier = [(set_name, code)]
    while frontier:
        current_set, current_code = frontier.pop(0)
        for to_set, to_code, to_name in store.lookups_from(current_set, current_code):
            if (to_set, to_code) in seen:
                continue
            seen.add((to_set, to_code))
            chain.append((to_set, to_code, to_name or store.area_name(to_set, to_code)))
            frontier.append((to_set, to_code))
    if not chain and store.area_name(set_name, code) is None:
        raise NotFound(
            f"no area {code} in set {set_name!r} and no lookup from it; check the code, or "
            "load a lookup with `placeharm areas lookup` (see docs/areas.md)"
        )
    return chain
