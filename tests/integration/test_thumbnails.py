"""``picscore thumbnails`` end to end: a real ``picscore serve``, the real SDK, real H.264 and
H.265 videos made from the bundled photos (worker/demo/videos.py), the worker as a child process.

What a person would check: the chosen frame is a clean one, not a motion-blurred, defocused,
dark, bright, black or fading one; what is not a video is skipped; what OSS cannot snapshot is
reported and the run goes on; ``--save-to`` writes the chosen frame; scratch objects never stay.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import ACCESS_KEY_ID, ACCESS_KEY_SECRET
from worker.commands.thumbnail_rows import THUMBNAIL_SCHEMA
from worker.demo.videos import Clip, clips, photo
from worker.results.formats import read_rows
from worker.server.launch import ServerProcess, start_server
from worker.video.encode import encode_video

from .runhelpers import REGION, LocalBucket, rows_by_key, run_cli, run_env

BUCKET = "videos"
pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def made() -> list[Clip]:
    return clips()


@pytest.fixture(scope="module")
def bucket(tmp_path_factory: pytest.TempPathFactory, made: list[Clip]) -> LocalBucket:
    local = LocalBucket(tmp_path_factory.mktemp("thumbs-root"), BUCKET)
    for clip in made:
        local.put(f"clips/{clip.name}", clip.data)
    still = io.BytesIO()
    photo("kodim23-parrots.jpg").save(still, format="JPEG")
    local.put("clips/still.jpg", still.getvalue())
    frames = [photo("kodim23-parrots.jpg")] * 20
    local.put("odd/vp9.webm", encode_video(frames, "vp9", container="webm"))
    h264 = encode_video(frames, "h264")
    local.put("odd/truncated.mp4", h264[: len(h264) // 2])
    local.put("odd/text.mp4", b"this is not a video\n" * 200)
    return local


@pytest.fixture(scope="module")
def server(bucket: LocalBucket) -> Iterator[ServerProcess]:
    with start_server(bucket.root, {ACCESS_KEY_ID: ACCESS_KEY_SECRET}, args=["--workers", "2"]) as proc:
        yield proc


def thumbnails(server: ServerProcess, output: Path, *extra: str):
    command = ["python", "-m", "worker.cli", "thumbnails", "--endpoint", server.url, "--region", REGION,
               "--bucket", BUCKET, "--output", str(output), "--log-format", "json", "--progress", "never", *extra]
    import sys

    command[0] = sys.executable
    return run_cli(command, run_env(), timeout=500)


def clean_share(rows: dict[str, dict], made: list[Clip]) -> tuple[float, list[str]]:
    wrong = []
    for clip in made:
        row = rows[f"clips/{clip.name}"]
        assert row["status"] == "scored", row
        start, end = clip.clean_ms
        if not start <= row["chosen_ms"] < end:
            wrong.append(f"{clip.name}: chose {row['chosen_ms']} ms, clean {start}-{end} ms, "
                         f"rejected {row['rejected']}")
    return 1 - len(wrong) / len(made), wrong


def test_local_scorer_chooses_clean_frames_and_reports_what_it_cannot_do(server: ServerProcess, made: list[Clip],
                                                                         bucket: LocalBucket, tmp_path: Path) -> None:
    output = tmp_path / "thumbs.parquet"
    done = thumbnails(server, output, "--scorer", "local", "--save-to", "thumbs/{stem}.jpg", "--prefix", "clips/",
                      "--prefix", "odd/")
    rows = rows_by_key(read_rows(output, None, THUMBNAIL_SCHEMA))
    share, wrong = clean_share(rows, made)
    assert share >= 0.95, "\n".join(wrong)
    assert rows["clips/still.jpg"]["status"] == "skipped" and rows["clips/still.jpg"]["error_code"] == "NotVideo"
    assert rows["odd/vp9.webm"]["status"] == "skipped" and rows["odd/vp9.webm"]["error_code"] == "UnsupportedVideo"
    for bad in ("odd/truncated.mp4", "odd/text.mp4"):
        assert rows[bad]["status"] == "failed" and rows[bad]["error_code"] in ("VideoUnreadable", "HeaderUnreadable")
    assert done.returncode == 1, done.stderr  # two failed videos: the run finished, and says so
    assert "billed calls made: 144 video/snapshot, 0 image/score" in done.stdout
    for clip in made:
        row = rows[f"clips/{clip.name}"]
        assert row["duration_ms"] == clip.duration_ms and row["candidates"] == 12
        assert len(row["runners_up"]) == 3 and all(score <= row["score"] for score in row["runners_up"].values())
        saved = bucket.path(row["saved_to"])
        assert row["saved_to"] == f"thumbs/clips/{clip.name.rsplit('.', 1)[0]}.jpg" and saved.is_file()
        assert Image.open(saved).width == 384  # the video's own size: --width 0


def test_oss_scorer_agrees_and_leaves_no_scratch_objects(server: ServerProcess, made: list[Clip],
                                                         bucket: LocalBucket, tmp_path: Path) -> None:
    output = tmp_path / "thumbs-oss.parquet"
    done = thumbnails(server, output, "--prefix", "clips/kodim0", "--frames", "12")
    assert done.returncode == 0, done.stderr
    rows = rows_by_key(read_rows(output, None, THUMBNAIL_SCHEMA))
    chosen = [clip for clip in made if clip.name.startswith("kodim0")]
    share, wrong = clean_share(rows, chosen)
    assert share >= 0.95, "\n".join(wrong)
    assert f"billed calls made: {12 * len(chosen)} video/snapshot, {12 * len(chosen)} image/score" in done.stdout
    assert not (bucket.root / BUCKET / "picscore-scratch").exists() or not any(
        p.is_file() for p in (bucket.root / BUCKET / "picscore-scratch").rglob("*"))


def test_dry_run_counts_the_billed_calls_and_calls_nothing(server: ServerProcess, tmp_path: Path) -> None:
    done = thumbnails(server, tmp_path / "dry.parquet", "--prefix", "clips/", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert "would process 12 objects" in done.stdout
    assert "12 frames each: 144 video/snapshot calls and 144 image/score calls" in done.stdout
    assert "would skip  1 objects" in done.stdout
    assert not (tmp_path / "dry.parquet").exists()
    every = thumbnails(server, tmp_path / "dry.parquet", "--prefix", "clips/", "--dry-run", "--every", "2s",
                       "--scorer", "local")
    assert every.returncode == 0, every.stderr
    assert "one frame per 2 s of each video (at most 120 a video): that many video/snapshot calls" in every.stdout
    assert "no image/score calls" in every.stdout


def test_shards_partition_the_videos(server: ServerProcess, made: list[Clip], tmp_path: Path) -> None:
    keys = []
    for index in (0, 1):
        done = thumbnails(server, tmp_path / "thumbs-{shard_index}.parquet", "--prefix", "clips/", "--shard",
                          f"{index}/2", "--scorer", "local", "--frames", "2")
        assert done.returncode == 0, done.stderr
        keys.append({row["key"] for row in read_rows(tmp_path / f"thumbs-{index}.parquet", None, THUMBNAIL_SCHEMA)})
    assert keys[0].isdisjoint(keys[1]) and keys[0] and keys[1]
    assert keys[0] | keys[1] == {f"clips/{clip.name}" for clip in made} | {"clips/still.jpg"}


def test_a_crashed_runs_scratch_objects_are_cleared_when_it_resumes(server: ServerProcess, bucket: LocalBucket,
                                                                     tmp_path: Path) -> None:
    """Leftovers under this run's scratch prefix (what a kill -9 between PutObject and DeleteObject
    leaves) are gone after the run, and nothing outside it is touched."""
    from worker.cli import build_parser
    from worker.commands.thumbnails import ThumbnailOptions, run_id
    from worker.settings import load_run_config

    output = tmp_path / "resume.parquet"
    args = build_parser().parse_args(["thumbnails", "--endpoint", server.url, "--region", REGION, "--bucket", BUCKET,
                                      "--output", str(output), "--prefix", "clips/kodim04"])
    config = load_run_config(args, run_env())
    scratch = f"picscore-scratch/{run_id(config, ThumbnailOptions())}/"
    bucket.put(f"{scratch}left/1000.jpg", b"left by a crash")
    bucket.put("picscore-scratch/another-run/x.jpg", b"not ours")
    done = thumbnails(server, output, "--prefix", "clips/kodim04")
    assert done.returncode == 0, done.stderr
    assert not bucket.path(f"{scratch}left/1000.jpg").exists()
    assert bucket.path("picscore-scratch/another-run/x.jpg").exists()


def test_a_video_changed_since_listing_gets_no_frames_and_no_thumbnail(server: ServerProcess, bucket: LocalBucket,
                                                                        made: list[Clip]) -> None:
    """The operation holds the listing's ETag; the video is replaced before its frames are read:
    every read is If-Match, so it is skipped as changed, and --save-to writes nothing."""
    from worker.batch.calls import PacedCaller
    from worker.batch.items import WorkItem
    from worker.batch.ratelimit import AdaptiveLimiter
    from worker.commands.thumbnails import ThumbnailOperation, ThumbnailOptions
    from worker.oss.client import open_async_client
    from worker.oss.retry import RetryPolicy
    from worker.results.schema import ObjectRef
    from worker.settings.credentials import Credentials

    key = "changing/clip.mp4"
    bucket.put(key, made[0].data)
    stale = ObjectRef(BUCKET, key, '"0123456789ABCDEF0123456789ABCDEF"', len(made[0].data), None)

    async def perform():
        credentials = Credentials(ACCESS_KEY_ID, ACCESS_KEY_SECRET)
        async with open_async_client(server.url, REGION, credentials, 4) as client:
            caller = PacedCaller(AdaptiveLimiter(None, burst=4), RetryPolicy(2, 10.0, 0.05, 0.1))
            operation = ThumbnailOperation(client, caller, ThumbnailOptions(save_to="thumbs/{key}.jpg"), "s/")
            return await operation.perform(WorkItem(stale, 0))

    row = asyncio.run(perform())
    assert (row.status.value, row.error_code, row.http_status) == ("skipped", "ChangedSinceListing", 412)
    assert not bucket.path(f"thumbs/{key}.jpg").exists()
