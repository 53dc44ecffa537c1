"""Turn whatever one SDK call raised into a :class:`CallFailure`: what happened, and may it be retried.

The SDK wraps everything in ``OperationError``; inside is a ``ServiceError`` (the service
answered with an error status), a ``RequestError``/``ResponseError`` wrapping the aiohttp or
timeout exception, or a credentials/parameter error. :func:`classify` unwraps that chain once,
so callers decide on plain fields instead of ``isinstance`` ladders over SDK internals.

The retry rule (applied by :mod:`worker.oss.retry`): retry only what can succeed later: 5xx
(OSS throttles with 503), 429, timeouts, connection errors. Never 400/403/404: the same request
gets the same answer.

Messages are scrubbed with :func:`~worker.observability.redact.redact_text`: the SDK's error
strings embed request URLs (presigned ones carry signatures) and the service echoes
``SignatureProvided``/``StringToSign`` details.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from dataclasses import dataclass

import aiohttp
from alibabacloud_oss_v2 import exceptions as sdk_errors
from alibabacloud_oss_v2.uploader import UploadError

from worker.observability.redact import redact_text

__all__ = [
    "CallFailure", "classify", "invalid_answer", "is_auth_failure",
    "SERVICE", "TIMEOUT", "CONNECTION", "TLS", "INVALID_ANSWER", "CLIENT",
    "THROTTLE_CODES_503", "AUTH_FATAL_CODES",
]

SERVICE = "service"                # the service answered with an error status (status + OSS Code)
TIMEOUT = "timeout"                # connect or read timed out
CONNECTION = "connection"          # refused, reset, disconnected, truncated body, malformed HTTP
TLS = "tls"                        # the TLS handshake failed: wrong protocol (http server), bad certificate
INVALID_ANSWER = "invalid_answer"  # 2xx, but the body is not a valid image/score answer
CLIENT = "client"                  # raised before/without a usable exchange: credentials, parameters, bugs

#: 503 codes OSS uses when it sheds load (``image/score`` capacity, account QPS).
THROTTLE_CODES_503 = frozenset({"CpuLimitExceeded", "TotalQpsLimitExceeded"})
#: 403 codes that mean "these credentials/this clock will fail for every object".
AUTH_FATAL_CODES = frozenset({
    "SignatureDoesNotMatch", "InvalidAccessKeyId", "RequestTimeTooSkewed",
    "InvalidSecurityToken", "SecurityTokenExpired",
})
#: OSS EC prefix of authentication errors (``0002-00000069`` "Request has expired", …); ACL and
#: policy denials use ``0003-`` and concern single objects, so they are recorded, not fatal.
_AUTH_EC_PREFIX = "0002-"
_MAX_MESSAGE = 500
#: ``code`` for failures without an OSS Code: picscore's own reason, as written in result rows.
_REASON_CODES = {TIMEOUT: "Timeout", CONNECTION: "ConnectionError", TLS: "TLSError",
                 INVALID_ANSWER: "InvalidAnswer", CLIENT: "ClientError"}


@dataclass(frozen=True)
class CallFailure:
    """One failed call, classified. ``code`` is the OSS Code for service errors and picscore's
    reason (``Timeout``, ``ConnectionError``, ``InvalidAnswer``, ``ClientError``) otherwise, so a
    result row always has one. ``ec`` is OSS's ``x-oss-ec`` diagnostic code, when given."""

    kind: str
    retryable: bool
    http_status: int | None
    code: str | None
    message: str
    request_id: str | None
    throttled: bool
    ec: str | None = None

    @property
    def reason(self) -> str:
        """A low-cardinality label for metrics: ``throttled``, ``http_500``, ``timeout``…"""
        if self.throttled:
            return "throttled"
        if self.kind == SERVICE:
            return f"http_{self.http_status}"
        return self.kind


def classify(exc: BaseException, secrets: Iterable[str] = ()) -> CallFailure:
    """Classify anything one SDK call raised. ``secrets`` are scrubbed from the message too."""
    inner = _unwrap(exc)
    if isinstance(inner, sdk_errors.ServiceError):
        return _service_failure(inner, tuple(secrets))
    kind = _transport_kind(inner)
    return CallFailure(kind=kind, retryable=kind in (TIMEOUT, CONNECTION), http_status=None,
                       code=_REASON_CODES[kind], message=_describe(inner, tuple(secrets)), request_id=None,
                       throttled=False)


def invalid_answer(message: str, http_status: int | None = 200, request_id: str | None = None) -> CallFailure:
    """A 2xx answer whose body is not a usable score. Not retryable: the same object would get
    the same answer, and retrying a misconfigured endpoint only multiplies the load."""
    return CallFailure(kind=INVALID_ANSWER, retryable=False, http_status=http_status, code="InvalidAnswer",
                       message=_clip(redact_text(message)), request_id=request_id, throttled=False)


def is_auth_failure(failure: CallFailure) -> bool:
    """True when every later call would fail the same way (wrong secret, unknown key id,
    clock skew, expired token): the run must abort instead of writing a FAILED row per object."""
    if failure.kind != SERVICE or failure.http_status != 403:
        return False
    if failure.code in AUTH_FATAL_CODES:
        return True
    return failure.code == "AccessDenied" and (failure.ec or "").startswith(_AUTH_EC_PREFIX)


def _unwrap(exc: BaseException) -> BaseException:
    """Follow the SDK's ``unwrap()`` chain (UploadError/OperationError → RequestError → aiohttp error)."""
    seen = 0
    while isinstance(exc, (sdk_errors.OperationError, sdk_errors.RequestError, sdk_errors.ResponseError,
                           UploadError)):
        inner = exc.unwrap()
        if inner is None or seen > 8:
            break
        exc, seen = inner, seen + 1
    return exc


def _service_failure(err: sdk_errors.ServiceError, secrets: tuple[str, ...]) -> CallFailure:
    status = int(err.status_code or 0) or None
    code = err.code or None
    throttled = status == 429 or (status == 503 and code in THROTTLE_CODES_503)
    retryable = status is not None and (status >= 500 or status == 429)
    message = _clip(redact_text(str(err.message or code or "service error"), secrets))
    return CallFailure(kind=SERVICE, retryable=retryable, http_status=status, code=code, message=message,
                       request_id=err.request_id or None, throttled=throttled, ec=err.ec or None)


def _transport_kind(exc: BaseException) -> str:
    """Timeouts first: aiohttp's ``ServerTimeoutError`` is both a connection error and a timeout.

    TLS failures are not retried: a plain-HTTP server or a certificate that does not verify
    answers the same way every time, and retrying for minutes only hides the cause."""
    if isinstance(exc, TimeoutError):  # asyncio.TimeoutError is TimeoutError since 3.11
        return TIMEOUT
    if isinstance(exc, (aiohttp.ClientSSLError, ssl.SSLError)):
        return TLS
    if isinstance(exc, (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, aiohttp.ClientResponseError,
                        ConnectionError)):
        return CONNECTION
    if isinstance(exc, OSError):  # socket-level errors aiohttp did not wrap
        return CONNECTION
    return CLIENT


def _describe(exc: BaseException, secrets: tuple[str, ...]) -> str:
    text = str(exc).strip()
    label = type(exc).__name__
    return _clip(redact_text(f"{label}: {text}" if text else label, secrets))


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"
