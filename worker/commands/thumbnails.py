"""``picscore thumbnails``: each video's best frame, through OSS ``video/snapshot`` and ``image/score``.

The listing audit of ``picscore run`` (:class:`~worker.commands.run.ListingJob`: the engine,
listing, shards, parts, checkpoint, resume, metrics, summary) with videos as its objects and
:class:`ThumbnailOperation` as its operation. Per video:

1. its header through ranged reads (:mod:`worker.video.ranged`): codec, size, duration. A video
   OSS would refuse (not H.264/H.265) is skipped before any billed call; one whose header cannot
   be read this way is reported, never guessed;
2. candidate times spread over it (:mod:`worker.video.candidates`);
3. a snapshot of each (billed), scored on OSS or locally (:mod:`.frame_scoring`);
4. frames no person would pick are rejected and the best of the rest chosen
   (:mod:`worker.video.frame_choice`);
5. with ``--save-to``, the chosen frame is written there, after a HeadObject ``If-Match`` has
   shown the video is still the version whose frames were chosen.

Every read of the video carries ``If-Match`` with the listed ETag (:mod:`.video_calls`): a video
replaced during the run is skipped (``ChangedSinceListing``), never given frames of two uploads.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from alibabacloud_oss_v2.aio import AsyncClient

from ..batch.calls import PacedCaller
from ..batch.items import WorkItem
from ..oss.errors import CallFailure
from ..oss.snapshot_contract import SnapshotSpec
from ..results.schema import ObjectRef, Status
from ..settings import RunConfig, fingerprint
from ..video.candidates import MAX_CANDIDATES, candidate_times
from ..video.frame_choice import Candidate, Choice, choose
from ..video.ranged import HeaderUnreachable, read_header
from ..video.snapshot import NO_VIDEO_STREAM_EC, NOT_SUPPORTED_EC, VideoError, VideoInfo, probe
from .frame_scoring import FrameScorer, LocalFrameScorer, OssFrameScorer, scratch_key, scratch_prefix
from .outcome import CommandOutcome
from .run import ListingJob, _selection, run_audit
from .thumbnail_rows import THUMBNAIL_SCHEMA, VIDEO_EXTENSIONS, ThumbnailRow
from .video_calls import VideoCalls

__all__ = ["ThumbnailOptions", "ThumbnailOperation", "run_thumbnails", "thumbnails_job", "save_key"]

log = structlog.get_logger("picscore.thumbnails")
COMMAND = "thumbnails"
CHANGED = "ChangedSinceListing"


@dataclass(frozen=True)
class ThumbnailOptions:
    """What ``picscore thumbnails`` adds to ``picscore run``'s settings."""

    frames: int = 12
    every_ms: int | None = None
    window_ms: tuple[int, int | None] | None = None
    scorer: str = "oss"               # "oss" | "local"
    scratch: str = "picscore-scratch/"
    save_to: str | None = None        # e.g. "thumbs/{key}.jpg"
    width: int = 0                    # snapshot width; 0: the video's own
    runners_up: int = 3
    quality_model: str = "accurate"   # --scorer local
    local_workers: int | None = None

    def rows_fingerprint(self) -> dict[str, Any]:
        """The options that change which rows a run writes (what ``--resume`` must agree on)."""
        return {"frames": self.frames, "every_ms": self.every_ms, "window_ms": self.window_ms, "scorer": self.scorer,
                "save_to": self.save_to, "width": self.width, "quality_model": self.quality_model}


def save_key(template: str, key: str) -> str:
    """``--save-to``'s key for a video: ``{key}`` the video's key, ``{stem}`` it without its
    extension, ``{name}`` its last segment, ``{dir}`` the folder before it (with its ``/``)."""
    folder, _, name = key.rpartition("/")
    stem = key[: len(key) - len(name) + (name.rfind(".") if name.rfind(".") > 0 else len(name))]
    return template.format(key=key, stem=stem, name=name, dir=f"{folder}/" if folder else "")


class _CallFailed(Exception):
    def __init__(self, failure: CallFailure) -> None:
        super().__init__(failure.message)
        self.failure = failure


@dataclass
class _Tally:
    """Calls made for one video (each kind is billed or counted differently)."""

    reads: int = 0
    snapshots: int = 0
    scoring: int = 0
    writes: int = 0
    attempts: int = 0

    @property
    def total(self) -> int:
        return self.reads + self.snapshots + self.scoring + self.writes


class ThumbnailOperation:
    """The engine's operation for ``picscore thumbnails``: a video in, its row out."""

    def __init__(self, client: AsyncClient, caller: PacedCaller, options: ThumbnailOptions, scratch: str) -> None:
        self.calls = VideoCalls(client, caller)
        self.options = options
        self.scratch = scratch
        self.scorers: dict[str, FrameScorer] = {}
        self.snapshots_made = 0
        self.scores_made = 0

    def _scorer(self, bucket: str) -> FrameScorer:
        if bucket not in self.scorers:
            self.scorers[bucket] = (LocalFrameScorer(self.options.local_workers, self.options.quality_model)
                                    if self.options.scorer == "local" else OssFrameScorer(self.calls, bucket))
        return self.scorers[bucket]

    async def close(self) -> None:
        for scorer in self.scorers.values():
            await scorer.close()

    async def perform(self, item: WorkItem) -> ThumbnailRow:
        ref, tally = item.ref, _Tally()
        try:
            info = await self._header(ref, tally)
        except _CallFailed as failed:
            return _failure_row(ref, failed.failure, tally)
        except VideoError as exc:
            if exc.ec in (NOT_SUPPORTED_EC, NO_VIDEO_STREAM_EC):
                return ThumbnailRow.skipped(ref, "UnsupportedVideo", exc.message, datetime.now(UTC))
            return _row(ref, Status.FAILED, tally, error_code="VideoUnreadable", error_message=exc.message)
        except HeaderUnreachable as exc:
            return _row(ref, Status.FAILED, tally, error_code="HeaderUnreadable", error_message=str(exc))
        if info.duration_s is None:
            return _row(ref, Status.FAILED, tally, error_code="HeaderUnreadable",
                        error_message="the header does not say how long the video is")
        duration_ms = round(info.duration_s * 1000)
        options = self.options
        try:
            times = candidate_times(duration_ms, options.frames, options.every_ms, options.window_ms)
        except ValueError as exc:
            return ThumbnailRow.skipped(ref, "OutsideWindow", str(exc), datetime.now(UTC))
        candidates, images, last_failure = [], {}, None
        for time_ms in times:
            frame = await self._frame(ref, time_ms, min(options.width, info.width), tally)
            if isinstance(frame, CallFailure):
                if frame.http_status in (404, 412):  # the video is gone or changed: no frame is trustworthy
                    return _failure_row(ref, frame, tally)
                last_failure = frame
                candidates.append(Candidate(time_ms, None, {}, None))
                continue
            data, scored = frame
            last_failure = scored.failure or last_failure
            candidates.append(Candidate(time_ms, scored.score, scored.dimensions, scored.look))
            images[time_ms] = data
        choice = choose(candidates, options.runners_up)
        if choice.chosen is None:
            failure = last_failure or CallFailure("client", False, None, "NoFrame", "no frame could be scored",
                                                  None, False)
            return _failure_row(ref, failure, tally, duration_ms=duration_ms, candidates=len(candidates))
        saved = None
        if options.save_to:
            saved = await self._save(ref, choice, images[choice.chosen.time_ms], tally)
            if isinstance(saved, CallFailure):
                return _failure_row(ref, saved, tally, duration_ms=duration_ms, candidates=len(candidates))
        return _chosen_row(ref, choice, duration_ms, len(candidates), saved, tally)

    async def _header(self, ref: ObjectRef, tally: _Tally) -> VideoInfo:
        async def fetch(start: int, end: int) -> bytes:
            outcome = await self.calls.ranged(ref.bucket, ref.key, ref.etag, start, end)
            tally.reads += 1
            tally.attempts += outcome.attempts
            if outcome.failure is not None:
                raise _CallFailed(outcome.failure)
            assert outcome.value is not None
            return outcome.value.data

        info, _ = await read_header(ref.size, fetch, probe)
        return info

    async def _frame(self, ref: ObjectRef, time_ms: int, width: int, tally: _Tally) -> CallFailure | tuple:
        snapshot = await self.calls.snapshot(ref.bucket, ref.key, ref.etag, SnapshotSpec(time_ms, width))
        tally.snapshots += 1
        tally.attempts += snapshot.attempts
        self.snapshots_made += 1
        if snapshot.failure is not None:
            return snapshot.failure
        assert snapshot.value is not None
        data = snapshot.value.data
        scored = await self._scorer(ref.bucket).score(data, scratch_key(self.scratch, ref.key, time_ms))
        if self.options.scorer == "oss":
            tally.scoring += 1
            tally.writes += scored.calls - 1
            self.scores_made += 1
        return data, scored

    async def _save(self, ref: ObjectRef, choice: Choice, data: bytes, tally: _Tally) -> str | CallFailure:
        assert choice.chosen is not None and self.options.save_to is not None
        head = await self.calls.head(ref.bucket, ref.key, ref.etag)
        tally.reads += 1
        if head.failure is not None:
            return head.failure
        key = save_key(self.options.save_to, ref.key)
        metadata = {"picscore-source-etag": ref.etag.strip('"'), "picscore-time-ms": str(choice.chosen.time_ms),
                    "picscore-score": f"{choice.chosen.score:.3f}"}
        put = await self.calls.put(ref.bucket, key, data, "image/jpeg", metadata)
        tally.writes += 1
        return put.failure if put.failure is not None else key


def _row(ref: ObjectRef, status: Status, tally: _Tally, **fields: Any) -> ThumbnailRow:
    return ThumbnailRow.of(ref, status, calls=tally.total, attempts=tally.attempts, scored_at=datetime.now(UTC),
                           **fields)


def _failure_row(ref: ObjectRef, failure: CallFailure, tally: _Tally, **fields: Any) -> ThumbnailRow:
    if failure.http_status == 412:
        return _row(ref, Status.SKIPPED, tally, error_code=CHANGED, http_status=412,
                    error_message="the video changed since it was listed; the next run takes the new version",
                    **fields)
    status = Status.MISSING if failure.http_status == 404 and failure.code == "NoSuchKey" else Status.FAILED
    return _row(ref, status, tally, error_code=failure.code, error_message=failure.message,
                http_status=failure.http_status, request_id=failure.request_id, **fields)


def _chosen_row(ref: ObjectRef, choice: Choice, duration_ms: int, candidates: int, saved: str | None,
                tally: _Tally) -> ThumbnailRow:
    chosen = choice.chosen
    assert chosen is not None
    return _row(ref, Status.SCORED, tally, duration_ms=duration_ms, chosen_ms=chosen.time_ms, score=chosen.score,
                dimensions=dict(chosen.dimensions), candidates=candidates, fallback=int(choice.fallback),
                runners_up={str(c.time_ms): c.score for c in choice.runners_up if c.score is not None},
                rejected=",".join(f"{t}:{why}" for t, why in sorted(choice.rejected.items())) or None,
                saved_to=saved)


def run_id(config: RunConfig, options: ThumbnailOptions) -> str:
    """Stable across a run's resumes (its settings' fingerprint), distinct between runs' settings."""
    settings = json.dumps({**fingerprint(config), **options.rows_fingerprint()}, sort_keys=True, default=str)
    return hashlib.sha256(settings.encode("utf-8")).hexdigest()[:16]


def _dry_run_calls(options: ThumbnailOptions) -> Any:
    """The dry run's account of the calls ``videos`` videos would cost (see the README's table)."""
    oss_scorer = options.scorer == "oss"

    def describe(videos: int) -> str:
        if options.every_ms is None:
            frames = videos * options.frames
            billed = f"{options.frames} frames each: {frames} video/snapshot calls" + (
                f" and {frames} image/score calls" if oss_scorer else "")
        else:
            billed = (f"one frame per {options.every_ms / 1000:g} s of each video (at most {MAX_CANDIDATES} a "
                      f"video): that many video/snapshot calls" + (" and as many image/score calls" if oss_scorer
                                                                   else ""))
        extra = (" (plus a PutObject and a DeleteObject of each frame under the scratch prefix)" if oss_scorer
                 else " (frames scored locally: no image/score calls)")
        saves = f"; {videos} thumbnails saved" if options.save_to else ""
        return f"{billed}{extra}, and about {2 * videos} ranged reads of headers{saves}"

    return describe


def thumbnails_job(config: RunConfig, options: ThumbnailOptions) -> tuple[ListingJob, list[ThumbnailOperation]]:
    """The job, and a list that receives its operation (for the summary of calls made)."""
    scratch = scratch_prefix(options.scratch, run_id(config, options))
    # run's filters and shard, with no image-size limit and videos only
    selection = dataclasses.replace(_selection(config), max_object_bytes=None, extensions=VIDEO_EXTENSIONS,
                                    kind_reason="NotVideo")
    made: list[ThumbnailOperation] = []

    def make_operation(client: AsyncClient, caller: PacedCaller) -> ThumbnailOperation:
        made.append(ThumbnailOperation(client, caller, options, scratch))
        return made[-1]

    async def sweep(client: AsyncClient) -> None:
        if options.scorer == "oss":
            from .scratch import delete_prefix

            removed = await delete_prefix(client, config.bucket, scratch)
            if removed:
                log.info("scratch_cleared", prefix=scratch, objects=removed)

    job = ListingJob(COMMAND, THUMBNAIL_SCHEMA, selection, options.rows_fingerprint(), make_operation,
                     _dry_run_calls(options), verb="process", incremental=False, skipped=ThumbnailRow.skipped,
                     housekeeping=sweep)
    return job, made


async def run_thumbnails(config: RunConfig, options: ThumbnailOptions) -> CommandOutcome:
    """Run ``picscore thumbnails``; the summary adds the billed calls it made."""
    job, made = thumbnails_job(config, options)
    try:
        outcome = await run_audit(config, job)
    finally:
        for operation in made:
            await operation.close()
    if made and not config.dry_run:
        snapshots = sum(op.snapshots_made for op in made)
        scores = sum(op.scores_made for op in made)
        outcome.report.append(f"  billed calls made: {snapshots} video/snapshot, {scores} image/score")
    return outcome
