"""Multipart uploads on disk: the state behind :mod:`worker.server.multipart`, kept so that it
survives a restart and a ``kill -9`` at any moment. Pure file operations; methods block (run them
in a worker thread).

Layout, inside the bucket's hidden area (never listed as objects, see :mod:`worker.server.key_walk`)::

    ROOT/<bucket>/.picscore/multipart/<UploadId>/upload.json    key, initiation time, and what the
                                                                 final object gets (Content-Type,
                                                                 x-oss-meta-*, storage class, tags)
    ROOT/<bucket>/.picscore/multipart/<UploadId>/parts/00042       the bytes of part 42
    ROOT/<bucket>/.picscore/multipart/<UploadId>/parts/00042.json  its size, ETag, CRC-64 and the
                                                                 inode/size/mtime they describe
    ROOT/<bucket>/.picscore/multipart/<UploadId>/parts/.tmp-…      a part still being received

Why a crash never leaves a torn part or upload:

* an upload appears by renaming a fully written (fsynced) directory into place;
* a part is received into a temporary file, fsynced, then renamed over ``parts/NNNNN``, so a
  part is either the complete old bytes, the complete new bytes, or absent. Its ``.json`` is
  written after the rename; when it is missing or describes another inode (a crash between the
  two, or a racing re-upload) the digests are recomputed from the part's bytes, as
  :class:`~worker.server.storage.LocalStore` does for objects;
* completing concatenates the parts through :meth:`LocalStore.begin_put`, i.e. into a temporary
  file that is fsynced and renamed over the key, exactly like PutObject; only then is the upload
  removed (renamed aside, then deleted), so a crash in between leaves the object *and* the upload;
* abort renames the upload aside before deleting it: it is gone at once, or still whole.

Temporary files a crash leaves inside an upload go when the upload is completed or aborted.

Upload ids are 32 upper-case hex digits, the initiation time in nanoseconds then random bits, so
sorting ids sorts a key's uploads by initiation time (ListMultipartUploads' order).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import BinaryIO

from ..results.atomic import fsync_path
from .checksums import ObjectDigest
from .errors import OSSError
from .keys import RESERVED_DIR, validate_key
from .storage import LocalStore, ObjectMeta

__all__ = [
    "MIN_PART_SIZE", "MAX_PART_NUMBER", "Upload", "PartMeta", "PartWriter", "MultipartStore",
    "no_such_upload", "multipart_etag",
]

#: Every part but the last must be at least 100 KB (EC 0042-00000213,
#: https://help.aliyun.com/en/oss/user-guide/0042-00000213).
MIN_PART_SIZE = 100 * 1024
#: Part numbers are 1 to 10000 (EC 0017-00000220, https://help.aliyun.com/en/oss/user-guide/0017-00000220).
MAX_PART_NUMBER = 10000
_UPLOADS_DIR = "multipart"
_UPLOAD_ID_RE = re.compile(r"^[0-9A-F]{32}$")
_PART_NAME_RE = re.compile(r"^\d{5}$")
_CHUNK = 1 << 20
#: An initiation staged this long ago and never renamed into place was cut short by a crash.
_STALE_STAGING_S = 3600
#: Part commits, completes and aborts of one upload are serialised on one of these (by upload id).
_LOCK_STRIPES = 64


def no_such_upload(upload_id: str) -> OSSError:
    """404 NoSuchUpload, EC 0017-00000244 (https://help.aliyun.com/en/oss/user-guide/0017-00000244)."""
    return OSSError(404, "NoSuchUpload", "The specified upload does not exist. The upload ID may be invalid, "
                    "or the upload may have been aborted or completed.", "0017-00000244",
                    {"UploadId": upload_id[:64]})


def multipart_etag(md5s: Sequence[bytes]) -> str:
    """OSS's ETag of a completed multipart upload: the upper-case hex MD5 of the parts' binary
    MD5s concatenated, ``-`` and the number of parts, quoted."""
    return f'"{hashlib.md5(b"".join(md5s), usedforsecurity=False).hexdigest().upper()}-{len(md5s)}"'


@dataclass(frozen=True)
class Upload:
    """An upload in progress and what its object will carry."""

    upload_id: str
    key: str
    initiated: float
    content_type: str | None = None
    user_meta: dict[str, str] = field(default_factory=dict)
    storage_class: str = "Standard"
    tags: dict[str, str] = field(default_factory=dict)
    forbid_overwrite: bool = False
    #: Standard and encryption headers (:func:`worker.server.object_attrs.standard_headers`).
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PartMeta:
    """One received part, and the identity of the file its digests were computed from."""

    number: int
    size: int
    md5_hex: str
    crc64: str
    mtime_ns: int
    ino: int

    @property
    def etag(self) -> str:
        return f'"{self.md5_hex.upper()}"'

    @property
    def last_modified(self) -> float:
        return self.mtime_ns / 1e9

    def describes(self, st: os.stat_result) -> bool:
        return (st.st_ino, st.st_size, st.st_mtime_ns) == (self.ino, self.size, self.mtime_ns)


def _write_json(path: Path, data: dict, durable: bool = True) -> None:
    """Write ``path`` whole or not at all: a temporary file renamed over it."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "w", encoding="utf-8") as file:
        json.dump(data, file)
        if durable:
            file.flush()
            os.fsync(file.fileno())
    os.replace(tmp, path)


class PartWriter:
    """A part being received: bytes go to a temporary file; :meth:`commit` puts it in place."""

    def __init__(self, store: MultipartStore, upload_dir: Path, upload_id: str, number: int) -> None:
        self._store = store
        self._upload_dir = upload_dir
        self.upload_id = upload_id
        self.number = number
        self._tmp_path = upload_dir / "parts" / f".tmp-{uuid.uuid4().hex}"
        try:
            self._file: BinaryIO = open(self._tmp_path, "xb")
        except FileNotFoundError:  # aborted or completed meanwhile
            raise no_such_upload(upload_id) from None
        self.digest = ObjectDigest()

    def write(self, chunk: bytes) -> None:
        self._file.write(chunk)
        self.digest.update(chunk)

    def commit(self, content_md5: bytes | None = None) -> PartMeta:
        """fsync, check Content-MD5, rename into place, record the digests. Blocking."""
        try:
            if content_md5 is not None and content_md5 != self.digest.md5_bytes:
                raise OSSError(400, "InvalidDigest", "The Content-MD5 you specified did not match what we received.",
                               "0002-00000019")
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            return self._store._publish_part(self._upload_dir, self.upload_id, self.number,
                                             self._tmp_path, self.digest)
        finally:
            self.abort()

    def abort(self) -> None:
        """Drop the temporary file (a no-op after a successful commit)."""
        self._file.close()
        self._tmp_path.unlink(missing_ok=True)


class MultipartStore:
    """Multipart uploads of the buckets of one :class:`LocalStore`."""

    def __init__(self, store: LocalStore) -> None:
        self.store = store
        self._locks = [threading.Lock() for _ in range(_LOCK_STRIPES)]

    def _lock(self, upload_id: str) -> threading.Lock:
        return self._locks[int(upload_id[-8:], 16) % _LOCK_STRIPES]

    def _uploads_root(self, bucket: str) -> Path:
        return self.store.require_bucket(bucket) / RESERVED_DIR / _UPLOADS_DIR

    # -- one upload ---------------------------------------------------------------------------
    def initiate(self, bucket: str, key: str, *, content_type: str | None, user_meta: dict[str, str],
                 storage_class: str, tags: dict[str, str], forbid_overwrite: bool,
                 headers: dict[str, str] | None = None) -> Upload:
        validate_key(key)
        root = self._uploads_root(bucket)
        root.mkdir(parents=True, exist_ok=True)
        upload_id = f"{time.time_ns():016X}{secrets.token_hex(8).upper()}"
        upload = Upload(upload_id, key, time.time(), content_type, dict(user_meta), storage_class, dict(tags),
                        forbid_overwrite, dict(headers or {}))
        staging = root / f".new-{upload_id}"
        (staging / "parts").mkdir(parents=True)
        _write_json(staging / "upload.json", asdict(upload))
        fsync_path(staging, directory=True)
        os.rename(staging, root / upload_id)
        fsync_path(root, directory=True)
        return upload

    def get(self, bucket: str, key: str, upload_id: str) -> tuple[Upload, Path]:
        """The upload and its directory; 404 NoSuchUpload unless it is in progress for ``key``."""
        validate_key(key)
        if not _UPLOAD_ID_RE.match(upload_id):
            raise no_such_upload(upload_id)
        upload_dir = self._uploads_root(bucket) / upload_id
        upload = _read_upload(upload_dir)
        if upload is None or upload.key != key:
            raise no_such_upload(upload_id)
        return upload, upload_dir

    def begin_part(self, bucket: str, key: str, upload_id: str, number: int) -> PartWriter:
        _, upload_dir = self.get(bucket, key, upload_id)
        return PartWriter(self, upload_dir, upload_id, number)

    def _publish_part(self, upload_dir: Path, upload_id: str, number: int, tmp_path: Path,
                      digest: ObjectDigest) -> PartMeta:
        with self._lock(upload_id):
            if not (upload_dir / "upload.json").is_file():  # completed or aborted while it was received
                raise no_such_upload(upload_id)
            st = os.stat(tmp_path)
            part = PartMeta(number, digest.size, digest.md5_bytes.hex(), digest.crc64, st.st_mtime_ns, st.st_ino)
            data_path = upload_dir / "parts" / f"{number:05d}"
            os.replace(tmp_path, data_path)
            fsync_path(data_path.parent, directory=True)
            _write_json(data_path.with_name(f"{data_path.name}.json"), asdict(part), durable=False)
        return part

    def parts(self, bucket: str, key: str, upload_id: str) -> tuple[Upload, list[PartMeta]]:
        """The upload and its complete parts, by part number."""
        upload, upload_dir = self.get(bucket, key, upload_id)
        return upload, self._parts(upload_dir)

    def _parts(self, upload_dir: Path) -> list[PartMeta]:
        parts_dir = upload_dir / "parts"
        try:
            names = sorted(entry.name for entry in os.scandir(parts_dir) if _PART_NAME_RE.match(entry.name))
        except FileNotFoundError:
            return []
        out = []
        for name in names:
            part = _part_meta(parts_dir / name)
            if part is not None:
                out.append(part)
        return out

    def abort(self, bucket: str, key: str, upload_id: str) -> None:
        _, upload_dir = self.get(bucket, key, upload_id)
        with self._lock(upload_id):
            self._discard(upload_dir, upload_id)

    def _discard(self, upload_dir: Path, upload_id: str) -> None:
        gone = upload_dir.with_name(f".gone-{upload_id}-{uuid.uuid4().hex[:8]}")
        try:
            os.rename(upload_dir, gone)
        except FileNotFoundError:
            raise no_such_upload(upload_id) from None
        fsync_path(upload_dir.parent, directory=True)
        shutil.rmtree(gone, ignore_errors=True)

    def complete(self, bucket: str, key: str, upload_id: str, chosen: list[tuple[int, str]] | None,
                 forbid_overwrite: bool) -> ObjectMeta:
        """Concatenate the ``chosen`` parts ((number, ETag), ascending; None: every part) into the
        object, atomically, then remove the upload. Blocking."""
        _, upload_dir = self.get(bucket, key, upload_id)
        with self._lock(upload_id):
            upload = _read_upload(upload_dir)  # under the lock: not completed or aborted meanwhile
            if upload is None:
                raise no_such_upload(upload_id)
            parts = _select_parts(self._parts(upload_dir), chosen, upload_id)
            pending = self.store.begin_put(bucket, key)
            try:
                for part in parts:
                    with open(upload_dir / "parts" / f"{part.number:05d}", "rb") as file:
                        if not part.describes(os.fstat(file.fileno())):
                            raise OSSError(500, "InternalError", "A part changed while the upload was completed; "
                                           "please retry.")
                        while chunk := file.read(_CHUNK):
                            pending.write(chunk)
            except BaseException:
                pending.abort()
                raise
            meta = pending.commit(upload.content_type, upload.user_meta, None,
                                  forbid_overwrite or upload.forbid_overwrite, storage_class=upload.storage_class,
                                  tags=upload.tags, etag=multipart_etag([bytes.fromhex(p.md5_hex) for p in parts]),
                                  headers=upload.headers)
            with contextlib.suppress(OSSError):
                self._discard(upload_dir, upload_id)
        return meta

    # -- all uploads of a bucket --------------------------------------------------------------
    def uploads(self, bucket: str) -> list[Upload]:
        """Every upload in progress in ``bucket``, by key (UTF-8 order), then initiation time."""
        root = self._uploads_root(bucket)
        try:
            names = [entry.name for entry in os.scandir(root)]
        except FileNotFoundError:
            return []
        _sweep(root, names)
        entries = [name for name in names if _UPLOAD_ID_RE.match(name)]
        uploads = [upload for name in entries if (upload := _read_upload(root / name)) is not None]
        return sorted(uploads, key=lambda u: (u.key.encode("utf-8", "surrogatepass"), u.upload_id))


def _sweep(root: Path, names: list[str]) -> None:
    """Remove what a crash left beside the uploads: aborted or completed uploads not yet deleted
    (``.gone-*``), and initiations that never finished (``.new-*``, after an hour)."""
    for name in names:
        path = root / name
        with contextlib.suppress(OSError):
            if name.startswith(".gone-") or (name.startswith(".new-")
                                             and time.time() - path.stat().st_mtime > _STALE_STAGING_S):
                shutil.rmtree(path, ignore_errors=True)


def _read_upload(upload_dir: Path) -> Upload | None:
    try:
        return Upload(**json.loads((upload_dir / "upload.json").read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None


def _part_meta(data_path: Path) -> PartMeta | None:
    """A part's digests; recomputed from its bytes when the record is missing or stale."""
    try:
        st = os.stat(data_path)
    except FileNotFoundError:
        return None
    meta_path = data_path.with_name(f"{data_path.name}.json")
    with contextlib.suppress(OSError, ValueError, TypeError):
        part = PartMeta(**json.loads(meta_path.read_text(encoding="utf-8")))
        if part.describes(st):
            return part
    digest = ObjectDigest()
    try:
        with open(data_path, "rb") as file:
            st = os.fstat(file.fileno())
            while chunk := file.read(_CHUNK):
                digest.update(chunk)
    except FileNotFoundError:
        return None
    part = PartMeta(int(data_path.name), digest.size, digest.md5_bytes.hex(), digest.crc64, st.st_mtime_ns,
                    st.st_ino)
    with contextlib.suppress(OSError):
        _write_json(meta_path, asdict(part), durable=False)
    return part


def _invalid_part(upload_id: str, number: int, etag: str) -> OSSError:
    """400 InvalidPart (https://alibabacloud.com/help/en/oss/oss-reports-an-invalidpart-error-when-using-the-
    multipart-upload-method-to-upload-files); the extra elements are the ones OSS sends."""
    return OSSError(400, "InvalidPart", "One or more of the specified parts could not be found or the specified "
                    "entity tag might not have matched the part's entity tag.", None,
                    {"ETag": etag[:64], "PartNumber": str(number), "UploadId": upload_id})


def _select_parts(parts: list[PartMeta], chosen: list[tuple[int, str]] | None, upload_id: str) -> list[PartMeta]:
    """The parts CompleteMultipartUpload names, checked as OSS checks them: ascending part numbers
    (InvalidPartOrder), each one received with that ETag (InvalidPart), all but the last at least
    100 KB (EntityTooSmall)."""
    if chosen is None:  # x-oss-complete-all: yes
        selected = parts
        if not selected:
            raise OSSError.invalid_argument("The upload has no parts to complete.")
    else:
        numbers = [number for number, _ in chosen]
        if any(later <= earlier for earlier, later in pairwise(numbers)):
            raise OSSError(400, "InvalidPartOrder", "The list of parts was not in ascending order. Parts must "
                           "be ordered by part number.", "0042-00000209", {"UploadId": upload_id})
        by_number = {part.number: part for part in parts}
        selected = []
        for number, etag in chosen:
            part = by_number.get(number)
            if part is None or etag.strip().strip('"').upper() != part.md5_hex.upper():
                raise _invalid_part(upload_id, number, etag)
            selected.append(part)
    for part in selected[:-1]:
        if part.size < MIN_PART_SIZE:
            raise OSSError(400, "EntityTooSmall", "Your proposed upload is smaller than the minimum allowed size: "
                           f"every part but the last must be at least {MIN_PART_SIZE} bytes.", "0042-00000213",
                           {"PartNumber": str(part.number), "MinSizeAllowed": str(MIN_PART_SIZE),
                            "ProposedSize": str(part.size)})
    return selected
