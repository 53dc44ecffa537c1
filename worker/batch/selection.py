"""Which listed objects are sent for scoring, and why the others are not.

Every call to ``image/score`` is billed, refused ones too, so objects that cannot or should
not be scored are decided here, before any request: they become ``skipped`` rows that say why.
Shard membership is decided here as well, by a stable hash of the key, so N shard runs
partition a bucket exactly whatever order the listing arrives in.
"""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from ..oss.score_contract import MAX_SOURCE_BYTES
from ..results.schema import ObjectRef

__all__ = ["Selection", "shard_of", "ARCHIVED_CLASSES", "ARCHIVED"]

#: Storage classes OSS cannot read until the object is restored: a GET (and so image/score)
#: answers 403 InvalidObjectState (https://www.alibabacloud.com/help/en/oss/user-guide/restore-objects).
ARCHIVED_CLASSES = frozenset({"Archive", "ColdArchive", "DeepColdArchive"})
#: The skip reason of an object in one of those classes.
ARCHIVED = "Archived"


def shard_of(key: str, count: int) -> int:
    """The shard a key belongs to: stable across processes, machines and Python versions."""
    if count <= 1:
        return 0
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % count


@dataclass(frozen=True)
class Selection:
    """The run's object filters. ``reason(ref)`` is None when the object is to be scored."""

    include: Sequence[str] = ()
    exclude: Sequence[str] = ()
    min_size: int | None = None
    max_size: int | None = None
    modified_since: datetime | None = None
    max_object_bytes: int | None = MAX_SOURCE_BYTES  # None: no processing limit (videos)
    shard_index: int = 0
    shard_count: int = 1
    #: When given, only keys with one of these extensions (lower case, with the dot) are
    #: processed; the rest are skipped with ``kind_reason`` ("NotVideo" for thumbnails).
    extensions: frozenset[str] = frozenset()
    kind_reason: str = "NotVideo"

    def in_shard(self, key: str) -> bool:
        return shard_of(key, self.shard_count) == self.shard_index

    def reason(self, ref: ObjectRef) -> tuple[str, str] | None:
        """(code, message) for a ``skipped`` row, or None to score it. Checked cheapest first."""
        if ref.key.endswith("/"):
            return "DirectoryMarker", "directory marker (key ends with '/')"
        if self.include and not any(fnmatch.fnmatchcase(ref.key, p) for p in self.include):
            return "NotIncluded", "key matches no --include pattern"
        if any(fnmatch.fnmatchcase(ref.key, p) for p in self.exclude):
            return "Excluded", "key matches an --exclude pattern"
        if self.extensions and _extension(ref.key) not in self.extensions:
            return self.kind_reason, f"not one of the extensions processed ({', '.join(sorted(self.extensions))})"
        if ref.storage_class in ARCHIVED_CLASSES:
            return ARCHIVED, f"in the {ref.storage_class} storage class: OSS cannot read it until it is restored"
        if ref.size == 0:
            return "EmptyObject", "zero-byte object"
        if self.min_size is not None and ref.size < self.min_size:
            return "TooSmall", f"smaller than --min-size ({ref.size} < {self.min_size} bytes)"
        if self.max_size is not None and ref.size > self.max_size:
            return "TooLarge", f"larger than --max-size ({ref.size} > {self.max_size} bytes)"
        if self.max_object_bytes is not None and ref.size > self.max_object_bytes:
            return "ImageTooLarge", f"larger than OSS's {self.max_object_bytes}-byte image-processing limit"
        modified = ref.last_modified
        if self.modified_since is not None and modified is not None and modified < self.modified_since:
            return "NotModifiedSince", f"last modified before {self.modified_since.isoformat()}"
        return None


def _extension(key: str) -> str:
    """``clips/a.MP4`` → ``.mp4``; no extension → ``""``."""
    name = key.rsplit("/", 1)[-1]
    dot = name.rfind(".")
    return name[dot:].lower() if dot > 0 else ""
