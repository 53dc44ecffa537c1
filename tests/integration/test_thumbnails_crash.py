"""``picscore thumbnails --scorer oss`` killed with ``kill -9`` in the middle of its work, then
``--resume``d: one row per video, as an uninterrupted run writes them, and no scratch object
left in the bucket.

The kills land where a crash costs most: while a frame is stored under the scratch prefix
(between its PutObject and its DeleteObject), and between part commits.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ACCESS_KEY_ID, ACCESS_KEY_SECRET
from worker.commands.thumbnail_rows import THUMBNAIL_SCHEMA
from worker.demo.videos import clips
from worker.results.formats import read_rows
from worker.server.launch import ServerProcess, start_server

from .runhelpers import REGION, LocalBucket, rows_by_key, run_cli, run_env, start_run, wait_for

BUCKET = "crashing"
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
STABLE = ("key", "etag", "status", "duration_ms", "chosen_ms", "score", "candidates", "rejected")


@pytest.fixture(scope="module")
def bucket(tmp_path_factory: pytest.TempPathFactory) -> LocalBucket:
    local = LocalBucket(tmp_path_factory.mktemp("thumbs-crash"), BUCKET)
    for clip in clips(codecs=("h264",)):
        local.put(f"v/{clip.name}", clip.data)
    return local


@pytest.fixture(scope="module")
def server(bucket: LocalBucket) -> Iterator[ServerProcess]:
    with start_server(bucket.root, {ACCESS_KEY_ID: ACCESS_KEY_SECRET}, args=["--workers", "2"]) as proc:
        yield proc


def command(server: ServerProcess, output: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "worker.cli", "thumbnails", "--endpoint", server.url, "--region", REGION,
            "--bucket", BUCKET, "--output", str(output), "--log-format", "json", "--progress", "never",
            "--frames", "6", "--concurrency", "2", "--flush-rows", "1", *extra]


def scratch_files(bucket: LocalBucket) -> list[Path]:
    """Files under the scratch prefix now (os.walk: the server prunes emptied folders meanwhile)."""
    scratch = bucket.root / BUCKET / "picscore-scratch"
    return [Path(folder, name) for folder, _, names in os.walk(scratch) for name in names]


def stable(rows: dict[str, dict]) -> dict[str, tuple]:
    return {key: tuple(row[name] for name in STABLE) for key, row in rows.items()}


@pytest.fixture(scope="module")
def reference(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple]:
    output = tmp_path_factory.mktemp("thumbs-ref") / "ref.parquet"
    done = run_cli(command(server, output), run_env(), timeout=280)
    assert done.returncode == 0, done.stderr
    return stable(rows_by_key(read_rows(output, None, THUMBNAIL_SCHEMA)))


@pytest.mark.parametrize("seed", [3, 4, 8])
def test_kill_9_mid_frame_then_resume_gives_every_video_once_and_no_scratch(
        seed: int, server: ServerProcess, bucket: LocalBucket, reference: dict[str, tuple], tmp_path: Path) -> None:
    rng = random.Random(seed)
    output = tmp_path / "thumbs.parquet"
    run = start_run(command(server, output), run_env())
    for _ in range(rng.randint(1, 12)):  # the k-th time a frame sits under the scratch prefix
        wait_for(lambda: scratch_files(bucket) or run.poll() is not None, 120, "a scratch frame", interval=0.001)
        if run.poll() is not None:
            break
        wait_for(lambda: not scratch_files(bucket) or run.poll() is not None, 120, "its deletion", interval=0.001)
    wait_for(lambda: scratch_files(bucket) or run.poll() is not None, 120, "a scratch frame", interval=0.001)
    time.sleep(rng.uniform(0, 0.01))
    run.kill()
    run.communicate()
    assert run.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert scratch_files(bucket), "the kill did not land while a frame was under the scratch prefix"
    resumed = run_cli([*command(server, output), "--resume"], run_env(), timeout=280)
    assert resumed.returncode == 0, resumed.stderr
    rows = rows_by_key(read_rows(output, None, THUMBNAIL_SCHEMA))  # fails on a video written twice
    assert stable(rows) == reference
    assert scratch_files(bucket) == []
