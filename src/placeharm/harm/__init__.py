"""Harm indices (ONS CSS, CCHI, custom) and how records are weighted."""

from placeharm.harm.indices import (
    DEFAULT_INDEX,
    HarmIndex,
    UnknownIndex,
    builtin_index,
    canonical_spec,
    check_index_name,
    custom_index,
    force_scopes,
    list_indices,
    load_index,
    parse_index_file,
    read_index_file,
    shipped_specs,
    unknown_index_message,
    weigh,
)

__all__ = [
    "DEFAULT_INDEX",
    "HarmIndex",
    "UnknownIndex",
    "builtin_index",
    "canonical_spec",
    "check_index_name",
    "custom_index",
    "force_scopes",
    "list_indices",
    "load_index",
    "parse_index_file",
    "read_index_file",
    "shipped_specs",
    "unknown_index_message",
    "weigh",
]
