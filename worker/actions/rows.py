"""The two row kinds of the act phase: the plan (what is to be done) and the completion report
(what was done), each declared once as a :class:`~worker.results.schema.RowSchema` so both read
and write as Parquet, CSV or JSON Lines.

The completion report follows S3 Batch Operations' (one row per object: the object, the
operation, how it ended, the HTTP status and request id), and it is also the *undo manifest* of a
move: each ``done`` move row names the quarantine key that holds the object's bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from ..results.schema import RowSchema

__all__ = ["Action", "Outcome", "PlannedAction", "ActionRow", "PLAN_SCHEMA", "ACTION_SCHEMA"]


class Action(StrEnum):
    """What is done to one object."""

    TAG = "tag"          # add a tag, keep the others (PutObjectTagging)
    COPY = "copy"        # copy to ``destination`` (CopyObject), the source stays
    MOVE = "move"        # copy to ``destination``, then delete the source
    ARCHIVE = "archive"  # copy onto itself in another storage class
    DELETE = "delete"    # DeleteMultipleObjects
    RESTORE = "restore"  # undo of a move: copy ``destination`` back to ``key``, then delete it


class Outcome(StrEnum):
    """How one object's action ended. Only ``failed`` counts against the failure threshold:
    ``changed`` and ``missing`` are the guards working (the object is not the one decided on)."""

    DONE = "done"        # the action took effect (or had already, when a resume reconciled it)
    CHANGED = "changed"  # the object's ETag is not the one in the results: left alone
    MISSING = "missing"  # the object is gone: nothing to act on
    FAILED = "failed"    # refused (403…) or retries ran out; see error_code


@dataclass(frozen=True)
class PlannedAction:
    """One row of the plan: an object version and what is to be done to it."""

    bucket: str
    key: str
    etag: str
    size: int
    storage_class: str | None
    score: float | None
    action: Action
    destination: str | None = None  # the key copied or moved to (copy, move, restore)


PLAN_SCHEMA = RowSchema({
    "bucket": "str", "key": "str", "etag": "str", "size": "int", "storage_class": "str", "score": "float",
    "action": "str", "destination": "str",
})


@dataclass
class ActionRow:
    """One row of the completion report."""

    bucket: str
    key: str
    etag: str
    size: int
    storage_class: str | None
    score: float | None
    action: Action
    destination: str | None
    outcome: Outcome
    http_status: int | None = None
    error_code: str | None = None
    error_message: str | None = None
    request_id: str | None = None
    attempts: int = 0
    acted_at: datetime | None = None

    @property
    def status(self) -> Outcome:
        """The engine's name for a row's outcome (tally, metrics)."""
        return self.outcome


ACTION_SCHEMA = RowSchema({
    "bucket": "str", "key": "str", "etag": "str", "size": "int", "storage_class": "str", "score": "float",
    "action": "str", "destination": "str", "outcome": "str", "http_status": "int", "error_code": "str",
    "error_message": "str", "request_id": "str", "attempts": "int", "acted_at": "ts",
})
