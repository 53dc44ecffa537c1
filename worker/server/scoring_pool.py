"""Scoring off the event loop: a process pool with a bounded backlog, and OSS-style overload.

Image decoding and the quality measures are CPU-bound and hold the GIL, so they run in worker
processes. The pool accepts at most ``workers + backlog`` images at once; one more and the
server answers ``503 CpuLimitExceeded`` immediately, as OSS does under load, instead of
queueing without bound — so clients meet real backpressure and memory stays bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import multiprocessing
import os
import time
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from .. import quality
from ..quality.model import check_layout, shipped_model
from .errors import OSSError

__all__ = ["ScoreResult", "Scorer", "ProcessPoolScorer", "FixedLatencyScorer", "score_bytes",
           "admission_capacity"]


@dataclass(frozen=True)
class ScoreResult:
    overall: float
    dimensions: dict[str, float]


def score_bytes(data: bytes, model: str = quality.DEFAULT_LAYOUT) -> ScoreResult | tuple[str, str | None, str]:
    """Runs in a worker process. Image errors come back as values: they are answers, not crashes."""
    try:
        result = quality.score(data, model)
    except quality.ImageError as exc:
        return (exc.oss_code, exc.ec, str(exc))
    return ScoreResult(result.overall, dict(result.dimensions))


def load_model(model: str = quality.DEFAULT_LAYOUT) -> int:
    """Runs in each worker process at start-up: load the quality model now, not on the first
    request, whose deadline it would eat into. Returns the worker's pid."""
    shipped_model(model)
    return os.getpid()


def _image_error(code: str, ec: str | None, message: str) -> OSSError:
    return OSSError(400, code, message, ec)


def _overloaded() -> OSSError:
    return OSSError(503, "CpuLimitExceeded",
                    "The image processing capacity is exceeded; reduce the request rate.",
                    "0040-00000100")


def admission_capacity(workers: int | None, backlog: int | None) -> int:
    """Images admitted at once: one per worker plus the backlog (default 4 per worker)."""
    workers = workers or os.cpu_count() or 1
    return workers + (backlog if backlog is not None else 4 * workers)


class Scorer:
    """What the request handler needs: ``async with scorer.slot(): await scorer.score(data)``.

    Admission (:meth:`slot`) comes before the handler reads the object, so a shed request
    costs almost nothing — shedding must be cheaper than serving or overload feeds itself.
    """

    capacity: int = 10_000

    def __init__(self) -> None:
        self._in_flight = 0

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one of ``capacity`` places, or fail at once with 503 ``CpuLimitExceeded``."""
        if self._in_flight >= self.capacity:
            raise _overloaded()
        self._in_flight += 1
        try:
            yield
        finally:
            self._in_flight -= 1

    async def score(self, data: bytes, received: float | None = None) -> ScoreResult:  # pragma: no cover
        """Score ``data``; ``received`` is when the request arrived (``time.perf_counter()``)."""
        raise NotImplementedError

    async def close(self) -> None:
        return None


class ProcessPoolScorer(Scorer):
    """Scores in ``workers`` processes, admitting at most ``workers + backlog`` images at once,
    with the quality model's layout ``model`` (see :mod:`worker.quality.model`)."""

    def __init__(self, workers: int | None = None, backlog: int | None = None,
                 timeout_s: float = 120.0, model: str = quality.DEFAULT_LAYOUT) -> None:
        self.model = check_layout(model)
        self.workers = workers or os.cpu_count() or 1
        self.capacity = admission_capacity(self.workers, backlog)
        self.timeout_s = timeout_s
        super().__init__()
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        # forkserver: never fork the event-loop process itself (threads, sockets); preload the
        # model once in the server process that forks the workers.
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["worker.quality"])
        return ProcessPoolExecutor(max_workers=self.workers, mp_context=context)

    async def warm_up(self) -> None:
        """Start every worker now rather than on the first request (which would time out)."""
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(self._pool, load_model, self.model) for _ in range(self.workers)))

    async def score(self, data: bytes, received: float | None = None) -> ScoreResult:
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._pool, score_bytes, data, self.model)
        try:
            outcome = await asyncio.wait_for(future, self.timeout_s)
        except BrokenProcessPool:
            # A worker died (killed by the OOM killer, say). Replace the pool so the server
            # keeps serving; this request reports an internal error.
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
            raise OSSError(500, "InternalError", "The image worker failed; please retry.") from None
        except TimeoutError:
            raise OSSError(503, "CpuLimitExceeded", "Scoring this image took too long.",
                           "0040-00000100") from None
        if isinstance(outcome, tuple):
            raise _image_error(*outcome)
        return outcome

    async def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class FixedLatencyScorer(Scorer):
    """Client-benchmark mode: answers a fixed delay after the request arrived, without scoring.

    The delay counts from arrival (``received``), not from this call, so the server's own
    parsing and signature check fall inside it: ``--fake-score-latency 50ms`` means a 50 ms
    service time, and a client's ideal rate is exactly concurrency / latency.

    The score is a deterministic function of the bytes (so clients can check they got the
    answer for the object they asked), spread over 0..1.
    """

    def __init__(self, latency_s: float, capacity: int) -> None:
        super().__init__()
        self.latency_s = latency_s
        self.capacity = capacity

    async def score(self, data: bytes, received: float | None = None) -> ScoreResult:
        elapsed = 0.0 if received is None else time.perf_counter() - received
        await asyncio.sleep(max(0.0, self.latency_s - elapsed))
        fingerprint = hashlib.blake2b(data, digest_size=4).digest()
        return ScoreResult((int.from_bytes(fingerprint, "big") % 1001) / 1000, {})
