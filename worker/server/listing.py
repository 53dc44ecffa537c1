"""ListObjects (V1) and ListObjectsV2: pagination and delimiter grouping over the store's key walk.

OSS semantics kept here (and tested against the SDK paginators): keys in UTF-8 byte order;
``max-keys`` counts keys *and* common prefixes together (1..1000, default 100); V1 pages with
``marker``/``NextMarker`` (``NextMarker`` only when a delimiter is given on S3 — OSS always sends
it when truncated); V2 pages with an opaque ``continuation-token`` and accepts ``start-after``
(OSS documentation, "ListObjectsV2": https://help.aliyun.com/en/oss/developer-reference/listobjectsv2).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field

from .errors import OSSError
from .key_walk import SkipCursor
from .storage import LocalStore, ObjectMeta

__all__ = ["ListPage", "list_page", "parse_max_keys", "encode_token", "decode_token"]

MAX_KEYS_LIMIT = 1000
DEFAULT_MAX_KEYS = 100


@dataclass
class ListPage:
    """One page of a listing: objects and common prefixes, plus where the next page starts."""

    entries: list[tuple[str, ObjectMeta]] = field(default_factory=list)
    common_prefixes: list[str] = field(default_factory=list)
    truncated: bool = False
    next_marker: str = ""

    @property
    def count(self) -> int:
        return len(self.entries) + len(self.common_prefixes)


def parse_max_keys(raw: str | None) -> int:
    """``max-keys``: an integer 1..1000 (OSS answers 400 ``InvalidArgument`` otherwise)."""
    if raw is None or raw == "":
        return DEFAULT_MAX_KEYS
    # Four digits at most before int(): CPython refuses to convert over 4300 digits (a 500).
    value = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 4 else -1
    if not 0 <= value <= MAX_KEYS_LIMIT:
        raise OSSError.invalid_argument("max-keys should be an integer between 0 and 1000.",
                                        ArgumentName="max-keys", ArgumentValue=raw[:50])
    return value


def list_page(store: LocalStore, bucket: str, *, prefix: str, delimiter: str,
              start_after: str, max_keys: int) -> ListPage:
    """Collect up to ``max_keys`` objects and common prefixes after ``start_after``.

    Blocking (reads the file system): call from a worker thread.
    """
    page = ListPage()
    if max_keys == 0:
        return page
    cursor = SkipCursor()
    if delimiter and _common_prefix(start_after, prefix, delimiter) == start_after:
        # The previous page ended on this common prefix: the keys under it were already
        # represented by it, so resuming must not emit it again (clients would loop).
        cursor.skip_prefix = start_after
    for key in store.iter_keys(bucket, prefix=prefix, start_after=start_after, cursor=cursor):
        grouped = _common_prefix(key, prefix, delimiter)
        if page.count == max_keys:
            page.truncated = True
            break
        if grouped is not None:
            page.common_prefixes.append(grouped)
            page.next_marker = grouped
            cursor.skip_prefix = grouped
            continue
        try:
            meta = store.head(bucket, key)
        except OSSError:
            continue  # deleted while we listed: OSS would not list it either
        page.entries.append((key, meta))
        page.next_marker = key
    if not page.truncated:
        page.next_marker = ""
    return page


def _common_prefix(key: str, prefix: str, delimiter: str) -> str | None:
    if not delimiter:
        return None
    at = key.find(delimiter, len(prefix))
    return None if at < 0 else key[: at + len(delimiter)]


def encode_token(marker: str) -> str:
    """V2 continuation tokens are opaque to clients; ours is the last key, base64url."""
    return base64.urlsafe_b64encode(marker.encode("utf-8")).decode("ascii")


def decode_token(token: str) -> str:
    try:
        return base64.b64decode(token.encode("ascii"), altchars=b"-_", validate=True).decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError):
        raise OSSError.invalid_argument("The continuation token provided is incorrect.",
                                        ArgumentName="continuation-token") from None
