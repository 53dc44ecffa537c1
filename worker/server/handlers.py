"""One coroutine per OSS operation. Each takes a :class:`Call` and returns a response or raises
:class:`OSSError`; authentication, request ids, fault injection and error rendering happen
around them in :mod:`worker.server.app`.

File-system work runs in threads (``asyncio.to_thread``) and scoring in the process pool, so
the event loop only ever moves bytes. :meth:`Operations.pick` is the one dispatcher; larger
operations live in their own modules and are bound here: CopyObject in
:mod:`worker.server.copy_object`, object tagging in :mod:`worker.server.tagging`, multipart
upload in :mod:`worker.server.multipart` (which picks its own operations); what objects
carry besides bytes (user metadata, storage class) in :mod:`worker.server.object_attrs`.
"""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import Mapping
from email.utils import formatdate
from urllib.parse import parse_qsl

from aiohttp import web

from ..oss.image_process_contract import ImageProcessSpec
from ..oss.score_contract import MAX_SOURCE_BYTES, PROCESS_PARAMETER, SCORE_PROCESS, build_score_answer
from ..oss.snapshot_contract import SnapshotSpec
from ..video.snapshot import UNREADABLE_EC
from . import copy_object, gzip_response, multipart, object_attrs, object_extras, regions, tagging
from .bucket_admin import default_storage_class
from .bucket_handlers import LIST_BUCKETS_PARAMS, BucketHandlers
from .call import BucketOperations, Call, Handler, write_body
from .checksums import parse_content_md5
from .errors import OSSError
from .object_attrs import object_headers, require_readable, storage_class, user_metadata
from .oss_process import parse_process
from .preconditions import precondition, precondition_failed, require_unchanged
from .scoring_pool import Scorer
from .storage import LocalStore, ObjectMeta
from .symlinks import head_following, open_following, readable_path_following

__all__ = ["Operations"]

#: At most 19 digits a side (any 63-bit offset): CPython refuses int() of over 4300 digits.
_RANGE_RE = re.compile(r"^bytes=(\d{0,19})-(\d{0,19})$")
#: ProcessObject's form is one field, ``x-oss-process=…`` (a process string, maybe a sys/saveas target).
MAX_PROCESS_FORM = 64 * 1024


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """``bytes=a-b`` / ``a-`` / ``-n`` → (start, length); None for absent or unusable ranges.

    OSS serves the whole object when the Range is invalid or unsatisfiable, unless the client
    asks for standard behaviour with ``x-oss-range-behavior: standard`` (then 416).
    """
    match = _RANGE_RE.match(header.replace(" ", ""))
    if not match or (not match[1] and not match[2]):
        return None
    if not match[1]:
        suffix = int(match[2])
        if suffix == 0 or size == 0:
            return None
        start = max(size - suffix, 0)
        return start, size - start
    start = int(match[1])
    end = int(match[2]) if match[2] else size - 1
    if start >= size or end < start:
        return None
    return start, min(end, size - 1) - start + 1


class Operations(BucketHandlers):
    """The OSS operations the embedded server implements, bound to one store and one scorer
    (the service and bucket ones are :class:`~worker.server.bucket_handlers.BucketHandlers`')."""

    def __init__(self, store: LocalStore, scorer: Scorer, region: str,
                 synthetic: Mapping[str, BucketOperations] | None = None, restore_delay_s: float = 1.0) -> None:
        self.store = store
        self.scorer = scorer
        self.region = region
        #: Bucket name → the operations of a synthetic bucket (:mod:`worker.server.synthetic`).
        self.synthetic = dict(synthetic or {})
        self.multipart = multipart.Multipart(store)
        #: AppendObject, symlinks, RestoreObject (:mod:`worker.server.object_extras`).
        self.extras = object_extras.ObjectExtras(store, restore_delay_s)

    def pick(self, call: Call) -> Handler:
        """Route by method, addressing level and sub-resource (the OSS API's own dispatch)."""
        if call.bucket in self.synthetic:
            return self.synthetic[call.bucket].pick(call)
        if (handler := self.multipart.pick(call) or self.extras.pick(call)) is not None:
            return handler
        method, q = call.request.method, call.query
        if call.bucket is None:
            if method == "GET" and "regions" in q:
                return regions.describe_regions
            if method == "GET" and not set(q) - LIST_BUCKETS_PARAMS:  # another service sub-resource: 501
                return self.list_buckets
        elif not call.key:
            if method in ("PUT", "DELETE") and not q:
                return self.put_bucket if method == "PUT" else self.delete_bucket
            if set(q) == {"tagging"} and method in ("GET", "PUT", "DELETE"):
                return {"GET": self.get_bucket_tags, "PUT": self.put_bucket_tags,
                        "DELETE": self.delete_bucket_tags}[method]
            if method == "GET":
                if "stat" in q:
                    return self.get_bucket_stat
                if "bucketInfo" in q:
                    return self.get_bucket_info
                if "location" in q:
                    return self.get_bucket_location
                if q.get("list-type") == "2":
                    return self.list_objects_v2
                if not set(q) - {"prefix", "marker", "max-keys", "delimiter", "encoding-type"}:
                    return self.list_objects_v1
            if method == "POST" and "delete" in q:
                return self.delete_multiple
        else:
            if method == "GET" and PROCESS_PARAMETER in q:
                return self.process_object
            if method == "POST" and PROCESS_PARAMETER in q:
                return self.process_object_post
            if method == "GET" and not set(q) - _GET_OBJECT_PARAMS:
                return self.get_object
            if method == "HEAD":
                return self.get_object_meta if "objectMeta" in q else self.head_object
            if set(q) == {"tagging"} and method in ("GET", "PUT", "DELETE"):
                return {"GET": self.get_object_tagging, "PUT": self.put_object_tagging,
                        "DELETE": self.delete_object_tagging}[method]
            if method == "PUT" and not q:
                return self.copy_object if copy_object.COPY_SOURCE_HEADER in call.request.headers else self.put_object
            if method == "DELETE" and not q:
                return self.delete_object
        return self.not_implemented

    async def not_implemented(self, call: Call) -> web.StreamResponse:
        what = " ".join(filter(None, [call.request.method, "/".join(filter(None, [call.bucket, call.key])),
                                      ",".join(sorted(call.query))]))
        if call.bucket is not None:  # OSS looks the bucket up first: 404 on a missing one, whatever the operation
            await asyncio.to_thread(self.store.require_bucket, call.bucket)
        raise OSSError(501, "NotImplemented", f"picscore serve does not implement this operation ({what[:200]}).")

    # -- objects ----------------------------------------------------------------------------
    async def put_object(self, call: Call) -> web.StreamResponse:
        assert call.bucket is not None and call.key is not None
        expected_md5 = parse_content_md5(call.header("Content-MD5"))
        user_meta = user_metadata(call)
        klass, tags = storage_class(call, default_storage_class(self.store, call.bucket)), tagging.request_tags(call)
        pending = await asyncio.to_thread(self.store.begin_put, call.bucket, call.key)
        try:
            headers = object_attrs.standard_headers(call)  # after begin_put's bucket check, as OSS orders them
            async for chunk in call.request.content.iter_chunked(1 << 20):
                pending.write(chunk)
        except BaseException:
            pending.abort()
            raise
        forbid_overwrite = call.header("x-oss-forbid-overwrite").lower() == "true"
        meta = await asyncio.to_thread(
            lambda: pending.commit(call.header("Content-Type") or None, user_meta, expected_md5, forbid_overwrite,
                                   storage_class=klass, tags=tags, headers=headers))
        return web.Response(status=200, headers={
            "ETag": meta.etag,
            "Content-MD5": base64.b64encode(pending.digest.md5_bytes).decode("ascii"),
            "x-oss-hash-crc64ecma": meta.crc64,
            **object_attrs.encryption_headers(meta.headers),
        })

    async def get_object(self, call: Call) -> web.StreamResponse:
        assert call.bucket is not None and call.key is not None
        overrides = _response_overrides(call.query)
        handle = await asyncio.to_thread(open_following, self.store, call.bucket, call.key)
        try:
            meta = handle.meta
            require_readable(meta)
            status = precondition(call, meta)
            if status == 412:
                raise precondition_failed()
            headers = object_headers(meta)
            if status == 304:
                return web.Response(status=304, headers={k: v for k, v in headers.items() if k != "Content-Type"})
            if gzip_response.should_gzip(call, meta, overrides):
                return await gzip_response.send_gzipped(call, handle, headers | overrides)
            headers.update(overrides)
            byte_range = _parse_range(call.header("Range"), meta.size) if call.header("Range") else None
            if call.header("Range") and byte_range is None and call.header("x-oss-range-behavior") == "standard":
                raise OSSError(416, "InvalidRange", "The requested range is not satisfiable.", "0003-00000405")
            if byte_range is None:
                start, length, status = 0, meta.size, 200
                headers["x-oss-hash-crc64ecma"] = meta.crc64
            else:
                start, length = byte_range
                status = 206
                headers["Content-Range"] = f"bytes {start}-{start + length - 1}/{meta.size}"
            response = web.StreamResponse(status=status, headers=headers)
            response.content_length = length
            await response.prepare(call.request)
            chunks = handle.iter_chunks(start, length)
            while chunk := await asyncio.to_thread(next, chunks, b""):
                await write_body(response, chunk, call.body_rate_bps, call.send_timeout_s)
            await response.write_eof()
            return response
        finally:
            handle.close()

    async def head_object(self, call: Call) -> web.StreamResponse:
        assert call.bucket is not None and call.key is not None
        meta = await self._head(call.bucket, call.key)
        status = precondition(call, meta)
        if status == 412:
            raise precondition_failed()
        headers = object_headers(meta)
        if meta.crc64:  # a synthetic object has no bytes, so no CRC
            headers["x-oss-hash-crc64ecma"] = meta.crc64
        headers["Content-Length"] = str(meta.size)
        return web.Response(status=status or 200, headers=headers)

    async def get_object_meta(self, call: Call) -> web.StreamResponse:
        assert call.bucket is not None and call.key is not None
        meta = await self._head(call.bucket, call.key)
        headers = {"ETag": meta.etag, "Content-Length": str(meta.size),
                   "Last-Modified": formatdate(meta.last_modified, usegmt=True)}
        if meta.crc64:
            headers["x-oss-hash-crc64ecma"] = meta.crc64
        return web.Response(status=200, headers=headers)

    async def _head(self, bucket: str, key: str) -> ObjectMeta:
        return await asyncio.to_thread(head_following, self.store, bucket, key)  # through a symlink

    async def copy_object(self, call: Call) -> web.StreamResponse:
        return await copy_object.copy_object(call, self.store)

    async def get_object_tagging(self, call: Call) -> web.StreamResponse:
        return await tagging.get_object_tagging(call, self._head)

    async def put_object_tagging(self, call: Call) -> web.StreamResponse:
        return await tagging.put_object_tagging(call, self.store)

    async def delete_object_tagging(self, call: Call) -> web.StreamResponse:
        return await tagging.delete_object_tagging(call, self.store)

    async def delete_object(self, call: Call) -> web.StreamResponse:
        assert call.bucket is not None and call.key is not None
        await asyncio.to_thread(self.store.delete, call.bucket, call.key)
        return web.Response(status=204)

    async def process_object(self, call: Call) -> web.StreamResponse:
        return await self._score(call, call.query[PROCESS_PARAMETER])

    async def process_object_post(self, call: Call) -> web.StreamResponse:
        """ProcessObject: POST with a form body ``x-oss-process=image/score``, the form OSS takes
        for processing with ``sys/saveas`` (https://help.aliyun.com/en/oss/user-guide/sys-or-saveas)."""
        body = await call.read_body(MAX_PROCESS_FORM)
        form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        if PROCESS_PARAMETER not in form:
            raise OSSError(400, "MissingArgument", "The x-oss-process form field is missing.")
        return await self._score(call, form[PROCESS_PARAMETER])

    async def _score(self, call: Call, process: str) -> web.StreamResponse:
        assert call.bucket is not None and call.key is not None
        operation = parse_process(process)
        if isinstance(operation, SnapshotSpec):
            return await self._snapshot(call, operation)
        if isinstance(operation, ImageProcessSpec):
            return await self._process_image(call, operation)
        if operation != SCORE_PROCESS:  # pragma: no cover - parse_process raises otherwise
            raise AssertionError(process)
        async with self.scorer.slot():
            data = await self._image_bytes(call.bucket, call.key, call)
            result = await self.scorer.score(data, received=call.received)
        body = build_score_answer(result.overall, result.dimensions, call.request_id)
        return web.Response(body=body, status=200,
                            headers={"Content-Type": "application/json;charset=utf-8",
                                     "x-oss-process-status": "OK"})

    async def _snapshot(self, call: Call, spec: SnapshotSpec) -> web.StreamResponse:
        """video/snapshot: the frame decoded in the processing pool, from the object's file (a
        video may be far larger than what an image request reads into memory)."""
        assert call.bucket is not None and call.key is not None
        async with self.scorer.slot():
            path = await asyncio.to_thread(self._readable_path, call.bucket, call.key, call)
            image = await self.scorer.snapshot(path, spec)
        return web.Response(body=image, status=200,
                            headers={"Content-Type": spec.content_type, "x-oss-process-status": "OK"})

    async def _process_image(self, call: Call, spec: ImageProcessSpec) -> web.StreamResponse:
        """image/resize, format and quality: the picture processed in the processing pool, under
        the same admission (503 CpuLimitExceeded) and 20 MB source limit as image/score."""
        assert call.bucket is not None and call.key is not None
        async with self.scorer.slot():
            data = await self._image_bytes(call.bucket, call.key, call)
            image = await self.scorer.process_image(data, spec)
        return web.Response(body=image.body, status=200,
                            headers={"Content-Type": image.content_type, "x-oss-process-status": "OK"})

    def _readable_path(self, bucket: str, key: str, call: Call) -> str:
        meta, path = readable_path_following(self.store, bucket, key)
        require_readable(meta)
        require_unchanged(call, meta)
        if path is None:  # a directory marker: no bytes, so no video
            raise OSSError.invalid_argument("The object cannot be read as a video.", UNREADABLE_EC)
        return path

    async def _image_bytes(self, bucket: str, key: str, call: Call) -> bytes:
        handle = await asyncio.to_thread(open_following, self.store, bucket, key)
        try:
            require_readable(handle.meta)
            require_unchanged(call, handle.meta)
            if handle.meta.size > MAX_SOURCE_BYTES:
                raise OSSError(400, "ImageTooLarge", "The source image is larger than 20 MB.", "0040-00000009")
            return await asyncio.to_thread(handle.read)
        finally:
            handle.close()


#: GetObject's ``response-*`` parameters and the response header each one sets
#: (https://www.alibabacloud.com/help/en/oss/developer-reference/getobject).
_RESPONSE_OVERRIDES = {
    "response-content-type": "Content-Type",
    "response-content-language": "Content-Language",
    "response-expires": "Expires",
    "response-cache-control": "Cache-Control",
    "response-content-disposition": "Content-Disposition",
    "response-content-encoding": "Content-Encoding",
}
_GET_OBJECT_PARAMS = frozenset(_RESPONSE_OVERRIDES)
#: What a header value cannot hold: CR/LF (a second header, or a body, smuggled in), other
#: control characters but tab, and lone surrogates (bytes that were not UTF-8).
_NOT_HEADER_TEXT = re.compile("[\x00-\x08\x0a-\x1f\x7f\ud800-\udfff]")


def _response_overrides(query: Mapping[str, str]) -> dict[str, str]:
    """The headers GetObject's ``response-*`` parameters ask for; 400 InvalidArgument for a
    value no header can carry (a CR/LF would otherwise split the response)."""
    headers = {}
    for param, header in _RESPONSE_OVERRIDES.items():
        value = query.get(param, "")
        if _NOT_HEADER_TEXT.search(value):
            raise OSSError.invalid_argument(f"The {param} parameter must not contain control characters.",
                                            ArgumentName=param, ArgumentValue=value[:200])
        if value:
            headers[header] = value
    return headers
