"""``picscore run`` metrics end to end: a real Pushgateway, a live ``/metrics``, retries counted.

The worker runs as a child process (``python -m worker.cli run``) against an embedded
``picscore serve``; what it exposes is read back over HTTP and parsed with prometheus-client's
own text parser, so a malformed exposition or a lost push fails here, not in production.

The Pushgateway is Debian's ``prometheus-pushgateway`` (``.ci/run`` installs it); a missing
binary fails the tests instead of skipping them, so CI can never go green without them.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ACCESS_KEY_ID, ACCESS_KEY_SECRET, BUCKET, make_jpeg
from tests.integration.helpers import unique_prefix
from tests.integration.rawclient import signed
from worker.batch.selection import shard_of
from worker.server.launch import ServerProcess, start_server

PUSHGATEWAY_BIN = Path("/usr/bin/prometheus-pushgateway")
JOB = "picscore"


# -- helpers shared with test_run_no_secrets.py ------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_get(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read().decode("utf-8")


@dataclass
class Pushgateway:
    url: str
    process: subprocess.Popen[bytes]

    def metrics_text(self) -> str:
        return http_get(f"{self.url}/metrics")


@contextmanager
def start_pushgateway(tmp: Path) -> Iterator[Pushgateway]:
    """A real Pushgateway on a free 127.0.0.1 port, persistence off, ready when yielded."""
    if not os.access(PUSHGATEWAY_BIN, os.X_OK):
        pytest.fail(f"{PUSHGATEWAY_BIN} is missing: run `make test-deps` (it installs Debian's "
                    "prometheus-pushgateway as root, or prints the apt-get command)", pytrace=False)
    log_path = tmp / "pushgateway.log"
    for _ in range(3):  # a free port can be taken between probe and bind: try another
        port = free_port()
        with log_path.open("wb") as log:
            process = subprocess.Popen([str(PUSHGATEWAY_BIN), f"--web.listen-address=127.0.0.1:{port}",
                                        "--persistence.file=", "--log.level=warn"],
                                       stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 15
        while process.poll() is None and time.monotonic() < deadline:
            try:
                http_get(f"{url}/-/ready", timeout=1)
                break
            except OSError:
                time.sleep(0.05)
        if process.poll() is None and time.monotonic() < deadline:
            try:
                yield Pushgateway(url, process)
            finally:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            return
        if process.poll() is None:
            process.kill()
            process.wait()
    pytest.fail("prometheus-pushgateway did not become ready:\n" + log_path.read_text(errors="replace"))


def upload_images(url: str, prefix: str, count: int) -> list[str]:
    keys = [f"{prefix}img-{n:03d}.jpg" for n in range(count)]
    for n, key in enumerate(keys):
        response = signed(url, "PUT", key, body=make_jpeg(64, 48, seed=n))
        assert response.status == 200, (key, response.status, response.body[:300])
    return keys


def run_env(secret: str = ACCESS_KEY_SECRET) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PICSCORE_", "OSS_"))}
    env.update(OSS_ACCESS_KEY_ID=ACCESS_KEY_ID, OSS_ACCESS_KEY_SECRET=secret)
    return env


def run_command(server: ServerProcess, prefix: str, output: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "worker.cli", "run", "--endpoint", server.url, "--region", "cn-hangzhou",
            "--bucket", BUCKET, "--prefix", prefix, "--output", str(output), "--progress", "never",
            "--log-format", "json", *extra]


def run_worker(server: ServerProcess, prefix: str, output: Path, *extra: str, secret: str = ACCESS_KEY_SECRET,
               timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(run_command(server, prefix, output, *extra), env=run_env(secret), capture_output=True,
                          text=True, timeout=timeout)


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Every sample of an exposition, parsed by prometheus-client: (name, labels, value)."""
    return [(s.name, dict(s.labels), s.value) for family in text_string_to_metric_families(text)
            for s in family.samples]


def value(parsed: Sequence[tuple[str, dict[str, str], float]], name: str, **labels: str) -> float | None:
    """The one sample called ``name`` whose labels include ``labels`` (None if absent)."""
    found = [v for n, lab, v in parsed if n == name and all(lab.get(k) == w for k, w in labels.items())]
    assert len(found) <= 1, (name, labels, found)
    return found[0] if found else None


def group(parsed: Sequence[tuple[str, dict[str, str], float]], shard: str) -> dict[tuple[str, frozenset], float]:
    """The samples the Pushgateway holds for job=picscore and ``shard``, keyed without job/shard/instance."""
    return {(n, frozenset((k, v) for k, v in lab.items() if k not in ("job", "shard", "instance"))): v
            for n, lab, v in parsed if lab.get("job") == JOB and lab.get("shard") == shard}


def read_output(path: Path) -> list[dict]:
    return pq.read_table(path).to_pylist()


def assert_ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr[-3000:]}"


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture()
def pushgateway(tmp_path: Path) -> Iterator[Pushgateway]:
    with start_pushgateway(tmp_path) as gateway:
        yield gateway


def _server(server_root: Path, *args: str) -> Iterator[ServerProcess]:
    with start_server(server_root, {ACCESS_KEY_ID: ACCESS_KEY_SECRET}, args=["--workers", "1", *args]) as proc:
        yield proc


@pytest.fixture(scope="module")
def slow_server(server_root: Path) -> Iterator[ServerProcess]:
    """Answers image/score after 200 ms without scoring: a run takes as long as we choose."""
    yield from _server(server_root, "--fake-score-latency", "200ms")


@pytest.fixture(scope="module")
def faulty_server(server_root: Path) -> Iterator[ServerProcess]:
    """Half of the image/score answers are 503 CpuLimitExceeded (reproducibly)."""
    yield from _server(server_root, "--faults", "503=0.5,seed=2")


#: Short backoffs, and a configured rate so the adaptive limiter halves from 200/s on the first
#: throttles instead of from the (tiny) success rate observed at start-up: seconds, not tens.
FAST_RETRIES = ("--retry-base-s", "0.01", "--retry-max-backoff-s", "0.05", "--rate-limit", "200")


# -- tests -------------------------------------------------------------------------------------


def test_pushgateway_receives_the_run_grouped_by_job_and_shard(server: ServerProcess, pushgateway: Pushgateway,
                                                               tmp_path: Path) -> None:
    prefix = unique_prefix("push")
    while len({shard_of(f"{prefix}img-{n:03d}.jpg", 2) for n in range(6)}) < 2:
        prefix = unique_prefix("push")  # keys on both shards of 2, so the second run is a real part
    keys = upload_images(server.url, prefix, 6)
    started = time.time()
    first = run_worker(server, prefix, tmp_path / "all.parquet", "--pushgateway", pushgateway.url)
    assert_ok(first)

    parsed = samples(pushgateway.metrics_text())
    whole = group(parsed, "0-of-1")
    assert whole, f"no job={JOB} shard=0-of-1 group at the Pushgateway:\n{pushgateway.metrics_text()}"
    assert value(parsed, "picscore_objects_total", job=JOB, shard="0-of-1", status="scored") == len(keys)
    assert value(parsed, "picscore_objects_listed_total", job=JOB, shard="0-of-1") == len(keys)
    assert value(parsed, "picscore_objects_total", job=JOB, shard="0-of-1", status="failed") is None
    assert value(parsed, "picscore_run_success", job=JOB, shard="0-of-1") == 1
    assert value(parsed, "picscore_score_count", job=JOB, shard="0-of-1") == len(keys)
    last_success = value(parsed, "picscore_last_success_timestamp_seconds", job=JOB, shard="0-of-1")
    assert last_success is not None and started < last_success <= time.time()
    assert (value(parsed, "picscore_run_duration_seconds", job=JOB, shard="0-of-1") or 0) > 0

    # Another shard pushes its own group; pushadd keeps the first one as it was.
    second = run_worker(server, prefix, tmp_path / "half.parquet", "--shard", "1/2", "--pushgateway", pushgateway.url)
    assert_ok(second)
    half_rows = read_output(tmp_path / "half-shard-1-of-2.parquet")  # sharded runs name their output
    assert sorted(row["key"] for row in half_rows) == [key for key in keys if shard_of(key, 2) == 1]

    parsed = samples(pushgateway.metrics_text())
    assert value(parsed, "picscore_objects_total", job=JOB, shard="1-of-2", status="scored") == len(half_rows)
    assert value(parsed, "picscore_objects_listed_total", job=JOB, shard="1-of-2") == len(keys)
    assert value(parsed, "picscore_run_success", job=JOB, shard="1-of-2") == 1
    assert group(parsed, "0-of-1") == whole


def test_live_metrics_endpoint_parses_during_a_run(slow_server: ServerProcess, tmp_path: Path) -> None:
    prefix = unique_prefix("live")
    keys = upload_images(slow_server.url, prefix, 16)  # 16 × 200 ms at concurrency 2: about 1.6 s of scoring
    port = free_port()
    process = subprocess.Popen(run_command(slow_server, prefix, tmp_path / "out.parquet", "--concurrency", "2",
                                           "--metrics-port", str(port)),
                               env=run_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    scrapes: list[str] = []
    try:
        deadline = time.monotonic() + 30
        while process.poll() is None and time.monotonic() < deadline:
            try:
                text = http_get(f"http://127.0.0.1:{port}/metrics", timeout=2)
            except OSError:
                time.sleep(0.05)
                continue
            if process.poll() is not None:
                break  # only scrapes taken while the worker still ran count
            scrapes.append(text)
            parsed = samples(text)
            if (value(parsed, "picscore_objects_total", status="scored") or 0) >= 1:
                break
            time.sleep(0.05)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, f"{stdout}\n{stderr[-3000:]}"
    assert scrapes, f"/metrics on port {port} never answered while the run was going:\n{stderr[-3000:]}"
    for text in scrapes:
        samples(text)  # every scrape parses
    families = {family.name: family for family in text_string_to_metric_families(scrapes[-1])}
    expected = {
        "picscore_objects": "counter", "picscore_retries": "counter", "picscore_requests_in_flight": "gauge",
        "picscore_queue_depth": "gauge", "picscore_request_latency_seconds": "histogram",
        "picscore_score": "histogram", "picscore_rate_limit_wait_seconds": "counter",
        "picscore_last_success_timestamp_seconds": "gauge", "picscore_run_duration_seconds": "gauge",
    }
    assert {name: families[name].type for name in expected if name in families} == expected
    parsed = samples(scrapes[-1])
    assert 1 <= (value(parsed, "picscore_objects_total", status="scored") or 0) < len(keys)
    assert (value(parsed, "picscore_objects_listed_total") or 0) >= 1
    assert (value(parsed, "picscore_request_latency_seconds_count", outcome="2xx") or 0) >= 1
    assert len(read_output(tmp_path / "out.parquet")) == len(keys)


def test_retries_are_counted_in_metrics(faulty_server: ServerProcess, pushgateway: Pushgateway,
                                        tmp_path: Path) -> None:
    prefix = unique_prefix("retry")
    keys = upload_images(faulty_server.url, prefix, 20)
    output = tmp_path / "out.parquet"
    result = run_worker(faulty_server, prefix, output, "--pushgateway", pushgateway.url, "--failure-threshold", "1",
                        *FAST_RETRIES)
    assert_ok(result)

    rows = read_output(output)
    assert len(rows) == len(keys)
    retried = sum(row["attempts"] for row in rows) - len(rows)
    assert retried > 0, "with half the answers 503, some objects must have been retried"

    parsed = samples(pushgateway.metrics_text())
    retries = {lab["reason"]: v for n, lab, v in parsed
               if n == "picscore_retries_total" and lab.get("job") == JOB and lab.get("shard") == "0-of-1"}
    assert retries and all(v > 0 for v in retries.values()), retries
    assert set(retries) == {"throttled"}, retries  # 503 CpuLimitExceeded is a throttle
    assert sum(retries.values()) == retried
    by_status = Counter(row["status"] for row in rows)
    for status, count in by_status.items():
        assert value(parsed, "picscore_objects_total", job=JOB, shard="0-of-1", status=status) == count
    assert (value(parsed, "picscore_throttled_total", job=JOB, shard="0-of-1") or 0) >= retried


def test_failed_run_pushes_run_success_zero(server: ServerProcess, pushgateway: Pushgateway, tmp_path: Path) -> None:
    """A run refused for its credentials (exit 3) still pushes, with picscore_run_success 0."""
    prefix = unique_prefix("authfail")
    upload_images(server.url, prefix, 2)
    result = run_worker(server, prefix, tmp_path / "out.parquet", "--pushgateway", pushgateway.url,
                        secret="WrongSecretKey9876543210zyxwvuTSR")
    assert result.returncode == 3, f"{result.stdout}\n{result.stderr[-3000:]}"
    parsed = samples(pushgateway.metrics_text())
    assert value(parsed, "picscore_run_success", job=JOB, shard="0-of-1") == 0
    assert value(parsed, "picscore_objects_total", job=JOB, shard="0-of-1", status="scored") is None


def test_run_that_raises_still_pushes_run_success_zero(server: ServerProcess, pushgateway: Pushgateway,
                                                       tmp_path: Path) -> None:
    prefix = unique_prefix("raises")
    upload_images(server.url, prefix, 2)
    output = tmp_path / "out.parquet"
    assert_ok(run_worker(server, prefix, output, "--pushgateway", pushgateway.url))
    assert value(samples(pushgateway.metrics_text()), "picscore_run_success", job=JOB, shard="0-of-1") == 1
    # --resume with other settings: the checkpoint belongs to another run, so the run fails (exit 2)
    # after its metrics exist; the push must say so.
    again = run_worker(server, prefix, output, "--pushgateway", pushgateway.url, "--resume", "--include", "*.png")
    assert again.returncode == 2, f"{again.stdout}\n{again.stderr[-3000:]}"
    assert value(samples(pushgateway.metrics_text()), "picscore_run_success", job=JOB, shard="0-of-1") == 0
