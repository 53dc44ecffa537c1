"""``picscore run`` stopped the hard way and the polite way: ``kill -9`` at random moments,
SIGTERM, and a second SIGTERM during the grace period. After each, the checkpoint must be
consistent and ``--resume`` must finish the run with every object exactly once."""

from __future__ import annotations

import math
import random
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ACCESS_KEY_ID, ACCESS_KEY_SECRET
from tests.integration.runhelpers import (
    LocalBucket,
    assert_checkpoint_consistent,
    checkpoint_copy_state,
    content,
    fake_score,
    md5_etag,
    read_output,
    rows_by_key,
    run_cli,
    run_command,
    score_requests,
    server_requests,
    start_run,
    wait_for,
)
from worker.batch.listing_source import page_size_for
from worker.server.launch import ServerProcess, start_server
from worker.server.listing import decode_token

CRASH = "crash"
GLACIAL = "glacial"
N_CRASH = 60
#: Enough objects that, when listing ends, the work queue (64) cannot take one end-of-work
#: sentinel per consumer until consumers free room: a stop must not wait for that.
N_GLACIAL = 66
PAGED = "paged"
N_PAGED = 1200


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("run-crash-root")


@pytest.fixture(scope="module")
def buckets(root: Path) -> dict[str, LocalBucket]:
    crash, glacial = LocalBucket(root, CRASH), LocalBucket(root, GLACIAL)
    for n in range(N_CRASH):
        crash.put(f"c/{n:03d}.jpg" if n % 3 else f"c/sub/{n:03d} x+y.jpg", b"crash object %d" % n)
    for n in range(N_GLACIAL):
        glacial.put(f"g/{n:03d}.jpg", b"glacial object %d" % n)
    return {CRASH: crash, GLACIAL: glacial}


@pytest.fixture(scope="module")
def paged(root: Path) -> Iterator[tuple[ServerProcess, LocalBucket]]:
    """More objects than one ListObjectsV2 page at any concurrency (1000 at most), answered in 1 ms."""
    bucket = LocalBucket(root, PAGED)
    for n in range(N_PAGED):
        bucket.put(f"p/{n:04d}.jpg", b"paged object %d" % n)
    with start_server(root, {ACCESS_KEY_ID: ACCESS_KEY_SECRET},
                      args=["--fake-score-latency", "1ms", "--backlog", "64", "--log-level", "debug"]) as server:
        yield server, bucket


@pytest.fixture(scope="module")
def fast(root: Path, buckets) -> Iterator[ServerProcess]:
    with start_server(root, {ACCESS_KEY_ID: ACCESS_KEY_SECRET},
                      args=["--fake-score-latency", "20ms", "--log-level", "debug"]) as server:
        yield server


@pytest.fixture(scope="module")
def glacial(root: Path, buckets) -> Iterator[ServerProcess]:
    """Every score takes 20 s: a stop that waited for requests in flight would show."""
    with start_server(root, {ACCESS_KEY_ID: ACCESS_KEY_SECRET},
                      args=["--fake-score-latency", "20s", "--log-level", "debug"]) as server:
        yield server
        server.process.kill()  # a polite stop would wait for the 20 s answers still pending
        server.process.wait()


@pytest.fixture(scope="module")
def reference(fast: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """The uninterrupted run's rows: what every interrupted-and-resumed run must end with."""
    output = tmp_path_factory.mktemp("run-crash-ref") / "ref.parquet"
    done = run_cli(run_command(fast.url, CRASH, output, "--concurrency", "4"))
    assert done.returncode == 0, done.stderr
    return rows_by_key(read_output(output))


def _command(server: ServerProcess, bucket: str, output: Path, *extra: str) -> list[str]:
    return run_command(server.url, bucket, output, "--concurrency", "2", "--flush-rows", "5", *extra)


def _part_files(output: Path) -> int:
    parts = output.with_name(output.name + ".parts")
    try:
        return sum(1 for entry in parts.iterdir() if entry.name.startswith("part-"))
    except FileNotFoundError:
        return -1


def _assert_complete(output: Path, bucket: LocalBucket, reference: dict[str, dict] | None) -> None:
    rows = rows_by_key(read_output(output))  # fails on a duplicate
    assert set(rows) == set(bucket.objects)  # and on a missing object
    for key, row in rows.items():
        data = bucket.objects[key]
        assert (row["status"], row["score"], row["etag"], row["size"], row["attempts"]) == (
            "scored", fake_score(data), md5_etag(data), len(data), 1), key
        if reference is not None:
            assert content(row) == content(reference[key]), key


@pytest.mark.timeout(120)
@pytest.mark.parametrize("seed", [1, 2, 5, 6, 7])  # first kills after 1, 8, 11, 4 parts; one by time
def test_kill_9_at_random_moments_then_resume_gives_every_object_once(
        seed: int, fast: ServerProcess, buckets, reference, tmp_path: Path) -> None:
    rng = random.Random(seed)
    output = tmp_path / "out.parquet"
    checkpoint = Path(f"{output}.checkpoint.sqlite")
    command = _command(fast, CRASH, output)

    # First kill: after a random number of part files (-1: at a random time, maybe before the
    # checkpoint exists), plus a random few milliseconds — between, or in, part commits.
    parts_before_kill = rng.randint(-1, 11)
    run = start_run(command)
    if parts_before_kill < 0:
        time.sleep(rng.uniform(0.6, 1.4))
    else:
        wait_for(lambda: _part_files(output) >= parts_before_kill or run.poll() is not None, 60, "part files")
        time.sleep(rng.uniform(0.0, 0.05))
    run.kill()
    run.communicate()
    assert run.returncode == -signal.SIGKILL, run.returncode  # it was still running
    kills = [parts_before_kill]
    assert_checkpoint_consistent(checkpoint, output, tmp_path / "scratch")

    # Second kill, of the resumed run, at a random time (it may finish first: then it is 0).
    resumed = start_run([*command, "--resume"])
    time.sleep(rng.uniform(0.8, 2.2))
    resumed.kill()
    resumed.communicate()
    assert resumed.returncode in (0, -signal.SIGKILL)
    kills.append(resumed.returncode)
    assert_checkpoint_consistent(checkpoint, output, tmp_path / "scratch")

    final = run_cli([*command, "--resume"])
    assert final.returncode == 0, (kills, final.stdout, final.stderr)
    _assert_complete(output, buckets[CRASH], reference)
    assert not output.with_name(output.name + ".parts").exists()


@pytest.mark.timeout(120)
def test_sigterm_exits_4_with_a_consistent_checkpoint_and_resume_completes(
        fast: ServerProcess, buckets, reference, tmp_path: Path) -> None:
    output = tmp_path / "out.jsonl"
    checkpoint = Path(f"{output}.checkpoint.sqlite")
    command = _command(fast, CRASH, output)
    start = len(fast.output)
    run = start_run(command)
    wait_for(lambda: _part_files(output) >= 1 or run.poll() is not None, 60, "the first part")
    run.send_signal(signal.SIGTERM)
    stdout, stderr = run.communicate(timeout=30)

    assert run.returncode == 4, (stdout, stderr)
    assert "picscore run: stopped (interrupted); continue with --resume" in stdout.splitlines()
    assert "Traceback" not in stderr
    assert not output.exists()
    done = assert_checkpoint_consistent(checkpoint, output, tmp_path / "scratch")
    assert 5 <= len(done) < N_CRASH
    # Requests in flight were allowed to finish and their rows written: nothing scored was lost.
    wait_for(lambda: len(score_requests(fast, start)) >= len(done), 5, "the server log")
    time.sleep(0.2)
    assert len(score_requests(fast, start)) == len(done)

    start = len(fast.output)
    resumed = run_cli([*command, "--resume"])
    assert resumed.returncode == 0, resumed.stderr
    _assert_complete(output, buckets[CRASH], reference)
    time.sleep(0.2)
    assert len(score_requests(fast, start)) == N_CRASH - len(done)  # only the rest was scored again


@pytest.mark.timeout(120)
def test_second_sigterm_in_the_grace_period_exits_at_once_and_stays_resumable(
        glacial: ServerProcess, fast: ServerProcess, buckets, tmp_path: Path) -> None:
    output = tmp_path / "out.csv"
    checkpoint = Path(f"{output}.checkpoint.sqlite")
    start = len(glacial.output)
    run = start_run(run_command(glacial.url, GLACIAL, output, "--concurrency", "4", "--grace-s", "30",
                                "--flush-rows", "5"))
    try:
        wait_for(lambda: [r for r in server_requests(glacial, start) if r["key"] is None], 30, "the listing")
        time.sleep(1.0)  # the consumers' first requests are now in flight, for 20 s
        run.send_signal(signal.SIGTERM)
        with pytest.raises(subprocess.TimeoutExpired):  # the first signal waits for them (grace 30 s)
            run.wait(1.5)
        second = time.monotonic()
        run.send_signal(signal.SIGTERM)
        stdout, stderr = run.communicate(timeout=15)
        waited = time.monotonic() - second
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
    assert run.returncode == 4, (stdout, stderr)
    assert waited < 3.0, waited
    assert "picscore run: stopped (interrupted); continue with --resume" in stdout.splitlines()
    assert "Traceback" not in stderr
    assert assert_checkpoint_consistent(checkpoint, output, tmp_path / "scratch") == set()
    assert score_requests(glacial, start) == []  # none answered: no row can have been written

    # The endpoint is not part of the run's identity: resume against a fast server.
    resumed = run_cli(_command(fast, GLACIAL, output, "--resume"))
    assert resumed.returncode == 0, resumed.stderr
    _assert_complete(output, buckets[GLACIAL], None)


@pytest.mark.timeout(120)
def test_kill_9_after_the_first_listing_page_resumes_from_its_token(paged, tmp_path: Path) -> None:
    server, bucket = paged
    output = tmp_path / "out.parquet"
    checkpoint = Path(f"{output}.checkpoint.sqlite")
    command = run_command(server.url, PAGED, output, "--concurrency", "8", "--flush-rows", "100")
    run = start_run(command)
    # 1100 rows written: at pages of page_size_for(8) = 100, at least one page is wholly
    # committed, so the prefix's token has moved past it
    wait_for(lambda: _part_files(output) >= 11 or run.poll() is not None, 60, "11 part files")
    run.kill()
    run.communicate()
    assert run.returncode == -signal.SIGKILL
    done = assert_checkpoint_consistent(checkpoint, output, tmp_path / "scratch")
    assert 1000 <= len(done) < N_PAGED
    state = checkpoint_copy_state(checkpoint, tmp_path / "scratch")
    [(prefix, token, finished)] = state["listing"]
    assert prefix == "" and token and not finished
    # The server's token is the page's last key (opaque to the worker): every key up to it is done.
    listed_through = int(decode_token(token).removeprefix("p/").removesuffix(".jpg")) + 1
    assert {f"p/{n:04d}.jpg" for n in range(listed_through)} <= {key for key, _etag in done}
    pages_left = math.ceil((N_PAGED - listed_through) / page_size_for(8))

    start = len(server.output)
    resumed = run_cli([*command, "--resume"])
    assert resumed.returncode == 0, resumed.stderr
    _assert_complete(output, bucket, None)
    time.sleep(0.3)
    seen = server_requests(server, start)
    # Listing resumed at the token: only the pages after it were asked for again
    assert len([r for r in seen if r["key"] is None]) == pages_left
    assert len([r for r in seen if r["key"]]) == N_PAGED - len(done)  # each object scored once overall
