"""``oss2`` against a real ``picscore serve``: V1 (``oss2.Auth``) and V4 (``ProviderAuthV4`` /
``AuthV4`` with a region), on the IP endpoint, on ``localhost``, and virtual-hosted through the
server used as an HTTP proxy: the way to reach ``<bucket>.<service host>`` names without DNS,
since the client then sends absolute-form request targets to the server itself. The endpoint
settings are the ones README.md's "Pointing the official SDKs at it" gives.

Values are compared with ones computed here (MD5, CRC-64, expected listings), never with
anything the SDK derived.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import oss2
import pytest
from oss2.credentials import EnvironmentVariableCredentialsProvider

from tests.conftest import ACCESS_KEY_ID, ACCESS_KEY_SECRET, BUCKET, make_jpeg
from worker.server.launch import ServerProcess

from .helpers import (
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

#: V1 on the IP endpoint; V4 from the env provider on the IP endpoint; AuthV4 on localhost.
VARIANTS = ["v1", "v4", "v4-localhost"]
_MISMATCH_EC = {"v1": "0002-00000040", "v4": "0002-00000201", "v4-localhost": "0002-00000201"}
_NO_SUCH_KEY_EC = "0026-00000001"
REGION = "cn-hangzhou"


def make_auth(variant: str, key_id: str = ACCESS_KEY_ID, secret: str = ACCESS_KEY_SECRET,
              env_credentials: bool = False) -> Any:
    if variant == "v1":
        return oss2.Auth(key_id, secret)
    if env_credentials:
        return oss2.ProviderAuthV4(EnvironmentVariableCredentialsProvider())
    return oss2.AuthV4(key_id, secret)


def endpoint(server: ServerProcess, variant: str) -> str:
    return f"http://localhost:{server.port}" if variant == "v4-localhost" else server.url


def make_bucket(server: ServerProcess, variant: str, name: str = BUCKET, **kwargs: Any) -> oss2.Bucket:
    auth_kwargs = {k: kwargs.pop(k) for k in ("key_id", "secret", "env_credentials") if k in kwargs}
    region = None if variant == "v1" else REGION
    return oss2.Bucket(make_auth(variant, **auth_kwargs), endpoint(server, variant), name,
                       region=region, **kwargs)


class RecordingSession(oss2.http.Session):
    """oss2's own session, keeping a copy of every body the SDK reads.

    ``process_object`` parses only bucket/fileSize/object/status out of the JSON it gets, so
    this is how a test sees the ``image/score`` body the SDK received.
    """

    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[bytes] = []

    def do_request(self, req: oss2.http.Request, timeout: Any) -> oss2.http.Response:
        response = super().do_request(req, timeout)
        read, bodies = response.read, self.bodies

        def tee(amt: int | None = None) -> bytes:
            data = read(amt)
            bodies.append(data)
            return data

        response.read = tee
        return response


@pytest.fixture(params=VARIANTS)
def variant(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture()
def bucket(server: ServerProcess, variant: str, oss_env: None) -> oss2.Bucket:
    """A Bucket as users build it; V4 reads its keys from OSS_ACCESS_KEY_ID/SECRET."""
    return make_bucket(server, variant, env_credentials=variant == "v4")


@pytest.fixture(scope="module")
def jpeg() -> bytes:
    return make_jpeg(seed=11)


@pytest.fixture(scope="module")
def listed(server: ServerProcess) -> Iterator[tuple[str, list[str]]]:
    """26 small objects under a fresh prefix, uploaded once for the listing tests."""
    uploader = make_bucket(server, "v1")
    prefix = unique_prefix("oss2-list")
    keys = listing_keys(prefix)
    for key in keys:
        uploader.put_object(key, key.encode("utf-8"))
    yield prefix, keys


# -- objects ----------------------------------------------------------------------------------


def test_put_returns_md5_etag_and_crc64(bucket: oss2.Bucket, jpeg: bytes) -> None:
    """PutObject: the ETag header is the quoted upper-case MD5 (oss2 strips the quotes), the
    CRC-64 matches, and oss2's own CRC check (enable_crc, on by default) accepts it."""
    assert bucket.enable_crc is True
    key = unique_prefix("oss2-put") + "dir/cat photo+1.jpg"
    result = bucket.put_object(key, jpeg)
    assert result.status == 200
    assert result.headers["ETag"] == quoted_md5(jpeg)
    assert result.etag == quoted_md5(jpeg).strip('"')
    assert result.crc == crc64_ecma(jpeg)
    assert len(result.request_id) == 24


def test_get_returns_same_bytes(bucket: oss2.Bucket, jpeg: bytes) -> None:
    """GetObject returns the uploaded bytes; oss2's download CRC-64 equals the server's."""
    key = unique_prefix("oss2-get") + "图片/猫 照片.jpg"
    bucket.put_object(key, jpeg)
    result = bucket.get_object(key)
    assert result.status == 200
    assert result.read() == jpeg
    assert result.server_crc == result.client_crc == crc64_ecma(jpeg)
    assert (result.content_length, result.etag, result.content_type) == (
        len(jpeg), quoted_md5(jpeg).strip('"'), "image/jpeg")


def test_get_with_range_returns_206_slice(bucket: oss2.Bucket, jpeg: bytes) -> None:
    """byte_range=(100, 1099) answers 206 with exactly that slice and its Content-Range."""
    key = unique_prefix("oss2-range") + "a/b/c.jpg"
    bucket.put_object(key, jpeg)
    result = bucket.get_object(key, byte_range=(100, 1099))
    assert result.status == 206
    assert result.read() == jpeg[100:1100]
    assert result.content_range == f"bytes 100-1099/{len(jpeg)}"
    assert result.content_length == 1000
    tail = bucket.get_object(key, byte_range=(None, 10))
    assert (tail.status, tail.read()) == (206, jpeg[-10:])


def test_head_reports_size_etag_type_and_user_metadata(bucket: oss2.Bucket, jpeg: bytes) -> None:
    """HeadObject reports the size, ETag, Content-Type and x-oss-meta-* given at upload."""
    key = unique_prefix("oss2-head") + "photo"
    bucket.put_object(key, jpeg, headers={"Content-Type": "image/jpeg", "x-oss-meta-camera": "X100",
                                          "x-oss-meta-owner": "Ana"})
    head = bucket.head_object(key)
    assert head.status == 200
    assert (head.content_length, head.etag, head.content_type) == (len(jpeg), quoted_md5(jpeg).strip('"'),
                                                                   "image/jpeg")
    assert head.headers["x-oss-meta-camera"] == "X100"
    assert head.headers["x-oss-meta-owner"] == "Ana"
    assert head.server_crc == crc64_ecma(jpeg)
    assert head.object_type == "Normal"


def test_object_exists_true_and_false(bucket: oss2.Bucket) -> None:
    """object_exists (GetObjectMeta) is True for an uploaded key and False for a missing one."""
    prefix = unique_prefix("oss2-exist")
    bucket.put_object(prefix + "here.jpg", b"x")
    assert bucket.object_exists(prefix + "here.jpg") is True
    assert bucket.object_exists(prefix + "missing.jpg") is False


def test_delete_object_and_delete_missing_key(bucket: oss2.Bucket) -> None:
    """DeleteObject answers 204 and removes the key; deleting a missing key also succeeds."""
    key = unique_prefix("oss2-del") + "gone.jpg"
    bucket.put_object(key, b"bytes")
    assert bucket.delete_object(key).status == 204
    assert bucket.object_exists(key) is False
    assert bucket.delete_object(key).status == 204


def test_batch_delete_objects(bucket: oss2.Bucket) -> None:
    """DeleteMultipleObjects removes exactly the listed keys (a missing one and XML/URL
    special characters included) and reports each of them; other keys under the prefix stay."""
    prefix = unique_prefix("oss2-multi")
    names = ("a.jpg", "dir/cat photo+1.jpg", "图片/猫 照片.jpg", "x<y>&\"q'.jpg", "!'()*~ &=?#%41.jpg", "keep.jpg")
    keys = [prefix + name for name in names]
    for key in keys:
        bucket.put_object(key, b"data")
    doomed = [*keys[:5], prefix + "never-existed.jpg"]
    result = bucket.batch_delete_objects(doomed)
    assert result.status == 200
    assert result.deleted_keys == doomed
    assert [o.key for o in bounded(oss2.ObjectIteratorV2(bucket, prefix=prefix))] == [prefix + "keep.jpg"]


# -- listing ----------------------------------------------------------------------------------


def _spy_pages(target: oss2.Bucket | oss2.Service, method: str,
               snapshot: Callable[[Any], Any] = lambda result: result) -> list[Any]:
    """Record (a snapshot of) each page an iterator fetches; the SDK call itself is unchanged."""
    pages: list[Any] = []
    real = getattr(target, method)

    def spy(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)
        pages.append(snapshot(result))
        return result

    setattr(target, method, spy)
    return pages


def _check_iteration(items: list[Any], pages: list[Any], max_keys: int,
                     objects: list[str], prefixes: list[str]) -> None:
    """The iterator yields every key and common prefix once, in order; each page holds at most
    ``max_keys`` entries (keys and prefixes together) and all but the last are full."""
    assert [i.key for i in items] == sorted(objects + prefixes)
    assert [i.key for i in items if i.is_prefix()] == prefixes
    assert len(pages) == -(-(len(objects) + len(prefixes)) // max_keys)
    for page in pages[:-1]:
        assert len(page.object_list) + len(page.prefix_list) == max_keys
        assert page.is_truncated is True
    assert pages[-1].is_truncated is False
    sizes = {i.key: (i.size, i.etag) for i in items if not i.is_prefix()}
    assert sizes == {k: (len(k.encode()), quoted_md5(k.encode()).strip('"')) for k in objects}


@pytest.mark.parametrize("max_keys", [1, 4])
@pytest.mark.parametrize("delimiter", ["", "/"])
def test_object_iterator_v2(bucket: oss2.Bucket, listed: tuple[str, list[str]], delimiter: str,
                            max_keys: int) -> None:
    """ObjectIteratorV2 (ListObjectsV2, continuation tokens, encoding-type=url), max_keys 1 (every
    page ends on each entry, common prefixes included) and 4: exact keys (non-ASCII, space, '+',
    '%41', nested) and common prefixes, in order, no duplicates."""
    prefix, keys = listed
    pages = _spy_pages(bucket, "list_objects_v2")
    items = list(bounded(oss2.ObjectIteratorV2(bucket, prefix=prefix, delimiter=delimiter, max_keys=max_keys)))
    objects, prefixes = expected_listing(keys, prefix, delimiter)
    _check_iteration(items, pages, max_keys, objects, prefixes)
    if delimiter:
        assert prefixes == [prefix + "a/", prefix + "dir/", prefix + "图片/"]


@pytest.mark.parametrize("max_keys", [1, 6])
@pytest.mark.parametrize("delimiter", ["", "/"])
def test_object_iterator_v1(bucket: oss2.Bucket, listed: tuple[str, list[str]], delimiter: str,
                            max_keys: int) -> None:
    """ObjectIterator (ListObjects V1, marker/NextMarker), max_keys 1 and 6: same guarantees."""
    prefix, keys = listed
    pages = _spy_pages(bucket, "list_objects")
    items = list(bounded(oss2.ObjectIterator(bucket, prefix=prefix, delimiter=delimiter, max_keys=max_keys)))
    objects, prefixes = expected_listing(keys, prefix, delimiter)
    _check_iteration(items, pages, max_keys, objects, prefixes)


@pytest.mark.parametrize(("sub", "delimiter", "want"), [
    ("a/", "", ["a/b/c.jpg", "a/b/d.jpg", "a/e.jpg"]),
    ("a/", "/", ["a/b/", "a/e.jpg"]),
    ("a/b", "/", ["a/b/"]),
    ("图片/", "", ["图片/猫 照片.jpg"]),
    ("dir/cat photo+", "", ["dir/cat photo+1.jpg"]),
    ("img-1", "", [f"img-{n}.jpg" for n in range(10, 18)]),
    ("nothing-here", "/", []),
])
def test_list_prefix_filtering(bucket: oss2.Bucket, listed: tuple[str, list[str]], sub: str,
                               delimiter: str, want: list[str]) -> None:
    """list_objects (V1) and list_objects_v2 with a prefix return only (and all) keys under it."""
    prefix, _ = listed
    for result in (bucket.list_objects(prefix=prefix + sub, delimiter=delimiter),
                   bucket.list_objects_v2(prefix=prefix + sub, delimiter=delimiter)):
        got = sorted([o.key for o in result.object_list] + result.prefix_list)
        assert got == [prefix + k for k in want]
        assert result.is_truncated is False


def test_list_other_delimiter_and_start_after(bucket: oss2.Bucket, listed: tuple[str, list[str]]) -> None:
    """Delimiter '-' groups img-*/z-* into common prefixes (paginated, max_keys=2), and
    start_after resumes strictly after the given key, in the same order."""
    prefix, keys = listed
    pages = _spy_pages(bucket, "list_objects_v2")
    items = list(bounded(oss2.ObjectIteratorV2(bucket, prefix=prefix, delimiter="-", max_keys=2)))
    objects, prefixes = expected_listing(keys, prefix, "-")
    assert prefixes == [prefix + "img-", prefix + "z-"]
    _check_iteration(items, pages, 2, objects, prefixes)
    start_after = prefix + "img-15.jpg"
    result = bucket.list_objects_v2(prefix=prefix, start_after=start_after)
    assert [o.key for o in result.object_list] == [k for k in sorted(keys) if k > start_after]


# -- scoring ----------------------------------------------------------------------------------


def test_get_object_process_score(bucket: oss2.Bucket, jpeg: bytes) -> None:
    """get_object(process='image/score') returns the score JSON with RequestId equal to the
    x-oss-request-id header; the source object's ETag/CRC are not sent with it."""
    key = unique_prefix("oss2-score") + "dir/cat photo+1.jpg"
    bucket.put_object(key, jpeg)
    result = bucket.get_object(key, process="image/score")
    assert result.status == 200
    assert result.headers["Content-Type"] == "application/json;charset=utf-8"
    assert result.headers["x-oss-request-id"] == result.request_id
    assert 0 <= parse_score(result.read(), result.request_id) <= 1
    assert "ETag" not in result.headers and "x-oss-hash-crc64ecma" not in result.headers


def test_process_object_post_scores_like_get(server: ServerProcess, variant: str, jpeg: bytes) -> None:
    """process_object (POST, form body x-oss-process=image/score) returns the same JSON shape
    and the same score as the GET form for the same object."""
    session = RecordingSession()
    bucket = make_bucket(server, variant, session=session)
    key = unique_prefix("oss2-post") + "图片/猫 照片.jpg"
    bucket.put_object(key, jpeg)
    result = bucket.process_object(key, "image/score")
    assert result.status == 200
    post_score = parse_score(session.bodies[-1], result.request_id)
    got = bucket.get_object(key, process="image/score")
    assert parse_score(got.read(), got.request_id) == post_score


# -- presigned URLs ---------------------------------------------------------------------------


def test_sign_url_get_with_process_score(bucket: oss2.Bucket, jpeg: bytes) -> None:
    """sign_url GET with x-oss-process=image/score (V1 or V4 by auth) works from plain urllib;
    the same signature on another key is refused with 403 SignatureDoesNotMatch."""
    key = unique_prefix("oss2-sign") + "dir/cat photo+1.jpg"
    bucket.put_object(key, jpeg)
    url = bucket.sign_url("GET", key, 300, params={"x-oss-process": "image/score"})
    is_v4 = "x-oss-signature-version=OSS4-HMAC-SHA256" in url
    assert is_v4 == (not isinstance(bucket.auth, oss2.Auth))
    answer = http_request("GET", url)
    assert answer.status == 200, answer.body
    assert 0 <= parse_score(answer.body, answer.header("x-oss-request-id")) <= 1
    forged = http_request("GET", url.replace("cat%20photo%2B1.jpg", "other.jpg"))
    assert forged.status == 403
    assert b"<Code>SignatureDoesNotMatch</Code>" in forged.body


def test_sign_url_put(bucket: oss2.Bucket, jpeg: bytes) -> None:
    """A presigned PUT signed with Content-Type uploads with that header; the object then has
    that type and the right ETag."""
    key = unique_prefix("oss2-sign-put") + "图片/猫 照片.jpg"
    url = bucket.sign_url("PUT", key, 300, headers={"Content-Type": "image/png"})
    answer = http_request("PUT", url, data=jpeg, headers={"Content-Type": "image/png"})
    assert answer.status == 200, answer.body
    assert answer.header("ETag") == quoted_md5(jpeg)
    head = bucket.head_object(key)
    assert (head.content_type, head.etag, head.content_length) == (
        "image/png", quoted_md5(jpeg).strip('"'), len(jpeg))


# -- errors -----------------------------------------------------------------------------------


def test_wrong_secret_is_signature_does_not_match(server: ServerProcess, variant: str) -> None:
    """A wrong secret raises oss2.exceptions.SignatureDoesNotMatch (403, this version's EC)
    with the server's StringToSign in details."""
    bad = make_bucket(server, variant, secret="not-the-secret")
    with pytest.raises(oss2.exceptions.SignatureDoesNotMatch) as excinfo:
        bad.get_object("anything.jpg", process="image/score")
    err = excinfo.value
    assert (err.status, err.code, err.ec) == (403, "SignatureDoesNotMatch", _MISMATCH_EC[variant])
    assert err.details["OSSAccessKeyId"] == ACCESS_KEY_ID
    assert err.details["StringToSign"]
    assert err.request_id == err.headers["x-oss-request-id"]


def test_unknown_access_key_is_invalid_access_key_id(server: ServerProcess, variant: str) -> None:
    """An unknown AccessKeyId raises oss2.exceptions.ServerError 403 InvalidAccessKeyId."""
    bad = make_bucket(server, variant, key_id="LTAI5tNOBODY")
    with pytest.raises(oss2.exceptions.ServerError) as excinfo:
        bad.put_object("x.jpg", b"x")
    assert (excinfo.value.status, excinfo.value.code) == (403, "InvalidAccessKeyId")
    assert excinfo.value.details["OSSAccessKeyId"] == "LTAI5tNOBODY"


def test_get_missing_key_is_no_such_key(bucket: oss2.Bucket) -> None:
    """GET (plain and image/score) of a missing key raises oss2.exceptions.NoSuchKey with Key and EC."""
    key = unique_prefix("oss2-missing") + "图片/nope.jpg"
    for kwargs in ({}, {"process": "image/score"}):
        with pytest.raises(oss2.exceptions.NoSuchKey) as excinfo:
            bucket.get_object(key, **kwargs)
        err = excinfo.value
        assert (err.status, err.ec, err.details["Key"]) == (404, _NO_SUCH_KEY_EC, key)
        assert err.message == "The specified key does not exist."


def test_head_missing_key_decodes_x_oss_err(bucket: oss2.Bucket) -> None:
    """HEAD has no body: oss2 decodes the x-oss-err header into NoSuchKey with Key and EC."""
    key = unique_prefix("oss2-missing-head") + "nope.jpg"
    with pytest.raises(oss2.exceptions.NoSuchKey) as excinfo:
        bucket.head_object(key)
    err = excinfo.value
    assert (err.status, err.code, err.ec, err.details["Key"]) == (404, "NoSuchKey", _NO_SUCH_KEY_EC, key)
    assert err.request_id == err.headers["x-oss-request-id"]


# -- buckets ----------------------------------------------------------------------------------


def test_create_bucket_list_buckets_and_bucket_info(server: ServerProcess, variant: str, oss_env: None) -> None:
    """create_bucket makes a bucket that Service.list_buckets and BucketIterator list (sorted)
    and get_bucket_info describes; a missing bucket raises NoSuchBucket."""
    name = unique_bucket("oss2")
    new = make_bucket(server, variant, name=name, env_credentials=variant == "v4")
    assert new.create_bucket().status == 200
    service = oss2.Service(make_auth(variant), endpoint(server, variant),
                           region=None if variant == "v1" else REGION)
    listed = service.list_buckets(prefix=name)
    assert [(b.name, b.location) for b in listed.buckets] == [(name, "oss-cn-hangzhou")]
    names = [b.name for b in bounded(oss2.BucketIterator(service))]
    assert name in names and BUCKET in names
    assert names == sorted(set(names))
    info = new.get_bucket_info()
    assert (info.name, info.location, info.storage_class) == (name, "oss-cn-hangzhou", "Standard")
    new.put_object("k.jpg", b"abc")
    assert new.get_object("k.jpg").read() == b"abc"
    with pytest.raises(oss2.exceptions.NoSuchBucket):
        make_bucket(server, variant, name=unique_bucket("none")).get_bucket_info()


def test_bucket_iterator_prefix_marker_and_max_keys(server: ServerProcess, variant: str) -> None:
    """ListBuckets honours prefix, marker and max-keys: BucketIterator (max_keys=2) over five
    buckets sharing a fresh prefix yields exactly them, sorted, in three pages; a marker
    resumes strictly after the named bucket."""
    stem = unique_bucket("oss2lb")
    names = [f"{stem}-{i}" for i in range(5)]
    for name in names:
        make_bucket(server, variant, name=name).create_bucket()
    service = oss2.Service(make_auth(variant), endpoint(server, variant),
                           region=None if variant == "v1" else REGION)
    # BucketIterator consumes result.buckets in place, so keep the names as each page arrives.
    pages = _spy_pages(service, "list_buckets",
                       lambda page: ([b.name for b in page.buckets], page.is_truncated, page.next_marker))
    assert [b.name for b in bounded(oss2.BucketIterator(service, prefix=stem + "-", max_keys=2))] == names
    assert pages == [(names[0:2], True, names[1]), (names[2:4], True, names[3]), (names[4:], False, "")]
    after = service.list_buckets(prefix=stem + "-", marker=names[2])
    assert [b.name for b in after.buckets] == names[3:]
    assert after.is_truncated is False


# -- virtual-hosted style via the server as HTTP proxy ------------------------------------------


@pytest.mark.parametrize("auth_variant", ["v1", "v4"])
def test_virtual_hosted_through_proxy(server: ServerProcess, monkeypatch: pytest.MonkeyPatch,
                                      auth_variant: str, jpeg: bytes) -> None:
    """With endpoint http://oss-test.localhost:PORT (the server's service host) and the server
    as HTTP proxy, oss2 sends absolute-form targets with Host testbucket.oss-test.localhost;
    put, get, image/score and listing all work."""
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    bucket = oss2.Bucket(make_auth(auth_variant), f"http://oss-test.localhost:{server.port}", BUCKET,
                         region=None if auth_variant == "v1" else REGION, proxies={"http": server.url})
    prefix = unique_prefix("oss2-vhost")
    key = prefix + "dir/cat photo+1.jpg"
    assert bucket.put_object(key, jpeg).crc == crc64_ecma(jpeg)
    assert bucket.get_object(key).read() == jpeg
    scored = bucket.get_object(key, process="image/score")
    body = scored.read()
    assert 0 <= parse_score(body, scored.request_id) <= 1
    assert json.loads(body)["RequestId"] == scored.headers["x-oss-request-id"]
    assert [o.key for o in bounded(oss2.ObjectIteratorV2(bucket, prefix=prefix))] == [key]
