"""Durations and sizes as people write them (worker/units.py)."""

from __future__ import annotations

import pytest

from worker.units import format_size, parse_duration, parse_size


@pytest.mark.parametrize("text, seconds", [
    ("150ms", 0.15), ("0.2s", 0.2), (" 3 s ", 3.0), ("30s", 30.0), ("90m", 5400.0),
    ("5m", 300.0), ("2h", 7200.0), ("1h30m", 5400.0), ("1h 30m", 5400.0), ("1.5h", 5400.0),
    ("1d", 86400.0), ("5M", 300.0), ("0s", 0.0), ("250MS", 0.25),
])
def test_duration_with_a_unit(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)
    assert parse_duration(text, bare_unit="ms") == pytest.approx(seconds)  # a unit wins


@pytest.mark.parametrize("value, seconds, millis", [
    ("150", 150.0, 0.15), ("0", 0.0, 0.0), (".5", 0.5, 0.0005), (" 2.5 ", 2.5, 0.0025),
    (90, 90.0, 0.09), (1.5, 1.5, 0.0015), (0, 0.0, 0.0),
])
def test_bare_number_is_in_the_callers_unit(value: object, seconds: float, millis: float) -> None:
    assert parse_duration(value) == pytest.approx(seconds)
    assert parse_duration(value, bare_unit="s") == pytest.approx(seconds)
    assert parse_duration(value, bare_unit="ms") == pytest.approx(millis)


@pytest.mark.parametrize("value", [
    "", "ms", "-5ms", "-1", "5 min", "1.2.3s", "abc", "5ms5", "1w", "s5", True, None, [],
    -1, float("inf"), float("nan"),
])
@pytest.mark.parametrize("bare_unit", ["s", "ms"])
def test_duration_refused(value: object, bare_unit: str) -> None:
    with pytest.raises(ValueError, match="not a duration") as info:
        parse_duration(value, bare_unit=bare_unit)  # type: ignore[arg-type]
    assert "e.g." in str(info.value)  # the message shows what would be accepted


@pytest.mark.parametrize("value, size", [
    ("1048576", 1048576), (1048576, 1048576), ("0", 0), ("200B", 200), ("10KiB", 10240),
    ("10 kib", 10240), ("64KB", 64000), ("20MB", 20_000_000), ("1MiB", 1 << 20),
    ("1.5 GiB", 1536 * (1 << 20)), ("1.1KB", 1100), ("2GB", 2_000_000_000), ("1TiB", 1 << 40),
    (2.0, 2),
])
def test_size(value: object, size: int) -> None:
    assert parse_size(value) == size


@pytest.mark.parametrize("value", [
    "", "-1", "10XB", "KiB", "1.5", "0.5B", "1e3", "ten", 1.5, -1, True, None, float("inf"),
])
def test_size_refused(value: object) -> None:
    with pytest.raises(ValueError, match="must be a size in bytes"):
        parse_size(value)


@pytest.mark.parametrize(("size", "text"), [
    (0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (1536, "1.5 KiB"), (700 * 2**20, "700.0 MiB"),
    (3 * 2**40, "3.0 TiB"), (2**60, "1024.0 PiB"),
])
def test_format_size(size: int, text: str) -> None:
    assert format_size(size) == text
