"""Log output, ours (structlog) and aiohttp's (stdlib logging), never carries a secret."""

from __future__ import annotations

import io
import logging

import structlog

from worker.observability.logging import configure_logging

SECRET = "TestSecretKey0123456789abcdefXYZ"
PRESIGNED = ("http://127.0.0.1:9000/b/k.jpg?x-oss-signature-version=OSS4-HMAC-SHA256&"
             "x-oss-credential=LTAI%2F20261126%2Fr%2Foss%2Faliyun_v4_request&x-oss-signature=deadbeef1234")


def test_structlog_and_stdlib_records_are_scrubbed() -> None:
    stream = io.StringIO()
    configure_logging("debug", json=True, secrets=[SECRET], stream=stream)
    structlog.get_logger("t").info("event", url=PRESIGNED, authorization="OSS LTAI:abc=", note=f"secret {SECRET}")
    logging.getLogger("aiohttp.server").error("Error handling request %s", PRESIGNED)
    try:
        raise ValueError(f"boom {SECRET}")
    except ValueError:
        logging.getLogger("aiohttp.server").exception("failed")
    text = stream.getvalue()
    assert "event" in text and "Error handling request" in text and "boom" in text
    for leaked in (SECRET, "deadbeef1234", "aliyun_v4_request", "abc="):
        assert leaked not in text
    structlog.reset_defaults()


def test_logs_follow_sys_stderr_when_it_is_replaced_after_configuration(monkeypatch) -> None:
    """A test runner or host that swaps sys.stderr must not leave cached loggers writing to the
    old (maybe closed) stream: the CI run caught "I/O operation on closed file" this way."""
    import io
    import sys

    import structlog

    from worker.observability.logging import configure_logging

    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    configure_logging("info", json=True)
    log = structlog.get_logger("swap-test")
    log.info("before")
    first.close()
    monkeypatch.setattr(sys, "stderr", second)
    log.info("after")
    assert '"event": "after"' in second.getvalue()
    structlog.reset_defaults()
