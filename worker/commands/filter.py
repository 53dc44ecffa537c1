"""``picscore filter``: select low-quality images from results, then report, tag, move, archive or
delete them, safely and resumably; ``--undo`` puts moved images back.

The selection (:mod:`worker.actions.selection`) is written first, as a results file of the
selected rows (``--output``); ``--action report`` stops there with its summary. Every other action
plans one step per selected object and runs the shared act phase (:mod:`.acting`): guards,
``--dry-run``, journaled exactly-once actions, and a completion report (``--report``). A move's
report is its undo manifest: ``picscore filter --undo REPORT`` restores each moved object.

Lifecycle rules are the cloud-native way to let OSS itself expire or transition what ``tag``
marks (README, "Acting on scores").
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from ..actions.act import MakeSteps, retry_policy
from ..actions.delete_batch import DeleteBatcher, DeleteStep
from ..actions.object_calls import ObjectCalls
from ..actions.plan import Guards, PlanSummary
from ..actions.predicate import compile_predicate
from ..actions.rows import ACTION_SCHEMA, Action, Outcome, PlannedAction
from ..actions.selection import Criteria, FilterSelection
from ..actions.steps import ArchiveStep, MoveStep, RestoreStep, Step, TagStep
from ..batch.journal import ActionJournal
from ..batch.results_source import check_results_file, localize_results, read_results
from ..batch.selection import ARCHIVED_CLASSES
from ..errors import ExitCode, UsageError
from ..oss.retry import retrying
from ..results.format_names import format_of
from ..results.schema import RESULT_SCHEMA
from ..results.whole_file import write_whole_file
from ..settings.action import ActionSettings
from .acting import ActJob, carry_out, default_checkpoint
from .outcome import CommandOutcome

__all__ = ["FilterOptions", "run_filter", "ACTIONS", "STORAGE_CLASSES"]

ACTIONS = ("report", "tag", "move", "archive", "delete")
#: The classes ``archive`` can move to (https://www.alibabacloud.com/help/en/oss/user-guide/overview-53).
STORAGE_CLASSES = ("IA", "Archive", "ColdArchive", "DeepColdArchive")
#: The default guard of the destructive actions: refuse a plan over this share of the objects.
DESTRUCTIVE_MAX_PERCENT = 25.0
DEFAULT_TAG = "picscore-quality=low"
SAMPLE_ROWS = 1000


@dataclass(frozen=True)
class FilterOptions:
    """``picscore filter``'s own options (the connection and engine settings are an ActionSettings)."""

    inputs: tuple[str, ...] = ()
    action: str = "report"
    below: float | None = None
    worst_percent: float | None = None
    where: str | None = None
    to: str | None = None
    storage_class: str = "Archive"
    tag: str = DEFAULT_TAG
    yes: bool = False
    max_actions: int | None = None
    max_percent: float | None = None
    output: Path = Path("picscore-selection.csv")
    report: Path | None = None
    undo: Path | None = None


def _check_options(options: FilterOptions, settings: ActionSettings) -> None:
    if options.undo is not None:
        if options.inputs:
            raise UsageError("--undo takes the move's report, not results files: give one or the other")
        return
    if not options.inputs:
        raise UsageError("give one or more results files of picscore run (local paths or oss://bucket/key)")
    if options.action not in ACTIONS:
        raise UsageError(f"--action must be one of {', '.join(ACTIONS)}, not {options.action!r}")
    if options.action == "move" and not options.to:
        raise UsageError("--action move needs --to PREFIX, e.g. --to quarantine/")
    if options.action != "move" and options.to:
        raise UsageError("--to applies only to --action move")
    if options.storage_class not in STORAGE_CLASSES:
        raise UsageError(f"--storage-class must be one of {', '.join(STORAGE_CLASSES)}, not {options.storage_class!r}")
    if options.action == "delete" and not options.yes and not settings.dry_run:
        raise UsageError("--action delete deletes objects for good: add --yes to confirm (try --dry-run first); "
                         "nothing was touched")
    for path in (options.output, options.report):
        if path is not None and format_of(str(path)) is None:
            raise UsageError(f"cannot tell the format of {path} from its name: use .parquet, .csv or .jsonl")


def parse_tag(text: str) -> tuple[str, str]:
    """``name=value`` as OSS allows a tag: name 1-128 characters, value at most 256."""
    name, equals, value = text.partition("=")
    if not equals or not 1 <= len(name) <= 128 or len(value) > 256:
        raise UsageError(f"--tag must be NAME=VALUE (name 1-128 characters, value at most 256), not {text!r}")
    return name, value


def _quarantine_prefix(to: str) -> str:
    prefix = to if to.endswith("/") else to + "/"
    if prefix.startswith("/") or prefix == "/":
        raise UsageError(f"--to must be a key prefix such as quarantine/, not {to!r}")
    return prefix


def _known_dimensions(files: Sequence[Path]) -> set[str] | None:
    """The sub-score names a sample of the inputs carries; None when they carry none at all."""
    names: set[str] = set()
    for path in files:
        for _, row in zip(range(SAMPLE_ROWS), read_results(path), strict=False):
            names.update(row.get("dimensions") or {})
    return names or None


class _SelectionPlanner:
    """Writes the selection (``--output``), then plans one action per selected row."""

    def __init__(self, selection: FilterSelection, output: Path, action: Action | None, destination: str | None):
        self.selection = selection
        self.output = output
        self.action = action
        self.destination = destination
        self.written = PlanSummary()

    def write_selection(self) -> None:
        def counted() -> Iterator[SimpleNamespace]:
            for row in self.selection:
                item = SimpleNamespace(**row)
                self.written.add(item)  # type: ignore[arg-type]
                yield item

        write_whole_file(self.output, format_of(str(self.output)) or "csv", RESULT_SCHEMA, counted())

    def actions(self) -> Iterable[PlannedAction]:
        self.write_selection()
        assert self.action is not None
        for row in read_results(self.output):
            destination = f"{self.destination}{row['key']}" if self.destination else None
            yield PlannedAction(row["bucket"], row["key"], row["etag"], int(row.get("size") or 0),
                                row.get("storage_class"), row.get("score"), self.action, destination)

    def out_of(self) -> int:
        return self.selection.counts.with_score

    def preface(self) -> list[str]:
        counts = self.selection.counts
        criteria = ", ".join(f"--{name.replace('_', '-')} {value if isinstance(value, str) else f'{value:g}'}"
                             for name, value in self.selection.criteria.describe().items() if value is not None)
        notes = []
        if counts.duplicates:
            notes.append(f"{counts.duplicates} repeated rows ignored")
        if counts.excluded:
            notes.append(f"{counts.excluded} left out ({'already there' if self.action else 'excluded'})")
        extra = f" ({'; '.join(notes)})" if notes else ""
        return [f"selection ({criteria}): {counts.selected} of {counts.with_score} scored objects "
                f"({counts.rows} rows read){extra}; written to {self.output}"]


class _UndoPlanner:
    """Plans a restore for every ``done`` move of a report."""

    def __init__(self, manifest: Path) -> None:
        self.manifest = manifest
        self.moves = 0

    def actions(self) -> Iterable[PlannedAction]:
        for row in read_results(self.manifest, ACTION_SCHEMA):
            if row["action"] == Action.MOVE.value and row["outcome"] == Outcome.DONE.value and row["destination"]:
                self.moves += 1
                yield PlannedAction(row["bucket"], row["key"], row["etag"], int(row.get("size") or 0),
                                    row.get("storage_class"), row.get("score"), Action.RESTORE, row["destination"])

    def out_of(self) -> int:
        return self.moves

    def preface(self) -> list[str]:
        return [f"undo of {self.manifest}: {self.moves} moved objects to restore"]


def _make_steps(action: Action, options: FilterOptions) -> MakeSteps:
    def make(calls: ObjectCalls, journal: ActionJournal) -> tuple[Mapping[Action, Step], Any]:
        async def nothing() -> None:
            return None

        if action is Action.DELETE:
            batcher = DeleteBatcher(calls, lambda pairs: asyncio.to_thread(journal.begin, pairs, Action.DELETE.value))
            return {Action.DELETE: DeleteStep(calls, batcher)}, batcher.aclose
        step: Step = {
            Action.TAG: lambda: TagStep(calls, *parse_tag(options.tag)),
            Action.MOVE: lambda: MoveStep(calls),
            Action.ARCHIVE: lambda: ArchiveStep(calls, options.storage_class),
            Action.RESTORE: lambda: RestoreStep(calls),
        }[action]()
        return {action: step}, nothing

    return make


def _default_report(base: Path, suffix: str) -> Path:
    name = base.name
    dot = name.rfind(".")
    stem, ext = (name, ".csv") if dot <= 0 else (name[:dot], name[dot:])
    return base.with_name(f"{stem}.{suffix}{ext}")


async def run_filter(options: FilterOptions, settings: ActionSettings) -> CommandOutcome:
    """Select, then report or act; the outcome to print."""
    _check_options(options, settings)
    if options.undo is not None:
        return await _undo(options, settings)
    if options.action != "report":
        settings.require_bucket_access(f"{options.action} objects")
    elif any(text.startswith("oss://") for text in options.inputs):
        settings.require_bucket_access("read oss:// results files")
    if options.action == "tag":
        parse_tag(options.tag)
    report = options.report or _default_report(options.output, "report")
    checkpoint = settings.checkpoint or default_checkpoint(report)
    files = await local_inputs(options.inputs, checkpoint, settings)
    known = await asyncio.to_thread(_known_dimensions, files) if options.where else None
    where = compile_predicate(options.where, known) if options.where else None
    criteria = Criteria(options.below, options.worst_percent, where, str(where) if where else None)
    action = None if options.action == "report" else Action(options.action)
    prefix = _quarantine_prefix(options.to) if options.to else None
    selection = FilterSelection(files, criteria, exclude=_excluder(action, prefix, options.storage_class))
    planner = _SelectionPlanner(selection, options.output, action, prefix)
    if action is None:
        await asyncio.to_thread(planner.write_selection)
        return CommandOutcome(ExitCode.OK, [*planner.preface(), *planner.written.lines("objects selected")])
    destructive = action in (Action.MOVE, Action.DELETE)
    guards = Guards(options.max_actions,
                    options.max_percent if options.max_percent is not None or not destructive
                    else DESTRUCTIVE_MAX_PERCENT)
    fingerprint = {"command": "filter", "version": 1, "inputs": list(options.inputs), **criteria.describe(),
                   "action": action.value, "to": prefix, "storage_class": options.storage_class,
                   "tag": options.tag, "output": str(options.output), "report": str(report)}
    epilogue = [f"  undo with: picscore filter --undo {report}"] if action is Action.MOVE else []
    job = ActJob("filter", settings, report, format_of(str(report)) or "csv", fingerprint, planner,
                 _make_steps(action, options), guards, what=f"objects to {action.value}", epilogue=epilogue)
    return await carry_out(job)


def _excluder(action: Action | None, prefix: str | None, storage_class: str):
    """Rows the action must not take: objects already in quarantine; for archive, objects already
    in the target class or in an archive class; for move, archived objects (OSS cannot copy them
    until they are restored)."""

    def exclude(row: Mapping[str, Any]) -> bool:
        if prefix is not None and str(row["key"]).startswith(prefix):
            return True
        current = row.get("storage_class")
        if action is Action.ARCHIVE and current is not None:
            return current == storage_class or current in ARCHIVED_CLASSES
        return action is Action.MOVE and current in ARCHIVED_CLASSES

    return exclude


async def _undo(options: FilterOptions, settings: ActionSettings) -> CommandOutcome:
    assert options.undo is not None
    settings.require_bucket_access("restore moved objects")
    check_results_file(options.undo)
    report = options.report or _default_report(options.undo, "undo")
    fingerprint = {"command": "filter-undo", "version": 1, "manifest": str(options.undo), "report": str(report)}
    job = ActJob("filter", settings, report, format_of(str(report)) or "csv", fingerprint, _UndoPlanner(options.undo),
                 _make_steps(Action.RESTORE, options), Guards(options.max_actions, options.max_percent),
                 what="objects to restore")
    return await carry_out(job)


async def local_inputs(inputs: Sequence[str], checkpoint: Path, settings: ActionSettings) -> list[Path]:
    """Local paths for the inputs; ``oss://`` ones downloaded once beside the checkpoint."""
    if not any(text.startswith("oss://") for text in inputs):
        files = [Path(text) for text in inputs]
    else:
        assert settings.endpoint and settings.region and settings.credentials
        files = await localize_results(inputs, checkpoint.with_name(checkpoint.name + ".inputs"),
                                       endpoint=settings.endpoint, region=settings.region,
                                       credentials=settings.credentials,
                                       retry=retrying(retry_policy(settings), secrets=settings.secrets))
    for path in files:
        check_results_file(path)
    return files
