"""Point-in-polygon assignment of records to areas (shapely 2)."""

from placeharm.geo.assign import (
    GRID_MIN_POINTS,
    PolygonGrid,
    PreparedPolygons,
    assign_points,
    assign_points_to_sets,
)

__all__ = [
    "GRID_MIN_POINTS",
    "PolygonGrid",
    "PreparedPolygons",
    "assign_points",
    "assign_points_to_sets",
]
