"""Uploads: a multipart body streamed to a private temporary file, never held in memory.

The route checks the session and the role first, so nothing of an anonymous or unauthorised
body is read; RequestGuard has already refused a declared Content-Length over the cap and
counts a chunked body as it arrives (issue 12: an anonymous 200 MB body used to be saved
before the sign-in check).
"""

from __future__ import annotations

import re
import shutil
import tempfile
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from placeharm.audit import Actor
from placeharm.errors import DataError
from placeharm.web.live import Importer

NAME_MAX_BYTES = 120  # of a stored upload's name (file systems allow 255)
FIELD_MAX_BYTES = 1024  # a text field: kind, csrf_token
HEADER_MAX_BYTES = 8192  # one part's headers
MAX_PARTS = 8
_SUFFIX = re.compile(r"(\.[A-Za-z0-9]{1,8}){1,2}$")
DEFAULT_NAME = "upload.csv"


def safe_name(raw: str) -> str:
    """The uploaded file's own base name, fit to store and to show: no folders, no control
    characters, no leading dot, at most NAME_MAX_BYTES of UTF-8 (a longer name keeps its
    start and its extensions, joined by '~')."""
    name = raw.replace("\\", "/").rsplit("/", 1)[-1]
    name = unicodedata.normalize("NFC", "".join(c for c in name if c.isprintable()))
    name = name.strip().lstrip(".").strip()
    if not name:
        return DEFAULT_NAME
    if len(name.encode()) <= NAME_MAX_BYTES:
        return name
    match = _SUFFIX.search(name)
    suffix = match.group(0) if match else ""
    budget = NAME_MAX_BYTES - len(suffix.encode()) - 1
    stem = name[: len(name) - len(suffix)].encode()[:budget].decode("utf-8", "ignore")
    return f"{stem}~{suffix}"


@dataclass
class _Part:
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    header_bytes: int = 0
    field_name: str = ""
    data: bytearray = field(default_factory=bytearray)
    is_file: bool = False


class _Reader:
    """python-multipart callbacks: text fields kept (small), the one file part written to
    `folder` as it arrives (the writes are queued and done off the event loop)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.fields: dict[str, str] = {}
        self.path: Path | None = None
        self.name = ""
        self.handle: IO[bytes] | None = None
        self.pending: list[bytes] = []
        self.parts = 0
        self._part = _Part()
        self._field = b""
        self._value = b""

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self._begin,
            "on_part_data": self._data,
            "on_part_end": self._end,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
        }

    def _begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise DataError(f"the upload form has more than {MAX_PARTS} parts")
        self._part = _Part()

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._grow(end - start)
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._grow(end - start)
        self._value += data[start:end]

    def _grow(self, size: int) -> None:
        self._part.header_bytes += size
        if self._part.header_bytes > HEADER_MAX_BYTES:
            raise DataError("a part of the upload form has over 8 KB of headers")

    def _header_end(self) -> None:
        self._part.headers.append((self._field.lower(), self._value))
        self._field = self._value = b""

    def _headers_finished(self) -> None:
        disposition = dict(self._part.headers).get(b"content-disposition", b"")
        _, options = parse_options_header(disposition)
        self._part.field_name = options.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" not in options:
            return
        if self._part.field_name != "file" or self.path is not None:
            raise DataError("send one file, in the form field 'file'")
        self._part.is_file = True
        self.name = safe_name(options[b"filename"].decode("utf-8", "replace"))
        self.path = self.folder / self.name
        self.handle = self.path.open("xb")

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self._part.is_file:
            self.pending.append(data[start:end])
            return
        self._part.data += data[start:end]
        if len(self._part.data) > FIELD_MAX_BYTES:
            raise DataError(f"the form field {self._part.field_name!r} is too long")

    def _end(self) -> None:
        if not self._part.is_file and self._part.field_name:
            self.fields[self._part.field_name] = self._part.data.decode("utf-8", "replace")

    def write_pending(self) -> None:
        """Write the queued file data (called in a worker thread)."""
        if self.handle is not None:
            for chunk in self.pending:
                self.handle.write(chunk)
        self.pending.clear()

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()


async def receive_upload(request: Request, importer: Importer, actor: Actor) -> dict[str, Any]:
    """Stream the form (fields `kind` and `file`) to a private temporary folder, import the
    file as `actor` (who uploaded: the import log and the audit log), remove the folder
    whatever happens, and return the import's account."""
    _, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if not request.headers.get("content-type", "").startswith("multipart/form-data") or not (
        boundary
    ):
        raise DataError("send the file as a multipart/form-data form (fields kind and file)")
    folder = Path(tempfile.mkdtemp(prefix="placeharm-upload-"))  # mode 0700
    reader = _Reader(folder)
    try:
        parser = MultipartParser(boundary, reader.callbacks())  # type: ignore[arg-type]
        try:
            async for chunk in request.stream():  # RequestGuard counts it against the cap
                parser.write(chunk)
                if reader.pending:
                    await run_in_threadpool(reader.write_pending)
            parser.finalize()
        except FormParserError:
            raise DataError("the upload form is not valid multipart/form-data") from None
        await run_in_threadpool(reader.write_pending)
        reader.close()
        kind = reader.fields.get("kind", "").strip()
        if not kind:
            raise DataError("say what kind of file this is (the form field 'kind')")
        if reader.path is None:
            raise DataError("no file was sent (the form field 'file')")
        return await run_in_threadpool(
            importer.import_upload, kind, reader.path, reader.name, actor
        )
    finally:
        reader.close()
        await run_in_threadpool(shutil.rmtree, folder, True)


# The form the upload route reads itself (it takes no FastAPI form parameters, which would
# read the whole body before the sign-in check), described for the OpenAPI document.
OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["kind", "file"],
                    "properties": {
                        "kind": {
                            "type": "string",
                            "description": "police.uk, or a SOC entity (docs/soc.md)",
                        },
                        "file": {"type": "string", "format": "binary"},
                    },
                }
            }
        },
    },
    "responses": {
        "400": {"description": "The file or form cannot be used; nothing imported"},
        "403": {"description": "Not signed in, not an admin, or the CSRF check failed"},
        "413": {"description": "Over upload_max_mb, or a decompressed size or line limit"},
    },
}
