"""Deleting in batches: one DeleteMultipleObjects request for up to 1,000 objects.

The engine hands each consumer one object, so the delete step verifies its object (HeadObject
with If-Match: a changed or vanished object is never deleted) and then waits here while the
batcher gathers what the other consumers verified. A batch goes out when it holds ``max_keys``
objects or ``linger_s`` after its first one arrived, whichever is first; so a batch holds at most
as many keys as there are consumers (``--concurrency``), up to OSS's 1,000
(https://www.alibabacloud.com/help/en/oss/developer-reference/deletemultipleobjects). The intent
of the whole batch is journaled in one transaction before the request is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence

from .object_calls import ObjectCalls
from .rows import Action, Outcome, PlannedAction
from .steps import Intend, StepResult, Trail, outcome_of

__all__ = ["DeleteBatcher", "DeleteStep"]

#: Records the intent to delete these ``(key, etag)`` pairs, durably, in one transaction.
BeginBatch = Callable[[Sequence[tuple[str, str]]], Awaitable[None]]


class DeleteBatcher:
    """Gathers verified objects of one bucket into DeleteMultipleObjects requests."""

    def __init__(self, calls: ObjectCalls, begin: BeginBatch, *, max_keys: int = 1000, linger_s: float = 0.02) -> None:
        self.calls = calls
        self.begin = begin
        self.max_keys = max_keys
        self.linger_s = linger_s
        self._waiting: list[tuple[PlannedAction, asyncio.Future[StepResult]]] = []
        self._timer: asyncio.Task[None] | None = None
        self._sending: set[asyncio.Task[None]] = set()

    async def delete(self, plan: PlannedAction) -> StepResult:
        """Delete ``plan``'s object with the next batch; its result when the batch is answered."""
        future: asyncio.Future[StepResult] = asyncio.get_running_loop().create_future()
        self._waiting.append((plan, future))
        if len(self._waiting) >= self.max_keys:
            self._send_now()
        elif self._timer is None:
            self._timer = asyncio.create_task(self._send_later())
        return await asyncio.shield(future)

    async def _send_later(self) -> None:
        await asyncio.sleep(self.linger_s)
        self._timer = None
        self._send_now()

    def _send_now(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._waiting = self._waiting, []
        if batch:
            task = asyncio.create_task(self._send(batch))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[tuple[PlannedAction, asyncio.Future[StepResult]]]) -> None:
        try:
            results = await self._delete_batch([plan for plan, _ in batch])
        except BaseException as exc:  # cancellation or AuthenticationFailed: every waiter learns it
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)

    async def _delete_batch(self, plans: list[PlannedAction]) -> list[StepResult]:
        await self.begin([(plan.key, plan.etag) for plan in plans])
        trail = Trail()
        answer = trail.saw(await self.calls.delete_many(plans[0].bucket, [plan.key for plan in plans]))
        if answer.failure is not None:
            return [trail.failed(answer.failure)] * len(plans)
        deleted = {item.key for item in (getattr(answer.value, "deleted_objects", None) or [])}
        return [trail.done() if plan.key in deleted
                else trail.ended(Outcome.FAILED, "NotDeleted", "the DeleteMultipleObjects answer did not list this key")
                for plan in plans]

    async def aclose(self) -> None:
        """Cancel a pending timer and any request in flight (the engine is winding down)."""
        if self._timer is not None:
            self._timer.cancel()
        for task in [*self._sending, *filter(None, [self._timer])]:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task


class DeleteStep:
    """Verify the object is still the version decided on, then delete it with a batch."""

    action = Action.DELETE

    def __init__(self, calls: ObjectCalls, batcher: DeleteBatcher) -> None:
        self.calls, self.batcher = calls, batcher

    async def run(self, plan: PlannedAction, reconcile: bool, intend: Intend) -> StepResult:
        trail = Trail()
        head = trail.saw(await self.calls.head(plan.bucket, plan.key, plan.etag))
        if head.failure is not None:
            if reconcile and outcome_of(head.failure) is Outcome.MISSING:
                return trail.done("deleted before the interruption")
            return trail.failed(head.failure)
        result = await self.batcher.delete(plan)
        return StepResult(result.outcome, result.http_status, result.error_code, result.error_message,
                          result.request_id, trail.attempts + 1)
