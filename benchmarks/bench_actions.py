"""Benchmark: ``picscore filter`` and ``picscore covers`` at library scale, and the act phase's
rate against a real ``picscore serve``.

Measured in one run, each command a child process (wall time, CPU, peak RSS from ``wait4``):

1. **Planning at scale.** A synthetic results file of ``--rows`` rows (default 1,000,000: keys
   in ``--groups`` folders, scores and seven sub-scores drawn from a fixed seed):
   ``filter --worst-percent 10 --where …`` (report: two reads of the file, the selection written)
   and ``covers --top 3`` (one cover list per folder). Memory must not grow with the rows.
2. **Acting.** ``--objects`` small objects on a real server (default 2,000); ``filter --action
   tag`` (HEAD If-Match, GetObjectTagging, PutObjectTagging per object) and ``--action delete``
   (HEAD If-Match per object, DeleteMultipleObjects batches) at ``--concurrency``: objects per
   second and requests per object (from the server's request log), with the journal's two fsynced
   commits per object included, as in production.

    python benchmarks/bench_actions.py [--rows 1000000] [--groups 100000] [--objects 2000]
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from bench_worker import KEY_ID, REGION, SECRET, child_env, run_child

from tests.integration.runhelpers import server_requests  # the server's own request log
from worker.results.formats import RESULT_PARQUET_SCHEMA, read_rows
from worker.server.launch import start_server

BUCKET = "acting"
DIMENSIONS = ("Resolution", "Noise", "Blur", "Compression", "Distortion", "Saturation", "Exposure")


def synthetic_results(path: Path, rows: int, groups: int, seed: int = 7) -> None:
    """``rows`` scored rows in ``groups`` folders, written in batches (the generator's memory is one batch)."""
    rng = np.random.default_rng(seed)
    writer = pq.ParquetWriter(path, RESULT_PARQUET_SCHEMA, compression="zstd")
    when = pa.scalar(1764547200000, pa.timestamp("ms", tz="UTC"))
    step = 100_000
    for start in range(0, rows, step):
        n = min(step, rows - start)
        index = np.arange(start, start + n)
        scores = rng.beta(5, 2, n).round(3)
        dims = [[(f"{d}Score", float(v)) for d, v in zip(DIMENSIONS, rng.random(7).round(3), strict=True)]
                for _ in range(n)]
        table = pa.table({
            "bucket": pa.array([BUCKET] * n), "key": pa.array([f"g{i % groups:06d}/img-{i:08d}.jpg" for i in index]),
            "etag": pa.array([f"{i:032X}" for i in index]), "size": pa.array(rng.integers(50_000, 5_000_000, n)),
            "last_modified": pa.array([when.value] * n, pa.timestamp("ms", tz="UTC")),
            "status": pa.array(["scored"] * n), "score": pa.array(scores),
            "dimensions": pa.array(dims, pa.map_(pa.string(), pa.float64())),
            "error_code": pa.nulls(n, pa.string()), "error_message": pa.nulls(n, pa.string()),
            "http_status": pa.array([200] * n, pa.int64()), "attempts": pa.array([1] * n, pa.int64()),
            "latency_ms": pa.array(rng.random(n) * 50), "request_id": pa.nulls(n, pa.string()),
            "scored_at": pa.array([when.value] * n, pa.timestamp("ms", tz="UTC")),
            "storage_class": pa.array(rng.choice(["Standard", "IA"], n, p=[0.9, 0.1])),
        }).cast(RESULT_PARQUET_SCHEMA)
        writer.write_table(table)
    writer.close()


def command(name: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "worker.cli", name, *args, "--log-format", "json", "--progress", "never",
            "--log-level", "warning"]


def planning(work: Path, rows: int, groups: int) -> None:
    results = work / "big.parquet"
    started = time.perf_counter()
    # In a child process: a forked child's peak RSS (wait4) starts from its parent's, so the parent
    # must stay small for the commands' figures to be their own.
    subprocess.run([sys.executable, __file__, "--write-synthetic", str(results), "--rows", str(rows),
                    "--groups", str(groups)], check=True)
    print(f"synthetic results: {rows:,} rows in {groups:,} folders, {results.stat().st_size / 2**20:.0f} MiB "
          f"(made in {time.perf_counter() - started:.0f} s)")
    runs = {
        "filter --worst-percent 10 --where 'blur < 0.5' (report)":
            command("filter", str(results), "--worst-percent", "10", "--where", "blur < 0.5",
                    "--output", str(work / "selection.parquet")),
        "covers --top 3 (by folder)":
            command("covers", str(results), "--top", "3", "--output", str(work / "covers.parquet")),
    }
    print(f"{'command':<58} {'wall s':>7} {'CPU s':>6} {'peak RSS MB':>12} {'rows/s':>10}")
    for label, argv in runs.items():
        child = run_child(argv, child_env(), 1800)
        assert child.code == 0, child.stderr[-2000:]
        rate = rows / child.wall_s
        print(f"{label:<58} {child.wall_s:7.1f} {child.cpu_s:6.1f} {child.maxrss_mb:12.0f} {rate:10,.0f}")
    selected = sum(1 for _ in read_rows(work / "selection.parquet"))
    print(f"  selection: {selected:,} rows; covers: {pq.ParquetFile(work / 'covers.parquet').metadata.num_rows:,} rows")


def acting(work: Path, objects: int, concurrency: int) -> None:
    root = work / "root"
    (root / BUCKET / "lib").mkdir(parents=True)
    rows = []
    for i in range(objects):
        data = f"object {i}".encode() * 20
        (root / BUCKET / "lib" / f"{i:06d}.jpg").write_bytes(data)
        rows.append((f"lib/{i:06d}.jpg", hashlib.md5(data).hexdigest().upper(), len(data)))
    results = work / "small.parquet"
    n = len(rows)
    when = [1764547200000] * n
    pq.write_table(pa.table({
        "bucket": [BUCKET] * n, "key": [r[0] for r in rows], "etag": [r[1] for r in rows], "size": [r[2] for r in rows],
        "last_modified": pa.array(when, pa.timestamp("ms", tz="UTC")), "status": ["scored"] * n,
        "score": [0.1] * n, "dimensions": pa.array([[] for _ in range(n)], pa.map_(pa.string(), pa.float64())),
        "error_code": pa.nulls(n, pa.string()), "error_message": pa.nulls(n, pa.string()),
        "http_status": [200] * n, "attempts": [1] * n, "latency_ms": [1.0] * n, "request_id": pa.nulls(n, pa.string()),
        "scored_at": pa.array(when, pa.timestamp("ms", tz="UTC")), "storage_class": ["Standard"] * n,
    }).cast(RESULT_PARQUET_SCHEMA), results)
    print(f"\nacting on {objects:,} objects, concurrency {concurrency} (server: picscore serve on this machine)")
    print(f"{'action':<10} {'wall s':>7} {'objects/s':>10} {'requests/object':>16}  requests")
    with start_server(root, {KEY_ID: SECRET}, args=["--workers", "1", "--log-level", "debug"]) as server:
        for action in ("tag", "delete"):
            seen = len(server.output)
            argv = command("filter", str(results), "--below", "0.5", "--action", action, "--yes",
                           "--max-percent", "100", "--concurrency", str(concurrency), "--endpoint", server.url,
                           "--region", REGION, "--output", str(work / f"{action}.csv"),
                           "--report", str(work / f"{action}-report.csv"))
            child = run_child(argv, child_env(), 600)
            assert child.code == 0, child.stdout[-2000:] + child.stderr[-2000:]
            time.sleep(0.5)  # the last request lines
            requests = Counter(_operation(r) for r in server_requests(server, seen))
            total = sum(requests.values())
            print(f"{action:<10} {child.wall_s:7.1f} {objects / child.wall_s:10.0f} {total / objects:16.2f}  "
                  + ", ".join(f"{name} {count}" for name, count in requests.most_common()))


def _operation(request: dict) -> str:
    query = request.get("query") or ""
    if "delete" in query:
        return "DeleteMultipleObjects"
    if "tagging" in query:
        return f"{request['method']} ?tagging"
    return request["method"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--groups", type=int, default=100_000)
    parser.add_argument("--objects", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--write-synthetic", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write_synthetic:
        synthetic_results(args.write_synthetic, args.rows, args.groups)
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-actions-") as scratch:
        planning(Path(scratch), args.rows, args.groups)
        acting(Path(scratch), args.objects, args.concurrency)
    return 0


if __name__ == "__main__":
    sys.exit(main())
