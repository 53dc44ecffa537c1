"""What an object carries besides its bytes — user metadata, storage class, tag count — read from
a request and written into response headers, shared by PutObject, CopyObject, GetObject and
HeadObject (:mod:`worker.server.handlers`, :mod:`worker.server.copy_object`).

Storage classes (OSS documentation, "Overview of storage classes":
https://www.alibabacloud.com/help/en/oss/user-guide/overview-53): an object is ``Standard``
unless ``x-oss-storage-class`` said otherwise when it was written. The embedded server keeps
every class on the same disk; what differs is what OSS refuses: the bytes of an ``Archive``,
``ColdArchive`` or ``DeepColdArchive`` object cannot be read (GetObject, image processing, or
CopyObject from it) until it is restored — ``403 InvalidObjectState``, "The operation is not
valid for the object's state" (OSS FAQ on that error:
https://alibabacloud.com/help/en/oss/the-the-operation-is-not-valid-for-the-object-s-state-error-message-is-returned-when-you-access-a-restored-archive-object
).
HeadObject still answers (it is how clients see the class).
RestoreObject is not implemented, so such an object stays unreadable until it is overwritten.
"""

from __future__ import annotations

from email.utils import formatdate

from .call import Call
from .errors import OSSError
from .storage import ObjectMeta

__all__ = [
    "MAX_USER_META_BYTES", "STORAGE_CLASSES", "ARCHIVED_CLASSES", "user_metadata", "storage_class",
    "require_readable", "object_headers",
]

#: OSS limits an object's user metadata to 8 KB: the ``x-oss-meta-*`` names and values together
#: (EC 0011-00000002: https://www.alibabacloud.com/help/en/oss/user-guide/0011-00000002).
MAX_USER_META_BYTES = 8 * 1024
_USER_META_PREFIX = "x-oss-meta-"

#: The values ``x-oss-storage-class`` may take (PutObject,
#: https://www.alibabacloud.com/help/en/oss/developer-reference/putobject).
STORAGE_CLASSES = ("Standard", "IA", "Archive", "ColdArchive", "DeepColdArchive")
#: The classes whose bytes must be restored before they can be read.
ARCHIVED_CLASSES = frozenset({"Archive", "ColdArchive", "DeepColdArchive"})


def user_metadata(call: Call) -> dict[str, str]:
    """``x-oss-meta-*`` headers as ``{name: value}`` (name lower-cased, prefix dropped); over
    8 KB of names and values together is refused before any byte of the body is read."""
    meta: dict[str, str] = {}
    size = 0
    for name, value in call.request.headers.items():
        if name.lower().startswith(_USER_META_PREFIX):
            meta[name[len(_USER_META_PREFIX):].lower()] = value
            size += len(name.encode("utf-8", "surrogateescape")) + len(value.encode("utf-8", "surrogateescape"))
    if size > MAX_USER_META_BYTES:
        raise OSSError(400, "MetadataTooLarge", f"The user metadata (x-oss-meta-* names and values) is {size} bytes; "
                       f"at most {MAX_USER_META_BYTES} are allowed.", "0011-00000002")
    return meta


def storage_class(call: Call, default: str = "Standard") -> str:
    """The request's ``x-oss-storage-class``; ``default`` when absent; 400 InvalidArgument for
    any value OSS does not know (the names are case-sensitive, as the SDKs send them)."""
    value = call.header("x-oss-storage-class")
    if not value:
        return default
    if value not in STORAGE_CLASSES:
        raise OSSError.invalid_argument(f"Invalid storage class: {value[:64]!r}; valid values are "
                                        f"{', '.join(STORAGE_CLASSES)}.",
                                        ArgumentName="x-oss-storage-class", ArgumentValue=value[:64])
    return value


def require_readable(meta: ObjectMeta) -> None:
    """403 InvalidObjectState when ``meta`` describes an archived (not restored) object."""
    if meta.storage_class in ARCHIVED_CLASSES:
        raise OSSError(403, "InvalidObjectState", "The operation is not valid for the object's state")


def object_headers(meta: ObjectMeta) -> dict[str, str]:
    """The headers GetObject and HeadObject describe an object with."""
    headers = {
        "Content-Type": meta.content_type,
        "ETag": meta.etag,
        "Last-Modified": formatdate(meta.last_modified, usegmt=True),
        "x-oss-object-type": "Normal",
        "x-oss-storage-class": meta.storage_class,
        "Accept-Ranges": "bytes",
    }
    if meta.tags:  # OSS sends the count only for a tagged object
        headers["x-oss-tagging-count"] = str(len(meta.tags))
    headers.update({f"x-oss-meta-{name}": value for name, value in meta.user_meta.items()})
    return headers
