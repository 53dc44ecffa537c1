"""RRSA on ACK (worker/oss/credentials.py): with no static key and the pod identity webhook's
variables set, ``picscore run`` builds an OIDC → STS credentials provider for the OSS SDK.

No STS call is made: building the provider needs only the variables and the token file. The
failure path talks to a closed port on 127.0.0.1, never to Alibaba Cloud.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
from pathlib import Path

import alibabacloud_oss_v2 as oss
import pytest
from alibabacloud_credentials.provider.oidc import OIDCRoleArnCredentialsProvider
from alibabacloud_credentials.provider.static_sts import StaticSTSCredentialsProvider

from tests.deploy.manifests import REPO
from worker.oss.client import _sdk_config
from worker.oss.credentials import RrsaCredentials, RrsaFetchError, sdk_provider_from
from worker.settings import ConfigError, Credentials, add_run_arguments, credentials_from_env, load_run_config

ROLE = "acs:ram::1234567890123456:role/picscore-oss-audit"
PROVIDER = "acs:ram::1234567890123456:oidc-provider/ack-rrsa-c0ffee"
TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6cGljc2NvcmUifQ.c2lnbmF0dXJlLXRva2Vu"


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text(TOKEN)
    return path


def rrsa_env(token_file: Path, **extra: str) -> dict[str, str]:
    return {"ALIBABA_CLOUD_ROLE_ARN": ROLE, "ALIBABA_CLOUD_OIDC_PROVIDER_ARN": PROVIDER,
            "ALIBABA_CLOUD_OIDC_TOKEN_FILE": str(token_file), **extra}


def test_rrsa_variables_without_a_static_key_give_an_sts_provider(token_file: Path) -> None:
    credentials = credentials_from_env(rrsa_env(token_file, ALIBABA_CLOUD_STS_REGION="cn-hangzhou",
                                                ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED="true"))
    assert isinstance(credentials, RrsaCredentials)
    provider = credentials.sdk_provider()
    assert isinstance(provider, oss.credentials.CredentialsProvider)
    assert provider is credentials.sdk_provider()  # one STS session per run, shared by its clients
    source = provider.source
    assert isinstance(source, OIDCRoleArnCredentialsProvider)
    assert (source._role_arn, source._oidc_provider_arn, source._oidc_token_file_path) == (ROLE, PROVIDER,
                                                                                            str(token_file))
    assert source._role_session_name == "picscore"
    assert source._sts_endpoint == "sts-vpc.cn-hangzhou.aliyuncs.com"  # inside the VPC: no Internet egress


def test_the_sdk_client_signs_with_the_rrsa_provider(token_file: Path) -> None:
    credentials = credentials_from_env(rrsa_env(token_file))
    config = _sdk_config("https://oss-cn-hangzhou-internal.aliyuncs.com", "cn-hangzhou", credentials)
    assert config.credentials_provider is credentials.sdk_provider()
    static = _sdk_config("https://oss-cn-hangzhou.aliyuncs.com", "cn-hangzhou", Credentials("LTAIkey", "secret"))
    assert isinstance(static.credentials_provider, oss.credentials.StaticCredentialsProvider)


def test_adapter_hands_sts_credentials_to_the_sdk() -> None:
    provider = sdk_provider_from(StaticSTSCredentialsProvider(access_key_id="STS.key", access_key_secret="sts-secret",
                                                              security_token="sts-token"))
    got = provider.get_credentials()
    assert (got.access_key_id, got.access_key_secret, got.security_token) == ("STS.key", "sts-secret", "sts-token")


def test_run_settings_show_rrsa_and_no_token(token_file: Path) -> None:
    parser = argparse.ArgumentParser()
    add_run_arguments(parser)
    env = {**rrsa_env(token_file), "PICSCORE_ENDPOINT": "https://oss-cn-hangzhou.aliyuncs.com",
           "PICSCORE_REGION": "cn-hangzhou", "PICSCORE_BUCKET": "photos"}
    config = load_run_config(parser.parse_args([]), env)
    assert config.credentials.secrets == ()
    described = config.describe()
    assert described["access_key_id"] == "rrsa***" and described["session_token"] is False
    for text in (repr(config), str(described), repr(config.credentials), repr(config.credentials.sdk_provider())):
        assert TOKEN not in text


def test_static_keys_win_over_rrsa(token_file: Path) -> None:
    env = {**rrsa_env(token_file), "OSS_ACCESS_KEY_ID": "LTAIstatic", "OSS_ACCESS_KEY_SECRET": "static-secret"}
    assert credentials_from_env(env) == Credentials("LTAIstatic", "static-secret")


@pytest.mark.parametrize("missing", ["ALIBABA_CLOUD_ROLE_ARN", "ALIBABA_CLOUD_OIDC_PROVIDER_ARN",
                                     "ALIBABA_CLOUD_OIDC_TOKEN_FILE"])
def test_partial_rrsa_variables_are_a_configuration_error(token_file: Path, missing: str) -> None:
    env = rrsa_env(token_file)
    env[missing] = " "
    with pytest.raises(ConfigError) as caught:
        credentials_from_env(env)
    assert caught.value.field == "credentials" and f"{missing} must be set too" in str(caught.value)


def test_half_a_static_key_is_still_an_error_with_rrsa_set(token_file: Path) -> None:
    with pytest.raises(ConfigError, match="OSS_ACCESS_KEY_SECRET must be set"):
        credentials_from_env({**rrsa_env(token_file), "OSS_ACCESS_KEY_ID": "LTAIstatic"})


def test_unreadable_or_empty_token_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read the OIDC token file .*No such file"):
        credentials_from_env(rrsa_env(tmp_path / "absent"))
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        credentials_from_env(rrsa_env(empty))


def test_missing_extra_says_how_to_install_it(token_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "alibabacloud_credentials", None)  # import now raises ImportError
    with pytest.raises(ConfigError, match=r"pip install 'picscore\[rrsa\]'"):
        credentials_from_env(rrsa_env(token_file))


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_sts_failure_is_reported_without_the_token(token_file: Path) -> None:
    credentials = RrsaCredentials(ROLE, PROVIDER, str(token_file), sts_endpoint=f"127.0.0.1:{_closed_port()}")
    with pytest.raises(RrsaFetchError) as caught:
        credentials.sdk_provider().get_credentials()
    message = str(caught.value)
    assert message.startswith("RRSA: getting STS credentials (AssumeRoleWithOIDC) failed")
    assert TOKEN not in message and ROLE not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_sts_error_answer_keeps_status_and_code_only() -> None:
    class Refusing:
        def get_credentials(self) -> None:
            raise RuntimeError(f'error refreshing credentials from oidc_role_arn, http_code: 400, result: '
                               f'{{"Code":"AuthenticationFail.OIDCToken.Invalid","OIDCToken":"{TOKEN}"}}')

    with pytest.raises(RrsaFetchError) as caught:
        sdk_provider_from(Refusing()).get_credentials()
    assert str(caught.value) == ("RRSA: getting STS credentials (AssumeRoleWithOIDC) failed: RuntimeError, HTTP 400, "
                                 "STS code AuthenticationFail.OIDCToken.Invalid")


@pytest.mark.timeout(120)
def test_run_with_unreachable_sts_fails_without_leaking_the_token(token_file: Path, tmp_path: Path) -> None:
    """The whole CLI: RRSA credentials, STS unreachable → the run fails (no key to sign with) and
    neither its output nor its result file carries the token."""
    env = {name: value for name, value in __import__("os").environ.items()
           if not name.startswith(("PICSCORE_", "OSS_", "ALIBABA_CLOUD_"))}
    env.update(rrsa_env(token_file, ALIBABA_CLOUD_STS_ENDPOINT=f"127.0.0.1:{_closed_port()}"))
    output = tmp_path / "out.jsonl"
    done = subprocess.run([sys.executable, "-m", "worker.cli", "run", "--endpoint", f"http://127.0.0.1:{_closed_port()}",
                           "--region", "cn-hangzhou", "--bucket", "photos", "--output", str(output),
                           "--retry-attempts", "1", "--log-format", "json", "--progress", "never"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=110)
    assert done.returncode in (1, 3), done.stderr[-3000:]
    assert "AssumeRoleWithOIDC" in done.stdout + done.stderr
    for text in (done.stdout, done.stderr, *(p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file()
                                           and p != token_file)):
        assert TOKEN not in text
