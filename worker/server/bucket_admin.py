"""What a bucket is besides its objects: its settings (storage class, redundancy type), its
statistics (GetBucketStat), its deletion (DeleteBucket), and whether it exists at all — which
OSS answers before it looks at the signature (:func:`missing_bucket_error`).

Settings live in the bucket's ``.picscore/bucket.json`` beside its creation time (written by
:meth:`LocalStore.create_bucket <worker.server.storage.LocalStore.create_bucket>`); a bucket
without them (a folder dropped under the root) is ``Standard`` and ``LRS``.

Deleting a bucket renames its directory aside (under ``ROOT/.picscore/deleted-buckets``, which
no listing shows) and only then removes it: a crash leaves either the whole bucket or none of
it, and what is left aside is removed by the next DeleteBucket.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
import uuid
from collections.abc import Mapping
from pathlib import Path
from xml.etree import ElementTree

from ..results.atomic import fsync_path
from . import sigv1, sigv4
from .addressing import resolve
from .errors import OSSError
from .keys import RESERVED_DIR
from .multipart_store import MultipartStore
from .object_attrs import STORAGE_CLASSES
from .storage import LocalStore
from .wire import WireRequest, decode_path, parse_query_params

__all__ = [
    "REDUNDANCY_TYPES", "MAX_CREATE_BODY", "bucket_settings", "default_storage_class", "parse_create_configuration",
    "bucket_stat", "delete_bucket", "missing_bucket_error", "bucket_tags", "set_bucket_tags", "delete_bucket_tags",
    "tags_match",
]

#: PutBucket's ``DataRedundancyType`` (https://www.alibabacloud.com/help/en/oss/developer-reference/putbucket).
REDUNDANCY_TYPES = ("LRS", "ZRS")
#: A ``CreateBucketConfiguration`` is two short elements; anything near this is not one.
MAX_CREATE_BODY = 16 * 1024
#: OSS bills an IA, Archive, Cold Archive or Deep Cold Archive object under 64 KB as 64 KB
#: (GetBucketStat: https://help.aliyun.com/document_detail/426056.htm); the ``…RealStorage``
#: fields carry the bytes themselves.
_MIN_BILLED = 64 * 1024
#: GetBucketStat's per-class field prefixes.
_STAT_PREFIX = {"Standard": "Standard", "IA": "InfrequentAccess", "Archive": "Archive",
                "ColdArchive": "ColdArchive", "DeepColdArchive": "DeepColdArchive"}
_DELETED_DIR = "deleted-buckets"
#: Query parameters that carry a presigned URL's signature, not an operation.
_SIGNATURE_PARAMS = sigv1.PRESIGN_PARAMS | sigv4.PRESIGN_PARAMS


# -- settings ----------------------------------------------------------------------------------
def bucket_settings(store: LocalStore, bucket: str) -> dict[str, str]:
    """The bucket's ``StorageClass`` and ``DataRedundancyType`` as PutBucket set them."""
    saved = _read_bucket_json(store, bucket)
    klass, redundancy = saved.get("storage_class"), saved.get("data_redundancy_type")
    return {"StorageClass": klass if klass in STORAGE_CLASSES else "Standard",
            "DataRedundancyType": redundancy if redundancy in REDUNDANCY_TYPES else "LRS"}


def default_storage_class(store: LocalStore, bucket: str) -> str:
    """The class an object written without ``x-oss-storage-class`` gets: the bucket's, as on OSS
    ("Overview of storage classes": https://www.alibabacloud.com/help/en/oss/user-guide/overview-53)."""
    return bucket_settings(store, bucket)["StorageClass"]


def parse_create_configuration(body: bytes) -> dict[str, str]:
    """``<CreateBucketConfiguration>`` → settings for :meth:`LocalStore.create_bucket`; an empty
    body is the defaults. 400 MalformedXML for a document that is not one, 400 InvalidArgument
    for a storage class or redundancy type OSS does not have."""
    if not body.strip():
        return {}
    try:
        root = ElementTree.fromstring(body)
    except (ElementTree.ParseError, LookupError, ValueError):
        raise OSSError(400, "MalformedXML", "The XML you provided was not well-formed.") from None
    if root.tag != "CreateBucketConfiguration":
        raise OSSError(400, "MalformedXML", "The XML root must be <CreateBucketConfiguration>.")
    settings: dict[str, str] = {}
    for tag, field, allowed in (("StorageClass", "storage_class", STORAGE_CLASSES),
                                ("DataRedundancyType", "data_redundancy_type", REDUNDANCY_TYPES)):
        value = (root.findtext(tag) or "").strip()
        if not value:
            continue
        if value not in allowed:
            raise OSSError.invalid_argument(f"Invalid {tag}: {value[:64]!r}; valid values are {', '.join(allowed)}.",
                                            ArgumentName=tag, ArgumentValue=value[:64])
        settings[field] = value
    return settings


# -- bucket tags (PutBucketTags, GetBucketTags, DeleteBucketTags) ------------------------------------
#: Serialises read-modify-writes of ``bucket.json`` within this process.
_SETTINGS_LOCK = threading.Lock()


def _read_bucket_json(store: LocalStore, bucket: str) -> dict:
    try:
        saved = json.loads((store.bucket_path(bucket) / RESERVED_DIR / "bucket.json").read_text())
    except (OSError, ValueError):
        return {}
    return saved if isinstance(saved, dict) else {}


def bucket_tags(store: LocalStore, bucket: str) -> dict[str, str]:
    """The bucket's tags in the order PutBucketTags gave them; none when it has none."""
    tags = _read_bucket_json(store, bucket).get("tags")
    if not isinstance(tags, dict):
        return {}
    return {k: v for k, v in tags.items() if isinstance(k, str) and isinstance(v, str)}


def set_bucket_tags(store: LocalStore, bucket: str, tags: Mapping[str, str]) -> None:
    """Replace the bucket's tags (404 NoSuchBucket), keeping the rest of ``bucket.json``."""
    _update_tags(store, bucket, lambda _old: dict(tags))


def delete_bucket_tags(store: LocalStore, bucket: str, keys: list[str] | None = None) -> None:
    """Drop every tag, or only ``keys`` (DeleteBucketTags ``?tagging=k1,k2``); keys the bucket
    does not have are no error (OSS answers 204 then too)."""
    _update_tags(store, bucket, lambda old: {} if keys is None else {k: v for k, v in old.items() if k not in keys})


def _update_tags(store: LocalStore, bucket: str, change) -> None:
    reserved = store.require_bucket(bucket) / RESERVED_DIR
    with _SETTINGS_LOCK:
        saved = _read_bucket_json(store, bucket)
        saved["tags"] = change(bucket_tags(store, bucket))
        try:
            reserved.mkdir(exist_ok=True)  # not parents: a bucket deleted meanwhile stays deleted
            temp = reserved / f"bucket.json.{uuid.uuid4().hex}.tmp"
            temp.write_text(json.dumps(saved))
            os.replace(temp, reserved / "bucket.json")
        except FileNotFoundError:
            raise OSSError.no_such_bucket(bucket) from None


def tags_match(tags: Mapping[str, str], key: str | None, value: str | None, every: Mapping[str, str] | None) -> bool:
    """Whether a bucket with ``tags`` passes ListBuckets' filters: ``tag-key`` (and ``tag-value``),
    or ``tagging`` (every pair)."""
    if key is not None and (key not in tags or (value is not None and tags[key] != value)):
        return False
    return every is None or all(tags.get(k) == v for k, v in every.items())


# -- GetBucketStat -----------------------------------------------------------------------------
def bucket_stat(store: LocalStore, uploads: MultipartStore, bucket: str) -> dict[str, int]:
    """GetBucketStat's numbers, counted now (OSS's lag an hour; these never do).

    ``Storage`` is the bytes of every object; ``<Class>Storage`` the billed bytes of a class,
    ``<Class>RealStorage`` its bytes; parts of multipart uploads in progress are counted apart
    (``MultipartPartCount``/``MultipartPartStorage``). ``LastModifiedTime`` is the newest object
    or upload, in epoch seconds (0 for an empty bucket, as OSS answers for a new one)."""
    stat = dict.fromkeys(["Storage", "ObjectCount", "MultipartUploadCount", "LiveChannelCount",
                          "LastModifiedTime", "MultipartPartCount", "MultipartPartStorage", "DeleteMarkerCount"], 0)
    for klass, prefix in _STAT_PREFIX.items():
        stat[f"{prefix}Storage"] = stat[f"{prefix}ObjectCount"] = 0
        if klass != "Standard":
            stat[f"{prefix}RealStorage"] = 0
    newest = 0.0
    for key in store.iter_keys(bucket):
        try:
            meta = store.head(bucket, key)
        except OSSError:  # deleted since it was listed
            continue
        prefix = _STAT_PREFIX.get(meta.storage_class, "Standard")
        stat["Storage"] += meta.size
        stat["ObjectCount"] += 1
        stat[f"{prefix}ObjectCount"] += 1
        if prefix == "Standard":
            stat["StandardStorage"] += meta.size
        else:
            stat[f"{prefix}Storage"] += max(meta.size, _MIN_BILLED)
            stat[f"{prefix}RealStorage"] += meta.size
        newest = max(newest, meta.last_modified)
    for upload in uploads.uploads(bucket):
        stat["MultipartUploadCount"] += 1
        newest = max(newest, upload.initiated)
        with contextlib.suppress(OSSError):  # completed or aborted meanwhile
            for part in uploads.parts(bucket, upload.key, upload.upload_id)[1]:
                stat["MultipartPartCount"] += 1
                stat["MultipartPartStorage"] += part.size
    stat["LastModifiedTime"] = int(newest)
    return stat


# -- DeleteBucket ------------------------------------------------------------------------------
def delete_bucket(store: LocalStore, uploads: MultipartStore, bucket: str) -> None:
    """Delete an empty bucket: 404 NoSuchBucket, or 409 BucketNotEmpty while it holds an object or
    a multipart upload in progress (https://www.alibabacloud.com/help/en/oss/developer-reference/deletebucket;
    "delete … fragments generated by multipart uploads" first:
    https://www.alibabacloud.com/help/doc-detail/149428.htm).

    Stricter than OSS in one way: any file at all under the folder — one no listing shows, such as
    a FIFO or a name OSS cannot have — keeps the bucket, so no DeleteBucket removes a file it never
    showed. Checked and renamed aside under the store's tree lock, so no PUT publishes between."""
    path = store.require_bucket(bucket)
    trash = store.root / ".picscore" / _DELETED_DIR
    with store._tree_lock:
        if next(store.iter_keys(bucket), None) is not None or _holds_files(path) or uploads.uploads(bucket):
            raise OSSError(409, "BucketNotEmpty", "The bucket you tried to delete is not empty.",
                           None, {"BucketName": bucket})
        trash.mkdir(parents=True, exist_ok=True)
        os.rename(path, trash / f"{bucket}.{uuid.uuid4().hex}")
        fsync_path(store.root, directory=True)
    store._invalidate(path)
    for leftover in os.scandir(trash):  # this one, and any a crash left
        with contextlib.suppress(OSError):
            if leftover.is_symlink() or not leftover.is_dir(follow_symlinks=False):
                os.unlink(leftover.path)
            else:
                shutil.rmtree(leftover.path)


def _holds_files(path: Path) -> bool:
    """Whether anything but directories lies under ``path``, its own ``.picscore`` aside."""
    for top, dirs, files in os.walk(path):
        if top == str(path):
            dirs[:] = [name for name in dirs if name != RESERVED_DIR]
        if files or any(os.path.islink(os.path.join(top, name)) for name in dirs):
            return True
    return False


# -- which check comes first -------------------------------------------------------------------
def missing_bucket_error(store: LocalStore, synthetic: Mapping[str, object], wire: WireRequest,
                         service_host: str | None) -> OSSError | None:
    """404 NoSuchBucket when ``wire`` addresses a bucket that does not exist, for a request that
    failed authentication: OSS looks the bucket up before it checks who signed, so a bad
    AccessKeyId on a missing bucket is 404 (and the SDKs' ``is_bucket_exist`` relies on that) —
    except PutBucket, whose bucket is not there yet (a bad key creating one stays 403
    InvalidAccessKeyId, as the SDK's own suite expects). None when the bucket exists, when the
    request is not bucket-scoped, or when its address cannot be read."""
    try:
        address = resolve(wire.host, decode_path(wire.raw_path), service_host=service_host)[0]
        names = {p.name for p in parse_query_params(wire.raw_query)} - _SIGNATURE_PARAMS
    except (OSSError, ValueError):
        return None
    bucket = address.bucket
    if bucket is None or bucket in synthetic or (wire.method == "PUT" and not address.key and not names):
        return None
    if (store.root / bucket).is_dir():
        return None
    return OSSError.no_such_bucket(bucket)
