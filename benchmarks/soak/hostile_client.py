"""The hostile client child (``bench_soak.py _hostile CONFIG_JSON``): idle, slow and malformed clients."""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import socket
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from worker import eventloop

from .common import _run_until
from .constants import BUCKET, HEADER_TIMEOUT_S, IDLE_HOLD_S, KEEPALIVE_HOLD_S, KEY_ID, REGION, SECRET
from .sdk_client import make_jpegs

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
