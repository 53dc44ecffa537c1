"""The act phase: a plan file in, one OSS action per object, a completion report out.

This is the batch engine (:mod:`worker.batch.engine`) with a results-file source over the plan,
:class:`~worker.actions.operation.ActionOperation` as its operation and the completion report's
schema, so acting has the same bounded concurrency, rate limit, retries, checkpoint, metrics,
progress and stop policy as ``picscore run``. The report's part files are committed with the
plan's row offsets, and the journal in the same checkpoint makes each action exactly-once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..batch.calls import PacedCaller
from ..batch.checkpoint import Checkpoint
from ..batch.concurrency import AdaptiveConcurrency
from ..batch.engine import BatchEngine, BatchOutcome, EngineSettings
from ..batch.journal import ActionJournal
from ..batch.ledger import ResumeLedger
from ..batch.pages import PageOffer
from ..batch.ratelimit import AdaptiveLimiter
from ..batch.results_source import ResultsFileSource
from ..batch.tally import Tally
from ..observability.metrics import BatchMetrics
from ..oss.client import open_async_client
from ..oss.retry import RetryPolicy
from ..results.parts import PartWriter, open_part_writer
from ..settings.action import ActionSettings
from .object_calls import ObjectCalls
from .operation import ActionOperation, journal_decider
from .rows import ACTION_SCHEMA, PLAN_SCHEMA, Action, Outcome
from .steps import Step

__all__ = ["ActPhase", "act", "action_tally", "retry_policy"]

#: The steps of one command's actions, built once the client exists; and what to close after.
MakeSteps = Callable[[ObjectCalls, ActionJournal], tuple[Mapping[Action, Step], Callable[[], Awaitable[None]]]]


@dataclass
class ActPhase:
    """How the act phase ended, and the writer that holds its report's parts."""

    batch: BatchOutcome
    writer: PartWriter


def action_tally() -> Tally:
    """Totals by outcome; only ``failed`` counts against the failure threshold."""
    return Tally(statuses=tuple(outcome.value for outcome in Outcome), failure_statuses=frozenset({"failed"}),
                 counted_failure="failed", skip_status="", not_done_label="failed")


def retry_policy(settings: ActionSettings) -> RetryPolicy:
    return RetryPolicy(settings.retry_attempts, settings.retry_total_s, settings.retry_base_s,
                       settings.retry_max_backoff_s)


def _earlier_tally(writer: PartWriter, checkpoint: Checkpoint) -> Tally:
    """A resumed act phase's summary covers the whole run: count the report rows already committed."""
    tally = action_tally()
    for _, name in checkpoint.committed_parts():
        for record in writer.format.read(writer.parts_dir / name):
            tally.add_earlier({**record, "status": record["outcome"]})
    return tally


async def act(command: str, settings: ActionSettings, plan: Path, report: Path, fmt: str, checkpoint: Checkpoint,
              metrics: BatchMetrics, make_steps: MakeSteps) -> ActPhase:
    """Run every planned action not yet reported; return how it ended (the caller finalizes)."""
    assert settings.endpoint and settings.region and settings.credentials
    writer = open_part_writer(report, fmt, checkpoint, ACTION_SCHEMA)
    engine_settings = EngineSettings(command=command, concurrency=settings.concurrency,
                                     flush_rows=settings.flush_rows, flush_seconds=settings.flush_seconds,
                                     grace_s=settings.grace_s, time_budget_s=settings.time_budget_s,
                                     progress=settings.progress)
    engine = BatchEngine(engine_settings, metrics, await asyncio.to_thread(_earlier_tally, writer, checkpoint))
    journal = checkpoint.journal
    pages = PageOffer(lambda pairs: asyncio.to_thread(checkpoint.done_among, pairs), decide=journal_decider(journal),
                      on_listed=engine.count_listed)
    source = ResultsFileSource([plan], pages, schema=PLAN_SCHEMA)
    ledger = ResumeLedger({stream: checkpoint.position(stream) for stream in source.streams})
    async with open_async_client(settings.endpoint, settings.region, settings.credentials,
                                 settings.concurrency) as client:
        concurrency = AdaptiveConcurrency(settings.concurrency)
        metrics.track_concurrency(concurrency)
        caller = PacedCaller(AdaptiveLimiter(settings.rate_limit, burst=settings.concurrency), retry_policy(settings),
                             observer=metrics, secrets=settings.secrets, concurrency=concurrency)
        steps, close = make_steps(ObjectCalls(client, caller), journal)
        try:
            batch = await engine.run(source, ActionOperation(steps, journal), writer, ledger)
        finally:
            await close()
    return ActPhase(batch, writer)
