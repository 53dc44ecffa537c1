"""What a command hands back to ``cli.py``: its exit code and the text to show, nothing printed.

Commands never print: they return a :class:`CommandOutcome`, and the command line decides where
each part goes (the report to stdout, the error line to stderr). Tests and other callers get the
same values without capturing streams.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ExitCode

__all__ = ["CommandOutcome"]


@dataclass
class CommandOutcome:
    """``code`` to exit with; ``report`` lines for stdout; ``error`` (one line) for stderr, if any."""

    code: ExitCode
    report: list[str] = field(default_factory=list)
    error: str | None = None
