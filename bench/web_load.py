"""Web API load benchmark: latency of the dashboard's JSON API under 50 concurrent clients, and
the time from an upload to the update arriving over server-sent events.

    .venv/bin/python bench/web_load.py               # demo size and 10M records
    .venv/bin/python bench/web_load.py --demo-only   # the demo size only
    .venv/bin/python bench/run.py --only web         # the same as the first, from the driver

The issue: "API latency p50 and p95 under 50 concurrent clients on loopback (a real load
generator, e.g. wrk from Debian or an async client) for the overview, ward and records
endpoints, at the demo size and at 10M records; time from upload to the update arriving over
SSE. Targets: p95 <= 150 ms at 10M records; live update <= 1 s."

For each size, `placeharm serve` runs as its own process (uvicorn, one worker) on a scratch copy
of a store built once under bench/work/web/ (gitignored). 50 asyncio clients (httpx), each
signed in with its own session and its own keep-alive connection, send requests back to back
for a fixed time per endpoint and scenario, after a warm-up; every latency is kept. Two
scenarios per endpoint: "repeat" (a few fixed URLs, so the server's page cache, which keeps
built pages per (page, user, arguments) until new data arrives, answers nearly every request)
and "varied" (every request has arguments not asked before in the run, so every page is built).
wrk, when installed, repeats the "repeat" scenarios as a cross-check. Then an SSE connection
waits while an administrator uploads a small CSV, 20 times. Results go to
bench/results/web-<UTC>.json and bench/results/web-latest.json. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import functools
import hashlib
import json
import os
import random
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import httpx
import numpy as np

from common import (
    REPO,
    WORK,
    area_paths,
    run_info,
    save_results,
    shown,
    source_hash,
    street_files,
    target_line,
    utc_stamp,
    write_json,
)
from common import (
    manifest_path as _manifest,
)
from common import (
    remove_store as _remove,
)
from common import (
    wal_path as _wal,
)
from placeharm.model import shift_month as shift
from placeharm.store.migrations import LATEST_VERSION

CLIENTS = 50
DURATION_S = 20.0
WARMUP_S = 3.0
WARD = "E05001111"
RECORD_PAGES = 20  # the records endpoint: pages 1..20 of crimes
VARIED_MONTHS = 36  # varied filters: windows of 1..36 months ending on a month held
VARIED_INDICES = ("css", "cchi")
SINGLE_COLD = 5  # varied: this many distinct requests one at a time first (untimed warm-up)
UPLOADS = 20
UPLOAD_PAUSE_S = 0.25
EVENT_TIMEOUT_S = 30.0
REQUEST_TIMEOUT_S = 600.0
SERVER_START_TIMEOUT_S = 600.0
USER = "analyst"  # the 50 load clients
SSE_USER = "officer"  # the page listening for updates
ADMIN = "admin"  # the uploader
PASSWORD_SUFFIX = "-demo-2026"
OVERLAY_SEED = 1
DEFAULT_SEED = 20240601  # order of the varied requests
TARGET_P95_MS = 300.0  # issue 14: at 10M records, every endpoint and scenario
TARGET_ALONE_MS = 30.0  # issue 14: one page built alone (a cache miss) at 10M records
TARGET_LIVE_S = 1.0  # every upload, both sizes
QUICK = {  # --quick: 10M only, shorter runs (under two minutes with the stores built)
    "duration": 5.0,
    "warmup_s": 1.0,
    "uploads": 5,
    "live_under_load": 3,
    "clients": CLIENTS,
}
TARGET_SIZE = "ten_million"
BIG_CRIMES = 9_957_330  # bench/harm_rank.py's 10M store (19 copies of 524,070 real crimes)
PLACEHARM = Path(sys.executable).with_name("placeharm")
ENDPOINTS = ("overview", "ward", "records")
SCENARIOS = ("repeat", "varied")
SIZES = {
    "demo": "demo size (bundled police.uk slice 2021-11..2022-03, synthetic SOC overlay 1x)",
    "ten_million": (
        f"10M records ({BIG_CRIMES:,} crimes: bench/harm_rank.py's store, the real Northumbria "
        "rows 19 times; synthetic SOC overlay 1x generated from them)"
    ),
}
# placeharm files whose change makes a built store stale (plus the store schema version)
STORE_CODE = (
    "soc/generate.py",
    "soc/importer.py",
    "soc/schema.py",
    "services/demo.py",
    "services/auth.py",
)
COUNT_SQL = """
SELECT
    (SELECT count(*) FROM crimes) AS crimes,
    (SELECT count(*) FROM soc_nominals) AS soc_nominals,
    (SELECT count(*) FROM soc_groups) AS soc_groups,
    (SELECT count(*) FROM soc_force_crimes) AS soc_force_crimes,
    (SELECT count(*) FROM soc_intelligence) AS soc_intelligence,
    (SELECT count(*) FROM soc_incidents) AS soc_incidents,
    (SELECT count(*) FROM soc_addresses) AS soc_addresses,
    (SELECT count(*) FROM users) AS users
"""
WRK_SCRIPT = """
local paths = {%s}
local n = 0
wrk.headers["Cookie"] = "%s"
request = function()
  n = n + 1
  return wrk.format("GET", paths[(n %% #paths) + 1])
end
done = function(summary, latency, requests)
  io.write(string.format(
    "WRKJSON {\\"requests\\": %%d, \\"duration_us\\": %%d, \\"p50_us\\": %%d, "
    .. "\\"p95_us\\": %%d, \\"p99_us\\": %%d, \\"max_us\\": %%d, \\"connect\\": %%d, "
    .. "\\"read\\": %%d, \\"write\\": %%d, \\"status\\": %%d, \\"timeout\\": %%d}\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), latency.max, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.status, summary.errors.timeout))
end
"""


# -- the stores -----------------------------------------------------------------------------


@functools.cache
def _code_hash() -> str:
    """sha256 of STORE_CODE, taken once per run (main calls it first)."""
    return source_hash(STORE_CODE)


def src_digest() -> str:
    """sha256 of every placeharm source file's name, size and mtime: a server started after
    an edit runs other code than the run started with (the package is installed editable)."""
    digest = hashlib.sha256()
    for path in sorted((REPO / "src" / "placeharm").rglob("*.py")):
        stat = path.stat()
        digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
    return digest.hexdigest()


def store_counts(path: Path) -> dict[str, int] | None:
    """Crimes, SOC rows and users of a finished store file (read-only); else None."""
    if not path.exists() or _wal(path).exists():
        return None
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error:
        return None
    try:
        cur = con.execute(COUNT_SQL)
        names = [d[0] for d in cur.description]
        row = cur.fetchone()
    except duckdb.Error:
        return None
    finally:
        con.close()
    return {n: int(v) for n, v in zip(names, row, strict=True)} if row else None


def held_months(path: Path) -> tuple[dt.date, dt.date]:
    """First and last police.uk street month of a store (read-only)."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        row = con.execute(
            "SELECT min(month), max(month) FROM coverage WHERE source_kind = 'street'"
        ).fetchone()
    finally:
        con.close()
    assert row is not None and isinstance(row[0], dt.date) and isinstance(row[1], dt.date)
    return row[0], row[1]


def reusable(path: Path, config: dict[str, Any]) -> dict[str, Any] | None:
    """The manifest of a store that may be reused: same config, same counts; else None."""
    try:
        manifest = json.loads(_manifest(path).read_text())
    except (OSError, ValueError):
        return None
    if manifest.get("config") != config or store_counts(path) != manifest.get("counts"):
        return None
    return dict(manifest)


def harm_source() -> Path:
    return WORK / "harm" / "10m.duckdb"


def store_config(size: str) -> dict[str, Any]:
    common = {
        "kind": size,
        "overlay_seed": OVERLAY_SEED,
        "schema": LATEST_VERSION,
        "code": _code_hash(),
    }
    if size == "demo":
        from placeharm.services import demo

        data = sorted(demo.demo_data_dir().rglob("*.*"))
        return common | {"demo_data": [[p.name, p.stat().st_size] for p in data]}
    src = harm_source()
    stat = src.stat()
    return common | {
        "source": {"path": shown(src), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    }


def build_child(size: str, building: Path, out: Path) -> None:
    """In a child process: build one store into `building` and write what it took to `out`."""
    from placeharm.services import auth, demo, soc
    from placeharm.store.duckdb import DuckDBStore

    steps: dict[str, float] = {}
    t0 = time.perf_counter()
    if size == "harm10m":
        import harm_rank

        work = harm_source().parent
        work.mkdir(parents=True, exist_ok=True)
        small, _ = harm_rank.northumbria_store(work, False)
        harm_rank.big_store(work, small, False)
        write_json(out, {"build_s": time.perf_counter() - t0})
        return
    if size == "ten_million":
        shutil.copyfile(harm_source(), building)
        steps["copy_s"] = time.perf_counter() - t0
    t = time.perf_counter()
    store = DuckDBStore(building)  # migrates a copied store to the latest schema
    try:
        steps["open_s"] = time.perf_counter() - t
        if size == "demo":
            t = time.perf_counter()
            demo.build_demo(store)
            steps["data_s"] = time.perf_counter() - t
        t = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="overlay-", dir=building.parent) as tmp:
            result = soc.build_overlay(store, seed=OVERLAY_SEED, out_dir=Path(tmp))
        bad = [f"{r.source_file}: {r.status}" for r in result.results if r.status != "ok"]
        if bad:
            raise SystemExit("overlay files not imported ok: " + "; ".join(bad))
        steps["overlay_s"] = time.perf_counter() - t
        t = time.perf_counter()
        auth.create_demo_users(store)
        steps["users_s"] = time.perf_counter() - t
        t = time.perf_counter()
    finally:
        store.close()
    steps["close_s"] = time.perf_counter() - t
    write_json(out, {"build_s": time.perf_counter() - t0, **steps})


def run_build(size: str, building: Path, work: Path) -> dict[str, Any]:
    """Run build_child in a fresh process; its time and peak RSS (os.wait4)."""
    out = work / f"{size}.build.json"
    out.unlink(missing_ok=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--build-child", size]
    cmd += ["--building", str(building), "--build-out", str(out)]
    sys.stdout.flush()
    proc = subprocess.Popen(cmd, cwd=REPO)
    _, status, usage = os.wait4(proc.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError(f"building the {size} store failed (exit {code}); see above")
    build: dict[str, Any] = json.loads(out.read_text())
    out.unlink()
    return build | {
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "cpu_s": usage.ru_utime + usage.ru_stime,
    }


def ensure_store(size: str, work: Path, rebuild: bool) -> tuple[Path, dict[str, Any]]:
    """The size's store, reused while its manifest matches, else built (temp name, rename)."""
    path = work / f"{size}.duckdb"
    pre: dict[str, Any] = {}
    if size == "ten_million":
        import harm_rank

        if harm_rank.ready_rows(harm_source()) != BIG_CRIMES:
            missing = [p for _, p in area_paths() if not p.exists()]
            if not street_files() or missing:
                raise RuntimeError(
                    f"{shown(harm_source())} is missing and the real data to build it is not "
                    "found (set PLACEHARM_SHARED_DATA, or run with --demo-only)"
                )
            print(f"  building {shown(harm_source())} as bench/harm_rank.py does ...", flush=True)
            pre = {"harm_store": run_build("harm10m", harm_source(), work)}
    config = store_config(size)
    if not rebuild and (manifest := reusable(path, config)):
        return path, {"reused": True, **manifest["build"]}
    _remove(path)
    _manifest(path).unlink(missing_ok=True)
    building = work / f"{size}.duckdb.building"
    _remove(building)
    print(f"  building {shown(path)} (in a child process) ...", flush=True)
    build = pre | run_build(size, building, work)
    counts = store_counts(building)
    if counts is None or (size == "ten_million" and counts["crimes"] != BIG_CRIMES):
        raise RuntimeError(f"{shown(building)} did not open with the crimes expected: {counts}")
    building.replace(path)
    tmp = _manifest(path).with_suffix(".tmp")
    write_json(tmp, {"config": config, "counts": counts, "build": build})
    tmp.replace(_manifest(path))
    return path, {"reused": False, **build}


def built(how: dict[str, Any]) -> str:
    parts = [f"{how['build_s']:.1f} s"]
    if "overlay_s" in how:
        parts.append(f"overlay {how['overlay_s']:.1f} s")
    if "peak_rss_mb" in how:
        parts.append(f"peak RSS {how['peak_rss_mb'] / 1024:.2f} GB")
    text = ", ".join(parts)
    return f"reused; it was built in {text}" if how["reused"] else f"built in {text}"


# -- the server -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a running process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def busy_cpu_s() -> float:
    """CPU seconds every process on the machine has used since boot (Linux /proc/stat)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """pid and every live descendant (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its live descendants (a worker that ended
    takes its seconds with it: uvicorn's workers live as long as the server)."""
    total = 0.0
    for p in process_tree(pid):
        with contextlib.suppress(OSError, IndexError, ValueError):
            total += proc_cpu_s(p)
    return total


def proc_mem_mb(pid: int) -> dict[str, float]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            out[key] = int(value.split()[0]) / 1024
    return {"peak_rss_mb": out.get("VmHWM", 0.0), "rss_mb": out.get("VmRSS", 0.0)}


@dataclass
class Server:
    """`placeharm serve` on a scratch copy of a store, in its own process."""

    store: Path
    log: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    started_s: float = 0.0
    db_url: str | None = None  # --engine postgresql: PLACEHARM_DB, and `store` is only the cwd
    workers: int = 1
    db_pid: int | None = None  # the PostgreSQL postmaster, whose backends' CPU is counted apart

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PLACEHARM_")}
        cmd = [str(PLACEHARM), "serve", "--db", str(self.store), "--port", str(self.port)]
        if self.db_url is not None:
            env["PLACEHARM_DB"] = self.db_url
            cmd = [str(PLACEHARM), "serve", "--port", str(self.port)]
            cmd += ["--workers", str(self.workers)]
        with self.log.open("wb") as log:
            t0 = time.perf_counter()
            self.proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, cwd=self.store.parent, env=env
            )
        deadline = t0 + SERVER_START_TIMEOUT_S
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"the server exited ({self.proc.returncode}):\n{self.log.read_text()[-3000:]}"
                )
            try:
                if httpx.get(f"{self.base}/login", timeout=5).status_code == 200:
                    self.started_s = time.perf_counter() - t0
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the server did not answer within {SERVER_START_TIMEOUT_S:.0f} s")

    def cpu_s(self) -> float:
        assert self.proc is not None
        return tree_cpu_s(self.proc.pid)  # with --workers, the supervisor and its workers

    def db_cpu_s(self) -> float:
        return tree_cpu_s(self.db_pid) if self.db_pid is not None else 0.0

    def mem(self) -> dict[str, float]:
        assert self.proc is not None
        tree = process_tree(self.proc.pid)
        mems = [proc_mem_mb(p) for p in tree]
        return {
            "peak_rss_mb": sum(m["peak_rss_mb"] for m in mems),  # sum of each one's peak
            "rss_mb": sum(m["rss_mb"] for m in mems),
            "processes": len(tree),
        }

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)  # uvicorn: graceful shutdown, store closed
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# -- the requests ---------------------------------------------------------------------------


def windows(first_held: dt.date, last_held: dt.date) -> list[tuple[str, str]]:
    """(from, to) of every window of 1..VARIED_MONTHS months ending on a month held."""
    out = []
    end = first_held
    while end <= last_held:
        for length in range(1, VARIED_MONTHS + 1):
            out.append((f"{shift(end, 1 - length):%Y-%m}", f"{end:%Y-%m}"))
        end = shift(end, 1)
    return out


def repeat_urls(endpoint: str) -> list[str]:
    if endpoint == "overview":
        return ["/api/overview"]
    if endpoint == "ward":
        return [f"/api/ward/{WARD}"]
    return [f"/api/records?kind=crimes&page={p}" for p in range(1, RECORD_PAGES + 1)]


def varied_urls(endpoint: str, held: tuple[dt.date, dt.date], seed: int) -> list[str]:
    """Distinct URLs (distinct page-cache keys), shuffled by random.Random(seed)."""
    spans = windows(*held)
    if endpoint == "overview":
        urls = [
            f"/api/overview?from={a}&to={b}&index={i}" for a, b in spans for i in VARIED_INDICES
        ]
    elif endpoint == "ward":
        urls = [
            f"/api/ward/{WARD}?from={a}&to={b}&index={i}" for a, b in spans for i in VARIED_INDICES
        ]
    else:  # the records page ignores the index: vary the page instead
        urls = [
            f"/api/records?kind=crimes&page={p}&from={a}&to={b}"
            for a, b in spans
            for p in range(1, RECORD_PAGES + 1)
        ]
    random.Random(f"{seed}:{endpoint}").shuffle(urls)
    return urls


async def sign_in(base: str, username: str, timeout: float) -> httpx.AsyncClient:
    """An httpx client holding its own session cookie and (at most) one connection."""
    client = httpx.AsyncClient(
        base_url=base,
        timeout=timeout,
        limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
    )
    # as a browser signs in: the login form's CSRF token (bound to its pre-session cookie)
    # and this site's Origin; then every POST sends the session's token (X-CSRF-Token)
    client.headers["Origin"] = base
    form = await client.get("/login", headers={"Accept": "text/html"})
    found = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    r = await client.post(
        "/login",
        data={
            "username": username,
            "password": username + PASSWORD_SUFFIX,
            "csrf_token": found.group(1) if found else "",
        },
    )
    if r.status_code != 303 or "placeharm_session" not in client.cookies:
        await client.aclose()
        raise RuntimeError(f"sign-in as {username} failed: {r.status_code} {r.text[:200]}")
    page = await client.get("/help", headers={"Accept": "text/html"})
    token = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text)
    if token:
        client.headers["X-CSRF-Token"] = token.group(1)
    return client


@dataclass
class Load:
    """Every request of one timed run: latency (ms), status, when it started (s from t0)."""

    latencies_ms: list[float] = field(default_factory=list)
    statuses: list[int | str] = field(default_factory=list)
    started_s: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    drain_s: float = 0.0


async def run_load(
    clients: list[httpx.AsyncClient], next_url: Callable[[int, int], str | None], seconds: float
) -> Load:
    """Every client sends its next request as soon as the last one is answered, until
    `seconds` have passed (a request started before then is waited for) or next_url says
    None. Latency: from just before the request is sent to its whole body read."""
    load = Load()
    t0 = time.perf_counter()
    end = t0 + seconds

    async def worker(i: int, client: httpx.AsyncClient) -> None:
        k = 0
        while True:
            start = time.perf_counter()
            if start >= end:
                return
            url = next_url(i, k)
            if url is None:
                return
            k += 1
            try:
                r = await client.get(url)
                status: int | str = r.status_code
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            load.latencies_ms.append((time.perf_counter() - start) * 1000)
            load.statuses.append(status)
            load.started_s.append(start - t0)

    await asyncio.gather(*(worker(i, c) for i, c in enumerate(clients)))
    load.wall_s = time.perf_counter() - t0
    load.drain_s = max(0.0, load.wall_s - seconds)
    return load


def percentiles(ms: list[float]) -> dict[str, float]:
    p50, p95, p99 = np.percentile(np.asarray(ms), [50, 95, 99])
    return {"p50_ms": float(p50), "p95_ms": float(p95), "p99_ms": float(p99)}


def summarise(load: Load) -> dict[str, Any]:
    errors: dict[str, int] = {}
    for s in load.statuses:
        if s != 200:
            errors[str(s)] = errors.get(str(s), 0) + 1
    ms = load.latencies_ms
    return {
        "requests": len(ms),
        **percentiles(ms),
        "mean_ms": statistics.fmean(ms),
        "min_ms": min(ms),
        "max_ms": max(ms),
        "requests_per_s": len(ms) / load.wall_s,
        "wall_s": load.wall_s,
        "drain_s": load.drain_s,
        "errors": sum(errors.values()),
        "errors_by_status": errors,
        "percentiles_ms": [round(float(x), 3) for x in np.percentile(np.asarray(ms), range(101))],
    }


async def one_at_a_time(client: httpx.AsyncClient, urls: list[str]) -> list[float]:
    """Each URL once, one request at a time (no concurrency): latencies in ms."""
    out = []
    for url in urls:
        t0 = time.perf_counter()
        r = await client.get(url)
        out.append((time.perf_counter() - t0) * 1000)
        if r.status_code != 200:
            raise RuntimeError(f"GET {url}: {r.status_code} {r.text[:300]}")
    return out


async def scenario(
    server: Server,
    clients: list[httpx.AsyncClient],
    endpoint: str,
    kind: str,
    held: tuple[dt.date, dt.date],
    args: argparse.Namespace,
) -> tuple[dict[str, Any], list[float]]:
    """Warm up, then time one endpoint under one scenario; (summary, every latency)."""
    if kind == "repeat":
        urls = repeat_urls(endpoint)
        await one_at_a_time(clients[0], urls)  # builds and caches every page
        single = await one_at_a_time(clients[0], urls * max(1, 20 // len(urls)))

        def pick(i: int, k: int) -> str | None:
            return urls[(i + k) % len(urls)]

        await run_load(clients, pick, args.warmup_s)
        pool_note = f"{len(urls)} URL(s), each built and cached in the warm-up"
        next_url = pick
        pool_size = len(urls)
    else:
        urls = varied_urls(endpoint, held, args.seed)
        single = await one_at_a_time(clients[0], urls[:SINGLE_COLD])
        rest: Iterator[str] = iter(urls[SINGLE_COLD:])

        def take(i: int, k: int) -> str | None:
            return next(rest, None)

        next_url = take
        pool_size = len(urls) - SINGLE_COLD
        pool_note = f"{pool_size:,} distinct URLs, none asked before"
    load_avg = os.getloadavg()[0]
    cpu_server, cpu_self = server.cpu_s(), resource.getrusage(resource.RUSAGE_SELF)
    cpu_all, cpu_db = busy_cpu_s(), server.db_cpu_s()
    load = await run_load(clients, next_url, args.duration)
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu_all = busy_cpu_s() - cpu_all
    cpu_server = server.cpu_s() - cpu_server
    cpu_db = server.db_cpu_s() - cpu_db
    cpu_client = (after.ru_utime + after.ru_stime) - (cpu_self.ru_utime + cpu_self.ru_stime)
    out = summarise(load) | {
        "endpoint": endpoint,
        "scenario": kind,
        "pool": pool_note,
        "pool_size": pool_size,
        "pool_exhausted": kind == "varied" and len(load.latencies_ms) >= pool_size,
        "example_urls": urls[:3],
        "single_client_median_ms": statistics.median(single),
        "single_client_ms": [round(x, 3) for x in single],
        "load_avg_1m_at_start": load_avg,
        "server_cpu_s": cpu_server,
        "client_cpu_s": cpu_client,
        "db_cpu_s": cpu_db,  # PostgreSQL's processes (0 on DuckDB: inside the server)
        "other_cpu_s": max(0.0, cpu_all - cpu_server - cpu_client - cpu_db),
    }
    return out, load.latencies_ms


def run_wrk(
    server: Server, cookie: str, endpoint: str, args: argparse.Namespace, tmp: Path
) -> dict[str, Any]:
    """wrk (2 threads, 50 connections, one session) on the repeat URLs, after a warm-up."""
    urls = repeat_urls(endpoint)
    script = tmp / f"wrk-{endpoint}.lua"
    script.write_text(WRK_SCRIPT % (", ".join(json.dumps(u) for u in urls), cookie))

    def wrk(seconds: float) -> tuple[dict[str, Any], float]:
        cmd = ["wrk", "-t2", f"-c{args.clients}", f"-d{max(1, round(seconds))}s"]
        cmd += ["--timeout", f"{REQUEST_TIMEOUT_S:.0f}s", "-s", str(script), server.base + urls[0]]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert proc.stdout is not None
        text = proc.stdout.read().decode(errors="replace")
        _, status, usage = os.wait4(proc.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0 or "WRKJSON " not in text:
            raise RuntimeError(f"wrk failed:\n{text[-2000:]}")
        line = next(x for x in text.splitlines() if x.startswith("WRKJSON "))
        return json.loads(line.removeprefix("WRKJSON ")), usage.ru_utime + usage.ru_stime

    wrk(args.warmup_s)
    load_avg = os.getloadavg()[0]
    cpu_server, cpu_all = server.cpu_s(), busy_cpu_s()
    raw, cpu_wrk = wrk(args.duration)
    cpu_all = busy_cpu_s() - cpu_all
    cpu_server = server.cpu_s() - cpu_server
    errors = raw["connect"] + raw["read"] + raw["write"] + raw["status"] + raw["timeout"]
    return {
        "endpoint": endpoint,
        "scenario": "repeat",
        "tool": "wrk -t2 -c50 (one session cookie for every connection)",
        "requests": raw["requests"],
        "p50_ms": raw["p50_us"] / 1000,
        "p95_ms": raw["p95_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "max_ms": raw["max_us"] / 1000,
        "requests_per_s": raw["requests"] / (raw["duration_us"] / 1e6),
        "errors": errors,
        "raw": raw,
        "load_avg_1m_at_start": load_avg,
        "server_cpu_s": cpu_server,
        "client_cpu_s": cpu_wrk,
        "other_cpu_s": max(0.0, cpu_all - cpu_server - cpu_wrk),
    }


async def live_updates(
    server: Server, n: int, background: list[httpx.AsyncClient] | None = None
) -> dict[str, Any]:
    """One SSE connection (SSE_USER); ADMIN uploads a one-row groups CSV n times; the time
    from just before each upload is sent to the event with its import_id arriving. With
    `background`, those clients keep loading /api/overview meanwhile."""
    listener = await sign_in(server.base, SSE_USER, REQUEST_TIMEOUT_S)
    admin = await sign_in(server.base, ADMIN, REQUEST_TIMEOUT_S)
    stop = asyncio.Event()
    bg_task = None
    if background:
        bg_load = Load()

        async def keep_loading(client: httpx.AsyncClient) -> None:
            while not stop.is_set():
                t0 = time.perf_counter()
                try:
                    status: int | str = (await client.get("/api/overview")).status_code
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                bg_load.latencies_ms.append((time.perf_counter() - t0) * 1000)
                bg_load.statuses.append(status)

        bg_task = asyncio.gather(*(keep_loading(c) for c in background))
    rows: list[dict[str, Any]] = []
    try:
        async with listener.stream("GET", "/events", timeout=None) as resp:
            lines = resp.aiter_lines()

            async def next_event() -> dict[str, Any]:
                event = None
                async for line in lines:
                    if line.startswith("event:"):
                        event = line.removeprefix("event:").strip()
                    elif line.startswith("data:") and event == "data":
                        payload: dict[str, Any] = json.loads(line.removeprefix("data:"))
                        return payload
                raise RuntimeError("the event stream ended")

            seen = (await asyncio.wait_for(next_event(), EVENT_TIMEOUT_S))["import_id"]
            if background:
                await asyncio.sleep(2.0)  # let the background load settle in
            for i in range(n):
                # synthetic, as the demo's records are: real SOC records would end the demo
                # accounts' sessions (services/auth), these clients' included
                body = f"group_id,group_type,synthetic\nBENCH-G{i + 1:02d},OCG,true\n".encode()
                load_avg = os.getloadavg()[0]
                t0 = time.perf_counter()
                upload = asyncio.create_task(
                    admin.post(
                        "/api/upload",
                        data={"kind": "groups"},
                        files={"file": (f"bench-{i + 1:02d}.csv", body, "text/csv")},
                    )
                )
                row: dict[str, Any] = {"load_avg_1m": load_avg}
                try:
                    while True:
                        left = EVENT_TIMEOUT_S - (time.perf_counter() - t0)
                        event = await asyncio.wait_for(next_event(), max(left, 0.001))
                        if event["import_id"] != seen:
                            row["event_s"] = time.perf_counter() - t0
                            seen = event["import_id"]
                            break
                except TimeoutError:
                    row["event_s"] = None
                r = await upload
                row["upload_s"] = time.perf_counter() - t0
                result = r.json()["results"][0] if r.status_code == 200 else {}
                row |= {
                    "status": r.status_code,
                    "import_status": result.get("status"),
                    "import_id": result.get("import_id"),
                    "event_import_id": seen,
                }
                rows.append(row)
                await asyncio.sleep(UPLOAD_PAUSE_S)
    finally:
        stop.set()
        if bg_task is not None:
            await bg_task
        await listener.aclose()
        await admin.aclose()
    arrived = [r["event_s"] for r in rows if r["event_s"] is not None]
    ok = all(
        r["status"] == 200 and r["import_status"] == "ok" and r["import_id"] == r["event_import_id"]
        for r in rows
    )
    out: dict[str, Any] = {
        "uploads": n,
        "events_arrived": len(arrived),
        "median_s": statistics.median(arrived) if arrived else None,
        "max_s": max(arrived) if len(arrived) == n else None,
        "upload_response_median_s": statistics.median(r["upload_s"] for r in rows),
        "all_ok": ok and len(arrived) == n,
        "runs": rows,
    }
    if background:
        out["background"] = {
            "clients": len(background),
            "url": "/api/overview",
            "requests": len(bg_load.latencies_ms),
            **percentiles(bg_load.latencies_ms),
            "errors": sum(s != 200 for s in bg_load.statuses),
            "errors_by_status": {
                str(k): sum(s == k for s in bg_load.statuses)
                for k in set(bg_load.statuses)
                if k != 200
            },
        }
    return out


# -- one size -------------------------------------------------------------------------------


def fmt_row(label: str, s: dict[str, Any]) -> str:
    single = s.get("single_client_median_ms")
    single_text = f"{single:9.1f}" if single is not None else " " * 9
    return (
        f"    {label:<22} {s['requests']:>7,} {s['p50_ms']:>8.1f} {s['p95_ms']:>8.1f} "
        f"{s['p99_ms']:>8.1f} {s['max_ms']:>8.1f} {s['requests_per_s']:>7.1f} "
        f"{s['errors']:>6} {single_text} {s['server_cpu_s']:>6.1f} {s['client_cpu_s']:>6.1f} "
        f"{s['other_cpu_s']:>6.1f} {s['load_avg_1m_at_start']:>5.1f}"
    )


HEADER = (
    f"    {'endpoint / scenario':<22} {'reqs':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
    f"{'max ms':>8} {'req/s':>7} {'errors':>6} {'1-client':>9} {'server':>6} {'client':>6} "
    f"{'other':>6} {'load':>5}"
)


async def measure_size(
    size: str,
    path: Path,
    args: argparse.Namespace,
    work: Path,
    tmp: Path,
    pg: PgTarget | None = None,
) -> tuple[dict[str, Any], dict[str, list[float]]]:
    """Serve a scratch copy of the store and load it; (results, every latency by scenario).
    With `pg`: serve the PostgreSQL database holding the same store, with pg.workers."""
    held = held_months(path)
    serving = work / f"{size}.serving.duckdb"
    _remove(serving)
    t0 = time.perf_counter()
    if pg is None:
        shutil.copyfile(path, serving)
        server = Server(serving, work / f"{size}.server.log")
    else:
        server = Server(
            work / "pg",
            work / f"{size}.pg{pg.workers}.server.log",
            db_url=pg.url,
            workers=pg.workers,
            db_pid=pg.postmaster,
        )
    copy_s = time.perf_counter() - t0
    out: dict[str, Any] = {
        "held": [f"{held[0]:%Y-%m}", f"{held[1]:%Y-%m}"],
        "load_avg_at_start": os.getloadavg(),
    }
    latencies: dict[str, list[float]] = {}
    clients: list[httpx.AsyncClient] = []
    out["src_changed_since_start"] = src_digest() != args.src_digest
    if out["src_changed_since_start"]:
        print(
            "  WARNING: src/placeharm changed since this run started; this server runs the new code"
        )
    try:
        server.start()
        t0 = time.perf_counter()
        clients = [await sign_in(server.base, USER, REQUEST_TIMEOUT_S) for _ in range(args.clients)]
        login_s = time.perf_counter() - t0
        what = (
            f"(uvicorn, one worker) on a copy of the store (copied in {copy_s:.1f} s)"
            if pg is None
            else f"--workers {pg.workers} on PostgreSQL (PLACEHARM_DB)"
        )
        print(
            f"  server: {shown(PLACEHARM)} serve {what}, answering in {server.started_s:.1f} s; "
            f"{args.clients} clients signed in as {USER!r} ({args.clients} sessions, "
            f"{login_s:.1f} s)",
            flush=True,
        )
        print(
            f"  each scenario: {args.warmup_s:.0f} s warm-up (repeat; varied: {SINGLE_COLD} "
            f"requests one at a time), then {args.duration:.0f} s of {args.clients} clients back "
            "to back. 1-client: median ms of requests one at a time (repeat: cached pages; "
            "varied: built pages). server, client, other: CPU seconds used while timed by the "
            "server, the load generator, and every other process on the machine (from "
            "/proc/stat); load: 1-minute load average at the start, our own processes included."
        )
        print(HEADER, flush=True)
        out["server"] = {
            "command": (
                f"placeharm serve --db <copy> --port {server.port}"
                if pg is None
                else f"PLACEHARM_DB=<url> placeharm serve --workers {pg.workers} "
                f"--port {server.port}"
            ),
            "engine": "duckdb" if pg is None else "postgresql",
            "workers": 1 if pg is None else pg.workers,
            "store_copy_s": copy_s,
            "startup_s": server.started_s,
            "clients": args.clients,
            "user": USER,
            "sign_in_s": login_s,
        }
        results: dict[str, Any] = {}
        for endpoint in ENDPOINTS:
            for kind in SCENARIOS:
                name = f"{endpoint}/{kind}"
                s, ms = await scenario(server, clients, endpoint, kind, held, args)
                results[name] = s
                latencies[name] = ms
                note = " (pool of distinct URLs exhausted)" if s["pool_exhausted"] else ""
                print(fmt_row(name, s) + note, flush=True)
                if kind == "repeat" and args.wrk:
                    cookie = f"placeharm_session={clients[0].cookies['placeharm_session']}"
                    w = run_wrk(server, cookie, endpoint, args, tmp)
                    results[f"{endpoint}/repeat (wrk)"] = w
                    print(fmt_row(f"{endpoint}/repeat (wrk)", w), flush=True)
        out["scenarios"] = results
        out["server"] |= server.mem()

        print(
            f"  live update: an SSE connection to /events as {SSE_USER!r}; {ADMIN!r} uploads a "
            f"one-row groups CSV (POST /api/upload) {args.uploads} times; time from just before "
            "the upload is sent to the event with the new import_id",
            flush=True,
        )
        live = await live_updates(server, args.uploads)
        out["live"] = live
        print(live_line("idle", live), flush=True)
        if args.live_under_load:
            busy = await live_updates(server, args.live_under_load, clients)
            out["live_under_load"] = busy
            print(live_line("under load", busy), flush=True)
            bg = busy["background"]
            print(
                f"      (meanwhile {bg['clients']} clients on /api/overview: {bg['requests']:,} "
                f"requests, p50 {bg['p50_ms']:.1f} ms, p95 {bg['p95_ms']:.1f} ms, errors "
                f"{bg['errors']} {bg['errors_by_status'] or ''}; every upload empties the page "
                "cache)"
            )
        out["server"] |= server.mem()
    finally:
        for c in clients:
            await c.aclose()
        server.stop()
        _remove(serving)
    out["load_avg_at_end"] = os.getloadavg()
    print(
        f"  server peak RSS {out['server'].get('peak_rss_mb', 0) / 1024:.2f} GB; load average "
        f"{out['load_avg_at_start'][0]:.2f} before the server started, "
        f"{out['load_avg_at_end'][0]:.2f} / {out['load_avg_at_end'][1]:.2f} (1 / 5 min) at the end"
    )

    targets: dict[str, Any] = {}
    if size == TARGET_SIZE:
        for name, s in out["scenarios"].items():
            if "(wrk)" in name:
                continue
            ok = s["p95_ms"] <= TARGET_P95_MS and s["errors"] == 0
            targets[f"p95_ms {name}"] = {"target": TARGET_P95_MS, "value": s["p95_ms"], "pass": ok}
            if s["scenario"] == "varied":  # its warm-up: pages built alone, one at a time
                alone = s["single_client_median_ms"]
                targets[f"alone_ms {name}"] = {
                    "target": TARGET_ALONE_MS,
                    "value": alone,
                    "pass": alone <= TARGET_ALONE_MS,
                }
    worst = out["live"]["max_s"]
    targets["live_update_max_s"] = {
        "target": TARGET_LIVE_S,
        "value": worst,
        "pass": worst is not None and worst <= TARGET_LIVE_S and out["live"]["all_ok"],
    }
    busy = out.get("live_under_load")
    if busy is not None:  # the same target while 50 clients load the overview
        worst_busy = busy["max_s"]
        targets["live_update_under_load_max_s"] = {
            "target": TARGET_LIVE_S,
            "value": worst_busy,
            "pass": worst_busy is not None and worst_busy <= TARGET_LIVE_S and busy["all_ok"],
        }
    errors = sum(s["errors"] for s in out["scenarios"].values())
    for name, t in targets.items():
        if name.startswith("p95_ms"):
            label = f"p95 <= {TARGET_P95_MS:.0f} ms {name.removeprefix('p95_ms ')}"
            print(target_line(label, t["pass"], f"{t['value']:.1f} ms"))
        elif name.startswith("alone_ms"):
            endpoint = name.removeprefix("alone_ms ").split("/")[0]
            label = f"one {endpoint} page built alone (median) <= {TARGET_ALONE_MS:.0f} ms"
            print(target_line(label, t["pass"], f"{t['value']:.1f} ms"))
        else:
            value = "an event never arrived" if t["value"] is None else f"max {t['value']:.3f} s"
            where = " under load" if "under_load" in name else ""
            print(target_line(f"live update{where} <= {TARGET_LIVE_S:.0f} s", t["pass"], value))
    print(f"    errors (any non-200): {errors} ... {'PASS' if errors == 0 else 'FAIL'}")
    out["targets"] = targets
    out["errors"] = errors
    return out, latencies


def live_line(label: str, live: dict[str, Any]) -> str:
    med = live["median_s"]
    worst = live["max_s"]
    return (
        f"    {label:<10} {live['events_arrived']}/{live['uploads']} events; median "
        f"{med * 1000 if med is not None else float('nan'):.0f} ms, max "
        f"{worst * 1000 if worst is not None else float('nan'):.0f} ms (upload response median "
        f"{live['upload_response_median_s'] * 1000:.0f} ms); import ids match "
        f"{'yes' if live['all_ok'] else 'NO'}"
    )


async def run_sizes(
    sizes: list[str], args: argparse.Namespace, results: dict[str, Any], tmp: Path
) -> dict[str, dict[str, list[float]]]:
    work: Path = args.work_dir
    every: dict[str, dict[str, list[float]]] = {}
    for size in sizes:
        print(f"\n{SIZES[size]}", flush=True)
        t0 = time.perf_counter()
        try:
            path, how = ensure_store(size, work, args.rebuild)
        except Exception as exc:  # report it, measure the rest
            text = "".join(traceback.format_exception_only(exc)).strip()
            print(f"  building the store FAILED after {time.perf_counter() - t0:.1f} s: {text}")
            results[size] = {"title": SIZES[size], "error": text}
            continue
        counts = store_counts(path) or {}
        print(f"  store {shown(path)} ({built(how)})")
        print("    " + ", ".join(f"{k} {v:,}" for k, v in counts.items()), flush=True)
        entry: dict[str, Any] = {
            "title": SIZES[size],
            "store": shown(path),
            "build": how,
            "counts": counts,
        }
        try:
            measured, every[size] = await measure_size(size, path, args, work, tmp)
        except Exception as exc:
            text = "".join(traceback.format_exception_only(exc)).strip()
            print(f"  measuring FAILED: {text}")
            entry |= {"error": text, "traceback": traceback.format_exc()}
            results[size] = entry
            continue
        results[size] = entry | measured
    return every


# -- issue 17: PostgreSQL with 1, 2, 4 workers beside DuckDB with one ------------------------


@dataclass
class PgTarget:
    """A PostgreSQL database holding the store, served with `workers` processes."""

    url: str
    workers: int
    postmaster: int | None = None


def postmaster_pid(data_dir: Path) -> int | None:
    try:
        return int((data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None


def move_store(source: Path, url: str, work: Path) -> dict[str, Any]:
    """`placeharm migrate-store --from source --to url`, timed in its own process."""
    log = work / "ten_million.migrate-store.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLACEHARM_")}
    cmd = [str(PLACEHARM), "migrate-store", "--from", str(source), "--to", url]
    load_before = os.getloadavg()
    print(f"  placeharm migrate-store --from {shown(source)} --to <throwaway cluster> ...")
    sys.stdout.flush()
    t0 = time.perf_counter()
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError(f"migrate-store failed (exit {code}):\n{log.read_text()[-2000:]}")
    moved = {
        "seconds": seconds,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "source_mb": source.stat().st_size / 2**20,
        "load_avg_before": load_before,
        "load_avg_after": os.getloadavg(),
        "log": shown(log),
        "output_tail": log.read_text().splitlines()[-12:],
    }
    print(
        f"  moved in {seconds:.0f} s (migrate-store's own CPU {moved['cpu_s']:.0f} s, peak RSS "
        f"{moved['peak_rss_mb'] / 1024:.2f} GB; load {load_before[0]:.1f} before, "
        f"{moved['load_avg_after'][0]:.1f} after)",
        flush=True,
    )
    return moved


def engines_table(results: dict[str, Any], configs: list[str]) -> list[str]:
    """One line per configuration and scenario: p50, p95, requests/s, CPU seconds."""
    lines = [
        f"    {'engine':<11} {'workers':>7} {'endpoint / scenario':<19} {'p50 ms':>8} "
        f"{'p95 ms':>8} {'req/s':>7} {'errors':>6} {'app cpu':>7} {'db cpu':>6} {'load':>5}"
    ]
    for key in configs:
        part = results.get(key)
        if not isinstance(part, dict) or "scenarios" not in part:
            lines.append(f"    {key}: {part.get('error') if isinstance(part, dict) else part}")
            continue
        engine, workers = part["server"]["engine"], part["server"]["workers"]
        for name, s in part["scenarios"].items():
            lines.append(
                f"    {engine:<11} {workers:>7} {name:<19} {s['p50_ms']:>8.1f} {s['p95_ms']:>8.1f} "
                f"{s['requests_per_s']:>7.1f} {s['errors']:>6} {s['server_cpu_s']:>7.1f} "
                f"{s.get('db_cpu_s', 0.0):>6.1f} {s['load_avg_1m_at_start']:>5.1f}"
            )
        live = part.get("live")
        if live:
            lines.append(f"    {engine:<11} {workers:>7} " + live_line("live", live).strip())
    return lines


async def run_engines(
    args: argparse.Namespace, results: dict[str, Any], tmp: Path
) -> dict[str, dict[str, list[float]]]:
    """DuckDB with one worker, then PostgreSQL with each of args.workers, on the same 10M
    store, one after another in this one run."""
    work: Path = args.work_dir
    if args.store is not None:
        path, how = args.store.resolve(), {"reused": True, "given": True}
    else:
        path, how = ensure_store(TARGET_SIZE, work, args.rebuild)
    counts = store_counts(path) or {}
    print(f"\n{SIZES[TARGET_SIZE]}\n  store {shown(path)}")
    print("    " + ", ".join(f"{k} {v:,}" for k, v in counts.items()), flush=True)
    results["store"] = {"path": shown(path), "build": how, "counts": counts}
    every: dict[str, dict[str, list[float]]] = {}
    configs: list[str] = []
    if args.with_duckdb:
        print("\nDuckDB, one worker", flush=True)
        results["duckdb-1"], every["duckdb-1"] = await measure_size(
            TARGET_SIZE, path, args, work, tmp
        )
        configs.append("duckdb-1")
    cluster = None
    try:
        if args.pg_url:
            url, postmaster = args.pg_url, None
            results["postgresql"] = {"server": "given (--pg-url); the store already moved"}
        else:
            sys.path.insert(0, str(REPO / "tests"))
            import psycopg

            from pg_server import ThrowawayCluster  # type: ignore[import-not-found]

            print("\nPostgreSQL: a throwaway cluster (tests/pg_server.py) ...", flush=True)
            cluster = ThrowawayCluster()
            with psycopg.connect(cluster.url, autocommit=True) as con:
                con.execute("CREATE DATABASE placeharm_bench")
            url = cluster.url.rsplit("/", 1)[0] + "/placeharm_bench"
            postmaster = postmaster_pid(cluster.folder / "data")
            with psycopg.connect(url) as con:
                row = con.execute("SHOW server_version").fetchone()
            results["postgresql"] = {
                "server": "throwaway cluster: initdb/pg_ctl as the postgres user, loopback, "
                "fsync=off, synchronous_commit=off, full_page_writes=off (a bench, not a "
                "production setting), other settings initdb's defaults",
                "version": row[0] if row else None,
            }
            results["postgresql"]["migrate_store"] = move_store(path, url, work)
        for n in args.workers:
            key = f"postgresql-{n}"
            print(f"\nPostgreSQL, {n} worker{'s' if n > 1 else ''}", flush=True)
            try:
                results[key], every[key] = await measure_size(
                    TARGET_SIZE, path, args, work, tmp, PgTarget(url, n, postmaster)
                )
            except Exception as exc:  # report it, measure the rest
                text = "".join(traceback.format_exception_only(exc)).strip()
                print(f"  measuring FAILED: {text}")
                results[key] = {"error": text, "traceback": traceback.format_exc()}
            configs.append(key)
    finally:
        if cluster is not None:
            cluster.stop()
    results["configs"] = configs
    print(
        f"\nSame store, same scenarios, one after another in this run ({args.clients} clients, "
        f"{args.duration:.0f} s each; app cpu: placeharm's processes, db cpu: PostgreSQL's; "
        f"CPU seconds while timed; load: 1-minute load average at the start; {os.cpu_count()} "
        "cores)"
    )
    print("\n".join(engines_table(results, configs)))
    return every


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=CLIENTS, help="concurrent clients (50)")
    parser.add_argument(
        "--duration", type=float, default=DURATION_S, help="seconds per scenario (20)"
    )
    parser.add_argument("--warmup-s", type=float, default=WARMUP_S, help="warm-up seconds (3)")
    parser.add_argument("--uploads", type=int, default=UPLOADS, help="live updates timed (20)")
    parser.add_argument(
        "--live-under-load",
        type=int,
        default=10,
        metavar="N",
        help="also time N uploads while the clients load /api/overview (0: skip; default 10)",
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="order of varied URLs")
    parser.add_argument("--demo-only", action="store_true", help="the demo size only")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="10M only, 5 s per scenario, 5 + 3 uploads, no wrk (under 2 min, stores built)",
    )
    parser.add_argument("--no-wrk", dest="wrk", action="store_false", help="skip wrk")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the stores")
    parser.add_argument(
        "--work-dir", type=Path, default=WORK / "web", help="where the stores go (bench/work/web)"
    )
    parser.add_argument("--strict", action="store_true", help="exit 2 when a target is missed")
    parser.add_argument(
        "--engine",
        choices=("duckdb", "postgresql"),
        default="duckdb",
        help="postgresql: 10M only, DuckDB with one worker then PostgreSQL with --workers",
    )
    parser.add_argument(
        "--workers",
        type=lambda text: [int(x) for x in text.split(",")],
        default=[1, 2, 4],
        help="--engine postgresql: app processes, comma-separated (1,2,4)",
    )
    parser.add_argument(
        "--pg-url",
        help="--engine postgresql: a database already holding the store (else a throwaway "
        "cluster, and migrate-store moves the store into it)",
    )
    parser.add_argument(
        "--store", type=Path, help="--engine postgresql: this 10M DuckDB store, as it is"
    )
    parser.add_argument(
        "--no-duckdb",
        dest="with_duckdb",
        action="store_false",
        help="--engine postgresql: skip DuckDB with one worker",
    )
    parser.add_argument("--stamp", help=argparse.SUPPRESS)  # run.py: share its timestamp
    parser.add_argument("--build-child", help=argparse.SUPPRESS)  # one store, in a child
    parser.add_argument("--building", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--build-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build_child:
        build_child(args.build_child, args.building, args.build_out)
        return
    if args.quick:
        for name, value in QUICK.items():
            setattr(args, name, value)
        args.wrk = False
        if args.demo_only:
            parser.error("--quick measures the 10M store only; leave out --demo-only")
    if args.clients < 1 or args.duration <= 0 or args.uploads < 1:
        parser.error("--clients, --duration and --uploads must be positive")
    if args.engine == "postgresql":
        if args.demo_only:
            parser.error("--engine postgresql measures the 10M store only")
        if not args.workers or min(args.workers) < 1:
            parser.error("--workers: whole numbers from 1, e.g. 1,2,4")

    _code_hash()  # the code this run started with
    args.src_digest = src_digest()
    args.work_dir = args.work_dir.resolve()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    if args.wrk and shutil.which("wrk") is None:
        args.wrk = False
        print("wrk not found (apt-get install wrk): the cross-check is skipped")
    stamp = args.stamp or utc_stamp()
    info = run_info("placeharm web API load benchmark", stamp)
    print(
        f"\nGET /api/overview, /api/ward/{WARD}, /api/records?kind=crimes&page=1..{RECORD_PAGES}; "
        f"{args.clients} clients (httpx, asyncio) on loopback, {args.duration:.0f} s per "
        f"endpoint and scenario. repeat: the same URL(s), so the server's page cache (pages by "
        f"(page, role, arguments), emptied when data arrives) answers; varied: from/to windows "
        f"of 1..{VARIED_MONTHS} months ending on a month held (overview and ward: index "
        f"{' or '.join(VARIED_INDICES)}; records: page 1..{RECORD_PAGES}), each URL once, so "
        f"every page is built. Targets: p95 <= {TARGET_P95_MS:.0f} ms at 10M records (every "
        f"endpoint and scenario, no errors); one page built alone (varied, 1-client median) <= "
        f"{TARGET_ALONE_MS:.0f} ms at 10M; live update <= {TARGET_LIVE_S:.0f} s (every upload)."
    )
    results: dict[str, Any] = dict(info)
    results |= {
        "clients": args.clients,
        "duration_s": args.duration,
        "warmup_s": args.warmup_s,
        "seed": args.seed,
        "ward": WARD,
        "record_pages": RECORD_PAGES,
        "varied_months": VARIED_MONTHS,
        "varied_indices": list(VARIED_INDICES),
        "uploads": args.uploads,
        "wrk": shutil.which("wrk") if args.wrk else None,
        "store_code_sha256": _code_hash(),
        "src_digest": args.src_digest,
    }
    if args.engine == "postgresql":
        main_engines(args, results, stamp)
        return
    sizes = ["demo"] if args.demo_only else [TARGET_SIZE] if args.quick else list(SIZES)
    if args.quick:
        results["demo"] = "skipped (--quick)"
        print("\n--quick: 10M records only, shorter runs; figures for a look, not for the record")
    if args.demo_only:
        results["ten_million"] = "skipped"
    with tempfile.TemporaryDirectory(prefix="placeharm-web-bench-") as tmp_name:
        every = asyncio.run(run_sizes(sizes, args, results, Path(tmp_name)))
        if args.demo_only:
            print("\n10M records: skipped (--demo-only)")

    raw = args.work_dir / f"latencies-{stamp}.json"
    with contextlib.suppress(OSError):
        write_json(
            raw, {k: {n: [round(x, 3) for x in v] for n, v in d.items()} for k, d in every.items()}
        )
        results["every_latency_ms"] = shown(raw)
    path = save_results("web", stamp, results, "web-latest.json")
    print(f"\nresults: {path.relative_to(REPO)} (and bench/results/web-latest.json)")
    print(f"every latency: {shown(raw)}")
    parts = {k: results[k] for k in SIZES if isinstance(results.get(k), dict)}
    failed = [k for k, p in parts.items() if "error" in p]
    targets = [t for p in parts.values() for t in p.get("targets", {}).values()]
    missed = [
        f"{k} {name}"
        for k, p in parts.items()
        for name, t in p.get("targets", {}).items()
        if not t["pass"]
    ]
    if missed:
        print("targets missed: " + "; ".join(missed))
    if src_digest() != args.src_digest:
        print("WARNING: src/placeharm changed during the run: the figures mix code versions")
    if failed or any(p.get("errors") for p in parts.values()):
        print(f"failed: {', '.join(failed) or 'requests answered with errors'} (see above)")
        sys.exit(1)
    if args.strict and not all(t["pass"] for t in targets):
        sys.exit(2)


def main_engines(args: argparse.Namespace, results: dict[str, Any], stamp: str) -> None:
    """--engine postgresql: run the sitting, save bench/results/web-pg-<UTC>.json."""
    results["engine"] = "postgresql"
    results["workers"] = args.workers
    results["live_under_load_uploads"] = args.live_under_load
    with tempfile.TemporaryDirectory(prefix="placeharm-web-bench-") as tmp_name:
        every = asyncio.run(run_engines(args, results, Path(tmp_name)))
    raw = args.work_dir / f"latencies-pg-{stamp}.json"
    with contextlib.suppress(OSError):
        write_json(
            raw, {k: {n: [round(x, 3) for x in v] for n, v in d.items()} for k, d in every.items()}
        )
        results["every_latency_ms"] = shown(raw)
    path = save_results("web-pg", stamp, results, "web-pg-latest.json")
    print(f"\nresults: {path.relative_to(REPO)} (and bench/results/web-pg-latest.json)")
    if src_digest() != args.src_digest:
        print("WARNING: src/placeharm changed during the run: the figures mix code versions")
    parts = [results[k] for k in results.get("configs", [])]
    if any("error" in p or p.get("errors") for p in parts):
        print("failed: a configuration failed or answered with errors (see above)")
        sys.exit(1)


if __name__ == "__main__":
    main()
