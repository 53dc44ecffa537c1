"""Durations and sizes as people write them (``90m``, ``1h30m``, ``250ms``, ``20MB``, ``10KiB``).

One parser per quantity for the whole program, so a setting, a server flag and a fault spec
read ``5m`` the same way. A bare number has no unit of its own: each caller says what it
means (``bare_unit``), because ``picscore run``'s fields end in ``_s`` (seconds) while the
server's latency options have always been milliseconds.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

__all__ = ["parse_duration", "parse_size", "format_size", "DURATION_EXAMPLES", "SIZE_EXAMPLES"]

DURATION_EXAMPLES = "300ms, 30s, 90m, 2h or 1h30m"
SIZE_EXAMPLES = "1048576, 10KiB or 20MB"

_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)")
_DURATION_RE = re.compile(r"(?:\d+(?:\.\d+)?\s*(?:ms|s|m|h|d)\s*)+")
_BARE_NUMBER_RE = re.compile(r"\d*\.?\d+")

_SIZE_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
               "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_SIZE_RE = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]*)")


def parse_duration(value: Any, *, bare_unit: Literal["s", "ms"] = "s") -> float:
    """Seconds from ``300ms``, ``30s``, ``90m``, ``2h``, ``1h 30m`` or ``1d``; a bare number
    (text, or a YAML int/float) is in ``bare_unit``. Raises ValueError naming the examples."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r} (use e.g. {DURATION_EXAMPLES})")
    if isinstance(value, int | float):
        seconds = float(value) * _DURATION_UNITS[bare_unit]
    elif isinstance(value, str):
        text = value.strip().lower()
        if _BARE_NUMBER_RE.fullmatch(text):
            seconds = float(text) * _DURATION_UNITS[bare_unit]
        elif _DURATION_RE.fullmatch(text):
            seconds = sum(float(n) * _DURATION_UNITS[u] for n, u in _DURATION_PART.findall(text))
        else:
            raise ValueError(f"not a duration: {value!r} (use e.g. {DURATION_EXAMPLES})")
    else:
        raise ValueError(f"not a duration: {value!r} (use e.g. {DURATION_EXAMPLES})")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"not a duration: {value!r} (must be >= 0, e.g. {DURATION_EXAMPLES})")
    return seconds


def parse_size(value: Any) -> int:
    """Bytes from ``1048576``, ``10KiB``, ``20MB``, ``1.5 GiB`` (KB/MB/GB are powers of 1000,
    KiB/MiB/GiB of 1024; decimal arithmetic, so ``1.1KB`` is exactly 1100). Raises ValueError."""
    problem = f"must be a size in bytes such as {SIZE_EXAMPLES}"
    if isinstance(value, bool):
        raise ValueError(problem)
    if isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(problem)
        amount = Decimal(repr(value))
    elif isinstance(value, str):
        match = _SIZE_RE.fullmatch(value.strip().lower())
        if not match or match[2] not in _SIZE_UNITS:
            raise ValueError(problem + " (units: B, KB, KiB, MB, MiB, GB, GiB, TB, TiB)")
        try:
            amount = Decimal(match[1]) * _SIZE_UNITS[match[2]]
        except InvalidOperation:  # pragma: no cover - the regex admits only decimals
            raise ValueError(problem) from None
    else:
        raise ValueError(problem)
    if amount < 0 or amount != amount.to_integral_value():
        raise ValueError(problem + " (a whole number of bytes, >= 0)")
    return int(amount)


def format_size(n: int) -> str:
    """Bytes for people: ``1536`` → ``1.5 KiB``, ``734003200`` → ``700.0 MiB`` (powers of 1024)."""
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        value /= 1024
        if value < 1024 or unit == "PiB":
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")  # pragma: no cover
