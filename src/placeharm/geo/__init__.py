"""Point-in-polygon assignment of records to areas (shapely 2)."""

from placeharm.geo.assign import assign_points, assign_points_to_sets

__all__ = ["assign_points", "assign_points_to_sets"]
