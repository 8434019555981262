"""Maps officers can use (issue 15): the points of the ward, CHB and group maps, what each
point's details say, the layers a role may see with their legend, and labels (area names and
police.uk's "on or near" streets) so the map is useful without a base map.

Every function here shapes rows the page has already read under the role's policy (`scope`,
`policy.shape_located`): a partner's points are generalised to the policy's grid and carry no
street; the details of a point are what the records explorer lists for the same role.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import polars as pl
import shapely

from placeharm.services import policy
from placeharm.services.policy import User

# Layer id -> (name on the page, colour, symbol). Colours from the Okabe-Ito and viridis
# palettes (colour-blind safe); each layer also has its own symbol, so colour is never the
# only difference (WCAG 1.4.1).
LAYERS: dict[str, tuple[str, str, str]] = {
    "crimes": ("police.uk crimes", "#3b528b", "circle"),
    "incidents": ("Incidents", "#e66101", "square"),
    "intelligence": ("Intelligence", "#1b7837", "triangle"),
    "disruptions": ("Disruptions (colour: 4P)", "#0072b2", "diamond"),
    "partner_events": ("Partner events", "#8c510a", "cross"),
    "crimes_before": ("police.uk crimes before Clear", "#6b6b6b", "square"),
    "crimes_after": ("police.uk crimes from Clear on", "#3b528b", "circle"),
    "homes": ("Where members live", "#c51b7d", "square"),
    "force_crimes": ("Crimes linked to members", "#8c510a", "circle"),
}
CHB_COLOUR = "#762a83"  # CHB site outlines (purple, dashed), as app.js draws them
FOUR_P: dict[str, str] = {  # disruptions by 4P (Okabe-Ito)
    "Pursue": "#d55e00",
    "Prevent": "#0072b2",
    "Protect": "#009e73",
    "Prepare": "#cc79a7",
}
# The columns a point's details show for each layer, in order, with their names on the page.
DETAILS: dict[str, list[tuple[str, str]]] = {
    "crimes": [
        ("location", "Street"),
        ("crimes", "Crimes"),
        ("types", "Types"),
        ("months", "Months"),
        ("outcomes", "Latest outcomes"),
    ],
    "incidents": [
        ("incident_id", "Incident"),
        ("occurred_date", "Date"),
        ("incident_type", "Type"),
        ("closing_code", "Closed as"),
    ],
    "intelligence": [
        ("intel_id", "Report"),
        ("reported_date", "Reported"),
        ("grading", "Grading (3x5x2)"),
        ("handling_code", "Handling"),
        ("topics", "Topics"),
    ],
    "disruptions": [
        ("disruption_id", "Disruption"),
        ("disruption_date", "Date"),
        ("four_p", "4P"),
        ("disruption_type", "Type"),
        ("target_group_id", "Group"),
    ],
    "partner_events": [
        ("event_id", "Event"),
        ("event_date", "Date"),
        ("partner", "Partner"),
        ("event_type", "Type"),
        ("description", "Description"),
    ],
    "crimes_before": [("location", "Street"), ("place", "Where"), ("crimes", "Crimes")],
    "crimes_after": [("location", "Street"), ("place", "Where"), ("crimes", "Crimes")],
    "homes": [("nominal_id", "Nominal"), ("role", "Role in group"), ("members", "Members")],
    "force_crimes": [
        ("crime_ref", "Crime"),
        ("recorded_date", "Recorded"),
        ("offence_code", "Offence code"),
        ("crime_type", "Type"),
    ],
}
SOC_POINTS: dict[str, tuple[str, str, list[str]]] = {  # layer -> table, date column, columns
    "incidents": (
        "soc_incidents",
        "occurred_date",
        ["incident_id", "occurred_date", "incident_type", "closing_code"],
    ),
    "intelligence": (
        "soc_intelligence",
        "reported_date",
        [
            "intel_id",
            "reported_date",
            "source_evaluation",
            "intelligence_assessment",
            "handling_code",
            "topics",
        ],
    ),
    "disruptions": (
        "soc_disruptions",
        "disruption_date",
        ["disruption_id", "disruption_date", "four_p", "disruption_type", "target_group_id"],
    ),
    "partner_events": (
        "soc_partner_events",
        "event_date",
        ["event_id", "event_date", "partner", "event_type", "handling_code", "description"],
    ),
}
DETAIL_ROWS = 12  # a crime point's month/type/outcome lines in its popup (the table has all)


def layer_list(points: dict[str, pl.DataFrame]) -> list[dict[str, Any]]:
    """The map's layers in order, each with its name, colour, symbol, number of points and
    the details its points show (those of its columns the role's rows carry): the legend,
    the layer switches and the keyboard list."""
    out = []
    for layer, frame in points.items():
        name, colour, symbol = LAYERS[layer]
        columns = [c for c in DETAILS[layer] if c[0] in frame.columns]
        out.append(
            {
                "id": layer,
                "name": name,
                "colour": colour,
                "symbol": symbol,
                "points": frame.height,
                "columns": [list(c) for c in columns],
            }
        )
    return out


def _groups(user: User) -> bool:
    """May see groups (the disruption's target group)."""
    return policy.allowed(user, "group")


def soc_layers(user: User) -> list[str]:
    """The SOC point layers this role may see on a ward map."""
    kinds = policy.record_kinds(user)
    return [layer for layer in SOC_POINTS if layer in kinds]


def multipoint(frames: list[pl.DataFrame]) -> shapely.Geometry | None:
    """Every located point of the frames as one geometry."""
    xy = [f.select("longitude", "latitude").drop_nulls().to_numpy() for f in frames]
    return shapely.multipoints([p for a in xy for p in a]) if any(len(a) for a in xy) else None


def shape_soc(user: User, layer: str, frame: pl.DataFrame) -> pl.DataFrame:
    """One SOC layer's located rows (already within the role's scope) as the map's points."""
    frame = policy.shape_located(user, frame)
    if layer == "intelligence" and "source_evaluation" in frame.columns:
        frame = frame.with_columns(
            pl.concat_str(
                "source_evaluation", "intelligence_assessment", "handling_code", separator=""
            ).alias("grading")  # beside its parts: the twin's keys stay as they were
        )
    if layer == "disruptions" and not _groups(user) and "target_group_id" in frame.columns:
        frame = frame.drop("target_group_id")
    # newest first, then by identifier: the same order on every read (pages are compared)
    return frame.sort(frame.columns[1::-1], descending=True)


def crime_points(user: User, details: pl.DataFrame) -> pl.DataFrame:
    """police.uk crimes counted by map point, each with its street, types, months and latest
    outcomes in words, and `details` (month, crime type, outcome, crimes) for its popup.
    `details` is `store.crime_point_details` for the page's period and types. Partners: the
    points generalised to the policy's grid and no street (as their records list)."""
    frame = policy.shape_located(user, details)
    if frame.is_empty():
        return pl.DataFrame(
            schema={"longitude": pl.Float64, "latitude": pl.Float64, "crimes": pl.Int32}
        )
    frame = frame.with_columns(
        pl.col("latest_outcome").fill_null("No outcome recorded").alias("outcome"),
        pl.col("month").dt.strftime("%Y-%m").alias("month"),
    )
    by_line = frame.group_by("longitude", "latitude", "month", "crime_type", "outcome").agg(
        pl.col("crimes").sum()
    )
    keys = ["longitude", "latitude"]
    by_type = (
        by_line.group_by(*keys, "crime_type")
        .agg(pl.col("crimes").sum())
        .sort("crimes", "crime_type", descending=[True, False])
        .group_by(keys, maintain_order=True)
        .agg(pl.format("{} {}", "crime_type", "crimes").str.join("; ").alias("types"))
    )
    by_outcome = (
        by_line.group_by(*keys, "outcome")
        .agg(pl.col("crimes").sum())
        .sort("crimes", "outcome", descending=[True, False])
        .group_by(keys, maintain_order=True)
        .agg(pl.format("{} {}", "outcome", "crimes").str.join("; ").alias("outcomes"))
    )
    lines = (
        by_line.sort(
            ["month", "crimes", "crime_type", "outcome"], descending=[True, True, False, False]
        )
        .group_by(keys, maintain_order=True)
        .agg(
            pl.col("crimes").sum().cast(pl.Int32).alias("crimes"),
            pl.col("month").min().alias("first"),
            pl.col("month").max().alias("last"),
            pl.struct("month", "crime_type", "outcome", "crimes").alias("details"),
        )
        .with_columns(
            pl.when(pl.col("first") == pl.col("last"))
            .then(pl.col("first"))
            .otherwise(pl.format("{} to {}", "first", "last"))
            .alias("months")
        )
        .drop("first", "last")
    )
    out = lines.join(by_type, on=keys).join(by_outcome, on=keys)
    if "location" in frame.columns:
        streets = (
            frame.group_by(*keys, "location")
            .agg(pl.col("crimes").sum())
            .sort("crimes", "location", descending=[True, False])
            .group_by(keys, maintain_order=True)
            .agg(pl.col("location").first())
        )
        out = out.join(streets, on=keys, how="left")
    columns = ["longitude", "latitude", "crimes"]
    columns += ["location"] if "location" in out.columns else []
    columns += ["types", "months", "outcomes", "details"]
    return out.select(columns).sort(
        ["crimes", "longitude", "latitude"], descending=[True, False, False]
    )


def street_labels(points: pl.DataFrame, limit: int = 200) -> list[dict[str, Any]]:
    """One label per "on or near" street, at its busiest point (police.uk's own street names:
    with no base map, they tell an officer where a point is)."""
    if "location" not in points.columns or points.is_empty():
        return []
    streets = (
        points.filter(pl.col("location").is_not_null())
        .sort(["crimes", "longitude", "latitude"], descending=[True, False, False])
        .group_by("location", maintain_order=True)
        .agg(pl.col("longitude").first(), pl.col("latitude").first(), pl.col("crimes").sum())
        .sort("crimes", "location", descending=[True, False])
        .head(limit)
    )
    return [
        {
            "name": str(r["location"]).removeprefix("On or near ").strip(),
            "longitude": r["longitude"],
            "latitude": r["latitude"],
            "crimes": r["crimes"],
        }
        for r in streets.iter_rows(named=True)
    ]


def neighbours(areas: pl.DataFrame, code: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The areas touching area `code` (from `store.area_polygons(set)`) as GeoJSON outlines
    (`kind` "neighbour") and the name labels of the area and its neighbours: the places
    around a ward, drawn without a base map."""
    shapes = {
        c: (n, shapely.from_wkb(w))
        for c, n, w in areas.select("area_code", "area_name", "geometry_wkb").iter_rows()
    }
    if code not in shapes:
        return [], []
    name, own = shapes[code]
    near = shapely.buffer(own, 0.0005)
    features: list[dict[str, Any]] = []
    labels = [place_label(own, name or code, "area")]
    for other, (other_name, shape) in shapes.items():
        if other == code or not shapely.intersects(near, shape):
            continue
        simple = shapely.simplify(shape, 0.0001, preserve_topology=True)
        features.append(
            {
                "type": "Feature",
                "properties": {"kind": "neighbour", "code": other, "name": other_name},
                "geometry": json.loads(shapely.to_geojson(simple)),
            }
        )
        labels.append(place_label(shape, other_name or other, "neighbour"))
    return features, labels


def place_label(shape: shapely.Geometry, name: str, kind: str) -> dict[str, Any]:
    at = shapely.point_on_surface(shape)
    return {"name": name, "kind": kind, "longitude": at.x, "latitude": at.y}


def chb_points(
    user: User,
    crimes: pl.DataFrame,
    site: shapely.Geometry,
    buffer: shapely.Geometry,
    before: tuple[dt.date, dt.date],
    after: tuple[dt.date, dt.date],
) -> pl.DataFrame:
    """police.uk crimes in a CHB site and its buffer ring, before and after Clear starts,
    counted by map point (`period` "before"/"after", `place` "site"/"buffer"), each with its
    street (not for partners, whose points are generalised after they are placed)."""
    if crimes.is_empty():
        return pl.DataFrame(
            schema={
                "period": pl.String,
                "place": pl.String,
                "longitude": pl.Float64,
                "latitude": pl.Float64,
                "crimes": pl.Int32,
            }
        )
    xs = crimes["longitude"].to_numpy()
    ys = crimes["latitude"].to_numpy()
    inside = shapely.contains_xy(site, xs, ys)
    around = shapely.contains_xy(buffer, xs, ys)
    month = pl.col("month")
    frame = (
        crimes.with_columns(
            pl.Series("in_site", inside),
            pl.Series("in_buffer", around),
            pl.when(month.is_between(*before))
            .then(pl.lit("before"))
            .when(month.is_between(*after))
            .then(pl.lit("after"))
            .alias("period"),
        )
        .filter((pl.col("in_site") | pl.col("in_buffer")) & pl.col("period").is_not_null())
        .with_columns(
            pl.when(pl.col("in_site"))
            .then(pl.lit("site"))
            .otherwise(pl.lit("buffer"))
            .alias("place"),
            pl.col("longitude").round(4),
            pl.col("latitude").round(4),
        )
    )
    frame = policy.shape_located(user, frame)
    keys = ["period", "place", "longitude", "latitude"]
    agg = [pl.len().cast(pl.Int32).alias("crimes")]
    if "location" in frame.columns:
        agg.append(pl.col("location").drop_nulls().mode().sort().first().alias("location"))
    return (
        frame.group_by(keys)
        .agg(agg)
        .sort(["period", "crimes", "longitude", "latitude"], descending=[True, True, False, False])
    )


def chb_counts(points: pl.DataFrame) -> pl.DataFrame:
    """The CHB map's crimes by period and place (the map's figures in a table)."""
    rows = []
    for period in ("before", "after"):
        row: dict[str, Any] = {"period": period}
        for place in ("site", "buffer"):
            chosen = points.filter((pl.col("period") == period) & (pl.col("place") == place))
            row[f"{place}_crimes"] = int(chosen["crimes"].sum()) if chosen.height else 0
        rows.append(row)
    return pl.DataFrame(rows)


def home_points(user: User, homes: pl.DataFrame) -> pl.DataFrame:
    """Where a group's members live. Roles that may open nominals: each home with its
    nominal; others (senior leaders): counts of members per cell of the policy's grid, no
    one named, as a partner's points are generalised."""
    if policy.allowed(user, "nominal"):
        return homes.select("nominal_id", "role", "longitude", "latitude").sort(
            "nominal_id", "longitude", "latitude"
        )
    g = policy.GENERALISE_DEGREES
    return (
        homes.with_columns(
            ((pl.col(c) / g).round(0) * g).round(2) for c in ("longitude", "latitude")
        )
        .group_by("longitude", "latitude")
        .agg(pl.col("nominal_id").n_unique().cast(pl.Int32).alias("members"))
        .sort(["members", "longitude", "latitude"], descending=[True, False, False])
    )


def homes_note(user: User) -> str:
    if policy.allowed(user, "nominal"):
        return "Each member's home address (from the force's address records)."
    return (
        "Members' homes counted by cell of a grid of about 1 km: no address or person is "
        "shown to this role."
    )


def areas_at(
    areas: pl.DataFrame, where: shapely.Geometry | None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The areas (from `store.area_polygons(set)`) that `where` (a site, or a group's points)
    touches, as grey outlines (`kind` "neighbour") and name labels: place names around the
    points, with no base map."""
    features: list[dict[str, Any]] = []
    labels: list[dict[str, Any]] = []
    if where is None or shapely.is_empty(where):
        return features, labels
    for code, name, wkb in areas.select("area_code", "area_name", "geometry_wkb").iter_rows():
        shape = shapely.from_wkb(wkb)
        if not shapely.intersects(shape, where):
            continue
        simple = shapely.simplify(shape, 0.0001, preserve_topology=True)
        features.append(
            {
                "type": "Feature",
                "properties": {"kind": "neighbour", "code": code, "name": name},
                "geometry": json.loads(shapely.to_geojson(simple)),
            }
        )
        labels.append(place_label(shape, name or code, "neighbour"))
    return features, labels


def as_points(frame: pl.DataFrame) -> list[dict[str, Any]]:
    """A layer's rows for the page (dates as ISO text)."""
    return [
        {k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in row.items()}
        for row in frame.to_dicts()
    ]
