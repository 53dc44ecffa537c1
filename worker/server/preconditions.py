"""Conditional requests: GetObject/HeadObject's ``If-*`` headers and CopyObject's
``x-oss-copy-source-if-*`` headers, evaluated the same way against the object's metadata.

Both answer 412 for a failed If-Match / If-Unmodified-Since and 304 for a failed If-None-Match /
If-Modified-Since: GetObject (https://www.alibabacloud.com/help/en/oss/developer-reference/getobject)
and CopyObject (https://www.alibabacloud.com/help/en/oss/developer-reference/copyobject), which
says "Otherwise, 304 Not Modified" for ``x-oss-copy-source-if-none-match`` and
``-if-modified-since``, and 412 Precondition Failed for ``-if-match`` and ``-if-unmodified-since``.
An unparsable date is ignored, as HTTP says (RFC 9110 §13.1.3).
"""

from __future__ import annotations

from email.utils import parsedate_to_datetime

from .call import Call
from .errors import OSSError
from .storage import ObjectMeta

__all__ = ["precondition", "precondition_failed", "require_unchanged", "GET_HEADERS", "COPY_SOURCE_HEADERS"]

#: (If-Match, If-None-Match, If-Unmodified-Since, If-Modified-Since) as GetObject names them.
GET_HEADERS = ("If-Match", "If-None-Match", "If-Unmodified-Since", "If-Modified-Since")
#: The same four as CopyObject names them (they guard the *source* object).
COPY_SOURCE_HEADERS = tuple(f"x-oss-copy-source-{name.lower()}" for name in GET_HEADERS)


def precondition_failed() -> OSSError:
    return OSSError(412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold.")


def precondition(call: Call, meta: ObjectMeta, names: tuple[str, str, str, str] = GET_HEADERS) -> int | None:
    """Evaluate the four conditions named by ``names`` against ``meta``: 412, 304 or None."""
    if_match, if_none_match, if_unmodified, if_modified = names
    etag = meta.etag.strip('"')
    value = call.header(if_match)
    if value and value.strip('"').upper() != etag:
        return 412
    value = call.header(if_none_match)
    if value and value.strip('"').upper() == etag:
        return 304
    for name, status in ((if_unmodified, 412), (if_modified, 304)):
        value = call.header(name)
        if not value:
            continue
        try:
            when = parsedate_to_datetime(value).timestamp()
        except (TypeError, ValueError):
            continue
        modified = int(meta.last_modified) > when
        if (status == 412 and modified) or (status == 304 and not modified):
            return status
    return None


def require_unchanged(call: Call, meta: ObjectMeta) -> None:
    """A processed GET (score, snapshot, resize) honours If-Match and If-Unmodified-Since as a
    plain GetObject does (412 PreconditionFailed), checked on the version actually read: a caller
    that names the version it decided on never gets an answer about another. If-None-Match and
    If-Modified-Since are not applied: a processed answer is not a cached copy of the object."""
    if precondition(call, meta) == 412:
        raise precondition_failed()
