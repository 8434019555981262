"""Peak RSS of one gzip-bomb upload through the real app (TestClient), in this process
(docs/security/csrf-and-limits.md). Run with PYTHONPATH=<a checkout>/src to measure that tree.

usage: upload_bomb_rss.py DEMO_DB GB_OF_ZEROS before|after
  DEMO_DB: a store made by `placeharm demo` (copied, not changed); "before" signs in without
  the CSRF token that trees before issue 12 do not know. The bomb is 64 gzip members of 16 MB
  of zeros per GB: about 1 MB of gzip per GB.
"""

from __future__ import annotations

import gzip
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient

import placeharm
from placeharm.config import load_settings
from placeharm.web.app import create_app

ORIGIN = {"Origin": "http://testserver"}


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def sign_in(client: TestClient, which: str) -> dict[str, str]:
    """Sign in as the demo admin; the headers an upload needs."""
    form = {"username": "admin", "password": "admin-demo-2026"}
    if which == "before":
        client.post("/login", data=form, follow_redirects=False)
        return {}
    login = client.get("/login").text
    form["csrf_token"] = re.findall(r'name="csrf_token" value="([^"]+)"', login)[0]
    client.post("/login", data=form, headers=ORIGIN, follow_redirects=False)
    token = re.findall(r'name="csrf-token" content="([^"]+)"', client.get("/help").text)[0]
    return ORIGIN | {"X-CSRF-Token": token}


def main() -> None:
    source, gb, which = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    db = Path(tempfile.mkdtemp()) / "bomb.duckdb"
    shutil.copy(source, db)
    bomb = gzip.compress(b"0" * (16 << 20), compresslevel=9) * (64 * gb)
    print("measuring", placeharm.__file__)
    app = create_app(load_settings(db=db))
    with TestClient(app, raise_server_exceptions=False) as client:
        headers = sign_in(client, which)
        Path("/proc/self/clear_refs").write_text("5")  # the peak from here on
        base, started = peak_rss_mb(), time.perf_counter()
        response = client.post(
            "/api/upload",
            headers=headers,
            data={"kind": "police.uk"},
            files={"file": ("2022-01-northumbria-street.csv.gz", bomb)},
        )
        took = time.perf_counter() - started
    peak = peak_rss_mb()
    print(
        f"{which}: {len(bomb) / 2**20:.2f} MB bomb ({gb} GB of zeros) -> HTTP "
        f"{response.status_code} in {took:.1f} s; peak RSS {peak:.0f} MB, "
        f"{peak - base:.0f} MB above the {base:.0f} MB before the upload"
    )
    shutil.rmtree(db.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
