"""How many calls may be in flight now: a limit that finds the service's capacity by itself.

A service that sheds load the way OSS does (``503 CpuLimitExceeded`` when its image-processing
capacity is full) has a capacity in *concurrent* calls: pacing the *rate* alone keeps sending
into a full queue whenever calls slow down. So the engine's consumers also share an
:class:`AdaptiveConcurrency`: additive increase, multiplicative decrease (AIMD, as TCP does with
its window, and as AWS SDKs' adaptive retry mode, Envoy's adaptive concurrency filter and
Netflix's concurrency-limits do in their ways):

* each call holds a slot while it is on the wire (not while it backs off);
* a throttle answer multiplies the limit by ``decrease``, at most once per *generation*: calls
  that started before the last decrease were sent under the old limit, so their throttles are
  the same signal again, not a new one (one decrease per round trip, whatever the concurrency);
* every success adds ``1 / limit``, i.e. about one more slot per full window of successes,
  up to the configured concurrency.

The limit never drops below ``floor`` (1 by default), so a command always makes progress.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

__all__ = ["AdaptiveConcurrency"]


class AdaptiveConcurrency:
    """At most ``limit`` calls in flight; the limit moves between ``floor`` and ``ceiling`` (AIMD)."""

    def __init__(self, ceiling: int, *, floor: int = 1, decrease: float = 0.7) -> None:
        if ceiling < 1 or not 1 <= floor <= ceiling:
            raise ValueError(f"need 1 <= floor <= ceiling, got floor {floor}, ceiling {ceiling}")
        if not 0 < decrease < 1:
            raise ValueError(f"decrease must be in (0, 1), got {decrease}")
        self.ceiling = ceiling
        self.floor = floor
        self.decrease = decrease
        self._limit = float(ceiling)
        self.in_flight = 0
        self.generation = 0  # bumped by every decrease
        self.decreases = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def limit(self) -> int:
        """Calls allowed in flight now."""
        return max(self.floor, math.floor(self._limit))

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[int]:
        """Hold one slot for the length of a call; yields the generation the call starts in."""
        generation = self.try_acquire()
        if generation is None:
            generation = await self.acquire()
        try:
            yield generation
        finally:
            self.release()

    def try_acquire(self) -> int | None:
        """Take a slot if one is free now (no await: the common case costs nothing more); returns
        the generation the call starts in, or None when the caller must :meth:`acquire`."""
        if self.in_flight >= self.limit or self._waiters:
            return None
        self.in_flight += 1
        return self.generation

    async def acquire(self) -> int:
        """Wait for a slot, in arrival order; returns the generation the call starts in."""
        while self.in_flight >= self.limit:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                raise
        self.in_flight += 1
        return self.generation

    def release(self) -> None:
        """Give back a slot taken by :meth:`try_acquire` or :meth:`acquire`."""
        self.in_flight -= 1
        self._wake()

    def on_throttle(self, generation: int) -> None:
        """A call of ``generation`` was throttled: shrink the limit, once per generation."""
        if generation != self.generation:
            return
        self.generation += 1
        self.decreases += 1
        self._limit = max(float(self.floor), self._limit * self.decrease)

    def on_success(self) -> None:
        """A call went through: grow the limit by about one slot per window of successes."""
        if self._limit < self.ceiling:
            self._limit = min(float(self.ceiling), self._limit + 1.0 / self._limit)
            self._wake()

    def _wake(self) -> None:
        """Let as many waiters in as there are free slots now."""
        free = self.limit - self.in_flight
        while free > 0 and self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                free -= 1
