"""``picscore run``: the listing source + the image/score operation + the results schema.

Everything a batch command shares (queues, consumers, stop policy, parts and checkpoint,
metrics, progress) is the engine's (:mod:`worker.batch.engine`); this module only wires the
parts that make an audit an audit, and says how its outcome reads:

* what is listed and skipped before any billed call (:class:`~worker.batch.selection.Selection`,
  ``--incremental``'s carried-forward scores);
* what is done per object (:class:`~worker.commands.image_score.ScoreOperation`);
* where the finished file goes (a local path, or uploaded to ``oss://bucket/key``);
* ``--dry-run``: list and count only, so the cost of a run is known before it is paid.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import structlog
from alibabacloud_oss_v2.aio import AsyncClient

from ..batch.calls import PacedCaller
from ..batch.checkpoint import Checkpoint
from ..batch.concurrency import AdaptiveConcurrency
from ..batch.engine import BatchEngine, BatchOutcome, EngineSettings
from ..batch.gctuning import throughput_gc
from ..batch.items import Operation, WorkItem
from ..batch.ledger import ResumeLedger
from ..batch.listing_source import ListingSource, page_size_for
from ..batch.pages import AlreadyDone, Decide, PageOffer
from ..batch.ratelimit import AdaptiveLimiter
from ..batch.selection import Selection
from ..batch.tally import Tally
from ..errors import ExitCode
from ..eventloop import loop_name
from ..observability.metrics import BatchMetrics
from ..oss.client import open_async_client, upload_file
from ..oss.retry import AuthenticationFailed, CallFailed, RetryPolicy, retrying
from ..results.parts import PartWriter, open_part_writer
from ..results.schema import RESULT_SCHEMA, ObjectRef, ResultRow, RowSchema
from ..settings import RunConfig, fingerprint, split_oss_url
from ..units import format_size
from .image_score import ScoreOperation
from .incremental import PreviousResults
from .outcome import CommandOutcome

__all__ = ["run_audit", "run_settings_for_engine", "ListingJob", "score_job"]

log = structlog.get_logger("picscore.run")
T = TypeVar("T")
COMMAND = "run"


@dataclass(frozen=True)
class ListingJob:
    """What makes a bucket-wide command over a listing what it is: the engine, the listing, the
    parts, the checkpoint, resume, sharding, metrics and the summary are shared.

    ``run`` is one (:func:`score_job`); ``picscore thumbnails`` is another."""

    command: str
    schema: RowSchema
    selection: Selection
    #: Settings beyond ``run``'s that decide which rows the job produces (stored in the checkpoint).
    fingerprint: dict[str, Any]
    make_operation: Callable[[AsyncClient, PacedCaller], Operation]
    #: How a dry run words the billed calls for N objects it would process.
    dry_run_calls: Callable[[int], str]
    #: What the job does to an object, for the dry run ("would score 8 objects").
    verb: str = "score"
    #: Whether ``--incremental`` applies (carry unchanged objects' rows forward).
    incremental: bool = True
    #: The row of an object the selection skips.
    skipped: Callable[[ObjectRef, str, str, datetime], Any] = ResultRow.skipped
    #: Runs once before and once after the engine (with the client), e.g. to clear scratch objects.
    housekeeping: Callable[[AsyncClient], Awaitable[None]] | None = None


def score_job(config: RunConfig) -> ListingJob:
    """``picscore run``: one image/score call per selected object, ``picscore run``'s rows."""
    return ListingJob(COMMAND, RESULT_SCHEMA, _selection(config), {}, ScoreOperation,
                      lambda n: f"{n} image/score calls (more if retried)")


async def run_audit(config: RunConfig, job: ListingJob | None = None) -> CommandOutcome:
    """Run the audit described by ``config`` (``picscore run`` unless ``job`` says otherwise).

    The metrics are pushed however the run ends: a run that raised pushes ``run_success 0``,
    so the Pushgateway never keeps showing the previous run's success.
    """
    job = job or score_job(config)
    metrics = BatchMetrics(job.command)
    if config.metrics_port is not None:
        port = metrics.serve(config.metrics_port)
        log.info("metrics_listening", port=port)
    outcome: CommandOutcome | None = None
    try:
        with throughput_gc():
            outcome = await (_dry_run if config.dry_run else _audit)(config, job, metrics)
        return outcome
    finally:
        metrics.run_success.set(1 if outcome is not None and outcome.code == ExitCode.OK else 0)
        if config.pushgateway and not config.dry_run:
            _push(metrics, config)
        metrics.close()


def run_settings_for_engine(config: RunConfig, command: str = COMMAND) -> EngineSettings:
    """The engine's knobs, from ``picscore run``'s settings of the same names."""
    return EngineSettings(command=command, concurrency=config.concurrency, flush_rows=config.flush_rows,
                          flush_seconds=config.flush_seconds, grace_s=config.grace_s,
                          time_budget_s=config.time_budget_s, progress=config.progress)


async def _audit(config: RunConfig, job: ListingJob, metrics: BatchMetrics) -> CommandOutcome:
    settings = fingerprint(config) | ({"job": job.fingerprint} if job.fingerprint else {})
    checkpoint = Checkpoint.open(Path(config.checkpoint), settings, resume=config.resume, restart=config.restart)
    _log_start(config, job.command)
    try:
        writer = open_part_writer(_local_output_path(config), config.format, checkpoint, job.schema)
        if checkpoint.is_finished():
            destination = await _publish(config, await asyncio.to_thread(writer.finalize))
            if isinstance(destination, CommandOutcome):
                return destination
            return CommandOutcome(ExitCode.OK, [f"picscore {job.command}: this run had already finished; "
                                                f"output: {destination}"])
        ledger = ResumeLedger({prefix: checkpoint.position(prefix) for prefix in config.prefix})
        previous = await asyncio.to_thread(_previous_results, config) if job.incremental else None
        engine = BatchEngine(run_settings_for_engine(config, job.command), metrics,
                             await asyncio.to_thread(_tally_of_earlier_sessions, writer, checkpoint))
        try:
            async with open_async_client(config.endpoint, config.region, config.credentials,
                                         config.concurrency) as client:
                policy = _retry_policy(config)
                secrets = config.credentials.secrets
                limiter = AdaptiveLimiter(config.rate_limit, burst=config.concurrency)
                concurrency = AdaptiveConcurrency(config.concurrency)
                metrics.track_concurrency(concurrency)
                caller = PacedCaller(limiter, policy, observer=metrics, secrets=secrets, concurrency=concurrency)
                if job.housekeeping is not None:
                    await job.housekeeping(client)
                source = _listing_source(config, job, client, policy, metrics, engine.count_listed,
                                         already_done=_in_thread(checkpoint.done_among), previous=previous)
                batch = await engine.run(source, job.make_operation(client, caller), writer, ledger)
                if job.housekeeping is not None and batch.stop.failure is None:
                    await job.housekeeping(client)
        finally:
            if previous is not None:
                previous.close()
        return await _conclude(config, job.command, batch, writer)
    finally:
        checkpoint.close()


async def _conclude(config: RunConfig, command: str, batch: BatchOutcome, writer: PartWriter) -> CommandOutcome:
    """Turn the engine's outcome into the exit code and the summary a person reads."""
    if batch.stop.failure is not None:
        code, message = batch.stop.failure
        return CommandOutcome(code, [batch.tally.render(command, None, batch.elapsed_s)], error=message)
    if batch.stop.reason is not None:
        stopped = batch.stop.reason.name.lower().replace("_", " ")
        resumable = f"picscore {command}: stopped ({stopped}); continue with --resume"
        return CommandOutcome(batch.stop.reason, [batch.tally.render(command, None, batch.elapsed_s), resumable])
    local = await asyncio.to_thread(writer.finalize)
    destination = await _publish(config, local)
    if isinstance(destination, CommandOutcome):
        return destination
    report = batch.tally.render(command, destination, batch.elapsed_s)
    return CommandOutcome(batch.tally.verdict(config.failure_threshold), [report])


def _tally_of_earlier_sessions(writer: PartWriter, checkpoint: Checkpoint) -> Tally:
    """A resumed run's summary covers the whole run: count the rows its committed parts hold."""
    tally = Tally()
    for _, name in checkpoint.committed_parts():
        for record in writer.format.read(writer.parts_dir / name):
            tally.add_earlier(record)
    return tally


def _listing_source(config: RunConfig, job: ListingJob, client: Any, policy: RetryPolicy, metrics: BatchMetrics,
                    on_listed: Callable[[int], None], *, already_done: AlreadyDone,
                    previous: PreviousResults | None) -> ListingSource:
    """The prefixes of the run's bucket, this shard's objects, with skips decided before any call."""
    selection = job.selection
    pages = PageOffer(already_done, in_shard=selection.in_shard, decide=_decider(selection, previous, job.skipped),
                      on_listed=on_listed)
    return ListingSource(client, config.bucket, list(config.prefix),
                         retrying(policy, metrics, config.credentials.secrets), pages,
                         page_size=page_size_for(config.concurrency))


def _decider(selection: Selection, previous: PreviousResults | None,
             skipped: Callable[[ObjectRef, str, str, datetime], Any] = ResultRow.skipped) -> Decide:
    """What the listing can decide without a billed call: skips, and ``--incremental``'s unchanged objects."""

    async def decide(refs: list[ObjectRef], records: list[Any]) -> list[ResultRow | None]:
        unchanged = {}
        if previous is not None:
            unchanged = await asyncio.to_thread(previous.unchanged_among, [(ref.key, ref.etag) for ref in refs])
        now = datetime.now(UTC)
        rows: list[ResultRow | None] = []
        for ref in refs:
            skip = selection.reason(ref)
            if skip is not None:
                rows.append(skipped(ref, skip[0], skip[1], now))
            elif (ref.key, ref.etag) in unchanged:
                rows.append(unchanged[(ref.key, ref.etag)].carry_forward(ref))
            else:
                rows.append(None)
        return rows

    return decide


def _log_start(config: RunConfig, command: str = COMMAND) -> None:
    """Once the run is sure to start (settings and checkpoint accepted): what it audits, and how."""
    log.info(f"{command}_started", bucket=config.bucket, prefixes=list(config.prefix), shard=str(config.shard),
             concurrency=config.concurrency, resume=config.resume, dry_run=config.dry_run,
             event_loop=loop_name())


def _previous_results(config: RunConfig) -> PreviousResults | None:
    """``--incremental``: the previous output indexed beside the checkpoint (rebuilt each run)."""
    if config.incremental is None:
        return None
    index = Path(config.checkpoint).with_name(Path(config.checkpoint).name + ".previous.sqlite")
    return PreviousResults.index(Path(config.incremental), index)


def _in_thread(function: Callable[[Any], T]) -> Callable[[Any], Awaitable[T]]:
    """A blocking one-argument lookup (SQLite) as a coroutine function, run off the event loop."""
    return lambda argument: asyncio.to_thread(function, argument)


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


async def _publish(config: RunConfig, local: Path) -> str | CommandOutcome:
    """Upload to ``oss://bucket/key`` when asked; returns where the result lives, or the failure.

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
        first_line = exc.failure.message.splitlines()[0]
        return CommandOutcome(ExitCode.FAILURES, error=(
            f"uploading the result to {config.output} failed: {exc.failure.code}: {first_line}\n"
            f"The result is kept at {local}; run again with --resume to retry the upload."))
    return config.output


async def _dry_run(config: RunConfig, job: ListingJob, metrics: BatchMetrics) -> CommandOutcome:
    """List and count only: what a real run would score and skip, and so what it would cost."""
    _log_start(config, job.command)
    tally = Tally()
    listed = 0
    size = {"would score": 0, "skipped": 0}

    def count_listed(n: int) -> None:
        nonlocal listed
        listed += n

    queue: asyncio.Queue[WorkItem | None] = asyncio.Queue(1000)

    async def drain() -> None:
        while (item := await queue.get()) is not None:
            if item.row is not None:
                tally.add(item.row)
                size["skipped"] += item.ref.size
            else:
                tally.by_status["would score"] += 1
                size["would score"] += item.ref.size

    async def nothing_done(pairs: list[tuple[str, str]]) -> set[tuple[str, str]]:
        return set()

    async with open_async_client(config.endpoint, config.region, config.credentials, 1) as client:
        source = _listing_source(config, job, client, _retry_policy(config), metrics, count_listed,
                                 already_done=nothing_done, previous=None)
        drainer = asyncio.create_task(drain())
        try:
            await source.run(queue, ResumeLedger({}))
        finally:
            await queue.put(None)
            await drainer
    would_score = tally.by_status["would score"]
    skipped = tally.by_status["skipped"]
    index, count = config.shard.index, config.shard.count
    reasons = ", ".join(f"{k} {v}" for k, v in tally.skip_reasons.most_common()) or "none"
    return CommandOutcome(ExitCode.OK, [
        f"picscore {job.command} --dry-run: {listed} objects listed in oss://{config.bucket}/ under "
        f"{len(config.prefix)} prefix(es); {would_score + skipped} in shard {index}/{count}",
        f"  would {job.verb} {would_score} objects ({format_size(size['would score'])}): "
        f"{job.dry_run_calls(would_score)}",
        f"  would skip  {skipped} objects ({format_size(size['skipped'])}): {reasons}",
    ])


def _push(metrics: BatchMetrics, config: RunConfig) -> None:
    try:
        metrics.push(config.pushgateway, shard=f"{config.shard.index}-of-{config.shard.count}")
    except (OSError, ValueError) as exc:  # unreachable or malformed gateway: the run's result stands
        log.warning("pushgateway_failed", error=str(exc))
