"""The request as an operation sees it (:class:`Call`), and what dispatches a call to one.

Both :mod:`worker.server.handlers` (the real buckets) and :mod:`worker.server.synthetic`
(generated buckets) build on these, and :mod:`worker.server.app` creates the calls, so they
live apart from all three: no module here needs to import the one that imports it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from aiohttp import web

from .errors import OSSError

__all__ = ["Call", "Handler", "BucketOperations", "write_body"]

_READ_CHUNK = 64 * 1024


@dataclass
class Call:
    """Everything an operation needs to know about the request in front of it."""

    request: web.Request
    request_id: str
    bucket: str | None
    key: str | None
    query: dict[str, str] = field(default_factory=dict)
    #: Set by fault injection (slow bodies): response bytes per second, None for full speed.
    body_rate_bps: int | None = None
    #: Longest a response write may wait for the client to take bytes (ServerConfig.send_timeout_s).
    send_timeout_s: float | None = None
    #: ``time.perf_counter()`` when the server took the request: fixed-latency scoring answers
    #: relative to it, so the configured latency is the whole service time, as a client sees it.
    received: float = field(default_factory=time.perf_counter)

    def header(self, name: str, default: str = "") -> str:
        return self.request.headers.get(name, default).strip()

    async def read_body(self, limit: int) -> bytes:
        """The whole body of an operation whose body is a small document (a delete list, a form).

        Over ``limit`` bytes it is refused with ``400 EntityTooLarge`` (OSS: EC 0017-00000501,
        https://help.aliyun.com/zh/oss/user-guide/0017-00000501): at once when Content-Length
        says so, otherwise as soon as a chunked body passes the limit. At most ``limit`` bytes
        and one read chunk are ever held; aiohttp drains or drops the rest of the connection.
        """
        declared = self.request.content_length
        if declared is not None and declared > limit:
            raise _body_too_large(limit)
        body = bytearray()
        async for chunk in self.request.content.iter_chunked(_READ_CHUNK):
            body += chunk
            if len(body) > limit:
                raise _body_too_large(limit)
        return bytes(body)


#: One OSS operation: takes the call, returns the response or raises ``OSSError``.
Handler = Callable[[Call], Awaitable[web.StreamResponse]]


class BucketOperations(Protocol):
    """The operations of a bucket that answers for itself (a synthetic bucket)."""

    #: The bucket's creation time (seconds since the epoch), for ListBuckets.
    created: float

    def pick(self, call: Call) -> Handler:
        """The operation that answers ``call``."""
        ...


def _body_too_large(limit: int) -> OSSError:
    return OSSError(400, "EntityTooLarge", f"The request body is larger than this operation accepts ({limit} bytes).",
                    "0017-00000501")


async def write_body(response: web.StreamResponse, data: bytes, rate_bps: int | None,
                     send_timeout_s: float | None = None) -> None:
    """Write ``data``; at most ``rate_bps`` bytes per second when a slow body is injected.

    A write waits while the client does not read (the socket's buffers are full). After
    ``send_timeout_s`` without progress the client counts as gone: a reader that stalls must not
    hold a connection (and a file descriptor) for ever."""
    step = max(1, rate_bps // 10) if rate_bps else len(data) or 1
    timeout = send_timeout_s or None  # 0 or None: wait for ever
    for offset in range(0, len(data), step):
        try:
            async with asyncio.timeout(timeout):  # no task per write, unlike wait_for
                await response.write(data[offset:offset + step])
        except TimeoutError:
            raise ConnectionResetError(f"the client read nothing for {send_timeout_s:g} s") from None
        if rate_bps:
            await asyncio.sleep(0.1)
