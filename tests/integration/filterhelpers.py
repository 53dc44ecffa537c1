"""Helpers for the ``picscore filter`` / ``picscore covers`` integration tests: a bucket of known
objects on a real ``picscore serve``, a results file about them written the way ``picscore run``
writes one, the command line, and a look at the bucket through the real SDK afterwards."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import alibabacloud_oss_v2 as oss

from tests.conftest import ACCESS_KEY_ID, ACCESS_KEY_SECRET, BUCKET
from tests.integration.runhelpers import REGION, md5_etag
from worker.batch.checkpoint import Checkpoint
from worker.oss.client import build_client
from worker.results.parts import open_part_writer
from worker.results.schema import ResultRow, Status

__all__ = ["Library", "results_file", "filter_command", "covers_command", "sdk_client", "list_keys", "WHEN"]

WHEN = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
CREDS = SimpleNamespace(access_key_id=ACCESS_KEY_ID, access_key_secret=ACCESS_KEY_SECRET, session_token=None)


def sdk_client(url: str) -> oss.Client:
    """A synchronous alibabacloud-oss-v2 client for looking at the bucket after a command ran."""
    return build_client(url, REGION, CREDS)


def list_keys(client: oss.Client, prefix: str) -> dict[str, str]:
    """key → ETag (no quotes) of every object under ``prefix`` (ListObjectsV2, all pages)."""
    out: dict[str, str] = {}
    paginator = client.list_objects_v2_paginator()
    for page in paginator.iter_page(oss.ListObjectsV2Request(bucket=BUCKET, prefix=prefix)):
        for obj in page.contents or []:
            out[obj.key] = (obj.etag or "").strip('"')
    return out


@dataclass
class Library:
    """Objects uploaded through the SDK under one test's prefix, with the scores a results file gives them."""

    client: oss.Client
    prefix: str
    data: dict[str, bytes] = field(default_factory=dict)

    def put(self, name: str, data: bytes, **request: object) -> str:
        key = self.prefix + name
        self.client.put_object(oss.PutObjectRequest(bucket=BUCKET, key=key, body=data, **request))
        self.data[key] = data
        return key

    def etag(self, key: str) -> str:
        return md5_etag(self.data[key])


def results_file(path: Path, library: Library, scores: Mapping[str, float | None],
                 dimensions: Mapping[str, Mapping[str, float]] | None = None,
                 statuses: Mapping[str, Status] | None = None) -> Path:
    """A results file (any format, by suffix) as ``picscore run`` writes it, about ``library``'s objects."""
    rows = []
    for name, score in scores.items():
        key = library.prefix + name
        status = (statuses or {}).get(name, Status.SCORED if score is not None else Status.FAILED)
        rows.append(ResultRow(BUCKET, key, library.etag(key), len(library.data[key]), WHEN, status, score=score,
                              dimensions=dict((dimensions or {}).get(name, {})), http_status=200, attempts=1,
                              scored_at=WHEN, storage_class="Standard"))
    with Checkpoint.open(path.with_name(path.name + ".writer.sqlite"), {"file": str(path)}, resume=False) as ckpt:
        writer = open_part_writer(path, path.suffix.lstrip("."), ckpt)
        writer.write_part(rows, {})
        writer.finalize()
    return path


def filter_command(url: str | None, *args: str) -> list[str]:
    endpoint = ["--endpoint", url, "--region", REGION] if url else []
    return [sys.executable, "-m", "worker.cli", "filter", *args, *endpoint, "--log-format", "json",
            "--progress", "never"]


def covers_command(url: str | None, *args: str) -> list[str]:
    endpoint = ["--endpoint", url, "--region", REGION] if url else []
    return [sys.executable, "-m", "worker.cli", "covers", *args, *endpoint, "--log-format", "json",
            "--progress", "never"]


def keys_of(rows: Sequence[Mapping[str, object]]) -> list[str]:
    return sorted(str(row["key"]) for row in rows)
