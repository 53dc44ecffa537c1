"""Fault injection for testing and benchmarking clients — off unless asked for.

One compact spec string, so a test or a benchmark states its faults in one line::

    picscore serve --faults "latency=50-200ms,503=0.1,429=0.05,reset=0.02,slow-body=64KiB/s,seed=7"

* ``latency=N[ms|s]`` or ``latency=A-Bms``: extra delay before answering (fixed, or uniform in a range);
* ``503=F`` / ``429=F``: that fraction of requests is answered ``503 CpuLimitExceeded`` /
  ``429 TooManyRequests`` (the 503 code can be changed with ``503-code=TotalQpsLimitExceeded``);
* ``reset=F``: that fraction of connections is reset (TCP RST) before any answer;
* ``slow-body=N[B|KiB|MiB]/s``: response bodies are trickled at that rate;
* ``scope=score|all``: which requests are affected (default: ``image/score`` only);
* ``seed=N``: make the random choices reproducible.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from .. import units

__all__ = ["FaultSpec", "FaultDecision", "parse_faults"]

_UNITS = {"": 1, "b": 1, "kib": 1024, "kb": 1000, "mib": 1 << 20, "mb": 1_000_000}


@dataclass(frozen=True)
class FaultDecision:
    """What to do to one request."""

    delay_s: float = 0.0
    status: int | None = None  # 503 or 429
    reset: bool = False


@dataclass
class FaultSpec:
    latency_s: tuple[float, float] = (0.0, 0.0)
    rate_503: float = 0.0
    rate_429: float = 0.0
    reset_rate: float = 0.0
    slow_body_bps: int | None = None
    scope: str = "score"
    code_503: str = "CpuLimitExceeded"
    seed: int | None = None

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    @property
    def active(self) -> bool:
        return any((self.latency_s[1] > 0, self.rate_503, self.rate_429, self.reset_rate,
                    self.slow_body_bps))

    def applies_to(self, is_score: bool) -> bool:
        return self.active and (self.scope == "all" or is_score)

    def decide(self) -> FaultDecision:
        """Draw this request's faults: one random draw picks reset, 503, 429 or none."""
        low, high = self.latency_s
        delay = low if high <= low else self._rng.uniform(low, high)
        draw = self._rng.random()
        if draw < self.reset_rate:
            return FaultDecision(delay, None, True)
        draw -= self.reset_rate
        if draw < self.rate_503:
            return FaultDecision(delay, 503)
        draw -= self.rate_503
        if draw < self.rate_429:
            return FaultDecision(delay, 429)
        return FaultDecision(delay)


def _latency(text: str) -> tuple[float, float]:
    """``'80ms'`` → (0.08, 0.08); ``'50-200ms'`` → (0.05, 0.2); a bare number is milliseconds.

    Only ``ms`` and ``s`` are accepted, as the ``--faults`` syntax above says, so ``latency=5m`` is
    refused rather than read as five minutes."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)(?:\s*-\s*([0-9]*\.?[0-9]+))?\s*(ms|s)?\s*", text)
    if not match:
        raise ValueError(f"fault latency={text}: use e.g. 80ms or 50-200ms")
    unit = match[3] or "ms"  # one unit for both ends of a range
    low = units.parse_duration(match[1], bare_unit=unit)
    high = units.parse_duration(match[2], bare_unit=unit) if match[2] else low
    if high < low:
        raise ValueError(f"fault latency={text}: the range is reversed")
    return (low, high)


def _fraction(name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"fault {name}={text}: not a number (use e.g. 0.1)") from None
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"fault {name}={text}: a fraction must be between 0 and 1")
    return value


def _rate(text: str) -> int:
    match = re.fullmatch(r"\s*([0-9]+)\s*([a-zA-Z]*)/s\s*", text)
    if not match or match[2].lower() not in _UNITS:
        raise ValueError(f"fault slow-body={text}: not a byte rate (use e.g. 64KiB/s)")
    rate = int(match[1]) * _UNITS[match[2].lower()]
    if rate <= 0:
        raise ValueError(f"fault slow-body={text}: the rate must be positive")
    return rate


def parse_faults(spec: str) -> FaultSpec:
    """Parse the ``--faults`` string; raises ``ValueError`` naming the bad item."""
    fields: dict[str, object] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"fault {item!r}: expected name=value")
        name, value = name.strip().lower(), value.strip()
        if name == "latency":
            fields["latency_s"] = _latency(value)
        elif name == "503":
            fields["rate_503"] = _fraction(name, value)
        elif name == "429":
            fields["rate_429"] = _fraction(name, value)
        elif name == "reset":
            fields["reset_rate"] = _fraction(name, value)
        elif name == "slow-body":
            fields["slow_body_bps"] = _rate(value)
        elif name == "scope":
            if value not in ("score", "all"):
                raise ValueError(f"fault scope={value}: must be 'score' or 'all'")
            fields["scope"] = value
        elif name == "503-code":
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9]{0,63}", value):
                raise ValueError(f"fault 503-code={value}: must be an OSS error code, e.g. TotalQpsLimitExceeded")
            fields["code_503"] = value
        elif name == "seed":
            try:
                fields["seed"] = int(value)
            except ValueError:
                raise ValueError(f"fault seed={value}: not an integer") from None
        else:
            raise ValueError(f"unknown fault {name!r} "
                             "(known: latency, 503, 429, reset, slow-body, scope, 503-code, seed)")
    spec_obj = FaultSpec(**fields)  # type: ignore[arg-type]
    if spec_obj.rate_503 + spec_obj.rate_429 + spec_obj.reset_rate > 1.0:
        raise ValueError("fault fractions 503 + 429 + reset add up to more than 1")
    return spec_obj
