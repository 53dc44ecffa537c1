"""Setting values: each parser turns one raw value (a YAML value, or text from the environment
or a flag) into a typed value, or raises :class:`Invalid` saying what is wrong.

The same parser runs whatever layer the value came from, so ``concurrency: 16`` in a file,
``PICSCORE_CONCURRENCY=16`` and ``--concurrency 16`` are one rule. YAML strings must be strings:
``prefix: 0123`` is the octal 83 to YAML, so a non-string where a string belongs is an error that
says to quote it, never a silent ``str()``. A parser never echoes a value that could hold a
secret (``Invalid(echo=False)``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlsplit

from .. import units
from ..oss.urls import BUCKET_NAME_RE, split_oss_url

__all__ = [
    "Invalid", "Shard", "split_oss_url", "parse_duration", "parse_size",
    "as_text", "is_none_word", "optional", "integer", "int_between", "to_number", "positive_number",
    "duration_at_least", "positive_size", "boolean", "choice", "fraction", "timestamp", "endpoint",
    "pushgateway_url", "region_id", "bucket_name", "output_location", "local_path", "shard_spec",
    "prefixes", "patterns", "as_list",
]

_NONE_WORDS = frozenset({"none", "null", "unlimited", "off"})
_BUCKET_RE = BUCKET_NAME_RE
_REGION_RE = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


class Invalid(ValueError):
    """Raised by the parsers: ``problem`` says what is wrong; ``echo=False`` hides the value."""

    def __init__(self, problem: str, *, echo: bool = True) -> None:
        super().__init__(problem)
        self.echo = echo


@dataclass(frozen=True)
class Shard:
    """This worker's slice of the listing: objects whose key hashes to ``index`` mod ``count``.
    ``Shard(0, 1)`` is the whole run."""

    index: int = 0
    count: int = 1

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def as_text(value: Any) -> str:
    """Strings only: YAML turns unquoted ``0123``/``yes``/``1e3`` into other types."""
    if not isinstance(value, str):
        raise Invalid(f"must be a string (got a YAML {type(value).__name__}; quote it)")
    return value.strip()


def is_none_word(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip().lower() in _NONE_WORDS)


def optional(parse: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Wrap a parser so that YAML null or the word ``none``/``unlimited``/``off`` means None."""
    def parse_optional(value: Any) -> Any:
        return None if is_none_word(value) else parse(value)
    parse_optional.__doc__ = parse.__doc__
    return parse_optional


def integer(value: Any, what: str = "an integer") -> int:
    if isinstance(value, bool | float):
        raise Invalid(f"must be {what}")
    if isinstance(value, int):
        return value
    try:
        return int(as_text(value))
    except ValueError:
        raise Invalid(f"must be {what}") from None


def int_between(low: int, high: int | None) -> Callable[[Any], int]:
    what = f"an integer between {low} and {high}" if high is not None else f"an integer >= {low}"

    def parse(value: Any) -> int:
        number = integer(value, what)
        if number < low or (high is not None and number > high):
            raise Invalid(f"must be {what}")
        return number
    return parse


def to_number(value: Any, what: str) -> float:
    if isinstance(value, bool):
        raise Invalid(f"must be {what}")
    try:
        number = float(value) if isinstance(value, int | float) else float(as_text(value))
    except ValueError:
        raise Invalid(f"must be {what}") from None
    if not math.isfinite(number):
        raise Invalid(f"must be {what}")
    return number


def positive_number(value: Any) -> float:
    number = to_number(value, "a number > 0")
    if number <= 0:
        raise Invalid("must be a number > 0")
    return number


def parse_duration(value: Any) -> float:
    """Seconds from ``300``, ``300s``, ``90m``, ``2h``, ``1h30m``, ``250ms`` (a bare number is
    seconds: these fields end in ``_s``). Raises :class:`Invalid`."""
    try:
        return units.parse_duration(value, bare_unit="s")
    except ValueError:
        raise Invalid(f"must be a duration >= 0 such as {units.DURATION_EXAMPLES}") from None


def duration_at_least(low: float, *, inclusive: bool) -> Callable[[Any], float]:
    def parse(value: Any) -> float:
        seconds = parse_duration(value)
        if seconds < low or (not inclusive and seconds == low):
            raise Invalid(f"must be a duration {'>=' if inclusive else '>'} {low:g}s (e.g. 30s, 5m)")
        return seconds
    return parse


def parse_size(value: Any) -> int:
    """Bytes from ``1048576``, ``10KiB``, ``20MB``, ``1.5 GiB`` (KB/MB/GB are powers of 1000,
    KiB/MiB/GiB of 1024). Raises :class:`Invalid`."""
    try:
        return units.parse_size(value)
    except ValueError as exc:
        raise Invalid(str(exc)) from None


def positive_size(value: Any) -> int:
    size = parse_size(value)
    if size < 1:
        raise Invalid("must be a size of at least 1 byte")
    return size


def boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = as_text(value).lower() if isinstance(value, str) else None
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise Invalid("must be true or false")


def choice(options: Iterable[str], aliases: Mapping[str, str] | None = None) -> Callable[[Any], str]:
    options = tuple(options)
    aliases = dict(aliases or {})

    def parse(value: Any) -> str:
        if isinstance(value, bool):  # YAML 1.1 reads on/off/yes/no as booleans
            value = "on" if value else "off"
        text = as_text(value).lower()
        text = aliases.get(text, text)
        if text not in options:
            raise Invalid(f"must be one of {', '.join(options)}")
        return text
    return parse


def fraction(value: Any) -> float:
    problem = "must be a fraction between 0 and 1 (e.g. 0.01 or 1%)"
    if isinstance(value, str) and value.strip().endswith("%"):
        number = to_number(value.strip()[:-1], problem) / 100
    else:
        number = to_number(value, problem)
    if not 0 <= number <= 1:
        raise Invalid(problem)
    return number


def timestamp(value: Any) -> datetime:
    """ISO 8601 date or date-time; no zone means UTC (OSS reports Last-Modified in UTC)."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    else:
        text = as_text(value)
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise Invalid("must be an ISO 8601 date or date-time, e.g. 2024-05-01 or "
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
    text = as_text(value)
    if "://" not in text:
        text = "https://" + text  # OSS documents endpoints without a scheme; default to TLS
    if _has_userinfo(text):
        raise Invalid("must not contain user:password@ (credentials never go in settings)", echo=False)
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - validates the port
    except ValueError:
        raise Invalid("must be a URL such as https://oss-cn-hangzhou.aliyuncs.com") from None
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise Invalid("must be an http:// or https:// URL with a host")
    if parts.query or parts.fragment or (not allow_path and parts.path not in {"", "/"}):
        raise Invalid("must be scheme://host[:port] only (no path, query or fragment)")
    return text.rstrip("/"), parts.hostname


def endpoint(value: Any) -> str:
    return _http_url(value, allow_path=False)[0]


def pushgateway_url(value: Any) -> str:
    return _http_url(value, allow_path=True)[0]


def region_id(value: Any) -> str:
    text = as_text(value)
    if text.startswith("oss-"):
        raise Invalid(f"is the region id without 'oss-' (use {text[4:]!r})")
    if not _REGION_RE.fullmatch(text):
        raise Invalid("must be a region id such as cn-hangzhou")
    return text


def bucket_name(value: Any) -> str:
    text = as_text(value)
    if not _BUCKET_RE.fullmatch(text):
        raise Invalid("must be an OSS bucket name: 3-63 characters of a-z, 0-9 and '-', "
                       "starting and ending with a letter or digit")
    return text


def output_location(value: Any) -> str:
    text = as_text(value)
    if text.startswith("oss://"):
        split_oss_url(text)
    else:
        local_path(text)
    return text


def local_path(value: Any) -> str:
    text = as_text(value)
    if not text:
        raise Invalid("must not be empty")
    if "://" in text:
        raise Invalid("must be a local path (only output takes oss:// URLs)")
    if text.endswith(("/", "\\")):
        raise Invalid("must name a file, not a directory")
    return text


def shard_spec(value: Any) -> Shard:
    match = re.fullmatch(r"(\d+)\s*/\s*(\d+)", as_text(value))
    if not match:
        raise Invalid("must be INDEX/COUNT, e.g. 0/8")
    index, count = int(match[1]), int(match[2])
    if count < 1 or index >= count:
        raise Invalid("must be INDEX/COUNT with 0 <= INDEX < COUNT")
    return Shard(index, count)


def _key_text(item: Any, what: str) -> str:
    if not isinstance(item, str):
        raise Invalid(f"each {what} must be a string (got a YAML {type(item).__name__}; quote it)")
    if len(item.encode()) > 1023:
        raise Invalid(f"each {what} must be at most 1023 bytes (the OSS key limit)")
    return item


def prefixes(value: Any) -> tuple[str, ...]:
    """Key prefixes to list. Overlaps are refused: listing ``a/`` and ``a/b/`` would audit
    every object under ``a/b/`` twice."""
    items = tuple(_key_text(item, "prefix") for item in as_list(value))
    if not items:
        raise Invalid("must list at least one prefix ('' is the whole bucket)")
    for item in items:
        if item.startswith("/"):
            raise Invalid(f"prefix {item!r} must not start with '/' (OSS keys don't)")
    for i, outer in enumerate(items):
        for inner in items[i + 1:]:
            if inner.startswith(outer) or outer.startswith(inner):
                short, long = sorted((outer, inner), key=len)
                raise Invalid(f"prefixes overlap: {long!r} is inside {short!r}; keep one")
    return items


def patterns(value: Any) -> tuple[str, ...]:
    items = tuple(_key_text(item, "pattern") for item in as_list(value))
    if any(not item for item in items):
        raise Invalid("patterns must not be empty")
    return items


def as_list(value: Any) -> list[Any]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return list(value)
    raise Invalid("must be a list of strings")
