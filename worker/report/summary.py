"""The page's numbers: pure functions from :class:`~worker.report.columns.AuditColumns` to small
dataclasses. Everything here is bounded in size whatever the bucket's size (a fixed number of
bins, prefixes, examples and listed failures), which is what keeps the page bounded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..results.schema import Status
from .columns import AuditColumns, read_etags
from .defects import DEFECTS, MILD, NO_SUBSCORES, describe, dominant_defects, label_of

__all__ = ["ReportOptions", "Totals", "Distribution", "PrefixStat", "DefectCount", "Example", "FailureGroup",
           "Summary", "summarise", "medians_by_group", "examples_of"]


#: Most failure rows listed over all groups (each group lists at most ``list_limit``; the largest first).
FAILURE_ROWS = 1000


@dataclass(frozen=True)
class ReportOptions:
    """What the page shows and how much of it (every list is bounded)."""

    low: float = 0.4           # the low-quality line: a score under it is low
    examples: int = 12         # worst and best images shown, each
    list_limit: int = 100      # most rows in any listing (failures per code, new low images…)
    bins: int = 20             # histogram bins over 0..1
    prefix_rows: int = 200     # most prefixes in the table; the rest are summed into one row
    prefix_charts: int = 12    # prefixes with their own histogram (the largest)

    def __post_init__(self) -> None:
        if not 0 < self.low <= 1:
            raise ValueError(f"the low-quality line must be in (0, 1], got {self.low}")
        for name in ("examples", "list_limit", "prefix_rows", "prefix_charts"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if not 1 <= self.bins <= 100:
            raise ValueError(f"bins must be 1..100, got {self.bins}")


@dataclass(frozen=True)
class Totals:
    objects: int
    bytes: int
    by_status: list[tuple[str, int, int]]  # (status, objects, bytes), every status, in order
    reasons: list[tuple[str, str, int]]    # (status, code or reason, objects) for rows that did not score
    files: tuple[str, ...]
    first_scored_at: object
    last_scored_at: object

    def count(self, status: str) -> int:
        return next((n for name, n, _ in self.by_status if name == status), 0)


@dataclass(frozen=True)
class Distribution:
    """Scores of one set of images: histogram counts over equal bins of 0..1 and a few quantiles."""

    counts: list[int]
    scored: int
    low: int
    median: float | None
    mean: float | None
    p10: float | None
    p90: float | None

    @property
    def low_share(self) -> float | None:
        return self.low / self.scored if self.scored else None


@dataclass(frozen=True)
class PrefixStat:
    label: str
    objects: int
    bytes: int
    distribution: Distribution
    main_defect: str | None  # what dominates among its low-quality images


@dataclass(frozen=True)
class DefectCount:
    name: str
    words: str
    count: int
    share: float
    examples: list[str]  # a few keys


@dataclass(frozen=True)
class Example:
    """One image shown with its thumbnail."""

    row: int
    bucket: str
    key: str
    etag: str
    size: int
    score: float
    explanation: str
    dimensions: dict[str, float]
    thumbnail: str | None = None      # a data: URI once fetched
    thumbnail_note: str | None = None  # why there is none
    link: str | None = None


@dataclass(frozen=True)
class FailureGroup:
    status: str
    code: str
    count: int
    rows: list[dict]  # bucket, key, http_status, error_message; at most list_limit (and FAILURE_ROWS in all)


@dataclass
class Summary:
    options: ReportOptions
    totals: Totals
    overall: Distribution
    prefixes: list[PrefixStat]
    prefixes_total: int
    charted: list[PrefixStat]
    defects: list[DefectCount]
    worst: list[Example]
    best: list[Example]
    failures: list[FailureGroup]
    notes: list[str] = field(default_factory=list)


def summarise(audit: AuditColumns, options: ReportOptions) -> Summary:
    scored = _scored_mask(audit)
    scores = audit.score[scored]
    low_rows = scored & (audit.score < options.low)
    overall = _distribution(scores, options)
    prefixes, total = _prefix_stats(audit, scored, low_rows, options)
    charted = sorted(prefixes, key=lambda p: -p.distribution.scored)[:options.prefix_charts]
    charted = [p for p in charted if p.distribution.scored]
    worst, best = examples_of(audit, scored, options.examples)
    return Summary(options=options, totals=_totals(audit), overall=overall, prefixes=prefixes, prefixes_total=total,
                   charted=charted, defects=_defects(audit, low_rows), worst=worst, best=best,
                   failures=_failures(audit, options.list_limit))


def _scored_mask(audit: AuditColumns) -> np.ndarray:
    return (audit.status == audit.status_code(Status.SCORED.value)) & ~np.isnan(audit.score)


def _bin_of(scores: np.ndarray, bins: int) -> np.ndarray:
    return np.clip((scores * bins).astype(np.int64), 0, bins - 1)


def _distribution(scores: np.ndarray, options: ReportOptions) -> Distribution:
    if not len(scores):
        return Distribution([0] * options.bins, 0, 0, None, None, None, None)
    counts = np.bincount(_bin_of(scores, options.bins), minlength=options.bins)
    p10, median, p90 = (float(v) for v in np.quantile(scores, [0.1, 0.5, 0.9]))
    return Distribution(counts.tolist(), len(scores), int((scores < options.low).sum()), median,
                        float(scores.mean()), p10, p90)


def medians_by_group(groups: np.ndarray, scores: np.ndarray, size: int) -> np.ndarray:
    """The median score of each group code 0..size-1 (NaN for a group without scores), in one sort."""
    out = np.full(size, np.nan)
    if not len(scores):
        return out
    order = np.lexsort((scores, groups))
    groups, scores = groups[order], scores[order]
    starts = np.searchsorted(groups, np.arange(size), side="left")
    ends = np.searchsorted(groups, np.arange(size), side="right")
    counts = ends - starts
    has = counts > 0
    lo = starts[has] + (counts[has] - 1) // 2
    hi = starts[has] + counts[has] // 2
    out[has] = (scores[lo] + scores[hi]) / 2
    return out


def _prefix_stats(audit: AuditColumns, scored: np.ndarray, low_rows: np.ndarray,
                  options: ReportOptions) -> tuple[list[PrefixStat], int]:
    """One row per top-level prefix, the largest first; beyond ``prefix_rows``, one row for the rest."""
    size = len(audit.prefixes)
    if not size:
        return [], 0
    objects = np.bincount(audit.prefix, minlength=size)
    order = np.argsort(-objects, kind="stable")
    shown, rest = order[:options.prefix_rows], order[options.prefix_rows:]
    groups = audit.prefix.copy()
    other = size  # every prefix past the shown ones becomes one group
    if len(rest):
        groups[np.isin(groups, rest)] = other
    codes = dominant_defects(audit.dimensions[low_rows], audit.dimension_names)
    stats = []
    for code in [*shown.tolist(), *([other] if len(rest) else [])]:
        members = groups == code
        label = audit.prefix_label(code) if code != other else f"({len(rest)} more prefixes)"
        in_low = codes[members[low_rows]]
        stats.append(PrefixStat(label, int(members.sum()), int(audit.size[members].sum()),
                                _distribution(audit.score[members & scored], options), _main_defect(in_low)))
    return stats, size


def _main_defect(codes: np.ndarray) -> str | None:
    if not len(codes):
        return None
    counts = np.bincount(codes, minlength=MILD + 1)
    return label_of(int(counts.argmax()))


def _defects(audit: AuditColumns, low_rows: np.ndarray) -> list[DefectCount]:
    """For the low-quality images, how many each defect dominates, most first, with example keys."""
    rows = np.flatnonzero(low_rows)
    if not len(rows):
        return []
    codes = dominant_defects(audit.dimensions[rows], audit.dimension_names)
    counts = np.bincount(codes, minlength=MILD + 1)
    out = []
    for code in np.argsort(-counts, kind="stable").tolist():
        if not counts[code]:
            continue
        worst_first = rows[codes == code][np.argsort(audit.score[rows[codes == code]], kind="stable")[:3]]
        name = DEFECTS[code].name if code < len(DEFECTS) else ("none" if code == NO_SUBSCORES else "mild")
        out.append(DefectCount(name, label_of(code), int(counts[code]), float(counts[code] / len(rows)),
                               [audit.object_url(int(r)) for r in worst_first]))
    return out


def examples_of(audit: AuditColumns, scored: np.ndarray, n: int) -> tuple[list[Example], list[Example]]:
    """The ``n`` worst and ``n`` best scored images (ties in file order)."""
    rows = np.flatnonzero(scored)
    if not n or not len(rows):
        return [], []
    order = rows[np.argsort(audit.score[rows], kind="stable")]
    worst = order[:n]
    rest = order[n:]  # an image is shown once: with few, the best are the rest
    best = rest[np.argsort(-audit.score[rest], kind="stable")][:n]  # highest first, ties in file order
    chosen = [int(r) for r in (*worst, *best)]
    etags = read_etags([Path(f) for f in audit.files],
                       {(audit.buckets[audit.bucket[r]], audit.key[r].as_py()) for r in chosen})
    shown = [_example(audit, r, etags) for r in chosen]
    return shown[:len(worst)], shown[len(worst):]


def _example(audit: AuditColumns, row: int, etags: dict[tuple[str, str], str | None]) -> Example:
    values = audit.dimensions[row]
    dims = {name: round(float(v), 3) for name, v in zip(audit.dimension_names, values, strict=True) if not np.isnan(v)}
    bucket, key = audit.buckets[audit.bucket[row]], audit.key[row].as_py()
    return Example(row=row, bucket=bucket, key=key, etag=etags.get((bucket, key)) or "", size=int(audit.size[row]),
                   score=float(audit.score[row]), explanation=describe(dims), dimensions=dims)


def _totals(audit: AuditColumns) -> Totals:
    by_status = []
    for code, name in enumerate(audit.statuses):
        members = audit.status == code
        by_status.append((name, int(members.sum()), int(audit.size[members].sum())))
    reasons: list[tuple[str, str, int]] = []
    scored_code = audit.status_code(Status.SCORED.value)
    unscored = audit.status != scored_code
    if unscored.any():
        pairs = audit.status[unscored].astype(np.int64) * (len(audit.error_codes) + 1) + audit.error_code[unscored] + 1
        values, counts = np.unique(pairs, return_counts=True)
        for value, count in sorted(zip(values.tolist(), counts.tolist(), strict=True), key=lambda vc: -vc[1]):
            status, code = divmod(value, len(audit.error_codes) + 1)
            reasons.append((audit.statuses[status], audit.error_codes[code - 1] if code else "(no code)", count))
    return Totals(objects=len(audit), bytes=int(audit.size.sum()), by_status=by_status, reasons=reasons,
                  files=audit.files, first_scored_at=audit.first_scored_at, last_scored_at=audit.last_scored_at)


def _failures(audit: AuditColumns, limit: int) -> list[FailureGroup]:
    """Rows that failed or went missing, grouped by status and error code, largest group first."""
    table = audit.unsettled.filter(pc.is_in(audit.unsettled["status"],
                                            value_set=pa.array([Status.FAILED.value, Status.MISSING.value])))
    if not table.num_rows:
        return []
    table = table.append_column("group", pc.fill_null(table["error_code"], "(no code)"))
    # One stable sort puts each group's rows together in file order; a group is then a slice.
    table = table.take(pc.sort_indices(table, sort_keys=[("status", "ascending"), ("group", "ascending")]))
    counts = table.group_by(["status", "group"]).aggregate([("key", "count")]).to_pylist()
    starts, offset = {}, 0
    for group in sorted(counts, key=lambda g: (g["status"].encode(), g["group"].encode())):  # Arrow's byte order
        starts[(group["status"], group["group"])] = offset
        offset += group["key_count"]
    counts.sort(key=lambda g: (-g["key_count"], g["status"], g["group"]))
    groups = []
    budget = max(limit, FAILURE_ROWS)  # over every group: hundreds of error codes must not make the page MBs
    for group in counts:
        shown = min(limit, budget, group["key_count"])
        rows = (table.slice(starts[(group["status"], group["group"])], shown)
                .select(["bucket", "key", "http_status", "error_message"]).to_pylist()) if shown else []
        budget -= len(rows)
        groups.append(FailureGroup(group["status"], group["group"], group["key_count"], rows))
    return groups

