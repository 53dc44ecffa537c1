"""The service and bucket operations of :class:`~worker.server.handlers.Operations`: ListBuckets
(with its tag filters), PutBucket, DeleteBucket, GetBucketInfo, GetBucketStat, GetBucketLocation,
Put/Get/DeleteBucketTags, ListObjects (V1 and V2) and DeleteMultipleObjects (bucket settings,
tags, statistics and deletion: :mod:`worker.server.bucket_admin`; tag rules: :mod:`worker.server.tagging`).

A mixin rather than functions because they share the operations' store, region and synthetic
buckets; split from :mod:`worker.server.handlers` to keep each module one screenful of topics.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re

from aiohttp import web

from . import bucket_admin, tagging, xmlbody
from .call import Call
from .checksums import parse_content_md5
from .errors import OSSError
from .listing import ListPage, decode_token, list_page, parse_max_keys
from .xmlparse import parse_bounded

__all__ = ["BucketHandlers", "LIST_BUCKETS_PARAMS", "MAX_DELETE_BODY"]

#: OSS deletes at most 1,000 objects per DeleteMultipleObjects request
#: (https://www.alibabacloud.com/help/en/oss/developer-reference/deletemultipleobjects).
_MAX_DELETE_KEYS = 1000
#: Elements a valid delete list can hold: ``Delete``, ``Quiet``, and ``Object``/``Key``/``VersionId``
#: per key. Parsing stops past this, so a body of countless tiny elements never becomes a tree.
_MAX_DELETE_ELEMENTS = 2 + 3 * _MAX_DELETE_KEYS
#: The largest valid delete list: 1,000 keys of 1,023 bytes, every byte XML-escaped (at most six
#: bytes, ``&quot;``), plus the elements — about 6.2 MB. Bodies are read up to this, never further.
MAX_DELETE_BODY = 8 * 1024 * 1024
#: ListBuckets' parameters (https://www.alibabacloud.com/help/en/oss/developer-reference/listbuckets), with
#: the tag filters alibabacloud-oss-v2's ``ListBucketsRequest`` sends (``tag-key``, ``tag-value``, ``tagging``).
LIST_BUCKETS_PARAMS = frozenset({"prefix", "marker", "max-keys", "resource-group-id", "tag-key", "tag-value",
                                 "tagging"})


def _xml(body: bytes, status: int = 200) -> web.Response:
    return web.Response(body=body, status=status, content_type="application/xml")


class BucketHandlers:
    """Service and bucket operations; the class that mixes them in provides ``store``,
    ``region``, ``synthetic`` and ``multipart``."""

    async def list_buckets(self, call: Call) -> web.StreamResponse:
        """ListBuckets with ``prefix``, ``marker`` and ``max-keys`` (default 100), paged like
        ListObjects V1: when truncated, ``NextMarker`` is the last bucket name returned. The tag
        filters (:func:`_tag_filter`) apply before paging; synthetic buckets have no tags."""
        q = call.query
        prefix, marker = q.get("prefix", ""), q.get("marker", "")
        max_keys = parse_max_keys(q.get("max-keys"))
        tag_filter = _tag_filter(q)
        buckets = await asyncio.to_thread(self.store.list_buckets)
        if self.synthetic:  # they shadow a directory of the same name
            buckets = sorted({**dict(buckets), **{name: ops.created for name, ops in self.synthetic.items()}}.items())
        matching = [(name, created) for name, created in buckets if name.startswith(prefix) and name > marker]
        if tag_filter is not None:
            matching = await asyncio.to_thread(lambda: [
                (name, created) for name, created in matching if name not in self.synthetic
                and bucket_admin.tags_match(bucket_admin.bucket_tags(self.store, name), *tag_filter)])
        truncated = 0 < max_keys < len(matching)
        page = matching[:max_keys]
        classes = await asyncio.to_thread(
            lambda: {name: bucket_admin.default_storage_class(self.store, name) for name, _ in page
                     if name not in self.synthetic})
        return _xml(xmlbody.list_buckets(page, self.region, prefix=prefix, marker=marker,
                                         max_keys=max_keys, truncated=truncated, classes=classes))

    async def put_bucket(self, call: Call) -> web.StreamResponse:
        assert call.bucket is not None
        settings = bucket_admin.parse_create_configuration(await call.read_body(bucket_admin.MAX_CREATE_BODY))
        created = await asyncio.to_thread(lambda: self.store.create_bucket(call.bucket, **settings))
        if not created:  # also when it is ours: OSS answers 409 then too (PutBucket "Error codes")
            raise OSSError(409, "BucketAlreadyExists", "The requested bucket name is not available.",
                           "0015-00000104", {"BucketName": call.bucket})
        return web.Response(status=200, headers={"Location": f"/{call.bucket}"})

    async def get_bucket_info(self, call: Call) -> web.StreamResponse:
        assert call.bucket is not None
        await asyncio.to_thread(self.store.require_bucket, call.bucket)
        created = await asyncio.to_thread(self.store.bucket_created, call.bucket)
        settings = await asyncio.to_thread(bucket_admin.bucket_settings, self.store, call.bucket)
        return _xml(xmlbody.bucket_info(call.bucket, created, self.region, storage_class=settings["StorageClass"],
                                        redundancy=settings["DataRedundancyType"]))

    async def delete_bucket(self, call: Call) -> web.StreamResponse:
        assert call.bucket is not None
        await asyncio.to_thread(bucket_admin.delete_bucket, self.store, self.multipart.uploads, call.bucket)
        return web.Response(status=204)

    async def get_bucket_stat(self, call: Call) -> web.StreamResponse:
        assert call.bucket is not None
        stat = await asyncio.to_thread(bucket_admin.bucket_stat, self.store, self.multipart.uploads, call.bucket)
        return _xml(xmlbody.render(("BucketStat", list(stat.items()))))

    async def put_bucket_tags(self, call: Call) -> web.StreamResponse:
        """PutBucketTags: the body's tags replace the bucket's (404 before the body is read)."""
        assert call.bucket is not None
        await asyncio.to_thread(self.store.require_bucket, call.bucket)
        tags = tagging.parse_bucket_tagging_xml(await call.read_body(tagging.MAX_TAGGING_BODY))
        await asyncio.to_thread(bucket_admin.set_bucket_tags, self.store, call.bucket, tags)
        return web.Response(status=200)

    async def get_bucket_tags(self, call: Call) -> web.StreamResponse:
        """GetBucketTags: the bucket's tags, an empty TagSet when it has none."""
        assert call.bucket is not None
        await asyncio.to_thread(self.store.require_bucket, call.bucket)
        tags = await asyncio.to_thread(bucket_admin.bucket_tags, self.store, call.bucket)
        return _xml(tagging.tagging_xml(tags))

    async def delete_bucket_tags(self, call: Call) -> web.StreamResponse:
        """DeleteBucketTags: every tag, or with ``?tagging=k1,k2`` only those keys; 204 even when
        there was none to delete (https://www.alibabacloud.com/help/doc-detail/117805.htm)."""
        assert call.bucket is not None
        keys = [key for key in call.query.get("tagging", "").split(",") if key] or None
        await asyncio.to_thread(bucket_admin.delete_bucket_tags, self.store, call.bucket, keys)
        return web.Response(status=204)

    async def get_bucket_location(self, call: Call) -> web.StreamResponse:
        assert call.bucket is not None
        await asyncio.to_thread(self.store.require_bucket, call.bucket)
        return _xml(xmlbody.bucket_location(self.region))

    def _encoding(self, call: Call) -> str:
        encoding = call.query.get("encoding-type", "")
        if encoding not in ("", "url"):
            raise OSSError.invalid_argument("encoding-type must be url.", ArgumentName="encoding-type")
        return encoding

    async def list_objects_v1(self, call: Call) -> web.StreamResponse:
        assert call.bucket is not None
        q = call.query
        prefix, marker, delimiter = q.get("prefix", ""), q.get("marker", ""), q.get("delimiter", "")
        max_keys, encoding = parse_max_keys(q.get("max-keys")), self._encoding(call)
        page = await self._list_page(call.bucket, prefix=prefix, delimiter=delimiter, start_after=marker,
                                     max_keys=max_keys)
        return _xml(xmlbody.list_objects_v1(call.bucket, page, prefix=prefix, marker=marker,
                                            max_keys=max_keys, delimiter=delimiter, encoding_type=encoding))

    async def list_objects_v2(self, call: Call) -> web.StreamResponse:
        assert call.bucket is not None
        q = call.query
        prefix, delimiter = q.get("prefix", ""), q.get("delimiter", "")
        token, start_after = q.get("continuation-token", ""), q.get("start-after", "")
        max_keys, encoding = parse_max_keys(q.get("max-keys")), self._encoding(call)
        resume_after = max(decode_token(token), start_after) if token else start_after
        page = await self._list_page(call.bucket, prefix=prefix, delimiter=delimiter, start_after=resume_after,
                                     max_keys=max_keys)
        return _xml(xmlbody.list_objects_v2(
            call.bucket, page, prefix=prefix, start_after=start_after, continuation_token=token,
            max_keys=max_keys, delimiter=delimiter, encoding_type=encoding,
            fetch_owner=q.get("fetch-owner", "").lower() == "true"))

    async def _list_page(self, bucket: str, **query) -> ListPage:
        return await asyncio.to_thread(list_page, self.store, bucket, **query)

    async def delete_multiple(self, call: Call) -> web.StreamResponse:
        """DeleteMultipleObjects. The body (the key list) is not signed but Content-MD5 is, so OSS
        requires Content-MD5 here and deletes nothing unless the body matches it; so does this server."""
        assert call.bucket is not None
        expected_md5 = parse_content_md5(call.header("Content-MD5"))
        if expected_md5 is None:
            raise OSSError(400, "MissingArgument", "Missing Some Required Arguments: Content-MD5.",
                           "0016-00000606", {"ArgumentName": "Content-MD5"})
        encoding = self._encoding(call)
        await asyncio.to_thread(self.store.require_bucket, call.bucket)
        body = await call.read_body(MAX_DELETE_BODY)
        if hashlib.md5(body).digest() != expected_md5:
            raise OSSError(400, "InvalidDigest", "The Content-MD5 you specified did not match what we received.",
                           "0017-00000503")
        keys, quiet = _parse_delete_body(body)
        deleted = []
        for key in keys:
            await asyncio.to_thread(self.store.delete, call.bucket, key)
            deleted.append(key)
        return _xml(xmlbody.delete_result([] if quiet else deleted, encoding))


TagFilter = tuple[str | None, str | None, dict[str, str] | None]


def _tag_filter(query) -> TagFilter | None:
    """ListBuckets' tag filters as (tag-key, tag-value, tagging pairs); None without any.

    ``tag-value`` needs ``tag-key``, and ``tagging`` (``"k1":"v1","k2":"v2"``, every pair must
    match) goes with neither, as alibabacloud-oss-v2's ``ListBucketsRequest`` documents: 400
    InvalidArgument otherwise."""
    key, value, pairs = query.get("tag-key"), query.get("tag-value"), query.get("tagging")
    if key is None and value is None and pairs is None:
        return None
    if value is not None and key is None:
        raise OSSError.invalid_argument("tag-value needs tag-key.", ArgumentName="tag-value")
    if pairs is None:
        return key, value, None
    if key is not None or value is not None:
        raise OSSError.invalid_argument("tagging cannot be used with tag-key or tag-value.", ArgumentName="tagging")
    try:
        every = json.loads("{" + pairs + "}")
    except ValueError:
        every = None
    if not isinstance(every, dict) or not all(isinstance(v, str) for v in every.values()):
        raise OSSError.invalid_argument('tagging must be "key1":"value1","key2":"value2".',
                                        ArgumentName="tagging", ArgumentValue=pairs[:200])
    return None, None, every


def _parse_delete_body(body: bytes) -> tuple[list[str], bool]:
    """``<Delete><Quiet>…</Quiet><Object><Key>…</Key></Object>…</Delete>`` → (keys, quiet).

    Parsed with :func:`~worker.server.xmlparse.parse_bounded`: past what 1,000 keys need, parsing stops.
    """
    too_many = OSSError(400, "MalformedXML", f"A delete request names 1 to {_MAX_DELETE_KEYS} keys.")
    body, controls = _shield_control_references(body)
    root = parse_bounded(body, max_elements=_MAX_DELETE_ELEMENTS, too_many=too_many,
                         malformed=OSSError(400, "MalformedXML", "The XML you provided was not well-formed."))
    if root.tag != "Delete":
        raise OSSError(400, "MalformedXML", "The XML root must be <Delete>.")
    keys = [obj.findtext("Key") or "" for obj in root.findall("Object")]
    if controls:
        keys = [key.translate(_FROM_SHIELD) for key in keys]
    if not keys or len(keys) > _MAX_DELETE_KEYS:
        raise too_many
    return keys, (root.findtext("Quiet") or "").strip().lower() == "true"


#: ``&#1;`` … ``&#31;`` (but tab, newline and carriage return) and their hex forms: references
#: XML 1.0 forbids, which the SDKs write for keys holding control characters (alibabacloud-oss-v2's
#: ``utils.escape_xml_value``) and OSS accepts. They are parsed as private-use characters
#: U+E000 + n and turned back after parsing.
_CONTROL_REFERENCE = re.compile(rb"&#(?:0*([0-9]{1,2})|[xX]0*([0-9a-fA-F]{1,2}));")
_FROM_SHIELD = {0xE000 + n: n for n in range(0x20)}


def _shield_control_references(body: bytes) -> tuple[bytes, bool]:
    found = False

    def shield(match: re.Match[bytes]) -> bytes:
        nonlocal found
        n = int(match[1]) if match[1] else int(match[2], 16)
        if n >= 0x20 or n in (0x09, 0x0A, 0x0D):
            return match[0]
        found = True
        return f"&#{0xE000 + n};".encode()

    return (_CONTROL_REFERENCE.sub(shield, body) if b"&#" in body else body), found
