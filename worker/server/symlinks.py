"""Symbolic links: PutSymlink (``PUT /<key>?symlink``), GetSymlink (``GET /<key>?symlink``), and
GetObject / HeadObject / image processing through a symlink (OSS documentation: PutSymlink,
https://help.aliyun.com/en/oss/developer-reference/putsymlink; GetSymlink,
https://help.aliyun.com/en/oss/developer-reference/getsymlink).

* PutSymlink takes the target key in ``x-oss-symlink-target`` (missing: ``400 MissingArgument``,
  EC 0043-00000001), URL-decoded (oss2 URL-encodes it; a plain key decodes to itself), plus
  ``x-oss-meta-*``, ``x-oss-storage-class``, ``x-oss-tagging`` and ``x-oss-forbid-overwrite``
  (409 FileAlreadyExists). The target is not checked: it need not exist.
* A symlink is stored as an object with an empty file and metadata that mark it
  (``object_type`` ``Symlink``, ``symlink_target``): listings show it as its own 0-byte object,
  DeleteObject deletes the link (never the target), a PutObject over it replaces it.
* GetSymlink answers ``x-oss-symlink-target`` (URL-encoded, as oss2 expects to decode it), the
  link's ETag, Last-Modified and ``x-oss-meta-*``; on an object that is not a symlink
  ``400 NotSymlink`` (EC 0043-00000101); on a missing key 404 NoSuchKey.
* GetObject, HeadObject and image processing follow the link, once: the body is the target's;
  Content-Length, ETag and CRC-64 are the target's, Last-Modified the later of the two, and the
  other headers (Content-Type, user metadata, tags) the link's, with ``x-oss-object-type:
  Symlink`` — the split OSS documents for GetObject on a symlink. The storage class and restore
  state reported are the target's, because they decide whether its bytes can be read. A missing
  target is ``404 SymlinkTargetNotExist`` (EC 0026-00000012); a target that is itself a symlink
  is not followed: ``400 InvalidTargetType``. GetObjectMeta (``HEAD ?objectMeta``) and
  GetObjectTagging follow the link too here (OSS documents GetObjectMeta as describing the link).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from email.utils import formatdate
from urllib.parse import quote, unquote

from aiohttp import web

from .bucket_admin import default_storage_class
from .call import Call
from .errors import OSSError
from .keys import validate_key
from .object_attrs import storage_class, user_metadata
from .storage import LocalStore, ObjectHandle, ObjectMeta
from .tagging import request_tags

__all__ = ["TARGET_HEADER", "put_symlink", "get_symlink", "open_following", "head_following",
           "readable_path_following"]

TARGET_HEADER = "x-oss-symlink-target"


def _target_missing(key: str) -> OSSError:
    return OSSError(404, "SymlinkTargetNotExist", "The symlink target object does not exist.", "0026-00000012",
                    {"Key": key[:200]})


def _follow(store: LocalStore, bucket: str, link: ObjectMeta) -> ObjectHandle:
    """The target of ``link``, open; the errors OSS gives for a dangling or chained link."""
    try:
        target = store.open(bucket, link.symlink_target)
    except OSSError as exc:
        if exc.code == "NoSuchKey":
            raise _target_missing(link.symlink_target) from None
        raise
    if target.meta.object_type == "Symlink":
        target.close()
        raise OSSError(400, "InvalidTargetType", "The symlink target object is itself a symlink; "
                       "symlinks are followed only once.", None, {"Key": link.symlink_target[:200]})
    return target


def _as_seen(link: ObjectMeta, target: ObjectMeta) -> ObjectMeta:
    """What GetObject / HeadObject of ``link`` report: the target's bytes, the link's attributes."""
    return replace(link, size=target.size, etag=target.etag, crc64=target.crc64, ino=target.ino,
                   mtime_ns=max(link.mtime_ns, target.mtime_ns), storage_class=target.storage_class,
                   restore_ready=target.restore_ready, restore_expiry=target.restore_expiry)


def open_following(store: LocalStore, bucket: str, key: str) -> ObjectHandle:
    """:meth:`LocalStore.open`, following a symlink to its target. Blocking: run in a thread."""
    handle = store.open(bucket, key)
    if handle.meta.object_type != "Symlink":
        return handle
    with handle:
        link = handle.meta
    target = _follow(store, bucket, link)
    target.meta = _as_seen(link, target.meta)
    return target


def head_following(store: LocalStore, bucket: str, key: str) -> ObjectMeta:
    with open_following(store, bucket, key) as handle:
        return handle.meta


def readable_path_following(store: LocalStore, bucket: str, key: str) -> tuple[ObjectMeta, str | None]:
    """:meth:`LocalStore.readable_path`, following a symlink (for video snapshots)."""
    link = store.head(bucket, key)
    if link.object_type != "Symlink":
        return store.readable_path(bucket, key)
    _follow(store, bucket, link).close()
    meta, path = store.readable_path(bucket, link.symlink_target)
    return _as_seen(link, meta), path


async def put_symlink(call: Call, store: LocalStore) -> web.StreamResponse:
    assert call.bucket is not None and call.key is not None
    raw = call.header(TARGET_HEADER)
    if not raw:
        raise OSSError(400, "MissingArgument", "The x-oss-symlink-target header is missing.", "0043-00000001",
                       {"ArgumentName": TARGET_HEADER})
    target = unquote(raw, errors="surrogateescape")
    validate_key(target)
    user_meta, tags = user_metadata(call), request_tags(call)
    forbid_overwrite = call.header("x-oss-forbid-overwrite").lower() == "true"

    def write() -> ObjectMeta:
        store.require_bucket(call.bucket)  # type: ignore[arg-type]
        klass = storage_class(call, default_storage_class(store, call.bucket))  # type: ignore[arg-type]
        pending = store.begin_put(call.bucket, call.key)  # type: ignore[arg-type]
        pending.attrs = {"object_type": "Symlink", "symlink_target": target}
        return pending.commit(call.header("Content-Type") or None, user_meta, None, forbid_overwrite,
                              storage_class=klass, tags=tags)

    meta = await asyncio.to_thread(write)
    return web.Response(status=200, headers={"ETag": meta.etag})


async def get_symlink(call: Call, store: LocalStore) -> web.StreamResponse:
    assert call.bucket is not None and call.key is not None
    meta = await asyncio.to_thread(store.head, call.bucket, call.key)
    if meta.object_type != "Symlink":
        raise OSSError(400, "NotSymlink", "The specified object is not a symlink.", "0043-00000101")
    headers = {TARGET_HEADER: quote(meta.symlink_target, safe="/", errors="surrogateescape"),
               "ETag": meta.etag, "Last-Modified": formatdate(meta.last_modified, usegmt=True)}
    headers.update({f"x-oss-meta-{name}": value for name, value in meta.user_meta.items()})
    return web.Response(status=200, headers=headers)
