"""Night over night: what changed since the previous audit of the same bucket.

Objects are matched on (bucket, key) through 64-bit identities (:mod:`.identity`), so a million
rows per night cost about a second, no Python object per row, and the previous night's keys are
never held. Three questions, as an on-call engineer asks them:

* **new and low**: objects the previous run did not list at all, that score under the line now;
* **dropped**: objects scored both nights whose score fell by at least ``drop``, with whether
  the object was replaced (its ETag changed: a re-encode, a bad upload) or not (the same bytes
  scored lower: the scorer changed);
* **prefixes that moved**: top-level prefixes whose median score moved by at least ``shift``.

Objects gone since the previous night are counted, not listed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .columns import AuditColumns, read_etags
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


def compare_nights(now: AuditColumns, before: AuditColumns, options: ReportOptions, *,
                   drop: float = DEFAULT_DROP, shift: float = DEFAULT_SHIFT) -> NightComparison:
    """Match tonight's rows to the previous night's on their 64-bit identities (:mod:`.identity`):
    a sort of the previous night's and one binary search per row. A key listed twice the
    previous night (overlapping shards) matches its first row."""
    if drop <= 0 or shift <= 0:
        raise ValueError("--drop and --shift must be positive")
    order = np.argsort(before.identity, kind="stable")
    known = before.identity[order]
    found = np.searchsorted(known, now.identity)
    found = np.minimum(found, max(len(known) - 1, 0))
    matched = (known[found] == now.identity) if len(known) else np.zeros(len(now), dtype=bool)
    where = order[found] if len(known) else np.zeros(len(now), dtype=np.int64)
    score = now.score
    before_score = np.where(matched, before.score[where], np.nan) if len(before) else np.full(len(now), np.nan)
    # an object listed twice the previous night is one object: gone counts distinct identities
    distinct_before = np.unique(before.identity)
    gone = len(distinct_before) - int(np.isin(distinct_before, now.identity[matched]).sum())

    new = ~matched
    new_low = new & (score < options.low)
    fell = matched & (before_score - score >= drop - 1e-9)

    def changes(mask: np.ndarray, order_by: np.ndarray) -> list[Change]:
        picked = np.flatnonzero(mask)
        picked = picked[np.argsort(order_by[picked], kind="stable")][:options.list_limit].tolist()
        identity = {i: (now.buckets[now.bucket[i]], now.key[i].as_py()) for i in picked}
        was = {identity[i] for i in picked if matched[i]}
        before_etags = read_etags([Path(f) for f in before.files], was)
        now_etags = read_etags([Path(f) for f in now.files], was)
        return [Change(*identity[i], float(score[i]), None if np.isnan(before_score[i]) else float(before_score[i]),
                       bool(matched[i]) and now_etags.get(identity[i]) != before_etags.get(identity[i]))
                for i in picked]

    return NightComparison(
        previous_files=before.files, previous_objects=len(before), new_objects=int(new.sum()),
        new_low_count=int(new_low.sum()), new_low=changes(new_low, score),
        dropped_count=int(fell.sum()), dropped=changes(fell, score - before_score),
        gone=gone, moves=_moves(now, before, shift, options.list_limit),
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
