"""The OSS operations the act phase sends, each one paced and retried call through the SDK.

Thin on purpose: each method builds one request of ``alibabacloud_oss_v2`` and sends it through
the engine's :class:`~worker.batch.calls.PacedCaller`, which owns the rate limit, retries (5xx,
429, timeouts; never 4xx) and throttle feedback, and returns a
:class:`~worker.batch.calls.CallOutcome`. Deciding what an answer *means* for an action is the
job of :mod:`.steps`.

Guards are the service's own conditional requests, so a decision taken on a results row never
applies to a different version of the object: CopyObject with ``x-oss-copy-source-if-match``
(https://www.alibabacloud.com/help/en/oss/developer-reference/copyobject) and HeadObject with
``If-Match`` (https://www.alibabacloud.com/help/en/oss/developer-reference/headobject) answer
412 PreconditionFailed when the ETag differs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import alibabacloud_oss_v2 as oss
from alibabacloud_oss_v2.models import object_basic

from ..batch.calls import CallOutcome, PacedCaller

__all__ = ["ObjectCalls", "quoted", "tags_of", "MAX_TAGS"]

#: OSS keeps at most 10 tags per object
#: (https://www.alibabacloud.com/help/en/oss/user-guide/object-tagging-8).
MAX_TAGS = 10


def quoted(etag: str) -> str:
    """An ETag as conditional headers carry it (results store it without quotes)."""
    return etag if etag.startswith('"') else f'"{etag}"'


class ObjectCalls:
    """One bucket-facing call per method; every method returns the call's outcome, never raises
    (but :class:`~worker.oss.retry.AuthenticationFailed`, which stops the command)."""

    def __init__(self, client: oss.aio.AsyncClient, caller: PacedCaller) -> None:
        self.client = client
        self.caller = caller

    async def head(self, bucket: str, key: str, etag: str | None = None) -> CallOutcome[Any]:
        """HeadObject; with ``etag``, 412 when the object is another version."""
        request = oss.HeadObjectRequest(bucket=bucket, key=key, if_match=quoted(etag) if etag else None)
        return await self.caller.call(lambda: self.client.head_object(request))

    async def copy(self, bucket: str, source_key: str, etag: str, destination: str, *,
                   storage_class: str | None = None, forbid_overwrite: bool = False) -> CallOutcome[Any]:
        """CopyObject within ``bucket``, guarded by the source's ETag; metadata and tags are copied
        (the COPY directives), so the destination is the source byte for byte, metadata included."""
        request = oss.CopyObjectRequest(
            bucket=bucket, key=destination, source_bucket=bucket, source_key=source_key, if_match=quoted(etag),
            metadata_directive="COPY", tagging_directive="Copy", storage_class=storage_class,
            forbid_overwrite=True if forbid_overwrite else None)
        return await self.caller.call(lambda: self.client.copy_object(request))

    async def delete(self, bucket: str, key: str) -> CallOutcome[Any]:
        """DeleteObject (204 whether or not the key existed, as OSS answers)."""
        request = oss.DeleteObjectRequest(bucket=bucket, key=key)
        return await self.caller.call(lambda: self.client.delete_object(request))

    async def delete_many(self, bucket: str, keys: Sequence[str]) -> CallOutcome[Any]:
        """DeleteMultipleObjects, at most 1,000 keys, not quiet (the answer lists each deleted key).
        The SDK computes the Content-MD5 that OSS requires of this request."""
        if not 0 < len(keys) <= 1000:
            raise ValueError(f"DeleteMultipleObjects takes 1 to 1000 keys, not {len(keys)}")
        request = oss.DeleteMultipleObjectsRequest(bucket=bucket, delete=object_basic.Delete(
            objects=[object_basic.ObjectIdentifier(key=key) for key in keys], quiet=False))
        return await self.caller.call(lambda: self.client.delete_multiple_objects(request))

    async def get_tags(self, bucket: str, key: str) -> CallOutcome[Any]:
        """GetObjectTagging; the value's ``tag_set.tags`` lists the object's tags."""
        request = oss.GetObjectTaggingRequest(bucket=bucket, key=key)
        return await self.caller.call(lambda: self.client.get_object_tagging(request))

    async def put_tags(self, bucket: str, key: str, tags: Mapping[str, str]) -> CallOutcome[Any]:
        """PutObjectTagging: replaces the object's whole tag set with ``tags``."""
        tagging = object_basic.Tagging(tag_set=object_basic.TagSet(
            tags=[object_basic.Tag(key=name, value=value) for name, value in tags.items()]))
        request = oss.PutObjectTaggingRequest(bucket=bucket, key=key, tagging=tagging)
        return await self.caller.call(lambda: self.client.put_object_tagging(request))


def tags_of(result: Any) -> dict[str, str]:
    """The tags of a GetObjectTagging result, in order."""
    tag_set = getattr(result, "tag_set", None)
    return {tag.key: tag.value or "" for tag in (getattr(tag_set, "tags", None) or [])}
