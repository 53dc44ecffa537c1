"""The paced caller's reactions to throttles: which limit a throttle shrinks, and that throttles
do not use up the attempts. The SDK errors are built as the SDK builds them (no server needed:
what is tested is the reaction to an answer, not the wire)."""

from __future__ import annotations

import pytest
from alibabacloud_oss_v2 import exceptions as sdk

from worker.batch.calls import PacedCaller
from worker.batch.concurrency import AdaptiveConcurrency
from worker.batch.ratelimit import AdaptiveLimiter
from worker.oss.retry import RetryPolicy

FAST = RetryPolicy(attempts=2, total_s=5.0, base_s=0.001, max_backoff_s=0.002)


def service_error(status: int, code: str) -> sdk.OperationError:
    err = sdk.ServiceError(status_code=status, code=code, message="busy", request_id="R", ec=None, timestamp=None,
                           request_target="GET /b/k", snapshot=b"", headers={}, error_fileds={})
    return sdk.OperationError(name="GetObject", error=err)


def answers(*outcomes: object):
    """A call that raises or returns ``outcomes`` in turn."""
    pending = list(outcomes)

    async def call() -> object:
        outcome = pending.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome
    return call


@pytest.mark.parametrize(("status", "code", "rate_slowed"), [
    (503, "CpuLimitExceeded", False),       # too many at once: only the concurrency shrinks
    (503, "TotalQpsLimitExceeded", True),   # too many per second: the rate is slowed as well
    (429, "TooManyRequests", True),
])
async def test_each_throttle_shrinks_the_limit_it_speaks_of(status: int, code: str, rate_slowed: bool) -> None:
    limiter, concurrency = AdaptiveLimiter(None), AdaptiveConcurrency(16, decrease=0.5)
    caller = PacedCaller(limiter, FAST, concurrency=concurrency)
    outcome = await caller.call(answers(service_error(status, code), "ok"))
    assert (outcome.value, outcome.attempts, outcome.throttled) == ("ok", 2, 1)
    assert concurrency.decreases == 1
    assert (limiter.throttles > 0) is rate_slowed


async def test_throttles_do_not_use_up_the_attempts_but_other_failures_do() -> None:
    caller = PacedCaller(AdaptiveLimiter(None), FAST, concurrency=AdaptiveConcurrency(4))
    busy = service_error(503, "CpuLimitExceeded")
    outcome = await caller.call(answers(busy, busy, busy, busy, "ok"))
    assert (outcome.value, outcome.attempts, outcome.throttled) == ("ok", 5, 4)
    broken = service_error(500, "InternalError")
    failed = await caller.call(answers(broken, broken, "never reached"))
    assert (failed.value, failed.attempts, failed.failure.code) == (None, FAST.attempts, "InternalError")
