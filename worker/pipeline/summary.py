"""Running totals of a run, and the summary a person reads at the end.

Bounded memory however many objects: counts, a fixed 20-bin score histogram, and the first
few failed keys (with the total count).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from .model import ResultRow, Status

__all__ = ["Tally"]

_BINS = 20
_FAILED_KEYS_KEPT = 20


@dataclass
class Tally:
    by_status: Counter[str] = field(default_factory=Counter)
    skip_reasons: Counter[str] = field(default_factory=Counter)
    fail_codes: Counter[str] = field(default_factory=Counter)
    score_bins: list[int] = field(default_factory=lambda: [0] * _BINS)
    score_sum: float = 0.0
    failed_keys: list[str] = field(default_factory=list)

    def add(self, row: ResultRow) -> None:
        self.by_status[row.status.value] += 1
        if row.status is Status.SKIPPED:
            self.skip_reasons[row.error_code or "?"] += 1
        elif row.status in (Status.FAILED, Status.MISSING):
            self.fail_codes[row.error_code or str(row.http_status)] += 1
            if len(self.failed_keys) < _FAILED_KEYS_KEPT:
                self.failed_keys.append(row.key)
        if row.score is not None:
            self.score_bins[min(int(row.score * _BINS), _BINS - 1)] += 1
            self.score_sum += row.score

    @property
    def scored(self) -> int:
        return self.by_status[Status.SCORED.value]

    @property
    def failed(self) -> int:
        return self.by_status[Status.FAILED.value]

    @property
    def selected(self) -> int:
        """Objects that were sent (or meant to be sent) for scoring: everything not skipped."""
        return sum(self.by_status.values()) - self.by_status[Status.SKIPPED.value]

    def quantile(self, q: float) -> float | None:
        """Approximate score quantile from the histogram (bin midpoint)."""
        total = sum(self.score_bins)
        if not total:
            return None
        target, running = q * total, 0
        for index, count in enumerate(self.score_bins):
            running += count
            if running >= target:
                return (index + 0.5) / _BINS
        return 1.0

    def render(self, output: str | None, elapsed_s: float) -> str:
        total = sum(self.by_status.values())
        lines = [f"picscore run: {total} objects in {elapsed_s:.1f} s "
                 f"({total / elapsed_s if elapsed_s > 0 else 0:.1f}/s)"]
        for status in Status:
            count = self.by_status[status.value]
            detail = ""
            if status is Status.SKIPPED and self.skip_reasons:
                detail = "  (" + ", ".join(f"{k} {v}" for k, v in self.skip_reasons.most_common()) + ")"
            if status in (Status.FAILED, Status.MISSING) and count:
                codes = {k: v for k, v in self.fail_codes.items()}
                detail = "  (" + ", ".join(f"{k} {v}" for k, v in sorted(codes.items())) + ")"
            lines.append(f"  {status.value:<8} {count:>9}{detail}")
        if self.scored:
            p10, p50, p90 = (self.quantile(q) for q in (0.1, 0.5, 0.9))
            lines.append(f"  scores: mean {self.score_sum / self.scored:.3f}, p10 ~{p10:.2f}, "
                         f"median ~{p50:.2f}, p90 ~{p90:.2f}")
            peak = max(self.score_bins) or 1
            for index in range(0, _BINS, 2):
                count = self.score_bins[index] + self.score_bins[index + 1]
                bar = "#" * round(40 * count / (2 * peak)) if count else ""
                lines.append(f"    {index / _BINS:.1f}-{(index + 2) / _BINS:.1f} {count:>8} {bar}")
        if self.failed_keys:
            more = self.failed + self.by_status[Status.MISSING.value] - len(self.failed_keys)
            lines.append("  not scored: " + ", ".join(self.failed_keys) + (f" … and {more} more" if more > 0 else ""))
        if output:
            lines.append(f"  output: {output}")
        return "\n".join(lines)
