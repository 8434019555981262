"""Records and vocabularies shared by every layer; no I/O."""

from placeharm.model.records import (
    AREA_SET_NAME_RE,
    CRIME_TYPES,
    AreaSetInfo,
    CoverageRow,
    ImportResult,
    QuarantineRow,
    SourceKind,
    check_area_set_name,
    month_end,
    month_range,
    parse_month,
    shift_month,
)

__all__ = [
    "AREA_SET_NAME_RE",
    "CRIME_TYPES",
    "AreaSetInfo",
    "CoverageRow",
    "ImportResult",
    "QuarantineRow",
    "SourceKind",
    "check_area_set_name",
    "month_end",
    "month_range",
    "parse_month",
    "shift_month",
]
