"""Who may see what: the one place roles are decided, called by every page, API and export.

Roles (docs/web.md):
- officer: neighbourhood policing; wards, CHB sites, nominals and groups, records, not the
  restricted exploitation (CCE/CSE) flags and links.
- analyst, supervisor: everything, including CCE/CSE (cleared roles).
- senior_leader: the force picture: overview, wards, CHB sites, groups; not individual nominals.
- partner: community safety partners: aggregated figures, police.uk records, partner events and
  intelligence whose handling code permits sharing (P), with locations generalised; no
  nominals, groups or force records.
- admin: everything, plus uploads, the quarantine and user accounts.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import polars as pl

from placeharm.errors import ConfigError, PermissionDenied


class Role(StrEnum):
    officer = "officer"
    analyst = "analyst"
    supervisor = "supervisor"
    senior_leader = "senior_leader"
    partner = "partner"
    admin = "admin"


@dataclass(frozen=True, slots=True)
class User:
    username: str
    display_name: str
    role: Role


ALL = frozenset(Role)
_ACTIONS: dict[str, frozenset[Role]] = {
    "overview": ALL,
    "ward": ALL,
    "chb": ALL,
    "help": ALL,
    "records": ALL,
    "group": frozenset(
        {Role.officer, Role.analyst, Role.supervisor, Role.senior_leader, Role.admin}
    ),
    "nominal": frozenset({Role.officer, Role.analyst, Role.supervisor, Role.admin}),
    "admin": frozenset({Role.admin}),
    "upload": frozenset({Role.admin}),
    # issue 12: every route names its action (web/authz.py); these govern no data of their own
    "api_description": ALL,  # the OpenAPI description at /api/openapi.json
    "live": ALL,  # the server-sent events that tell open pages new data arrived
    "basemap": ALL,  # base map tiles from the local PMTiles archive
}
CLEARED = frozenset({Role.analyst, Role.supervisor, Role.admin})  # CCE/CSE
RESTRICTED_FLAGS = ("cce_perpetrator", "cce_victim", "cse_perpetrator", "cse_victim")
# record kinds in the explorer, per role
_RECORDS = {
    "crimes": ALL,
    "partner_events": ALL,
    "intelligence": ALL,
    "incidents": ALL - {Role.partner},
    "force_crimes": ALL - {Role.partner},
    "disruptions": ALL - {Role.partner},
    "nominals": frozenset({Role.officer, Role.analyst, Role.supervisor, Role.admin}),
    "groups": frozenset(
        {Role.officer, Role.analyst, Role.supervisor, Role.senior_leader, Role.admin}
    ),
}
GENERALISE_DEGREES = 0.01  # partners see locations to about 1 km


def allowed(user: User, action: str) -> bool:
    return user.role in _ACTIONS.get(action, frozenset())


def roles_for(action: str) -> frozenset[Role]:
    """The roles that may do `action`; ConfigError for an action the policy does not know
    (a route declaring a misspelt action fails when the app is built, not by denying all)."""
    if action not in _ACTIONS:
        raise ConfigError(f"no policy action {action!r}; known: {', '.join(sorted(_ACTIONS))}")
    return _ACTIONS[action]


def require(user: User | None, action: str) -> User:
    """The user if their role may do `action`; else PermissionDenied (a 403, never a leak)."""
    if user is None:
        raise PermissionDenied("sign in first")
    if not allowed(user, action):
        raise PermissionDenied(f"the {user.role.value} role cannot open {action}")
    return user


def record_kinds(user: User) -> list[str]:
    return [kind for kind, roles in _RECORDS.items() if user.role in roles]


def require_records(user: User, kind: str) -> None:
    if kind not in _RECORDS:
        raise PermissionDenied(f"no record kind {kind!r}")
    if user.role not in _RECORDS[kind]:
        raise PermissionDenied(f"the {user.role.value} role cannot see {kind}")


def cleared(user: User) -> bool:
    """May see child exploitation (CCE/CSE) flags and exploitation links."""
    return user.role in CLEARED


def shape_nominals(user: User, frame: pl.DataFrame) -> pl.DataFrame:
    """Nominal rows as this user may see them: restricted flags removed unless cleared."""
    if cleared(user):
        return frame
    return frame.drop([c for c in RESTRICTED_FLAGS if c in frame.columns])


def shape_links(user: User, frame: pl.DataFrame) -> pl.DataFrame:
    """Nominal links: exploitation links only for cleared roles."""
    if cleared(user) or "link_type" not in frame.columns:
        return frame
    return frame.filter(pl.col("link_type") != "exploitation")


_PERSON_COLUMNS = ("subjects", "summary", "target_nominal_id")


def shape_people(user: User, frame: pl.DataFrame, hidden: list[str]) -> pl.DataFrame:
    """Columns naming people: only for roles that may see nominals; for uncleared roles,
    nominals known only for child exploitation are taken out of `subjects`."""
    if not allowed(user, "nominal"):
        return frame.drop([c for c in _PERSON_COLUMNS if c in frame.columns])
    if not cleared(user) and hidden and "subjects" in frame.columns:
        frame = frame.with_columns(
            pl.col("subjects")
            .fill_null("")
            .str.split(";")
            .list.set_difference(hidden)
            .list.join(";")
            .alias("subjects")
        )
    return frame


def partner_area_set(user: User, by: str) -> None:
    """Partners see areas no smaller than wards (generalised locations stay generalised)."""
    if user.role is Role.partner and by != "ward":
        raise PermissionDenied("partners see figures by ward only")


def sortable(user: User, column: str) -> bool:
    """Partners cannot sort by exact coordinates (it would order points inside a cell)."""
    return not (user.role is Role.partner and column in ("latitude", "longitude"))


def shape_located(user: User, frame: pl.DataFrame) -> pl.DataFrame:
    """Partners: only shareable intelligence (handling code P) and generalised locations."""
    if user.role is not Role.partner:
        return frame
    if "handling_code" in frame.columns:
        frame = frame.filter(pl.col("handling_code") == "P")
    for col in ("latitude", "longitude"):
        if col in frame.columns:
            frame = frame.with_columns(
                ((pl.col(col) / GENERALISE_DEGREES).round(0) * GENERALISE_DEGREES).round(2)
            )
    drop = [c for c in ("subjects", "summary", "address", "location") if c in frame.columns]
    return frame.drop(drop)
