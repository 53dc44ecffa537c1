"""Bucket tags against a real ``picscore serve``, through the unmodified official SDKs
(alibabacloud_oss_v2 with V4 and V1 signing, and oss2): PutBucketTags, GetBucketTags,
DeleteBucketTags (all tags, or ``?tagging=k1,k2``), ListBuckets' tag filters (``tag-key``,
``tag-value``, ``tagging``) through the SDK's paginator, and every refusal.

The rules are OSS's: at most 20 tags; a key 1–64 bytes, not starting with ``http://``,
``https://``, ``Aliyun`` or ``acs`` (any case); a value at most 128 bytes
(https://www.alibabacloud.com/help/en/oss/developer-reference/putbuckettags,
https://www.alibabacloud.com/help/en/oss/support/0010-00000219, …/0010-00000207, …/0010-00000002).
"""

from __future__ import annotations

import json
from pathlib import Path

import alibabacloud_oss_v2 as oss
import oss2
import pytest

from tests.conftest import ACCESS_KEY_ID, ACCESS_KEY_SECRET
from worker.server.launch import ServerProcess

from .helpers import unique_bucket
from .sdk_clients import oss2_bucket, service_error, v2_client


@pytest.fixture(params=["v4", "v1"])
def client(server: ServerProcess, request: pytest.FixtureRequest) -> oss.Client:
    return v2_client(server, request.param)


def _tagging(pairs: list[tuple[str, str]]) -> oss.Tagging:
    return oss.Tagging(tag_set=oss.TagSet(tags=[oss.Tag(key=k, value=v) for k, v in pairs]))


def _new_bucket(client: oss.Client, tag: str, storage_class: str | None = None) -> str:
    name = unique_bucket(tag)
    config = oss.CreateBucketConfiguration(storage_class=storage_class) if storage_class else None
    client.put_bucket(oss.PutBucketRequest(bucket=name, create_bucket_configuration=config))
    return name


def _put(client: oss.Client, bucket: str, pairs: list[tuple[str, str]]) -> oss.PutBucketTagsResult:
    return client.put_bucket_tags(oss.PutBucketTagsRequest(bucket=bucket, tagging=_tagging(pairs)))


def _get(client: oss.Client, bucket: str) -> list[tuple[str, str]]:
    result = client.get_bucket_tags(oss.GetBucketTagsRequest(bucket=bucket))
    assert result.status_code == 200
    return [(tag.key, tag.value or "") for tag in (result.tagging.tag_set.tags or [])]


# -- put / get / delete -------------------------------------------------------------------------

def test_put_get_replace_delete(client: oss.Client, server_root: Path) -> None:
    name = _new_bucket(client, "tags", "IA")
    assert _get(client, name) == []
    result = _put(client, name, [("test_key", "test_value"), ("test_key2", "test_value2")])
    assert result.status_code == 200 and len(result.request_id) == 24
    assert _get(client, name) == [("test_key", "test_value"), ("test_key2", "test_value2")]
    # a second PutBucketTags replaces the set; UTF-8, spaces and an empty value are all allowed
    _put(client, name, [("团队", "数据 平台"), ("empty", "")])
    assert _get(client, name) == [("团队", "数据 平台"), ("empty", "")]
    # kept beside the bucket's other settings, which stay as they were
    saved = json.loads((server_root / name / ".picscore" / "bucket.json").read_text())
    assert saved["tags"] == {"团队": "数据 平台", "empty": ""} and saved["storage_class"] == "IA"
    assert client.get_bucket_info(oss.GetBucketInfoRequest(bucket=name)).bucket_info.storage_class == "IA"
    deleted = client.delete_bucket_tags(oss.DeleteBucketTagsRequest(bucket=name))
    assert deleted.status_code == 204
    assert _get(client, name) == []
    # 204 again when there is nothing to delete (DeleteBucketTags doc)
    assert client.delete_bucket_tags(oss.DeleteBucketTagsRequest(bucket=name)).status_code == 204


def test_limits_are_accepted_at_their_edge(client: oss.Client) -> None:
    name = _new_bucket(client, "edge")
    pairs = [(f"k{i:02d}" + "x" * 61, "é" * 64) for i in range(20)]  # 64-byte keys, 128-byte values
    _put(client, name, pairs)
    assert _get(client, name) == pairs
    _put(client, name, [])  # an empty TagSet leaves none
    assert _get(client, name) == []


def test_oss2_put_get_and_delete_some_keys(server: ServerProcess) -> None:
    name = unique_bucket("oss2-tags")
    bucket = oss2_bucket(server, "v4", name)
    bucket.create_bucket()
    rule = oss2.models.TaggingRule()
    for key, value in [("k1", "v1"), ("k2", "v2"), ("k3", "v3")]:
        rule.add(key, value)
    assert bucket.put_bucket_tagging(oss2.models.Tagging(rule)).status == 200
    assert bucket.get_bucket_tagging().tag_set.tagging_rule == {"k1": "v1", "k2": "v2", "k3": "v3"}
    # DELETE /?tagging=k1,k2 drops only those (and a key the bucket lacks is no error)
    assert bucket.delete_bucket_tagging(params={"tagging": "k1,k2,nope"}).status == 204
    assert bucket.get_bucket_tagging().tag_set.tagging_rule == {"k3": "v3"}
    assert bucket.delete_bucket_tagging().status == 204
    assert bucket.get_bucket_tagging().tag_set.tagging_rule == {}


# -- ListBuckets' tag filters -------------------------------------------------------------------

@pytest.fixture(scope="module")
def tagged(server: ServerProcess) -> str:
    """Four buckets under one prefix: env=test, env=test+team=dev, env=prod, and one untagged."""
    client = v2_client(server)
    prefix = unique_bucket("flt")
    for suffix, pairs in [("a", [("env", "test")]), ("b", [("env", "test"), ("team", "dev")]),
                          ("c", [("env", "prod")]), ("d", [])]:
        client.put_bucket(oss.PutBucketRequest(bucket=f"{prefix}-{suffix}"))
        if pairs:
            _put(client, f"{prefix}-{suffix}", pairs)
    return prefix


def _listed(client: oss.Client, prefix: str, **filters: str) -> list[str]:
    paginator = client.list_buckets_paginator(limit=1)  # one bucket a page: filtering happens before paging
    names = []
    for page in paginator.iter_page(oss.ListBucketsRequest(prefix=prefix, **filters)):
        assert len(page.buckets or []) <= 1
        names += [b.name for b in page.buckets or []]
        assert len(names) < 10
    return [name.rsplit("-", 1)[1] for name in names]


@pytest.mark.parametrize(("filters", "expected"), [
    ({}, ["a", "b", "c", "d"]),
    ({"tag_key": "env"}, ["a", "b", "c"]),
    ({"tag_key": "env", "tag_value": "test"}, ["a", "b"]),
    ({"tag_key": "team"}, ["b"]),
    ({"tag_key": "Env"}, []),  # keys are case-sensitive
    ({"tagging": '"env":"test","team":"dev"'}, ["b"]),
    ({"tagging": '"env":"prod"'}, ["c"]),
])
def test_list_buckets_filters_by_tag(client: oss.Client, tagged: str, filters: dict[str, str],
                                     expected: list[str]) -> None:
    assert _listed(client, tagged, **filters) == expected


def test_oss2_list_buckets_with_tag_params(server: ServerProcess, tagged: str) -> None:
    service = oss2.Service(oss2.Auth(ACCESS_KEY_ID, ACCESS_KEY_SECRET), server.url)
    result = service.list_buckets(prefix=tagged, params={"tag-key": "env", "tag-value": "prod"})
    assert [b.name for b in result.buckets] == [f"{tagged}-c"]


@pytest.mark.parametrize("filters", [
    {"tag_value": "test"},  # tag-value needs tag-key
    {"tag_key": "env", "tagging": '"env":"test"'},  # tagging goes alone
    {"tagging": "env=test"},  # not "key":"value" pairs
    {"tagging": '"env":1'},
])
def test_list_buckets_refuses_bad_filters(client: oss.Client, tagged: str, filters: dict[str, str]) -> None:
    err = service_error(lambda: client.list_buckets(oss.ListBucketsRequest(prefix=tagged, **filters)))
    assert (err.status_code, err.code) == (400, "InvalidArgument")


# -- refusals ----------------------------------------------------------------------------------

@pytest.mark.parametrize("call", [
    lambda c, b: _put(c, b, [("k", "v")]),
    lambda c, b: c.get_bucket_tags(oss.GetBucketTagsRequest(bucket=b)),
    lambda c, b: c.delete_bucket_tags(oss.DeleteBucketTagsRequest(bucket=b)),
], ids=["put", "get", "delete"])
def test_missing_bucket_is_404(client: oss.Client, server_root: Path, call) -> None:
    name = unique_bucket("tags-none")
    err = service_error(lambda: call(client, name))
    assert (err.status_code, err.code) == (404, "NoSuchBucket")
    assert not (server_root / name).exists()


@pytest.mark.parametrize(("pairs", "ec"), [
    ([(f"k{i}", "v") for i in range(21)], None),  # more than 20
    ([("", "v")], "0010-00000219"),  # empty key
    ([("k" * 65, "v")], "0010-00000219"),  # key over 64 bytes
    ([("é" * 33, "v")], "0010-00000219"),  # 33 characters, 66 bytes
    ([("k", "v" * 129)], "0010-00000219"),  # value over 128 bytes
    ([("http://x", "v")], "0010-00000207"),
    ([("HTTPS://x", "v")], "0010-00000207"),
    ([("aliyun-abc", "v")], "0010-00000207"),
    ([("acs:abc", "v")], "0010-00000002"),
    ([("k", "1"), ("k", "2")], None),  # the same key twice
])
def test_invalid_tags_are_400_and_keep_the_old_ones(client: oss.Client, pairs: list[tuple[str, str]],
                                                     ec: str | None) -> None:
    name = _new_bucket(client, "bad-tags")
    _put(client, name, [("kept", "yes")])
    err = service_error(lambda: _put(client, name, pairs))
    assert (err.status_code, err.code) == (400, "InvalidTag")
    if ec:
        assert err.ec == ec
    assert _get(client, name) == [("kept", "yes")]


@pytest.mark.parametrize("body", [
    b"not xml", b"<Tagging><TagSet>", b"<Other><TagSet/></Other>", b"<Tagging/>", b"",
])
def test_malformed_body_is_400_malformed_xml(client: oss.Client, body: bytes) -> None:
    name = _new_bucket(client, "bad-xml")
    err = service_error(lambda: client.invoke_operation(oss.OperationInput(
        op_name="PutBucketTags", method="PUT", bucket=name, parameters={"tagging": ""}, body=body)))
    assert (err.status_code, err.code) == (400, "MalformedXML")
    assert _get(client, name) == []


def test_a_flood_of_elements_stops_parsing(client: oss.Client) -> None:
    name = _new_bucket(client, "flood")
    body = b"<Tagging><TagSet>" + b"<Tag><Key>k</Key></Tag>" * 2000 + b"</TagSet></Tagging>"
    err = service_error(lambda: client.invoke_operation(oss.OperationInput(
        op_name="PutBucketTags", method="PUT", bucket=name, parameters={"tagging": ""}, body=body)))
    assert (err.status_code, err.code) == (400, "InvalidTag")
