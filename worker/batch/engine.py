"""The batch engine: one source, N consumers running one operation, one writer, one checkpoint.

::

    source ──► [work queue] ──► consumers ×N ──► [result queue] ──► writer ──► parts + checkpoint
    (list or     bounded        (operation: one    bounded          (batch,     (one transaction
     read rows)                  paced OSS call)                     flush)       per part)

Every bucket-wide command is this engine with its own source, operation and row schema
(:mod:`worker.commands`). The engine owns what they share: bounded queues (memory is bounded by
them, never by the bucket), the stop policy (:mod:`.stop`), batching rows into committed parts
with the resume positions they make safe (:mod:`.ledger`), metrics, the progress display and
the tally the exit code is judged by. It returns a :class:`BatchOutcome`; the command decides
what to print and which code to exit with.

Items that were queued but not finished when a stop came belong to pages whose resume token has
not moved, so ``--resume`` does them again; items that were finished are recorded as done, so
it never does them twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from types import EllipsisType
from typing import Protocol

import structlog

from ..errors import ExitCode, PicscoreError
from ..oss.errors import TLS
from ..oss.retry import AuthenticationFailed, CallFailed
from .items import Operation, OutcomeRow, Source, WorkItem
from .ledger import ResumeLedger
from .progress_display import ProgressReporter
from .stop import StopControl, install_signal_handlers, watch_time_budget
from .tally import Tally

__all__ = ["BatchEngine", "BatchOutcome", "EngineSettings", "EngineMetrics", "PartSink"]


@dataclass(frozen=True)
class EngineSettings:
    """The knobs every batch command shares (``picscore run``'s settings of the same names)."""

    command: str = "run"
    concurrency: int = 16
    flush_rows: int = 5000
    flush_seconds: float = 30.0
    grace_s: float = 30.0
    time_budget_s: float | None = None
    progress: str = "auto"


class EngineMetrics(Protocol):
    """What the engine reports to (:class:`worker.observability.metrics.BatchMetrics`)."""

    def count_listed(self, n: int) -> None: ...
    def request_started(self) -> None: ...
    def request_finished(self) -> None: ...
    def set_queue_depths(self, work: int, results: int) -> None: ...
    def record_row(self, status: str, score: float | None) -> None: ...
    def tick(self) -> None: ...


class PartSink(Protocol):
    """Where batches of rows go (:class:`worker.results.parts.PartWriter`)."""

    def write_part(self, rows: list[OutcomeRow], positions: dict) -> None: ...


@dataclass
class BatchOutcome:
    """How the engine's run ended. ``stop`` holds the stop reason and any fatal failure."""

    tally: Tally
    listed: int
    elapsed_s: float
    stop: StopControl = field(default_factory=StopControl)

    @property
    def completed(self) -> bool:
        """Everything the source offered has a committed row: the output can be finalized."""
        return not self.stop.requested


class BatchEngine:
    """One command's wiring; :meth:`run` once."""

    def __init__(self, settings: EngineSettings, metrics: EngineMetrics, tally: Tally | None = None) -> None:
        self.settings = settings
        self.metrics = metrics
        self.tally = tally or Tally()
        self.listed = 0
        self.stop = StopControl()
        self.started = time.monotonic()
        self.log = structlog.get_logger(f"picscore.{settings.command}")
        queue_size = max(64, 4 * settings.concurrency)
        self.work: asyncio.Queue[WorkItem | None] = asyncio.Queue(queue_size)
        self.results: asyncio.Queue[tuple[WorkItem, OutcomeRow] | None] = asyncio.Queue(queue_size)
        self.display = ProgressReporter(settings.progress, command=settings.command)

    def count_listed(self, n: int) -> None:
        """The source's ``on_listed`` hook: objects seen, before shard and resume filtering."""
        self.listed += n
        self.metrics.count_listed(n)

    async def run(self, source: Source, operation: Operation, sink: PartSink, ledger: ResumeLedger, *,
                  signals: bool = True) -> BatchOutcome:
        """Run to the end or to a stop; the writer always flushes what was collected."""
        remove_signals = install_signal_handlers(self.stop) if signals else (lambda: None)
        try:
            writer = asyncio.create_task(self._write(sink, ledger))
            source_task = asyncio.create_task(source.run(self.work, ledger))
            consumers = [asyncio.create_task(self._consume(operation)) for _ in range(self.settings.concurrency)]
            try:
                await self._supervise(source_task, consumers, source.description)
            finally:
                await self.results.put(None)
                await writer
                self.display.close()
        finally:
            remove_signals()
        return BatchOutcome(self.tally, self.listed, time.monotonic() - self.started, self.stop)

    # -- consumers ----------------------------------------------------------------------------
    async def _consume(self, operation: Operation) -> None:
        while True:
            item = await self.work.get()
            if item is None or self.stop.requested:
                return
            if item.row is not None:
                await self.results.put((item, item.row))
                continue
            self.metrics.request_started()
            try:
                row = await operation.perform(item)
            except AuthenticationFailed as exc:
                self.stop.fail(ExitCode.AUTH, exc.user_message(), hard=True)
                return
            except Exception as exc:  # a bug: stop, with the item unwritten, so --resume does it again
                self.log.exception("operation_crashed", key=item.ref.key)
                self.stop.fail(ExitCode.FAILURES, f"internal error while processing {item.ref.key!r} "
                               f"({type(exc).__name__}: {exc}); nothing was recorded for it: continue with --resume "
                               "once fixed", hard=True)
                return
            finally:
                self.metrics.request_finished()
            await self.results.put((item, row))

    # -- writer -------------------------------------------------------------------------------
    async def _next_result(self, timeout: float) -> tuple[WorkItem, OutcomeRow] | EllipsisType | None:
        """The next result, None at the end, or ``...`` when ``timeout`` passes with nothing."""
        try:
            return self.results.get_nowait()  # the common case under load: no timer needed
        except asyncio.QueueEmpty:
            pass
        try:
            return await asyncio.wait_for(self.results.get(), timeout)
        except TimeoutError:
            return ...

    async def _write(self, sink: PartSink, ledger: ResumeLedger) -> None:
        """Batch rows into parts: every ``flush_rows`` rows or ``flush_seconds``, whichever first."""
        flush_rows, flush_seconds = self.settings.flush_rows, self.settings.flush_seconds
        rows: list[OutcomeRow] = []
        items: list[WorkItem] = []
        last_flush = last_report = time.monotonic()
        finished = False
        while not finished:
            timeout = max(0.05, flush_seconds - (time.monotonic() - last_flush))
            entry = await self._next_result(min(timeout, 1.0))
            if entry is None:
                finished = True
            elif entry is not ...:
                item, row = entry
                rows.append(row)
                items.append(item)
                self.tally.add(row)
                self.metrics.record_row(row.status.value, row.score)
            due = len(rows) >= flush_rows or time.monotonic() - last_flush >= flush_seconds
            if finished or due:
                for item in items:
                    ledger.complete(item.page)
                updates = ledger.updates()
                if rows or updates:
                    await asyncio.to_thread(sink.write_part, rows, updates)
                    self.log.info("batch_written", rows=len(rows), **dict(self.tally.by_status))
                rows, items, last_flush = [], [], time.monotonic()
            if finished or time.monotonic() - last_report >= 0.5:  # gauges and display, not per row
                last_report = time.monotonic()
                self._report()

    def _report(self) -> None:
        self.metrics.set_queue_depths(self.work.qsize(), self.results.qsize())
        self.metrics.tick()
        self.display.update(self.tally, self.listed)

    # -- supervision --------------------------------------------------------------------------
    async def _supervise(self, source_task: asyncio.Task, consumers: list[asyncio.Task], source_name: str) -> None:
        """Wait for the natural end or a stop; then wind the stages down in order."""
        watcher = asyncio.create_task(watch_time_budget(self.stop, self.settings.time_budget_s, self.started))
        stop_wait = asyncio.create_task(self.stop.event.wait())
        try:
            await asyncio.wait({source_task, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
            if source_task.done() and not source_task.cancelled() and source_task.exception():
                self._source_failed(source_task.exception(), source_name)
            elif source_task.done() and not self.stop.requested:
                # Natural end. Queueing the sentinels can wait for room behind the last items, so it
                # runs beside the stop event: a signal or the time budget must not wait for that room.
                finishing = asyncio.create_task(self._finish_consumers(consumers))
                await asyncio.wait({finishing, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
                finishing.cancel()
                await asyncio.gather(finishing, return_exceptions=True)
            if self.stop.requested:
                await self._wind_down(source_task, consumers)
        finally:
            watcher.cancel()
            stop_wait.cancel()
            await asyncio.gather(source_task, watcher, stop_wait, return_exceptions=True)

    def _source_failed(self, exc: BaseException, source_name: str) -> None:
        """The source raised: stop with the exit code that says whether retrying can help."""
        if isinstance(exc, AuthenticationFailed):
            self.stop.fail(ExitCode.AUTH, f"{exc.label} while listing: {exc}")
        elif isinstance(exc, CallFailed) and exc.failure.code in ("NoSuchBucket", "InvalidBucketName"):
            self.stop.fail(ExitCode.CONFIG, f"cannot read {source_name}: {exc}")
        elif isinstance(exc, CallFailed) and exc.failure.kind == TLS:
            self.stop.fail(ExitCode.CONFIG, f"cannot read {source_name}: {exc}. The TLS handshake failed: if "
                           "the endpoint serves plain HTTP (picscore serve does), write http:// in the endpoint "
                           "setting; an endpoint without a scheme means https://")
        elif isinstance(exc, CallFailed):
            resumable = "; continue with --resume" if self.listed else ""  # nothing listed: nothing to resume
            self.stop.fail(ExitCode.FAILURES, f"listing failed after retries: {exc}{resumable}")
        elif isinstance(exc, PicscoreError):
            self.stop.fail(exc.exit_code, exc.user_message())
        else:
            raise exc

    async def _finish_consumers(self, consumers: list[asyncio.Task]) -> None:
        """One end sentinel per consumer, behind the real items; then wait for the consumers to drain."""
        for _ in consumers:
            await self.work.put(None)
        await asyncio.wait(consumers)

    async def _wind_down(self, source_task: asyncio.Task, consumers: list[asyncio.Task]) -> None:
        """Stop the source; give in-flight work ``grace_s`` (none on a hard stop); cancel the rest."""
        source_task.cancel()
        for _ in consumers:  # wake consumers blocked on an empty queue
            with contextlib.suppress(asyncio.QueueFull):
                self.work.put_nowait(None)
        grace = 0.0 if self.stop.hard else self.settings.grace_s
        pending: set[asyncio.Task] = set(consumers)
        deadline = time.monotonic() + grace
        while pending and not self.stop.hard and time.monotonic() < deadline:
            _, pending = await asyncio.wait(pending, timeout=min(0.2, max(0.0, deadline - time.monotonic())))
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
