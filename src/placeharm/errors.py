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


class AuditError(StoreError):
    """The audit log cannot be written: what was asked is refused (HTTP 503)."""


class JustificationRequired(PlaceharmError):
    """The user must state why before this is shown (HTTP 428); `purpose` says for what."""

    def __init__(self, message: str, purpose: str) -> None:
        super().__init__(message)
        self.purpose = purpose


class TooManyAttempts(PlaceharmError):
    """Refused for now: too many recent failures (sign-in throttling); try again later."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class TooLarge(DataError):
    """An upload, a decompressed file or a line is over its configured limit (HTTP 413)."""


class Busy(PlaceharmError):
    """The server is at a configured limit of concurrent work; try again shortly (HTTP 503)."""


class StoreUnavailable(StoreError):
    """The store itself failed (disk full, damaged file, read-only, held by another process):
    no file can be written now, so an ingest stops instead of failing file after file."""
