"""Which scored objects ``picscore filter`` selects: ``--below``, ``--worst-percent``, ``--where``.

Criteria combine with *and*. Only rows with a score compete (``scored`` rows, and ``skipped``
``Unchanged`` rows that carry an earlier score forward); the rest are counted, never selected.

``--worst-percent P`` is the ``ceil(P% × n)`` lowest-scored of the n rows with a score, over all
input files together (e.g. every shard of one audit). It needs the whole distribution before
the first row is chosen, so the inputs are read twice: once for the scores alone (8 bytes a row,
in a numpy array, read from Parquet without the other columns), once to select. Ties at the
threshold score are taken in input order, so the same inputs always give the same selection.

An object listed twice (overlapping shard files) is selected at most once: its first selected
row wins. Only selected objects are remembered for this, so memory grows with the selection
(about 100 bytes an object), not with the inputs.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..batch.results_source import check_results_file, read_results
from ..errors import ResultsFileError, UsageError
from ..results.formats import read_numbers

__all__ = ["Criteria", "FilterSelection", "SelectionCounts"]

Record = Mapping[str, Any]


@dataclass(frozen=True)
class Criteria:
    """The selection the user asked for; at least one criterion must be given."""

    below: float | None = None
    worst_percent: float | None = None
    where: Callable[[Record], bool] | None = None
    where_text: str | None = None

    def __post_init__(self) -> None:
        if self.below is None and self.worst_percent is None and self.where is None:
            raise UsageError("say what to select: --below SCORE, --worst-percent P and/or --where EXPRESSION")
        if self.below is not None and not 0 <= self.below <= 1:
            raise UsageError(f"--below must be a score from 0 to 1, got {self.below:g}")
        if self.worst_percent is not None and not 0 < self.worst_percent <= 100:
            raise UsageError(f"--worst-percent must be more than 0 and at most 100, got {self.worst_percent:g}")

    def describe(self) -> dict[str, Any]:
        """For the checkpoint's fingerprint and the summary."""
        return {"below": self.below, "worst_percent": self.worst_percent, "where": self.where_text}


@dataclass
class SelectionCounts:
    rows: int = 0          # every input row
    with_score: int = 0    # rows that compete
    duplicates: int = 0    # selected rows of an object already selected
    excluded: int = 0      # rows of objects the action must not touch (e.g. already in quarantine)
    selected: int = 0


class FilterSelection:
    """The selected rows of ``files``, in input order; ``counts`` is complete once iterated."""

    def __init__(self, files: Sequence[Path], criteria: Criteria,
                 exclude: Callable[[Record], bool] = lambda row: False) -> None:
        for path in files:
            check_results_file(path)
        self.files = list(files)
        self.criteria = criteria
        self.exclude = exclude
        self.counts = SelectionCounts()

    def _rows(self) -> Iterator[Record]:
        for path in self.files:
            yield from read_results(path)

    def _worst_cut(self) -> tuple[float, int] | None:
        """(threshold score, how many rows exactly at it to take) for ``--worst-percent``."""
        if self.criteria.worst_percent is None:
            return None
        try:
            scores = np.concatenate([read_numbers(path, "score") for path in self.files] or [np.empty(0)])
        except (ValueError, OSError) as exc:
            raise ResultsFileError(f"cannot read the scores: {exc}") from None
        wanted = math.ceil(len(scores) * self.criteria.worst_percent / 100)
        if wanted == 0:
            return -math.inf, 0
        threshold = float(np.partition(scores, wanted - 1)[wanted - 1])
        return threshold, wanted - int(np.count_nonzero(scores < threshold))

    def __iter__(self) -> Iterator[Record]:
        cut = self._worst_cut()
        ties_left = cut[1] if cut else 0
        seen: set[bytes] = set()
        counts = self.counts = SelectionCounts()
        below, where = self.criteria.below, self.criteria.where
        for row in self._rows():
            counts.rows += 1
            score = row.get("score")
            if score is None:
                continue
            counts.with_score += 1
            if self.exclude(row):
                counts.excluded += 1
                continue
            if cut is not None:
                threshold = cut[0]
                in_worst = score < threshold or (score == threshold and ties_left > 0)
                if score == threshold and ties_left > 0:
                    ties_left -= 1  # a tie slot goes to the tie row first in input order, chosen or not
                if not in_worst:
                    continue
            if below is not None and not score < below:
                continue
            if where is not None and not where(row):
                continue
            identity = hashlib.blake2b(f"{row['bucket']}/{row['key']}".encode(), digest_size=12).digest()
            if identity in seen:  # only selected objects are remembered: memory grows with the selection
                counts.duplicates += 1
                continue
            seen.add(identity)
            counts.selected += 1
            yield row

