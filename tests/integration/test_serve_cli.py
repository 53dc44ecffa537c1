"""``picscore serve`` start-up: credentials, bad flags, and secrets kept out of its output."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import alibabacloud_oss_v2 as oss
import pytest

from tests.conftest import ACCESS_KEY_ID, ACCESS_KEY_SECRET, BUCKET, make_jpeg
from tests.integration.rawclient import presign, sdk_client, send, signed
from worker.server.launch import start_server


def _serve(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "worker.cli", "serve", *args], env=env,
                          capture_output=True, text=True, timeout=60)


def _env_without_keys() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("OSS_ACCESS_KEY")}


def test_refuses_to_start_without_credentials(tmp_path: Path) -> None:
    result = _serve(["--root", str(tmp_path), "--port", "0"], _env_without_keys())
    assert result.returncode == 2
    assert "OSS_ACCESS_KEY_ID" in result.stderr and "--credentials" in result.stderr


def test_bad_credentials_file_names_the_line_and_hides_the_secret(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.write_text("# comment\nGOODKEY:s3cr3t-value-123\nbroken line without colon s3cr3t-value-123\n")
    result = _serve(["--root", str(tmp_path), "--credentials", str(creds)], _env_without_keys())
    assert result.returncode == 2
    assert f"{creds}:3" in result.stderr
    assert "s3cr3t-value-123" not in result.stderr + result.stdout


@pytest.mark.parametrize("args, message", [
    (["--faults", "explode=1"], "unknown fault"),
    (["--faults", "503=2"], "between 0 and 1"),
    (["--fake-score-latency", "soon"], "not a duration"),
    (["--quality-model", "fastest"], "--quality-model: unknown quality model 'fastest'; choose one of: accurate, fast"),
])
def test_bad_flags_are_refused_with_a_clear_message(tmp_path: Path, args: list[str], message: str) -> None:
    env = {**_env_without_keys(), "OSS_ACCESS_KEY_ID": ACCESS_KEY_ID, "OSS_ACCESS_KEY_SECRET": ACCESS_KEY_SECRET}
    result = _serve(["--root", str(tmp_path), *args], env)
    assert result.returncode == 2 and message in result.stderr


def test_missing_root_is_refused(tmp_path: Path) -> None:
    env = {**_env_without_keys(), "OSS_ACCESS_KEY_ID": ACCESS_KEY_ID, "OSS_ACCESS_KEY_SECRET": ACCESS_KEY_SECRET}
    result = _serve(["--root", str(tmp_path / "nope")], env)
    assert result.returncode == 2 and "not a directory" in result.stderr


def test_credentials_file_accepts_several_keys(tmp_path: Path) -> None:
    (tmp_path / BUCKET).mkdir()
    creds = tmp_path / "creds"
    creds.write_text(f"OTHERKEY:another-secret\n{ACCESS_KEY_ID}:{ACCESS_KEY_SECRET}\n")
    with start_server(tmp_path, {}, args=["--credentials", str(creds)], env=_env_without_keys()) as server:
        assert signed(server.url, "PUT", "k.jpg", body=b"abc").status == 200


def test_no_secret_or_signature_in_server_output(tmp_path: Path) -> None:
    """Debug logging, wrong secrets, presigned URLs and internal errors leak nothing."""
    (tmp_path / BUCKET).mkdir()
    with start_server(tmp_path, {ACCESS_KEY_ID: ACCESS_KEY_SECRET}, args=["--log-level", "debug"]) as server:
        url = presign(server.url, "GET", "img.jpg", process="image/score")
        signature = url.rsplit("x-oss-signature=", 1)[1]
        assert signed(server.url, "PUT", "img.jpg", body=make_jpeg()).status == 200
        assert send(url).status == 200
        wrong = sdk_client(server.url, secret="the-wrong-secret-value")
        with pytest.raises(oss.exceptions.OperationError):
            wrong.get_object(oss.GetObjectRequest(bucket=BUCKET, key="img.jpg"))
        error_body = send(presign(server.url, "GET", "img.jpg").replace("x-oss-signature=", "x-oss-signature=0")).body
        server.stop()
    output = "".join(server.output)
    assert "request" in output  # debug logging did run
    for secret in (ACCESS_KEY_SECRET, signature, "the-wrong-secret-value"):
        assert secret not in output
    assert ACCESS_KEY_SECRET.encode() not in error_body


def test_stopping_a_launched_server_reads_its_output_to_the_end_and_closes_the_pipe(tmp_path: Path) -> None:
    server = start_server(tmp_path, {ACCESS_KEY_ID: ACCESS_KEY_SECRET}, args=["--fake-score-latency", "1ms"])
    assert server.process.stdout is not None and not server.process.stdout.closed
    server.stop()
    assert server.process.returncode is not None
    assert server.pump is not None and not server.pump.is_alive()
    assert server.process.stdout.closed  # no ResourceWarning for an unclosed pipe later
    assert any("listening on" in line for line in server.output)


def test_serve_quality_model_fast_answers_image_score_with_the_fast_layout(tmp_path: Path) -> None:
    """Through the real SDK: the server started with --quality-model fast answers what
    quality.score(data, "fast") gives, and says which model it runs."""
    from tests.integration.helpers import parse_score
    from worker import quality
    from worker.demo.build import DEMO_IMAGES, read_demo_image

    (tmp_path / BUCKET).mkdir()
    data = read_demo_image(DEMO_IMAGES[0])
    (tmp_path / BUCKET / "photo.jpg").write_bytes(data)
    with start_server(tmp_path, {ACCESS_KEY_ID: ACCESS_KEY_SECRET}, args=["--quality-model", "fast",
                                                                         "--workers", "1"]) as server:
        got = sdk_client(server.url).get_object(oss.GetObjectRequest(bucket=BUCKET, key="photo.jpg",
                                                                     process="image/score"))
        answered = parse_score(got.body.read(), got.request_id)
    assert any("quality model fast" in line for line in server.output)
    assert answered == round(quality.score(data, "fast").overall, 3) != round(quality.score(data).overall, 3)


def test_header_timeout_flag_closes_a_silent_connection(tmp_path: Path) -> None:
    """``--header-timeout`` reaches the server: a client that opens a socket and says nothing is
    disconnected after it, so silent clients cannot hold the server's file descriptors."""
    with (start_server(tmp_path, {ACCESS_KEY_ID: ACCESS_KEY_SECRET}, args=["--header-timeout", "1s"]) as server,
          socket.create_connection(("127.0.0.1", server.port), timeout=10) as silent):
        started = time.monotonic()
        while silent.recv(1024):  # the server closes (EOF), perhaps after a 400
            pass
        assert time.monotonic() - started < 8


def test_a_bad_timeout_flag_is_a_usage_error(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "worker.cli", "serve", "--root", str(tmp_path),
                           "--header-timeout", "0s"], env={**_env_without_keys(), "OSS_ACCESS_KEY_ID": ACCESS_KEY_ID,
                                                            "OSS_ACCESS_KEY_SECRET": ACCESS_KEY_SECRET},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr == "picscore serve: --header-timeout: must be a duration > 0, e.g. 20s\n"
