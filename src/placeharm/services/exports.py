"""Spatial exports for GIS (QGIS, ArcGIS): a GeoJSON page written as a GeoPackage.

The features come from the same page function as the GeoJSON twin (so the same policy check
and the same shaping for partners); this module only changes the format. Every GeoPackage
carries the security marking three ways: a `marking` column on every feature (it survives a
copy into another format), the layer's description and identifier (QGIS shows them), and a
`marking` metadata item on the dataset and on each layer (GDAL's metadata in `gpkg_metadata`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import shapely

from placeharm.errors import DataError

MEDIA_TYPE = "application/geopackage+sqlite3"
CRS = "EPSG:4326"  # GeoJSON coordinates are WGS84 longitude, latitude
_MULTI = {"Point": "MultiPoint", "LineString": "MultiLineString", "Polygon": "MultiPolygon"}


def write_geopackage(
    path: Path,
    layers: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    marking: str,
    title: str,
    data_as_of: str | None = None,
) -> None:
    """Write GeoJSON features as a GeoPackage, one layer per entry of `layers`.

    Parameters
    ----------
    path
        A new file (a GeoPackage is an SQLite database, so not a stream).
    layers
        Layer name -> GeoJSON features (`{"properties": {...}, "geometry": {...}}`). Each
        property becomes a column; a feature without a property has a null there. An empty
        layer is still written, without columns, so its absence says nothing.
    marking
        The security marking (OFFICIAL-SENSITIVE), written as described in the module docstring.
    title
        What the file holds, for the layer description.
    data_as_of
        The newest import behind the figures, as dataset metadata.
    """
    import pyogrio  # imported here: pyogrio pulls in pandas when geopandas is installed

    dataset_metadata = {"marking": marking, "title": title}
    if data_as_of:
        dataset_metadata["data_as_of"] = data_as_of
    for name, features in layers.items():
        table, geometry_type = _arrow(features, marking)
        try:
            pyogrio.write_arrow(
                table,
                str(path),
                layer=name,
                driver="GPKG",
                geometry_name="geometry",
                geometry_type=geometry_type,
                crs=CRS,
                append=path.exists(),
                dataset_metadata=dataset_metadata if not path.exists() else None,
                layer_metadata={"marking": marking},
                layer_options={
                    "IDENTIFIER": f"{name} ({marking})",
                    "DESCRIPTION": f"{marking}. {title}: {name}.",
                },
            )
        except Exception as exc:  # pyogrio raises DataSourceError and friends
            raise DataError(f"could not write the GeoPackage layer {name}: {exc}") from exc


def _arrow(features: Sequence[Mapping[str, Any]], marking: str) -> tuple[pa.Table, str]:
    """Properties as typed columns plus `marking`, geometry as WKB; and the layer's geometry
    type (single parts promoted to multi when a layer mixes them, as the GeoPackage spec asks)."""
    properties = [dict(f.get("properties") or {}) for f in features]
    frame = pl.from_dicts(properties, infer_schema_length=None) if properties else pl.DataFrame()
    # a column with only nulls has no type GDAL can write: make it text
    frame = frame.with_columns(pl.col(pl.Null).cast(pl.String))
    frame = frame.with_columns(pl.Series("marking", [marking] * len(features), pl.String))
    # a feature without a geometry (GeoJSON's null) is a row with a null geometry
    texts = [None if f.get("geometry") is None else json.dumps(f["geometry"]) for f in features]
    geometries = list(shapely.from_geojson(texts))
    kinds = {g.geom_type for g in geometries if g is not None}
    multi = {_MULTI.get(k, k) for k in kinds}
    if len(kinds) == 1:
        geometry_type = kinds.pop()
    elif len(multi) == 1 and multi <= set(_MULTI.values()):
        geometry_type = multi.pop()
        geometries = [_as_multi(g) for g in geometries]
    else:
        geometry_type = "Unknown"  # none, or a mixture GIS tools handle as a collection
    wkb = [None if g is None else shapely.to_wkb(g) for g in geometries]
    table = frame.to_arrow().append_column("geometry", pa.array(wkb, pa.binary()))
    return table, geometry_type


def _as_multi(geometry: shapely.Geometry | None) -> shapely.Geometry | None:
    if geometry is None:
        return None
    kind = geometry.geom_type
    if kind == "Point":
        return shapely.MultiPoint([geometry])
    if kind == "LineString":
        return shapely.MultiLineString([geometry])
    if kind == "Polygon":
        return shapely.MultiPolygon([geometry])
    return geometry


def neutralise_formulas(frame: pl.DataFrame) -> pl.DataFrame:
    """Text cells as a spreadsheet shows them and never runs them: a cell starting with a
    formula sign gets a leading apostrophe, which spreadsheets read as "this is text".

    The signs (OWASP "CSV injection"): = + - @, and tab and carriage return, which some
    spreadsheets strip before looking for one. Only the first character matters; columns
    that are not text are unchanged. Full-width signs (U+FF1D ...) are not quoted.
    """
    return frame.with_columns(pl.col(pl.String).str.replace(r"^([=+\-@\t\r])", "'$1"))
