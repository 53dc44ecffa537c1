"""``picscore run --output oss://…`` of a result above the single-PUT limit is a multipart upload.

The audited bucket is a synthetic one (listed objects, fake scores), so 30,000 rows cost seconds;
the result, about 10 MB of JSON Lines, goes to a real bucket of the same ``picscore serve``, which
implements multipart upload as OSS does (``x-oss-complete-all`` aside: the SDK lists the parts).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import alibabacloud_oss_v2 as oss
import pytest

from tests.conftest import ACCESS_KEY_ID, ACCESS_KEY_SECRET
from worker.oss.client import UPLOAD_PART_BYTES
from worker.server.launch import ServerProcess, start_server

from .runhelpers import REGION, run_cli, run_command

OBJECTS = 30_000
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    made: Path = tmp_path_factory.mktemp("multipart-output")
    (made / "out").mkdir()
    return made


@pytest.fixture(scope="module")
def server(root: Path) -> Iterator[ServerProcess]:
    with start_server(root, {ACCESS_KEY_ID: ACCESS_KEY_SECRET},
                      args=["--synthetic-bucket", f"many={OBJECTS}", "--fake-score-latency", "0ms"]) as proc:
        yield proc


def test_a_large_result_is_uploaded_in_parts(server: ServerProcess, root: Path, tmp_path: Path) -> None:
    command = run_command(server.url, "many", "oss://out/audits/night.jsonl", "--format", "jsonl",
                          "--concurrency", "32", "--checkpoint", str(tmp_path / "checkpoint.sqlite"))
    done = run_cli(command, timeout=500)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    stored = root / "out" / "audits" / "night.jsonl"
    size = stored.stat().st_size
    assert size > UPLOAD_PART_BYTES  # above the single-PUT limit, so the Uploader went multipart
    cfg = oss.config.load_default()
    cfg.credentials_provider = oss.credentials.StaticCredentialsProvider(ACCESS_KEY_ID, ACCESS_KEY_SECRET)
    cfg.region, cfg.endpoint = REGION, server.url
    head = oss.Client(cfg).head_object(oss.HeadObjectRequest(bucket="out", key="audits/night.jsonl"))
    parts = -(-size // UPLOAD_PART_BYTES)
    assert head.etag.strip('"').endswith(f"-{parts}")  # OSS's multipart ETag form: MD5 of part MD5s, then -N
    with stored.open(encoding="utf-8") as rows:
        keys = [json.loads(line)["key"] for line in rows]
    assert len(keys) == len(set(keys)) == OBJECTS
