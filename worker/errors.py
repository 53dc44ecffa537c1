"""One error tree for the whole command line: every error a user can cause knows its exit code
and says in one line what went wrong and what to do.

``cli.py`` catches :class:`PicscoreError` once and prints ``picscore <command>: <message>``;
anything else that escapes is a bug and keeps its traceback. Exit codes are documented in the
README, and Kubernetes ``podFailurePolicy`` rules key on them (deploy/), so they never change
meaning: 2 and 3 say "retrying will not help", 4 and 5 say "continue with --resume".
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

__all__ = [
    "ExitCode", "PicscoreError", "UsageError", "ConfigError", "CheckpointError", "OutputError",
    "ResultsFileError", "AuthError",
]


class ExitCode(IntEnum):
    """How a command ended (README "Exit codes")."""

    OK = 0              # everything done (or failures within --failure-threshold)
    FAILURES = 1        # more objects failed than --failure-threshold allows, or the result upload failed
    CONFIG = 2          # invalid usage, settings, checkpoint or output: retrying will not help
    AUTH = 3            # credentials refused (wrong secret, unknown key): retrying will not help
    INTERRUPTED = 4     # SIGTERM/SIGINT: resumable with --resume
    TIME_BUDGET = 5     # --time-budget reached: resumable with --resume


class PicscoreError(Exception):
    """Base of every error a user can cause. ``label`` prefixes the one-line message."""

    exit_code: ExitCode = ExitCode.CONFIG
    label: str = "error"

    def user_message(self) -> str:
        """The line printed after ``picscore <command>: ``; never a secret (callers redact first)."""
        text = str(self).strip() or type(self).__name__
        return f"{self.label}: {text}" if self.label else text


class UsageError(PicscoreError):
    """A command-line option or argument is wrong (a missing folder, an unknown name)."""

    label = ""


class ConfigError(PicscoreError, ValueError):
    """A setting is missing or invalid. ``field`` is the setting's name; the message names it and
    where the value came from. The offending value is shown only where it cannot be a secret."""

    label = "configuration error"

    def __init__(self, field: str, problem: str, *, source: str | None = None, value: Any = ...) -> None:
        self.field = field
        self.source = source
        if source is None:
            where = ""
        elif value is ...:
            where = f" (from {source})"
        else:
            where = f" (got {_show(value)} from {source})"
        super().__init__(f"{field}: {problem}{where}")


class CheckpointError(PicscoreError):
    """The checkpoint cannot be used as asked (exists without --resume, another run's, locked)."""

    label = "checkpoint error"


class OutputError(PicscoreError):
    """The output cannot be written or resumed as asked (e.g. a committed part file is missing)."""

    label = "output error"


class ResultsFileError(PicscoreError):
    """A results file given as input is missing, unreadable, or not a picscore results file."""

    label = "results file error"


class AuthError(PicscoreError):
    """The service refused the credentials: every call would fail alike."""

    exit_code = ExitCode.AUTH
    label = "credentials refused"


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
