"""``picscore run`` against a misbehaving service: throttling and resets, refused credentials,
and an object deleted between listing and scoring."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ACCESS_KEY_ID, ACCESS_KEY_SECRET
from tests.integration.runhelpers import (
    FakePushgateway,
    LocalBucket,
    fake_score,
    md5_etag,
    read_output,
    rows_by_key,
    run_cli,
    run_command,
    run_env,
    score_requests,
    server_requests,
    start_run,
    wait_for,
)
from worker.server.launch import ServerProcess, start_server

FAULTY = "faulty"
SLOW = "slow-objects"
FAULTS = "503=0.3,429=0.1,reset=0.05,latency=10ms,seed=3"
FAST_RETRIES = ["--retry-base-s", "0.01", "--retry-max-backoff-s", "0.1"]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("run-faults-root")


@pytest.fixture(scope="module")
def faulty(root: Path) -> Iterator[tuple[ServerProcess, LocalBucket]]:
    bucket = LocalBucket(root, FAULTY)
    for n in range(24):
        bucket.put(f"f/{n:02d}.jpg", b"object %d" % n)
    with start_server(root, {ACCESS_KEY_ID: ACCESS_KEY_SECRET},
                      args=["--faults", FAULTS, "--fake-score-latency", "5ms", "--backlog", "64"]) as server:
        yield server, bucket


@pytest.fixture(scope="module")
def slow(root: Path) -> Iterator[tuple[ServerProcess, LocalBucket]]:
    """300 ms per score, and every request logged (the tests count what the server saw)."""
    bucket = LocalBucket(root, SLOW)
    for n in range(4):
        bucket.put(f"m/{n}.jpg", b"slow object %d" % n)
    with start_server(root, {ACCESS_KEY_ID: ACCESS_KEY_SECRET},
                      args=["--fake-score-latency", "300ms", "--log-level", "debug"]) as server:
        yield server, bucket


@pytest.mark.timeout(120)
def test_throttling_and_resets_are_retried_until_every_object_is_scored(faulty, tmp_path: Path) -> None:
    server, bucket = faulty
    output = tmp_path / "out.parquet"
    gateway = FakePushgateway()
    try:
        done = run_cli(run_command(server.url, FAULTY, output, "--concurrency", "4", "--retry-attempts", "30",
                                   "--pushgateway", gateway.url, *FAST_RETRIES))
        assert done.returncode == 0, done.stderr
        rows = rows_by_key(read_output(output))
        assert set(rows) == set(bucket.objects)
        for key, row in rows.items():
            assert (row["status"], row["score"], row["etag"]) == (
                "scored", fake_score(bucket.objects[key]), md5_etag(bucket.objects[key])), key
        attempts = [row["attempts"] for row in rows.values()]
        retried = sum(attempts) - len(rows)
        # 45% of tries fail: with 24 objects, retries are certain (and the run still ends at 0)
        assert retried > 0 and max(attempts) > 1

        # The final metrics (pushed, as a CronJob would) count exactly the retries the rows report
        # (faults hit image/score only, so no listing retries); 503 and 429 answers are "throttled".
        method, path, _ = gateway.pushes[-1]
        assert (method, path) == ("POST", "/metrics/job/picscore/shard/0-of-1")
        samples = gateway.samples()
        assert gateway.total("picscore_retries_total") == retried
        reasons = {dict(labels)["reason"] for (name, labels), value in samples.items()
                   if name == "picscore_retries_total" and value}
        assert "throttled" in reasons and reasons <= {"throttled", "connection"}
        assert samples[("picscore_objects_total", (("status", "scored"),))] == 24
        assert samples[("picscore_run_success", ())] == 1
        assert "  scored          24" in done.stdout.splitlines()
        assert "  failed           0" in done.stdout.splitlines()
    finally:
        gateway.close()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("key_id, secret", [
    (ACCESS_KEY_ID, "WrongSecretWrongSecret0123456789"),
    ("LTAI5tUNKNOWNKEYID", ACCESS_KEY_SECRET),
], ids=["wrong-secret", "unknown-key-id"])
def test_refused_credentials_exit_3_at_once(slow, tmp_path: Path, key_id: str, secret: str) -> None:
    server, _ = slow
    output = tmp_path / "out.parquet"
    start = len(server.output)
    started = time.monotonic()
    # Backoffs of 2 s: a single retry would show in the time, and in the server's log.
    done = run_cli(run_command(server.url, SLOW, output, "--retry-base-s", "2", "--retry-max-backoff-s", "2"),
                   env=run_env(secret, key_id=key_id))
    elapsed = time.monotonic() - started

    assert done.returncode == 3, (done.stdout, done.stderr)
    assert "picscore run: credentials refused" in done.stderr
    assert "403" in done.stderr
    for text in (done.stdout, done.stderr):
        assert secret not in text and ACCESS_KEY_SECRET not in text
    assert "Traceback" not in done.stderr
    assert not output.exists()
    assert elapsed < 15
    wait_for(lambda: server_requests(server, start), 5, "the refused request in the server log")
    time.sleep(0.3)  # anything else the run sent would be logged by now
    seen = server_requests(server, start)
    assert [(r["method"], r["key"], r["status"]) for r in seen] == [("GET", None, 403)]  # one listing try


@pytest.mark.timeout(60)
def test_object_deleted_after_listing_is_a_missing_row(slow, tmp_path: Path) -> None:
    server, bucket = slow
    output = tmp_path / "out.csv"
    objects = dict(bucket.objects)
    victim = "m/3.jpg"  # listed last; with one request at a time it is scored ~0.9 s after the listing
    start = len(server.output)
    run = start_run(run_command(server.url, SLOW, output, "--concurrency", "1"))
    try:
        wait_for(lambda: [r for r in server_requests(server, start) if r["key"] is None and r["status"] == 200],
                 30, "the listing")
        bucket.delete(victim)
        stdout, stderr = run.communicate(timeout=30)
    finally:
        if run.poll() is None:
            run.kill()
        bucket.put(victim, objects[victim])
    assert run.returncode == 0, stderr  # a deleted object is reported, not a failure of the run
    rows = rows_by_key(read_output(output))
    assert set(rows) == set(objects)
    missing = rows.pop(victim)
    assert (missing["status"], missing["http_status"], missing["error_code"], missing["attempts"]) == (
        "missing", 404, "NoSuchKey", 1)
    assert missing["etag"] == md5_etag(objects[victim]) and missing["size"] == len(objects[victim])
    assert missing["score"] is None
    assert all(row["status"] == "scored" for row in rows.values())
    assert "  missing          1  (NoSuchKey 1)" in stdout.splitlines()
    assert "  not scored: m/3.jpg" in stdout.splitlines()
    assert len(score_requests(server, start)) == 4  # 404 is final: not retried
