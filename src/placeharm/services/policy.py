"""Who may see what: the one place roles are decided, called by every page, API and export.

Roles (docs/web.md):
- officer: neighbourhood policing; wards, CHB sites, nominals and groups, records, not the
  restricted exploitation (CCE/CSE) flags and links.
- analyst, supervisor: everything, including CCE/CSE and the radius search (cleared roles).
- senior_leader: the force picture: overview, wards, CHB sites, groups; not individual nominals.
- partner: community safety partners: aggregated figures, police.uk records, partner events and
  intelligence whose handling code permits sharing (P), with locations generalised; no
  nominals, groups or force records.
- admin: everything (the radius search too), plus uploads, the quarantine and user accounts.
- auditor: the audit log (who looked at what, docs/security/audit.md) and help; no data
  pages at all.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass
from enum import StrEnum

import polars as pl

from placeharm.errors import ConfigError, PermissionDenied
from placeharm.store.base import Scope, Store


class Role(StrEnum):
    officer = "officer"
    analyst = "analyst"
    supervisor = "supervisor"
    senior_leader = "senior_leader"
    partner = "partner"
    admin = "admin"
    auditor = "auditor"


@dataclass(frozen=True, slots=True)
class User:
    username: str
    display_name: str
    role: Role


ALL = frozenset(Role)
DATA = ALL - {Role.auditor}  # every role that sees police data
_ACTIONS: dict[str, frozenset[Role]] = {
    "overview": DATA,
    "ward": DATA,
    "chb": DATA,
    "help": ALL,
    "records": DATA,
    "group": frozenset(
        {Role.officer, Role.analyst, Role.supervisor, Role.senior_leader, Role.admin}
    ),
    "nominal": frozenset({Role.officer, Role.analyst, Role.supervisor, Role.admin}),
    "admin": frozenset({Role.admin}),
    # what is near a point or address (covert deployments): cleared roles only, as issue 12
    # asks; there is no covert/surveillance role, and officers are not cleared for CCE/CSE
    "radius": frozenset({Role.analyst, Role.supervisor, Role.admin}),
    "upload": frozenset({Role.admin}),
    # records past their MoPI review date: for those who review them (docs/security)
    "mopi": frozenset({Role.analyst, Role.supervisor, Role.admin}),
    "audit": frozenset({Role.auditor}),
    # issue 12: every route names its action (web/authz.py); these govern no data of their own
    "api_description": ALL,  # the OpenAPI description at /api/openapi.json
    "live": ALL,  # the server-sent events that tell open pages new data arrived
    "basemap": ALL,  # base map tiles from the local PMTiles archive
    # stating why personal data is needed (the audit log's justification), before opening it:
    # the roles that may open nominals or search places; the others have nothing to justify
    "justification": frozenset({Role.officer, Role.analyst, Role.supervisor, Role.admin}),
    # issue 16: disruption impact, for the roles that see disruption records
    "disruptions": DATA - {Role.partner},
}
CLEARED = frozenset({Role.analyst, Role.supervisor, Role.admin})  # CCE/CSE
RESTRICTED_FLAGS = ("cce_perpetrator", "cce_victim", "cse_perpetrator", "cse_victim")
# record kinds in the explorer, per role
_RECORDS = {
    "crimes": DATA,
    "partner_events": DATA,
    "intelligence": DATA,
    "incidents": DATA - {Role.partner},
    "force_crimes": DATA - {Role.partner},
    "disruptions": DATA - {Role.partner},
    "nominals": frozenset({Role.officer, Role.analyst, Role.supervisor, Role.admin}),
    "groups": frozenset(
        {Role.officer, Role.analyst, Role.supervisor, Role.senior_leader, Role.admin}
    ),
}
GENERALISE_DEGREES = 0.01  # partners see locations to about 1 km
# records whose handling code lets them be shared outside the police (3x5x2 "P"); the
# tables carrying a handling code, and the codes each role may see and count
SHAREABLE = ("P",)
HANDLED_TABLES = ("soc_intelligence", "soc_partner_events")
# tables naming a nominal, and the columns that do
_NOMINAL_KEYS = (
    ("soc_nominals", "nominal_id"),
    ("soc_addresses", "nominal_id"),
    ("soc_memberships", "nominal_id"),
    ("soc_nominal_crimes", "nominal_id"),
    ("soc_nominal_links", "from_nominal"),
    ("soc_nominal_links", "to_nominal"),
)


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


def scope(store: Store, user: User) -> Scope:
    """The rows this user's role may see, and so may count: the one rule behind record
    lists, page totals, measures, charts, maps and exports (every aggregate takes it, so a
    total never counts a record its reader could not list).

    - partner: intelligence and partner events with a shareable handling code (P) only;
      a record with no handling code is not shareable.
    - uncleared roles (officer, senior_leader, partner): no nominal known only for child
      exploitation (CCE/CSE) in any table, no exploitation link, and the restricted flags
      masked (a measure on them counts nobody).
    - cleared roles: everything.

    The same Scope object is returned for the same kind of reader while the store's
    generation is unchanged (read models key on it; the nominals hidden are read once).
    """
    kind = (user.role is Role.partner, cleared(user))
    generation = store.generation
    with _SCOPES_LOCK:
        held = _SCOPES.get(store)
        if held is not None and held[0] == generation and kind in held[1]:
            return held[1][kind]
    made = _scope(store, user)
    with _SCOPES_LOCK:
        held = _SCOPES.get(store)
        if held is None or held[0] != generation:
            held = (generation, {})
            _SCOPES[store] = held
        return held[1].setdefault(kind, made)


# policy.scope's Scope objects per store: (generation, {(partner, cleared): Scope})
_SCOPES: weakref.WeakKeyDictionary[Store, tuple[int, dict[tuple[bool, bool], Scope]]] = (
    weakref.WeakKeyDictionary()
)
_SCOPES_LOCK = threading.Lock()


def _scope(store: Store, user: User) -> Scope:
    keep: list[tuple[str, str, tuple[str, ...]]] = []
    drop: list[tuple[str, str, tuple[str, ...]]] = []
    masked: list[tuple[str, str]] = []
    if user.role is Role.partner:
        keep += [(table, "handling_code", SHAREABLE) for table in HANDLED_TABLES]
    if not cleared(user):
        hidden = tuple(store.restricted_only_nominals())
        if hidden:
            drop += [(table, column, hidden) for table, column in _NOMINAL_KEYS]
        drop.append(("soc_nominal_links", "link_type", ("exploitation",)))
        masked += [("soc_nominals", flag) for flag in RESTRICTED_FLAGS]
    return Scope(tuple(keep), tuple(drop), tuple(masked))


def hidden_nominals(rows: Scope) -> list[str]:
    """The nominals a scope leaves out (those known only for child exploitation, for
    uncleared roles), for shaping columns that name people (`shape_people`)."""
    return [
        v for t, c, values in rows.drop if (t, c) == ("soc_nominals", "nominal_id") for v in values
    ]


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
# record kinds whose rows name people (or say what intelligence says about them)
PERSONAL_KINDS = ("nominals", "intelligence", "disruptions")


# What each justification purpose (placeharm.audit.PURPOSES) opens: a role that may not do
# it has nothing to justify, and is refused rather than asked why (issue 12).
_PURPOSE_ACTION = {"nominal": "nominal", "export": "nominal", "radius": "radius"}


def purposes(user: User) -> list[str]:
    """The justification purposes this user may state (those whose action the role may do)."""
    return [p for p, action in _PURPOSE_ACTION.items() if allowed(user, action)]


def require_purpose(user: User, purpose: str) -> None:
    """PermissionDenied unless the user's role may do what `purpose` justifies."""
    action = _PURPOSE_ACTION.get(purpose)
    if action is None or not allowed(user, action):
        raise PermissionDenied(
            f"the {user.role.value} role cannot open what {purpose!r} would justify, so there "
            "is nothing to state"
        )


def names_people(user: User, kind: str) -> bool:
    """Whether this role's records of `kind` carry columns naming people (a download of
    them needs a stated justification)."""
    return kind in PERSONAL_KINDS and allowed(user, "nominal")


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
    if not cleared(user) and hidden and "target_nominal_id" in frame.columns:
        frame = frame.with_columns(
            pl.when(pl.col("target_nominal_id").is_in(hidden))
            .then(None)
            .otherwise(pl.col("target_nominal_id"))
            .alias("target_nominal_id")
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
