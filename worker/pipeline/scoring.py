"""One object in, one result row out: the signed ``GET ?x-oss-process=image/score`` call.

:class:`ScoreCaller` owns everything about a single object's call — pacing (the adaptive
limiter), retries (tenacity, full-jitter exponential backoff), classification of failures and
validation of the answer — and turns every outcome the service can produce into a
:class:`~worker.pipeline.model.ResultRow`. Only one outcome is an exception:
:class:`AuthenticationFailed`, because a wrong secret fails every object alike and the run
must stop instead of writing a FAILED row per object.

Outcomes:

* 200 with a valid answer → ``scored`` (score, per-dimension scores, RequestId);
* 200 with anything else → ``failed``, ``error_code=InvalidAnswer`` (not retried);
* 404 ``NoSuchKey`` → ``missing`` (deleted between listing and scoring);
* other 4xx → ``failed`` with the service's status, Code and Message (not retried);
* 5xx, 429, timeouts, connection errors → retried; if retries run out → ``failed`` with the
  last failure.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from alibabacloud_oss_v2.aio import AsyncClient
from alibabacloud_oss_v2.types import OperationInput
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_before_delay,
    wait_random_exponential,
)

from worker.oss.errors import SERVICE, CallFailure, classify, invalid_answer, is_auth_failure
from worker.pipeline.model import ObjectRef, ResultRow, Status
from worker.pipeline.ratelimit import AdaptiveLimiter

T = TypeVar("T")

__all__ = [
    "ScoreCaller", "RetryPolicy", "AuthenticationFailed", "ScoreObserver", "NullObserver",
    "ScoreAnswer", "InvalidAnswer", "parse_answer", "SCORE_PROCESS", "invoke_score",
    "CallFailed", "retrying",
]

SCORE_PROCESS = "image/score"
#: The query parameter that carries the process (``GetObjectRequest.process`` in the SDK's model).
PROCESS_PARAMETER = "x-oss-process"
REQUEST_ID_HEADER = "x-oss-request-id"


@dataclass(frozen=True)
class RetryPolicy:
    """At most ``attempts`` tries, and no new try that would start after ``total_s`` seconds.

    Backoff is full jitter: before try *n+1* sleep uniformly in
    ``[0, min(max_backoff_s, base_s * 2**(n-1))]`` — spreading retries of many consumers that
    were throttled together, so they do not come back together."""

    attempts: int = 6
    total_s: float = 120.0
    base_s: float = 0.5
    max_backoff_s: float = 30.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {self.attempts}")


class AuthenticationFailed(Exception):
    """The service rejected our credentials (or clock): every call would fail, so abort the run."""

    def __init__(self, failure: CallFailure) -> None:
        super().__init__(f"authentication failed: {failure.http_status} {failure.code}: {failure.message}")
        self.failure = failure


class ScoreObserver(Protocol):
    """Metrics hooks. Called on the event loop; keep them cheap and non-blocking."""

    def on_retry(self, reason: str) -> None: ...           # a retry is about to be scheduled
    def on_attempt(self, latency_s: float, status: int | None) -> None: ...  # every HTTP try
    def on_throttle(self) -> None: ...                      # 503 CpuLimitExceeded/TotalQpsLimitExceeded, 429
    def on_rate_wait(self, seconds: float) -> None: ...     # the limiter delayed a try


class NullObserver:
    """The default observer: ignores everything."""

    def on_retry(self, reason: str) -> None:
        pass

    def on_attempt(self, latency_s: float, status: int | None) -> None:
        pass

    def on_throttle(self) -> None:
        pass

    def on_rate_wait(self, seconds: float) -> None:
        pass


@dataclass(frozen=True)
class ScoreAnswer:
    """A validated ``image/score`` body."""

    score: float
    dimensions: dict[str, float]
    request_id: str | None


class InvalidAnswer(ValueError):
    """The body of a 2xx answer is not a usable ``image/score`` result."""


def parse_answer(body: bytes) -> ScoreAnswer:
    """Validate ``{"ImageScore": {"OverallQualityScore": x, ...}, "RequestId": "..."}``.

    ``OverallQualityScore`` must be a finite number in [0, 1]. Other finite numeric fields of
    ``ImageScore`` are kept as dimensions (Alibaba Cloud sends none, picscore serve several);
    non-numeric extras are ignored rather than failing an otherwise good score."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidAnswer(f"the answer is not JSON ({len(body)} bytes)") from exc
    image_score = document.get("ImageScore") if isinstance(document, dict) else None
    if not isinstance(image_score, dict):
        raise InvalidAnswer("the answer has no ImageScore object")
    overall = image_score.get("OverallQualityScore")
    if not _is_finite_number(overall) or not 0.0 <= overall <= 1.0:
        raise InvalidAnswer(f"OverallQualityScore is not a number in [0, 1]: {str(overall)[:40]!r}")
    dimensions = {name: float(value) for name, value in image_score.items()
                  if name != "OverallQualityScore" and _is_finite_number(value)}
    request_id = document.get("RequestId")
    return ScoreAnswer(float(overall), dimensions, request_id if isinstance(request_id, str) else None)


def _score_operation(bucket: str, key: str) -> OperationInput:
    """The SDK operation of one scoring call: ``GetObject`` of ``key`` with ``x-oss-process=image/score``."""
    return OperationInput(op_name="GetObject", method="GET", bucket=bucket, key=key,
                          parameters={PROCESS_PARAMETER: SCORE_PROCESS})


async def invoke_score(client: AsyncClient, bucket: str, key: str) -> tuple[int, bytes, str | None]:
    """One scoring call: (HTTP status, body, request id); SDK errors propagate.

    Sent through the client's generic ``invoke_operation`` — the same signing, transport,
    endpoint and error handling as ``get_object`` — because ``get_object`` then parses every
    response header into a typed model (dates through ``strptime``) and the score needs only
    the body and the request id.
    """
    output = await client.invoke_operation(_score_operation(bucket, key))
    response = output.http_response
    body = response.content if response.is_stream_consumed else await response.read()
    return output.status_code, bytes(body or b""), (output.headers or {}).get(REQUEST_ID_HEADER) or None


def _is_finite_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class _Retryable(Exception):
    """Carries a retryable failure through tenacity (which retries on exception type)."""

    def __init__(self, failure: CallFailure) -> None:
        super().__init__(failure.message)
        self.failure = failure


class CallFailed(Exception):
    """A non-scoring call (listing, upload) failed for good: not retryable, or retries ran out."""

    def __init__(self, failure: CallFailure) -> None:
        super().__init__(f"{failure.http_status or ''} {failure.code}: {failure.message}".strip())
        self.failure = failure


def _controller(policy: RetryPolicy, before_sleep: Callable[[RetryCallState], None]) -> AsyncRetrying:
    """The one retry policy of the worker: full-jitter exponential backoff, bounded in tries and time."""
    return AsyncRetrying(
        stop=stop_after_attempt(policy.attempts) | stop_before_delay(policy.total_s),
        wait=wait_random_exponential(multiplier=policy.base_s, max=policy.max_backoff_s),
        retry=retry_if_exception_type(_Retryable),
        before_sleep=before_sleep,
        reraise=True,
    )


def retrying(policy: RetryPolicy, observer: ScoreObserver | None = None,
             secrets: Iterable[str] = ()) -> Callable[[Callable[[], Awaitable[T]]], Awaitable[T]]:
    """Wrap other calls (ListObjectsV2 pages, uploads) in the same retry policy as scoring.

    The returned coroutine function raises :class:`AuthenticationFailed` at once on rejected
    credentials, and :class:`CallFailed` for a failure that is not retryable or outlasted the policy.
    """
    watcher: ScoreObserver = observer or NullObserver()
    secrets = tuple(s for s in secrets if s)

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Retryable):
            watcher.on_retry(exc.failure.reason)

    async def call(fn: Callable[[], Awaitable[T]]) -> T:
        try:
            async for attempt in _controller(policy, before_sleep):
                with attempt:
                    try:
                        return await fn()
                    except Exception as exc:  # classified below; cancellation passes through
                        failure = classify(exc, secrets)
                        if is_auth_failure(failure):
                            raise AuthenticationFailed(failure) from None
                        if failure.retryable:
                            raise _Retryable(failure) from None
                        raise CallFailed(failure) from None
        except _Retryable as exc:
            raise CallFailed(exc.failure) from None
        raise AssertionError("unreachable: tenacity either returned or raised")  # pragma: no cover

    return call


@dataclass
class _Progress:
    """What the row reports about the tries of one object."""

    attempts: int = 0
    latency_s: float | None = None


class ScoreCaller:
    """Scores one object per :meth:`score` call; safe to share between concurrent consumers."""

    def __init__(self, client: AsyncClient, limiter: AdaptiveLimiter, retry: RetryPolicy, *,
                 observer: ScoreObserver | None = None, secrets: Iterable[str] = ()) -> None:
        self.client = client
        self.limiter = limiter
        self.retry = retry
        self.observer: ScoreObserver = observer or NullObserver()
        self._secrets = tuple(s for s in secrets if s)

    async def score(self, ref: ObjectRef) -> ResultRow:
        """The result row for ``ref``; raises only :class:`AuthenticationFailed` (and cancellation)."""
        progress = _Progress()
        started = time.monotonic()
        try:  # fast path, outside tenacity: most objects succeed at once (tenacity costs ~5 % CPU)
            return await self._attempt(ref, progress)
        except _Retryable as first:
            policy = self.retry
            delay = random.uniform(0.0, min(policy.max_backoff_s, policy.base_s))  # full jitter before try 2
            left = policy.total_s - (time.monotonic() - started) - delay
            if policy.attempts <= 1 or left <= 0:
                return self._failed_row(ref, first.failure, progress)
            self.observer.on_retry(first.failure.reason)
            await asyncio.sleep(delay)
        # Tries 2..N under tenacity; doubling the multiplier keeps the schedule of RetryPolicy exactly.
        rest = RetryPolicy(policy.attempts - 1, left, policy.base_s * 2, policy.max_backoff_s)
        try:
            async for attempt in _controller(rest, self._before_retry):
                with attempt:
                    return await self._attempt(ref, progress)
        except _Retryable as exc:  # retries exhausted: reraise=True hands us the last one
            return self._failed_row(ref, exc.failure, progress)
        raise AssertionError("unreachable: tenacity either returned or raised")  # pragma: no cover

    def _before_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Retryable):
            self.observer.on_retry(exc.failure.reason)

    async def _attempt(self, ref: ObjectRef, progress: _Progress) -> ResultRow:
        """One paced try. Returns a final row, or raises ``_Retryable``/``AuthenticationFailed``."""
        waited = await self.limiter.acquire()
        if waited > 0:
            self.observer.on_rate_wait(waited)
        progress.attempts += 1
        started = time.perf_counter()
        outcome = await self._call(ref)
        progress.latency_s = time.perf_counter() - started
        if isinstance(outcome, CallFailure):
            return self._on_failure(ref, outcome, progress)
        status, body, header_request_id = outcome
        self.observer.on_attempt(progress.latency_s, status)
        self.limiter.on_success()
        return self._answer_row(ref, body, status, header_request_id, progress)

    async def _call(self, ref: ObjectRef) -> tuple[int, bytes, str | None] | CallFailure:
        """The SDK call and body read; every exception becomes a classified failure."""
        try:
            return await invoke_score(self.client, ref.bucket, ref.key)
        except Exception as exc:  # every failure is classified; only cancellation passes through
            return classify(exc, self._secrets)

    def _on_failure(self, ref: ObjectRef, failure: CallFailure, progress: _Progress) -> ResultRow:
        assert progress.latency_s is not None
        self.observer.on_attempt(progress.latency_s, failure.http_status)
        if failure.throttled:
            self.limiter.on_throttle()
            self.observer.on_throttle()
        elif failure.kind == SERVICE and (failure.http_status or 500) < 500:
            self.limiter.on_success()  # the service handled the call: it is not overloaded
        if is_auth_failure(failure):
            raise AuthenticationFailed(failure)
        if failure.retryable:
            raise _Retryable(failure)
        if failure.http_status == 404 and failure.code == "NoSuchKey":
            return self._row(ref, Status.MISSING, progress, http_status=404, error_code=failure.code,
                             error_message=failure.message, request_id=failure.request_id)
        return self._failed_row(ref, failure, progress)

    def _answer_row(self, ref: ObjectRef, body: bytes, status: int, header_request_id: str | None,
                    progress: _Progress) -> ResultRow:
        try:
            answer = parse_answer(body)
        except InvalidAnswer as exc:
            return self._failed_row(ref, invalid_answer(str(exc), status, header_request_id), progress)
        return self._row(ref, Status.SCORED, progress, score=answer.score, dimensions=answer.dimensions,
                         http_status=status, request_id=answer.request_id or header_request_id)

    def _failed_row(self, ref: ObjectRef, failure: CallFailure, progress: _Progress) -> ResultRow:
        return self._row(ref, Status.FAILED, progress, http_status=failure.http_status, error_code=failure.code,
                         error_message=failure.message, request_id=failure.request_id)

    @staticmethod
    def _row(ref: ObjectRef, status: Status, progress: _Progress, **fields: Any) -> ResultRow:
        latency_ms = None if progress.latency_s is None else round(progress.latency_s * 1000, 3)
        return ResultRow(ref.bucket, ref.key, ref.etag, ref.size, ref.last_modified, status,
                         attempts=progress.attempts, latency_ms=latency_ms, scored_at=datetime.now(UTC), **fields)
