"""Every bad input and limit answers its OSS error — and the server keeps serving afterwards.

Against the real ``picscore serve`` (session fixture), with SDK-presigned requests sent
byte-exact so that paths an SDK would normalise still reach the server.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import BUCKET, make_jpeg
from tests.integration.rawclient import presign, send, signed


@pytest.fixture(scope="module")
def good_key(server) -> str:
    key = "limits/good.jpg"
    assert signed(server.url, "PUT", key, body=make_jpeg(seed=3)).status == 200
    return key


def _assert_still_serving(server, good_key: str) -> None:
    response = signed(server.url, "GET", good_key, process="image/score")
    assert response.status == 200, response.body
    assert 0.0 <= json.loads(response.body)["ImageScore"]["OverallQualityScore"] <= 1.0


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height, with one tiny IDAT: a decompression bomb's shape."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = chunk(b"IDAT", zlib.compress(b"\x00" * 64))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + idat + chunk(b"IEND", b"")


def _png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (width, height), 128).save(buffer, "PNG")
    return buffer.getvalue()


BAD_IMAGES = {
    "not-an-image.txt": (b"hello, this is text, not a picture\n" * 10, 400, "BadRequest"),
    "empty.jpg": (b"", 400, "BadRequest"),
    "truncated.jpg": (make_jpeg(seed=5)[:1500], 400, "BadRequest"),
    "corrupt.jpg": (make_jpeg(seed=6)[:200] + bytes(range(256)) * 20, 400, "BadRequest"),
    "too-wide.png": (_png(30_001, 2), 400, "ImageTooLarge"),
    "bomb-header.png": (_png_header_only(20_000, 20_000), 400, "ImageTooLarge"),
}


@pytest.mark.parametrize("name", sorted(BAD_IMAGES))
def test_bad_image_answers_oss_400_and_server_keeps_serving(server, good_key: str, name: str) -> None:
    """Non-images, corrupt and truncated files, oversize sides and pixel bombs → OSS 400 XML."""
    data, status, code = BAD_IMAGES[name]
    key = f"limits/bad/{name}"
    assert signed(server.url, "PUT", key, body=data).status == 200
    response = signed(server.url, "GET", key, process="image/score")
    assert (response.status, response.code) == (status, code), response.body
    assert response.headers["content-type"].startswith("application/xml")
    assert b"<RequestId>" + response.headers["x-oss-request-id"].encode() + b"</RequestId>" in response.body
    _assert_still_serving(server, good_key)


def test_object_over_20_mb_is_refused_without_scoring(server, server_root: Path, good_key: str) -> None:
    """OSS refuses to process sources over 20 MB: 400 ImageTooLarge."""
    big = server_root / BUCKET / "limits" / "huge.jpg"
    big.parent.mkdir(parents=True, exist_ok=True)
    big.write_bytes(make_jpeg(seed=1) + b"\0" * (20 * 1024 * 1024))  # dropped in by hand, 20 MB+
    response = signed(server.url, "GET", "limits/huge.jpg", process="image/score")
    assert (response.status, response.code) == (400, "ImageTooLarge")
    _assert_still_serving(server, good_key)


@pytest.mark.parametrize("process, status, code", [
    ("image/crop,w_100", 400, "NotImplemented"),
    ("image/scor", 400, "InvalidArgument"),
    ("image/", 400, "InvalidArgument"),
    ("image/resize,w_100/score", 400, "InvalidArgument"),
    ("image/score,q_1", 400, "InvalidArgument"),
    ("video/snapshot,t_0", 400, "BadRequest"),  # implemented, but a JPEG is not a video
    ("video/convert,f_mp4", 400, "NotImplemented"),
    ("style/thumbnail", 404, "NoSuchStyle"),
])
def test_unsupported_process_strings(server, good_key: str, process: str, status: int, code: str) -> None:
    response = signed(server.url, "GET", good_key, process=process)
    assert (response.status, response.code) == (status, code)
    _assert_still_serving(server, good_key)


@pytest.mark.parametrize("key", [
    "a/../../../etc/passwd",
    "../outside.jpg",
    "/leading-slash.jpg",
    "a/./b.jpg",
    "a//b.jpg",
    "nul\x00char.jpg",
    ".picscore/meta/x.json",
    "x" * 1024,
])
def test_dangerous_keys_are_refused_for_put_and_get(server, server_root: Path, good_key: str, key: str) -> None:
    """Keys that could escape or alias are refused with 400 InvalidObjectName; nothing is written."""
    before = sorted(p for p in server_root.rglob("*"))
    put = signed(server.url, "PUT", key, body=b"payload")
    get = signed(server.url, "GET", key)
    assert (put.status, put.code) == (400, "InvalidObjectName"), put.body
    assert (get.status, get.code) == (400, "InvalidObjectName"), get.body
    after = sorted(p for p in server_root.rglob("*") if ".picscore/tmp" not in str(p))
    assert [p for p in after if p not in before] == []
    assert not (server_root.parent / "outside.jpg").exists()
    _assert_still_serving(server, good_key)


def test_encoded_traversal_in_bucket_position_is_refused(server) -> None:
    url = presign(server.url, "GET", "x.jpg").replace(f"/{BUCKET}/", "/%2E%2E/")
    response = send(url)
    assert response.status in (400, 403)
    assert response.code in ("InvalidBucketName", "SignatureDoesNotMatch")


def test_key_of_1023_bytes_is_accepted(server) -> None:
    key = "k/" + ("é" * 120 + "/") * 4 + "x" * 57  # 2 + 4 * 241 + 57 = 1023 bytes of UTF-8
    assert len(key.encode()) == 1023
    assert signed(server.url, "PUT", key, body=b"ok").status == 200
    assert signed(server.url, "GET", key).body == b"ok"


def test_anonymous_request_is_denied(server, good_key: str) -> None:
    response = send(f"{server.url}/{BUCKET}/{good_key}?x-oss-process=image/score")
    assert (response.status, response.code) == (403, "AccessDenied")


def test_head_errors_travel_in_x_oss_err(server) -> None:
    response = signed(server.url, "HEAD", "limits/does-not-exist.jpg")
    assert (response.status, response.code, response.body) == (404, "NoSuchKey", b"")


def test_missing_bucket(server) -> None:
    response = signed(server.url, "GET", "x.jpg", bucket="no-such-bucket")
    assert (response.status, response.code) == (404, "NoSuchBucket")
