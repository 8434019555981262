"""How a page's network (services/network.py) is drawn as inline SVG: shapes, label places and
line paths. Presentation only: the nodes, edges and positions are the page's data."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

_LABEL_GAP = 6.0  # drawing units between a node and its label
_PARALLEL_GAP = 14.0  # how far apart two links between the same pair are drawn


def radius(degree: int, centre: bool) -> float:
    """A node's size grows with its links shown (area roughly with the count)."""
    r = min(9.0 + 3.0 * math.sqrt(degree), 26.0)
    return max(r, 16.0) if centre else r


def drawing(net: dict[str, Any]) -> dict[str, Any]:
    """Shapes for the template: nodes (shape, centre, radius, link, label lines and anchor,
    accessible name) and edges (an SVG path each, shortened to the nodes' edges)."""
    at = {n["id"]: (n["x"], n["y"]) for n in net["nodes"]}
    neighbours: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for e in net["edges"]:
        neighbours[e["from"]].append(at[e["to"]])
        neighbours[e["to"]].append(at[e["from"]])
    nodes: dict[str, dict[str, Any]] = {}
    for n in net["nodes"]:
        is_centre = n["id"] == net["centre"]
        r = radius(n["degree"], is_centre)
        what = "Nominal" if n["kind"] == "nominal" else "Group"
        links = f"{n['degree']} link{'' if n['degree'] == 1 else 's'} shown"
        name = f", {n['name']}" if n["name"] else ""
        nodes[n["id"]] = {
            **n,
            "r": round(r, 1),
            "centre": is_centre,
            "href": None if is_centre else f"/{n['id']}",
            "aria_label": f"{what} {n['ref']}{name}: {links}",
        }
    _place_labels(list(nodes.values()), neighbours, _line_points(net))
    pairs: dict[frozenset[str], list[dict[str, Any]]] = defaultdict(list)
    for e in net["edges"]:
        pairs[frozenset((e["from"], e["to"]))].append(e)
    edges = []
    for group in pairs.values():
        for k, e in enumerate(group):
            bend = (k - (len(group) - 1) / 2) * _PARALLEL_GAP
            edges.append(
                {
                    **e,
                    "d": _path(nodes[e["from"]], nodes[e["to"]], bend),
                    "arrow": e["link_type"] == "exploitation",
                }
            )
    return {"nodes": list(nodes.values()), "edges": edges, "by_id": nodes}


Box = tuple[float, float, float, float]  # left, top, right, bottom


def _line_points(net: dict[str, Any], step: float = 8.0) -> list[tuple[float, float]]:
    """Points every `step` units along the straight lines between linked nodes."""
    at = {n["id"]: (n["x"], n["y"]) for n in net["nodes"]}
    points = []
    for e in net["edges"]:
        (x1, y1), (x2, y2) = at[e["from"]], at[e["to"]]
        count = max(int(math.hypot(x2 - x1, y2 - y1) / step), 1)
        points += [(x1 + (x2 - x1) * k / count, y1 + (y2 - y1) * k / count) for k in range(count)]
    return points


def _place_labels(
    nodes: list[dict[str, Any]],
    neighbours: dict[str, list[tuple[float, float]]],
    lines: list[tuple[float, float]],
) -> None:
    """Put each node's two-line label (id, name) beside it, in the first of the directions
    `_label_angles` offers that is clear of nodes, lines and the labels placed before, or
    else the least cluttered."""
    taken: list[Box] = [
        (n["x"] - n["r"], n["y"] - n["r"], n["x"] + n["r"], n["y"] + n["r"]) for n in nodes
    ]
    # leaves first: each has one clear side (away from its only line); hubs have more choice
    for n in sorted(nodes, key=lambda n: (n["degree"], n["id"] == nodes[0]["id"])):
        own = (n["x"] - n["r"], n["y"] - n["r"], n["x"] + n["r"], n["y"] + n["r"])
        best: tuple[float, dict[str, Any], Box] | None = None
        for angle in _label_angles(n["x"], n["y"], neighbours[n["id"]]):
            spot, box = _label_at(n, math.cos(angle), math.sin(angle))
            clash = sum(_overlap(box, other) for other in taken if other != own)
            # a line through a label is a lesser evil than a label on a label
            clash += 8 * sum(box[0] <= x <= box[2] and box[1] <= y <= box[3] for x, y in lines)
            if best is None or clash < best[0]:
                best = (clash, spot, box)
            if clash == 0:
                break
        assert best is not None
        n.update(best[1])
        taken.append(best[2])


def _label_angles(x: float, y: float, near: list[tuple[float, float]]) -> list[float]:
    """Directions to try for a label, best first: the middles of the gaps between a node's
    links, widest first, then either side of the widest; straight down for a lone node."""
    if not near:
        return [math.pi / 2, -math.pi / 2, 0.0, math.pi]
    angles = sorted(math.atan2(ny - y, nx - x) for nx, ny in near)
    gaps = sorted(
        ((b - a, a) for a, b in zip(angles, [*angles[1:], angles[0] + 2 * math.pi], strict=True)),
        reverse=True,
    )
    width, start = gaps[0]
    tries = [start + w / 2 for w, start in gaps]
    tries += [start + width * f for f in (0.3, 0.7, 0.15, 0.85)]
    tries += [math.pi * k / 4 for k in range(8)]  # and every way round
    return tries


def _label_at(n: dict[str, Any], ux: float, uy: float) -> tuple[dict[str, Any], Box]:
    """Where a label sits in direction (ux, uy) from its node, and the box it covers."""
    r = n["r"]
    anchor = "start" if ux > 0.4 else "end" if ux < -0.4 else "middle"
    x = n["x"] + (r + _LABEL_GAP) * ux
    if uy > 0.4:  # below: the first line's top just under the node
        y = n["y"] + (r + _LABEL_GAP) * uy + 10
    elif uy < -0.4:  # above: the second line's bottom just over it
        y = n["y"] + (r + _LABEL_GAP) * uy - 16
    else:  # beside: the two lines straddle its middle
        y = n["y"] - 2
    width = max(len(n["ref"]) * 8.6, len(n["name"]) * 7.3)
    left = x if anchor == "start" else x - width if anchor == "end" else x - width / 2
    spot = {"label_x": round(x, 1), "label_y": round(y, 1), "anchor": anchor}
    return spot, (left, y - 11, left + width, y + 18 if n["name"] else y + 3)


def _overlap(a: Box, b: Box) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return w * h if w > 0 and h > 0 else 0.0


def _path(a: dict[str, Any], b: dict[str, Any], bend: float) -> str:
    """A line from a's rim to b's rim (an arrowhead then shows at b), bent sideways by `bend`
    when two links join the same pair."""
    dx, dy = b["x"] - a["x"], b["y"] - a["y"]
    length = math.hypot(dx, dy) or 1.0
    ux, uy = dx / length, dy / length
    x1, y1 = a["x"] + ux * a["r"], a["y"] + uy * a["r"]
    x2, y2 = b["x"] - ux * (b["r"] + 3), b["y"] - uy * (b["r"] + 3)
    if not bend:
        return f"M{x1:.1f},{y1:.1f} L{x2:.1f},{y2:.1f}"
    mx, my = (x1 + x2) / 2 - uy * bend * 2, (y1 + y2) / 2 + ux * bend * 2
    return f"M{x1:.1f},{y1:.1f} Q{mx:.1f},{my:.1f} {x2:.1f},{y2:.1f}"
