"""Generate the 10M-row street files by replicating the real Northumbria street rows.

For each of the real months, one gzip CSV holding that month's rows replicated ~19 times, so
that the months together hold exactly --rows rows (default 10,000,000), in proportion to
each month's real size. Replica 0 is the real row; every later replica gets a new Crime ID
(sha256 hex of "<id>:<replica>", where the row has one) and its coordinates moved by a
uniform random amount of at most --jitter degrees (seeded numpy Generator), so that the
replicas are distinct crimes at distinct points. Rows without coordinates stay without.

The output folder is reused when its manifest matches (same sources, rows, seed, jitter).

    .venv/bin/python bench/gen10m.py [--out bench/work/10m] [--rows 10000000]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import time
from pathlib import Path

import numpy as np
import polars as pl

from common import WORK, street_files

GEN_VERSION = 1
DEFAULT_ROWS = 10_000_000
DEFAULT_SEED = 20240601
DEFAULT_JITTER = 0.0005


def _shares(sizes: list[int], total: int) -> list[int]:
    """Split `total` in proportion to `sizes` (largest remainder), summing exactly."""
    whole = sum(sizes)
    exact = [total * s / whole for s in sizes]
    out = [int(e) for e in exact]
    order = sorted(range(len(sizes)), key=lambda i: exact[i] - out[i], reverse=True)
    for i in order[: total - sum(out)]:
        out[i] += 1
    return out


def _replicate(real: pl.DataFrame, rows: int, rng: np.random.Generator, jitter: float) -> bytes:
    n = real.height
    idx = np.arange(rows)
    src = idx % n
    rep = idx // n
    out = real[src]
    ids = out["Crime ID"].to_list()
    out = out.with_columns(
        pl.Series(
            "Crime ID",
            [
                i if r == 0 or i is None else hashlib.sha256(f"{i}:{r}".encode()).hexdigest()
                for i, r in zip(ids, rep.tolist(), strict=True)
            ],
            dtype=pl.String,
        )
    )
    moved = rep > 0
    for col in ("Longitude", "Latitude"):
        values = out[col].cast(pl.Float64).to_numpy().copy()
        shift = rng.uniform(-jitter, jitter, rows)
        values[moved] += shift[moved]
        out = out.with_columns(pl.Series(col, values, nan_to_null=True))
    # police.uk writes six decimals; so does float_precision=6
    return gzip.compress(out.write_csv(float_precision=6).encode(), compresslevel=6)


def generate(
    out_dir: Path,
    rows: int = DEFAULT_ROWS,
    seed: int = DEFAULT_SEED,
    jitter: float = DEFAULT_JITTER,
    force: bool = False,
) -> tuple[list[Path], dict[str, object]]:
    """Write (or reuse) the replicated files; return them and the manifest."""
    sources = street_files()
    if not sources:
        raise SystemExit("no real street files found; set PLACEHARM_SHARED_DATA")
    manifest_path = out_dir / "manifest.json"
    wanted = {
        "version": GEN_VERSION,
        "rows": rows,
        "seed": seed,
        "jitter_deg": jitter,
        "sources": {p.name: p.stat().st_size for p in sources},
    }
    if manifest_path.exists() and not force:
        held = json.loads(manifest_path.read_text())
        files = [out_dir / f for f in held.get("files", [])]
        if {k: held.get(k) for k in wanted} == wanted and all(f.exists() for f in files):
            return files, held | {"reused": True}
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest_path.unlink(missing_ok=True)
    t0 = time.perf_counter()
    real = [pl.read_csv(p, infer_schema=False) for p in sources]
    targets = _shares([r.height for r in real], rows)
    rng = np.random.default_rng(seed)
    files = []
    for path, frame, target in zip(sources, real, targets, strict=True):
        dest = out_dir / path.name
        tmp = dest.with_suffix(".tmp")
        tmp.write_bytes(_replicate(frame, target, rng, jitter))
        tmp.replace(dest)
        files.append(dest)
    manifest = wanted | {
        "files": [f.name for f in files],
        "rows_per_file": targets,
        "generate_s": round(time.perf_counter() - t0, 1),
        "bytes": sum(f.stat().st_size for f in files),
    }
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return files, manifest | {"reused": False}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=WORK / "10m")
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--jitter", type=float, default=DEFAULT_JITTER)
    parser.add_argument("--force", action="store_true", help="regenerate even if present")
    args = parser.parse_args()
    files, manifest = generate(args.out, args.rows, args.seed, args.jitter, args.force)
    print(f"{len(files)} files, {args.rows:,} rows in {args.out} (reused: {manifest['reused']})")


if __name__ == "__main__":
    main()
