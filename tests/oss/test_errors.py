"""Failure classification: SDK exception shapes built as the SDK builds them, then the same
failures produced for real (wrong secret, refused port, read timeout) through the AsyncClient."""

from __future__ import annotations

import asyncio
import socket
from types import SimpleNamespace

import aiohttp
import alibabacloud_oss_v2 as oss
import pytest
import yarl
from alibabacloud_oss_v2 import exceptions as sdk

from tests.conftest import ACCESS_KEY_ID, ACCESS_KEY_SECRET, BUCKET, make_jpeg
from tests.integration.rawclient import signed
from worker.oss.client import build_async_client
from worker.oss.errors import (
    CLIENT,
    CONNECTION,
    INVALID_ANSWER,
    SERVICE,
    TIMEOUT,
    CallFailure,
    classify,
    invalid_answer,
    is_auth_failure,
)
from worker.server.launch import ServerProcess

SIGNED_URL = ("http://b.oss.example.com/k.jpg?x-oss-process=image%2Fscore&x-oss-signature-version=OSS4-HMAC-SHA256"
              "&x-oss-credential=LTAI5t%2F20250101%2Fcn-hangzhou%2Foss%2Faliyun_v4_request&x-oss-signature=deadbeef01")


def service_error(status: int, code: str, message: str = "msg", ec: str = "", request_id: str = "RID") -> Exception:
    """A ServiceError wrapped like the SDK does (``invoke_operation`` → ``OperationError``)."""
    err = sdk.ServiceError(status_code=status, code=code, message=message, request_id=request_id, ec=ec,
                           timestamp=None, request_target=f"GET {SIGNED_URL}", snapshot=b"", headers={},
                           error_fileds={})
    return sdk.OperationError(name="GetObject", error=err)


@pytest.mark.parametrize(("status", "code", "retryable", "throttled"), [
    (503, "CpuLimitExceeded", True, True),
    (503, "TotalQpsLimitExceeded", True, True),
    (503, "ServiceUnavailable", True, False),
    (500, "InternalError", True, False),
    (502, "BadErrorResponse", True, False),
    (429, "TooManyRequests", True, True),
    (400, "BadRequest", False, False),
    (403, "AccessDenied", False, False),
    (404, "NoSuchKey", False, False),
])
def test_service_errors(status: int, code: str, retryable: bool, throttled: bool) -> None:
    failure = classify(service_error(status, code))
    assert failure == CallFailure(kind=SERVICE, retryable=retryable, http_status=status, code=code, message="msg",
                                  request_id="RID", throttled=throttled)
    assert failure.reason == ("throttled" if throttled else f"http_{status}")


@pytest.mark.parametrize(("inner", "kind"), [
    (sdk.ResponseError(error=TimeoutError()), TIMEOUT),
    (sdk.ResponseError(error=aiohttp.ServerTimeoutError("Timeout on reading data from socket")), TIMEOUT),
    (sdk.RequestError(error=aiohttp.ServerDisconnectedError()), CONNECTION),
    (sdk.RequestError(error=aiohttp.ClientOSError(104, "Connection reset by peer")), CONNECTION),
    (sdk.RequestError(error=aiohttp.ClientPayloadError("Response payload is not completed")), CONNECTION),
    (sdk.ResponseError(error=ConnectionResetError(104, "reset")), CONNECTION),
    (sdk.CredentialsEmptyError(), CLIENT),
    (sdk.ParamInvalidError(field="endpoint"), CLIENT),
    (ValueError("something else"), CLIENT),
])
def test_transport_and_client_errors(inner: Exception, kind: str) -> None:
    failure = classify(sdk.OperationError(name="GetObject", error=inner))
    assert (failure.kind, failure.retryable, failure.http_status, failure.throttled) == (
        kind, kind in (TIMEOUT, CONNECTION), None, False)
    assert failure.code == {TIMEOUT: "Timeout", CONNECTION: "ConnectionError", CLIENT: "ClientError"}[kind]
    assert failure.message and failure.reason == kind


def test_messages_never_carry_signatures_or_secrets() -> None:
    inner = aiohttp.ClientResponseError(
        request_info=aiohttp.RequestInfo(url=yarl.URL(SIGNED_URL), method="GET", headers={}),  # type: ignore[arg-type]
        history=(), status=400, message=f"bad answer from {SIGNED_URL} Authorization: OSS4-HMAC-SHA256 "
                                        "Credential=LTAI5t/x, Signature=abcdef0123")
    failure = classify(sdk.OperationError(name="GetObject", error=sdk.ResponseError(error=inner)),
                       secrets=["LTAI5t"])
    assert "deadbeef01" not in failure.message and "abcdef0123" not in failure.message
    assert "LTAI5t" not in failure.message and "[REDACTED]" in failure.message
    service = classify(service_error(403, "SignatureDoesNotMatch", f"see {SIGNED_URL}"))
    assert "deadbeef01" not in service.message


def test_messages_are_clipped() -> None:
    assert len(classify(service_error(500, "InternalError", "x" * 5000)).message) <= 500


@pytest.mark.parametrize(("status", "code", "ec", "fatal"), [
    (403, "SignatureDoesNotMatch", "0002-00000201", True),
    (403, "InvalidAccessKeyId", "", True),
    (403, "RequestTimeTooSkewed", "0002-00000504", True),
    (403, "InvalidSecurityToken", "", True),
    (403, "AccessDenied", "0002-00000069", True),   # presigned/signing time expired: every call
    (403, "AccessDenied", "0003-00000001", False),  # ACL/policy on this object: record, go on
    (403, "AccessDenied", "", False),
    (400, "SignatureDoesNotMatch", "", False),
    (404, "NoSuchKey", "", False),
    (503, "CpuLimitExceeded", "", False),
])
def test_auth_failures(status: int, code: str, ec: str, fatal: bool) -> None:
    assert is_auth_failure(classify(service_error(status, code, ec=ec))) is fatal


def test_invalid_answer() -> None:
    failure = invalid_answer("not JSON", 200, "RID")
    assert (failure.kind, failure.retryable, failure.code, failure.http_status) == (INVALID_ANSWER, False,
                                                                                      "InvalidAnswer", 200)
    assert not is_auth_failure(failure)


# --- the same failures, produced for real ----------------------------------------------------

def creds(secret: str = ACCESS_KEY_SECRET) -> SimpleNamespace:
    return SimpleNamespace(access_key_id=ACCESS_KEY_ID, access_key_secret=secret, session_token=None)


async def failure_of(endpoint: str, key: str, secret: str = ACCESS_KEY_SECRET, **timeouts: float) -> CallFailure:
    async with build_async_client(endpoint, "cn-hangzhou", creds(secret), 1, **timeouts) as client:
        with pytest.raises(Exception) as caught:
            await client.get_object(oss.GetObjectRequest(bucket=BUCKET, key=key, process="image/score"))
    return classify(caught.value, secrets=[secret])


async def test_real_wrong_secret_is_an_auth_failure(server: ServerProcess) -> None:
    assert signed(server.url, "PUT", "errors/a.jpg", body=make_jpeg()).status == 200
    failure = await failure_of(server.url, "errors/a.jpg", secret="wrong-secret-0123456789")
    assert (failure.kind, failure.http_status, failure.code, failure.retryable) == (
        SERVICE, 403, "SignatureDoesNotMatch", False)
    assert is_auth_failure(failure) and failure.request_id
    assert "wrong-secret" not in failure.message


async def test_real_missing_key(server: ServerProcess) -> None:
    failure = await failure_of(server.url, "errors/none.jpg")
    assert (failure.http_status, failure.code, failure.retryable) == (404, "NoSuchKey", False)
    assert not is_auth_failure(failure)


async def test_real_refused_connection() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    failure = await failure_of(f"http://127.0.0.1:{port}", "k.jpg", connect_timeout_s=2)
    assert (failure.kind, failure.retryable, failure.code) == (CONNECTION, True, "ConnectionError")


async def test_real_read_timeout() -> None:
    """A socket that accepts and never answers: the read timeout, not the connect one, fires."""
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        failure = await failure_of(f"http://127.0.0.1:{port}", "k.jpg", read_timeout_s=0.2)
    finally:
        server.close()
    assert (failure.kind, failure.retryable, failure.code) == (TIMEOUT, True, "Timeout")
