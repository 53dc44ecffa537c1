"""The OSS calls ``picscore thumbnails`` sends for one video, each paced and retried.

Every read of the video carries ``If-Match`` with the ETag the listing reported, so the header,
the frames and the decision all come from one version of the video: a video replaced during
the run answers 412 PreconditionFailed instead of mixing frames of two uploads
(GetObject's conditional headers: https://www.alibabacloud.com/help/en/oss/developer-reference/getobject).

Reads go through the SDK's generic ``invoke_operation`` (the same signing, transport and error
handling as ``get_object``), and return the body's bytes: a ranged header block or a snapshot
image, both small.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import alibabacloud_oss_v2 as oss
from alibabacloud_oss_v2.aio import AsyncClient
from alibabacloud_oss_v2.types import OperationInput

from ..actions.object_calls import quoted
from ..batch.calls import CallOutcome, PacedCaller
from ..oss.score_contract import PROCESS_PARAMETER, REQUEST_ID_HEADER
from ..oss.snapshot_contract import SnapshotSpec, snapshot_process
from .image_score import ScoreResponse, invoke_score

__all__ = ["VideoCalls", "Body"]


@dataclass(frozen=True)
class Body:
    """A read's answer: its bytes, content type and request id."""

    data: bytes
    content_type: str | None
    request_id: str | None


async def _read(client: AsyncClient, request: OperationInput) -> Body:
    output = await client.invoke_operation(request)
    response = output.http_response
    data = response.content if response.is_stream_consumed else await response.read()
    headers = output.headers or {}
    return Body(bytes(data or b""), headers.get("Content-Type"), headers.get(REQUEST_ID_HEADER) or None)


class VideoCalls:
    """One call per method; each returns the call's outcome and never raises (but
    :class:`~worker.oss.retry.AuthenticationFailed`, which stops the command)."""

    def __init__(self, client: AsyncClient, caller: PacedCaller) -> None:
        self.client = client
        self.caller = caller

    async def ranged(self, bucket: str, key: str, etag: str, start: int, end: int) -> CallOutcome[Body]:
        """GetObject of bytes ``start``-``end`` (inclusive) of that version of the object."""
        headers = {"Range": f"bytes={start}-{end}", "If-Match": quoted(etag)}
        request = OperationInput(op_name="GetObject", method="GET", bucket=bucket, key=key, headers=headers)
        return await self.caller.call(lambda: _read(self.client, request))

    async def snapshot(self, bucket: str, key: str, etag: str, spec: SnapshotSpec) -> CallOutcome[Body]:
        """GetObject with ``x-oss-process=video/snapshot,…`` of that version of the video (billed per call)."""
        request = OperationInput(op_name="GetObject", method="GET", bucket=bucket, key=key,
                                 headers={"If-Match": quoted(etag)},
                                 parameters={PROCESS_PARAMETER: snapshot_process(spec)})
        return await self.caller.call(lambda: _read(self.client, request))

    async def put(self, bucket: str, key: str, data: bytes, content_type: str,
                  metadata: Mapping[str, str] | None = None) -> CallOutcome[Any]:
        """PutObject of ``data``."""
        request = oss.PutObjectRequest(bucket=bucket, key=key, body=data, content_type=content_type,
                                       metadata=dict(metadata or {}))
        return await self.caller.call(lambda: self.client.put_object(request))

    async def score(self, bucket: str, key: str) -> CallOutcome[ScoreResponse]:
        """GetObject with ``x-oss-process=image/score`` (billed per call)."""
        return await self.caller.call(lambda: invoke_score(self.client, bucket, key))

    async def delete(self, bucket: str, key: str) -> CallOutcome[Any]:
        """DeleteObject (204 whether or not the key existed)."""
        request = oss.DeleteObjectRequest(bucket=bucket, key=key)
        return await self.caller.call(lambda: self.client.delete_object(request))

    async def head(self, bucket: str, key: str, etag: str) -> CallOutcome[Any]:
        """HeadObject with ``If-Match``: 412 when the object is no longer that version."""
        request = oss.HeadObjectRequest(bucket=bucket, key=key, if_match=quoted(etag))
        return await self.caller.call(lambda: self.client.head_object(request))
