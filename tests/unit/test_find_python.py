"""packaging/find-python, which the Makefile and CI use to choose the interpreter (issue 18):
the newest supported python3.X on PATH that can make a virtual environment, else a message
naming what to install."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "packaging" / "find-python"
THIS = f"python3.{sys.version_info[1]}"


def _run(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": f"{path}:/usr/bin:/bin", "HOME": str(path)}
    env.update({k: os.environ[k] for k in ("LANG",) if k in os.environ})
    return subprocess.run(
        ["/bin/sh", str(SCRIPT), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _bin(tmp_path: Path, **links: str) -> Path:
    folder = tmp_path / "bin"
    folder.mkdir()
    for name, target in links.items():
        (folder / name).symlink_to(target)
    return folder


def test_chooses_the_newest_supported_python_that_makes_venvs(tmp_path: Path):
    # the running interpreter (a venv's python: it has venv and ensurepip) under its own name
    # and a fake newer one that is not Python at all
    fake = tmp_path / "fake"
    fake.write_text("#!/bin/sh\nexit 1\n")
    fake.chmod(0o755)
    folder = _bin(tmp_path, **{THIS: sys.executable, "python3.14": str(fake)})
    found = _run(folder)
    assert found.returncode == 0, found.stderr
    chosen = found.stdout.strip().splitlines()
    assert len(chosen) == 1
    probe = subprocess.run(
        [chosen[0], "-c", "import sys; print(sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.strip() == str(sys.version_info[:2])


def test_says_what_to_install_when_no_supported_python_is_present(tmp_path: Path):
    folder = _bin(tmp_path, **{"python3.10": sys.executable})  # wrong version under that name
    found = subprocess.run(
        ["/bin/sh", str(SCRIPT)],
        env={"PATH": str(folder), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert found.returncode == 1
    assert found.stdout == ""
    assert "needs Python 3.11, 3.12, 3.13 or 3.14" in found.stderr
    assert "apt-get install python3.13 python3.13-venv" in found.stderr
    assert "make PYTHON=" in found.stderr
