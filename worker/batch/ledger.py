"""Which source position is safe to resume from.

A source reads ahead of the consumers, so the token of the last page *read* is not a safe
resume point: objects of earlier pages may still be in flight. A stream's resume token (a
stream's ListObjectsV2 continuation token, a results file's row offset) may only move past a
page once every object of that page, and of all pages before it, has its row committed. This
module keeps that ledger: pages open with a count of objects to finish, rows complete them, and
:meth:`ResumeLedger.updates` reports the tokens that became safe, to be committed in the same
checkpoint transaction as those rows.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["ResumeLedger"]


@dataclass
class _Page:
    page_id: int
    remaining: int
    next_token: str | None


class ResumeLedger:
    """Per-stream ledger of read pages and their unfinished objects."""

    def __init__(self, saved: Mapping[str, tuple[str | None, bool]]) -> None:
        self._saved = dict(saved)
        self._pages: dict[str, deque[_Page]] = {}
        self._page_stream: dict[int, str] = {}
        self._by_id: dict[int, _Page] = {}
        self._closed: set[str] = set()
        self._dirty: set[str] = set()
        self._next_id = 0

    def resume_point(self, stream: str) -> tuple[str | None, bool]:
        """(token to start from, whether the stream is already finished)."""
        return self._saved.get(stream, (None, False))

    def open_page(self, stream: str, count: int, next_token: str | None) -> int:
        """Register a listed page with ``count`` objects still to finish; returns its id."""
        page = _Page(self._next_id, count, next_token)
        self._next_id += 1
        self._pages.setdefault(stream, deque()).append(page)
        self._page_stream[page.page_id] = stream
        self._by_id[page.page_id] = page
        if count == 0:
            self._dirty.add(stream)
        return page.page_id

    def close_stream(self, stream: str) -> None:
        """The stream has been read to its end."""
        self._closed.add(stream)
        self._dirty.add(stream)

    def complete(self, page_id: int) -> None:
        """One object of ``page_id`` has its row committed (or about to be, in this transaction)."""
        page = self._by_id[page_id]
        page.remaining -= 1
        if page.remaining == 0:
            self._dirty.add(self._page_stream[page_id])

    def updates(self) -> dict[str, tuple[str | None, bool]]:
        """Resume points that moved since the last call: stream → (token, finished)."""
        changed: dict[str, tuple[str | None, bool]] = {}
        for stream in sorted(self._dirty):
            pages = self._pages.get(stream, deque())
            advanced = False
            token = self._saved.get(stream, (None, False))[0]
            while pages and pages[0].remaining == 0:
                done = pages.popleft()
                del self._by_id[done.page_id], self._page_stream[done.page_id]
                token, advanced = done.next_token, True
            finished = not pages and stream in self._closed
            if advanced or finished:
                changed[stream] = (None if finished else token, finished)
                self._saved[stream] = changed[stream]
        self._dirty.clear()
        return changed

    @property
    def open_pages(self) -> int:
        return len(self._by_id)
