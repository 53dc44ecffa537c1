"""``picscore thumbnails`` on the command line: ``picscore run``'s settings plus its own flags.

Everything a listing audit is configured by (bucket, prefixes, output, shards, concurrency,
retries, checkpoint, metrics…) is ``run``'s (:mod:`worker.settings`), from the same layers
(YAML file < ``PICSCORE_*`` < flags). What is particular to thumbnails is plain flags, checked
here so a mistake answers at once with the flag's name.
"""

from __future__ import annotations

import argparse
import os

from .cli_acting import run_and_report, whole_number
from .errors import UsageError

__all__ = ["add_thumbnails"]

DEFAULT_OUTPUT = "picscore-thumbnails.parquet"


def add_thumbnails(sub: argparse._SubParsersAction) -> None:
    from .settings import add_run_arguments

    p = sub.add_parser(
        "thumbnails", help="choose each video's best frame through OSS video/snapshot and image/score",
        description="List videos under prefixes of a bucket, take candidate frames spread over each one with "
        "x-oss-process=video/snapshot, score them (image/score on OSS, or picscore's model locally), reject "
        "frames a person would never pick (black, fades, transitions) and write one row per video with the "
        "chosen time, its score and the runners-up. Snapshots and image/score calls are billed per call: "
        "--dry-run prints how many a run would make. Takes every setting of picscore run.")
    add_run_arguments(p)
    own = p.add_argument_group("thumbnails")
    own.add_argument("--frames", type=whole_number(minimum=1), default=None,
                     help="candidate frames per video, spread evenly over it (default 12)")
    own.add_argument("--every", metavar="DURATION", help="instead of --frames: one candidate per DURATION (e.g. 2s)")
    own.add_argument("--window", metavar="START-END",
                     help="only look between START and END of each video, e.g. 5s-60s, or 5s- for 'from 5 s'")
    own.add_argument("--scorer", choices=("oss", "local"), default="oss",
                     help="oss (default): score frames with image/score, through scratch objects deleted at once; "
                     "local: with picscore's model in this process's workers (no image/score calls)")
    own.add_argument("--scratch-prefix", default="picscore-scratch/",
                     help="where --scorer oss puts frames while they are scored (default picscore-scratch/); "
                     "cleared before and after each run")
    own.add_argument("--save-to", metavar="TEMPLATE",
                     help="write each chosen frame to this key, e.g. 'thumbs/{key}.jpg' ({key}, {stem}, {name}, "
                     "{dir}); only if the video is still the version whose frames were chosen")
    own.add_argument("--width", type=whole_number(minimum=0), default=0,
                     help="snapshot width in pixels (default 0: the video's own width)")
    own.add_argument("--runners-up", type=whole_number(minimum=0), default=3,
                     help="next best frames recorded per video (default 3)")
    own.add_argument("--quality-model", default="accurate", help="--scorer local's model: accurate or fast")
    own.add_argument("--local-workers", type=whole_number(minimum=1), default=None,
                     help="--scorer local's processes (default: CPU count)")
    p.set_defaults(func=_cmd_thumbnails)


def _duration_ms(option: str, text: str) -> int:
    from .units import parse_duration

    try:
        return round(parse_duration(text, bare_unit="s") * 1000)
    except ValueError as exc:
        raise UsageError(f"{option}: {exc}") from None


def _window(text: str | None) -> tuple[int, int | None] | None:
    if text is None:
        return None
    start, dash, end = text.partition("-")
    if not dash:
        raise UsageError(f"--window: {text!r} is not START-END (e.g. 5s-60s, or 5s- for 'from 5 s')")
    first = _duration_ms("--window", start) if start.strip() else 0
    last = _duration_ms("--window", end) if end.strip() else None
    if last is not None and last <= first:
        raise UsageError(f"--window: the end ({end}) must come after the start ({start or 0})")
    return first, last


def _options(args: argparse.Namespace):  # -> ThumbnailOptions
    from .commands.thumbnails import ThumbnailOptions, save_key
    from .quality.model import check_layout

    every = _duration_ms("--every", args.every) if args.every else None
    if every is not None and every <= 0:
        raise UsageError("--every: must be a duration > 0, e.g. 2s")
    if every is not None and args.frames is not None:
        raise UsageError("--frames and --every both choose the candidates: give one of them")
    if args.save_to:
        try:
            example = save_key(args.save_to, "clips/example.mp4")
        except (KeyError, IndexError, ValueError) as exc:
            raise UsageError(f"--save-to: {args.save_to!r} names an unknown field {exc}; use {{key}}, {{stem}}, "
                             "{name} or {dir}") from None
        if example == "clips/example.mp4" or not example or example.endswith("/"):
            raise UsageError(f"--save-to: {args.save_to!r} would overwrite the video or name no object")
    try:
        layout = check_layout(args.quality_model)
    except ValueError as exc:
        raise UsageError(f"--quality-model: {exc}") from None
    return ThumbnailOptions(frames=args.frames or 12, every_ms=every, window_ms=_window(args.window),
                            scorer=args.scorer, scratch=args.scratch_prefix, save_to=args.save_to, width=args.width,
                            runners_up=args.runners_up, quality_model=layout, local_workers=args.local_workers)


def _default_output(args: argparse.Namespace) -> None:
    """Thumbnails' rows must not land in ``run``'s default results file: without an output from
    any layer, write ``picscore-thumbnails.parquet``."""
    from .settings.fields import RUN_FIELDS
    from .settings.layers import config_path, read_file

    if args.output is not None or os.environ.get("PICSCORE_OUTPUT", "").strip():
        return
    path = config_path(args, os.environ)
    if path is not None and "output" in read_file(path, RUN_FIELDS):
        return
    args.output = DEFAULT_OUTPUT if args.format in (None, "parquet") else f"picscore-thumbnails.{args.format}"


def _cmd_thumbnails(args: argparse.Namespace) -> int:
    from .settings import load_run_config

    options = _options(args)
    _default_output(args)
    config = load_run_config(args, os.environ)
    from .commands.thumbnails import run_thumbnails

    return run_and_report("thumbnails", run_thumbnails(config, options), log_level=config.log_level,
                          log_format=config.log_format, event_loop=config.event_loop,
                          secrets=config.credentials.secrets)
