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

from .redact import SecretScrubber

__all__ = ["configure_logging"]


def configure_logging(level: str = "info", *, json: bool | None = None,
                      secrets: Iterable[str] = (), stream: TextIO | None = None) -> None:
    """Route structlog (and stdlib logging, e.g. aiohttp's) to ``stream``.

    ``json=None`` picks the console renderer when ``stream`` is a terminal, JSON otherwise.
    """
    stream = stream or sys.stderr
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
    logging.basicConfig(level=max(numeric, logging.WARNING), stream=stream, force=True)
