"""The engine's operation for the act phase: journal, run the object's step, journal, report.

Also the engine's ``decide`` hook for it: an object whose action the journal already holds as
done (the crash fell between the action and the commit of its report row) is reported from the
journal, with no call at all. Together with the steps' reconciliation of begun actions, this is
what makes the act phase exactly-once across ``kill -9`` (:mod:`worker.batch.journal`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from ..batch.items import WorkItem
from ..batch.journal import ActionJournal, JournalState
from ..batch.pages import Decide
from ..results.schema import ObjectRef
from .rows import ACTION_SCHEMA, Action, ActionRow, Outcome, PlannedAction
from .steps import Step, StepResult

__all__ = ["ActionOperation", "journal_decider", "planned_from_record", "row_from_record"]


def planned_from_record(record: Mapping[str, Any]) -> PlannedAction:
    """A plan file's record as a :class:`PlannedAction`."""
    return PlannedAction(record["bucket"], record["key"], record["etag"], int(record.get("size") or 0),
                         record.get("storage_class"), record.get("score"), Action(record["action"]),
                         record.get("destination"))


def row_from_record(record: Mapping[str, Any]) -> ActionRow:
    """A report row kept in the journal (JSON: timestamps as ISO text) as an :class:`ActionRow`."""
    values = {name: record.get(name) for name in ACTION_SCHEMA.columns}
    values["action"], values["outcome"] = Action(values["action"]), Outcome(values["outcome"])
    if isinstance(values["acted_at"], str):
        values["acted_at"] = datetime.fromisoformat(values["acted_at"])
    return ActionRow(**values)


def _row(plan: PlannedAction, result: StepResult) -> ActionRow:
    return ActionRow(plan.bucket, plan.key, plan.etag, plan.size, plan.storage_class, plan.score, plan.action,
                     plan.destination, result.outcome, result.http_status, result.error_code, result.error_message,
                     result.request_id, result.attempts, datetime.now(UTC))


class ActionOperation:
    """Runs each planned object's step between two journal entries."""

    def __init__(self, steps: Mapping[Action, Step], journal: ActionJournal) -> None:
        self.steps = dict(steps)
        self.journal = journal

    async def perform(self, item: WorkItem) -> ActionRow:
        assert item.record is not None, "the act phase reads a plan file"
        plan = planned_from_record(item.record)
        pair = (plan.key, plan.etag)
        entry = (await asyncio.to_thread(self.journal.entries, [pair])).get(pair)
        if entry is not None and entry.state is JournalState.DONE and entry.row is not None:
            return row_from_record(entry.row)

        async def intend() -> None:
            await asyncio.to_thread(self.journal.begin, [pair], plan.action.value)

        result = await self.steps[plan.action].run(plan, entry is not None, intend)
        row = _row(plan, result)
        await asyncio.to_thread(self.journal.finish, [(plan.key, plan.etag, plan.action.value,
                                                       ACTION_SCHEMA.to_record(row))])
        return row


def journal_decider(journal: ActionJournal) -> Decide:
    """The rows a page's objects already have in the journal (done before a crash, not yet reported)."""

    async def decide(refs: list[ObjectRef], records: Sequence[Mapping[str, Any] | None]) -> list[ActionRow | None]:
        entries = await asyncio.to_thread(journal.entries, [(ref.key, ref.etag) for ref in refs])
        rows: list[ActionRow | None] = []
        for ref in refs:
            entry = entries.get((ref.key, ref.etag))
            done = entry is not None and entry.state is JournalState.DONE and entry.row is not None
            rows.append(row_from_record(entry.row) if done else None)  # type: ignore[union-attr]
        return rows

    return decide
