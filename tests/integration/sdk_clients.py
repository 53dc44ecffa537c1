"""The official SDKs' clients, configured for the test server: one place for every test file."""

from __future__ import annotations

import alibabacloud_oss_v2 as oss
import oss2
import pytest

from tests.conftest import ACCESS_KEY_ID, ACCESS_KEY_SECRET, BUCKET
from worker.server.launch import ServerProcess

__all__ = ["v2_client", "oss2_bucket", "service_error"]


def v2_client(server: ServerProcess, variant: str = "v4", *, key_id: str = ACCESS_KEY_ID,
              secret: str = ACCESS_KEY_SECRET) -> oss.Client:
    """alibabacloud-oss-v2, V4 (``variant="v4"``) or V1, without SDK retries."""
    cfg = oss.config.load_default()
    cfg.credentials_provider = oss.credentials.StaticCredentialsProvider(key_id, secret)
    cfg.region = "cn-hangzhou"
    cfg.endpoint = server.url
    cfg.retryer = oss.retry.NopRetryer()
    if variant == "v1":
        cfg.signature_version = "v1"
    return oss.Client(cfg)


def oss2_bucket(server: ServerProcess, variant: str, name: str = BUCKET) -> oss2.Bucket:
    """oss2, V1 (``variant="v1"``) or V4."""
    if variant == "v1":
        return oss2.Bucket(oss2.Auth(ACCESS_KEY_ID, ACCESS_KEY_SECRET), server.url, name)
    return oss2.Bucket(oss2.AuthV4(ACCESS_KEY_ID, ACCESS_KEY_SECRET), server.url, name, region="cn-hangzhou")


def service_error(call) -> oss.exceptions.ServiceError:
    """The service's error for ``call()`` (which must fail), with its 24-character request id."""
    with pytest.raises(oss.exceptions.OperationError) as info:
        call()
    err = info.value.unwrap()
    assert isinstance(err, oss.exceptions.ServiceError), err
    assert len(err.request_id) == 24
    return err
