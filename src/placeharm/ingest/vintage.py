"""When a police.uk file was published: its vintage, from the file's own evidence.

The same month downloaded at different times differs (outcomes move on), so which of two
copies is newer decides what the store holds. A police.uk download carries little evidence
of its date: no header line, no publication field. What there is, best first:

- `stated`: the operator says so (`placeharm ingest --published YYYY-MM-DD`); always wins.
- `gzip-mtime`: a gzip member header's MTIME, the modification time of the CSV that was
  compressed (gzip copies it), i.e. when police.uk built it if it was gzipped straight from
  the download; 0 means absent.
- `file-mtime`: the file's own modification time: `unzip` restores the archive's time, but a
  copy without `-p` resets it to the copy's time.
- `archive` / `latest-month`: a file holding month M cannot have been published before M
  ended; in a police.uk archive (folders `YYYY-MM/` side by side) none of its files before
  the archive's latest month ended. A timestamp earlier than that floor, or in the future,
  is wrong (a clock reset, a touched file) and the floor is used instead.

See docs/ingest.md, "Vintages and derived state".
"""

from __future__ import annotations

import datetime as dt
import re
import struct
from dataclasses import dataclass
from pathlib import Path

# Tie-break between two vintages of the same day: a stated date beats any guess.
_RANK = {"latest-month": 1, "archive": 2, "file-mtime": 3, "gzip-mtime": 4, "stated": 5}
_MONTH_DIR = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


@dataclass(frozen=True, slots=True)
class Vintage:
    """A file's publication time (UTC) and how it was determined, with its sort key."""

    published_at: dt.datetime
    how: str
    key: str


def vintage_key(published_at: dt.datetime, how: str, sha256: str) -> str:
    """Sortable text: day, then how sure (stated first), then time of day, then the file's
    digest, so two different files never tie and the order is the same whatever order the
    files arrive in."""
    return f"{published_at:%Y-%m-%d}|{_RANK[how]}|{published_at:%H:%M:%S}|{sha256[:16] or '0' * 16}"


def _month_after(month: str) -> dt.datetime:
    y, m = int(month[:4]), int(month[5:7])
    y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return dt.datetime(y, m, 1)


def _gzip_mtime(path: Path) -> dt.datetime | None:
    try:
        with path.open("rb") as handle:
            head = handle.read(10)
    except OSError:
        return None
    if len(head) < 10 or head[:2] != b"\x1f\x8b":
        return None
    (stamp,) = struct.unpack("<I", head[4:8])
    return dt.datetime.fromtimestamp(stamp, dt.UTC).replace(tzinfo=None) if stamp else None


def _file_mtime(path: Path) -> dt.datetime | None:
    try:
        stamp = path.stat().st_mtime
    except OSError:
        return None
    return dt.datetime.fromtimestamp(int(stamp), dt.UTC).replace(tzinfo=None)


def archive_latest_month(path: Path) -> str | None:
    """The latest month of the police.uk archive holding `path` (its folder is `YYYY-MM`
    beside other `YYYY-MM` folders), or None when the file is not in such a layout."""
    folder = path.parent
    if not _MONTH_DIR.match(folder.name):
        return None
    try:
        months = [
            p.name for p in folder.parent.iterdir() if p.is_dir() and _MONTH_DIR.match(p.name)
        ]
    except OSError:
        return None
    return max(months) if months else None


def file_vintage(
    path: Path,
    latest_month: str | None,
    sha256: str,
    stated: dt.date | None = None,
    now: dt.datetime | None = None,
) -> Vintage:
    """The vintage of one file. `latest_month` (YYYY-MM) is the latest month it holds."""
    if stated is not None:
        published = dt.datetime(stated.year, stated.month, stated.day)
        return Vintage(published, "stated", vintage_key(published, "stated", sha256))
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    floor, floor_how = dt.datetime(2010, 12, 1), "latest-month"
    if latest_month:
        floor = _month_after(latest_month)
    archive = archive_latest_month(path)
    if archive and _month_after(archive) > floor:
        floor, floor_how = _month_after(archive), "archive"
    gz = _gzip_mtime(path)
    stamp, how = (gz, "gzip-mtime") if gz is not None else (_file_mtime(path), "file-mtime")
    if stamp is not None and floor <= stamp <= now + dt.timedelta(days=1):
        return Vintage(stamp, how, vintage_key(stamp, how, sha256))
    return Vintage(floor, floor_how, vintage_key(floor, floor_how, sha256))
