"""AppendObject: ``POST /<key>?append&position=N`` (OSS documentation,
https://www.alibabacloud.com/help/en/oss/developer-reference/appendobject, and "Append upload",
https://www.alibabacloud.com/help/doc-detail/94412.htm).

* The first append (``position=0`` on a key that does not exist) creates an **Appendable**
  object; its Content-Type, ``x-oss-meta-*``, storage class, tags and standard headers are
  those of that first request and are kept by every later append.
* Each later append must give ``position`` equal to the object's current length; otherwise
  ``409 PositionNotEqualToLength`` (EC 0026-00000016), with the right position in
  ``x-oss-next-append-position``.
* A Normal (PutObject, CopyObject), Multipart or Symlink object cannot be appended to:
  ``409 ObjectNotAppendable``. A PutObject over an Appendable object makes it Normal.
* ``position`` missing: ``400 MissingArgument`` (EC 0016-00000501); not a number: ``400 InvalidArgument``.
* The response carries ``x-oss-next-append-position`` (the new length) and
  ``x-oss-hash-crc64ecma``, the CRC-64 of the **whole** object so far — what the SDKs check
  when they combine the CRC of what they appended with the previous one (oss2 ``init_crc``).
* ``Content-MD5``, when sent, is of this request's bytes; a mismatch is ``400 InvalidDigest``.
* ETag: OSS's ETag of an Appendable object is an opaque value, not an MD5 of anything clients
  can check. This server uses the MD5 of the whole object so far (quoted, upper case): stable
  for given bytes, and different after every append of at least one byte.

Crash safety: an append never changes the object's file in place. The old bytes and the new
ones are written to a temporary file in the store's temporary area, fsynced and renamed over
the key with its new metadata (:class:`~worker.server.storage.PendingWrite`, as PutObject), so
a crash or a ``kill -9`` leaves either the object before the append or the object after it.
Appends to one key are serialised (a lock per key), so two appends at the same position cannot
both succeed: the second sees the new length and gets 409. A PutObject racing with an append is
not serialised with it: one replaces the other whole, as two PutObjects do.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from .bucket_admin import default_storage_class
from .call import Call
from .checksums import parse_content_md5
from .errors import OSSError
from .object_attrs import standard_headers, storage_class, user_metadata
from .object_kinds import object_type
from .storage import LocalStore, ObjectHandle, ObjectMeta, PendingWrite
from .tagging import request_tags

__all__ = ["AppendObject", "NEXT_POSITION_HEADER"]

NEXT_POSITION_HEADER = "x-oss-next-append-position"


def _position(call: Call) -> int:
    text = call.query.get("position")
    if text is None:
        raise OSSError(400, "MissingArgument", "The position parameter of AppendObject is missing.",
                       "0016-00000501", {"ArgumentName": "position"})
    if not text.isdigit() or len(text) > 19:
        raise OSSError.invalid_argument("position must be a non-negative integer.",
                                        ArgumentName="position", ArgumentValue=text[:64])
    return int(text)


def _wrong_position(length: int) -> OSSError:
    return OSSError(409, "PositionNotEqualToLength", "Position is not equal to file length",
                    "0026-00000016", headers={NEXT_POSITION_HEADER: str(length)})


class AppendObject:
    """AppendObject over one store; keeps the per-key locks that serialise appends."""

    def __init__(self, store: LocalStore) -> None:
        self.store = store
        self._locks: dict[tuple[str, str], tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def _key_lock(self, bucket: str, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get((bucket, key), (asyncio.Lock(), 0))
        self._locks[(bucket, key)] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[(bucket, key)]
            if users == 1:
                del self._locks[(bucket, key)]
            else:
                self._locks[(bucket, key)] = (lock, users - 1)

    async def __call__(self, call: Call) -> web.StreamResponse:
        assert call.bucket is not None and call.key is not None
        bucket, key = call.bucket, call.key
        position = _position(call)
        expected_md5 = parse_content_md5(call.header("Content-MD5"))
        async with self._key_lock(bucket, key):
            handle = await asyncio.to_thread(self._open_existing, bucket, key)
            try:
                length = handle.meta.size if handle else 0
                if handle is not None and object_type(handle.meta) != "Appendable":
                    raise OSSError(409, "ObjectNotAppendable", "The object is not appendable")
                if position != length:
                    raise _wrong_position(length)
                if handle is None:  # the first append: what this request says, checked before any byte is read
                    klass = storage_class(call, default_storage_class(self.store, bucket))  # the bucket's by default
                    first = (call.header("Content-Type") or None, user_metadata(call), klass,
                             request_tags(call), standard_headers(call))
                else:
                    old = handle.meta
                    first = (old.content_type, dict(old.user_meta), old.storage_class, dict(old.tags),
                             dict(old.headers))
                pending = await asyncio.to_thread(self.store.begin_put, bucket, key)
                try:
                    if handle is not None:
                        await asyncio.to_thread(_copy_old, handle, pending)
                    added = hashlib.md5()
                    async for chunk in call.request.content.iter_chunked(1 << 20):
                        pending.write(chunk)
                        added.update(chunk)
                except BaseException:
                    pending.abort()
                    raise
            finally:
                if handle is not None:
                    handle.close()
            if expected_md5 is not None and expected_md5 != added.digest():
                pending.abort()
                raise OSSError(400, "InvalidDigest", "The Content-MD5 you specified did not match what we received.",
                               "0002-00000019")
            content_type, meta_user, klass, tags, headers = first
            pending.attrs = {"object_type": "Appendable"}
            meta: ObjectMeta = await asyncio.to_thread(
                lambda: pending.commit(content_type, meta_user, None, False, storage_class=klass, tags=tags,
                                       headers=headers))
        return web.Response(status=200, headers={
            "ETag": meta.etag,
            "Content-MD5": base64.b64encode(added.digest()).decode("ascii"),
            "x-oss-hash-crc64ecma": meta.crc64,
            NEXT_POSITION_HEADER: str(meta.size),
        })

    def _open_existing(self, bucket: str, key: str) -> ObjectHandle | None:
        try:
            return self.store.open(bucket, key)
        except OSSError as exc:
            if exc.code == "NoSuchKey":
                return None
            raise


def _copy_old(handle: ObjectHandle, pending: PendingWrite) -> None:
    """The object's current bytes, from the descriptor its metadata was read with. Blocking."""
    for chunk in handle.iter_chunks():
        pending.write(chunk)
    if (pending.digest.size, pending.digest.etag) != (handle.meta.size, handle.meta.etag):
        # rewritten in place under the descriptor (not through this server): retryable
        raise OSSError(500, "InternalError", "The object changed while it was appended to; please retry.")
