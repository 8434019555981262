"""Read boundary files (GeoJSON, GeoPackage, Shapefile) into WGS84 polygons with codes."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shapely
from pyproj import CRS, Transformer

from placeharm.errors import DataError
from placeharm.model import QuarantineRow

_CODE_RE = re.compile(r"^[A-Z]{2,6}\d{2}CD$", re.IGNORECASE)
_NAME_RE = re.compile(r"^[A-Z]{2,6}\d{2}NM$", re.IGNORECASE)
_WGS84 = CRS.from_epsg(4326)


@dataclass(slots=True)
class Boundaries:
    """Valid WGS84 polygons with their codes and names, and what could not be used."""

    codes: list[str]
    names: list[str | None]
    polygons: np.ndarray  # object array of shapely (Multi)Polygons
    source_crs: str
    code_field: str
    name_field: str
    repaired: list[str]
    rejected: list[QuarantineRow]


def read_boundaries(
    path: Path, code_field: str | None = None, name_field: str | None = None
) -> Boundaries:
    """Read a boundary file, reproject to WGS84 and repair invalid polygons.

    Parameters
    ----------
    path
        GeoJSON, GeoPackage, Shapefile or anything GDAL reads, in WGS84 or British National Grid.
    code_field, name_field
        Attribute columns with each area's code and name; guessed from ONS-style names
        (``LSOA11CD``/``LSOA11NM``, ``WD13CD``/``WD13NM``) when not given.
    """
    if not path.exists():
        raise DataError(f"boundary file {path} does not exist; check the path")
    import pyogrio.raw  # imported here: pyogrio pulls in pandas when geopandas is installed

    try:
        source = f"/vsigzip/{path}" if path.suffix.lower() == ".gz" else str(path)
        meta, _fids, geometry, field_data = pyogrio.raw.read(source)
    except Exception as exc:  # pyogrio raises DataSourceError and friends
        raise DataError(f"cannot read boundary file {path}: {exc}") from exc
    fields = [str(f) for f in meta["fields"]]
    code_field = code_field or _guess(fields, _CODE_RE, "code", path)
    name_field = name_field or _guess_name(fields, code_field)
    for wanted in (code_field, name_field):
        if wanted not in fields:
            raise DataError(
                f"{path} has no attribute {wanted!r}; its attributes are {', '.join(fields)}"
            )
    codes_raw = field_data[fields.index(code_field)]
    names_raw = field_data[fields.index(name_field)]
    crs_text = meta.get("crs")
    if not crs_text:
        raise DataError(
            f"{path} does not say which coordinate system it uses; save it with a CRS "
            "(WGS84 / EPSG:4326 or British National Grid / EPSG:27700)"
        )
    crs = CRS.from_user_input(crs_text)
    geoms = shapely.from_wkb(geometry)
    if not crs.equals(_WGS84, ignore_axis_order=True):
        transformer = Transformer.from_crs(crs, _WGS84, always_xy=True)
        geoms = shapely.transform(
            geoms, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1]))
        )
    codes: list[str] = []
    names: list[str | None] = []
    polygons: list[object] = []
    repaired: list[str] = []
    rejected: list[QuarantineRow] = []
    seen: set[str] = set()
    for i, geom in enumerate(geoms):
        feature = i + 1
        code = None if codes_raw[i] is None else str(codes_raw[i]).strip()
        name = None if names_raw[i] is None else str(names_raw[i]).strip()
        label = f"{code_field}={code!r} {name_field}={name!r}"
        if not code:
            rejected.append(QuarantineRow(str(path), feature, label, "area has no code"))
            continue
        if code in seen:
            rejected.append(
                QuarantineRow(str(path), feature, label, f"area code {code} appears twice")
            )
            continue
        if geom is None or shapely.is_empty(geom):
            rejected.append(QuarantineRow(str(path), feature, label, "area has no geometry"))
            continue
        if not shapely.is_valid(geom):
            reason = shapely.is_valid_reason(geom)
            fixed = _polygonal(shapely.make_valid(geom))
            if fixed is None:
                rejected.append(
                    QuarantineRow(
                        str(path),
                        feature,
                        label,
                        f"invalid geometry could not be repaired: {reason}",
                    )
                )
                continue
            repaired.append(f"{code} ({reason})")
            geom = fixed
        elif not isinstance(geom, shapely.Polygon | shapely.MultiPolygon):
            fixed = _polygonal(geom)
            if fixed is None:
                rejected.append(
                    QuarantineRow(str(path), feature, label, f"not a polygon: {geom.geom_type}")
                )
                continue
            geom = fixed
        seen.add(code)
        codes.append(code)
        names.append(name)
        polygons.append(geom)
    if not codes:
        raise DataError(f"{path}: no usable areas (every feature was rejected)")
    return Boundaries(
        codes,
        names,
        np.array(polygons, dtype=object),
        crs.to_string(),
        code_field,
        name_field,
        repaired,
        rejected,
    )


def _polygonal(geom: object) -> object | None:
    """The polygonal part of a geometry (make_valid can return collections), or None."""
    if isinstance(geom, shapely.Polygon | shapely.MultiPolygon):
        return None if geom.is_empty else geom
    if isinstance(geom, shapely.GeometryCollection):
        parts = [g for g in geom.geoms if isinstance(g, shapely.Polygon | shapely.MultiPolygon)]
        if parts:
            merged = shapely.union_all(parts)
            return merged if isinstance(merged, shapely.Polygon | shapely.MultiPolygon) else None
    return None


def _guess(fields: list[str], pattern: re.Pattern[str], what: str, path: Path) -> str:
    matches = [f for f in fields if pattern.match(f)]
    if len(matches) != 1:
        raise DataError(
            f"cannot tell which attribute of {path} holds the area {what} "
            f"(attributes: {', '.join(fields)}); pass --code-field and --name-field"
        )
    return matches[0]


def _guess_name(fields: list[str], code_field: str) -> str:
    if code_field.upper().endswith("CD"):
        candidate = code_field[:-2] + ("NM" if code_field[-2:].isupper() else "nm")
        if candidate in fields:
            return candidate
    matches = [f for f in fields if _NAME_RE.match(f)]
    return matches[0] if len(matches) == 1 else code_field
