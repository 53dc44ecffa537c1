"""What each action does to one object, call by call, and what a resume does when the journal
says an action was begun but not finished.

Every step starts from a plan row (an object version and its action) and ends in a
:class:`StepResult`. Two rules hold for all of them:

* **Never act on another version.** Whatever writes is guarded by the ETag in the results
  (CopyObject's ``x-oss-copy-source-if-match``; a HeadObject ``If-Match`` just before an
  unguardable request). A 412 is the outcome ``changed``: the object is left alone.
* **Journal before writing.** ``intend()`` records the intent durably right before the first
  request that changes the bucket. A resume that finds an intent does not repeat the action
  blindly: it *reconciles*, looking at the bucket to tell "done before the crash" from "not
  done yet" (``reconcile=True``).

What stays open, and why: DeleteObject and DeleteMultipleObjects take no ETag condition on OSS,
so between the If-Match check and the delete (milliseconds) a new upload of the same key could
be deleted. A move's source delete has the same window after its guarded copy.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ..batch.calls import CallOutcome
from ..oss.errors import CallFailure
from .object_calls import MAX_TAGS, ObjectCalls, tags_of
from .rows import Action, Outcome, PlannedAction

__all__ = ["StepResult", "Step", "Intend", "Trail", "TagStep", "CopyStep", "MoveStep", "ArchiveStep",
           "RestoreStep"]

#: Records the intent to act, durably, before the first request that changes the bucket.
Intend = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class StepResult:
    outcome: Outcome
    http_status: int | None = None
    error_code: str | None = None
    error_message: str | None = None
    request_id: str | None = None
    attempts: int = 0


class Step(Protocol):
    """One action's calls for one object."""

    action: Action

    async def run(self, plan: PlannedAction, reconcile: bool, intend: Intend) -> StepResult: ...


def outcome_of(failure: CallFailure) -> Outcome:
    """412: the object is another version; 404 NoSuchKey: it is gone; anything else failed."""
    if failure.http_status == 412:
        return Outcome.CHANGED
    if failure.http_status == 404 and failure.code == "NoSuchKey":
        return Outcome.MISSING
    return Outcome.FAILED


class Trail:
    """The calls of one action: attempts add up; the last answer's status and request id stay."""

    def __init__(self) -> None:
        self.attempts = 0
        self.http_status: int | None = None
        self.request_id: str | None = None

    def saw(self, outcome: CallOutcome[Any]) -> CallOutcome[Any]:
        self.attempts += outcome.attempts
        if outcome.failure is not None:
            self.http_status, self.request_id = outcome.failure.http_status, outcome.failure.request_id
        else:
            self.http_status = getattr(outcome.value, "status_code", None)
            self.request_id = getattr(outcome.value, "request_id", None) or self.request_id
        return outcome

    def ended(self, outcome: Outcome, code: str | None = None, message: str | None = None) -> StepResult:
        return StepResult(outcome, self.http_status, code, message, self.request_id, self.attempts)

    def failed(self, failure: CallFailure, context: str = "") -> StepResult:
        message = f"{context}{failure.message}" if context else failure.message
        return self.ended(outcome_of(failure), failure.code, message)

    def done(self, note: str | None = None) -> StepResult:
        return self.ended(Outcome.DONE, None, note)


def _etag_of(value: Any) -> str:
    return (getattr(value, "etag", None) or "").strip('"')


async def _holds_version(calls: ObjectCalls, trail: Trail, bucket: str, key: str, etag: str) -> bool:
    """Whether ``key`` exists now as exactly version ``etag`` (a resume's look at the bucket)."""
    head = trail.saw(await calls.head(bucket, key))
    return head.failure is None and _etag_of(head.value) == etag


class TagStep:
    """Add one tag and keep the object's others (PutObjectTagging replaces the whole set)."""

    action = Action.TAG

    def __init__(self, calls: ObjectCalls, name: str, value: str) -> None:
        self.calls, self.name, self.value = calls, name, value

    async def run(self, plan: PlannedAction, reconcile: bool, intend: Intend) -> StepResult:
        trail = Trail()
        head = trail.saw(await self.calls.head(plan.bucket, plan.key, plan.etag))
        if head.failure is not None:
            return trail.failed(head.failure)
        got = trail.saw(await self.calls.get_tags(plan.bucket, plan.key))
        if got.failure is not None:
            return trail.failed(got.failure)
        tags = tags_of(got.value)
        if tags.get(self.name) == self.value:
            return trail.done("already tagged")
        if self.name not in tags and len(tags) >= MAX_TAGS:
            return trail.ended(Outcome.FAILED, "TooManyTags",
                               f"the object already has {len(tags)} tags, the most OSS allows; none was replaced")
        await intend()
        put = trail.saw(await self.calls.put_tags(plan.bucket, plan.key, {**tags, self.name: self.value}))
        return trail.failed(put.failure) if put.failure is not None else trail.done()


class CopyStep:
    """Copy to ``plan.destination``; the source stays (covers)."""

    action = Action.COPY

    def __init__(self, calls: ObjectCalls) -> None:
        self.calls = calls

    async def run(self, plan: PlannedAction, reconcile: bool, intend: Intend) -> StepResult:
        trail = Trail()
        assert plan.destination
        if reconcile and await _holds_version(self.calls, trail, plan.bucket, plan.destination, plan.etag):
            return trail.done("copied before the interruption")
        await intend()
        copy = trail.saw(await self.calls.copy(plan.bucket, plan.key, plan.etag, plan.destination))
        return trail.failed(copy.failure) if copy.failure is not None else trail.done()


class MoveStep:
    """Copy to ``plan.destination`` (guarded, same storage class, metadata and tags), then delete the source."""

    action = Action.MOVE

    def __init__(self, calls: ObjectCalls) -> None:
        self.calls = calls

    async def run(self, plan: PlannedAction, reconcile: bool, intend: Intend) -> StepResult:
        trail = Trail()
        assert plan.destination
        if reconcile:
            source = trail.saw(await self.calls.head(plan.bucket, plan.key, plan.etag))
            if source.failure is not None and outcome_of(source.failure) is Outcome.MISSING:
                if await _holds_version(self.calls, trail, plan.bucket, plan.destination, plan.etag):
                    return trail.done("moved before the interruption")
                return trail.ended(Outcome.MISSING, "NoSuchKey", "neither the object nor its moved copy exists")
            if source.failure is not None:
                return trail.failed(source.failure)
        # Killed between the copy and the delete: the copy is there, only the delete is left.
        copied = reconcile and await _holds_version(self.calls, trail, plan.bucket, plan.destination, plan.etag)
        if not copied:
            await intend()
            copy = trail.saw(await self.calls.copy(plan.bucket, plan.key, plan.etag, plan.destination,
                                                   storage_class=plan.storage_class))
            if copy.failure is not None:
                return trail.failed(copy.failure)
        delete = trail.saw(await self.calls.delete(plan.bucket, plan.key))
        if delete.failure is not None:
            return trail.failed(delete.failure, f"copied to {plan.destination}, but the source was not deleted: ")
        return trail.done()


class ArchiveStep:
    """Copy onto itself in another storage class (metadata and tags kept)."""

    action = Action.ARCHIVE

    def __init__(self, calls: ObjectCalls, storage_class: str) -> None:
        self.calls, self.storage_class = calls, storage_class

    async def run(self, plan: PlannedAction, reconcile: bool, intend: Intend) -> StepResult:
        trail = Trail()
        if reconcile:
            head = trail.saw(await self.calls.head(plan.bucket, plan.key, plan.etag))
            if head.failure is not None:
                return trail.failed(head.failure)
            if getattr(head.value, "storage_class", None) == self.storage_class:
                return trail.done("archived before the interruption")
        await intend()
        copy = trail.saw(await self.calls.copy(plan.bucket, plan.key, plan.etag, plan.key,
                                               storage_class=self.storage_class))
        return trail.failed(copy.failure) if copy.failure is not None else trail.done()


class RestoreStep:
    """Undo a move: copy the quarantined bytes back to ``plan.key`` without overwriting anything
    that appeared there since, then delete the quarantined copy."""

    action = Action.RESTORE

    def __init__(self, calls: ObjectCalls) -> None:
        self.calls = calls

    async def run(self, plan: PlannedAction, reconcile: bool, intend: Intend) -> StepResult:
        trail = Trail()
        quarantined = plan.destination
        assert quarantined
        copied = reconcile and await _holds_version(self.calls, trail, plan.bucket, plan.key, plan.etag)
        if not copied:
            await intend()
            copy = trail.saw(await self.calls.copy(plan.bucket, quarantined, plan.etag, plan.key,
                                                   storage_class=plan.storage_class, forbid_overwrite=True))
            if copy.failure is not None and copy.failure.http_status == 409:
                return trail.ended(Outcome.CHANGED, copy.failure.code,
                                   f"another object now has the key {plan.key}; the moved copy stays at {quarantined}")
            if copy.failure is not None:
                return trail.failed(copy.failure)
        delete = trail.saw(await self.calls.delete(plan.bucket, quarantined))
        if delete.failure is not None:
            return trail.failed(delete.failure, f"restored, but the copy at {quarantined} was not deleted: ")
        return trail.done()
