"""What flows between the engine's stages, and the two roles a command plugs into it.

A *source* puts :class:`WorkItem` s on the bounded work queue; an *operation* turns each item
into one outcome row. A command is a source, an operation and a row schema
(:mod:`worker.commands`); the engine (:mod:`worker.batch.engine`) does everything else.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ..results.schema import KeyedRow, ObjectRef
from .ledger import ResumeLedger

__all__ = ["WorkItem", "Source", "Operation", "OutcomeRow"]


class OutcomeRow(KeyedRow, Protocol):
    """What the engine reads of any row: its object version (what the checkpoint keys), its
    status, its score if any."""

    status: Any  # a StrEnum whose value is the status label
    score: float | None
    error_code: str | None
    http_status: int | None


@dataclass(frozen=True)
class WorkItem:
    """One object on its way through the engine, with the ledger page it belongs to.

    ``row`` is already decided when the source could decide it (a skipped object never reaches
    an operation). ``record`` is the input row when the source is a results file."""

    ref: ObjectRef
    page: int
    row: OutcomeRow | None = None
    record: Mapping[str, Any] | None = None


class Source(Protocol):
    """Lists the objects to act on into ``queue``, opening one ledger page per batch it puts."""

    #: The resume streams (listed prefixes, input files), in order: the checkpoint keys positions by them.
    streams: tuple[str, ...]
    #: What the source reads, for messages ("bucket 'photos'", "the results file(s) a.parquet").
    description: str

    async def run(self, queue: asyncio.Queue[WorkItem | None], ledger: ResumeLedger) -> None:
        """Put every item (to the end, or to cancellation); never the end sentinel."""


class Operation(Protocol):
    """Does one OSS operation for one item and classifies how it ended into a row.

    Raises :class:`~worker.oss.retry.AuthenticationFailed` to stop the whole command; every
    other outcome, failures included, is a row."""

    async def perform(self, item: WorkItem) -> OutcomeRow: ...
