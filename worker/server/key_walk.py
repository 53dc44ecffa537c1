"""The ordered key walk: a bucket directory's keys in OSS order, without reading the whole tree.

OSS lists keys in UTF-8 byte order. On disk a key ``a/b`` is the file ``b`` in directory ``a``,
and every key under ``a`` sorts like ``a/…``: so a directory is ordered among its siblings as
``name/`` (after ``a.txt``, before ``a0``), and walking the sorted entries depth-first yields the
keys in exactly the order ListObjects must return them. That lets a listing page stop early
and skip whole directories — those before ``start-after``, outside ``prefix``, or under a
common prefix already emitted — so a page costs about the page, not the bucket.

What counts as a key follows :mod:`worker.server.storage`: regular files, links to regular files
inside the bucket, and directory markers (directories with a metadata record); the bucket's own
``.picscore`` directory and names OSS cannot have as keys are never listed, and links to
directories are not descended (they could form cycles).
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path

from .errors import OSSError
from .keys import RESERVED_DIR, validate_key

__all__ = ["KeyWalker", "SkipCursor", "resolve_inside"]

#: Directory listings are cached by mtime only once the mtime is this old: on file systems
#: with coarse timestamps a second change in the same tick would leave the mtime unchanged.
_RACY_MTIME_NS = 2_000_000_000


class SkipCursor:
    """Lets a listing tell the key walker to skip everything under a common prefix it emitted."""

    def __init__(self) -> None:
        self.skip_prefix: str | None = None

    def skips(self, key_or_dir: str) -> bool:
        return self.skip_prefix is not None and key_or_dir.startswith(self.skip_prefix)


def resolve_inside(bucket_real: str, path: str | Path) -> str | None:
    """``path`` with every link resolved, or None if that leaves ``bucket_real`` or enters ``.picscore``."""
    real = os.path.realpath(path)
    if real != bucket_real and not real.startswith(bucket_real + os.sep):
        return None
    reserved = os.path.join(bucket_real, RESERVED_DIR)
    if real == reserved or real.startswith(reserved + os.sep):
        return None
    return real


class KeyWalker:
    """Walks bucket directories under ``root`` in key order, caching sorted directory listings.

    ``is_marker(bucket, key)`` says whether a directory key (ending in ``/``) is a directory
    marker object, which the walk lists before the keys under it. Thread-safe; blocking.
    """

    def __init__(self, root: Path, is_marker: Callable[[str, str], bool], cache_size: int = 256) -> None:
        self.root = root
        self._is_marker = is_marker
        self._cache: OrderedDict[str, tuple[int, list[tuple[str, bool]]]] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def keys(self, bucket: str, prefix: str = "", start_after: str = "",
             cursor: SkipCursor | None = None) -> Iterator[str]:
        """Keys of ``bucket`` (which must exist) that start with ``prefix`` and sort after ``start_after``."""
        bucket_path = self.root / bucket
        bucket_real = os.path.realpath(bucket_path)
        base = prefix[: prefix.rfind("/") + 1]
        if base and not _is_key(base):
            return iter(())  # no key can start with it (and it must not reach os.path)
        start = bucket_path / base if base else bucket_path
        if base and os.path.realpath(start) != os.path.join(bucket_real, base[:-1]):
            return iter(())  # behind a link: the full walk would not descend there either
        return self._walk_from(bucket, start, bucket_real, base, prefix, start_after, cursor or SkipCursor())

    def invalidate(self, dir_path: Path) -> None:
        """Forget cached listings of a directory that changed and of its ancestors (new subdirs)."""
        with self._lock:
            path = dir_path
            while path != self.root and self.root in path.parents:
                self._cache.pop(str(path), None)
                path = path.parent

    def _walk_from(self, bucket: str, start: Path, bucket_real: str, base: str, prefix: str,
                   start_after: str, cursor: SkipCursor) -> Iterator[str]:
        if (base and base == prefix and base > start_after and not cursor.skips(base)
                and self._is_marker(bucket, base) and start.is_dir()):
            yield base  # the prefix names a directory marker: it is listed too
        yield from self._walk(bucket, start, bucket_real, base, prefix, start_after, cursor)

    def _walk(self, bucket: str, dir_path: Path, bucket_real: str, key_base: str, prefix: str,
              start_after: str, cursor: SkipCursor) -> Iterator[str]:
        for name, is_dir in self._sorted_entries(dir_path, not key_base, bucket_real):
            key = key_base + name + ("/" if is_dir else "")
            if key > prefix and not key.startswith(prefix) and not prefix.startswith(key):
                return  # sorted: everything after is past the prefix too
            if cursor.skips(key):
                continue
            if not is_dir:
                if key > start_after and key.startswith(prefix) and _is_key(key):
                    yield key
                continue
            if start_after >= key and not start_after.startswith(key):
                continue  # the whole subtree sorts before start_after
            if key > start_after and key.startswith(prefix) and _is_key(key) and self._is_marker(bucket, key):
                yield key  # directory marker object, sorts before its children
            yield from self._walk(bucket, dir_path / name, bucket_real, key, prefix, start_after, cursor)

    def _sorted_entries(self, dir_path: Path, top: bool, bucket_real: str) -> list[tuple[str, bool]]:
        """A directory's entries in key order (a directory sorts as ``name/``), cached by mtime.

        Only what can be an object: directories (not links to them), regular files, and links
        to regular files inside the bucket.
        """
        try:
            mtime = dir_path.stat().st_mtime_ns
        except OSError:
            return []
        cache_key = str(dir_path)
        with self._lock:
            hit = self._cache.get(cache_key)
            if hit is not None and hit[0] == mtime:
                self._cache.move_to_end(cache_key)
                return hit[1]
        entries = []
        try:  # the directory may be pruned by a concurrent DELETE between stat and scan
            with os.scandir(dir_path) as it:
                for entry in it:
                    if top and entry.name == RESERVED_DIR:
                        continue
                    if not _is_listable_name(entry.name):
                        continue
                    try:
                        if entry.is_symlink():
                            if (entry.is_dir() or not entry.is_file()
                                    or resolve_inside(bucket_real, entry.path) is None):
                                continue
                            is_dir = False
                        elif entry.is_dir(follow_symlinks=False):
                            is_dir = True
                        elif entry.is_file(follow_symlinks=False):
                            is_dir = False
                        else:
                            continue  # FIFO, socket, device
                    except OSError:
                        continue
                    entries.append((entry.name, is_dir))
        except OSError:
            return []
        entries.sort(key=lambda e: e[0] + "/" if e[1] else e[0])
        if time.time_ns() - mtime > _RACY_MTIME_NS:
            with self._lock:
                self._cache[cache_key] = (mtime, entries)
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return entries


def _is_key(key: str) -> bool:
    try:
        validate_key(key)
    except OSSError:
        return False
    return True


def _is_listable_name(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # not UTF-8 on disk: cannot be an OSS key
        return False
    return "\x00" not in name  # control characters are fine in OSS keys (listed with encoding-type=url)
