"""The part of an HTTP request that authentication and addressing look at.

Kept free of aiohttp so the signature verifier can be driven straight from the verbatim SDK
captures in ``tests/`` (test vectors) as well as from live requests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

__all__ = ["WireRequest"]


@dataclass(frozen=True)
class WireRequest:
    """A request exactly as it arrived on the socket.

    ``raw_path`` and ``raw_query`` are still percent-encoded (never reuse them for signing:
    SPEC.md §2.3 — decode, then re-encode). ``headers`` must be case-insensitive
    (``multidict.CIMultiDict`` or equivalent) and may hold repeated names.
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
