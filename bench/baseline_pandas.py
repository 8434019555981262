"""Baseline: the same ingest as placeharm, the way a competent analyst would with pandas.

Vectorised pandas + geopandas, no placeharm code:

1. read every street and outcomes CSV with ``pandas.read_csv`` (pyarrow engine, strings);
2. validate as placeharm does: rows with a bad month (missing, not YYYY-MM, outside
   2010-12..this month, or next month for outcomes), bad coordinates (one of the pair
   missing, not a number, out of range) or an unknown crime type (street) / no Crime ID or
   outcome type (outcomes) go to a quarantine table with the reason;
3. key each crime by its Crime ID, or, with none, by a hash of its content plus its rank
   among identical rows of the file; drop duplicate keys (first in a file, latest file wins);
   outcomes are keyed by crime, month, type and rank, and duplicates dropped;
4. ``geopandas.sjoin`` (predicate ``intersects``, lowest area code wins a tie) of the distinct
   points against each area set, giving ``area_lsoa``, ``area_ward`` and ``area_msoa``; the
   record's own police.uk LSOA code is kept where the point is within 25 m of that LSOA (as
   placeharm does, since the published boundaries are generalised);
5. each crime's latest outcome (latest month, then latest line);
6. write crimes, outcomes and quarantine tables to a DuckDB file.

Reading the boundary files (geopandas.read_file, repairing invalid polygons) is timed
separately, like placeharm's `areas import`.

    .venv/bin/python bench/baseline_pandas.py --db /tmp/b.duckdb --out r.json [--files list.json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from pathlib import Path
from typing import Any

import duckdb
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from common import (
    area_paths,
    outcome_files,
    read_file_list,
    self_peak_rss_mb,
    street_files,
    write_json,
)

FIRST_MONTH = "2010-12"
TOLERANCE_M = 25.0
CRIME_TYPES = (
    "Anti-social behaviour",
    "Bicycle theft",
    "Burglary",
    "Criminal damage and arson",
    "Drugs",
    "Other crime",
    "Other theft",
    "Possession of weapons",
    "Public order",
    "Robbery",
    "Shoplifting",
    "Theft from the person",
    "Vehicle crime",
    "Violence and sexual offences",
)
STREET_RENAME = {
    "Crime ID": "crime_id",
    "Month": "month_text",
    "Reported by": "reported_by",
    "Falls within": "falls_within",
    "Longitude": "lon_text",
    "Latitude": "lat_text",
    "Location": "location",
    "LSOA code": "lsoa_code_file",
    "LSOA name": "lsoa_name_file",
    "Crime type": "crime_type",
    "Last outcome category": "last_outcome_category",
    "Context": "context",
}
OUTCOME_RENAME = {
    **{k: v for k, v in list(STREET_RENAME.items())[:9]},
    "Outcome type": "outcome_type",
}
KEY_CONTENT = [
    "month_text",
    "falls_within",
    "longitude",
    "latitude",
    "location",
    "lsoa_code_file",
    "crime_type",
    "context",
]


# -- areas ----------------------------------------------------------------------------------


def read_areas() -> dict[str, gpd.GeoDataFrame]:
    """Each area set as (code, geometry) in WGS84, invalid polygons repaired, sorted by code."""
    sets = {}
    for name, path in area_paths():
        gdf = gpd.read_file(path)
        code = next(c for c in gdf.columns if c.upper().endswith("CD") and c[:2].isalpha())
        gdf = gdf[[code, "geometry"]].rename(columns={code: "code"}).to_crs(4326)
        invalid = ~gdf.is_valid
        if invalid.any():
            fixed = gdf.loc[invalid, "geometry"].make_valid()
            # make_valid can return a collection: keep its polygonal part
            gdf.loc[invalid, "geometry"] = fixed.apply(_polygonal)
        sets[name] = gdf.sort_values("code", ignore_index=True)
    return sets


def _polygonal(geom: Any) -> Any:
    if isinstance(geom, shapely.GeometryCollection):
        parts = [g for g in geom.geoms if isinstance(g, shapely.Polygon | shapely.MultiPolygon)]
        return shapely.union_all(parts)
    return geom


# -- reading and validation -----------------------------------------------------------------


def read_files(paths: list[Path], rename: dict[str, str]) -> pd.DataFrame:
    frames = []
    for i, path in enumerate(paths):
        df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], engine="pyarrow")
        missing = set(rename) - set(df.columns)
        if missing:
            raise SystemExit(f"{path}: not a police.uk file (no {', '.join(sorted(missing))})")
        df = df[list(rename)].rename(columns=rename)
        df["file_no"] = i
        df["source_file"] = str(path)
        df["source_line"] = np.arange(2, len(df) + 2)
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def _next_month(month: str) -> str:
    y, m = int(month[:4]), int(month[5:7])
    return f"{y + m // 12:04d}-{m % 12 + 1:02d}"


def validate(df: pd.DataFrame, latest: str, kind: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Parse month and coordinates; return (good rows, quarantined rows with a reason)."""
    month = df["month_text"].str.strip()
    parsed = pd.to_datetime(month, format="%Y-%m", errors="coerce")
    lon_text, lat_text = df["lon_text"].str.strip(), df["lat_text"].str.strip()
    lon = pd.to_numeric(lon_text, errors="coerce")
    lat = pd.to_numeric(lat_text, errors="coerce")
    lon_given, lat_given = lon_text.notna(), lat_text.notna()
    checks = [
        (month.isna(), "month is missing"),
        (month.notna() & ((month.str.len() != 7) | parsed.isna()), "bad month"),
        (parsed.notna() & ((month < FIRST_MONTH) | (month > latest)), "month out of range"),
        (lon_given != lat_given, "only one of longitude and latitude is given"),
        (lon_given & lon.isna(), "longitude is not a number"),
        (lat_given & lat.isna(), "latitude is not a number"),
        (lon_given & ~(lon.abs() <= 180), "longitude is impossible"),
        (lat_given & ~(lat.abs() <= 90), "latitude is impossible"),
    ]
    if kind == "street":
        checks.append((~df["crime_type"].isin(CRIME_TYPES), "unknown crime type"))
    else:
        checks.append((df["crime_id"].isna(), "outcome row has no Crime ID"))
        checks.append((df["outcome_type"].isna(), "outcome type is missing"))
    conds = [c.fillna(True).to_numpy(dtype=bool) for c, _ in checks]
    bad = np.logical_or.reduce(conds)
    quarantine = df.loc[bad, ["source_file", "source_line"]].copy()
    quarantine["reason"] = np.select(
        [c[bad] for c in conds], [r for _, r in checks], default="bad row"
    )
    good = df.loc[~bad].copy()
    good["crime_id"] = good["crime_id"].str.strip()
    good["month_text"] = month[~bad]
    good["month"] = parsed[~bad]
    good["longitude"] = lon[~bad]
    good["latitude"] = lat[~bad]
    return good.drop(columns=["lon_text", "lat_text"]), quarantine


# -- keys and duplicates --------------------------------------------------------------------


def crime_keys(crimes: pd.DataFrame) -> pd.Series:
    """Crime ID, or a 64-bit hash of content + rank among identical rows of the same file."""
    no_id = crimes["crime_id"].isna()
    keyless = crimes.loc[no_id, ["file_no", *KEY_CONTENT]]
    rank = keyless.groupby(["file_no", *KEY_CONTENT], dropna=False, sort=False).cumcount()
    digest = pd.util.hash_pandas_object(keyless[KEY_CONTENT].assign(_rank=rank), index=False)
    key = crimes["crime_id"].copy()
    key[no_id] = "h" + digest.astype(str)
    return key


def outcome_keys(outcomes: pd.DataFrame) -> pd.Series:
    cols = ["file_no", "crime_id", "month_text", "outcome_type"]
    rank = outcomes.groupby(cols, sort=False).cumcount()
    return (
        outcomes["crime_id"]
        + "|"
        + outcomes["month_text"]
        + "|"
        + outcomes["outcome_type"]
        + "|"
        + rank.astype(str)
    )


# -- areas ----------------------------------------------------------------------------------


def assign_areas(crimes: pd.DataFrame, sets: dict[str, gpd.GeoDataFrame]) -> pd.DataFrame:
    """area_<set> per crime by sjoin of the distinct points; police.uk's LSOA within 25 m."""
    located = crimes["longitude"].notna() & crimes["latitude"].notna()
    pts = crimes.loc[located, ["longitude", "latitude"]].drop_duplicates(ignore_index=True)
    gpts = gpd.GeoDataFrame(
        pts, geometry=gpd.points_from_xy(pts["longitude"], pts["latitude"]), crs=4326
    )
    for name, areas in sets.items():
        joined = gpd.sjoin(gpts, areas, how="inner", predicate="intersects")
        # a point on a shared edge matches two areas: the lowest code wins (as placeharm)
        first = joined.sort_values("code").groupby(level=0)["code"].first()
        pts[f"area_{name}"] = first.reindex(pts.index)
    crimes = crimes.merge(pts, on=["longitude", "latitude"], how="left")
    if "lsoa" in sets:
        crimes = reconcile_lsoa(crimes, sets["lsoa"])
    return crimes


def reconcile_lsoa(crimes: pd.DataFrame, lsoa: gpd.GeoDataFrame) -> pd.DataFrame:
    """Keep police.uk's LSOA code where the point lies within 25 m of that LSOA (in BNG)."""
    file_code = crimes["lsoa_code_file"]
    differs = (
        crimes["longitude"].notna()
        & file_code.notna()
        & (file_code != crimes["area_lsoa"]).fillna(True)
        & file_code.isin(lsoa["code"])
    )
    crimes["lsoa_reconciled"] = False
    if not differs.any():
        return crimes
    cand = crimes.loc[differs, ["longitude", "latitude", "lsoa_code_file"]].drop_duplicates(
        ignore_index=True
    )
    points = gpd.GeoSeries(
        gpd.points_from_xy(cand["longitude"], cand["latitude"]), crs=4326
    ).to_crs(27700)
    polys = lsoa.set_index("code").geometry.to_crs(27700)
    targets = gpd.GeoSeries(polys.loc[cand["lsoa_code_file"]].to_numpy(), crs=27700)
    near = cand.loc[points.distance(targets, align=False).to_numpy() <= TOLERANCE_M]
    near = near.assign(_near=True)
    crimes = crimes.merge(near, on=["longitude", "latitude", "lsoa_code_file"], how="left")
    take = crimes["_near"].fillna(False).astype(bool) & differs.to_numpy()
    crimes.loc[take, "area_lsoa"] = crimes.loc[take, "lsoa_code_file"]
    crimes["lsoa_reconciled"] = take
    return crimes.drop(columns="_near")


# -- the whole run --------------------------------------------------------------------------


def run(
    street: list[Path], outcome: list[Path], sets: dict[str, gpd.GeoDataFrame], db: Path
) -> dict[str, float]:
    laps: dict[str, float] = {}
    t = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t
        now = time.perf_counter()
        laps[name] = now - t
        t = now

    latest = dt.date.today().strftime("%Y-%m")
    crimes_raw = read_files(street, STREET_RENAME)
    outcomes_raw = read_files(outcome, OUTCOME_RENAME)
    lap("read_s")

    crimes, bad_crimes = validate(crimes_raw, latest, "street")
    outcomes, bad_outcomes = validate(outcomes_raw, _next_month(latest), "outcomes")
    del crimes_raw, outcomes_raw
    lap("validate_s")

    crimes["crime_key"] = crime_keys(crimes)
    crimes = crimes.drop_duplicates(["file_no", "crime_key"], keep="first")
    crimes = crimes.drop_duplicates("crime_key", keep="last")
    outcomes["outcome_key"] = outcome_keys(outcomes)
    outcomes = outcomes.drop_duplicates("outcome_key", keep="first")
    lap("keys_s")

    crimes = assign_areas(crimes, sets)
    lap("areas_s")

    latest_outcome = (
        outcomes.sort_values(["month", "file_no", "source_line"])
        .drop_duplicates("crime_id", keep="last")[["crime_id", "outcome_type", "month"]]
        .rename(columns={"outcome_type": "latest_outcome", "month": "latest_outcome_month"})
    )
    crimes = crimes.merge(latest_outcome, on="crime_id", how="left")
    lap("latest_outcome_s")

    crimes = crimes.drop(columns=["file_no", "month_text"])
    outcomes = outcomes.drop(columns=["file_no", "month_text"])
    quarantine = pd.concat([bad_crimes, bad_outcomes], ignore_index=True)
    con = duckdb.connect(str(db))
    try:
        con.register("crimes_df", crimes)
        con.register("outcomes_df", outcomes)
        con.register("quarantine_df", quarantine)
        con.execute(
            "CREATE TABLE crimes AS SELECT * REPLACE (month::DATE AS month, "
            "latest_outcome_month::DATE AS latest_outcome_month) FROM crimes_df"
        )
        con.execute(
            "CREATE TABLE outcomes AS SELECT * REPLACE (month::DATE AS month) FROM outcomes_df"
        )
        con.execute("CREATE TABLE quarantine AS SELECT * FROM quarantine_df")
        lap("write_s")
    finally:
        con.close()  # the checkpoint: placeharm's close is timed the same way
    lap("close_s")
    return laps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", type=Path, required=True, help="DuckDB file to create")
    parser.add_argument("--out", type=Path, help="write timings as JSON here")
    parser.add_argument("--files", type=Path, help="JSON list of street and outcomes files")
    args = parser.parse_args()
    if args.files:
        files = read_file_list(args.files)
        street = [p for p in files if "-street.csv" in p.name]
        outcome = [p for p in files if "-outcomes.csv" in p.name]
    else:
        street, outcome = street_files(), outcome_files()

    t0 = time.perf_counter()
    sets = read_areas()
    areas_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    laps = run(street, outcome, sets, args.db)
    ingest_s = time.perf_counter() - t0
    out = {
        "impl": "baseline_pandas",
        "files": len(street) + len(outcome),
        "areas_s": areas_s,
        # Like placeharm's: ingest_s up to the data committed, close_s the close (checkpoint).
        "ingest_s": ingest_s - laps["close_s"],
        "close_s": laps["close_s"],
        "ingest_close_s": ingest_s,
        "stages": laps,
        "peak_rss_self_mb": self_peak_rss_mb(),
    }
    if args.out:
        write_json(args.out, out)
    else:
        print(out)


if __name__ == "__main__":
    main()
