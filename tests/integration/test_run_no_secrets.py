"""No secret appears in logs, metrics, error messages or output files — grepped for, end to end.

``picscore run`` is driven the way that makes it say the most: debug JSON logs, a live
``/metrics`` scraped during the run, a real Pushgateway, injected 503s with few retry attempts
(so rows fail and carry error messages), a run stopped by its time budget (so part files and
the checkpoint are left behind), its ``--resume``, and a run with a wrong secret (so the
authentication error path speaks). Everything it produced is then searched for the secret, the
wrong secret and anything shaped like a signature.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.conftest import ACCESS_KEY_ID, ACCESS_KEY_SECRET
from tests.integration.helpers import unique_prefix
from tests.integration.test_run_metrics import (
    Pushgateway,
    free_port,
    http_get,
    run_command,
    run_env,
    start_pushgateway,
    upload_images,
)
from worker.server.launch import ServerProcess, start_server

WRONG_SECRET = "WrongSecretKey9876543210zyxwvuTSR"

#: Shapes of a signature or credential that must never be written out unredacted.
SIGNATURE_PATTERNS = (
    re.compile(r"(?i)x-oss-signature=(?!\[REDACTED\])[^&\s\"'<>]+"),
    re.compile(r"(?i)\bSignature=[0-9a-f]{16,}"),
    re.compile(r"(?i)\bSignature=(?!\[REDACTED\])[^&\s\"'<>,]{16,}"),
    re.compile(r"(?i)OSS4-HMAC-SHA256\s+Credential="),
    re.compile(r"(?i)\bOSS\s+" + re.escape(ACCESS_KEY_ID) + r":\S+"),
)


def leaks(text: str) -> list[str]:
    """What in ``text`` is, or looks like, a secret (with some context)."""
    found = []
    for secret in (ACCESS_KEY_SECRET, WRONG_SECRET):
        found += [text[max(0, m.start() - 60):m.end() + 20] for m in re.finditer(re.escape(secret), text)]
    for pattern in SIGNATURE_PATTERNS:
        found += [text[max(0, m.start() - 60):m.end() + 20] for m in pattern.finditer(text)]
    return found


@dataclass
class Collected:
    """Everything the runs wrote, by where it came from."""

    texts: dict[str, str] = field(default_factory=dict)

    def add(self, source: str, text: str) -> None:
        self.texts[source] = self.texts.get(source, "") + text

    def add_files(self, tag: str, directory: Path) -> None:
        """Every file under ``directory``: raw bytes, and decoded (Parquet is compressed, so its
        raw bytes would hide a secret from a grep; SQLite is dumped as SQL too)."""
        for path in sorted(p for p in directory.rglob("*") if p.is_file()):
            name = f"{tag}:{path.relative_to(directory)}"
            data = path.read_bytes()
            self.add(name, data.decode("latin-1"))
            if path.suffix == ".parquet":
                self.add(f"{name} (rows)", repr(pq.read_table(path).to_pylist()))
            elif path.suffix == ".sqlite":
                with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
                    self.add(f"{name} (dump)", "\n".join(conn.iterdump()))
                conn.close()

    @property
    def everything(self) -> str:
        return "\n".join(self.texts.values())


@dataclass
class RunResult:
    returncode: int
    stdout: str
    stderr: str
    scrapes: list[str]


def run_scraping(command: Sequence[str], env: dict[str, str], port: int, timeout: float = 60) -> RunResult:
    """Run the worker and scrape its ``/metrics`` for as long as it runs."""
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    scrapes: list[str] = []
    try:
        deadline = time.monotonic() + timeout
        while process.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(OSError):  # not listening yet, or already closed
                scrapes.append(http_get(f"http://127.0.0.1:{port}/metrics", timeout=2))
            time.sleep(0.05)
        stdout, stderr = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    return RunResult(process.returncode, stdout, stderr, scrapes)


@pytest.fixture(scope="module")
def flaky_server(server_root: Path) -> Iterator[ServerProcess]:
    """image/score: half the answers 503, the rest after 50–100 ms, so a run lasts about a second.
    The 503s are ServiceUnavailable, not a throttle: throttles are waited for (never failed rows),
    and this test needs rows that failed with a message to search."""
    with start_server(server_root, {ACCESS_KEY_ID: ACCESS_KEY_SECRET},
                      args=["--workers", "1", "--faults", "503=0.5,503-code=ServiceUnavailable,latency=50-100ms,"
                            "seed=11"]) as proc:
        yield proc


@pytest.fixture()
def pushgateway(tmp_path: Path) -> Iterator[Pushgateway]:
    with start_pushgateway(tmp_path) as gateway:
        yield gateway


def test_detector_finds_what_it_looks_for() -> None:
    """The grep below would catch a leak: each kind of leak planted in a text is found."""
    planted = [
        f'{{"event": "x", "secret": "{ACCESS_KEY_SECRET}"}}',
        f"error: {WRONG_SECRET}",
        "GET /b/k?x-oss-signature=abcdef0123&x-oss-date=20250101T000000Z",
        "Authorization: OSS4-HMAC-SHA256 Credential=LTAI/20250101/cn-hangzhou/oss/aliyun_v4_request, "
        "Signature=0123456789abcdef0123456789abcdef",
        f"Authorization: OSS {ACCESS_KEY_ID}:c2lnbmF0dXJlc2lnbmF0dXJl",
        "https://b.oss.example.com/k?OSSAccessKeyId=x&Expires=1&Signature=c2lnbmF0dXJlc2lnbmF0dXJl%3D",
    ]
    for text in planted:
        assert leaks(text), text
    assert not leaks("x-oss-signature=[REDACTED] Signature=[REDACTED] OSS4-HMAC-SHA256 [REDACTED]")


def test_no_secret_in_logs_metrics_errors_or_files(flaky_server: ServerProcess, pushgateway: Pushgateway,
                                                   tmp_path: Path) -> None:
    prefix = unique_prefix("nosecret")
    keys = upload_images(flaky_server.url, prefix, 24)
    collected = Collected()
    debug = ("--log-level", "debug", "--log-format", "json", "--pushgateway", pushgateway.url,
             "--retry-attempts", "2", "--retry-base-s", "0.01", "--retry-max-backoff-s", "0.05",
             "--rate-limit", "200", "--concurrency", "2", "--flush-rows", "2", "--failure-threshold", "1")
    work = tmp_path / "run"
    work.mkdir()
    output = work / "out.parquet"

    def run(tag: str, target: Path, *extra: str, secret: str = ACCESS_KEY_SECRET) -> RunResult:
        port = free_port()
        result = run_scraping(run_command(flaky_server, prefix, target, *debug, "--metrics-port", str(port), *extra),
                              run_env(secret), port)
        collected.add(f"{tag}:stdout", result.stdout)
        collected.add(f"{tag}:stderr", result.stderr)
        for n, text in enumerate(result.scrapes):
            collected.add(f"{tag}:/metrics#{n}", text)
        collected.add_files(tag, work)
        collected.add(f"{tag}:pushgateway", pushgateway.metrics_text())
        return result

    # 1. Stopped by its time budget: part files and the checkpoint stay behind for --resume.
    stopped = run("budget", output, "--time-budget-s", "0.4s")
    assert stopped.returncode == 5, f"{stopped.stdout}\n{stopped.stderr[-3000:]}"
    assert any(".parts/" in name for name in collected.texts), sorted(collected.texts)
    assert any(name.endswith(".sqlite (dump)") for name in collected.texts), sorted(collected.texts)
    assert stopped.scrapes, "the live /metrics was never scraped"

    # 2. Resumed to the end: the final output, with failed rows (503 twice) carrying messages.
    resumed = run("resume", output, "--resume")
    assert resumed.returncode == 0, f"{resumed.stdout}\n{resumed.stderr[-3000:]}"
    rows = pq.read_table(output).to_pylist()
    assert sorted(row["key"] for row in rows) == keys
    failed = [row for row in rows if row["status"] == "failed"]
    scored = [row for row in rows if row["status"] == "scored"]

    # 3. A wrong secret: the run stops on the authentication error and says so.
    wrong = run("wrong-secret", work / "wrong.parquet", secret=WRONG_SECRET)
    assert wrong.returncode == 3, f"{wrong.stdout}\n{wrong.stderr[-3000:]}"

    everything = collected.everything
    # The search has something to search: keys, request ids, error paths, both metric sources.
    assert all(key in everything for key in keys)
    assert scored and all(row["request_id"] and row["request_id"] in everything for row in scored)
    assert failed and all(row["error_message"] and row["error_message"] in everything for row in failed)
    assert "ServiceUnavailable" in everything
    assert "SignatureDoesNotMatch" in collected.texts["wrong-secret:stderr"]
    assert '"event": "batch_written"' in everything
    assert "picscore_objects_total" in collected.texts["resume:pushgateway"]
    assert any('job="picscore"' in text and "picscore_retries_total" in text for name, text in collected.texts.items()
               if name.endswith(":pushgateway"))

    found = {name: hits for name, text in collected.texts.items() if (hits := leaks(text))}
    assert not found, f"secret material written out: {found}"
