"""Which files the process opens while a test watches (PEP 578 audit events)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class Opens:
    """Records every file opened in this process (any thread) while watching, so a test can
    show that a request opened no file it named."""

    def __init__(self) -> None:
        self.armed = False
        self.paths: list[str] = []
        sys.addaudithook(self._hook)

    def _hook(self, event: str, args: tuple[Any, ...]) -> None:
        if self.armed and event == "open" and isinstance(args[0], str | bytes | Path):
            self.paths.append(str(args[0]))

    @contextmanager
    def watching(self) -> Iterator[list[str]]:
        self.paths = []
        self.armed = True
        try:
            yield self.paths
        finally:
            self.armed = False


OPENS = Opens()  # one hook per test process: audit hooks cannot be removed
