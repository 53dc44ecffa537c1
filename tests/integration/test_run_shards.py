"""Sharded ``picscore run``: N shard runs together write exactly the rows of one unsharded run.

Shards come from ``--shard i/N``, or — in a Kubernetes Indexed Job — from
``JOB_COMPLETION_INDEX`` with ``PICSCORE_SHARD_COUNT``. Each shard gets its own output and
checkpoint file, and a key belongs to exactly one shard (a stable hash of the key).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ACCESS_KEY_ID, ACCESS_KEY_SECRET
from tests.integration.runhelpers import (
    LocalBucket,
    fake_score,
    read_output,
    rows_by_key,
    run_cli,
    run_command,
    run_env,
    start_run,
)
from worker.batch.selection import shard_of
from worker.server.launch import ServerProcess, start_server

BUCKET = "sharded"
SHARDS = 3


@pytest.fixture(scope="module")
def sharded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, LocalBucket]]:
    root = tmp_path_factory.mktemp("run-shards-root")
    bucket = LocalBucket(root, BUCKET)
    for n in range(30):
        bucket.put(f"p/{n:02d}.jpg" if n % 2 else f"q/deep/{n:02d} 图+.jpg", b"shard object %d" % n)
    bucket.put("p/empty.jpg", b"")  # a skipped row must land in exactly one shard too
    with start_server(root, {ACCESS_KEY_ID: ACCESS_KEY_SECRET}, args=["--fake-score-latency", "5ms"]) as server:
        yield server, bucket


def _identity(row: dict) -> tuple:
    return (row["key"], row["etag"], row["status"], row["score"])


def _command(server: ServerProcess, output: Path, *extra: str) -> list[str]:
    return run_command(server.url, BUCKET, output, "--prefix", "p/", "--prefix", "q/", "--concurrency", "4", *extra)


@pytest.fixture(scope="module")
def unsharded(sharded, tmp_path_factory: pytest.TempPathFactory) -> set[tuple]:
    server, bucket = sharded
    output = tmp_path_factory.mktemp("run-shards-whole") / "all.parquet"
    done = run_cli(_command(server, output))
    assert done.returncode == 0, done.stderr
    rows = rows_by_key(read_output(output))
    assert set(rows) == set(bucket.objects)
    assert rows["p/empty.jpg"]["status"] == "skipped"
    assert all(rows[key]["score"] == fake_score(data) for key, data in bucket.objects.items() if data)
    return {_identity(row) for row in rows.values()}


def _check_partition(outputs: list[Path], unsharded: set[tuple]) -> None:
    seen: set[tuple] = set()
    for index, output in enumerate(outputs):
        rows = read_output(output)
        identities = {_identity(row) for row in rows}
        assert len(identities) == len(rows) > 0, output  # no repeats; every shard has work here
        assert not identities & seen, "shards overlap"
        assert all(shard_of(row["key"], SHARDS) == index for row in rows), output
        seen |= identities
    assert seen == unsharded


@pytest.mark.timeout(120)
def test_shard_flags_partition_the_unsharded_rows(sharded, unsharded, tmp_path: Path) -> None:
    server, _ = sharded
    output = tmp_path / "out.parquet"
    runs = [start_run(_command(server, output, "--shard", f"{i}/{SHARDS}")) for i in range(SHARDS)]
    for run in runs:
        _, stderr = run.communicate(timeout=60)
        assert run.returncode == 0, stderr
    outputs = [tmp_path / f"out-shard-{i}-of-{SHARDS}.parquet" for i in range(SHARDS)]
    _check_partition(outputs, unsharded)
    assert {p.name for p in tmp_path.iterdir()} == {
        *(p.name for p in outputs), *(f"{p.name}.checkpoint.sqlite" for p in outputs)}


@pytest.mark.timeout(120)
def test_indexed_job_environment_partitions_the_unsharded_rows(sharded, unsharded, tmp_path: Path) -> None:
    server, _ = sharded
    output = tmp_path / "job.jsonl"
    runs = [start_run(_command(server, output), env=run_env(extra={
        "JOB_COMPLETION_INDEX": str(i), "PICSCORE_SHARD_COUNT": str(SHARDS)})) for i in range(SHARDS)]
    for run in runs:
        _, stderr = run.communicate(timeout=60)
        assert run.returncode == 0, stderr
    _check_partition([tmp_path / f"job-shard-{i}-of-{SHARDS}.jsonl" for i in range(SHARDS)], unsharded)


@pytest.mark.timeout(60)
def test_index_without_a_count_is_a_configuration_error(sharded, tmp_path: Path) -> None:
    server, _ = sharded
    done = run_cli(_command(server, tmp_path / "x.parquet"), env=run_env(extra={"JOB_COMPLETION_INDEX": "1"}))
    assert done.returncode == 2
    assert done.stderr.startswith("picscore run: configuration error: shard: JOB_COMPLETION_INDEX is set")
    assert "PICSCORE_SHARD_COUNT" in done.stderr
    assert list(tmp_path.iterdir()) == []
