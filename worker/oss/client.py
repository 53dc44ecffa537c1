"""Build the SDK's ``AsyncClient`` the way the batch worker needs it.

Three choices differ from the SDK's defaults, on purpose:

* **No SDK retries** (``NopRetryer``): tenacity in :mod:`worker.oss.retry` owns retries,
  so attempts, backoff and throttle feedback are counted in one place — two stacked retry
  loops would multiply attempts and hide throttling from the rate limiter.
* **Our own aiohttp session**, whose ``TCPConnector`` limit equals the consumer count. The
  SDK's ``AioHttpClient`` accepts ``max_connections`` but never applies it (it opens a bare
  ``ClientSession``), so without this a burst could open unbounded sockets.
* **Path-style addressing for ``localhost``**: ``bucket.localhost`` does not resolve everywhere;
  the SDK already switches to path style for IP literals, not for host names.

The session is not owned by the SDK's transport, so :meth:`OssAsyncClient.close` (also run by
``async with``) closes it after the SDK is done.
"""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiohttp
import alibabacloud_oss_v2 as oss
from alibabacloud_oss_v2 import exceptions as sdk_exceptions
from alibabacloud_oss_v2.aio import AsyncClient
from alibabacloud_oss_v2.aio.transport import AioHttpClient
from alibabacloud_oss_v2.crc import Crc64

__all__ = ["OssCredentials", "OssAsyncClient", "build_async_client", "open_async_client", "close_async_client",
           "build_client", "upload_file", "download_file", "needs_path_style", "UPLOAD_PART_BYTES"]


class OssCredentials(Protocol):
    """What the client needs from a credentials value (e.g. the worker's settings object).

    ``session_token`` is optional on the value: STS tokens are read when present. A value with an
    ``sdk_provider()`` method (RRSA) supplies the SDK's credentials provider itself."""

    @property
    def access_key_id(self) -> str: ...

    @property
    def access_key_secret(self) -> str: ...


class OssAsyncClient(AsyncClient):
    """The SDK's ``AsyncClient`` plus the aiohttp session it sends through, closed with it."""

    def __init__(self, config: oss.config.Config, session: aiohttp.ClientSession) -> None:
        super().__init__(config)
        self.http_session = session

    async def close(self) -> None:
        """Close the SDK side first (it never closes a session it did not open), then ours."""
        try:
            await super().close()
        finally:
            if not self.http_session.closed:
                await self.http_session.close()


def build_async_client(endpoint: str, region: str, credentials: OssCredentials, concurrency: int, *,
                       connect_timeout_s: float = 10, read_timeout_s: float = 60) -> OssAsyncClient:
    """An ``AsyncClient`` for ``endpoint`` (``https://oss-cn-hangzhou.aliyuncs.com``,
    ``http://127.0.0.1:9000``…): V4 signing, no SDK retries, at most ``concurrency`` connections.

    Call it inside the event loop that will use the client: the aiohttp session binds to the
    running loop. Close the client (``await client.close()`` or ``async with``) to release it.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    session = _limited_session(concurrency, connect_timeout_s, read_timeout_s)
    transport = AioHttpClient(session=session, connect_timeout=connect_timeout_s, readwrite_timeout=read_timeout_s)
    config = _sdk_config(endpoint, region, credentials)
    config.http_client = transport
    config.connect_timeout = connect_timeout_s
    config.readwrite_timeout = read_timeout_s
    return OssAsyncClient(config, session)


@asynccontextmanager
async def open_async_client(endpoint: str, region: str, credentials: OssCredentials, concurrency: int,
                            **timeouts: Any) -> AsyncIterator[OssAsyncClient]:
    """``build_async_client`` as an ``async with`` block that always closes the session."""
    client = build_async_client(endpoint, region, credentials, concurrency, **timeouts)
    try:
        yield client
    finally:
        await client.close()


async def close_async_client(client: AsyncClient) -> None:
    """Close any ``AsyncClient``; for ours this also closes the aiohttp session."""
    await client.close()


def _limited_session(concurrency: int, connect_timeout_s: float, read_timeout_s: float) -> aiohttp.ClientSession:
    """One connection per consumer: the pool, not a semaphore, is what bounds sockets.

    ``limit_per_host=0`` because there is one host anyway; ``total=None`` because a score call's
    duration is bounded by the socket timeouts (the SDK passes them per request too)."""
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout_s, sock_read=read_timeout_s)
    return aiohttp.ClientSession(connector=connector, timeout=timeout)


def _sdk_config(endpoint: str, region: str, credentials: OssCredentials) -> oss.config.Config:
    config = oss.config.load_default()
    config.region = region
    config.endpoint = endpoint
    config.signature_version = "v4"
    config.retryer = oss.retry.NopRetryer()
    provider = getattr(credentials, "sdk_provider", None)  # RRSA (worker/oss/credentials.py): refreshing STS
    config.credentials_provider = provider() if provider is not None else oss.credentials.StaticCredentialsProvider(
        credentials.access_key_id, credentials.access_key_secret,
        getattr(credentials, "session_token", None) or None)
    if needs_path_style(endpoint):
        config.use_path_style = True
    return config


def needs_path_style(endpoint: str) -> bool:
    """``localhost`` (and ``*.localhost``) and IP literals cannot carry a bucket sub-domain."""
    host = urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}").hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def build_client(endpoint: str, region: str, credentials: OssCredentials) -> oss.Client:
    """The synchronous SDK client, configured like :func:`build_async_client` (V4, no SDK retries)."""
    return oss.Client(_sdk_config(endpoint, region, credentials))


#: Files up to this size are one PutObject; larger ones are multipart uploads in parts of this
#: size, several in flight (the SDK's Uploader). 8 MiB keeps a million-row Parquet result (about
#: 30 MB) to a handful of parts, and a part retried after a failure costs seconds, not minutes.
UPLOAD_PART_BYTES = 8 * 1024 * 1024


def upload_file(endpoint: str, region: str, credentials: OssCredentials, local_path: str, bucket: str,
                key: str, *, content_type: str | None = None) -> str:
    """Upload a finished file with the SDK's Uploader (multipart above :data:`UPLOAD_PART_BYTES`);
    returns the ETag.

    Blocking — run it in a thread. Uses the synchronous client, whose Uploader handles
    multipart uploads and their clean-up; a result file is written once per run, so the
    simplicity beats an async re-implementation.
    """
    client = build_client(endpoint, region, credentials)
    request = oss.PutObjectRequest(bucket=bucket, key=key, content_type=content_type)
    result = oss.Uploader(client, part_size=UPLOAD_PART_BYTES).upload_file(request, filepath=local_path)
    return result.etag or ""


def download_file(endpoint: str, region: str, credentials: OssCredentials, bucket: str, key: str,
                  local_path: str) -> str:
    """Download one object to ``local_path``, checking its CRC-64 and length; returns its ETag.

    Blocking, like :func:`upload_file` and for the same reason: an input file is read once per
    command. Not the SDK's ``get_object_to_file``: it loops ``range(1, retry attempts)`` times,
    which is no time at all with the ``NopRetryer`` this client uses (retries are ours).
    """
    client = build_client(endpoint, region, credentials)
    result = client.get_object(oss.GetObjectRequest(bucket=bucket, key=key))
    checksum = Crc64(0)
    written = 0
    try:
        with open(local_path, "wb") as out:
            for chunk in result.body.iter_bytes():
                out.write(chunk)
                checksum.write(chunk)
                written += len(chunk)
    finally:
        result.body.close()
    expected_crc = (result.headers or {}).get("x-oss-hash-crc64ecma")
    if expected_crc is not None and expected_crc != str(checksum.sum64()):
        raise sdk_exceptions.InconsistentError(client_crc=str(checksum.sum64()), server_crc=expected_crc)
    if result.content_length is not None and written != result.content_length:
        raise OSError(f"download of oss://{bucket}/{key} was cut short: {written} of {result.content_length} bytes")
    return (result.etag or "").strip('"')
