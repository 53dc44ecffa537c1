"""Bucket-level operations against a real ``picscore serve``, through the unmodified official
``alibabacloud_oss_v2`` SDK (V4 and V1 signing): DeleteBucket, GetBucketStat, PutBucket with a
``CreateBucketConfiguration`` and GetBucketInfo, re-creating a bucket, and the order OSS checks a
request in (the bucket before the signature).

Every test makes its own uniquely named buckets; expected numbers are computed here from what
was uploaded, never taken from the server.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import alibabacloud_oss_v2 as oss
import pytest

from tests.conftest import BUCKET
from worker.server.launch import ServerProcess

from .helpers import http_request, unique_bucket
from .sdk_clients import service_error, v2_client

KB64 = 64 * 1024


@pytest.fixture(params=["v4", "v1"])
def client(server: ServerProcess, request: pytest.FixtureRequest) -> oss.Client:
    return v2_client(server, request.param)


def _new_bucket(client: oss.Client, tag: str, storage_class: str | None = None,
                redundancy: str | None = None) -> str:
    name = unique_bucket(tag)
    config = None
    if storage_class or redundancy:
        config = oss.CreateBucketConfiguration(storage_class=storage_class, data_redundancy_type=redundancy)
    result = client.put_bucket(oss.PutBucketRequest(bucket=name, acl="private", create_bucket_configuration=config))
    assert result.status_code == 200
    return name


def _put(client: oss.Client, bucket: str, key: str, size: int, storage_class: str | None = None) -> None:
    client.put_object(oss.PutObjectRequest(bucket=bucket, key=key, body=b"x" * size, storage_class=storage_class))


# -- DeleteBucket ----------------------------------------------------------------------------------

def test_delete_empty_bucket_removes_it_whole(client: oss.Client, server_root: Path) -> None:
    name = _new_bucket(client, "del-empty", "IA")
    assert (server_root / name / ".picscore" / "bucket.json").is_file()
    result = client.delete_bucket(oss.DeleteBucketRequest(bucket=name))
    assert result.status_code == 204
    assert not (server_root / name).exists()
    assert not any((server_root / ".picscore" / "deleted-buckets").iterdir())  # nothing left aside
    listed = [b.name for page in client.list_buckets_paginator().iter_page(oss.ListBucketsRequest(prefix=name))
              for b in page.buckets or []]
    assert listed == []
    err = service_error(lambda: client.get_bucket_info(oss.GetBucketInfoRequest(bucket=name)))
    assert (err.status_code, err.code) == (404, "NoSuchBucket")
    # the name is free again, and the new bucket starts from its own settings
    _new_bucket_named(client, name)
    info = client.get_bucket_info(oss.GetBucketInfoRequest(bucket=name)).bucket_info
    assert info.storage_class == "Standard"
    client.delete_bucket(oss.DeleteBucketRequest(bucket=name))


def _new_bucket_named(client: oss.Client, name: str) -> None:
    assert client.put_bucket(oss.PutBucketRequest(bucket=name)).status_code == 200


def test_delete_bucket_holding_an_object_is_refused(client: oss.Client) -> None:
    name = _new_bucket(client, "del-full")
    _put(client, name, "dir/photo.jpg", 10)
    err = service_error(lambda: client.delete_bucket(oss.DeleteBucketRequest(bucket=name)))
    assert (err.status_code, err.code) == (409, "BucketNotEmpty")
    assert client.get_object(oss.GetObjectRequest(bucket=name, key="dir/photo.jpg")).body.read() == b"x" * 10
    client.delete_object(oss.DeleteObjectRequest(bucket=name, key="dir/photo.jpg"))
    assert client.delete_bucket(oss.DeleteBucketRequest(bucket=name)).status_code == 204


def test_delete_bucket_holding_a_directory_marker_is_refused(client: oss.Client) -> None:
    name = _new_bucket(client, "del-marker")
    _put(client, name, "folder/", 0)
    err = service_error(lambda: client.delete_bucket(oss.DeleteBucketRequest(bucket=name)))
    assert (err.status_code, err.code) == (409, "BucketNotEmpty")
    client.delete_object(oss.DeleteObjectRequest(bucket=name, key="folder/"))
    assert client.delete_bucket(oss.DeleteBucketRequest(bucket=name)).status_code == 204


def test_delete_bucket_with_upload_in_progress_is_refused(client: oss.Client) -> None:
    name = _new_bucket(client, "del-upload")
    upload = client.initiate_multipart_upload(oss.InitiateMultipartUploadRequest(bucket=name, key="big.bin"))
    err = service_error(lambda: client.delete_bucket(oss.DeleteBucketRequest(bucket=name)))
    assert (err.status_code, err.code) == (409, "BucketNotEmpty")
    client.abort_multipart_upload(oss.AbortMultipartUploadRequest(bucket=name, key="big.bin",
                                                                  upload_id=upload.upload_id))
    assert client.delete_bucket(oss.DeleteBucketRequest(bucket=name)).status_code == 204


def test_delete_bucket_holding_an_unlisted_file_is_refused(client: oss.Client, server_root: Path) -> None:
    """A file that is not an object (a FIFO: never listed) still keeps the bucket: DeleteBucket
    never removes what no listing showed."""
    name = _new_bucket(client, "del-hidden")
    (server_root / name / "sub").mkdir()
    os.mkfifo(server_root / name / "sub" / "pipe")
    assert client.list_objects_v2(oss.ListObjectsV2Request(bucket=name)).key_count == 0
    err = service_error(lambda: client.delete_bucket(oss.DeleteBucketRequest(bucket=name)))
    assert (err.status_code, err.code) == (409, "BucketNotEmpty")
    assert (server_root / name / "sub" / "pipe").exists()


def test_delete_missing_bucket(client: oss.Client) -> None:
    err = service_error(lambda: client.delete_bucket(oss.DeleteBucketRequest(bucket=unique_bucket("del-none"))))
    assert (err.status_code, err.code, err.ec) == (404, "NoSuchBucket", "0015-00000101")


# -- GetBucketStat ---------------------------------------------------------------------------------

STAT_FIELDS = [
    "storage", "object_count", "multi_part_upload_count", "live_channel_count", "last_modified_time",
    "standard_storage", "standard_object_count", "infrequent_access_storage", "infrequent_access_real_storage",
    "infrequent_access_object_count", "archive_storage", "archive_real_storage", "archive_object_count",
    "cold_archive_storage", "cold_archive_real_storage", "cold_archive_object_count", "deep_cold_archive_storage",
    "deep_cold_archive_real_storage", "deep_cold_archive_object_count", "delete_marker_count",
]


def test_stat_of_a_new_bucket_is_all_zero(client: oss.Client) -> None:
    name = _new_bucket(client, "stat-new", "IA")
    result = client.get_bucket_stat(oss.GetBucketStatRequest(bucket=name))
    assert result.status_code == 200
    assert {field: getattr(result, field) for field in STAT_FIELDS} == dict.fromkeys(STAT_FIELDS, 0)


def test_stat_counts_every_class_exactly(client: oss.Client) -> None:
    name = _new_bucket(client, "stat-mix")
    uploads = {("std-a", 10, None), ("std-b", 1000, "Standard"), ("ia-small", 100, "IA"), ("ia-big", 70000, "IA"),
               ("arc", 5, "Archive"), ("cold", 0, "ColdArchive"), ("deep", 3, "DeepColdArchive")}
    before = int(time.time())
    for key, size, klass in uploads:
        _put(client, name, key, size, klass)
    upload = client.initiate_multipart_upload(oss.InitiateMultipartUploadRequest(bucket=name, key="mp.bin"))
    client.upload_part(oss.UploadPartRequest(bucket=name, key="mp.bin", upload_id=upload.upload_id, part_number=1,
                                             body=b"p" * 1234))
    stat = client.get_bucket_stat(oss.GetBucketStatRequest(bucket=name))
    assert {field: getattr(stat, field) for field in STAT_FIELDS if field != "last_modified_time"} == {
        "storage": 10 + 1000 + 100 + 70000 + 5 + 0 + 3, "object_count": 7, "multi_part_upload_count": 1,
        "live_channel_count": 0, "standard_storage": 1010, "standard_object_count": 2,
        "infrequent_access_storage": KB64 + 70000, "infrequent_access_real_storage": 70100,
        "infrequent_access_object_count": 2, "archive_storage": KB64, "archive_real_storage": 5,
        "archive_object_count": 1, "cold_archive_storage": KB64, "cold_archive_real_storage": 0,
        "cold_archive_object_count": 1, "deep_cold_archive_storage": KB64, "deep_cold_archive_real_storage": 3,
        "deep_cold_archive_object_count": 1, "delete_marker_count": 0,
    }
    assert before <= stat.last_modified_time <= int(time.time()) + 1
    raw = client.invoke_operation(oss.OperationInput(op_name="GetBucketStat", method="GET", bucket=name,
                                                     parameters={"stat": ""}))
    body = raw.http_response.content
    assert b"<MultipartPartCount>1</MultipartPartCount>" in body
    assert b"<MultipartPartStorage>1234</MultipartPartStorage>" in body


def test_stat_of_missing_bucket(client: oss.Client) -> None:
    err = service_error(lambda: client.get_bucket_stat(oss.GetBucketStatRequest(bucket=unique_bucket("stat-x"))))
    assert (err.status_code, err.code) == (404, "NoSuchBucket")


# -- PutBucket settings, GetBucketInfo, re-creating --------------------------------------------------

def test_ia_bucket_info_and_inherited_class(client: oss.Client) -> None:
    name = _new_bucket(client, "info-ia", "IA", "ZRS")
    info = client.get_bucket_info(oss.GetBucketInfoRequest(bucket=name)).bucket_info
    assert (info.name, info.storage_class, info.data_redundancy_type) == (name, "IA", "ZRS")
    assert (info.acl, info.access_monitor, info.block_public_access) == ("private", "Disabled", True)
    assert (info.cross_region_replication, info.transfer_acceleration) == ("Disabled", "Disabled")
    assert info.resource_group_id == "rg-default-id"
    assert info.location == "oss-cn-hangzhou"
    assert info.extranet_endpoint == "oss-cn-hangzhou.aliyuncs.com"
    assert info.intranet_endpoint == "oss-cn-hangzhou-internal.aliyuncs.com"
    assert info.creation_date is not None and abs(info.creation_date.timestamp() - time.time()) < 120
    assert info.owner.id and info.owner.display_name
    assert info.sse_rule.sse_algorithm == "None"
    assert info.versioning is None
    # objects written without a class get the bucket's; an explicit class still wins
    _put(client, name, "inherits", 3)
    _put(client, name, "explicit", 3, "Standard")
    assert client.head_object(oss.HeadObjectRequest(bucket=name, key="inherits")).storage_class == "IA"
    assert client.head_object(oss.HeadObjectRequest(bucket=name, key="explicit")).storage_class == "Standard"
    upload = client.initiate_multipart_upload(oss.InitiateMultipartUploadRequest(bucket=name, key="mp"))
    part = client.upload_part(oss.UploadPartRequest(bucket=name, key="mp", upload_id=upload.upload_id,
                                                    part_number=1, body=b"m" * 5))
    client.complete_multipart_upload(oss.CompleteMultipartUploadRequest(
        bucket=name, key="mp", upload_id=upload.upload_id,
        complete_multipart_upload=oss.CompleteMultipartUpload(parts=[oss.UploadPart(part_number=1, etag=part.etag)])))
    assert client.head_object(oss.HeadObjectRequest(bucket=name, key="mp")).storage_class == "IA"
    listed = client.list_buckets(oss.ListBucketsRequest(prefix=name)).buckets
    assert [(b.name, b.storage_class) for b in listed] == [(name, "IA")]


def test_default_bucket_info(client: oss.Client) -> None:
    name = _new_bucket(client, "info-std")
    info = client.get_bucket_info(oss.GetBucketInfoRequest(bucket=name)).bucket_info
    assert (info.storage_class, info.data_redundancy_type) == ("Standard", "LRS")
    _put(client, name, "plain", 1)
    assert client.head_object(oss.HeadObjectRequest(bucket=name, key="plain")).storage_class == "Standard"


@pytest.mark.parametrize(("body", "code"), [
    (b"<CreateBucketConfiguration><StorageClass>Frozen</StorageClass></CreateBucketConfiguration>",
     "InvalidArgument"),
    (b"<CreateBucketConfiguration><DataRedundancyType>XRS</DataRedundancyType></CreateBucketConfiguration>",
     "InvalidArgument"),
    (b"<CreateBucketConfiguration><StorageClass>IA", "MalformedXML"),
    (b"<Other/>", "MalformedXML"),
])
def test_bad_create_configuration_creates_nothing(server: ServerProcess, server_root: Path, body: bytes,
                                                  code: str) -> None:
    name = unique_bucket("bad-config")
    client = v2_client(server)
    err = service_error(lambda: client.invoke_operation(oss.OperationInput(
        op_name="PutBucket", method="PUT", bucket=name, body=body)))
    assert (err.status_code, err.code) == (400, code)
    assert not (server_root / name).exists()


def test_recreating_an_owned_bucket_is_409_and_keeps_it(client: oss.Client) -> None:
    """OSS: 409 BucketAlreadyExists when the bucket already exists (PutBucket "Error codes")."""
    name = _new_bucket(client, "again", "IA")
    _put(client, name, "kept", 4)
    err = service_error(lambda: client.put_bucket(oss.PutBucketRequest(
        bucket=name, create_bucket_configuration=oss.CreateBucketConfiguration(storage_class="Archive"))))
    assert (err.status_code, err.code, err.ec) == (409, "BucketAlreadyExists", "0015-00000104")
    assert client.get_bucket_info(oss.GetBucketInfoRequest(bucket=name)).bucket_info.storage_class == "IA"
    assert client.get_object(oss.GetObjectRequest(bucket=name, key="kept")).body.read() == b"xxxx"


# -- the order of checks ---------------------------------------------------------------------------

@pytest.mark.parametrize("variant", ["v4", "v1"])
def test_missing_bucket_is_404_before_the_key_is_checked(server: ServerProcess, variant: str) -> None:
    bad_key = v2_client(server, variant, key_id="LTAI5tNOSUCHKEY0000")
    bad_secret = v2_client(server, variant, secret="not-the-secret")
    missing = unique_bucket("order-missing")
    for client in (bad_key, bad_secret):
        for call in (lambda c=client: c.get_bucket_info(oss.GetBucketInfoRequest(bucket=missing)),
                     lambda c=client: c.get_object(oss.GetObjectRequest(bucket=missing, key="a.jpg")),
                     lambda c=client: c.get_bucket_acl(oss.GetBucketAclRequest(bucket=missing)),
                     lambda c=client: c.delete_bucket(oss.DeleteBucketRequest(bucket=missing))):
            err = service_error(call)
            assert (err.status_code, err.code) == (404, "NoSuchBucket")
    # on a bucket that exists the signature is checked exactly as before
    err = service_error(lambda: bad_key.get_bucket_info(oss.GetBucketInfoRequest(bucket=BUCKET)))
    assert (err.status_code, err.code) == (403, "InvalidAccessKeyId")
    err = service_error(lambda: bad_secret.get_bucket_info(oss.GetBucketInfoRequest(bucket=BUCKET)))
    assert (err.status_code, err.code) == (403, "SignatureDoesNotMatch")
    err = service_error(lambda: bad_key.get_bucket_acl(oss.GetBucketAclRequest(bucket=BUCKET)))
    assert (err.status_code, err.code) == (403, "InvalidAccessKeyId")


def test_creating_a_bucket_with_a_bad_key_is_403(server: ServerProcess, server_root: Path) -> None:
    """PutBucket's bucket is missing by definition: the key is what fails (the SDK suite's test_put_bucket_fail)."""
    name = unique_bucket("order-create")
    bad_key = v2_client(server, key_id="LTAI5tNOSUCHKEY0000")
    err = service_error(lambda: bad_key.put_bucket(oss.PutBucketRequest(
        bucket=name, acl="private", create_bucket_configuration=oss.CreateBucketConfiguration(storage_class="IA"))))
    assert (err.status_code, err.code) == (403, "InvalidAccessKeyId")
    assert not (server_root / name).exists()


def test_anonymous_request_on_missing_bucket_is_404(server: ServerProcess) -> None:
    missing = unique_bucket("order-anon")
    assert http_request("GET", f"{server.url}/{missing}/?bucketInfo").status == 404
    assert http_request("GET", f"{server.url}/{BUCKET}/?bucketInfo").status == 403


def test_unimplemented_operation_is_404_on_missing_bucket_and_501_on_existing(client: oss.Client) -> None:
    err = service_error(lambda: client.get_bucket_cors(oss.GetBucketCorsRequest(bucket=unique_bucket("cors"))))
    assert (err.status_code, err.code) == (404, "NoSuchBucket")
    err = service_error(lambda: client.get_bucket_cors(oss.GetBucketCorsRequest(bucket=BUCKET)))
    assert (err.status_code, err.code) == (501, "NotImplemented")


@pytest.mark.parametrize("variant", ["v4", "v1"])
def test_is_bucket_exist(server: ServerProcess, variant: str) -> None:
    """As the SDK's own TestExtension.test_is_bucket_exist: right for a good key and a bad one."""
    missing = unique_bucket("exist-none")
    for client in (v2_client(server, variant), v2_client(server, variant, key_id="LTAI5tNOSUCHKEY0000")):
        assert client.is_bucket_exist(BUCKET) is True
        assert client.is_bucket_exist(missing) is False
