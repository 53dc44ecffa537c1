"""``picscore run`` end to end: a real server with real scoring, the real SDK, every output format.

One bucket holds every kind of object the worker must tell apart: images under several prefixes
(nested, non-ASCII, spaces, ``+``), a text file, an object over OSS's 20 MiB processing limit,
a zero-byte object, a directory marker, keys filtered out by ``--include``/``--exclude``, and
a key outside the listed prefixes. Every listed object must come back exactly once, with the
status, ETag and size the bucket listing reports.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.conftest import ACCESS_KEY_ID, ACCESS_KEY_SECRET, make_jpeg
from tests.integration.rawclient import sdk_client, signed
from tests.integration.runhelpers import (
    LocalBucket,
    content,
    md5_etag,
    read_output,
    rows_by_key,
    run_cli,
    run_command,
)
from worker import quality
from worker.results.formats import RESULT_PARQUET_SCHEMA as PARQUET_SCHEMA
from worker.server.launch import ServerProcess, start_server

BUCKET = "run-e2e"
PREFIXES = ["a/", "b/nested/deep/", "图片/", "dir/"]
FILTERS = ["--include", "*.jpg", "--include", "*.txt", "--exclude", "*/skip-*"]

IMAGES = {
    "a/photo-1.jpg": make_jpeg(seed=11),
    "a/photo 2+plus.jpg": make_jpeg(seed=12, quality=40),
    "b/nested/deep/x y+z.jpg": make_jpeg(seed=13),
    "图片/猫 照片.jpg": make_jpeg(seed=14, width=200, height=300),
}
TEXT = b"plain text, not an image\n" * 4
OVERSIZED = 20 * 1024 * 1024 + 1  # one byte over OSS's image-processing limit
#: key -> (status, error_code, http_status) for every object under PREFIXES.
EXPECTED = {
    **{key: ("scored", None, 200) for key in IMAGES},
    "a/notes.txt": ("failed", "BadRequest", 400),
    "a/empty.jpg": ("skipped", "EmptyObject", None),
    "a/huge.jpg": ("skipped", "ImageTooLarge", None),
    "a/table.csv": ("skipped", "NotIncluded", None),
    "b/nested/deep/skip-me.jpg": ("skipped", "Excluded", None),
    "dir/": ("skipped", "DirectoryMarker", None),
}


@pytest.fixture(scope="module")
def e2e(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, dict[str, bytes]]]:
    root = tmp_path_factory.mktemp("run-e2e-root")
    (root / BUCKET).mkdir()
    with start_server(root, {ACCESS_KEY_ID: ACCESS_KEY_SECRET}, args=["--workers", "2"]) as server:
        data: dict[str, bytes] = {
            **IMAGES, "a/notes.txt": TEXT, "a/empty.jpg": b"", "a/table.csv": b"k,v\n1,2\n",
            "b/nested/deep/skip-me.jpg": make_jpeg(seed=15), "dir/": b"", "other/outside.jpg": make_jpeg(seed=16),
        }
        for key, body in data.items():  # through the SDK-signed PUT, as a user would upload
            assert signed(server.url, "PUT", key, body=body, bucket=BUCKET).status == 200, key
        big = bytes(range(256)) * (OVERSIZED // 256) + b"!" * (OVERSIZED % 256)
        LocalBucket(root, BUCKET).put("a/huge.jpg", big)  # too big to upload in a test: straight to disk
        data["a/huge.jpg"] = big
        yield server, data


def _listing(url: str) -> dict[str, tuple[str, int, object]]:
    """key -> (ETag as listed, size, last modified), from the SDK's ListObjectsV2 paginator."""
    import alibabacloud_oss_v2 as oss

    client = sdk_client(url)
    found = {}
    for prefix in PREFIXES:
        paginator = client.list_objects_v2_paginator()
        for page in paginator.iter_page(oss.ListObjectsV2Request(bucket=BUCKET, prefix=prefix)):
            for obj in page.contents or []:
                found[obj.key] = (obj.etag, obj.size, obj.last_modified)
    return found


def _summary_counts(stdout: str) -> dict[str, tuple[int, str]]:
    """status -> (count, detail in parentheses) from the summary's status lines."""
    found = {}
    for match in re.finditer(r"^  (scored|skipped|missing|failed) +(\d+)(?:  \((.*)\))?$", stdout, re.M):
        found[match[1]] = (int(match[2]), match[3] or "")
    return found


def _command(server: ServerProcess, output: Path, *extra: str) -> list[str]:
    prefixes = [arg for prefix in PREFIXES for arg in ("--prefix", prefix)]
    return run_command(server.url, BUCKET, output, *prefixes, *FILTERS, "--concurrency", "4", *extra)


@pytest.mark.timeout(120)
def test_every_listed_object_once_with_its_status_in_parquet(e2e, tmp_path: Path) -> None:
    server, data = e2e
    output = tmp_path / "results.parquet"
    done = run_cli(_command(server, output))

    # one failed row and --failure-threshold 0 (the default): exit 1, after writing everything
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    listing = _listing(server.url)
    assert set(listing) == set(EXPECTED)  # the bucket really holds what the test thinks

    table = pq.read_table(output)
    assert table.schema == PARQUET_SCHEMA
    rows = rows_by_key(table.to_pylist())  # fails on a repeated key
    assert set(rows) == set(EXPECTED)      # nothing missing, nothing outside the prefixes
    for key, (status, code, http_status) in EXPECTED.items():
        row = rows[key]
        listed_etag, listed_size, listed_modified = listing[key]
        assert (row["status"], row["error_code"], row["http_status"]) == (status, code, http_status), key
        assert row["bucket"] == BUCKET
        assert row["etag"] == listed_etag.strip('"') == md5_etag(data[key]), key
        assert row["size"] == listed_size == len(data[key]), key
        assert abs(row["last_modified"].timestamp() - listed_modified.timestamp()) < 0.001, key
        assert row["scored_at"] is not None
        if status == "scored":
            expected = quality.score(data[key])
            assert row["score"] == round(expected.overall, 3), key
            assert row["dimensions"] and all(0.0 <= v <= 1.0 for _, v in row["dimensions"])
            assert row["attempts"] == 1 and row["request_id"], key
        elif status == "failed":  # a 400 is an answer: not retried
            assert row["score"] is None and row["attempts"] == 1 and row["error_message"], key
        else:  # skipped objects are never sent
            assert row["score"] is None and row["attempts"] == 0 and row["request_id"] is None, key

    counts = _summary_counts(done.stdout)
    assert {status: n for status, (n, _) in counts.items()} == {"scored": 4, "skipped": 5, "missing": 0, "failed": 1}
    skip_detail = dict(part.rsplit(" ", 1) for part in counts["skipped"][1].split(", "))
    assert skip_detail == {"EmptyObject": "1", "ImageTooLarge": "1", "NotIncluded": "1", "Excluded": "1",
                           "DirectoryMarker": "1"}
    assert counts["failed"][1] == "BadRequest 1"
    assert re.search(r"^picscore run: 10 objects in ", done.stdout, re.M)
    assert "  not scored: a/notes.txt" in done.stdout.splitlines()
    assert f"  output: {output}" in done.stdout.splitlines()
    assert not output.with_name(output.name + ".parts").exists()  # parts merged and removed

    # The same run in CSV and JSON Lines: identical rows (bar timing columns), and a failure
    # threshold above the 1-in-5 failure ratio turns the exit code to 0.
    for fmt, threshold in (("csv", "0.5"), ("jsonl", "20%")):
        other = tmp_path / f"results.{fmt}"
        again = run_cli(_command(server, other, "--failure-threshold", threshold))
        assert again.returncode == 0, (fmt, again.stderr)
        assert _summary_counts(again.stdout)["failed"] == (1, "BadRequest 1")
        rows_again = rows_by_key(read_output(other))
        assert set(rows_again) == set(rows)
        for key, row in rows.items():
            assert content(rows_again[key]) == content(_record(row)), (fmt, key)


def _record(arrow_row: dict) -> dict:
    """A pyarrow row as read_rows gives it (maps as dicts)."""
    return {**arrow_row, "dimensions": dict(arrow_row["dimensions"] or [])}


@pytest.mark.timeout(60)
def test_failure_threshold_below_the_failure_ratio_still_fails(e2e, tmp_path: Path) -> None:
    server, _ = e2e
    done = run_cli(_command(server, tmp_path / "r.jsonl", "--failure-threshold", "0.19"))
    assert done.returncode == 1, done.stderr  # 1 failed of 5 selected = 0.2 > 0.19
