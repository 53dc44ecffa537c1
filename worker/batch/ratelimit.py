"""Request pacing for the score calls: a token bucket, and an AIMD controller on top of it.

:class:`TokenBucket` spaces calls at ``rate`` per second with up to ``burst`` back to back.
It works by *reservation*: an ``acquire`` that finds no token takes one from the future
(the balance goes negative) and sleeps exactly until that token exists. Concurrent callers
therefore queue in arrival order without a lock, and each wait is exact — which is what the
fake-clock tests check.

:class:`AdaptiveLimiter` adjusts the bucket's rate from the service's answers (AIMD, as TCP):

* ``on_throttle()`` (503 CpuLimitExceeded/TotalQpsLimitExceeded, 429) halves the rate, never
  below ``floor``. Throttles arriving within ``cooldown_s`` of the last decrease are counted but
  do not halve again: N consumers in flight all see the same overload, and it is one signal,
  not N.
* ``on_success()`` adds ``step / rate`` to the rate, i.e. about ``step`` calls/s per second of
  successful calls, up to the configured ceiling.
* With no configured rate the limiter starts **unlimited** and keeps a short window of success
  times. The first throttle sets the rate to the success rate observed in that window (what
  the service was actually sustaining), then halves it; recovery is then unbounded (there is no
  ceiling), so a long quiet spell drifts back towards "no limit" and the next throttle halves
  again. A throttle before any success (nothing observed) starts at ``floor`` but recovers by
  ``burst`` (the consumer count) calls/s per second rather than 1: with no evidence of what the
  service sustains, a run throttled in its first second must not crawl for minutes.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable

__all__ = ["TokenBucket", "AdaptiveLimiter", "Clock", "Sleep"]

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[object]]


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up; ``rate=None`` is unlimited.

    ``clock`` and ``sleep`` are injectable so tests can run on a fake clock."""

    def __init__(self, rate: float | None, burst: int = 1, *, clock: Clock = time.monotonic,
                 sleep: Sleep = asyncio.sleep) -> None:
        if burst < 1:
            raise ValueError(f"burst must be at least 1, got {burst}")
        _check_rate(rate)
        self._rate = rate
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(burst)
        self._updated = clock()

    @property
    def rate(self) -> float | None:
        return self._rate

    def set_rate(self, rate: float | None) -> None:
        """Change the rate from now on. Tokens accrued so far are kept (at the old rate);
        callers already sleeping keep their reservation."""
        _check_rate(rate)
        self._refill()
        if rate is None:
            self._tokens = float(self.burst)
        self._rate = rate

    async def acquire(self) -> float:
        """Take one token, sleeping until it exists; returns the seconds waited (0.0 if none)."""
        wait = self.reserve()
        if wait > 0:
            await self._sleep(wait)
        return wait

    def reserve(self) -> float:
        """Take one token now (possibly borrowed from the future) and return how long the
        caller must wait before using it. No await in here, so no lock is needed."""
        if self._rate is None:
            return 0.0
        self._refill()
        self._tokens -= 1.0
        if self._tokens >= 0:
            return 0.0
        return -self._tokens / self._rate

    def _refill(self) -> None:
        now = self._clock()
        if self._rate is not None:
            self._tokens = min(float(self.burst), self._tokens + (now - self._updated) * self._rate)
        self._updated = now


class AdaptiveLimiter:
    """AIMD around a :class:`TokenBucket` (see the module docstring for the behaviour).

    ``rate`` is the configured ceiling (None: no limit until the service throttles).
    ``floor`` is the lowest rate a throttle can push it to; ``step`` the additive recovery in
    calls/s per second (default: a twentieth of the ceiling or of the first throttled rate,
    at least 1)."""

    def __init__(self, rate: float | None, burst: int = 1, *, floor: float = 1.0, decrease: float = 0.5,
                 step: float | None = None, cooldown_s: float = 1.0, window_s: float = 5.0,
                 clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep) -> None:
        _check_rate(rate)
        if not 0 < decrease < 1:
            raise ValueError(f"decrease must be in (0, 1), got {decrease}")
        if floor <= 0:
            raise ValueError(f"floor must be positive, got {floor}")
        self.ceiling = rate
        self.floor = floor if rate is None else min(floor, rate)
        self.decrease = decrease
        self.step = step if step is not None else _default_step(rate)
        self._step_given = step is not None
        self.cooldown_s = cooldown_s
        self.window_s = window_s
        self.throttles = 0  # every throttle signal, including those absorbed by the cooldown
        self._clock = clock
        self._burst = burst
        self._bucket = TokenBucket(rate, burst, clock=clock, sleep=sleep)
        self._last_decrease: float | None = None
        self._started = clock()
        self._successes: deque[float] = deque()

    @property
    def rate(self) -> float | None:
        """The rate allowed now; None while unlimited."""
        return self._bucket.rate

    async def acquire(self) -> float:
        """Wait for permission to send one call; returns the seconds waited."""
        return await self._bucket.acquire()

    def on_throttle(self) -> None:
        """The service shed load: halve the rate (once per ``cooldown_s``), not below ``floor``."""
        self.throttles += 1
        now = self._clock()
        if self._last_decrease is not None and now - self._last_decrease < self.cooldown_s:
            return
        self._last_decrease = now
        current = self.rate if self.rate is not None else self._start_from_observed(now)
        self._bucket.set_rate(max(self.floor, current * self.decrease))

    def on_success(self) -> None:
        """The service accepted a call: recover additively towards the ceiling."""
        current = self.rate
        if current is None:
            self._record_success(self._clock())
            return
        raised = current + self.step / max(current, 1.0)
        if self.ceiling is not None:
            raised = min(self.ceiling, raised)
        if raised != current:
            self._bucket.set_rate(raised)

    def observed_rate(self) -> float:
        """Successes per second over the last ``window_s`` (or since start, if shorter)."""
        now = self._clock()
        self._trim(now)
        span = min(self.window_s, now - self._started)
        if not self._successes or span <= 0:
            return 0.0
        return len(self._successes) / span

    def _start_from_observed(self, now: float) -> float:
        """First throttle while unlimited: the observed success rate becomes the current rate;
        recovery steps are sized from it, since there is no ceiling to size them from."""
        seen = self.observed_rate()
        observed = max(self.floor, seen)
        self._successes.clear()
        if not self._step_given:
            self.step = _default_step(observed) if seen >= self.floor else max(1.0, float(self._burst))
        return observed

    def _record_success(self, now: float) -> None:
        self._successes.append(now)
        self._trim(now)

    def _trim(self, now: float) -> None:
        while self._successes and now - self._successes[0] > self.window_s:
            self._successes.popleft()


def _default_step(reference: float | None) -> float:
    return 1.0 if reference is None else max(1.0, reference / 20)


def _check_rate(rate: float | None) -> None:
    if rate is not None and not (rate > 0 and math.isfinite(rate)):
        raise ValueError(f"rate must be a positive number or None, got {rate}")
