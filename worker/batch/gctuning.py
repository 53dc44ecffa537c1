"""Garbage-collector settings for the length of a run: fewer, cheaper collections.

Every scoring call allocates thousands of short-lived objects (SDK models, aiohttp requests
and headers, signer strings), so CPython's default first-generation threshold (700
allocations) runs a collection every few calls, and each full collection walks every object
the process has ever imported (pyarrow, the SDK, prometheus-client). Raising the thresholds
makes a run at zero service latency measurably faster (README "Performance"). The garbage is
mostly acyclic and freed by reference counting anyway; the thresholds only decide how often
cycles are looked for, so memory stays bounded.

``gc.freeze()`` moves everything alive at the start (modules, configuration, clients) to a
permanent generation that collections skip, as long-lived CPython services commonly do.
Both are undone on exit, so a run started in-process (tests) leaves the interpreter as it was.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

__all__ = ["RUN_THRESHOLDS", "throughput_gc"]

#: (generation 0 allocations, generation 1 and 2 collections) between collections during a run.
RUN_THRESHOLDS = (50_000, 20, 20)


@contextlib.contextmanager
def throughput_gc(thresholds: tuple[int, int, int] = RUN_THRESHOLDS) -> Iterator[None]:
    """Raise the collector's thresholds and freeze the objects alive now, until the block ends."""
    previous = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*thresholds)
    try:
        yield
    finally:
        gc.set_threshold(*previous)
        gc.unfreeze()
