"""The adaptive concurrency limit (AIMD on calls in flight): how many calls may be on the wire,
and how the limit moves with the service's answers."""

from __future__ import annotations

import asyncio

import pytest

from worker.batch.concurrency import AdaptiveConcurrency


async def test_slots_beyond_the_limit_wait_until_one_is_released() -> None:
    limit = AdaptiveConcurrency(2)
    entered: list[int] = []
    release = asyncio.Event()

    async def call(n: int) -> None:
        async with limit.slot():
            entered.append(n)
            await release.wait()

    tasks = [asyncio.create_task(call(n)) for n in range(3)]
    await asyncio.sleep(0.01)
    assert entered == [0, 1] and limit.in_flight == 2
    release.set()
    await asyncio.gather(*tasks)
    assert entered == [0, 1, 2] and limit.in_flight == 0


async def test_one_decrease_per_generation_however_many_calls_were_throttled() -> None:
    limit = AdaptiveConcurrency(16, decrease=0.5)
    generations = []
    for _ in range(8):  # eight calls in flight together, all answered 503
        async with limit.slot() as generation:
            generations.append(generation)
    for generation in generations:
        limit.on_throttle(generation)
    assert (limit.limit, limit.decreases) == (8, 1)
    async with limit.slot() as later:  # a call sent under the new limit is a new signal
        pass
    limit.on_throttle(later)
    assert (limit.limit, limit.decreases) == (4, 2)


def test_the_limit_never_drops_below_the_floor() -> None:
    limit = AdaptiveConcurrency(4, floor=2, decrease=0.1)
    for _ in range(5):
        limit.on_throttle(limit.generation)
    assert limit.limit == 2


def test_successes_grow_the_limit_by_about_one_per_window_up_to_the_ceiling() -> None:
    limit = AdaptiveConcurrency(10, decrease=0.5)
    limit.on_throttle(limit.generation)
    assert limit.limit == 5
    for _ in range(6):  # a window of successes at limit 5 (each adds 1/limit)
        limit.on_success()
    assert limit.limit == 6
    for _ in range(1000):
        limit.on_success()
    assert limit.limit == 10


async def test_a_cancelled_waiter_leaves_no_slot_taken() -> None:
    limit = AdaptiveConcurrency(1)
    async with limit.slot():
        waiter = asyncio.create_task(limit.slot().__aenter__())
        await asyncio.sleep(0.01)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
    assert limit.in_flight == 0
    async with limit.slot():
        assert limit.in_flight == 1


@pytest.mark.parametrize(("ceiling", "floor", "decrease"), [(0, 1, 0.5), (4, 5, 0.5), (4, 0, 0.5), (4, 1, 1.0)])
def test_bad_settings_are_refused(ceiling: int, floor: int, decrease: float) -> None:
    with pytest.raises(ValueError):
        AdaptiveConcurrency(ceiling, floor=floor, decrease=decrease)
