"""The one retry policy of every OSS call picscore makes: which failures to retry, how long to wait.

Retry only what can succeed later: 5xx (OSS sheds load with 503), 429, timeouts and connection
errors (:func:`worker.oss.errors.classify` decides). Never 400/403/404: the same request gets
the same answer. Backoff is tenacity's full-jitter exponential (``wait_random_exponential``), so
consumers throttled together do not come back together; tries are bounded both in number and in
total time, because a throttled service must be left alone for a while, not hammered N times.

Rejected credentials are not retried and not recorded per object: :class:`AuthenticationFailed`
stops the whole command, since a wrong secret or a skewed clock fails every call alike.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_before_delay,
    wait_random_exponential,
)

from ..errors import AuthError
from .errors import CallFailure, classify, is_auth_failure

__all__ = [
    "RetryPolicy", "AuthenticationFailed", "CallFailed", "Retryable", "CallObserver", "NullObserver",
    "retry_controller", "retrying",
]

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """At most ``attempts`` tries, and no new try that would start after ``total_s`` seconds.

    Before try *n+1* sleep uniformly in ``[0, min(max_backoff_s, base_s * 2**(n-1))]``."""

    attempts: int = 6
    total_s: float = 120.0
    base_s: float = 0.5
    max_backoff_s: float = 30.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {self.attempts}")


class AuthenticationFailed(AuthError):
    """The service rejected our credentials (or clock): every call would fail, so stop the command."""

    def __init__(self, failure: CallFailure) -> None:
        super().__init__(f"{failure.http_status} {failure.code}: {failure.message}")
        self.failure = failure


class CallFailed(Exception):
    """A call failed for good: not retryable, or retries ran out. ``failure`` says how."""

    def __init__(self, failure: CallFailure) -> None:
        super().__init__(f"{failure.http_status or ''} {failure.code}: {failure.message}".strip())
        self.failure = failure


class Retryable(Exception):
    """Carries a retryable failure through tenacity (which retries on exception type)."""

    def __init__(self, failure: CallFailure) -> None:
        super().__init__(failure.message)
        self.failure = failure


class CallObserver(Protocol):
    """Metrics hooks. Called on the event loop; keep them cheap and non-blocking."""

    def on_retry(self, reason: str) -> None: ...           # a retry is about to be scheduled
    def on_attempt(self, latency_s: float, status: int | None) -> None: ...  # every HTTP try
    def on_throttle(self) -> None: ...                      # 503 CpuLimitExceeded/TotalQpsLimitExceeded, 429
    def on_rate_wait(self, seconds: float) -> None: ...     # the rate limiter delayed a try


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


def retry_controller(policy: RetryPolicy, before_sleep: Callable[[RetryCallState], None]) -> AsyncRetrying:
    """Tenacity configured with ``policy``: full-jitter exponential backoff, bounded in tries and time."""
    return AsyncRetrying(
        stop=stop_after_attempt(policy.attempts) | stop_before_delay(policy.total_s),
        wait=wait_random_exponential(multiplier=policy.base_s, max=policy.max_backoff_s),
        retry=retry_if_exception_type(Retryable),
        before_sleep=before_sleep,
        reraise=True,
    )


def retrying(policy: RetryPolicy, observer: CallObserver | None = None,
             secrets: Iterable[str] = ()) -> Callable[[Callable[[], Awaitable[T]]], Awaitable[T]]:
    """A coroutine function that runs one call (a listing page, an upload, a download) under ``policy``.

    It raises :class:`AuthenticationFailed` at once on rejected credentials, and
    :class:`CallFailed` for a failure that is not retryable or outlasted the policy.
    """
    watcher: CallObserver = observer or NullObserver()
    secrets = tuple(s for s in secrets if s)

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, Retryable):
            watcher.on_retry(exc.failure.reason)

    async def call(fn: Callable[[], Awaitable[T]]) -> T:
        try:
            async for attempt in retry_controller(policy, before_sleep):
                with attempt:
                    try:
                        return await fn()
                    except Exception as exc:  # classified below; cancellation passes through
                        failure = classify(exc, secrets)
                        if is_auth_failure(failure):
                            raise AuthenticationFailed(failure) from None
                        if failure.retryable:
                            raise Retryable(failure) from None
                        raise CallFailed(failure) from None
        except Retryable as exc:
            raise CallFailed(exc.failure) from None
        raise AssertionError("unreachable: tenacity either returned or raised")  # pragma: no cover

    return call
