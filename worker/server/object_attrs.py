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
RestoreObject (:mod:`worker.server.restore_object`) makes it readable for a number of days.

Standard HTTP headers ("Manage object metadata by configuring HTTP headers",
https://www.alibabacloud.com/help/doc-detail/31859.html): OSS keeps ``Cache-Control``,
``Content-Disposition``, ``Content-Encoding``, ``Content-Language`` and ``Expires`` as given when
the object was written, verbatim (``Expires`` need not be an HTTP date), and returns them on
GetObject and HeadObject; GetObject's ``response-*`` parameters override them for one response.
``Content-Encoding`` only describes the bytes: they are stored as sent (the server never
decompresses a request body, :mod:`worker.server.app`), so ETag and CRC-64 are of those bytes.
:func:`standard_headers` reads them (and the encryption headers) from a write request —
PutObject, InitiateMultipartUpload, CopyObject with ``x-oss-metadata-directive: REPLACE`` and the
first AppendObject should all call it — and :class:`~worker.server.storage.ObjectMeta` keeps
them in ``headers``.

Server-side encryption (PutObject: ``x-oss-server-side-encryption`` is ``AES256``, ``KMS`` or
``SM4``; ``x-oss-server-side-data-encryption: SM4`` only with KMS): the algorithm is recorded and
echoed on the write's response, on GetObject and on HeadObject, as OSS does. **The bytes are
not encrypted on disk** — the local store is a plain folder; the header only tells clients what
was asked. A KMS key of one's own (``x-oss-server-side-encryption-key-id``) needs a KMS this
server does not have: ``501 NotImplemented``. Any other algorithm: ``400
InvalidEncryptionAlgorithmError`` (EC 0005-00000003, "The server-side encryption type is not
supported": https://www.alibabacloud.com/help/en/oss/support/0005-00000003).

Object ACLs are not kept: ``x-oss-object-acl: default`` (what an object has anyway: its
bucket's ACL) and ``private`` (what every object of this server is: every request must be
signed) are accepted; ``public-read`` and ``public-read-write`` answer ``501 NotImplemented`` —
the server does not pretend to open an object it keeps private; any other value is
``400 InvalidArgument``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from email.utils import formatdate

from .call import Call
from .errors import OSSError
from .object_kinds import is_restored, kind_headers
from .storage import ObjectMeta

__all__ = [
    "MAX_USER_META_BYTES", "STORAGE_CLASSES", "ARCHIVED_CLASSES", "user_metadata", "storage_class",
    "require_readable", "object_headers", "STANDARD_HEADERS", "SSE_HEADER", "standard_headers",
    "copied_headers", "encryption_headers",
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
    if meta.storage_class in ARCHIVED_CLASSES and not is_restored(meta):
        raise OSSError(403, "InvalidObjectState", "The operation is not valid for the object's state")


def object_headers(meta: ObjectMeta) -> dict[str, str]:
    """The headers GetObject and HeadObject describe an object with."""
    headers = {
        "Content-Type": meta.content_type,
        "ETag": meta.etag,
        "Last-Modified": formatdate(meta.last_modified, usegmt=True),
        "x-oss-storage-class": meta.storage_class,
        "Accept-Ranges": "bytes",
    }
    headers.update(kind_headers(meta))  # x-oss-object-type, and restore / append state
    if meta.tags:  # OSS sends the count only for a tagged object
        headers["x-oss-tagging-count"] = str(len(meta.tags))
    headers.update(meta.headers)
    headers.update({f"x-oss-meta-{name}": value for name, value in meta.user_meta.items()})
    return headers


#: The standard HTTP headers an object keeps (see the module docstring).
STANDARD_HEADERS = ("Cache-Control", "Content-Disposition", "Content-Encoding", "Content-Language", "Expires")
SSE_HEADER = "x-oss-server-side-encryption"
SSE_DATA_HEADER = "x-oss-server-side-data-encryption"
SSE_KEY_ID_HEADER = "x-oss-server-side-encryption-key-id"
SSE_ALGORITHMS = ("AES256", "KMS", "SM4")
ACL_HEADER = "x-oss-object-acl"
OBJECT_ACLS = ("default", "private", "public-read", "public-read-write")
#: What a stored header value cannot hold: control characters but tab, lone surrogates (not UTF-8).
_NOT_HEADER_TEXT = re.compile("[\x00-\x08\x0a-\x1f\x7f\ud800-\udfff]")


def standard_headers(call: Call) -> dict[str, str]:
    """What a write request sets besides bytes, user metadata, class and tags: the standard
    headers present and the encryption headers, as ``{header name: value}`` for
    :class:`~worker.server.storage.ObjectMeta` ``headers``. Refuses (before any byte of the
    body is read; call it after the bucket is known to exist) an object ACL other than
    ``default`` and a KMS key id (501), an unknown algorithm or a value no header can carry (400)."""
    _refuse_object_acl(call)
    headers = {name: value for name in STANDARD_HEADERS if (value := call.header(name))}
    for name, value in headers.items():
        _require_header_text(name, value)
    headers.update(_request_encryption(call))
    return headers


def copied_headers(call: Call, source: Mapping[str, str], replace: bool) -> dict[str, str]:
    """CopyObject's headers for the copy: with ``REPLACE`` the request's (:func:`standard_headers`),
    otherwise the source's standard headers. Encryption always comes from the copy request (the
    copy is encrypted as it asks, not as the source was)."""
    if replace:
        return standard_headers(call)
    _refuse_object_acl(call)
    kept = {name: value for name, value in source.items() if name in STANDARD_HEADERS}
    return kept | _request_encryption(call)


def encryption_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The encryption headers among an object's stored ``headers``, for a write's response."""
    return {name: value for name, value in headers.items() if name in (SSE_HEADER, SSE_DATA_HEADER)}


def _require_header_text(name: str, value: str) -> None:
    if _NOT_HEADER_TEXT.search(value):
        raise OSSError.invalid_argument(f"The {name} header must not contain control characters.",
                                        ArgumentName=name, ArgumentValue=value[:200])


def _refuse_object_acl(call: Call) -> None:
    acl = call.header(ACL_HEADER)
    if not acl or acl in ("default", "private"):  # private: what every object here is anyway
        return
    if acl not in OBJECT_ACLS:
        raise OSSError.invalid_argument(f"Invalid object ACL: {acl[:64]!r}; valid values are {', '.join(OBJECT_ACLS)}.",
                                        ArgumentName=ACL_HEADER, ArgumentValue=acl[:64])
    raise OSSError(501, "NotImplemented", "picscore serve keeps no object ACLs: an object has its bucket's ACL "
                   f"(x-oss-object-acl: default); {acl!r} is not implemented.")


def _request_encryption(call: Call) -> dict[str, str]:
    algorithm, data, key_id = call.header(SSE_HEADER), call.header(SSE_DATA_HEADER), call.header(SSE_KEY_ID_HEADER)
    if not algorithm:
        if data or key_id:
            raise OSSError.invalid_argument(f"{SSE_DATA_HEADER if data else SSE_KEY_ID_HEADER} needs "
                                            f"{SSE_HEADER}: KMS.", ArgumentName=SSE_HEADER)
        return {}
    if algorithm not in SSE_ALGORITHMS:
        raise OSSError(400, "InvalidEncryptionAlgorithmError", "The Encryption request you specified is not valid. "
                       f"Supported value: {'/'.join(SSE_ALGORITHMS)}", "0005-00000003")
    if algorithm != "KMS" and (data or key_id):
        raise OSSError.invalid_argument(f"{SSE_DATA_HEADER if data else SSE_KEY_ID_HEADER} is valid only with "
                                        f"{SSE_HEADER}: KMS.", ArgumentName=SSE_HEADER, ArgumentValue=algorithm)
    if data and data != "SM4":
        raise OSSError.invalid_argument(f"{SSE_DATA_HEADER} must be SM4.", ArgumentName=SSE_DATA_HEADER,
                                        ArgumentValue=data[:64])
    if key_id:
        raise OSSError(501, "NotImplemented", "picscore serve has no KMS: server-side encryption with a KMS key of "
                       f"your own ({SSE_KEY_ID_HEADER}) is not implemented.")
    return {SSE_HEADER: algorithm, **({SSE_DATA_HEADER: data} if data else {})}
