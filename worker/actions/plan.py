"""The plan: every action a command will take, decided and counted before the first one is sent.

Deciding everything first is what makes acting safe to review and to bound: ``--dry-run``
prints the plan, the guards (``--max-actions``, ``--max-percent``, like rclone's
``--max-delete``) refuse a plan larger than expected, and the act phase
(:mod:`worker.actions.act`) works through the plan file by row offset, resumably.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError
from ..results.formats import read_rows
from ..results.whole_file import write_whole_file
from ..units import format_size
from .operation import planned_from_record
from .rows import PLAN_SCHEMA, PlannedAction

__all__ = ["PlanSummary", "Guards", "GuardRefused", "write_plan", "read_plan", "describe_action"]

UNKNOWN_CLASS = "unknown"


class GuardRefused(UsageError):
    """The plan is larger than a guard allows: nothing was touched (exit code 2)."""


@dataclass
class PlanSummary:
    """Count and bytes of the planned actions, in all and per storage class."""

    count: int = 0
    bytes: int = 0
    count_by_class: Counter[str] = field(default_factory=Counter)
    bytes_by_class: Counter[str] = field(default_factory=Counter)

    def add(self, action: PlannedAction) -> None:
        storage_class = action.storage_class or UNKNOWN_CLASS
        self.count += 1
        self.bytes += action.size
        self.count_by_class[storage_class] += 1
        self.bytes_by_class[storage_class] += action.size

    def lines(self, what: str) -> list[str]:
        """``what`` is the noun phrase for the count, e.g. "objects selected"."""
        lines = [f"  {self.count} {what}, {format_size(self.bytes)}"]
        for storage_class, count in sorted(self.count_by_class.items()):
            size = format_size(self.bytes_by_class[storage_class])
            lines.append(f"    {storage_class:<12} {count:>9} objects  {size}")
        return lines


@dataclass(frozen=True)
class Guards:
    """The most a plan may hold: a count, and a share of the objects it was chosen from."""

    max_actions: int | None = None
    max_percent: float | None = None

    def check(self, planned: int, out_of: int) -> None:
        """Refuse (:class:`GuardRefused`) a plan of ``planned`` actions chosen among ``out_of`` objects."""
        if self.max_actions is not None and planned > self.max_actions:
            raise GuardRefused(f"the plan has {planned} actions, over --max-actions {self.max_actions}; nothing was "
                               "touched. Check the selection with --dry-run, then raise the limit if it is right")
        if self.max_percent is not None and out_of and planned > math.floor(out_of * self.max_percent / 100):
            share = 100 * planned / out_of
            raise GuardRefused(f"the plan covers {planned} of {out_of} objects ({share:.1f}%), over --max-percent "
                               f"{self.max_percent:g}; nothing was touched. Check the selection with --dry-run, then "
                               "raise the limit if it is right")


def write_plan(path: Path, actions: Iterable[PlannedAction], summary: PlanSummary) -> None:
    """Write the plan file (Parquet, atomically), counting each action into ``summary``."""

    def counted() -> Iterator[PlannedAction]:
        for action in actions:
            summary.add(action)
            yield action

    write_whole_file(path, "parquet", PLAN_SCHEMA, counted())


def read_plan(path: Path) -> Iterator[PlannedAction]:
    for record in read_rows(path, "parquet", PLAN_SCHEMA):
        yield planned_from_record(record)


def describe_action(action: PlannedAction, detail: str = "") -> str:
    """One line of a dry run: exactly the request(s) the action would send."""
    where = f"oss://{action.bucket}/"
    target = f" -> {where}{action.destination}" if action.destination else ""
    score = "" if action.score is None else f"  score {action.score:.3f}"
    extra = f"  {detail}" if detail else ""
    return f"would {action.action.value:<7} {where}{action.key}{target}  (etag {action.etag}){score}{extra}"
