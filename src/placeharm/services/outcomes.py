"""Outcome rates: how often crime ends in a charge or summons (issue 15).

The one place that says which police.uk outcome category belongs to which group
(docs/outcomes.md). police.uk publishes, for each crime with a Crime ID, the outcomes the
force recorded (the monthly outcomes files) and, in the street file, the crime's last
outcome category when the month was published. A crime's outcome here is its latest outcome
in the outcomes files held, else its street file's last outcome category.

Rates are by the month the crime was recorded (a cohort): of the crimes recorded in the
month, the share whose outcome is in the group. Crimes still under investigation count in
the denominator, so the latest months read low until their outcomes are published.
"""

from __future__ import annotations

import copy
import datetime as dt
import weakref
from dataclasses import dataclass
from typing import Any

import polars as pl

from placeharm.model import month_range
from placeharm.services import queries, readmodel
from placeharm.soc import cells as soc_cells
from placeharm.store.base import EVERYTHING, Scope, Store

# (group id, plain label), in the order pages show them
GROUPS: tuple[tuple[str, str], ...] = (
    ("charged", "Charged or summonsed (including court results)"),
    ("out_of_court", "Out-of-court outcome (caution, penalty notice, local resolution)"),
    ("not_proceeded", "Suspect identified, no further action"),
    ("no_suspect", "Investigation complete, no suspect identified"),
    ("open", "Under investigation or awaiting an update"),
    ("other", "Other or not recognised"),
    ("none", "No outcome published"),
)
GROUP_LABELS = dict(GROUPS)
# police.uk outcome categories (data.police.uk outcome and "last outcome category" values) by
# group. Court results follow a charge or summons, so they count as charged; "Suspect charged
# as part of another case" is an offence taken into consideration when the suspect was
# charged with another, so it counts as charged too. Any other category is "other", and the
# page names it.
OUTCOME_GROUPS: dict[str, str] = {
    "Suspect charged": "charged",
    "Suspect charged as part of another case": "charged",
    "Awaiting court outcome": "charged",
    "Court result unavailable": "charged",
    "Court case unable to proceed": "charged",
    "Defendant found not guilty": "charged",
    "Defendant sent to Crown Court": "charged",
    "Offender sent to prison": "charged",
    "Offender given suspended prison sentence": "charged",
    "Offender given community sentence": "charged",
    "Offender fined": "charged",
    "Offender given conditional discharge": "charged",
    "Offender given absolute discharge": "charged",
    "Offender ordered to pay compensation": "charged",
    "Offender deprived of property": "charged",
    "Offender otherwise dealt with": "charged",
    "Offender given a caution": "out_of_court",
    "Offender given penalty notice": "out_of_court",
    "Offender given a drugs possession warning": "out_of_court",
    "Local resolution": "out_of_court",
    "Unable to prosecute suspect": "not_proceeded",
    "Formal action is not in the public interest": "not_proceeded",
    "Further action is not in the public interest": "not_proceeded",
    "Further investigation is not in the public interest": "not_proceeded",
    "Action to be taken by another organisation": "not_proceeded",
    "Investigation complete; no suspect identified": "no_suspect",
    "Under investigation": "open",
    "Status update unavailable": "open",
}
SMALL_COUNT = 10  # a rate over fewer crimes than this is stated as a small count
METHOD = (
    "Of the police.uk crimes recorded in each month (anti-social behaviour has no outcomes), "
    "the share whose outcome is a charge or summons. A crime's outcome is the latest in the "
    "police.uk outcomes files held, else the last outcome category of its street file. "
    "Crimes still under investigation count, so recent months read low until their outcomes "
    "are published. A month with no police.uk file, or recorded after the last outcomes "
    "file held, is a gap."
)


def group_of(outcome: str | None) -> str:
    """The group of a police.uk outcome category ("none" for no outcome)."""
    if outcome is None or not outcome.strip():
        return "none"
    return OUTCOME_GROUPS.get(outcome.strip(), "other")


def _grouped(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` (outcome, crimes, ...) with a `group` column."""
    return frame.with_columns(
        pl.col("outcome")
        .map_elements(group_of, return_dtype=pl.String, skip_nulls=False)
        .alias("group")
    )


def _rate(charged: int, crimes: int) -> dict[str, Any]:
    return {
        "crimes": crimes,
        "charged": charged,
        "charge_rate_pct": round(100 * charged / crimes, 1) if crimes else None,
        "small_count": 0 < crimes < SMALL_COUNT,
    }


def _available(store: Store, first: dt.date, last: dt.date) -> tuple[list[dt.date], list[str]]:
    """The months of first..last whose outcomes can be read, and the gaps (as YYYY-MM):
    a month needs a police.uk street file and an outcomes file for it or a later month."""
    coverage = readmodel.piece(store, "outcomes:coverage", lambda s: s.coverage())
    street_gaps = set(queries.gaps_among(set(_crime_months(coverage)), first, last))
    outcome_months = coverage.filter(pl.col("source_kind") == "outcomes")["month"].to_list()
    latest = max(outcome_months) if outcome_months else None
    held, gaps = [], []
    for month in month_range(first, last):
        if f"{month:%Y-%m}" in street_gaps or latest is None or month > latest:
            gaps.append(f"{month:%Y-%m}")
        else:
            held.append(month)
    return held, gaps


def _crime_months(coverage: pl.DataFrame) -> list[dt.date]:
    """The months with crime records (`queries.gap_months`' rule: street files or API)."""
    return coverage.filter(pl.col("source_kind").is_in(queries.CRIME_SOURCES))["month"].to_list()


def _summarise(
    counts: pl.DataFrame, months: list[dt.date], gaps: list[str], what: str
) -> dict[str, Any]:
    """Rates per month and over the period from (month, group, crimes) counts."""
    grouped = counts.filter(pl.col("month").is_in(months)) if months else counts.clear()
    by_month = {
        m: (int(n or 0), int(c or 0))
        for m, n, c in grouped.group_by("month")
        .agg(
            pl.col("crimes").sum(),
            pl.col("crimes").filter(pl.col("group") == "charged").sum().alias("charged"),
        )
        .iter_rows()
    }
    per_month = []
    for month in sorted({*months, *(dt.datetime.strptime(g, "%Y-%m").date() for g in gaps)}):
        key = f"{month:%Y-%m}"
        if key in gaps:
            per_month.append(
                {"month": key, "gap": True, "crimes": None, "charged": None}
                | {"charge_rate_pct": None, "small_count": False}
            )
            continue
        crimes, charged = by_month.get(month, (0, 0))
        per_month.append({"month": key, "gap": False, **_rate(charged, crimes)})
    by_group = dict(grouped.group_by("group").agg(pl.col("crimes").sum()).iter_rows())
    totals = {g: int(by_group.get(g) or 0) for g, _ in GROUPS}
    crimes = sum(totals.values())
    other = sorted(
        {
            str(o)
            for o in grouped.filter(pl.col("group") == "other")["outcome"].to_list()
            if o is not None
        }
    )
    return {
        "what": what,
        **_rate(totals["charged"], crimes),
        "groups": [
            {
                "group": g,
                "label": label,
                "crimes": totals[g],
                "share_pct": round(100 * totals[g] / crimes, 1) if crimes else None,
            }
            for g, label in GROUPS
        ],
        "unrecognised_outcomes": other,
        "months": per_month,
    }


_MEMO_SIZE = 512
_MEMO: weakref.WeakKeyDictionary[Store, tuple[int, dict[tuple[Any, ...], dict[str, Any]]]] = (
    weakref.WeakKeyDictionary()
)


def outcome_rates(
    store: Store,
    by: str,
    first: dt.date,
    last: dt.date,
    area_code: str | None = None,
    scope: Scope = EVERYTHING,
) -> dict[str, Any]:
    """Outcome rates of police.uk crime (and of SOC force crimes linked to a police.uk Crime
    ID, where the reader may see them) for the force (`area_code` None: every crime,
    in the set's areas or not) or one area of set `by`, per month and over first..last.
    Worked out once per store generation and arguments (a copy is returned)."""
    generation = store.generation
    held = _MEMO.get(store)
    if held is None or held[0] != generation:
        held = (generation, {})
        _MEMO[store] = held
    key = (by, first, last, area_code, scope)
    if key not in held[1]:
        if len(held[1]) >= _MEMO_SIZE:
            held[1].clear()
        held[1][key] = _outcome_rates(store, by, first, last, area_code, scope)
    return copy.deepcopy(held[1][key])


def _outcome_rates(
    store: Store,
    by: str,
    first: dt.date,
    last: dt.date,
    area_code: str | None,
    scope: Scope,
) -> dict[str, Any]:
    held, gaps = _available(store, first, last)
    police = _summarise(
        _police_counts(store, by, first, last, area_code), held, gaps, "police.uk crime"
    )
    out: dict[str, Any] = {
        "area_code": area_code,
        "period": {"from": f"{first:%Y-%m}", "to": f"{last:%Y-%m}"},
        "gap_months": gaps,
        "method": METHOD,
        "small_count": SMALL_COUNT,
        "police_uk": police,
        "soc": _soc_rates(store, by, first, last, area_code, scope, held, gaps),
    }
    return out


def _soc_rates(
    store: Store,
    by: str,
    first: dt.date,
    last: dt.date,
    area_code: str | None,
    scope: Scope,
    held: list[dt.date],
    gaps: list[str],
) -> dict[str, Any] | None:
    """The same rates for SOC force crimes (linked to an organised crime group member, or
    flagged firearms discharge or cannabis production) that carry a police.uk Crime ID;
    None when the reader may see none or the store holds none."""
    end = dt.date(last.year + (last.month == 12), last.month % 12 + 1, 1) - dt.timedelta(days=1)
    crimes, soc = _soc_crimes(store, by, scope)
    in_period = pl.col("recorded_date").is_between(first, end)
    if area_code is not None:
        in_period = in_period & (pl.col("area_code") == area_code)
    if crimes.filter(in_period).is_empty():
        return None
    soc = soc.filter(in_period)
    recorded = soc.height
    soc = soc.filter(pl.col("policeuk_crime_id").fill_null("") != "")
    if soc.is_empty():
        return None
    # a month the force's crime records do not hold is a gap here too, never 0 crimes
    sets = soc_cells.set_names(store)
    soc_held = soc_cells.cells(store, by if by in sets else min(sets)).held_months("force_crimes")
    gaps = sorted({*gaps, *(f"{m:%Y-%m}" for m in held if m not in soc_held)})
    held = [m for m in held if m in soc_held]
    found = soc_outcomes(store)
    joined = soc.join(found, left_on="policeuk_crime_id", right_on="crime_id", how="left")
    counts = _grouped(
        joined.select(
            pl.col("recorded_date").dt.truncate("1mo").cast(pl.Date).alias("month"),
            pl.col("outcome"),
            pl.lit(1, pl.Int64).alias("crimes"),
        )
    )
    result = _summarise(
        counts.group_by("month", "group", "outcome").agg(pl.col("crimes").sum()),
        held,
        gaps,
        "SOC crime linked to a police.uk Crime ID",
    )
    result["soc_crimes"] = recorded  # SOC force crimes in the period
    result["linked"] = soc.height  # of which carry a police.uk Crime ID
    return result


# -- what is read once per store generation (issue 14) ---------------------------------------
# A page's outcome rates used to ask the store for every request: at 10M records each
# request's `outcome_counts` (a GROUP BY over the period's crimes) and `outcomes_of_crime_ids`
# (a scan of every crime for the SOC crimes' Crime IDs) took seconds. Both only change when
# data arrives, so they are read once per generation, as the harm read model is
# (`readmodel.piece`: built in one snapshot on a builder thread; concurrent callers wait for
# one build), and a request filters them in memory. The figures are the same:
# tests/integration/test_outcome_aggregates.py recounts them from the store.

_EVERY = (dt.date(1, 1, 1), dt.date(9999, 12, 1))  # every month a store can hold


@dataclass(frozen=True, slots=True)
class PoliceCounts:
    """One area set's police.uk outcome counts, every month held: (month, group, outcome,
    crimes) for the force (every crime, in the set's areas or not) and for each area."""

    force: pl.DataFrame
    areas: dict[str, pl.DataFrame]


def police_counts(store: Store, by: str) -> PoliceCounts:
    """`store.outcome_counts` of set `by` over every month, grouped, for this generation."""

    def build(s: Store) -> PoliceCounts:
        counts = _grouped(s.outcome_counts(by, *_EVERY))
        keys = ["month", "group", "outcome"]
        force = counts.group_by(keys).agg(pl.col("crimes").sum()).sort(keys, nulls_last=True)
        areas = {
            str(code[0]): frame.drop("area_code")
            for code, frame in counts.filter(pl.col("area_code").is_not_null())
            .sort("area_code", *keys, nulls_last=True)
            .partition_by("area_code", as_dict=True, maintain_order=True)
            .items()
        }
        return PoliceCounts(force, areas)

    return readmodel.piece(store, f"outcomes:{by}", build)


def _police_counts(
    store: Store, by: str, first: dt.date, last: dt.date, area_code: str | None
) -> pl.DataFrame:
    """(month, group, outcome, crimes) of crimes recorded first..last (in `area_code`)."""
    held = police_counts(store, by)
    if area_code is None:
        frame = held.force
    else:
        empty = held.force.clear()
        frame = held.areas.get(area_code, empty)
    return frame.filter(pl.col("month").is_between(first, last))


def soc_outcomes(store: Store) -> pl.DataFrame:
    """(crime_id, outcome) of every police.uk Crime ID any SOC force crime carries, as
    `store.outcomes_of_crime_ids` reads them, for this generation (not scoped: it only
    says what became of a Crime ID; which SOC crimes a reader may count is scoped)."""

    def build(s: Store) -> pl.DataFrame:
        ids = s.soc_frame("soc_force_crimes", columns=["policeuk_crime_id"])["policeuk_crime_id"]
        return s.outcomes_of_crime_ids(sorted({i for i in ids.to_list() if i}))

    return readmodel.piece(store, "outcomes:soc_ids", build)


def _soc_crimes(store: Store, by: str, scope: Scope) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The SOC force crimes `scope` lets the reader see, every date and area of set `by`
    (with area_code), and of them the SOC crimes (linked to a group member, or flagged
    firearms discharge or cannabis production): read once per generation and scope."""

    def read(store: Store) -> tuple[pl.DataFrame, pl.DataFrame]:
        crimes = store.soc_frame(
            "soc_force_crimes",
            by,
            columns=[
                "crime_ref",
                "recorded_date",
                "policeuk_crime_id",
                "firearms_discharged",
                "cannabis_production",
            ],
            scope=scope,
        )
        members = store.soc_frame("soc_memberships", columns=["nominal_id"], scope=scope)
        linked = (
            store.soc_frame("soc_nominal_crimes", columns=["nominal_id", "crime_ref"], scope=scope)
            .join(members, on="nominal_id", how="semi")["crime_ref"]
            .unique()
        )
        soc = crimes.filter(
            pl.col("crime_ref").is_in(linked.implode())
            | pl.col("firearms_discharged").fill_null(False)
            | pl.col("cannabis_production").fill_null(False)
        )
        return crimes, soc

    return readmodel.piece(store, f"outcomes:soc_crimes:{by}:{scope!r}", read)
