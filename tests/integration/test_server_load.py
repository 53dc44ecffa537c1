"""Concurrency, backpressure and fault injection, each against its own real server process."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from multidict import CIMultiDict

from tests.conftest import ACCESS_KEY_ID, ACCESS_KEY_SECRET, BUCKET, make_jpeg
from tests.integration.rawclient import presign, send, signed
from worker.server.launch import ServerProcess, start_server


@pytest.fixture()
def make_server(tmp_path: Path) -> Iterator:
    started: list[ServerProcess] = []

    def start(*args: str) -> ServerProcess:
        root = tmp_path / f"root{len(started)}"
        (root / BUCKET).mkdir(parents=True)
        proc = start_server(root, {ACCESS_KEY_ID: ACCESS_KEY_SECRET}, args=list(args))
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


async def _fetch_all(urls: list[str], method: str = "GET") -> list[tuple[int, bytes, dict[str, str]]]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        async def one(url: str) -> tuple[int, bytes, dict[str, str]]:
            async with session.request(method, url) as response:
                return response.status, await response.read(), dict(response.headers)
        return await asyncio.gather(*(one(u) for u in urls))


def test_concurrent_put_and_get_of_one_key_never_tear(make_server) -> None:
    """Readers racing a writer see version A or version B whole, with the matching ETag."""
    server = make_server()
    versions = [bytes([65 + i]) * (2 * 1024 * 1024 + i) for i in range(3)]  # 2 MiB each, distinct sizes
    etags = {f'"{hashlib.md5(v).hexdigest().upper()}"': v for v in versions}
    assert signed(server.url, "PUT", "race.bin", body=versions[0]).status == 200
    put_url, get_url = presign(server.url, "PUT", "race.bin"), presign(server.url, "GET", "race.bin")

    async def race() -> list[tuple[int, bytes, dict[str, str]]]:
        reads: list[tuple[int, bytes, dict[str, str]]] = []
        # no automatic Content-Type: V4 signs it, and the presigned PUT was made without one
        async with aiohttp.ClientSession(skip_auto_headers=["Content-Type"]) as session:
            async def writer() -> None:
                for round_ in range(30):
                    async with session.put(put_url, data=versions[round_ % 3]) as response:
                        assert response.status == 200
            async def reader() -> None:
                for _ in range(30):
                    async with session.get(get_url) as response:
                        reads.append((response.status, await response.read(), CIMultiDict(response.headers)))
            await asyncio.gather(writer(), reader(), reader(), reader())
        return reads

    reads = asyncio.run(race())
    assert len(reads) == 90
    for status, body, headers in reads:
        assert status == 200
        assert body in versions, "torn or mixed body"
        assert etags[headers["ETag"]] == body, "ETag from another version than the body"
        assert int(headers["Content-Length"]) == len(body)


def test_backlog_overflow_answers_503_cpu_limit_exceeded(make_server) -> None:
    """Capacity = workers + backlog; the rest are shed at once with 503 CpuLimitExceeded."""
    server = make_server("--fake-score-latency", "800ms", "--workers", "1", "--backlog", "1")
    assert signed(server.url, "PUT", "img.jpg", body=make_jpeg()).status == 200
    url = presign(server.url, "GET", "img.jpg", process="image/score")
    started = time.perf_counter()
    results = asyncio.run(_fetch_all([url] * 6))
    statuses = sorted(status for status, _, _ in results)
    assert statuses == [200, 200, 503, 503, 503, 503]
    shed = [body for status, body, _ in results if status == 503]
    assert all(b"<Code>CpuLimitExceeded</Code>" in body for body in shed)
    assert time.perf_counter() - started < 5
    # capacity comes back once the admitted requests finish
    assert send(url).status == 200


def test_real_scorer_sheds_load_and_recovers(make_server) -> None:
    """With one scoring process and no backlog, a burst gets some 503s, never a 500 or a hang."""
    server = make_server("--workers", "1", "--backlog", "0")
    assert signed(server.url, "PUT", "big.jpg", body=make_jpeg(1600, 1200, seed=2)).status == 200
    url = presign(server.url, "GET", "big.jpg", process="image/score")
    results = asyncio.run(_fetch_all([url] * 12))
    statuses = [status for status, _, _ in results]
    assert set(statuses) <= {200, 503} and 200 in statuses and 503 in statuses
    scores = {json.loads(body)["ImageScore"]["OverallQualityScore"] for status, body, _ in results if status == 200}
    assert len(scores) == 1, "the same bytes must score the same in every worker"
    assert send(url).status == 200


@pytest.mark.parametrize("spec, status, code", [
    ("503=1,seed=1", 503, "CpuLimitExceeded"),
    ("503=1,503-code=TotalQpsLimitExceeded", 503, "TotalQpsLimitExceeded"),
    ("429=1", 429, "TooManyRequests"),
])
def test_injected_error_statuses_hit_score_requests_only(make_server, spec: str, status: int, code: str) -> None:
    server = make_server("--faults", spec)
    assert signed(server.url, "PUT", "f.jpg", body=make_jpeg()).status == 200
    scored = signed(server.url, "GET", "f.jpg", process="image/score")
    assert (scored.status, scored.code) == (status, code)
    assert signed(server.url, "GET", "f.jpg").status == 200  # plain GET: scope=score leaves it alone


def test_injected_fraction_is_roughly_honoured(make_server) -> None:
    server = make_server("--faults", "503=0.3,seed=11", "--fake-score-latency", "1ms", "--backlog", "1000")
    assert signed(server.url, "PUT", "f.jpg", body=make_jpeg()).status == 200
    url = presign(server.url, "GET", "f.jpg", process="image/score")
    statuses = [status for status, _, _ in asyncio.run(_fetch_all([url] * 200))]
    assert 30 <= statuses.count(503) <= 90 and statuses.count(200) == 200 - statuses.count(503)


def test_injected_reset_breaks_the_connection(make_server) -> None:
    server = make_server("--faults", "reset=1")
    assert signed(server.url, "PUT", "f.jpg", body=make_jpeg()).status == 200
    url = presign(server.url, "GET", "f.jpg", process="image/score")
    with pytest.raises((ConnectionError, OSError)):
        send(url)
    assert signed(server.url, "GET", "f.jpg").status == 200


def test_injected_latency_and_slow_body(make_server) -> None:
    server = make_server("--faults", "latency=300ms,slow-body=200B/s,scope=all", "--fake-score-latency", "1ms")
    body = b"x" * 100
    assert signed(server.url, "PUT", "slow.bin", body=body).status == 200
    started = time.perf_counter()
    response = signed(server.url, "GET", "slow.bin")
    elapsed = time.perf_counter() - started
    assert response.status == 200 and response.body == body
    assert elapsed >= 0.3 + 0.4  # latency, then 100 bytes at 200 B/s in 20-byte steps every 0.1 s


def test_fault_free_latency_range(make_server) -> None:
    server = make_server("--faults", "latency=100-200ms,seed=3", "--fake-score-latency", "1ms")
    assert signed(server.url, "PUT", "f.jpg", body=make_jpeg()).status == 200
    url = presign(server.url, "GET", "f.jpg", process="image/score")
    for _ in range(3):
        started = time.perf_counter()
        assert send(url).status == 200
        assert 0.1 <= time.perf_counter() - started < 1.0


def test_snapshots_share_the_pool_and_shed_load_like_scoring(make_server) -> None:
    """video/snapshot is admitted by the same bounded pool as image/score: with one process and
    no backlog, a burst of snapshots and scores gets 200s and 503 CpuLimitExceeded, never a 500."""
    from PIL import Image

    from worker.video.encode import encode_video

    server = make_server("--workers", "1", "--backlog", "0")
    frames = [Image.new("RGB", (640, 480), (i * 4, 90, 200 - i * 3)) for i in range(60)]
    video = encode_video(frames, "h264", fps=30, gop=60)
    assert signed(server.url, "PUT", "clip.mp4", body=video).status == 200
    assert signed(server.url, "PUT", "big.jpg", body=make_jpeg(1600, 1200, seed=2)).status == 200
    snapshot = presign(server.url, "GET", "clip.mp4", process="video/snapshot,t_1950,f_png")
    score = presign(server.url, "GET", "big.jpg", process="image/score")
    results = asyncio.run(_fetch_all([snapshot] * 8 + [score] * 4))
    statuses = [status for status, _, _ in results]
    assert set(statuses) <= {200, 503} and 503 in statuses, statuses
    assert any(status == 200 and headers["Content-Type"] == "image/png" for status, _, headers in results)
    shed = [body for status, body, _ in results if status == 503]
    assert all(b"<Code>CpuLimitExceeded</Code>" in body for body in shed)
    assert send(snapshot).status == 200  # capacity comes back
