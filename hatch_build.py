"""Wheel build hook: capture the git commit the wheel is built from into
placeharm/_build.json, so an installed placeharm (the offline bundle, issue 18) can say which
commit it is without git or a checkout. Editable installs (make setup) read the checkout's git
files instead (placeharm/version.py). PLACEHARM_BUILD_COMMIT names the commit when the source
is not a git checkout."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


def _git(root: str, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", root, *args], capture_output=True, text=True, timeout=30, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


class CustomBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel" or version == "editable":
            return
        commit = os.environ.get("PLACEHARM_BUILD_COMMIT") or _git(self.root, "rev-parse", "HEAD")
        status = (
            None
            if os.environ.get("PLACEHARM_BUILD_COMMIT")
            else _git(self.root, "status", "--porcelain", "--untracked-files=no")
        )
        info = {"commit": commit, "dirty": bool(status) if status is not None else None}
        folder = Path(tempfile.mkdtemp(prefix="placeharm-build-"))
        path = folder / "_build.json"
        path.write_text(json.dumps(info) + "\n")
        build_data["force_include"][str(path)] = "placeharm/_build.json"
