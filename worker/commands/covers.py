"""``picscore covers``: the best image of each group (a folder, a product, an article), chosen
from the results of ``picscore run``, and optionally copied to a cover key or tagged.

The choice (:mod:`worker.actions.covers_choice`, grouping by :mod:`worker.actions.grouping`) is
written first (``--output``): one row per chosen image with its rank, score, sub-scores and the
margin over the next candidate, and one row per group left without an acceptable cover. With
``--apply copy|tag`` the winners go through the shared act phase (:mod:`.acting`): each copy is
guarded by the ETag in the results (an image changed since it was scored is reported
``changed``, not copied), journaled, and reported per object (``--report``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..actions.act import MakeSteps
from ..actions.covers_choice import CoverChoice, CoverChooser, NoCover
from ..actions.grouping import TOP_LEVEL, make_grouping
from ..actions.object_calls import ObjectCalls
from ..actions.plan import Guards
from ..actions.rows import Action, PlannedAction
from ..actions.steps import CopyStep, Step, TagStep
from ..batch.journal import ActionJournal
from ..batch.results_source import read_results
from ..errors import ExitCode, UsageError
from ..results.format_names import format_of
from ..results.schema import RowSchema
from ..results.whole_file import write_whole_file
from ..settings.action import ActionSettings
from .acting import ActJob, carry_out, default_checkpoint
from .filter import local_inputs, parse_tag
from .outcome import CommandOutcome

__all__ = ["CoversOptions", "run_covers", "COVERS_SCHEMA", "expand_destination"]

#: The covers file: a chosen image per row (``rank`` 1..K), or a group without one (``rank`` empty,
#: ``note`` says why).
COVERS_SCHEMA = RowSchema({
    "group": "str", "rank": "int", "bucket": "str", "key": "str", "etag": "str", "size": "int", "score": "float",
    "dimensions": "map", "margin": "float", "candidates": "int", "note": "str",
})
#: What ``{group}`` becomes in ``--to`` for keys at the top of the bucket (group ``/``).
TOP_LEVEL_NAME = "_top"
_PLACEHOLDERS = ("{group}", "{ext}", "{name}", "{key}", "{rank}")
_SHOWN_UNCOVERED = 5
_SHOWN_COVERS = 20


@dataclass(frozen=True)
class CoversOptions:
    inputs: tuple[str, ...] = ()
    group_by: str | None = None
    group_depth: int | None = None
    group_regex: str | None = None
    groups: Path | None = None
    top: int = 1
    min_score: float | None = None
    output: Path = Path("picscore-covers.csv")
    apply: str | None = None
    to: str | None = None
    tag: str = "picscore-cover=1"
    max_actions: int | None = None
    max_percent: float | None = None
    report: Path | None = None


@dataclass(frozen=True)
class CoverRow:
    group: str
    rank: int | None
    bucket: str | None
    key: str | None
    etag: str | None
    size: int | None
    score: float | None
    dimensions: Mapping[str, float]
    margin: float | None
    candidates: int
    note: str | None


def _row(result: CoverChoice | NoCover) -> CoverRow:
    if isinstance(result, NoCover):
        return CoverRow(result.group, None, None, None, None, None, result.best_score, {}, None, result.candidates,
                        f"no acceptable cover: {result.reason}")
    return CoverRow(result.group, result.rank, result.bucket, result.key, result.etag, result.size, result.score,
                    result.dimensions, result.margin, result.candidates, None)


def expand_destination(template: str, choice: CoverChoice) -> str:
    """``covers/{group}{ext}`` → ``covers/products/shoe-1.jpg`` for ``products/shoe-1/a.jpg``."""
    name = choice.key.rsplit("/", 1)[-1]
    dot = name.rfind(".")
    stem, ext = (name, "") if dot <= 0 else (name[:dot], name[dot:])
    group = TOP_LEVEL_NAME if choice.group == TOP_LEVEL else choice.group
    values = {"{group}": group, "{ext}": ext, "{name}": stem, "{key}": choice.key, "{rank}": str(choice.rank)}
    out = template
    for placeholder, value in values.items():
        out = out.replace(placeholder, value)
    return out


def _check_options(options: CoversOptions) -> None:
    if not options.inputs:
        raise UsageError("give one or more results files of picscore run (local paths or oss://bucket/key)")
    if options.apply not in (None, "copy", "tag"):
        raise UsageError(f"--apply must be copy or tag, not {options.apply!r}")
    if options.apply == "copy":
        if not options.to:
            raise UsageError("--apply copy needs --to TEMPLATE, e.g. --to 'covers/{group}{ext}'")
        if not any(p in options.to for p in ("{group}", "{key}")):
            raise UsageError("--to must contain {group} or {key}, or every group's cover would go to one key")
        if options.top > 1 and not any(p in options.to for p in ("{rank}", "{key}", "{name}")):
            raise UsageError("with --top above 1, --to needs {rank}, {name} or {key}: the covers of one group "
                             "would otherwise overwrite each other")
    elif options.to:
        raise UsageError("--to applies only to --apply copy")
    if options.apply == "tag":
        parse_tag(options.tag)
    for path in (options.output, options.report):
        if path is not None and format_of(str(path)) is None:
            raise UsageError(f"cannot tell the format of {path} from its name: use .parquet, .csv or .jsonl")


class _CoversPlanner:
    """Chooses, writes the covers file, then plans one action per chosen image (with ``--apply``)."""

    def __init__(self, files: Sequence[Path], chooser: CoverChooser, output: Path, options: CoversOptions) -> None:
        self.files = files
        self.chooser = chooser
        self.output = output
        self.options = options
        self.covered: set[str] = set()
        self.chosen = 0
        self.uncovered: list[str] = []
        self.uncovered_count = 0
        self.shown: list[str] = []

    def choose(self) -> None:
        for path in self.files:
            for record in read_results(path):
                self.chooser.add(record)
        write_whole_file(self.output, format_of(str(self.output)) or "csv", COVERS_SCHEMA, self._rows())

    def _rows(self) -> Iterator[CoverRow]:
        for result in self.chooser.results():
            if isinstance(result, NoCover):
                self.uncovered_count += 1
                if len(self.uncovered) < _SHOWN_UNCOVERED:
                    self.uncovered.append(f"{result.group} ({result.reason})")
            else:
                self.covered.add(result.group)
                self.chosen += 1
                if len(self.shown) < _SHOWN_COVERS:
                    margin = "" if result.margin is None else f" (+{result.margin:.3f} over the next)"
                    rank = f" #{result.rank}" if self.options.top > 1 else ""
                    self.shown.append(f"  {result.group}{rank}: {result.key}  {result.score:.3f}{margin}")
            yield _row(result)

    def actions(self) -> Iterable[PlannedAction]:
        self.choose()
        destinations: dict[str, str] = {}
        for result in self.chooser.results():
            if isinstance(result, NoCover):
                continue
            destination = None
            if self.options.apply == "copy":
                assert self.options.to
                destination = expand_destination(self.options.to, result)
                if destination == result.key:
                    raise UsageError(f"--to makes {result.key!r} its own destination")
                if destination in destinations:
                    first = destinations[destination]
                    raise UsageError(f"--to gives two covers the same key {destination!r} ({first!r} and "
                                     f"{result.key!r}): add {{rank}}, {{name}} or {{key}} to it")
                destinations[destination] = result.key
            action = Action.COPY if self.options.apply == "copy" else Action.TAG
            yield PlannedAction(result.bucket, result.key, result.etag, result.size, None, result.score, action,
                                destination)

    def out_of(self) -> int:
        counts = self.chooser.counts
        return counts.rows - counts.ungrouped - counts.not_scored

    def preface(self) -> list[str]:
        counts = self.chooser.counts
        lines = [f"covers ({self.chooser.grouping.describe()}, top {self.options.top}"
                 + (f", min-score {self.options.min_score:g}" if self.options.min_score is not None else "")
                 + f"): {counts.groups} groups, {len(self.covered)} covered with {self.chosen} images, "
                 f"{self.uncovered_count} without an acceptable cover; written to {self.output}", *self.shown]
        if self.chosen > len(self.shown):
            lines.append(f"  … and {self.chosen - len(self.shown)} more in {self.output}")
        if self.uncovered:
            more = self.uncovered_count - len(self.uncovered)
            tail = f" … and {more} more" if more else ""
            lines.append("  no acceptable cover: " + "; ".join(self.uncovered) + tail)
        if counts.ungrouped:
            lines.append(f"  {counts.ungrouped} rows in no group (e.g. {', '.join(counts.ungrouped_examples)})")
        if counts.not_scored:
            lines.append(f"  {counts.not_scored} rows without a score did not compete")
        return lines


def _make_steps(options: CoversOptions) -> MakeSteps:
    def make(calls: ObjectCalls, journal: ActionJournal) -> tuple[Mapping[Action, Step], Any]:
        async def nothing() -> None:
            return None

        if options.apply == "copy":
            return {Action.COPY: CopyStep(calls)}, nothing
        return {Action.TAG: TagStep(calls, *parse_tag(options.tag))}, nothing

    return make


def _group_by(options: CoversOptions) -> str:
    """``--group-by``, or the way implied by the one grouping parameter given."""
    if options.group_by is not None:
        return options.group_by
    if options.group_depth is not None:
        return "depth"
    if options.group_regex is not None:
        return "regex"
    return "groups-file" if options.groups is not None else "dirname"


async def run_covers(options: CoversOptions, settings: ActionSettings) -> CommandOutcome:
    """Choose the covers; with ``--apply``, copy or tag them; the outcome to print."""
    _check_options(options)
    grouping = make_grouping(_group_by(options), options.group_depth, options.group_regex, options.groups)
    chooser = CoverChooser(grouping, options.top, options.min_score)
    if options.apply is not None:
        settings.require_bucket_access(f"{options.apply} covers")
    elif any(text.startswith("oss://") for text in options.inputs):
        settings.require_bucket_access("read oss:// results files")
    report = options.report or options.output.with_name(options.output.stem + ".report" + options.output.suffix)
    checkpoint = settings.checkpoint or default_checkpoint(report)
    files = await local_inputs(options.inputs, checkpoint, settings)
    planner = _CoversPlanner(files, chooser, options.output, options)
    if options.apply is None:
        await asyncio.to_thread(planner.choose)
        return CommandOutcome(ExitCode.OK, planner.preface())
    fingerprint = {"command": "covers", "version": 1, "inputs": list(options.inputs), "grouping": grouping.describe(),
                   "top": options.top, "min_score": options.min_score, "apply": options.apply, "to": options.to,
                   "tag": options.tag, "output": str(options.output), "report": str(report)}
    job = ActJob("covers", settings, report, format_of(str(report)) or "csv", fingerprint, planner,
                 _make_steps(options), Guards(options.max_actions, options.max_percent),
                 what=f"covers to {options.apply}")
    return await carry_out(job)
