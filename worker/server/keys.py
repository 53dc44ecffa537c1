"""Object-key and bucket-name rules, checked before any path is built from them.

A key becomes a path under the bucket directory, so this module is what keeps every request
inside ``--root``: a key that could escape (``..``), alias (``.``, empty segments), collide
with the store's own bookkeeping directory, or that OSS itself refuses, never reaches
``os.path``.
"""

from __future__ import annotations

import re

from .errors import OSSError

__all__ = ["RESERVED_DIR", "MAX_KEY_BYTES", "validate_key", "validate_bucket_name"]

#: The store keeps metadata and temporary files here, inside each bucket directory.
RESERVED_DIR = ".picscore"
#: OSS limit: keys are 1 to 1023 bytes of UTF-8 and do not start with ``/`` or ``\``
#: (OSS documentation, "Object naming conventions":
#: https://www.alibabacloud.com/help/en/oss/user-guide/object-naming-conventions).
MAX_KEY_BYTES = 1023
#: Most local file systems refuse longer names; say so instead of failing with EIO later.
MAX_SEGMENT_BYTES = 255

_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
#: OSS accepts control characters in keys (listings carry them with ``encoding-type=url``); only
#: NUL is refused here, because no POSIX file name can hold it.
_NUL_RE = re.compile(r"\x00")


def _invalid_key(key: str, why: str) -> OSSError:
    return OSSError(400, "InvalidObjectName", f"The specified object name is not valid: {why}.",
                    "0016-00000005", {"Key": key[:200]})


def validate_key(key: str) -> None:
    """Raise ``400 InvalidObjectName`` for keys OSS refuses or the local store cannot hold.

    Keys ending in ``/`` are directory markers and are allowed (the store keeps them empty).
    """
    encoded = key.encode("utf-8", "surrogatepass")
    if not key:
        raise _invalid_key(key, "it is empty")
    if len(encoded) > MAX_KEY_BYTES:
        raise _invalid_key(key, f"it is longer than {MAX_KEY_BYTES} bytes")
    if key[0] in "/\\":
        raise _invalid_key(key, "it starts with '/' or '\\'")
    if _NUL_RE.search(key):
        raise _invalid_key(key, "it contains a NUL character, which no local file name can hold")
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in key):
        raise _invalid_key(key, "it is not valid UTF-8")
    segments = key[:-1].split("/") if key.endswith("/") else key.split("/")
    for segment in segments:
        if segment in ("", ".", ".."):
            raise _invalid_key(key, "it contains an empty, '.' or '..' path segment")
        if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
            raise _invalid_key(key, f"a path segment is longer than {MAX_SEGMENT_BYTES} bytes")
    if _names_reserved_dir(segments[0]):
        raise _invalid_key(key, f"'{RESERVED_DIR}/' is reserved for the server's own metadata")


def _names_reserved_dir(segment: str) -> bool:
    """Whether a file system may resolve ``segment`` to :data:`RESERVED_DIR`.

    Compared after Unicode case folding, because the default file systems of macOS (APFS,
    HFS+) and Windows (NTFS) are case-insensitive: ``.PICSCORE`` and ``.PicScore`` open the
    same directory as ``.picscore`` there. Windows also drops trailing dots and spaces from a
    path component (``.picscore.`` is ``.picscore``) and reads ``name:stream`` as a stream
    of ``name``, so those suffixes are cut before comparing. Folding more than a file system
    does (``str.casefold`` maps ``ſ`` to ``s``, the Kelvin sign to ``k``) only refuses a few
    more odd keys, never lets one through.
    """
    return segment.partition(":")[0].rstrip(" .").casefold() == RESERVED_DIR


def validate_bucket_name(name: str) -> None:
    """OSS bucket names: 3 to 63 of ``[a-z0-9-]``, starting and ending with a letter or digit
    (OSS documentation, "Bucket naming conventions":
    https://www.alibabacloud.com/help/en/oss/user-guide/bucket-naming-conventions)."""
    if not _BUCKET_RE.fullmatch(name):
        raise OSSError(400, "InvalidBucketName", "The specified bucket is not valid.",
                       "0015-00000001", {"BucketName": name[:100]})
