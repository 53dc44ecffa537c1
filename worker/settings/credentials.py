"""OSS credentials, read from the environment only.

Files and flags end up in Git, ConfigMaps and ``ps`` output, so the access key comes only from
``OSS_ACCESS_KEY_ID`` / ``OSS_ACCESS_KEY_SECRET`` / ``OSS_SESSION_TOKEN``, or, on Alibaba Cloud
ACK with neither key variable set, from RRSA (:mod:`worker.oss.credentials`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError
from ..oss.credentials import RrsaCredentials, RrsaError, rrsa_from_env, rrsa_requested

__all__ = ["Credentials", "credentials_from_env", "KEY_ID_ENV", "SECRET_ENV", "TOKEN_ENV"]

KEY_ID_ENV, SECRET_ENV, TOKEN_ENV = "OSS_ACCESS_KEY_ID", "OSS_ACCESS_KEY_SECRET", "OSS_SESSION_TOKEN"


class Credentials:
    """OSS access key (and STS token), read from the environment only. ``repr``/``str`` show
    the first characters of the key id and never the secret or token. Deliberately not a
    dataclass, so ``dataclasses.asdict(run_config)`` cannot copy the secret into a plain dict."""

    __slots__ = ("access_key_id", "access_key_secret", "session_token")
    access_key_id: str
    access_key_secret: str
    session_token: str | None

    def __init__(self, access_key_id: str, access_key_secret: str, session_token: str | None = None) -> None:
        object.__setattr__(self, "access_key_id", access_key_id)
        object.__setattr__(self, "access_key_secret", access_key_secret)
        object.__setattr__(self, "session_token", session_token)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Credentials are immutable")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Credentials):
            return NotImplemented
        return (self.access_key_id, self.access_key_secret, self.session_token) == (
            other.access_key_id, other.access_key_secret, other.session_token)

    def __hash__(self) -> int:
        return hash((self.access_key_id, self.access_key_secret, self.session_token))

    def __repr__(self) -> str:
        token = "None" if self.session_token is None else "'***'"
        return (f"Credentials(access_key_id='{self.access_key_id[:4]}***', access_key_secret='***', "
                f"session_token={token})")

    __str__ = __repr__

    def __copy__(self) -> Credentials:
        return self  # immutable

    def __deepcopy__(self, memo: dict[int, Any]) -> Credentials:
        return self  # immutable; also lets dataclasses.asdict(run_config) work

    def __reduce__(self) -> tuple[Any, ...]:
        return (Credentials, (self.access_key_id, self.access_key_secret, self.session_token))

    @property
    def secrets(self) -> tuple[str, ...]:
        """The values a log scrubber must hide (``configure_logging(secrets=...)``)."""
        return tuple(s for s in (self.access_key_secret, self.session_token) if s)


def credentials_from_env(environ: Mapping[str, str]) -> Credentials | RrsaCredentials:
    """Read the access key from the environment. Surrounding whitespace is stripped: Kubernetes
    Secrets made with ``--from-file`` often keep a trailing newline, which breaks signatures.
    With neither variable set, ACK's RRSA variables (``ALIBABA_CLOUD_ROLE_ARN``…) are used instead."""
    key_id = environ.get(KEY_ID_ENV, "").strip()
    secret = environ.get(SECRET_ENV, "").strip()
    token = environ.get(TOKEN_ENV, "").strip() or None
    missing = [name for name, value in ((KEY_ID_ENV, key_id), (SECRET_ENV, secret)) if not value]
    if len(missing) == 2 and rrsa_requested(environ):  # no static key: ACK's RRSA (worker/oss/credentials.py)
        try:
            return rrsa_from_env(environ)
        except RrsaError as exc:
            raise ConfigError("credentials", str(exc), source="the environment") from None
    if missing:
        raise ConfigError("credentials", f"{' and '.join(missing)} must be set in the environment "
                          "(credentials are never read from the config file or flags)",
                          source="the environment")
    return Credentials(key_id, secret, token)
