"""Benchmark: ``picscore run`` against a server that throttles, as OSS does when its image
processing is full (``503 CpuLimitExceeded``).

A real ``picscore serve`` with 1 and then 2 scoring processes (default backlog: 4 per process)
scores real JPEGs. For each, measured in the same run:

1. the server's capacity: a bare SDK loop (``invoke_operation``, as the worker sends it) at
   exactly the concurrency the server admits (processes + backlog), so it is never throttled
   and the processes are never idle: scored images per second;
2. ``picscore run`` at concurrency 16, 64 and 256 (far beyond what the server admits) over a
   bucket sized for about ``--seconds`` of work: the exit code (must be 0), the rows that are
   not ``scored`` (must be 0), how many calls were throttled, and the achieved rate (steady rate:
   rows per second between the 10th and 90th percentile of ``scored_at``) as a fraction of the
   capacity from 1.

    python benchmarks/bench_throttle.py [--seconds 12] [--workers 1,2] [--levels 16,64,256]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_worker import KEY_ID, REGION, SECRET, child_env, run_child

from worker.server.launch import ServerProcess, start_server

BUCKET = "throttle"
_STATUS = re.compile(r"^  (scored|skipped|missing|failed)\s+(\d+)", re.MULTILINE)


def write_bucket(root: Path, count: int) -> list[str]:
    """``count`` distinct 640x480 photo-like JPEGs (what a library holds, cheap enough to score)."""
    import numpy as np
    from PIL import Image

    bucket = root / BUCKET / "p"
    bucket.mkdir(parents=True, exist_ok=True)
    keys = []
    y, x = np.mgrid[0:480, 0:640].astype(np.float32)
    for n in range(count):
        rng = np.random.default_rng(n)
        base = np.stack([128 + 80 * np.sin(x / (17 + n % 13)), 128 + 70 * np.cos(y / (11 + n % 7)),
                         128 + 60 * np.sin((x + y) / 29)], -1)
        pixels = np.clip(base + rng.normal(0, 4 + n % 9, (480, 640, 1)), 0, 255).astype(np.uint8)
        out = io.BytesIO()
        Image.fromarray(pixels).save(out, "JPEG", quality=80 + n % 15)
        (bucket / f"{n:05d}.jpg").write_bytes(out.getvalue())
        keys.append(f"p/{n:05d}.jpg")
    return keys


def capacity(server: ServerProcess, keys: list[str], concurrency: int, seconds: float) -> dict:
    """Scored images per second with exactly ``concurrency`` calls in flight (a child process)."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as listing:
        json.dump(keys, listing)
    try:
        child = run_child([sys.executable, __file__, "_capacity", server.url, listing.name, str(concurrency),
                           str(seconds)], child_env(), seconds * 3 + 60)
    finally:
        os.unlink(listing.name)
    if child.code != 0:
        raise SystemExit(f"capacity probe failed:\n{child.stderr[-3000:]}")
    return json.loads(child.stdout.strip().splitlines()[-1])


async def _capacity_loop(url: str, keys: list[str], concurrency: int, seconds: float) -> dict:
    from worker.commands.image_score import invoke_score
    from worker.oss.client import open_async_client
    from worker.settings import Credentials

    counts = {"ok": 0, "throttled": 0, "other": 0}
    stop_at = time.perf_counter() + 2.0  # warm-up (first requests, pool start), not counted
    counting = False

    async with open_async_client(url, REGION, Credentials(KEY_ID, SECRET), concurrency) as client:

        async def loop(offset: int) -> None:
            i = offset
            while time.perf_counter() < stop_at:
                try:
                    status = (await invoke_score(client, BUCKET, keys[i % len(keys)])).status
                    kind = "ok" if status == 200 else "other"
                except Exception as exc:
                    kind = "throttled" if "CpuLimitExceeded" in str(exc) else "other"
                if counting:
                    counts[kind] += 1
                i += concurrency

        await asyncio.gather(*(loop(k) for k in range(concurrency)))
        counting, began = True, time.perf_counter()
        stop_at = began + seconds
        await asyncio.gather(*(loop(k) for k in range(concurrency)))
        elapsed = time.perf_counter() - began
    return {"rate": counts["ok"] / elapsed, **counts}


def run_audit(server: ServerProcess, objects: int, concurrency: int, out_dir: Path) -> dict:
    output = out_dir / f"c{concurrency}-{time.monotonic_ns()}.parquet"
    argv = [sys.executable, "-m", "worker.cli", "run", "--endpoint", server.url, "--region", REGION,
            "--bucket", BUCKET, "--concurrency", str(concurrency), "--output", str(output),
            "--progress", "never", "--log-level", "warning", "--metrics-port", "0"]
    child = run_child(argv, child_env(), 1800)
    statuses = {name: int(count) for name, count in _STATUS.findall(child.stdout)}
    steady = float("nan")
    if output.exists():
        steady = float(subprocess.run([sys.executable, str(Path(__file__).with_name("bench_worker.py")), "_steady",
                                       str(output)], capture_output=True, text=True, check=True,
                                      env=child_env()).stdout)
        attempts = subprocess.run([sys.executable, __file__, "_attempts", str(output)], capture_output=True,
                                  text=True, check=True, env=child_env()).stdout.split()
    else:
        attempts = ["0", "0"]
    return {"code": child.code, "statuses": statuses, "steady": steady, "wall_s": child.wall_s,
            "calls": int(attempts[0]), "objects_retried": int(attempts[1]), "stderr": child.stderr[-1500:]}


def _attempts(output: str) -> str:
    """Total calls sent, and objects that needed more than one (throttled), from the output."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    column = pq.read_table(output, columns=["attempts"])["attempts"]
    return f"{pc.sum(column).as_py()} {pc.sum(pc.greater(column, 1)).as_py()}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=12.0, help="work per audit, at the server's capacity")
    parser.add_argument("--workers", default="1,2", help="scoring processes of the server, one run each")
    parser.add_argument("--levels", default="16,64,256", help="picscore run concurrency levels")
    parser.add_argument("--probe-seconds", type=float, default=8.0, help="duration of the capacity probe")
    options = parser.parse_args()
    print(f"picscore run against a throttling server — {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.2f} at start. Server, probe and worker share these CPUs.\n")
    started, failures = time.monotonic(), 0
    with tempfile.TemporaryDirectory(prefix="picscore-throttle-") as tmp:
        root, out_dir = Path(tmp) / "root", Path(tmp) / "out"
        out_dir.mkdir()
        keys: list[str] = []
        for workers in (int(w) for w in options.workers.split(",")):
            admitted = workers + 4 * workers  # processes + the default backlog of 4 per process
            with start_server(root if keys else _fresh(root), {KEY_ID: SECRET},
                              args=["--workers", str(workers), "--log-level", "error"]) as server:
                if not keys:
                    keys = write_bucket(root, 60)
                probe = capacity(server, keys, admitted, options.probe_seconds)
                objects = max(100, math.ceil(probe["rate"] * options.seconds / 10) * 10)
                if len(keys) < objects:
                    keys = write_bucket(root, objects)
                print(f"server with {workers} scoring process(es), admits {admitted} in flight: capacity "
                      f"{probe['rate']:.1f} images/s (probe at concurrency {admitted}: {probe['ok']} scored, "
                      f"{probe['throttled']} throttled, {probe['other']} other)")
                print(f"  {'concurrency':>11} {'objects':>7} {'exit':>4} {'not scored':>10} {'calls':>6} "
                      f"{'throttled':>9} {'steady/s':>8} {'of capacity':>11}")
                for level in (int(c) for c in options.levels.split(",")):
                    result = run_audit(server, len(keys), level, out_dir)
                    not_scored = sum(n for s, n in result["statuses"].items() if s != "scored")
                    ok = result["code"] == 0 and not_scored == 0 and result["statuses"].get("scored") == len(keys)
                    failures += not ok
                    print(f"  {level:>11} {len(keys):>7} {result['code']:>4} {not_scored:>10} {result['calls']:>6} "
                          f"{result['calls'] - len(keys):>9} {result['steady']:>8.1f} "
                          f"{result['steady'] / probe['rate']:>10.0%}{'' if ok else '  FAILED'}")
                    if not ok:
                        print(result["stderr"])
    print(f"\n'throttled': calls answered 503 CpuLimitExceeded (calls sent - objects). 'steady/s': rows per "
          f"second between the 10th and 90th percentile of scored_at. Every object scored with exit 0 in "
          f"{'every' if not failures else f'all but {failures}'} run(s); bench took "
          f"{time.monotonic() - started:.0f} s.")
    return 1 if failures else 0


def _fresh(root: Path) -> Path:
    (root / BUCKET).mkdir(parents=True, exist_ok=True)
    return root


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_capacity":
        url, listing, concurrency, seconds = sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
        print(json.dumps(asyncio.run(_capacity_loop(url, json.loads(Path(listing).read_text()), concurrency,
                                                    seconds))))
        sys.exit(0)
    if len(sys.argv) > 1 and sys.argv[1] == "_attempts":
        print(_attempts(sys.argv[2]))
        sys.exit(0)
    sys.exit(main())
