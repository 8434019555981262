"""What the pages call things: one place that turns the codes the data and the URLs use
(harm index specs, SOC measure ids, intelligence topics, long identifiers, shares) into the
words a supervisor reads (issue 15). Pages only: the JSON twin, the CSV and the CLI keep the
codes, so an export or a script sees the same values as before.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from functools import cache

from placeharm.errors import PlaceharmError
from placeharm.harm import HarmIndex
from placeharm.harm.indices import load_index
from placeharm.services import policy
from placeharm.soc.measures import load_measures
from placeharm.soc.schema import TOPICS

# Intelligence topics (soc/schema.py TOPICS) in words; a topic missing here is spelled out
# from its code, so a new one never shows as a raw code.
TOPIC_LABELS: dict[str, str] = {
    "drug_supply": "Drug supply",
    "firearms": "Firearms",
    "exploitation": "Exploitation",
    "cuckooing": "Cuckooing",
    "money_laundering": "Money laundering",
    "violence": "Violence",
    "organised_acquisitive": "Organised acquisitive crime",
    "modern_slavery": "Modern slavery",
    "other": "Other",
}
# Columns whose values are fractions of 1 shown as percentages on a page (one way: 14.6%).
PERCENT_COLUMNS = frozenset({"share_in_ward", "harm_share", "share"})
# Columns already in percent (14.6 means 14.6%), shown signed with the sign.
PERCENT_VALUE_COLUMNS = frozenset({"pct_change"})
# Table headings that say more than the column name with spaces for underscores.
COLUMN_LABELS: dict[str, str] = {
    "area_code": "code",
    "area_name": "area",
    "soc_harm": "SOC harm",
    "harm_share": "share of force SOC harm",
    "pct_change": "change (%)",
    "rank_movement": "rank move",
    "share_in_ward": "share in ward",
    "asb": "ASB",
    "soc_crimes": "SOC crimes",
    "ocg_band": "OCG band",
}
# Columns holding ';'-separated topic codes.
TOPIC_COLUMNS = frozenset({"topics"})
SHORT_ID_CHARS = 10  # a long identifier's first characters on screen (the full one in exports)
_LONG_ID = re.compile(r"^[0-9a-fA-F]{24,}$")  # police.uk crime ids and record keys are hashes
KM_PER_DEGREE_LATITUDE = 111.32


def topic_label(code: str) -> str:
    """One intelligence topic in words."""
    code = code.strip()
    return TOPIC_LABELS.get(code) or code.replace("_", " ").capitalize()


def topics_label(codes: str | None) -> str:
    """';'-separated topic codes (`drug_supply;exploitation`) in words ("Drug supply,
    exploitation")."""
    parts = [topic_label(c) for c in (codes or "").split(";") if c.strip()]
    return ", ".join(parts[:1] + [p[:1].lower() + p[1:] for p in parts[1:]])


@cache
def _measure_labels() -> dict[str, str]:
    return {m.id: m.label for m in load_measures().measures}


def measure_label(measure_id: str) -> str:
    """A SOC measure's label from the measures configuration (soc/data/measures.yaml)."""
    return _measure_labels().get(measure_id) or measure_id.replace("_", " ").capitalize()


def measure_labels(ids: Iterable[str]) -> str:
    return ", ".join(measure_label(i) for i in ids)


def index_label(
    spec: str, registered: Mapping[str, HarmIndex] | None = None, fallback: str | None = None
) -> str:
    """A harm index spec (`css`, `css:northumbria`, `cchi`, a registered name) as its title,
    with the force whose offence mix weighs police.uk types, and "secondary" where it is;
    `fallback` (or the spec) for one not shipped and not in `registered`."""
    try:
        index = load_index(spec, registered=registered)
    except PlaceharmError:
        return fallback or spec  # a registered index's title comes with the page
    label = index.title
    if index.type_scope not in ("national", "custom", ""):
        label += f", {index.type_scope.replace('-', ' ').replace('_', ' ').title()} offence mix"
    if index.secondary:
        label += " (secondary)"
    return label


def index_options(
    specs: Iterable[str], registered: Mapping[str, HarmIndex] | None = None
) -> list[dict[str, str]]:
    """The filter form's harm index choices: value (the spec) and label (its title)."""
    return [{"value": s, "label": index_label(s, registered)} for s in specs]


def percent(value: float | None, decimals: int = 1) -> str:
    """A fraction of 1 as a percentage ("14.6%"); "—" when there is none."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{100 * value:.{decimals}f}%"


def signed_percent(value: float | None) -> str:
    """A value already in percent, with its sign ("+14.6%"); "—" when there is none."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:+.1f}%"


def column_label(column: str) -> str:
    """A table heading for a column name."""
    return COLUMN_LABELS.get(column) or column.replace("_", " ")


def short_id(value: str) -> str | None:
    """A long hash-like identifier's first characters and "…", or None when it is short
    enough to show whole."""
    if len(value) > SHORT_ID_CHARS + 4 and _LONG_ID.match(value):
        return value[:SHORT_ID_CHARS] + "…"
    return None


def generalised_distance() -> str:
    """How far a partner's generalised point may be from the real one, in words, from the
    policy's grid (services/policy.GENERALISE_DEGREES): "about 1 km"."""
    km = policy.GENERALISE_DEGREES * KM_PER_DEGREE_LATITUDE
    if km >= 1:
        return f"about {km:.0f} km"
    return f"about {round(km * 1000, -1):.0f} m"


def points_note(user: policy.User) -> str:
    """The ward map's note on what a point is, as precise as this role's points are."""
    if user.role is policy.Role.partner:
        return (
            "Every located police.uk crime in the period, counted by point. For partner "
            f"agencies every point is generalised to a grid of {policy.GENERALISE_DEGREES:g} "
            f"degrees ({generalised_distance()}): a point stands for the crimes in its cell, "
            "not an address."
        )
    return (
        "Every located police.uk crime in the period, counted by point (rounded to 4 decimal "
        "places, about 10 m); police.uk points are already moved to the nearest anonymous "
        "map point."
    )


def area_not_found(by: str, code: str) -> str:
    """A page's words for an area code or name that matches nothing (no CLI advice)."""
    return (
        f"There is no {_set_word(by)} with the code or name {code!r}. Find it on the overview's "
        "map or table, or type its name in the records page's area box, which suggests names."
    )


def _set_word(by: str) -> str:
    return {"ward": "ward", "lsoa": "LSOA", "chb_sites": "CHB site"}.get(by, f"{by} area")


def areas_word(by: str) -> str:
    """An area set's areas in plain words, plural: "wards", "LSOAs", "sectors"."""
    return {"ward": "wards", "lsoa": "LSOAs", "sector": "sectors", "chb_sites": "CHB sites"}.get(
        by, f"{by} areas"
    )


def known_topics() -> tuple[str, ...]:
    return TOPICS


def template_helpers() -> dict[str, object]:
    """What the templates use to word a page (web/app.py adds them to Jinja's globals)."""
    return {
        "topics_label": topics_label,
        "measure_label": measure_label,
        "index_label": index_label,
        "percent": percent,
        "signed_percent": signed_percent,
        "column_label": column_label,
        "PERCENT_VALUE_COLUMNS": PERCENT_VALUE_COLUMNS,
        "short_id": short_id,
        "areas_word": areas_word,
        "PERCENT_COLUMNS": PERCENT_COLUMNS,
        "TOPIC_COLUMNS": TOPIC_COLUMNS,
        "TOPIC_LABELS": TOPIC_LABELS,
    }
