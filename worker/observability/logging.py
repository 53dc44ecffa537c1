"""structlog configuration: JSON lines for machines, a readable console on a terminal.

Explicit and done once at start-up by the CLI (never on import), with the secret scrubber as
the last processor before rendering so nothing a processor adds can leak a credential.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from typing import TextIO

import structlog

from .redact import SecretScrubber, redact_text

__all__ = ["configure_logging", "RedactingFilter"]


class RedactingFilter(logging.Filter):
    """Scrubs stdlib log records (aiohttp's own loggers) the way :class:`SecretScrubber` scrubs ours."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = tuple(s for s in secrets if s)

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact_text(record.getMessage(), self.secrets)
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact_text(logging.Formatter().formatException(record.exc_info), self.secrets)
            record.exc_info = None
        return True


class _CurrentStderr:
    """Whatever ``sys.stderr`` is when a line is written, not when logging was configured: a
    host that swaps ``sys.stderr`` (a test runner capturing output, an embedding application)
    must not leave cached loggers writing to a closed stream."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


def configure_logging(level: str = "info", *, json: bool | None = None,
                      secrets: Iterable[str] = (), stream: TextIO | None = None) -> None:
    """Route structlog (and stdlib logging, e.g. aiohttp's) to ``stream``.

    ``json=None`` picks the console renderer when ``stream`` is a terminal, JSON otherwise.
    """
    stream = stream or _CurrentStderr()  # type: ignore[assignment]
    if json is None:
        json = not stream.isatty()
    renderer = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    numeric = logging.getLevelName(level.upper())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            SecretScrubber(secrets),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter(secrets))
    logging.basicConfig(level=max(numeric, logging.WARNING), handlers=[handler], force=True)
