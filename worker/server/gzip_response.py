"""GetObject with ``Accept-Encoding: gzip``: the object's bytes compressed on the way out, as
OSS does for web text ("How do I compress objects that I download from OSS in the GZIP format",
https://www.alibabacloud.com/help/faq-detail/39645.html).

OSS compresses only when all of these hold, and so does this server:

* the request accepts ``gzip`` (``Accept-Encoding``, a ``q=0`` weight refuses it);
* the object is at least 1 KB;
* its Content-Type (the media type, without parameters) is one of :data:`GZIP_TYPES`.

Then the response carries ``Content-Encoding: gzip`` and ``Vary: Accept-Encoding``, is sent
chunked, and has no ``ETag``, ``Content-Length`` or ``Accept-Ranges`` (the page says so); the
``x-oss-hash-crc64ecma`` stays, describing the stored bytes (the page's sample response has it),
so a client that inflates the body can still check it.

Never compressed, on top of the page's rules: an object that already has a ``Content-Encoding``
(its bytes are encoded already), a ranged GET (a range of compressed bytes would be no range of
the object), and a response whose encoding ``response-content-encoding`` overrides. HeadObject
is answered as without ``Accept-Encoding``: it has no body to compress, and a ``Content-Length``
of the stored bytes is what clients size a download by.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Iterator

from aiohttp import web

from .call import Call, write_body
from .storage import ObjectHandle, ObjectMeta

__all__ = ["GZIP_TYPES", "GZIP_MIN_BYTES", "accepts_gzip", "should_gzip", "send_gzipped"]

#: The Content-Types OSS compresses (the page above, its latest list).
GZIP_TYPES = frozenset({
    "text/cache-manifest", "text/xml", "text/css", "text/html", "text/plain", "application/javascript",
    "application/x-javascript", "application/rss+xml", "application/json", "text/json",
})
#: Smaller objects are sent as they are.
GZIP_MIN_BYTES = 1024


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an ``Accept-Encoding`` value accepts gzip: named (or else ``*``) with a weight above 0."""
    weights: dict[str, float] = {}
    for item in accept_encoding.split(","):
        name, *params = (part.strip() for part in item.split(";"))
        weight = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        weights[name.lower()] = weight
    for name in ("gzip", "x-gzip", "*"):
        if name in weights:
            return weights[name] > 0
    return False


def should_gzip(call: Call, meta: ObjectMeta, overrides: dict[str, str]) -> bool:
    """Whether GetObject answers ``call`` for ``meta`` gzip-compressed (see the module docstring)."""
    if call.header("Range") or "Content-Encoding" in meta.headers or "Content-Encoding" in overrides:
        return False
    if meta.size < GZIP_MIN_BYTES:
        return False
    media_type = meta.content_type.partition(";")[0].strip().lower()
    return media_type in GZIP_TYPES and accepts_gzip(call.header("Accept-Encoding"))


async def send_gzipped(call: Call, handle: ObjectHandle, headers: dict[str, str]) -> web.StreamResponse:
    """Stream the whole object gzip-compressed, with ``headers`` (GetObject's) adjusted."""
    headers = {name: value for name, value in headers.items() if name not in ("ETag", "Accept-Ranges")}
    headers["Content-Encoding"] = "gzip"
    headers["x-oss-hash-crc64ecma"] = handle.meta.crc64  # of the stored bytes, as OSS's sample shows
    headers["Vary"] = "Accept-Encoding"
    response = web.StreamResponse(status=200, headers=headers)
    response.enable_chunked_encoding()
    await response.prepare(call.request)
    compressed = _compressed(handle.iter_chunks(0, handle.meta.size))
    while chunk := await asyncio.to_thread(next, compressed, b""):
        await write_body(response, chunk, call.body_rate_bps, call.send_timeout_s)
    await response.write_eof()
    return response


def _compressed(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """gzip (RFC 1952) of the concatenated ``chunks``, never an empty piece before the end."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
    for chunk in chunks:
        if out := compressor.compress(chunk):
            yield out
    yield compressor.flush()
