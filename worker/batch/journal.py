"""The action journal: what a command that writes to the bucket was about to do, and what it did.

A row of the completion report is committed only after its action, in a batch with others
(:mod:`.checkpoint`), so a crash can fall between the two. Without more, ``--resume`` would send
the action again: a second CopyObject, or a DeleteObject of a key someone has re-uploaded since.
So every action is journaled twice, durably, in the checkpoint's own file:

* ``intent`` — before the first request of the action is sent;
* ``done`` — after its outcome is known, with the outcome row itself.

On resume an object's journal entry decides what happens to it: ``done`` → its recorded row is
reported and nothing is sent; ``intent`` → the action may or may not have reached the bucket, so
the command *reconciles* (looks at the bucket, then finishes or reports what it finds) instead of
repeating blindly; no entry → the action runs normally. Each commit is a fsynced SQLite
transaction: a ``kill -9`` at any instant leaves each entry absent, ``intent`` or ``done``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from enum import StrEnum
from sqlite3 import Connection
from typing import Any

__all__ = ["ActionJournal", "JournalEntry", "JournalState"]


class JournalState(StrEnum):
    INTENT = "intent"
    DONE = "done"


@dataclass(frozen=True)
class JournalEntry:
    """One object's journal entry: its action, its state and, once done, its outcome record."""

    action: str
    state: JournalState
    row: Mapping[str, Any] | None = None


class ActionJournal:
    """Journal entries keyed by object version ``(key, etag)``; built by the checkpoint."""

    def __init__(self, transaction: Callable[[], AbstractContextManager[Connection]],
                 read: Callable[[], AbstractContextManager[Connection]], chunk: int) -> None:
        self._transaction = transaction
        self._read = read
        self._chunk = chunk

    def begin(self, pairs: Sequence[tuple[str, str]], action: str) -> None:
        """Record the intent to act on ``pairs`` (one transaction); an existing entry is kept."""
        with self._transaction() as conn:
            conn.executemany("INSERT OR IGNORE INTO journal (key, etag, action, state) VALUES (?, ?, ?, ?)",
                             ((key, etag, action, JournalState.INTENT.value) for key, etag in pairs))

    def finish(self, outcomes: Sequence[tuple[str, str, str, Mapping[str, Any]]]) -> None:
        """Record ``(key, etag, action, record)`` outcomes as done (one transaction)."""
        with self._transaction() as conn:
            conn.executemany(
                "INSERT INTO journal (key, etag, action, state, row) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (key, etag) DO UPDATE SET state = excluded.state, row = excluded.row",
                ((key, etag, action, JournalState.DONE.value, json.dumps(record, default=str))
                 for key, etag, action, record in outcomes))

    def entries(self, pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], JournalEntry]:
        """The entries among ``pairs`` (chunked queries on the primary key's leading column)."""
        wanted = set(pairs)
        keys = sorted({key for key, _ in wanted})
        found: dict[tuple[str, str], JournalEntry] = {}
        with self._read() as conn:
            for start in range(0, len(keys), self._chunk):
                chunk = keys[start:start + self._chunk]
                marks = ",".join("?" * len(chunk))
                for key, etag, action, state, row in conn.execute(
                        f"SELECT key, etag, action, state, row FROM journal WHERE key IN ({marks})", chunk):
                    if (key, etag) in wanted:
                        found[(key, etag)] = JournalEntry(action, JournalState(state),
                                                          json.loads(row) if row else None)
        return found

    def counts(self) -> dict[str, int]:
        """Entries by state (for summaries and tests)."""
        with self._read() as conn:
            return dict(conn.execute("SELECT state, COUNT(*) FROM journal GROUP BY state").fetchall())
