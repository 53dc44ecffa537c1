"""The local-directory object store behind the embedded server.

Layout — a bucket is a plain directory, an object a plain file, so a folder of photos is a
bucket as it stands::

    ROOT/<bucket>/<key>                       object bytes
    ROOT/<bucket>/.picscore/meta/<h:2>/<h>.json  ETag, CRC-64, Content-Type, user metadata,
                                              storage class, tags, standard headers;
                                              h = sha256(key): no key's metadata file can
                                              collide with another's, whatever its length
    ROOT/<bucket>/.picscore/tmp/…             uploads in progress (same file system → atomic rename)

Why readers never see a torn object: a PUT writes a temporary file, fsyncs it and renames it
over the key; a reader opens the file once and serves every byte from that open descriptor,
which keeps the old inode alive. Metadata names the inode, size and mtime of the bytes it
describes; when they disagree with the open descriptor (a racing PUT, or a file dropped into
the folder by hand) the digests are recomputed from that descriptor. So a response's body
and its ETag always belong together.

Limits of mapping keys onto a file system (documented in the README): a key cannot be both an
object and a "directory" of other keys (``a`` and ``a/b``) — the second PUT gets
``409 FileAlreadyExists``; keys ending in ``/`` are directory markers, whose bytes (if any) are
kept beside their metadata.

What is on disk but is not an object: only regular files (and marker directories) are objects;
FIFOs, sockets and devices are neither listed nor opened. A symbolic link is followed only when
it resolves to a regular file inside the bucket and outside ``.picscore`` — a link that leads
out of the bucket is neither listed nor readable, and no PUT or DELETE goes through it (409 /
no-op). Links to directories are not descended by listings (they could form cycles), and
names OSS cannot have as keys (not UTF-8) are not listed.

Listing — the keys of a directory tree in OSS order — is the job of
:mod:`worker.server.key_walk`; this module stores, reads and deletes objects.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import mimetypes
import os
import stat
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO

from ..results.atomic import fsync_path
from .checksums import ObjectDigest
from .errors import OSSError
from .key_walk import KeyWalker, SkipCursor, resolve_inside
from .keys import RESERVED_DIR, validate_bucket_name, validate_key

__all__ = ["ObjectMeta", "ObjectHandle", "PendingWrite", "LocalStore"]

_CHUNK = 1 << 20


@dataclass(frozen=True)
class ObjectMeta:
    """What OSS reports about an object, plus the identity of the bytes it was computed from."""

    size: int
    etag: str
    crc64: str
    content_type: str
    mtime_ns: int
    ino: int
    user_meta: dict[str, str] = field(default_factory=dict)
    #: Fields added later default, so metadata files written before them still load.
    storage_class: str = "Standard"
    tags: dict[str, str] = field(default_factory=dict)
    #: Standard HTTP and encryption headers kept as given (:func:`.object_attrs.standard_headers`).
    headers: dict[str, str] = field(default_factory=dict)
    #: Normal, Appendable or Symlink (:mod:`.object_kinds`), and a symlink's target key.
    object_type: str = "Normal"
    symlink_target: str = ""
    #: RestoreObject (:mod:`.restore_object`): when the restore completes, when the restored copy
    #: expires (seconds since the epoch; 0 for an object never restored).
    restore_ready: float = 0.0
    restore_expiry: float = 0.0

    @property
    def last_modified(self) -> float:
        return self.mtime_ns / 1e9

    def describes(self, st: os.stat_result) -> bool:
        return (st.st_ino, st.st_size, st.st_mtime_ns) == (self.ino, self.size, self.mtime_ns)


class ObjectHandle:
    """An open object: metadata and bytes from the same inode. Close it (or use ``with``)."""

    def __init__(self, key: str, meta: ObjectMeta, file: BinaryIO | None) -> None:
        self.key = key
        self.meta = meta
        self._file = file

    def read(self, start: int = 0, length: int | None = None) -> bytes:
        """Read ``length`` bytes from ``start`` (the whole rest when ``None``)."""
        if self._file is None:
            return b""
        self._file.seek(start)
        return self._file.read(-1 if length is None else length)

    def iter_chunks(self, start: int = 0, length: int | None = None) -> Iterator[bytes]:
        remaining = self.meta.size - start if length is None else length
        if self._file is None:
            return
        self._file.seek(start)
        while remaining > 0:
            chunk = self._file.read(min(_CHUNK, remaining))
            if not chunk:
                return
            remaining -= len(chunk)
            yield chunk

    def close(self) -> None:
        if self._file is not None:
            self._file.close()

    def __enter__(self) -> ObjectHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _conflict(key: str, why: str) -> OSSError:
    return OSSError(409, "FileAlreadyExists", f"The local store cannot hold this key: {why}.",
                    None, {"Key": key[:200]})


class PendingWrite:
    """An upload in progress: bytes go to a temporary file; :meth:`commit` publishes them."""

    def __init__(self, store: LocalStore, bucket: str, key: str, tmp_path: Path) -> None:
        self._store = store
        self.bucket = bucket
        self.key = key
        self._tmp_path = tmp_path
        self._file: BinaryIO = open(tmp_path, "wb")
        self.digest = ObjectDigest()
        #: Other :class:`ObjectMeta` fields the commit sets (object type, symlink target).
        self.attrs: dict[str, Any] = {}

    def write(self, chunk: bytes) -> None:
        self._file.write(chunk)
        self.digest.update(chunk)

    def commit(self, content_type: str | None, user_meta: dict[str, str],
               content_md5: bytes | None = None, forbid_overwrite: bool = False, *,
               storage_class: str = "Standard", tags: dict[str, str] | None = None,
               etag: str | None = None, headers: dict[str, str] | None = None) -> ObjectMeta:
        """fsync, check the client's Content-MD5, then rename into place. Blocking: run in a thread.
        ``etag`` replaces the MD5 ETag (a multipart upload's ``"<MD5 of part MD5s>-N"``)."""
        try:
            if content_md5 is not None and content_md5 != self.digest.md5_bytes:
                raise OSSError(400, "InvalidDigest",
                               "The Content-MD5 you specified did not match what we received.",
                               "0002-00000019")
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            return self._store._publish(self, content_type, user_meta, forbid_overwrite,
                                        storage_class=storage_class, tags=dict(tags or {}), etag=etag,
                                        headers=dict(headers or {}))
        finally:
            self.abort()

    def abort(self) -> None:
        """Drop the temporary file (a no-op after a successful commit)."""
        self._file.close()
        self._tmp_path.unlink(missing_ok=True)


class LocalStore:
    """Buckets and objects over ``root``. Methods block: call them from a worker thread."""

    def __init__(self, root: Path, dir_cache_size: int = 256) -> None:
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise FileNotFoundError(f"storage root {self.root} is not a directory")
        #: The listing side: keys in OSS order, directory listings cached by mtime.
        self._walker = KeyWalker(self.root, self._is_marker, dir_cache_size)
        #: Serialises changes to the directory tree (publish, delete + pruning of empty parents).
        self._tree_lock = threading.Lock()

    # -- buckets ----------------------------------------------------------------------------
    def bucket_path(self, bucket: str) -> Path:
        validate_bucket_name(bucket)
        return self.root / bucket

    def require_bucket(self, bucket: str) -> Path:
        path = self.bucket_path(bucket)
        if not path.is_dir():
            raise OSSError.no_such_bucket(bucket)
        return path

    def list_buckets(self) -> list[tuple[str, float]]:
        """(name, creation time) of every directory under the root that is a valid bucket name."""
        out = []
        for entry in sorted(os.scandir(self.root), key=lambda e: e.name):
            try:
                validate_bucket_name(entry.name)
            except OSSError:
                continue
            if entry.is_dir():
                out.append((entry.name, self.bucket_created(entry.name)))
        return out

    def bucket_created(self, bucket: str) -> float:
        marker = self.root / bucket / RESERVED_DIR / "bucket.json"
        try:
            return float(json.loads(marker.read_text())["created"])
        except (OSError, ValueError, KeyError):
            return (self.root / bucket).stat().st_mtime

    def create_bucket(self, bucket: str, **settings: str) -> bool:
        """Create the bucket, keeping ``settings`` (storage class, redundancy type) in its
        ``bucket.json``; False when it already exists."""
        path = self.bucket_path(bucket)
        try:
            path.mkdir()
        except FileExistsError:
            return False
        reserved = path / RESERVED_DIR
        reserved.mkdir()
        (reserved / "bucket.json").write_text(json.dumps({"created": time.time(), **settings}))
        return True

    # -- objects ----------------------------------------------------------------------------
    def _data_path(self, bucket: str, key: str) -> Path:
        validate_key(key)
        return self.require_bucket(bucket) / key

    def _meta_path(self, bucket: str, key: str) -> Path:
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
        return self.root / bucket / RESERVED_DIR / "meta" / digest[:2] / f"{digest}.json"

    def _marker_data_path(self, bucket: str, key: str) -> Path:
        """Where the bytes of a non-empty directory marker (``a/`` with content) live: a
        directory cannot hold bytes, so they sit beside the metadata."""
        return self._meta_path(bucket, key).with_suffix(".data")

    def _is_marker(self, bucket: str, key: str) -> bool:
        """Whether ``key`` (ending in ``/``) has been PUT as a directory marker object."""
        return self._meta_path(bucket, key).is_file()

    def _inside(self, bucket: str, path: Path) -> str | None:
        """``path`` with every link resolved, or None if that leaves the bucket or enters ``.picscore``."""
        return resolve_inside(os.path.realpath(self.root / bucket), path)

    def begin_put(self, bucket: str, key: str) -> PendingWrite:
        data_path = self._data_path(bucket, key)
        self._check_no_conflict(bucket, key, data_path)
        tmp_dir = self.root / bucket / RESERVED_DIR / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        return PendingWrite(self, bucket, key, tmp_dir / uuid.uuid4().hex)

    def _check_no_conflict(self, bucket: str, key: str, data_path: Path) -> None:
        bucket_path = self.root / bucket
        parent = data_path.parent
        while parent != bucket_path:
            if _exists_not_dir(parent):
                raise _conflict(key, f"'{parent.relative_to(bucket_path)}' is an object, not a prefix")
            parent = parent.parent
        if key.endswith("/"):
            if _exists_not_dir(data_path):
                raise _conflict(key, f"'{key[:-1]}' is an object, not a prefix")
        elif data_path.is_dir():
            raise _conflict(key, "other keys already use it as a prefix")
        if self._inside(bucket, data_path if key.endswith("/") else data_path.parent) is None:
            raise _conflict(key, "its directory is a link that leads out of the bucket")

    def _publish(self, pending: PendingWrite, content_type: str | None, user_meta: dict[str, str],
                 forbid_overwrite: bool, *, storage_class: str, tags: dict[str, str],
                 etag: str | None = None, headers: dict[str, str] | None = None) -> ObjectMeta:
        bucket, key = pending.bucket, pending.key
        data_path = self._data_path(bucket, key)
        with self._tree_lock:
            self._check_no_conflict(bucket, key, data_path)
            if forbid_overwrite and self._exists(bucket, key, data_path):
                raise OSSError(409, "FileAlreadyExists",
                               "The object you specified already exists and can not be overwritten.",
                               "0026-00000010", {"Key": key[:200]})
            data_path.parent.mkdir(parents=True, exist_ok=True)
            if key.endswith("/"):
                data_path.mkdir(parents=True, exist_ok=True)
                st = data_path.stat()
                marker_data = self._marker_data_path(bucket, key)
                marker_data.parent.mkdir(parents=True, exist_ok=True)
                if pending.digest.size:  # the bytes first: a crash leaves old metadata, never missing bytes
                    os.replace(pending._tmp_path, marker_data)
                else:
                    marker_data.unlink(missing_ok=True)
            else:
                st = os.stat(pending._tmp_path)
            meta = ObjectMeta(size=pending.digest.size, etag=etag or pending.digest.etag, crc64=pending.digest.crc64,
                              content_type=content_type or _guess_type(key), mtime_ns=st.st_mtime_ns,
                              ino=st.st_ino, user_meta=user_meta, storage_class=storage_class, tags=tags,
                              headers=headers or {}, **pending.attrs)
            self._write_meta(bucket, key, meta)
            if not key.endswith("/"):
                os.replace(pending._tmp_path, data_path)
        if not key.endswith("/"):
            fsync_path(data_path.parent, directory=True)
        self._invalidate(data_path.parent)
        return meta

    def _exists(self, bucket: str, key: str, data_path: Path) -> bool:
        if key.endswith("/"):
            return self._is_marker(bucket, key)
        return data_path.is_file()

    def _write_meta(self, bucket: str, key: str, meta: ObjectMeta) -> None:
        path = self._meta_path(bucket, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_text(json.dumps(asdict(meta)))
        os.replace(tmp, path)

    def _read_meta(self, bucket: str, key: str) -> ObjectMeta | None:
        try:
            return ObjectMeta(**json.loads(self._meta_path(bucket, key).read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def open(self, bucket: str, key: str) -> ObjectHandle:
        """Open an object for reading; 404 ``NoSuchKey`` when absent."""
        data_path = self._data_path(bucket, key)
        real = self._inside(bucket, data_path)
        if key.endswith("/"):
            meta = self._read_meta(bucket, key)
            if meta is None or real is None or not os.path.isdir(real):
                raise OSSError.no_such_key(key)
            if not meta.size:
                return ObjectHandle(key, meta, None)
            try:
                return ObjectHandle(key, meta, open(self._marker_data_path(bucket, key), "rb"))
            except FileNotFoundError:
                raise OSSError.no_such_key(key) from None
        if real is None:  # a link out of the bucket (or into .picscore) is not an object
            raise OSSError.no_such_key(key)
        try:  # O_NONBLOCK: opening a FIFO must not wait for a writer
            fd = os.open(real, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0))
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise OSSError.no_such_key(key) from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # the resolved path became a link since we resolved it
                raise OSSError.no_such_key(key) from None
            raise
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):  # directories, FIFOs, sockets, devices
                raise OSSError.no_such_key(key)
            file = os.fdopen(fd, "rb")
        except BaseException:
            os.close(fd)
            raise
        try:
            return ObjectHandle(key, self._meta_for_open_file(bucket, key, file), file)
        except BaseException:
            file.close()
            raise

    def readable_path(self, bucket: str, key: str) -> tuple[ObjectMeta, str | None]:
        """The object's metadata and the real path of its file (None for a directory marker,
        which has none), checked as :meth:`open` checks it, for a reader in another process
        (video decoding). The path is resolved now: only someone who can already swap files
        inside the root could make that reader see another file, and never one outside it."""
        with self.open(bucket, key) as handle:
            meta = handle.meta
        if key.endswith("/"):
            return meta, None
        real = self._inside(bucket, self._data_path(bucket, key))
        if real is None:
            raise OSSError.no_such_key(key)
        return meta, real

    def head(self, bucket: str, key: str) -> ObjectMeta:
        with self.open(bucket, key) as handle:
            return handle.meta

    def _meta_for_open_file(self, bucket: str, key: str, file: BinaryIO) -> ObjectMeta:
        st = os.fstat(file.fileno())
        meta = self._read_meta(bucket, key)
        if meta is not None and meta.describes(st):
            return meta
        digest = ObjectDigest()
        file.seek(0)
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
        # new digests for the bytes as they are; every other attribute is kept
        fresh = replace(meta or ObjectMeta(0, "", "", _guess_type(key), 0, 0), size=digest.size, etag=digest.etag,
                        crc64=digest.crc64, mtime_ns=st.st_mtime_ns, ino=st.st_ino)
        if digest.size == st.st_size:
            # cache for the next reader; a read-only root simply recomputes each time
            with contextlib.suppress(OSError):
                self._write_meta(bucket, key, fresh)
        return fresh

    def set_tags(self, bucket: str, key: str, tags: dict[str, str]) -> ObjectMeta:
        """Replace an object's tags, nothing else: its bytes, ETag and Last-Modified stay, as
        PutObjectTagging / DeleteObjectTagging leave them on OSS. 404 ``NoSuchKey`` when absent.

        Under the tree lock, so a PUT cannot publish between reading the metadata and writing
        it back (the new object's metadata would be overwritten with the old one's)."""
        with self._tree_lock, self.open(bucket, key) as handle:
            meta = replace(handle.meta, tags=dict(tags))
            self._write_meta(bucket, key, meta)
        return meta

    def update_meta(self, bucket: str, key: str, change: Callable[[ObjectMeta], ObjectMeta]) -> ObjectMeta:
        """Rewrite an object's metadata, not its bytes, with ``change`` (which may raise to
        refuse), under the tree lock as :meth:`set_tags`; 404 ``NoSuchKey`` when absent."""
        with self._tree_lock, self.open(bucket, key) as handle:
            meta = change(handle.meta)
            self._write_meta(bucket, key, meta)
        return meta

    def delete(self, bucket: str, key: str) -> None:
        """Delete an object; deleting a missing key succeeds, as on OSS."""
        data_path = self._data_path(bucket, key)
        with self._tree_lock:
            inside = self._inside(bucket, data_path.parent) is not None
            if not inside:
                pass  # behind a link out of the bucket: nothing there is ours to delete
            elif key.endswith("/"):
                with contextlib.suppress(OSError):  # not empty: the marker goes, the keys under it stay
                    data_path.rmdir()
            else:
                with contextlib.suppress(FileNotFoundError, NotADirectoryError, IsADirectoryError):
                    data_path.unlink()
            self._meta_path(bucket, key).unlink(missing_ok=True)
            self._marker_data_path(bucket, key).unlink(missing_ok=True)
            if inside:
                self._prune_empty_parents(bucket, data_path.parent)
        self._invalidate(data_path.parent)

    def _prune_empty_parents(self, bucket: str, directory: Path) -> None:
        """Remove directories the last key under them just left (unless they are markers).

        Otherwise a deleted ``a/b`` would leave a directory ``a`` behind and a later PUT of
        the object ``a`` would be refused with 409, which OSS would accept.
        """
        bucket_path = self.root / bucket
        while directory != bucket_path and bucket_path in directory.parents:
            marker = directory.relative_to(bucket_path).as_posix() + "/"
            if self._is_marker(bucket, marker):
                return  # a directory marker keeps its directory
            try:
                directory.rmdir()
            except OSError:
                return  # not empty (or not a plain directory)
            directory = directory.parent

    # -- listing ----------------------------------------------------------------------------
    def iter_keys(self, bucket: str, prefix: str = "", start_after: str = "",
                  cursor: SkipCursor | None = None) -> Iterator[str]:
        """Keys of ``bucket`` in OSS order (UTF-8 byte order) that start with ``prefix`` and sort after ``start_after``.

        Lazy, and pruned so that a page costs about the page, not the bucket
        (:mod:`worker.server.key_walk`). ``404 NoSuchBucket`` at once, not on first use.
        """
        self.require_bucket(bucket)
        return self._walker.keys(bucket, prefix, start_after, cursor)

    def _invalidate(self, dir_path: Path) -> None:
        """Forget cached listings of a directory we changed and of its ancestors (new subdirs)."""
        self._walker.invalidate(dir_path)


def _exists_not_dir(path: Path) -> bool:
    """One stat, so a directory pruned meanwhile never looks like an object."""
    try:
        return not stat.S_ISDIR(os.stat(path).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return False


def _guess_type(key: str) -> str:
    guessed, _ = mimetypes.guess_type(key, strict=False)
    return guessed or "application/octet-stream"
