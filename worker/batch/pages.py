"""What every source does with a page it has read: the one place that decides what is offered.

A source reads pages (a ListObjectsV2 page, a slice of a results file) and hands each to
:meth:`PageOffer.offer`, which counts it, keeps this shard's objects that the checkpoint does
not hold yet, opens the page in the resume ledger (so its token only moves once all of them are
written), lets the command decide the rows it can without a call (skips) and queues the rest.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..results.schema import ObjectRef
from .items import OutcomeRow, WorkItem
from .ledger import ResumeLedger

__all__ = ["PageOffer", "AlreadyDone", "Decide", "nothing_decided"]

#: Which of a page's (key, etag) pairs already have a committed row (the checkpoint's lookup).
AlreadyDone = Callable[[list[tuple[str, str]]], Awaitable[set[tuple[str, str]]]]
#: For each object of a page (and its input record, for a results-file source), its row when the
#: command can decide it without a call (a skip), else None.
Decide = Callable[[list[ObjectRef], list[Mapping[str, Any] | None]], Awaitable[Sequence[OutcomeRow | None]]]


async def nothing_decided(refs: list[ObjectRef], records: list[Mapping[str, Any] | None]) -> list[None]:
    return [None] * len(refs)


@dataclass(frozen=True)
class PageOffer:
    """The filters every source applies to its pages, and where it reports what it read."""

    already_done: AlreadyDone
    in_shard: Callable[[str], bool] = lambda key: True
    decide: Decide = nothing_decided
    on_listed: Callable[[int], None] = lambda n: None

    async def offer(self, queue: asyncio.Queue[WorkItem | None], ledger: ResumeLedger, stream: str,
                    refs: list[ObjectRef], next_token: str | None,
                    records: Sequence[Mapping[str, Any]] | None = None) -> None:
        """Queue the page's objects still to do, under one ledger page resuming at ``next_token``."""
        self.on_listed(len(refs))
        mine = [i for i, ref in enumerate(refs) if self.in_shard(ref.key)]
        done = await self.already_done([(refs[i].key, refs[i].etag) for i in mine]) if mine else set()
        todo = [i for i in mine if (refs[i].key, refs[i].etag) not in done]
        page = ledger.open_page(stream, len(todo), next_token)
        if not todo:
            return
        todo_refs = [refs[i] for i in todo]
        todo_records = [records[i] for i in todo] if records is not None else [None] * len(todo)
        decided = await self.decide(todo_refs, todo_records)
        for ref, record, row in zip(todo_refs, todo_records, decided, strict=True):
            await queue.put(WorkItem(ref, page, row, record))
