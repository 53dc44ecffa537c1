"""CopyObject, object tagging and storage classes against a real ``picscore serve``, through the
unmodified official SDKs: ``alibabacloud_oss_v2`` (V4 and V1 signing), ``oss2`` (V1 and V4) and
``ali-oss`` (Node, ``tests/node/ali_oss_copy_tagging.mjs``).

Expected values are computed here (MD5 of the bytes, the tags sent), never taken from what the
SDK derived; error cases check the status, the OSS ``Code`` and that nothing changed on the
server.
"""

from __future__ import annotations

import datetime
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import alibabacloud_oss_v2 as oss
import oss2
import pytest

from tests.conftest import ACCESS_KEY_ID, ACCESS_KEY_SECRET, BUCKET, make_jpeg
from worker.server.launch import ServerProcess

from .helpers import bounded, crc64_ecma, http_request, quoted_md5, unique_bucket, unique_prefix
from .sdk_clients import oss2_bucket, v2_client
from .test_sdk_ali_oss_node import NODE_DIR, _require_node

ARCHIVED = ["Archive", "ColdArchive", "DeepColdArchive"]
NODE_SCRIPT = NODE_DIR / "ali_oss_copy_tagging.mjs"


# -- clients ---------------------------------------------------------------------------------------

@pytest.fixture(params=["v4", "v1"])
def client(server: ServerProcess, request: pytest.FixtureRequest) -> oss.Client:
    return v2_client(server, request.param)


@pytest.fixture(params=["v1", "v4"])
def bucket(server: ServerProcess, request: pytest.FixtureRequest) -> oss2.Bucket:
    return oss2_bucket(server, request.param)


@pytest.fixture(scope="module")
def jpeg() -> bytes:
    return make_jpeg(seed=23)


def service_error(excinfo: pytest.ExceptionInfo[Any]) -> oss.exceptions.ServiceError:
    inner = excinfo.value.unwrap()
    assert isinstance(inner, oss.exceptions.ServiceError), repr(inner)
    return inner


def v2_fails(call: Any, status: int, code: str) -> oss.exceptions.ServiceError:
    with pytest.raises(oss.exceptions.OperationError) as excinfo:
        call()
    err = service_error(excinfo)
    assert (err.status_code, err.code) == (status, code), err
    return err


def put(client: oss.Client, key: str, data: bytes, bucket: str = BUCKET, **kwargs: Any) -> oss.PutObjectResult:
    return client.put_object(oss.PutObjectRequest(bucket=bucket, key=key, body=data, **kwargs))


def get_bytes(client: oss.Client, key: str, bucket: str = BUCKET) -> bytes:
    return client.get_object(oss.GetObjectRequest(bucket=bucket, key=key)).body.read()


def head(client: oss.Client, key: str, bucket: str = BUCKET) -> oss.HeadObjectResult:
    return client.head_object(oss.HeadObjectRequest(bucket=bucket, key=key))


def tags_of(client: oss.Client, key: str, bucket: str = BUCKET) -> dict[str, str]:
    result = client.get_object_tagging(oss.GetObjectTaggingRequest(bucket=bucket, key=key))
    return {t.key: t.value or "" for t in (result.tag_set.tags or [])} if result.tag_set else {}


def copy(client: oss.Client, src: str, dst: str, **kwargs: Any) -> oss.CopyObjectResult:
    kwargs.setdefault("source_bucket", BUCKET)
    kwargs.setdefault("bucket", BUCKET)
    return client.copy_object(oss.CopyObjectRequest(key=dst, source_key=src, **kwargs))


def tagging(pairs: dict[str, str]) -> oss.Tagging:
    return oss.Tagging(tag_set=oss.TagSet(tags=[oss.Tag(key=k, value=v) for k, v in pairs.items()]))


# -- CopyObject (alibabacloud-oss-v2) --------------------------------------------------------------

def test_copy_across_buckets_gives_same_bytes_etag_metadata_and_tags(client: oss.Client, jpeg: bytes) -> None:
    """A copy into another bucket has the source's bytes, so its ETag (the MD5) and CRC-64; by
    default (COPY directives) it keeps Content-Type, x-oss-meta-* and tags. A non-ASCII key with
    a space and '+' travels URL-encoded in x-oss-copy-source."""
    src = unique_prefix("cp-x") + "图片/cat photo+1.jpg"
    put(client, src, jpeg, content_type="image/x-test", metadata={"camera": "X100"}, tagging="k1=v1&k%202=a%2Fb")
    other = unique_bucket("cp")
    client.put_bucket(oss.PutBucketRequest(bucket=other))
    result = copy(client, src, "copied/cat.jpg", bucket=other)
    assert result.status_code == 200
    assert result.etag == quoted_md5(jpeg)
    assert result.hash_crc64 == str(crc64_ecma(jpeg))
    assert isinstance(result.last_modified, datetime.datetime)
    assert get_bytes(client, "copied/cat.jpg", other) == jpeg
    copied = head(client, "copied/cat.jpg", other)
    assert (copied.etag, copied.content_type, copied.metadata) == (quoted_md5(jpeg), "image/x-test", {"camera": "X100"})
    assert copied.tagging_count == 2
    assert tags_of(client, "copied/cat.jpg", other) == {"k1": "v1", "k 2": "a/b"}
    assert get_bytes(client, src) == jpeg  # the source is untouched


def test_copy_if_match_wrong_etag_is_412_and_destination_untouched(client: oss.Client, jpeg: bytes) -> None:
    """A failing x-oss-copy-source-if-match / -if-unmodified-since answers 412 PreconditionFailed
    and writes nothing; the right ETag copies."""
    prefix = unique_prefix("cp-412")
    put(client, prefix + "src.jpg", jpeg)
    put(client, prefix + "dst.jpg", b"old destination")
    v2_fails(lambda: copy(client, prefix + "src.jpg", prefix + "dst.jpg", if_match=quoted_md5(b"other")),
             412, "PreconditionFailed")
    v2_fails(lambda: copy(client, prefix + "src.jpg", prefix + "dst.jpg",
                          if_unmodified_since="Thu, 01 Jan 1970 00:00:10 GMT"), 412, "PreconditionFailed")
    v2_fails(lambda: copy(client, prefix + "src.jpg", prefix + "new.jpg", if_match='"0000"'), 412,
             "PreconditionFailed")
    assert get_bytes(client, prefix + "dst.jpg") == b"old destination"
    assert not client.is_object_exist(BUCKET, prefix + "new.jpg")
    copy(client, prefix + "src.jpg", prefix + "dst.jpg", if_match=quoted_md5(jpeg))
    assert get_bytes(client, prefix + "dst.jpg") == jpeg


def test_copy_if_none_match_or_not_modified_since_is_304(client: oss.Client) -> None:
    """A failing x-oss-copy-source-if-none-match / -if-modified-since answers 304 Not Modified
    (the CopyObject doc says 304 for these two) and copies nothing."""
    prefix = unique_prefix("cp-304")
    put(client, prefix + "src", b"data")
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)
    for kwargs in ({"if_none_match": quoted_md5(b"data")},
                   {"if_modified_since": later.strftime("%a, %d %b %Y %H:%M:%S GMT")}):
        with pytest.raises(oss.exceptions.OperationError) as excinfo:
            copy(client, prefix + "src", prefix + "dst", **kwargs)
        assert service_error(excinfo).status_code == 304
    assert not client.is_object_exist(BUCKET, prefix + "dst")
    copy(client, prefix + "src", prefix + "dst", if_none_match=quoted_md5(b"other"))
    assert get_bytes(client, prefix + "dst") == b"data"


def test_replace_directives_take_metadata_and_tags_from_the_request(client: oss.Client) -> None:
    """REPLACE takes Content-Type and x-oss-meta-* from the request (the source's are dropped);
    tagging directive Replace takes x-oss-tagging (no tags without it)."""
    prefix = unique_prefix("cp-replace")
    put(client, prefix + "src", b"data", content_type="text/plain", metadata={"old": "1"}, tagging="a=1&b=2")
    copy(client, prefix + "src", prefix + "dst", metadata_directive="REPLACE", content_type="image/png",
         metadata={"new": "2"}, tagging_directive="Replace", tagging="c=3")
    dst = head(client, prefix + "dst")
    assert (dst.content_type, dst.metadata, dst.tagging_count) == ("image/png", {"new": "2"}, 1)
    assert tags_of(client, prefix + "dst") == {"c": "3"}
    copy(client, prefix + "src", prefix + "bare", tagging_directive="Replace")
    assert tags_of(client, prefix + "bare") == {}
    assert head(client, prefix + "bare").tagging_count is None
    copy(client, prefix + "src", prefix + "kept", tagging="ignored=1")  # COPY: x-oss-tagging is ignored
    assert tags_of(client, prefix + "kept") == {"a": "1", "b": "2"}
    assert head(client, prefix + "kept").metadata == {"old": "1"}


def test_copy_onto_itself_changes_storage_class_and_metadata(client: oss.Client, jpeg: bytes) -> None:
    """Copying an object onto itself is how OSS clients change its class or metadata: the bytes
    and ETag stay."""
    key = unique_prefix("cp-self") + "photo.jpg"
    put(client, key, jpeg, metadata={"v": "1"})
    result = copy(client, key, key, storage_class="IA", metadata_directive="REPLACE", metadata={"v": "2"})
    assert result.etag == quoted_md5(jpeg)
    after = head(client, key)
    assert (after.storage_class, after.metadata, after.etag) == ("IA", {"v": "2"}, quoted_md5(jpeg))
    assert get_bytes(client, key) == jpeg


def test_copy_errors(client: oss.Client) -> None:
    """Missing source key/bucket → 404 NoSuchKey / NoSuchBucket; unknown directive or storage
    class → 400 InvalidArgument; forbid-overwrite onto an existing key → 409; a version other
    than null → 400. None of them writes the destination."""
    prefix = unique_prefix("cp-err")
    put(client, prefix + "src", b"data")
    put(client, prefix + "taken", b"taken")
    v2_fails(lambda: copy(client, prefix + "missing", prefix + "dst"), 404, "NoSuchKey")
    v2_fails(lambda: copy(client, prefix + "src", prefix + "dst", source_bucket=unique_bucket("none")),
             404, "NoSuchBucket")
    v2_fails(lambda: copy(client, prefix + "src", prefix + "dst", bucket=unique_bucket("none")), 404, "NoSuchBucket")
    for kwargs in ({"metadata_directive": "MERGE"}, {"tagging_directive": "Keep"}, {"storage_class": "Glacier"},
                   {"source_version_id": "CAEQNRiBgICv8uaA0BYiIDliZDc3"}):
        v2_fails(lambda kw=kwargs: copy(client, prefix + "src", prefix + "dst", **kw), 400, "InvalidArgument")
    v2_fails(lambda: copy(client, prefix + "src", prefix + "taken", forbid_overwrite=True), 409, "FileAlreadyExists")
    assert get_bytes(client, prefix + "taken") == b"taken"
    assert not client.is_object_exist(BUCKET, prefix + "dst")


# -- tagging (alibabacloud-oss-v2) -------------------------------------------------------------------

def test_tagging_round_trip_keeps_bytes_etag_and_last_modified(client: oss.Client) -> None:
    """PutObjectTagging replaces the tag set, GetObjectTagging returns it, DeleteObjectTagging
    (204) empties it; x-oss-tagging-count follows on HEAD and GET; bytes, ETag and Last-Modified
    do not change (OSS: tagging does not update Last-Modified)."""
    key = unique_prefix("tag-rt") + "k.jpg"
    put(client, key, b"bytes")
    before = head(client, key)
    assert before.tagging_count is None
    assert tags_of(client, key) == {}
    tags = {"project": "picscore", "Case": "Upper", "case": "lower", "empty": "", "k" * 128: "v" * 256}
    client.put_object_tagging(oss.PutObjectTaggingRequest(bucket=BUCKET, key=key, tagging=tagging(tags)))
    assert tags_of(client, key) == tags
    after = head(client, key)
    assert after.tagging_count == len(tags)
    assert (after.etag, after.last_modified) == (before.etag, before.last_modified)
    got = client.get_object(oss.GetObjectRequest(bucket=BUCKET, key=key))
    assert (got.body.read(), got.tagging_count) == (b"bytes", len(tags))
    client.put_object_tagging(oss.PutObjectTaggingRequest(bucket=BUCKET, key=key, tagging=tagging({"only": "one"})))
    assert tags_of(client, key) == {"only": "one"}
    deleted = client.delete_object_tagging(oss.DeleteObjectTaggingRequest(bucket=BUCKET, key=key))
    assert deleted.status_code == 204
    assert tags_of(client, key) == {}
    assert head(client, key).tagging_count is None


def test_eleven_tags_are_refused_and_nothing_changes(client: oss.Client) -> None:
    """More than 10 tags: 400 BadRequest from PutObjectTagging (tags unchanged) and from a PUT
    with x-oss-tagging (no object written)."""
    key = unique_prefix("tag-11") + "k"
    put(client, key, b"x", tagging="keep=1")
    eleven = {f"k{i}": str(i) for i in range(11)}
    v2_fails(lambda: client.put_object_tagging(oss.PutObjectTaggingRequest(bucket=BUCKET, key=key,
                                                                           tagging=tagging(eleven))),
             400, "BadRequest")
    assert tags_of(client, key) == {"keep": "1"}
    header = "&".join(f"{k}={v}" for k, v in eleven.items())
    v2_fails(lambda: put(client, key + "-new", b"x", tagging=header), 400, "BadRequest")
    assert not client.is_object_exist(BUCKET, key + "-new")
    put(client, key + "-ten", b"x", tagging="&".join(header.split("&")[:10]))
    assert len(tags_of(client, key + "-ten")) == 10


@pytest.mark.parametrize(("pairs", "code", "ec"), [
    ({"k" * 129: "v"}, "InvalidTag", None),
    ({"k": "v" * 257}, "InvalidTag", None),
    ({"a*b": "v"}, "InvalidTag", "0010-00000216"),
    ({"k": "猫"}, "InvalidTag", "0010-00000216"),
])
def test_invalid_tags_are_refused(client: oss.Client, pairs: dict[str, str], code: str, ec: str | None) -> None:
    key = unique_prefix("tag-bad") + "k"
    put(client, key, b"x", tagging="keep=1")
    err = v2_fails(lambda: client.put_object_tagging(
        oss.PutObjectTaggingRequest(bucket=BUCKET, key=key, tagging=tagging(pairs))), 400, code)
    if ec:
        assert err.ec == ec
    assert tags_of(client, key) == {"keep": "1"}


def test_bad_x_oss_tagging_headers(client: oss.Client) -> None:
    """Not key / key=value → 400 InvalidArgument (EC 0010-00000219); a key twice → InvalidTag
    (EC 0010-00000210). Nothing is written."""
    key = unique_prefix("tag-hdr") + "k"
    assert v2_fails(lambda: put(client, key, b"x", tagging="aa=bb=cc"), 400, "InvalidArgument").ec == "0010-00000219"
    assert v2_fails(lambda: put(client, key, b"x", tagging="a=1&a=2"), 400, "InvalidTag").ec == "0010-00000210"
    assert not client.is_object_exist(BUCKET, key)


def test_a_new_put_replaces_the_tags(client: oss.Client) -> None:
    """As on OSS, a PUT over an object gives it the new request's tags: none without the header."""
    key = unique_prefix("tag-reput") + "k"
    put(client, key, b"one", tagging="a=1&b=2")
    put(client, key, b"two")
    assert tags_of(client, key) == {}
    put(client, key, b"three", tagging="c=3")
    assert tags_of(client, key) == {"c": "3"}


def test_tagging_a_missing_object_is_no_such_key(client: oss.Client) -> None:
    key = unique_prefix("tag-missing") + "k"
    v2_fails(lambda: client.get_object_tagging(oss.GetObjectTaggingRequest(bucket=BUCKET, key=key)), 404, "NoSuchKey")
    v2_fails(lambda: client.put_object_tagging(oss.PutObjectTaggingRequest(bucket=BUCKET, key=key,
                                                                           tagging=tagging({"a": "1"}))),
             404, "NoSuchKey")
    v2_fails(lambda: client.delete_object_tagging(oss.DeleteObjectTaggingRequest(bucket=BUCKET, key=key)),
             404, "NoSuchKey")
    assert not client.is_object_exist(BUCKET, key)


# -- storage classes (alibabacloud-oss-v2) ---------------------------------------------------------------

def test_storage_class_round_trip_through_head_and_listings(client: oss.Client) -> None:
    """x-oss-storage-class on PUT comes back on HEAD and as <StorageClass> in ListObjects V1 and
    V2; without it an object is Standard; an unknown class is 400 InvalidArgument."""
    prefix = unique_prefix("sc")
    classes = {"plain": None, "std": "Standard", "ia": "IA", **{c.lower(): c for c in ARCHIVED}}
    for name, klass in classes.items():
        put(client, prefix + name, b"x", **({"storage_class": klass} if klass else {}))
    want = {prefix + name: klass or "Standard" for name, klass in classes.items()}
    assert {prefix + name: head(client, prefix + name).storage_class for name in classes} == want
    v2 = client.list_objects_v2(oss.ListObjectsV2Request(bucket=BUCKET, prefix=prefix))
    assert {o.key: o.storage_class for o in v2.contents} == want
    v1 = client.list_objects(oss.ListObjectsRequest(bucket=BUCKET, prefix=prefix))
    assert {o.key: o.storage_class for o in v1.contents} == want
    v2_fails(lambda: put(client, prefix + "bad", b"x", storage_class="GLACIER"), 400, "InvalidArgument")
    assert not client.is_object_exist(BUCKET, prefix + "bad")


@pytest.mark.parametrize("klass", ARCHIVED)
def test_archived_objects_cannot_be_read_copied_or_scored(client: oss.Client, jpeg: bytes, klass: str) -> None:
    """GET, ranged GET, image/score and CopyObject from an archived object answer 403
    InvalidObjectState until it is restored; HEAD still answers (with the class)."""
    key = unique_prefix("sc-" + klass.lower()) + "photo.jpg"
    put(client, key, jpeg, storage_class=klass)
    requests = [
        lambda: client.get_object(oss.GetObjectRequest(bucket=BUCKET, key=key)),
        lambda: client.get_object(oss.GetObjectRequest(bucket=BUCKET, key=key, range_header="bytes=0-9")),
        lambda: client.get_object(oss.GetObjectRequest(bucket=BUCKET, key=key, process="image/score")),
        lambda: copy(client, key, key + ".copy"),
        lambda: copy(client, key, key, storage_class="Standard"),
    ]
    for request in requests:
        err = v2_fails(request, 403, "InvalidObjectState")
        assert err.message == "The operation is not valid for the object's state"
    info = head(client, key)
    assert (info.storage_class, info.content_length, info.etag) == (klass, len(jpeg), quoted_md5(jpeg))
    assert not client.is_object_exist(BUCKET, key + ".copy")
    put(client, key, jpeg)  # overwritten as Standard: readable again
    assert get_bytes(client, key) == jpeg


# -- oss2 -------------------------------------------------------------------------------------------------

def test_oss2_copy_object_and_guards(bucket: oss2.Bucket, jpeg: bytes) -> None:
    """oss2 copy_object: same bytes and ETag; a wrong x-oss-copy-source-if-match raises
    PreconditionFailed (412) and leaves the destination; a matching if-none-match raises NotModified."""
    prefix = unique_prefix("oss2-cp")
    bucket.put_object(prefix + "src.jpg", jpeg, headers={"x-oss-tagging": "a=1"})
    result = bucket.copy_object(BUCKET, prefix + "src.jpg", prefix + "dst.jpg")
    assert (result.status, result.etag, result.crc) == (200, quoted_md5(jpeg).strip('"'), crc64_ecma(jpeg))
    assert bucket.get_object(prefix + "dst.jpg").read() == jpeg
    assert bucket.get_object_tagging(prefix + "dst.jpg").tag_set.tagging_rule == {"a": "1"}
    bucket.put_object(prefix + "dst.jpg", b"kept")
    with pytest.raises(oss2.exceptions.PreconditionFailed) as excinfo:
        bucket.copy_object(BUCKET, prefix + "src.jpg", prefix + "dst.jpg",
                           headers={"x-oss-copy-source-if-match": quoted_md5(b"nope")})
    assert (excinfo.value.status, excinfo.value.code) == (412, "PreconditionFailed")
    with pytest.raises(oss2.exceptions.NotModified):
        bucket.copy_object(BUCKET, prefix + "src.jpg", prefix + "dst.jpg",
                           headers={"x-oss-copy-source-if-none-match": quoted_md5(jpeg)})
    assert bucket.get_object(prefix + "dst.jpg").read() == b"kept"
    with pytest.raises(oss2.exceptions.NoSuchKey):
        bucket.copy_object(BUCKET, prefix + "missing.jpg", prefix + "dst.jpg")
    with pytest.raises(oss2.exceptions.InvalidArgument):
        bucket.copy_object(BUCKET, prefix + "src.jpg", prefix + "dst.jpg",
                           headers={"x-oss-metadata-directive": "SOMETIMES"})


def test_oss2_update_object_meta_is_a_self_copy(bucket: oss2.Bucket, jpeg: bytes) -> None:
    """update_object_meta (CopyObject onto itself, REPLACE) changes Content-Type and x-oss-meta-*,
    keeps bytes and ETag; tags stay (tagging directive COPY)."""
    key = unique_prefix("oss2-meta") + "photo.jpg"
    bucket.put_object(key, jpeg, headers={"x-oss-meta-a": "1", "x-oss-tagging": "t=1"})
    bucket.update_object_meta(key, {"Content-Type": "image/webp", "x-oss-meta-b": "2"})
    info = bucket.head_object(key)
    assert (info.content_type, info.etag) == ("image/webp", quoted_md5(jpeg).strip('"'))
    assert info.headers.get("x-oss-meta-b") == "2" and "x-oss-meta-a" not in info.headers
    assert info.headers["x-oss-tagging-count"] == "1"
    assert bucket.get_object(key).read() == jpeg


def test_oss2_tagging_round_trip_and_limits(bucket: oss2.Bucket) -> None:
    """oss2 put/get/delete_object_tagging; 11 tags raise a 400 BadRequest ServerError."""
    key = unique_prefix("oss2-tag") + "k"
    bucket.put_object(key, b"x")
    rule = oss2.models.TaggingRule()
    for k, v in {"a": "1", "b c": "d/e", "empty": ""}.items():
        rule.add(k, v)
    assert bucket.put_object_tagging(key, oss2.models.Tagging(rule)).status == 200
    assert bucket.get_object_tagging(key).tag_set.tagging_rule == {"a": "1", "b c": "d/e", "empty": ""}
    assert bucket.head_object(key).headers["x-oss-tagging-count"] == "3"
    eleven = oss2.models.TaggingRule()
    for i in range(11):
        eleven.add(f"k{i}", "v")
    with pytest.raises(oss2.exceptions.ServerError) as excinfo:
        bucket.put_object_tagging(key, oss2.models.Tagging(eleven))
    assert (excinfo.value.status, excinfo.value.code) == (400, "BadRequest")
    with pytest.raises(oss2.exceptions.ServerError) as excinfo:
        bucket.put_object(key + "-11", b"x", headers={"x-oss-tagging": eleven.to_query_string()})
    assert (excinfo.value.status, excinfo.value.code) == (400, "BadRequest")
    assert bucket.object_exists(key + "-11") is False
    assert bucket.get_object_tagging(key).tag_set.tagging_rule == {"a": "1", "b c": "d/e", "empty": ""}
    assert bucket.delete_object_tagging(key).status == 204
    assert bucket.get_object_tagging(key).tag_set.tagging_rule == {}
    assert "x-oss-tagging-count" not in bucket.head_object(key).headers


def test_oss2_malformed_tagging_body_is_malformed_xml(bucket: oss2.Bucket) -> None:
    """A PutObjectTagging body that is not <Tagging><TagSet>… (sent raw on a presigned URL, which
    signs the tagging sub-resource) is 400 MalformedXML; the tags stay."""
    key = unique_prefix("oss2-tag-xml") + "k"
    bucket.put_object(key, b"x", headers={"x-oss-tagging": "keep=1"})
    for body in (b"<Tagging><TagSet>", b"<Tags><TagSet/></Tags>"):
        xml = {"Content-Type": "application/xml"}  # signed: urllib would send a form type otherwise
        url = bucket.sign_url("PUT", key, 300, headers=xml, params={"tagging": ""})
        answer = http_request("PUT", url, data=body, headers=xml)
        assert answer.status == 400, answer.body
        assert b"<Code>MalformedXML</Code>" in answer.body
    assert bucket.get_object_tagging(key).tag_set.tagging_rule == {"keep": "1"}


def test_oss2_storage_class_and_archived_reads(bucket: oss2.Bucket, jpeg: bytes) -> None:
    """oss2: the class is on HEAD and in ObjectIteratorV2; GET and image/score of an Archive
    object raise 403 InvalidObjectState; GetObjectMeta still works."""
    prefix = unique_prefix("oss2-sc")
    bucket.put_object(prefix + "cold.jpg", jpeg, headers={"x-oss-storage-class": "ColdArchive"})
    bucket.put_object(prefix + "warm.jpg", jpeg, headers={"x-oss-storage-class": "IA"})
    assert bucket.head_object(prefix + "cold.jpg").headers["x-oss-storage-class"] == "ColdArchive"
    listed = {o.key: o.storage_class for o in bounded(oss2.ObjectIteratorV2(bucket, prefix=prefix))}
    assert listed == {prefix + "cold.jpg": "ColdArchive", prefix + "warm.jpg": "IA"}
    for kwargs in ({}, {"process": "image/score"}, {"byte_range": (0, 9)}):
        with pytest.raises(oss2.exceptions.ServerError) as excinfo:
            bucket.get_object(prefix + "cold.jpg", **kwargs)
        assert (excinfo.value.status, excinfo.value.code) == (403, "InvalidObjectState")
    assert bucket.get_object_meta(prefix + "cold.jpg").content_length == len(jpeg)
    assert bucket.get_object(prefix + "warm.jpg").read() == jpeg  # IA is readable


# -- ali-oss (Node) ------------------------------------------------------------------------------------

@pytest.mark.node
def test_ali_oss_node_copy_tagging_storage_class(server: ServerProcess, server_root: Path) -> None:
    """Runs tests/node/ali_oss_copy_tagging.mjs (copy, guards, directives, tagging, storage
    classes, archived reads; V1 and V4), then checks on disk the one copy it leaves behind."""
    node = _require_node()
    run_prefix = f"node-ct-{uuid.uuid4().hex[:12]}"
    env = {**os.environ, "PICSCORE_PORT": str(server.port), "BUCKET": BUCKET, "OSS_ACCESS_KEY_ID": ACCESS_KEY_ID,
           "OSS_ACCESS_KEY_SECRET": ACCESS_KEY_SECRET, "PICSCORE_JPEG": str(NODE_DIR / "fixtures" / "photo.jpg"),
           "PICSCORE_RUN_PREFIX": run_prefix, "NO_COLOR": "1"}
    result = subprocess.run([node, str(NODE_SCRIPT)], check=False, cwd=NODE_DIR, env=env, capture_output=True,
                            text=True, encoding="utf-8", errors="replace", timeout=240)
    output = result.stdout + (f"\n--- stderr ---\n{result.stderr}" if result.stderr.strip() else "")
    assert result.returncode == 0, output
    assert " passed, 0 failed" in result.stdout, output
    run_dir = server_root / BUCKET / run_prefix
    files = sorted(p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*") if p.is_file())
    assert files == ["keep/图片/copied 猫.jpg"], f"{files}\n{output}"
    assert (run_dir / files[0]).read_bytes() == (NODE_DIR / "fixtures" / "photo.jpg").read_bytes()
