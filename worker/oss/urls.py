"""``oss://bucket/key`` locations: how picscore names an object wherever it takes a file.

Bucket names follow OSS's naming rules (3 to 63 characters of ``a-z``, ``0-9`` and ``-``,
starting and ending with a letter or digit: https://help.aliyun.com/en/oss/user-guide/bucket-naming-conventions).
"""

from __future__ import annotations

import re

__all__ = ["OSS_SCHEME", "is_oss_url", "split_oss_url", "BUCKET_NAME_RE"]

OSS_SCHEME = "oss://"
BUCKET_NAME_RE = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")


def is_oss_url(text: str) -> bool:
    return text.startswith(OSS_SCHEME)


def split_oss_url(url: str) -> tuple[str, str]:
    """``oss://bucket/path/key`` → (bucket, key). Raises ValueError unless both are valid and
    the key names an object (not empty, not ending in '/')."""
    if not url.startswith(OSS_SCHEME):
        raise ValueError("must start with oss://")
    bucket, _, key = url[len(OSS_SCHEME):].partition("/")
    if not BUCKET_NAME_RE.fullmatch(bucket):
        raise ValueError("must be oss://<bucket>/<key> with a valid bucket name")
    if not key or key.endswith("/") or key.startswith("/"):
        raise ValueError("must be oss://<bucket>/<key> naming an object (not a folder)")
    return bucket, key
