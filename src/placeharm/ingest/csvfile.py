"""Read a CSV file into string columns without losing a line.

Every data line ends up either in the returned frame (with its line number in `_line`) or in
the quarantine with its raw text and a reason. The fast path is vectorised (numpy + Arrow +
polars); a file with records that span lines or with bytes that are not UTF-8 takes the slow
path through the standard csv module, which tracks lines exactly.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import polars as pl
from isal import isal_zlib

from placeharm.errors import DataError, TooLarge
from placeharm.model import QuarantineRow

LINE_COL = "_line"
_GZIP_MAGIC = b"\x1f\x8b"
_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = {b"\xff\xfe": "utf-16-le", b"\xfe\xff": "utf-16-be"}
# What every quarantine reason ends with: a police.uk download cannot be "fixed" by its user,
# so the reason says what happened to the row (issue 13).
HELD_SUFFIX = "; the row is kept out of the figures and held in quarantine for review"


def held(problem: str, own_file_fix: str = "") -> str:
    """A quarantine reason: what is wrong, what happens to the row and, where the user can act
    on it (a file they exported or edited themselves), what to change."""
    fix = f"; if you exported or edited this file yourself, {own_file_fix}" if own_file_fix else ""
    return problem + HELD_SUFFIX + fix


def file_label(path: Path) -> str:
    """The path as printable text: bytes of a file name that are not UTF-8 (a name made on
    another system) shown as \\xNN escapes, so messages, logs and the store can hold it."""
    return os.fsencode(path).decode("utf-8", errors="backslashreplace")


# isal's stub types its error as an instance; at run time it is the exception class.
_ISAL_ERROR: type[Exception] = isal_zlib.error  # type: ignore[assignment]


@dataclass(slots=True)
class RawTable:
    """String columns of the usable rows, plus what was quarantined on the way."""

    header: tuple[str, ...]
    frame: pl.DataFrame  # all columns pl.String, plus LINE_COL (Int64)
    quarantine: list[QuarantineRow]
    rows_read: int
    # The exact text of the usable records whose fields joined by commas are not their line
    # (quoted fields, records over several lines), by line: the quarantine keeps whole rows.
    raw_text: dict[int, str] = field(default_factory=dict)

    def text_of(self, line: int, joined: str) -> str:
        """The raw text of the record at `line`, given its fields joined by commas."""
        return self.raw_text.get(line, joined)


KB = 1 << 10
MB = 1 << 20
_CHUNK = 1 << 20  # compressed bytes read at a time


@dataclass(frozen=True, slots=True)
class ReadLimits:
    """Bounds on one imported file, so a hostile file costs bounded memory and time (issue 12:
    a 1 MB gzip bomb took 2 GB, a 50 MB single-line file was a server error). The defaults
    match the settings `max_decompressed_mb` and `max_line_kb`."""

    max_bytes: int = 256 * MB  # the file's size once decompressed
    max_line_bytes: int = 1 * MB  # one line of a CSV file

    @classmethod
    def of(cls, max_decompressed_mb: int, max_line_kb: int) -> ReadLimits:
        return cls(max_decompressed_mb * MB, max_line_kb * KB)


DEFAULT_LIMITS = ReadLimits()


def read_bytes(path: Path, limits: ReadLimits = DEFAULT_LIMITS) -> bytes:
    """Return the file's bytes, gunzipped when it is gzip (by content, not by name).

    Never more than `limits.max_bytes`: a larger plain file is refused before it is read, a
    gzip stream as soon as its output passes the limit (a bomb costs at most the limit).
    """
    try:
        with path.open("rb") as handle:
            first = handle.read(2)
            if first == _GZIP_MAGIC:
                try:
                    return _gunzip(handle, first, limits.max_bytes, path)
                except (OSError, EOFError, zlib.error, _ISAL_ERROR) as exc:
                    raise DataError(
                        f"{file_label(path)} looks gzipped but cannot be decompressed ({exc}); "
                        "download it again"
                    ) from exc
            size = os.fstat(handle.fileno()).st_size
            if size > limits.max_bytes:
                raise _too_large(path, limits.max_bytes, "")
            return first + handle.read()
    except OSError as exc:
        raise DataError(f"cannot read {file_label(path)}: {exc.strerror}; check the path") from exc


@dataclass(slots=True)
class Snapshot:
    """A file read once: its bytes (gunzipped when gzip) and the SHA-256 of the bytes on disk."""

    data: bytes
    sha256: str

    def release(self) -> bytes:
        """Hand the bytes over and keep none: passed straight to a parser, they are freed as
        soon as the parser drops them (a large file's bytes held to the end add to peak
        memory)."""
        data, self.data = self.data, b""
        return data


def read_snapshot(path: Path, limits: ReadLimits = DEFAULT_LIMITS) -> Snapshot:
    """Read a file's bytes ONCE, hash those bytes and return them for parsing (issue 13: the
    hash and the parse were two reads, so a file still being copied in got the hash of one
    version and the rows of another, and claimed its month).

    A file whose size or modification time changed while it was read is refused: import it
    again once the copy has finished. Bounded like `read_bytes`: a file (gzip or plain) over
    `limits.max_bytes` on disk is refused before it is read; gzip output stops at the limit.
    """
    try:
        with path.open("rb") as handle:
            before = os.fstat(handle.fileno())
            if before.st_size > limits.max_bytes:
                raise _too_large(path, limits.max_bytes, "")
            raw = handle.read(limits.max_bytes + 1)
            after = os.fstat(handle.fileno())
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror}; check the path") from exc
    if (
        len(raw) != before.st_size
        or after.st_size != before.st_size
        or after.st_mtime_ns != before.st_mtime_ns
    ):
        raise DataError(
            f"{path} changed while it was read ({before.st_size:,} bytes when opened, "
            f"{max(len(raw), after.st_size):,} bytes after); nothing was imported. Import it "
            "again once it has been copied or downloaded in full"
        )
    return snapshot_of(raw, path, limits)


def snapshot_of(raw: bytes, path: Path, limits: ReadLimits = DEFAULT_LIMITS) -> Snapshot:
    """A file's bytes as read (`raw`), hashed and gunzipped when gzip, bounded like
    `read_snapshot` (which reads them; the Spark job gets them from Spark's reader)."""
    if len(raw) > limits.max_bytes:
        raise _too_large(path, limits.max_bytes, "")
    sha256 = hashlib.sha256(raw).hexdigest()
    if not raw.startswith(_GZIP_MAGIC):
        return Snapshot(raw, sha256)
    stream = io.BytesIO(raw)  # shares `raw`'s buffer: no copy
    stream.seek(len(_GZIP_MAGIC))
    try:
        data = _gunzip(stream, _GZIP_MAGIC, limits.max_bytes, path)
    except (OSError, EOFError, zlib.error, _ISAL_ERROR) as exc:
        raise DataError(
            f"{path} looks gzipped but cannot be decompressed ({exc}); download it again"
        ) from exc
    return Snapshot(data, sha256)


def _too_large(path: Path, limit: int, how: str) -> TooLarge:
    return TooLarge(
        f"{file_label(path)} is over {limit / MB:g} MB{how}, the most one imported file may hold "
        "(setting max_decompressed_mb); nothing was imported. Split the file, or raise the "
        "setting if it is genuine"
    )


def _gunzip(handle: BinaryIO, first: bytes, limit: int, path: Path) -> bytes:
    """Decompress every gzip member, read from `handle` a chunk at a time, stopping as soon
    as the output passes `limit` bytes.

    ISA-L's inflate (isal) is ~1.9x faster than zlib's on the police.uk files (Northumbria's
    67 files: 0.23 s against 0.44 s CPU); same stream format, same errors.
    """
    parts: list[bytes] = []
    size = 0
    inflater = isal_zlib.decompressobj(wbits=31)
    in_member = True
    data = first + handle.read(_CHUNK)
    while True:
        if not data:
            data = handle.read(_CHUNK)
            if not data:
                break
        if not in_member:
            data = data.lstrip(b"\x00")  # padding after a member
            if not data:
                continue
            inflater = isal_zlib.decompressobj(wbits=31)
            in_member = True
        # at most one byte past the limit: enough to know the file is over it
        out = inflater.decompress(data, limit + 1 - size)
        size += len(out)
        if size > limit:
            # freed now, not when the exception is: its traceback keeps this frame alive
            parts.clear()
            del out
            raise _too_large(path, limit, " once decompressed (a gzip bomb?)")
        parts.append(out)
        if inflater.eof:
            data, in_member = inflater.unused_data, False
        else:
            data = inflater.unconsumed_tail
    if in_member:
        raise EOFError("the gzip stream ends early (truncated download?)")
    return b"".join(parts)


def check_line_lengths(data: bytes, path: Path, max_line_bytes: int) -> None:
    """Refuse a CSV file with a line over `max_line_bytes` (a 50 MB single-line file was a
    server error in the CSV readers): one pass, no copy, a few `rfind`s per `max_line_bytes`.
    """
    size = len(data)
    pos = 0
    # a file with CR-only line ends (no LF at all) is read as such by split_header
    newline = b"\r" if size > max_line_bytes and b"\n" not in data else b"\n"
    while size - pos > max_line_bytes:
        # the last line end within the next max_line_bytes + 1 bytes: none means a line
        # from `pos` is longer than the limit
        end = data.rfind(newline, pos, pos + max_line_bytes + 1)
        if end < 0:
            line = data.count(newline, 0, pos) + 1
            raise TooLarge(
                f"{file_label(path)}: line {line} is longer than {max_line_bytes / KB:g} KB "
                "(setting max_line_kb); no police.uk or SOC record comes near that, so the file "
                "was refused whole, nothing imported. Is it a CSV file?"
            )
        pos = end + 1


def split_header(data: bytes, path: Path) -> tuple[tuple[str, ...], bytes]:
    """Return the header's column names and the bytes after the header line, as UTF-8 with
    LF or CRLF line ends.

    Reads what a police.uk file re-saved by a spreadsheet or editor can become (UTF-8 with a
    byte-order mark, UTF-16 with or without one, CR-only line ends) and refuses, with what to
    do, what cannot be read safely: a header line broken by a stray carriage return, a file
    that repeats its header (two files joined into one), a header that is not CSV text.
    """
    label = file_label(path)
    data = _as_utf8(data, label)
    if b"\n" not in data and b"\r" in data:
        # CR-only line ends (classic Mac, "CSV (Macintosh)" in Excel): no LF anywhere, so
        # every CR ends a line, inside quotes too.
        data = data.replace(b"\r", b"\n")
    end = data.find(b"\n")
    head, body = (data, b"") if end < 0 else (data[:end], data[end + 1 :])
    head = head.rstrip(b"\r")  # CRLF, or CRCRLF (a CRLF file's header saved on Windows again)
    if b"\r" in head:
        head, body = _split_at_stray_cr(head, body, label)
    try:
        head_text = head.decode("utf-8")
    except UnicodeDecodeError:
        raise DataError(
            f"{label}: the header line is not UTF-8 or UTF-16 text, so nothing was imported; "
            "is this a CSV file? If a spreadsheet saved it, save it again as CSV UTF-8"
        ) from None
    if not head_text.strip():
        raise DataError(f"{label}: the file is empty or has no header line; nothing was imported")
    if len(head) > _HEADER_MAX:
        raise DataError(
            f"{label}: the header line is {len(head):,} bytes long, far more than any police.uk "
            "header; nothing was imported. Is this a CSV file?"
        )
    try:
        header = tuple(c.strip() for c in next(csv.reader([head_text])))
    except csv.Error as exc:
        raise DataError(
            f"{label}: the header line is not CSV ({exc}); nothing was imported. "
            "Is this a CSV file?"
        ) from None
    _refuse_repeated_header(head, body, label)
    return header, body


# A police.uk header is under 300 bytes; 64 KiB leaves room for any CSV export while staying
# under the csv module's 128 KiB field limit (a longer header field was a traceback).
_HEADER_MAX = 64 * KB


def _as_utf8(data: bytes, label: str) -> bytes:
    """The data as UTF-8 without a byte-order mark: UTF-16 (a BOM, or NUL bytes every other
    byte at the start, as Excel's "Unicode text" writes) is decoded; anything else is left as
    it is (lines that are not UTF-8 are quarantined one by one later)."""
    if data.startswith(_BOM):
        return data[len(_BOM) :]
    encoding = _UTF16_BOMS.get(data[:2])
    start = 2 if encoding else 0
    if encoding is None and len(data) >= 4:
        # A police.uk header starts with ASCII letters: in UTF-16 every other byte is NUL.
        even, odd = data[0:8:2], data[1:8:2]
        if not any(even) and all(odd):
            encoding = "utf-16-be"
        elif all(even) and not any(odd):
            encoding = "utf-16-le"
    if encoding is None:
        return data
    try:
        return data[start:].decode(encoding).encode("utf-8")
    except UnicodeError as exc:
        where = f" at byte {exc.start + start:,}" if isinstance(exc, UnicodeDecodeError) else ""
        raise DataError(
            f"{label}: the file is UTF-16 text but is damaged{where} (a truncated copy?), so "
            "nothing was imported; download it again, or save it again as CSV UTF-8"
        ) from None


def _split_at_stray_cr(head: bytes, body: bytes, label: str) -> tuple[bytes, bytes]:
    """A carriage return inside the first line: the header's own line end when what follows
    it has as many fields as the header (an edited header saved with a CR-only line end);
    otherwise the header itself is broken and the file is refused."""
    cr = head.find(b"\r")
    first, rest = head[:cr], head[cr + 1 :]
    if rest and b"\r" not in rest and rest.count(b",") == first.count(b","):
        return first, rest + b"\n" + body
    after = first.rsplit(b",", 1)[-1].decode("utf-8", errors="replace").strip()
    raise DataError(
        f"{label}: the header line is broken by a stray carriage return (CR) after "
        f"'{after[:40]}', so its columns cannot be trusted and nothing was imported. The file "
        "was edited after download: download it again, or remove the stray line break"
    )


def _refuse_repeated_header(head: bytes, body: bytes, label: str) -> None:
    """Refuse a file in which a line repeats the header (`cat a.csv a.csv`): its rows without
    an ID (anti-social behaviour, stop and search) would silently count twice."""
    at = body.find(head)
    while at >= 0:
        line_start = body.rfind(b"\n", 0, at) + 1
        stop = at + len(head)
        if body[line_start:at] in (b"", _BOM) and body[stop : stop + 1] in (b"", b"\n", b"\r"):
            line = body.count(b"\n", 0, at) + 2
            raise DataError(
                f"{label}: line {line} repeats the header line, so this looks like two files "
                "joined into one; nothing was imported (rows without an ID would count twice). "
                "Import each file on its own"
            )
        at = body.find(head, at + 1)


def read_table(path: Path, header: tuple[str, ...], body: bytes) -> RawTable:
    """Split `body` (the bytes after the header) into rows of `header`'s columns.

    Record boundaries and field counts come from one vectorised pass over the bytes: a
    newline or comma counts only outside double quotes (quote parity), so quoted fields
    with commas or line breaks are handled exactly and each record keeps its line number.
    """
    source = file_label(path)
    if not body.lstrip(b"\r\n"):  # lstrip: no copy of a body that starts with data
        return RawTable(header, _empty(header), [], 0)
    try:
        if not body.isascii():  # ASCII is UTF-8; isascii is ~20x cheaper than decoding
            body.decode("utf-8")
    except UnicodeDecodeError:
        return _slow_path(source, header, body)
    if b"\x00" in body:  # lines with a NUL are quarantined one by one, as bad bytes are
        return _slow_path(source, header, body)
    size = len(body)
    buf = np.frombuffer(body, dtype=np.uint8)
    quotes = np.flatnonzero(buf == 34)
    newlines = np.flatnonzero(buf == 10)
    commas = np.flatnonzero(buf == 44)
    if len(quotes) and not _quotes_are_structural(buf, quotes):
        return _slow_path(source, header, body)  # a quote inside an unquoted field
    if len(quotes):
        # A newline or comma is inside a quoted field when an odd number of quotes precede it.
        newline_in = (np.searchsorted(quotes, newlines) & 1).astype(bool)
        commas = commas[(np.searchsorted(quotes, commas) & 1) == 0]
        ends = newlines[~newline_in]
        unclosed = len(quotes) % 2 == 1
    else:
        ends, unclosed = newlines, False
    if len(ends) == 0 or ends[-1] != size - 1:
        ends = np.append(ends, size)  # last record has no newline, or an open quote
    starts = np.concatenate([np.zeros(1, dtype=np.int64), ends[:-1] + 1])
    stops = ends.copy()
    crlf = (stops > starts) & (buf[np.maximum(stops - 1, 0)] == 13)
    stops[crlf] -= 1
    nonblank = stops > starts
    starts, stops, ends = starts[nonblank], stops[nonblank], ends[nonblank]
    fields = np.searchsorted(commas, stops) - np.searchsorted(commas, starts) + 1
    lines = np.searchsorted(newlines, starts) + 2
    expected = len(header)
    bad = np.flatnonzero(fields != expected)
    quarantine = [
        QuarantineRow(
            source,
            int(lines[i]),
            body[starts[i] : stops[i]].decode("utf-8"),
            _wrong_columns(int(fields[i]), expected, unclosed and ends[i] == size),
        )
        for i in bad
    ]
    rows_read = len(starts)
    good = fields == expected
    n_good = int(good.sum())
    if n_good == 0:
        return RawTable(header, _empty(header), quarantine, rows_read)
    if n_good == rows_read and bool(nonblank.all()):
        buffer = body
    else:
        buffer = b"\n".join(body[a:b] for a, b in zip(starts[good], stops[good], strict=True))
    try:
        parsed = pl.read_csv(
            io.BytesIO(buffer),
            has_header=False,
            new_columns=list(header),
            infer_schema=False,
            quote_char='"',
        )
    except pl.exceptions.PolarsError:
        return _slow_path(source, header, body)
    if parsed.height != n_good:  # a record polars splits differently: take the exact path
        return _slow_path(source, header, body)
    parsed = parsed.with_columns(pl.Series(LINE_COL, lines[good], dtype=pl.Int64))
    raw_text: dict[int, str] = {}
    if len(quotes):
        # the records with a quote are not their fields joined by commas: keep their text
        quoted = np.flatnonzero(
            good & (np.searchsorted(quotes, stops) > np.searchsorted(quotes, starts))
        )
        raw_text = {int(lines[i]): body[starts[i] : stops[i]].decode("utf-8") for i in quoted}
    return RawTable(header, parsed, quarantine, rows_read, raw_text)


def _wrong_columns(found: int, expected: int, unclosed: bool) -> str:
    if unclosed:
        return held(
            f"wrong number of columns: {found} instead of {expected} (a quote is never closed, "
            "so every line after it was read into one field)",
            "close the quote",
        )
    return held(
        f"wrong number of columns: {found} instead of {expected}",
        "put double quotes around every field that contains a comma",
    )


def _quotes_are_structural(buf: np.ndarray, quotes: np.ndarray) -> bool:
    """True when every quote is used as RFC 4180 intends.

    Outside a quoted field (an even number of quotes before it) a quote must open a field
    (follow a comma or line start) or be the second of a doubled quote; inside one it must
    close the field (precede a comma or line end) or be doubled. A literal quote in an
    unquoted field (`On or near 12"`) fails this, and the file takes the slow path, where
    the csv module reads it as text.
    """
    size = len(buf)
    before = np.where(quotes > 0, buf[np.maximum(quotes - 1, 0)], 10)
    after = np.where(quotes < size - 1, buf[np.minimum(quotes + 1, size - 1)], 10)
    inside = (np.arange(len(quotes)) & 1).astype(bool)  # parity of quotes before each one
    opens = ~inside & ((before == 44) | (before == 10) | (before == 34))
    closes = inside & ((after == 44) | (after == 10) | (after == 13) | (after == 34))
    return bool((opens | closes).all())


def _empty(header: tuple[str, ...]) -> pl.DataFrame:
    schema: dict[str, type[pl.DataType]] = {c: pl.String for c in header}
    schema[LINE_COL] = pl.Int64
    return pl.DataFrame(schema=schema)


def _slow_path(source: str, header: tuple[str, ...], body: bytes) -> RawTable:
    """Line-exact reading with the csv module, for the files the fast path cannot take.

    A quote inside an unquoted field is plain text (as in the csv module and RFC 4180
    readers); a line that is not UTF-8, or holds a NUL, is quarantined on its own (its raw
    text shows the bad bytes as \\xNN escapes).
    """
    quarantine: list[QuarantineRow] = []
    physical = body.split(b"\n")
    if physical and physical[-1] == b"":
        physical.pop()
    fed: list[tuple[int, str]] = []  # (file line, text) of every line given to the reader

    def feed() -> Iterator[str]:
        for i, raw in enumerate(physical):
            line_no = i + 2
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                bad_byte = raw[exc.start : exc.start + 1].hex()
                quarantine.append(
                    QuarantineRow(
                        source,
                        line_no,
                        raw.decode("utf-8", errors="backslashreplace")
                        .rstrip("\r")
                        .replace("\x00", "\\x00"),
                        held(
                            f"bad encoding: byte 0x{bad_byte} at column {exc.start + 1} is not "
                            "UTF-8 text",
                            "save it as CSV UTF-8",
                        ),
                    )
                )
                continue
            if "\x00" in text:
                # no store can keep a NUL in text (PostgreSQL refuses it), and no police.uk
                # field holds one: the line is damaged, and is quarantined as bad bytes are
                quarantine.append(
                    QuarantineRow(
                        source,
                        line_no,
                        text.rstrip("\r").replace("\x00", "\\x00"),
                        held(
                            f"bad character: a NUL (0x00) at column {text.index(chr(0)) + 1} "
                            "is not text",
                            "remove it, or download the file again",
                        ),
                    )
                )
                continue
            fed.append((line_no, text))
            yield text + "\n"  # the csv module keeps a CR inside quotes, as the fast path does

    expected = len(header)
    rows: list[list[str]] = []
    row_lines: list[int] = []
    raw_text: dict[int, str] = {}
    rows_read = 0
    reader = csv.reader(feed(), strict=False)
    while True:
        consumed = reader.line_num
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            record = None
            reason = held(f"bad CSV: {exc}", "check the quoting of this line")
        span = fed[consumed : reader.line_num]
        if record == []:
            continue  # a blank line is not a row
        rows_read += 1
        first_line = span[0][0] if span else (fed[-1][0] if fed else 2)
        if (
            record is not None
            and len(span) > 1
            and reader.line_num == len(fed)
            and sum(text.count('"') for _, text in span) % 2 == 1
        ):
            # strict=False reads an unclosed quote to the end of the file: refuse the record.
            record = None
            reason = held(
                "a quote is never closed, so every line after it was read into one field",
                "close the quote",
            )
        if record is None or len(record) != expected:
            if record is not None:
                reason = _wrong_columns(len(record), expected, False)
            raw = _lines_as_read(physical, span)
            quarantine.append(QuarantineRow(source, first_line, raw, reason))
            continue
        rows.append(record)
        row_lines.append(first_line)
        as_read = _lines_as_read(physical, span)
        if as_read != ",".join(record):
            raw_text[first_line] = as_read
    rows_read += len(physical) - len(fed)  # the lines that are not UTF-8, one row each
    quarantine.sort(key=lambda q: q.line)
    if not rows:
        return RawTable(header, _empty(header), quarantine, rows_read)
    columns = {name: [r[i] or None for r in rows] for i, name in enumerate(header)}
    frame = pl.DataFrame(columns, schema=dict.fromkeys(header, pl.String)).with_columns(
        pl.Series(LINE_COL, row_lines, dtype=pl.Int64)
    )
    return RawTable(header, frame, quarantine, rows_read, raw_text)


def _lines_as_read(physical: list[bytes], span: list[tuple[int, str]]) -> str:
    """The file's text from the first to the last line of a record: a line that is not UTF-8
    inside it (quarantined on its own too) is kept, with its bad bytes as \\xNN escapes."""
    if not span:
        return ""
    first, last = span[0][0], span[-1][0]
    return "\n".join(  # a NUL shown as \x00 too (no text in the store holds one)
        line.decode("utf-8", errors="backslashreplace").rstrip("\r").replace("\x00", "\\x00")
        for line in physical[first - 2 : last - 1]
    )
