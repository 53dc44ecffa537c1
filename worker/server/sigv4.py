"""OSS Signature V4 (``OSS4-HMAC-SHA256``), header and presigned-URL forms.

OSS documents both: "Include a V4 signature in the header (recommended)",
https://www.alibabacloud.com/help/en/oss/developer-reference/recommend-to-use-signature-version-4,
and "V4 signatures in presigned URLs", https://help.aliyun.com/en/oss/developer-reference/add-signatures-to-urls.
The SDK implementations are ``alibabacloud_oss_v2/signer/v4.py``
(github.com/aliyun/alibabacloud-oss-python-sdk-v2), ``oss2/auth.py`` (``ProviderAuthV4``,
github.com/aliyun/aliyun-oss-python-sdk) and ``lib/common/signUtils.js`` (github.com/ali-sdk/ali-oss).

Two halves, both pure: *parsing* turns the ``Authorization`` header or the presigned query into
a :class:`V4Claim` (who claims to have signed what, when), rejecting malformed input with
``400 InvalidArgument``; *rebuilding* recomputes the string to sign from the decoded request,
never from wire bytes, because the SDKs encode paths differently but sign the same canonical
form. Deciding whether a claim is fresh and whether its signature matches is left to
:mod:`worker.server.auth`, which applies one policy to V1 and V4 alike.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

from .addressing import Address
from .errors import OSSError
from .wire import QueryParam

__all__ = [
    "ALGORITHM",
    "UNSIGNED_PAYLOAD",
    "Scope",
    "V4Claim",
    "canonical_headers",
    "canonical_query",
    "canonical_request",
    "canonical_uri",
    "claim_from_headers",
    "claim_from_query",
    "signing_key",
    "string_to_sign",
]

ALGORITHM = "OSS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
#: The EC OSS sends with ``SignatureDoesNotMatch`` for a V4 signature
#: (https://help.aliyun.com/en/oss/user-guide/0002-00000201).
MISMATCH_EC = "0002-00000201"
#: The presigned-URL parameters that carry the signature itself, not the operation.
PRESIGN_PARAMS = frozenset({
    "x-oss-signature-version", "x-oss-credential", "x-oss-date", "x-oss-expires",
    "x-oss-additional-headers", "x-oss-security-token", "x-oss-signature",
})
#: OSS allows presigned V4 URLs to live 1 s to 7 days (``x-oss-expires`` 1..604800).
MAX_EXPIRES_S = 604800

_PRODUCTS = frozenset({"oss", "oss-cloudbox"})  # CloudBox puts its id in the region field
_TERMINATOR = "aliyun_v4_request"
_TIMESTAMP = re.compile(r"[0-9]{8}T[0-9]{6}Z")
_SCOPE_DATE = re.compile(r"[0-9]{8}")
_DIGITS = re.compile(r"[0-9]+")
_ALWAYS_SIGNED = frozenset({"content-type", "content-md5"})
_HEADER_FIELDS = frozenset({"Credential", "AdditionalHeaders", "Signature"})


@dataclass(frozen=True)
class Scope:
    """``<yyyymmdd>/<region>/<product>/aliyun_v4_request``; the region may be empty."""

    date: str
    region: str
    product: str

    def __str__(self) -> str:
        return f"{self.date}/{self.region}/{self.product}/{_TERMINATOR}"


@dataclass(frozen=True)
class V4Claim:
    """What a V4-signed request says about itself, before anything is verified.

    ``signed_at`` is ``timestamp`` as Unix seconds; ``expires_at`` is set for presigned URLs
    only (``x-oss-date + x-oss-expires``).
    """

    scheme: str  # "v4" or "v4-presigned"
    access_key_id: str
    scope: Scope
    timestamp: str
    additional_headers: tuple[str, ...]
    signature: str
    payload_hash: str
    signed_at: float
    expires_at: float | None

    mismatch_ec = MISMATCH_EC

    @property
    def auth_params(self) -> frozenset[str]:
        """Query parameters that belong to the signature, not to the operation."""
        return PRESIGN_PARAMS if self.scheme == "v4-presigned" else frozenset()

    def strings_to_sign(
        self,
        method: str,
        headers: Mapping[str, str],
        params: Sequence[QueryParam],
        address: Address,
    ) -> Iterator[str]:
        """Every string to sign the client may have used for ``address``, most likely first.

        The second form writes empty parameters that arrived as ``name=`` with their ``=``,
        as ``ali-oss`` signs a generic empty parameter (``getCanonicalRequest`` in its
        ``lib/common/signUtils.js`` stringifies an empty string as ``name=``); one retry in that
        form is enough.
        """
        if self.scheme == "v4-presigned":
            params = [p for p in params if p.name != "x-oss-signature"]
        uri = canonical_uri(address.bucket, address.key)
        headers_block = canonical_headers(headers, self.additional_headers)
        forms = [False]
        if any(p.has_equals and not p.value for p in params):
            forms.append(True)
        for keep_equals in forms:
            canonical = canonical_request(
                method, uri, canonical_query(params, keep_equals=keep_equals), headers_block,
                self.additional_headers, self.payload_hash,
            )
            yield string_to_sign(self.timestamp, self.scope, canonical)

    def sign(self, secret: str, string_to_sign: str) -> str:
        """Lower-case hex HMAC-SHA256 of ``string_to_sign`` under the scope's key."""
        key = signing_key(secret, self.scope)
        return hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


# -- parsing -------------------------------------------------------------------------------

def claim_from_headers(headers: Mapping[str, str]) -> V4Claim:
    """Parse ``Authorization: OSS4-HMAC-SHA256 …`` plus ``x-oss-date``.

    Fields are parsed order-independently: ``oss2`` writes ``, `` and puts AdditionalHeaders
    last, the other SDKs write ``,`` and put it between Credential and Signature.
    """
    algorithm, _, rest = headers.get("authorization", "").strip().partition(" ")
    if algorithm != ALGORITHM:
        raise _malformed(f"the Authorization header does not start with {ALGORITHM}")
    fields = _header_fields(rest)
    access_key_id, scope = _parse_credential(fields["Credential"])
    timestamp = headers.get("x-oss-date", "").strip()
    signed_at = _parse_timestamp(timestamp, scope, "the x-oss-date header")
    return V4Claim(
        scheme="v4",
        access_key_id=access_key_id,
        scope=scope,
        timestamp=timestamp,
        additional_headers=_parse_additional(fields.get("AdditionalHeaders", "")),
        signature=fields["Signature"],
        payload_hash=_parse_payload_hash(headers.get("x-oss-content-sha256")),
        signed_at=signed_at,
        expires_at=None,
    )


def claim_from_query(
    params: Sequence[QueryParam], headers: Mapping[str, str] | None = None,
) -> V4Claim:
    """Parse the ``x-oss-*`` parameters of a presigned V4 URL.

    ``x-oss-expires`` is relative seconds in every SDK, limited to 1..604800. A presigned URL
    signs no payload; an ``x-oss-content-sha256`` header sent with it must still say
    ``UNSIGNED-PAYLOAD`` (see :func:`_parse_payload_hash`).
    """
    _parse_payload_hash((headers or {}).get("x-oss-content-sha256"))
    version = _single(params, "x-oss-signature-version")
    if version != ALGORITHM:
        raise _malformed(f"x-oss-signature-version must be {ALGORITHM}")
    access_key_id, scope = _parse_credential(_single(params, "x-oss-credential"))
    timestamp = _single(params, "x-oss-date")
    signed_at = _parse_timestamp(timestamp, scope, "x-oss-date")
    expires = _single(params, "x-oss-expires")
    # Length first: int() refuses strings of over 4300 digits with a ValueError (CPython's
    # int_max_str_digits), which must stay a 400, not become a 500.
    if (not _DIGITS.fullmatch(expires) or len(expires.lstrip("0")) > len(str(MAX_EXPIRES_S))
            or not 1 <= int(expires) <= MAX_EXPIRES_S):
        raise OSSError.invalid_argument(
            f"x-oss-expires must be a whole number of seconds from 1 to {MAX_EXPIRES_S}.",
            "0002-00000232",
        )
    additional = [p.value for p in params if p.name == "x-oss-additional-headers"]
    if len(additional) > 1:
        raise _malformed("x-oss-additional-headers appears more than once")
    return V4Claim(
        scheme="v4-presigned",
        access_key_id=access_key_id,
        scope=scope,
        timestamp=timestamp,
        additional_headers=_parse_additional(additional[0] if additional else ""),
        signature=_single(params, "x-oss-signature"),
        payload_hash=UNSIGNED_PAYLOAD,
        signed_at=signed_at,
        expires_at=signed_at + int(expires),
    )


def _header_fields(text: str) -> dict[str, str]:
    """``Key=Value`` items split on ``,``; Credential and Signature are required."""
    fields: dict[str, str] = {}
    for item in text.split(","):
        name, sep, value = item.strip().partition("=")
        if not sep or name not in _HEADER_FIELDS or name in fields:
            raise _malformed(f"unexpected Authorization item {item.strip()[:40]!r}")
        fields[name] = value.strip()
    if not fields.get("Credential") or not fields.get("Signature"):
        raise _malformed("the Authorization header needs Credential and Signature")
    return fields


def _parse_credential(credential: str) -> tuple[str, Scope]:
    """``AK/date/region/product/aliyun_v4_request``, split from the right."""
    parts = credential.rsplit("/", 4)
    if len(parts) != 5 or not parts[0]:
        raise _malformed("Credential must be AK/date/region/product/aliyun_v4_request")
    access_key_id, date, region, product, terminator = parts
    if terminator != _TERMINATOR or product not in _PRODUCTS or not _SCOPE_DATE.fullmatch(date):
        raise _malformed(f"invalid credential scope {'/'.join(parts[1:])!r}")
    return access_key_id, Scope(date, region, product)


def _parse_timestamp(timestamp: str, scope: Scope, where: str) -> float:
    """``yyyymmddTHHMMSSZ`` as Unix seconds; its date must be the scope's date."""
    if not _TIMESTAMP.fullmatch(timestamp):
        raise _malformed(f"{where} must be an ISO 8601 basic UTC time such as 20261126T130316Z")
    if timestamp[:8] != scope.date:
        raise _malformed(f"the credential date {scope.date} differs from {where} {timestamp}")
    try:
        moment = datetime.strptime(timestamp, "%Y%m%dT%H%M%SZ")
    except ValueError:
        raise _malformed(f"{where} {timestamp} is not a valid time") from None
    return moment.replace(tzinfo=UTC).timestamp()


def _parse_additional(value: str) -> tuple[str, ...]:
    """Lower-cased and *fully* sorted: ``oss2`` emits the list sorted by first letter only
    but signs it fully sorted."""
    return tuple(sorted({name.strip().lower() for name in value.split(";") if name.strip()}))


def _parse_payload_hash(value: str | None) -> str:
    """``x-oss-content-sha256``: ``UNSIGNED-PAYLOAD``, the only value OSS accepts.

    OSS V4 does not sign payloads: its documentation for EC 0002-00000214 ("The value of the
    x-oss-content-sha256 header is invalid", https://help.aliyun.com/en/oss/user-guide/0002-00000214)
    has one solution, "Set the x-oss-content-sha256 header to UNSIGNED-PAYLOAD", and every SDK
    hard-codes it (``alibabacloud_oss_v2/signer/v4.py`` ``_auth_header``, ``oss2/auth.py``
    ``ProviderAuthV4._sign_request``). A hex digest is therefore refused, not verified: accepting
    it unverified would let a signature claim a body it never covered. Absent means
    ``UNSIGNED-PAYLOAD``, as in the SDKs' canonical requests.
    """
    if value is None:
        return UNSIGNED_PAYLOAD
    if value.strip() != UNSIGNED_PAYLOAD:
        raise OSSError.invalid_argument(
            "The value of the x-oss-content-sha256 header is invalid: OSS signature V4 accepts "
            "only UNSIGNED-PAYLOAD.",
            "0002-00000214",
        )
    return UNSIGNED_PAYLOAD


def _single(params: Sequence[QueryParam], name: str) -> str:
    values = [p.value for p in params if p.name == name]
    if len(values) != 1:
        raise _malformed(f"the presigned URL needs exactly one {name} parameter")
    return values[0]


def _malformed(why: str) -> OSSError:
    return OSSError.invalid_argument(f"Malformed OSS4-HMAC-SHA256 signature: {why}.")


# -- rebuilding: canonical request, string to sign, signing key -----------------------------

def canonical_uri(bucket: str | None, key: str | None) -> str:
    """``/bucket/key`` URI-encoded with ``/`` kept, whatever the addressing style.

    ``/`` for a service-level request, ``/bucket/`` for a bucket-level one.
    """
    if bucket is None:
        return "/"
    return _uri_encode(f"/{bucket}/{key or ''}", safe="/")


def canonical_query(params: Iterable[QueryParam], *, keep_equals: bool = False) -> str:
    """All parameters, re-encoded (``/`` too), sorted, joined with ``&``.

    An empty value is written as the bare name, unless ``keep_equals`` is set and the wire
    form had ``name=`` (the ``ali-oss`` retry).
    """
    encoded = sorted(
        (_uri_encode(p.name), _uri_encode(p.value), keep_equals and p.has_equals) for p in params
    )
    return "&".join(
        f"{name}={value}" if value or equals else name for name, value, equals in encoded
    )


def canonical_headers(headers: Mapping[str, str], additional: Collection[str] = ()) -> str:
    """``name:value\\n`` for every ``x-oss-*``, ``content-type``, ``content-md5`` and listed
    additional header, lower-cased, trimmed and sorted; repeats joined with ``,``.
    """
    signed: dict[str, list[str]] = {}
    for name, value in headers.items():
        lower = name.lower()
        if lower.startswith("x-oss-") or lower in _ALWAYS_SIGNED or lower in additional:
            signed.setdefault(lower, []).append(value.strip())
    return "".join(f"{name}:{','.join(signed[name])}\n" for name in sorted(signed))


def canonical_request(
    method: str,
    uri: str,
    query: str,
    headers: str,
    additional: Sequence[str],
    payload_hash: str,
) -> str:
    """The six parts of the canonical request joined with ``\\n`` (``headers`` already ends in
    ``\\n``): method, URI, query, headers, additional header names, payload hash."""
    return "\n".join([method.upper(), uri, query, headers, ";".join(additional), payload_hash])


def string_to_sign(timestamp: str, scope: Scope, canonical: str) -> str:
    """``OSS4-HMAC-SHA256\\n<x-oss-date>\\n<scope>\\n<hex sha256(canonical)>``."""
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return f"{ALGORITHM}\n{timestamp}\n{scope}\n{digest}"


def signing_key(secret: str, scope: Scope) -> bytes:
    """The HMAC-SHA256 chain ``aliyun_v4<secret>`` → date → region → product → terminator."""
    key = ("aliyun_v4" + secret).encode("utf-8")
    for part in (scope.date, scope.region, scope.product, _TERMINATOR):
        key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
    return key


def _uri_encode(text: str, safe: str = "") -> str:
    """RFC 3986: every UTF-8 byte except ``A-Z a-z 0-9 - _ . ~`` (and ``safe``) as ``%XX``."""
    return quote(text.encode("utf-8"), safe=safe)
