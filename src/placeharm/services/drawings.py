"""The printed briefing's drawings, made on the server (issue 15): a map of the area and its
neighbours shaded by SOC primary harm, and the month-by-month trend, as data a template turns
into inline SVG. No tile server, no script: a supervisor's printout needs neither.

Coordinates are projected to the page with an equirectangular projection scaled by the
cosine of the map's middle latitude (at a ward's scale the error is far below a line's width).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl
import shapely

MAP_WIDTH = 640  # SVG user units (the page scales it)
# Harm classes, lightest to darkest: no SOC harm, then the quarters of the areas with some
# (ColorBrewer OrRd, which prints in greyscale in order).
NO_HARM_FILL = "#f4f4f4"
HARM_FILLS = ("#fdd49e", "#fc8d59", "#d7301f", "#7f0000")
PAD_FRACTION = 0.6  # neighbours shown around the area: this much of its size on each side
LABEL_MIN_PX = 70  # an area this wide on the map gets its name written on it


@dataclass(frozen=True, slots=True)
class _Frame:
    """The map's window (degrees) and its scale to SVG units."""

    west: float
    south: float
    east: float
    north: float
    k: float  # SVG units per degree of latitude
    cos: float

    def xy(self, lon: float, lat: float) -> tuple[float, float]:
        return (lon - self.west) * self.cos * self.k, (self.north - lat) * self.k

    @property
    def size(self) -> tuple[float, float]:
        return self.xy(self.east, self.south)


def harm_classes(harm: Mapping[str, float | None]) -> tuple[dict[str, int], list[str]]:
    """Each area's class (0: no SOC harm or none computed; 1-4: the quarter of the areas with
    some harm it falls in) and the legend's wording of each class."""
    positive = sorted(v for v in harm.values() if v is not None and v > 0)
    if not positive:
        return dict.fromkeys(harm, 0), ["No SOC harm"]
    cuts = [
        positive[min(len(positive) - 1, math.ceil(q * len(positive)) - 1)]
        for q in (0.25, 0.5, 0.75)
    ]
    out: dict[str, int] = {}
    for code, value in harm.items():
        if value is None or value <= 0:
            out[code] = 0
        else:
            out[code] = 1 + sum(value > c for c in cuts)
    bounds = [positive[0], *cuts, positive[-1]]
    legend = ["No SOC harm"] + [
        f"{_num(bounds[i])} to {_num(bounds[i + 1])}" for i in range(len(HARM_FILLS))
    ]
    return out, legend


def area_map(
    areas: pl.DataFrame, code: str, harm: Mapping[str, float | None]
) -> dict[str, Any] | None:
    """The area `code` among its neighbours, shaded by harm class, as SVG path data.

    Parameters
    ----------
    areas
        The area set's polygons: area_code, area_name, geometry_wkb (store.area_polygons).
    code
        The area the briefing is about (drawn with a heavy outline and named).
    harm
        SOC primary harm per area code (the overview's figures for the same period).

    Returns
    -------
    width, height, the areas drawn (code, name, d, fill, selected, harm, label position),
    and the legend (fill, label); None when the area has no boundary.
    """
    shapes = dict(
        zip(
            areas["area_code"].to_list(),
            shapely.from_wkb(areas["geometry_wkb"].to_list()),
            strict=True,
        )
    )
    names = dict(zip(areas["area_code"].to_list(), areas["area_name"].to_list(), strict=True))
    target = shapes.get(code)
    if target is None:
        return None
    west, south, east, north = shapely.bounds(target).tolist()
    pad = PAD_FRACTION * max(east - west, north - south)
    west, south, east, north = west - pad, south - pad, east + pad, north + pad
    cos = math.cos(math.radians((south + north) / 2))
    k = MAP_WIDTH / ((east - west) * cos)
    frame = _Frame(west, south, east, north, k, cos)
    width, height = frame.size
    window = shapely.box(west, south, east, north)
    tolerance = 0.4 / k  # under half an SVG unit: invisible on paper
    classes, legend = harm_classes(harm)
    drawn = []
    for area_code, shape in shapes.items():
        if shape is None or not shapely.intersects(shape, window):
            continue
        clipped = shapely.clip_by_rect(shape, west, south, east, north)
        simple = shapely.simplify(clipped, tolerance, preserve_topology=True)
        d = _path(simple, frame)
        if not d:
            continue
        cls = classes.get(area_code, 0)
        minx, _, maxx, _ = shapely.bounds(clipped).tolist()
        wide = (maxx - minx) * cos * k
        spot = shapely.point_on_surface(clipped)
        x, y = frame.xy(shapely.get_x(spot), shapely.get_y(spot))
        drawn.append(
            {
                "code": area_code,
                "name": names.get(area_code) or area_code,
                "d": d,
                "fill": NO_HARM_FILL if cls == 0 else HARM_FILLS[cls - 1],
                "harm": harm.get(area_code),
                "selected": area_code == code,
                "label": {"x": round(x, 1), "y": round(y, 1)}
                if area_code == code or wide >= LABEL_MIN_PX
                else None,
            }
        )
    drawn.sort(key=lambda a: a["selected"])  # the selected area last, on top
    fills = [NO_HARM_FILL, *HARM_FILLS][: len(legend)]
    return {
        "width": round(width, 1),
        "height": round(height, 1),
        "areas": drawn,
        "legend": [{"fill": f, "label": label} for f, label in zip(fills, legend, strict=True)],
        "selected_class": legend[classes.get(code, 0)] if code in classes else None,
    }


def _path(shape: shapely.Geometry, frame: _Frame) -> str:
    """SVG path data of a (multi)polygon's rings, holes included (drawn even-odd)."""
    parts = []
    for polygon in shapely.get_parts(shape):
        if polygon.geom_type != "Polygon" or polygon.is_empty:
            continue
        for ring in [polygon.exterior, *polygon.interiors]:
            points = [frame.xy(x, y) for x, y in ring.coords[:-1]]
            if len(points) < 3:
                continue
            parts.append("M" + " L".join(f"{x:.1f},{y:.1f}" for x, y in points) + " Z")
    return " ".join(parts)


TREND_SERIES = (
    ("crimes", "police.uk crimes"),
    ("soc_crimes", "SOC crimes"),
    ("intelligence", "Intelligence reports"),
    ("incidents", "Incidents"),
)
PANEL_HEIGHT = 70  # each series' bar area, SVG units
PANEL_GAP = 30  # room for the month labels under a panel
TITLE_HEIGHT = 34  # a panel's title and the tallest bar's value above its bars


def trend(
    monthly: pl.DataFrame, series: Sequence[tuple[str, str]] = TREND_SERIES
) -> dict[str, Any]:
    """The month-by-month table as bar panels, one per series with its own scale: each bar's
    position, height and value, and the months with no data (null: drawn as a gap, never 0)."""
    months = monthly["month"].to_list() if monthly.height else []
    n = max(len(months), 1)
    left, right = 8.0, 8.0
    step = (MAP_WIDTH - left - right) / n
    bar = step * 0.7
    panels = []
    top = 0.0
    for column, title in series:
        if column not in monthly.columns:
            continue
        values = monthly[column].to_list()
        known = [v for v in values if v is not None]
        high = max(known, default=0) or 1
        bars = []
        for i, (month, value) in enumerate(zip(months, values, strict=True)):
            x = left + i * step + (step - bar) / 2
            base = top + TITLE_HEIGHT + PANEL_HEIGHT
            h = 0.0 if value is None else PANEL_HEIGHT * value / high
            bars.append(
                {
                    "month": month,
                    "value": value,
                    "x": round(x, 1),
                    "y": round(base - h, 1),
                    "w": round(bar, 1),
                    "h": round(h, 1),
                    "base": round(base, 1),
                    "mid": round(x + bar / 2, 1),
                }
            )
        panels.append(
            {
                "title": title,
                "top": round(top, 1),
                "base": round(top + TITLE_HEIGHT + PANEL_HEIGHT, 1),
                "bars": bars,
                "gaps": [b["month"] for b in bars if b["value"] is None],
                "total": sum(known) if known else None,
            }
        )
        top += TITLE_HEIGHT + PANEL_HEIGHT + PANEL_GAP
    return {
        "width": MAP_WIDTH,
        "height": round(max(top - PANEL_GAP + 22, 40), 1),
        "panel_height": PANEL_HEIGHT,
        "panels": panels,
    }


def _num(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 else f"{value:,.1f}"
