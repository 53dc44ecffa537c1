"""Secret redaction: the one place that knows what a credential looks like in text.

Used by the log processor chain and by anything that echoes URLs, headers or errors back to a
person. Presigned URLs carry their signature and credential in the query string, and
``Authorization`` headers carry signatures, so both are scrubbed wherever they appear.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

__all__ = ["REDACTED", "redact_text", "redact_mapping", "SecretScrubber"]

REDACTED = "[REDACTED]"

_SENSITIVE_NAMES = frozenset({
    "authorization", "signature", "x-oss-signature", "x-oss-credential", "ossaccesskeyid",
    "security-token", "x-oss-security-token", "x-amz-security-token", "secret", "access_key_secret",
    "password", "token", "session_token", "stringtosign", "signatureprovided",
})
#: Any name containing one of these is sensitive too (``OSS_ACCESS_KEY_SECRET``, ``db_password``).
_SENSITIVE_PARTS = ("secret", "password")
_QUERY_SECRET = re.compile(
    r"(?i)\b(signature|x-oss-signature|x-oss-credential|ossaccesskeyid|security-token|"
    r"x-oss-security-token|x-amz-signature|x-amz-credential|x-amz-security-token)=([^&\s\"'<>]*)")
_V4_PARAM = r"[A-Za-z][\w-]*=[^\s\"',]*"
_AUTH_HEADER = re.compile(
    # V4: "OSS4-HMAC-SHA256 Credential=…, AdditionalHeaders=…, Signature=…"
    rf"(?i)\b(OSS4-HMAC-SHA256|AWS4-HMAC-SHA256)\s+{_V4_PARAM}(?:\s*,\s*{_V4_PARAM})*"
    # V1 (and S3 V2): "OSS AccessKeyId:Signature"
    r"|\b(OSS|AWS)\s+[^\s\"':]+:[^\s\"',]+")


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Scrub signed query parameters, Authorization values and any known secret from ``text``."""
    text = _QUERY_SECRET.sub(lambda m: f"{m[1]}={REDACTED}", text)
    text = _AUTH_HEADER.sub(lambda m: f"{m[1] or m[2]} {REDACTED}", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


def redact_mapping(values: Mapping[str, Any], secrets: Iterable[str] = ()) -> dict[str, Any]:
    """A copy of ``values`` with sensitive names masked and string values scrubbed."""
    secrets = tuple(secrets)
    return {name: REDACTED if _is_sensitive(name) else _redact_value(value, secrets)
            for name, value in values.items()}


def _is_sensitive(name: object) -> bool:
    if not isinstance(name, str):
        return False
    lowered = name.lower()
    return lowered in _SENSITIVE_NAMES or any(part in lowered for part in _SENSITIVE_PARTS)


def _redact_value(value: Any, secrets: tuple[str, ...]) -> Any:
    """Strings scrubbed; mappings, lists and tuples (e.g. header pairs) scrubbed all the way down."""
    if isinstance(value, str):
        return redact_text(value, secrets)
    if isinstance(value, Mapping):
        return redact_mapping(value, secrets)
    if isinstance(value, tuple) and len(value) == 2 and _is_sensitive(value[0]):
        return (value[0], REDACTED)  # a ("Authorization", "…") header pair
    if isinstance(value, list):
        return [_redact_value(item, secrets) for item in value]
    if isinstance(value, tuple):
        return tuple(_redact_value(item, secrets) for item in value)
    return value


class SecretScrubber:
    """A structlog processor: every event dict passes through :func:`redact_mapping`."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = tuple(s for s in secrets if s)

    def __call__(self, logger: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        return redact_mapping(event, self.secrets)
