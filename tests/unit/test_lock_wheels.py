"""Every package in uv.lock has a wheel for every supported Python on the bundle's platform
(issue 18): `requires-python` promises 3.11 to 3.14, `make bundle` takes binary wheels only
(manylinux_2_28_x86_64: glibc 2.28 or older tags, or pure Python), and CI installs from them
on the lowest and highest. A dependency added without such wheels fails here, at the merge,
not on a force's air-gapped machine."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.markers import Marker
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[2]
MAX_GLIBC = 28  # packaging/bundle.sh's default BUNDLE_PLATFORM


def _supported_minors() -> list[int]:
    spec = SpecifierSet(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    )
    return [m for m in range(8, 20) if f"3.{m}" in spec]


def _platform_ok(tag: str) -> bool:
    if tag == "any":
        return True
    if tag in ("manylinux1_x86_64", "manylinux2010_x86_64", "manylinux2014_x86_64"):
        return True
    found = re.fullmatch(r"manylinux_2_(\d+)_x86_64", tag)
    return bool(found) and int(found.group(1)) <= MAX_GLIBC


def _installs_on(wheel: str, minor: int) -> bool:
    python, abi, platforms = wheel.removesuffix(".whl").split("-")[-3:]
    if not any(_platform_ok(p) for p in platforms.split(".")):
        return False
    for tag in python.split("."):
        if tag == "py3" and abi == "none":  # pure Python (also "py2.py3")
            return True
        found = re.fullmatch(r"cp3(\d+)", tag)
        if found:
            built_for = int(found.group(1))
            if abi == "abi3" and built_for <= minor:
                return True
            if built_for == minor and abi in (f"cp3{minor}", "none"):
                return True
    return False


def test_supported_pythons_are_3_11_to_3_14():
    assert _supported_minors() == [11, 12, 13, 14]


def _needed_on(lock: dict, minors: list[int]) -> dict[str, set[int]]:
    """For each locked package, the supported Python minors on which some package of the lock
    asks for it on Linux x86_64 (a dependency with a marker such as
    python_full_version == '3.13.*' is needed on 3.13 only)."""
    needed: dict[str, set[int]] = {}
    for package in lock["package"]:
        edges = list(package.get("dependencies", []))
        for group in package.get("dev-dependencies", {}).values():
            edges += group
        for group in package.get("optional-dependencies", {}).values():
            edges += group
        for edge in edges:
            marker = Marker(edge["marker"]) if "marker" in edge else None
            for minor in minors:
                env = {
                    "python_version": f"3.{minor}",
                    "python_full_version": f"3.{minor}.0",
                    "sys_platform": "linux",
                    "platform_system": "Linux",
                    "platform_machine": "x86_64",
                    "implementation_name": "cpython",
                    "platform_python_implementation": "CPython",
                    "os_name": "posix",
                }
                if marker is None or marker.evaluate(env):
                    needed.setdefault(edge["name"], set()).add(minor)
    return needed


# Packages only placeharm's extras need. The bundle exports no extras (packaging/bundle.sh), so
# they need no wheel: pyspark (the `spark` extra, for a batch cluster) is published on PyPI as
# a source package only, which `make setup` builds. A new extra's packages must be named here
# on purpose, so nothing slips out of this check unseen.
EXTRA_ONLY = {"pyspark", "py4j"}


def _own(lock: dict) -> dict:
    return next(p for p in lock["package"] if p.get("source", {}).get("editable"))


def _closure(lock: dict, names: list[str]) -> set[str]:
    by_name = {p["name"]: p for p in lock["package"]}
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        package = by_name.get(name, {})
        todo += [e["name"] for e in package.get("dependencies", [])]
        for group in package.get("optional-dependencies", {}).values():
            todo += [e["name"] for e in group]
    return seen


def _extra_only(lock: dict) -> set[str]:
    """Packages reachable from placeharm's extras and from nothing else it installs."""
    own = _own(lock)
    base = [e["name"] for e in own.get("dependencies", [])]
    for group in own.get("dev-dependencies", {}).values():
        base += [e["name"] for e in group]
    extras = [e["name"] for g in own.get("optional-dependencies", {}).values() for e in g]
    return _closure(lock, extras) - _closure(lock, base)


def test_extras_hold_only_the_packages_named():
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    assert _extra_only(lock) == EXTRA_ONLY


def test_every_locked_package_has_a_wheel_for_every_supported_python():
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    minors = _supported_minors()
    needed = _needed_on(lock, minors)
    extra_only = _extra_only(lock)
    missing = []
    for package in lock["package"]:
        if package.get("source", {}).get("editable") or package.get("source", {}).get("virtual"):
            continue  # placeharm itself
        if package["name"] in extra_only:
            continue  # not in the bundle (EXTRA_ONLY)
        wheels = [w["url"].rsplit("/", 1)[1] for w in package.get("wheels", [])]
        for minor in minors:
            if minor not in needed.get(package["name"], set(minors)):
                continue  # no package asks for it on this Python (a marker)
            if not any(_installs_on(w, minor) for w in wheels):
                missing.append(f"{package['name']} {package['version']}: none for 3.{minor}")
    assert not missing, missing
