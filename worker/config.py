"""Settings for ``picscore run``: one typed, validated, immutable :class:`RunConfig`.

Layers, lowest to highest: the YAML file (``--config PATH`` or ``PICSCORE_CONFIG``) < the
environment (``PICSCORE_<FIELD>``, e.g. ``PICSCORE_CONCURRENCY``) < command-line flags
(``--kebab-case``). A higher layer replaces a value whole; lists are not merged.

Why these rules:

* Every value is parsed by the same small function whatever layer it came from, and every
  error is a :class:`ConfigError` naming the field *and* where the bad value came from
  (``prod.yaml key 'concurrency'``, ``PICSCORE_CONCURRENCY``, ``--concurrency``): in a
  CronJob the person reading the log did not write all three layers.
* Empty environment variables count as unset — Kubernetes manifests often template a
  variable to ``""`` rather than leave it out. List variables (``PICSCORE_PREFIX``,
  ``PICSCORE_INCLUDE``, ``PICSCORE_EXCLUDE``) are comma-separated, items stripped.
* Optional fields (``rate_limit``, ``max_size``, ``time_budget_s``, …) take ``none`` in any
  layer (YAML ``null`` too), so a flag can switch off what the file turned on.
* YAML strings must be strings: ``prefix: 0123`` is the octal 83 to YAML, so a non-string
  where a string belongs is an error that says to quote it, never a silent ``str()``.
* Credentials come only from ``OSS_ACCESS_KEY_ID`` / ``OSS_ACCESS_KEY_SECRET`` /
  ``OSS_SESSION_TOKEN``: files and flags end up in Git, ConfigMaps and ``ps`` output.
* Sharding: ``shard: i/N`` (any layer) wins. Otherwise, in a Kubernetes Indexed Job,
  ``JOB_COMPLETION_INDEX`` gives i and ``shard_count`` (``PICSCORE_SHARD_COUNT``) gives N;
  the index without a count is an error naming both, as is a count > 1 without an index —
  silently auditing 1/N of a bucket, or all of it N times, is worse than not starting.
* Sharded runs (N > 1) get distinct outputs and checkpoints: ``{shard_index}`` and
  ``{shard_count}`` in ``output``/``checkpoint``/``incremental`` are expanded; if ``output``
  or ``checkpoint`` has neither, ``-shard-<i>-of-<N>`` goes before the first extension, so N
  pods writing to one ``oss://`` prefix never overwrite each other.
"""

from __future__ import annotations

import argparse
import difflib
import fnmatch
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from .eventloop import EVENT_LOOPS
from .oss.credentials import RrsaCredentials, RrsaError, rrsa_from_env, rrsa_requested

__all__ = [
    "ConfigError", "RunConfig", "Credentials", "Shard", "add_run_arguments", "load_run_config",
    "fingerprint", "credentials_from_env", "split_oss_url", "parse_size", "parse_duration",
    "ENV_PREFIX", "CONFIG_ENV", "SHARD_INDEX_ENV", "FORMATS",
]

ENV_PREFIX = "PICSCORE_"
CONFIG_ENV = "PICSCORE_CONFIG"
SHARD_INDEX_ENV = "JOB_COMPLETION_INDEX"
KEY_ID_ENV, SECRET_ENV, TOKEN_ENV = "OSS_ACCESS_KEY_ID", "OSS_ACCESS_KEY_SECRET", "OSS_SESSION_TOKEN"
FORMATS = ("parquet", "csv", "jsonl")
_EXTENSIONS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
_DEFAULT_OUTPUT_STEM = "picscore-results"
_NONE_WORDS = frozenset({"none", "null", "unlimited", "off"})
_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")
_REGION_RE = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_SECRET_KEY_PARTS = ("secret", "password", "token", "access_key", "accesskey", "credential")


# --------------------------------------------------------------------------------------------
# Errors and value objects


class ConfigError(ValueError):
    """A setting is missing or invalid. ``field`` is the setting's name; the message names it
    and where the value came from. The offending value is shown only where it cannot be a
    secret (URLs with user-info are never echoed)."""

    def __init__(self, field: str, problem: str, *, source: str | None = None, value: Any = ...) -> None:
        self.field = field
        self.source = source
        if source is None:
            where = ""
        elif value is ...:
            where = f" (from {source})"
        else:
            where = f" (got {_show(value)} from {source})"
        super().__init__(f"{field}: {problem}{where}")


class _Invalid(ValueError):
    """Raised by the parsers: ``problem`` says what is wrong; ``echo=False`` hides the value."""

    def __init__(self, problem: str, *, echo: bool = True) -> None:
        super().__init__(problem)
        self.echo = echo


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


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


@dataclass(frozen=True)
class Shard:
    """This worker's slice of the listing: objects whose key hashes to ``index`` mod ``count``.
    ``Shard(0, 1)`` is the whole run."""

    index: int = 0
    count: int = 1

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


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
    output: str = f"{_DEFAULT_OUTPUT_STEM}.parquet"
    format: str = "parquet"
    checkpoint: Path = Path(f"{_DEFAULT_OUTPUT_STEM}.parquet.checkpoint.sqlite")
    resume: bool = False
    incremental: Path | None = None
    shard: Shard = Shard()
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
    max_object_bytes: int = 20 * 1024 * 1024
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
        for name in _FIELD_ORDER:
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


# --------------------------------------------------------------------------------------------
# Value parsers: object (YAML value, or a string from env/flags) -> typed value, or _Invalid.


def _as_text(value: Any) -> str:
    """Strings only: YAML turns unquoted ``0123``/``yes``/``1e3`` into other types."""
    if not isinstance(value, str):
        raise _Invalid(f"must be a string (got a YAML {type(value).__name__}; quote it)")
    return value.strip()


def _none_word(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip().lower() in _NONE_WORDS)


def _optional(parse: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Wrap a parser so that YAML null or the word ``none``/``unlimited``/``off`` means None."""
    def parse_optional(value: Any) -> Any:
        return None if _none_word(value) else parse(value)
    parse_optional.__doc__ = parse.__doc__
    return parse_optional


def _integer(value: Any, what: str = "an integer") -> int:
    if isinstance(value, bool | float):
        raise _Invalid(f"must be {what}")
    if isinstance(value, int):
        return value
    try:
        return int(_as_text(value))
    except ValueError:
        raise _Invalid(f"must be {what}") from None


def _int_between(low: int, high: int | None) -> Callable[[Any], int]:
    what = f"an integer between {low} and {high}" if high is not None else f"an integer >= {low}"

    def parse(value: Any) -> int:
        number = _integer(value, what)
        if number < low or (high is not None and number > high):
            raise _Invalid(f"must be {what}")
        return number
    return parse


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool):
        raise _Invalid(f"must be {what}")
    try:
        number = float(value) if isinstance(value, int | float) else float(_as_text(value))
    except ValueError:
        raise _Invalid(f"must be {what}") from None
    if not math.isfinite(number):
        raise _Invalid(f"must be {what}")
    return number


def _positive_number(value: Any) -> float:
    number = _number(value, "a number > 0")
    if number <= 0:
        raise _Invalid("must be a number > 0")
    return number


_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)")
_DURATION_RE = re.compile(r"(?:\d+(?:\.\d+)?\s*(?:ms|s|m|h|d)\s*)+")


def parse_duration(value: Any) -> float:
    """Seconds from ``300``, ``300s``, ``90m``, ``2h``, ``1h30m``, ``250ms`` (a bare number is
    seconds: these fields end in ``_s``). Raises ValueError."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        text = _as_text(value).lower()
        if _DURATION_RE.fullmatch(text):
            seconds = sum(float(n) * _DURATION_UNITS[u] for n, u in _DURATION_PART.findall(text))
        else:
            seconds = _number(text, "a duration such as 300, 300s, 90m, 2h or 1h30m")
    if not math.isfinite(seconds) or seconds < 0:
        raise _Invalid("must be a duration >= 0 such as 300, 300s, 90m, 2h or 1h30m")
    return seconds


def _duration_at_least(low: float, *, inclusive: bool) -> Callable[[Any], float]:
    def parse(value: Any) -> float:
        seconds = parse_duration(value)
        if seconds < low or (not inclusive and seconds == low):
            raise _Invalid(f"must be a duration {'>=' if inclusive else '>'} {low:g}s (e.g. 30s, 5m)")
        return seconds
    return parse


_SIZE_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
               "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_SIZE_RE = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]*)")


def parse_size(value: Any) -> int:
    """Bytes from ``1048576``, ``10KiB``, ``20MB``, ``1.5 GiB`` (KB/MB/GB are powers of 1000,
    KiB/MiB/GiB of 1024; decimal arithmetic, so ``1.1KB`` is exactly 1100). Raises ValueError."""
    problem = "must be a size in bytes such as 1048576, 10KiB or 20MB"
    if isinstance(value, bool):
        raise _Invalid(problem)
    if isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise _Invalid(problem)
        amount = Decimal(repr(value))
    else:
        match = _SIZE_RE.fullmatch(_as_text(value).lower())
        if not match or match[2] not in _SIZE_UNITS:
            raise _Invalid(problem + " (units: B, KB, KiB, MB, MiB, GB, GiB, TB, TiB)")
        try:
            amount = Decimal(match[1]) * _SIZE_UNITS[match[2]]
        except InvalidOperation:  # pragma: no cover - the regex admits only decimals
            raise _Invalid(problem) from None
    if amount < 0 or amount != amount.to_integral_value():
        raise _Invalid(problem + " (a whole number of bytes, >= 0)")
    return int(amount)


def _positive_size(value: Any) -> int:
    size = parse_size(value)
    if size < 1:
        raise _Invalid("must be a size of at least 1 byte")
    return size


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = _as_text(value).lower() if isinstance(value, str) else None
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise _Invalid("must be true or false")


def _choice(options: Iterable[str], aliases: Mapping[str, str] | None = None) -> Callable[[Any], str]:
    options = tuple(options)
    aliases = dict(aliases or {})

    def parse(value: Any) -> str:
        if isinstance(value, bool):  # YAML 1.1 reads on/off/yes/no as booleans
            value = "on" if value else "off"
        text = _as_text(value).lower()
        text = aliases.get(text, text)
        if text not in options:
            raise _Invalid(f"must be one of {', '.join(options)}")
        return text
    return parse


def _fraction(value: Any) -> float:
    problem = "must be a fraction between 0 and 1 (e.g. 0.01 or 1%)"
    if isinstance(value, str) and value.strip().endswith("%"):
        number = _number(value.strip()[:-1], problem) / 100
    else:
        number = _number(value, problem)
    if not 0 <= number <= 1:
        raise _Invalid(problem)
    return number


def _timestamp(value: Any) -> datetime:
    """ISO 8601 date or date-time; no zone means UTC (OSS reports Last-Modified in UTC)."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    else:
        text = _as_text(value)
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise _Invalid("must be an ISO 8601 date or date-time, e.g. 2024-05-01 or "
                           "2024-05-01T08:00:00+08:00") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _has_userinfo(text: str) -> bool:
    try:
        parts = urlsplit(text)
    except ValueError:
        return False
    return "@" in parts.netloc


def _http_url(value: Any, *, allow_path: bool) -> tuple[str, str]:
    """``scheme://host[:port][/path]`` → (normalised URL, host). Never echoes user-info."""
    text = _as_text(value)
    if "://" not in text:
        text = "https://" + text  # OSS documents endpoints without a scheme; default to TLS
    if _has_userinfo(text):
        raise _Invalid("must not contain user:password@ (credentials never go in settings)", echo=False)
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - validates the port
    except ValueError:
        raise _Invalid("must be a URL such as https://oss-cn-hangzhou.aliyuncs.com") from None
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise _Invalid("must be an http:// or https:// URL with a host")
    if parts.query or parts.fragment or (not allow_path and parts.path not in {"", "/"}):
        raise _Invalid("must be scheme://host[:port] only (no path, query or fragment)")
    return text.rstrip("/"), parts.hostname


def _endpoint(value: Any) -> str:
    return _http_url(value, allow_path=False)[0]


def _pushgateway(value: Any) -> str:
    return _http_url(value, allow_path=True)[0]


def _region(value: Any) -> str:
    text = _as_text(value)
    if text.startswith("oss-"):
        raise _Invalid(f"is the region id without 'oss-' (use {text[4:]!r})")
    if not _REGION_RE.fullmatch(text):
        raise _Invalid("must be a region id such as cn-hangzhou")
    return text


def _bucket(value: Any) -> str:
    text = _as_text(value)
    if not _BUCKET_RE.fullmatch(text):
        raise _Invalid("must be an OSS bucket name: 3-63 characters of a-z, 0-9 and '-', "
                       "starting and ending with a letter or digit")
    return text


def split_oss_url(url: str) -> tuple[str, str]:
    """``oss://bucket/path/key`` → (bucket, key). Raises ValueError unless both are valid and
    the key names an object (not empty, not ending in '/')."""
    if not url.startswith("oss://"):
        raise _Invalid("must start with oss://")
    bucket, _, key = url[len("oss://"):].partition("/")
    if not _BUCKET_RE.fullmatch(bucket):
        raise _Invalid("must be oss://<bucket>/<key> with a valid bucket name")
    if not key or key.endswith("/") or key.startswith("/"):
        raise _Invalid("must be oss://<bucket>/<key> naming an object (not a folder)")
    return bucket, key


def _output(value: Any) -> str:
    text = _as_text(value)
    if text.startswith("oss://"):
        split_oss_url(text)
    else:
        _local_path(text)
    return text


def _local_path(value: Any) -> str:
    text = _as_text(value)
    if not text:
        raise _Invalid("must not be empty")
    if "://" in text:
        raise _Invalid("must be a local path (only output takes oss:// URLs)")
    if text.endswith(("/", "\\")):
        raise _Invalid("must name a file, not a directory")
    return text


def _shard(value: Any) -> Shard:
    match = re.fullmatch(r"(\d+)\s*/\s*(\d+)", _as_text(value))
    if not match:
        raise _Invalid("must be INDEX/COUNT, e.g. 0/8")
    index, count = int(match[1]), int(match[2])
    if count < 1 or index >= count:
        raise _Invalid("must be INDEX/COUNT with 0 <= INDEX < COUNT")
    return Shard(index, count)


def _key_text(item: Any, what: str) -> str:
    if not isinstance(item, str):
        raise _Invalid(f"each {what} must be a string (got a YAML {type(item).__name__}; quote it)")
    if len(item.encode()) > 1023:
        raise _Invalid(f"each {what} must be at most 1023 bytes (the OSS key limit)")
    return item


def _prefixes(value: Any) -> tuple[str, ...]:
    """Key prefixes to list. Overlaps are refused: listing ``a/`` and ``a/b/`` would audit
    every object under ``a/b/`` twice."""
    items = tuple(_key_text(item, "prefix") for item in _as_list(value))
    if not items:
        raise _Invalid("must list at least one prefix ('' is the whole bucket)")
    for item in items:
        if item.startswith("/"):
            raise _Invalid(f"prefix {item!r} must not start with '/' (OSS keys don't)")
    for i, outer in enumerate(items):
        for inner in items[i + 1:]:
            if inner.startswith(outer) or outer.startswith(inner):
                short, long = sorted((outer, inner), key=len)
                raise _Invalid(f"prefixes overlap: {long!r} is inside {short!r}; keep one")
    return items


def _patterns(value: Any) -> tuple[str, ...]:
    items = tuple(_key_text(item, "pattern") for item in _as_list(value))
    if any(not item for item in items):
        raise _Invalid("patterns must not be empty")
    return items


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return list(value)
    raise _Invalid("must be a list of strings")


# --------------------------------------------------------------------------------------------
# The fields: one table drives the YAML keys, environment variables, flags and parsing.


_REQUIRED = object()
_DERIVED = object()  # resolved after parsing, from other fields


@dataclass(frozen=True)
class _Field:
    name: str
    parse: Callable[[Any], Any]
    help: str
    default: Any = None
    kind: str = "value"  # "value" | "list" (repeatable flag, comma-separated env) | "bool"
    metavar: str | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()


_FIELDS: tuple[_Field, ...] = (
    _Field("endpoint", _endpoint, "OSS endpoint, e.g. https://oss-cn-hangzhou.aliyuncs.com or "
           "http://127.0.0.1:9000 (no scheme means https)", _REQUIRED, metavar="URL"),
    _Field("region", _region, "region id used in V4 signatures, e.g. cn-hangzhou", _REQUIRED, metavar="ID"),
    _Field("bucket", _bucket, "bucket to audit", _REQUIRED, metavar="NAME"),
    _Field("prefix", _prefixes, "key prefix to list; repeat for several (default: the whole bucket)",
           ("",), "list", "PREFIX"),
    _Field("include", _patterns, "only keys matching this fnmatch glob ('*' crosses '/'); repeatable",
           (), "list", "GLOB"),
    _Field("exclude", _patterns, "skip keys matching this glob; repeatable", (), "list", "GLOB"),
    _Field("min_size", parse_size, "skip objects smaller than this (e.g. 10KiB)", 0, metavar="SIZE"),
    _Field("max_size", _optional(parse_size), "skip objects larger than this (e.g. 20MB)", metavar="SIZE"),
    _Field("modified_since", _optional(_timestamp), "only objects modified at or after this ISO 8601 "
           "date/time (UTC unless a zone is given)", metavar="WHEN"),
    _Field("concurrency", _int_between(1, 1024), "requests in flight (1-1024, default 16)", 16, metavar="N"),
    _Field("rate_limit", _optional(_positive_number), "most score requests per second (default: "
           "unlimited)", metavar="PER_S"),
    _Field("retry_attempts", _int_between(1, 100), "attempts per object, first included (default 6)", 6,
           metavar="N"),
    _Field("retry_total_s", _duration_at_least(0, inclusive=False), "give up retrying one object after this "
           "long (default 300s)", 300.0, metavar="DURATION"),
    _Field("retry_base_s", _duration_at_least(0, inclusive=False), "first backoff; doubles per attempt, "
           "with jitter (default 0.2s)", 0.2, metavar="DURATION"),
    _Field("retry_max_backoff_s", _duration_at_least(0, inclusive=False), "longest single backoff "
           "(default 20s)", 20.0, metavar="DURATION"),
    _Field("output", _output, "results file: local path or oss://bucket/key (default "
           "picscore-results.<format>)", _DERIVED, metavar="PATH"),
    _Field("format", _choice(FORMATS, {"ndjson": "jsonl"}), "parquet, csv or jsonl (default: from the "
           "output's extension, else parquet)", _DERIVED, metavar="FORMAT"),
    _Field("checkpoint", _local_path, "checkpoint database (default <output>.checkpoint.sqlite, or "
           "./picscore-<bucket>-<name>.checkpoint.sqlite for oss:// outputs)", _DERIVED, metavar="PATH"),
    _Field("resume", _boolean, "continue from the checkpoint of an interrupted run with the same "
           "settings", False, "bool"),
    _Field("incremental", _optional(_local_path), "previous results file: objects whose ETag is unchanged "
           "there are not scored again", metavar="PATH"),
    _Field("shard", _shard, "this worker's slice, INDEX/COUNT (default: JOB_COMPLETION_INDEX/shard_count "
           "in an Indexed Job, else 0/1)", _DERIVED, metavar="I/N"),
    _Field("shard_count", _optional(_int_between(1, 100_000)), "number of shards when the index comes "
           "from JOB_COMPLETION_INDEX (the Job's completions)", metavar="N"),
    _Field("dry_run", _boolean, "list and filter, count and size what would be scored; score nothing",
           False, "bool"),
    _Field("time_budget_s", _optional(_duration_at_least(0, inclusive=False)), "stop taking new objects "
           "after this long and finish cleanly, e.g. 90m or 2h (default: none)", metavar="DURATION"),
    _Field("failure_threshold", _fraction, "fraction of selected objects allowed to fail before the "
           "exit code reports failure, e.g. 0.01 or 1%% (default 0)", 0.0, metavar="FRACTION"),
    _Field("metrics_port", _optional(_int_between(0, 65535)), "serve Prometheus /metrics on this port "
           "(0 picks a free one; default: off)", metavar="PORT"),
    _Field("pushgateway", _optional(_pushgateway), "push final metrics to this Prometheus Pushgateway URL "
           "(default: off)", metavar="URL"),
    _Field("log_level", _choice(("debug", "info", "warning", "error"), {"warn": "warning"}),
           "debug, info, warning or error (default info)", "info", metavar="LEVEL"),
    _Field("log_format", _choice(("json", "console", "auto")), "json, console or auto (console on a "
           "terminal; default auto)", "auto", metavar="FORMAT"),
    _Field("progress", _choice(("auto", "always", "never"), {"on": "always", "off": "never"}),
           "progress bar: auto (on a terminal), always or never", "auto", metavar="WHEN"),
    _Field("flush_rows", _int_between(1, None), "write buffered rows after this many (default 5000)", 5000,
           metavar="N"),
    _Field("flush_seconds", _duration_at_least(0, inclusive=False), "write buffered rows at least this "
           "often (default 30s)", 30.0, metavar="DURATION"),
    _Field("grace_s", _duration_at_least(0, inclusive=True), "after SIGTERM, time to finish requests in "
           "flight and flush before exiting (default 30s)", 30.0, metavar="DURATION"),
    _Field("max_object_bytes", _positive_size, "objects larger than this are skipped, not sent: OSS "
           "refuses to score them (default 20MiB)", 20 * 1024 * 1024, metavar="SIZE"),
    _Field("event_loop", _choice(EVENT_LOOPS), "auto (uvloop where installed), uvloop or asyncio "
           "(default auto)", "auto", metavar="LOOP"),
)
_BY_NAME = {f.name: f for f in _FIELDS}
_FIELD_ORDER = tuple(f.name for f in _FIELDS if f.name != "shard_count")


@dataclass(frozen=True)
class _Raw:
    """One setting before parsing, and where it came from (for error messages)."""

    value: Any
    source: str


# --------------------------------------------------------------------------------------------
# argparse


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--config`` and one flag per setting. Every default is None: a flag that was not
    given must not hide the environment or the file, so defaults live in this module only."""
    parser.add_argument("--config", metavar="PATH", default=None,
                        help=f"YAML settings file (or {CONFIG_ENV}); the environment (PICSCORE_<FIELD>) "
                        "and flags override it")
    for spec in _FIELDS:
        if spec.kind == "bool":
            parser.add_argument(spec.flag, dest=spec.name, action=argparse.BooleanOptionalAction,
                                default=None, help=spec.help)
        elif spec.kind == "list":
            parser.add_argument(spec.flag, dest=spec.name, action="append", default=None,
                                metavar=spec.metavar, help=spec.help)
        else:
            parser.add_argument(spec.flag, dest=spec.name, default=None, metavar=spec.metavar, help=spec.help)


# --------------------------------------------------------------------------------------------
# Layers


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys: PyYAML silently keeps the last one, which turns a
    copy-paste slip into a setting nobody reads."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            duplicate = key in seen
            seen.add(key)
        except TypeError:
            continue  # unhashable key: construct_mapping reports it
        if duplicate:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _read_file(path: Path) -> dict[str, _Raw]:
    """The YAML layer. Unreadable, malformed, non-mapping, unknown-key and secret-bearing files
    are errors with field ``config`` (or the offending key)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError("config", f"cannot read the settings file: {reason}", source=str(path)) from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError("config", f"not valid YAML: {problem}{where}", source=str(path)) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("config", f"must be a mapping of settings (key: value), not a YAML "
                          f"{type(data).__name__}", source=str(path))
    _check_keys(data, path)
    return {key: _Raw(value, f"{path} key '{key}'") for key, value in data.items()}


def _check_keys(data: Mapping[Any, Any], path: Path) -> None:
    for key in data:
        if not isinstance(key, str):
            raise ConfigError("config", f"keys must be setting names, not {key!r}", source=str(path))
        lowered = key.lower()
        if any(part in lowered for part in _SECRET_KEY_PARTS):
            raise ConfigError(key, f"credentials never go in settings files: set {KEY_ID_ENV}, {SECRET_ENV} "
                              f"(and {TOKEN_ENV}) in the environment, e.g. from a Kubernetes Secret",
                              source=f"{path} key '{key}'")
    unknown = [key for key in data if key not in _BY_NAME]
    if unknown:
        described = "; ".join(_describe_unknown(key) for key in unknown)
        raise ConfigError(unknown[0], f"unknown setting{'s' if len(unknown) > 1 else ''}: {described}",
                          source=str(path))


def _describe_unknown(name: str) -> str:
    guess = difflib.get_close_matches(name.replace("-", "_").lower(), _BY_NAME, n=1, cutoff=0.6)
    return f"{name!r} (did you mean {guess[0]!r}?)" if guess else repr(name)


def _read_env(environ: Mapping[str, str]) -> tuple[dict[str, _Raw], list[str]]:
    """The environment layer, and warnings for ``PICSCORE_*`` names that are not settings
    (warnings, not errors: other tools share the prefix)."""
    layer: dict[str, _Raw] = {}
    for spec in _FIELDS:
        value = environ.get(spec.env, "")
        if not value.strip():
            continue
        if spec.kind == "list":
            layer[spec.name] = _Raw([item.strip() for item in value.split(",") if item.strip()], spec.env)
        else:
            layer[spec.name] = _Raw(value, spec.env)
    known = {spec.env for spec in _FIELDS} | {CONFIG_ENV}
    warnings = []
    for name in sorted(environ):
        if name.startswith(ENV_PREFIX) and name not in known:
            guess = difflib.get_close_matches(name, known, n=1, cutoff=0.8)
            hint = f" (did you mean {guess[0]}?)" if guess else ""
            warnings.append(f"{name} is not a picscore run setting; ignored{hint}")
    return layer, warnings


def _read_flags(args: argparse.Namespace) -> dict[str, _Raw]:
    return {spec.name: _Raw(getattr(args, spec.name), spec.flag)
            for spec in _FIELDS if getattr(args, spec.name, None) is not None}


def _config_path(args: argparse.Namespace, environ: Mapping[str, str]) -> Path | None:
    flag = getattr(args, "config", None)
    text = flag if flag else environ.get(CONFIG_ENV, "").strip()
    return Path(text) if text else None


def _parse_fields(merged: Mapping[str, _Raw]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for spec in _FIELDS:
        raw = merged.get(spec.name)
        if raw is None:
            if spec.default is _REQUIRED:
                raise ConfigError(spec.name, f"is required: set it in the config file, {spec.env} or {spec.flag}")
            values[spec.name] = spec.default
            continue
        if raw.value is None and spec.default is not None:  # only optional fields take null
            raise ConfigError(spec.name, "must have a value", source=raw.source, value=None)
        try:
            values[spec.name] = spec.parse(raw.value)
        except ValueError as exc:
            echo = getattr(exc, "echo", True)
            raise ConfigError(spec.name, str(exc), source=raw.source, value=raw.value if echo else ...) from None
    return values


# --------------------------------------------------------------------------------------------
# Cross-field resolution


def _source(merged: Mapping[str, _Raw], name: str) -> str:
    raw = merged.get(name)
    return raw.source if raw else "the default"


def _resolve_shard(values: Mapping[str, Any], merged: Mapping[str, _Raw], environ: Mapping[str, str]) -> Shard:
    count = values["shard_count"]
    if values["shard"] is not _DERIVED:
        shard: Shard = values["shard"]
        if count is not None and count != shard.count:
            raise ConfigError("shard", f"{shard} disagrees with shard_count {count} (from "
                              f"{_source(merged, 'shard_count')})", source=_source(merged, "shard"))
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
                              f"(shard_count {count} from {_source(merged, 'shard_count')})",
                              source=SHARD_INDEX_ENV, value=index_text)
        return Shard(int(index_text), count)
    if count is not None and count > 1:
        raise ConfigError("shard_count", f"is {count} but there is no shard index: {SHARD_INDEX_ENV} is unset "
                          f"(not an Indexed Job?); give --shard INDEX/{count}",
                          source=_source(merged, "shard_count"))
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
    return ext, _EXTENSIONS.get(ext)


def _resolve_output(values: Mapping[str, Any], merged: Mapping[str, _Raw], shard: Shard) -> tuple[str, str]:
    """(output, format): the format follows the extension unless given; a given format that
    contradicts a known extension is an error rather than a .csv full of Parquet."""
    explicit = values["format"] if values["format"] is not _DERIVED else None
    if values["output"] is _DERIVED:
        fmt = explicit or "parquet"
        return _for_shard(f"{_DEFAULT_OUTPUT_STEM}.{fmt}", shard), fmt
    output = _for_shard(values["output"], shard)
    ext, inferred = _extension_format(output)
    if explicit and inferred and explicit != inferred:
        raise ConfigError("format", f"{explicit!r} conflicts with the output's extension {ext!r} (output "
                          f"{output!r} from {_source(merged, 'output')}); change one",
                          source=_source(merged, "format"))
    return output, explicit or inferred or "parquet"


def _default_checkpoint(output: str) -> Path:
    if output.startswith("oss://"):
        bucket, key = split_oss_url(output)
        return Path(f"picscore-{bucket}-{key.rsplit('/', 1)[-1]}.checkpoint.sqlite")
    return Path(output + ".checkpoint.sqlite")


def _check_relations(values: Mapping[str, Any], merged: Mapping[str, _Raw]) -> None:
    """Checks that involve two fields; the message names both sources."""
    low, high = values["min_size"], values["max_size"]
    if high is not None and low > high:
        raise ConfigError("max_size", f"must be >= min_size {low} (from {_source(merged, 'min_size')})",
                          source=_source(merged, "max_size"), value=merged["max_size"].value)
    base, cap = values["retry_base_s"], values["retry_max_backoff_s"]
    if cap < base:
        raise ConfigError("retry_max_backoff_s", f"must be >= retry_base_s {base:g}s (from "
                          f"{_source(merged, 'retry_base_s')})", source=_source(merged, "retry_max_backoff_s"))
    host = urlsplit(values["endpoint"]).hostname or ""
    if host.startswith(values["bucket"] + ".") and not host.replace(".", "").isdigit():
        raise ConfigError("endpoint", f"names the bucket; give the region endpoint without "
                          f"'{values['bucket']}.' (the client adds it)", source=_source(merged, "endpoint"),
                          value=values["endpoint"])


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


def load_run_config(args: argparse.Namespace, environ: Mapping[str, str]) -> RunConfig:
    """Merge file < environment < flags, validate, resolve derived fields. Raises ConfigError."""
    path = _config_path(args, environ)
    file_layer = _read_file(path) if path else {}
    env_layer, warnings = _read_env(environ)
    merged = {**file_layer, **env_layer, **_read_flags(args)}
    values = _parse_fields(merged)
    _check_relations(values, merged)
    shard = _resolve_shard(values, merged, environ)
    output, fmt = _resolve_output(values, merged, shard)
    if values["checkpoint"] is _DERIVED:
        checkpoint = _default_checkpoint(output)
    else:
        checkpoint = Path(_for_shard(values["checkpoint"], shard))
    if not output.startswith("oss://") and Path(output) == checkpoint:
        raise ConfigError("checkpoint", "must differ from output", source=_source(merged, "checkpoint"))
    incremental = values["incremental"]
    if incremental is not None:
        incremental = Path(incremental.replace("{shard_index}", str(shard.index))
                           .replace("{shard_count}", str(shard.count)))
    settings = {name: values[name] for name in _FIELD_ORDER}
    settings.update(shard=shard, output=output, format=fmt, checkpoint=checkpoint, incremental=incremental)
    return RunConfig(**settings, credentials=credentials_from_env(environ), config_file=path,
                     warnings=tuple(warnings))
