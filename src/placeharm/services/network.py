"""The small link network on nominal and group pages: who is linked to whom, laid out once.

Nodes are nominals and groups; edges are nominal-nominal links (associate, family,
exploitation) and group memberships. The graph is built only from what the policy lets the
user see (services/policy.py), so nothing hidden can be a node, an edge, a count or a position.
The graph work (breadth-first layers, betweenness, the shell layout) is rustworkx's.
"""

from __future__ import annotations

import math
from typing import Any

import polars as pl
import rustworkx as rx

from placeharm.services import policy
from placeharm.services.policy import User
from placeharm.store.base import Store

NODE_CAP = 40  # more than this is unreadable on a patrol laptop; the page says when it bites
HOPS = 2  # direct links, and the links of those
WIDTH, HEIGHT = 1000, 840  # drawing units (the SVG's viewBox)
_MARGIN_X, _MARGIN_Y = 150, 60  # room for labels
LINK_TYPES = ("member", "associate", "family", "exploitation")

# (from, to, link type, membership role); a membership runs from the nominal to the group
Edge = tuple[str, str, str, str | None]


def node_id(kind: str, ref: str) -> str:
    """A node's id is its page's path without the leading slash: the two kinds never clash."""
    return f"{kind}/{ref}"


def _visible_edges(store: Store, user: User) -> list[Edge]:
    """Every link and membership the user may see, as the rest of the nominal page decides:
    exploitation links only for cleared roles, and for other roles no nominal known only for
    child exploitation (neither as a node nor as the end of any link)."""
    scope = policy.scope(store, user)
    links = policy.shape_links(
        user,
        store.soc_frame("soc_nominal_links", scope=scope).select(
            "from_nominal", "to_nominal", "link_type"
        ),
    )
    members = store.soc_frame("soc_memberships", scope=scope).select(
        "nominal_id", "group_id", "role"
    )
    edges: list[Edge] = [
        (node_id("nominal", n), node_id("group", g), "member", r)
        for n, g, r in members.sort("group_id", "nominal_id").iter_rows()
    ]
    edges += [
        (node_id("nominal", a), node_id("nominal", b), t, None)
        for a, b, t in links.sort("from_nominal", "to_nominal", "link_type").iter_rows()
        if a != b
    ]
    return edges


def _names(store: Store, user: User, ids: list[str]) -> dict[str, str]:
    """Display names of the shown nodes, shaped as the role allows."""
    refs: dict[str, list[str]] = {"nominal": [], "group": []}
    for i in ids:
        kind, ref = i.split("/", 1)
        refs[kind].append(ref)
    names: dict[str, str] = {}
    people = policy.shape_nominals(
        user,
        store.soc_frame("soc_nominals")
        .filter(pl.col("nominal_id").is_in(refs["nominal"]))
        .select("nominal_id", "forename", "surname"),
    )
    for ref, forename, surname in people.iter_rows():
        names[node_id("nominal", ref)] = f"{forename or ''} {surname or ''}".strip()
    groups = store.soc_frame("soc_groups").filter(pl.col("group_id").is_in(refs["group"]))
    for ref, name in groups.select("group_id", "name").iter_rows():
        names[node_id("group", ref)] = name or ""
    return names


def network(store: Store, user: User, kind: str, ref: str) -> dict[str, Any] | None:
    """The network around one nominal or group, as this user may see it: the centre, its
    direct links and memberships, and theirs (`HOPS`), at most `NODE_CAP` nodes, the nearest
    kept first and, within a ring, the best connected. None for roles that may not see
    nominals (a group's network without its people says nothing).

    Returns the centre's id; nodes (id, kind, ref, name, hop, degree and betweenness within the
    shown network, x/y in drawing units of a `width` x `height` box); edges (from, to,
    link_type, role); the cap, how many nodes lie within `HOPS` links and whether the cap bit.
    """
    if not policy.allowed(user, "nominal"):
        return None
    centre = node_id(kind, ref)
    graph: rx.PyGraph[str, Edge] = rx.PyGraph(multigraph=True)
    index = {centre: graph.add_node(centre)}
    for edge in _visible_edges(store, user):
        for end in edge[:2]:
            if end not in index:
                index[end] = graph.add_node(end)
        graph.add_edge(index[edge[0]], index[edge[1]], edge)

    layers = rx.bfs_layers(graph, [index[centre]])[: HOPS + 1]
    hop = {graph[i]: h for h, layer in enumerate(layers) for i in layer}
    near = graph.subgraph([i for layer in layers for i in layer])
    near_degree = {near[i]: near.degree(i) for i in near.node_indices()}
    ranked = sorted(hop, key=lambda n: (hop[n], -near_degree[n], n))
    kept = ranked[:NODE_CAP]

    shown = graph.subgraph([index[n] for n in kept])
    at = {shown[i]: i for i in shown.node_indices()}
    betweenness = rx.betweenness_centrality(shown)
    rings = _rings(shown, at, hop, betweenness, centre)
    positions = _positions(shown, at, rings)
    names = _names(store, user, kept)

    nodes = []
    for ring in rings:
        for n in ring:
            node_kind, node_ref = n.split("/", 1)
            x, y = positions[n]
            nodes.append(
                {
                    "id": n,
                    "kind": node_kind,
                    "ref": node_ref,
                    "name": names.get(n, ""),
                    "hop": hop[n],
                    "degree": shown.degree(at[n]),
                    "betweenness": round(betweenness[at[n]], 4),
                    "x": x,
                    "y": y,
                }
            )
    edges = sorted(
        shown.edges(), key=lambda e: (LINK_TYPES.index(e[2]) if e[2] in LINK_TYPES else 9, e)
    )
    return {
        "centre": centre,
        "nodes": nodes,
        "edges": [{"from": a, "to": b, "link_type": t, "role": r} for a, b, t, r in edges],
        "hops": HOPS,
        "node_cap": NODE_CAP,
        "nodes_within_hops": len(ranked),
        "capped": len(ranked) > NODE_CAP,
        "width": WIDTH,
        "height": HEIGHT,
    }


def _rings(
    shown: rx.PyGraph[str, Edge],
    at: dict[str, int],
    hop: dict[str, int],
    betweenness: rx.CentralityMapping,
    centre: str,
) -> list[list[str]]:
    """Nodes by ring (centre, direct links, their links): the order of the nodes in the JSON,
    the page and the keyboard, and the shells the layout starts from. The first ring by
    betweenness (the people who join the network up first), the second next to the node that
    brings it in, so the start has few crossing lines."""
    first = sorted((n for n in at if hop[n] == 1), key=lambda n: (-betweenness[at[n]], n))
    place = {n: i for i, n in enumerate(first)}

    def parent(n: str) -> int:
        near = [place[shown[j]] for j in shown.neighbors(at[n]) if shown[j] in place]
        return min(near, default=len(place))

    second = sorted((n for n in at if hop[n] == 2), key=lambda n: (parent(n), n))
    return [r for r in ([centre], first, second) if r]


def _positions(
    shown: rx.PyGraph[str, Edge], at: dict[str, int], rings: list[list[str]]
) -> dict[str, tuple[float, float]]:
    """x/y in drawing units: rustworkx's Kamada-Kawai layout (deterministic: no random start),
    started from the shell layout of the rings, a hub's links drawn longer, fitted into the
    drawing with a margin for labels."""
    start = rx.shell_layout(shown, nlist=[[at[n] for n in ring] for ring in rings], rotate=0)
    degree = {n: shown.degree(i) for n, i in at.items()}

    def length(edge: Edge) -> float:
        # a hub's links are longer, so its many neighbours are not crowded round it
        return max(1.0, math.sqrt(max(degree[edge[0]], degree[edge[1]])) / 2)

    pos = rx.kamada_kawai_layout(
        shown, pos={i: (start[i][0], start[i][1]) for i in start}, weight_fn=length
    )
    xs = [pos[i][0] for i in at.values()]
    ys = [pos[i][1] for i in at.values()]
    span = max(max(xs) - min(xs), max(ys) - min(ys), 1e-9)
    usable = min(WIDTH - 2 * _MARGIN_X, HEIGHT - 2 * _MARGIN_Y)
    mid_x, mid_y = (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2
    return {
        n: (
            round(WIDTH / 2 + (pos[i][0] - mid_x) / span * usable, 1),
            round(HEIGHT / 2 + (pos[i][1] - mid_y) / span * usable, 1),
        )
        for n, i in at.items()
    }
