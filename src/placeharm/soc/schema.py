"""The SOC entities a force imports: their CSV columns, types, codes and keys.

This is the one definition: the importer validates against it, the exporter writes it, and
docs/reference/soc-schema.md is checked against it by a test.
"""

from __future__ import annotations

from dataclasses import dataclass

TOPICS = (
    "drug_supply",
    "firearms",
    "exploitation",
    "cuckooing",
    "money_laundering",
    "violence",
    "organised_acquisitive",
    "modern_slavery",
    "other",
)


@dataclass(frozen=True, slots=True)
class Field:
    """One CSV column. kind: str, date, bool, float, list (';'-separated), code (from `codes`)."""

    name: str
    kind: str = "str"
    required: bool = False
    codes: tuple[str, ...] = ()
    description: str = ""


@dataclass(frozen=True, slots=True)
class Entity:
    kind: str  # the name users type: `placeharm import nominals FILE`
    table: str
    key: tuple[str, ...]
    fields: tuple[Field, ...]
    description: str
    located: bool = False
    date_field: str | None = None

    @property
    def columns(self) -> list[str]:
        return [f.name for f in self.fields]

    def field(self, name: str) -> Field:
        return next(f for f in self.fields if f.name == name)


def _flag(name: str, description: str) -> Field:
    return Field(name, "bool", description=description)


_LAT = Field("latitude", "float", description="WGS84 latitude (or give easting/northing)")
_LON = Field("longitude", "float", description="WGS84 longitude")
_HANDLING = ("P", "C")

ENTITIES: dict[str, Entity] = {
    e.kind: e
    for e in (
        Entity(
            "nominals",
            "soc_nominals",
            ("nominal_id",),
            (
                Field("nominal_id", required=True, description="the force's person reference"),
                Field("surname"),
                Field("forename"),
                Field("date_of_birth", "date"),
                Field("gender"),
                _flag("ocg_member", "member of an organised crime group"),
                _flag("priority_individual", "SOC priority individual (PI)"),
                _flag("pcg_member", "member of a peer crime group"),
                _flag("ucg_member", "member of an urban crime group"),
                _flag("cce_perpetrator", "child criminal exploitation: perpetrator (restricted)"),
                _flag("cce_victim", "child criminal exploitation: victim (restricted)"),
                _flag("cse_perpetrator", "child sexual exploitation: perpetrator (restricted)"),
                _flag("cse_victim", "child sexual exploitation: victim (restricted)"),
                Field("mopi_review_date", "date", description="MoPI retention review date"),
            ),
            "People on police systems, with their SOC flags.",
        ),
        Entity(
            "groups",
            "soc_groups",
            ("group_id",),
            (
                Field("group_id", required=True),
                Field("name"),
                Field("group_type", "code", True, ("OCG", "PCG", "UCG")),
                Field("ocg_band", description="OCG Mapping band, as imported (never computed)"),
                Field("status", "code", codes=("active", "dormant", "archived")),
            ),
            "Organised, peer and urban crime groups.",
        ),
        Entity(
            "memberships",
            "soc_memberships",
            ("group_id", "nominal_id"),
            (
                Field("group_id", required=True),
                Field("nominal_id", required=True),
                Field("role", "code", codes=("principal", "significant", "peripheral", "member")),
                Field("start_date", "date"),
                Field("end_date", "date"),
            ),
            "Which nominals belong to which group, in what role.",
        ),
        Entity(
            "addresses",
            "soc_addresses",
            ("nominal_id", "address_id", "link_type"),
            (
                Field("nominal_id", required=True),
                Field("address_id", required=True),
                Field("link_type", "code", True, ("home", "associated", "cuckooed")),
                Field("address"),
                Field("from_date", "date"),
                Field("to_date", "date"),
                _LAT,
                _LON,
            ),
            "Nominal-address links: home, associated, cuckooed.",
            located=True,
            date_field="from_date",
        ),
        Entity(
            "nominal-crimes",
            "soc_nominal_crimes",
            ("nominal_id", "crime_ref", "role"),
            (
                Field("nominal_id", required=True),
                Field("crime_ref", required=True, description="crime_ref of a force crime"),
                Field("role", "code", True, ("suspect", "offender", "victim")),
            ),
            "Nominal-crime links.",
        ),
        Entity(
            "nominal-links",
            "soc_nominal_links",
            ("from_nominal", "to_nominal", "link_type"),
            (
                Field("from_nominal", required=True),
                Field("to_nominal", required=True),
                Field(
                    "link_type",
                    "code",
                    True,
                    ("associate", "family", "exploitation"),
                    "exploitation: from the perpetrator to the victim",
                ),
            ),
            "Nominal-nominal links.",
        ),
        Entity(
            "intelligence",
            "soc_intelligence",
            ("intel_id",),
            (
                Field("intel_id", required=True),
                Field("reported_date", "date", True),
                Field(
                    "grading_scheme", "code", codes=("3x5x2", "5x5x5"), description="default 3x5x2"
                ),
                Field(
                    "source_evaluation", required=True, description="3x5x2: 1, 2, 3; 5x5x5: A to E"
                ),
                Field(
                    "intelligence_assessment",
                    required=True,
                    description="3x5x2: A to E; 5x5x5: 1 to 5",
                ),
                Field("handling_code", required=True, description="3x5x2: P or C; 5x5x5: 1 to 5"),
                Field("topics", "list", codes=TOPICS),
                Field("subjects", "list", description="nominal_ids, ';'-separated"),
                Field("summary"),
                _LAT,
                _LON,
                Field("mopi_review_date", "date", description="MoPI retention review date"),
            ),
            "Intelligence reports, graded.",
            located=True,
            date_field="reported_date",
        ),
        Entity(
            "incidents",
            "soc_incidents",
            ("incident_id",),
            (
                Field("incident_id", required=True),
                Field("occurred_date", "date", True),
                Field("incident_type", required=True),
                Field("closing_code"),
                _LAT,
                _LON,
            ),
            "Calls for service / command-and-control incidents.",
            located=True,
            date_field="occurred_date",
        ),
        Entity(
            "force-crimes",
            "soc_force_crimes",
            ("crime_ref",),
            (
                Field("crime_ref", required=True),
                Field("recorded_date", "date", True),
                Field("offence_code", description="Home Office offence code, e.g. 92A"),
                Field("crime_type", description="police.uk type; derived from the code if empty"),
                _flag("firearms_discharged", "a firearm was discharged"),
                _flag("cannabis_production", "cannabis production (a cannabis farm)"),
                Field("policeuk_crime_id", description="the published police.uk Crime ID"),
                _LAT,
                _LON,
            ),
            "Crimes from the force's records system, with offence codes and SOC flags.",
            located=True,
            date_field="recorded_date",
        ),
        Entity(
            "disruptions",
            "soc_disruptions",
            ("disruption_id",),
            (
                Field("disruption_id", required=True),
                Field("disruption_date", "date", True),
                Field("four_p", "code", True, ("Pursue", "Prevent", "Protect", "Prepare")),
                Field("disruption_type"),
                Field("target_group_id"),
                Field("target_nominal_id"),
                _LAT,
                _LON,
            ),
            "Disruptions against groups or nominals (APMIS), tagged by 4P.",
            located=True,
            date_field="disruption_date",
        ),
        Entity(
            "partner-events",
            "soc_partner_events",
            ("event_id",),
            (
                Field("event_id", required=True),
                Field("event_date", "date", True),
                Field(
                    "partner",
                    "code",
                    True,
                    ("coroner", "crimestoppers", "trading_standards", "other"),
                ),
                Field(
                    "event_type",
                    required=True,
                    description="e.g. drug_related_death, crimestoppers_report, "
                    "trading_standards_intelligence",
                ),
                Field("handling_code", "code", codes=_HANDLING),
                Field("description"),
                _LAT,
                _LON,
            ),
            "Partner events: drug-related deaths, Crimestoppers, Trading Standards.",
            located=True,
            date_field="event_date",
        ),
        Entity(
            "chb-phases",
            "soc_chb_phases",
            ("site_code", "phase"),
            (
                Field(
                    "site_code",
                    required=True,
                    description="area code of the site in the `chb` area set",
                ),
                Field("phase", "code", True, ("Clear", "Hold", "Build")),
                Field("start_date", "date", True),
                Field("end_date", "date", description="empty while the phase runs"),
            ),
            "Clear, Hold, Build phases of each CHB site (the polygons are the `chb` area set).",
        ),
    )
}

GRADES_3X5X2 = {
    "source_evaluation": ("1", "2", "3"),
    "intelligence_assessment": ("A", "B", "C", "D", "E"),
    "handling_code": ("P", "C"),
}
GRADES_5X5X5 = {
    "source_evaluation": ("A", "B", "C", "D", "E"),
    "intelligence_assessment": ("1", "2", "3", "4", "5"),
    "handling_code": ("1", "2", "3", "4", "5"),
}


def entity(kind: str) -> Entity:
    from placeharm.errors import NotFound

    if kind not in ENTITIES:
        raise NotFound(f"no SOC entity {kind!r}; use one of: {', '.join(ENTITIES)}")
    return ENTITIES[kind]


def schema_markdown() -> str:
    """docs/reference/soc-schema.md, generated from ENTITIES (a test keeps the file in step)."""
    lines = [
        "# SOC entity CSV schema",
        "",
        "Generated from `placeharm.soc.schema` (a test checks this file matches it). Import with",
        "`placeharm import KIND FILE [--mapping FILE]`; export with `placeharm export KIND FILE`.",
        "",
        "Every file is UTF-8 CSV with a header row. Dates are `YYYY-MM-DD` (or `DD/MM/YYYY`, or",
        "any one format named in a mapping file). Yes/no columns take true/false, yes/no, Y/N,",
        "1/0 (empty = no). Lists are `;`-separated. Located entities take `latitude` and",
        "`longitude` (WGS84) or `easting` and `northing` (British National Grid). An optional",
        "`synthetic` column (true/false) marks demo data; `placeharm export` writes it.",
        "",
    ]
    for spec in ENTITIES.values():
        key = ", ".join(f"`{k}`" for k in spec.key)
        lines += [f"## {spec.kind}", "", f"{spec.description} Key: {key}."]
        if spec.located:
            lines[-1] += " Located: assigned to every area set."
        lines += ["", "| column | type | required | codes / notes |", "|---|---|---|---|"]
        for f in spec.fields:
            codes = ", ".join(f.codes)
            note = "; ".join(x for x in (codes, f.description) if x)
            lines.append(f"| `{f.name}` | {f.kind} | {'yes' if f.required else ''} | {note} |")
        lines.append("")
    lines += [
        "## Intelligence grading",
        "",
        "3x5x2 (default): source evaluation 1, 2, 3; intelligence assessment A to E; handling "
        "code P or C. 5x5x5 (older reports, `grading_scheme` 5x5x5): source A to E, "
        "intelligence 1 to 5, handling 1 to 5.",
        "",
    ]
    return "\n".join(lines)
