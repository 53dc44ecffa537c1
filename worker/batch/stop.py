"""When and how a batch command stops: signals, the time budget, and fatal failures.

The first SIGTERM/SIGINT (or the time budget) is a *soft* stop: the source stops, requests in
flight get ``grace_s`` to finish, what was collected is written, and the command exits with a
resumable code. A second signal is a *hard* stop: in-flight work is cancelled at once. Either
way the checkpoint stays consistent, because it only ever changes in the transaction that also
records a part file.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import ExitCode

__all__ = ["StopControl", "install_signal_handlers", "watch_time_budget"]


@dataclass
class StopControl:
    """Why and how the command is stopping, and the fatal failure that stopped it, if any."""

    reason: ExitCode | None = None
    hard: bool = False
    event: asyncio.Event = field(default_factory=asyncio.Event)
    #: (exit code, message) when the command cannot go on: rejected credentials, a failed source.
    failure: tuple[ExitCode, str] | None = None

    @property
    def requested(self) -> bool:
        return self.event.is_set()

    def request(self, reason: ExitCode) -> None:
        """Ask to stop; asking a second time makes the stop hard."""
        if self.event.is_set():
            self.hard = True
        self.reason = self.reason or reason
        self.event.set()

    def fail(self, code: ExitCode, message: str, *, hard: bool = False) -> None:
        """Stop because the command cannot go on; the first failure is the one reported."""
        if self.failure is None:
            self.failure = (code, message)
        self.request(code)
        if hard:
            self.hard = True


def install_signal_handlers(stop: StopControl) -> Callable[[], None]:
    """Route SIGTERM and SIGINT to ``stop``; returns the function that removes the handlers."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.request, ExitCode.INTERRUPTED)

    def remove() -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    return remove


async def watch_time_budget(stop: StopControl, budget_s: float | None, started: float) -> None:
    """Request a stop when ``budget_s`` seconds have passed since ``started`` (monotonic)."""
    if budget_s is not None:
        await asyncio.sleep(max(0.0, budget_s - (time.monotonic() - started)))
        stop.request(ExitCode.TIME_BUDGET)
