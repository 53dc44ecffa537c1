"""``picscore report``: results files in, one self-contained HTML page out.

Steps, each a small module of :mod:`worker.report`: fetch ``oss://`` inputs, read them as
columns, summarise, compare with the previous night, fetch the thumbnails and links of the
worst and best images, render, write (atomically on disk, or one PutObject to ``oss://``).

The bucket is needed only for ``oss://`` inputs or output, and for thumbnails and presigned
links. Without an endpoint the page is still made, from the results alone, and says that its
thumbnails were not fetched; ``--no-thumbnails`` says so on purpose. Nothing here writes to a
bucket but the page itself, to the key ``--output`` names.
"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from ..actions.act import retry_policy
from ..batch.calls import PacedCaller
from ..batch.ratelimit import AdaptiveLimiter
from ..batch.results_source import localize_results
from ..errors import ExitCode, OutputError
from ..oss.client import open_async_client, upload_file
from ..oss.retry import CallFailed, retrying
from ..oss.urls import is_oss_url, split_oss_url
from ..report.columns import AuditColumns, read_audit
from ..report.night import DEFAULT_DROP, DEFAULT_SHIFT, NightComparison, compare_nights
from ..report.page import PageMeta, render_page
from ..report.summary import Example, ReportOptions, Summary, summarise
from ..report.thumbnails import THUMBNAIL_PX, fetch_thumbnails, plain_link, presigned_links
from ..results.atomic import atomic_path
from ..settings.action import ActionSettings
from ..units import format_size
from .outcome import CommandOutcome

__all__ = ["ReportRequest", "run_report"]


@dataclass(frozen=True)
class ReportRequest:
    inputs: tuple[str, ...]
    output: str
    compare: tuple[str, ...] = ()
    options: ReportOptions = field(default_factory=ReportOptions)
    drop: float = DEFAULT_DROP
    shift: float = DEFAULT_SHIFT
    thumbnails: bool = True
    thumbnail_px: int = THUMBNAIL_PX
    links: str = "presign"
    link_expires: timedelta = timedelta(days=1)
    title: str | None = None

    def needs_bucket(self) -> bool:
        return any(is_oss_url(p) for p in (*self.inputs, *self.compare, self.output))


@dataclass
class _Extras:
    """What the bucket added to the page, and what to say about it."""

    worst: list[Example]
    best: list[Example]
    thumbnail_note: str
    link_note: str | None
    calls: int = 0


def _version() -> str:
    try:
        return version("picscore")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree without installing
        return "0+unknown"


async def run_report(request: ReportRequest, settings: ActionSettings) -> CommandOutcome:
    if not request.inputs:
        raise OutputError("give at least one results file")
    if request.needs_bucket():
        settings.require_bucket_access("read oss:// results or write an oss:// report")
    can_reach = settings.endpoint is not None and settings.region is not None and settings.credentials is not None
    with tempfile.TemporaryDirectory(prefix="picscore-report-") as scratch:
        cache = Path(scratch)
        retry = retrying(retry_policy(settings), secrets=settings.secrets) if can_reach else None
        inputs = await _local(request.inputs, cache / "now", settings, retry)
        previous = await _local(request.compare, cache / "before", settings, retry)
        audit = await asyncio.to_thread(read_audit, inputs)
        summary = await asyncio.to_thread(summarise, audit, request.options)
        night = None
        if previous:
            audit.drop_details()
            before = await asyncio.to_thread(read_audit, previous, for_comparison=True)
            night = await asyncio.to_thread(compare_nights, audit, before, request.options, drop=request.drop,
                                            shift=request.shift)
        extras = await _extras(request, settings, summary, can_reach)
        summary = replace(summary, worst=extras.worst, best=extras.best)
        meta = PageMeta(title=request.title or _title(audit), generated_at=datetime.now(UTC), version=_version(),
                        thumbnail_note=extras.thumbnail_note, link_note=extras.link_note)
        page = await asyncio.to_thread(render_page, summary, night, meta)
        where = await _write(page, request.output, cache / "page.html", settings)
    return CommandOutcome(ExitCode.OK, _lines(summary, night, extras, where, len(page.encode("utf-8"))))


async def _local(paths: tuple[str, ...], cache: Path, settings: ActionSettings, retry) -> list[Path]:
    if not any(is_oss_url(p) for p in paths):
        return [Path(p) for p in paths]
    return await localize_results(paths, cache, endpoint=settings.endpoint, region=settings.region,
                                  credentials=settings.credentials, retry=retry)


def _title(audit: AuditColumns) -> str:
    buckets = ", ".join(audit.buckets[:3]) + (" …" if len(audit.buckets) > 3 else "")
    return f"Image quality audit of {buckets}" if buckets else "Image quality audit"


async def _extras(request: ReportRequest, settings: ActionSettings, summary: Summary, can_reach: bool) -> _Extras:
    examples = [*summary.worst, *summary.best]
    if not examples:
        return _Extras(summary.worst, summary.best, "", None)
    if not request.thumbnails:
        return _Extras(summary.worst, summary.best, "Thumbnails were not fetched (--no-thumbnails).", None)
    if not can_reach:
        return _Extras(summary.worst, summary.best, "Thumbnails were not fetched: no endpoint, region and access "
                       "key were given, so the page was made from the results file alone.", None)
    async with open_async_client(settings.endpoint, settings.region, settings.credentials, 4) as client:
        caller = PacedCaller(AdaptiveLimiter(settings.rate_limit, burst=4), retry_policy(settings),
                             secrets=settings.secrets)
        shown = await fetch_thumbnails(client, caller, examples, request.thumbnail_px)
        link_note = None
        if request.links == "presign":
            shown = await presigned_links(client, shown, request.link_expires)
            until = (datetime.now(UTC) + request.link_expires).strftime("%Y-%m-%d %H:%M UTC")
            link_note = f"Links to images are presigned and open until {until}."
        elif request.links == "plain":
            shown = [replace(e, link=plain_link(settings.endpoint, e.bucket, e.key)) for e in shown]
            link_note = "Links to images are plain object URLs: they open for public-read buckets."
    fetched = sum(1 for e in shown if e.thumbnail)
    note = (f"Thumbnails: {fetched} of {len(shown)} fetched with x-oss-process=image/resize "
            f"({request.thumbnail_px} px, one call each).")
    worst, best = shown[:len(summary.worst)], shown[len(summary.worst):]
    return _Extras(worst, best, note, link_note, calls=len(shown))


async def _write(page: str, output: str, scratch: Path, settings: ActionSettings) -> str:
    if not is_oss_url(output):
        path = Path(output)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp:
                tmp.write_text(page, encoding="utf-8")
        except OSError as exc:
            raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
        return str(path)
    bucket, key = split_oss_url(output)
    scratch.write_text(page, encoding="utf-8")
    retry = retrying(retry_policy(settings), secrets=settings.secrets)
    try:
        await retry(lambda: asyncio.to_thread(upload_file, settings.endpoint, settings.region, settings.credentials,
                                              str(scratch), bucket, key, content_type="text/html; charset=utf-8"))
    except CallFailed as exc:
        raise OutputError(f"cannot write {output}: {exc.failure.code}: {exc.failure.message}") from None
    return output


def _lines(summary: Summary, night: NightComparison | None, extras: _Extras, where: str, size: int) -> list[str]:
    totals, overall = summary.totals, summary.overall
    lines = [f"picscore report: {totals.objects:,} objects, {overall.scored:,} scored, {overall.low:,} under "
             f"{summary.options.low:g}, {summary.prefixes_total:,} top-level prefixes"]
    failed = sum(g.count for g in summary.failures)
    if failed:
        lines.append(f"  failures: {failed:,} in {len(summary.failures)} group(s)")
    if night is not None:
        lines.append(f"  since the previous run: {night.new_objects:,} new ({night.new_low_count:,} low), "
                     f"{night.dropped_count:,} dropped by {night.drop:g} or more, {night.gone:,} gone")
    if extras.thumbnail_note:
        lines.append(f"  {extras.thumbnail_note}")
    lines.append(f"  written to {where} ({format_size(size)})")
    return lines
