"""Running totals of a command, and the summary a person reads at the end.

Bounded memory however many objects: counts by status, reasons, a fixed 20-bin score
histogram, and the first few keys that were not done (with the total count). The statuses are
the command's own; the tally only needs to know which of them are failures and which is the
"left alone on purpose" status, to compute the failure ratio the exit code is judged by.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from ..errors import ExitCode
from ..results.schema import Status
from .items import OutcomeRow

__all__ = ["Tally"]

_BINS = 20
_FAILED_KEYS_KEPT = 20


@dataclass
class Tally:
    """Totals of one command's rows. The defaults are ``picscore run``'s statuses."""

    statuses: tuple[str, ...] = tuple(status.value for status in Status)
    failure_statuses: frozenset[str] = frozenset({Status.FAILED.value, Status.MISSING.value})
    counted_failure: str = Status.FAILED.value  # the status the --failure-threshold counts
    skip_status: str = Status.SKIPPED.value
    not_done_label: str = "not scored"  # heads the list of failed keys in the summary
    by_status: Counter[str] = field(default_factory=Counter)
    skip_reasons: Counter[str] = field(default_factory=Counter)
    fail_codes: Counter[str] = field(default_factory=Counter)
    score_bins: list[int] = field(default_factory=lambda: [0] * _BINS)
    score_sum: float = 0.0
    scored_count: int = 0
    failed_keys: list[str] = field(default_factory=list)
    #: Rows counted from earlier sessions of the same checkpoint (a resumed run): in the totals,
    #: not in this session's rate.
    carried: int = 0

    def add_earlier(self, record: Mapping[str, Any]) -> None:
        """Count a row an earlier session of this run wrote (a record read back from a part file)."""
        self.add(SimpleNamespace(**record))
        self.carried += 1

    def add(self, row: OutcomeRow) -> None:
        status = row.status.value if hasattr(row.status, "value") else str(row.status)
        self.by_status[status] += 1
        if status == self.skip_status:
            self.skip_reasons[row.error_code or "?"] += 1
        elif status in self.failure_statuses:
            self.fail_codes[row.error_code or str(row.http_status)] += 1
            if len(self.failed_keys) < _FAILED_KEYS_KEPT:
                self.failed_keys.append(row.key)
        if row.score is not None:
            self.score_bins[min(int(row.score * _BINS), _BINS - 1)] += 1
            self.score_sum += row.score
            self.scored_count += 1

    @property
    def total(self) -> int:
        return sum(self.by_status.values())

    @property
    def scored(self) -> int:
        return self.by_status[Status.SCORED.value]

    @property
    def failed(self) -> int:
        return self.by_status[self.counted_failure]

    @property
    def not_done(self) -> int:
        return sum(self.by_status[status] for status in self.failure_statuses)

    @property
    def selected(self) -> int:
        """Objects that were acted on (or meant to be): everything not skipped."""
        return self.total - self.by_status[self.skip_status]

    def failure_ratio(self) -> float:
        return self.failed / max(1, self.selected)

    def verdict(self, failure_threshold: float) -> ExitCode:
        """OK when nothing failed, or the failed share is within ``failure_threshold`` (> 0)."""
        if self.failed == 0:
            return ExitCode.OK
        within = failure_threshold > 0 and self.failure_ratio() <= failure_threshold
        return ExitCode.OK if within else ExitCode.FAILURES

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

    def render(self, command: str, output: str | None, elapsed_s: float) -> str:
        total, session = self.total, self.total - self.carried
        rate = f"{session / elapsed_s if elapsed_s > 0 else 0:.1f}/s"
        if self.carried:
            lines = [f"picscore {command}: {total} objects ({self.carried} written before this resume, "
                     f"{session} in {elapsed_s:.1f} s at {rate})"]
        else:
            lines = [f"picscore {command}: {total} objects in {elapsed_s:.1f} s ({rate})"]
        for status in self.statuses:
            count = self.by_status[status]
            detail = ""
            if status == self.skip_status and self.skip_reasons:
                detail = "  (" + ", ".join(f"{k} {v}" for k, v in self.skip_reasons.most_common()) + ")"
            if status in self.failure_statuses and count:
                detail = "  (" + ", ".join(f"{k} {v}" for k, v in sorted(self.fail_codes.items())) + ")"
            lines.append(f"  {status:<8} {count:>9}{detail}")
        if self.scored_count and self.scored:
            p10, p50, p90 = (self.quantile(q) for q in (0.1, 0.5, 0.9))
            lines.append(f"  scores: mean {self.score_sum / self.scored_count:.3f}, p10 ~{p10:.2f}, "
                         f"median ~{p50:.2f}, p90 ~{p90:.2f}")
            peak = max(self.score_bins) or 1
            for index in range(0, _BINS, 2):
                count = self.score_bins[index] + self.score_bins[index + 1]
                bar = "#" * round(40 * count / (2 * peak)) if count else ""
                lines.append(f"    {index / _BINS:.1f}-{(index + 2) / _BINS:.1f} {count:>8} {bar}")
        if self.failed_keys:
            more = self.not_done - len(self.failed_keys)
            tail = f" … and {more} more" if more > 0 else ""
            lines.append(f"  {self.not_done_label}: " + ", ".join(self.failed_keys) + tail)
        if output:
            lines.append(f"  output: {output}")
        return "\n".join(lines)
