"""``picscore`` — the command line. Thin by design: parse, build settings, call in, print, exit.

Every error a user can cause is a :class:`~worker.errors.PicscoreError` that knows its exit code
and its one-line message; :func:`main` catches that base once and prints
``picscore <command>: <message>``. Anything else that escapes is a bug and keeps its traceback.
Commands return what to print (:class:`~worker.commands.outcome.CommandOutcome`); only this
module writes to stdout and stderr for them. Heavy modules are imported inside the command that
needs them, so ``picscore run --help`` and a configuration error answer at once.

Sub-commands:

* ``picscore run``    — the batch audit: list, score, write Parquet/CSV/JSONL (resumable);
* ``picscore serve``  — the embedded OSS-compatible server over a local directory;
* ``picscore score``  — score local image files without a server (JSON lines);
* ``picscore covers`` — choose the best image of each group from results; copy or tag it;
* ``picscore filter`` — select low-quality images from results; report, tag, move, archive or delete them;
* ``picscore thumbnails`` — choose each video's best frame (video/snapshot + image/score);
* ``picscore report`` — one self-contained HTML page of an audit (night over night with ``--compare``);
* ``picscore demo``   — build the bundled demo bucket, serve it, audit it with ``picscore run``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import difflib
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from . import cli_acting, cli_report, cli_thumbnails, eventloop
from .errors import ExitCode, PicscoreError, UsageError

__all__ = ["main", "build_parser"]

#: The ``--quality-model`` option's help (``picscore score`` and ``picscore serve``); the names are
#: checked where the model is loaded (:func:`worker.quality.model.check_layout`), which this thin
#: module does not import.
QUALITY_MODEL_HELP = ("accurate (default: the whole view and three native-resolution crops) or fast (the whole "
                      "view alone: about 3x faster, agrees somewhat less with people)")


def _add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the embedded OSS-compatible server over a local directory",
                       description="Serve the Alibaba Cloud OSS API over a local directory: each "
                       "directory under --root is a bucket. Requests must be signed (V4 or V1, header or "
                       "presigned) with a key from --credentials, or from OSS_ACCESS_KEY_ID / "
                       "OSS_ACCESS_KEY_SECRET when no file is given.")
    p.add_argument("--root", required=True, type=Path, help="directory whose sub-directories are buckets")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", default=9000, type=int, help="port (default 9000; 0 picks a free one)")
    p.add_argument("--credentials", type=Path, help="file of ACCESS_KEY_ID:SECRET lines")
    p.add_argument("--service-host", default="oss-test.localhost",
                   help="virtual-hosted style: <bucket>.<service-host> addresses a bucket")
    p.add_argument("--region", default="cn-hangzhou",
                   help="the server's region: reported in bucket info, and V4 signatures must be scoped to it, as on "
                   "OSS (default cn-hangzhou)")
    p.add_argument("--any-signing-region", action="store_true",
                   help="accept V4 signatures scoped to any region (or none), not only --region")
    p.add_argument("--workers", type=int, help="scoring processes (default: CPU count)")
    p.add_argument("--backlog", type=int,
                   help="images allowed to wait for a scoring process before 503 CpuLimitExceeded "
                   "(default 4 per worker)")
    p.add_argument("--faults", default="", help="fault injection, e.g. 'latency=50-200ms,503=0.1,429=0.05,"
                   "reset=0.02,slow-body=64KiB/s,scope=score,seed=7' (default: none)")
    p.add_argument("--fake-score-latency", metavar="DURATION",
                   help="client-benchmark mode: answer image/score after DURATION (e.g. 20ms) without "
                   "decoding or scoring")
    p.add_argument("--synthetic-bucket", metavar="NAME=COUNT", action="append", default=[],
                   help="also serve a read-only bucket NAME listing COUNT generated objects with no files "
                   "behind them (keys synthetic/GG/NNNNNNN.jpg), for client benchmarks; image/score needs "
                   "--fake-score-latency; repeatable")
    p.add_argument("--quality-model", default="accurate", help="image/score's model: " + QUALITY_MODEL_HELP)
    p.add_argument("--keepalive-timeout", default="60s", metavar="DURATION",
                   help="close a kept-alive connection idle this long (default 60s)")
    p.add_argument("--send-timeout", default="60s", metavar="DURATION",
                   help="close a connection whose client reads nothing of a response this long (default 60s)")
    p.add_argument("--header-timeout", default="20s", metavar="DURATION",
                   help="close a connection that has not sent complete request headers this long after it "
                   "opened (default 20s): silent or trickling clients cannot hold sockets")
    p.add_argument("--restore-delay", default="1s", metavar="DURATION",
                   help="how long RestoreObject takes to restore an Archive/ColdArchive/DeepColdArchive object "
                   "(default 1s; 0 restores at once)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument("--event-loop", default="auto", choices=eventloop.EVENT_LOOPS,
                   help="auto (uvloop where installed), uvloop or asyncio (default auto)")
    p.set_defaults(func=_cmd_serve)


def _cmd_serve(args: argparse.Namespace) -> int:
    from .observability.logging import configure_logging
    from .server.app import ServerConfig, serve
    from .server.credentials import CredentialsError, load_credentials
    from .server.faults import parse_faults
    from .server.synthetic import parse_synthetic_spec
    from .units import parse_duration

    quality_model = _quality_model(args.quality_model)
    try:
        credentials = load_credentials(args.credentials)
        faults = parse_faults(args.faults)
        fake = parse_duration(args.fake_score_latency, bare_unit="ms") if args.fake_score_latency else None
        keepalive = _positive_duration("--keepalive-timeout", args.keepalive_timeout)
        header = _positive_duration("--header-timeout", args.header_timeout)
        send = _positive_duration("--send-timeout", args.send_timeout)
        restore_delay = parse_duration(args.restore_delay)
        if restore_delay < 0:
            raise ValueError(f"--restore-delay must not be negative, not {args.restore_delay!r}")
        synthetic = dict(parse_synthetic_spec(spec) for spec in args.synthetic_bucket)
    except (CredentialsError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    root = args.root
    if not root.is_dir():
        raise UsageError(f"--root {root} is not a directory")
    configure_logging(args.log_level, secrets=list(credentials.values()))
    config = ServerConfig(root=root, credentials=credentials, host=args.host, port=args.port,
                          service_host=args.service_host or None, region=args.region,
                          strict_signing_region=not args.any_signing_region,
                          workers=args.workers, backlog=args.backlog, faults=faults,
                          fake_score_latency_s=fake, synthetic_buckets=synthetic, quality_model=quality_model,
                          keepalive_timeout_s=keepalive, header_timeout_s=header, send_timeout_s=send,
                          restore_delay_s=restore_delay)

    def announce(host: str, port: int) -> None:
        print(f"picscore serve: listening on http://{host}:{port} (root {root.resolve()}, quality model "
              f"{quality_model}, event loop {eventloop.loop_name()})", flush=True)

    return _run_until_signal(serve(config, on_ready=announce), args.event_loop)


def _positive_duration(option: str, text: str) -> float:
    """A duration > 0 (a bare number is seconds), or a ValueError that names ``option``."""
    from .units import parse_duration

    seconds = parse_duration(text, bare_unit="s")
    if seconds <= 0:
        raise ValueError(f"{option}: must be a duration > 0, e.g. 20s")
    return seconds


def _run_until_signal(coro, event_loop: str) -> int:
    """Run ``coro`` until SIGINT/SIGTERM, then cancel it and let it clean up."""


    async def runner() -> None:
        task = asyncio.ensure_future(coro)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    try:
        eventloop.run(runner(), event_loop)
    except eventloop.EventLoopUnavailable:
        coro.close()  # never started: close it so Python does not warn that it was never awaited
        raise
    return ExitCode.OK


def _add_run(sub: argparse._SubParsersAction) -> None:
    from .settings import add_run_arguments

    p = sub.add_parser("run", help="audit a bucket: score every image under some prefixes into Parquet/CSV/JSONL",
                       description="List prefixes of a bucket, score every image with x-oss-process=image/score "
                       "(signed V4), and write one row per object. Settings come from --config FILE < "
                       "PICSCORE_* environment variables < flags; credentials from OSS_ACCESS_KEY_ID / "
                       "OSS_ACCESS_KEY_SECRET [/ OSS_SESSION_TOKEN]. Exit codes: 0 all scored, 1 failures over "
                       "the threshold, 2 configuration error, 3 authentication error, 4 interrupted, "
                       "5 time budget reached (4 and 5 continue with --resume).")
    add_run_arguments(p)
    p.set_defaults(func=_cmd_run)


def _cmd_run(args: argparse.Namespace) -> int:
    from .settings import load_run_config

    config = load_run_config(args, os.environ)  # before the engine's imports: a bad setting answers at once
    from .commands.run import run_audit

    return cli_acting.run_and_report("run", run_audit(config), log_level=config.log_level,
                                     log_format=config.log_format, event_loop=config.event_loop,
                                     secrets=config.credentials.secrets)


def _add_score(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help="score local image files, videos and folders (JSON lines, no server)")
    p.add_argument("paths", nargs="+", help="image or video files, or folders (searched recursively); a video's "
                   "score is its best frame's")
    p.add_argument("--explain", action="store_true",
                   help="say in words which visible defects each photo has and which pulled its score down most")
    p.add_argument("--use", default="web",
                   help="what --explain judges resolution against: thumbnail, web (default) or print")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr (default: when stderr is a terminal and there are enough "
                   "files for a bar to help; README says how many)")
    p.add_argument("--jobs", type=cli_acting.whole_number(minimum=1), default=None,
                   help="scoring processes (default: CPU count; 1 scores in-process)")
    p.add_argument("--quality-model", default="accurate", help=QUALITY_MODEL_HELP)
    p.add_argument("--frames", type=cli_acting.whole_number(minimum=1), default=12,
                   help="for a video: candidate frames spread over it, the best of which is its score (default 12)")
    p.add_argument("--frames-out", metavar="DIR", help="for a video: write every candidate frame to DIR to look at")
    p.set_defaults(func=_cmd_score)


def _cmd_score(args: argparse.Namespace) -> int:
    from .commands.score_files import run_score
    from .quality.explain import check_use

    quality_model = _quality_model(args.quality_model)
    try:
        use = check_use(args.use)
    except ValueError as exc:
        raise UsageError(f"--use: {exc}") from None
    return run_score(args.paths, out=sys.stdout, err=sys.stderr, progress=args.progress, explain=args.explain,
                     jobs=args.jobs, quality_model=quality_model, use=use, frames=args.frames,
                     frames_out=args.frames_out)


def _quality_model(name: str) -> str:
    """``--quality-model``'s layout, checked before anything runs, so that only this option's
    error reads as a usage error."""
    from .quality.model import check_layout

    try:
        return check_layout(name)
    except ValueError as exc:
        raise UsageError(f"--quality-model: {exc}") from None


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="serve the bundled demo bucket and audit it with picscore run")
    p.add_argument("--root", type=Path, default=Path("var/demo-root"),
                   help="where to build the demo bucket (default var/demo-root)")
    p.add_argument("--output", type=Path, default=Path("var/demo-results.parquet"),
                   help="where the audit writes its Parquet file (default var/demo-results.parquet)")
    p.add_argument("--port", type=int, default=0, help="server port (default: a free one)")
    p.set_defaults(func=_cmd_demo)


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo.walkthrough import run_demo

    return run_demo(args.root, output=args.output, port=args.port, out=sys.stdout)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="picscore", description="Audit the visual quality of image libraries in object storage.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_serve(sub)
    _add_run(sub)
    _add_score(sub)
    _add_demo(sub)
    cli_acting.add_covers(sub)
    cli_acting.add_filter(sub)
    cli_thumbnails.add_thumbnails(sub)
    cli_report.add_report(sub)
    return parser


def _refuse_unknown(parser: argparse.ArgumentParser, command: str, unknown: list[str]) -> None:
    """Say which options were not understood, with the command's own usage and the closest
    option it has (``--concurency`` → ``--concurrency``); argparse alone shows the top-level usage."""
    commands = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    command_parser = commands.choices[command]
    known = [option for action in command_parser._actions for option in action.option_strings]
    hints = []
    for word in unknown:
        if word.startswith("--"):
            close = difflib.get_close_matches(word.split("=", 1)[0], known, n=1, cutoff=0.7)
            if close:
                hints.append(f"{word.split('=', 1)[0]}: did you mean {close[0]}?")
    message = f"unrecognized arguments: {' '.join(unknown)}"
    command_parser.error(message + ("".join(f"\n  {hint}" for hint in hints)))


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns its exit code (README "Exit codes")."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        _refuse_unknown(parser, args.command, unknown)
    try:
        return int(args.func(args) or 0)
    except PicscoreError as exc:
        print(f"picscore {args.command}: {exc.user_message()}", file=sys.stderr)
        return int(exc.exit_code)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
