"""Which placeharm this is: its version, the git commit it was built from and the store
schema it writes (issue 18), for `placeharm --version`, `placeharm check` and the admin page.

The commit is captured once: a wheel carries it in ``_build.json`` (written at build time by
``hatch_build.py``); a checkout (an editable install, ``make setup``) reads it from the git
files beside the package, without running git. Nothing here runs a subprocess.
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
import platform
from dataclasses import asdict, dataclass
from pathlib import Path

from placeharm.store.migrations import LATEST_VERSION

_PACKAGE = Path(__file__).resolve().parent
_BUILD_FILE = _PACKAGE / "_build.json"


@dataclass(frozen=True)
class Installation:
    """What an administrator needs to say which placeharm runs on which store."""

    version: str
    commit: str | None  # full hash, or None when neither the build nor a checkout says
    commit_from: str  # "build" (captured into the wheel), "checkout" (git files) or "unknown"
    dirty: bool | None  # built from a checkout with uncommitted changes (None: not known)
    schema_latest: int  # the store schema this placeharm writes (its newest migration)
    schema_version: int | None  # the open store's schema (None: no store open)
    python: str

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    def commit_text(self) -> str:
        if not self.commit:
            return "unknown"
        return self.commit[:12] + (" (with uncommitted changes)" if self.dirty else "")

    def line(self) -> str:
        """One line for `placeharm --version`."""
        return (
            f"placeharm {self.version} (commit {self.commit_text()}, store schema "
            f"{self.schema_latest}, Python {self.python})"
        )


def describe(schema_version: int | None = None) -> Installation:
    """This installation, with the open store's schema version when one is given."""
    commit, source, dirty = _commit()
    return Installation(
        version=_version(),
        commit=commit,
        commit_from=source,
        dirty=dirty,
        schema_latest=LATEST_VERSION,
        schema_version=schema_version,
        python=platform.python_version(),
    )


@functools.cache
def _version() -> str:
    try:
        return importlib.metadata.version("placeharm")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree, not installed
        return "unknown"


@functools.cache
def _commit() -> tuple[str | None, str, bool | None]:
    """(commit, where it came from, dirty), read once per process."""
    try:
        built = json.loads(_BUILD_FILE.read_text())
    except (OSError, ValueError):
        built = None
    if isinstance(built, dict) and _is_hash(built.get("commit")):
        dirty = built.get("dirty")
        return str(built["commit"]), "build", dirty if isinstance(dirty, bool) else None
    checkout = _PACKAGE.parent.parent  # src/placeharm -> the repository
    if (checkout / "pyproject.toml").is_file():
        commit = read_git_head(checkout / ".git")
        if commit:
            return commit, "checkout", None
    return None, "unknown", None


def _is_hash(value: object) -> bool:
    return (
        isinstance(value, str)
        and len(value) in (40, 64)
        and all(c in "0123456789abcdef" for c in value)
    )


def read_git_head(dot_git: Path) -> str | None:
    """The commit HEAD names, from git's files (a repository, or a worktree whose .git is a
    file pointing at its git directory); None when it cannot be read."""
    try:
        if dot_git.is_file():  # a worktree or submodule: "gitdir: PATH"
            text = dot_git.read_text().strip()
            if not text.startswith("gitdir:"):
                return None
            git_dir = (dot_git.parent / text.removeprefix("gitdir:").strip()).resolve()
        elif dot_git.is_dir():
            git_dir = dot_git
        else:
            return None
        common = git_dir
        if (git_dir / "commondir").is_file():  # a worktree's refs live in the main repository
            common = (git_dir / (git_dir / "commondir").read_text().strip()).resolve()
        head = (git_dir / "HEAD").read_text().strip()
        for _ in range(5):  # a symbolic ref may name another symbolic ref
            if not head.startswith("ref:"):
                return head if _is_hash(head) else None
            ref = head.removeprefix("ref:").strip()
            if ".." in Path(ref).parts:
                return None
            for base in (git_dir, common):
                if (base / ref).is_file():
                    head = (base / ref).read_text().strip()
                    break
            else:
                return _packed_ref(common / "packed-refs", ref)
        return None
    except OSError:
        return None


def _packed_ref(packed: Path, ref: str) -> str | None:
    if not packed.is_file():
        return None
    for line in packed.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1] == ref and _is_hash(parts[0]):
            return parts[0]
    return None
