"""What ``picscore run`` says when things go wrong or resume, as a new user meets it (issue 15,
item 16): a resumed run's summary counts the whole run, a plain-HTTP endpoint reached over TLS
says how to fix it, and a listing that failed before anything ran does not suggest --resume."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ACCESS_KEY_ID, ACCESS_KEY_SECRET
from tests.integration.runhelpers import LocalBucket, read_output, run_cli, run_command
from worker.server.launch import ServerProcess, start_server

pytestmark = pytest.mark.timeout(120)
BUCKET = "messages"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("messages")
    bucket = LocalBucket(root, BUCKET)
    for n in range(12):
        bucket.put(f"m/{n:02d}.jpg", b"object %d" % n)
    with start_server(root, {ACCESS_KEY_ID: ACCESS_KEY_SECRET}, args=["--fake-score-latency", "300ms"]) as proc:
        yield proc


def test_the_summary_after_resume_counts_the_whole_run(server: ServerProcess, tmp_path: Path) -> None:
    output = tmp_path / "out.parquet"
    command = run_command(server.url, BUCKET, output, "--concurrency", "2", "--flush-rows", "2",
                          "--time-budget-s", "1s")
    assert run_cli(command).returncode == 5
    for _ in range(5):
        resumed = run_cli([*command, "--resume"])
        if resumed.returncode == 0:
            break
        assert resumed.returncode == 5
    assert resumed.returncode == 0, resumed.stderr
    first = resumed.stdout.splitlines()[0]
    assert first.startswith("picscore run: 12 objects (") and "written before this resume" in first, first
    assert "  scored          12" in resumed.stdout.splitlines()
    assert len(read_output(output)) == 12


def test_a_plain_http_endpoint_reached_over_tls_says_to_write_http(server: ServerProcess, tmp_path: Path) -> None:
    endpoint = server.url.replace("http://", "")  # no scheme: https is assumed, as OSS documents endpoints
    done = run_cli(run_command(endpoint, BUCKET, tmp_path / "out.parquet"))
    assert done.returncode == 2, done.stderr
    assert "TLS handshake failed" in done.stderr and "write http://" in done.stderr
    assert "Traceback" not in done.stderr and "--resume" not in done.stderr


def test_a_listing_that_failed_before_anything_ran_does_not_suggest_resume(server: ServerProcess,
                                                                         tmp_path: Path) -> None:
    root = tmp_path / "root"
    LocalBucket(root, BUCKET).put("m/0.jpg", b"x")
    with start_server(root, {ACCESS_KEY_ID: ACCESS_KEY_SECRET},
                      args=["--fake-score-latency", "1ms", "--faults", "503=1,scope=all"]) as failing:
        done = run_cli(run_command(failing.url, BUCKET, tmp_path / "out.parquet", "--retry-attempts", "2",
                                   "--retry-base-s", "10ms", "--retry-max-backoff-s", "20ms"))
    assert done.returncode == 1, done.stderr
    assert "listing failed after retries" in done.stderr and "--resume" not in done.stderr
    again = run_cli(run_command(server.url, BUCKET, tmp_path / "out.parquet", "--concurrency", "12"))
    assert again.returncode == 0, again.stderr  # the failed start left nothing that blocks a plain run
