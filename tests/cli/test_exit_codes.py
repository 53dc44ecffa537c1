"""Every documented exit code, provoked through the real command line (``python -m worker.cli``)
against a real ``picscore serve``; and no user error ever prints a traceback.

README "Exit codes": 0 done, 1 failures over the threshold, 2 usage/settings/checkpoint/output
error, 3 credentials refused, 4 interrupted (resumable), 5 time budget reached (resumable).
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ACCESS_KEY_ID, ACCESS_KEY_SECRET, make_jpeg
from tests.integration.runhelpers import (
    REPO,
    LocalBucket,
    run_cli,
    run_command,
    run_env,
    start_run,
    wait_for,
)
from worker.errors import ExitCode
from worker.server.launch import ServerProcess, start_server

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

PICTURES = "pictures"
SLOW = "slow"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A fake-scoring server: ``pictures`` (4 JPEGs and one text file) and ``slow`` (30 JPEGs)."""
    root = tmp_path_factory.mktemp("exit-codes")
    pictures = LocalBucket(root, PICTURES)
    for i in range(4):
        pictures.put(f"img/{i}.jpg", make_jpeg(seed=i))
    slow = LocalBucket(root, SLOW)
    for i in range(30):
        slow.put(f"s/{i:02d}.jpg", make_jpeg(seed=100 + i))
    with start_server(root, {ACCESS_KEY_ID: ACCESS_KEY_SECRET}, args=["--fake-score-latency", "300ms"]) as proc:
        yield proc


@pytest.fixture(scope="module")
def failing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Every image/score answers 503 ServiceUnavailable (not a throttle, which would be waited for):
    nothing can be scored."""
    root = tmp_path_factory.mktemp("exit-codes-failing")
    LocalBucket(root, PICTURES).put("img/0.jpg", make_jpeg(seed=0))
    faults = "503=1,503-code=ServiceUnavailable,scope=score"
    with start_server(root, {ACCESS_KEY_ID: ACCESS_KEY_SECRET},
                      args=["--fake-score-latency", "1ms", "--faults", faults]) as proc:
        yield proc


def assert_one_clean_line(stderr: str, starts: str) -> None:
    """A user error: one line that says what went wrong, never a traceback (JSON log lines aside)."""
    assert "Traceback" not in stderr, stderr
    said = [line for line in stderr.splitlines() if not line.startswith("{")]
    assert len(said) == 1 and said[0].startswith(starts), stderr


def test_0_everything_scored(server: ServerProcess, tmp_path: Path) -> None:
    done = run_cli(run_command(server.url, PICTURES, tmp_path / "out.parquet"))
    assert done.returncode == ExitCode.OK == 0, done.stderr
    assert done.stderr.count("Traceback") == 0 and (tmp_path / "out.parquet").exists()


def test_1_failures_over_the_threshold(failing: ServerProcess, tmp_path: Path) -> None:
    done = run_cli(run_command(failing.url, PICTURES, tmp_path / "out.parquet", "--retry-attempts", "1"))
    assert done.returncode == ExitCode.FAILURES == 1, done.stderr
    assert "Traceback" not in done.stderr
    [failed] = [line.split() for line in done.stdout.splitlines() if line.startswith("  failed")]
    assert failed[1] == "1", done.stdout


@pytest.mark.parametrize(("extra", "starts"), [
    (["--concurrency", "0"], "picscore run: configuration error: concurrency:"),
    (["--resume", "--shard", "3/2"], "picscore run: configuration error: shard:"),
    (["--event-loop", "tokio"], "picscore run: configuration error: event_loop:"),
])
def test_2_a_setting_error(server: ServerProcess, tmp_path: Path, extra: list[str], starts: str) -> None:
    done = run_cli(run_command(server.url, PICTURES, tmp_path / "out.parquet", *extra))
    assert done.returncode == ExitCode.CONFIG == 2
    assert_one_clean_line(done.stderr, starts)


def test_2_an_unfinished_run_without_resume(server: ServerProcess, tmp_path: Path) -> None:
    command = run_command(server.url, SLOW, tmp_path / "out.parquet", "--concurrency", "2", "--flush-rows", "2",
                          "--time-budget-s", "1s")
    assert run_cli(command).returncode == ExitCode.TIME_BUDGET
    again = run_cli(command)
    assert again.returncode == 2
    assert_one_clean_line(again.stderr, "picscore run: checkpoint error: checkpoint ")
    assert "--resume" in again.stderr and "--restart" in again.stderr


def test_2_resume_with_a_committed_part_file_missing(server: ServerProcess, tmp_path: Path) -> None:
    """Resuming would lose the rows of the missing part: refused in one line, exit 2, no traceback."""
    output = tmp_path / "out.parquet"
    command = run_command(server.url, SLOW, output, "--concurrency", "2", "--flush-rows", "2",
                          "--time-budget-s", "1s")
    first = run_cli(command)
    assert first.returncode == ExitCode.TIME_BUDGET, first.stderr
    parts = sorted((tmp_path / "out.parquet.parts").iterdir())
    assert parts, "the stopped run committed no part"
    parts[0].unlink()
    resumed = run_cli([*command, "--resume"])
    assert resumed.returncode == ExitCode.CONFIG == 2
    assert_one_clean_line(resumed.stderr, "picscore run: output error: 1 committed part file(s) are missing")
    assert "delete the checkpoint" in resumed.stderr


def test_2_usage_errors_of_serve_and_score(tmp_path: Path) -> None:
    env = run_env()
    serve = run_cli([sys.executable, "-m", "worker.cli", "serve", "--root", str(tmp_path / "absent")], env=env)
    assert serve.returncode == 2
    assert_one_clean_line(serve.stderr, f"picscore serve: --root {tmp_path / 'absent'} is not a directory")
    faults = run_cli([sys.executable, "-m", "worker.cli", "serve", "--root", str(tmp_path), "--faults", "503=9"],
                     env=env)
    assert faults.returncode == 2
    assert_one_clean_line(faults.stderr, "picscore serve: fault 503=9: a fraction must be between 0 and 1")
    score = run_cli([sys.executable, "-m", "worker.cli", "score", str(REPO / "README.md"), "--quality-model", "x"],
                    env=env)
    assert score.returncode == 2
    assert_one_clean_line(score.stderr, "picscore score: --quality-model:")


def test_3_credentials_refused(server: ServerProcess, tmp_path: Path) -> None:
    done = run_cli(run_command(server.url, PICTURES, tmp_path / "out.parquet"), env=run_env("not-the-secret"))
    assert done.returncode == ExitCode.AUTH == 3
    assert "Traceback" not in done.stderr
    assert "picscore run: credentials refused" in done.stderr and "not-the-secret" not in done.stderr


def test_4_interrupted_then_resumable(server: ServerProcess, tmp_path: Path) -> None:
    output = tmp_path / "out.parquet"
    command = run_command(server.url, SLOW, output, "--concurrency", "2", "--flush-rows", "2", "--grace-s", "5s")
    run = start_run(command)
    wait_for(lambda: (tmp_path / "out.parquet.parts").is_dir() and any((tmp_path / "out.parquet.parts").iterdir()),
             timeout=30, what="a committed part")
    run.send_signal(signal.SIGTERM)
    stdout, stderr = run.communicate(timeout=60)
    assert run.returncode == ExitCode.INTERRUPTED == 4, stderr
    assert "Traceback" not in stderr
    assert "picscore run: stopped (interrupted); continue with --resume" in stdout.splitlines()
    finished = run_cli([*command, "--resume"])
    assert finished.returncode == 0 and output.exists()


def test_5_time_budget_reached(server: ServerProcess, tmp_path: Path) -> None:
    started = time.monotonic()
    done = run_cli(run_command(server.url, SLOW, tmp_path / "out.parquet", "--concurrency", "1",
                               "--time-budget-s", "1s"))
    assert done.returncode == ExitCode.TIME_BUDGET == 5, done.stderr
    assert "picscore run: stopped (time budget); continue with --resume" in done.stdout.splitlines()
    assert time.monotonic() - started < 60
