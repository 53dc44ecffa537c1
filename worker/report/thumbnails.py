"""Thumbnails of the worst and best images, and links to them, through the OSS API.

Each thumbnail is one GetObject with ``x-oss-process=image/resize,m_lfit,w_N,h_N/format,jpg``
(OSS "Resize images": https://www.alibabacloud.com/help/en/oss/user-guide/resize-images-4), so
the service sends a few KB instead of the whole image, whatever its size or format (HEIC too),
and the page embeds it as a ``data:`` URI. On ``picscore serve`` the same call is answered by its
``image/resize`` subset: one code path for both, and a page made against the embedded server
shows what one made against OSS would. (A ranged download resized locally would need the whole
file for most JPEGs anyway: a prefix of a baseline JPEG is the top of the picture.)

Bounds: one call per image shown (``2 × --examples`` at most, plus the retry policy's retries),
at most :data:`CONCURRENCY` at once, and a thumbnail over :data:`MAX_THUMBNAIL_BYTES` or not a
JPEG/PNG/WebP is left out with a note, so the page's size is bounded whatever the service sends.
Every call carries ``If-Match`` with the ETag the audit scored: a thumbnail is of the version
that was scored, and an image replaced since shows a note instead.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
from collections.abc import Sequence
from datetime import timedelta
from urllib.parse import quote, urlsplit

import alibabacloud_oss_v2 as oss
from alibabacloud_oss_v2.aio import AsyncClient
from alibabacloud_oss_v2.types import OperationInput

from ..actions.object_calls import quoted
from ..batch.calls import PacedCaller
from ..oss.client import needs_path_style
from ..oss.score_contract import PROCESS_PARAMETER
from .summary import Example

__all__ = ["thumbnail_process", "fetch_thumbnails", "plain_link", "presigned_links", "CONCURRENCY",
           "MAX_THUMBNAIL_BYTES", "THUMBNAIL_PX", "LINK_MODES"]

#: The longest side of a thumbnail, in CSS pixels (160 px shows detail on a 2x phone at 80 px).
THUMBNAIL_PX = 160
#: Calls in flight at once: a report is a handful of calls; no need to press the service.
CONCURRENCY = 4
#: A thumbnail larger than this is not embedded (160 px JPEGs are 5-15 KB).
MAX_THUMBNAIL_BYTES = 96 * 1024
#: ``--links``: presigned GET URLs, plain object URLs (public-read buckets), or none.
LINK_MODES = ("presign", "plain", "none")
_MAGIC = {b"\xff\xd8\xff": "image/jpeg", b"\x89PNG\r\n\x1a\n": "image/png"}


def thumbnail_process(px: int = THUMBNAIL_PX) -> str:
    """The ``x-oss-process`` value of one thumbnail: fit in ``px`` × ``px``, never enlarged, JPEG."""
    return f"image/resize,m_lfit,w_{px},h_{px},limit_1/format,jpg"


def _image_type(data: bytes) -> str | None:
    """The type of an embeddable image from its first bytes (never from a header a server sent)."""
    for magic, kind in _MAGIC.items():
        if data.startswith(magic):
            return kind
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


async def _one(client: AsyncClient, caller: PacedCaller, example: Example, process: str) -> Example:
    request = OperationInput(op_name="GetObject", method="GET", bucket=example.bucket, key=example.key,
                             headers={"If-Match": quoted(example.etag)} if example.etag else {},
                             parameters={PROCESS_PARAMETER: process})

    async def read() -> bytes:
        output = await client.invoke_operation(request)
        response = output.http_response
        return bytes(response.content if response.is_stream_consumed else await response.read())

    outcome = await caller.call(read)
    if outcome.failure is not None:
        failure = outcome.failure
        note = ("replaced since the audit" if failure.code == "PreconditionFailed"
                else f"no thumbnail: {failure.http_status or ''} {failure.code}".replace("  ", " "))
        return dataclasses.replace(example, thumbnail_note=note)
    data = outcome.value or b""
    kind = _image_type(data)
    if kind is None:
        return dataclasses.replace(example, thumbnail_note="no thumbnail: the answer was not an image")
    if len(data) > MAX_THUMBNAIL_BYTES:
        return dataclasses.replace(example, thumbnail_note=f"no thumbnail: {len(data):,} bytes is over the bound")
    uri = f"data:{kind};base64,{base64.b64encode(data).decode('ascii')}"
    return dataclasses.replace(example, thumbnail=uri)


async def fetch_thumbnails(client: AsyncClient, caller: PacedCaller, examples: Sequence[Example],
                           px: int = THUMBNAIL_PX) -> list[Example]:
    """``examples`` with their thumbnails (or a note saying why not), one call each, in order."""
    gate = asyncio.Semaphore(CONCURRENCY)
    process = thumbnail_process(px)

    async def bounded(example: Example) -> Example:
        async with gate:
            return await _one(client, caller, example, process)

    return list(await asyncio.gather(*(bounded(e) for e in examples)))


def plain_link(endpoint: str, bucket: str, key: str) -> str:
    """The object's unsigned URL (opens for public-read buckets): virtual-hosted, or path style
    where the endpoint cannot carry a bucket sub-domain (an IP address, ``localhost``)."""
    parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
    path = quote(key, safe="/~")
    if needs_path_style(endpoint):
        return f"{parts.scheme}://{parts.netloc}/{quote(bucket)}/{path}"
    return f"{parts.scheme}://{bucket}.{parts.netloc}/{path}"


async def presigned_links(client: AsyncClient, examples: Sequence[Example], expires: timedelta) -> list[Example]:
    """``examples`` with presigned GET URLs valid for ``expires`` (computed locally: no call)."""
    out = []
    for example in examples:
        result = await client.presign(oss.GetObjectRequest(bucket=example.bucket, key=example.key), expires=expires)
        out.append(dataclasses.replace(example, link=result.url))
    return out
