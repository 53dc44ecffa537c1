"""The scoring pool outlives its workers (worker/server/scoring_pool.py).

A scoring worker can die at any moment — the OOM killer, a crash in a native decoder — and
``concurrent.futures`` then marks the whole pool broken. The server must notice, build a new
pool and keep scoring; before issue 15 every later ``image/score`` answered 500 until restart.
Tested on a real ``picscore serve`` with a real SIGKILL, because the failure lives in the
interplay of the event loop, the executor's manager thread and the forkserver.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import resource
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import ACCESS_KEY_ID, ACCESS_KEY_SECRET, BUCKET, make_jpeg
from tests.integration.rawclient import RawResponse, signed
from tests.quality.malformed import solid_png
from worker.server.launch import ServerProcess, start_server
from worker.server.scoring_pool import ScoreResult, limit_address_space, score_bytes

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

KEY = "pool/photo.jpg"


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server of its own: this test kills its workers, which must not disturb other tests."""
    (tmp_path / BUCKET).mkdir()
    with start_server(tmp_path, {ACCESS_KEY_ID: ACCESS_KEY_SECRET}, args=["--workers", "2"]) as proc:
        assert signed(proc.url, "PUT", KEY, body=make_jpeg(seed=11)).status == 200
        yield proc


def _children(pid: int) -> list[int]:
    """Direct children of ``pid``, from the kernel's own list (no psutil)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with open(task / "children") as listing:
            found.extend(int(child) for child in listing.read().split())
    return found


def _cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def scoring_workers(server_pid: int) -> list[int]:
    """The pool's worker processes: children of the server's forkserver (the pool starts its
    workers through multiprocessing's forkserver, so they are the server's grandchildren)."""
    forkservers = [child for child in _children(server_pid) if "forkserver" in _cmdline(child)]
    return [worker for forkserver in forkservers for worker in _children(forkserver)]


def _score(server: ServerProcess) -> RawResponse:
    return signed(server.url, "GET", KEY, process="image/score")


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_scoring_recovers_after_an_idle_worker_is_killed(server: ServerProcess) -> None:
    """Issue 15's case: one idle worker killed, the pool broken before the next request. That
    request did not break it, so it is scored on a new pool — no error at all — and so are the
    ones after; plain object requests never noticed."""
    assert _score(server).status == 200
    workers = scoring_workers(server.process.pid)
    assert len(workers) == 2, workers
    os.kill(workers[0], signal.SIGKILL)
    # The executor marks itself broken, then terminates the other worker: once both are gone,
    # the next submit is sure to meet the broken pool.
    deadline = time.monotonic() + 10
    while not all(_gone(worker) for worker in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(_gone(worker) for worker in workers)

    answers = [_score(server) for _ in range(4)]
    assert [answer.status for answer in answers] == [200] * 4, [(a.status, a.code, a.body[:300]) for a in answers]
    assert 0.0 <= json.loads(answers[0].body)["ImageScore"]["OverallQualityScore"] <= 1.0
    assert signed(server.url, "GET", KEY).status == 200
    assert server.process.poll() is None
    assert not set(workers) & set(scoring_workers(server.process.pid))  # a new pool, new processes


def test_scoring_recovers_after_every_worker_is_killed_twice(server: ServerProcess) -> None:
    """The pool is rebuilt each time it breaks, not only the first time. The next request may
    race the executor noticing the deaths: then it is told to retry (503), once."""
    for _ in range(2):
        assert _score(server).status == 200
        for worker in scoring_workers(server.process.pid):
            os.kill(worker, signal.SIGKILL)
        statuses = [_score(server).status for _ in range(3)]
        assert statuses in ([200] * 3, [503, 200, 200]), statuses


def _rss_mib(pid: int) -> float:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return 0.0
    return next((int(line.split()[1]) / 1024 for line in status.splitlines() if line.startswith("VmRSS:")), 0.0)


def test_a_request_whose_worker_dies_under_it_gets_a_retryable_503(server: ServerProcess) -> None:
    """The worker dies while decoding this very picture. It may be the picture that killed it,
    so the server does not try it again on the new pool: 503, which clients retry — and the
    next request is scored."""
    big = "pool/big.png"
    # 121 Mpx within the decode budget: seconds of decoding, and a worker growing past 400 MB.
    assert signed(server.url, "PUT", big, body=solid_png(11_000, 11_000, 2)).status == 200
    with ThreadPoolExecutor(1) as client:
        pending = client.submit(signed, server.url, "GET", big, process="image/score")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not pending.done():
            workers = scoring_workers(server.process.pid)
            if any(_rss_mib(worker) > 400 for worker in workers):
                break
            time.sleep(0.02)
        assert not pending.done(), "the picture was scored before its worker could be killed"
        for worker in workers:
            os.kill(worker, signal.SIGKILL)
        answer = pending.result(timeout=30)
    assert (answer.status, answer.code) == (503, "CpuLimitExceeded"), answer.body[:300]
    assert _score(server).status == 200


def _address_space_limit(pid: int) -> str:
    """The soft RLIMIT_AS of ``pid`` as /proc shows it: bytes, or ``unlimited``."""
    line = next(line for line in Path(f"/proc/{pid}/limits").read_text().splitlines()
                if line.startswith("Max address space"))
    return line.split()[3]


def test_scoring_workers_run_under_an_address_space_limit(server: ServerProcess) -> None:
    """A backstop behind the decode budget: a worker cannot grow without bound (and with it the
    machine into the OOM killer); the server itself is not limited."""
    workers = scoring_workers(server.process.pid)
    assert workers
    for worker in workers:
        limit = _address_space_limit(worker)
        assert limit != "unlimited" and int(limit) < 8 * 2**30, limit
    assert _address_space_limit(server.process.pid) == "unlimited"


def test_over_the_limit_the_picture_fails_not_the_worker() -> None:
    """Under a tight limit, a picture the budget admits but the limit cannot hold is answered
    ImageTooLarge by a worker that goes on scoring: the model loads and scores under the limit."""
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(1, mp_context=context, initializer=limit_address_space,
                             initargs=(384 * 2**20,)) as pool:
        soft, _ = pool.submit(resource.getrlimit, resource.RLIMIT_AS).result()
        assert soft != resource.RLIM_INFINITY
        assert isinstance(pool.submit(score_bytes, make_jpeg(seed=1)).result(), ScoreResult)
        too_big = pool.submit(score_bytes, solid_png(11_000, 11_000, 2)).result()
        assert too_big[:2] == ("ImageTooLarge", "0040-00000012"), too_big
        assert isinstance(pool.submit(score_bytes, make_jpeg(seed=2)).result(), ScoreResult)
