"""XML documents the server answers with: listings, bucket info, delete results.

Built from nested ``(tag, value)`` tuples so each document reads like the OSS API reference,
and every text value is escaped in one place (:func:`~worker.server.errors.xml_text`, which also
keeps characters XML 1.0 cannot carry out of the document).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from urllib.parse import quote

from .errors import xml_text
from .listing import ListPage, encode_token
from .object_kinds import object_type
from .storage import ObjectMeta

__all__ = [
    "Node", "render", "iso8601", "list_objects_v1", "list_objects_v2", "list_buckets",
    "bucket_info", "bucket_location", "delete_result", "OWNER_ID",
]

Node = tuple[str, str | int | bool | Sequence["Node"] | None]

#: A fixed owner: the embedded server has one tenant.
OWNER_ID = "1000000000000000"


def render(root: Node) -> bytes:
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + _render(root)).encode("utf-8")


def _render(node: Node) -> str:
    tag, value = node
    if value is None:
        return ""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (str, int)):
        text = xml_text(str(value))
    else:
        text = "".join(_render(child) for child in value)
    return f"<{tag}>{text}</{tag}>"


def iso8601(epoch: float) -> str:
    """OSS listings' time format: ``2026-11-26T13:03:16.000Z``."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _encoder(encoding_type: str) -> Callable[[str], str]:
    if encoding_type == "url":
        return lambda text: quote(text, safe="/")
    return lambda text: text


def _owner() -> Node:
    return ("Owner", [("ID", OWNER_ID), ("DisplayName", OWNER_ID)])


def _contents(entries: Iterable[tuple[str, ObjectMeta]], enc, with_owner: bool) -> list[Node]:
    return [
        ("Contents", [
            ("Key", enc(key)),
            ("LastModified", iso8601(meta.last_modified)),
            ("ETag", meta.etag),
            ("Type", object_type(meta)),
            ("Size", meta.size),
            ("StorageClass", meta.storage_class),
            _owner() if with_owner else ("Owner", None),
        ])
        for key, meta in entries
    ]


def _prefixes(page: ListPage, enc) -> list[Node]:
    return [("CommonPrefixes", [("Prefix", enc(p))]) for p in page.common_prefixes]


def list_objects_v1(bucket: str, page: ListPage, *, prefix: str, marker: str, max_keys: int,
                    delimiter: str, encoding_type: str) -> bytes:
    enc = _encoder(encoding_type)
    return render(("ListBucketResult", [
        ("Name", bucket),
        ("Prefix", enc(prefix)),
        ("Marker", enc(marker)),
        ("MaxKeys", max_keys),
        ("Delimiter", enc(delimiter)),
        ("EncodingType", encoding_type or None),
        ("IsTruncated", page.truncated),
        ("NextMarker", enc(page.next_marker) if page.truncated else None),
        *_contents(page.entries, enc, with_owner=True),
        *_prefixes(page, enc),
    ]))


def list_objects_v2(bucket: str, page: ListPage, *, prefix: str, start_after: str,
                    continuation_token: str, max_keys: int, delimiter: str,
                    encoding_type: str, fetch_owner: bool) -> bytes:
    enc = _encoder(encoding_type)
    return render(("ListBucketResult", [
        ("Name", bucket),
        ("Prefix", enc(prefix)),
        ("StartAfter", enc(start_after) if start_after else None),
        ("ContinuationToken", enc(continuation_token) if continuation_token else None),
        ("MaxKeys", max_keys),
        ("Delimiter", enc(delimiter)),
        ("EncodingType", encoding_type or None),
        ("IsTruncated", page.truncated),
        ("KeyCount", page.count),
        ("NextContinuationToken", enc(encode_token(page.next_marker)) if page.truncated else None),
        *_contents(page.entries, enc, with_owner=fetch_owner),
        *_prefixes(page, enc),
    ]))


def _bucket_fields(name: str, created: float, region: str, storage_class: str = "Standard") -> list[Node]:
    return [
        ("CreationDate", iso8601(created)),
        ("ExtranetEndpoint", f"oss-{region}.aliyuncs.com"),
        ("IntranetEndpoint", f"oss-{region}-internal.aliyuncs.com"),
        ("Location", f"oss-{region}"),
        ("Name", name),
        ("Region", region),
        ("StorageClass", storage_class),
    ]


def list_buckets(buckets: Sequence[tuple[str, float]], region: str, *, prefix: str = "", marker: str = "",
                 max_keys: int = 100, truncated: bool = False, classes: Mapping[str, str] | None = None) -> bytes:
    classes = classes or {}
    return render(("ListAllMyBucketsResult", [
        ("Prefix", prefix),
        ("Marker", marker),
        ("MaxKeys", max_keys),
        ("IsTruncated", truncated),
        ("NextMarker", buckets[-1][0] if truncated and buckets else None),
        _owner(),
        ("Buckets", [("Bucket", _bucket_fields(name, created, region, classes.get(name, "Standard")))
                     for name, created in buckets]),
    ]))


def bucket_info(name: str, created: float, region: str, *, storage_class: str = "Standard",
                redundancy: str = "LRS") -> bytes:
    """GetBucketInfo: every field the SDKs parse. What the embedded server does not have (versioning,
    encryption, logging, replication, acceleration) reads as OSS reports it when never configured;
    Block Public Access is on, as OSS enables it for new buckets since October 2025
    (https://www.alibabacloud.com/help/en/oss/developer-reference/putbucket); the resource group
    is the default one, which OSS names ``rg-default-id``
    (https://help.aliyun.com/document_detail/31968.htm)."""
    return render(("BucketInfo", [("Bucket", [
        *_bucket_fields(name, created, region, storage_class),
        ("AccessMonitor", "Disabled"),
        ("DataRedundancyType", redundancy),
        ("Versioning", None),
        ("TransferAcceleration", "Disabled"),
        ("CrossRegionReplication", "Disabled"),
        ("ResourceGroupId", "rg-default-id"),
        ("BlockPublicAccess", True),
        ("Comment", ""),
        _owner(),
        ("AccessControlList", [("Grant", "private")]),
        ("ServerSideEncryptionRule", [("SSEAlgorithm", "None")]),
        ("BucketPolicy", [("LogBucket", ""), ("LogPrefix", "")]),
    ])]))


def bucket_location(region: str) -> bytes:
    return render(("LocationConstraint", f"oss-{region}"))


def delete_result(deleted: Sequence[str], encoding_type: str) -> bytes:
    enc = _encoder(encoding_type)
    return render(("DeleteResult", [
        ("EncodingType", encoding_type or None),
        *[("Deleted", [("Key", enc(key))]) for key in deleted],
    ]))
