"""Night over night: what changed since the previous audit of the same bucket.

Objects are matched on (bucket, key) with one Arrow hash lookup per row, so a million rows per
night cost about a second and no Python object per row. Three questions, as an on-call engineer asks them:

* **new and low**: objects the previous run did not list at all, that score under the line now;
* **dropped**: objects scored both nights whose score fell by at least ``drop``, with whether
  the object was replaced (its ETag changed: a re-encode, a bad upload) or not (the same bytes
  scored lower: the scorer changed);
* **prefixes that moved**: top-level prefixes whose median score moved by at least ``shift``.

Objects gone since the previous night are counted, not listed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .columns import AuditColumns
from .summary import ReportOptions, medians_by_group

__all__ = ["Change", "PrefixMove", "NightComparison", "compare_nights", "DEFAULT_DROP", "DEFAULT_SHIFT"]

#: A score that fell by this much is a drop worth a look (a tenth of the scale).
DEFAULT_DROP = 0.1
#: A prefix median that moved by this much is listed.
DEFAULT_SHIFT = 0.02


@dataclass(frozen=True)
class Change:
    bucket: str
    key: str
    score: float
    previous: float | None
    replaced: bool  # the ETag differs from the previous night's


@dataclass(frozen=True)
class PrefixMove:
    label: str
    before: float
    after: float
    objects: int

    @property
    def delta(self) -> float:
        return self.after - self.before


@dataclass(frozen=True)
class NightComparison:
    previous_files: tuple[str, ...]
    previous_objects: int
    new_objects: int
    new_low_count: int
    new_low: list[Change]      # worst first, at most list_limit
    dropped_count: int
    dropped: list[Change]      # largest drop first, at most list_limit
    gone: int                  # listed the previous night, not now
    moves: list[PrefixMove]    # largest move first, at most list_limit
    drop: float
    shift: float


def _identities(audit: AuditColumns, several_buckets: bool) -> pa.ChunkedArray:
    """Each row's object identity: its key, or ``bucket/key`` when the nights span several buckets."""
    if not several_buckets:
        return audit.key
    buckets = pa.array(audit.buckets, type=pa.string()).take(pa.array(audit.bucket))
    return pc.binary_join_element_wise(buckets, audit.key.combine_chunks(), "/")


def compare_nights(now: AuditColumns, before: AuditColumns, options: ReportOptions, *,
                   drop: float = DEFAULT_DROP, shift: float = DEFAULT_SHIFT) -> NightComparison:
    """Match tonight's rows to the previous night's with one hash lookup per row (``index_in``:
    a hash table of the previous night's keys, about 40 MB for a million) rather than a join,
    which would hash both sides and hold both. A key listed twice the previous night (overlapping
    shards) matches its first row."""
    if drop <= 0 or shift <= 0:
        raise ValueError("--drop and --shift must be positive")
    several = len(set(now.buckets) | set(before.buckets)) > 1
    match = pc.index_in(_identities(now, several), value_set=_identities(before, several).combine_chunks())
    matched = ~pc.is_null(match).to_numpy(zero_copy_only=False)
    where = pc.fill_null(match, 0).to_numpy(zero_copy_only=False)
    score = now.score
    before_score = np.where(matched, before.score[where], np.nan)
    seen_before = np.zeros(len(before), dtype=bool)
    seen_before[where[matched]] = True

    new = ~matched
    new_low = new & (score < options.low)
    fell = matched & (before_score - score >= drop - 1e-9)

    def changes(mask: np.ndarray, order_by: np.ndarray) -> list[Change]:
        picked = np.flatnonzero(mask)
        picked = picked[np.argsort(order_by[picked], kind="stable")][:options.list_limit]
        return [Change(now.buckets[now.bucket[i]], now.key[i].as_py(), float(score[i]),
                       None if np.isnan(before_score[i]) else float(before_score[i]),
                       bool(matched[i]) and now.etag[i].as_py() != before.etag[int(where[i])].as_py())
                for i in picked.tolist()]

    return NightComparison(
        previous_files=before.files, previous_objects=len(before), new_objects=int(new.sum()),
        new_low_count=int(new_low.sum()), new_low=changes(new_low, score),
        dropped_count=int(fell.sum()), dropped=changes(fell, score - before_score),
        gone=int((~seen_before).sum()), moves=_moves(now, before, shift, options.list_limit),
        drop=drop, shift=shift)


def _medians(audit: AuditColumns) -> dict[tuple[str, str], tuple[float, int]]:
    """(bucket name, top-level prefix) → (median score, objects scored)."""
    scored = ~np.isnan(audit.score)
    medians = medians_by_group(audit.prefix[scored], audit.score[scored], len(audit.prefixes))
    counts = np.bincount(audit.prefix[scored], minlength=len(audit.prefixes))
    return {(audit.buckets[b], top): (float(medians[i]), int(counts[i]))
            for i, (b, top) in enumerate(audit.prefixes) if counts[i]}


def _moves(now: AuditColumns, before: AuditColumns, shift: float, limit: int) -> list[PrefixMove]:
    after_medians, before_medians = _medians(now), _medians(before)
    several = len({bucket for bucket, _ in after_medians}) > 1
    moves = []
    for name, (after, objects) in after_medians.items():
        previous = before_medians.get(name)
        if previous is not None and abs(after - previous[0]) >= shift - 1e-9:
            label = name[1] or "(top level)"
            moves.append(PrefixMove(f"{name[0]}: {label}" if several else label, previous[0], after, objects))
    moves.sort(key=lambda m: (-abs(m.delta), m.label))
    return moves[:limit]
