"""``picscore run``'s settings: one typed, validated, immutable :class:`RunConfig`.

Built by :func:`load_run_config` from the layers (:mod:`.layers`) and the field table
(:mod:`.fields`), then resolved across fields:

* Sharding: ``shard: i/N`` (any layer) wins. Otherwise, in a Kubernetes Indexed Job,
  ``JOB_COMPLETION_INDEX`` gives i and ``shard_count`` (``PICSCORE_SHARD_COUNT``) gives N; the
  index without a count is an error naming both, as is a count > 1 without an index: silently
  auditing 1/N of a bucket, or all of it N times, is worse than not starting.
* Sharded runs (N > 1) get distinct outputs and checkpoints: ``{shard_index}`` and
  ``{shard_count}`` in ``output``/``checkpoint``/``incremental`` are expanded; if ``output`` or
  ``checkpoint`` has neither, ``-shard-<i>-of-<N>`` goes before the first extension, so N pods
  writing to one ``oss://`` prefix never overwrite each other.
* Optional fields (``rate_limit``, ``max_size``, ``time_budget_s``…) take ``none`` in any layer
  (YAML ``null`` too), so a flag can switch off what the file turned on.
"""

from __future__ import annotations

import argparse
import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..errors import ConfigError
from ..oss.credentials import RrsaCredentials
from ..oss.score_contract import MAX_SOURCE_BYTES
from ..results.format_names import format_of
from .credentials import Credentials, credentials_from_env
from .fields import DERIVED, RUN_FIELD_ORDER, RUN_FIELDS
from .layers import Raw, config_path, parse_fields, read_env, read_file, read_flags, source_of
from .values import Shard, split_oss_url

__all__ = ["RunConfig", "load_run_config", "fingerprint", "SHARD_INDEX_ENV", "DEFAULT_OUTPUT_STEM"]

SHARD_INDEX_ENV = "JOB_COMPLETION_INDEX"
DEFAULT_OUTPUT_STEM = "picscore-results"


@dataclass(frozen=True)
class RunConfig:
    """Everything ``picscore run`` needs, validated. Build it with :func:`load_run_config`;
    direct construction (tests) skips validation. Lists are tuples so the object is hashable."""

    endpoint: str
    region: str
    bucket: str
    credentials: Credentials | RrsaCredentials = field(repr=False)
    prefix: tuple[str, ...] = ("",)
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    min_size: int = 0
    max_size: int | None = None
    modified_since: datetime | None = None
    concurrency: int = 16
    rate_limit: float | None = None
    retry_attempts: int = 6
    retry_total_s: float = 300.0
    retry_base_s: float = 0.2
    retry_max_backoff_s: float = 20.0
    output: str = f"{DEFAULT_OUTPUT_STEM}.parquet"
    format: str = "parquet"
    checkpoint: Path = Path(f"{DEFAULT_OUTPUT_STEM}.parquet.checkpoint.sqlite")
    resume: bool = False
    restart: bool = False
    incremental: Path | None = None
    shard: Shard = field(default_factory=Shard)
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
    max_object_bytes: int = MAX_SOURCE_BYTES
    event_loop: str = "auto"
    config_file: Path | None = None
    #: Non-fatal findings (e.g. an unknown ``PICSCORE_*`` variable); the caller logs them.
    warnings: tuple[str, ...] = field(default=(), compare=False)

    def selects_key(self, key: str) -> bool:
        """The include/exclude rule, in one place: a key is audited when it matches some
        ``include`` pattern (or there are none) and no ``exclude`` pattern. ``fnmatchcase`` —
        case-sensitive like OSS keys, and ``*`` also matches ``/``."""
        if self.include and not any(fnmatch.fnmatchcase(key, p) for p in self.include):
            return False
        return not any(fnmatch.fnmatchcase(key, p) for p in self.exclude)

    def describe(self) -> dict[str, Any]:
        """Every setting as JSON-friendly values, for the start-of-run log line. No credentials
        beyond the key id prefix and whether a session token is set."""
        out: dict[str, Any] = {}
        for name in RUN_FIELD_ORDER:
            out[name] = _jsonable(getattr(self, name))
        out["access_key_id"] = self.credentials.access_key_id[:4] + "***"
        out["session_token"] = self.credentials.session_token is not None
        return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Path | Shard):
        return str(value)
    return value


def fingerprint(config: RunConfig) -> dict[str, Any]:
    """The settings that decide *which rows a run produces*, to store in the checkpoint and
    compare on ``--resume``: a mismatch means the checkpoint belongs to another run. Knobs
    that only change *how fast* (concurrency, rate, retries, flushing) are left out so a
    resumed run may be tuned. Pattern and prefix lists are sorted: order does not change the
    selection. ``endpoint`` is left out: the public and ``-internal`` endpoints of one region
    serve the same (globally named) bucket."""
    return {
        "version": 1,
        "bucket": config.bucket,
        "prefix": sorted(config.prefix),
        "include": sorted(config.include),
        "exclude": sorted(config.exclude),
        "min_size": config.min_size,
        "max_size": config.max_size,
        "max_object_bytes": config.max_object_bytes,
        "modified_since": config.modified_since.isoformat() if config.modified_since else None,
        "shard": str(config.shard),
        "format": config.format,
        "output": config.output,
    }


def _resolve_shard(values: Mapping[str, Any], merged: Mapping[str, Raw], environ: Mapping[str, str]) -> Shard:
    count = values["shard_count"]
    if values["shard"] is not DERIVED:
        shard: Shard = values["shard"]
        if count is not None and count != shard.count:
            raise ConfigError("shard", f"{shard} disagrees with shard_count {count} (from "
                              f"{source_of(merged, 'shard_count')})", source=source_of(merged, "shard"))
        return shard
    index_text = environ.get(SHARD_INDEX_ENV, "").strip()
    if index_text:
        if count is None:
            raise ConfigError("shard", f"{SHARD_INDEX_ENV} is set (a Kubernetes Indexed Job) but no shard count "
                              f"is configured: set PICSCORE_SHARD_COUNT (or shard_count / --shard-count) to the "
                              f"Job's completions, or give --shard INDEX/COUNT", source=SHARD_INDEX_ENV,
                              value=index_text)
        if not index_text.isdigit() or int(index_text) >= count:
            raise ConfigError("shard", f"{SHARD_INDEX_ENV} must be an integer from 0 to {count - 1} "
                              f"(shard_count {count} from {source_of(merged, 'shard_count')})",
                              source=SHARD_INDEX_ENV, value=index_text)
        return Shard(int(index_text), count)
    if count is not None and count > 1:
        raise ConfigError("shard_count", f"is {count} but there is no shard index: {SHARD_INDEX_ENV} is unset "
                          f"(not an Indexed Job?); give --shard INDEX/{count}",
                          source=source_of(merged, "shard_count"))
    return Shard()


def _for_shard(path: str, shard: Shard) -> str:
    """Expand ``{shard_index}``/``{shard_count}``; for N > 1 without them, insert
    ``-shard-<i>-of-<N>`` before the first extension so shards never share a file."""
    if "{shard_index}" in path or "{shard_count}" in path:
        return path.replace("{shard_index}", str(shard.index)).replace("{shard_count}", str(shard.count))
    if shard.count == 1:
        return path
    head, slash, name = path.rpartition("/")
    dot = name.find(".", 1)
    stem, ext = (name, "") if dot < 0 else (name[:dot], name[dot:])
    width = len(str(shard.count - 1))
    return f"{head}{slash}{stem}-shard-{shard.index:0{width}d}-of-{shard.count}{ext}"


def _extension_format(output: str) -> tuple[str, str | None]:
    name = output.rsplit("/", 1)[-1]
    ext = ("." + name.rsplit(".", 1)[-1]).lower() if "." in name.lstrip(".") else ""
    return ext, format_of(output)


def _resolve_output(values: Mapping[str, Any], merged: Mapping[str, Raw], shard: Shard) -> tuple[str, str]:
    """(output, format): the format follows the extension unless given; a given format that
    contradicts a known extension is an error rather than a .csv full of Parquet."""
    explicit = values["format"] if values["format"] is not DERIVED else None
    if values["output"] is DERIVED:
        fmt = explicit or "parquet"
        return _for_shard(f"{DEFAULT_OUTPUT_STEM}.{fmt}", shard), fmt
    output = _for_shard(values["output"], shard)
    ext, inferred = _extension_format(output)
    if explicit and inferred and explicit != inferred:
        raise ConfigError("format", f"{explicit!r} conflicts with the output's extension {ext!r} (output "
                          f"{output!r} from {source_of(merged, 'output')}); change one",
                          source=source_of(merged, "format"))
    return output, explicit or inferred or "parquet"


def _default_checkpoint(output: str) -> Path:
    if output.startswith("oss://"):
        bucket, key = split_oss_url(output)
        return Path(f"picscore-{bucket}-{key.rsplit('/', 1)[-1]}.checkpoint.sqlite")
    return Path(output + ".checkpoint.sqlite")


def _check_relations(values: Mapping[str, Any], merged: Mapping[str, Raw]) -> None:
    """Checks that involve two fields; the message names both sources."""
    low, high = values["min_size"], values["max_size"]
    if high is not None and low > high:
        raise ConfigError("max_size", f"must be >= min_size {low} (from {source_of(merged, 'min_size')})",
                          source=source_of(merged, "max_size"), value=merged["max_size"].value)
    if values["resume"] and values["restart"]:
        raise ConfigError("restart", f"contradicts resume (from {source_of(merged, 'resume')}): --resume continues "
                          "an unfinished run, --restart discards it; choose one", source=source_of(merged, "restart"))
    base, cap = values["retry_base_s"], values["retry_max_backoff_s"]
    if cap < base:
        raise ConfigError("retry_max_backoff_s", f"must be >= retry_base_s {base:g}s (from "
                          f"{source_of(merged, 'retry_base_s')})", source=source_of(merged, "retry_max_backoff_s"))
    host = urlsplit(values["endpoint"]).hostname or ""
    if host.startswith(values["bucket"] + ".") and not host.replace(".", "").isdigit():
        raise ConfigError("endpoint", f"names the bucket; give the region endpoint without "
                          f"'{values['bucket']}.' (the client adds it)", source=source_of(merged, "endpoint"),
                          value=values["endpoint"])


def load_run_config(args: argparse.Namespace, environ: Mapping[str, str]) -> RunConfig:
    """Merge file < environment < flags, validate, resolve derived fields. Raises ConfigError."""
    path = config_path(args, environ)
    file_layer = read_file(path, RUN_FIELDS) if path else {}
    env_layer, warnings = read_env(environ, RUN_FIELDS, "run")
    merged = {**file_layer, **env_layer, **read_flags(args, RUN_FIELDS)}
    values = parse_fields(merged, RUN_FIELDS)
    _check_relations(values, merged)
    shard = _resolve_shard(values, merged, environ)
    output, fmt = _resolve_output(values, merged, shard)
    if values["checkpoint"] is DERIVED:
        checkpoint = _default_checkpoint(output)
    else:
        checkpoint = Path(_for_shard(values["checkpoint"], shard))
    if not output.startswith("oss://") and Path(output) == checkpoint:
        raise ConfigError("checkpoint", "must differ from output", source=source_of(merged, "checkpoint"))
    incremental = values["incremental"]
    if incremental is not None:
        incremental = Path(incremental.replace("{shard_index}", str(shard.index))
                           .replace("{shard_count}", str(shard.count)))
    settings = {name: values[name] for name in RUN_FIELD_ORDER}
    settings.update(shard=shard, output=output, format=fmt, checkpoint=checkpoint, incremental=incremental)
    return RunConfig(**settings, credentials=credentials_from_env(environ), config_file=path,
                     warnings=tuple(warnings))
