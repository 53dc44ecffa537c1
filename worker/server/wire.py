"""The part of an HTTP request that authentication and addressing look at.

Kept free of aiohttp so the signature verifier can be driven straight from the verbatim SDK
captures in ``tests/`` (test vectors) as well as from live requests.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple
from urllib.parse import unquote, unquote_plus

from .errors import OSSError

__all__ = ["QueryParam", "WireRequest", "decode_path", "parse_query", "parse_query_params"]


@dataclass(frozen=True)
class WireRequest:
    """A request exactly as it arrived on the socket.

    ``raw_path`` and ``raw_query`` are still percent-encoded. Never reuse them for signing: the
    SDKs percent-encode differently, so the verifier decodes and re-encodes canonically.
    ``headers`` must be case-insensitive (``multidict.CIMultiDict`` or equivalent) and may hold
    repeated names.
    """

    method: str
    raw_path: str
    raw_query: str
    headers: Mapping[str, str]

    @property
    def host(self) -> str:
        """The Host header without port, lower-cased ('' when absent)."""
        host = self.headers.get("host", "")
        if host.startswith("["):  # [::1]:9000
            return host[: host.find("]") + 1].lower()
        return host.rsplit(":", 1)[0].lower() if ":" in host else host.lower()


class QueryParam(NamedTuple):
    """One decoded query parameter, remembering whether the wire form carried an ``=``.

    ``has_equals`` separates ``?acl`` from ``?acl=``. Both decode to an empty value, and OSS V4
    signs both as the bare name, except that ``ali-oss`` signs a generic empty parameter as
    ``name=``. The verifier needs the flag to retry that form.
    """

    name: str
    value: str
    has_equals: bool


def parse_query_params(raw_query: str) -> list[QueryParam]:
    """Form-decode a raw query string, in wire order.

    Split on ``&``, then at the first ``=``. ``+`` becomes a space before ``%XX`` is decoded,
    because ``oss2`` (through ``requests``) sends spaces as ``+`` while every client sends a
    literal ``+`` as ``%2B``. Empty segments (``a=1&&b=2``) carry nothing and are skipped.
    """
    params = []
    for part in raw_query.split("&"):
        if not part:
            continue
        name, sep, value = part.partition("=")
        params.append(QueryParam(_form_decode(name), _form_decode(value), bool(sep)))
    return params


def parse_query(raw_query: str) -> list[tuple[str, str]]:
    """The decoded ``(name, value)`` pairs of a raw query string, in wire order."""
    return [(p.name, p.value) for p in parse_query_params(raw_query)]


_ABSOLUTE_FORM = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?]*")


def decode_path(raw_path: str) -> str:
    """Percent-decode the request-target path exactly once, as UTF-8.

    ``+`` stays a ``+``: form decoding applies to the query only. An absolute-form target
    (``GET http://host/key``, sent when a client uses us as its HTTP proxy) loses its
    ``scheme://authority``, and anything from ``?`` on is dropped, so ``aiohttp``'s
    ``raw_path`` (which keeps both) can be passed straight in.
    """
    path = _ABSOLUTE_FORM.sub("", raw_path, count=1).partition("?")[0] or "/"
    try:
        return _text(unquote(path, encoding="utf-8", errors="strict"))
    except UnicodeError:
        raise OSSError.invalid_argument("The request path is not valid UTF-8 once decoded.") from None


def _form_decode(text: str) -> str:
    try:
        return _text(unquote_plus(text, encoding="utf-8", errors="strict"))
    except UnicodeError:
        raise OSSError.invalid_argument("A query parameter is not valid UTF-8 once decoded.") from None


def _text(decoded: str) -> str:
    """``decoded`` if it is encodable text; raw bytes that were not UTF-8 reach us as lone
    surrogates (``surrogateescape``), which ``unquote`` passes through untouched."""
    decoded.encode("utf-8")
    return decoded
