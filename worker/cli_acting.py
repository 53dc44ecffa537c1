"""The command lines of ``picscore covers`` and ``picscore filter``: the commands that act on
results. Split from :mod:`worker.cli` only to keep each module small; same rules: parse, build
settings, call in, print, exit code. Heavy modules are imported inside the command functions.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import eventloop

__all__ = ["add_filter", "add_covers", "whole_number"]

_EXIT_CODES = ("Exit codes: 0 done (objects that changed since scoring are reported, not failures), 1 failures "
               "over the threshold, 2 bad input or a guard refused the plan (nothing touched), 3 credentials "
               "refused, 4 interrupted, 5 time budget reached (4 and 5 continue with --resume).")


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def whole_number(minimum: int = 0):
    """argparse type: a whole number of at least ``minimum`` (a clear usage error otherwise)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


_count = whole_number(minimum=0)


def _add_guards(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-actions", type=_count, metavar="N", help="refuse a plan of more than N actions")
    p.add_argument("--max-percent", type=_number, metavar="P",
                   help="refuse a plan that covers more than P%% of the objects it was chosen from (move and delete: "
                   "25 unless given)")
    p.add_argument("--report", type=Path, metavar="PATH",
                   help="completion report, one row per object: outcome, HTTP status, request id (.parquet, .csv or "
                   ".jsonl; default beside --output)")


def add_filter(sub: argparse._SubParsersAction) -> None:
    from .settings.action import add_action_arguments

    p = sub.add_parser(
        "filter", help="select low-quality images from results; report, tag, move, archive or delete them",
        description="Select images from the results of picscore run (--below, --worst-percent, --where: all must "
        "hold) and act on them. Every action is guarded by the ETag in the results (a changed object is left "
        "alone and reported), journaled (a resumed run acts on each object exactly once) and reported per object. "
        + _EXIT_CODES)
    p.add_argument("inputs", nargs="*", metavar="RESULTS", help="results files (.parquet/.csv/.jsonl, local or "
                   "oss://bucket/key); several for a sharded audit")
    p.add_argument("--action", default="report", help="report (default: write the selection and its summary), "
                   "tag, move, archive or delete")
    p.add_argument("--below", type=_number, metavar="SCORE", help="overall score below SCORE")
    p.add_argument("--worst-percent", type=_number, metavar="P", help="the P%% lowest-scored objects")
    p.add_argument("--where", metavar="EXPRESSION",
                   help="sub-scores, e.g. 'blur < 0.2 and exposure < 0.3' (names: score, size, blur, noise, exposure, "
                   "resolution, compression, distortion, saturation; and, or, not, parentheses)")
    p.add_argument("--to", metavar="PREFIX", help="move: the quarantine prefix, e.g. quarantine/")
    p.add_argument("--storage-class", default="Archive", help="archive: IA, Archive (default), ColdArchive or "
                   "DeepColdArchive")
    p.add_argument("--tag", default="picscore-quality=low", metavar="NAME=VALUE",
                   help="tag: the tag to add (default picscore-quality=low); the object's other tags are kept")
    p.add_argument("--yes", action="store_true", help="delete: confirm that the objects are to be deleted")
    p.add_argument("--output", type=Path, default=Path("picscore-selection.csv"), metavar="PATH",
                   help="the selection: the selected results rows (default picscore-selection.csv)")
    p.add_argument("--undo", type=Path, metavar="REPORT", help="restore every object a move's report lists as moved")
    _add_guards(p)
    add_action_arguments(p)
    p.set_defaults(func=_cmd_filter)


def _cmd_filter(args: argparse.Namespace) -> int:
    from .settings.action import load_action_settings

    settings = load_action_settings(args, os.environ, "filter")
    from .commands.filter import FilterOptions, run_filter

    options = FilterOptions(inputs=tuple(args.inputs), action=args.action, below=args.below,
                            worst_percent=args.worst_percent, where=args.where, to=args.to,
                            storage_class=args.storage_class, tag=args.tag, yes=args.yes,
                            max_actions=args.max_actions, max_percent=args.max_percent, output=args.output,
                            report=args.report, undo=args.undo)
    return _run("filter", settings, run_filter(options, settings))


def add_covers(sub: argparse._SubParsersAction) -> None:
    from .settings.action import add_action_arguments

    p = sub.add_parser(
        "covers", help="choose the best image of each group (a folder, a product) from results; copy or tag it",
        description="Group the scored images of picscore run's results and choose the best K of each group. "
        "--apply copy/tag acts on the winners, guarded by the ETag in the results. " + _EXIT_CODES)
    p.add_argument("inputs", nargs="+", metavar="RESULTS", help="results files (.parquet/.csv/.jsonl, local or "
                   "oss://bucket/key)")
    p.add_argument("--group-by", default=None, choices=("dirname", "depth", "regex", "groups-file"),
                   help="dirname (default: the key's folder), depth (with --group-depth), regex (with "
                   "--group-regex) or groups-file (with --groups)")
    p.add_argument("--group-depth", type=_count, metavar="N", help="group by the first N folders of the key")
    p.add_argument("--group-regex", metavar="REGEX", help="group by what (?P<group>...) matches in the key, e.g. "
                   "'products/(?P<group>[^/]+)/'")
    p.add_argument("--groups", type=Path, metavar="CSV", help="a CSV of key,group")
    p.add_argument("--top", type=_count, default=1, metavar="K", help="images chosen per group (default 1)")
    p.add_argument("--min-score", type=_number, metavar="X",
                   help="a group whose best score is below X gets no cover (reported), not a bad one")
    p.add_argument("--output", type=Path, default=Path("picscore-covers.csv"), metavar="PATH",
                   help="the chosen covers, one row per image, and groups without one (default picscore-covers.csv)")
    p.add_argument("--apply", choices=("copy", "tag"), help="copy each winner (--to) or tag it (--tag)")
    p.add_argument("--to", metavar="TEMPLATE", help="copy: destination key, e.g. 'covers/{group}{ext}' "
                   "({group}, {ext}, {name}, {key}, {rank})")
    p.add_argument("--tag", default="picscore-cover=1", metavar="NAME=VALUE",
                   help="tag: the tag to set (default picscore-cover=1); other tags are kept")
    _add_guards(p)
    add_action_arguments(p)
    p.set_defaults(func=_cmd_covers)


def _cmd_covers(args: argparse.Namespace) -> int:
    from .settings.action import load_action_settings

    settings = load_action_settings(args, os.environ, "covers")
    from .commands.covers import CoversOptions, run_covers

    options = CoversOptions(inputs=tuple(args.inputs), group_by=args.group_by, group_depth=args.group_depth,
                            group_regex=args.group_regex, groups=args.groups, top=args.top, min_score=args.min_score,
                            output=args.output, apply=args.apply, to=args.to, tag=args.tag,
                            max_actions=args.max_actions, max_percent=args.max_percent, report=args.report)
    return _run("covers", settings, run_covers(options, settings))


def run_and_report(command: str, coroutine, *, log_level: str, log_format: str, event_loop: str,
                   secrets) -> int:
    """Configure logging, run the command's coroutine, print its outcome, return its exit code:
    the tail every bucket command shares (run, thumbnails, covers, filter)."""
    from .observability.logging import configure_logging

    json_logs = {"json": True, "console": False}.get(log_format)
    configure_logging(log_level, json=json_logs, secrets=secrets)
    outcome = eventloop.run(coroutine, event_loop)
    for line in outcome.report:
        print(line)
    if outcome.error:
        print(f"picscore {command}: {outcome.error}", file=sys.stderr)
    return outcome.code


def _run(command: str, settings, coroutine) -> int:
    return run_and_report(command, coroutine, log_level=settings.log_level, log_format=settings.log_format,
                          event_loop=settings.event_loop, secrets=settings.secrets)
