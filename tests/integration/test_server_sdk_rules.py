"""Rules the official Python SDK v2's own integration suite expects of OSS, in picscore's words
(found with ``make conformance``; guarded here without the SDK's repository)."""

from __future__ import annotations

import alibabacloud_oss_v2 as oss
from alibabacloud_oss_v2.utils import escape_xml_value

from tests.conftest import BUCKET
from worker.server.launch import ServerProcess

from .helpers import unique_prefix
from .test_server_copy_tagging import v2_client


def test_a_multipart_upload_without_a_content_type_is_octet_stream_whatever_its_name(server: ServerProcess) -> None:
    client = v2_client(server, "v4")
    key = unique_prefix("mp-type") + "photo.jpg"
    upload = client.initiate_multipart_upload(oss.InitiateMultipartUploadRequest(  # no Content-Type sent
        bucket=BUCKET, key=key, disable_auto_detect_mime_type=True))
    part = client.upload_part(oss.UploadPartRequest(bucket=BUCKET, key=key, upload_id=upload.upload_id,
                                                    part_number=1, body=b"x" * 10))
    client.complete_multipart_upload(oss.CompleteMultipartUploadRequest(
        bucket=BUCKET, key=key, upload_id=upload.upload_id,
        complete_multipart_upload=oss.CompleteMultipartUpload(parts=[oss.UploadPart(part_number=1, etag=part.etag)])))
    head = client.head_object(oss.HeadObjectRequest(bucket=BUCKET, key=key))
    assert (head.content_type, head.object_type) == ("application/octet-stream", "Multipart")
    plain = unique_prefix("put-type") + "photo.jpg"
    client.put_object(oss.PutObjectRequest(bucket=BUCKET, key=plain, body=b"x"))
    assert client.head_object(oss.HeadObjectRequest(bucket=BUCKET, key=plain)).content_type == "image/jpeg"


def test_a_copy_with_new_metadata_keeps_the_client_side_encryption_metadata(server: ServerProcess) -> None:
    client = v2_client(server, "v4")
    source, copy = unique_prefix("cse") + "src", unique_prefix("cse") + "dst"
    encryption = {"client-side-encryption-key": "wrapped==", "client-side-encryption-start": "iv==",
                  "client-side-encryption-cek-alg": "AES/CTR/NoPadding"}
    client.put_object(oss.PutObjectRequest(bucket=BUCKET, key=source, body=b"ciphertext",
                                           metadata={**encryption, "flag": "false"}))
    client.copy_object(oss.CopyObjectRequest(bucket=BUCKET, key=copy, source_bucket=BUCKET, source_key=source,
                                             metadata_directive="REPLACE",
                                             metadata={"flag": "true", "client-side-encryption-key": "forged"}))
    assert client.head_object(oss.HeadObjectRequest(bucket=BUCKET, key=copy)).metadata == {**encryption, "flag": "true"}


def test_delete_multiple_takes_keys_with_control_characters_as_the_sdk_escapes_them(server: ServerProcess) -> None:
    client = v2_client(server, "v4")
    prefix = unique_prefix("ctl-delete")
    keys = [f"{prefix}a\x01b", f"{prefix}tab\tc", f"{prefix}nl\nd", f"{prefix}us\x1f"]
    for key in keys:
        client.put_object(oss.PutObjectRequest(bucket=BUCKET, key=key, body=b"x"))
    assert "&#01;" in escape_xml_value(keys[0])  # what the SDK writes: a reference XML 1.0 forbids
    result = client.delete_multiple_objects(oss.DeleteMultipleObjectsRequest(
        bucket=BUCKET, objects=[oss.DeleteObject(key=key) for key in keys], encoding_type="url"))
    assert sorted(d.key for d in result.deleted_objects) == sorted(keys)
    assert not [k for k in keys if client.is_object_exist(BUCKET, k)]


def test_a_key_ending_in_a_slash_may_hold_bytes(server: ServerProcess) -> None:
    client = v2_client(server, "v4")
    folder = unique_prefix("slash") + "folder/"
    client.put_object(oss.PutObjectRequest(bucket=BUCKET, key=folder, body=b"folder notes"))
    client.put_object(oss.PutObjectRequest(bucket=BUCKET, key=folder + "inside.txt", body=b"x"))
    assert client.get_object(oss.GetObjectRequest(bucket=BUCKET, key=folder)).body.read() == b"folder notes"
    listed = client.list_objects_v2(oss.ListObjectsV2Request(bucket=BUCKET, prefix=folder))
    assert [(o.key, o.size) for o in listed.contents] == [(folder, 12), (folder + "inside.txt", 1)]
    client.delete_object(oss.DeleteObjectRequest(bucket=BUCKET, key=folder))
    assert not client.is_object_exist(BUCKET, folder)
    assert client.is_object_exist(BUCKET, folder + "inside.txt")
