"""The exception hierarchy: one base, a few kinds, messages written for whoever reads them."""

from __future__ import annotations


class PlaceharmError(Exception):
    """Base of every error placeharm raises on purpose."""


class DataError(PlaceharmError):
    """Input data that cannot be used as it stands (wrong header, unreadable file)."""


class NotFound(PlaceharmError):
    """Something asked for by name does not exist (an area set, a file)."""


class PermissionDenied(PlaceharmError):
    """The caller may not see or do this."""


class ConfigError(PlaceharmError):
    """A setting or configuration file is wrong."""


class StoreError(PlaceharmError):
    """The store cannot be opened, migrated or written."""


class TooLarge(DataError):
    """An upload, a decompressed file or a line is over its configured limit (HTTP 413)."""


class Busy(PlaceharmError):
    """The server is at a configured limit of concurrent work; try again shortly (HTTP 503)."""
