"""Multipart upload against a real ``picscore serve``, through the unmodified official SDKs:
``alibabacloud_oss_v2`` (low-level calls, V4 and V1 signing, and its ``Uploader``) and ``oss2``
(``resumable_upload``, list iterators).

Expected values are computed here from the bytes sent (MD5s, the multipart ETag form, CRC-64 by
crcmod), never taken from what the SDK derived.
"""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path

import alibabacloud_oss_v2 as oss
import crcmod
import oss2
import pytest

from tests.conftest import BUCKET
from worker.server.launch import ServerProcess

from .helpers import quoted_md5, unique_bucket, unique_prefix
from .test_server_copy_tagging import oss2_bucket, v2_client, v2_fails

KB = 1024
MB = 1024 * 1024
_CRC = crcmod.Crc(0x142F0E1EBA9EA3693, initCrc=0, rev=True, xorOut=0xFFFFFFFFFFFFFFFF)


def crc64(data: bytes) -> str:
    crc = _CRC.new()
    crc.update(data)
    return str(crc.crcValue)


def multipart_etag(parts: list[bytes]) -> str:
    md5s = b"".join(hashlib.md5(part).digest() for part in parts)
    return f'"{hashlib.md5(md5s).hexdigest().upper()}-{len(parts)}"'


def payload(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


@pytest.fixture(params=["v4", "v1"])
def client(server: ServerProcess, request: pytest.FixtureRequest) -> oss.Client:
    return v2_client(server, request.param)


def initiate(client: oss.Client, key: str, bucket: str = BUCKET, **kwargs) -> str:
    result = client.initiate_multipart_upload(oss.InitiateMultipartUploadRequest(bucket=bucket, key=key, **kwargs))
    assert result.upload_id and result.key == key
    return result.upload_id


def upload(client: oss.Client, key: str, upload_id: str, number: int, data: bytes, **kwargs) -> oss.UploadPartResult:
    return client.upload_part(oss.UploadPartRequest(bucket=BUCKET, key=key, upload_id=upload_id, part_number=number,
                                                    body=data, **kwargs))


def complete(client: oss.Client, key: str, upload_id: str, parts: list[tuple[int, str]], **kwargs):
    body = oss.CompleteMultipartUpload(parts=[oss.UploadPart(part_number=n, etag=e) for n, e in parts])
    return client.complete_multipart_upload(oss.CompleteMultipartUploadRequest(
        bucket=BUCKET, key=key, upload_id=upload_id, complete_multipart_upload=body, **kwargs))


def get_bytes(client: oss.Client, key: str, bucket: str = BUCKET) -> tuple[bytes, oss.GetObjectResult]:
    result = client.get_object(oss.GetObjectRequest(bucket=bucket, key=key))
    return result.body.read(), result


def test_initiate_upload_list_complete(client: oss.Client) -> None:
    key = unique_prefix("mp") + "photo one.bin"
    parts = [payload(200 * KB, 1), payload(150 * KB, 2), payload(50 * KB + 7, 3)]
    upload_id = initiate(client, key, content_type="image/x-test", metadata={"owner": "alice"}, storage_class="IA")
    etags = {}
    upload(client, key, upload_id, 2, b"replaced later" * 10000)
    for number, data in enumerate(parts, 1):
        result = upload(client, key, upload_id, number, data)
        assert result.etag == quoted_md5(data)
        assert result.hash_crc64 == crc64(data)
        etags[number] = result.etag

    first = client.list_parts(oss.ListPartsRequest(bucket=BUCKET, key=key, upload_id=upload_id, max_parts=2))
    assert [p.part_number for p in first.parts] == [1, 2] and first.is_truncated
    assert first.next_part_number_marker == 2
    rest = client.list_parts(oss.ListPartsRequest(bucket=BUCKET, key=key, upload_id=upload_id,
                                                  part_number_marker=str(first.next_part_number_marker)))
    assert [p.part_number for p in rest.parts] == [3] and not rest.is_truncated
    listed = [*first.parts, *rest.parts]
    assert [p.etag for p in listed] == [etags[1], etags[2], etags[3]]
    assert [p.size for p in listed] == [len(p) for p in parts]
    assert [p.hash_crc64 for p in listed] == [crc64(p) for p in parts]

    # in progress: not an object, not in the object listing
    v2_fails(lambda: client.head_object(oss.HeadObjectRequest(bucket=BUCKET, key=key)), 404, "NoSuchKey")
    listing = client.list_objects_v2(oss.ListObjectsV2Request(bucket=BUCKET, prefix=key))
    assert not listing.contents

    done = complete(client, key, upload_id, sorted(etags.items()))
    whole = b"".join(parts)
    assert done.etag == multipart_etag(parts)
    assert done.key == key and done.bucket == BUCKET
    assert done.hash_crc64 == crc64(whole)
    body, got = get_bytes(client, key)
    assert body == whole
    assert got.etag == multipart_etag(parts)
    assert got.headers["x-oss-hash-crc64ecma"] == crc64(whole)
    assert got.content_type == "image/x-test"
    assert got.metadata == {"owner": "alice"}
    assert got.storage_class == "IA"
    # the upload is gone
    v2_fails(lambda: client.list_parts(oss.ListPartsRequest(bucket=BUCKET, key=key, upload_id=upload_id)),
             404, "NoSuchUpload")


def test_complete_subset_and_complete_all(client: oss.Client) -> None:
    key = unique_prefix("mp-all") + "obj"
    parts = [payload(120 * KB, 4), payload(130 * KB, 5), payload(10, 6)]
    upload_id = initiate(client, key)
    for number, data in zip((1, 5, 9), parts, strict=True):
        upload(client, key, upload_id, number, data)
    result = client.complete_multipart_upload(oss.CompleteMultipartUploadRequest(
        bucket=BUCKET, key=key, upload_id=upload_id, complete_all="yes"))
    assert result.etag == multipart_etag(parts)
    assert get_bytes(client, key)[0] == b"".join(parts)

    # only the parts named are used: part 3 is left out
    key2 = key + "-subset"
    upload_id = initiate(client, key2)
    tags = [upload(client, key2, upload_id, n, d).etag for n, d in ((1, parts[0]), (3, parts[2]), (4, parts[1]))]
    complete(client, key2, upload_id, [(1, tags[0]), (4, tags[2])])
    assert get_bytes(client, key2)[0] == parts[0] + parts[1]


def test_abort(client: oss.Client) -> None:
    key = unique_prefix("mp-abort") + "obj"
    upload_id = initiate(client, key)
    upload(client, key, upload_id, 1, b"x" * 1000)
    result = client.abort_multipart_upload(oss.AbortMultipartUploadRequest(bucket=BUCKET, key=key,
                                                                           upload_id=upload_id))
    assert result.status_code == 204
    for call in (
        lambda: client.abort_multipart_upload(oss.AbortMultipartUploadRequest(bucket=BUCKET, key=key,
                                                                              upload_id=upload_id)),
        lambda: client.list_parts(oss.ListPartsRequest(bucket=BUCKET, key=key, upload_id=upload_id)),
        lambda: upload(client, key, upload_id, 2, b"y"),
        lambda: complete(client, key, upload_id, [(1, quoted_md5(b"x" * 1000))]),
    ):
        err = v2_fails(call, 404, "NoSuchUpload")
        assert err.ec == "0017-00000244"
    v2_fails(lambda: client.head_object(oss.HeadObjectRequest(bucket=BUCKET, key=key)), 404, "NoSuchKey")


def test_errors(client: oss.Client) -> None:
    key = unique_prefix("mp-err") + "obj"
    upload_id = initiate(client, key)
    small, big = payload(10 * KB, 7), payload(120 * KB, 8)
    e1 = upload(client, key, upload_id, 1, small).etag
    e2 = upload(client, key, upload_id, 2, big).etag
    e3 = upload(client, key, upload_id, 3, big).etag

    err = v2_fails(lambda: complete(client, key, upload_id, [(2, e2), (1, e1)]), 400, "InvalidPartOrder")
    assert err.ec == "0042-00000209"
    v2_fails(lambda: complete(client, key, upload_id, [(2, e2), (2, e2)]), 400, "InvalidPartOrder")
    v2_fails(lambda: complete(client, key, upload_id, [(2, e2), (3, quoted_md5(b"other"))]), 400, "InvalidPart")
    v2_fails(lambda: complete(client, key, upload_id, [(2, e2), (4, e3)]), 400, "InvalidPart")
    err = v2_fails(lambda: complete(client, key, upload_id, [(1, e1), (2, e2)]), 400, "EntityTooSmall")
    assert err.ec == "0042-00000213"
    for number in (0, 10001):
        err = v2_fails(lambda n=number: upload(client, key, upload_id, n, b"z"), 400, "InvalidArgument")
        assert err.ec == "0017-00000220"
    bad_md5 = "1B2M2Y8AsgTpgAmY7PhCfg=="  # MD5 of the empty string
    v2_fails(lambda: upload(client, key, upload_id, 4, b"not empty", content_md5=bad_md5), 400, "InvalidDigest")
    err = v2_fails(lambda: complete(client, key, "0" * 32, [(2, e2)]), 404, "NoSuchUpload")
    assert err.ec == "0017-00000244"
    v2_fails(lambda: upload(client, key, "../../etc", 1, b"z"), 404, "NoSuchUpload")
    v2_fails(lambda: upload(client, key + "-other", upload_id, 1, b"z"), 404, "NoSuchUpload")
    v2_fails(lambda: client.list_parts(oss.ListPartsRequest(bucket=BUCKET, key=key, upload_id=upload_id,
                                                            max_parts=1001)), 400, "InvalidArgument")
    # nothing was published by the failures; the upload still completes with a valid list
    v2_fails(lambda: client.head_object(oss.HeadObjectRequest(bucket=BUCKET, key=key)), 404, "NoSuchKey")
    parts = client.list_parts(oss.ListPartsRequest(bucket=BUCKET, key=key, upload_id=upload_id)).parts
    assert [p.part_number for p in parts] == [1, 2, 3]
    complete(client, key, upload_id, [(2, e2), (3, e3)])
    assert get_bytes(client, key)[0] == big + big


def test_upload_part_copy(client: oss.Client) -> None:
    prefix = unique_prefix("mp-copy")
    source = payload(300 * KB + 11, 9)
    client.put_object(oss.PutObjectRequest(bucket=BUCKET, key=prefix + "src file", body=source))
    key = prefix + "dst"
    upload_id = initiate(client, key)
    copied = client.upload_part_copy(oss.UploadPartCopyRequest(
        bucket=BUCKET, key=key, upload_id=upload_id, part_number=1, source_bucket=BUCKET,
        source_key=prefix + "src file", source_range="bytes=100-200099"))
    assert copied.etag == quoted_md5(source[100:200100])
    whole = client.upload_part_copy(oss.UploadPartCopyRequest(
        bucket=BUCKET, key=key, upload_id=upload_id, part_number=2, source_key=prefix + "src file"))
    assert whole.etag == quoted_md5(source)
    tail = upload(client, key, upload_id, 3, b"tail")
    for bad in ("bytes=0-400000", "bytes=5-1", "items=0-1"):
        v2_fails(lambda r=bad: client.upload_part_copy(oss.UploadPartCopyRequest(
            bucket=BUCKET, key=key, upload_id=upload_id, part_number=4, source_key=prefix + "src file",
            source_range=r)), 400, "InvalidArgument")
    v2_fails(lambda: client.upload_part_copy(oss.UploadPartCopyRequest(
        bucket=BUCKET, key=key, upload_id=upload_id, part_number=4, source_key=prefix + "missing")), 404, "NoSuchKey")
    v2_fails(lambda: client.upload_part_copy(oss.UploadPartCopyRequest(
        bucket=BUCKET, key=key, upload_id=upload_id, part_number=4, source_key=prefix + "src file",
        if_match=quoted_md5(b"other"))), 412, "PreconditionFailed")
    done = complete(client, key, upload_id, [(1, copied.etag), (2, whole.etag), (3, tail.etag)])
    expected = [source[100:200100], source, b"tail"]
    assert done.etag == multipart_etag(expected)
    assert get_bytes(client, key)[0] == b"".join(expected)


def test_list_multipart_uploads_paginated(server: ServerProcess) -> None:
    client = v2_client(server, "v4")
    bucket = unique_bucket("mpu")
    client.put_bucket(oss.PutBucketRequest(bucket=bucket))
    keys = ["a/1", "a/2", "b", "b", "c%d 1", "c\u00e9"]
    ids = [initiate(client, key, bucket=bucket) for key in keys]
    expected = sorted(zip(keys, ids, strict=True), key=lambda kv: (kv[0].encode(), kv[1]))

    seen: list[tuple[str, str]] = []
    key_marker, id_marker = "", ""
    for _ in range(10):
        page = client.list_multipart_uploads(oss.ListMultipartUploadsRequest(
            bucket=bucket, max_uploads=2, key_marker=key_marker, upload_id_marker=id_marker))
        seen += [(u.key, u.upload_id) for u in page.uploads or []]
        assert len(page.uploads or []) <= 2
        if not page.is_truncated:
            break
        key_marker, id_marker = page.next_key_marker, page.next_upload_id_marker
    assert seen == expected

    with_prefix = client.list_multipart_uploads(oss.ListMultipartUploadsRequest(bucket=bucket, prefix="a/"))
    assert [u.key for u in with_prefix.uploads] == ["a/1", "a/2"]
    assert not with_prefix.is_truncated

    # delimiter: oss2 parses CommonPrefixes; a prefix counts as one entry of a page
    bucket2 = oss2_bucket(server, "v1", bucket)
    result = bucket2.list_multipart_uploads(delimiter="/", max_uploads=2)
    assert result.prefix_list == ["a/"] and [u.key for u in result.upload_list] == ["b"]
    assert result.is_truncated
    everything = list(oss2.MultipartUploadIterator(bucket2, delimiter="/", max_uploads=1))
    assert [u.key for u in everything if not u.is_prefix()] == ["b", "b", "c%d 1", "c\u00e9"]
    assert [u.key for u in everything if u.is_prefix()] == ["a/"]

    for upload_id, key in zip(ids, keys, strict=True):
        client.abort_multipart_upload(oss.AbortMultipartUploadRequest(bucket=bucket, key=key, upload_id=upload_id))
    assert not client.list_multipart_uploads(oss.ListMultipartUploadsRequest(bucket=bucket)).uploads


def test_uploader_30mb(server: ServerProcess, tmp_path: Path) -> None:
    client = v2_client(server, "v4")
    data = os.urandom(30 * MB)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    key = unique_prefix("mp-uploader") + "big.bin"
    uploader = client.uploader(part_size=5 * MB, parallel_num=3)
    result = uploader.upload_file(oss.PutObjectRequest(bucket=BUCKET, key=key), filepath=str(path))
    assert result.etag.endswith('-6"')
    assert result.etag == multipart_etag([data[at:at + 5 * MB] for at in range(0, len(data), 5 * MB)])
    body, got = get_bytes(client, key)
    assert body == data
    assert got.headers["x-oss-hash-crc64ecma"] == crc64(data)


def test_oss2_resumable_upload(server: ServerProcess, tmp_path: Path) -> None:
    bucket = oss2_bucket(server, "v4")
    data = payload(1 * MB + 123, 10)
    path = tmp_path / "file.jpg"
    path.write_bytes(data)
    key = unique_prefix("mp-oss2") + "file.jpg"
    result = oss2.resumable_upload(bucket, key, str(path), store=oss2.ResumableStore(root=str(tmp_path)),
                                   multipart_threshold=200 * KB, part_size=200 * KB, num_threads=2)
    assert result.etag.endswith("-6")
    got = bucket.get_object(key)
    assert got.read() == data
    assert got.headers["Content-Type"] == "image/jpeg"
    assert got.server_crc == int(crc64(data))
