"""``picscore serve`` and ``picscore run`` on either event loop (``--event-loop``), mixed both
ways, give the same complete result; and the choice shows in the run's start-up log line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ACCESS_KEY_ID, ACCESS_KEY_SECRET
from tests.integration.runhelpers import (
    REPO,
    LocalBucket,
    fake_score,
    log_events,
    read_output,
    rows_by_key,
    run_cli,
    run_command,
    run_env,
)
from worker.server.launch import start_server

BUCKET = "loops"


def _started(stderr: str, stdout: str) -> dict:
    [started] = log_events((stderr + "\n" + stdout).splitlines(), "run_started")
    return started


@pytest.mark.timeout(120)
@pytest.mark.parametrize("server_loop, worker_loop", [("asyncio", "uvloop"), ("uvloop", "asyncio")])
def test_server_and_worker_on_either_loop(server_loop: str, worker_loop: str, tmp_path: Path) -> None:
    bucket = LocalBucket(tmp_path / "root", BUCKET)
    for n in range(40):
        bucket.put(f"l/{n:02d}.jpg", b"loop object %d" % n)
    output = tmp_path / "out.parquet"
    with start_server(tmp_path / "root", {ACCESS_KEY_ID: ACCESS_KEY_SECRET},
                      args=["--fake-score-latency", "5ms", "--event-loop", server_loop]) as server:
        done = run_cli(run_command(server.url, BUCKET, output, "--concurrency", "8", "--event-loop", worker_loop))
        assert any(f"event loop {server_loop})" in line for line in server.output)
    assert done.returncode == 0, done.stderr
    assert _started(done.stderr, done.stdout)["event_loop"] == worker_loop
    rows = rows_by_key(read_output(output))
    assert set(rows) == set(bucket.objects)
    assert {k: r["score"] for k, r in rows.items()} == {k: fake_score(v) for k, v in bucket.objects.items()}


@pytest.mark.timeout(60)
def test_run_refuses_an_unknown_loop_naming_the_field(tmp_path: Path) -> None:
    done = run_cli(run_command("http://127.0.0.1:9", BUCKET, tmp_path / "out.parquet", "--event-loop", "libuv"))
    assert done.returncode == 2
    assert done.stderr.startswith("picscore run: configuration error: event_loop: must be one of")
    assert list(tmp_path.iterdir()) == []


def _without_uvloop(tmp_path: Path) -> dict[str, str]:
    """The environment of a machine without uvloop: a ``uvloop`` module first on the path that
    fails to import, as a missing package does (uvloop cannot be uninstalled for one test)."""
    shadow = tmp_path / "no-uvloop"
    shadow.mkdir()
    (shadow / "uvloop.py").write_text("raise ImportError('No module named uvloop')\n")
    return run_env(extra={"PYTHONPATH": os.pathsep.join([str(shadow), str(REPO)])})


@pytest.mark.timeout(60)
def test_without_uvloop_run_asking_for_it_exits_2_and_auto_falls_back(tmp_path: Path) -> None:
    env = _without_uvloop(tmp_path)
    output = tmp_path / "out" / "out.parquet"
    output.parent.mkdir()
    done = run_cli(run_command("http://127.0.0.1:9", BUCKET, output, "--event-loop", "uvloop"), env=env)
    assert done.returncode == 2
    assert done.stderr == ("picscore run: configuration error: event_loop: event loop uvloop is not installed "
                           "here (pip install uvloop, or use --event-loop asyncio)\n")
    assert list(output.parent.iterdir()) == []
    # auto: the standard loop, and the run goes on (to the dry run's listing, refused: nothing listens)
    done = run_cli(run_command("http://127.0.0.1:9", BUCKET, output, "--dry-run", "--retry-attempts", "1"), env=env)
    assert _started(done.stderr, done.stdout)["event_loop"] == "asyncio"


@pytest.mark.timeout(60)
def test_without_uvloop_serve_asking_for_it_exits_2(tmp_path: Path) -> None:
    env = {**_without_uvloop(tmp_path), "OSS_ACCESS_KEY_ID": ACCESS_KEY_ID, "OSS_ACCESS_KEY_SECRET": ACCESS_KEY_SECRET}
    done = subprocess.run([sys.executable, "-m", "worker.cli", "serve", "--root", str(tmp_path), "--port", "0",
                           "--event-loop", "uvloop"], env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "picscore serve: configuration error: event_loop: event loop uvloop is not installed here" in done.stderr
    assert "Traceback" not in done.stderr and "never awaited" not in done.stderr
