"""Which placeharm this is (issue 18): the commit read from git's own files (a repository, a
worktree, packed refs, a detached HEAD), without running git from placeharm."""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from placeharm.store.migrations import LATEST_VERSION
from placeharm.version import describe, read_git_head

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git makes the fixtures")


def _git(cwd: Path, *args: str) -> str:
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.org",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.org",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_CONFIG_NOSYSTEM": "1",
        "PATH": "/usr/bin:/bin",
    }
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def _commit(repo: Path, text: str) -> str:
    (repo / "file.txt").write_text(text)
    _git(repo, "add", "file.txt")
    _git(repo, "commit", "-q", "-m", text)
    return _git(repo, "rev-parse", "HEAD")


def test_the_commit_of_a_repository_a_worktree_packed_refs_and_a_detached_head(tmp_path: Path):
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    first = _commit(repo, "one")
    assert read_git_head(repo / ".git") == first
    second = _commit(repo, "two")
    assert read_git_head(repo / ".git") == second

    _git(repo, "worktree", "add", "-q", "-b", "side", str(tmp_path / "side"), first)
    side = tmp_path / "side"
    assert (side / ".git").is_file()  # "gitdir: ...": refs live in the main repository
    assert read_git_head(side / ".git") == first
    third = _commit(side, "three")
    assert read_git_head(side / ".git") == third
    assert read_git_head(repo / ".git") == second  # each HEAD its own

    _git(repo, "pack-refs", "--all")  # the branch files go into packed-refs
    assert not (repo / ".git" / "refs" / "heads" / "main").exists()
    assert read_git_head(repo / ".git") == second
    assert read_git_head(side / ".git") == third

    _git(repo, "checkout", "-q", "--detach", first)
    assert read_git_head(repo / ".git") == first


def test_no_commit_where_there_is_no_git(tmp_path: Path):
    assert read_git_head(tmp_path / ".git") is None
    (tmp_path / ".git").write_text("not a gitdir line\n")
    assert read_git_head(tmp_path / ".git") is None
    (tmp_path / ".git").write_text(f"gitdir: {tmp_path / 'missing'}\n")
    assert read_git_head(tmp_path / ".git") is None


def test_this_installation_names_its_version_schema_and_commit():
    found = describe(schema_version=7)
    assert found.version == importlib.metadata.version("placeharm")
    assert found.schema_latest == LATEST_VERSION
    assert found.schema_version == 7
    checkout = Path(__file__).resolve().parents[2]
    if found.commit_from == "checkout":  # make setup: an editable install of this checkout
        assert found.commit == _git(checkout, "rev-parse", "HEAD")
    else:  # an installed wheel: the commit captured when it was built
        assert found.commit_from == "build" and found.commit is not None
    assert re.fullmatch(
        rf"placeharm {re.escape(found.version)} \(commit [0-9a-f]{{12}}.*, store schema "
        rf"{LATEST_VERSION}, Python 3\.1[1-4]\.\d+\)",
        found.line(),
    )
