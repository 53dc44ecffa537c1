"""``--incremental PREVIOUS_OUTPUT``: the second night re-scores only what is new or rewritten."""

from __future__ import annotations

import time
from pathlib import Path

from tests.conftest import ACCESS_KEY_ID, ACCESS_KEY_SECRET
from tests.integration.runhelpers import (
    LocalBucket,
    fake_score,
    md5_etag,
    read_output,
    rows_by_key,
    run_cli,
    run_command,
    score_requests,
)
from worker.server.launch import start_server

BUCKET = "nightly"


def test_second_run_scores_only_new_and_changed_objects(tmp_path: Path) -> None:
    root = tmp_path / "root"
    bucket = LocalBucket(root, BUCKET)
    for n in range(12):
        bucket.put(f"lib/{n:02d}.jpg", b"night one %d" % n)
    bucket.put("lib/broken.jpg", b"x")
    args = ["--fake-score-latency", "2ms", "--log-level", "debug"]
    with start_server(root, {ACCESS_KEY_ID: ACCESS_KEY_SECRET}, args=args) as server:
        first = tmp_path / "night1.parquet"
        assert run_cli(run_command(server.url, BUCKET, first)).returncode == 0
        bucket.put("lib/03.jpg", b"rewritten on day two")   # new ETag
        bucket.put("lib/new.jpg", b"added on day two")
        bucket.delete("lib/05.jpg")
        time.sleep(0.5)  # let the server's log pump catch up with night one's requests
        before = len(server.output)
        second = tmp_path / "night2.parquet"
        done = run_cli(run_command(server.url, BUCKET, second, "--incremental", str(first)))
        assert done.returncode == 0, done.stderr
        scored_now = {r["key"] for r in score_requests(server, before)}
    assert scored_now == {"lib/03.jpg", "lib/new.jpg"}
    previous, rows = rows_by_key(read_output(first)), rows_by_key(read_output(second))
    assert set(rows) == {f"lib/{n:02d}.jpg" for n in range(12) if n != 5} | {"lib/new.jpg", "lib/broken.jpg"}
    for key, row in rows.items():
        if key in scored_now:
            assert (row["status"], row["attempts"]) == ("scored", 1)
            assert row["score"] == fake_score(bucket.path(key).read_bytes())
            assert row["etag"] == md5_etag(bucket.path(key).read_bytes())
        else:
            assert (row["status"], row["error_code"]) == ("skipped", "Unchanged"), key
            assert (row["score"], row["scored_at"]) == (previous[key]["score"], previous[key]["scored_at"])
            assert row["attempts"] == 0


def test_incremental_file_that_does_not_exist_is_a_configuration_error(tmp_path: Path) -> None:
    root = tmp_path / "root"
    LocalBucket(root, BUCKET).put("a.jpg", b"a")
    with start_server(root, {ACCESS_KEY_ID: ACCESS_KEY_SECRET}, args=["--fake-score-latency", "1ms"]) as server:
        done = run_cli(run_command(server.url, BUCKET, tmp_path / "out.parquet",
                                   "--incremental", str(tmp_path / "missing.parquet")))
    assert done.returncode == 2
    assert "missing.parquet does not exist" in done.stderr
