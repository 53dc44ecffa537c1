"""What both client children share: running paced loops until a deadline and reporting."""

from __future__ import annotations

import asyncio
import json
import time
import traceback
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from worker import eventloop

# -- client children: shared helpers --------------------------------------------------------------


def _run_until(deadline: float, loops: Iterable[Coroutine[Any, Any, None]], report: Callable[[], dict]) -> None:
    """Run ``loops`` until the wall-clock ``deadline`` (shared with the parent), printing
    ``report()`` as one JSON line a second, and a last line marked final."""

    async def main() -> list[BaseException]:
        tasks = [asyncio.create_task(loop) for loop in loops]

        async def reporter() -> None:
            while True:
                print(json.dumps(report()), flush=True)
                await asyncio.sleep(1.0)

        ticker = asyncio.create_task(reporter())
        await asyncio.wait(tasks, timeout=max(0.0, deadline - time.time()))
        for task in [*tasks, ticker]:
            task.cancel()
        results = await asyncio.gather(*tasks, ticker, return_exceptions=True)
        return [r for r in results if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError)]

    crashed = eventloop.run(main(), "auto")
    print(json.dumps({**report(), "final": True}), flush=True)
    if crashed:
        for exc in crashed:
            traceback.print_exception(exc)
        raise SystemExit(1)


class Pacer:
    """Spaces operation starts ``1/rate`` apart across all tasks: a steady load for ten minutes,
    not a race for the CPU that the server shares with its clients. Late slots are not made up."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.next_at = 0.0

    async def wait(self) -> None:
        if not self.interval:
            await asyncio.sleep(0)
            return
        now = asyncio.get_running_loop().time()
        slot = max(self.next_at, now)
        self.next_at = slot + self.interval
        if slot > now:
            await asyncio.sleep(slot - now)
