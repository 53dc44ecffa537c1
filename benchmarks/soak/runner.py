"""The soak's parent side: the two servers, the client children, and the sampling loop."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from worker.server.launch import ServerProcess

from .constants import SETTLE_S
from .procstats import ProcSample, client_rss_mb, disk_use, sample_process

# -- the benchmark (parent) -----------------------------------------------------------------------


@dataclass
class Client:
    """A client child and the last counts it printed."""

    name: str
    process: subprocess.Popen[str]
    stderr: Any
    latest: dict[str, Any] = field(default_factory=dict)
    reader: threading.Thread | None = None

    def pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                self.latest = json.loads(line)
            except ValueError:
                continue

    def stderr_tail(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read()[-3000:]


#: The script whose ``_sdk`` / ``_hostile`` modes run the client children, and the repository root.
SCRIPT = Path(__file__).resolve().parents[1] / "bench_soak.py"
REPO = Path(__file__).resolve().parents[2]


def start_client(mode: str, config: dict[str, Any]) -> Client:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PICSCORE_", "OSS_"))}
    env["PYTHONPATH"] = str(REPO)
    stderr = tempfile.TemporaryFile("w+")
    process = subprocess.Popen([sys.executable, str(SCRIPT), mode, json.dumps(config)], stdout=subprocess.PIPE,
                               stderr=stderr, text=True, env=env, bufsize=1)
    client = Client(mode.lstrip("_"), process, stderr)
    client.reader = threading.Thread(target=client.pump, daemon=True)
    client.reader.start()
    return client


@dataclass
class Soak:
    """The run's state in the parent: servers, clients, samples and the rows printed so far."""

    servers: dict[str, ServerProcess]
    buckets: dict[str, Path]
    clients: list[Client] = field(default_factory=list)
    t0: float = 0.0
    samples: dict[str, list[tuple[float, ProcSample]]] = field(default_factory=dict)
    points: dict[str, dict[str, ProcSample]] = field(default_factory=dict)
    seen_children: dict[str, set[int]] = field(default_factory=dict)
    died: dict[str, str] = field(default_factory=dict)
    client_rss: dict[str, float] = field(default_factory=dict)
    #: (time, CPU seconds) per server at the last printed point, for the CPU % column.
    last_cpu: dict[str, tuple[float, float]] = field(default_factory=dict)

    def sample(self, record: bool = True) -> dict[str, ProcSample]:
        """Every server's figures now; ``record`` adds them to the time series the trend is fitted on."""
        now, taken = time.time() - self.t0, {}
        for name, server in self.servers.items():
            if name in self.died:
                continue
            got = sample_process(server.process.pid)
            if got is None or server.process.poll() is not None:
                self.died[name] = f"exit code {server.process.poll()} at {now:.0f} s"
                continue
            taken[name] = got
            if record:
                self.samples.setdefault(name, []).append((now, got))
            self.seen_children.setdefault(name, set()).update(got.children)
        return taken

    def counts(self, server: str) -> tuple[int, int]:
        """(requests, failed SDK requests) sent to ``server`` so far, from the clients' last lines."""
        requests = failed = 0
        for client in self.clients:
            for key, value in client.latest.get("ops", {}).items():
                if key.startswith(f"{server}|") and not key.endswith("|LIST pages"):
                    requests += value
            for key, value in client.latest.get("failed", {}).items():
                failed += value if key.startswith(f"{server}|") else 0
            if server == "main" and client.name == "hostile":
                requests += sum(sum(c.values()) for c in client.latest.get("probes", {}).values())
        return requests, failed

    def print_point(self, label: str, taken: dict[str, ProcSample]) -> None:
        self.points[label] = taken
        elapsed = max(0.0, time.time() - self.t0) if self.t0 else 0.0
        for name, s in taken.items():
            disk = disk_use(self.buckets[name])
            requests, failed = self.counts(name)
            then, cpu_then = self.last_cpu.get(name, (0.0, 0.0))
            self.last_cpu[name] = (time.time(), s.cpu_s)
            cpu = f"{100 * (s.cpu_s - cpu_then) / (time.time() - then):.0f}" if then else "-"
            print(f"{label:<10} {elapsed:>5.0f} {name:<7} {cpu:>5} {s.rss_mb:>7.1f} {s.threads:>4} {s.fds:>5} "
                  f"{s.sockets:>5} "
                  f"{len(s.children):>5} {s.children_rss_mb:>8.1f} {s.children_fds:>5} {disk.objects:>7} "
                  f"{disk.tmp_files:>4} {disk.mb:>6.1f} {requests:>9,} {failed:>7,}", flush=True)


HEADER = (f"{'point':<10} {'t s':>5} {'server':<7} {'CPU%':>5} {'RSS MB':>7} {'thr':>4} {'fds':>5} {'socks':>5} "
          f"{'procs':>5} {'procs MB':>8} {'p.fds':>5} {'objects':>7} {'tmp':>4} {'disk MB':>6} "
          f"{'requests':>9} {'failed':>7}")


def run_soak(soak: Soak, options: argparse.Namespace) -> None:
    """Start the clients, sample once a second, print the checkpoints, wait for the clients."""
    warm = min(options.warmup, options.seconds / 3)
    soak.t0 = time.time()
    deadline = soak.t0 + options.seconds
    config = {"main": soak.servers["main"].url, "faults": soak.servers["faults"].url, "deadline": deadline,
              "seed": options.seed, "rate": options.rate, "faults_rate": options.faults_rate,
              "concurrency": options.concurrency, "idle_max": options.idle_max}
    soak.clients = [start_client("_sdk", config), start_client("_hostile", config)]
    span = options.seconds - warm
    checkpoints = [("warm-up", warm), ("25 %", warm + span / 4), ("50 %", warm + span / 2),
                   ("75 %", warm + 3 * span / 4), ("end", options.seconds - 1.0)]
    next_tick = soak.t0
    while checkpoints and not soak.died and all(c.process.poll() is None for c in soak.clients):
        next_tick += 1.0
        time.sleep(max(0.0, next_tick - time.time()))
        taken = soak.sample()
        if checkpoints and time.time() - soak.t0 >= checkpoints[0][1]:
            soak.print_point(checkpoints.pop(0)[0], taken)
    soak.client_rss = {c.name: client_rss_mb(c.process.pid) for c in soak.clients}
    for client in soak.clients:
        if soak.died:  # nothing left to measure: do not wait out the clients' deadline
            client.process.kill()
        try:
            client.process.wait(max(5.0, deadline - time.time() + 30.0))
        except subprocess.TimeoutExpired:
            client.process.kill()
            client.process.wait()
        if client.reader is not None:
            client.reader.join(5.0)
    time.sleep(SETTLE_S)
    soak.print_point("at rest", soak.sample(record=False))
