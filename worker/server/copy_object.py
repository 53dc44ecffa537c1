"""CopyObject: ``PUT /<key>`` with ``x-oss-copy-source: /<bucket>/<url-encoded key>``
(OSS documentation, https://www.alibabacloud.com/help/en/oss/developer-reference/copyobject).

A copy is a PUT whose bytes come from another object of this server (any bucket), so it is as
atomic as a PUT: the bytes go to a temporary file, are fsynced and renamed over the destination
(:class:`~worker.server.storage.PendingWrite`). They are read from *one* open descriptor of the
source, the same one whose metadata the ``x-oss-copy-source-if-*`` guards were checked against,
and the copy's own MD5 must equal that metadata's ETag: what was checked is what was copied.
Copying an object onto itself is allowed; it is how OSS clients change an object's metadata or
storage class (oss2 ``update_object_meta``).

Headers, as OSS defines them:

* ``x-oss-copy-source-if-match`` / ``-if-unmodified-since`` failing → 412 PreconditionFailed;
  ``-if-none-match`` / ``-if-modified-since`` failing → 304 Not Modified
  (:mod:`worker.server.preconditions`);
* ``x-oss-metadata-directive``: ``COPY`` (default) keeps the source's Content-Type, standard
  headers (Cache-Control, Content-Disposition, Content-Encoding, Content-Language, Expires) and
  ``x-oss-meta-*``; ``REPLACE`` takes them from this request (a request without Content-Type
  keeps the source's, as the SDK's own suite expects of OSS), except the client-side encryption
  metadata (``x-oss-meta-client-side-encryption-*``), which describes how the copied bytes are
  encrypted and is always kept (the SDK's suite expects that too); anything else → 400 InvalidArgument;
* ``x-oss-server-side-encryption``: the copy's, from this request only; ``x-oss-object-acl``
  other than ``default`` → 501 (:mod:`worker.server.object_attrs`);
* ``x-oss-tagging-directive``: ``Copy`` (default) keeps the source's tags; ``Replace`` takes
  ``x-oss-tagging`` (none without it); anything else → 400 InvalidArgument;
* ``x-oss-storage-class``: the copy's class; without it the copy is ``Standard``, the class of
  every bucket of this server (OSS gives an object its bucket's class unless told otherwise);
* ``x-oss-forbid-overwrite: true`` → 409 FileAlreadyExists when the destination exists.

A source in Archive, ColdArchive or DeepColdArchive cannot be read, so it cannot be copied:
403 InvalidObjectState (:mod:`worker.server.object_attrs`). A missing source is 404 NoSuchKey, a
missing source bucket 404 NoSuchBucket. ``?versionId=`` on the source: this server keeps no
versions, so only ``null`` (the one version an unversioned bucket has) is accepted; any other is
400 InvalidArgument.
"""

from __future__ import annotations

import asyncio
from urllib.parse import unquote

from aiohttp import web

from . import xmlbody
from .call import Call
from .errors import OSSError
from .object_attrs import copied_headers, encryption_headers, require_readable, user_metadata
from .object_attrs import storage_class as request_storage_class
from .preconditions import COPY_SOURCE_HEADERS, precondition, precondition_failed
from .storage import LocalStore, ObjectHandle, ObjectMeta, PendingWrite
from .tagging import request_tags

__all__ = ["COPY_SOURCE_HEADER", "parse_copy_source", "copy_object"]

COPY_SOURCE_HEADER = "x-oss-copy-source"
#: The directive headers and how OSS spells their two values (compared case-insensitively here).
_DIRECTIVES = {"x-oss-metadata-directive": "COPY or REPLACE", "x-oss-tagging-directive": "Copy or Replace"}


def parse_copy_source(value: str) -> tuple[str, str]:
    """``/bucket/url%20encoded/key[?versionId=…]`` → (bucket, key); the leading ``/`` is optional."""
    path, _, query = value.partition("?")
    bucket, sep, raw_key = path.removeprefix("/").partition("/")
    try:
        key = unquote(raw_key, errors="strict")
    except UnicodeDecodeError:
        key = ""
    if not bucket or not sep or not key:
        raise OSSError.invalid_argument("x-oss-copy-source must be /<bucket>/<url-encoded key>.",
                                        ArgumentName=COPY_SOURCE_HEADER, ArgumentValue=value[:200])
    if query:
        name, _, version = query.partition("=")
        if name != "versionId" or version != "null":
            raise OSSError.invalid_argument("This server keeps no object versions: x-oss-copy-source may name only "
                                            "the current version (versionId=null).",
                                            ArgumentName=COPY_SOURCE_HEADER, ArgumentValue=value[:200])
    return bucket, key


def _directive(call: Call, name: str) -> str:
    value = call.header(name)
    if not value:
        return "COPY"
    if value.upper() not in ("COPY", "REPLACE"):
        raise OSSError.invalid_argument(f"{name} must be {_DIRECTIVES[name]}, not {value[:64]!r}.",
                                        ArgumentName=name, ArgumentValue=value[:64])
    return value.upper()


async def copy_object(call: Call, store: LocalStore) -> web.StreamResponse:
    """CopyObject (see the module docstring)."""
    assert call.bucket is not None and call.key is not None
    src_bucket, src_key = parse_copy_source(call.header(COPY_SOURCE_HEADER))
    replace_meta = _directive(call, "x-oss-metadata-directive") == "REPLACE"
    replace_tags = _directive(call, "x-oss-tagging-directive") == "REPLACE"
    new_class = request_storage_class(call)
    new_user_meta = user_metadata(call) if replace_meta else None
    new_tags = request_tags(call) if replace_tags else None
    forbid_overwrite = call.header("x-oss-forbid-overwrite").lower() == "true"

    handle = await asyncio.to_thread(store.open, src_bucket, src_key)
    try:
        source = handle.meta
        not_modified = guard_copy_source(call, source)
        if not_modified is not None:
            return not_modified
        headers = copied_headers(call, source.headers, replace_meta)
        pending = await asyncio.to_thread(store.begin_put, call.bucket, call.key)
        meta = await asyncio.to_thread(
            _copy, handle, pending,
            content_type=(call.header("Content-Type") or source.content_type) if replace_meta else source.content_type,
            headers=headers,
            user_meta=(_with_encryption_meta(new_user_meta, source.user_meta) if new_user_meta is not None
                       else dict(source.user_meta)),
            tags=new_tags if new_tags is not None else dict(source.tags),
            storage_class=new_class, forbid_overwrite=forbid_overwrite)
    finally:
        handle.close()
    return web.Response(
        body=xmlbody.render(("CopyObjectResult", [("ETag", meta.etag),
                                                  ("LastModified", xmlbody.iso8601(meta.last_modified))])),
        content_type="application/xml",
        headers={"ETag": meta.etag, "x-oss-hash-crc64ecma": meta.crc64, **encryption_headers(meta.headers)})


def guard_copy_source(call: Call, source: ObjectMeta) -> web.Response | None:
    """A copy source must be readable (not Archive-class unless restored) and pass the
    ``x-oss-copy-source-if-*`` conditions: None to go on, the 304 to send, or the error raised.
    Shared by CopyObject and UploadPartCopy."""
    require_readable(source)
    status = precondition(call, source, COPY_SOURCE_HEADERS)
    if status == 412:
        raise precondition_failed()
    if status == 304:
        return web.Response(status=304, headers={"ETag": source.etag})
    return None


#: User metadata that describes the bytes themselves (client-side encryption's wrapped key, IV
#: and algorithms): a copy with new metadata keeps it, or the copy could never be decrypted.
_ENCRYPTION_META_PREFIX = "client-side-encryption-"


def _with_encryption_meta(requested: dict[str, str], source: dict[str, str]) -> dict[str, str]:
    kept = {name: value for name, value in source.items() if name.startswith(_ENCRYPTION_META_PREFIX)}
    return {**{k: v for k, v in requested.items() if not k.startswith(_ENCRYPTION_META_PREFIX)}, **kept}


def _copy(handle: ObjectHandle, pending: PendingWrite, *, content_type: str | None, user_meta: dict[str, str],
          tags: dict[str, str], storage_class: str, forbid_overwrite: bool, headers: dict[str, str]) -> ObjectMeta:
    """Stream the source's bytes into ``pending`` and publish them. Blocking: run in a thread."""
    try:
        for chunk in handle.iter_chunks():
            pending.write(chunk)
        if (pending.digest.size, pending.digest.etag) != (handle.meta.size, handle.meta.etag):
            # The file was rewritten in place under the descriptor (not through this server): what
            # the guards checked is not what was read. Retryable, as any 500 is for the SDKs.
            raise OSSError(500, "InternalError", "The source object changed while it was copied; please retry.")
    except BaseException:
        pending.abort()
        raise
    return pending.commit(content_type, user_meta, None, forbid_overwrite, storage_class=storage_class, tags=tags,
                          headers=headers)
