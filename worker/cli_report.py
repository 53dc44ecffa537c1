"""``picscore report`` on the command line. Same rules as :mod:`worker.cli`: parse, build
settings, call in, print, exit code; the work is in :mod:`worker.commands.report`."""

from __future__ import annotations

import argparse
import os

from .cli_acting import run_and_report, whole_number
from .errors import UsageError

__all__ = ["add_report"]


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be above 0 and at most 1, got {text}")
    return value


def add_report(sub: argparse._SubParsersAction) -> None:
    from .settings.action import REPORT_SETTINGS, add_action_arguments

    p = sub.add_parser(
        "report", help="one self-contained HTML page of an audit: scores, prefixes, defects, worst and best, failures",
        description="Make one HTML page from the results of picscore run (several files for a sharded audit): "
        "totals, score histograms overall and per top-level prefix, a sortable prefix table, the defects of the "
        "low-quality images, the worst and best images as thumbnails (fetched with x-oss-process=image/resize, "
        "one call each), failures grouped by error code, and with --compare what changed since the previous run. "
        "The page loads nothing from the network and its size is bounded whatever the bucket's size. "
        "Exit codes: 0 written, 2 bad input, 3 credentials refused.")
    p.add_argument("inputs", nargs="+", metavar="RESULTS",
                   help="results files (.parquet/.csv/.jsonl, local or oss://bucket/key)")
    p.add_argument("--output", "-o", default="picscore-report.html", metavar="PATH",
                   help="where to write the page: a local path or oss://bucket/key (default picscore-report.html)")
    p.add_argument("--compare", nargs="+", default=[], metavar="PREVIOUS",
                   help="the previous run's results files: list new low-quality images, dropped scores and "
                   "prefixes whose median moved")
    p.add_argument("--low", type=_fraction, default=0.4, help="the low-quality line (default 0.4)")
    p.add_argument("--examples", type=whole_number(minimum=0), default=12, metavar="N",
                   help="worst and best images shown, N each (default 12; 0 for none)")
    p.add_argument("--list-limit", type=whole_number(minimum=1), default=100, metavar="N",
                   help="most rows in each listing: failures per code, new low images, drops (default 100)")
    p.add_argument("--drop", type=_fraction, default=0.1, help="--compare: a score that fell this much is listed "
                   "(default 0.1)")
    p.add_argument("--shift", type=_fraction, default=0.02, help="--compare: a prefix median that moved this much "
                   "is listed (default 0.02)")
    p.add_argument("--no-thumbnails", action="store_true", help="do not fetch thumbnails (no calls to the bucket)")
    p.add_argument("--thumbnail-size", type=whole_number(minimum=16), default=160, metavar="PX",
                   help="longest side of a thumbnail (default 160, at most 512)")
    p.add_argument("--links", choices=("presign", "plain", "none"), default="presign",
                   help="links to the images shown: presign (default: presigned GET URLs, see --link-expires), "
                   "plain (object URLs, for public-read buckets) or none")
    p.add_argument("--link-expires", default="1d", metavar="DURATION",
                   help="how long presigned links open (default 1d, at most 7d)")
    p.add_argument("--title", help="the page's title (default: Image quality audit of <bucket>)")
    add_action_arguments(p, REPORT_SETTINGS)
    p.set_defaults(func=_cmd_report)


def _cmd_report(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from .settings.action import REPORT_SETTINGS, load_action_settings
    from .units import parse_duration

    if args.thumbnail_size > 512:
        raise UsageError(f"--thumbnail-size must be at most 512, got {args.thumbnail_size}")
    try:
        expires = parse_duration(args.link_expires)
    except ValueError as exc:
        raise UsageError(f"--link-expires: {exc}") from None
    if not 0 < expires <= 7 * 86400:
        raise UsageError(f"--link-expires must be above 0 and at most 7d (OSS's limit for V4 presigned URLs), "
                         f"got {args.link_expires}")
    settings = load_action_settings(args, os.environ, "report", REPORT_SETTINGS)
    from .commands.report import ReportRequest, run_report
    from .report.summary import ReportOptions

    request = ReportRequest(
        inputs=tuple(args.inputs), output=args.output, compare=tuple(args.compare),
        options=ReportOptions(low=args.low, examples=args.examples, list_limit=args.list_limit),
        drop=args.drop, shift=args.shift, thumbnails=not args.no_thumbnails, thumbnail_px=args.thumbnail_size,
        links=args.links, link_expires=timedelta(seconds=expires), title=args.title)
    return run_and_report("report", run_report(request, settings), log_level=settings.log_level,
                          log_format=settings.log_format, event_loop=settings.event_loop, secrets=settings.secrets)
