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
    "security-token", "x-oss-security-token", "secret", "access_key_secret", "password",
    "token", "session_token", "stringtosign", "signatureprovided",
})
_QUERY_SECRET = re.compile(
    r"(?i)\b(signature|x-oss-signature|x-oss-credential|ossaccesskeyid|security-token|"
    r"x-oss-security-token|x-amz-signature|x-amz-credential)=([^&\s\"'<>]*)")
_AUTH_HEADER = re.compile(r"(?i)\b(OSS4-HMAC-SHA256|OSS|AWS4-HMAC-SHA256)\s+[^\s\"']+(?:[ ,]+[^\s\"']+)*")


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Scrub signed query parameters, Authorization values and any known secret from ``text``."""
    text = _QUERY_SECRET.sub(lambda m: f"{m[1]}={REDACTED}", text)
    text = _AUTH_HEADER.sub(lambda m: f"{m[1]} {REDACTED}", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


def redact_mapping(values: Mapping[str, Any], secrets: Iterable[str] = ()) -> dict[str, Any]:
    """A copy of ``values`` with sensitive names masked and string values scrubbed."""
    secrets = tuple(secrets)
    out: dict[str, Any] = {}
    for name, value in values.items():
        if name.lower() in _SENSITIVE_NAMES:
            out[name] = REDACTED
        elif isinstance(value, str):
            out[name] = redact_text(value, secrets)
        elif isinstance(value, Mapping):
            out[name] = redact_mapping(value, secrets)
        else:
            out[name] = value
    return out


class SecretScrubber:
    """A structlog processor: every event dict passes through :func:`redact_mapping`."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = tuple(s for s in secrets if s)

    def __call__(self, logger: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        return redact_mapping(event, self.secrets)
