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
import asyncio
import contextlib
import json
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

# Only light imports at module level: the SDK, aiohttp, numpy and PIL load in the client children.
from worker import eventloop
from worker.server.launch import ServerProcess, start_server

KEY_ID, SECRET = "LTAIsoak00000000", "soak-secret-not-real"
REGION = "cn-hangzhou"
BUCKET = "soak"
DEFAULT_FAULTS = "latency=5-50ms,503=0.05,429=0.02,reset=0.01,slow-body=512KiB/s,scope=all,seed=7"
#: Key names the SDK mix cycles over (400 photos + 100 non-image objects = 500 per server).
IMAGE_KEYS, BLOB_KEYS = 400, 100
#: Verdict bounds: RSS may grow by the larger of these; fds at rest by this many.
RSS_TOLERANCE_FRACTION, RSS_TOLERANCE_MB, FD_TOLERANCE = 0.10, 20.0, 10
#: Seconds after the traffic stops before the "at rest" sample: clients' sockets close, the server sees EOF.
SETTLE_S = 5.0
#: The server's deadlines the hostile traffic leans on (worker/server/app.py ServerConfig).
HEADER_TIMEOUT_S, KEEPALIVE_TIMEOUT_S = 20.0, 60.0
IDLE_HOLD_S, KEEPALIVE_HOLD_S = 30.0, 75.0
#: One SDK operation may take this long before the client gives up on it.
OP_TIMEOUT_S = 90.0


# -- /proc sampling (parent) ----------------------------------------------------------------------


@dataclass(frozen=True)
class ProcSample:
    """One server process and its descendants at one moment."""

    rss_mb: float
    threads: int
    fds: int
    sockets: int
    children: frozenset[int]
    children_rss_mb: float
    children_fds: int
    #: CPU seconds (user + system) of the server and its live descendants so far.
    cpu_s: float


def _status_fields(pid: int) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        fields[name] = value.strip()
    return fields


_CLK = os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int) -> float:
    """utime + stime of a running process, from /proc/<pid>/stat (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _CLK


def _rss_mb(fields: dict[str, str]) -> float:
    return int(fields.get("VmRSS", "0 kB").split()[0]) / 1024


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``, from /proc/<pid>/task/*/children (the pool's processes are
    the forkserver's children, not the server's)."""
    found: list[int] = []
    stack = [pid]
    while stack:
        parent = stack.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                kids = [int(k) for k in Path(f"/proc/{parent}/task/{task}/children").read_text().split()]
            except OSError:
                continue
            found.extend(kids)
            stack.extend(kids)
    return found


def _fd_counts(pid: int) -> tuple[int, int]:
    """(open fds, of which sockets); a process that just exited counts as none."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return 0, 0
    sockets = 0
    for fd in fds:
        with contextlib.suppress(OSError):
            sockets += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
    return len(fds), sockets


def sample_process(pid: int) -> ProcSample | None:
    """The server's figures now, or None when it is gone."""
    try:
        fields = _status_fields(pid)
    except OSError:
        return None
    fds, sockets = _fd_counts(pid)
    kids = descendants(pid)
    kids_rss = kids_fds = 0.0
    cpu = _cpu_s(pid) + sum(_cpu_s(kid) for kid in kids)
    for kid in kids:
        try:
            kids_rss += _rss_mb(_status_fields(kid))
        except OSError:
            continue
        kids_fds += _fd_counts(kid)[0]
    return ProcSample(_rss_mb(fields), int(fields.get("Threads", "0")), fds, sockets, frozenset(kids),
                      kids_rss, int(kids_fds), cpu)


def client_rss_mb(pid: int) -> float:
    try:
        return _rss_mb(_status_fields(pid))
    except OSError:
        return 0.0


@dataclass(frozen=True)
class DiskUse:
    objects: int
    tmp_files: int
    mb: float


def disk_use(bucket_dir: Path) -> DiskUse:
    """Objects (files outside ``.picscore``), uploads left in ``.picscore/tmp`` and bytes under a bucket."""
    objects = tmp = size = 0
    for folder, _, files in os.walk(bucket_dir):
        rel = Path(folder).relative_to(bucket_dir).parts
        for name in files:
            try:
                size += os.stat(os.path.join(folder, name)).st_size
            except OSError:
                continue
            if not rel or rel[0] != ".picscore":
                objects += 1
            elif rel[:2] == (".picscore", "tmp"):
                tmp += 1
    return DiskUse(objects, tmp, size / 2**20)


# -- client children: shared helpers --------------------------------------------------------------


def _run_until(deadline: float, loops: Iterable[Coroutine[Any, Any, None]], report: Callable[[], dict]) -> None:
    """Run ``loops`` until the wall-clock ``deadline`` (shared with the parent), printing
    ``report()`` as one JSON line a second, and a last line marked final."""

    async def main() -> list[BaseException]:
        tasks = [asyncio.create_task(loop) for loop in loops]

        async def reporter() -> None:
            while True:
                print(json.dumps(report()), flush=True)
                await asyncio.sleep(1.0)

        ticker = asyncio.create_task(reporter())
        await asyncio.wait(tasks, timeout=max(0.0, deadline - time.time()))
        for task in [*tasks, ticker]:
            task.cancel()
        results = await asyncio.gather(*tasks, ticker, return_exceptions=True)
        return [r for r in results if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError)]

    crashed = eventloop.run(main(), "auto")
    print(json.dumps({**report(), "final": True}), flush=True)
    if crashed:
        for exc in crashed:
            traceback.print_exception(exc)
        raise SystemExit(1)


class Pacer:
    """Spaces operation starts ``1/rate`` apart across all tasks: a steady load for ten minutes,
    not a race for the CPU that the server shares with its clients. Late slots are not made up."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.next_at = 0.0

    async def wait(self) -> None:
        if not self.interval:
            await asyncio.sleep(0)
            return
        now = asyncio.get_running_loop().time()
        slot = max(self.next_at, now)
        self.next_at = slot + self.interval
        if slot > now:
            await asyncio.sleep(slot - now)


# -- the SDK client child: `bench_soak.py _sdk CONFIG_JSON` ---------------------------------------


class BadAnswer(Exception):
    """A 2xx answer that is wrong (short body, wrong status for a Range): counted as an error."""


#: The mix: relative weight of each kind of operation.
SDK_MIX = {"put": 14, "get": 18, "get range": 8, "head": 10, "list": 8, "delete": 5, "score": 25,
           "score non-image": 2}
LIST_PREFIXES = ("", "img/", "bin/", "img/1", "img/2", "pinned/")


def make_jpegs(count: int, seed: int) -> list[bytes]:
    """Small 320x240 photos: gradients plus noise at varied JPEG quality (3-35 KB each)."""
    import io

    import numpy as np
    from PIL import Image

    images = []
    for i in range(count):
        rng = np.random.default_rng(seed + i)
        y, x = np.mgrid[0:240, 0:320]
        base = np.stack([(x * rng.uniform(0.2, 0.8) + y * rng.uniform(0.1, 0.5)) % 256,
                         (x * rng.uniform(0.1, 0.5)) % 256, (y * rng.uniform(0.3, 1.0)) % 256], -1)
        pixels = np.clip(base + rng.normal(0, rng.uniform(2, 20), base.shape), 0, 255).astype(np.uint8)
        out = io.BytesIO()
        Image.fromarray(pixels).save(out, "JPEG", quality=int(rng.integers(60, 95)))
        images.append(out.getvalue())
    return images


def error_kind(exc: BaseException) -> str:
    """``HTTP 503 CpuLimitExceeded`` for a service answer, else the innermost exception's class
    (the SDK wraps transport errors in OperationError → RequestError → the aiohttp error)."""
    from alibabacloud_oss_v2 import exceptions as sdk_errors

    for _ in range(8):
        unwrap = getattr(exc, "unwrap", None)
        inner = unwrap() if callable(unwrap) else None
        if inner is None or inner is exc:
            break
        exc = inner
    if isinstance(exc, sdk_errors.ServiceError):
        return f"HTTP {exc.status_code} {exc.code}"
    if isinstance(exc, TimeoutError):
        return f"TimeoutError (client gave up after {OP_TIMEOUT_S:.0f} s)"
    return type(exc).__name__


@dataclass
class SdkTarget:
    """One server's share of the SDK mix and what the client believes exists there."""

    name: str
    client: Any
    pacer: Pacer
    rng: random.Random
    jpegs: list[bytes]
    ops: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    images: set[str] = field(default_factory=set)
    blobs: set[str] = field(default_factory=set)

    def plan(self) -> tuple[str, Callable[[], Awaitable[None]]]:
        """The next operation: its label (for the counts) and the call. Reads of an empty family
        turn into PUTs, so the first seconds fill the bucket."""
        kind = self.rng.choices(list(SDK_MIX), weights=list(SDK_MIX.values()))[0]
        live = self.images | self.blobs
        if kind == "list":
            return "LIST (all pages)", self.list_all
        if kind == "put" or not live or (kind.startswith("score") and not self.images):
            return self._plan_put()
        key = self.rng.choice(sorted(live))
        if kind == "score":
            return "GET image/score", lambda: self.score(self.rng.choice(sorted(self.images)))
        if kind == "score non-image" and self.blobs:
            return "image/score of non-image bytes", lambda: self.score(self.rng.choice(sorted(self.blobs)))
        planned: dict[str, tuple[str, Callable[[], Awaitable[None]]]] = {
            "get": ("GET", lambda: self.get(key)),
            "get range": ("GET Range", lambda: self.get_range(key)),
            "head": ("HEAD", lambda: self.head(key)),
            "delete": ("DELETE", lambda: self.delete(key)),
        }
        return planned.get(kind, planned["get"])

    def _plan_put(self) -> tuple[str, Callable[[], Awaitable[None]]]:
        if self.rng.random() < 0.75:
            key, body = f"img/{self.rng.randrange(IMAGE_KEYS):03d}.jpg", self.rng.choice(self.jpegs)
            label = "PUT overwrite" if key in self.images else "PUT new"
        else:
            key = f"bin/{self.rng.randrange(BLOB_KEYS):03d}.bin"
            body = self.rng.randbytes(self.rng.randint(2048, 65536))
            label = "PUT overwrite" if key in self.blobs else "PUT new"
        return label, lambda: self.put(key, body)

    async def put(self, key: str, body: bytes) -> None:
        import alibabacloud_oss_v2 as oss

        await self.client.put_object(oss.PutObjectRequest(bucket=BUCKET, key=key, body=body))
        (self.images if key.startswith("img/") else self.blobs).add(key)

    async def _get(self, key: str, **options: Any) -> tuple[Any, bytes]:
        import alibabacloud_oss_v2 as oss

        try:
            result = await self.client.get_object(oss.GetObjectRequest(bucket=BUCKET, key=key, **options))
        except Exception as exc:
            if error_kind(exc).startswith("HTTP 404"):
                self._forget(key)
            raise
        body = result.body
        try:
            data = body.content if body.is_stream_consumed else await body.read()
        finally:
            await body.close()
        return result, data

    async def get(self, key: str) -> None:
        result, data = await self._get(key)
        if len(data) != result.content_length:
            raise BadAnswer(f"short body: {len(data)} of {result.content_length}")

    async def get_range(self, key: str) -> None:
        result, data = await self._get(key, range_header="bytes=100-1123")
        if result.status_code != 206 or len(data) != 1024:
            raise BadAnswer(f"Range: HTTP {result.status_code}, {len(data)} bytes")

    async def score(self, key: str) -> None:
        from worker.oss.score_contract import parse_score_answer

        _, data = await self._get(key, process="image/score")
        parse_score_answer(data)

    async def head(self, key: str) -> None:
        import alibabacloud_oss_v2 as oss

        try:
            await self.client.head_object(oss.HeadObjectRequest(bucket=BUCKET, key=key))
        except Exception as exc:
            if error_kind(exc).startswith("HTTP 404"):
                self._forget(key)
            raise

    async def list_all(self) -> None:
        import alibabacloud_oss_v2 as oss

        prefix, max_keys = self.rng.choice(LIST_PREFIXES), self.rng.choice((25, 100, 1000))
        token: str | None = None
        for _ in range(50):
            page = await self.client.list_objects_v2(oss.ListObjectsV2Request(
                bucket=BUCKET, prefix=prefix, max_keys=max_keys, continuation_token=token))
            self.ops["LIST pages"] += 1
            token = page.next_continuation_token
            if not page.is_truncated or not token:
                return

    async def delete(self, key: str) -> None:
        import alibabacloud_oss_v2 as oss

        await self.client.delete_object(oss.DeleteObjectRequest(bucket=BUCKET, key=key))
        self._forget(key)

    def _forget(self, key: str) -> None:
        self.images.discard(key)
        self.blobs.discard(key)

    async def run_one(self) -> None:
        await self.pacer.wait()
        label, call = self.plan()
        self.ops[label] += 1
        try:
            await asyncio.wait_for(call(), OP_TIMEOUT_S)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.failed[label] += 1
            self.errors[error_kind(exc)] += 1

    async def loop(self) -> None:
        while True:
            await self.run_one()


def sdk_main(config: dict[str, Any]) -> None:
    from worker.oss.client import open_async_client
    from worker.settings import Credentials

    jpegs = make_jpegs(24, config["seed"])
    targets: list[SdkTarget] = []

    async def traffic(name: str, url: str, rate: float, concurrency: int) -> None:
        async with open_async_client(url, REGION, Credentials(KEY_ID, SECRET), concurrency) as client:
            target = SdkTarget(name, client, Pacer(rate), random.Random(f"{config['seed']}-{name}"), jpegs)
            targets.append(target)
            await asyncio.gather(*(target.loop() for _ in range(concurrency)))

    def report() -> dict:
        return {"ops": {f"{t.name}|{k}": v for t in targets for k, v in t.ops.items()},
                "failed": {f"{t.name}|{k}": v for t in targets for k, v in t.failed.items()},
                "errors": {f"{t.name}|{k}": v for t in targets for k, v in t.errors.items()}}

    _run_until(config["deadline"], [
        traffic("main", config["main"], config["rate"], config["concurrency"]),
        traffic("faults", config["faults"], config["faults_rate"], max(1, config["concurrency"] // 2)),
    ], report)


# -- the hostile client child: `bench_soak.py _hostile CONFIG_JSON` -------------------------------


@dataclass
class HoldStats:
    """Connections held open without a request (or after one): who closed them, and when."""

    opened: int = 0
    failed_to_open: int = 0
    closed_by_server: int = 0
    outlived_hold: int = 0
    close_seconds: Counter[float] = field(default_factory=Counter)  # seconds, to 0.1 s → connections
    min_close_s: float = float("inf")
    max_close_s: float = 0.0

    def closed(self, seconds: float) -> None:
        self.closed_by_server += 1
        self.close_seconds[round(seconds, 1)] += 1
        self.min_close_s = min(self.min_close_s, seconds)
        self.max_close_s = max(self.max_close_s, seconds)

    def as_dict(self) -> dict[str, Any]:
        return {"opened": self.opened, "failed_to_open": self.failed_to_open,
                "closed_by_server": self.closed_by_server, "outlived_hold": self.outlived_hold,
                "close_seconds": {str(k): v for k, v in self.close_seconds.items()},
                "min_close_s": self.min_close_s if self.closed_by_server else None,
                "max_close_s": self.max_close_s if self.closed_by_server else None}


async def _connect(host: str, port: int, rcvbuf: int | None = None) -> tuple[asyncio.StreamReader,
                                                                             asyncio.StreamWriter]:
    """A plain connection; with ``rcvbuf`` a small receive buffer, set before connecting, so that
    a client that stops reading makes the server's writes block soon."""
    if rcvbuf is None:
        return await asyncio.open_connection(host, port)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, (host, port))
    except BaseException:
        sock.close()
        raise
    return await asyncio.open_connection(sock=sock)


def _close(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, RuntimeError):
        writer.close()


async def _read_head(reader: asyncio.StreamReader, timeout: float) -> tuple[int, dict[str, str]]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers


async def read_response(reader: asyncio.StreamReader, timeout: float = 15.0) -> str:
    """The answer as an outcome label: ``HTTP 403 SignatureDoesNotMatch``, ``closed, no answer``…"""
    try:
        status, headers = await _read_head(reader, timeout)
        body = await asyncio.wait_for(reader.readexactly(int(headers.get("content-length", "0"))), timeout)
    except asyncio.IncompleteReadError as exc:
        return "closed, no answer" if not exc.partial else "closed mid-answer"
    except (ConnectionResetError, BrokenPipeError):
        return "connection reset"
    except TimeoutError:
        return f"no answer in {timeout:.0f} s"
    except (ValueError, IndexError, asyncio.LimitOverrunError):
        return "answer not HTTP"
    code = re.search(rb"<Code>(\w+)</Code>", body)
    return f"HTTP {status} {code[1].decode()}" if code else f"HTTP {status}"


def _target(url: str) -> tuple[str, str]:
    """(path?query, host) of a presigned URL, for a hand-written request line."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else ""), parts.netloc


def _tampered(url: str) -> str:
    """The presigned URL with its signature's last hex digit changed."""
    return re.sub(r"(x-oss-signature=[0-9a-f]*)([0-9a-f])",
                  lambda m: m[1] + ("0" if m[2] != "0" else "1"), url, count=1)


class Hostile:
    """Everything a well-behaved client does not do, against the main server."""

    def __init__(self, url: str, seed: int, idle_max: int) -> None:
        import alibabacloud_oss_v2 as oss

        parts = urlsplit(url)
        self.url, self.host, self.port = url, parts.hostname or "127.0.0.1", parts.port or 80
        self.rng = random.Random(f"{seed}-hostile")
        self.idle_max = idle_max
        self.outcomes: dict[str, Counter[str]] = {}
        self.idle, self.kept_alive = HoldStats(), HoldStats()
        signer, stranger = self._signer(url, KEY_ID), self._signer(url, "LTAInobody000000")
        hour = timedelta(days=6)  # any run's length (V4 allows up to 7 days)
        self.photo_url = signer.presign(oss.GetObjectRequest(bucket=BUCKET, key="pinned/photo.jpg"), expires=hour).url
        self.big_url = signer.presign(oss.GetObjectRequest(bucket=BUCKET, key="pinned/big.bin"), expires=hour).url
        self.put_url = signer.presign(oss.PutObjectRequest(bucket=BUCKET, key="hostile/trickled.bin"),
                                      expires=hour).url
        self.cut_url = signer.presign(oss.PutObjectRequest(bucket=BUCKET, key="hostile/cut.bin"), expires=hour).url
        # The SDK rounds the lifetime down (1 s becomes x-oss-expires=0, refused as invalid): 3 s
        # lives 2 s, and the malformed probes start 4 s later.
        self.expired_url = signer.presign(oss.GetObjectRequest(bucket=BUCKET, key="pinned/photo.jpg"),
                                          expires=timedelta(seconds=3)).url
        self.stranger_url = stranger.presign(oss.GetObjectRequest(bucket=BUCKET, key="pinned/photo.jpg"),
                                             expires=hour).url

    @staticmethod
    def _signer(url: str, key_id: str) -> Any:
        import alibabacloud_oss_v2 as oss

        config = oss.config.load_default()
        config.credentials_provider = oss.credentials.StaticCredentialsProvider(key_id, SECRET)
        config.region, config.endpoint, config.use_path_style = REGION, url, True
        return oss.Client(config)

    def record(self, probe: str, outcome: str) -> None:
        self.outcomes.setdefault(probe, Counter())[outcome] += 1

    def report(self) -> dict[str, Any]:
        return {"probes": {p: dict(c) for p, c in self.outcomes.items()}, "idle": self.idle.as_dict(),
                "kept_alive": self.kept_alive.as_dict()}

    async def upload_pinned(self, jpeg: bytes) -> None:
        """The objects the hostile requests read; the SDK mix never touches ``pinned/``."""
        import alibabacloud_oss_v2 as oss

        from worker.oss.client import open_async_client
        from worker.settings import Credentials

        async with open_async_client(self.url, REGION, Credentials(KEY_ID, SECRET), 2) as client:
            await client.put_object(oss.PutObjectRequest(bucket=BUCKET, key="pinned/photo.jpg", body=jpeg))
            await client.put_object(oss.PutObjectRequest(bucket=BUCKET, key="pinned/big.bin",
                                                         body=self.rng.randbytes(4 << 20)))

    # idle connections ---------------------------------------------------------------------------

    async def _hold(self, stats: HoldStats, hold_s: float, request: bytes | None) -> None:
        """Open a connection (optionally make one request on it), then send nothing and wait for
        the server to close it, up to ``hold_s``."""
        try:
            reader, writer = await asyncio.wait_for(_connect(self.host, self.port), 10)
        except (OSError, TimeoutError):
            stats.failed_to_open += 1
            return
        stats.opened += 1
        try:
            if request is not None:
                writer.write(request)
                outcome = await read_response(reader)
                self.record("GET, then idle on the kept-alive connection", outcome)
                if not outcome.startswith("HTTP 2"):
                    return
            started = time.monotonic()
            try:
                data = await asyncio.wait_for(reader.read(1), hold_s)
            except TimeoutError:
                stats.outlived_hold += 1
                return
            except OSError:
                data = b""
            if not data:
                stats.closed(time.monotonic() - started)
        finally:
            _close(writer)

    async def idle_loop(self) -> None:
        """Waves of 50-``idle_max`` connections that never send a byte."""
        while True:
            count = self.rng.randint(min(50, self.idle_max), self.idle_max)
            await asyncio.gather(*(self._hold(self.idle, IDLE_HOLD_S, None) for _ in range(count)))
            await asyncio.sleep(2.0)

    async def kept_alive_loop(self) -> None:
        """Waves of 16 connections that make one GET and then go quiet."""
        path, host = _target(self.photo_url)
        request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
        while True:
            await asyncio.gather(*(self._hold(self.kept_alive, KEEPALIVE_HOLD_S, request) for _ in range(16)))
            await asyncio.sleep(2.0)

    # slow writers and readers -------------------------------------------------------------------

    async def _trickle(self, data: bytes, seconds: float, give_up_s: float,
                       reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> float | None:
        """Send ``data`` one byte at a time over ``seconds``; the moment the server closed the
        connection (seconds after the first byte), or None when every byte went out."""
        delay, started = seconds / max(1, len(data)), time.monotonic()
        for i in range(len(data)):
            if reader.at_eof() or time.monotonic() - started > give_up_s:
                return time.monotonic() - started
            try:
                writer.write(data[i:i + 1])
                await writer.drain()
            except OSError:
                return time.monotonic() - started
            await asyncio.sleep(delay)
        return None

    async def slow_request(self, too_slow: bool) -> None:
        probe = "request trickled over " + ("70 s (past the header deadline)" if too_slow else "4-8 s")
        path, host = _target(self.photo_url)
        request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
        reader, writer = await _connect(self.host, self.port)
        try:
            seconds = 70.0 if too_slow else self.rng.uniform(4, 8)
            cut = await self._trickle(request, seconds, HEADER_TIMEOUT_S + 20, reader, writer)
            if cut is not None:
                self.record(probe, f"closed by the server after {cut:.0f} s")
            else:
                self.record(probe, await read_response(reader))
        finally:
            _close(writer)

    async def slow_body(self) -> None:
        path, host = _target(self.put_url)
        body = self.rng.randbytes(64 << 10)
        reader, writer = await _connect(self.host, self.port)
        try:
            writer.write(f"PUT {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n\r\n".encode())
            for start in range(0, len(body), 1024):  # 1 KiB every 0.1 s: 6.4 s
                writer.write(body[start:start + 1024])
                await writer.drain()
                await asyncio.sleep(0.1)
            self.record("PUT body trickled (64 KiB at 10 KiB/s)", await read_response(reader))
        except OSError as exc:
            self.record("PUT body trickled (64 KiB at 10 KiB/s)", type(exc).__name__)
        finally:
            _close(writer)

    async def cut_upload(self) -> None:
        """Promise 1 MiB, send 128 KiB, hang up: the server must drop its temporary file."""
        path, host = _target(self.cut_url)
        _, writer = await _connect(self.host, self.port)
        try:
            writer.write(f"PUT {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {1 << 20}\r\n\r\n".encode())
            writer.write(self.rng.randbytes(128 << 10))
            await writer.drain()
            await asyncio.sleep(0.5)
            self.record("PUT cut off after 128 KiB of 1 MiB", "sent, hung up")
        except OSError as exc:
            self.record("PUT cut off after 128 KiB of 1 MiB", type(exc).__name__)
        finally:
            _close(writer)

    async def slow_read(self, stall: bool) -> None:
        """GET 4 MiB through a 16 KiB receive buffer: read at 512 KiB/s, or read 64 KiB, stop for
        30 s, then read the rest."""
        probe = "4 MiB GET, " + ("read 64 KiB then stalled 30 s" if stall else "read at 512 KiB/s")
        path, host = _target(self.big_url)
        reader, writer = await _connect(self.host, self.port, rcvbuf=16 << 10)
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            status, headers = await _read_head(reader, 15)
            size, got = int(headers.get("content-length", "0")), 0
            while got < size:
                chunk = await asyncio.wait_for(reader.read(32 << 10), 15)
                if not chunk:
                    break
                got += len(chunk)
                if stall and got >= 64 << 10 and got - len(chunk) < 64 << 10:
                    await asyncio.sleep(IDLE_HOLD_S)
                elif not stall:
                    await asyncio.sleep(1 / 16)
            self.record(probe, f"HTTP {status}, " + ("whole body" if got == size else f"{got} of {size} bytes"))
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            self.record(probe, type(exc).__name__)
        finally:
            _close(writer)

    async def slow_loop(self, offset: int) -> None:
        """One of several tasks taking turns at the slow kinds of client."""
        kinds: list[Callable[[], Awaitable[None]]] = [
            lambda: self.slow_request(False), lambda: self.slow_request(True), self.slow_body,
            self.cut_upload, lambda: self.slow_read(False), lambda: self.slow_read(True)]
        i = offset
        while True:
            try:
                await kinds[i % len(kinds)]()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # one odd exchange must not end ten minutes of traffic
                self.record("slow client: failed before its own outcome", type(exc).__name__)
            i += 1
            await asyncio.sleep(0.5)

    # malformed and badly signed requests ----------------------------------------------------------

    def raw_probes(self) -> dict[str, bytes]:
        path, host = _target(self.photo_url)
        obj = "/soak/pinned/photo.jpg"
        now = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime())
        many = "".join(f"X-Junk-{i}: {i}\r\n" for i in range(200))
        get = f"GET {obj} HTTP/1.1\r\nHost: {host}\r\n"
        return {
            "garbage request line": b"HELLO THERE\r\n\r\n",
            "binary junk": self.rng.randbytes(256) + b"\r\n\r\n",
            "header line of 9,000 bytes": f"{get}X-Long: {'a' * 9000}\r\n\r\n".encode(),
            "200 header fields": f"{get}{many}\r\n".encode(),
            "Content-Length: abc": f"PUT /soak/hostile/x HTTP/1.1\r\nHost: {host}\r\nContent-Length: abc\r\n\r\n"
                                   .encode(),
            "unsigned GET": f"{get}Connection: close\r\n\r\n".encode(),
            "V1 header, wrong signature": (f"{get}Date: {now}\r\n"
                                           f"Authorization: OSS {KEY_ID}:bm90IGEgc2lnbmF0dXJlIGF0IGFsbA==\r\n"
                                           "Connection: close\r\n\r\n").encode(),
            "headers cut off, then hung up": f"GET {path} HTTP/1.1\r\nHost: {host}\r\nX-Partial".encode(),
        }

    async def raw_probe(self, name: str, payload: bytes) -> None:
        reader, writer = await _connect(self.host, self.port)
        try:
            writer.write(payload)
            await writer.drain()
            if name.startswith("headers cut off"):
                writer.write_eof()
            self.record(name, await read_response(reader, 10))
        except OSError as exc:
            self.record(name, type(exc).__name__)
        finally:
            _close(writer)

    async def malformed_loop(self) -> None:
        """About four a second: raw malformed requests on fresh connections, and badly signed
        ones through one aiohttp session (kept-alive connections that see error answers)."""
        import aiohttp

        signed = {"V4 presigned, tampered signature": _tampered(self.photo_url),
                  "V4 presigned, unknown key id": self.stranger_url,
                  "V4 presigned, expired": self.expired_url}
        await asyncio.sleep(4.0)  # the expired URL's 2 s are over
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=4)) as session:
            while True:
                raw = self.raw_probes()
                name = self.rng.choice([*raw, *signed])
                try:
                    if name in raw:
                        await self.raw_probe(name, raw[name])
                    else:
                        async with session.get(signed[name]) as response:
                            body = await response.read()
                            code = re.search(rb"<Code>(\w+)</Code>", body)
                            self.record(name, f"HTTP {response.status}" + (f" {code[1].decode()}" if code else ""))
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # one odd exchange must not end ten minutes of traffic
                    self.record(name, type(exc).__name__)
                await asyncio.sleep(0.25)


def hostile_main(config: dict[str, Any]) -> None:
    hostile = Hostile(config["main"], config["seed"], config["idle_max"])
    eventloop.run(hostile.upload_pinned(make_jpegs(1, config["seed"] + 1000)[0]), "auto")
    _run_until(config["deadline"], [hostile.idle_loop(), hostile.kept_alive_loop(), hostile.malformed_loop(),
                                    *(hostile.slow_loop(i) for i in range(4))], hostile.report)


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


def start_client(mode: str, config: dict[str, Any]) -> Client:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PICSCORE_", "OSS_"))}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    stderr = tempfile.TemporaryFile("w+")
    process = subprocess.Popen([sys.executable, __file__, mode, json.dumps(config)], stdout=subprocess.PIPE,
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


# -- the report -----------------------------------------------------------------------------------


def _merge(clients: list[Client], field_name: str) -> dict[str, Counter[str]]:
    """``{"main|GET": 3}`` from the SDK client → ``{"GET": Counter(main=3)}``."""
    merged: dict[str, Counter[str]] = {}
    for client in clients:
        for key, value in client.latest.get(field_name, {}).items():
            server, _, label = key.partition("|")
            merged.setdefault(label, Counter())[server] += value
    return merged


def print_requests(soak: Soak, seconds: float) -> None:
    ops, failed = _merge(soak.clients, "ops"), _merge(soak.clients, "failed")
    print(f"\nSDK requests (client side, {seconds:.0f} s): sent / failed")
    print(f"{'operation':<32} {'main':>9} {'failed':>7} {'faults':>9} {'failed':>7}")
    for label in sorted(ops, key=lambda k: -sum(ops[k].values())):
        f = failed.get(label, Counter())
        print(f"{label:<32} {ops[label]['main']:>9,} {f['main']:>7,} {ops[label]['faults']:>9,} {f['faults']:>7,}")
    totals = {s: sum(c[s] for k, c in ops.items() if k != "LIST pages") for s in ("main", "faults")}
    print(f"{'all (LIST pages not counted)':<32} {totals['main']:>9,} "
          f"{sum(c['main'] for c in failed.values()):>7,} {totals['faults']:>9,} "
          f"{sum(c['faults'] for c in failed.values()):>7,}   "
          f"({totals['main'] / seconds:.0f} and {totals['faults'] / seconds:.0f} per second)")
    errors = _merge(soak.clients, "errors")
    print("\nSDK errors by kind (client side)")
    print(f"{'kind':<60} {'main':>7} {'faults':>7}")
    for kind in sorted(errors, key=lambda k: -sum(errors[k].values())):
        print(f"{kind:<60} {errors[kind]['main']:>7,} {errors[kind]['faults']:>7,}")
    if not errors:
        print("  none")
    print("  expected: 503 CpuLimitExceeded on main (the scoring backlog shedding load), a 400 for image/score of "
          "non-image bytes (main), 404 NoSuchKey (a read racing a DELETE), and on faults the injected 503/429 and "
          "resets (ClientOSError, ServerDisconnectedError)")


def _hold_line(what: str, stats: dict[str, Any], hold_s: float) -> str:
    if not stats:
        return f"{what}: no data"
    closes = Counter({float(k): v for k, v in stats["close_seconds"].items()})
    median = statistics.median(closes.elements()) if closes else None
    closed = (f"{stats['closed_by_server']:,} closed by the server after {median:.1f} s (median; "
              f"{stats['min_close_s']:.1f}-{stats['max_close_s']:.1f} s)" if median is not None
              else "0 closed by the server")
    return (f"{what}: {stats['opened']:,} opened ({stats['failed_to_open']} failed to open), {closed}, "
            f"{stats['outlived_hold']:,} still open after {hold_s:.0f} s "
            f"(the rest were cut by the end of the run)")


def print_hostile(soak: Soak) -> None:
    hostile = next((c.latest for c in soak.clients if c.name == "hostile"), {})
    print("\nHostile traffic against the main server (client side): outcomes")
    probes = hostile.get("probes", {})
    width = max((len(p) for p in probes), default=10)
    for probe, outcomes in sorted(probes.items()):
        text = ", ".join(f"{o} x{n:,}" for o, n in sorted(outcomes.items(), key=lambda kv: -kv[1]))
        print(f"  {probe:<{width}} {sum(outcomes.values()):>6,}  {text}")
    print("  " + _hold_line(f"idle connections (nothing sent; header deadline {HEADER_TIMEOUT_S:.0f} s)",
                            hostile.get("idle", {}), IDLE_HOLD_S))
    print("  " + _hold_line(f"kept-alive idle (one GET, then nothing; keep-alive {KEEPALIVE_TIMEOUT_S:.0f} s)",
                            hostile.get("kept_alive", {}), KEEPALIVE_HOLD_S))


def _growth(before: float, after: float) -> tuple[float, float]:
    return after - before, (after - before) / before if before else 0.0


def _trend_mb_per_min(samples: list[tuple[float, ProcSample]], start: float, end: float,
                      value: Callable[[ProcSample], float]) -> float:
    window = [(t, value(s)) for t, s in samples if start <= t <= end]
    if len(window) < 3:
        return 0.0
    return statistics.linear_regression([t for t, _ in window], [v for _, v in window]).slope * 60


def drift(soak: Soak) -> list[str]:
    """Print each server's drift; return the figures that break the bounds (empty: flat)."""
    problems: list[str] = []
    warm, end = soak.points.get("warm-up", {}), soak.points.get("end", {})
    idle, rest = soak.points.get("idle", {}), soak.points.get("at rest", {})
    print("\nDrift, warm-up → end of traffic (RSS; trend: least squares over the samples in between), "
          "and fds at rest (before the traffic → 5 s after it)")
    for name in soak.servers:
        if name not in warm or name not in end:
            print(f"  {name}: not enough samples")
            continue
        t_start = next(t for t, s in soak.samples[name] if s is warm[name])
        t_end = next(t for t, s in soak.samples[name] if s is end[name])
        for what, value in (("server RSS", lambda s: s.rss_mb), ("children RSS", lambda s: s.children_rss_mb)):
            before, after = value(warm[name]), value(end[name])
            if what == "children RSS" and not before:
                continue
            grown, rel = _growth(before, after)
            trend = _trend_mb_per_min(soak.samples[name], t_start, t_end, value)
            peak = max(value(s) for t, s in soak.samples[name] if t_start <= t <= t_end)
            print(f"  {name:<7} {what:<13} {before:>7.1f} → {after:>7.1f} MB  ({grown:+.1f} MB, {rel:+.1%}; "
                  f"trend {trend:+.2f} MB/min over {t_end - t_start:.0f} s; peak {peak:.1f} MB)")
            if grown > max(RSS_TOLERANCE_MB, RSS_TOLERANCE_FRACTION * before):
                problems.append(f"{name} {what} {grown:+.1f} MB ({rel:+.1%})")
        print(f"  {name:<7} {'threads':<13} {warm[name].threads:>7} → {end[name].threads:>7}")
        fds_grown, fds_rel = _growth(warm[name].fds, end[name].fds)
        print(f"  {name:<7} {'fds, traffic':<13} {warm[name].fds:>7} → {end[name].fds:>7}     "
              f"({fds_grown:+.0f}, {fds_rel:+.0%}; sockets {warm[name].sockets} → {end[name].sockets}: swings with "
              "the idle connections, not judged)")
        if name in idle and name in rest:
            grown_fds = rest[name].fds - idle[name].fds
            print(f"  {name:<7} {'fds at rest':<13} {idle[name].fds:>7} → {rest[name].fds:>7}     "
                  f"({grown_fds:+d}; sockets {idle[name].sockets} → {rest[name].sockets}; children's fds "
                  f"{idle[name].children_fds} → {rest[name].children_fds})")
            if grown_fds > FD_TOLERANCE:
                problems.append(f"{name} fds at rest {grown_fds:+d}")
        replaced = len(soak.seen_children.get(name, set()) - set(idle.get(name, warm[name]).children))
        if replaced:
            print(f"  {name:<7} {replaced} child process(es) appeared during the run (a pool worker replaced?)")
    return problems


def log_summary(lines: Iterable[str]) -> Counter[str]:
    """Server log lines (JSON) grouped by event and the exception's last line, so ten minutes of
    the same warning read as one row with a count."""
    groups: Counter[str] = Counter()
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            groups[line.strip()[:160]] += 1
            continue
        last = [part for part in str(entry.get("exception", "")).splitlines() if part.strip()][-1:]
        status = f" {entry['status']}" if "status" in entry else ""
        detail = f": {last[0][:140]}" if last else ""
        groups[f"{entry.get('level', '?')} {entry.get('event', '?')}{status}{detail}"] += 1
    return groups


def print_logs(soak: Soak) -> None:
    for name, server in soak.servers.items():
        groups = log_summary(line for line in server.output if "listening on" not in line)
        print(f"  {name} server log (--log-level warning): {sum(groups.values())} line(s)"
              + "".join(f"\n    {n:>5,} x {text}" for text, n in groups.most_common(8)))


def report(soak: Soak, options: argparse.Namespace) -> int:
    print_requests(soak, options.seconds)
    print_hostile(soak)
    problems = drift(soak)
    print()
    print_logs(soak)
    print("  client RSS at the end: " + ", ".join(f"{name} {mb:.0f} MB"
                                                 for name, mb in soak.client_rss.items()))
    code = 0
    for name, why in soak.died.items():
        print(f"\n{name} server DIED ({why}); its last output:\n" + "".join(soak.servers[name].output[-30:]))
        code = 1
    for client in soak.clients:
        if client.process.returncode not in (0, None):
            print(f"\n{client.name} client failed (exit {client.process.returncode}):\n{client.stderr_tail()}")
            code = 1
    if code:
        print("\nverdict: NOT MEASURED — a process died (see above)")
    elif problems:
        print("\nverdict: GROWING — " + "; ".join(problems))
    else:
        print(f"\nverdict: flat — RSS within +{RSS_TOLERANCE_FRACTION:.0%} / +{RSS_TOLERANCE_MB:.0f} MB from the "
              f"warm-up to the end and fds at rest within +{FD_TOLERANCE}, on both servers")
    return code


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
