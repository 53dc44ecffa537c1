"""Request authentication: which scheme, which account, and which bucket and key.

:class:`Authenticator` is the one policy over both signature versions. It picks the scheme,
lets :mod:`~worker.server.sigv4` / :mod:`~worker.server.sigv1` parse the claim, checks the
AccessKeyId and the clock, then tries each candidate address from
:mod:`~worker.server.addressing` until a signature matches. Every failure is an
:class:`~worker.server.errors.OSSError` shaped like the one OSS sends (same status, ``Code``
and EC, see :mod:`worker.server.errors`).

The scheme comes from the ``Authorization`` header (``OSS4-HMAC-SHA256 …`` for V4, ``OSS …``
for V1) or from the query of a presigned URL (``x-oss-signature-version`` … for V4,
``OSSAccessKeyId``/``Signature`` for V1). A request signed both ways is refused: OSS does not
accept a signature in the URL and in the header at once (OSS documentation, "Include a V1
signature in a URL": https://help.aliyun.com/en/oss/developer-reference/ddd-signatures-to-urls).

Before any of that, the request must be unambiguous and readable (:func:`_check_headers`): a
header that decides who signed what (``Authorization``, ``Host``, the dates, the security token,
``x-oss-content-sha256``, ``Content-Type``/``Content-MD5``) may appear once only, because the
verifier and the handlers read the first copy while a proxy in front may act on another; and
every header that is signed or shown in an error must be valid UTF-8. aiohttp decodes header
bytes with ``surrogateescape``, so invalid UTF-8 arrives as lone surrogates that no signer, log
line or error document can encode: it is refused here with ``400 InvalidArgument`` instead of
failing later as an internal error.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from . import sigv1, sigv4
from .addressing import Address, resolve
from .errors import OSSError
from .wire import QueryParam, WireRequest, decode_path, parse_query_params

__all__ = ["AuthResult", "Authenticator"]

_S3_HEADER = frozenset({"AWS4-HMAC-SHA256", "AWS"})
_S3_PARAMS = frozenset({"X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature", "AWSAccessKeyId"})
_V4_PARAMS = frozenset({"x-oss-signature-version", "x-oss-credential", "x-oss-signature"})
_V1_PARAMS = frozenset({"OSSAccessKeyId", "Signature"})
#: Headers with one meaning only (RFC 9110 singletons, and what the signature and the time check
#: read): a second copy is refused rather than silently ignored.
_SINGLE_HEADERS = (
    "authorization", "host", "date", "x-oss-date", "x-oss-security-token",
    "x-oss-content-sha256", "content-type", "content-md5",
)
#: Headers whose values reach a string to sign or an error document, besides ``x-oss-*``.
_TEXT_HEADERS = frozenset(_SINGLE_HEADERS)


class _Claim(Protocol):
    """What :mod:`sigv4` and :mod:`sigv1` claims have in common."""

    scheme: str
    access_key_id: str
    signature: str
    signed_at: float | None
    expires_at: float | None
    mismatch_ec: str
    additional_headers: tuple[str, ...]

    @property
    def auth_params(self) -> frozenset[str]: ...

    def strings_to_sign(
        self, method: str, headers: Mapping[str, str], params: Sequence[QueryParam],
        address: Address,
    ) -> Iterator[str]: ...

    def sign(self, secret: str, string_to_sign: str) -> str: ...


@dataclass(frozen=True)
class AuthResult:
    """An authenticated request: who signed it, what it addresses, and its own parameters.

    ``query`` is the decoded query without the presigned-URL signature parameters, so
    handlers see only the operation's parameters. ``scheme`` is one of ``"v4"``,
    ``"v4-presigned"``, ``"v1"``, ``"v1-presigned"``.
    """

    access_key_id: str
    bucket: str | None
    key: str | None
    query: list[tuple[str, str]]
    scheme: str


class Authenticator:
    """Verifies OSS V4 and V1 signatures, header and presigned forms, against known keys.

    ``credentials`` maps AccessKeyId to secret. ``service_host`` (no port) enables
    virtual-hosted addressing as ``<bucket>.<service_host>``; ``cnames`` maps custom host names
    to buckets (checked before any other Host rule). ``clock`` is injectable so the 2026
    captures verify in tests. ``signing_region``: V4 scopes must name it (None: any region).
    """

    def __init__(
        self,
        credentials: Mapping[str, str],
        *,
        service_host: str | None = None,
        cnames: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
        max_skew_s: int = 900,
        signing_region: str | None = None,
    ) -> None:
        self._secrets = dict(credentials)
        self._signing_region = signing_region
        self._service_host = service_host.lower() if service_host else None
        self._cnames = {host.lower(): bucket for host, bucket in (cnames or {}).items()}
        self._clock = clock
        self._max_skew_s = max_skew_s

    def __repr__(self) -> str:
        # Secrets never leave this object: not in reprs, logs or error messages.
        return (
            f"Authenticator(access_key_ids={sorted(self._secrets)!r}, "
            f"service_host={self._service_host!r}, max_skew_s={self._max_skew_s})"
        )

    def authenticate(self, req: WireRequest) -> AuthResult:
        """Return who signed ``req`` and what it addresses, or raise the OSS-shaped error."""
        _check_headers(req.headers)
        params = parse_query_params(req.raw_query)
        claim = _claim(req, params)
        for name in claim.additional_headers:  # V4 may sign any header: it must be text too
            _check_utf8(req.headers, name)
        candidates = resolve(
            req.host, decode_path(req.raw_path),
            service_host=self._service_host, cnames=self._cnames,
        )
        secret = self._secrets.get(claim.access_key_id)
        if secret is None:
            raise OSSError(
                403, "InvalidAccessKeyId",
                "The OSS Access Key Id you provided does not exist in our records.",
                extra={"OSSAccessKeyId": claim.access_key_id},
            )
        self._check_region(claim)
        self._check_time(claim)
        address = _matching_address(claim, secret, req, params, candidates)
        return AuthResult(
            access_key_id=claim.access_key_id,
            bucket=address.bucket,
            key=address.key,
            query=[(p.name, p.value) for p in params if p.name not in claim.auth_params],
            scheme=claim.scheme,
        )

    def _check_region(self, claim: _Claim) -> None:
        """With a ``signing_region``, a V4 signature scoped to another region (or none) is refused
        as OSS refuses it: 400 InvalidArgument, EC 0002-00000226 (OSS's own error page:
        https://help.aliyun.com/zh/oss/support/0002-00000226). V1 signatures carry no region."""
        scope = getattr(claim, "scope", None)
        if self._signing_region is None or scope is None or scope.region == self._signing_region:
            return
        raise OSSError(400, "InvalidArgument", "Invalid signing region in Authorization header.", "0002-00000226")

    def _check_time(self, claim: _Claim) -> None:
        """Presigned URLs must not have expired (V4: ``x-oss-date`` + ``x-oss-expires``; V1:
        ``Expires``); a signing time must lie within ``max_skew_s`` of now, as OSS allows a
        request's time to be off by at most 15 minutes. For a presigned V4 URL only a *future*
        signing time counts, so nobody can stretch the 7-day limit by post-dating ``x-oss-date``."""
        now = self._clock()
        if claim.expires_at is not None and now > claim.expires_at:
            raise OSSError(
                403, "AccessDenied", "Request has expired.", "0002-00000069",
                {"Expires": _iso(claim.expires_at), "ServerTime": _iso(now)},
            )
        if claim.signed_at is None:
            return
        if claim.expires_at is None:
            skew = abs(claim.signed_at - now)
        else:
            skew = claim.signed_at - now
        if skew > self._max_skew_s:
            raise OSSError(
                403, "RequestTimeTooSkewed",
                "The difference between the request time and the current time is too large.",
                "0002-00000504",
                {
                    "RequestTime": _iso(claim.signed_at),
                    "ServerTime": _iso(now),
                    "MaxAllowedSkewMilliseconds": str(self._max_skew_s * 1000),
                },
            )


def _check_headers(headers: Mapping[str, str]) -> None:
    """Refuse repeated single-valued headers and signed headers that are not valid UTF-8."""
    for name in _SINGLE_HEADERS:
        if len(_values(headers, name)) > 1:
            raise OSSError.invalid_argument(
                f"The request carries more than one {_title(name)} header; send it once."
            )
    for name in {name.lower() for name in headers}:
        if name in _TEXT_HEADERS or name.startswith("x-oss-"):
            _check_utf8(headers, name)


def _check_utf8(headers: Mapping[str, str], name: str) -> None:
    """``400 InvalidArgument`` when a value of header ``name`` held bytes that are not UTF-8.

    The message names the header but never quotes its value, which cannot be encoded.
    """
    for value in _values(headers, name):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise OSSError.invalid_argument(
                f"The {_title(name)} header is not valid UTF-8."
            ) from None


def _values(headers: Mapping[str, str], name: str) -> list[str]:
    """Every value of ``name``: all copies from a multidict, the one value from a plain mapping."""
    getall = getattr(headers, "getall", None)
    if getall is not None:
        return list(getall(name, ()))
    value = headers.get(name)
    return [] if value is None else [value]


def _title(name: str) -> str:
    """``x-oss-date`` → ``x-oss-date``, ``content-md5`` → ``Content-MD5``: names as OSS writes them."""
    if name.startswith("x-oss-"):
        return name
    return {"content-md5": "Content-MD5"}.get(name, "-".join(p.capitalize() for p in name.split("-")))


def _claim(req: WireRequest, params: Sequence[QueryParam]) -> _Claim:
    """Pick the scheme from the ``Authorization`` header or the query and parse it."""
    header = req.headers.get("authorization")
    in_query = _query_scheme({p.name for p in params})
    if header is not None and in_query is not None:
        raise OSSError.invalid_argument(
            "Only one authentication method is allowed: the request is signed both in the "
            "Authorization header and in the URL."
        )
    if header is not None:
        algorithm = header.strip().partition(" ")[0]
        if algorithm == sigv4.ALGORITHM:
            return sigv4.claim_from_headers(req.headers)
        if algorithm == "OSS":
            return sigv1.claim_from_headers(req.headers)
        if algorithm in _S3_HEADER:
            raise _s3_unsupported()
        raise OSSError.invalid_argument(
            f"Unsupported Authorization scheme {algorithm[:40]!r}: use OSS4-HMAC-SHA256 or OSS."
        )
    if in_query == "v4-presigned":
        _refuse_repeated_params(params, sigv4.PRESIGN_PARAMS)
        return sigv4.claim_from_query(params, req.headers)
    if in_query == "v1-presigned":
        _refuse_repeated_params(params, sigv1.PRESIGN_PARAMS)
        return sigv1.claim_from_query(params)
    raise OSSError.access_denied()


def _refuse_repeated_params(params: Sequence[QueryParam], names: frozenset[str]) -> None:
    """A presigned URL names each of its signature parameters once: with two
    ``x-oss-security-token`` (or ``Signature``, ``Expires`` …) which one was meant is
    ambiguous, so the URL is refused (400) rather than read by first or last copy."""
    seen: set[str] = set()
    for param in params:
        if param.name in names:
            if param.name in seen:
                raise OSSError.invalid_argument(
                    f"The URL carries the {param.name} parameter more than once."
                )
            seen.add(param.name)


def _query_scheme(names: set[str]) -> str | None:
    """``"v4-presigned"``, ``"v1-presigned"`` or ``None`` for a URL without a signature.

    S3 parameters are checked first, because a SigV2 URL also has ``Signature``; they are
    refused with 403 (S3-compatible signatures are out of scope). Two OSS signatures in one
    URL are ambiguous: 400.
    """
    if names & _S3_PARAMS:
        raise _s3_unsupported()
    found = [
        scheme for scheme, marks in (("v4-presigned", _V4_PARAMS), ("v1-presigned", _V1_PARAMS))
        if names & marks
    ]
    if len(found) > 1:
        raise OSSError.invalid_argument("The URL carries both a V4 and a V1 signature.")
    return found[0] if found else None


def _matching_address(
    claim: _Claim,
    secret: str,
    req: WireRequest,
    params: Sequence[QueryParam],
    candidates: Sequence[Address],
) -> Address:
    """The first candidate address whose string to sign yields the claimed signature.

    Trying the path-style reading too is safe because bucket and key are part of what is
    signed. On failure the error shows the first (most likely) string to sign.
    """
    provided = claim.signature.encode("utf-8")
    first: str | None = None
    for address in candidates:
        for text in claim.strings_to_sign(req.method, req.headers, params, address):
            if hmac.compare_digest(claim.sign(secret, text).encode("ascii"), provided):
                return address
            if first is None:
                first = text
    assert first is not None  # resolve() always yields at least one address
    raise OSSError(
        403, "SignatureDoesNotMatch",
        "The request signature we calculated does not match the signature you provided. "
        "Check your key and signing method.",
        claim.mismatch_ec,
        {
            "OSSAccessKeyId": claim.access_key_id,
            "SignatureProvided": claim.signature,
            "StringToSign": first,
            "StringToSignBytes": " ".join(f"{b:02x}" for b in first.encode("utf-8")),
        },
    )


def _s3_unsupported() -> OSSError:
    return OSSError(
        403, "AccessDenied",
        "S3 signatures (AWS4-HMAC-SHA256, AWS) are not supported by this server; sign requests "
        "with an Alibaba Cloud OSS SDK (OSS4-HMAC-SHA256 or OSS).",
    )


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
