"""Synthetic buckets: ``picscore serve --synthetic-bucket NAME=COUNT`` — a read-only bucket that
lists COUNT objects with nothing behind them, for benchmarking clients (the worker's memory and
throughput at a million objects) without a million files on disk.

What a synthetic bucket holds, all computed from the object's index ``i`` (0 ≤ i < COUNT):

* key ``synthetic/{g:02d}/{i:07d}.jpg``, where ``g = i * GROUPS // COUNT`` spreads the keys over
  up to :data:`GROUPS` prefixes in contiguous blocks (the index gets more digits above 10⁷). So
  key order *is* index order, and every page of ListObjects is computed arithmetically —
  binary search for where it starts, then the next ``max-keys`` indexes; nothing is held per
  object, whatever COUNT is;
* size ``20 KB … 500 KB`` (a fixed spread), ETag the upper-hex MD5 *of the key* (quoted, as OSS
  quotes ETags), Last-Modified fixed at :data:`LAST_MODIFIED` (2025-01-01T00:00:00Z).

Operations:

* ListObjects V1/V2 with prefix, delimiter, max-keys, marker / continuation-token / start-after,
  exactly as :mod:`worker.server.listing` pages a real bucket; ListBuckets shows the bucket;
  GetBucketInfo / GetBucketLocation answer;
* HeadObject and GetObjectMeta (no ``x-oss-hash-crc64ecma``: there are no bytes to checksum);
* ``image/score`` (GET or POST): in ``--fake-score-latency`` mode the fake score, computed from
  the key, after the fixed latency and through the same admission limit as real objects. With
  the real scorer: ``400 BadRequest`` — a synthetic object has no image to score;
* GetObject: ``404 NoSuchKey`` whose message says the object is synthetic. Decided over "a small
  fixed body": a body that disagrees with the listed size and ETag would break range readers
  and checksum checks in confusing ways; a 404 fails plainly;
* anything that writes (PUT, DELETE, POST other than ``x-oss-process``) — ``403 AccessDenied``.

A synthetic bucket shadows a directory of the same name under ``--root``.
"""

from __future__ import annotations

import bisect
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from aiohttp import web

from ..oss.score_contract import PROCESS_PARAMETER
from . import xmlbody
from .call import Call, Handler
from .errors import OSSError
from .handlers import Operations
from .keys import validate_bucket_name
from .listing import ListPage, _common_prefix
from .preconditions import require_unchanged
from .scoring_pool import FixedLatencyScorer, Scorer
from .storage import ObjectMeta

__all__ = ["SyntheticBucket", "SyntheticOperations", "parse_synthetic_spec", "synthetic_operations",
           "GROUPS", "LAST_MODIFIED", "MAX_COUNT"]

#: How many prefixes (``synthetic/00/`` … ``synthetic/07/``) the keys are spread over.
GROUPS = 8
#: Every synthetic object's Last-Modified (and the bucket's creation date): 2025-01-01T00:00:00Z.
LAST_MODIFIED = 1_735_689_600
MAX_COUNT = 1_000_000_000
_MIN_SIZE, _SIZE_SPREAD = 20_000, 480_000
_KEY_RE = re.compile(r"synthetic/(\d{2})/(\d+)\.jpg")


def parse_synthetic_spec(spec: str) -> tuple[str, int]:
    """``NAME=COUNT`` → (name, count); ValueError with a readable message otherwise."""
    name, sep, count_text = spec.partition("=")
    if not sep or not count_text.strip().isdigit():
        raise ValueError(f"--synthetic-bucket wants NAME=COUNT (e.g. synth=1000000), got {spec!r}")
    try:
        validate_bucket_name(name)
    except OSSError:
        raise ValueError(f"--synthetic-bucket: {name!r} is not a valid bucket name") from None
    count = int(count_text)
    if count > MAX_COUNT:
        raise ValueError(f"--synthetic-bucket: at most {MAX_COUNT} objects, got {count}")
    return name, count


class _Keys(Sequence[str]):
    """The bucket's keys as a lazy sorted sequence, so :mod:`bisect` can search it."""

    def __init__(self, bucket: SyntheticBucket) -> None:
        self._bucket = bucket

    def __len__(self) -> int:
        return self._bucket.count

    def __getitem__(self, index):  # type: ignore[override]
        return self._bucket.key(index)


@dataclass(frozen=True)
class SyntheticBucket:
    """COUNT generated objects; every method is O(log COUNT) or O(page) in time and memory."""

    name: str
    count: int
    _format: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        width = max(7, len(str(self.count - 1)))
        object.__setattr__(self, "_format", f"synthetic/{{:02d}}/{{:0{width}d}}.jpg")

    def key(self, index: int) -> str:
        return self._format.format(index * GROUPS // self.count, index)

    def index_of(self, key: str) -> int | None:
        """The index of ``key``, or None when the bucket has no such key."""
        match = _KEY_RE.fullmatch(key)
        if match is None:
            return None
        index = int(match[2])
        return index if index < self.count and self.key(index) == key else None

    def meta(self, index: int, key: str | None = None) -> ObjectMeta:
        key = key or self.key(index)
        etag = f'"{hashlib.md5(key.encode("ascii"), usedforsecurity=False).hexdigest().upper()}"'
        size = _MIN_SIZE + (index * 2_654_435_761) % _SIZE_SPREAD
        return ObjectMeta(size=size, etag=etag, crc64="", content_type="image/jpeg",
                          mtime_ns=LAST_MODIFIED * 1_000_000_000, ino=0)

    def head(self, key: str) -> ObjectMeta:
        index = self.index_of(key)
        if index is None:
            raise OSSError.no_such_key(key)
        return self.meta(index, key)

    def list_page(self, *, prefix: str, delimiter: str, start_after: str, max_keys: int) -> ListPage:
        """One page, with :func:`worker.server.listing.list_page`'s exact semantics."""
        page = ListPage()
        if max_keys == 0:
            return page
        keys = _Keys(self)
        lo = bisect.bisect_left(keys, prefix)
        hi = self._end_of(prefix, lo)
        i = bisect.bisect_right(keys, start_after, lo, hi) if start_after else lo
        if delimiter and start_after and _common_prefix(start_after, prefix, delimiter) == start_after:
            i = self._end_of(start_after, i, hi)  # the previous page ended on this common prefix
        while i < hi:
            if page.count == max_keys:
                page.truncated = True
                break
            key = self.key(i)
            grouped = _common_prefix(key, prefix, delimiter)
            if grouped is None:
                page.entries.append((key, self.meta(i, key)))
                page.next_marker = key
                i += 1
            else:
                page.common_prefixes.append(grouped)
                page.next_marker = grouped
                i = self._end_of(grouped, i, hi)
        if not page.truncated:
            page.next_marker = ""
        return page

    def _end_of(self, prefix: str, lo: int, hi: int | None = None) -> int:
        """The first index ≥ ``lo`` whose key does not start with ``prefix`` (keys with one
        prefix are contiguous in sorted order, so this is a binary search)."""
        hi = self.count if hi is None else hi
        if not prefix:
            return hi
        return bisect.bisect_left(_Keys(self), True, lo, hi, key=lambda k: not k.startswith(prefix))


class SyntheticOperations(Operations):
    """:class:`Operations` for one synthetic bucket: the same query parsing and XML, with the
    store replaced by arithmetic and every write refused."""

    def __init__(self, bucket: SyntheticBucket, scorer: Scorer, region: str) -> None:
        super().__init__(None, scorer, region)  # type: ignore[arg-type]  # no store: see the overrides
        self.bucket = bucket
        self.created = float(LAST_MODIFIED)

    def pick(self, call: Call) -> Handler:
        method = call.request.method
        if method in ("PUT", "DELETE") or (method == "POST" and PROCESS_PARAMETER not in call.query):
            return self.read_only
        return super().pick(call)

    async def read_only(self, call: Call) -> web.StreamResponse:
        raise OSSError.access_denied(f"Bucket {self.bucket.name} is a synthetic, read-only bucket "
                                     "(picscore serve --synthetic-bucket).")

    async def get_bucket_info(self, call: Call) -> web.StreamResponse:
        return web.Response(body=xmlbody.bucket_info(self.bucket.name, self.created, self.region),
                            content_type="application/xml")

    async def get_bucket_location(self, call: Call) -> web.StreamResponse:
        return web.Response(body=xmlbody.bucket_location(self.region), content_type="application/xml")

    async def get_object(self, call: Call) -> web.StreamResponse:
        assert call.key is not None
        self.bucket.head(call.key)  # a plain NoSuchKey for keys the bucket does not list
        raise OSSError(404, "NoSuchKey", "This object of a synthetic bucket is listed but has no bytes "
                       "(ListObjects, HeadObject and fake image/score only).", "0026-00000001",
                       {"Key": call.key})

    async def _list_page(self, bucket: str, **query) -> ListPage:
        return self.bucket.list_page(**query)

    async def _head(self, bucket: str, key: str) -> ObjectMeta:
        return self.bucket.head(key)

    async def _image_bytes(self, bucket: str, key: str, call: Call) -> bytes:
        require_unchanged(call, self.bucket.head(key))
        if not isinstance(self.scorer, FixedLatencyScorer):
            raise OSSError(400, "BadRequest", "This object of a synthetic bucket has no bytes to score; "
                           "serve with --fake-score-latency to score synthetic objects.")
        return key.encode("utf-8")  # the fake score is a function of these bytes


def synthetic_operations(specs: Mapping[str, int] | Iterable[tuple[str, int]], scorer: Scorer,
                         region: str) -> dict[str, SyntheticOperations]:
    """Bucket name → its operations, for :class:`worker.server.handlers.Operations`."""
    items = specs.items() if isinstance(specs, Mapping) else specs
    return {name: SyntheticOperations(SyntheticBucket(name, count), scorer, region) for name, count in items}
