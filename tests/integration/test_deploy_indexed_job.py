"""The backfill Indexed Job as deploy/k8s/overlays/backfill describes it, run as processes.

Kubernetes starts ``completions`` pods, each with the Job's environment plus
``JOB_COMPLETION_INDEX=i``; each mounts the ConfigMap's ``picscore.yaml``. Here the same
settings file (only the endpoint, bucket names, checkpoint folder and metrics port changed to
fit one machine) and the same environment start N ``picscore run`` processes against a real
``picscore serve``. Each uploads its own ``part-<i>-of-<N>`` object into the report bucket,
and the N objects together hold exactly the rows of one unsharded run.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ACCESS_KEY_ID, ACCESS_KEY_SECRET
from tests.integration.runhelpers import LocalBucket, fake_score, read_output, run_cli, run_env, start_run
from worker.batch.selection import shard_of
from worker.server.launch import ServerProcess, start_server

REPO = Path(__file__).resolve().parents[2]
OVERLAY = REPO / "deploy/k8s/overlays/backfill"
SOURCE_BUCKET, REPORT_BUCKET = "photo-library", "audit-reports"


def _manifest(name: str) -> dict[str, Any]:
    return yaml.safe_load((OVERLAY / name).read_text(encoding="utf-8"))


def _job() -> tuple[int, dict[str, str]]:
    """(completions, the container's literal environment) of the backfill Job."""
    job = _manifest("job.yaml")
    (box,) = job["spec"]["template"]["spec"]["containers"]
    literal = {item["name"]: item["value"] for item in box["env"] if "value" in item}
    return job["spec"]["completions"], literal


def _settings(server: ServerProcess, state: Path) -> dict[str, Any]:
    """The ConfigMap's settings, pointed at this machine."""
    settings = yaml.safe_load(_manifest("configmap.yaml")["data"]["picscore.yaml"])
    _, _, key = settings["output"].removeprefix("oss://").partition("/")
    assert "{shard_index}" in key and "{shard_count}" in key
    settings.update(endpoint=server.url, bucket=SOURCE_BUCKET, output=f"oss://{REPORT_BUCKET}/{key}",
                    checkpoint=str(state / Path(settings["checkpoint"]).name),
                    metrics_port=None, pushgateway=None, concurrency=4)
    return settings


@pytest.fixture(scope="module")
def backfill(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("deploy-backfill-root")
    source = LocalBucket(root, SOURCE_BUCKET)
    LocalBucket(root, REPORT_BUCKET)
    for n in range(48):
        ext = ("jpg", "jpeg", "png", "webp")[n % 4]
        source.put(f"products/{n % 5}/item-{n:03d}.{ext}", b"backfill object %d" % n)
    source.put("products/0/thumbnails/item-000.jpg", b"excluded thumbnail")  # exclude: */thumbnails/*
    source.put("notes/readme.txt", b"not an image")                           # not in include
    source.put("products/empty.jpg", b"")                                      # a skipped row, in one shard
    with start_server(root, {ACCESS_KEY_ID: ACCESS_KEY_SECRET}, args=["--fake-score-latency", "2ms"]) as server:
        yield root, source, server


def _env(config: Path, job_env: dict[str, str], **extra: str) -> dict[str, str]:
    return run_env(extra={**job_env, "PICSCORE_CONFIG": str(config), **extra})


def _identity(row: dict[str, Any]) -> tuple:
    return row["key"], row["etag"], row["status"], row["score"], row["error_code"]


def _report_objects(root: Path) -> dict[str, Path]:
    bucket = root / REPORT_BUCKET
    return {str(p.relative_to(bucket)): p for p in bucket.rglob("*") if p.is_file() and ".picscore" not in p.parts}


@pytest.mark.timeout(300)
def test_indexed_job_shards_write_together_exactly_the_unsharded_rows(backfill, tmp_path: Path) -> None:
    root, source, server = backfill
    completions, job_env = _job()
    assert job_env["PICSCORE_SHARD_COUNT"] == str(completions) and completions > 1

    # One unsharded run of the same settings: the reference.
    whole_state = tmp_path / "whole"
    whole_state.mkdir()
    whole_config = tmp_path / "whole.yaml"
    whole_config.write_text(yaml.safe_dump(_settings(server, whole_state)))
    whole_env = {k: v for k, v in job_env.items() if k != "PICSCORE_SHARD_COUNT"}
    done = run_cli([*_picscore_run()], env=_env(whole_config, whole_env))
    assert done.returncode == 0, done.stderr
    reference = read_output(_report_objects(root)["picscore/backfill/part-0-of-1.parquet"])
    status = {row["key"]: (row["status"], row["error_code"]) for row in reference}
    assert set(status) == set(source.objects)  # filtered objects get `skipped` rows, in exactly one shard too
    assert status["products/0/thumbnails/item-000.jpg"] == ("skipped", "Excluded")
    assert status["notes/readme.txt"] == ("skipped", "NotIncluded")
    assert status["products/empty.jpg"][0] == "skipped"
    assert sum(s == "scored" for s, _ in status.values()) == 48
    assert all(row["score"] == fake_score(source.objects[row["key"]]) for row in reference if row["status"] == "scored")

    # The Indexed Job: N pods, each with the Job's environment and its JOB_COMPLETION_INDEX.
    state = tmp_path / "state"
    state.mkdir()
    config = tmp_path / "picscore.yaml"
    config.write_text(yaml.safe_dump(_settings(server, state)))
    pods = [start_run(_picscore_run(), env=_env(config, job_env, JOB_COMPLETION_INDEX=str(i)))
            for i in range(completions)]
    for index, pod in enumerate(pods):
        _, stderr = pod.communicate(timeout=240)
        assert pod.returncode == 0, f"index {index}: {stderr[-2000:]}"

    objects = _report_objects(root)
    parts = {f"picscore/backfill/part-{i}-of-{completions}.parquet" for i in range(completions)}
    assert set(objects) == parts | {"picscore/backfill/part-0-of-1.parquet"}  # one object per shard, nothing else
    seen: set[tuple] = set()
    for index in range(completions):
        rows = read_output(objects[f"picscore/backfill/part-{index}-of-{completions}.parquet"])
        identities = {_identity(row) for row in rows}
        assert len(identities) == len(rows)
        assert not identities & seen, f"shard {index} repeats rows of another shard"
        assert all(shard_of(row["key"], completions) == index for row in rows)
        seen |= identities
    assert seen == {_identity(row) for row in reference}
    assert sorted(p.name for p in state.iterdir() if p.name.endswith(".sqlite")) == sorted(
        f"backfill-{i}.checkpoint.sqlite" for i in range(completions))

    # A retried pod of a finished index (checkpoint kept, as on the backfill-pvc volume) does no
    # work again: resume: true finds the run finished, re-publishes the same result and exits 0.
    before = objects[f"picscore/backfill/part-0-of-{completions}.parquet"].read_bytes()
    again = run_cli(_picscore_run(), env=_env(config, job_env, JOB_COMPLETION_INDEX="0"))
    assert again.returncode == 0, again.stderr
    assert "already finished" in again.stdout
    assert objects[f"picscore/backfill/part-0-of-{completions}.parquet"].read_bytes() == before


def _picscore_run() -> list[str]:
    """The container's command: ENTRYPOINT ["picscore"] + args ["run"] (settings from PICSCORE_CONFIG)."""
    return [sys.executable, "-m", "worker.cli", "run", "--log-format", "json", "--progress", "never"]
