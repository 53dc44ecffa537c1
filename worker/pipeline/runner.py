"""Orchestration of one ``picscore run``: wire the stages, run them, stop them well.

::

    producer ──► [work queue] ──► consumers ×N ──► [result queue] ──► writer ──► parts + checkpoint
    (list, skip)     bounded      (signed GET,        bounded          (batch,      (one transaction
                                   retry, limit)                        flush)        per part)

Stopping: the first SIGTERM/SIGINT (or the time budget) stops listing, lets in-flight requests
finish for ``grace_s``, writes what was collected, and exits with a resumable code. A second
signal cancels at once; the checkpoint is consistent either way because it only ever changes
in the transaction that also records a part file. Items that were queued but not finished
belong to pages whose resume token has not moved, so ``--resume`` does them again.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from types import EllipsisType
from typing import Any, TextIO, TypeVar

import structlog

from ..config import RunConfig, fingerprint, split_oss_url
from ..eventloop import loop_name
from ..observability.metrics import RunMetrics
from ..oss.client import open_async_client, upload_file
from .checkpoint import Checkpoint
from .display import ProgressReporter
from .gctuning import throughput_gc
from .incremental import PreviousResults
from .model import ResultRow
from .producer import Producer, WorkItem, page_size_for
from .progress import ListingProgress
from .ratelimit import AdaptiveLimiter
from .scoring import AuthenticationFailed, CallFailed, RetryPolicy, ScoreCaller, retrying
from .selection import Selection
from .sinks import open_sink
from .summary import Tally

__all__ = ["ExitCode", "run_audit"]

log = structlog.get_logger("picscore.run")
T = TypeVar("T")


class ExitCode(IntEnum):
    """Documented in the README; Kubernetes podFailurePolicy rules key on them."""

    OK = 0              # every selected object scored (or failures within --failure-threshold)
    FAILURES = 1        # more objects failed than --failure-threshold allows
    CONFIG = 2          # invalid configuration or checkpoint mismatch: retrying will not help
    AUTH = 3            # credentials refused (wrong secret, unknown key): retrying will not help
    INTERRUPTED = 4     # SIGTERM/SIGINT: resumable with --resume
    TIME_BUDGET = 5     # --time-budget reached: resumable with --resume


@dataclass
class _Stop:
    """Why and how the run is stopping."""

    reason: ExitCode | None = None
    hard: bool = False
    event: asyncio.Event = field(default_factory=asyncio.Event)

    def request(self, reason: ExitCode) -> None:
        if self.event.is_set():
            self.hard = True
        self.reason = self.reason or reason
        self.event.set()


class _Run:
    """One run's wiring. Built by :func:`run_audit`; not reused."""

    def __init__(self, config: RunConfig, metrics: RunMetrics) -> None:
        self.config = config
        self.metrics = metrics
        self.tally = Tally()
        self.listed = 0
        self.display = ProgressReporter(config.progress)
        self.stop = _Stop()
        self.started = time.monotonic()
        queue_size = max(64, 4 * config.concurrency)
        self.work: asyncio.Queue[WorkItem | None] = asyncio.Queue(queue_size)
        self.results: asyncio.Queue[tuple[WorkItem, ResultRow] | None] = asyncio.Queue(queue_size)
        #: (exit code, message) when the run cannot go on: rejected credentials, a failed listing.
        self.failure: tuple[ExitCode, str] | None = None

    def fail(self, code: ExitCode, message: str) -> None:
        if self.failure is None:
            self.failure = (code, message)
        self.stop.request(code)

    def listing_failed(self, exc: BaseException) -> None:
        if isinstance(exc, AuthenticationFailed):
            self.fail(ExitCode.AUTH, f"credentials refused while listing: {exc}")
        elif isinstance(exc, CallFailed) and exc.failure.code in ("NoSuchBucket", "InvalidBucketName"):
            self.fail(ExitCode.CONFIG, f"cannot list bucket {self.config.bucket!r}: {exc}")
        elif isinstance(exc, CallFailed):
            self.fail(ExitCode.FAILURES, f"listing failed after retries: {exc}; continue with --resume")
        else:
            raise exc

    # -- consumers ----------------------------------------------------------------------------
    async def consume(self, caller: ScoreCaller) -> None:
        while True:
            item = await self.work.get()
            if item is None or self.stop.event.is_set():
                return
            if item.row is not None:
                await self.results.put((item, item.row))
                continue
            self.metrics.in_flight.inc()
            try:
                row = await caller.score(item.ref)
            except AuthenticationFailed as exc:
                self.fail(ExitCode.AUTH, f"credentials refused: {exc}")
                self.stop.hard = True
                return
            finally:
                self.metrics.in_flight.dec()
            await self.results.put((item, row))

    # -- writer -------------------------------------------------------------------------------
    async def _next_result(self, timeout: float) -> tuple[WorkItem, ResultRow] | EllipsisType | None:
        """The next result, None at the end, or ``...`` when ``timeout`` passes with nothing."""
        try:
            return self.results.get_nowait()  # the common case under load: no timer needed
        except asyncio.QueueEmpty:
            pass
        try:
            return await asyncio.wait_for(self.results.get(), timeout)
        except TimeoutError:
            return ...

    async def write(self, sink, progress: ListingProgress) -> None:
        """Batch rows into parts: every ``flush_rows`` rows or ``flush_seconds``, whichever first."""
        rows: list[ResultRow] = []
        items: list[WorkItem] = []
        last_flush = last_report = time.monotonic()
        finished = False
        while not finished:
            timeout = max(0.05, self.config.flush_seconds - (time.monotonic() - last_flush))
            entry = await self._next_result(min(timeout, 1.0))
            if entry is None:
                finished = True
            elif entry is not ...:
                item, row = entry
                rows.append(row)
                items.append(item)
                self.tally.add(row)
                self.metrics.record_row(row.status.value, row.score)
            due = len(rows) >= self.config.flush_rows or time.monotonic() - last_flush >= self.config.flush_seconds
            if finished or due:
                for item in items:
                    progress.complete(item.page)
                updates = progress.updates()
                if rows or updates:
                    await asyncio.to_thread(sink.write_part, rows, updates)
                    log.info("batch_written", rows=len(rows), **self.counts())
                rows, items, last_flush = [], [], time.monotonic()
            if finished or time.monotonic() - last_report >= 0.5:  # gauges and display, not per row
                last_report = time.monotonic()
                self.report()

    def report(self) -> None:
        self.metrics.queue_depth.labels(queue="work").set(self.work.qsize())
        self.metrics.queue_depth.labels(queue="results").set(self.results.qsize())
        self.metrics.tick()
        self.display.update(self.tally, self.listed)

    def count_listed(self, n: int) -> None:
        self.listed += n
        self.metrics.listed.inc(n)

    def counts(self) -> dict[str, int]:
        return {status: count for status, count in self.tally.by_status.items()}


def _install_signals(stop: _Stop) -> Callable[[], None]:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.request, ExitCode.INTERRUPTED)

    def remove() -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    return remove


async def _supervise(run: _Run, producer_task: asyncio.Task, consumers: list[asyncio.Task]) -> None:
    """Wait for the natural end or a stop; then wind the stages down in order."""
    budget = run.config.time_budget_s

    async def budget_watch() -> None:
        if budget is not None:
            await asyncio.sleep(max(0.0, budget - (time.monotonic() - run.started)))
            run.stop.request(ExitCode.TIME_BUDGET)

    watcher = asyncio.create_task(budget_watch())
    stop_wait = asyncio.create_task(run.stop.event.wait())
    try:
        await asyncio.wait({producer_task, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        if producer_task.done() and not producer_task.cancelled() and producer_task.exception():
            run.listing_failed(producer_task.exception())
        elif producer_task.done() and not run.stop.event.is_set():
            # Natural end. Queueing the sentinels can wait for room behind the last items, so it
            # runs beside the stop event: a signal or the time budget must not wait for that room.
            finishing = asyncio.create_task(_finish_consumers(run, consumers))
            await asyncio.wait({finishing, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
            finishing.cancel()
            await asyncio.gather(finishing, return_exceptions=True)
        if run.stop.event.is_set():
            await _wind_down(run, producer_task, consumers)
    finally:
        watcher.cancel()
        stop_wait.cancel()
        await asyncio.gather(producer_task, watcher, stop_wait, return_exceptions=True)


async def _finish_consumers(run: _Run, consumers: list[asyncio.Task]) -> None:
    """One end sentinel per consumer, behind the real items; then wait for the consumers to drain."""
    for _ in consumers:
        await run.work.put(None)
    await asyncio.wait(consumers)


async def _wind_down(run: _Run, producer_task: asyncio.Task, consumers: list[asyncio.Task]) -> None:
    """Stop listing; give in-flight requests ``grace_s`` (none on a hard stop); cancel the rest."""
    producer_task.cancel()
    for _ in consumers:  # wake consumers blocked on an empty queue
        with contextlib.suppress(asyncio.QueueFull):
            run.work.put_nowait(None)
    grace = 0.0 if run.stop.hard else run.config.grace_s
    pending: set[asyncio.Task] = set(consumers)
    deadline = time.monotonic() + grace
    while pending and not run.stop.hard and time.monotonic() < deadline:
        _, pending = await asyncio.wait(pending, timeout=min(0.2, max(0.0, deadline - time.monotonic())))
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


def _log_start(config: RunConfig) -> None:
    """Once the run is sure to start (settings and checkpoint accepted): what it audits, and how."""
    log.info("run_started", bucket=config.bucket, prefixes=list(config.prefix), shard=str(config.shard),
             concurrency=config.concurrency, resume=config.resume, dry_run=config.dry_run,
             event_loop=loop_name())


async def _audit(config: RunConfig, metrics: RunMetrics, out: TextIO) -> ExitCode:
    run = _Run(config, metrics)
    checkpoint = Checkpoint.open(Path(config.checkpoint), fingerprint(config), resume=config.resume)
    _log_start(config)
    try:
        sink = open_sink(_local_output_path(config), config.format, checkpoint)
        if checkpoint.is_finished():
            destination = await _publish(config, await asyncio.to_thread(sink.finalize))
            if destination is None:
                return ExitCode.FAILURES
            print(f"picscore run: this run had already finished; output: {destination}", file=out)
            return ExitCode.OK
        progress = ListingProgress({p: checkpoint.listing_state(p) for p in config.prefix})
        previous = await asyncio.to_thread(_previous_results, config)
        remove_signals = _install_signals(run.stop)
        try:
            async with open_async_client(config.endpoint, config.region, config.credentials,
                                         config.concurrency) as client:
                await _pipeline(run, client, checkpoint, sink, progress, previous)
        finally:
            remove_signals()
            if previous is not None:
                previous.close()
        if run.failure is not None:
            code, message = run.failure
            print(f"picscore run: {message}", file=sys.stderr)
            print(run.tally.render(None, time.monotonic() - run.started), file=out)
            return code
        if run.stop.reason is not None:
            print(run.tally.render(None, time.monotonic() - run.started), file=out)
            print(f"picscore run: stopped ({run.stop.reason.name.lower().replace('_', ' ')}); "
                  "continue with --resume", file=out)
            return run.stop.reason
        local = await asyncio.to_thread(sink.finalize)
        destination = await _publish(config, local)
        print(run.tally.render(destination or str(local), time.monotonic() - run.started), file=out)
        return _verdict(run.tally, config.failure_threshold) if destination else ExitCode.FAILURES
    finally:
        checkpoint.close()


async def _pipeline(run: _Run, client, checkpoint: Checkpoint, sink, progress: ListingProgress,
                    previous: PreviousResults | None) -> None:
    """Start producer, consumers and writer; supervise them; always let the writer flush."""
    config, metrics = run.config, run.metrics
    policy = _retry_policy(config)
    secrets = config.credentials.secrets
    limiter = AdaptiveLimiter(config.rate_limit, burst=config.concurrency)
    caller = ScoreCaller(client, limiter, policy, observer=metrics, secrets=secrets)
    producer = Producer(client, config.bucket, list(config.prefix), _selection(config), run.work, progress,
                        retry=retrying(policy, metrics, secrets),
                        already_done=_in_thread(checkpoint.done_among),
                        on_listed=run.count_listed,
                        unchanged=_in_thread(previous.unchanged_among) if previous else None,
                        page_size=page_size_for(config.concurrency))
    writer = asyncio.create_task(run.write(sink, progress))
    producer_task = asyncio.create_task(producer.run())
    consumers = [asyncio.create_task(run.consume(caller)) for _ in range(config.concurrency)]
    try:
        await _supervise(run, producer_task, consumers)
    finally:
        await run.results.put(None)
        await writer
        run.display.close()


def _previous_results(config: RunConfig) -> PreviousResults | None:
    """``--incremental``: the previous output indexed beside the checkpoint (rebuilt each run)."""
    if config.incremental is None:
        return None
    index = Path(config.checkpoint).with_name(Path(config.checkpoint).name + ".previous.sqlite")
    return PreviousResults.index(Path(config.incremental), index)


def _in_thread(function: Callable[[Any], T]) -> Callable[[Any], Awaitable[T]]:
    """A blocking one-argument lookup (SQLite) as a coroutine function, run off the event loop."""
    return lambda argument: asyncio.to_thread(function, argument)


def _verdict(tally: Tally, threshold: float) -> ExitCode:
    if tally.failed == 0:
        return ExitCode.OK
    ratio = tally.failed / max(1, tally.selected)
    return ExitCode.OK if ratio <= threshold and threshold > 0 else ExitCode.FAILURES


def _retry_policy(config: RunConfig) -> RetryPolicy:
    """One retry policy for scoring, listing and the upload."""
    return RetryPolicy(config.retry_attempts, config.retry_total_s, config.retry_base_s, config.retry_max_backoff_s)


def _selection(config: RunConfig) -> Selection:
    index, count = config.shard.index, config.shard.count
    return Selection(include=config.include, exclude=config.exclude, min_size=config.min_size or None,
                     max_size=config.max_size, modified_since=config.modified_since,
                     max_object_bytes=config.max_object_bytes, shard_index=index, shard_count=count)


def _local_output_path(config: RunConfig) -> Path:
    if config.output.startswith("oss://"):
        return Path(config.checkpoint).with_suffix(f".{config.format}")
    return Path(config.output)


async def _publish(config: RunConfig, local: Path) -> str | None:
    """Upload to ``oss://bucket/key`` when asked; returns where the result lives, None if the upload failed.

    A failed upload keeps the finished local file and the finished checkpoint: ``--resume``
    tries the upload again without scoring anything.
    """
    if not config.output.startswith("oss://"):
        return str(local)
    bucket, key = split_oss_url(config.output)
    policy = _retry_policy(config)
    try:
        await retrying(policy, secrets=config.credentials.secrets)(lambda: asyncio.to_thread(
            upload_file, config.endpoint, config.region, config.credentials, str(local), bucket, key))
    except (CallFailed, AuthenticationFailed) as exc:
        print(f"picscore run: uploading the result to {config.output} failed: {exc.failure.code}: "
              f"{exc.failure.message.splitlines()[0]}\nThe result is kept at {local}; run again with --resume "
              "to retry the upload.", file=sys.stderr)
        return None
    return config.output


async def _dry_run(config: RunConfig, metrics: RunMetrics, out: TextIO) -> ExitCode:
    """List and count only: what a real run would score and skip, and so what it would cost."""
    _log_start(config)
    tally = Tally()
    listed = 0

    def count_listed(n: int) -> None:
        nonlocal listed
        listed += n

    queue: asyncio.Queue[WorkItem | None] = asyncio.Queue(1000)

    async def drain() -> None:
        while (item := await queue.get()) is not None:
            if item.row is not None:
                tally.add(item.row)
            else:
                tally.by_status["would score"] += 1

    async def nothing_done(pairs: list[tuple[str, str]]) -> set[tuple[str, str]]:
        return set()

    async with open_async_client(config.endpoint, config.region, config.credentials, 1) as client:
        policy = _retry_policy(config)
        producer = Producer(client, config.bucket, list(config.prefix), _selection(config), queue,
                            ListingProgress({}), retry=retrying(policy, metrics, config.credentials.secrets),
                            already_done=nothing_done,
                            on_listed=count_listed)
        drainer = asyncio.create_task(drain())
        try:
            await producer.run()
        finally:
            await queue.put(None)
            await drainer
    would_score = tally.by_status["would score"]
    skipped = tally.by_status["skipped"]
    index, count = config.shard.index, config.shard.count
    print(f"picscore run --dry-run: {listed} objects listed in oss://{config.bucket}/ under "
          f"{len(config.prefix)} prefix(es); {would_score + skipped} in shard {index}/{count}", file=out)
    print(f"  would score {would_score} objects: {would_score} image/score calls (more if retried)", file=out)
    reasons = ", ".join(f"{k} {v}" for k, v in tally.skip_reasons.most_common()) or "none"
    print(f"  would skip  {skipped} objects: {reasons}", file=out)
    return ExitCode.OK


async def run_audit(config: RunConfig, *, out: TextIO = sys.stdout) -> ExitCode:
    """Run the audit described by ``config``; returns the process exit code.

    The metrics are pushed however the run ends — a run that raised pushes ``run_success 0``,
    so the Pushgateway never keeps showing the previous run's success.
    """
    metrics = RunMetrics()
    if config.metrics_port is not None:
        port = metrics.serve(config.metrics_port)
        log.info("metrics_listening", port=port)
    code: ExitCode | None = None
    try:
        with throughput_gc():
            code = await (_dry_run if config.dry_run else _audit)(config, metrics, out)
        return code
    finally:
        metrics.run_success.set(1 if code == ExitCode.OK else 0)
        if config.pushgateway and not config.dry_run:
            _push(metrics, config)
        metrics.close()


def _push(metrics: RunMetrics, config: RunConfig) -> None:
    try:
        metrics.push(config.pushgateway, job="picscore", shard=f"{config.shard.index}-of-{config.shard.count}")
    except (OSError, ValueError) as exc:  # unreachable or malformed gateway: the run's result stands
        log.warning("pushgateway_failed", error=str(exc))
