"""Radius search: what is known within R metres of a point or an address.

For covert and surveillance deployments (what is near the plot) and for finding the
addresses where a subject was lost: SOC addresses (with the nominals linked to each),
nominals (through their addresses), intelligence, police.uk crimes, force crimes and
incidents, each with its distance and direction from the centre, nearest first.

Cleared roles only (policy action "radius"); every search is a consultation of personal
data, so the web layer wraps it in the justification and audit step (docs/security/radius.md).

Distances are geodesics on the WGS84 ellipsoid (`pyproj.Geod`, Karney's algorithm), the
distance a surveyor would measure: exact to well under a millimetre at these ranges, so the
error is the records' own (a police.uk point is an anonymous map point, not the scene). The
store first cuts a latitude/longitude box around the circle (an indexed range on both
columns); only the rows in the box get an exact distance.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import numpy as np
import polars as pl
import shapely
from pyproj import Geod

from placeharm.errors import DataError
from placeharm.model import month_end, parse_month
from placeharm.services import policy
from placeharm.services.pages import Page, data_as_of
from placeharm.services.policy import User
from placeharm.store.base import Store

MIN_RADIUS_M = 10
MAX_RADIUS_M = 2000
DEFAULT_RADIUS_M = 400
ROW_LIMIT = 500  # rows per kind, nearest first; the rest are counted, not shown
CANDIDATE_LIMIT = 25  # addresses offered when a text search matches several
ADDRESS_TEXT_MAX = 200
KINDS = ("addresses", "nominals", "intelligence", "crimes", "force_crimes", "incidents")
KIND_LABELS = {
    "addresses": "SOC addresses",
    "nominals": "nominals (at those addresses)",
    "intelligence": "intelligence",
    "crimes": "police.uk crimes",
    "force_crimes": "force crimes",
    "incidents": "incidents",
}
LAT_HELP = "centre latitude, WGS84 decimal degrees (with lon)"
LON_HELP = "centre longitude, WGS84 decimal degrees (with lat)"
ADDRESS_HELP = "centre: SOC address text (an exact match ignoring case, else contains)"
RADIUS_HELP = f"{MIN_RADIUS_M} to {MAX_RADIUS_M} metres"
KINDS_HELP = f"any of {', '.join(KINDS)} (repeat or comma-separate; none: all)"
DISTANCE_METHOD = (
    "Geodesic distance on the WGS84 ellipsoid (pyproj.Geod, Karney 2013), exact to under "
    "1 mm at these ranges; the positions themselves are only as good as the records (police.uk "
    "crimes are moved to an anonymous map point near the scene). Direction is the compass "
    "bearing from the centre."
)
_GEOD = Geod(ellps="WGS84")
_CHB_SET = "chb"  # custom CHB site polygons: context only, not the force's extent
_COMPASS = ("N", "NE", "E", "SE", "S", "SW", "W", "NW")


@dataclass(frozen=True, slots=True)
class _Source:
    """Where one kind of located record lives and what of it a search shows."""

    table: str
    key: str
    start: str  # the record's date, or the start of an address link
    end: str  # the same date, or the end of an address link
    columns: tuple[str, ...]


_SOURCES = {
    "addresses": _Source(
        "soc_addresses",
        "address_id",
        "from_date",
        "to_date",
        (
            "address_id",
            "address",
            "nominal_id",
            "link_type",
            "from_date",
            "to_date",
            "latitude",
            "longitude",
        ),
    ),
    "intelligence": _Source(
        "soc_intelligence",
        "intel_id",
        "reported_date",
        "reported_date",
        (
            "intel_id",
            "reported_date",
            "source_evaluation",
            "intelligence_assessment",
            "handling_code",
            "topics",
            "subjects",
            "summary",
            "latitude",
            "longitude",
        ),
    ),
    "crimes": _Source(
        "crimes",
        "crime_key",
        "month",
        "month",
        (
            "crime_id",
            "record_key",
            "month",
            "crime_type",
            "location",
            "latest_outcome",
            "latitude",
            "longitude",
        ),
    ),
    "force_crimes": _Source(
        "soc_force_crimes",
        "crime_ref",
        "recorded_date",
        "recorded_date",
        (
            "crime_ref",
            "recorded_date",
            "offence_code",
            "crime_type",
            "firearms_discharged",
            "cannabis_production",
            "latitude",
            "longitude",
        ),
    ),
    "incidents": _Source(
        "soc_incidents",
        "incident_id",
        "occurred_date",
        "occurred_date",
        ("incident_id", "occurred_date", "incident_type", "closing_code", "latitude", "longitude"),
    ),
}
_NOMINAL_COLUMNS = (
    "nominal_id",
    "surname",
    "forename",
    "date_of_birth",
    "ocg_member",
    "priority_individual",
    "pcg_member",
    "ucg_member",
    *policy.RESTRICTED_FLAGS,
)


# -- what the search is asked ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Point:
    """A centre given as WGS84 latitude and longitude in decimal degrees."""

    latitude: float
    longitude: float


@dataclass(frozen=True, slots=True)
class Address:
    """A centre given as a SOC address: its id, or text to find it by."""

    address_id: str | None = None
    text: str | None = None


Centre = Point | Address


@dataclass(frozen=True, slots=True)
class Period:
    """Records dated (or address links current) in these months; None is open-ended."""

    first: dt.date | None = None
    last: dt.date | None = None  # the last day of the last month

    @classmethod
    def parse(cls, first: str | None, last: str | None) -> Period:
        start = parse_month(first) if first else None
        end = month_end(parse_month(last)) if last else None
        if start and end and start > end:
            raise DataError(f"the period starts ({first}) after it ends ({last}); swap them")
        return cls(start, end)

    def query(self) -> dict[str, str | None]:
        return {
            "from": f"{self.first:%Y-%m}" if self.first else None,
            "to": f"{self.last:%Y-%m}" if self.last else None,
        }


def parse_centre(
    lat: float | None, lon: float | None, address_id: str | None, address: str | None
) -> Centre:
    """The one centre the request names: a point (`lat` and `lon`), an address id, or
    address text; anything else is a DataError saying what to give."""
    address_id = (address_id or "").strip() or None
    text = (address or "").strip() or None
    point = lat is not None or lon is not None
    given = int(point) + int(address_id is not None) + int(text is not None)
    if given == 0:
        raise DataError(
            "give a centre: a point (lat and lon, decimal degrees, e.g. lat=54.9783&lon=-1.6178) "
            "or an address (address=text to find, or address_id)"
        )
    if given > 1:
        raise DataError("give one centre only: a point (lat and lon), an address_id or address")
    if address_id is not None:
        return Address(address_id=address_id)
    if text is not None:
        if len(text) < 3 or len(text) > ADDRESS_TEXT_MAX:
            raise DataError(f"address text is 3 to {ADDRESS_TEXT_MAX} characters")
        return Address(text=text)
    if lat is None or lon is None:
        raise DataError("a point needs both lat and lon (decimal degrees)")
    if not (math.isfinite(lat) and math.isfinite(lon)) or abs(lat) > 90 or abs(lon) > 180:
        raise DataError(
            "lat is -90 to 90 and lon -180 to 180, in decimal degrees (WGS84), e.g. "
            "lat=54.9783&lon=-1.6178"
        )
    return Point(float(lat), float(lon))


def number(value: object, what: str, whole: bool = False) -> float | int | None:
    """A number from a URL or form field: None for an empty one, else a DataError saying
    what is expected (`what`)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        parsed = float(str(value).strip())
    except ValueError:
        raise DataError(f"{str(value)[:40]!r} is not a number: {what}") from None
    if whole:
        if not parsed.is_integer():
            raise DataError(f"{str(value)[:40]!r} is not a whole number: {what}")
        return int(parsed)
    return parsed


def metres(value: object) -> int:
    """A radius from a URL or form field: whole metres, the default when empty."""
    parsed = number(value, f"radius_m is whole metres, {RADIUS_HELP}", whole=True)
    return DEFAULT_RADIUS_M if parsed is None else int(parsed)


def parse_kinds(values: list[str] | None) -> tuple[str, ...]:
    """The chosen kinds in their canonical order (repeated or comma-separated); none = all."""
    chosen = {v.strip() for value in values or [] for v in value.split(",") if v.strip()}
    unknown = sorted(chosen - set(KINDS))
    if unknown:
        raise DataError(f"unknown kind {', '.join(map(repr, unknown))}; use: {', '.join(KINDS)}")
    return tuple(k for k in KINDS if k in chosen) or KINDS


def check_radius(radius_m: int) -> int:
    if not MIN_RADIUS_M <= radius_m <= MAX_RADIUS_M:
        raise DataError(
            f"radius_m is {MIN_RADIUS_M} to {MAX_RADIUS_M} metres (got {radius_m}); "
            f"the default is {DEFAULT_RADIUS_M}"
        )
    return radius_m


@dataclass(frozen=True, slots=True)
class Query:
    """A radius search as the URL gives it, checked: the centre (None: only the form),
    radius, kinds and period."""

    centre: Centre | None
    radius_m: int = DEFAULT_RADIUS_M
    kinds: tuple[str, ...] = KINDS
    period: Period = Period()

    @classmethod
    def parse(
        cls,
        lat: float | None,
        lon: float | None,
        address_id: str | None,
        address: str | None,
        radius_m: int,
        kinds: list[str] | None,
        first: str | None,
        last: str | None,
        need_centre: bool = True,
    ) -> Query:
        given = any(v not in (None, "") for v in (lat, lon, address_id, address))
        centre = parse_centre(lat, lon, address_id, address) if given or need_centre else None
        return cls(centre, check_radius(radius_m), parse_kinds(kinds), Period.parse(first, last))

    def to_json(self) -> dict[str, Any]:
        """The search as asked (for the form, links and the audit record): never results."""
        point = self.centre if isinstance(self.centre, Point) else None
        named = self.centre if isinstance(self.centre, Address) else None
        return {
            "lat": point.latitude if point else None,
            "lon": point.longitude if point else None,
            "address_id": named.address_id if named else None,
            "address": named.text if named else None,
            "radius_m": self.radius_m,
            "kinds": ",".join(self.kinds),
            **self.period.query(),
        }


# -- what it finds --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ResolvedCentre:
    """The centre as a point, what it is, and the areas it lies in."""

    latitude: float
    longitude: float
    kind: str  # "point" or "address"
    address_id: str | None
    address: str | None
    areas: tuple[tuple[str, str, str | None], ...]  # (set, code, name)
    inside_force: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "latitude": self.latitude,
            "longitude": self.longitude,
            "kind": self.kind,
            "address_id": self.address_id,
            "address": self.address,
            "areas": [{"set": s, "code": c, "name": n} for s, c, n in self.areas],
            "inside_force": self.inside_force,
        }


@dataclass(slots=True)
class RadiusResult:
    """A search's answer: per kind, every record within the radius (nearest first, at most
    ROW_LIMIT shown) and how many there are; or, for address text matching several
    addresses, the candidates to choose from (and no search)."""

    centre: ResolvedCentre | None
    radius_m: int
    kinds: tuple[str, ...]
    period: Period
    tables: dict[str, pl.DataFrame] = field(default_factory=dict)
    within: dict[str, int] = field(default_factory=dict)
    candidates: pl.DataFrame | None = None
    candidates_total: int = 0
    notes: list[str] = field(default_factory=list)

    def record_ids(self) -> dict[str, list[str]]:
        """The identifiers of the records shown, per kind: what the audit log records of
        a consultation (never their content)."""
        out: dict[str, list[str]] = {}
        for kind, frame in self.tables.items():
            key = _SOURCES[kind].key if kind in _SOURCES else "nominal_id"
            out[kind] = [str(v) for v in frame[key].to_list()] if frame.height else []
        if self.candidates is not None:
            out["candidate_addresses"] = [str(v) for v in self.candidates["address_id"]]
        return out


def search(
    store: Store,
    user: User,
    centre: Centre,
    radius_m: int,
    kinds: tuple[str, ...] = KINDS,
    period: Period | None = None,
) -> RadiusResult:
    """What is known within `radius_m` metres of `centre`, for a cleared role.

    Parameters
    ----------
    centre
        A `Point` (must lie in one of the force's areas) or an `Address` (by id, or text:
        an exact match ignoring case, else the addresses containing it; several matches give
        `candidates` to choose from and no search).
    radius_m
        MIN_RADIUS_M to MAX_RADIUS_M metres.
    kinds
        Any of KINDS; nominals are found through their addresses.
    period
        Records dated in it, addresses whose link to a nominal was current in it; None: all.

    Returns
    -------
    RadiusResult, each table sorted by `distance_m` (then by id).
    """
    policy.require(user, "radius")
    check_radius(radius_m)
    unknown = set(kinds) - set(KINDS)
    if unknown or not kinds:
        raise DataError(f"kinds are some of: {', '.join(KINDS)}")
    period = period or Period()
    result = RadiusResult(None, radius_m, kinds, period)
    resolved = _resolve(store, centre, result)
    if resolved is None:
        return result
    result.centre = resolved
    if not resolved.inside_force:
        result.notes.append("The centre is outside the force's areas.")
    box = _box(resolved.latitude, resolved.longitude, radius_m)
    hidden = [] if policy.cleared(user) else store.restricted_only_nominals()
    found: dict[str, pl.DataFrame] = {}
    wanted = set(kinds) | ({"addresses"} if "nominals" in kinds else set())
    for kind in (k for k in _SOURCES if k in wanted):
        source = _SOURCES[kind]
        rows = store.located_within(
            source.table,
            list(source.columns),
            box,
            (source.start, source.end, period.first, period.last),
        )
        found[kind] = _measure(rows, resolved, radius_m)
    if "addresses" in found:
        links = found["addresses"].filter(~pl.col("nominal_id").is_in(hidden))
        if "nominals" in kinds:
            found["nominals"] = _nominals(store, user, links)
        found["addresses"] = _addresses(links)
    if "crimes" in found:  # police.uk's id; for ASB, which has none, placeharm's record key
        found["crimes"] = (
            found["crimes"]
            .with_columns(pl.coalesce("crime_id", "record_key").alias("crime_key"))
            .drop("crime_id", "record_key")
        )
    if "intelligence" in found:
        found["intelligence"] = policy.shape_people(user, found["intelligence"], hidden)
    for kind in kinds:
        frame = policy.shape_located(user, found[kind])
        frame = _order(frame, _key(kind))
        result.within[kind] = frame.height
        result.tables[kind] = frame.head(ROW_LIMIT)
        if frame.height > ROW_LIMIT:
            result.notes.append(
                f"{frame.height - ROW_LIMIT:,} more {KIND_LABELS[kind]} within "
                f"{radius_m:,} m not shown: the nearest {ROW_LIMIT:,} are listed. Narrow "
                "the radius or the period to see the rest."
            )
    return result


def _key(kind: str) -> str:
    return _SOURCES[kind].key if kind in _SOURCES else "nominal_id"


def _resolve(store: Store, centre: Centre, result: RadiusResult) -> ResolvedCentre | None:
    """The centre as a point, or None with `result.candidates` set when text matches
    several addresses."""
    if isinstance(centre, Point):
        areas, inside = _areas_at(store, centre.latitude, centre.longitude)
        if not inside:
            swapped = _areas_at(store, centre.longitude, centre.latitude)[1]
            hint = (
                " Latitude and longitude look swapped: give latitude (north-south) first."
                if swapped
                else ""
            )
            raise DataError(
                f"the point {centre.latitude:.5f}, {centre.longitude:.5f} is outside the "
                f"force's areas.{hint} Check the coordinates (WGS84 decimal degrees) or "
                "search by address."
            )
        return ResolvedCentre(centre.latitude, centre.longitude, "point", None, None, areas, inside)
    frame, total = store.addresses_matching(centre.address_id, centre.text, CANDIDATE_LIMIT)
    if total == 0:
        if centre.address_id is not None:
            raise DataError(
                f"no SOC address has the id {centre.address_id!r}; search by address text "
                "or give a point"
            )
        raise DataError(
            f"no SOC address contains {centre.text!r}; try part of the street name, or "
            "give a point (lat and lon)"
        )
    exact = frame.filter(pl.col("exact"))
    if total > 1 and exact.height != 1:
        result.candidates = frame.drop("exact")
        result.candidates_total = total
        shown = f"; the first {frame.height} are listed" if total > frame.height else ""
        result.notes.append(f"{total:,} addresses match {centre.text!r}{shown}: choose one.")
        return None
    row = (exact if exact.height == 1 else frame).row(0, named=True)
    if not row["located"] or row["latitude"] is None or row["longitude"] is None:
        raise DataError(
            f"the address {row['address_id']} has no location; give a point (lat and lon) "
            "near it instead"
        )
    areas, inside = _areas_at(store, row["latitude"], row["longitude"])
    return ResolvedCentre(
        float(row["latitude"]),
        float(row["longitude"]),
        "address",
        str(row["address_id"]),
        row["address"],
        areas,
        inside,
    )


def _areas_at(
    store: Store, latitude: float, longitude: float
) -> tuple[tuple[tuple[str, str, str | None], ...], bool]:
    """The areas of every set holding the point, and whether any is one of the force's
    areas (any set but the CHB sites, which are custom polygons inside it)."""
    if abs(latitude) > 90 or abs(longitude) > 180:
        return (), False
    sets = [s.name for s in store.area_sets()]
    if not [s for s in sets if s != _CHB_SET]:
        raise DataError(
            "the store holds no area boundaries, so a point cannot be checked against the "
            "force's areas; import them first (placeharm areas import)"
        )
    found: list[tuple[str, str, str | None]] = []
    for name in sorted(sets):
        polygons = store.area_polygons(name)
        if polygons.is_empty():
            continue
        shapes = shapely.from_wkb(polygons["geometry_wkb"].to_numpy())
        hits = np.flatnonzero(shapely.intersects_xy(shapes, longitude, latitude))
        for i in hits:
            found.append((name, polygons["area_code"][int(i)], polygons["area_name"][int(i)]))
    inside = any(s != _CHB_SET for s, _, _ in found)
    return tuple(found), inside


def _box(latitude: float, longitude: float, radius_m: float) -> tuple[float, float, float, float]:
    """A longitude/latitude box holding the geodesic circle: its outline at every degree of
    bearing, widened by 1% and 1 m (more than the outline's sag between bearings)."""
    reach = radius_m * 1.01 + 1.0
    bearings = np.arange(0.0, 360.0, 1.0)
    lons, lats, _ = _GEOD.fwd(
        np.full_like(bearings, longitude),
        np.full_like(bearings, latitude),
        bearings,
        np.full_like(bearings, reach),
    )
    return float(lons.min()), float(lats.min()), float(lons.max()), float(lats.max())


def circle(latitude: float, longitude: float, radius_m: float, points: int = 90) -> dict[str, Any]:
    """The geodesic circle as a GeoJSON polygon (for the map)."""
    bearings = np.linspace(0.0, 360.0, points + 1)
    lons, lats, _ = _GEOD.fwd(
        np.full_like(bearings, longitude),
        np.full_like(bearings, latitude),
        bearings,
        np.full_like(bearings, float(radius_m)),
    )
    ring = [[round(float(x), 7), round(float(y), 7)] for x, y in zip(lons, lats, strict=True)]
    ring[-1] = ring[0]
    return {"type": "Polygon", "coordinates": [ring]}


def _measure(rows: pl.DataFrame, centre: ResolvedCentre, radius_m: int) -> pl.DataFrame:
    """The rows within `radius_m` of the centre, with `distance_m` (0.1 m) and the compass
    `direction` from the centre."""
    if rows.is_empty():
        return rows.with_columns(
            pl.lit(None, pl.Float64).alias("distance_m"),
            pl.lit(None, pl.Int32).alias("bearing_deg"),
            pl.lit(None, pl.String).alias("direction"),
        )
    lons = rows["longitude"].to_numpy().astype(np.float64)
    lats = rows["latitude"].to_numpy().astype(np.float64)
    azimuth, _, distance = _GEOD.inv(
        np.full_like(lons, centre.longitude), np.full_like(lats, centre.latitude), lons, lats
    )
    bearing = np.mod(np.asarray(azimuth), 360.0)
    bearing = np.where(np.asarray(distance) < 0.05, 0.0, bearing)  # at the centre: no bearing
    sector = (np.floor((bearing + 22.5) / 45.0).astype(np.int64)) % 8
    return rows.with_columns(
        pl.Series("distance_m", np.asarray(distance, dtype=np.float64)),
        pl.Series("bearing_deg", np.round(bearing).astype(np.int32) % 360),
        pl.Series("direction", [_COMPASS[i] for i in sector], dtype=pl.String),
    ).filter(pl.col("distance_m") <= radius_m)


def _order(frame: pl.DataFrame, key: str) -> pl.DataFrame:
    """Nearest first (ties by id); distance rounded to 0.1 m, then the columns a reader
    wants first: id, distance, direction."""
    frame = frame.sort(["distance_m", key], nulls_last=True)
    first = [key, "distance_m", "direction", "bearing_deg"]
    rest = [c for c in frame.columns if c not in first]
    return frame.select(*first, *rest).with_columns(pl.col("distance_m").round(1))


def _addresses(links: pl.DataFrame) -> pl.DataFrame:
    """One row per address: its text, the link types and the nominals linked to it."""
    return links.group_by("address_id").agg(
        pl.col("distance_m").min(),
        pl.col("direction").first(),
        pl.col("bearing_deg").first(),
        pl.col("address").drop_nulls().first(),
        pl.col("link_type").unique().sort().str.join(", ").alias("link_types"),
        pl.col("nominal_id").unique().sort().alias("nominal_ids"),
        pl.col("nominal_id").n_unique().cast(pl.Int32).alias("nominals"),
        pl.col("latitude").first(),
        pl.col("longitude").first(),
    )


def _nominals(store: Store, user: User, links: pl.DataFrame) -> pl.DataFrame:
    """Each nominal linked to an address within the radius, at its nearest such address."""
    nearest = (
        links.sort(["distance_m", "address_id"])
        .unique("nominal_id", keep="first", maintain_order=True)
        .select(
            "nominal_id",
            "distance_m",
            "direction",
            "bearing_deg",
            "address_id",
            "link_type",
            "address",
            "latitude",
            "longitude",
        )
    )
    if nearest.is_empty():
        people = pl.DataFrame(schema={c: pl.String for c in _NOMINAL_COLUMNS})
    else:
        people = store.soc_keyed_rows(
            "soc_nominals", ["nominal_id"], nearest.select("nominal_id")
        ).select(_NOMINAL_COLUMNS)
    joined = nearest.join(people, on="nominal_id", how="inner").select(
        *_NOMINAL_COLUMNS, *[c for c in nearest.columns if c != "nominal_id"]
    )
    return policy.shape_nominals(user, joined)


# -- the page -------------------------------------------------------------------------------


def page(store: Store, user: User, query: Query) -> tuple[Page, RadiusResult | None]:
    """The radius page (HTML, and its JSON twin at /api/radius): the form, and when a
    centre is given, the search's tables, counts, circle and notes. Also the result itself
    (None for the empty form), for the audit record."""
    policy.require(user, "radius")
    result = (
        search(store, user, query.centre, query.radius_m, query.kinds, query.period)
        if query.centre is not None
        else None
    )
    data: dict[str, Any] = {
        **data_as_of(store),
        "user": {"username": user.username, "role": user.role.value},
        "record_kinds": policy.record_kinds(user),
        "query": query.to_json(),
        "query_string": _query_string(query.to_json()),
        "search_options": _query_string(
            {k: v for k, v in query.to_json().items() if k not in _CENTRE_PARAMS}
        ),
        "radius_m": query.radius_m,
        "kinds": list(query.kinds),
        "period": query.period.query(),
        "kind_options": [{"id": k, "label": KIND_LABELS[k]} for k in KINDS],
        "limits": {
            "min_radius_m": MIN_RADIUS_M,
            "max_radius_m": MAX_RADIUS_M,
            "default_radius_m": DEFAULT_RADIUS_M,
            "rows_per_kind": ROW_LIMIT,
        },
        "distance_method": DISTANCE_METHOD,
        "centre": None,
        "circle": None,
        "counts": {},
        "candidates": None,
        "candidates_total": 0,
        "notes": [],
        "error": None,
    }
    tables: dict[str, pl.DataFrame] = {}
    title = "Radius search"
    if result is not None:
        data["notes"] = result.notes
        if result.candidates is not None:
            data["candidates"] = result.candidates.to_dicts()
            data["candidates_total"] = result.candidates_total
            title = "Radius search: choose an address"
        if result.centre is not None:
            c = result.centre
            data["centre"] = c.to_json()
            data["circle"] = circle(c.latitude, c.longitude, query.radius_m)
            data["counts"] = {
                k: {
                    "within": result.within[k],
                    "shown": result.tables[k].height,
                    "not_shown": result.within[k] - result.tables[k].height,
                }
                for k in query.kinds
            }
            tables = result.tables
            where = c.address_id or f"{c.latitude:.5f}, {c.longitude:.5f}"
            title = f"Radius search: {query.radius_m:,} m of {where}"
    return Page("radius", title, data, tables), result


_CENTRE_PARAMS = ("lat", "lon", "address_id", "address")


def _query_string(params: dict[str, Any]) -> str:
    """The search as URL parameters (for links to its JSON twin and to a chosen address)."""
    return urlencode({k: v for k, v in params.items() if v not in (None, "")})


def form_page(store: Store, user: User, raw: dict[str, Any], error: str) -> Page:
    """The form again, filled in as sent, with what was wrong (HTML only: the JSON API
    answers a 400)."""
    built, _ = page(store, user, Query(None))
    kinds = ",".join(raw.get("kinds") or []) or None
    built.data["query"] = {k: v for k, v in raw.items() if v not in (None, "", [])}
    built.data["query"]["kinds"] = kinds
    built.data["error"] = error
    return built
