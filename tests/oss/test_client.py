"""build_async_client: the settings that differ from the SDK's defaults are really in effect."""

from __future__ import annotations

from dataclasses import dataclass

import alibabacloud_oss_v2 as oss
import pytest

from tests.conftest import ACCESS_KEY_ID, ACCESS_KEY_SECRET, BUCKET, make_jpeg
from tests.integration.rawclient import signed
from worker.oss.client import build_async_client, close_async_client, needs_path_style, open_async_client
from worker.server.launch import ServerProcess


@dataclass(frozen=True)
class Creds:
    access_key_id: str = ACCESS_KEY_ID
    access_key_secret: str = ACCESS_KEY_SECRET
    session_token: str | None = None


async def test_connector_limit_equals_concurrency_and_close_closes_the_session() -> None:
    client = build_async_client("http://127.0.0.1:9", "cn-hangzhou", Creds(), 7)
    connector = client.http_session.connector
    assert connector is not None and connector.limit == 7
    await close_async_client(client)
    assert client.http_session.closed


async def test_sdk_retryer_is_off_and_v4_signing_is_on() -> None:
    async with open_async_client("http://127.0.0.1:9", "cn-hangzhou", Creds(session_token="tok"), 2) as client:
        options = client._client._options  # SDK internals: the only place these settle
        assert isinstance(options.retryer, oss.retry.NopRetryer)
        assert type(options.signer).__name__ == "SignerV4"
        assert options.credentials_provider.get_credentials().security_token == "tok"
    assert client.http_session.closed


def test_concurrency_must_be_positive() -> None:
    with pytest.raises(ValueError):
        build_async_client("http://127.0.0.1:9", "cn-hangzhou", Creds(), 0)


@pytest.mark.parametrize(("endpoint", "path_style"), [
    ("http://localhost:9000", True),
    ("localhost:9000", True),
    ("http://minio.localhost", True),
    ("http://127.0.0.1:9000", True),
    ("http://[::1]:9000", True),
    ("https://oss-cn-hangzhou.aliyuncs.com", False),
    ("oss-cn-hangzhou-internal.aliyuncs.com", False),
])
def test_path_style_for_local_hosts(endpoint: str, path_style: bool) -> None:
    assert needs_path_style(endpoint) is path_style


async def test_scores_through_localhost(server: ServerProcess) -> None:
    assert signed(server.url, "PUT", "client/a.jpg", body=make_jpeg()).status == 200
    async with open_async_client(f"http://localhost:{server.port}", "cn-hangzhou", Creds(), 1) as client:
        result = await client.get_object(oss.GetObjectRequest(bucket=BUCKET, key="client/a.jpg",
                                                               process="image/score"))
        assert result.status_code == 200 and b"OverallQualityScore" in result.body.content
