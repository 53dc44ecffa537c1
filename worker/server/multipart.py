"""Multipart upload, as OSS defines it: InitiateMultipartUpload (``POST /key?uploads``), UploadPart
(``PUT /key?partNumber=N&uploadId=ID``), UploadPartCopy (the same with ``x-oss-copy-source``),
CompleteMultipartUpload (``POST /key?uploadId=ID``), AbortMultipartUpload (``DELETE /key?uploadId=ID``),
ListParts (``GET /key?uploadId=ID``) and ListMultipartUploads (``GET /?uploads``).
OSS API reference: https://www.alibabacloud.com/help/en/oss/developer-reference/initiatemultipartupload
and the pages next to it (uploadpart, uploadpartcopy, completemultipartupload, abortmultipartupload,
listparts, listmultipartuploads).

The state lives on disk (:mod:`worker.server.multipart_store`), so uploads survive restarts and a
``kill -9`` leaves every part whole or absent. Part bodies are streamed to disk in 1 MB chunks,
never held whole.

Refusals, as OSS sends them:

* part number missing → 400 InvalidArgument, EC 0017-00000219; not an integer in 1..10000 → 400
  InvalidArgument, EC 0017-00000220 (https://help.aliyun.com/en/oss/user-guide/0017-00000220);
* unknown, completed or aborted upload id (or one of another key) → 404 NoSuchUpload, EC 0017-00000244;
* Content-MD5 not matching the part → 400 InvalidDigest;
* parts listed out of order → 400 InvalidPartOrder, EC 0042-00000209; a part not uploaded or with
  another ETag → 400 InvalidPart; a part but the last under 100 KB → 400 EntityTooSmall, EC
  0042-00000213 (https://help.aliyun.com/en/oss/user-guide/0042-00000209, …/0042-00000213);
* a CompleteMultipartUpload body that is not ``<CompleteMultipartUpload><Part>…`` → 400 MalformedXML;
* ``x-oss-copy-source-range`` not ``bytes=first-last`` inside the source → 400 InvalidArgument (the
  range must lie within the source: https://help.aliyun.com/zh/oss/user-guide/0042-00000306);
* ``max-parts`` / ``max-uploads`` outside 1..1000, ``part-number-marker`` not a number → 400 InvalidArgument.

The completed object's ETag is OSS's multipart form (``"<MD5 of the parts' MD5s>-<N>"``) and its
``x-oss-hash-crc64ecma`` the CRC-64 of its bytes, computed while the parts are concatenated.
"""

from __future__ import annotations

import asyncio
import base64
import re
from urllib.parse import quote

from aiohttp import web

from . import xmlbody
from .bucket_admin import default_storage_class
from .call import Call, Handler
from .checksums import parse_content_md5
from .copy_object import COPY_SOURCE_HEADER, guard_copy_source, parse_copy_source
from .errors import OSSError
from .multipart_store import MAX_PART_NUMBER, MultipartStore, PartMeta, Upload
from .object_attrs import encryption_headers, standard_headers, storage_class, user_metadata
from .storage import LocalStore, ObjectHandle
from .tagging import request_tags
from .xmlparse import parse_bounded

__all__ = ["Multipart", "MAX_COMPLETE_BODY", "MAX_LIST"]

#: A complete list of 10,000 parts is about 1 MB (``<Part><PartNumber>…</PartNumber><ETag>…</ETag></Part>``
#: with the ETag's quotes escaped); bodies are read up to 4 MB, no further.
MAX_COMPLETE_BODY = 4 * 1024 * 1024
#: ``Part``/``PartNumber``/``ETag`` per part plus the root: parsing stops past this many elements.
_MAX_COMPLETE_ELEMENTS = 1 + 3 * MAX_PART_NUMBER
#: ListParts' ``max-parts`` and ListMultipartUploads' ``max-uploads``: default and maximum 1000.
MAX_LIST = 1000
_COPY_RANGE_RE = re.compile(r"^bytes=(\d{1,19})-(\d{0,19})$")
_CHUNK = 1 << 20


def _xml(root: xmlbody.Node, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=xmlbody.render(root), content_type="application/xml", headers=headers)


def _encoding(call: Call):
    encoding = call.query.get("encoding-type", "")
    if encoding not in ("", "url"):
        raise OSSError.invalid_argument("encoding-type must be url.", ArgumentName="encoding-type")
    return encoding, (lambda text: quote(text, safe="/")) if encoding else (lambda text: text)


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _int_param(call: Call, name: str, default: int, low: int, high: int) -> int:
    raw = call.query.get(name, "")
    if raw == "":
        return default
    if len(raw) > 8 or not _digits(raw) or not low <= int(raw) <= high:
        raise OSSError.invalid_argument(f"{name} must be an integer between {low} and {high}.",
                                        ArgumentName=name, ArgumentValue=raw[:64])
    return int(raw)


def _part_number(call: Call) -> int:
    raw = call.query.get("partNumber", "")
    if not raw:
        raise OSSError.invalid_argument("Unexpected query string parameter", "0017-00000219",
                                        ArgumentName="ResourceType", ArgumentValue="partNumber")
    if len(raw) > 5 or not _digits(raw) or not 1 <= int(raw) <= MAX_PART_NUMBER:
        raise OSSError.invalid_argument("Part number must be an integer between 1 and 10000, inclusive.",
                                        "0017-00000220", ArgumentName="PartNumber", ArgumentValue=raw[:64])
    return int(raw)


def _part_headers(part: PartMeta) -> dict[str, str]:
    return {"ETag": part.etag, "x-oss-hash-crc64ecma": part.crc64,
            "Content-MD5": base64.b64encode(bytes.fromhex(part.md5_hex)).decode("ascii")}


class Multipart:
    """The multipart operations over one store; :meth:`pick` says which one a call is, if any."""

    def __init__(self, store: LocalStore) -> None:
        self.store = store
        self.uploads = MultipartStore(store)

    def pick(self, call: Call) -> Handler | None:
        method, q = call.request.method, call.query
        if call.bucket is None:
            return None
        if not call.key:
            return self.list_multipart_uploads if method == "GET" and "uploads" in q else None
        if method == "POST" and "uploads" in q:
            return self.initiate
        if "uploadId" not in q:
            return None
        if method == "PUT":
            return self.upload_part_copy if COPY_SOURCE_HEADER in call.request.headers else self.upload_part
        return {"POST": self.complete, "GET": self.list_parts, "DELETE": self.abort}.get(method)

    async def initiate(self, call: Call) -> web.StreamResponse:
        assert call.bucket is not None and call.key is not None
        encoding, enc = _encoding(call)
        upload = await asyncio.to_thread(
            # Without a Content-Type the object is application/octet-stream, not a type guessed from its
            # name as PutObject's is (the official Python SDK v2's integration suite checks this)
            self.uploads.initiate, call.bucket, call.key,
            content_type=call.header("Content-Type") or "application/octet-stream",
            user_meta=user_metadata(call), tags=request_tags(call),
            storage_class=storage_class(call, default_storage_class(self.store, call.bucket)),
            forbid_overwrite=call.header("x-oss-forbid-overwrite").lower() == "true", headers=standard_headers(call))
        return _xml(("InitiateMultipartUploadResult", [
            ("Bucket", call.bucket), ("Key", enc(call.key)), ("UploadId", upload.upload_id),
            ("EncodingType", encoding or None)]), encryption_headers(upload.headers))

    async def upload_part(self, call: Call) -> web.StreamResponse:
        assert call.bucket is not None and call.key is not None
        number = _part_number(call)
        expected_md5 = parse_content_md5(call.header("Content-MD5"))
        writer = await asyncio.to_thread(self.uploads.begin_part, call.bucket, call.key, call.query["uploadId"],
                                         number)
        try:
            async for chunk in call.request.content.iter_chunked(_CHUNK):
                writer.write(chunk)
        except BaseException:
            writer.abort()
            raise
        part = await asyncio.to_thread(writer.commit, expected_md5)
        return web.Response(status=200, headers=_part_headers(part))

    async def upload_part_copy(self, call: Call) -> web.StreamResponse:
        assert call.bucket is not None and call.key is not None
        number = _part_number(call)
        src_bucket, src_key = parse_copy_source(call.header(COPY_SOURCE_HEADER))
        await asyncio.to_thread(self.uploads.get, call.bucket, call.key, call.query["uploadId"])
        handle = await asyncio.to_thread(self.store.open, src_bucket, src_key)
        try:
            source = handle.meta
            not_modified = guard_copy_source(call, source)
            if not_modified is not None:
                return not_modified
            start, length = _copy_range(call.header("x-oss-copy-source-range"), source.size)
            writer = await asyncio.to_thread(self.uploads.begin_part, call.bucket, call.key, call.query["uploadId"],
                                             number)
            part = await asyncio.to_thread(_copy_part, handle, writer, start, length)
        finally:
            handle.close()
        return _xml(("CopyPartResult", [("LastModified", xmlbody.iso8601(part.last_modified)), ("ETag", part.etag)]),
                    _part_headers(part))

    async def complete(self, call: Call) -> web.StreamResponse:
        assert call.bucket is not None and call.key is not None
        encoding, enc = _encoding(call)
        complete_all = call.header("x-oss-complete-all").lower() == "yes"
        body = await call.read_body(MAX_COMPLETE_BODY)
        if complete_all and body.strip():
            raise OSSError.invalid_argument("With x-oss-complete-all: yes the request must have no body.",
                                            ArgumentName="x-oss-complete-all")
        chosen = None if complete_all else _parse_complete_body(body)
        meta = await asyncio.to_thread(self.uploads.complete, call.bucket, call.key, call.query["uploadId"], chosen,
                                       call.header("x-oss-forbid-overwrite").lower() == "true")
        location = f"{call.request.scheme}://{call.request.host}{call.request.path}"
        return _xml(("CompleteMultipartUploadResult", [
            ("EncodingType", encoding or None), ("Location", location), ("Bucket", call.bucket),
            ("Key", enc(call.key)), ("ETag", meta.etag)]),
            {"ETag": meta.etag, "x-oss-hash-crc64ecma": meta.crc64, **encryption_headers(meta.headers)})

    async def abort(self, call: Call) -> web.StreamResponse:
        assert call.bucket is not None and call.key is not None
        await asyncio.to_thread(self.uploads.abort, call.bucket, call.key, call.query["uploadId"])
        return web.Response(status=204)

    async def list_parts(self, call: Call) -> web.StreamResponse:
        assert call.bucket is not None and call.key is not None
        encoding, enc = _encoding(call)
        max_parts = _int_param(call, "max-parts", MAX_LIST, 1, MAX_LIST)
        marker = _int_param(call, "part-number-marker", 0, 0, MAX_PART_NUMBER)
        upload, parts = await asyncio.to_thread(self.uploads.parts, call.bucket, call.key, call.query["uploadId"])
        after = [part for part in parts if part.number > marker]
        page, truncated = after[:max_parts], len(after) > max_parts
        return _xml(("ListPartsResult", [
            ("EncodingType", encoding or None),
            ("Bucket", call.bucket), ("Key", enc(call.key)), ("UploadId", upload.upload_id),
            ("StorageClass", upload.storage_class),
            ("PartNumberMarker", marker),
            ("NextPartNumberMarker", page[-1].number if page else marker),
            ("MaxParts", max_parts), ("IsTruncated", truncated),
            *[("Part", [("PartNumber", p.number), ("LastModified", xmlbody.iso8601(p.last_modified)),
                        ("ETag", p.etag), ("HashCrc64ecma", p.crc64), ("Size", p.size)]) for p in page],
        ]))

    async def list_multipart_uploads(self, call: Call) -> web.StreamResponse:
        assert call.bucket is not None
        q = call.query
        encoding, enc = _encoding(call)
        prefix, delimiter = q.get("prefix", ""), q.get("delimiter", "")
        key_marker, id_marker = q.get("key-marker", ""), q.get("upload-id-marker", "")
        max_uploads = _int_param(call, "max-uploads", MAX_LIST, 1, MAX_LIST)
        uploads = await asyncio.to_thread(self.uploads.uploads, call.bucket)
        entries, truncated = _uploads_page(uploads, prefix, delimiter, key_marker, id_marker, max_uploads)
        last = entries[-1] if entries else None
        return _xml(("ListMultipartUploadsResult", [
            ("EncodingType", encoding or None),
            ("Bucket", call.bucket), ("KeyMarker", enc(key_marker)), ("UploadIdMarker", id_marker),
            ("NextKeyMarker", enc(last if isinstance(last, str) else last.key) if last else ""),
            ("NextUploadIdMarker", last.upload_id if isinstance(last, Upload) else ""),
            ("Delimiter", enc(delimiter)), ("Prefix", enc(prefix)), ("MaxUploads", max_uploads),
            ("IsTruncated", truncated),
            *[("Upload", [("Key", enc(e.key)), ("UploadId", e.upload_id), ("StorageClass", e.storage_class),
                          ("Initiated", xmlbody.iso8601(e.initiated))]) for e in entries if isinstance(e, Upload)],
            *[("CommonPrefixes", [("Prefix", enc(e))]) for e in entries if isinstance(e, str)],
        ]))


def _uploads_page(uploads: list[Upload], prefix: str, delimiter: str, key_marker: str, id_marker: str,
                  max_uploads: int) -> tuple[list[Upload | str], bool]:
    """One page of ListMultipartUploads, as OSS pages it: after ``key-marker`` (and, for that key,
    after ``upload-id-marker``), keys grouped into common prefixes at ``delimiter`` (a prefix
    counts as one entry)."""
    entries: list[Upload | str] = []
    for upload in uploads:
        key = upload.key
        if not key.startswith(prefix):
            continue
        if key_marker and (key < key_marker or (key == key_marker and (not id_marker
                                                                       or upload.upload_id <= id_marker))):
            continue
        at = key.find(delimiter, len(prefix)) if delimiter else -1
        if at >= 0:
            common = key[:at + len(delimiter)]
            if (key_marker and common <= key_marker) or (entries and entries[-1] == common):
                continue
            entries.append(common)
        else:
            entries.append(upload)
        if len(entries) > max_uploads:
            return entries[:max_uploads], True
    return entries, False


def _copy_range(header: str, size: int) -> tuple[int, int]:
    """``x-oss-copy-source-range: bytes=first-last`` → (start, length); the whole source without it."""
    if not header:
        return 0, size
    match = _COPY_RANGE_RE.match(header.replace(" ", ""))
    start = int(match[1]) if match else -1
    end = (int(match[2]) if match[2] else size - 1) if match else -1
    if not match or start >= size or end < start or end >= size:
        raise OSSError.invalid_argument(f"x-oss-copy-source-range must be bytes=first-last within the source's "
                                        f"{size} bytes.", ArgumentName="x-oss-copy-source-range",
                                        ArgumentValue=header[:64])
    return start, end - start + 1


def _copy_part(handle: ObjectHandle, writer, start: int, length: int) -> PartMeta:
    """Stream ``length`` bytes of the source from ``start`` into the part. Blocking."""
    try:
        for chunk in handle.iter_chunks(start, length):
            writer.write(chunk)
        if writer.digest.size != length:
            raise OSSError(500, "InternalError", "The source object changed while it was copied; please retry.")
    except BaseException:
        writer.abort()
        raise
    return writer.commit()


def _parse_complete_body(body: bytes) -> list[tuple[int, str]]:
    """``<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>"…"</ETag></Part>…`` →
    [(number, etag)] in the order given. Parsed incrementally; past what 10,000 parts need, it stops."""
    malformed = OSSError(400, "MalformedXML", "The XML you provided was not well-formed or did not validate "
                         "against our published schema.")
    root = parse_bounded(body, max_elements=_MAX_COMPLETE_ELEMENTS, too_many=malformed, malformed=malformed)
    if root.tag != "CompleteMultipartUpload":
        raise malformed
    chosen = []
    for part in root.findall("Part"):
        number, etag = (part.findtext("PartNumber") or "").strip(), part.findtext("ETag")
        if len(number) > 5 or not _digits(number) or not 1 <= int(number) <= MAX_PART_NUMBER or etag is None:
            raise OSSError.invalid_argument("Part number must be an integer between 1 and 10000, inclusive.",
                                            "0017-00000220", ArgumentName="PartNumber", ArgumentValue=number[:64])
        chosen.append((int(number), etag))
    if not chosen:
        raise malformed
    return chosen
