"""Which access keys the embedded server accepts.

From ``--credentials FILE`` (one ``ACCESS_KEY_ID:SECRET`` per line, ``#`` comments) or, when no
file is given, from ``OSS_ACCESS_KEY_ID`` / ``OSS_ACCESS_KEY_SECRET`` — the variables the
official SDKs read, so one exported pair serves both server and client.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

__all__ = ["CredentialsError", "KeyTable", "load_credentials"]

_AK_RE = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


class CredentialsError(ValueError):
    """Bad or missing credentials configuration; the message never contains a secret."""


class KeyTable(Mapping[str, str]):
    """AccessKeyId → secret. Its repr names key ids only, so it is safe to log by accident."""

    def __init__(self, pairs: Mapping[str, str]) -> None:
        self._pairs = dict(pairs)

    def __getitem__(self, key: str) -> str:
        return self._pairs[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._pairs)

    def __len__(self) -> int:
        return len(self._pairs)

    def __repr__(self) -> str:
        return f"KeyTable(ids={sorted(self._pairs)})"


def _parse_file(path: Path) -> dict[str, str]:
    try:  # utf-8-sig: editors on Windows start the file with a byte-order mark
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except OSError as exc:
        raise CredentialsError(f"cannot read credentials file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:  # its own message would quote a byte of the (secret) file
        raise CredentialsError(f"cannot read credentials file {path}: it is not UTF-8 text") from None
    pairs: dict[str, str] = {}
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key_id, sep, secret = line.partition(":")
        key_id, secret = key_id.strip(), secret.strip()
        if not sep or not _AK_RE.match(key_id) or not secret:
            raise CredentialsError(f"{path}:{number}: expected ACCESS_KEY_ID:SECRET")
        pairs[key_id] = secret
    if not pairs:
        raise CredentialsError(f"{path}: no ACCESS_KEY_ID:SECRET lines")
    return pairs


def load_credentials(path: Path | None, environ: Mapping[str, str] = os.environ) -> KeyTable:
    """The accepted keys; raises :class:`CredentialsError` with a message fit to print."""
    if path is not None:
        return KeyTable(_parse_file(path))
    key_id = environ.get("OSS_ACCESS_KEY_ID", "").strip()
    secret = environ.get("OSS_ACCESS_KEY_SECRET", "").strip()
    if not key_id or not secret:
        raise CredentialsError(
            "no credentials: pass --credentials FILE (lines ACCESS_KEY_ID:SECRET) or export "
            "OSS_ACCESS_KEY_ID and OSS_ACCESS_KEY_SECRET")
    if not _AK_RE.match(key_id):
        raise CredentialsError("OSS_ACCESS_KEY_ID contains characters an access key id cannot have")
    return KeyTable({key_id: secret})
