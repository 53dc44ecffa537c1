"""Helpers for the ``picscore run`` integration tests (tests/integration/test_run_*.py).

The worker runs as a real child process (``python -m worker.cli run``) against a real
``picscore serve`` through the real SDK; these helpers only build buckets, command lines and
environments, and read back what the run wrote and what the server saw.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.conftest import ACCESS_KEY_ID, ACCESS_KEY_SECRET
from worker.results.formats import read_rows
from worker.server.launch import ServerProcess

__all__ = [
    "REGION", "REPO", "LocalBucket", "FakePushgateway", "run_env", "run_command", "run_cli", "start_run",
    "read_output", "rows_by_key", "server_requests", "score_requests", "wait_for", "fake_score", "md5_etag",
    "checkpoint_state", "checkpoint_copy_state", "assert_checkpoint_consistent", "content",
]

REGION = "cn-hangzhou"
REPO = Path(__file__).resolve().parents[2]

#: Columns that depend on the attempt (timing, request id), not on the object.
VOLATILE = frozenset({"scored_at", "latency_ms", "request_id"})


def md5_etag(data: bytes) -> str:
    """The ETag OSS gives a simple upload, as the worker writes it: upper-case hex MD5, no quotes."""
    return hashlib.md5(data).hexdigest().upper()


def fake_score(data: bytes) -> float:
    """What ``picscore serve --fake-score-latency`` answers for ``data`` (scoring.FixedLatencyScorer)."""
    digest = hashlib.blake2b(data, digest_size=4).digest()
    return round((int.from_bytes(digest, "big") % 1001) / 1000, 3)


@dataclass
class LocalBucket:
    """A bucket as the server keeps it: ``root/<name>/<key>`` files, written straight to disk."""

    root: Path
    name: str
    objects: dict[str, bytes] = field(default_factory=dict)

    def __post_init__(self) -> None:
        (self.root / self.name).mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        return self.root / self.name / key

    def put(self, key: str, data: bytes) -> None:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        self.objects[key] = data

    def delete(self, key: str) -> None:
        self.path(key).unlink()
        self.objects.pop(key, None)


def run_env(secret: str = ACCESS_KEY_SECRET, *, key_id: str = ACCESS_KEY_ID,
            extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The caller's environment without any picscore/OSS/Indexed-Job settings, plus credentials."""
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("PICSCORE_", "OSS_")) and name != "JOB_COMPLETION_INDEX"}
    if key_id:
        env["OSS_ACCESS_KEY_ID"] = key_id
    if secret:
        env["OSS_ACCESS_KEY_SECRET"] = secret
    env.update(extra or {})
    return env


def run_command(endpoint: str, bucket: str, output: Path | str, *extra: str) -> list[str]:
    """``python -m worker.cli run`` with the settings every test needs; JSON logs, no progress bar."""
    return [sys.executable, "-m", "worker.cli", "run", "--endpoint", endpoint, "--region", REGION,
            "--bucket", bucket, "--output", str(output), "--log-format", "json", "--progress", "never", *extra]


def run_cli(command: Sequence[str], env: Mapping[str, str] | None = None,
            timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(command), env=dict(env if env is not None else run_env()), cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def start_run(command: Sequence[str], env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(list(command), env=dict(env if env is not None else run_env()), cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def read_output(path: Path, fmt: str | None = None) -> list[dict[str, Any]]:
    return list(read_rows(Path(path), fmt))


def rows_by_key(rows: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Rows keyed by object key; fails on a repeated key (exactly once means exactly once)."""
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        assert row["key"] not in out, f"key {row['key']!r} written twice"
        out[row["key"]] = dict(row)
    return out


def content(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row without the columns that vary from attempt to attempt."""
    return {name: value for name, value in row.items() if name not in VOLATILE}


def log_events(lines: Iterable[str], event: str) -> list[dict[str, Any]]:
    """The JSON log lines (structlog's renderer) among ``lines`` whose ``event`` is ``event``."""
    found = []
    for line in lines:
        line = line.strip()
        if line.startswith("{"):
            with_event = json.loads(line)
            if with_event.get("event") == event:
                found.append(with_event)
    return found


def server_requests(server: ServerProcess, start: int = 0) -> list[dict[str, Any]]:
    """The requests the server logged (it must run with ``--log-level debug``), from output line ``start``."""
    return log_events(list(server.output)[start:], "request")


def score_requests(server: ServerProcess, start: int = 0) -> list[dict[str, Any]]:
    """Logged requests naming an object (``GET key``: in these tests only image/score calls do)."""
    return [r for r in server_requests(server, start) if r["method"] == "GET" and r["key"]]


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.005) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class FakePushgateway:
    """Records what ``--pushgateway`` sends (prometheus_client's text format), answers 200."""

    def __init__(self) -> None:
        self.pushes: list[tuple[str, str, str]] = []  # (method, path, body)
        pushes = self.pushes

        class Handler(BaseHTTPRequestHandler):
            def _record(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                pushes.append((self.command, self.path, self.rfile.read(length).decode()))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_POST = do_PUT = _record

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def samples(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every sample of the last push: (name, sorted labels) → value."""
        from prometheus_client.parser import text_string_to_metric_families

        assert self.pushes, "nothing was pushed"
        out = {}
        for family in text_string_to_metric_families(self.pushes[-1][2]):
            for sample in family.samples:
                out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return out

    def total(self, name: str) -> float:
        return sum(value for (sample, _), value in self.samples().items() if sample == name)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def checkpoint_copy_state(path: Path, scratch: Path) -> dict[str, Any]:
    """:func:`checkpoint_state` of a copy (database and WAL), leaving the original untouched.

    The worker keeps its WAL index in memory (``locking_mode=EXCLUSIVE``), so there is no
    ``-shm`` file and a read-only open cannot replay the WAL; a copy opened read-write can.
    """
    scratch.mkdir(parents=True, exist_ok=True)
    copy = scratch / path.name
    for suffix in ("", "-wal"):
        source = path.with_name(path.name + suffix)
        target = copy.with_name(copy.name + suffix)
        target.unlink(missing_ok=True)
        if source.exists():
            shutil.copyfile(source, target)
    conn = sqlite3.connect(copy)
    try:
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "meta" not in tables:  # killed before the schema was committed
            return {"done": [], "parts": [], "listing": [], "meta": {}}
    finally:
        conn.close()
    return checkpoint_state(copy)


def checkpoint_state(path: Path) -> dict[str, Any]:
    """The checkpoint's tables as plain lists (open it only when no run holds it)."""
    conn = sqlite3.connect(path)
    try:
        return {
            "done": sorted(conn.execute("SELECT key, etag, part FROM done")),
            "parts": sorted(conn.execute("SELECT part, file, rows FROM parts")),
            "listing": sorted(conn.execute("SELECT prefix, token, finished FROM listing")),
            "meta": dict(conn.execute("SELECT name, value FROM meta")),
        }
    finally:
        conn.close()


def assert_checkpoint_consistent(checkpoint: Path, output: Path, scratch: Path) -> set[tuple[str, str]]:
    """After a run stopped (any way, ``kill -9`` included): every ``(key, etag)`` the checkpoint
    records is in exactly one committed part file (or, once finished, in the final output)
    and every row of those files is recorded. Returns the recorded pairs."""
    if not checkpoint.exists():
        return set()
    state = checkpoint_copy_state(checkpoint, scratch)
    done = Counter((key, etag) for key, etag, _ in state["done"])
    if "finished_output" in state["meta"]:
        assert state["meta"]["finished_output"] == str(output)
        written = Counter((row["key"], row["etag"]) for row in read_output(output))
        assert written == done
        return set(done)
    parts_dir = output.with_name(output.name + ".parts")
    written = Counter()
    part_of = {(key, etag): part for key, etag, part in state["done"]}
    for number, name, count in state["parts"]:
        rows = read_output(parts_dir / name)  # a committed part is never missing
        assert len(rows) == count, name
        for row in rows:
            written[(row["key"], row["etag"])] += 1
            assert part_of.get((row["key"], row["etag"])) == number, (name, row["key"])
    assert written == done  # (the output may exist: killed between finalize's rename and its mark)
    return set(done)
