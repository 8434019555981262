"""Hand-made areas for tests that need a few polygons of their own."""

from __future__ import annotations


def square(code: str, lon: float, lat: float, label: str = "Area") -> dict[str, object]:
    """A GeoJSON feature: a square about 1 km across centred on (lon, lat), with the
    properties `code` and `name` ("<label> <code>")."""
    d = 0.005
    ring = [[lon - d, lat - d], [lon + d, lat - d], [lon + d, lat + d], [lon - d, lat + d]]
    return {
        "type": "Feature",
        "properties": {"code": code, "name": f"{label} {code}"},
        "geometry": {"type": "Polygon", "coordinates": [[*ring, ring[0]]]},
    }
