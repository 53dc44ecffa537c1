"""``image/resize``, ``image/format`` and ``image/quality`` against a real ``picscore serve``, through
the unmodified official SDKs: ``alibabacloud_oss_v2`` (V4 and V1) and ``oss2`` (V1 and V4).

The pictures are made here: a 400 x 200 JPEG, the same as PNG, WebP and HEIC, a JPEG stored sideways
with EXIF orientation 6, a PNG over OSS's 30,000 px side, and a text file. Expected sizes are the
arithmetic of "Resize images" (https://www.alibabacloud.com/help/en/oss/user-guide/resize-images-4),
worked out here, never read from what the server computed.
"""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.request

import alibabacloud_oss_v2 as oss
import oss2
import pillow_heif
import pytest
from PIL import Image

from tests.conftest import BUCKET, make_jpeg
from worker.server.launch import ServerProcess

from .helpers import unique_prefix
from .test_server_copy_tagging import oss2_bucket, v2_client

THUMBNAIL = "image/resize,m_lfit,w_160,h_160/format,jpg/quality,q_80"
pillow_heif.register_heif_opener()


def _encoded(picture: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, fmt, **options)
    return buffer.getvalue()


def _sideways() -> bytes:
    """A 400 x 200 JPEG whose EXIF says "turn 90° clockwise to show": upright, 200 x 400."""
    picture = Image.open(io.BytesIO(make_jpeg(400, 200, seed=5)))
    exif = Image.Exif()
    exif[0x0112] = 6
    return _encoded(picture, "JPEG", quality=90, exif=exif.tobytes())


@pytest.fixture(scope="module")
def pictures(server: ServerProcess) -> dict[str, str]:
    """Keys of the test objects, uploaded once."""
    prefix = unique_prefix("resize").rstrip("/")
    photo = Image.open(io.BytesIO(make_jpeg(400, 200, seed=3)))
    made = {
        "jpeg": make_jpeg(400, 200, seed=3, quality=95),
        "png": _encoded(photo, "PNG"),
        "webp": _encoded(photo, "WEBP", quality=90),
        "heic": _encoded(photo, "HEIF"),
        "sideways": _sideways(),
        "wide": _encoded(Image.new("L", (30_001, 2), 128), "PNG"),
        "text": b"not an image\n" * 40,
    }
    bucket = oss2_bucket(server, "v4")
    keys = {}
    for name, data in made.items():
        keys[name] = f"{prefix}/{name}"
        bucket.put_object(keys[name], data)
    return keys


def size_of(data: bytes) -> tuple[int, int]:
    return Image.open(io.BytesIO(data)).size


# A 400 x 200 source: lfit fits inside the box, mfit covers it, fill covers then crops, pad fits
# then fills the box, fixed is the box; l/s are the longer/shorter side; p a percentage.
SIZES = [
    ("resize,m_lfit,w_160,h_160", (160, 80)),
    ("resize,w_150,h_80", (150, 75)),
    ("resize,m_mfit,w_150,h_80", (160, 80)),
    ("resize,m_fill,w_150,h_80", (150, 80)),
    ("resize,m_pad,w_150,h_80", (150, 80)),
    ("resize,m_fixed,w_150,h_80", (150, 80)),
    ("resize,m_fixed,w_100,h_300,limit_0", (100, 300)),
    ("resize,w_200", (200, 100)),
    ("resize,h_50", (100, 50)),
    ("resize,l_160", (160, 80)),
    ("resize,s_50", (100, 50)),
    ("resize,l_100,s_20", (40, 20)),
    ("resize,m_pad,l_60", (60, 60)),
    ("resize,p_25", (100, 50)),
    ("resize,w_800", (400, 200)),  # limit_1, the default: never larger than the source
    ("resize,w_800,limit_0", (800, 400)),
    ("resize,p_150", (400, 200)),
    ("resize,p_150,limit_0", (600, 300)),
    ("resize,w_200/resize,p_50", (100, 50)),  # chained, in order
]


@pytest.mark.parametrize("variant", ["v4", "v1"])
def test_alibabacloud_oss_v2_gets_each_mode_at_its_documented_size(server: ServerProcess,
                                                                   pictures: dict[str, str], variant: str) -> None:
    client = v2_client(server, variant)
    for process, size in SIZES:
        request = oss.GetObjectRequest(bucket=BUCKET, key=pictures["jpeg"], process=f"image/{process}")
        result = client.get_object(request)
        assert result.content_type == "image/jpeg", process
        assert size_of(result.body.read()) == size, process


def test_pad_fills_with_its_colour_and_fill_crops(server: ServerProcess, pictures: dict[str, str]) -> None:
    bucket = oss2_bucket(server, "v1")
    padded = Image.open(io.BytesIO(bucket.get_object(
        pictures["png"], process="image/resize,m_pad,w_100,h_100,color_FF0000").read())).convert("RGB")
    assert padded.size == (100, 100)
    assert padded.getpixel((50, 2)) == (255, 0, 0) and padded.getpixel((50, 97)) == (255, 0, 0)  # bands above, below
    assert padded.getpixel((50, 50)) != (255, 0, 0)
    white = Image.open(io.BytesIO(bucket.get_object(pictures["png"], process="image/resize,m_pad,w_100,h_100").read()))
    assert white.convert("RGB").getpixel((50, 1)) == (255, 255, 255)


@pytest.mark.parametrize(("name", "process", "content_type", "pillow_format"), [
    ("jpeg", "image/resize,w_100", "image/jpeg", "JPEG"),
    ("png", "image/resize,w_100", "image/png", "PNG"),  # without format: the source's
    ("webp", "image/resize,w_100", "image/webp", "WEBP"),
    ("heic", "image/resize,w_100", "image/jpeg", "JPEG"),  # a source picscore does not write: JPEG
    ("jpeg", "image/resize,w_100/format,png", "image/png", "PNG"),
    ("jpeg", "image/format,webp/resize,w_100", "image/webp", "WEBP"),
    ("png", THUMBNAIL, "image/jpeg", "JPEG"),
    ("webp", "image/format,jpg", "image/jpeg", "JPEG"),
    ("jpeg", "image/format,bmp", "image/bmp", "BMP"),
    ("png", "image/format,gif", "image/png", "PNG"),  # gif keeps a non-GIF in its own format (OSS)
    ("jpeg", "image/quality,Q_50", "image/jpeg", "JPEG"),
])
@pytest.mark.parametrize("variant", ["v1", "v4"])
def test_oss2_gets_the_asked_format(server: ServerProcess, pictures: dict[str, str], variant: str, name: str,
                                    process: str, content_type: str, pillow_format: str) -> None:
    result = oss2_bucket(server, variant).get_object(pictures[name], process=process)
    assert result.headers["Content-Type"] == content_type
    assert Image.open(io.BytesIO(result.read())).format == pillow_format


def test_the_report_thumbnail(server: ServerProcess, pictures: dict[str, str]) -> None:
    for variant in ("v1", "v4"):
        result = oss2_bucket(server, variant).get_object(pictures["jpeg"], process=THUMBNAIL)
        assert result.headers["Content-Type"] == "image/jpeg"
        assert size_of(result.read()) == (160, 80)


@pytest.mark.parametrize("parameter", ["q", "Q"])
def test_quality_changes_the_jpeg_size_monotonically(server: ServerProcess, pictures: dict[str, str],
                                                     parameter: str) -> None:
    client = v2_client(server, "v4")
    sizes = []
    for quality in (5, 30, 60, 90):
        result = client.get_object(oss.GetObjectRequest(bucket=BUCKET, key=pictures["jpeg"],
                                                        process=f"image/quality,{parameter}_{quality}"))
        sizes.append(len(result.body.read()))
    assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes), sizes


def test_the_exif_orientation_is_applied_before_resizing(server: ServerProcess, pictures: dict[str, str]) -> None:
    bucket = oss2_bucket(server, "v4")
    upright = bucket.get_object(pictures["sideways"], process="image/resize,w_100").read()
    assert size_of(upright) == (100, 200)
    assert Image.open(io.BytesIO(upright)).getexif().get(0x0112) is None  # no second turn by viewers


@pytest.mark.parametrize(("process", "status", "code", "ec"), [
    ("image/resize,w_0", 400, "InvalidArgument", "0040-00000312"),
    ("image/resize,h_16385", 400, "InvalidArgument", "0040-00000313"),
    ("image/resize,l_0", 400, "InvalidArgument", "0040-00000314"),
    ("image/resize,s_x", 400, "InvalidArgument", "0040-00000315"),
    ("image/resize,p_1001", 400, "InvalidArgument", "0040-00000317"),
    ("image/resize,w_100,m_abc", 400, "InvalidArgument", "0040-00000311"),
    ("image/resize,w_100,m_pad,color_AABBCCDD", 400, "InvalidArgument", "0040-00000318"),
    ("image/resize,w_100,limit_3", 400, "InvalidArgument", "0040-00000319"),
    ("image/resize,w_0,h_0", 400, "InvalidArgument", "0040-00000321"),
    ("image/resize", 400, "InvalidArgument", "0040-00000322"),
    ("image/resize,m_fixed,w_5000,h_5000,limit_0", 400, "InvalidArgument", "0040-00000007"),
    ("image/format,dng", 400, "InvalidArgument", "0040-00000206"),
    ("image/format", 400, "InvalidArgument", "0040-00000207"),
    ("image/quality,q_200", 400, "InvalidArgument", "0040-00000309"),
    ("image/quality,Q_0", 400, "InvalidArgument", "0040-00000308"),
    ("image/format,heic", 400, "NotImplemented", "0040-00000212"),
    ("image/resize,w_100/watermark,text_aGk", 400, "NotImplemented", "0040-00000212"),
    ("image/resize,w_100/score", 400, "InvalidArgument", "0040-00000203"),
])
def test_bad_parameters_get_oss_errors(server: ServerProcess, pictures: dict[str, str], process: str, status: int,
                                       code: str, ec: str) -> None:
    with pytest.raises(oss2.exceptions.OssError) as caught:
        oss2_bucket(server, "v1").get_object(pictures["jpeg"], process=process)
    assert (caught.value.status, caught.value.code, caught.value.ec) == (status, code, ec)
    with pytest.raises(oss.exceptions.OperationError) as failed:
        v2_client(server, "v4").get_object(oss.GetObjectRequest(bucket=BUCKET, key=pictures["jpeg"], process=process))
    error = failed.value.unwrap()
    assert isinstance(error, oss.exceptions.ServiceError)
    assert (error.status_code, error.code, error.ec) == (status, code, ec)


@pytest.mark.parametrize(("name", "code", "ec"), [
    ("text", "BadRequest", "0040-00000005"),  # not an image, as for image/score
    ("wide", "ImageTooLarge", "0040-00000009"),  # over 30,000 px a side: the resize source limit
])
def test_bad_sources_get_oss_errors(server: ServerProcess, pictures: dict[str, str], name: str, code: str,
                                    ec: str) -> None:
    with pytest.raises(oss.exceptions.OperationError) as failed:
        v2_client(server, "v1").get_object(oss.GetObjectRequest(bucket=BUCKET, key=pictures[name],
                                                               process="image/resize,w_100"))
    error = failed.value.unwrap()
    assert isinstance(error, oss.exceptions.ServiceError)
    assert (error.status_code, error.code, error.ec) == (400, code, ec)


def test_an_object_over_20_mb_is_refused(server: ServerProcess) -> None:
    key = unique_prefix("resize-big").rstrip("/") + "/big.jpg"
    bucket = oss2_bucket(server, "v4")
    bucket.put_object(key, make_jpeg(64, 64) + b"\0" * (20 * 1024 * 1024))
    with pytest.raises(oss2.exceptions.OssError) as caught:
        bucket.get_object(key, process="image/resize,w_10")
    assert (caught.value.status, caught.value.code, caught.value.ec) == (400, "ImageTooLarge", "0040-00000009")


def test_missing_object_and_anonymous_access(server: ServerProcess, pictures: dict[str, str]) -> None:
    with pytest.raises(oss2.exceptions.NoSuchKey) as missing:
        oss2_bucket(server, "v4").get_object("no/such/picture.jpg", process=THUMBNAIL)
    assert (missing.value.status, missing.value.code) == (404, "NoSuchKey")
    anonymous = oss2.Bucket(oss2.AnonymousAuth(), server.url, BUCKET)
    with pytest.raises(oss2.exceptions.AccessDenied) as denied:
        anonymous.get_object(pictures["jpeg"], process=THUMBNAIL)
    assert denied.value.status == 403
    with pytest.raises(urllib.error.HTTPError) as plain:
        urllib.request.urlopen(f"{server.url}/{BUCKET}/{pictures['jpeg']}?x-oss-process=image/resize,w_10", timeout=30)
    assert plain.value.code == 403


def test_a_presigned_resize_url_works_from_plain_http(server: ServerProcess, pictures: dict[str, str]) -> None:
    signed = v2_client(server, "v4").presign(oss.GetObjectRequest(bucket=BUCKET, key=pictures["webp"],
                                                                  process="image/resize,l_50/format,png"))
    with urllib.request.urlopen(signed.url, timeout=30) as answer:
        assert answer.headers["Content-Type"] == "image/png"
        assert size_of(answer.read()) == (50, 25)


def test_image_score_still_answers(server: ServerProcess, pictures: dict[str, str]) -> None:
    result = oss2_bucket(server, "v1").get_object(pictures["jpeg"], process="image/score")
    assert 0 <= json.loads(result.read())["ImageScore"]["OverallQualityScore"] <= 1


@pytest.mark.parametrize("process", ["image/resize,w_50", "image/score"])
def test_a_processed_get_honours_if_match_on_the_version_it_reads(server: ServerProcess, pictures: dict[str, str],
                                                                    process: str) -> None:
    """A caller that names the version it decided on (picscore report's thumbnails, thumbnails'
    snapshots) never gets an answer about another version: 412, as a plain GetObject."""
    client = v2_client(server, "v4")
    key = pictures["jpeg"]
    etag = client.head_object(oss.HeadObjectRequest(bucket=BUCKET, key=key)).etag
    same = client.get_object(oss.GetObjectRequest(bucket=BUCKET, key=key, process=process, if_match=etag))
    assert same.status_code == 200 and same.body.read()
    with pytest.raises(oss.exceptions.OperationError) as refused:
        client.get_object(oss.GetObjectRequest(bucket=BUCKET, key=key, process=process,
                                               if_match='"0123456789ABCDEF0123456789ABCDEF"'))
    assert refused.value.unwrap().status_code == 412
    assert refused.value.unwrap().code == "PreconditionFailed"
