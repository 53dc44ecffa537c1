"""Benchmark: ``picscore report`` over a million-row results file (issue 19's targets: the page
built in under a minute on 2 cores, under 500 MB peak RSS).

Two synthetic nights of ``--rows`` rows each (default 1,000,000), from a fixed seed: keys in 40
top-level prefixes and 2,000 folders; 96 % scored (seven sub-scores each), 2 % skipped, 1 %
failed over four error codes, 1 % missing. The second night replaces 2 % of the objects with
lower scores, adds 1 % new ones and drops 0.5 %. Each command runs as a child process (wall
time, CPU, peak RSS from ``wait4``), without thumbnails (no server: the page's thumbnails are a
bounded 24 calls, measured by the tests, not by row count):

1. ``report NIGHT2`` — one night;
2. ``report NIGHT2 --compare NIGHT1`` — night over night (both files read, joined on keys).

    python benchmarks/bench_report.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from bench_worker import child_env, run_child

from worker.results.formats import RESULT_PARQUET_SCHEMA

BUCKET = "library"
DIMENSIONS = ("Resolution", "Noise", "Blur", "Compression", "Distortion", "Saturation", "Exposure")
CODES = ("InvalidArgument", "AccessDenied", "RetriesExhausted", "InvalidImage")
#: The targets issue 19 sets for a million rows.
TARGET_S, TARGET_MB = 60.0, 500.0


def night(rows: int, seed: int, *, replaced: float = 0.0, new: float = 0.0, dropped: float = 0.0) -> pa.Table:
    """One night's results: object ``i`` is the same object every night unless replaced."""
    rng = np.random.default_rng(seed)
    base = np.arange(rows)
    keep = base[rng.random(rows) >= dropped]
    added = np.arange(rows, rows + int(rows * new))
    index = np.concatenate([keep, added])
    n = len(index)
    scores = (np.sin(index * 12.9898) * 43758.5453 % 1 + 1) % 1  # a fixed score per object
    scores = np.round(0.15 + 0.8 * scores ** 0.7, 3)
    changed = rng.random(n) < replaced
    scores[changed] = np.round(scores[changed] * 0.5, 3)
    status = rng.choice(["scored", "skipped", "failed", "missing"], n, p=[0.96, 0.02, 0.01, 0.01])
    scored = status == "scored"
    width = len(DIMENSIONS)
    offsets = np.concatenate([[0], np.cumsum(np.where(scored, width, 0))]).astype(np.int32)
    names = pc.take(pa.array([f"{d}Score" for d in DIMENSIONS]), pa.array(np.tile(np.arange(width), int(scored.sum()))))
    dimensions = pa.MapArray.from_arrays(pa.array(offsets), names, pa.array(rng.random(offsets[-1]).round(3)))
    prefix = np.char.add("p", (index % 40).astype(str))
    folder = np.char.add("/f", (index % 2000).astype(str))
    name = np.char.add("/2026/11/IMG_", np.char.zfill(index.astype(str), 8))  # about 40 characters a key
    key = np.char.add(np.char.add(np.char.add(prefix, folder), name), ".jpg")
    etag = np.char.add(np.where(changed, "E1", "E0"), np.char.zfill(index.astype(str), 30))  # 32 chars, as MD5 hex
    code = np.where(status == "skipped", "TooLarge", np.where(status == "failed", rng.choice(CODES, n),
                                                                np.where(status == "missing", "NoSuchKey", "")))
    when = 1764547200000 + np.sort(rng.integers(0, 3_600_000, n))
    unscored = ~scored
    return pa.table({
        "bucket": pa.array(np.full(n, BUCKET)), "key": pa.array(key), "etag": pa.array(etag),
        "size": pa.array(rng.integers(50_000, 5_000_000, n)),
        "last_modified": pa.array(np.full(n, 1764547200000), pa.timestamp("ms", tz="UTC")),
        "status": pa.array(status), "score": pa.array(scores, mask=unscored), "dimensions": dimensions,
        "error_code": pa.array(code, mask=scored),
        "error_message": pa.array(np.char.add("failed: ", code), mask=scored),
        "http_status": pa.array(np.where(scored, 200, 400)), "attempts": pa.array(np.ones(n, dtype=np.int64)),
        "latency_ms": pa.array(rng.random(n) * 50), "request_id": pa.nulls(n, pa.string()),
        "scored_at": pa.array(when, pa.timestamp("ms", tz="UTC")),
        "storage_class": pa.array(np.full(n, "Standard")),
    }).cast(RESULT_PARQUET_SCHEMA)


def write_nights(work: Path, rows: int) -> tuple[Path, Path]:
    first, second = work / "night1.parquet", work / "night2.parquet"
    pq.write_table(night(rows, 1), first, compression="zstd", row_group_size=100_000)
    pq.write_table(night(rows, 2, replaced=0.02, new=0.01, dropped=0.005), second, compression="zstd",
                   row_group_size=100_000)
    return first, second


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--write-nights", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write_nights:
        write_nights(args.write_nights, args.rows)
        return
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        work = Path(tmp)
        started = time.perf_counter()
        # In a child process, so this process stays small (a forked child's peak RSS starts from its parent's).
        subprocess.run([sys.executable, __file__, "--write-nights", str(work), "--rows", str(args.rows)], check=True)
        first, second = work / "night1.parquet", work / "night2.parquet"
        print(f"synthetic nights: {args.rows:,} rows each, {second.stat().st_size / 2**20:.0f} MiB "
              f"(made in {time.perf_counter() - started:.0f} s)")
        runs = {
            "report NIGHT2": [str(second)],
            "report NIGHT2 --compare NIGHT1": [str(second), "--compare", str(first)],
        }
        print(f"{'command':<34} {'wall s':>7} {'CPU s':>6} {'peak RSS MB':>12} {'page KiB':>9} "
              f"{'time/target':>12} {'RSS/target':>11}")
        for label, argv in runs.items():
            page = work / "report.html"
            child = run_child([sys.executable, "-m", "worker.cli", "report", *argv, "--output", str(page),
                               "--log-level", "warning"], child_env(), 900)
            assert child.code == 0, child.stdout[-2000:] + child.stderr[-2000:]
            print(f"{label:<34} {child.wall_s:7.1f} {child.cpu_s:6.1f} {child.maxrss_mb:12.0f} "
                  f"{page.stat().st_size / 1024:9.0f} {child.wall_s / TARGET_S:12.2f} "
                  f"{child.maxrss_mb / TARGET_MB:11.2f}")
            print("  " + child.stdout.strip().replace("\n", "\n  "))


if __name__ == "__main__":
    main()
