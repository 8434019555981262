"""placeharm benchmarks: ingest (real Northumbria data against a pandas baseline, and 10M
rows), then the harm ranking query (bench/harm_rank.py, 524k and ~10M rows), then the SOC
ranking (bench/soc_rank.py, demo slice and Northumbria 33 months, overlay at 1x and 10x), then
the web API under load (bench/web_load.py, demo size and 10M records, and live updates).

    .venv/bin/python bench/run.py              # full: Northumbria x3 (interleaved) + 10M x1
    .venv/bin/python bench/run.py --quick      # Northumbria only, one run of each
    .venv/bin/python bench/run.py --skip-10m   # Northumbria x3 only
    .venv/bin/python bench/run.py --profile    # also one cProfile'd placeharm child
    .venv/bin/python bench/run.py --only harm  # only the harm ranking query (or --only ingest)
    .venv/bin/python bench/run.py --only soc   # only the SOC ranking
    .venv/bin/python bench/run.py --only web   # only the web API load benchmark
    .venv/bin/python bench/run.py --only analysis  # alerts, prominence and hot spots

Every measured ingest run is a fresh subprocess on a fresh temporary store; its peak RSS comes
from os.wait4 on that child. Results go to bench/results/ingest-<UTC>.json and latest.json;
the harm ranking benchmark writes harm-<UTC>.json and harm-latest.json, the SOC ranking
benchmark soc-<UTC>.json and soc-latest.json, the web API load benchmark web-<UTC>.json and
web-latest.json; the analysis benchmarks (bench/analysis_bench.py: alerts and prominence;
bench/hotspots_bench.py: Gi*) analysis-*.json and hotspots-*.json. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import (
    BENCH,
    REPO,
    REQUIRED_EQUAL,
    WORK,
    area_paths,
    mark,
    northumbria_dir,
    outcome_files,
    output_counts,
    run_info,
    save_results,
    street_files,
    target_line,
    utc_stamp,
)

NORTHUMBRIA_TARGET_S = 3.0
RATIO_TARGET = 5.0
BIG_TARGET_S = 30.0
BIG_TARGET_RSS_MB = 2.5 * 1024
UPDATE_TARGET_S = 1.0  # one month (~300k rows) into the 10M store, through commit (issue 14)
EXPECTED_NORTHUMBRIA = {"crimes": 524_070, "outcomes": 250_684}


# -- running one child ----------------------------------------------------------------------


def run_child(
    kind: str, files_json: Path, tmp: Path, profile: Path | None = None
) -> dict[str, Any]:
    """Run one measured child on a fresh store; return its report, peak RSS and counts."""
    run_dir = Path(tempfile.mkdtemp(prefix=f"{kind}-", dir=tmp))
    store = run_dir / "store.duckdb"
    out = run_dir / "result.json"
    if kind == "baseline":
        script = BENCH / "baseline_pandas.py"
        cmd = [sys.executable, str(script), "--db", str(store), "--files", str(files_json)]
    else:
        script = BENCH / "placeharm_ingest.py"
        cmd = [sys.executable, str(script), "--store", str(store), "--files", str(files_json)]
        if profile is not None:
            cmd += ["--profile", str(profile)]
    cmd += ["--out", str(out)]
    load = os.getloadavg()[0]
    with (run_dir / "stdout").open("wb") as so, (run_dir / "stderr").open("wb") as se:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=so, stderr=se, cwd=REPO)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        process_s = time.perf_counter() - started
    if proc.returncode != 0:
        err = (run_dir / "stderr").read_text(errors="replace")[-3000:]
        shutil.rmtree(run_dir, ignore_errors=True)
        raise SystemExit(f"{kind} child failed (exit {proc.returncode}):\n{err}")
    report: dict[str, Any] = json.loads(out.read_text())
    report["peak_rss_mb"] = usage.ru_maxrss / 1024  # Linux: KiB
    report["process_s"] = process_s
    report["load_avg_1m_at_start"] = load
    report["store_mb"] = sum(p.stat().st_size for p in run_dir.glob("store.duckdb*")) / 2**20
    report["counts"] = output_counts(store)
    shutil.rmtree(run_dir, ignore_errors=True)
    return report


# -- figures --------------------------------------------------------------------------------


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def compare_counts(p: dict[str, int], b: dict[str, int]) -> tuple[bool, list[str]]:
    lines, ok = [], True
    for key in p:
        same = p[key] == b.get(key)
        required = key in REQUIRED_EQUAL
        ok = ok and (same or not required)
        flag = "ok" if same else ("MISMATCH" if required else "differs")
        lines.append(f"    {key:<20} {p[key]:>12,}  {b.get(key, -1):>12,}  {flag}")
    return ok, lines


# -- the benchmark --------------------------------------------------------------------------


def northumbria(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    files = street_files() + outcome_files()
    files_json = tmp / "northumbria.json"
    files_json.write_text(json.dumps([str(p) for p in files]))
    runs = 1 if args.quick else args.runs
    print(
        f"\nNorthumbria: {len(street_files())} street + {len(outcome_files())} outcomes files "
        f"from {northumbria_dir()}, 3 area sets; {runs} interleaved run(s) of each"
    )
    rounds = []
    for i in range(runs):
        order = ["placeharm", "baseline"] if i % 2 == 0 else ["baseline", "placeharm"]
        got = {}
        for kind in order:
            got[kind] = run_child(kind, files_json, tmp)
            r = got[kind]
            print(
                f"  run {i + 1} {kind:<9} ingest + close {r['ingest_close_s']:6.2f} s "
                f"(close {r['close_s']:.2f} s)  peak RSS {r['peak_rss_mb']:6.0f} MB  "
                f"(areas {r['areas_s']:.2f} s, load {r['load_avg_1m_at_start']:.1f})"
                + (f"  harm cube {r['cells_s']:.2f} s" if r.get("cells_s") is not None else ""),
                flush=True,
            )
        # Both through closing the store file: the close is each one's checkpoint.
        ratio = got["baseline"]["ingest_close_s"] / got["placeharm"]["ingest_close_s"]
        rounds.append({"placeharm": got["placeharm"], "baseline": got["baseline"], "ratio": ratio})

    p_times = [r["placeharm"]["ingest_close_s"] for r in rounds]
    b_times = [r["baseline"]["ingest_close_s"] for r in rounds]
    ratios = [r["ratio"] for r in rounds]
    p_med, b_med = median(p_times), median(b_times)
    ratio_med = median(ratios)
    p_rss = median([r["placeharm"]["peak_rss_mb"] for r in rounds])
    b_rss = median([r["baseline"]["peak_rss_mb"] for r in rounds])
    p_close = median([r["placeharm"]["close_s"] for r in rounds])
    b_close = median([r["baseline"]["close_s"] for r in rounds])
    p_open = median([r["placeharm"]["ingest_s"] for r in rounds])

    counts_ok = True
    count_lines: list[str] = []
    for r in rounds:
        ok, lines = compare_counts(r["placeharm"]["counts"], r["baseline"]["counts"])
        counts_ok = counts_ok and ok
        count_lines = count_lines or lines
        for key, want in EXPECTED_NORTHUMBRIA.items():
            counts_ok = counts_ok and r["placeharm"]["counts"][key] == want
        counts_ok = counts_ok and r["placeharm"]["statuses"] == {"ok": len(files)}

    fmt = ", ".join
    print(
        "\n  Northumbria summary (median of runs; wall time from the first file read to the "
        "store file closed, area import excluded)"
    )
    print(
        f"    placeharm  {p_med:6.2f} s   peak RSS {p_rss:6.0f} MB   runs: "
        f"{fmt(f'{t:.2f}' for t in p_times)}   (of which close {p_close:.2f} s; "
        f"before close {p_open:.2f} s)"
    )
    print(
        f"    baseline   {b_med:6.2f} s   peak RSS {b_rss:6.0f} MB   runs: "
        f"{fmt(f'{t:.2f}' for t in b_times)}   (of which close {b_close:.2f} s)"
    )
    print(
        f"    ratio baseline/placeharm (same round): median {ratio_med:.2f}x   runs: "
        f"{fmt(f'{x:.2f}x' for x in ratios)}"
    )
    print(
        target_line(
            f"placeharm <= {NORTHUMBRIA_TARGET_S:.0f} s",
            p_med <= NORTHUMBRIA_TARGET_S,
            f"{p_med:.2f} s",
        )
    )
    print(
        target_line(
            f">= {RATIO_TARGET:.0f}x faster than baseline",
            ratio_med >= RATIO_TARGET,
            f"{ratio_med:.2f}x",
        )
    )
    print("    output counts             placeharm      baseline")
    print("\n".join(count_lines))
    print(
        f"    counts check ({', '.join(REQUIRED_EQUAL)} equal; crimes 524,070, outcomes "
        f"250,684; every file ok) ... {mark(counts_ok)}"
    )
    return {
        "files": len(files),
        "runs": rounds,
        "measure": "ingest_close_s (first file read to store file closed)",
        "placeharm_median_s": p_med,
        "placeharm_before_close_median_s": p_open,
        "baseline_median_s": b_med,
        "ratio_median": ratio_med,
        "ratio_of_medians": b_med / p_med,
        "placeharm_peak_rss_median_mb": p_rss,
        "baseline_peak_rss_median_mb": b_rss,
        "targets": {
            "placeharm_s": {
                "target": NORTHUMBRIA_TARGET_S,
                "value": p_med,
                "pass": p_med <= NORTHUMBRIA_TARGET_S,
            },
            "ratio": {
                "target": RATIO_TARGET,
                "value": ratio_med,
                "pass": ratio_med >= RATIO_TARGET,
            },
        },
        "counts_ok": counts_ok,
    }


def ten_million(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    from gen10m import DEFAULT_ROWS, generate

    work = args.work_dir or WORK / "10m"
    print(f"\n10M rows: generating (not timed) into {work} ...", flush=True)
    t0 = time.perf_counter()
    files, manifest = generate(work, DEFAULT_ROWS, force=args.regen)
    gen_s = time.perf_counter() - t0
    print(
        f"  {len(files)} files, {DEFAULT_ROWS:,} rows, {manifest['bytes'] / 2**20:.0f} MB gzip "
        f"({'reused' if manifest['reused'] else f'generated in {gen_s:.0f} s'})"
    )
    files_json = tmp / "big.json"
    files_json.write_text(json.dumps([str(p) for p in files]))
    runs = []
    for i in range(args.repeat):
        r = run_child("placeharm", files_json, tmp)
        runs.append(r)
        print(
            f"  run {i + 1} placeharm ingest + close {r['ingest_close_s']:6.2f} s  peak RSS "
            f"{r['peak_rss_mb']:6.0f} MB  (close {r['close_s']:.2f} s, store "
            f"{r['store_mb']:.0f} MB, load {r['load_avg_1m_at_start']:.1f})"
            + (f"  harm cube {r['cells_s']:.2f} s" if r.get("cells_s") is not None else ""),
            flush=True,
        )
    t_med = median([r["ingest_close_s"] for r in runs])
    rss_max = max(r["peak_rss_mb"] for r in runs)
    counts = runs[0]["counts"]
    counts_ok = all(
        r["counts"]["crimes"] == DEFAULT_ROWS
        and r["counts"]["quarantined"] == 0
        and r["statuses"] == {"ok": len(files)}
        for r in runs
    )
    print("  baseline: skipped at 10M (not required)")
    print(
        target_line(
            f"10M ingest <= {BIG_TARGET_S:.0f} s",
            t_med <= BIG_TARGET_S,
            f"{t_med:.2f} s, median of {len(runs)}",
        )
    )
    print(
        target_line(
            f"10M peak RSS <= {BIG_TARGET_RSS_MB / 1024:.1f} GB",
            rss_max <= BIG_TARGET_RSS_MB,
            f"{rss_max / 1024:.2f} GB max",
        )
    )
    print(
        f"    counts: crimes {counts['crimes']:,}, no location {counts['no_location']:,}, "
        f"outside areas {counts['outside_areas']:,}, quarantined {counts['quarantined']:,} "
        f"... {mark(counts_ok)}"
    )
    update = one_month_update(args, files_json, tmp) if not args.skip_update else "skipped"
    return {
        "rows": DEFAULT_ROWS,
        "update": update,
        "generator": {k: v for k, v in manifest.items() if k != "sources"},
        "runs": runs,
        "measure": "ingest_close_s (first file read to store file closed)",
        "placeharm_median_s": t_med,
        "placeharm_before_close_median_s": median([r["ingest_s"] for r in runs]),
        "placeharm_peak_rss_max_mb": rss_max,
        "baseline": "skipped (not required at 10M)",
        "targets": {
            "seconds": {"target": BIG_TARGET_S, "value": t_med, "pass": t_med <= BIG_TARGET_S},
            "peak_rss_mb": {
                "target": BIG_TARGET_RSS_MB,
                "value": rss_max,
                "pass": rss_max <= BIG_TARGET_RSS_MB,
            },
        },
        "counts_ok": counts_ok,
    }


def one_month_update(args: argparse.Namespace, files_json: Path, tmp: Path) -> dict[str, Any]:
    """bench/placeharm_update.py: the last month's file into a store of the 10M files of
    every other month, then a later download of it (a revision), each through its commit."""
    from gen10m import DEFAULT_ROWS

    work = (args.work_dir or WORK / "10m").parent / "10m-update"
    out = tmp / "update.json"
    print(
        f"\nOne-month update into the 10M store ({args.update_rounds} round(s); the store of "
        f"the other 32 months kept in {work}, built once, not timed) ...",
        flush=True,
    )
    cmd = [
        sys.executable,
        str(BENCH / "placeharm_update.py"),
        "--files",
        str(files_json),
        "--work",
        str(work),
        "--out",
        str(out),
        "--rounds",
        str(args.update_rounds),
    ]
    load = os.getloadavg()[0]
    proc = subprocess.run(cmd, cwd=REPO, check=False, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"update child failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    report: dict[str, Any] = json.loads(out.read_text())
    report["load_avg_1m_at_start"] = load
    if not report["base_store_reused"]:
        print(f"  base store built in {report['base_store_s']:.0f} s")
    for i, r in enumerate(report["rounds"]):
        print(
            f"  round {i + 1}  new month {r['new_month_s']:6.2f} s "
            f"(CPU {r.get('new_month_cpu_s', float('nan')):.2f} s, "
            f"cube {r['new_month_cells_s']:.3f} s)"
            f"  revision {r['revision_s']:6.2f} s (CPU {r.get('revision_cpu_s', float('nan')):.2f}"
            f" s, cube {r['revision_cells_s']:.3f} s, "
            f"{r['revision_result']['updated']:,} updated)  cube = recount: "
            f"{mark(r['cells_differing'] == 0)}",
            flush=True,
        )
    new = median([r["new_month_s"] for r in report["rounds"]])
    rev = median([r["revision_s"] for r in report["rounds"]])
    ok = all(
        r["cells_differing"] == 0
        and r["crimes"] == DEFAULT_ROWS
        and r["new_month_result"]["status"] == "ok"
        and r["revision_result"]["status"] == "ok"
        for r in report["rounds"]
    )
    print(
        target_line(f"new month <= {UPDATE_TARGET_S:.0f} s", new <= UPDATE_TARGET_S, f"{new:.2f} s")
    )
    print(
        target_line(f"revision <= {UPDATE_TARGET_S:.0f} s", rev <= UPDATE_TARGET_S, f"{rev:.2f} s")
    )
    report.update(
        {
            "new_month_median_s": new,
            "revision_median_s": rev,
            "counts_ok": ok,
            "targets": {
                "new_month_s": {
                    "target": UPDATE_TARGET_S,
                    "value": new,
                    "pass": new <= UPDATE_TARGET_S,
                },
                "revision_s": {
                    "target": UPDATE_TARGET_S,
                    "value": rev,
                    "pass": rev <= UPDATE_TARGET_S,
                },
            },
        }
    )
    return report


def profile(tmp: Path) -> dict[str, Any]:
    files = street_files() + outcome_files()
    files_json = tmp / "profile.json"
    files_json.write_text(json.dumps([str(p) for p in files]))
    stats = tmp / "placeharm.pstats"
    r = run_child("placeharm", files_json, tmp, profile=stats)
    text = stats.with_suffix(".txt").read_text().strip()
    print(
        f"\ncProfile of one placeharm Northumbria ingest ({r['ingest_s']:.2f} s under the "
        "profiler; prefetch-thread parse_file calls merged in, so cumulative times overlap):"
    )
    print(text)
    WORK.mkdir(parents=True, exist_ok=True)
    shutil.copy(stats, WORK / "placeharm-latest.pstats")
    return {"ingest_s": r["ingest_s"], "top_cumulative": text}


def ingest_benchmark(args: argparse.Namespace, stamp: str) -> int:
    """The ingest benchmark; returns the exit code (0, 1: wrong counts, 2: target missed)."""
    info = run_info("placeharm ingest benchmark", stamp)
    results: dict[str, Any] = dict(info)
    with tempfile.TemporaryDirectory(prefix="placeharm-bench-") as tmp_name:
        tmp = Path(tmp_name)
        results["northumbria"] = northumbria(args, tmp)
        if args.quick or args.skip_10m:
            results["ten_million"] = "skipped"
            print("\n10M rows: skipped (--quick / --skip-10m)")
        else:
            results["ten_million"] = ten_million(args, tmp)
        if args.profile:
            results["profile"] = profile(tmp)

    path = save_results("ingest", stamp, results, "latest.json")
    print(f"\nresults: {path.relative_to(REPO)} (and bench/results/latest.json)")

    checks = [results["northumbria"]["counts_ok"]]
    targets = list(results["northumbria"]["targets"].values())
    if isinstance(results["ten_million"], dict):
        checks.append(results["ten_million"]["counts_ok"])
        targets += list(results["ten_million"]["targets"].values())
        update = results["ten_million"]["update"]
        if isinstance(update, dict):
            checks.append(update["counts_ok"])
            targets += list(update["targets"].values())
    if not all(checks):
        print("output counts are wrong: see above")
        return 1
    if args.strict and not all(t["pass"] for t in targets):
        return 2
    return 0


def harm_benchmark(args: argparse.Namespace, stamp: str) -> int:
    """bench/harm_rank.py in its own process; returns its exit code (as ingest_benchmark)."""
    cmd = [sys.executable, str(BENCH / "harm_rank.py"), "--stamp", stamp]
    if args.quick or args.skip_10m:
        cmd.append("--skip-10m")
    if args.regen:
        cmd.append("--rebuild")
    if args.strict:
        cmd.append("--strict")
    if args.seed is not None:
        cmd += ["--seed", str(args.seed)]
    sys.stdout.flush()
    return subprocess.run(cmd, cwd=REPO, check=False).returncode


def soc_benchmark(args: argparse.Namespace, stamp: str) -> int:
    """bench/soc_rank.py in its own process; returns its exit code (as ingest_benchmark)."""
    cmd = [sys.executable, str(BENCH / "soc_rank.py"), "--stamp", stamp]
    if args.quick:
        cmd.append("--quick")
    if args.regen:
        cmd.append("--rebuild")
    if args.strict:
        cmd.append("--strict")
    if args.seed is not None:
        cmd += ["--seed", str(args.seed)]
    sys.stdout.flush()
    return subprocess.run(cmd, cwd=REPO, check=False).returncode


def web_benchmark(args: argparse.Namespace, stamp: str) -> int:
    """bench/web_load.py in its own process; returns its exit code (as ingest_benchmark)."""
    cmd = [sys.executable, str(BENCH / "web_load.py"), "--stamp", stamp]
    if args.quick or args.skip_10m:
        cmd.append("--demo-only")
    if args.regen:
        cmd.append("--rebuild")
    if args.strict:
        cmd.append("--strict")
    if args.seed is not None:
        cmd += ["--seed", str(args.seed)]
    sys.stdout.flush()
    return subprocess.run(cmd, cwd=REPO, check=False).returncode


def analysis_benchmark(args: argparse.Namespace, stamp: str) -> int:
    """bench/analysis_bench.py then bench/hotspots_bench.py, each in its own process; the
    worse exit code (as ingest_benchmark)."""
    codes = []
    for script, extra in (
        ("analysis_bench.py", ["--rebuild"] if args.regen else []),
        ("hotspots_bench.py", []),
    ):
        cmd = [sys.executable, str(BENCH / script), "--stamp", stamp, *extra]
        if args.quick:
            cmd += ["--runs", "3"]
        if args.strict:
            cmd.append("--strict")
        sys.stdout.flush()
        codes.append(subprocess.run(cmd, cwd=REPO, check=False).returncode)
    return max(codes, key=lambda code: (code not in (0, 2), code))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--only",
        choices=("ingest", "harm", "soc", "web", "analysis"),
        help=(
            "run one benchmark (default: ingest, the harm ranking query, SOC ranking, web API, "
            "analysis)"
        ),
    )
    parser.add_argument("--quick", action="store_true", help="Northumbria only, one run each")
    parser.add_argument("--skip-10m", action="store_true", help="skip the 10M-row runs")
    parser.add_argument("--runs", type=int, default=3, help="Northumbria rounds (default 3)")
    parser.add_argument("--repeat", type=int, default=1, help="10M runs (default 1)")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also run one cProfile'd placeharm Northumbria ingest",
    )
    parser.add_argument("--work-dir", type=Path, help="where the 10M files go (bench/work/10m)")
    parser.add_argument(
        "--skip-update", action="store_true", help="skip the one-month update into the 10M store"
    )
    parser.add_argument(
        "--update-rounds", type=int, default=3, help="one-month update rounds (default 3)"
    )
    parser.add_argument(
        "--regen",
        action="store_true",
        help="regenerate the 10M files and the harm, SOC and web stores",
    )
    parser.add_argument("--seed", type=int, help="harm, SOC and web: seed of the query sequence")
    parser.add_argument("--strict", action="store_true", help="exit 2 when a target is missed")
    args = parser.parse_args()

    missing = [p for _, p in area_paths() if not p.exists()]
    if not street_files() or not outcome_files() or missing:
        raise SystemExit(
            f"real data not found under {northumbria_dir().parent.parent} (set "
            "PLACEHARM_SHARED_DATA to the folder holding policeuk/ and boundaries/)"
        )
    stamp = utc_stamp()
    codes = []
    if args.only in (None, "ingest"):
        codes.append(ingest_benchmark(args, stamp))
    if args.only in (None, "harm"):
        if codes:
            print()
        codes.append(harm_benchmark(args, stamp))
    if args.only in (None, "soc"):
        if codes:
            print()
        codes.append(soc_benchmark(args, stamp))
    if args.only in (None, "web"):
        if codes:
            print()
        codes.append(web_benchmark(args, stamp))
    if args.only in (None, "analysis"):
        if codes:
            print()
        codes.append(analysis_benchmark(args, stamp))
    if any(code not in (0, 2) for code in codes):
        sys.exit(1)
    sys.exit(max(codes))


if __name__ == "__main__":
    main()
