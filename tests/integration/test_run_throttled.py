"""A busy service must not cost objects (issue 15, item 14): ``picscore run`` at its default
concurrency against a ``picscore serve`` whose scoring capacity is far smaller (one scoring
process, a backlog of one: every call beyond two in flight is answered ``503
CpuLimitExceeded`` at once, as OSS does under load) scores every object and exits 0, because
throttles are waited for within the time budget instead of counted as attempts, and the
concurrency limit shrinks to what the server takes."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import ACCESS_KEY_ID, ACCESS_KEY_SECRET, make_jpeg
from tests.integration.runhelpers import LocalBucket, read_output, run_cli, run_command
from worker.server.launch import start_server

BUCKET = "busy"
OBJECTS = 40


def small_jpeg(seed: int) -> bytes:
    """A 320x240 photo-like JPEG: cheap to score, so the run is about admission, not CPU."""
    image = Image.open(io.BytesIO(make_jpeg(seed=seed)))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


@pytest.mark.timeout(240)
def test_default_concurrency_against_a_tiny_capacity_scores_every_object(tmp_path: Path) -> None:
    root = tmp_path / "root"
    bucket = LocalBucket(root, BUCKET)
    for n in range(OBJECTS):
        bucket.put(f"p/{n:03d}.jpg", small_jpeg(n))
    output = tmp_path / "out.parquet"
    with start_server(root, {ACCESS_KEY_ID: ACCESS_KEY_SECRET},
                      args=["--workers", "1", "--backlog", "1", "--log-level", "warning"]) as server:
        done = run_cli(run_command(server.url, BUCKET, output), timeout=200)  # defaults: concurrency 16, 6 attempts
    assert done.returncode == 0, done.stdout + done.stderr
    rows = read_output(output)
    assert len(rows) == OBJECTS
    assert {row["status"] for row in rows} == {"scored"}, [r for r in rows if r["status"] != "scored"][:3]
    assert max(row["attempts"] for row in rows) > 1  # the server did throttle: the test is about that
