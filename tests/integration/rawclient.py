"""Signed requests with byte-exact paths, for the cases SDKs would normalise or refuse to send.

The official SDK presigns (so the signature is the SDK's, not ours); ``http.client`` sends the
path exactly as given — ``..`` segments, a doubled ``/`` — which is what an attacker would do.
"""

from __future__ import annotations

import http.client
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

import alibabacloud_oss_v2 as oss

from tests.conftest import ACCESS_KEY_ID, ACCESS_KEY_SECRET, BUCKET


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def code(self) -> str | None:
        """The OSS error ``Code`` from the XML body (or the x-oss-err header for HEAD)."""
        import base64
        import re

        text = self.body.decode("utf-8", "replace")
        if not text and "x-oss-err" in self.headers:
            text = base64.b64decode(self.headers["x-oss-err"]).decode()
        match = re.search(r"<Code>([^<]*)</Code>", text)
        return match[1] if match else None


def sdk_client(url: str, secret: str = ACCESS_KEY_SECRET) -> oss.Client:
    config = oss.config.load_default()
    config.credentials_provider = oss.credentials.StaticCredentialsProvider(ACCESS_KEY_ID, secret)
    config.region = "cn-hangzhou"
    config.endpoint = url
    config.retryer = oss.retry.NopRetryer()
    return oss.Client(config)


def presign(url: str, method: str, key: str, *, process: str | None = None, bucket: str = BUCKET) -> str:
    client = sdk_client(url)
    if method == "PUT":
        request = oss.PutObjectRequest(bucket=bucket, key=key)
    elif method == "HEAD":
        request = oss.HeadObjectRequest(bucket=bucket, key=key)
    else:
        request = oss.GetObjectRequest(bucket=bucket, key=key, process=process)
    return client.presign(request, expires=timedelta(minutes=10)).url


def send(url: str, method: str = "GET", body: bytes | None = None,
         headers: dict[str, str] | None = None, timeout: float = 30.0) -> RawResponse:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        conn.request(method, target, body=body, headers=headers or {})
        response = conn.getresponse()
        return RawResponse(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        conn.close()


def signed(url: str, method: str, key: str, *, process: str | None = None, body: bytes | None = None,
           bucket: str = BUCKET) -> RawResponse:
    """Presign with the SDK, then send the request verbatim."""
    return send(presign(url, method, key, process=process, bucket=bucket), method, body)
