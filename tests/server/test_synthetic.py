"""Synthetic buckets (``picscore serve --synthetic-bucket NAME=COUNT``, worker/server/synthetic.py).

The arithmetic listing is checked against a brute-force listing of the same keys; the real
server is then driven through the unmodified SDK paginators, HEAD, image/score and writes.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import alibabacloud_oss_v2 as oss
import pytest

from tests.conftest import ACCESS_KEY_ID, ACCESS_KEY_SECRET
from tests.integration.helpers import bounded
from worker.server.launch import ServerProcess, start_server
from worker.server.listing import _common_prefix
from worker.server.synthetic import GROUPS, LAST_MODIFIED, SyntheticBucket, parse_synthetic_spec

SYNTH, COUNT = "synth", 2500


# -- the arithmetic, without a server ----------------------------------------------------------


def _reference(keys: list[str], prefix: str, delimiter: str, start_after: str, max_keys: int) -> tuple[list[str], bool]:
    """The page a real bucket holding ``keys`` would answer (listing.list_page's rules), by brute force."""
    if max_keys == 0:
        return [], False
    skip = start_after if delimiter and start_after and _common_prefix(start_after, prefix, delimiter) == start_after \
        else None
    out: list[str] = []
    for key in keys:
        if not key.startswith(prefix) or key <= start_after or (skip and key.startswith(skip)):
            continue
        if len(out) == max_keys:
            return out, True
        grouped = _common_prefix(key, prefix, delimiter)
        if grouped is not None:
            skip = grouped
        out.append(grouped or key)
    return out, False


@pytest.mark.parametrize("count", [0, 1, 7, 8, 9, 123, 1000])
def test_pages_match_a_brute_force_listing(count: int) -> None:
    bucket = SyntheticBucket("s", count)
    keys = [bucket.key(i) for i in range(count)]
    assert keys == sorted(keys) and len(set(keys)) == count
    probes = ["", "s", "synthetic", "synthetic/", "synthetic/0", "synthetic/03/", "synthetic/03/00000",
              "synthetic/07/", "z", *keys[:3], *keys[-3:]]
    rng = random.Random(count)
    for _ in range(1500):
        prefix, start_after = rng.choice(probes), rng.choice([*probes, "", "", ""])
        delimiter, max_keys = rng.choice(["", "/", "0", ".jpg"]), rng.choice([0, 1, 2, 5, 100, 1000])
        page = bucket.list_page(prefix=prefix, delimiter=delimiter, start_after=start_after, max_keys=max_keys)
        got = sorted([k for k, _ in page.entries] + page.common_prefixes)
        assert (got, page.truncated) == _reference(keys, prefix, delimiter, start_after, max_keys), \
            (prefix, delimiter, start_after, max_keys)


def test_keys_metadata_and_lookup() -> None:
    bucket = SyntheticBucket("s", 1_000_000)
    key = bucket.key(123_456)
    assert key == "synthetic/00/0123456.jpg" and bucket.key(999_999) == "synthetic/07/0999999.jpg"
    assert bucket.index_of(key) == 123_456
    assert bucket.index_of("synthetic/01/0123456.jpg") is None  # right number, wrong group
    assert bucket.index_of("synthetic/07/1000000.jpg") is None
    meta = bucket.head(key)
    assert meta.etag == '"' + hashlib.md5(key.encode()).hexdigest().upper() + '"'
    assert 20_000 <= meta.size < 500_000 and meta.last_modified == LAST_MODIFIED
    assert SyntheticBucket("s", 20_000_000).key(5) == "synthetic/00/00000005.jpg"  # wider, still sorted


@pytest.mark.parametrize("spec", ["synth", "synth=", "synth=-1", "synth=1e6", "Bad_Name=10", "=5"])
def test_bad_specs_are_refused(spec: str) -> None:
    with pytest.raises(ValueError, match="--synthetic-bucket"):
        parse_synthetic_spec(spec)


def test_good_spec() -> None:
    assert parse_synthetic_spec("synth=1000000") == ("synth", 1_000_000)


# -- through a real server and the SDK ----------------------------------------------------------


def _client(server: ServerProcess) -> oss.Client:
    cfg = oss.config.load_default()
    cfg.credentials_provider = oss.credentials.StaticCredentialsProvider(ACCESS_KEY_ID, ACCESS_KEY_SECRET)
    cfg.region, cfg.endpoint = "cn-hangzhou", server.url
    cfg.retryer = oss.retry.NopRetryer()
    return oss.Client(cfg)


@pytest.fixture(scope="module")
def synth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root: Path = tmp_path_factory.mktemp("synthetic-root")
    with start_server(root, {ACCESS_KEY_ID: ACCESS_KEY_SECRET},
                      args=["--synthetic-bucket", f"{SYNTH}={COUNT}", "--synthetic-bucket", "tiny=3",
                            "--fake-score-latency", "0ms"]) as server:
        yield server


@pytest.fixture(scope="module")
def client(synth_server: ServerProcess) -> oss.Client:
    return _client(synth_server)


ALL_KEYS = [SyntheticBucket(SYNTH, COUNT).key(i) for i in range(COUNT)]


def _service_error(excinfo: pytest.ExceptionInfo[BaseException]) -> oss.exceptions.ServiceError:
    inner = excinfo.value.unwrap() if isinstance(excinfo.value, oss.exceptions.OperationError) else excinfo.value
    assert isinstance(inner, oss.exceptions.ServiceError), repr(inner)
    return inner


def test_v2_paginator_lists_every_key_in_order(client: oss.Client) -> None:
    pages = list(bounded(client.list_objects_v2_paginator().iter_page(
        oss.ListObjectsV2Request(bucket=SYNTH, max_keys=1000)), limit=10))
    assert [len(p.contents) for p in pages] == [1000, 1000, 500]
    assert [p.is_truncated for p in pages] == [True, True, False]
    assert [o.key for p in pages for o in p.contents] == ALL_KEYS
    first = pages[0].contents[0]
    assert first.etag == '"' + hashlib.md5(ALL_KEYS[0].encode()).hexdigest().upper() + '"'
    assert first.last_modified == datetime.fromtimestamp(LAST_MODIFIED, UTC)


def test_v2_paginator_with_delimiter(client: oss.Client) -> None:
    """Delimiter '/': the group prefixes (paged 3 at a time), then each group's keys, paged."""
    pages = list(bounded(client.list_objects_v2_paginator().iter_page(
        oss.ListObjectsV2Request(bucket=SYNTH, prefix="synthetic/", delimiter="/", max_keys=3)), limit=10))
    groups = [p.prefix for page in pages for p in page.common_prefixes or []]
    assert groups == [f"synthetic/{g:02d}/" for g in range(GROUPS)]
    assert len(pages) == 3 and not any(page.contents for page in pages)
    listed = []
    for group in groups:
        for page in bounded(client.list_objects_v2_paginator().iter_page(
                oss.ListObjectsV2Request(bucket=SYNTH, prefix=group, delimiter="/", max_keys=100)), limit=20):
            assert not page.common_prefixes
            listed += [o.key for o in page.contents or []]
    assert listed == ALL_KEYS
    top = client.list_objects_v2(oss.ListObjectsV2Request(bucket=SYNTH, delimiter="/"))
    assert [p.prefix for p in top.common_prefixes] == ["synthetic/"] and not top.contents


def test_v1_paginator_and_start_after(client: oss.Client) -> None:
    keys = [o.key for page in bounded(client.list_objects_paginator().iter_page(
        oss.ListObjectsRequest(bucket=SYNTH, max_keys=1000)), limit=10) for o in page.contents]
    assert keys == ALL_KEYS
    after = client.list_objects_v2(oss.ListObjectsV2Request(bucket=SYNTH, start_after=ALL_KEYS[1233], max_keys=5))
    assert [o.key for o in after.contents] == ALL_KEYS[1234:1239]


def test_head_and_listed_bucket(client: oss.Client) -> None:
    key = ALL_KEYS[42]
    head = client.head_object(oss.HeadObjectRequest(bucket=SYNTH, key=key))
    listed = client.list_objects_v2(oss.ListObjectsV2Request(bucket=SYNTH, start_after=ALL_KEYS[41], max_keys=1))
    assert (head.content_length, head.etag) == (listed.contents[0].size, listed.contents[0].etag)
    assert head.content_type == "image/jpeg"
    names = [b.name for b in client.list_buckets(oss.ListBucketsRequest()).buckets]
    assert names == ["synth", "tiny"]
    with pytest.raises(Exception) as excinfo:
        client.head_object(oss.HeadObjectRequest(bucket=SYNTH, key="synthetic/00/9999999.jpg"))
    assert _service_error(excinfo).status_code == 404


def test_fake_score_is_answered_and_deterministic(client: oss.Client) -> None:
    scores = []
    for _ in range(2):
        result = client.get_object(oss.GetObjectRequest(bucket=SYNTH, key=ALL_KEYS[7], process="image/score"))
        scores.append(json.loads(result.body.read())["ImageScore"]["OverallQualityScore"])
    assert scores[0] == scores[1] and 0 <= scores[0] <= 1


def test_bytes_are_not_served(client: oss.Client) -> None:
    with pytest.raises(Exception) as excinfo:
        client.get_object(oss.GetObjectRequest(bucket=SYNTH, key=ALL_KEYS[7]))
    err = _service_error(excinfo)
    assert (err.status_code, err.code) == (404, "NoSuchKey") and "synthetic" in err.message


@pytest.mark.parametrize("write", [
    lambda c: c.put_object(oss.PutObjectRequest(bucket=SYNTH, key="new.jpg", body=b"x")),
    lambda c: c.put_object(oss.PutObjectRequest(bucket=SYNTH, key=ALL_KEYS[0], body=b"x")),
    lambda c: c.delete_object(oss.DeleteObjectRequest(bucket=SYNTH, key=ALL_KEYS[0])),
    lambda c: c.delete_multiple_objects(oss.DeleteMultipleObjectsRequest(
        bucket=SYNTH, objects=[oss.DeleteObject(key=ALL_KEYS[0])])),
    lambda c: c.put_bucket(oss.PutBucketRequest(bucket=SYNTH)),
    lambda c: c.copy_object(oss.CopyObjectRequest(bucket=SYNTH, key="copy.jpg", source_key=ALL_KEYS[0])),
    lambda c: c.put_object_tagging(oss.PutObjectTaggingRequest(
        bucket=SYNTH, key=ALL_KEYS[0], tagging=oss.Tagging(tag_set=oss.TagSet(tags=[oss.Tag(key="a", value="1")])))),
    lambda c: c.delete_object_tagging(oss.DeleteObjectTaggingRequest(bucket=SYNTH, key=ALL_KEYS[0])),
], ids=["put-new", "put-over", "delete", "delete-multiple", "put-bucket", "copy", "put-tagging", "delete-tagging"])
def test_writes_are_refused(client: oss.Client, write) -> None:
    with pytest.raises(Exception) as excinfo:
        write(client)
    err = _service_error(excinfo)
    assert (err.status_code, err.code) == (403, "AccessDenied") and "read-only" in err.message
    assert client.head_object(oss.HeadObjectRequest(bucket=SYNTH, key=ALL_KEYS[0])).status_code == 200


def test_synthetic_objects_are_standard_and_untagged(client: oss.Client) -> None:
    """GetObjectTagging answers an empty tag set; HEAD and listings say Standard."""
    tags = client.get_object_tagging(oss.GetObjectTaggingRequest(bucket=SYNTH, key=ALL_KEYS[3]))
    assert not (tags.tag_set and tags.tag_set.tags)
    head = client.head_object(oss.HeadObjectRequest(bucket=SYNTH, key=ALL_KEYS[3]))
    assert (head.storage_class, head.tagging_count) == ("Standard", None)
    listed = client.list_objects_v2(oss.ListObjectsV2Request(bucket=SYNTH, max_keys=2))
    assert [o.storage_class for o in listed.contents] == ["Standard", "Standard"]
    with pytest.raises(Exception) as excinfo:
        client.get_object_tagging(oss.GetObjectTaggingRequest(bucket=SYNTH, key="synthetic/00/9999999.jpg"))
    assert _service_error(excinfo).code == "NoSuchKey"


def test_real_scorer_refuses_to_score(tmp_path: Path) -> None:
    key = SyntheticBucket(SYNTH, 10).key(3)
    with (start_server(tmp_path, {ACCESS_KEY_ID: ACCESS_KEY_SECRET},
                       args=["--synthetic-bucket", "synth=10", "--workers", "1"]) as server,
          pytest.raises(Exception) as excinfo):
        _client(server).get_object(oss.GetObjectRequest(bucket=SYNTH, key=key, process="image/score"))
    err = _service_error(excinfo)
    assert (err.status_code, err.code) == (400, "BadRequest") and "no bytes" in err.message
