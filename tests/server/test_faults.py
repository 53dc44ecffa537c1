"""Fault-injection spec parsing and decisions (worker/server/faults.py)."""

from __future__ import annotations

import math

import pytest

from worker.server.faults import FaultDecision, FaultSpec, parse_faults


def test_empty_spec_is_inactive() -> None:
    for spec in ("", " ", ",", " , ,"):
        parsed = parse_faults(spec)
        assert parsed == FaultSpec()
        assert not parsed.active
        assert not parsed.applies_to(is_score=True)
        assert not parsed.applies_to(is_score=False)


def test_every_item() -> None:
    spec = parse_faults("latency=50-200ms,503=0.1,429=0.05,reset=0.02,slow-body=64KiB/s,"
                        "scope=all,503-code=TotalQpsLimitExceeded,seed=7")
    assert spec.latency_s == (0.05, 0.2)
    assert (spec.rate_503, spec.rate_429, spec.reset_rate) == (0.1, 0.05, 0.02)
    assert spec.slow_body_bps == 65536
    assert spec.scope == "all"
    assert spec.code_503 == "TotalQpsLimitExceeded"
    assert spec.seed == 7
    assert spec.active


def test_defaults_and_whitespace_and_case() -> None:
    spec = parse_faults(" LATENCY = 80 , 503 = 0.5 , Scope = score ")
    assert spec.latency_s == (0.08, 0.08)
    assert spec.rate_503 == 0.5
    assert spec.scope == "score"
    assert spec.code_503 == "CpuLimitExceeded"
    assert spec.seed is None


def test_later_items_win() -> None:
    assert parse_faults("503=0.1,503=0.2").rate_503 == 0.2


@pytest.mark.parametrize("text, expected", [
    ("80ms", (0.08, 0.08)), ("80", (0.08, 0.08)), ("0.5s", (0.5, 0.5)), ("2s", (2.0, 2.0)),
    ("50-200ms", (0.05, 0.2)), ("50 - 200", (0.05, 0.2)), ("1-2s", (1.0, 2.0)), (".5s", (0.5, 0.5)),
    ("0", (0.0, 0.0)), ("5-5ms", (0.005, 0.005)),
])
def test_latency_units_and_ranges(text: str, expected: tuple[float, float]) -> None:
    low, high = parse_faults(f"latency={text}").latency_s
    assert (low, high) == pytest.approx(expected)


@pytest.mark.parametrize("text, expected", [
    ("64KiB/s", 65536), ("64kib/s", 65536), ("64KB/s", 64000), ("1MiB/s", 1 << 20),
    ("2MB/s", 2_000_000), ("200B/s", 200), ("200/s", 200), ("10 KiB/s", 10240),
])
def test_slow_body_units(text: str, expected: int) -> None:
    assert parse_faults(f"slow-body={text}").slow_body_bps == expected


@pytest.mark.parametrize("name, field", [("503", "rate_503"), ("429", "rate_429"), ("reset", "reset_rate")])
@pytest.mark.parametrize("value", ["0", "1", "0.25", "1e-3", "1.0"])
def test_fractions(name: str, field: str, value: str) -> None:
    assert getattr(parse_faults(f"{name}={value}"), field) == float(value)


@pytest.mark.parametrize("spec, message", [
    ("latency", "fault 'latency': expected name=value"),
    ("503", "fault '503': expected name=value"),
    ("latency=", "fault latency=: use e.g. 80ms or 50-200ms"),
    ("latency=fast", "fault latency=fast: use e.g. 80ms or 50-200ms"),
    ("latency=-5ms", "fault latency=-5ms: use e.g. 80ms or 50-200ms"),
    ("latency=50ms-200ms", "fault latency=50ms-200ms: use e.g. 80ms or 50-200ms"),
    ("latency=5m", "fault latency=5m: use e.g. 80ms or 50-200ms"),
    ("latency=200-50ms", "fault latency=200-50ms: the range is reversed"),
    ("503=1.5", "fault 503=1.5: a fraction must be between 0 and 1"),
    ("503=-0.1", "fault 503=-0.1: a fraction must be between 0 and 1"),
    ("503=nan", "fault 503=nan: a fraction must be between 0 and 1"),
    ("503=lots", "fault 503=lots: not a number (use e.g. 0.1)"),
    ("429=", "fault 429=: not a number (use e.g. 0.1)"),
    ("429=2", "fault 429=2: a fraction must be between 0 and 1"),
    ("reset=x", "fault reset=x: not a number (use e.g. 0.1)"),
    ("reset=inf", "fault reset=inf: a fraction must be between 0 and 1"),
    ("slow-body=fast", "fault slow-body=fast: not a byte rate (use e.g. 64KiB/s)"),
    ("slow-body=64KiB", "fault slow-body=64KiB: not a byte rate (use e.g. 64KiB/s)"),
    ("slow-body=64GiB/s", "fault slow-body=64GiB/s: not a byte rate (use e.g. 64KiB/s)"),
    ("slow-body=1.5MiB/s", "fault slow-body=1.5MiB/s: not a byte rate (use e.g. 64KiB/s)"),
    ("slow-body=0KiB/s", "fault slow-body=0KiB/s: the rate must be positive"),
    ("scope=everything", "fault scope=everything: must be 'score' or 'all'"),
    ("scope=", "fault scope=: must be 'score' or 'all'"),
    ("503-code=", "fault 503-code=: must be an OSS error code, e.g. TotalQpsLimitExceeded"),
    ("503-code=Bad Code", "fault 503-code=Bad Code: must be an OSS error code, e.g. TotalQpsLimitExceeded"),
    ("503-code=<x>", "fault 503-code=<x>: must be an OSS error code, e.g. TotalQpsLimitExceeded"),
    ("seed=abc", "fault seed=abc: not an integer"),
    ("seed=1.5", "fault seed=1.5: not an integer"),
    ("explode=1", "unknown fault 'explode' (known: latency, 503, 429, reset, slow-body, scope, 503-code, seed)"),
    ("503=0.5,429=0.4,reset=0.2", "fault fractions 503 + 429 + reset add up to more than 1"),
])
def test_bad_specs_name_the_item(spec: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_faults(spec)
    assert str(info.value) == message


def test_fractions_may_add_up_to_exactly_one() -> None:
    spec = parse_faults("503=0.5,429=0.25,reset=0.25")
    assert {spec.decide().status for _ in range(200)} <= {503, 429, None}


@pytest.mark.parametrize("spec, is_score, applies", [
    ("503=0.1", True, True), ("503=0.1", False, False),
    ("503=0.1,scope=score", False, False), ("503=0.1,scope=all", False, True),
    ("503=0.1,scope=all", True, True), ("latency=10ms", True, True), ("latency=0ms", True, False),
    ("slow-body=1KiB/s,scope=all", False, True), ("reset=0.5", True, True), ("429=0.5", False, False),
    ("scope=all", False, False), ("scope=all,seed=3", True, False), ("503-code=X", True, False),
])
def test_scope(spec: str, is_score: bool, applies: bool) -> None:
    assert parse_faults(spec).applies_to(is_score=is_score) is applies


def _within(count: int, n: int, p: float) -> bool:
    """Within 5 standard deviations of the binomial mean."""
    return abs(count - n * p) <= 5 * math.sqrt(n * p * (1 - p)) + 1


def test_decide_frequencies() -> None:
    spec = parse_faults("503=0.1,429=0.05,reset=0.02,seed=7")
    n = 10_000
    decisions = [spec.decide() for _ in range(n)]
    resets = sum(d.reset for d in decisions)
    s503 = sum(d.status == 503 for d in decisions)
    s429 = sum(d.status == 429 for d in decisions)
    clean = sum(d == FaultDecision() for d in decisions)
    assert resets + s503 + s429 + clean == n
    assert all(not (d.reset and d.status) for d in decisions)
    assert _within(resets, n, 0.02), resets
    assert _within(s503, n, 0.1), s503
    assert _within(s429, n, 0.05), s429
    assert _within(clean, n, 0.83), clean


def test_decide_is_reproducible_with_a_seed() -> None:
    first = parse_faults("latency=10-90ms,503=0.3,429=0.3,seed=42")
    second = parse_faults("latency=10-90ms,503=0.3,429=0.3,seed=42")
    other = parse_faults("latency=10-90ms,503=0.3,429=0.3,seed=43")
    a = [first.decide() for _ in range(500)]
    assert a == [second.decide() for _ in range(500)]
    assert a != [other.decide() for _ in range(500)]


def test_latency_draws() -> None:
    spec = parse_faults("latency=50-150ms,seed=1")
    delays = [spec.decide().delay_s for _ in range(10_000)]
    assert min(delays) >= 0.05 and max(delays) <= 0.15
    assert sum(delays) / len(delays) == pytest.approx(0.1, abs=0.002)
    assert sum(d < 0.1 for d in delays) == pytest.approx(5000, abs=250)
    fixed = parse_faults("latency=80ms")
    assert {fixed.decide().delay_s for _ in range(100)} == {0.08}
    assert {d.status for d in (fixed.decide() for _ in range(100))} == {None}


def test_all_or_nothing_rates() -> None:
    assert {parse_faults("503=1").decide().status for _ in range(100)} == {503}
    assert {parse_faults("429=1").decide().status for _ in range(100)} == {429}
    assert all(parse_faults("reset=1").decide().reset for _ in range(100))
    assert parse_faults("503=0").decide() == FaultDecision()
