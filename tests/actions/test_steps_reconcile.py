"""Each action's step (:mod:`worker.actions.steps`, :mod:`worker.actions.delete_batch`) against a
real ``picscore serve`` through the real ``alibabacloud_oss_v2`` async client: the fresh path,
the guards (changed, missing) and the reconciliation a resume does when the journal holds an
intent, each checked by its outcome AND by what the bucket holds afterwards. Every request a step
sends is recorded (:class:`RecordingCalls`), so "nothing was written again" is checked on the
requests themselves, not only on the bucket.

Then the operation around the steps (:mod:`worker.actions.operation`): an object the journal
already holds as done is reported from the journal with no call at all."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import alibabacloud_oss_v2 as oss
import pytest

from tests.conftest import BUCKET, make_jpeg
from tests.integration.filterhelpers import CREDS, sdk_client
from tests.integration.helpers import unique_prefix
from tests.integration.runhelpers import REGION, md5_etag
from worker.actions.delete_batch import DeleteBatcher, DeleteStep
from worker.actions.object_calls import ObjectCalls
from worker.actions.operation import ActionOperation, journal_decider, row_from_record
from worker.actions.rows import ACTION_SCHEMA, PLAN_SCHEMA, Action, ActionRow, Outcome, PlannedAction
from worker.actions.steps import ArchiveStep, CopyStep, MoveStep, RestoreStep, StepResult, TagStep
from worker.batch.calls import CallOutcome, PacedCaller
from worker.batch.checkpoint import Checkpoint
from worker.batch.items import WorkItem
from worker.batch.journal import JournalState
from worker.batch.ratelimit import AdaptiveLimiter
from worker.oss.client import open_async_client
from worker.oss.retry import RetryPolicy
from worker.results.schema import ObjectRef
from worker.server.launch import ServerProcess

FAST = RetryPolicy(attempts=3, total_s=10.0, base_s=0.005, max_backoff_s=0.02)
WRITES = frozenset({"copy", "delete", "delete_many", "put_tags"})


# -- recording ------------------------------------------------------------------------------------


class RecordingCalls(ObjectCalls):
    """The real calls, each recorded as ``(method, key, …)`` in :attr:`log` before it is sent."""

    def __init__(self, client: oss.aio.AsyncClient, caller: PacedCaller, log: list[tuple[Any, ...]]) -> None:
        super().__init__(client, caller)
        self.log = log

    def sent(self, method: str) -> list[tuple[Any, ...]]:
        return [entry for entry in self.log if entry[0] == method]

    def writes(self) -> list[tuple[Any, ...]]:
        return [entry for entry in self.log if entry[0] in WRITES]

    async def head(self, bucket: str, key: str, etag: str | None = None) -> CallOutcome[Any]:
        self.log.append(("head", key, etag))
        return await super().head(bucket, key, etag)

    async def copy(self, bucket: str, source_key: str, etag: str, destination: str, *,
                   storage_class: str | None = None, forbid_overwrite: bool = False) -> CallOutcome[Any]:
        self.log.append(("copy", source_key, destination, storage_class, forbid_overwrite))
        return await super().copy(bucket, source_key, etag, destination, storage_class=storage_class,
                                  forbid_overwrite=forbid_overwrite)

    async def delete(self, bucket: str, key: str) -> CallOutcome[Any]:
        self.log.append(("delete", key))
        return await super().delete(bucket, key)

    async def delete_many(self, bucket: str, keys: Sequence[str]) -> CallOutcome[Any]:
        self.log.append(("delete_many", tuple(keys)))
        return await super().delete_many(bucket, keys)

    async def get_tags(self, bucket: str, key: str) -> CallOutcome[Any]:
        self.log.append(("get_tags", key))
        return await super().get_tags(bucket, key)

    async def put_tags(self, bucket: str, key: str, tags: Mapping[str, str]) -> CallOutcome[Any]:
        self.log.append(("put_tags", key, dict(tags)))
        return await super().put_tags(bucket, key, tags)


@dataclass
class Intents:
    """The ``intend`` callback: counts its calls and notes how many requests had gone out before."""

    log: list[tuple[Any, ...]]
    at: list[int] = field(default_factory=list)

    async def __call__(self) -> None:
        self.at.append(len(self.log))
        self.log.append(("intend",))

    @property
    def count(self) -> int:
        return len(self.at)


def intended_before_every_write(log: Sequence[tuple[Any, ...]]) -> bool:
    """The first write request comes after exactly one intent, and no write precedes it."""
    first_write = next((i for i, entry in enumerate(log) if entry[0] in WRITES), None)
    intents = [i for i, entry in enumerate(log) if entry[0] == "intend"]
    return first_write is not None and len(intents) == 1 and intents[0] < first_write


# -- the bucket -----------------------------------------------------------------------------------


class Bucket:
    """Setting the bucket up and looking at it, through the synchronous SDK client (not the calls under test)."""

    def __init__(self, url: str) -> None:
        self.client = sdk_client(url)

    def put(self, key: str, data: bytes, tags: Mapping[str, str] | None = None) -> str:
        tagging = "&".join(f"{name}={value}" for name, value in (tags or {}).items()) or None
        self.client.put_object(oss.PutObjectRequest(bucket=BUCKET, key=key, body=data, tagging=tagging))
        return md5_etag(data)

    def head(self, key: str) -> Any | None:
        try:
            return self.client.head_object(oss.HeadObjectRequest(bucket=BUCKET, key=key))
        except oss.exceptions.OperationError as exc:
            if getattr(exc.unwrap(), "status_code", None) == 404:
                return None
            raise

    def etag(self, key: str) -> str | None:
        head = self.head(key)
        return None if head is None else (head.etag or "").strip('"')

    def storage_class(self, key: str) -> str | None:
        head = self.head(key)
        return None if head is None else head.storage_class

    def tags(self, key: str) -> dict[str, str]:
        result = self.client.get_object_tagging(oss.GetObjectTaggingRequest(bucket=BUCKET, key=key))
        return {tag.key: tag.value or "" for tag in (result.tag_set.tags if result.tag_set else None) or []}


@pytest.fixture(scope="module")
def bucket(server: ServerProcess) -> Bucket:
    return Bucket(server.url)


@pytest.fixture
def log() -> list[tuple[Any, ...]]:
    return []


@pytest.fixture
async def calls(server: ServerProcess, log: list[tuple[Any, ...]]) -> AsyncIterator[RecordingCalls]:
    async with open_async_client(server.url, REGION, CREDS, 8) as client:
        yield RecordingCalls(client, PacedCaller(AdaptiveLimiter(None), FAST), log)


@pytest.fixture
def intend(log: list[tuple[Any, ...]]) -> Intents:
    return Intents(log)


@pytest.fixture
def prefix() -> str:
    return unique_prefix("steps")


def planned(key: str, etag: str, action: Action, destination: str | None = None,
            storage_class: str | None = "Standard", size: int = 1) -> PlannedAction:
    return PlannedAction(BUCKET, key, etag, size, storage_class, 0.12, action, destination)


def jpeg(seed: int) -> bytes:
    return make_jpeg(64, 48, seed=seed)


# -- tag ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("reconcile", [False, True], ids=["fresh", "reconcile, not yet tagged"])
async def test_tag_adds_its_tag_and_keeps_the_others(bucket: Bucket, calls: RecordingCalls, intend: Intents,
                                                     prefix: str, reconcile: bool) -> None:
    key = prefix + "a.jpg"
    etag = bucket.put(key, jpeg(1), {"team": "x", "year": "2026"})
    result = await TagStep(calls, "picscore", "low").run(planned(key, etag, Action.TAG), reconcile, intend)
    assert result.outcome is Outcome.DONE and result.http_status == 200
    assert bucket.tags(key) == {"team": "x", "year": "2026", "picscore": "low"}
    assert bucket.etag(key) == etag
    assert intended_before_every_write(calls.log) and len(calls.sent("put_tags")) == 1


@pytest.mark.parametrize("reconcile", [False, True], ids=["fresh", "reconcile"])
async def test_tag_already_there_is_done_without_a_write(bucket: Bucket, calls: RecordingCalls, intend: Intents,
                                                         prefix: str, reconcile: bool) -> None:
    """A resume after the PutObjectTagging went through finds the tag and sends nothing."""
    key = prefix + "a.jpg"
    etag = bucket.put(key, jpeg(1), {"team": "x", "picscore": "low"})
    result = await TagStep(calls, "picscore", "low").run(planned(key, etag, Action.TAG), reconcile, intend)
    assert result.outcome is Outcome.DONE and result.error_message == "already tagged"
    assert calls.writes() == [] and intend.count == 0
    assert bucket.tags(key) == {"team": "x", "picscore": "low"}


async def test_tag_with_another_value_replaces_only_that_tag(bucket: Bucket, calls: RecordingCalls,
                                                             intend: Intents, prefix: str) -> None:
    key = prefix + "a.jpg"
    etag = bucket.put(key, jpeg(1), {"team": "x", "picscore": "high"})
    result = await TagStep(calls, "picscore", "low").run(planned(key, etag, Action.TAG), False, intend)
    assert result.outcome is Outcome.DONE
    assert bucket.tags(key) == {"team": "x", "picscore": "low"}


async def test_tag_refuses_an_eleventh_tag_and_changes_nothing(bucket: Bucket, calls: RecordingCalls,
                                                               intend: Intents, prefix: str) -> None:
    key = prefix + "full.jpg"
    ten = {f"t{i}": str(i) for i in range(10)}
    etag = bucket.put(key, jpeg(2), ten)
    result = await TagStep(calls, "picscore", "low").run(planned(key, etag, Action.TAG), False, intend)
    assert result.outcome is Outcome.FAILED and result.error_code == "TooManyTags"
    assert "10 tags" in (result.error_message or "")
    assert calls.writes() == [] and intend.count == 0
    assert bucket.tags(key) == ten and bucket.etag(key) == etag


async def test_tag_of_a_changed_object_is_changed_and_leaves_it_alone(bucket: Bucket, calls: RecordingCalls,
                                                                      intend: Intents, prefix: str) -> None:
    key = prefix + "a.jpg"
    old = bucket.put(key, jpeg(1))
    new = bucket.put(key, jpeg(2))
    result = await TagStep(calls, "picscore", "low").run(planned(key, old, Action.TAG), False, intend)
    assert result.outcome is Outcome.CHANGED and result.http_status == 412
    assert calls.writes() == [] and intend.count == 0
    assert bucket.tags(key) == {} and bucket.etag(key) == new


@pytest.mark.parametrize("reconcile", [False, True], ids=["fresh", "reconcile"])
async def test_tag_of_a_missing_object_is_missing(bucket: Bucket, calls: RecordingCalls, intend: Intents,
                                                  prefix: str, reconcile: bool) -> None:
    key = prefix + "gone.jpg"
    result = await TagStep(calls, "picscore", "low").run(planned(key, md5_etag(b"x"), Action.TAG), reconcile, intend)
    assert result.outcome is Outcome.MISSING and result.http_status == 404
    assert calls.writes() == [] and intend.count == 0 and bucket.head(key) is None


# -- copy -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("reconcile", [False, True], ids=["fresh", "reconcile, not yet copied"])
async def test_copy_copies_and_keeps_the_source(bucket: Bucket, calls: RecordingCalls, intend: Intents,
                                                prefix: str, reconcile: bool) -> None:
    key, destination = prefix + "a.jpg", prefix + "covers/a.jpg"
    etag = bucket.put(key, jpeg(3), {"team": "x"})
    result = await CopyStep(calls).run(planned(key, etag, Action.COPY, destination), reconcile, intend)
    assert result.outcome is Outcome.DONE and result.http_status == 200
    assert bucket.etag(key) == etag and bucket.etag(destination) == etag
    assert bucket.tags(destination) == {"team": "x"}
    assert intended_before_every_write(calls.log) and len(calls.sent("copy")) == 1


async def test_copy_reconciled_after_it_happened_sends_no_second_copy(bucket: Bucket, calls: RecordingCalls,
                                                                      intend: Intents, prefix: str) -> None:
    key, destination = prefix + "a.jpg", prefix + "covers/a.jpg"
    etag = bucket.put(key, jpeg(3))
    bucket.put(destination, jpeg(3))  # the copy made before the crash
    result = await CopyStep(calls).run(planned(key, etag, Action.COPY, destination), True, intend)
    assert result.outcome is Outcome.DONE and result.error_message == "copied before the interruption"
    assert calls.writes() == [] and intend.count == 0
    assert bucket.etag(key) == etag and bucket.etag(destination) == etag


async def test_copy_of_a_changed_object_is_changed_and_copies_nothing(bucket: Bucket, calls: RecordingCalls,
                                                                      intend: Intents, prefix: str) -> None:
    key, destination = prefix + "a.jpg", prefix + "covers/a.jpg"
    old = bucket.put(key, jpeg(3))
    new = bucket.put(key, jpeg(4))
    result = await CopyStep(calls).run(planned(key, old, Action.COPY, destination), False, intend)
    assert result.outcome is Outcome.CHANGED and result.http_status == 412
    assert bucket.etag(key) == new and bucket.head(destination) is None


async def test_copy_of_a_missing_object_is_missing(bucket: Bucket, calls: RecordingCalls, intend: Intents,
                                                   prefix: str) -> None:
    key, destination = prefix + "gone.jpg", prefix + "covers/gone.jpg"
    result = await CopyStep(calls).run(planned(key, md5_etag(b"x"), Action.COPY, destination), False, intend)
    assert result.outcome is Outcome.MISSING and result.error_code == "NoSuchKey"
    assert bucket.head(destination) is None


# -- move -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("reconcile", [False, True], ids=["fresh", "reconcile, not yet copied"])
async def test_move_copies_then_deletes_the_source(bucket: Bucket, calls: RecordingCalls, intend: Intents,
                                                   prefix: str, reconcile: bool) -> None:
    key, destination = prefix + "a.jpg", prefix + "quarantine/a.jpg"
    etag = bucket.put(key, jpeg(5), {"team": "x"})
    result = await MoveStep(calls).run(planned(key, etag, Action.MOVE, destination), reconcile, intend)
    assert result.outcome is Outcome.DONE
    assert bucket.head(key) is None and bucket.etag(destination) == etag
    assert bucket.tags(destination) == {"team": "x"} and bucket.storage_class(destination) == "Standard"
    assert intended_before_every_write(calls.log)
    assert [entry[0] for entry in calls.writes()] == ["copy", "delete"]


async def test_move_reconciled_after_it_happened_writes_nothing(bucket: Bucket, calls: RecordingCalls,
                                                                intend: Intents, prefix: str) -> None:
    """Crash after the source delete, before the row: source gone, copy in quarantine → done, no write."""
    key, destination = prefix + "a.jpg", prefix + "quarantine/a.jpg"
    etag = bucket.put(destination, jpeg(5))
    result = await MoveStep(calls).run(planned(key, etag, Action.MOVE, destination), True, intend)
    assert result.outcome is Outcome.DONE and result.error_message == "moved before the interruption"
    assert calls.writes() == [] and intend.count == 0
    assert bucket.head(key) is None and bucket.etag(destination) == etag


async def test_move_reconciled_half_done_deletes_the_source_and_keeps_the_copy(
        bucket: Bucket, calls: RecordingCalls, intend: Intents, prefix: str) -> None:
    """Crash between the copy and the source delete: the resume finishes the move."""
    key, destination = prefix + "a.jpg", prefix + "quarantine/a.jpg"
    etag = bucket.put(key, jpeg(5))
    assert bucket.put(destination, jpeg(5)) == etag
    result = await MoveStep(calls).run(planned(key, etag, Action.MOVE, destination), True, intend)
    assert result.outcome is Outcome.DONE
    assert bucket.head(key) is None and bucket.etag(destination) == etag
    assert calls.writes() == [("delete", key)] and intend.count == 0  # no second CopyObject


async def test_move_reconciled_with_nothing_left_is_missing(bucket: Bucket, calls: RecordingCalls,
                                                            intend: Intents, prefix: str) -> None:
    key, destination = prefix + "a.jpg", prefix + "quarantine/a.jpg"
    result = await MoveStep(calls).run(planned(key, md5_etag(b"x"), Action.MOVE, destination), True, intend)
    assert result.outcome is Outcome.MISSING and result.error_code == "NoSuchKey"
    assert calls.writes() == [] and intend.count == 0
    assert bucket.head(destination) is None


@pytest.mark.parametrize("reconcile", [False, True], ids=["fresh", "reconcile"])
async def test_move_of_a_changed_object_is_changed_and_moves_nothing(
        bucket: Bucket, calls: RecordingCalls, intend: Intents, prefix: str, reconcile: bool) -> None:
    key, destination = prefix + "a.jpg", prefix + "quarantine/a.jpg"
    old = bucket.put(key, jpeg(5))
    new = bucket.put(key, jpeg(6))
    result = await MoveStep(calls).run(planned(key, old, Action.MOVE, destination), reconcile, intend)
    assert result.outcome is Outcome.CHANGED and result.http_status == 412
    assert calls.sent("delete") == [] and calls.sent("delete_many") == []
    assert bucket.etag(key) == new and bucket.head(destination) is None


async def test_move_of_a_missing_object_is_missing(bucket: Bucket, calls: RecordingCalls, intend: Intents,
                                                   prefix: str) -> None:
    key, destination = prefix + "gone.jpg", prefix + "quarantine/gone.jpg"
    result = await MoveStep(calls).run(planned(key, md5_etag(b"x"), Action.MOVE, destination), False, intend)
    assert result.outcome is Outcome.MISSING and result.error_code == "NoSuchKey"
    assert calls.sent("delete") == [] and bucket.head(destination) is None


# -- archive --------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["Archive", "IA"])
@pytest.mark.parametrize("reconcile", [False, True], ids=["fresh", "reconcile, not yet archived"])
async def test_archive_changes_the_class_and_keeps_the_object(bucket: Bucket, calls: RecordingCalls,
                                                              intend: Intents, prefix: str, reconcile: bool,
                                                              target: str) -> None:
    key = prefix + "a.jpg"
    etag = bucket.put(key, jpeg(7), {"team": "x"})
    result = await ArchiveStep(calls, target).run(planned(key, etag, Action.ARCHIVE), reconcile, intend)
    assert result.outcome is Outcome.DONE
    assert bucket.storage_class(key) == target and bucket.etag(key) == etag and bucket.tags(key) == {"team": "x"}
    assert intended_before_every_write(calls.log)
    assert calls.writes() == [("copy", key, key, target, False)]


async def test_archive_reconciled_in_the_target_class_sends_no_copy(bucket: Bucket, calls: RecordingCalls,
                                                                    intend: Intents, prefix: str) -> None:
    key = prefix + "a.jpg"
    etag = bucket.put(key, jpeg(7))
    bucket.client.copy_object(oss.CopyObjectRequest(bucket=BUCKET, key=key, source_bucket=BUCKET, source_key=key,
                                                    storage_class="Archive"))  # the copy made before the crash
    assert bucket.storage_class(key) == "Archive"
    result = await ArchiveStep(calls, "Archive").run(planned(key, etag, Action.ARCHIVE), True, intend)
    assert result.outcome is Outcome.DONE and result.error_message == "archived before the interruption"
    assert calls.writes() == [] and intend.count == 0
    assert bucket.storage_class(key) == "Archive" and bucket.etag(key) == etag


@pytest.mark.parametrize("reconcile", [False, True], ids=["fresh", "reconcile"])
async def test_archive_of_a_changed_object_is_changed(bucket: Bucket, calls: RecordingCalls, intend: Intents,
                                                      prefix: str, reconcile: bool) -> None:
    key = prefix + "a.jpg"
    old = bucket.put(key, jpeg(7))
    new = bucket.put(key, jpeg(8))
    result = await ArchiveStep(calls, "Archive").run(planned(key, old, Action.ARCHIVE), reconcile, intend)
    assert result.outcome is Outcome.CHANGED and result.http_status == 412
    assert bucket.storage_class(key) == "Standard" and bucket.etag(key) == new


@pytest.mark.parametrize("reconcile", [False, True], ids=["fresh", "reconcile"])
async def test_archive_of_a_missing_object_is_missing(bucket: Bucket, calls: RecordingCalls, intend: Intents,
                                                      prefix: str, reconcile: bool) -> None:
    key = prefix + "gone.jpg"
    result = await ArchiveStep(calls, "Archive").run(planned(key, md5_etag(b"x"), Action.ARCHIVE), reconcile, intend)
    assert result.outcome is Outcome.MISSING
    assert bucket.head(key) is None


# -- restore --------------------------------------------------------------------------------------


@pytest.mark.parametrize("reconcile", [False, True], ids=["fresh", "reconcile, not yet copied back"])
async def test_restore_copies_back_and_deletes_the_quarantined_copy(
        bucket: Bucket, calls: RecordingCalls, intend: Intents, prefix: str, reconcile: bool) -> None:
    key, quarantined = prefix + "a.jpg", prefix + "quarantine/a.jpg"
    etag = bucket.put(quarantined, jpeg(9), {"team": "x"})
    result = await RestoreStep(calls).run(planned(key, etag, Action.RESTORE, quarantined), reconcile, intend)
    assert result.outcome is Outcome.DONE
    assert bucket.etag(key) == etag and bucket.tags(key) == {"team": "x"} and bucket.head(quarantined) is None
    assert intended_before_every_write(calls.log)
    assert calls.writes() == [("copy", quarantined, key, "Standard", True), ("delete", quarantined)]


@pytest.mark.parametrize("reconcile", [False, True], ids=["fresh", "reconcile"])
async def test_restore_never_overwrites_an_object_that_took_the_key(
        bucket: Bucket, calls: RecordingCalls, intend: Intents, prefix: str, reconcile: bool) -> None:
    key, quarantined = prefix + "a.jpg", prefix + "quarantine/a.jpg"
    etag = bucket.put(quarantined, jpeg(9))
    newcomer = bucket.put(key, jpeg(10))
    result = await RestoreStep(calls).run(planned(key, etag, Action.RESTORE, quarantined), reconcile, intend)
    assert result.outcome is Outcome.CHANGED and result.http_status == 409
    assert result.error_code == "FileAlreadyExists" and quarantined in (result.error_message or "")
    assert bucket.etag(key) == newcomer and bucket.etag(quarantined) == etag
    assert calls.sent("delete") == []


async def test_restore_reconciled_after_the_copy_back_only_deletes_the_quarantined_copy(
        bucket: Bucket, calls: RecordingCalls, intend: Intents, prefix: str) -> None:
    """Crash between the copy back and the quarantine delete: no second copy, the delete is finished."""
    key, quarantined = prefix + "a.jpg", prefix + "quarantine/a.jpg"
    etag = bucket.put(quarantined, jpeg(9))
    bucket.put(key, jpeg(9))  # the copy back made before the crash
    result = await RestoreStep(calls).run(planned(key, etag, Action.RESTORE, quarantined), True, intend)
    assert result.outcome is Outcome.DONE
    assert calls.writes() == [("delete", quarantined)] and intend.count == 0
    assert bucket.etag(key) == etag and bucket.head(quarantined) is None


async def test_restore_reconciled_after_it_fully_happened_is_done(bucket: Bucket, calls: RecordingCalls,
                                                                  intend: Intents, prefix: str) -> None:
    key, quarantined = prefix + "a.jpg", prefix + "quarantine/a.jpg"
    etag = bucket.put(key, jpeg(9))
    result = await RestoreStep(calls).run(planned(key, etag, Action.RESTORE, quarantined), True, intend)
    assert result.outcome is Outcome.DONE
    assert calls.sent("copy") == [] and intend.count == 0
    assert bucket.etag(key) == etag and bucket.head(quarantined) is None


async def test_restore_of_a_changed_quarantined_copy_is_changed(bucket: Bucket, calls: RecordingCalls,
                                                                intend: Intents, prefix: str) -> None:
    key, quarantined = prefix + "a.jpg", prefix + "quarantine/a.jpg"
    old = md5_etag(jpeg(9))
    new = bucket.put(quarantined, jpeg(11))
    result = await RestoreStep(calls).run(planned(key, old, Action.RESTORE, quarantined), False, intend)
    assert result.outcome is Outcome.CHANGED and result.http_status == 412
    assert bucket.head(key) is None and bucket.etag(quarantined) == new
    assert calls.sent("delete") == []


async def test_restore_of_a_missing_quarantined_copy_is_missing(bucket: Bucket, calls: RecordingCalls,
                                                                intend: Intents, prefix: str) -> None:
    key, quarantined = prefix + "a.jpg", prefix + "quarantine/a.jpg"
    result = await RestoreStep(calls).run(planned(key, md5_etag(b"x"), Action.RESTORE, quarantined), False, intend)
    assert result.outcome is Outcome.MISSING and result.error_code == "NoSuchKey"
    assert bucket.head(key) is None and calls.sent("delete") == []


# -- delete ---------------------------------------------------------------------------------------


@dataclass
class Begins:
    """The batcher's ``begin`` callback: records each batch's pairs in the shared log."""

    log: list[tuple[Any, ...]]
    fail: bool = False

    async def __call__(self, pairs: Sequence[tuple[str, str]]) -> None:
        self.log.append(("begin", tuple(pairs)))
        if self.fail:
            raise OSError("the checkpoint's disk is full")

    def batches(self) -> list[tuple[tuple[str, str], ...]]:
        return [entry[1] for entry in self.log if entry[0] == "begin"]


@pytest.mark.parametrize("reconcile", [False, True], ids=["fresh", "reconcile, not yet deleted"])
async def test_delete_verifies_journals_the_batch_then_deletes(bucket: Bucket, calls: RecordingCalls,
                                                               intend: Intents, prefix: str,
                                                               log: list[tuple[Any, ...]], reconcile: bool) -> None:
    key = prefix + "a.jpg"
    etag = bucket.put(key, jpeg(12))
    begins = Begins(log)
    batcher = DeleteBatcher(calls, begins)
    try:
        result = await DeleteStep(calls, batcher).run(planned(key, etag, Action.DELETE), reconcile, intend)
    finally:
        await batcher.aclose()
    assert result.outcome is Outcome.DONE and result.attempts == 2
    assert bucket.head(key) is None
    assert [entry[0] for entry in log] == ["head", "begin", "delete_many"]
    assert begins.batches() == [((key, etag),)] and calls.sent("delete_many") == [("delete_many", (key,))]


async def test_delete_reconciled_after_it_happened_sends_nothing(bucket: Bucket, calls: RecordingCalls,
                                                                 intend: Intents, prefix: str,
                                                                 log: list[tuple[Any, ...]]) -> None:
    key = prefix + "a.jpg"
    begins = Begins(log)
    batcher = DeleteBatcher(calls, begins)
    try:
        result = await DeleteStep(calls, batcher).run(planned(key, md5_etag(b"x"), Action.DELETE), True, intend)
    finally:
        await batcher.aclose()
    assert result.outcome is Outcome.DONE and result.error_message == "deleted before the interruption"
    assert calls.writes() == [] and begins.batches() == [] and intend.count == 0


async def test_delete_of_a_missing_object_is_missing_on_a_fresh_run(bucket: Bucket, calls: RecordingCalls,
                                                                    intend: Intents, prefix: str,
                                                                    log: list[tuple[Any, ...]]) -> None:
    key = prefix + "gone.jpg"
    batcher = DeleteBatcher(calls, Begins(log))
    try:
        result = await DeleteStep(calls, batcher).run(planned(key, md5_etag(b"x"), Action.DELETE), False, intend)
    finally:
        await batcher.aclose()
    assert result.outcome is Outcome.MISSING and calls.writes() == []


@pytest.mark.parametrize("reconcile", [False, True], ids=["fresh", "reconcile"])
async def test_delete_of_a_changed_object_is_changed_and_keeps_it(bucket: Bucket, calls: RecordingCalls,
                                                                  intend: Intents, prefix: str,
                                                                  log: list[tuple[Any, ...]], reconcile: bool) -> None:
    key = prefix + "a.jpg"
    old = bucket.put(key, jpeg(12))
    new = bucket.put(key, jpeg(13))
    begins = Begins(log)
    batcher = DeleteBatcher(calls, begins)
    try:
        result = await DeleteStep(calls, batcher).run(planned(key, old, Action.DELETE), reconcile, intend)
    finally:
        await batcher.aclose()
    assert result.outcome is Outcome.CHANGED and result.http_status == 412
    assert calls.writes() == [] and begins.batches() == []
    assert bucket.etag(key) == new


async def test_concurrent_deletes_go_out_as_one_request_journaled_first(bucket: Bucket, calls: RecordingCalls,
                                                                        prefix: str,
                                                                        log: list[tuple[Any, ...]]) -> None:
    keys = [f"{prefix}{i}.jpg" for i in range(7)]
    plans = [planned(key, bucket.put(key, jpeg(20 + i)), Action.DELETE) for i, key in enumerate(keys)]
    begins = Begins(log)
    batcher = DeleteBatcher(calls, begins)  # the default linger gathers what arrives together
    try:
        results = await asyncio.gather(*(batcher.delete(plan) for plan in plans))
    finally:
        await batcher.aclose()
    assert [result.outcome for result in results] == [Outcome.DONE] * len(keys)
    assert log == [("begin", tuple((plan.key, plan.etag) for plan in plans)), ("delete_many", tuple(keys))]
    assert all(bucket.head(key) is None for key in keys)


async def test_concurrent_delete_steps_share_one_request(bucket: Bucket, calls: RecordingCalls, intend: Intents,
                                                         prefix: str, log: list[tuple[Any, ...]]) -> None:
    """Whole steps (verify, then wait for the batch): a full batch goes out at once, in one request."""
    keys = [f"{prefix}{i}.jpg" for i in range(5)]
    kept = prefix + "kept.jpg"
    bucket.put(kept, jpeg(40))
    plans = [planned(key, bucket.put(key, jpeg(30 + i)), Action.DELETE) for i, key in enumerate(keys)]
    begins = Begins(log)
    batcher = DeleteBatcher(calls, begins, max_keys=len(keys), linger_s=60)
    step = DeleteStep(calls, batcher)
    try:
        results = await asyncio.wait_for(asyncio.gather(*(step.run(plan, False, intend) for plan in plans)), 30)
    finally:
        await batcher.aclose()
    assert [result.outcome for result in results] == [Outcome.DONE] * len(keys)
    assert len(calls.sent("delete_many")) == 1 and sorted(calls.sent("delete_many")[0][1]) == sorted(keys)
    assert len(begins.batches()) == 1 and sorted(begins.batches()[0]) == sorted((p.key, p.etag) for p in plans)
    assert log.index(("begin", begins.batches()[0])) < log.index(calls.sent("delete_many")[0])
    assert all(bucket.head(key) is None for key in keys) and bucket.head(kept) is not None


async def test_a_batch_whose_intent_cannot_be_journaled_is_not_sent(bucket: Bucket, calls: RecordingCalls,
                                                                    prefix: str, log: list[tuple[Any, ...]]) -> None:
    keys = [f"{prefix}{i}.jpg" for i in range(3)]
    plans = [planned(key, bucket.put(key, jpeg(50 + i)), Action.DELETE) for i, key in enumerate(keys)]
    batcher = DeleteBatcher(calls, Begins(log, fail=True))
    try:
        outcomes = await asyncio.gather(*(batcher.delete(plan) for plan in plans), return_exceptions=True)
    finally:
        await batcher.aclose()
    assert all(isinstance(outcome, OSError) for outcome in outcomes)
    assert calls.sent("delete_many") == []
    assert all(bucket.etag(plan.key) == plan.etag for plan in plans)


# -- the operation: journal, step, journal --------------------------------------------------------


class NoStep:
    """A step that must not run."""

    action = Action.MOVE

    def __init__(self) -> None:
        self.ran = 0

    async def run(self, plan: PlannedAction, reconcile: bool, intend: Any) -> StepResult:
        self.ran += 1
        raise AssertionError("the step ran although the journal held the action as done")


def item_of(plan: PlannedAction) -> WorkItem:
    ref = ObjectRef(plan.bucket, plan.key, plan.etag, plan.size, None, prefix="plan.parquet",
                    storage_class=plan.storage_class)
    return WorkItem(ref, 1, record=PLAN_SCHEMA.to_record(plan))


@pytest.fixture
def checkpoint(tmp_path: Path):
    with Checkpoint.open(tmp_path / "act.ckpt", {"command": "filter"}, resume=False) as cp:
        yield cp


def done_row(plan: PlannedAction) -> ActionRow:
    return ActionRow(plan.bucket, plan.key, plan.etag, plan.size, plan.storage_class, plan.score, plan.action,
                     plan.destination, Outcome.DONE, 200, None, "from before the crash", "REQ-1", 2,
                     datetime(2026, 12, 1, 3, 0, tzinfo=UTC))


async def test_perform_reports_a_journaled_done_action_without_any_call(checkpoint: Checkpoint,
                                                                        calls: RecordingCalls, prefix: str) -> None:
    plan = planned(prefix + "a.jpg", md5_etag(b"a"), Action.MOVE, prefix + "quarantine/a.jpg")
    row = done_row(plan)
    checkpoint.journal.begin([(plan.key, plan.etag)], "move")
    checkpoint.journal.finish([(plan.key, plan.etag, "move", ACTION_SCHEMA.to_record(row))])
    step = NoStep()
    got = await ActionOperation({Action.MOVE: step, Action.TAG: TagStep(calls, "t", "v")},
                                checkpoint.journal).perform(item_of(plan))
    assert got == row
    assert step.ran == 0 and calls.log == []


async def test_perform_journals_the_intent_before_the_write_and_the_row_after(
        bucket: Bucket, checkpoint: Checkpoint, calls: RecordingCalls, prefix: str) -> None:
    key, destination = prefix + "a.jpg", prefix + "quarantine/a.jpg"
    plan = planned(key, bucket.put(key, jpeg(60)), Action.MOVE, destination)
    states: list[JournalState | None] = []
    journal = checkpoint.journal

    class Watching(MoveStep):
        async def run(self, plan: PlannedAction, reconcile: bool, intend: Any) -> StepResult:
            async def watched() -> None:
                await intend()
                states.append(journal.entries([(plan.key, plan.etag)])[(plan.key, plan.etag)].state)
            assert reconcile is False
            return await super().run(plan, reconcile, watched)

    operation = ActionOperation({Action.MOVE: Watching(calls)}, journal)
    row = await operation.perform(item_of(plan))
    assert row.outcome is Outcome.DONE and states == [JournalState.INTENT]
    assert bucket.head(key) is None and bucket.etag(destination) == plan.etag
    entry = journal.entries([(plan.key, plan.etag)])[(plan.key, plan.etag)]
    assert entry.state is JournalState.DONE and entry.row is not None
    # The journaled row is the report's row as a part file holds it (timestamps in milliseconds).
    assert ACTION_SCHEMA.to_record(row_from_record(entry.row)) == ACTION_SCHEMA.to_record(row)
    # Performed again (a resume before the row was committed): the journaled row, no call.
    sent = len(calls.log)
    again = await operation.perform(item_of(plan))
    assert ACTION_SCHEMA.to_record(again) == ACTION_SCHEMA.to_record(row)
    assert len(calls.log) == sent


async def test_perform_reconciles_when_the_journal_holds_an_intent(bucket: Bucket, checkpoint: Checkpoint,
                                                                   calls: RecordingCalls, prefix: str) -> None:
    """Crash after the move's source delete, before its outcome was journaled: done, with no write."""
    key, destination = prefix + "a.jpg", prefix + "quarantine/a.jpg"
    plan = planned(key, bucket.put(destination, jpeg(61)), Action.MOVE, destination)
    checkpoint.journal.begin([(plan.key, plan.etag)], "move")
    row = await ActionOperation({Action.MOVE: MoveStep(calls)}, checkpoint.journal).perform(item_of(plan))
    assert row.outcome is Outcome.DONE and row.error_message == "moved before the interruption"
    assert calls.writes() == []
    assert checkpoint.journal.entries([(plan.key, plan.etag)])[(plan.key, plan.etag)].state is JournalState.DONE


async def test_journal_decider_gives_rows_only_for_done_entries(checkpoint: Checkpoint) -> None:
    plans = [planned(f"d/{name}.jpg", md5_etag(name.encode()), Action.DELETE) for name in ("done", "intent", "none")]
    done, intent, _ = plans
    checkpoint.journal.finish([(done.key, done.etag, "delete", ACTION_SCHEMA.to_record(done_row(done)))])
    checkpoint.journal.begin([(intent.key, intent.etag)], "delete")
    refs = [item_of(plan).ref for plan in plans]
    other_version = ObjectRef(BUCKET, done.key, md5_etag(b"other"), 1, None)
    rows = await journal_decider(checkpoint.journal)([*refs, other_version], [None] * 4)
    assert rows == [done_row(done), None, None, None]


ODD_NAMES = ["图片/猫 照片.jpg", "p%41+%2B.jpg", "a&b<c>'\".jpg", "dir/space and+plus.jpg"]


async def test_a_batch_of_odd_keys_is_deleted_and_reported_done(bucket: Bucket, calls: RecordingCalls,
                                                                prefix: str, log: list[tuple[Any, ...]]) -> None:
    """The answer lists the deleted keys URL-encoded (encoding-type=url): each must match its plan."""
    keys = [prefix + name for name in ODD_NAMES]
    plans = [planned(key, bucket.put(key, jpeg(70 + i)), Action.DELETE) for i, key in enumerate(keys)]
    batcher = DeleteBatcher(calls, Begins(log))
    try:
        results = await asyncio.gather(*(batcher.delete(plan) for plan in plans))
    finally:
        await batcher.aclose()
    assert [(result.outcome, result.error_code) for result in results] == [(Outcome.DONE, None)] * len(keys)
    assert len(calls.sent("delete_many")) == 1
    assert all(bucket.head(key) is None for key in keys)


@pytest.mark.parametrize("name", ODD_NAMES)
async def test_a_move_of_an_odd_key_and_its_reconcile(bucket: Bucket, calls: RecordingCalls, intend: Intents,
                                                      prefix: str, name: str) -> None:
    key, destination = prefix + name, prefix + "quarantine/" + name
    etag = bucket.put(key, jpeg(80))
    result = await MoveStep(calls).run(planned(key, etag, Action.MOVE, destination), False, intend)
    assert result.outcome is Outcome.DONE
    assert bucket.head(key) is None and bucket.etag(destination) == etag
    again = await MoveStep(calls).run(planned(key, etag, Action.MOVE, destination), True, intend)
    assert again.outcome is Outcome.DONE and again.error_message == "moved before the interruption"
    assert len(calls.writes()) == 2 and intend.count == 1
