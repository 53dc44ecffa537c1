"""``picscore score VIDEO``: a local video's best frame, and its candidates on disk to look at."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from worker.cli import main
from worker.demo.videos import make_clip
from worker.video.encode import encode_video
from worker.video.snapshot import NOT_SUPPORTED_EC

from ..video.test_snapshot import numbered_frame


@pytest.fixture(scope="module")
def clip_file(tmp_path_factory: pytest.TempPathFactory):
    clip = make_clip("kodim20-airplane.jpg", "h265", seed=11)
    path = tmp_path_factory.mktemp("video") / "plane.mp4"
    path.write_bytes(clip.data)
    return path, clip


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[dict]]:
    code = main(["score", *argv])
    return code, [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_a_video_scores_as_its_best_frame_and_writes_its_candidates(clip_file, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    path, clip = clip_file
    code, (record,) = run(capsys, str(path), "--frames", "12", "--frames-out", str(tmp_path / "frames"))
    assert code == 0
    assert record["kind"] == "video" and record["duration_ms"] == clip.duration_ms
    assert clip.clean_ms[0] <= record["chosen_ms"] < clip.clean_ms[1], record
    assert len(record["frames"]) == 12 and {f["time_ms"] for f in record["frames"]} >= {record["chosen_ms"]}
    assert all(record["score"] >= r["score"] for r in record["runners_up"])
    assert any(f.get("rejected") for f in record["frames"])  # the black and fading stretches
    files = sorted((tmp_path / "frames").iterdir())
    assert len(files) == 12 and all(f.name.startswith("plane-") and f.suffix == ".jpg" for f in files)
    assert {f["file"] for f in record["frames"]} == {str(f) for f in files}


def test_videos_and_photos_mix_in_one_folder_and_bad_videos_are_error_lines(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    frames = [numbered_frame(i) for i in range(20)]
    (tmp_path / "a.mp4").write_bytes(encode_video(frames, "h264"))
    (tmp_path / "b.webm").write_bytes(encode_video(frames, "vp9", container="webm"))
    (tmp_path / "c.mp4").write_bytes(b"not a video" * 100)
    still = io.BytesIO()
    numbered_frame(3).save(still, format="JPEG")
    (tmp_path / "d.jpg").write_bytes(still.getvalue())
    code, records = run(capsys, str(tmp_path), "--frames", "4")
    assert code == 1  # two error lines
    by_name = {Path(r["path"]).name: r for r in records}
    assert by_name["a.mp4"]["kind"] == "video" and "score" in by_name["a.mp4"]
    assert by_name["b.webm"]["error"]["ec"] == NOT_SUPPORTED_EC
    assert by_name["c.mp4"]["error"]["code"] == "BadRequest"
    assert "score" in by_name["d.jpg"] and "kind" not in by_name["d.jpg"]
