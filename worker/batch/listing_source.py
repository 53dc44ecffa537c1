"""The listing source: ListObjectsV2 over each prefix, one ledger page per listed page.

Listing goes through the SDK's async paginator over a client wrapper that retries each page
with the same policy as every other call (the SDK's own retryer is off). Every work item
carries its page, so the engine can tell when a page is completely written and move that
prefix's resume token past it (see :mod:`.ledger`).

Memory stays bounded however large the bucket: one page in hand, and a queue of fixed size
between the source and the consumers (``await queue.put`` waits when consumers lag).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC

import alibabacloud_oss_v2 as oss
from alibabacloud_oss_v2.aio.paginator import AsyncListObjectsV2Paginator

from ..results.schema import ObjectRef
from .items import WorkItem
from .ledger import ResumeLedger
from .pages import PageOffer

__all__ = ["ListingSource", "PAGE_SIZE", "MIN_PAGE_SIZE", "page_size_for"]

#: ListObjectsV2's maximum page.
PAGE_SIZE = 1000
#: The smallest page :func:`page_size_for` asks for.
MIN_PAGE_SIZE = 100

def page_size_for(concurrency: int) -> int:
    """ListObjectsV2 page size for ``concurrency`` consumers: 8 objects per consumer, 100..1000.

    Why not always 1000: the SDK turns a page into models in one go, on the event loop, so a
    large page stalls every request in flight while it is parsed. Smaller pages make the stalls
    proportionally shorter; 8 per consumer still keeps the work queue (4 per consumer) full
    between pages, and listing requests cost little next to one call per object.
    """
    return max(MIN_PAGE_SIZE, min(PAGE_SIZE, 8 * concurrency))


class _RetryingLister:
    """Gives the SDK paginator a ``list_objects_v2`` that retries like every other call."""

    def __init__(self, client: oss.aio.AsyncClient, retry: Callable[[Callable[[], Awaitable]], Awaitable]) -> None:
        self._client = client
        self._retry = retry

    async def list_objects_v2(self, request: oss.ListObjectsV2Request, **kwargs) -> oss.ListObjectsV2Result:
        return await self._retry(lambda: self._client.list_objects_v2(request, **kwargs))


class ListingSource:
    """Lists ``prefixes`` of ``bucket``; ``pages`` keeps this shard's objects that are not done yet."""

    def __init__(self, client: oss.aio.AsyncClient, bucket: str, prefixes: Sequence[str],
                 retry: Callable[[Callable[[], Awaitable]], Awaitable], pages: PageOffer, *,
                 page_size: int = PAGE_SIZE) -> None:
        self._lister = _RetryingLister(client, retry)
        self.bucket = bucket
        self.streams = tuple(prefixes)
        self.description = f"bucket {bucket!r}"
        self.pages = pages
        self.page_size = page_size

    async def run(self, queue: asyncio.Queue[WorkItem | None], ledger: ResumeLedger) -> None:
        """List every prefix to the end (or to cancellation). Never puts the end sentinel itself."""
        for prefix in self.streams:
            token, finished = ledger.resume_point(prefix)
            if not finished:
                await self._list_prefix(prefix, token, queue, ledger)

    async def _list_prefix(self, prefix: str, token: str | None, queue: asyncio.Queue[WorkItem | None],
                           ledger: ResumeLedger) -> None:
        request = oss.ListObjectsV2Request(bucket=self.bucket, prefix=prefix or None, max_keys=self.page_size,
                                           continuation_token=token or None)
        paginator = AsyncListObjectsV2Paginator(self._lister)
        async for result in paginator.iter_page(request):
            refs = [self._ref(obj, prefix) for obj in result.contents or []]
            next_token = result.next_continuation_token if result.is_truncated else None
            await self.pages.offer(queue, ledger, prefix, refs, next_token)
        ledger.close_stream(prefix)

    def _ref(self, obj: oss.models.ObjectProperties, prefix: str) -> ObjectRef:
        modified = obj.last_modified
        if modified is not None and modified.tzinfo is None:
            modified = modified.replace(tzinfo=UTC)
        return ObjectRef(self.bucket, obj.key, (obj.etag or "").strip('"'), int(obj.size or 0), modified, prefix,
                         obj.storage_class or None)
