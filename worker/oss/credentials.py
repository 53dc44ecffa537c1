"""RRSA (RAM Roles for Service Accounts) credentials for ``picscore run`` on Alibaba Cloud ACK.

Why this exists: a static AccessKey pair in a Kubernetes Secret never expires and is easy to
copy. On ACK with RRSA, the pod identity webhook gives the pod a short-lived OIDC token file
and three environment variables (:data:`RRSA_ENV`); the worker trades the token for STS
credentials (``AssumeRoleWithOIDC``), which the ``alibabacloud-credentials`` package refreshes
before they expire. That package is an optional extra (``pip install 'picscore[rrsa]'``, the
container image has it): static keys need nothing beyond the OSS SDK.

Precedence (:func:`worker.settings.credentials_from_env`): ``OSS_ACCESS_KEY_ID`` /
``OSS_ACCESS_KEY_SECRET`` when both are set; otherwise RRSA when any of its variables is set.

Secrets: the STS key, secret and token exist only inside the SDK's signer; nothing here logs or
stores them. :class:`RrsaCredentials` has no secret to hide (``secrets == ()``) and its ``repr``
shows the role ARN and token path only. An STS failure is re-raised as :class:`RrsaFetchError`
carrying the HTTP status and STS error code alone, because the library's own messages can
echo the request, and the request carries the OIDC token.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

__all__ = [
    "ROLE_ARN_ENV", "OIDC_PROVIDER_ARN_ENV", "OIDC_TOKEN_FILE_ENV", "RRSA_ENV", "STS_REGION_ENV",
    "STS_ENDPOINT_ENV", "VPC_ENDPOINT_ENV", "SESSION_NAME", "RrsaError", "RrsaFetchError", "RrsaCredentials",
    "rrsa_requested", "rrsa_from_env", "sdk_provider_from", "silence_library_logging",
]

ROLE_ARN_ENV = "ALIBABA_CLOUD_ROLE_ARN"
OIDC_PROVIDER_ARN_ENV = "ALIBABA_CLOUD_OIDC_PROVIDER_ARN"
OIDC_TOKEN_FILE_ENV = "ALIBABA_CLOUD_OIDC_TOKEN_FILE"
#: What ACK's pod identity webhook injects; all three are needed.
RRSA_ENV = (ROLE_ARN_ENV, OIDC_PROVIDER_ARN_ENV, OIDC_TOKEN_FILE_ENV)
#: Optional: STS in the cluster's region, over the VPC endpoint (no Internet egress), or a fixed endpoint.
STS_REGION_ENV = "ALIBABA_CLOUD_STS_REGION"
VPC_ENDPOINT_ENV = "ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED"
STS_ENDPOINT_ENV = "ALIBABA_CLOUD_STS_ENDPOINT"
#: RoleSessionName: shows up in ActionTrail as who made the calls.
SESSION_NAME = "picscore"
_EXTRA_HINT = "install the RRSA extra: pip install 'picscore[rrsa]' (the container image has it)"
#: alibabacloud-credentials logs through this logger, with its own stderr handler; its failure
#: messages include the STS request URL, and that URL carries the OIDC token.
_LIBRARY_LOGGER = "credentials"
_STS_CODE = re.compile(r'"Code"\s*:\s*"([A-Za-z0-9.]+)"')
_HTTP_CODE = re.compile(r"http_code:\s*(\d{3})")


class RrsaError(ValueError):
    """RRSA is asked for but cannot work: a variable is missing, the token file is unreadable or
    the extra is not installed. Configuration, not a transient failure: retrying will not help."""


class RrsaFetchError(RuntimeError):
    """STS refused or could not be reached. The message has no token and no credentials."""


def rrsa_requested(environ: Mapping[str, str]) -> bool:
    """Whether any RRSA variable is set (non-blank): then a missing one is an error, not a fallback."""
    return any(environ.get(name, "").strip() for name in RRSA_ENV)


@dataclass(frozen=True)
class RrsaCredentials:
    """Where to get STS credentials from; quacks like :class:`worker.settings.Credentials` for the
    run's settings (``access_key_id`` for the start-of-run log line, ``secrets`` for the log
    scrubber) and gives the OSS SDK a refreshing provider through :meth:`sdk_provider`."""

    role_arn: str
    oidc_provider_arn: str
    oidc_token_file: str
    sts_region: str | None = None
    sts_endpoint: str | None = None
    vpc_endpoint: bool = False

    #: Shown (first characters) in the run's settings log line instead of a key id.
    access_key_id = "rrsa"
    access_key_secret = ""
    session_token = None

    @property
    def secrets(self) -> tuple[str, ...]:
        """Nothing to scrub: the STS values never leave the SDK's signer."""
        return ()

    def sdk_provider(self) -> Any:
        """The ``alibabacloud_oss_v2`` credentials provider, built once per value and shared by
        every client of the run (so one STS session serves the scoring client and the upload)."""
        return self._provider

    @cached_property
    def _provider(self) -> Any:
        try:
            from alibabacloud_credentials.provider.oidc import OIDCRoleArnCredentialsProvider
        except ImportError:
            raise RrsaError(f"RRSA credentials need the alibabacloud-credentials package: {_EXTRA_HINT}") from None
        silence_library_logging()
        source = OIDCRoleArnCredentialsProvider(
            role_arn=self.role_arn, oidc_provider_arn=self.oidc_provider_arn,
            oidc_token_file_path=self.oidc_token_file, role_session_name=SESSION_NAME,
            sts_region_id=self.sts_region, sts_endpoint=self.sts_endpoint, enable_vpc=self.vpc_endpoint)
        return sdk_provider_from(source)


def silence_library_logging() -> None:
    """Mute alibabacloud-credentials' own logger (call after importing it: the import attaches a
    stderr handler). Its refresh-failure warnings print the exception, whose text holds the STS
    request URL with the OIDC token; picscore reports failures itself, via :class:`RrsaFetchError`."""
    logger = logging.getLogger(_LIBRARY_LOGGER)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    logger.addHandler(logging.NullHandler())
    logger.propagate = False
    logger.setLevel(logging.CRITICAL + 1)


def sdk_provider_from(source: Any) -> Any:
    """Adapt an ``alibabacloud_credentials`` provider (``get_credentials()`` → an object with
    ``get_access_key_id()``…) to the OSS SDK's ``CredentialsProvider``."""
    import alibabacloud_oss_v2 as oss

    class _Adapter(oss.credentials.CredentialsProvider):
        """Called by the SDK's signer for every request; the source caches and refreshes."""

        def __init__(self) -> None:
            self.source = source

        def get_credentials(self) -> oss.credentials.Credentials:
            try:
                fetched = self.source.get_credentials()
            except Exception as exc:
                raise RrsaFetchError(_describe_failure(exc)) from None
            return oss.credentials.Credentials(fetched.get_access_key_id(), fetched.get_access_key_secret(),
                                               fetched.get_security_token())

        def __repr__(self) -> str:
            return f"<RRSA credentials provider via {type(self.source).__name__}>"

    return _Adapter()


def _describe_failure(exc: BaseException) -> str:
    """Only what is safe to log: the exception type, STS's HTTP status and error code."""
    text = str(exc)
    details = [f"{type(exc).__name__}"]
    if status := _HTTP_CODE.search(text):
        details.append(f"HTTP {status[1]}")
    if code := _STS_CODE.search(text):
        details.append(f"STS code {code[1]}")
    return f"RRSA: getting STS credentials (AssumeRoleWithOIDC) failed: {', '.join(details)}"


def rrsa_from_env(environ: Mapping[str, str]) -> RrsaCredentials:
    """Read the RRSA variables; check they are complete, the token file is readable and the
    extra is installed — at start-up, so a broken set-up stops before any request (exit 2)."""
    values = {name: environ.get(name, "").strip() for name in RRSA_ENV}
    missing = [name for name, value in values.items() if not value]
    if missing:
        raise RrsaError(f"RRSA is partly configured: {', '.join(missing)} must be set too (ACK's pod identity "
                        "webhook sets all three when the ServiceAccount has the "
                        "pod-identity.alibabacloud.com/role-name annotation and the namespace is enabled)")
    token_file = values[OIDC_TOKEN_FILE_ENV]
    try:
        with open(token_file, encoding="utf-8") as handle:
            readable = bool(handle.read(1).strip())
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise RrsaError(f"cannot read the OIDC token file {token_file} ({OIDC_TOKEN_FILE_ENV}): {reason}") from None
    if not readable:
        raise RrsaError(f"the OIDC token file {token_file} ({OIDC_TOKEN_FILE_ENV}) is empty")
    try:
        import alibabacloud_credentials  # noqa: F401
    except ImportError:
        raise RrsaError(f"RRSA variables are set but the alibabacloud-credentials package is missing: "
                        f"{_EXTRA_HINT}") from None
    vpc = environ.get(VPC_ENDPOINT_ENV, "").strip().lower() == "true"
    return RrsaCredentials(role_arn=values[ROLE_ARN_ENV], oidc_provider_arn=values[OIDC_PROVIDER_ARN_ENV],
                           oidc_token_file=os.fspath(token_file),
                           sts_region=environ.get(STS_REGION_ENV, "").strip() or None,
                           sts_endpoint=environ.get(STS_ENDPOINT_ENV, "").strip() or None, vpc_endpoint=vpc)
