"""The exception hierarchy: one base, a few kinds, messages written for whoever reads them."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


class PlaceharmError(Exception):
    """Base of every error placeharm raises on purpose."""


class DataError(PlaceharmError):
    """Input data that cannot be used as it stands (wrong header, unreadable file)."""

    # the import-log entry that records this refusal, once one is written (the drop folder
    # then names it instead of writing a second)
    import_id: int | None = None


class NotFound(PlaceharmError):
    """Something asked for by name does not exist (an area set, a file)."""


class UnknownArea(NotFound):
    """An area code no area set holds. The message (the CLI's) says how to list the areas;
    a web page words it for its reader instead (services/labels.area_not_found), as no page
    gives command-line advice (issue 15)."""

    def __init__(self, by: str, codes: list[str], message: str) -> None:
        self.by = by
        self.codes = codes
        super().__init__(message)


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


class ImportFailed(DataError):
    """A file could not be imported because of a failure placeharm did not foresee (a native
    library's panic, say): nothing of it was written. The original is the `__cause__`."""


class Unexpected(PlaceharmError):
    """A failure placeharm did not foresee, raised by the library API in place of the
    original (its `__cause__`, with the traceback): please report it."""


def is_fatal(exc: BaseException) -> bool:
    """The exceptions no boundary may swallow: the user or the interpreter ending the run."""
    # CancelledError: an asyncio task (a request whose client went away) being cancelled
    return isinstance(exc, (KeyboardInterrupt, SystemExit, GeneratorExit, asyncio.CancelledError))


def describe(exc: BaseException, limit: int = 300) -> str:
    """An unexpected failure in one line for a message: its kind and the first line of what
    it says, printable and bounded (never a traceback)."""
    lines = str(exc).strip().splitlines()
    text = "".join(c if c.isprintable() else "?" for c in (lines[0] if lines else ""))
    if len(text) > limit:
        text = text[:limit] + "…"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def boundary(fn: Callable[P, R]) -> Callable[P, R]:
    """`fn` as a library entry point: it raises PlaceharmError subclasses only. Anything else
    (a native library's panic, a bug) becomes `Unexpected`, the original its `__cause__`;
    KeyboardInterrupt and SystemExit pass through."""

    @functools.wraps(fn)
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except PlaceharmError:
            raise
        except BaseException as exc:
            if is_fatal(exc):
                raise
            raise Unexpected(
                f"{fn.__name__} stopped: an unexpected failure ({describe(exc)}). What was "
                "committed before it is kept (each file is one transaction); please report it "
                "with the traceback of this error's cause"
            ) from exc

    return call


class StoreUnavailable(StoreError):
    """The store itself failed (disk full, damaged file, read-only, held by another process):
    no file can be written now, so an ingest stops instead of failing file after file."""


class StoreClosed(StoreError):
    """A store object was used after `close()`: it never opens a connection again (open the
    store anew instead). Both engines raise it."""


def store_closed(path: str) -> StoreClosed:
    """The error for a use of the store at `path` (as messages name it) after `close()`."""
    return StoreClosed(f"the store {path} was closed and cannot be used again; open it anew")
