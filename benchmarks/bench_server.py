"""Benchmark: image/score requests per second and latency of a real ``picscore serve``.

Starts the server as a child process on the bundled demo photos (768x512 JPEGs, 0.4 Mpx), then
drives signed GET ?x-oss-process=image/score requests at concurrency 1, 8 and 64 from one
aiohttp client. Requests are presigned (V4) once up front so the client's own signing cost
stays out of the figures. Prints, per concurrency: successful requests/s, p50 and p99 latency
of successes, and how many requests the server shed with 503 CpuLimitExceeded (its bounded
backlog at work). Run twice: with the real scorer, and in --fake-score-latency mode, which
shows the HTTP/auth/storage overhead alone.

    python benchmarks/bench_server.py [--seconds 8]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import aiohttp
import alibabacloud_oss_v2 as oss

from worker.demo.build import build_demo_bucket
from worker.server.launch import start_server

KEY_ID, SECRET = "LTAIbench0000000", "bench-secret-not-a-real-one"


def presigned_urls(url: str, keys: list[str]) -> list[str]:
    config = oss.config.load_default()
    config.credentials_provider = oss.credentials.StaticCredentialsProvider(KEY_ID, SECRET)
    config.region, config.endpoint = "cn-hangzhou", url
    client = oss.Client(config)
    return [client.presign(oss.GetObjectRequest(bucket="demo", key=key, process="image/score"),
                           expires=timedelta(hours=1)).url for key in keys]


async def drive(urls: list[str], concurrency: int, seconds: float) -> dict[str, float]:
    latencies: list[float] = []
    shed = errors = 0
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one_client(offset: int) -> None:
            nonlocal shed, errors
            i = offset
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                async with session.get(urls[i % len(urls)]) as response:
                    await response.read()
                    if response.status == 200:
                        latencies.append(time.perf_counter() - started)
                    elif response.status == 503:
                        shed += 1
                    else:
                        errors += 1
                i += concurrency

        began = time.perf_counter()
        await asyncio.gather(*(one_client(k) for k in range(concurrency)))
        elapsed = time.perf_counter() - began
    latencies.sort()
    q = statistics.quantiles(latencies, n=100, method="inclusive") if len(latencies) > 1 else [0] * 99
    return {"rps": len(latencies) / elapsed, "p50": q[49] * 1000, "p99": q[98] * 1000,
            "ok": len(latencies), "shed": shed, "errors": errors}


def run(mode: str, args: list[str], root: Path, keys: list[str], seconds: float) -> None:
    with start_server(root, {KEY_ID: SECRET}, args=args) as server:
        urls = presigned_urls(server.url, keys)
        asyncio.run(drive(urls, 4, 1.0))  # warm-up: page cache, worker imports
        print(f"\n{mode}")
        print(f"{'concurrency':>11} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'ok':>6} {'503 shed':>9} {'other':>6}")
        for concurrency in (1, 8, 64):
            r = asyncio.run(drive(urls, concurrency, seconds))
            print(f"{concurrency:>11} {r['rps']:>8.1f} {r['p50']:>8.1f} {r['p99']:>8.1f} "
                  f"{r['ok']:>6} {r['shed']:>9} {r['errors']:>6}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0, help="duration of each concurrency level")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        keys = [k for k in build_demo_bucket(root, "demo") if k.startswith("originals/")]
        print(f"picscore serve image/score benchmark — {os.cpu_count()} CPUs, "
              f"{len(keys)} demo photos (768x512 JPEG), {options.seconds:.0f} s per level")
        run(f"real scorer ({os.cpu_count()} scoring processes, default backlog)", [], root, keys, options.seconds)
        run("fake scorer (--fake-score-latency 20ms: server overhead only)",
            ["--fake-score-latency", "20ms"], root, keys, options.seconds)


if __name__ == "__main__":
    main()
