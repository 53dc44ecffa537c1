"""The image/score operation over the engine's paced caller, against real servers: ``picscore
serve`` child processes (some with fault injection) reached through the real
``alibabacloud_oss_v2`` AsyncClient built by ``worker.oss.client``. Backoffs are milliseconds so
the whole module stays fast."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from types import SimpleNamespace

import alibabacloud_oss_v2 as oss
import pytest
from aiohttp import web

from tests.conftest import ACCESS_KEY_ID, ACCESS_KEY_SECRET, BUCKET, make_jpeg
from tests.integration.rawclient import signed
from worker.batch.calls import PacedCaller
from worker.batch.items import WorkItem
from worker.batch.ratelimit import AdaptiveLimiter
from worker.commands.image_score import ScoreOperation
from worker.oss.client import OssAsyncClient, build_async_client
from worker.oss.retry import AuthenticationFailed, RetryPolicy
from worker.oss.score_contract import InvalidAnswer
from worker.oss.score_contract import parse_score_answer as parse_answer
from worker.results.schema import ObjectRef, ResultRow, Status
from worker.server.launch import ServerProcess, start_server

FAST = RetryPolicy(attempts=4, total_s=20.0, base_s=0.005, max_backoff_s=0.02)
CREDS = SimpleNamespace(access_key_id=ACCESS_KEY_ID, access_key_secret=ACCESS_KEY_SECRET, session_token=None)
JPEG = make_jpeg(seed=3)


class ScoreCaller:
    """The operation as ``picscore run`` builds it: ScoreOperation over a PacedCaller."""

    def __init__(self, client: OssAsyncClient, lim: AdaptiveLimiter, retry: RetryPolicy, *,
                 observer: RecordingObserver | None = None) -> None:
        self.operation = ScoreOperation(client, PacedCaller(lim, retry, observer=observer))

    async def score(self, ref: ObjectRef) -> ResultRow:
        return await self.operation.perform(WorkItem(ref, page=0))


class RecordingObserver:
    """Counts every hook call, as the Prometheus observer will."""

    def __init__(self) -> None:
        self.retries: list[str] = []
        self.attempts: list[tuple[float, int | None]] = []
        self.throttles = 0
        self.rate_waits: list[float] = []

    def on_retry(self, reason: str) -> None:
        self.retries.append(reason)

    def on_attempt(self, latency_s: float, status: int | None) -> None:
        self.attempts.append((latency_s, status))

    def on_throttle(self) -> None:
        self.throttles += 1

    def on_rate_wait(self, seconds: float) -> None:
        self.rate_waits.append(seconds)


def ref(key: str, bucket: str = BUCKET) -> ObjectRef:
    return ObjectRef(bucket=bucket, key=key, etag='"e"', size=len(JPEG), last_modified=None)


def put(server: ServerProcess, key: str, body: bytes = JPEG) -> None:
    assert signed(server.url, "PUT", key, body=body).status == 200


def limiter() -> AdaptiveLimiter:
    """Unlimited until throttled, and a floor high enough that throttles never slow the tests."""
    return AdaptiveLimiter(None, floor=10_000)


@pytest.fixture()
async def client(server: ServerProcess) -> AsyncIterator[OssAsyncClient]:
    async with build_async_client(server.url, "cn-hangzhou", CREDS, 4) as c:
        yield c


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """Start (once per spec) a fast-scoring (fake model) server with ``--faults SPEC`` holding ``photo.jpg``."""
    started: dict[str, ServerProcess] = {}

    def start(spec: str) -> ServerProcess:
        if spec in started:
            return started[spec]
        root = tmp_path_factory.mktemp("faulty")
        (root / BUCKET).mkdir()
        proc = start_server(root, {ACCESS_KEY_ID: ACCESS_KEY_SECRET},
                            args=["--fake-score-latency", "2ms", "--faults", spec])
        started[spec] = proc
        put(proc, "photo.jpg")
        return proc

    yield start
    for proc in started.values():
        proc.stop()


async def score_on(url: str, key: str, *, retry: RetryPolicy = FAST, observer: RecordingObserver | None = None,
                   lim: AdaptiveLimiter | None = None, secret: str = ACCESS_KEY_SECRET, **timeouts: float):
    creds = SimpleNamespace(access_key_id=ACCESS_KEY_ID, access_key_secret=secret)
    async with build_async_client(url, "cn-hangzhou", creds, 2, **timeouts) as c:
        caller = ScoreCaller(c, lim or limiter(), retry, observer=observer)
        return await caller.score(ref(key))


# --- the plain server (real quality model) ---------------------------------------------------

async def test_scored_row_has_score_dimensions_and_request_id(server: ServerProcess, client) -> None:
    put(server, "scoring/photo.jpg")
    observer = RecordingObserver()
    row = await ScoreCaller(client, limiter(), FAST, observer=observer).score(ref("scoring/photo.jpg"))
    assert row.status is Status.SCORED
    assert row.score is not None and 0.0 <= row.score <= 1.0
    assert row.dimensions and all(name.endswith("Score") for name in row.dimensions)
    assert "OverallQualityScore" not in row.dimensions
    assert row.http_status == 200 and row.attempts == 1 and row.error_code is None
    assert row.request_id and row.latency_ms is not None and row.latency_ms > 0
    assert row.scored_at is not None and row.scored_at.tzinfo is not None
    assert [status for _, status in observer.attempts] == [200] and not observer.retries


async def test_missing_key_is_a_missing_row(client) -> None:
    row = await ScoreCaller(client, limiter(), FAST).score(ref("scoring/never-uploaded.jpg"))
    assert (row.status, row.http_status, row.error_code, row.attempts) == (Status.MISSING, 404, "NoSuchKey", 1)
    assert row.score is None and row.request_id


async def test_an_object_archived_after_listing_is_skipped_not_failed(server: ServerProcess, client) -> None:
    """OSS answers 403 InvalidObjectState for an Archive object until it is restored: the row says
    skipped/Archived (the audit did nothing wrong), and nothing is retried."""
    await client.put_object(oss.PutObjectRequest(bucket=BUCKET, key="scoring/cold.jpg", body=JPEG,
                                                 storage_class="Archive"))
    observer = RecordingObserver()
    row = await ScoreCaller(client, limiter(), FAST, observer=observer).score(ref("scoring/cold.jpg"))
    assert (row.status, row.http_status, row.error_code, row.attempts) == (Status.SKIPPED, 403, "Archived", 1)
    assert "InvalidObjectState" in (row.error_message or "") and not observer.retries


async def test_non_image_fails_once_with_bad_request(server: ServerProcess, client) -> None:
    put(server, "scoring/notes.jpg", b"this is not an image at all")
    observer = RecordingObserver()
    row = await ScoreCaller(client, limiter(), FAST, observer=observer).score(ref("scoring/notes.jpg"))
    assert (row.status, row.http_status, row.error_code, row.attempts) == (Status.FAILED, 400, "BadRequest", 1)
    assert row.error_message and not observer.retries


async def test_wrong_secret_aborts_after_one_attempt(server: ServerProcess) -> None:
    put(server, "scoring/auth.jpg")
    observer = RecordingObserver()
    with pytest.raises(AuthenticationFailed) as caught:
        await score_on(server.url, "scoring/auth.jpg", observer=observer, secret="not-the-secret-0123456789")
    assert caught.value.failure.code == "SignatureDoesNotMatch"
    assert [status for _, status in observer.attempts] == [403] and not observer.retries
    assert "not-the-secret" not in str(caught.value)


async def test_localhost_endpoint_uses_path_style(server: ServerProcess) -> None:
    put(server, "scoring/local.jpg")
    row = await score_on(f"http://localhost:{server.port}", "scoring/local.jpg")
    assert row.status is Status.SCORED


# --- fault injection ------------------------------------------------------------------------

async def test_503_bursts_are_retried_until_scored(faulty) -> None:
    proc = faulty("503=0.5,seed=1")
    observer = RecordingObserver()
    retry = RetryPolicy(attempts=10, total_s=20.0, base_s=0.005, max_backoff_s=0.02)
    rows = [await score_on(proc.url, "photo.jpg", retry=retry, observer=observer) for _ in range(6)]
    assert all(row.status is Status.SCORED for row in rows)
    assert max(row.attempts for row in rows) > 1
    assert sum(row.attempts for row in rows) == len(observer.attempts)
    assert observer.throttles == len(observer.retries) > 0  # 503 CpuLimitExceeded is a throttle
    assert set(observer.retries) == {"throttled"}


async def test_throttling_everywhere_is_waited_for_until_the_time_budget_not_the_attempts(faulty) -> None:
    """Issue 15: a busy service must not lose objects to an attempt count. Throttles (429, 503
    CpuLimitExceeded) do not use up ``attempts``; only ``total_s`` ends the wait."""
    proc = faulty("429=1")
    observer, lim = RecordingObserver(), limiter()
    budget = RetryPolicy(attempts=2, total_s=0.6, base_s=0.005, max_backoff_s=0.02)
    started = time.monotonic()
    row = await score_on(proc.url, "photo.jpg", retry=budget, observer=observer, lim=lim)
    elapsed = time.monotonic() - started
    assert (row.status, row.http_status, row.error_code) == (Status.FAILED, 429, "TooManyRequests")
    assert row.attempts > budget.attempts * 3 and row.attempts == len(observer.attempts) == lim.throttles
    assert observer.retries == ["throttled"] * (row.attempts - 1)
    assert 0.3 <= elapsed < 5.0
    assert lim.rate is not None  # the limiter left unlimited mode on the first throttle


async def test_connection_resets_are_retried_until_scored(faulty) -> None:
    proc = faulty("reset=0.5,seed=2")
    observer = RecordingObserver()
    retry = RetryPolicy(attempts=12, total_s=20.0, base_s=0.005, max_backoff_s=0.02)
    rows = [await score_on(proc.url, "photo.jpg", retry=retry, observer=observer) for _ in range(5)]
    assert all(row.status is Status.SCORED for row in rows)
    assert max(row.attempts for row in rows) > 1
    assert "connection" in observer.retries and observer.throttles == 0


async def test_latency_is_reported_and_read_timeouts_are_retried(faulty) -> None:
    proc = faulty("latency=150ms")
    row = await score_on(proc.url, "photo.jpg")
    assert row.status is Status.SCORED and row.latency_ms is not None and row.latency_ms >= 150

    observer = RecordingObserver()
    retry = RetryPolicy(attempts=2, total_s=20.0, base_s=0.005, max_backoff_s=0.02)
    row = await score_on(proc.url, "photo.jpg", retry=retry, observer=observer, read_timeout_s=0.05)
    assert (row.status, row.error_code, row.http_status, row.attempts) == (Status.FAILED, "Timeout", None, 2)
    assert observer.retries == ["timeout"]


async def test_connection_limit_caps_parallel_calls(faulty) -> None:
    """Six calls, two connections, 150 ms each: at least three rounds, whatever the callers do."""
    proc = faulty("latency=150ms")
    async with build_async_client(proc.url, "cn-hangzhou", CREDS, 2) as c:
        assert c.http_session.connector is not None and c.http_session.connector.limit == 2
        caller = ScoreCaller(c, limiter(), FAST)
        started = time.perf_counter()
        rows = await asyncio.gather(*(caller.score(ref("photo.jpg")) for _ in range(6)))
        elapsed = time.perf_counter() - started
    assert all(row.status is Status.SCORED for row in rows)
    assert elapsed >= 0.45


async def test_total_time_budget_stops_retries(faulty) -> None:
    proc = faulty("429=1")
    retry = RetryPolicy(attempts=1000, total_s=0.3, base_s=0.05, max_backoff_s=0.05)
    started = time.perf_counter()
    row = await score_on(proc.url, "photo.jpg", retry=retry)
    assert row.status is Status.FAILED and 1 < row.attempts < 1000
    assert time.perf_counter() - started < 2.0


async def test_rate_limit_waits_are_reported(faulty) -> None:
    proc = faulty("latency=150ms")
    observer = RecordingObserver()
    lim = AdaptiveLimiter(5.0)  # one call per 200 ms (each takes 150 ms), no burst beyond one
    async with build_async_client(proc.url, "cn-hangzhou", CREDS, 2) as c:
        caller = ScoreCaller(c, lim, FAST, observer=observer)
        rows = [await caller.score(ref("photo.jpg")) for _ in range(3)]
    assert all(row.status is Status.SCORED for row in rows)
    assert observer.rate_waits and len(observer.rate_waits) == 2
    assert all(0 < wait <= 0.2 + 1e-6 for wait in observer.rate_waits)


# --- invalid answers: a stand-in server ------------------------------------------------------
# ``picscore serve`` never answers 200 with a bad body, so this tiny aiohttp app (127.0.0.1)
# does, to exercise the validation path through the real SDK. It does not check signatures.

BAD_BODIES: dict[str, tuple[int, bytes]] = {
    "html": (200, b"<html>proxy login</html>"),
    "empty": (200, b""),
    "no-image-score": (200, json.dumps({"RequestId": "R1"}).encode()),
    "out-of-range": (200, json.dumps({"ImageScore": {"OverallQualityScore": 1.5}}).encode()),
    "string-score": (200, json.dumps({"ImageScore": {"OverallQualityScore": "0.5"}}).encode()),
    "bool-score": (200, json.dumps({"ImageScore": {"OverallQualityScore": True}}).encode()),
    "nan-score": (200, b'{"ImageScore": {"OverallQualityScore": NaN}}'),
    "list": (200, b"[0.5]"),
}
GOOD = json.dumps({"ImageScore": {"OverallQualityScore": 0.705, "NoiseScore": 0.9, "Label": "x", "Flag": True},
                   "RequestId": "R-good"}).encode()


@pytest.fixture()
async def standin() -> AsyncIterator[str]:
    calls: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        key = request.path.rsplit("/", 1)[-1]
        calls.append(key)
        if key == "flaky" and calls.count("flaky") == 1:
            return web.Response(status=500, body=b"<Error><Code>InternalError</Code></Error>")
        status, body = BAD_BODIES.get(key, (200, GOOD))
        return web.Response(status=status, body=body, headers={"x-oss-request-id": f"hdr-{key}"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("key", sorted(BAD_BODIES))
async def test_invalid_answers_are_failed_rows_without_retry(standin: str, key: str) -> None:
    row = await score_on(standin, key)
    assert (row.status, row.error_code, row.http_status, row.attempts) == (Status.FAILED, "InvalidAnswer", 200, 1)
    assert row.score is None and row.error_message and row.request_id == f"hdr-{key}"


async def test_standin_good_answer_keeps_only_numeric_dimensions(standin: str) -> None:
    row = await score_on(standin, "good")
    assert (row.status, row.score, row.dimensions, row.request_id) == (Status.SCORED, 0.705, {"NoiseScore": 0.9},
                                                                        "R-good")


async def test_plain_500_is_retried(standin: str) -> None:
    observer = RecordingObserver()
    row = await score_on(standin, "flaky", observer=observer)
    assert row.status is Status.SCORED and row.attempts == 2
    assert observer.retries == ["http_500"] and observer.throttles == 0


def test_parse_answer_rejects_unusable_bodies() -> None:
    assert parse_answer(GOOD).score == 0.705
    for _, body in BAD_BODIES.values():
        with pytest.raises(InvalidAnswer):
            parse_answer(body)


def test_retry_policy_needs_one_attempt() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(attempts=0)
