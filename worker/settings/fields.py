"""The settings of ``picscore run``: one table drives the YAML keys, environment variables,
flags and parsing, so a setting is declared once and reads the same from every layer.

Every flag's argparse default is None: a flag that was not given must not hide the environment
or the file, so defaults live in the table only.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..eventloop import EVENT_LOOPS
from ..oss.score_contract import MAX_SOURCE_BYTES
from ..results.format_names import FORMAT_ALIASES, FORMATS
from .values import (
    boolean,
    bucket_name,
    choice,
    duration_at_least,
    endpoint,
    fraction,
    int_between,
    local_path,
    optional,
    output_location,
    parse_size,
    patterns,
    positive_number,
    positive_size,
    prefixes,
    pushgateway_url,
    region_id,
    shard_spec,
    timestamp,
)

__all__ = ["Field", "REQUIRED", "DERIVED", "RUN_FIELDS", "RUN_FIELDS_BY_NAME", "RUN_FIELD_ORDER",
           "ENV_PREFIX", "CONFIG_ENV", "add_arguments", "add_run_arguments"]

ENV_PREFIX = "PICSCORE_"
CONFIG_ENV = "PICSCORE_CONFIG"
MAX_OBJECT_BYTES = MAX_SOURCE_BYTES  # OSS refuses to process sources over 20 MB


REQUIRED = object()
DERIVED = object()  # resolved after parsing, from other fields


@dataclass(frozen=True)
class Field:
    name: str
    parse: Callable[[Any], Any]
    help: str
    default: Any = None
    kind: str = "value"  # "value" | "list" (repeatable flag, comma-separated env) | "bool"
    metavar: str | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()


RUN_FIELDS: tuple[Field, ...] = (
    Field("endpoint", endpoint, "OSS endpoint, e.g. https://oss-cn-hangzhou.aliyuncs.com or "
           "http://127.0.0.1:9000 (no scheme means https)", REQUIRED, metavar="URL"),
    Field("region", region_id, "region id used in V4 signatures, e.g. cn-hangzhou", REQUIRED, metavar="ID"),
    Field("bucket", bucket_name, "bucket to audit", REQUIRED, metavar="NAME"),
    Field("prefix", prefixes, "key prefix to list; repeat for several (default: the whole bucket)",
           ("",), "list", "PREFIX"),
    Field("include", patterns, "only keys matching this fnmatch glob ('*' crosses '/'); repeatable",
           (), "list", "GLOB"),
    Field("exclude", patterns, "skip keys matching this glob; repeatable", (), "list", "GLOB"),
    Field("min_size", parse_size, "skip objects smaller than this (e.g. 10KiB)", 0, metavar="SIZE"),
    Field("max_size", optional(parse_size), "skip objects larger than this (e.g. 20MB)", metavar="SIZE"),
    Field("modified_since", optional(timestamp), "only objects modified at or after this ISO 8601 "
           "date/time (UTC unless a zone is given)", metavar="WHEN"),
    Field("concurrency", int_between(1, 1024), "requests in flight (1-1024, default 16)", 16, metavar="N"),
    Field("rate_limit", optional(positive_number), "most score requests per second (default: "
           "unlimited)", metavar="PER_S"),
    Field("retry_attempts", int_between(1, 100), "attempts per object, first included (default 6)", 6,
           metavar="N"),
    Field("retry_total_s", duration_at_least(0, inclusive=False), "give up retrying one object after this "
           "long (default 300s)", 300.0, metavar="DURATION"),
    Field("retry_base_s", duration_at_least(0, inclusive=False), "first backoff; doubles per attempt, "
           "with jitter (default 0.2s)", 0.2, metavar="DURATION"),
    Field("retry_max_backoff_s", duration_at_least(0, inclusive=False), "longest single backoff "
           "(default 20s)", 20.0, metavar="DURATION"),
    Field("output", output_location, "results file: local path or oss://bucket/key (default "
           "picscore-results.<format>)", DERIVED, metavar="PATH"),
    Field("format", choice(FORMATS, FORMAT_ALIASES), "parquet, csv or jsonl (default: from the "
           "output's extension, else parquet)", DERIVED, metavar="FORMAT"),
    Field("checkpoint", local_path, "checkpoint database (default <output>.checkpoint.sqlite, or "
           "./picscore-<bucket>-<name>.checkpoint.sqlite for oss:// outputs)", DERIVED, metavar="PATH"),
    Field("resume", boolean, "continue from the checkpoint of an interrupted run with the same "
           "settings", False, "bool"),
    Field("restart", boolean, "discard the checkpoint (and part files) of an unfinished run and start over; "
          "a finished run's checkpoint never needs it", False, "bool"),
    Field("incremental", optional(local_path), "previous results file: objects whose ETag is unchanged "
           "there are not scored again", metavar="PATH"),
    Field("shard", shard_spec, "this worker's slice, INDEX/COUNT (default: JOB_COMPLETION_INDEX/shard_count "
           "in an Indexed Job, else 0/1)", DERIVED, metavar="I/N"),
    Field("shard_count", optional(int_between(1, 100_000)), "number of shards when the index comes "
           "from JOB_COMPLETION_INDEX (the Job's completions)", metavar="N"),
    Field("dry_run", boolean, "list and filter, count and size what would be scored; score nothing",
           False, "bool"),
    Field("time_budget_s", optional(duration_at_least(0, inclusive=False)), "stop taking new objects "
           "after this long and finish cleanly, e.g. 90m or 2h (default: none)", metavar="DURATION"),
    Field("failure_threshold", fraction, "fraction of selected objects allowed to fail before the "
           "exit code reports failure, e.g. 0.01 or 1%% (default 0)", 0.0, metavar="FRACTION"),
    Field("metrics_port", optional(int_between(0, 65535)), "serve Prometheus /metrics on this port "
           "(0 picks a free one; default: off)", metavar="PORT"),
    Field("pushgateway", optional(pushgateway_url), "push final metrics to this Prometheus Pushgateway URL "
           "(default: off)", metavar="URL"),
    Field("log_level", choice(("debug", "info", "warning", "error"), {"warn": "warning"}),
           "debug, info, warning or error (default info)", "info", metavar="LEVEL"),
    Field("log_format", choice(("json", "console", "auto")), "json, console or auto (console on a "
           "terminal; default auto)", "auto", metavar="FORMAT"),
    Field("progress", choice(("auto", "always", "never"), {"on": "always", "off": "never"}),
           "progress bar: auto (on a terminal), always or never", "auto", metavar="WHEN"),
    Field("flush_rows", int_between(1, None), "write buffered rows after this many (default 5000)", 5000,
           metavar="N"),
    Field("flush_seconds", duration_at_least(0, inclusive=False), "write buffered rows at least this "
           "often (default 30s)", 30.0, metavar="DURATION"),
    Field("grace_s", duration_at_least(0, inclusive=True), "after SIGTERM, time to finish requests in "
           "flight and flush before exiting (default 30s)", 30.0, metavar="DURATION"),
    Field("max_object_bytes", positive_size, "objects larger than this are skipped, not sent: OSS "
           "refuses to score them (default 20MiB)", MAX_OBJECT_BYTES, metavar="SIZE"),
    Field("event_loop", choice(EVENT_LOOPS), "auto (uvloop where installed), uvloop or asyncio "
           "(default auto)", "auto", metavar="LOOP"),
)
RUN_FIELDS_BY_NAME = {f.name: f for f in RUN_FIELDS}
RUN_FIELD_ORDER = tuple(f.name for f in RUN_FIELDS if f.name != "shard_count")


@dataclass(frozen=True)
class Raw:
    """One setting before parsing, and where it came from (for error messages)."""

    value: Any
    source: str


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """``picscore run``'s flags: ``--config`` and one per setting of :data:`RUN_FIELDS`."""
    add_arguments(parser, RUN_FIELDS)


def add_arguments(parser: argparse.ArgumentParser, fields: Sequence[Field]) -> None:
    """Add ``--config`` and one flag per setting. Every default is None: a flag that was not
    given must not hide the environment or the file, so defaults live in the table only."""
    parser.add_argument("--config", metavar="PATH", default=None,
                        help=f"YAML settings file (or {CONFIG_ENV}); the environment (PICSCORE_<FIELD>) "
                        "and flags override it")
    for spec in fields:
        if spec.kind == "bool":
            parser.add_argument(spec.flag, dest=spec.name, action=argparse.BooleanOptionalAction,
                                default=None, help=spec.help)
        elif spec.kind == "list":
            parser.add_argument(spec.flag, dest=spec.name, action="append", default=None,
                                metavar=spec.metavar, help=spec.help)
        else:
            parser.add_argument(spec.flag, dest=spec.name, default=None, metavar=spec.metavar, help=spec.help)
