"""``alibabacloud_oss_v2`` (sync ``Client`` and ``aio.AsyncClient``) against a real ``picscore serve``.

Every test drives the unmodified SDK exactly as a user would, configured as README.md's
"Pointing the official SDKs at it" says: V4 on the IP endpoint, V4 on ``localhost`` with
``use_path_style=True``, and ``signature_version='v1'``.
Values are compared with ones computed here (MD5, CRC-64, expected listings), not with
anything the SDK derived.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import alibabacloud_oss_v2 as oss
import alibabacloud_oss_v2.aio as oss_aio
import pytest
import yarl

from tests.conftest import ACCESS_KEY_ID, ACCESS_KEY_SECRET, BUCKET, make_jpeg
from worker.server.launch import ServerProcess

from .helpers import (
    abounded,
    bounded,
    crc64_ecma,
    expected_listing,
    http_request,
    listing_keys,
    parse_score,
    quoted_md5,
    unique_bucket,
    unique_prefix,
)

#: The three ways to point this SDK at the server: IP endpoint, ``localhost`` with path style, V1.
VARIANTS = ["v4", "v4-localhost", "v1"]
_MISMATCH_EC = {"v4": "0002-00000201", "v4-localhost": "0002-00000201", "v1": "0002-00000040"}
_NO_SUCH_KEY_EC = "0026-00000001"


def make_config(server: ServerProcess, variant: str, *, key_id: str = ACCESS_KEY_ID,
                secret: str = ACCESS_KEY_SECRET, env_credentials: bool = False,
                retry: bool = True, http_client: Any = None) -> oss.config.Config:
    """A client configuration for ``variant`` (see :data:`VARIANTS`)."""
    cfg = oss.config.load_default()
    if env_credentials:
        cfg.credentials_provider = oss.credentials.EnvironmentVariableCredentialsProvider()
    else:
        cfg.credentials_provider = oss.credentials.StaticCredentialsProvider(key_id, secret)
    cfg.region = "cn-hangzhou"
    cfg.endpoint = server.url
    if variant == "v4-localhost":
        cfg.endpoint = f"http://localhost:{server.port}"
        cfg.use_path_style = True
    elif variant == "v1":
        cfg.signature_version = "v1"
    if not retry:
        cfg.retryer = oss.retry.NopRetryer()
    if http_client is not None:
        cfg.http_client = http_client
    return cfg


def service_error(err: BaseException) -> oss.exceptions.ServiceError:
    """The ``ServiceError`` an ``OperationError`` wraps (asserting both types)."""
    assert isinstance(err, oss.exceptions.OperationError), repr(err)
    inner = err.unwrap()
    assert isinstance(inner, oss.exceptions.ServiceError), repr(inner)
    return inner


class RecordingHttpClient(oss.HttpClient):
    """Delegates to the SDK's own requests transport and keeps each response.

    ``process_object`` parses only bucket/fileSize/object/status out of the JSON it gets, so
    this is how a test sees the ``image/score`` body the SDK received.
    """

    def __init__(self) -> None:
        self.inner = oss.transport.RequestsHttpClient()
        self.responses: list[oss.HttpResponse] = []

    def send(self, request: oss.HttpRequest, **kwargs: Any) -> oss.HttpResponse:
        response = self.inner.send(request, **kwargs)
        self.responses.append(response)
        return response

    def open(self) -> None:
        self.inner.open()

    def close(self) -> None:
        self.inner.close()


@pytest.fixture(params=VARIANTS)
def variant(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture()
def client(server: ServerProcess, variant: str, oss_env: None) -> oss.Client:
    """A sync client reading its keys from OSS_ACCESS_KEY_ID/SECRET, as users configure it."""
    return oss.Client(make_config(server, variant, env_credentials=True))


@pytest.fixture(scope="module")
def jpeg() -> bytes:
    return make_jpeg(seed=7)


@pytest.fixture(scope="module")
def listed(server: ServerProcess) -> Iterator[tuple[str, list[str]]]:
    """26 small objects under a fresh prefix, uploaded once for the listing tests."""
    uploader = oss.Client(make_config(server, "v4"))
    prefix = unique_prefix("v2-list")
    keys = listing_keys(prefix)
    for key in keys:
        uploader.put_object(oss.PutObjectRequest(bucket=BUCKET, key=key, body=key.encode("utf-8")))
    yield prefix, keys


def put(client: oss.Client, key: str, data: bytes, **kwargs: Any) -> oss.PutObjectResult:
    return client.put_object(oss.PutObjectRequest(bucket=BUCKET, key=key, body=data, **kwargs))


# -- objects ----------------------------------------------------------------------------------


def test_put_returns_md5_etag_and_crc64(client: oss.Client, jpeg: bytes) -> None:
    """PutObject: ETag is the quoted upper-case MD5, CRC-64 and Content-MD5 match the bytes,
    and the SDK's own upload CRC-64 check (on by default) accepts the answer."""
    assert not oss.config.load_default().disable_upload_crc64_check  # the SDK checks CRC-64
    key = unique_prefix("v2-put") + "photo.jpg"
    result = put(client, key, jpeg)
    assert result.status_code == 200
    assert result.etag == quoted_md5(jpeg)
    assert result.hash_crc64 == str(crc64_ecma(jpeg))
    assert result.content_md5 == base64.b64encode(hashlib.md5(jpeg).digest()).decode()
    assert len(result.request_id) == 24


def test_get_returns_same_bytes(client: oss.Client, jpeg: bytes) -> None:
    """GetObject returns the uploaded bytes with their ETag, length and CRC-64."""
    key = unique_prefix("v2-get") + "dir/cat photo+1.jpg"
    put(client, key, jpeg)
    result = client.get_object(oss.GetObjectRequest(bucket=BUCKET, key=key))
    assert result.status_code == 200
    assert result.body.read() == jpeg
    assert result.etag == quoted_md5(jpeg)
    assert result.content_length == len(jpeg)
    assert result.content_type == "image/jpeg"
    assert result.hash_crc64 == str(crc64_ecma(jpeg))


def test_get_with_range_returns_206_slice(client: oss.Client, jpeg: bytes) -> None:
    """A Range GET answers 206 with exactly the requested slice and its Content-Range."""
    key = unique_prefix("v2-range") + "图片/猫 照片.jpg"
    put(client, key, jpeg)
    result = client.get_object(oss.GetObjectRequest(bucket=BUCKET, key=key, range_header="bytes=100-1099"))
    assert result.status_code == 206
    assert result.body.read() == jpeg[100:1100]
    assert result.content_range == f"bytes 100-1099/{len(jpeg)}"
    assert result.content_length == 1000
    tail = client.get_object(oss.GetObjectRequest(bucket=BUCKET, key=key, range_header="bytes=-10"))
    assert tail.status_code == 206
    assert tail.body.read() == jpeg[-10:]


def test_head_reports_size_etag_type_and_user_metadata(client: oss.Client, jpeg: bytes) -> None:
    """HeadObject reports the size, ETag, Content-Type and x-oss-meta-* given at upload."""
    key = unique_prefix("v2-head") + "a/b/c.jpg"
    put(client, key, jpeg, content_type="image/jpeg", metadata={"camera": "X100", "owner": "Ana"})
    head = client.head_object(oss.HeadObjectRequest(bucket=BUCKET, key=key))
    assert head.status_code == 200
    assert head.content_length == len(jpeg)
    assert head.etag == quoted_md5(jpeg)
    assert head.content_type == "image/jpeg"
    assert head.metadata == {"camera": "X100", "owner": "Ana"}
    assert head.hash_crc64 == str(crc64_ecma(jpeg))
    assert head.object_type == "Normal"


def test_is_object_exist_true_and_false(client: oss.Client) -> None:
    """is_object_exist (GetObjectMeta) is True for an uploaded key and False for a missing one."""
    prefix = unique_prefix("v2-exist")
    put(client, prefix + "here.jpg", b"x")
    assert client.is_object_exist(BUCKET, prefix + "here.jpg") is True
    assert client.is_object_exist(BUCKET, prefix + "missing.jpg") is False


def test_delete_object_and_delete_missing_key(client: oss.Client) -> None:
    """DeleteObject answers 204 and removes the key; deleting a missing key also succeeds."""
    key = unique_prefix("v2-del") + "gone.jpg"
    put(client, key, b"bytes")
    assert client.delete_object(oss.DeleteObjectRequest(bucket=BUCKET, key=key)).status_code == 204
    assert client.is_object_exist(BUCKET, key) is False
    assert client.delete_object(oss.DeleteObjectRequest(bucket=BUCKET, key=key)).status_code == 204


def test_delete_multiple_objects(client: oss.Client) -> None:
    """DeleteMultipleObjects removes exactly the listed keys (a missing one and XML/URL
    special characters included) and reports each of them; Quiet mode reports none; other
    keys under the prefix stay."""
    prefix = unique_prefix("v2-multi")
    names = ("a.jpg", "dir/cat photo+1.jpg", "图片/猫 照片.jpg", "x<y>&\"q'.jpg", "!'()*~ &=?#%41.jpg",
             "quiet-1.jpg", "quiet-2.jpg", "keep.jpg")
    keys = [prefix + name for name in names]
    for key in keys:
        put(client, key, b"data")
    doomed = [*keys[:5], prefix + "never-existed.jpg"]
    result = client.delete_multiple_objects(oss.DeleteMultipleObjectsRequest(
        bucket=BUCKET, delete=oss.Delete(objects=[oss.ObjectIdentifier(key=k) for k in doomed])))
    assert result.status_code == 200
    assert [d.key for d in result.deleted_objects] == doomed
    quiet = client.delete_multiple_objects(oss.DeleteMultipleObjectsRequest(
        bucket=BUCKET, delete=oss.Delete(quiet=True, objects=[oss.ObjectIdentifier(key=k) for k in keys[5:7]])))
    assert quiet.status_code == 200
    assert not quiet.deleted_objects
    listed = client.list_objects_v2(oss.ListObjectsV2Request(bucket=BUCKET, prefix=prefix))
    assert [o.key for o in listed.contents] == [prefix + "keep.jpg"]


# -- listing ----------------------------------------------------------------------------------


def _check_pages(pages: list[tuple[list[str], list[str]]], max_keys: int,
                 objects: list[str], prefixes: list[str]) -> None:
    """Pages hold at most ``max_keys`` entries (keys and prefixes together), every page but the
    last is full, entries ascend strictly across pages, and together they are the expectation."""
    assert pages, "no pages"
    for page_objects, page_prefixes in pages[:-1]:
        assert len(page_objects) + len(page_prefixes) == max_keys
    assert 1 <= len(pages[-1][0]) + len(pages[-1][1]) <= max_keys
    merged = [name for page in pages for name in sorted(page[0] + page[1])]
    assert merged == sorted(objects + prefixes)
    assert len(merged) == len(set(merged))
    assert [k for page in pages for k in page[0]] == objects
    assert [p for page in pages for p in page[1]] == prefixes


@pytest.mark.parametrize("max_keys", [1, 4])
@pytest.mark.parametrize("delimiter", ["", "/"])
def test_list_objects_v2_paginator(client: oss.Client, listed: tuple[str, list[str]],
                                   delimiter: str, max_keys: int) -> None:
    """ListObjectsV2 via the SDK paginator, max_keys 1 (every page ends on each entry, common
    prefixes included) and 4: exact keys (non-ASCII, space, '+', '%41', nested), common
    prefixes, order, sizes and ETags, with and without delimiter '/'."""
    prefix, keys = listed
    paginator = client.list_objects_v2_paginator()
    request = oss.ListObjectsV2Request(bucket=BUCKET, prefix=prefix, delimiter=delimiter or None, max_keys=max_keys)
    pages, sizes = [], {}
    for page in bounded(paginator.iter_page(request)):
        assert page.prefix == prefix and page.max_keys == max_keys
        assert page.key_count == len(page.contents or []) + len(page.common_prefixes or [])
        pages.append(([o.key for o in page.contents or []], [p.prefix for p in page.common_prefixes or []]))
        for obj in page.contents or []:
            sizes[obj.key] = (obj.size, obj.etag)
    objects, prefixes = expected_listing(keys, prefix, delimiter)
    _check_pages(pages, max_keys, objects, prefixes)
    assert len(pages) == -(-(len(objects) + len(prefixes)) // max_keys)
    assert sizes == {k: (len(k.encode()), quoted_md5(k.encode())) for k in objects}
    if delimiter:
        assert prefixes == [prefix + "a/", prefix + "dir/", prefix + "图片/"]
        assert len(objects) == 21


@pytest.mark.parametrize("max_keys", [1, 5])
@pytest.mark.parametrize("delimiter", ["", "/"])
def test_list_objects_v1_paginator(client: oss.Client, listed: tuple[str, list[str]],
                                   delimiter: str, max_keys: int) -> None:
    """ListObjects (V1) via the SDK paginator with marker/NextMarker, max_keys 1 and 5."""
    prefix, keys = listed
    paginator = client.list_objects_paginator()
    request = oss.ListObjectsRequest(bucket=BUCKET, prefix=prefix, delimiter=delimiter or None, max_keys=max_keys)
    pages = [([o.key for o in page.contents or []], [p.prefix for p in page.common_prefixes or []])
             for page in bounded(paginator.iter_page(request))]
    objects, prefixes = expected_listing(keys, prefix, delimiter)
    _check_pages(pages, max_keys, objects, prefixes)


@pytest.mark.parametrize(("sub", "delimiter", "want_objects", "want_prefixes"), [
    ("a/", "", ["a/b/c.jpg", "a/b/d.jpg", "a/e.jpg"], []),
    ("a/", "/", ["a/e.jpg"], ["a/b/"]),
    ("a/b", "/", [], ["a/b/"]),
    ("图片/", "", ["图片/猫 照片.jpg"], []),
    ("dir/cat photo+", "", ["dir/cat photo+1.jpg"], []),
    ("img-1", "", [f"img-{n}.jpg" for n in range(10, 18)], []),
    ("nothing-here", "/", [], []),
])
def test_list_prefix_filtering(client: oss.Client, listed: tuple[str, list[str]], sub: str,
                               delimiter: str, want_objects: list[str], want_prefixes: list[str]) -> None:
    """ListObjectsV2 with a prefix returns only (and all) keys under it."""
    prefix, _ = listed
    result = client.list_objects_v2(oss.ListObjectsV2Request(
        bucket=BUCKET, prefix=prefix + sub, delimiter=delimiter or None))
    assert [o.key for o in result.contents or []] == [prefix + k for k in want_objects]
    assert [p.prefix for p in result.common_prefixes or []] == [prefix + p for p in want_prefixes]
    assert result.is_truncated is False


def test_list_other_delimiter_and_start_after(client: oss.Client, listed: tuple[str, list[str]]) -> None:
    """Delimiter '-' groups img-*/z-* into common prefixes (paginated, max_keys=2), and
    start-after resumes strictly after the given key, in the same order."""
    prefix, keys = listed
    pages = [([o.key for o in p.contents or []], [c.prefix for c in p.common_prefixes or []])
             for p in bounded(client.list_objects_v2_paginator().iter_page(oss.ListObjectsV2Request(
                 bucket=BUCKET, prefix=prefix, delimiter="-", max_keys=2)))]
    objects, prefixes = expected_listing(keys, prefix, "-")
    assert prefixes == [prefix + "img-", prefix + "z-"]
    _check_pages(pages, 2, objects, prefixes)
    start_after = prefix + "img-15.jpg"
    result = client.list_objects_v2(oss.ListObjectsV2Request(
        bucket=BUCKET, prefix=prefix, start_after=start_after, max_keys=100))
    assert [o.key for o in result.contents] == [k for k in sorted(keys) if k > start_after]
    assert result.start_after == start_after


# -- scoring ----------------------------------------------------------------------------------


def test_get_object_process_score(client: oss.Client, jpeg: bytes) -> None:
    """GetObject with process='image/score' returns the score JSON, whose RequestId equals
    the x-oss-request-id header; the source object's ETag/CRC are not sent with it."""
    key = unique_prefix("v2-score") + "dir/cat photo+1.jpg"
    put(client, key, jpeg)
    result = client.get_object(oss.GetObjectRequest(bucket=BUCKET, key=key, process="image/score"))
    assert result.status_code == 200
    assert result.content_type == "application/json;charset=utf-8"
    assert result.headers["x-oss-request-id"] == result.request_id
    score = parse_score(result.body.read(), result.request_id)
    assert 0 <= score <= 1
    assert result.etag is None and result.hash_crc64 is None


def test_process_object_post_scores_like_get(server: ServerProcess, variant: str, jpeg: bytes) -> None:
    """ProcessObject (POST, form body x-oss-process=image/score) returns the same JSON shape
    and the same score as the GET form for the same object."""
    recorder = RecordingHttpClient()
    client = oss.Client(make_config(server, variant, http_client=recorder))
    key = unique_prefix("v2-post") + "图片/猫 照片.jpg"
    put(client, key, jpeg)
    result = client.process_object(oss.ProcessObjectRequest(bucket=BUCKET, key=key, process="image/score"))
    assert result.status_code == 200
    assert recorder.responses[-1].request.method == "POST"
    post_score = parse_score(recorder.responses[-1].content, result.request_id)
    got = client.get_object(oss.GetObjectRequest(bucket=BUCKET, key=key, process="image/score"))
    assert parse_score(got.body.read(), got.request_id) == post_score


# -- presigned URLs ---------------------------------------------------------------------------


def test_presigned_get_with_process_score(client: oss.Client, jpeg: bytes) -> None:
    """A presigned GET carrying x-oss-process=image/score works from plain urllib; the same
    signature on another key is refused with 403 SignatureDoesNotMatch."""
    prefix = unique_prefix("v2-presign")
    key = prefix + "dir/cat photo+1.jpg"
    put(client, key, jpeg)
    signed = client.presign(oss.GetObjectRequest(bucket=BUCKET, key=key, process="image/score"),
                            expires=datetime.timedelta(minutes=5))
    assert signed.method == "GET"
    answer = http_request("GET", signed.url)
    assert answer.status == 200, answer.body
    assert 0 <= parse_score(answer.body, answer.header("x-oss-request-id")) <= 1
    forged = http_request("GET", signed.url.replace("cat%20photo%2B1.jpg", "other.jpg"))
    assert forged.status == 403
    assert b"<Code>SignatureDoesNotMatch</Code>" in forged.body


def test_presigned_put_with_content_type(client: oss.Client, jpeg: bytes) -> None:
    """A presigned PUT signed with Content-Type uploads with the returned signed headers; the
    object then has that type and the right ETag."""
    key = unique_prefix("v2-presign-put") + "图片/猫 照片.jpg"
    signed = client.presign(oss.PutObjectRequest(bucket=BUCKET, key=key, content_type="image/jpeg"))
    assert signed.method == "PUT"
    assert signed.signed_headers == {"Content-Type": "image/jpeg"}
    answer = http_request("PUT", signed.url, data=jpeg, headers=signed.signed_headers)
    assert answer.status == 200, answer.body
    assert answer.header("ETag") == quoted_md5(jpeg)
    head = client.head_object(oss.HeadObjectRequest(bucket=BUCKET, key=key))
    assert (head.content_type, head.etag, head.content_length) == ("image/jpeg", quoted_md5(jpeg), len(jpeg))


# -- errors -----------------------------------------------------------------------------------


def test_wrong_secret_is_signature_does_not_match(server: ServerProcess, variant: str) -> None:
    """A wrong secret fails with OperationError wrapping ServiceError 403 SignatureDoesNotMatch
    (with this signature version's EC)."""
    client = oss.Client(make_config(server, variant, secret="not-the-secret", retry=False))
    with pytest.raises(oss.exceptions.OperationError) as excinfo:
        client.get_object(oss.GetObjectRequest(bucket=BUCKET, key="anything.jpg", process="image/score"))
    err = service_error(excinfo.value)
    assert (err.status_code, err.code, err.ec) == (403, "SignatureDoesNotMatch", _MISMATCH_EC[variant])
    assert err.request_id == err.headers["x-oss-request-id"]


def test_unknown_access_key_is_invalid_access_key_id(server: ServerProcess, variant: str) -> None:
    """An AccessKeyId the server does not know fails with 403 InvalidAccessKeyId."""
    client = oss.Client(make_config(server, variant, key_id="LTAI5tNOBODY", retry=False))
    with pytest.raises(oss.exceptions.OperationError) as excinfo:
        client.put_object(oss.PutObjectRequest(bucket=BUCKET, key="x.jpg", body=b"x"))
    err = service_error(excinfo.value)
    assert (err.status_code, err.code) == (403, "InvalidAccessKeyId")


def test_get_missing_key_is_no_such_key(client: oss.Client) -> None:
    """GET (plain and image/score) of a missing key: ServiceError 404 NoSuchKey with its EC."""
    key = unique_prefix("v2-missing") + "nope.jpg"
    for request in (oss.GetObjectRequest(bucket=BUCKET, key=key),
                    oss.GetObjectRequest(bucket=BUCKET, key=key, process="image/score")):
        with pytest.raises(oss.exceptions.OperationError) as excinfo:
            client.get_object(request)
        err = service_error(excinfo.value)
        assert (err.status_code, err.code, err.ec) == (404, "NoSuchKey", _NO_SUCH_KEY_EC)
        assert err.message == "The specified key does not exist."


def test_head_missing_key_decodes_x_oss_err(client: oss.Client) -> None:
    """HEAD has no body: the SDK reads code, message and EC from the x-oss-err header."""
    key = unique_prefix("v2-missing-head") + "nope.jpg"
    with pytest.raises(oss.exceptions.OperationError) as excinfo:
        client.head_object(oss.HeadObjectRequest(bucket=BUCKET, key=key))
    err = service_error(excinfo.value)
    assert (err.status_code, err.code, err.ec) == (404, "NoSuchKey", _NO_SUCH_KEY_EC)
    assert err.message == "The specified key does not exist."
    assert err.request_id == err.headers["x-oss-request-id"]
    assert "x-oss-err" in err.headers


# -- buckets ----------------------------------------------------------------------------------


def test_put_bucket_list_buckets_and_bucket_info(client: oss.Client) -> None:
    """PutBucket creates a bucket that ListBuckets lists (sorted) and GetBucketInfo describes;
    an object can be stored in it; GetBucketInfo of a missing bucket is 404 NoSuchBucket."""
    name = unique_bucket("v2")
    assert client.put_bucket(oss.PutBucketRequest(bucket=name)).status_code == 200
    listed = client.list_buckets(oss.ListBucketsRequest(prefix=name))
    assert [b.name for b in listed.buckets] == [name]
    assert (listed.buckets[0].location, listed.buckets[0].region) == ("oss-cn-hangzhou", "cn-hangzhou")
    names = [b.name for page in bounded(client.list_buckets_paginator().iter_page(oss.ListBucketsRequest()))
             for b in page.buckets]
    assert name in names and BUCKET in names
    assert names == sorted(set(names))
    info = client.get_bucket_info(oss.GetBucketInfoRequest(bucket=name)).bucket_info
    assert info.name == name
    assert info.location == "oss-cn-hangzhou"
    assert info.storage_class == "Standard"
    client.put_object(oss.PutObjectRequest(bucket=name, key="k.jpg", body=b"abc"))
    assert client.get_object(oss.GetObjectRequest(bucket=name, key="k.jpg")).body.read() == b"abc"
    with pytest.raises(oss.exceptions.OperationError) as excinfo:
        client.get_bucket_info(oss.GetBucketInfoRequest(bucket=unique_bucket("none")))
    err = service_error(excinfo.value)
    assert (err.status_code, err.code) == (404, "NoSuchBucket")


def test_list_buckets_prefix_marker_and_paginator(client: oss.Client) -> None:
    """ListBuckets honours prefix, marker and max-keys: the SDK paginator (max_keys=2) over five
    buckets sharing a fresh prefix yields exactly them, sorted, in three pages; a marker
    resumes strictly after the named bucket."""
    stem = unique_bucket("v2lb")
    names = [f"{stem}-{i}" for i in range(5)]
    for name in names:
        client.put_bucket(oss.PutBucketRequest(bucket=name))
    pages = list(bounded(client.list_buckets_paginator().iter_page(
        oss.ListBucketsRequest(prefix=stem + "-", max_keys=2))))
    assert [[b.name for b in page.buckets] for page in pages] == [names[0:2], names[2:4], names[4:]]
    assert [page.is_truncated for page in pages] == [True, True, False]
    assert [page.next_marker for page in pages[:2]] == [names[1], names[3]]
    after = client.list_buckets(oss.ListBucketsRequest(prefix=stem + "-", marker=names[2]))
    assert [b.name for b in after.buckets] == names[3:]
    assert (after.prefix, after.marker, after.is_truncated) == (stem + "-", names[2], False)


# -- AsyncClient ------------------------------------------------------------------------------

ASYNC_VARIANTS = ["v4", "v1"]


@pytest.fixture(params=ASYNC_VARIANTS)
async def aclient(server: ServerProcess, request: pytest.FixtureRequest) -> AsyncIterator[oss_aio.AsyncClient]:
    async with oss_aio.AsyncClient(make_config(server, request.param)) as client:
        yield client


async def test_async_object_round_trip(aclient: oss_aio.AsyncClient, jpeg: bytes) -> None:
    """AsyncClient: put (ETag/CRC-64), get, ranged get (206), head with metadata, exists,
    delete and delete of a missing key."""
    key = unique_prefix("v2a-obj") + "图片/猫 照片.jpg"
    put_result = await aclient.put_object(oss.PutObjectRequest(
        bucket=BUCKET, key=key, body=jpeg, metadata={"album": "Cats"}))
    assert put_result.etag == quoted_md5(jpeg)
    assert put_result.hash_crc64 == str(crc64_ecma(jpeg))
    got = await aclient.get_object(oss.GetObjectRequest(bucket=BUCKET, key=key))
    assert await got.body.read() == jpeg
    ranged = await aclient.get_object(oss.GetObjectRequest(bucket=BUCKET, key=key, range_header="bytes=10-19"))
    assert ranged.status_code == 206
    assert await ranged.body.read() == jpeg[10:20]
    head = await aclient.head_object(oss.HeadObjectRequest(bucket=BUCKET, key=key))
    assert (head.content_length, head.etag, head.content_type) == (len(jpeg), quoted_md5(jpeg), "image/jpeg")
    assert head.metadata == {"album": "Cats"}
    assert await aclient.is_object_exist(BUCKET, key) is True
    assert (await aclient.delete_object(oss.DeleteObjectRequest(bucket=BUCKET, key=key))).status_code == 204
    assert await aclient.is_object_exist(BUCKET, key) is False
    assert (await aclient.delete_object(oss.DeleteObjectRequest(bucket=BUCKET, key=key))).status_code == 204


async def test_async_list_paginators(aclient: oss_aio.AsyncClient, listed: tuple[str, list[str]]) -> None:
    """AsyncClient paginators (V2 and V1, max_keys=3, with and without delimiter) yield the
    exact expected keys and common prefixes in order, without duplicates."""
    prefix, keys = listed
    for delimiter in ("", "/"):
        objects, prefixes = expected_listing(keys, prefix, delimiter)
        v2_pages = [([o.key for o in p.contents or []], [c.prefix for c in p.common_prefixes or []])
                    async for p in abounded(aclient.list_objects_v2_paginator().iter_page(oss.ListObjectsV2Request(
                        bucket=BUCKET, prefix=prefix, delimiter=delimiter or None, max_keys=3)))]
        _check_pages(v2_pages, 3, objects, prefixes)
        v1_pages = [([o.key for o in p.contents or []], [c.prefix for c in p.common_prefixes or []])
                    async for p in abounded(aclient.list_objects_paginator().iter_page(oss.ListObjectsRequest(
                        bucket=BUCKET, prefix=prefix, delimiter=delimiter or None, max_keys=3)))]
        _check_pages(v1_pages, 3, objects, prefixes)


async def test_async_delete_multiple(aclient: oss_aio.AsyncClient) -> None:
    """AsyncClient DeleteMultipleObjects removes the listed keys only."""
    prefix = unique_prefix("v2a-multi")
    for name in ("a.jpg", "b c+.jpg", "keep.jpg"):
        await aclient.put_object(oss.PutObjectRequest(bucket=BUCKET, key=prefix + name, body=b"1"))
    result = await aclient.delete_multiple_objects(oss.DeleteMultipleObjectsRequest(
        bucket=BUCKET, delete=oss.Delete(objects=[oss.ObjectIdentifier(key=prefix + "a.jpg"),
                                                  oss.ObjectIdentifier(key=prefix + "b c+.jpg")])))
    assert [d.key for d in result.deleted_objects] == [prefix + "a.jpg", prefix + "b c+.jpg"]
    listed = await aclient.list_objects_v2(oss.ListObjectsV2Request(bucket=BUCKET, prefix=prefix))
    assert [o.key for o in listed.contents] == [prefix + "keep.jpg"]


async def test_async_score_get_post_and_presigned(aclient: oss_aio.AsyncClient, jpeg: bytes) -> None:
    """AsyncClient: image/score via GET, ProcessObject POST (status) and a presigned URL
    fetched with aiohttp all succeed, and GET and presigned give the same score."""
    key = unique_prefix("v2a-score") + "dir/cat photo+1.jpg"
    await aclient.put_object(oss.PutObjectRequest(bucket=BUCKET, key=key, body=jpeg))
    got = await aclient.get_object(oss.GetObjectRequest(bucket=BUCKET, key=key, process="image/score"))
    assert got.headers["x-oss-request-id"] == got.request_id
    score = parse_score(await got.body.read(), got.request_id)
    posted = await aclient.process_object(oss.ProcessObjectRequest(bucket=BUCKET, key=key, process="image/score"))
    assert posted.status_code == 200
    signed = await aclient.presign(oss.GetObjectRequest(bucket=BUCKET, key=key, process="image/score"))
    async with (aiohttp.ClientSession() as session,
                session.get(yarl.URL(signed.url, encoded=True)) as response):
        assert response.status == 200, await response.text()
        body = await response.read()
        assert parse_score(body, response.headers["x-oss-request-id"]) == score


async def test_async_errors(server: ServerProcess) -> None:
    """AsyncClient maps wrong secret, unknown AK, NoSuchKey (GET) and HEAD 404 (x-oss-err)
    onto OperationError/ServiceError with the OSS code and status."""
    key = unique_prefix("v2a-err") + "nope.jpg"
    async with oss_aio.AsyncClient(make_config(server, "v4", secret="wrong", retry=False)) as bad:
        with pytest.raises(oss.exceptions.OperationError) as excinfo:
            await bad.get_object(oss.GetObjectRequest(bucket=BUCKET, key=key))
        assert (service_error(excinfo.value).status_code, service_error(excinfo.value).code) == (
            403, "SignatureDoesNotMatch")
    async with oss_aio.AsyncClient(make_config(server, "v4", key_id="LTAI5tNOBODY", retry=False)) as bad:
        with pytest.raises(oss.exceptions.OperationError) as excinfo:
            await bad.get_object(oss.GetObjectRequest(bucket=BUCKET, key=key))
        assert service_error(excinfo.value).code == "InvalidAccessKeyId"
    async with oss_aio.AsyncClient(make_config(server, "v4", retry=False)) as good:
        with pytest.raises(oss.exceptions.OperationError) as excinfo:
            await good.get_object(oss.GetObjectRequest(bucket=BUCKET, key=key))
        err = service_error(excinfo.value)
        assert (err.status_code, err.code, err.ec) == (404, "NoSuchKey", _NO_SUCH_KEY_EC)
        with pytest.raises(oss.exceptions.OperationError) as excinfo:
            await good.head_object(oss.HeadObjectRequest(bucket=BUCKET, key=key))
        err = service_error(excinfo.value)
        assert (err.status_code, err.code, err.ec) == (404, "NoSuchKey", _NO_SUCH_KEY_EC)
        assert err.message == "The specified key does not exist."


async def test_async_buckets(aclient: oss_aio.AsyncClient) -> None:
    """AsyncClient PutBucket → ListBuckets lists it → GetBucketInfo names it."""
    name = unique_bucket("v2a")
    assert (await aclient.put_bucket(oss.PutBucketRequest(bucket=name))).status_code == 200
    listed = await aclient.list_buckets(oss.ListBucketsRequest(prefix=name))
    assert [b.name for b in listed.buckets] == [name]
    info = (await aclient.get_bucket_info(oss.GetBucketInfoRequest(bucket=name))).bucket_info
    assert (info.name, info.location) == (name, "oss-cn-hangzhou")
