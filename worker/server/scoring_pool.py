"""Scoring, video snapshots and image resizing off the event loop: a process pool with a bounded backlog, and
OSS-style overload.

Image decoding, the quality measures and video decoding are CPU-bound and hold the GIL, so they run in worker
processes. The pool accepts at most ``workers + backlog`` images at once; one more and the
server answers ``503 CpuLimitExceeded`` immediately, as OSS does under load, instead of
queueing without bound — so clients meet real backpressure and memory stays bounded.

A worker can die (the OOM killer, a crash in a native decoder), which breaks the whole
``ProcessPoolExecutor``: the scorer then replaces the pool, so a death costs at most the
requests that were on it, each answered with a retryable 503. Each worker also runs under an
address-space limit (:func:`limit_address_space`), a backstop behind the decode budget of
:mod:`worker.quality.decode`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import multiprocessing
import os
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import structlog

from .. import quality
from ..oss.image_process_contract import ImageProcessSpec
from ..oss.snapshot_contract import SnapshotSpec
from ..quality.model import check_layout, shipped_model
from ..video.snapshot import DEFAULT_VIDEO_LIMITS, TOO_LARGE_EC, VideoError, VideoLimits, capture
from .errors import OSSError
from .image_ops import ImageOutcome, ProcessedImage, process_image_bytes

__all__ = ["ScoreResult", "Scorer", "ProcessPoolScorer", "FixedLatencyScorer", "score_bytes", "snapshot_file",
           "admission_capacity", "limit_address_space"]

log = structlog.get_logger("picscore.server")
T = TypeVar("T")


@dataclass(frozen=True)
class ScoreResult:
    overall: float
    dimensions: dict[str, float]


#: What a worker sends back: a score, or an image error as (OSS code, EC, message).
ScoreOutcome = ScoreResult | tuple[str, str | None, str]


#: Address space a scoring worker may add to what it had when it started: the model and the
#: largest decode :mod:`worker.quality.decode` admits (its DECODE_BUDGET_BYTES) take well under
#: half of it. A backstop for what that budget cannot foresee (a decoder's own buffers, a bug).
WORKER_ADDRESS_SPACE_HEADROOM = 2 * 2**30


def score_bytes(data: bytes, model: str = quality.DEFAULT_LAYOUT) -> ScoreOutcome:
    """Runs in a worker process. Image errors come back as values: they are answers, not crashes."""
    try:
        result = quality.score(data, model)
    except quality.ImageError as exc:
        return (exc.oss_code, exc.ec, str(exc))
    except MemoryError:  # the worker's address-space limit: this picture asks too much of it
        return ("ImageTooLarge", "0040-00000012", "The image needs more memory to process than is allowed.")
    return ScoreResult(result.overall, dict(result.dimensions))


#: What a snapshot worker sends back: the image, or an OSS error as (status, code, EC, message).
SnapshotOutcome = bytes | tuple[int, str, str, str]


def snapshot_file(path: str, spec: SnapshotSpec, limits: VideoLimits = DEFAULT_VIDEO_LIMITS) -> SnapshotOutcome:
    """Runs in a worker process: the snapshot's bytes, or the OSS error a bad video gets (a value:
    an answer, not a crash)."""
    try:
        return capture(path, spec, limits)
    except VideoError as exc:
        return (exc.status, exc.code, exc.ec, exc.message)
    except MemoryError:  # the worker's address-space limit
        return (400, "InvalidArgument", TOO_LARGE_EC, "The video needs more memory to decode than is allowed.")


def _snapshot_answer(outcome: SnapshotOutcome) -> bytes:
    if isinstance(outcome, tuple):
        status, code, ec, message = outcome
        raise OSSError(status, code, message, ec)
    return outcome


def _image_answer(outcome: ImageOutcome) -> ProcessedImage:
    """``image/resize``/``format``/``quality``: the image, or its OSS error raised."""
    if isinstance(outcome, tuple):
        status, code, ec, message = outcome
        raise OSSError(status, code, message, ec)
    return outcome


def limit_address_space(headroom: int = WORKER_ADDRESS_SPACE_HEADROOM) -> None:
    """Pool initializer: cap this worker's address space (RLIMIT_AS) at its size now plus
    ``headroom``, so a runaway decode fails in this worker — a MemoryError, or at worst its
    death and a new pool — instead of pushing the machine into the OOM killer.

    Relative to the size at start, not absolute: what numpy's BLAS and the forkserver mapped
    before depends on the machine's cores. Best effort: an initializer that raises would
    break the pool, so where the limit cannot be read or set the worker runs without it.
    """
    try:
        import resource

        pages = int(Path("/proc/self/statm").read_text().split()[0])
        limit = pages * os.sysconf("SC_PAGE_SIZE") + headroom
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        if soft == resource.RLIM_INFINITY or soft > limit:
            resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ImportError, OSError, ValueError):  # no resource module (Windows), no /proc (macOS)
        pass


def load_model(model: str = quality.DEFAULT_LAYOUT) -> int:
    """Runs in each worker process at start-up: load the quality model now, not on the first
    request, whose deadline it would eat into. Returns the worker's pid."""
    shipped_model(model)
    return os.getpid()


def _image_error(code: str, ec: str | None, message: str) -> OSSError:
    return OSSError(400, code, message, ec)


def _worker_lost() -> OSSError:
    """A scoring worker died under this request: retryable, and a throttle signal to clients
    (SDKs retry 503; ``picscore run`` slows down on ``CpuLimitExceeded``) while the pool restarts."""
    return OSSError(503, "CpuLimitExceeded",
                    "An image processing worker stopped while handling this request; retry it.",
                    "0040-00000100")


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
    video_limits: VideoLimits = DEFAULT_VIDEO_LIMITS

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

    async def snapshot(self, path: str, spec: SnapshotSpec) -> bytes:
        """The frame ``spec`` asks for of the video at ``path`` (``video/snapshot``), in a thread:
        subclasses with worker processes run it there."""
        return _snapshot_answer(await asyncio.to_thread(snapshot_file, path, spec, self.video_limits))

    async def process_image(self, data: bytes, spec: ImageProcessSpec) -> ProcessedImage:
        """``image/resize``/``format``/``quality`` of ``data`` (:mod:`worker.server.image_ops`), in a
        thread: subclasses with worker processes run it there."""
        return _image_answer(await asyncio.to_thread(process_image_bytes, data, spec))

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
        return ProcessPoolExecutor(max_workers=self.workers, mp_context=context,
                                   initializer=limit_address_space)

    async def warm_up(self) -> None:
        """Start every worker now rather than on the first request (which would time out)."""
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(self._pool, load_model, self.model) for _ in range(self.workers)))

    async def score(self, data: bytes, received: float | None = None) -> ScoreResult:
        outcome = await self._run(score_bytes, data, self.model)
        if isinstance(outcome, tuple):
            raise _image_error(*outcome)
        return outcome

    async def snapshot(self, path: str, spec: SnapshotSpec) -> bytes:
        return _snapshot_answer(await self._run(snapshot_file, path, spec, self.video_limits))

    async def process_image(self, data: bytes, spec: ImageProcessSpec) -> ProcessedImage:
        return _image_answer(await self._run(process_image_bytes, data, spec))

    async def _run(self, function: Callable[..., T], *args: object) -> T:
        """``function(*args)`` in a worker, within ``timeout_s``, on a pool that heals itself."""
        pool = self._pool
        try:
            future = self._submit(pool, function, *args)
        except BrokenProcessPool:
            # The pool broke while idle (a worker was killed between requests): this request
            # did not break it, so it gets the new pool at once instead of an error.
            pool = self._replace(pool)
            future = self._submit(pool, function, *args)
        try:
            return await asyncio.wait_for(future, self.timeout_s)
        except BrokenProcessPool:
            # A worker died while this request was queued or running. It may be the input that
            # killed it, so it is not retried here — a poison image would break the new pool
            # too, and fail everything queued there. The client may retry: 503 says so.
            self._replace(pool)
            raise _worker_lost() from None
        except TimeoutError:
            raise OSSError(503, "CpuLimitExceeded", "Processing this object took too long.",
                           "0040-00000100") from None

    def _submit(self, pool: ProcessPoolExecutor, function: Callable[..., T], *args: object) -> asyncio.Future[T]:
        """Queue the call on ``pool``; raises BrokenProcessPool at once if the pool is broken."""
        return asyncio.get_running_loop().run_in_executor(pool, function, *args)

    def _replace(self, broken: ProcessPoolExecutor) -> ProcessPoolExecutor:
        """Swap the broken pool for a new one — once, however many requests saw it break —
        and start the new workers now, so the next requests find the model loaded."""
        if self._pool is broken:
            broken.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
            log.warning("scoring_pool_replaced", reason="a scoring worker died", workers=self.workers)
            loop = asyncio.get_running_loop()
            for _ in range(self.workers):
                # Nobody awaits these: retrieve the outcome, so a broken start is not logged as
                # "never retrieved"; the next request that meets the broken pool replaces it.
                warming = loop.run_in_executor(self._pool, load_model, self.model)
                warming.add_done_callback(lambda done: done.cancelled() or done.exception())
        return self._pool

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
