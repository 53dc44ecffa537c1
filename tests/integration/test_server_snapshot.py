"""``video/snapshot`` against a real ``picscore serve``, through the unmodified official SDKs:
``alibabacloud_oss_v2`` (V4 and V1, and a presigned URL), ``oss2`` (V1 and V4) and ``ali-oss``
(Node, ``tests/node/ali_oss_snapshot.mjs``).

The videos are real H.264 and H.265 encodes made here (:func:`worker.video.encode.encode_video`),
each frame a flat colour whose red channel is 9 x its number, so the frame that comes back is
read off one pixel and compared with what OSS documents for that request.
"""

from __future__ import annotations

import io
import os
import subprocess
import urllib.request
import uuid

import alibabacloud_oss_v2 as oss
import oss2
import pytest
from PIL import Image

from tests.conftest import ACCESS_KEY_ID, ACCESS_KEY_SECRET, BUCKET
from tests.video.test_snapshot import FPS, FRAMES, GOP, frame_number, numbered_frame
from worker.server.launch import ServerProcess
from worker.video.encode import encode_video
from worker.video.snapshot import NOT_SUPPORTED_EC, UNREADABLE_EC

from .helpers import unique_prefix
from .test_sdk_ali_oss_node import NODE_DIR, _require_node
from .test_server_copy_tagging import oss2_bucket, v2_client

NODE_SCRIPT = NODE_DIR / "ali_oss_snapshot.mjs"


@pytest.fixture(scope="module")
def videos(server: ServerProcess) -> dict[str, str]:
    """Keys of the test videos, uploaded once: H.264, H.265 (rotated -90°), VP9, truncated, text."""
    prefix = unique_prefix("snapshot")
    frames = [numbered_frame(i) for i in range(FRAMES)]
    h264 = encode_video(frames, "h264", FPS, GOP)
    made = {
        "h264": h264,
        "h265": encode_video(frames, "h265", FPS, GOP, rotation=-90),
        "vp9": encode_video(frames[:3], "vp9", container="webm"),
        "truncated": h264[: len(h264) // 2],
        "text": b"not a video\n" * 50,
    }
    bucket = oss2_bucket(server, "v4")
    keys = {}
    for name, data in made.items():
        keys[name] = f"{prefix.rstrip('/')}/{name}.mp4"
        bucket.put_object(keys[name], data)
    return keys


def image(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


@pytest.mark.parametrize("variant", ["v4", "v1"])
def test_alibabacloud_oss_v2_gets_the_documented_frames(server: ServerProcess, videos: dict[str, str],
                                                        variant: str) -> None:
    client = v2_client(server, variant)

    def snap(name: str, process: str) -> oss.GetObjectResult:
        return client.get_object(oss.GetObjectRequest(bucket=BUCKET, key=videos[name],
                                                      process=f"video/snapshot,{process}"))

    for name in ("h264", "h265"):
        exact = snap(name, "t_1250,f_jpg")
        assert exact.content_type == "image/jpeg"
        assert frame_number(exact.body.read()) == 12
        assert frame_number(snap(name, "t_1250,m_fast").body.read()) == 10
        assert frame_number(snap(name, "t_60000").body.read()) == FRAMES - 1
        png = snap(name, "t_0,f_png,w_48")
        assert png.content_type == "image/png"
    assert image(snap("h264", "t_0,f_png,w_48").body.read()).size == (48, 32)
    assert image(snap("h265", "t_0,ar_auto").body.read()).size == (64, 96)  # rotated upright
    assert image(snap("h265", "t_0").body.read()).size == (96, 64)  # as stored


@pytest.mark.parametrize(("name", "status", "code", "ec"), [
    ("vp9", 400, "BadRequest", NOT_SUPPORTED_EC),
    ("truncated", 400, "BadRequest", UNREADABLE_EC),
    ("text", 400, "BadRequest", UNREADABLE_EC),
])
def test_bad_videos_get_oss_errors(server: ServerProcess, videos: dict[str, str], name: str, status: int,
                                   code: str, ec: str) -> None:
    client = v2_client(server, "v4")
    with pytest.raises(oss.exceptions.OperationError) as caught:
        client.get_object(oss.GetObjectRequest(bucket=BUCKET, key=videos[name], process="video/snapshot,t_0"))
    error = caught.value.unwrap()
    assert isinstance(error, oss.exceptions.ServiceError)
    assert (error.status_code, error.code, error.ec) == (status, code, ec)


@pytest.mark.parametrize(("process", "ec"), [
    ("video/snapshot,t_0,w_97", "0053-00000104"), ("video/snapshot,t_0,f_gif", "0053-00000107"),
    ("video/snapshot,t_-5", "0053-00000101"), ("video/snapshot,zz_1", "0053-00000109"),
])
def test_bad_parameters_get_oss_errors(server: ServerProcess, videos: dict[str, str], process: str,
                                       ec: str) -> None:
    bucket = oss2_bucket(server, "v1")
    with pytest.raises(oss2.exceptions.OssError) as caught:
        bucket.get_object(videos["h264"], process=process)
    assert (caught.value.status, caught.value.code, caught.value.ec) == (400, "InvalidArgument", ec)


@pytest.mark.parametrize("variant", ["v1", "v4"])
def test_oss2_gets_snapshots(server: ServerProcess, videos: dict[str, str], variant: str) -> None:
    bucket = oss2_bucket(server, variant)
    result = bucket.get_object(videos["h265"], process="video/snapshot,t_2000,f_jpg,m_fast")
    assert result.headers["Content-Type"] == "image/jpeg"
    assert frame_number(result.read()) == 20


def test_a_presigned_snapshot_url_works_from_plain_http(server: ServerProcess, videos: dict[str, str]) -> None:
    client = v2_client(server, "v4")
    signed = client.presign(oss.GetObjectRequest(bucket=BUCKET, key=videos["h264"],
                                                 process="video/snapshot,t_700,f_png"))
    with urllib.request.urlopen(signed.url, timeout=30) as answer:
        assert answer.headers["Content-Type"] == "image/png"
        assert frame_number(answer.read()) == 7


def test_missing_object_and_anonymous_access(server: ServerProcess, videos: dict[str, str]) -> None:
    with pytest.raises(oss2.exceptions.NoSuchKey):
        oss2_bucket(server, "v4").get_object("no/such/video.mp4", process="video/snapshot,t_0")
    anonymous = oss2.Bucket(oss2.AnonymousAuth(), server.url, BUCKET)
    with pytest.raises(oss2.exceptions.AccessDenied):
        anonymous.get_object(videos["h264"], process="video/snapshot,t_0")


def test_ali_oss_node_gets_snapshots(server: ServerProcess, videos: dict[str, str]) -> None:
    node = _require_node()
    env = {**os.environ, "PICSCORE_PORT": str(server.port), "BUCKET": BUCKET, "OSS_ACCESS_KEY_ID": ACCESS_KEY_ID,
           "OSS_ACCESS_KEY_SECRET": ACCESS_KEY_SECRET, "VIDEO_H264": videos["h264"], "VIDEO_VP9": videos["vp9"],
           "NO_COLOR": "1", "RUN_ID": uuid.uuid4().hex[:8]}
    result = subprocess.run([node, str(NODE_SCRIPT)], check=False, cwd=NODE_DIR, env=env, capture_output=True,
                            text=True, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert " passed, 0 failed" in result.stdout, output
