"""Dataclasses and enums for imports, areas and coverage."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from enum import StrEnum

from placeharm.errors import DataError

# The 14 crime types data.police.uk publishes (https://data.police.uk/about/#columns).
CRIME_TYPES: tuple[str, ...] = (
    "Anti-social behaviour",
    "Bicycle theft",
    "Burglary",
    "Criminal damage and arson",
    "Drugs",
    "Other crime",
    "Other theft",
    "Possession of weapons",
    "Public order",
    "Robbery",
    "Shoplifting",
    "Theft from the person",
    "Vehicle crime",
    "Violence and sexual offences",
)

AREA_SET_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_MONTH_RE = re.compile(r"^(\d{4})-(\d{2})$")


class SourceKind(StrEnum):
    """Which kind of file a batch of rows came from."""

    STREET = "street"
    OUTCOMES = "outcomes"
    STOP_SEARCH = "stop-and-search"
    API = "api"


@dataclass(frozen=True, slots=True)
class QuarantineRow:
    """A row that could not be used: where it was, what it said, and why."""

    source_file: str
    line: int
    raw_text: str
    reason: str


@dataclass(slots=True)
class ImportResult:
    """One file's import account: rows read = inserted + updated + unchanged + quarantined."""

    source_file: str
    source_kind: str
    status: str  # "ok", "refused" or "failed"
    rows_read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    quarantined: int = 0
    no_location: int = 0
    outside_areas: int = 0
    months: tuple[str, ...] = ()
    message: str = ""
    import_id: int | None = None
    quarantine_sample: list[QuarantineRow] = field(default_factory=list)
    # Vintages (issue 13): when the file was published and how that was determined; rows
    # counted unchanged because newer values were held (`stale`: it would have reverted
    # them) or because the crime was first published in an earlier month (`later_sightings`).
    published_at: dt.datetime | None = None
    published_how: str = ""
    vintage: str = ""
    stale: int = 0
    later_sightings: int = 0

    @property
    def ok(self) -> bool:
        """True when the file was imported and every row is accounted for."""
        return self.status == "ok" and self.balanced

    @property
    def balanced(self) -> bool:
        """True when every row read is accounted for."""
        return self.rows_read == self.inserted + self.updated + self.unchanged + self.quarantined


@dataclass(frozen=True, slots=True)
class AreaSetInfo:
    """A named set of areas (lsoa, ward, a force's CHB sites) as held in the store."""

    name: str
    source_file: str
    code_field: str
    name_field: str
    source_crs: str
    feature_count: int
    repaired_count: int
    rejected_count: int
    imported_at: dt.datetime
    assigned: bool


@dataclass(frozen=True, slots=True)
class CoverageRow:
    """Whether a source holds data for one month of one force."""

    source_kind: str
    force: str
    month: str
    covered: bool
    rows: int | None
    source_file: str | None


def check_area_set_name(name: str) -> str:
    """Return the area set name if it is a safe identifier, else raise DataError."""
    if not AREA_SET_NAME_RE.match(name):
        raise DataError(
            f"area set name {name!r} is not allowed: use lower-case letters, digits and "
            "underscores, starting with a letter (e.g. 'ward', 'chb_sites')"
        )
    return name


def parse_month(text: str) -> dt.date:
    """Parse 'YYYY-MM' into the first day of that month."""
    m = _MONTH_RE.match(text.strip())
    # years outside 1900..2199 are typing slips, and year 0 or a period shifted before year 1
    # would fail deep in a query (issue 12: a 500 from `from=0000-01`)
    if not m or not 1 <= int(m.group(2)) <= 12 or not 1900 <= int(m.group(1)) <= 2199:
        raise DataError(
            f"month {text[:20]!r} is not valid: write it as YYYY-MM between 1900-01 and "
            "2199-12, e.g. 2021-01"
        )
    return dt.date(int(m.group(1)), int(m.group(2)), 1)


def shift_month(month: dt.date, months: int) -> dt.date:
    """The first day of the month `months` after (or before, if negative) `month`."""
    index = month.year * 12 + month.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def month_end(month: dt.date) -> dt.date:
    """The last day of `month`'s month."""
    return shift_month(month, 1) - dt.timedelta(days=1)


def month_range(first: dt.date, last: dt.date) -> list[dt.date]:
    """Every month from first to last inclusive."""
    months: list[dt.date] = []
    y, m = first.year, first.month
    while (y, m) <= (last.year, last.month):
        months.append(dt.date(y, m, 1))
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return months
