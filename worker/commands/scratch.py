"""Clearing a scratch prefix: every object under it, 1,000 keys per DeleteMultipleObjects.

``picscore thumbnails --scorer oss`` puts each frame under one prefix per run and deletes it
once scored; what a crash (or a failed delete) left behind is cleared here, before the run
starts (so a resumed run removes the crashed run's leftovers) and after it ends.
Best effort: a failure is logged and left for the next run, never fatal to this one.
"""

from __future__ import annotations

import alibabacloud_oss_v2 as oss
import structlog
from alibabacloud_oss_v2.aio import AsyncClient
from alibabacloud_oss_v2.models import object_basic

__all__ = ["delete_prefix"]

log = structlog.get_logger("picscore.scratch")
_BATCH = 1000  # DeleteMultipleObjects' limit


async def delete_prefix(client: AsyncClient, bucket: str, prefix: str) -> int:
    """Delete every object under ``prefix`` (which must be non-empty); returns how many."""
    if not prefix:
        raise ValueError("refusing to clear an empty prefix: that is the whole bucket")
    removed = 0
    try:
        while True:
            listed = await client.list_objects_v2(oss.ListObjectsV2Request(bucket=bucket, prefix=prefix,
                                                                           max_keys=_BATCH))
            keys = [entry.key for entry in (listed.contents or []) if entry.key.startswith(prefix)]
            if not keys:
                return removed
            await client.delete_multiple_objects(oss.DeleteMultipleObjectsRequest(
                bucket=bucket, delete=object_basic.Delete(
                    objects=[object_basic.ObjectIdentifier(key=key) for key in keys], quiet=True)))
            removed += len(keys)
    except oss.exceptions.BaseError as exc:
        log.warning("scratch_not_cleared", prefix=prefix, removed=removed, error=str(exc).splitlines()[0])
        return removed
