"""Which asyncio event loop ``picscore run`` and ``picscore serve`` run on.

Both commands spend a good share of their CPU in the event loop itself: socket reads and
writes, timers, task switches. uvloop (libuv underneath) does that work in C, and the server's
timers fire closer to their deadline on it (README "Performance" has the measured difference).

``auto`` (the default) takes uvloop where it is installed — a dependency on Linux and macOS —
and the standard loop elsewhere (uvloop has no Windows build). ``asyncio`` forces the standard
loop, for debugging or to compare; ``uvloop`` insists, and fails clearly without it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from .errors import ConfigError

__all__ = ["EVENT_LOOPS", "EventLoopUnavailable", "loop_factory", "run", "loop_name"]

T = TypeVar("T")

EVENT_LOOPS = ("auto", "uvloop", "asyncio")


class EventLoopUnavailable(ConfigError):
    """The requested event loop cannot be used here (``uvloop`` asked for but not installed)."""

    def __init__(self, problem: str) -> None:
        super().__init__("event_loop", problem)


def loop_factory(choice: str = "auto") -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The factory for :class:`asyncio.Runner`: ``None`` means the standard loop."""
    if choice not in EVENT_LOOPS:
        raise ValueError(f"event loop must be one of {', '.join(EVENT_LOOPS)}, got {choice!r}")
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise EventLoopUnavailable("event loop uvloop is not installed here (pip install uvloop, "
                                       "or use --event-loop asyncio)") from None
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T], choice: str = "auto") -> T:
    """``asyncio.run(main)`` on the chosen loop."""
    try:
        factory = loop_factory(choice)
    except BaseException:
        main.close()  # never awaited: close it so Python does not warn about it
        raise
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


def loop_name(loop: asyncio.AbstractEventLoop | None = None) -> str:
    """``uvloop`` or ``asyncio``: which loop is running (for the start-up log line)."""
    loop = loop or asyncio.get_running_loop()
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"
