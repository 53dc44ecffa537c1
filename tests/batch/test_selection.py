"""What is sent for scoring, what is skipped and why, and which shard owns a key."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest

from worker.batch.selection import Selection, shard_of
from worker.oss.score_contract import MAX_SOURCE_BYTES
from worker.results.schema import ObjectRef

WHEN = datetime(2026, 11, 1, tzinfo=UTC)


def ref(key: str, size: int = 1000, modified: datetime | None = WHEN) -> ObjectRef:
    return ObjectRef("b", key, "E", size, modified)


@pytest.mark.parametrize("selection, obj, code", [
    (Selection(), ref("dir/"), "DirectoryMarker"),
    (Selection(), ref("a.jpg", size=0), "EmptyObject"),
    (Selection(), ref("a.jpg", size=MAX_SOURCE_BYTES + 1), "ImageTooLarge"),
    (Selection(include=("*.jpg",)), ref("a.png"), "NotIncluded"),
    (Selection(exclude=("tmp/*",)), ref("tmp/a.jpg"), "Excluded"),
    (Selection(min_size=2000), ref("a.jpg", size=1999), "TooSmall"),
    (Selection(max_size=500), ref("a.jpg", size=501), "TooLarge"),
    (Selection(modified_since=datetime(2026, 11, 2, tzinfo=UTC)), ref("a.jpg"), "NotModifiedSince"),
])
def test_skip_reasons(selection: Selection, obj: ObjectRef, code: str) -> None:
    reason = selection.reason(obj)
    assert reason is not None and reason[0] == code and reason[1]


@pytest.mark.parametrize("selection, obj", [
    (Selection(), ref("a.jpg", size=MAX_SOURCE_BYTES)),            # exactly the limit is allowed
    (Selection(include=("*.jpg",), exclude=("tmp/*",)), ref("x/a.jpg")),
    (Selection(min_size=1000, max_size=1000), ref("a.jpg", size=1000)),
    (Selection(modified_since=WHEN), ref("a.jpg")),               # at the instant counts as since
    (Selection(modified_since=WHEN), ref("a.jpg", modified=None)),
])
def test_objects_that_are_scored(selection: Selection, obj: ObjectRef) -> None:
    assert selection.reason(obj) is None


def test_shard_hash_is_stable_and_partitions() -> None:
    # Fixed values: a change in the hash would silently reshuffle running backfills.
    keys_seen = ("a.jpg", "图片/猫 照片.jpg", "x/y/z", "k/1.jpg", "k/2.jpg")
    assert [shard_of(k, 7) for k in keys_seen] == [6, 4, 3, 4, 4]
    assert shard_of("anything", 1) == 0
    keys = [f"k/{i}.jpg" for i in range(3000)]
    counts = Counter(shard_of(k, 3) for k in keys)
    assert set(counts) == {0, 1, 2} and all(900 < c < 1100 for c in counts.values())
    shards = [Selection(shard_index=i, shard_count=3) for i in range(3)]
    assert all(sum(s.in_shard(k) for s in shards) == 1 for k in keys)


@pytest.mark.parametrize("storage_class", ["Archive", "ColdArchive", "DeepColdArchive"])
def test_archived_objects_are_skipped_before_any_billed_call(storage_class: str) -> None:
    """OSS answers 403 InvalidObjectState to reading them until restored: a skip, not a failure."""
    archived = ObjectRef("b", "a.jpg", "E", 1000, WHEN, "", storage_class)
    reason = Selection().reason(archived)
    assert reason is not None and reason[0] == "Archived" and storage_class in reason[1]
    for readable in ("Standard", "IA", None):
        assert Selection().reason(ObjectRef("b", "a.jpg", "E", 1000, WHEN, "", readable)) is None
