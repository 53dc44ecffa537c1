"""The choosing logic of ``picscore covers``: the best ``--top K`` scored images of each group.

Pure and streaming: :meth:`CoverChooser.add` takes every results row (a record as
:func:`~worker.results.formats.read_rows` gives it) of every input file, in any order, and
:meth:`CoverChooser.results` says per group, in sorted group order, which images are its covers
(:class:`CoverChoice`) or why it has none (:class:`NoCover`).

Memory is O(groups x K), not O(rows): per group only the best K+1 candidates are kept (K chosen,
one more for the last one's margin). A results file can hold millions of rows.

Ranking, the same whatever the input order: higher score first; then the larger file (at one
score, the larger file is usually the less compressed original); then key, bucket and etag
ascending, so no two candidates ever tie.

One object (bucket and key) takes at most one rank. When a group's kept candidates already hold
an object, another row about it (overlapping shards, a re-run) is the *later word* on it: the
row with the later ``scored_at`` wins (a missing ``scored_at`` is the oldest); at an equal time the higher
score, then the larger size, then the larger etag. "The later seen" was not taken as the tie
rule: it would make the result depend on the order of the input files. A later row that is not
scored withdraws the candidate when it says the scored version is gone: status ``missing``, or
another etag. A later failed or skipped row of the same etag does not: that version's score stands.

Known limit of the bounded memory: rows about one object are reconciled only while the object
is among its group's best K+1 (the only place where it could take a rank or set a margin). A
newer version of an object that arrives while that object is outranked is not seen by the older
one. Reconciling every object would need memory per row; the act phase acts on the chosen etag,
so a stale choice fails there rather than touching another version. For the same reason
``candidates`` counts a group's scored *rows* (a row repeated by overlapping inputs counts each
time): that number, unlike a count of repeats found, does not depend on the input order.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ..errors import UsageError
from ..results.schema import Record, Status, utc_ms
from .grouping import Grouping

__all__ = ["CoverChooser", "CoverChoice", "NoCover", "ChoiceCounts", "UNGROUPED_EXAMPLES"]

#: How many keys in no group :class:`ChoiceCounts` names (the smallest, so the list is deterministic).
UNGROUPED_EXAMPLES = 5
_OLDEST = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True)
class CoverChoice:
    """One chosen image: ``rank`` 1..K in its group; ``margin`` is its score minus the next candidate's
    (``None`` when it was the group's last candidate): a small margin is a close call worth a look.
    ``candidates``: the group's scored rows (see the module's "known limit")."""

    group: str
    rank: int
    bucket: str
    key: str
    etag: str
    size: int
    score: float
    dimensions: dict[str, float]
    margin: float | None
    candidates: int


@dataclass(frozen=True)
class NoCover:
    """A group given no cover, rather than a bad one: ``reason`` says why in words."""

    group: str
    candidates: int
    best_score: float | None
    reason: str


@dataclass(frozen=True)
class ChoiceCounts:
    """What happened to the rows. ``rows`` = ``ungrouped`` + ``not_scored`` + scored rows in a group.

    Found only among the kept candidates (so lower bounds, and they may vary with the input order):
    ``duplicates``, scored rows about an object already kept (the earlier word was dropped);
    ``withdrawn``, kept candidates dropped because a later row said their version is gone."""

    rows: int
    ungrouped: int
    not_scored: int
    duplicates: int
    withdrawn: int
    groups: int
    ungrouped_examples: tuple[str, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class _Candidate:
    """A scored row, reduced to what a cover needs; ``rank`` sorts the best first."""

    bucket: str
    key: str
    etag: str
    size: int
    score: float
    dimensions: dict[str, float]
    scored_at: datetime
    rank: tuple[float, int, str, str, str]

    @property
    def ident(self) -> tuple[str, str]:
        return self.bucket, self.key

    def version(self) -> tuple[datetime, float, int, str]:
        """The later word on one object sorts last."""
        return self.scored_at, self.score, self.size, self.etag


def _when(record: Record) -> datetime:
    return utc_ms(record.get("scored_at")) or _OLDEST


def _candidate(record: Record) -> _Candidate | None:
    """The row as a candidate, or ``None`` when it does not compete (not scored, or no valid score)."""
    score = record.get("score")
    if record.get("status") != Status.SCORED or score is None or not math.isfinite(score):
        return None
    bucket, key, etag, size = record["bucket"], record["key"], record["etag"] or "", record["size"] or 0
    return _Candidate(bucket, key, etag, size, float(score), record.get("dimensions") or {}, _when(record),
                      (-float(score), -size, key, bucket, etag))


def _rank(candidate: _Candidate) -> tuple[float, int, str, str, str]:
    return candidate.rank


class _GroupBest:
    """One group's best ``capacity`` candidates, best first, at most one per object."""

    __slots__ = ("by_ident", "candidates", "capacity", "entries")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.entries: list[_Candidate] = []
        self.by_ident: dict[tuple[str, str], _Candidate] = {}
        self.candidates = 0  # scored rows offered (see the module's "known limit")

    def offer(self, new: _Candidate) -> bool:
        """Keep ``new`` if it ranks among the best; True when it was about an object already kept."""
        self.candidates += 1
        old = self.by_ident.get(new.ident)
        if old is not None:
            if new.version() > old.version():
                self._remove(old)
                self._insert(new)
            return True
        if len(self.entries) < self.capacity or new.rank < self.entries[-1].rank:
            self._insert(new)
            if len(self.entries) > self.capacity:
                self._remove(self.entries[-1])
        return False

    def withdraw(self, record: Record) -> bool:
        """Drop the kept candidate ``record`` says is gone (see the module docstring); True if dropped."""
        old = self.by_ident.get((record["bucket"], record["key"]))
        if old is None or _when(record) <= old.scored_at:
            return False
        if record.get("status") != Status.MISSING and (record["etag"] or "") == old.etag:
            return False
        self._remove(old)
        return True

    def _insert(self, candidate: _Candidate) -> None:
        bisect.insort(self.entries, candidate, key=_rank)
        self.by_ident[candidate.ident] = candidate

    def _remove(self, candidate: _Candidate) -> None:
        del self.entries[bisect.bisect_left(self.entries, candidate.rank, key=_rank)]
        del self.by_ident[candidate.ident]


def _check_options(top: int, min_score: float | None) -> None:
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise UsageError(f"--top must be a whole number of at least 1, got {top!r}")
    if min_score is not None and not (math.isfinite(min_score) and 0.0 <= min_score <= 1.0):
        raise UsageError(f"--min-score must be between 0 and 1, got {min_score!r}")


class CoverChooser:
    """Feed every results row to :meth:`add`, then read :meth:`results` and :attr:`counts`."""

    def __init__(self, grouping: Grouping, top: int = 1, min_score: float | None = None) -> None:
        _check_options(top, min_score)
        self.grouping = grouping
        self.top = top
        self.min_score = min_score
        self._groups: dict[str, _GroupBest] = {}
        self._rows = self._ungrouped = self._not_scored = self._duplicates = self._withdrawn = 0
        self._ungrouped_examples: list[str] = []

    def add(self, record: Record) -> None:
        """Take one results row; rows may come in any order, from any number of files."""
        self._rows += 1
        group = self.grouping.group_of(record["key"])
        if group is None:
            self._ungrouped += 1
            self._note_ungrouped(record["key"])
            return
        best = self._groups.get(group)
        if best is None:
            best = self._groups[group] = _GroupBest(self.top + 1)
        candidate = _candidate(record)
        if candidate is None:
            self._not_scored += 1
            self._withdrawn += best.withdraw(record)
        else:
            self._duplicates += best.offer(candidate)

    def _note_ungrouped(self, key: str) -> None:
        """Remember the smallest few such keys (order-independent, bounded)."""
        examples = self._ungrouped_examples
        if key in examples or (len(examples) == UNGROUPED_EXAMPLES and key >= examples[-1]):
            return
        bisect.insort(examples, key)
        del examples[UNGROUPED_EXAMPLES:]

    @property
    def counts(self) -> ChoiceCounts:
        return ChoiceCounts(self._rows, self._ungrouped, self._not_scored, self._duplicates, self._withdrawn,
                            len(self._groups), tuple(self._ungrouped_examples))

    @property
    def kept(self) -> int:
        """Candidates held right now, all groups together: at most groups x (K+1)."""
        return sum(len(best.entries) for best in self._groups.values())

    def results(self) -> Iterator[CoverChoice | NoCover]:
        """Per group in sorted order: its covers by rank, or one :class:`NoCover`. Can be read again."""
        for group in sorted(self._groups):
            yield from self._group_results(group, self._groups[group])

    def _group_results(self, group: str, best: _GroupBest) -> Iterator[CoverChoice | NoCover]:
        entries = best.entries
        if not entries:
            reason = "no scored image" if not best.candidates else "no scored image left: later rows say it is gone"
            yield NoCover(group, best.candidates, None, reason)
            return
        chosen = [c for c in entries[: self.top] if self.min_score is None or c.score >= self.min_score]
        if not chosen:
            reason = f"best score {entries[0].score:g} < min-score {self.min_score:g}"
            yield NoCover(group, best.candidates, entries[0].score, reason)
            return
        for rank, c in enumerate(chosen, start=1):
            margin = c.score - entries[rank].score if rank < len(entries) else None
            yield CoverChoice(group, rank, c.bucket, c.key, c.etag, c.size, c.score, dict(c.dimensions), margin,
                              best.candidates)
