"""V4 signatures are scoped to the server's region, as on OSS; ``--any-signing-region`` keeps
the permissive behaviour (any scope region, even none) for clients configured loosely."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import alibabacloud_oss_v2 as oss
import oss2
import pytest

from tests.conftest import ACCESS_KEY_ID, ACCESS_KEY_SECRET, BUCKET
from worker.server.launch import ServerProcess, start_server


def client(server: ServerProcess, region: str, version: str = "v4") -> oss.Client:
    cfg = oss.config.load_default()
    cfg.credentials_provider = oss.credentials.StaticCredentialsProvider(ACCESS_KEY_ID, ACCESS_KEY_SECRET)
    cfg.region, cfg.endpoint, cfg.retryer, cfg.signature_version = region, server.url, oss.retry.NopRetryer(), version
    return oss.Client(cfg)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    made: Path = tmp_path_factory.mktemp("signing-region")
    (made / BUCKET).mkdir()
    (made / BUCKET / "a.txt").write_bytes(b"hello")
    return made


@pytest.fixture(scope="module")
def strict(root: Path) -> Iterator[ServerProcess]:
    with start_server(root, {ACCESS_KEY_ID: ACCESS_KEY_SECRET}, args=["--region", "cn-shanghai"]) as proc:
        yield proc


@pytest.fixture(scope="module")
def permissive(root: Path) -> Iterator[ServerProcess]:
    with start_server(root, {ACCESS_KEY_ID: ACCESS_KEY_SECRET},
                      args=["--region", "cn-shanghai", "--any-signing-region"]) as proc:
        yield proc


def get(c: oss.Client) -> bytes:
    return c.get_object(oss.GetObjectRequest(bucket=BUCKET, key="a.txt")).body.read()


def test_a_signature_scoped_to_the_servers_region_is_accepted(strict: ServerProcess) -> None:
    assert get(client(strict, "cn-shanghai")) == b"hello"
    assert get(client(strict, "cn-beijing", "v1")) == b"hello"  # V1 carries no region


@pytest.mark.parametrize("region", ["cn-beijing", "shanghai", "cn-shanghai-internal"])
def test_another_scope_region_is_refused_as_oss_refuses_it(strict: ServerProcess, region: str) -> None:
    with pytest.raises(oss.exceptions.OperationError) as refused:
        get(client(strict, region))
    error = refused.value.unwrap()
    assert (error.status_code, error.code, error.ec) == (400, "InvalidArgument", "0002-00000226")
    assert "Invalid signing region" in error.message


def test_presigned_urls_are_held_to_the_region_too(strict: ServerProcess) -> None:
    bucket = oss2.Bucket(oss2.AuthV4(ACCESS_KEY_ID, ACCESS_KEY_SECRET), strict.url, BUCKET, region="cn-beijing")
    with pytest.raises(oss2.exceptions.OssError) as refused:
        bucket.get_object("a.txt")
    assert (refused.value.status, refused.value.code) == (400, "InvalidArgument")
    url = oss2.Bucket(oss2.AuthV4(ACCESS_KEY_ID, ACCESS_KEY_SECRET), strict.url, BUCKET,
                      region="cn-shanghai").sign_url("GET", "a.txt", 60)
    assert oss2.Bucket(oss2.AnonymousAuth(), strict.url, BUCKET).get_object_with_url(url).read() == b"hello"


def test_any_signing_region_accepts_whatever_the_client_scoped(permissive: ServerProcess) -> None:
    assert get(client(permissive, "cn-beijing")) == b"hello"
    assert get(client(permissive, "local")) == b"hello"
