"""``--fake-score-latency``: the latency is the service time counted from the request's arrival."""

from __future__ import annotations

import asyncio
import time

from worker.server.scoring_pool import FixedLatencyScorer


def _timed(scorer: FixedLatencyScorer, received: float | None) -> float:
    async def call() -> float:
        started = time.perf_counter()
        await scorer.score(b"key", received=received)
        return time.perf_counter() - started

    return asyncio.run(call())


def test_time_already_spent_on_the_request_counts_towards_the_latency() -> None:
    scorer = FixedLatencyScorer(0.5, capacity=4)
    # 0.4 s of the 0.5 s went on the request before scoring: the answer comes 0.5 s after arrival.
    # Measured from arrival, not from the call: starting the event loop takes time on a loaded
    # machine, and that time is part of the 0.4 s already spent (a loaded machine oversleeps,
    # it never undersleeps; so only the lower bound is tight).
    arrived = time.perf_counter()
    waited = _timed(scorer, received=arrived - 0.4)
    since_arrival = time.perf_counter() - arrived
    assert since_arrival >= 0.09 and waited < 0.35


def test_without_an_arrival_time_the_whole_latency_is_waited() -> None:
    assert _timed(FixedLatencyScorer(0.2, capacity=4), received=None) >= 0.19


def test_a_request_already_late_is_answered_at_once_with_the_same_score() -> None:
    scorer = FixedLatencyScorer(0.3, capacity=4)
    assert _timed(scorer, received=time.perf_counter() - 1.0) < 0.25
    first = asyncio.run(scorer.score(b"same bytes", received=0.0))
    assert first == asyncio.run(scorer.score(b"same bytes"))
    assert 0.0 <= first.overall <= 1.0
