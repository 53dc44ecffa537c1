"""Which bucket and key a request names, from its Host header and decoded path.

The SDKs disagree on addressing: path style (``/bucket/key``), virtual-hosted style under our
service host or an ``*.aliyuncs.com`` name that ``ali-oss`` writes into ``Host`` by itself, or a
CNAME. Some requests are even ambiguous (``ali-oss`` with ``sldEnable`` and an IP endpoint
sends the bucket in both Host and path). So :func:`resolve` returns *candidates*, most likely
first, and lets the authenticator keep the one whose signature matches. That choice is safe
because OSS signs bucket and key in every scheme: V4 puts ``/bucket/key`` in the canonical URI,
V1 in the canonical resource, whatever the addressing style. Real OSS accepts virtual-hosted
URLs only (https://help.aliyun.com/en/oss/developer-reference/overview-24); path style is what
an SDK sends to an IP endpoint, so a local server must take both.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from .errors import OSSError
from .keys import validate_bucket_name

__all__ = ["Address", "resolve"]

#: ``<bucket>.oss-<region>[-internal].aliyuncs.com`` (the region part absorbs ``-internal``).
_ALIYUNCS_HOST = re.compile(r"([^.]+)\.oss-[a-z0-9-]+\.aliyuncs\.com")


@dataclass(frozen=True)
class Address:
    """A bucket and key as OSS names them: ``None`` for a service- or bucket-level request."""

    bucket: str | None
    key: str | None


def resolve(
    host: str,
    path: str,
    *,
    service_host: str | None = None,
    cnames: Mapping[str, str] | None = None,
) -> list[Address]:
    """Candidate addresses for ``host`` (no port, lower case) and a decoded ``path``.

    The first entry reads the Host: a configured CNAME names its bucket, then
    ``<bucket>.<service_host>`` and ``<bucket>.oss-<region>.aliyuncs.com`` name theirs, and any
    other host means path style. A virtual-hosted or CNAME reading is followed by the pure
    path-style reading when that differs and names a valid bucket. Raises
    ``400 InvalidBucketName`` when the first reading's bucket is invalid.
    """
    bucket = _bucket_from_host(host, service_host, cnames or {})
    path_style = _path_style(path)
    if bucket is None:
        primary = path_style
    else:
        key = path.removeprefix("/")
        primary = Address(bucket, key or None)
    if primary.bucket is not None:
        validate_bucket_name(primary.bucket)
    candidates = [primary]
    if path_style != primary and path_style.bucket is not None and _valid(path_style.bucket):
        candidates.append(path_style)
    return candidates


def _bucket_from_host(host: str, service_host: str | None, cnames: Mapping[str, str]) -> str | None:
    """The bucket the Host header names, or ``None`` when the request is path style."""
    if host in cnames:
        return cnames[host]
    if service_host and host.endswith("." + service_host):
        return host[: -len(service_host) - 1]
    match = _ALIYUNCS_HOST.fullmatch(host)
    return match.group(1) if match else None


def _path_style(path: str) -> Address:
    """``/bucket/key``: the first segment is the bucket, the rest (possibly empty) the key.

    Only ``/`` is service level; ``//key`` yields an empty bucket name, which validation refuses.
    """
    rest = path.removeprefix("/")
    if not rest:
        return Address(None, None)
    bucket, _, key = rest.partition("/")
    return Address(bucket, key or None)


def _valid(bucket: str) -> bool:
    try:
        validate_bucket_name(bucket)
    except OSSError:
        return False
    return True
