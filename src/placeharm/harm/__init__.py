"""Harm indices (ONS CSS, CCHI, custom) and how records are weighted."""

from placeharm.harm.indices import (
    DEFAULT_INDEX,
    HarmIndex,
    builtin_index,
    custom_index,
    force_scopes,
    list_indices,
    load_index,
    weigh,
)

__all__ = [
    "DEFAULT_INDEX",
    "HarmIndex",
    "builtin_index",
    "custom_index",
    "force_scopes",
    "list_indices",
    "load_index",
    "weigh",
]
