"""What ``picscore covers --apply`` and ``picscore filter --action …`` share after deciding what
to act on: plan → guards → dry run, or act → completion report → summary.

::

    planner ──► plan file (+ counts) ──► guards ──► --dry-run: print every action, stop
                                              └──► act phase (engine) ──► report ──► summary

A run keeps its working files beside its checkpoint (``<checkpoint>.plan.parquet`` and
``.plan.json``, ``<checkpoint>.inputs/`` for downloaded inputs). A fresh run plans; ``--resume``
reuses the stored plan, never a recomputed one, because the report's resume positions are row
offsets into it.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import structlog

from ..actions.act import MakeSteps, act
from ..actions.plan import GuardRefused, Guards, PlanSummary, describe_action, read_plan, write_plan
from ..actions.rows import PlannedAction
from ..batch.checkpoint import Checkpoint
from ..errors import ExitCode
from ..observability.metrics import BatchMetrics
from ..results.atomic import atomic_path
from ..settings.action import ActionSettings
from .outcome import CommandOutcome

__all__ = ["Planner", "ActJob", "carry_out", "default_checkpoint"]

log = structlog.get_logger("picscore.act")


class Planner(Protocol):
    """Decides the actions (iterated once); its counts are complete after that."""

    def actions(self) -> Iterable[PlannedAction]: ...
    def out_of(self) -> int: ...  # how many objects the plan was chosen among (--max-percent's base)
    def preface(self) -> list[str]: ...  # lines that describe the choice, printed before the summary


@dataclass
class ActJob:
    """One acting command's run."""

    command: str
    settings: ActionSettings
    report: Path
    report_format: str
    fingerprint: dict[str, Any]
    planner: Planner
    make_steps: MakeSteps
    guards: Guards = field(default_factory=Guards)
    what: str = "actions planned"
    #: Lines printed after a finished act phase (e.g. how to undo a move).
    epilogue: list[str] = field(default_factory=list)

    @property
    def checkpoint(self) -> Path:
        return self.settings.checkpoint or default_checkpoint(self.report)


def default_checkpoint(report: Path) -> Path:
    return report.with_name(report.name + ".checkpoint.sqlite")


def _plan_paths(checkpoint: Path) -> tuple[Path, Path]:
    return checkpoint.with_name(checkpoint.name + ".plan.parquet"), checkpoint.with_name(checkpoint.name + ".plan.json")


def _make_plan(planner: Planner, plan: Path, sidecar: Path) -> tuple[PlanSummary, int, list[str]]:
    """Plan into ``plan`` and record its counts beside it (blocking: run in a thread)."""
    summary = PlanSummary()
    write_plan(plan, planner.actions(), summary)
    out_of, preface = planner.out_of(), planner.preface()
    with atomic_path(sidecar) as tmp:
        tmp.write_text(json.dumps({"out_of": out_of, "preface": preface}))
    return summary, out_of, preface


def _stored_plan(plan: Path, sidecar: Path) -> tuple[PlanSummary, int, list[str]]:
    summary = PlanSummary()
    for action in read_plan(plan):
        summary.add(action)
    stored = json.loads(sidecar.read_text())
    return summary, int(stored["out_of"]), list(stored["preface"])


async def carry_out(job: ActJob) -> CommandOutcome:
    """Plan, check the guards, then print (``--dry-run``) or act; the outcome to print."""
    if job.settings.dry_run:
        return await _dry_run(job)
    plan, sidecar = _plan_paths(job.checkpoint)
    checkpoint = Checkpoint.open(job.checkpoint, job.fingerprint, resume=job.settings.resume,
                                 restart=job.settings.restart)
    try:
        if checkpoint.is_finished():
            return CommandOutcome(ExitCode.OK, [f"picscore {job.command}: this run had already finished; "
                                                f"report: {checkpoint.finished_output()}"])
        if job.settings.resume and plan.is_file() and sidecar.is_file():
            summary, out_of, preface = await asyncio.to_thread(_stored_plan, plan, sidecar)
        else:
            summary, out_of, preface = await asyncio.to_thread(_make_plan, job.planner, plan, sidecar)
        job.guards.check(summary.count, out_of)
        log.info("act_started", command=job.command, planned=summary.count, out_of=out_of, resume=job.settings.resume)
        return await _act(job, checkpoint, plan, summary, preface)
    finally:
        checkpoint.close()


async def _act(job: ActJob, checkpoint: Checkpoint, plan: Path, summary: PlanSummary,
               preface: list[str]) -> CommandOutcome:
    metrics = BatchMetrics(job.command)
    if job.settings.metrics_port is not None:
        metrics.serve(job.settings.metrics_port)
    code: ExitCode | None = None
    try:
        phase = await act(job.command, job.settings, plan, job.report, job.report_format, checkpoint, metrics,
                          job.make_steps)
        batch = phase.batch
        lines = [*preface, *summary.lines(job.what)]
        if batch.stop.failure is not None:
            code, message = batch.stop.failure
            return CommandOutcome(code, [*lines, batch.tally.render(job.command, None, batch.elapsed_s)], error=message)
        if batch.stop.reason is not None:
            code = batch.stop.reason
            stopped = batch.stop.reason.name.lower().replace("_", " ")
            return CommandOutcome(code, [*lines, batch.tally.render(job.command, None, batch.elapsed_s),
                                         f"picscore {job.command}: stopped ({stopped}); continue with --resume"])
        report = await asyncio.to_thread(phase.writer.finalize)
        code = batch.tally.verdict(job.settings.failure_threshold)
        return CommandOutcome(code, [*lines, batch.tally.render(job.command, str(report), batch.elapsed_s),
                                     *job.epilogue])
    finally:
        metrics.run_success.set(1 if code == ExitCode.OK else 0)
        if job.settings.pushgateway:
            try:
                metrics.push(job.settings.pushgateway, shard="0-of-1")
            except (OSError, ValueError) as exc:
                log.warning("pushgateway_failed", error=str(exc))
        metrics.close()


async def _dry_run(job: ActJob) -> CommandOutcome:
    """Plan into a scratch folder, check the guards, and list every action; nothing is written to OSS."""
    with tempfile.TemporaryDirectory(prefix="picscore-dry-run-") as scratch:
        plan, sidecar = _plan_paths(Path(scratch) / "dry-run")
        summary, out_of, preface = await asyncio.to_thread(_make_plan, job.planner, plan, sidecar)
        lines = await asyncio.to_thread(lambda: [describe_action(action) for action in read_plan(plan)])
    lines += [*preface, *summary.lines(job.what), f"picscore {job.command} --dry-run: nothing was changed"]
    try:
        job.guards.check(summary.count, out_of)
    except GuardRefused as refused:  # the plan is shown anyway: that is how a person checks it
        return CommandOutcome(refused.exit_code, lines, error=f"a real run would be refused: {refused.user_message()}")
    return CommandOutcome(ExitCode.OK, lines)
