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
