"""One OSS call per object, paced and retried: what every operation of the engine sends through.

:class:`PacedCaller` owns pacing (the adaptive rate limiter, and the adaptive concurrency limit
of :mod:`.concurrency`), retries (the policy of :mod:`worker.oss.retry`) and throttle feedback,
and turns every way a call can end into a :class:`CallOutcome` for the operation to classify
into its row. Only one ending is an
exception: :class:`~worker.oss.retry.AuthenticationFailed`, because a wrong secret fails every
object alike and the command must stop instead of recording a failure per object.

The first try runs outside tenacity: most objects succeed at once, and building tenacity's
controller for every call would cost CPU that a zero-latency service makes visible. Tries 2..N
run under tenacity with the same schedule the policy defines. Throttles are waited for within
the policy's time budget and do not use up its attempts.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_before_delay,
    wait_random_exponential,
)

from ..oss.errors import SERVICE, CallFailure, classify, is_auth_failure
from ..oss.retry import AuthenticationFailed, CallObserver, NullObserver, Retryable, RetryPolicy
from .concurrency import AdaptiveConcurrency
from .ratelimit import AdaptiveLimiter

__all__ = ["PacedCaller", "CallOutcome", "CAPACITY_THROTTLE_CODE"]

#: The throttle that says "too many calls at once", not "too many per second": fewer in flight
#: is the answer, and halving the rate as well would leave the service idle.
CAPACITY_THROTTLE_CODE = "CpuLimitExceeded"

T = TypeVar("T")


@dataclass
class CallOutcome(Generic[T]):
    """How one object's call ended: ``value`` on success, else the last ``failure``."""

    value: T | None = None
    failure: CallFailure | None = None
    attempts: int = 0
    throttled: int = 0  # of the attempts, how many the service answered with a throttle
    latency_s: float | None = None  # of the last try

    @property
    def latency_ms(self) -> float | None:
        return None if self.latency_s is None else round(self.latency_s * 1000, 3)


def _http_status(value: object) -> int:
    """The HTTP status of a successful call's value: an SDK result's ``status_code`` (its
    ``status`` is the reason text, "OK"), a plain response's ``status``; 200 when neither says."""
    for name in ("status_code", "status"):
        status = getattr(value, name, None)
        if isinstance(status, int):
            return status
    return 200


class PacedCaller:
    """Runs calls under the rate limit, the concurrency limit and the retry policy; safe to share
    between consumers."""

    def __init__(self, limiter: AdaptiveLimiter, policy: RetryPolicy, *, observer: CallObserver | None = None,
                 secrets: Iterable[str] = (), concurrency: AdaptiveConcurrency | None = None) -> None:
        self.limiter = limiter
        self.policy = policy
        self.observer: CallObserver = observer or NullObserver()
        self.concurrency = concurrency
        self._secrets = tuple(s for s in secrets if s)

    async def call(self, fn: Callable[[], Awaitable[T]]) -> CallOutcome[T]:
        """Run ``fn`` until it succeeds, fails for good, or the policy gives up.

        Throttle answers (503 CpuLimitExceeded / TotalQpsLimitExceeded, 429) do not count
        against ``attempts``: a busy service is waited for, bounded by ``total_s``, so a
        throttled object is not recorded as failed while the service is only busy.
        Raises only :class:`AuthenticationFailed` (and cancellation)."""
        outcome: CallOutcome[T] = CallOutcome()
        started = time.monotonic()
        try:
            return await self._attempt(fn, outcome)
        except Retryable as first:
            policy = self.policy
            delay = random.uniform(0.0, min(policy.max_backoff_s, policy.base_s))  # full jitter before try 2
            left = policy.total_s - (time.monotonic() - started) - delay
            if self._spent(outcome) or left <= 0:
                outcome.failure = first.failure
                return outcome
            self.observer.on_retry(first.failure.reason)
            await asyncio.sleep(delay)
        # Tries 2..N under tenacity; doubling the multiplier keeps the policy's schedule exactly.
        controller = AsyncRetrying(
            stop=stop_before_delay(left) | (lambda state: self._spent(outcome)),
            wait=wait_random_exponential(multiplier=policy.base_s * 2, max=policy.max_backoff_s),
            retry=retry_if_exception_type(Retryable), before_sleep=self._before_retry, reraise=True)
        try:
            async for attempt in controller:
                with attempt:
                    return await self._attempt(fn, outcome)
        except Retryable as exc:  # retries exhausted: reraise=True hands us the last one
            outcome.failure = exc.failure
            return outcome
        raise AssertionError("unreachable: tenacity either returned or raised")  # pragma: no cover

    def _spent(self, outcome: CallOutcome[T]) -> bool:
        """Whether the failures that count (not throttles) used up ``attempts``."""
        return outcome.attempts - outcome.throttled >= self.policy.attempts

    def _before_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, Retryable):
            self.observer.on_retry(exc.failure.reason)

    async def _attempt(self, fn: Callable[[], Awaitable[T]], outcome: CallOutcome[T]) -> CallOutcome[T]:
        """One paced try: a final outcome, or ``Retryable``/``AuthenticationFailed`` raised."""
        waited = await self.limiter.acquire()
        if waited > 0:
            self.observer.on_rate_wait(waited)
        limit = self.concurrency
        generation = 0
        if limit is not None:  # a free slot is taken without an await: zero-latency calls feel no cost
            taken = limit.try_acquire()
            generation = taken if taken is not None else await limit.acquire()
        outcome.attempts += 1
        started = time.perf_counter()
        try:
            value = await fn()
        except Exception as exc:  # every failure is classified; only cancellation passes through
            outcome.latency_s = time.perf_counter() - started
            return self._on_failure(classify(exc, self._secrets), outcome, generation)
        finally:
            if limit is not None:
                limit.release()
        outcome.latency_s = time.perf_counter() - started
        self.observer.on_attempt(outcome.latency_s, _http_status(value))
        self.limiter.on_success()
        if self.concurrency is not None:
            self.concurrency.on_success()
        outcome.value, outcome.failure = value, None
        return outcome

    def _on_failure(self, failure: CallFailure, outcome: CallOutcome[T], generation: int) -> CallOutcome[T]:
        assert outcome.latency_s is not None
        self.observer.on_attempt(outcome.latency_s, failure.http_status)
        if failure.throttled:
            outcome.throttled += 1
            if self.concurrency is None or failure.code != CAPACITY_THROTTLE_CODE:
                self.limiter.on_throttle()  # a rate limit (429, TotalQpsLimitExceeded): slow the rate
            if self.concurrency is not None:
                self.concurrency.on_throttle(generation)
            self.observer.on_throttle()
        elif failure.kind == SERVICE and (failure.http_status or 500) < 500:
            self.limiter.on_success()  # the service handled the call: it is not overloaded
        if is_auth_failure(failure):
            raise AuthenticationFailed(failure)
        if failure.retryable:
            raise Retryable(failure)
        outcome.failure = failure
        return outcome
