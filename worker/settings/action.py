"""Settings shared by the commands that act on results (``picscore covers``, ``picscore filter``).

They reach the bucket with the same client, retries, rate limit, checkpoint, metrics, logs and
exit codes as ``picscore run``, so those settings are ``run``'s own fields (:mod:`.fields`),
read from the same layers (YAML file < ``PICSCORE_*`` < flags) with the same parsers and
messages. What is particular to each command (its inputs, selection, action) are plain flags,
parsed in :mod:`worker.commands`.

The same YAML file and ``PICSCORE_*`` environment as ``picscore run`` work here: ``run``'s own
keys (``bucket``, ``prefix``…) are ignored, any other unknown key is still refused.

``endpoint``, ``region`` and the access key are needed only when the command will call OSS:
``picscore filter --action report`` over local files works without an account.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..oss.credentials import RrsaCredentials
from .credentials import Credentials, credentials_from_env
from .fields import DERIVED, REQUIRED, RUN_FIELDS, RUN_FIELDS_BY_NAME, Field, add_arguments
from .layers import Raw, config_path, parse_fields, read_env, read_file, read_flags, source_of

__all__ = ["ActionSettings", "ACTION_FIELDS", "REPORT_SETTINGS", "add_action_arguments", "load_action_settings"]

_SHARED = (
    "endpoint", "region", "concurrency", "rate_limit", "retry_attempts", "retry_total_s", "retry_base_s",
    "retry_max_backoff_s", "checkpoint", "resume", "restart", "dry_run", "time_budget_s", "failure_threshold",
    "metrics_port", "pushgateway", "log_level", "log_format", "progress", "flush_rows", "flush_seconds",
    "grace_s", "event_loop",
)
_HELP = {
    "checkpoint": "checkpoint database: resume position and action journal (default <report>.checkpoint.sqlite)",
    "dry_run": "plan and print every action that would be taken; touch nothing",
    "failure_threshold": "fraction of actions allowed to fail before the exit code is 1 (default 0)",
}


def _action_field(name: str) -> Field:
    """``run``'s field, made optional where only some actions need it, with help that fits here."""
    spec = RUN_FIELDS_BY_NAME[name]
    if spec.default is REQUIRED:
        spec = dataclasses.replace(spec, default=None)
    if name in _HELP:
        spec = dataclasses.replace(spec, help=_HELP[name])
    return spec


ACTION_FIELDS: tuple[Field, ...] = tuple(_action_field(name) for name in _SHARED)
#: What ``picscore report`` takes of them: it only reads (inputs, thumbnails) and writes one page.
REPORT_SETTINGS: tuple[str, ...] = (
    "endpoint", "region", "rate_limit", "retry_attempts", "retry_total_s", "retry_base_s", "retry_max_backoff_s",
    "log_level", "log_format", "event_loop",
)


@dataclass(frozen=True)
class ActionSettings:
    """The connection and engine settings of an acting command. Build with :func:`load_action_settings`."""

    endpoint: str | None = None
    region: str | None = None
    credentials: Credentials | RrsaCredentials | None = field(default=None, repr=False)
    concurrency: int = 16
    rate_limit: float | None = None
    retry_attempts: int = 6
    retry_total_s: float = 300.0
    retry_base_s: float = 0.2
    retry_max_backoff_s: float = 20.0
    checkpoint: Path | None = None
    resume: bool = False
    restart: bool = False
    dry_run: bool = False
    time_budget_s: float | None = None
    failure_threshold: float = 0.0
    metrics_port: int | None = None
    pushgateway: str | None = None
    log_level: str = "info"
    log_format: str = "auto"
    progress: str = "auto"
    flush_rows: int = 5000
    flush_seconds: float = 30.0
    grace_s: float = 30.0
    event_loop: str = "auto"
    warnings: tuple[str, ...] = field(default=(), compare=False)
    #: Why the environment's credentials could not be read, reported only where they are needed.
    credentials_problem: ConfigError | None = field(default=None, compare=False, repr=False)

    @property
    def secrets(self) -> tuple[str, ...]:
        return self.credentials.secrets if self.credentials is not None else ()

    def require_bucket_access(self, why: str) -> ActionSettings:
        """These settings, checked to reach OSS (``why`` says what for, in the message)."""
        for name in ("endpoint", "region"):
            if getattr(self, name) is None:
                spec = RUN_FIELDS_BY_NAME[name]
                raise ConfigError(name, f"is required to {why}: set it in the config file, {spec.env} or {spec.flag}")
        if self.credentials is None:
            problem = self.credentials_problem
            detail = (str(problem).removeprefix("credentials: ") if problem is not None
                      else "OSS_ACCESS_KEY_ID and OSS_ACCESS_KEY_SECRET must be set")
            raise ConfigError("credentials", f"{detail} (needed to {why})", source="the environment")
        return self


def _fields(names: tuple[str, ...]) -> tuple[Field, ...]:
    return tuple(spec for spec in ACTION_FIELDS if spec.name in names)


def add_action_arguments(parser: argparse.ArgumentParser, names: tuple[str, ...] = _SHARED) -> None:
    """``--config`` and one flag per shared setting (of ``names``)."""
    add_arguments(parser, _fields(names))


def load_action_settings(args: argparse.Namespace, environ: Mapping[str, str], command: str,
                         names: tuple[str, ...] = _SHARED) -> ActionSettings:
    """Merge file < environment < flags and validate. Credentials are read when present; an
    acting command that needs them checks with :meth:`ActionSettings.require_bucket_access`.
    ``names``: the settings this command takes; the others keep their defaults."""
    fields = _fields(names)

    def _shared(layer: Mapping[str, Raw]) -> dict[str, Raw]:
        return {name: raw for name, raw in layer.items() if name in names}

    path = config_path(args, environ)
    # The file and environment of `picscore run` serve here too: its own keys (bucket, prefix…)
    # are known and ignored, anything else is still an error (file) or a warning (environment).
    file_layer = _shared(read_file(path, RUN_FIELDS)) if path else {}
    env_layer, warnings = read_env(environ, RUN_FIELDS, command)
    merged = {**file_layer, **_shared(env_layer), **read_flags(args, fields)}
    values: dict[str, Any] = parse_fields(merged, fields)
    if values.get("resume") and values.get("restart"):
        raise ConfigError("restart", f"contradicts resume (from {source_of(merged, 'resume')}): --resume continues "
                          "an unfinished run, --restart discards it; choose one", source=source_of(merged, "restart"))
    if values.get("retry_max_backoff_s", 20.0) < values.get("retry_base_s", 0.2):
        raise ConfigError("retry_max_backoff_s", f"must be >= retry_base_s {values['retry_base_s']:g}s",
                          source=source_of(merged, "retry_max_backoff_s"))
    if "checkpoint" in values:
        values["checkpoint"] = None if values["checkpoint"] is DERIVED else Path(values["checkpoint"])
    credentials, problem = None, None
    try:
        credentials = credentials_from_env(environ)
    except ConfigError as exc:
        problem = exc  # only an error where the bucket is needed (require_bucket_access)
    return ActionSettings(**values, credentials=credentials, warnings=tuple(warnings), credentials_problem=problem)
