"""Small, SDK-independent helpers for the integration tests.

Everything here is computed from first principles (hashlib, a table CRC-64, ``urllib``), so
the tests compare what the SDKs report with values no SDK code produced.
"""

from __future__ import annotations

import hashlib
import json
import re
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TypeVar

__all__ = [
    "HttpResult", "abounded", "bounded", "crc64_ecma", "expected_listing", "http_request", "listing_keys",
    "parse_score", "quoted_md5", "unique_bucket", "unique_prefix",
]

T = TypeVar("T")

#: More pages or entries than any listing test can legitimately produce.
PAGINATION_LIMIT = 100

_CRC64_POLY_REFLECTED = 0xC96C5795D7870F42  # CRC-64/XZ (ECMA-182, reflected), as OSS uses


def _crc64_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ _CRC64_POLY_REFLECTED if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC64_TABLE = _crc64_table()


def crc64_ecma(data: bytes) -> int:
    """CRC-64/XZ of ``data``: reflected ECMA-182, init and xorout all ones, as OSS computes
    ``x-oss-hash-crc64ecma``; see "Check data integrity by using CRC-64",
    https://help.aliyun.com/en/oss/user-guide/check-data-transmission-integrity-by-using-crc-64."""
    crc = 0xFFFFFFFFFFFFFFFF
    for byte in data:
        crc = _CRC64_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFFFFFFFFFF


def quoted_md5(data: bytes) -> str:
    """The ETag OSS gives a simple upload: the upper-case hex MD5 in double quotes."""
    return '"' + hashlib.md5(data).hexdigest().upper() + '"'


def unique_prefix(tag: str) -> str:
    """A key prefix no other test uses (the server is shared by the whole session)."""
    return f"{tag}-{uuid.uuid4().hex[:12]}/"


def unique_bucket(tag: str) -> str:
    """A fresh valid bucket name (``[a-z0-9-]{3,63}``)."""
    return f"it-{tag}-{uuid.uuid4().hex[:16]}"


def listing_keys(prefix: str) -> list[str]:
    """26 keys under ``prefix``: nested, non-ASCII, with space and ``+``, a literal ``%41`` (which
    must survive encoding-type=url round trips undecoded), and plain ones."""
    specials = [
        "a/b/c.jpg",
        "a/b/d.jpg",
        "a/e.jpg",
        "dir/cat photo+1.jpg",
        "p%41+%2B.jpg",
        "图片/猫 照片.jpg",
        "top.jpg",
        "z-last.jpg",
    ]
    plain = [f"img-{n:02d}.jpg" for n in range(18)]
    return [prefix + key for key in specials + plain]


def expected_listing(keys: Iterable[str], prefix: str, delimiter: str = "") -> tuple[list[str], list[str]]:
    """(object keys, common prefixes) that OSS lists for ``prefix``/``delimiter``, in order.

    Order is UTF-8 byte order, which equals Python's code-point order for ``str``.
    """
    objects, prefixes = [], set()
    for key in keys:
        if not key.startswith(prefix):
            continue
        at = key.find(delimiter, len(prefix)) if delimiter else -1
        if at < 0:
            objects.append(key)
        else:
            prefixes.add(key[: at + len(delimiter)])
    return sorted(objects), sorted(prefixes)


def bounded(items: Iterable[T], limit: int = PAGINATION_LIMIT) -> Iterator[T]:
    """Pass ``items`` through, failing (instead of hanging) once more than ``limit`` arrive:
    a server that hands out a marker or token it already served makes paginators loop."""
    for count, item in enumerate(items, 1):
        assert count <= limit, f"pagination did not stop after {limit} pages/entries"
        yield item


async def abounded(items: AsyncIterable[T], limit: int = PAGINATION_LIMIT) -> AsyncIterator[T]:
    """:func:`bounded` for async paginators."""
    count = 0
    async for item in items:
        count += 1
        assert count <= limit, f"pagination did not stop after {limit} pages/entries"
        yield item


_SCORE_LITERAL = re.compile(r"^(0(\.\d{1,3})?|1(\.0{1,3})?)$")


def parse_score(body: bytes, request_id: str) -> float:
    """Check an ``image/score`` body and return its OverallQualityScore.

    The body must be exactly ``{"ImageScore": {...}, "RequestId": request_id}`` with
    ``OverallQualityScore`` present and every score a JSON number in [0, 1] written with at
    most three decimals (checked on the literal text, not the parsed float).
    """
    doc = json.loads(body, parse_float=str, parse_int=str)
    assert set(doc) == {"ImageScore", "RequestId"}, doc
    assert doc["RequestId"] == request_id
    scores = doc["ImageScore"]
    assert "OverallQualityScore" in scores, scores
    for name, literal in scores.items():
        assert isinstance(literal, str) and _SCORE_LITERAL.match(literal), (name, literal)
    return float(scores["OverallQualityScore"])


@dataclass
class HttpResult:
    """A plain HTTP answer: status, headers (case-insensitive via ``get``) and body."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


def http_request(method: str, url: str, data: bytes | None = None,
                 headers: Mapping[str, str] | None = None) -> HttpResult:
    """Send one request with the standard library (no SDK involved); errors are results too."""
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return HttpResult(response.status, response.headers, response.read())
    except urllib.error.HTTPError as err:
        return HttpResult(err.code, err.headers, err.read())
