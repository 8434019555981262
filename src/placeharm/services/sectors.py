"""The demo's neighbourhood sectors: wards grouped into sectors (issue 15).

A force's sectors (or beats, neighbourhoods) are its own boundaries, imported with
`placeharm areas import` like any other area set. The demo has none to ship, so it derives an
ILLUSTRATIVE set from the real 2013 wards it holds: never a force's real sectors.

The rule (docs/sectors.md), deterministic for the same wards:

1. Wards stay within their local authority (the ward file's ``LAD_CODE_FILE``).
2. A local authority of n wards gets k = max(1, round(n / WARDS_PER_SECTOR)) sectors.
3. Its wards are split by recursive bisection of their centroids (British National Grid):
   along the axis of widest spread, at the ward that leaves the two halves the share of
   sectors they are to hold (ties broken by ward code), until each part is one sector. Wards
   next to each other end up together, so sectors are compact (not always contiguous: a
   river or an island can leave a sector in two pieces).
4. A sector is named after its local authority and where it lies in it: "Newcastle upon Tyne
   North West", or "Central"; the whole authority's name when it is one sector. Where two
   sectors would share a compass point, each is named after the ward nearest its centre
   instead: "Northumberland: Morpeth Stobhill sector".
5. Codes are the authority's code, "S" and the sector's number: ``E08000021S03``.
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shapely
from pyproj import Transformer

from placeharm.ingest.boundaries import read_boundaries
from placeharm.services.areas import AreaImportResult, import_areas
from placeharm.store.base import Store

SECTOR_SET = "sector"
WARDS_PER_SECTOR = 6
_CENTRAL_SHARE = 0.15  # a sector this close to its authority's centre (share of its spread)
_COMPASS = (
    "East",
    "North East",
    "North",
    "North West",
    "West",
    "South West",
    "South",
    "South East",
)
_TO_BNG = Transformer.from_crs("EPSG:4326", "EPSG:27700", always_xy=True)


@dataclass(frozen=True, slots=True)
class Ward:
    """One ward as the grouping sees it: code, name, local authority, centroid (metres)."""

    code: str
    name: str
    lad_code: str
    lad_name: str
    x_m: float
    y_m: float


@dataclass(frozen=True, slots=True)
class Sector:
    """A derived sector: its code, plain name and member ward codes (sorted)."""

    code: str
    name: str
    lad_code: str
    ward_codes: tuple[str, ...]


def group_wards(wards: list[Ward], per_sector: int = WARDS_PER_SECTOR) -> list[Sector]:
    """Wards grouped into sectors by the rule in this module's docstring; every ward is in
    exactly one sector. Sorted by code."""
    by_lad: dict[str, list[Ward]] = {}
    for w in sorted(wards, key=lambda w: w.code):
        by_lad.setdefault(w.lad_code, []).append(w)
    sectors: list[Sector] = []
    for lad_code in sorted(by_lad):
        members = by_lad[lad_code]
        k = max(1, round(len(members) / per_sector))
        parts = _bisect(members, k)
        names = _names(members, parts)
        for i, (part, name) in enumerate(zip(parts, names, strict=True), start=1):
            codes = tuple(sorted(w.code for w in part))
            sectors.append(Sector(f"{lad_code}S{i:02d}", name, lad_code, codes))
    return sectors


def _bisect(wards: list[Ward], k: int) -> list[list[Ward]]:
    if k <= 1 or len(wards) <= 1:
        return [wards]
    xs, ys = [w.x_m for w in wards], [w.y_m for w in wards]
    along_x = (max(xs) - min(xs)) >= (max(ys) - min(ys))
    ordered = sorted(wards, key=lambda w: (w.x_m if along_x else w.y_m, w.code))
    left_k = k // 2
    cut = min(len(ordered) - 1, max(1, round(len(ordered) * left_k / k)))
    return _bisect(ordered[:cut], left_k) + _bisect(ordered[cut:], k - left_k)


def _names(wards: list[Ward], parts: list[list[Ward]]) -> list[str]:
    lad_name = wards[0].lad_name
    if len(parts) == 1:
        return [lad_name]
    cx, cy = float(np.mean([w.x_m for w in wards])), float(np.mean([w.y_m for w in wards]))
    spread = max(
        max(w.x_m for w in wards) - min(w.x_m for w in wards),
        max(w.y_m for w in wards) - min(w.y_m for w in wards),
    )
    directions = []
    for part in parts:
        px, py = float(np.mean([w.x_m for w in part])), float(np.mean([w.y_m for w in part]))
        dx, dy = px - cx, py - cy
        if math.hypot(dx, dy) < _CENTRAL_SHARE * spread:
            directions.append("Central")
        else:
            octant = round(math.degrees(math.atan2(dy, dx)) / 45) % 8
            directions.append(_COMPASS[octant])
    names = []
    for part, direction in zip(parts, directions, strict=True):
        name = f"{lad_name} {direction}"
        if directions.count(direction) > 1:
            px, py = float(np.mean([w.x_m for w in part])), float(np.mean([w.y_m for w in part]))
            centre = min(part, key=lambda w: (math.hypot(w.x_m - px, w.y_m - py), w.code))
            name = f"{lad_name}: {centre.name} sector"
        names.append(name)
    return names


def demo_sectors(ward_file: Path) -> tuple[list[Sector], dict[str, shapely.Geometry]]:
    """The sectors derived from a ward boundary file with ``WD13CD``, ``WD13NM``,
    ``LAD_CODE_FILE`` and ``LAD_NAME`` (the demo's), and each sector's outline (its wards'
    polygons dissolved)."""
    import pyogrio.raw  # as ingest.boundaries: imported here

    boundaries = read_boundaries(ward_file)
    source = f"/vsigzip/{ward_file}" if ward_file.suffix.lower() == ".gz" else str(ward_file)
    meta, _fids, _geometry, field_data = pyogrio.raw.read(source, read_geometry=False)
    fields = [str(f) for f in meta["fields"]]
    codes = [str(c) for c in field_data[fields.index(boundaries.code_field)]]
    lads = dict(zip(codes, field_data[fields.index("LAD_CODE_FILE")], strict=True))
    lad_names = dict(zip(codes, field_data[fields.index("LAD_NAME")], strict=True))
    polygons = dict(zip(boundaries.codes, boundaries.polygons, strict=True))
    centroids = shapely.centroid(boundaries.polygons)
    x, y = _TO_BNG.transform(shapely.get_x(centroids), shapely.get_y(centroids))
    wards = [
        Ward(code, name or code, str(lads[code]), str(lad_names[code]), float(xm), float(ym))
        for code, name, xm, ym in zip(boundaries.codes, boundaries.names, x, y, strict=True)
    ]
    sectors = group_wards(wards)
    outlines = {s.code: shapely.union_all([polygons[c] for c in s.ward_codes]) for s in sectors}
    return sectors, outlines


def import_demo_sectors(store: Store, ward_file: Path) -> AreaImportResult:
    """Derive the demo's sectors from `ward_file` and import them as the area set
    ``sector`` (records are assigned to it by the next ingest)."""
    sectors, outlines = demo_sectors(ward_file)
    features = [
        {
            "type": "Feature",
            "properties": {
                "sector_code": s.code,
                "sector_name": s.name,
                "wards": ";".join(s.ward_codes),
            },
            "geometry": shapely.geometry.mapping(outlines[s.code]),
        }
        for s in sectors
    ]
    collection = {
        "type": "FeatureCollection",
        "name": "demo_sectors_illustrative",
        "features": features,
    }
    with tempfile.TemporaryDirectory(prefix="placeharm-sectors-") as folder:
        path = Path(folder) / "demo-sectors-illustrative.geojson"
        path.write_text(json.dumps(collection), encoding="utf-8")
        return import_areas(store, path, SECTOR_SET, "sector_code", "sector_name")
