"""``--output oss://bucket/key``: the finished result file is uploaded into the bucket."""

from __future__ import annotations

import io
from pathlib import Path

import pyarrow.parquet as pq

from tests.conftest import ACCESS_KEY_ID, ACCESS_KEY_SECRET
from tests.integration.rawclient import signed
from tests.integration.runhelpers import LocalBucket, run_cli, run_command
from worker.server.launch import start_server


def test_result_is_uploaded_to_the_bucket_and_reads_back(tmp_path: Path) -> None:
    root = tmp_path / "root"
    bucket = LocalBucket(root, "photos")
    for n in range(5):
        bucket.put(f"img/{n}.jpg", b"image %d" % n)
    LocalBucket(root, "reports")
    checkpoint = tmp_path / "run.checkpoint.sqlite"
    with start_server(root, {ACCESS_KEY_ID: ACCESS_KEY_SECRET}, args=["--fake-score-latency", "1ms"]) as server:
        done = run_cli(run_command(server.url, "photos", "oss://reports/audits/2026-11-26.parquet",
                                   "--prefix", "img/", "--checkpoint", str(checkpoint)))
        assert done.returncode == 0, done.stderr
        assert "output: oss://reports/audits/2026-11-26.parquet" in done.stdout
        uploaded = signed(server.url, "GET", "audits/2026-11-26.parquet", bucket="reports")
    assert uploaded.status == 200
    table = pq.read_table(io.BytesIO(uploaded.body))
    assert sorted(table.column("key").to_pylist()) == [f"img/{n}.jpg" for n in range(5)]
    assert set(table.column("status").to_pylist()) == {"scored"}
    assert not list(root.joinpath("photos").glob("*.parquet"))  # results never land in the audited bucket


def test_upload_to_a_missing_bucket_fails_clearly_and_keeps_the_local_file(tmp_path: Path) -> None:
    root = tmp_path / "root"
    LocalBucket(root, "photos").put("img/a.jpg", b"a")
    checkpoint = tmp_path / "run.checkpoint.sqlite"
    with start_server(root, {ACCESS_KEY_ID: ACCESS_KEY_SECRET}, args=["--fake-score-latency", "1ms"]) as server:
        command = run_command(server.url, "photos", "oss://no-such-bucket/r.parquet", "--checkpoint", str(checkpoint))
        done = run_cli(command)
        assert done.returncode != 0
        assert "failed: NoSuchBucket: The specified bucket does not exist." in done.stderr
        assert "--resume" in done.stderr and "Traceback" not in done.stderr
        local = checkpoint.with_suffix(".parquet")
        assert local.exists() and pq.read_table(local).num_rows == 1
