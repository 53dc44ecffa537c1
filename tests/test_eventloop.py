"""worker.eventloop: which loop a choice gives, and the errors for bad or unavailable choices."""

from __future__ import annotations

import asyncio
import sys

import pytest

from worker import eventloop


async def _running_loop_name() -> str:
    await asyncio.sleep(0)
    return eventloop.loop_name()


@pytest.mark.parametrize("choice, expected", [("auto", "uvloop"), ("uvloop", "uvloop"), ("asyncio", "asyncio")])
def test_each_choice_runs_on_its_loop(choice: str, expected: str) -> None:
    # uvloop is a dependency on Linux, so "auto" must pick it here
    assert eventloop.run(_running_loop_name(), choice) == expected


def test_run_returns_the_result_and_propagates_exceptions() -> None:
    async def boom() -> None:
        raise KeyError("x")

    async def answer() -> int:
        return 42

    assert eventloop.run(answer(), "asyncio") == 42
    with pytest.raises(KeyError):
        eventloop.run(boom(), "uvloop")


def test_an_unknown_choice_is_refused_naming_the_choices() -> None:
    with pytest.raises(ValueError, match="auto, uvloop, asyncio, got 'libuv'"):
        eventloop.loop_factory("libuv")


def test_without_uvloop_auto_falls_back_and_uvloop_fails_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    # uvloop cannot be uninstalled for one test: a None entry in sys.modules makes its import
    # fail exactly as on a machine without it (Windows, or a pip install --no-deps).
    monkeypatch.setitem(sys.modules, "uvloop", None)
    assert eventloop.loop_factory("auto") is None
    assert eventloop.run(_running_loop_name(), "auto") == "asyncio"
    main = _running_loop_name()
    with pytest.raises(eventloop.EventLoopUnavailable, match="uvloop is not installed"):
        eventloop.run(main, "uvloop")
    assert main.cr_frame is None  # closed, not left to warn "never awaited"
