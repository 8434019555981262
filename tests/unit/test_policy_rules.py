"""The role policy as a table written out by hand (docs/web.md, issue 19): who may open
what, which record kinds each role lists, what an uncleared role's scope hides, and how
rows naming people are shaped. A change to any rule fails here, not only in the web tests.
"""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl
import pytest

from placeharm.errors import ConfigError, PermissionDenied
from placeharm.services import policy
from placeharm.services.policy import Role, User
from placeharm.soc.importer import import_entity
from placeharm.store.base import Scope
from placeharm.store.duckdb import DuckDBStore

OF, AN, SU, SL, P, AD, AU = (
    Role.officer,
    Role.analyst,
    Role.supervisor,
    Role.senior_leader,
    Role.partner,
    Role.admin,
    Role.auditor,
)
EVERY = {OF, AN, SU, SL, P, AD, AU}
# action -> the roles that may do it
ACTIONS = {
    "overview": EVERY - {AU},
    "ward": EVERY - {AU},
    "chb": EVERY - {AU},
    "records": EVERY - {AU},
    "help": EVERY,
    "group": {OF, AN, SU, SL, AD},
    "nominal": {OF, AN, SU, AD},
    "admin": {AD},
    "radius": {AN, SU, AD},
    "upload": {AD},
    "mopi": {AN, SU, AD},
    "audit": {AU},
    "api_description": EVERY,
    "live": EVERY,
    "basemap": EVERY,
    "justification": {OF, AN, SU, AD},
    "disruptions": {OF, AN, SU, SL, AD},  # issue 16: the roles that see disruption records
}
# record kinds: a senior leader lists every kind but nominals; officers and up, all
SENIOR = ["crimes", "partner_events", "intelligence", "incidents", "force_crimes"]
SENIOR += ["disruptions", "groups"]
KINDS = {
    OF: [*SENIOR[:6], "nominals", "groups"],
    SL: SENIOR,
    P: ["crimes", "partner_events", "intelligence"],
    AU: [],
}
KINDS[AN] = KINDS[SU] = KINDS[AD] = KINDS[OF]


def exactly(message: str) -> str:
    """A `pytest.raises(match=...)` pattern for this whole message and nothing else."""
    return "^" + re.escape(message) + "$"


def _user(role: Role) -> User:
    return User(role.value, role.value.title(), role)


@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_who_may_do_each_action(action: str):
    assert policy.roles_for(action) == ACTIONS[action]
    for role in Role:
        user = _user(role)
        assert policy.allowed(user, action) is (role in ACTIONS[action])
        if role in ACTIONS[action]:
            assert policy.require(user, action) is user
        else:
            with pytest.raises(
                PermissionDenied, match=exactly(f"the {role.value} role cannot open {action}")
            ):
                policy.require(user, action)


def test_unknown_actions_and_anonymous_readers():
    with pytest.raises(
        ConfigError,
        match=exactly(
            "no policy action 'overveiw'; known: admin, api_description, audit, basemap, chb, "
            "disruptions, group, help, justification, live, mopi, nominal, overview, radius, "
            "records, upload, ward"
        ),
    ):
        policy.roles_for("overveiw")
    assert not any(policy.allowed(_user(r), "overveiw") for r in Role)
    with pytest.raises(PermissionDenied, match=exactly("sign in first")):
        policy.require(None, "help")


@pytest.mark.parametrize("role", list(Role), ids=lambda r: r.value)
def test_record_kinds_per_role(role: Role):
    user = _user(role)
    assert policy.record_kinds(user) == KINDS[role]
    for kind in KINDS[OF]:
        if kind in KINDS[role]:
            policy.require_records(user, kind)
        else:
            with pytest.raises(
                PermissionDenied, match=exactly(f"the {role.value} role cannot see {kind}")
            ):
                policy.require_records(user, kind)
    with pytest.raises(PermissionDenied, match=exactly("no record kind 'people'")):
        policy.require_records(user, "people")


@pytest.mark.parametrize(
    ("role", "cleared", "purposes", "names_people"),
    [
        (OF, False, ["nominal", "export"], True),
        (AN, True, ["nominal", "export", "radius"], True),
        (SU, True, ["nominal", "export", "radius"], True),
        (AD, True, ["nominal", "export", "radius"], True),
        (SL, False, [], False),
        (P, False, [], False),
        (AU, False, [], False),
    ],
)
def test_clearance_purposes_and_personal_kinds(role, cleared, purposes, names_people):
    user = _user(role)
    assert policy.cleared(user) is cleared
    assert policy.purposes(user) == purposes
    for purpose in ("nominal", "export", "radius"):
        if purpose in purposes:
            policy.require_purpose(user, purpose)
        else:
            with pytest.raises(
                PermissionDenied,
                match=exactly(
                    f"the {role.value} role cannot open what '{purpose}' would justify, so there "
                    "is nothing to state"
                ),
            ):
                policy.require_purpose(user, purpose)
    with pytest.raises(PermissionDenied):
        policy.require_purpose(user, "curiosity")
    for kind in ("nominals", "intelligence", "disruptions"):
        assert policy.names_people(user, kind) is names_people
    assert not policy.names_people(user, "crimes")


# -- scopes ------------------------------------------------------------------------------------

FLAGS = ("cce_perpetrator", "cce_victim", "cse_perpetrator", "cse_victim")
HANDLED = (
    ("soc_intelligence", "handling_code", ("P",)),
    ("soc_partner_events", "handling_code", ("P",)),
)
NOMINALS = (
    "nominal_id,surname,forename,ocg_member,cse_victim,cce_perpetrator\n"
    "N1,Demoa,X,Y,N,N\n"  # an OCG member: not restricted
    "N2,Demob,X,N,Y,N\n"  # known only as a CSE victim: hidden from uncleared roles
    "N3,Democ,X,Y,Y,N\n"  # CSE victim and OCG member: seen (flag masked)
    "N4,Demod,X,N,N,Y\n"  # known only as a CCE perpetrator: hidden
)


# `store`: tests/conftest.py's, an empty store on the engine under test


def test_scopes_on_a_store_without_restricted_nominals(store: DuckDBStore):
    link = (("soc_nominal_links", "link_type", ("exploitation",)),)
    masked = tuple(("soc_nominals", f) for f in FLAGS)
    assert policy.scope(store, _user(AN)) == Scope()
    assert policy.scope(store, _user(AD)) == Scope()
    assert policy.scope(store, _user(OF)) == Scope((), link, masked)
    assert policy.scope(store, _user(SL)) == Scope((), link, masked)
    assert policy.scope(store, _user(P)) == Scope(HANDLED, link, masked)


def test_uncleared_scopes_drop_nominals_known_only_for_exploitation(
    store: DuckDBStore, tmp_path: Path
):
    before = policy.scope(store, _user(OF))
    path = tmp_path / "nominals.csv"
    path.write_text(NOMINALS)
    import_entity(store, "nominals", path)
    hidden = ("N2", "N4")
    drop = (
        ("soc_nominals", "nominal_id", hidden),
        ("soc_addresses", "nominal_id", hidden),
        ("soc_memberships", "nominal_id", hidden),
        ("soc_nominal_crimes", "nominal_id", hidden),
        ("soc_nominal_links", "from_nominal", hidden),
        ("soc_nominal_links", "to_nominal", hidden),
        ("soc_nominal_links", "link_type", ("exploitation",)),
    )
    masked = tuple(("soc_nominals", f) for f in FLAGS)
    officer = policy.scope(store, _user(OF))
    assert officer is not before  # the import moved the generation on
    assert officer == Scope((), drop, masked)
    assert sorted(policy.hidden_nominals(officer)) == ["N2", "N4"]
    assert policy.scope(store, _user(P)) == Scope(HANDLED, drop, masked)
    assert policy.scope(store, _user(SU)) == Scope()
    assert policy.hidden_nominals(Scope()) == []
    # one Scope object per kind of reader and generation
    assert policy.scope(store, _user(OF)) is officer
    assert policy.scope(store, _user(SL)) is officer  # same kind: uncleared, not a partner
    assert policy.scope(store, _user(P)) is not officer


# -- shaping rows --------------------------------------------------------------------------------


def test_nominal_rows_lose_restricted_flags_unless_cleared():
    frame = pl.DataFrame({"nominal_id": ["N1"], "cse_victim": [True], "ocg_member": [True]})
    assert policy.shape_nominals(_user(OF), frame).columns == ["nominal_id", "ocg_member"]
    assert policy.shape_nominals(_user(AN), frame).equals(frame)


def test_exploitation_links_only_for_cleared_roles():
    frame = pl.DataFrame({"from_nominal": ["N1", "N2"], "link_type": ["associate", "exploitation"]})
    assert policy.shape_links(_user(OF), frame)["link_type"].to_list() == ["associate"]
    assert policy.shape_links(_user(SU), frame).equals(frame)
    no_type = pl.DataFrame({"from_nominal": ["N1"]})
    assert policy.shape_links(_user(OF), no_type).equals(no_type)


def test_people_columns_by_role():
    frame = pl.DataFrame(
        {
            "id": ["I1", "I2", "I3"],
            "subjects": ["N1;N2;N3", "N2", None],
            "summary": ["s1", "s2", "s3"],
            "target_nominal_id": ["N2", "N1", None],
        }
    )
    hidden = ["N2"]
    # roles that may not see nominals: no column naming people at all
    for role in (SL, P, AU):
        assert policy.shape_people(_user(role), frame, hidden).columns == ["id"]
    # an officer: the hidden nominal taken out of subjects and targets
    officer = policy.shape_people(_user(OF), frame, hidden)
    assert officer["subjects"].to_list() == ["N1;N3", "", ""]
    assert officer["target_nominal_id"].to_list() == [None, "N1", None]
    assert officer["summary"].to_list() == ["s1", "s2", "s3"]
    # cleared roles, or nothing hidden: unchanged
    assert policy.shape_people(_user(AN), frame, hidden).equals(frame)
    assert policy.shape_people(_user(OF), frame, []).equals(frame)
