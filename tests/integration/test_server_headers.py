"""What an object keeps besides its bytes, as OSS keeps it, against a real ``picscore serve``
through the unmodified SDKs ``alibabacloud_oss_v2`` (V4 and V1) and ``oss2``:

* the standard headers Cache-Control, Content-Disposition, Content-Encoding, Content-Language
  and Expires — kept verbatim on PutObject, InitiateMultipartUpload and CopyObject, returned on
  GetObject and HeadObject, overridden by ``response-*``;
* a ``Content-Encoding`` body is stored as sent (a real gzip body, a gzip label on plain bytes,
  deflate), so ETag and CRC-64 are of the bytes the client sent;
* ``x-oss-tagging`` on PutObject, ``x-oss-server-side-encryption``, ``x-oss-object-acl``;
* Content-Type of a presigned PUT without one; GetObject with ``Accept-Encoding: gzip``.

Expected values are computed here (MD5 and CRC-64 of the bytes sent), never taken from the
server's answer.
"""

from __future__ import annotations

import gzip
import uuid
import zlib
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import alibabacloud_oss_v2 as oss
import oss2
import pytest
import requests

from tests.conftest import ACCESS_KEY_ID, ACCESS_KEY_SECRET, BUCKET
from worker.server.launch import ServerProcess

from .helpers import crc64_ecma, quoted_md5, unique_bucket, unique_prefix
from .rawclient import RawResponse, send
from .sdk_clients import v2_client

TEXT = b"".join(b"line %05d of a text object that compresses well\n" % i for i in range(200))
HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Disposition": "attachment;filename=" + quote("世界") + ".txt",
    "Content-Language": "zh-CN",
    "Expires": "2022-10-12T00:00:00.000Z",  # kept verbatim: OSS does not require an HTTP date
}


@pytest.fixture(params=["v4", "v1"])
def client(server: ServerProcess, request: pytest.FixtureRequest) -> oss.Client:
    return v2_client(server, request.param)


@pytest.fixture(params=["v1", "v4"])
def bucket(server: ServerProcess, request: pytest.FixtureRequest) -> oss2.Bucket:
    if request.param == "v1":
        return oss2.Bucket(oss2.Auth(ACCESS_KEY_ID, ACCESS_KEY_SECRET), server.url, BUCKET)
    return oss2.Bucket(oss2.AuthV4(ACCESS_KEY_ID, ACCESS_KEY_SECRET), server.url, BUCKET, region="cn-hangzhou")


def put(client: oss.Client, key: str, data: bytes, **kwargs: Any) -> oss.PutObjectResult:
    return client.put_object(oss.PutObjectRequest(bucket=BUCKET, key=key, body=data, **kwargs))


def head(client: oss.Client, key: str) -> oss.HeadObjectResult:
    return client.head_object(oss.HeadObjectRequest(bucket=BUCKET, key=key))


def raw_get(client: oss.Client, key: str, headers: dict[str, str] | None = None, **kwargs: Any) -> RawResponse:
    """GET through a presigned URL with ``http.client``: the bytes exactly as the server sent
    them (no client inflates a gzip body here)."""
    url = client.presign(oss.GetObjectRequest(bucket=BUCKET, key=key, **kwargs), expires=timedelta(minutes=10)).url
    return send(url, "GET", headers=headers)


def fails(call: Any, status: int, code: str) -> oss.exceptions.ServiceError:
    with pytest.raises(oss.exceptions.OperationError) as excinfo:
        call()
    err = excinfo.value.unwrap()
    assert isinstance(err, oss.exceptions.ServiceError), repr(err)
    assert (err.status_code, err.code) == (status, code), err
    return err


def assert_standard_headers(headers: Any, expected: dict[str, str]) -> None:
    for name, value in expected.items():
        assert headers.get(name) == value, name


# -- standard headers --------------------------------------------------------------------------------

def test_standard_headers_are_kept_and_returned_on_get_and_head(client: oss.Client) -> None:
    """PutObject's Cache-Control, Content-Disposition, Content-Encoding (a label only: the body is
    plain), Content-Language and Expires come back, verbatim, on HeadObject and GetObject; the
    bytes, ETag and CRC-64 are those sent."""
    key = unique_prefix("hdr") + "doc.txt"
    result = put(client, key, TEXT, content_type="text/plain", content_encoding="deflate", headers=dict(HEADERS))
    assert (result.etag, result.hash_crc64) == (quoted_md5(TEXT), str(crc64_ecma(TEXT)))
    expected = {**HEADERS, "Content-Encoding": "deflate", "Content-Type": "text/plain"}
    meta = head(client, key)
    assert_standard_headers(meta.headers, expected)
    assert (meta.cache_control, meta.content_encoding, meta.expires) == ("no-cache", "deflate", HEADERS["Expires"])
    assert meta.content_length == len(TEXT)
    got = raw_get(client, key)
    assert got.status == 200 and got.body == TEXT
    assert_standard_headers({k.title(): v for k, v in got.headers.items()}, expected)


def test_response_overrides_win_over_stored_headers(client: oss.Client) -> None:
    """GetObject's response-* parameters replace the stored headers for that one response."""
    key = unique_prefix("hdr-override") + "doc.txt"
    put(client, key, b"x", headers=dict(HEADERS))
    got = raw_get(client, key, response_cache_control="max-age=60", response_content_language="en",
                  response_content_disposition="inline", response_expires="Thu, 01 Jan 2037 00:00:00 GMT")
    assert got.status == 200
    assert (got.headers["cache-control"], got.headers["content-language"], got.headers["content-disposition"],
            got.headers["expires"]) == ("max-age=60", "en", "inline", "Thu, 01 Jan 2037 00:00:00 GMT")
    assert head(client, key).headers["Cache-Control"] == "no-cache"  # stored unchanged


def test_object_without_standard_headers_returns_none(client: oss.Client) -> None:
    key = unique_prefix("hdr-none") + "plain.bin"
    put(client, key, b"data")
    meta = head(client, key)
    assert (meta.cache_control, meta.content_disposition, meta.content_encoding, meta.expires) == (None,) * 4
    assert "Content-Language" not in meta.headers


# -- Content-Encoding bodies are stored as sent ----------------------------------------------------

def test_real_gzip_body_round_trip_with_crc_check(client: oss.Client) -> None:
    """A gzip body with Content-Encoding: gzip is stored compressed: the SDK's upload CRC check
    (on by default) passes, ETag and CRC are of the compressed bytes, and a raw GET returns them
    unchanged with Content-Encoding: gzip (an HTTP client may inflate them: the SDK does)."""
    body = gzip.compress(TEXT)
    key = unique_prefix("gz-real") + "data.txt"
    result = put(client, key, body, content_encoding="gzip")
    assert (result.status_code, result.etag, result.hash_crc64) == (200, quoted_md5(body), str(crc64_ecma(body)))
    meta = head(client, key)
    assert (meta.content_length, meta.content_encoding, meta.hash_crc64) == (len(body), "gzip", str(crc64_ecma(body)))
    got = raw_get(client, key)
    assert (got.status, got.body, got.headers["content-encoding"]) == (200, body, "gzip")
    assert got.headers["etag"] == quoted_md5(body)
    assert client.get_object(oss.GetObjectRequest(bucket=BUCKET, key=key)).body.read() == TEXT  # requests inflates


def test_gzip_label_on_plain_body_is_stored_as_sent(client: oss.Client) -> None:
    """Content-Encoding: gzip on bytes that are not gzip: 200, the bytes kept as sent (OSS does not
    look inside), the label kept as metadata."""
    body = b"this is not gzip at all" * 3
    key = unique_prefix("gz-label") + "label.bin"
    result = put(client, key, body, content_encoding="gzip")
    assert (result.status_code, result.etag) == (200, quoted_md5(body))
    got = raw_get(client, key)
    assert (got.status, got.body, got.headers["content-encoding"]) == (200, body, "gzip")
    assert head(client, key).content_length == len(body)


@pytest.mark.parametrize("compress", [zlib.compress, lambda data: data], ids=["deflate-body", "plain-body"])
def test_deflate_bodies_are_stored_as_sent(client: oss.Client, compress: Any) -> None:
    body = compress(TEXT)
    key = unique_prefix("deflate") + "d.bin"
    result = put(client, key, body, content_encoding="deflate")
    assert (result.status_code, result.hash_crc64) == (200, str(crc64_ecma(body)))
    got = raw_get(client, key)
    assert (got.status, got.body, got.headers["content-encoding"]) == (200, body, "deflate")


def test_upload_part_with_content_encoding_is_stored_as_sent(client: oss.Client) -> None:
    """The server never inflates a request body, so a part sent with Content-Encoding: gzip is
    its compressed bytes too; the multipart object keeps the standard headers of the initiation."""
    key = unique_prefix("mp-gz") + "big.txt"
    body = gzip.compress(TEXT)
    init = client.initiate_multipart_upload(oss.InitiateMultipartUploadRequest(
        bucket=BUCKET, key=key, content_type="text/plain", cache_control="no-store", content_encoding="gzip",
        content_disposition="inline", expires="never", headers={"Content-Language": "fr"}))
    part = client.upload_part(oss.UploadPartRequest(bucket=BUCKET, key=key, upload_id=init.upload_id, part_number=1,
                                                    body=body, headers={"Content-Encoding": "gzip"}))
    assert part.etag == quoted_md5(body)
    client.complete_multipart_upload(oss.CompleteMultipartUploadRequest(
        bucket=BUCKET, key=key, upload_id=init.upload_id, complete_multipart_upload=oss.CompleteMultipartUpload(
            parts=[oss.UploadPart(part_number=1, etag=part.etag)])))
    meta = head(client, key)
    assert_standard_headers(meta.headers, {"Cache-Control": "no-store", "Content-Encoding": "gzip",
                                           "Content-Disposition": "inline", "Expires": "never",
                                           "Content-Language": "fr", "Content-Type": "text/plain"})
    assert raw_get(client, key).body == body


def test_oss2_gzip_body_and_headers(bucket: oss2.Bucket) -> None:
    """oss2 (CRC check on): a gzip body with its headers, stored and returned as sent."""
    body = gzip.compress(TEXT)
    key = unique_prefix("oss2-gz") + "o.txt"
    result = bucket.put_object(key, body, headers={"Content-Encoding": "gzip", **HEADERS})
    assert (result.status, result.etag) == (200, quoted_md5(body).strip('"').upper())
    meta = bucket.head_object(key)
    assert_standard_headers(meta.headers, {**HEADERS, "Content-Encoding": "gzip"})
    assert meta.content_length == len(body)


# -- CopyObject ------------------------------------------------------------------------------------

def test_copy_keeps_standard_headers_and_replace_takes_the_requests(client: oss.Client) -> None:
    """COPY (default) keeps the source's standard headers; REPLACE takes the request's — absent
    ones are dropped — and keeps the source's Content-Type when the request names none."""
    prefix = unique_prefix("cp-hdr")
    put(client, prefix + "src", TEXT, content_type="text/plain", content_encoding="deflate", headers=dict(HEADERS))
    client.copy_object(oss.CopyObjectRequest(bucket=BUCKET, key=prefix + "copy", source_bucket=BUCKET,
                                             source_key=prefix + "src"))
    assert_standard_headers(head(client, prefix + "copy").headers,
                            {**HEADERS, "Content-Encoding": "deflate", "Content-Type": "text/plain"})
    client.copy_object(oss.CopyObjectRequest(bucket=BUCKET, key=prefix + "replaced", source_bucket=BUCKET,
                                             source_key=prefix + "src", metadata_directive="REPLACE",
                                             cache_control="max-age=5"))
    replaced = head(client, prefix + "replaced")
    assert (replaced.cache_control, replaced.content_type) == ("max-age=5", "text/plain")
    assert (replaced.content_encoding, replaced.content_disposition, replaced.expires) == (None, None, None)
    assert "Content-Language" not in replaced.headers


def test_sdk_copier_carries_headers_and_tags(client: oss.Client) -> None:
    """The SDK's copier (CopyObject, or multipart copy above its threshold) keeps the headers."""
    prefix = unique_prefix("copier")
    put(client, prefix + "src", TEXT * 30, content_type="text/plain", headers=dict(HEADERS), tagging="A=1&B=2")
    for name, options in (("single", {}), ("multi", {"multipart_copy_threshold": 100 * 1024,
                                                     "disable_shallow_copy": True, "part_size": 100 * 1024})):
        client.copier().copy(oss.CopyObjectRequest(bucket=BUCKET, key=prefix + name, source_bucket=BUCKET,
                                                   source_key=prefix + "src"), **options)
        meta = head(client, prefix + name)
        assert_standard_headers(meta.headers, {**HEADERS, "Content-Type": "text/plain"})
        assert meta.tagging_count == 2


# -- x-oss-tagging ---------------------------------------------------------------------------------

def test_tagging_header_on_put(client: oss.Client) -> None:
    """x-oss-tagging stores the tags: GetObjectTagging lists them, GET and HEAD count them."""
    key = unique_prefix("put-tags") + "t.txt"
    put(client, key, b"x", tagging="TagA=A&Tag%20B=b%2Fc&empty=")
    assert head(client, key).tagging_count == 3
    assert raw_get(client, key).headers["x-oss-tagging-count"] == "3"
    result = client.get_object_tagging(oss.GetObjectTaggingRequest(bucket=BUCKET, key=key))
    assert {t.key: t.value or "" for t in result.tag_set.tags} == {"TagA": "A", "Tag B": "b/c", "empty": ""}


def test_tagging_header_is_validated_like_put_object_tagging(client: oss.Client) -> None:
    key = unique_prefix("put-tags-bad") + "t.txt"
    fails(lambda: put(client, key, b"x", tagging="&".join(f"k{i}=v" for i in range(11))), 400, "BadRequest")
    fails(lambda: put(client, key, b"x", tagging="a=b=c"), 400, "InvalidArgument")
    fails(lambda: put(client, key, b"x", tagging="k=" + "v" * 257), 400, "InvalidTag")
    assert not client.is_object_exist(BUCKET, key)


# -- server-side encryption ------------------------------------------------------------------------

@pytest.mark.parametrize("sse", [{"server_side_encryption": "AES256"}, {"server_side_encryption": "SM4"},
                                 {"server_side_encryption": "KMS"},
                                 {"server_side_encryption": "KMS", "server_side_data_encryption": "SM4"}],
                         ids=["AES256", "SM4", "KMS", "KMS-SM4"])
def test_server_side_encryption_is_echoed(client: oss.Client, sse: dict[str, str]) -> None:
    """The algorithm is recorded and returned on the PUT response, HeadObject and GetObject (the
    bytes on disk are not encrypted: the store is a plain folder)."""
    key = unique_prefix("sse") + "s.bin"
    result = put(client, key, b"secret", **sse)
    expected = {"x-oss-server-side-encryption": sse["server_side_encryption"]}
    if "server_side_data_encryption" in sse:
        expected["x-oss-server-side-data-encryption"] = "SM4"
    for headers in (result.headers, head(client, key).headers):
        assert {name: headers.get(name) for name in expected} == expected
    got = raw_get(client, key)
    assert got.body == b"secret"
    assert {name: got.headers.get(name) for name in expected} == expected
    copied = client.copy_object(oss.CopyObjectRequest(bucket=BUCKET, key=key + ".copy", source_bucket=BUCKET,
                                                      source_key=key))
    assert "x-oss-server-side-encryption" not in copied.headers  # the copy's encryption is the copy request's


def test_server_side_encryption_refusals(client: oss.Client) -> None:
    """A KMS key of one's own: 501 NotImplemented; an unknown algorithm: 400; nothing is written."""
    key = unique_prefix("sse-bad") + "s.bin"
    fails(lambda: put(client, key, b"x", server_side_encryption="KMS", server_side_encryption_key_id="key-1"),
          501, "NotImplemented")
    fails(lambda: put(client, key, b"x", server_side_encryption="DES"), 400, "InvalidEncryptionAlgorithmError")
    fails(lambda: put(client, key, b"x", server_side_encryption="AES256", server_side_data_encryption="SM4"),
          400, "InvalidArgument")
    assert not client.is_object_exist(BUCKET, key)


def test_oss2_server_side_encryption(bucket: oss2.Bucket) -> None:
    key = unique_prefix("oss2-sse") + "s.bin"
    result = bucket.put_object(key, b"x", headers={"x-oss-server-side-encryption": "AES256"})
    assert result.headers["x-oss-server-side-encryption"] == "AES256"
    assert bucket.get_object(key).headers["x-oss-server-side-encryption"] == "AES256"


# -- object ACL ------------------------------------------------------------------------------------

def test_object_acl_header(client: oss.Client) -> None:
    """x-oss-object-acl: default and private are what every object here is: accepted. A public
    ACL: 501 NotImplemented (after the bucket check: a missing bucket is still 404); a value OSS
    does not know: 400."""
    key = unique_prefix("acl") + "a.txt"
    assert put(client, key, b"x", acl="default").status_code == 200
    assert put(client, key + "private", b"x", acl="private").status_code == 200
    for acl in ("public-read", "public-read-write"):
        fails(lambda acl=acl: put(client, key + acl, b"x", acl=acl), 501, "NotImplemented")
        assert not client.is_object_exist(BUCKET, key + acl)
    fails(lambda: put(client, key, b"x", acl="everyone"), 400, "InvalidArgument")
    missing = unique_bucket("acl-missing")
    fails(lambda: client.put_object(oss.PutObjectRequest(bucket=missing, key="a", body=b"x", acl="private")),
          404, "NoSuchBucket")


# -- Content-Type of a PUT without one -------------------------------------------------------------

@pytest.mark.parametrize("name,expected", [("photo.jpg", "image/jpeg"), ("notes.txt", "text/plain"),
                                           ("no-extension", "application/octet-stream")])
def test_presigned_put_without_content_type(client: oss.Client, name: str, expected: str) -> None:
    """OSS gives an object written without Content-Type the type of its key's extension, else
    application/octet-stream; a presigned PUT sent without one is such a write."""
    key = unique_prefix("presign-ct") + name
    url = client.presign(oss.PutObjectRequest(bucket=BUCKET, key=key), expires=timedelta(minutes=10)).url
    response = requests.put(url, data=b"payload")
    assert "Content-Type" not in response.request.headers
    assert response.status_code == 200, response.text
    assert head(client, key).content_type == expected


def test_presigned_put_with_content_type(client: oss.Client) -> None:
    """A Content-Type signed into the URL is the object's; without it the signature fails."""
    key = unique_prefix("presign-ct") + "x.txt"
    presigned = client.presign(oss.PutObjectRequest(bucket=BUCKET, key=key, content_type="text/x-own"),
                               expires=timedelta(minutes=10))
    assert requests.put(presigned.url, data=b"p").status_code == 403
    assert requests.put(presigned.url, data=b"p", headers=presigned.signed_headers).status_code == 200
    assert head(client, key).content_type == "text/x-own"


# -- GetObject with Accept-Encoding: gzip ----------------------------------------------------------

def test_accept_encoding_gzip_compresses_text(client: oss.Client) -> None:
    """A text object of 1 KB or more is sent gzip-compressed to a client that accepts gzip: chunked,
    Content-Encoding: gzip, Vary, no ETag/Content-Length/Accept-Ranges, the stored bytes' CRC."""
    key = unique_prefix("gzip-get") + "page.txt"
    put(client, key, TEXT, content_type="text/plain")
    got = raw_get(client, key, headers={"Accept-Encoding": "gzip, deflate"})
    assert got.status == 200
    assert gzip.decompress(got.body) == TEXT and len(got.body) < len(TEXT)
    assert (got.headers["content-encoding"], got.headers["vary"]) == ("gzip", "Accept-Encoding")
    assert got.headers.get("transfer-encoding") == "chunked"
    assert not {"etag", "content-length", "accept-ranges"} & set(got.headers)
    assert got.headers["x-oss-hash-crc64ecma"] == str(crc64_ecma(TEXT))
    result = client.get_object(oss.GetObjectRequest(bucket=BUCKET, key=key, headers={"Accept-Encoding": "gzip"}))
    assert result.body.read() == TEXT  # the SDK's HTTP client inflates it
    assert head(client, key).content_length == len(TEXT)  # HEAD is unaffected


@pytest.mark.parametrize("case", ["small", "image", "ranged", "encoded", "q0", "not-asked"])
def test_accept_encoding_gzip_leaves_other_responses_alone(client: oss.Client, case: str) -> None:
    """Not compressed: under 1 KB, a type OSS does not compress, a ranged GET, an object that
    already has a Content-Encoding, gzip refused (q=0), or not asked for."""
    key = unique_prefix("gzip-no") + f"{case}.txt"
    data = b"short text" if case == "small" else TEXT
    kwargs: dict[str, Any] = {"content_type": "image/jpeg" if case == "image" else "text/plain"}
    if case == "encoded":
        kwargs["content_encoding"] = "identity"
    put(client, key, data, **kwargs)
    accept = {"q0": "gzip;q=0, identity", "not-asked": "identity"}.get(case, "gzip")
    headers = {"Accept-Encoding": accept, **({"Range": "bytes=0-99"} if case == "ranged" else {})}
    got = raw_get(client, key, headers=headers)
    assert got.headers.get("content-encoding", "") == kwargs.get("content_encoding", "")
    assert got.body == (data[:100] if case == "ranged" else data)
    assert got.headers["etag"] == quoted_md5(data)


def test_headers_survive_a_fresh_bucket(client: oss.Client) -> None:
    """In another bucket too (the metadata file is per bucket)."""
    other = unique_bucket("hdr")
    client.put_bucket(oss.PutBucketRequest(bucket=other))
    key = f"k-{uuid.uuid4().hex}"
    client.put_object(oss.PutObjectRequest(bucket=other, key=key, body=b"x", cache_control="private"))
    assert client.head_object(oss.HeadObjectRequest(bucket=other, key=key)).cache_control == "private"
