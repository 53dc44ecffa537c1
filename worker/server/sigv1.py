"""OSS Signature V1 (HMAC-SHA1), header and presigned-URL forms.

OSS documents both: "Include a V1 signature in the Authorization header",
https://www.alibabacloud.com/help/en/oss/developer-reference/include-signatures-in-the-authorization-header,
and "Include a V1 signature in a URL", https://help.aliyun.com/en/oss/developer-reference/ddd-signatures-to-urls.
The SDK implementations are ``oss2/auth.py`` (github.com/aliyun/aliyun-oss-python-sdk),
``alibabacloud_oss_v2/signer/v1.py`` (github.com/aliyun/alibabacloud-oss-python-sdk-v2) and
``lib/common/signUtils.js`` (github.com/ali-sdk/ali-oss).

Still the default of ``oss2.Auth`` and of ``ali-oss`` without ``authorizationV4``. Like
:mod:`worker.server.sigv4` this module only parses claims and rebuilds strings to sign;
:mod:`worker.server.auth` decides freshness and compares signatures.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from .addressing import Address
from .errors import OSSError
from .wire import QueryParam

__all__ = [
    "SUBRESOURCES",
    "V1Claim",
    "canonical_oss_headers",
    "canonical_resource",
    "claim_from_headers",
    "claim_from_query",
]

#: The EC OSS sends with ``SignatureDoesNotMatch`` for a V1 signature.
MISMATCH_EC = "0002-00000040"
#: The presigned-URL parameters that carry the signature itself, not the operation.
PRESIGN_PARAMS = frozenset({"OSSAccessKeyId", "Expires", "Signature", "security-token"})

#: The only query parameters V1 signs (the sub-resources of the canonical resource): the names of
#: ``oss2.auth.Auth._subresource_key_set``
#: (oss2 2.19.1). Anything else may be added to a V1 URL without breaking its signature.
SUBRESOURCES = frozenset({
    "response-content-type", "response-content-language", "response-cache-control",
    "logging", "response-content-encoding", "acl", "uploadId", "uploads", "partNumber",
    "group", "link", "delete", "website", "location", "objectInfo", "objectMeta",
    "response-expires", "response-content-disposition", "cors", "lifecycle", "restore", "qos",
    "referer", "stat", "bucketInfo", "append", "position", "security-token", "live", "comp",
    "status", "vod", "startTime", "endTime", "x-oss-process", "symlink", "callback",
    "callback-var", "tagging", "encryption", "versions", "versioning", "versionId", "policy",
    "requestPayment", "x-oss-traffic-limit", "qosInfo", "asyncFetch", "x-oss-request-payer",
    "sequential", "inventory", "inventoryId", "continuation-token", "worm", "wormId",
    "wormExtend", "replication", "replicationLocation", "replicationProgress",
    "transferAcceleration", "cname", "metaQuery", "x-oss-ac-source-ip",
    "x-oss-ac-subnet-mask", "x-oss-ac-vpc-id", "x-oss-ac-forward-allow", "resourceGroup",
    "style", "styleName", "x-oss-async-process", "regionList",
    "x-oss-write-get-object-response", "bucketArchiveDirectRead", "httpsConfig",
    "redundancyTransition", "x-oss-target-redundancy-type", "x-oss-redundancy-transition-taskid",
    "accessPoint", "accessPointPolicy", "publicAccessBlock", "x-oss-access-point-name",
    "requesterQosInfo", "qosRequester", "resourcePoolInfo", "resourcePool",
    "resourcePoolBuckets",
})

_PROCESS = "x-oss-process"
_DIGITS = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class V1Claim:
    """What a V1-signed request says about itself, before anything is verified.

    ``date`` is the exact text of the string to sign's Date line: the ``x-oss-date`` or
    ``Date`` header, or the presigned ``Expires``. ``signed_at`` is set for the header form,
    ``expires_at`` (absolute Unix seconds) for the presigned form.
    """

    scheme: str  # "v1" or "v1-presigned"
    access_key_id: str
    signature: str
    date: str
    signed_at: float | None
    expires_at: float | None

    mismatch_ec = MISMATCH_EC
    #: V1 signs no header beyond ``Content-MD5``, ``Content-Type``, the date and ``x-oss-*``.
    additional_headers: tuple[str, ...] = ()

    @property
    def auth_params(self) -> frozenset[str]:
        """Query parameters that belong to the signature, not to the operation."""
        return PRESIGN_PARAMS if self.scheme == "v1-presigned" else frozenset()

    def strings_to_sign(
        self,
        method: str,
        headers: Mapping[str, str],
        params: Sequence[QueryParam],
        address: Address,
    ) -> Iterator[str]:
        """Every string to sign the client may have used for ``address``, most likely first.

        With ``x-oss-process`` present the second form leaves it out of the resource:
        ``oss2`` and ``ali-oss`` sign it, ``alibabacloud-oss-v2`` does not (its ``v1.py``
        leaves it out of the sub-resources); OSS accepts either, so the server does too.
        """
        head = "\n".join([
            method.upper(),
            headers.get("content-md5", "").strip(),
            headers.get("content-type", "").strip(),
            self.date,
            canonical_oss_headers(headers),
        ])
        yield head + canonical_resource(address, params)
        if any(p.name == _PROCESS for p in params):
            yield head + canonical_resource(address, [p for p in params if p.name != _PROCESS])

    def sign(self, secret: str, string_to_sign: str) -> str:
        """Base64 HMAC-SHA1 of ``string_to_sign`` under the secret."""
        digest = hmac.new(secret.encode("utf-8"), string_to_sign.encode("utf-8"), hashlib.sha1)
        return base64.b64encode(digest.digest()).decode("ascii")


def claim_from_headers(headers: Mapping[str, str]) -> V1Claim:
    """Parse ``Authorization: OSS <AccessKeyId>:<Signature>``, split at the last ``:``.

    The Date line is ``x-oss-date`` when present (``ali-oss`` sends only that, in RFC 1123
    form), otherwise ``Date``; it must parse, because the skew check needs it.
    """
    algorithm, _, credential = headers.get("authorization", "").strip().partition(" ")
    access_key_id, _, signature = credential.strip().rpartition(":")
    if algorithm != "OSS" or not access_key_id or not signature:
        raise _malformed("the Authorization header must be OSS <AccessKeyId>:<Signature>")
    date = headers.get("x-oss-date", "").strip() or headers.get("date", "").strip()
    return V1Claim("v1", access_key_id, signature, date, _parse_http_date(date), None)


def claim_from_query(params: Sequence[QueryParam]) -> V1Claim:
    """Parse ``OSSAccessKeyId``, ``Expires`` (absolute Unix seconds) and ``Signature``."""
    access_key_id, expires, signature = (
        _single(params, name) for name in ("OSSAccessKeyId", "Expires", "Signature")
    )
    if not _DIGITS.fullmatch(expires):
        raise _malformed("Expires must be absolute Unix seconds")
    return V1Claim("v1-presigned", access_key_id, signature, expires, None, float(expires))


def canonical_oss_headers(headers: Mapping[str, str]) -> str:
    """``name:value\\n`` for every ``x-oss-*`` header, lower-cased, trimmed, sorted."""
    signed: dict[str, list[str]] = {}
    for name, value in headers.items():
        if name.lower().startswith("x-oss-"):
            signed.setdefault(name.lower(), []).append(value.strip())
    return "".join(f"{name}:{','.join(signed[name])}\n" for name in sorted(signed))


def canonical_resource(address: Address, params: Iterable[QueryParam]) -> str:
    """``/bucket/key`` with the *decoded, unencoded* key, then ``?`` and the whitelisted
    sub-resources sorted by name, ``name=value`` or bare ``name`` when empty."""
    if address.bucket is None:
        resource = "/"
    else:
        resource = f"/{address.bucket}/{address.key or ''}"
    subresources = sorted((p for p in params if p.name in SUBRESOURCES), key=lambda p: p.name)
    if not subresources:
        return resource
    return resource + "?" + "&".join(
        f"{p.name}={p.value}" if p.value else p.name for p in subresources
    )


def _single(params: Sequence[QueryParam], name: str) -> str:
    values = [p.value for p in params if p.name == name]
    if len(values) != 1 or not values[0]:
        raise _malformed(f"the presigned URL needs exactly one non-empty {name} parameter")
    return values[0]


def _malformed(why: str) -> OSSError:
    return OSSError.invalid_argument(f"Malformed OSS signature: {why}.")


def _parse_http_date(text: str) -> float:
    """RFC 1123 date as Unix seconds; ``403 AccessDenied`` when missing or unparsable."""
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        moment = None
    if moment is None or moment.tzinfo is None:
        raise OSSError(403, "AccessDenied", "OSS authentication requires a valid Date.")
    return moment.timestamp()
