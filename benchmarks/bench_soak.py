"""Soak benchmark: ten minutes of mixed traffic against ``picscore serve`` — does the server stay flat?

Two real ``picscore serve`` children, each on its own temporary root:

* **main**: the real scoring pool (``--workers``, default 2 processes) and no faults. It takes one
  SDK mix and all of the hostile traffic;
* **faults**: ``--faults`` on every request (default ``latency=5-50ms,503=0.05,429=0.02,reset=0.01,
  slow-body=512KiB/s,scope=all,seed=7``) and a faked image/score (``--fake-score-latency 20ms``),
  so the error paths (injected 503/429, TCP resets, trickled bodies) run thousands of times.

The traffic comes from two client child processes, so the figures read here are the server's own:

* ``_sdk``: the official SDK's ``AsyncClient`` (``worker.oss.client.open_async_client``), one paced
  mix per server (``--rate``/``--faults-rate`` operations per second): PutObject of new keys and
  overwrites (320x240 JPEGs and non-image bytes; keys cycle over 500 names, so the disk stays
  small), GetObject (full, and a Range), HeadObject, ListObjectsV2 (prefixes, pages), DeleteObject
  and image/score (on photos, and on non-image bytes, which must fail cleanly);
* ``_hostile`` (main server only), raw sockets and aiohttp: idle connections (50-200 at a time that
  send nothing, held up to 30 s; the server's header deadline is 20 s), kept-alive idle ones (one
  GET, then silence up to 75 s; its keep-alive timeout is 60 s), slow writers (a request trickled
  byte by byte, fast enough or too slow; a PUT body trickled; a PUT cut off mid-body), slow readers
  (a 4 MiB GET read at 512 KiB/s, or stalled for 30 s) and malformed requests (garbage request
  lines, binary junk, an over-long header line, too many headers, a bad Content-Length, unsigned,
  bad V4 and V1 signatures, an unknown key id, an expired presigned URL).

Every second the parent reads /proc for each server: VmRSS, threads and open fds (and how many of
them are sockets) of the server process, and the summed VmRSS and fds of its descendants (the
scoring pool: forkserver, workers, resource tracker; a sum of RSS counts shared pages once per
process). It prints a row per server before the traffic, after the warm-up (``--warmup``, 20 s),
at 25, 50 and 75 % of the rest, at the end (the last second of traffic) and 5 s after the traffic
stopped; then requests and failures per operation, errors per kind (client side: HTTP status and
OSS code, or the exception class), the hostile probes' outcomes, and the drift:

* RSS of the server and of its children, warm-up point → end, absolute and relative, and the
  least-squares trend of the samples in between;
* open fds at rest: before any traffic and 5 s after it stopped (under traffic the count swings
  with the idle connections: printed, not judged).

The verdict is "flat" when every RSS grew by at most 10 % or 20 MB (whichever is larger) and the
fds at rest by at most 10, else "GROWING" with the figures. The benchmark reports; it exits 1
only when a server died (or a client crashed, so that nothing was measured).

    python benchmarks/bench_soak.py [--seconds 600] [--warmup 20] [--rate 50] [--faults-rate 20]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

# Only light imports here: the SDK, aiohttp, numpy and PIL load in the client children.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere
sys.path.insert(0, str(Path(__file__).resolve().parent))

from soak.constants import BUCKET, DEFAULT_FAULTS, KEY_ID, SECRET
from soak.hostile_client import hostile_main
from soak.report import report
from soak.runner import HEADER, Soak, run_soak
from soak.sdk_client import sdk_main

from worker.server.launch import start_server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=600.0, help="duration of the traffic (default 600)")
    parser.add_argument("--warmup", type=float, default=20.0,
                        help="seconds of traffic before the reference point (at most a third of --seconds)")
    parser.add_argument("--rate", type=float, default=50.0, help="SDK operations per second to main (0: flat out)")
    parser.add_argument("--faults-rate", type=float, default=20.0, help="SDK operations per second to faults")
    parser.add_argument("--concurrency", type=int, default=16, help="SDK tasks for main (half that for faults)")
    parser.add_argument("--idle-max", type=int, default=200, help="most idle connections held at once")
    parser.add_argument("--workers", type=int, default=2, help="scoring processes of the main server")
    parser.add_argument("--faults", default=DEFAULT_FAULTS, help="the faults server's --faults spec")
    parser.add_argument("--seed", type=int, default=7)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp:
        roots = {name: Path(tmp) / name for name in ("main", "faults")}
        for root in roots.values():
            (root / BUCKET).mkdir(parents=True)
        common = ["--log-level", "warning"]
        servers = {"main": start_server(roots["main"], {KEY_ID: SECRET},
                                        args=[*common, "--workers", str(options.workers)])}
        soak = Soak(servers, {name: root / BUCKET for name, root in roots.items()})
        try:
            servers["faults"] = start_server(roots["faults"], {KEY_ID: SECRET},
                                             args=[*common, "--faults", options.faults, "--fake-score-latency", "20ms"])
            print(f"picscore serve soak — {os.cpu_count()} CPUs, {options.seconds:.0f} s of traffic, reference point "
                  f"after {min(options.warmup, options.seconds / 3):.0f} s; main: {options.workers} scoring processes, "
                  f"{options.rate:g} SDK ops/s + hostile traffic; faults: {options.faults_rate:g} SDK ops/s with "
                  f"--faults {options.faults}")
            print("columns: CPU of the server and its descendants since the previous row (100 = one core); "
                  "server process RSS, threads, open fds, of which sockets; its descendants (scoring pool): "
                  "count, summed RSS, summed fds; bucket files, unfinished uploads and MB on disk; requests sent and "
                  "SDK requests failed so far (client side)\n")
            print(HEADER)
            soak.print_point("idle", soak.sample(record=False))
            run_soak(soak, options)
            code = report(soak, options)
        finally:
            for client in soak.clients:
                if client.process.poll() is None:
                    client.process.kill()
                    client.process.wait()
            for server in servers.values():
                server.stop()
    raise SystemExit(code)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "_sdk":
        sdk_main(json.loads(sys.argv[2]))
    elif len(sys.argv) > 2 and sys.argv[1] == "_hostile":
        hostile_main(json.loads(sys.argv[2]))
    else:
        main()
