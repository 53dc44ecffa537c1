"""The run's garbage-collector settings apply inside the block only."""

from __future__ import annotations

import gc

import pytest

from worker.batch.gctuning import RUN_THRESHOLDS, throughput_gc


def test_thresholds_raised_inside_and_restored_after() -> None:
    before = gc.get_threshold()
    assert before != RUN_THRESHOLDS
    with throughput_gc():
        assert gc.get_threshold() == RUN_THRESHOLDS
        assert gc.get_freeze_count() > 0  # what was alive at the start is out of the collections' way
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_restored_when_the_run_raises() -> None:
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), throughput_gc():
        raise RuntimeError("run failed")
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_the_collector_stays_on() -> None:
    """Cycles must still be found during a run of millions of objects (not gc.disable())."""
    with throughput_gc():
        assert gc.isenabled()
