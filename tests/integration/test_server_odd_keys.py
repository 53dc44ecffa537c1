"""Keys with control characters, as OSS takes them: stored, read back, and listed (the SDKs
list with ``encoding-type=url``, which carries any byte). Only NUL is refused: no local file
name can hold it. A newline used to miss the server's route and get aiohttp's plain 404."""

from __future__ import annotations

import alibabacloud_oss_v2 as oss
import pytest

from tests.conftest import BUCKET
from worker.server.launch import ServerProcess

from .helpers import unique_prefix
from .test_server_copy_tagging import oss2_bucket, v2_client

ODD = ["line\nbreak.txt", "carriage\rreturn.txt", "tab\there.txt", "bell\x07and\x1fus.txt", "del\x7f.txt",
       "trailing-newline\n"]


@pytest.mark.parametrize("variant", ["v4", "v1"])
def test_control_characters_in_keys_round_trip_through_the_sdk(server: ServerProcess, variant: str) -> None:
    client = v2_client(server, variant)
    prefix = unique_prefix("odd-keys")
    for i, name in enumerate(ODD):
        key = f"{prefix}{name}"
        client.put_object(oss.PutObjectRequest(bucket=BUCKET, key=key, body=f"body {i}".encode()))
        assert client.get_object(oss.GetObjectRequest(bucket=BUCKET, key=key)).body.read() == f"body {i}".encode()
        assert client.head_object(oss.HeadObjectRequest(bucket=BUCKET, key=key)).content_length == len(f"body {i}")
    listed = client.list_objects_v2(oss.ListObjectsV2Request(bucket=BUCKET, prefix=prefix, encoding_type="url"))
    assert sorted(o.key for o in listed.contents) == sorted(f"{prefix}{name}" for name in ODD)
    v1 = client.list_objects(oss.ListObjectsRequest(bucket=BUCKET, prefix=prefix, encoding_type="url"))
    assert sorted(o.key for o in v1.contents) == sorted(f"{prefix}{name}" for name in ODD)
    for name in ODD:
        client.delete_object(oss.DeleteObjectRequest(bucket=BUCKET, key=f"{prefix}{name}"))


def test_oss2_reads_a_key_with_a_newline(server: ServerProcess) -> None:
    bucket = oss2_bucket(server, "v4")
    key = unique_prefix("odd-keys") + "two\nlines.jpg"
    bucket.put_object(key, b"abc")
    assert bucket.get_object(key).read() == b"abc"
    assert [o.key for o in bucket.list_objects_v2(prefix=key).object_list] == [key]


def test_a_nul_in_a_key_is_refused_with_an_oss_error(server: ServerProcess) -> None:
    with pytest.raises(oss.exceptions.OperationError) as refused:
        v2_client(server, "v4").put_object(oss.PutObjectRequest(bucket=BUCKET, key="nul\x00.txt", body=b"x"))
    error = refused.value.unwrap()
    assert (error.status_code, error.code) == (400, "InvalidObjectName")
    assert error.request_id
