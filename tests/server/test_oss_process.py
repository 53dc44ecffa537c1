"""Which ``x-oss-process`` values the server answers and how it refuses the rest (worker/server/oss_process.py)."""

from __future__ import annotations

import pytest

from worker.oss.image_process_contract import FormatSpec, ImageProcessSpec, QualitySpec, ResizeSpec
from worker.oss.score_contract import MAX_SOURCE_BYTES, SCORE_PROCESS
from worker.oss.snapshot_contract import SnapshotSpec
from worker.server.errors import OSSError
from worker.server.oss_process import parse_process


@pytest.mark.parametrize("value", ["image/score", " image/score ", "image/score\n"])
def test_score(value: str) -> None:
    assert parse_process(value) == SCORE_PROCESS == "image/score"


@pytest.mark.parametrize(("value", "spec"), [
    ("video/snapshot", SnapshotSpec()),
    ("video/snapshot,t_7000,f_jpg,w_800,h_600,m_fast", SnapshotSpec(7000, 800, 600, True, "jpg")),
    ("video/snapshot,t_0,f_png,ar_auto", SnapshotSpec(format="png", orient="auto")),
])
def test_snapshot(value: str, spec: SnapshotSpec) -> None:
    assert parse_process(value) == spec


@pytest.mark.parametrize(("value", "spec"), [
    ("image/resize,w_100", ImageProcessSpec((ResizeSpec(width=100),))),
    ("image/resize,w_100/quality,q_90", ImageProcessSpec((ResizeSpec(width=100), QualitySpec(90)))),
    ("image/format,png", ImageProcessSpec((FormatSpec("png"),))),
])
def test_resize_format_quality(value: str, spec: ImageProcessSpec) -> None:
    assert parse_process(value) == spec


def test_resize_parameter_errors_name_the_argument() -> None:
    with pytest.raises(OSSError) as info:
        parse_process("image/resize,w_100,m_abc")
    err = info.value
    assert (err.status, err.code, err.ec) == (400, "InvalidArgument", "0040-00000311")
    assert err.extra == {"ArgumentName": "m", "ArgumentValue": "abc"}


def test_snapshot_parameter_errors_name_the_argument() -> None:
    with pytest.raises(OSSError) as info:
        parse_process("video/snapshot,t_0,w_-800")
    err = info.value
    assert (err.status, err.code, err.ec) == (400, "InvalidArgument", "0053-00000104")
    assert err.extra == {"ArgumentName": "w", "ArgumentValue": "-800"}


def test_score_size_limit_is_20_mib() -> None:
    assert MAX_SOURCE_BYTES == 20 * 1024 * 1024


@pytest.mark.parametrize("value, status, code, ec, message", [
    ("image/", 400, "InvalidArgument", "0040-00000212", "image/ needs an operation, e.g. image/score."),
    ("image", 400, "InvalidArgument", "0040-00000212", "image/ needs an operation, e.g. image/score."),
    ("image/scor", 400, "InvalidArgument", "0040-00000212", "The operation 'scor' is not supported."),
    ("image/Score", 400, "InvalidArgument", "0040-00000212", "The operation 'Score' is not supported."),
    ("image/scores", 400, "InvalidArgument", "0040-00000212", "The operation 'scores' is not supported."),
    ("image/crop,w_100", 400, "NotImplemented", "0040-00000212",
     "picscore serve implements image/score, resize, format and quality only, not image/crop."),
    ("image/resize,w_100/watermark,text_aGk", 400, "NotImplemented", "0040-00000212",
     "picscore serve implements image/score, resize, format and quality only, not image/watermark."),
    ("image/info", 400, "NotImplemented", "0040-00000212",
     "picscore serve implements image/score, resize, format and quality only, not image/info."),
    ("image/faces", 400, "NotImplemented", "0040-00000212",
     "picscore serve implements image/score, resize, format and quality only, not image/faces."),
    ("image/bogus/resize,w_1", 400, "InvalidArgument", "0040-00000212", "The operation 'bogus' is not supported."),
    ("image/resize,w_1/", 400, "InvalidArgument", "0040-00000212", "The operation '' is not supported."),
    ("image/resize,w_100/score", 400, "InvalidArgument", "0040-00000203",
     "image/score takes no parameters and cannot be chained."),
    ("image/score/resize,w_100", 400, "InvalidArgument", "0040-00000203",
     "image/score takes no parameters and cannot be chained."),
    ("image/score,q_1", 400, "InvalidArgument", "0040-00000203",
     "image/score takes no parameters and cannot be chained."),
    ("image/score/", 400, "InvalidArgument", "0040-00000203",
     "image/score takes no parameters and cannot be chained."),
    ("image/score/score", 400, "InvalidArgument", "0040-00000203",
     "image/score takes no parameters and cannot be chained."),
    ("style/x", 404, "NoSuchStyle", "0040-00000404", "The style 'x' does not exist."),
    ("style/my-style", 404, "NoSuchStyle", "0040-00000404", "The style 'my-style' does not exist."),
    ("video/convert,f_mp4", 400, "NotImplemented", "0040-00000212",
     "picscore serve implements video/snapshot only, as the sole action."),
    ("video/snapshot,t_1000/resize,w_10", 400, "NotImplemented", "0040-00000212",
     "picscore serve implements video/snapshot only, as the sole action."),
    ("doc/preview", 400, "NotImplemented", "0040-00000212", "picscore serve does not implement doc/ processing."),
    ("audio/convert", 400, "NotImplemented", "0040-00000212",
     "picscore serve does not implement audio/ processing."),
    ("image/score|sys/saveas,o_x", 400, "NotImplemented", "0040-00000212",
     "picscore serve does not implement sys/saveas or piped processing."),
    ("image/resize,w_1|sys/saveas,o_eA,b_Yg", 400, "NotImplemented", "0040-00000212",
     "picscore serve does not implement sys/saveas or piped processing."),
    ("", 400, "InvalidArgument", "0040-00000212", "The process '' is not valid: it must start with image/."),
    ("sys/saveas,o_x", 400, "InvalidArgument", "0040-00000212",
     "The process 'sys/saveas,o_x' is not valid: it must start with image/."),
    ("IMAGE/score", 400, "InvalidArgument", "0040-00000212",
     "The process 'IMAGE/score' is not valid: it must start with image/."),
    ("score", 400, "InvalidArgument", "0040-00000212", "The process 'score' is not valid: it must start with image/."),
])
def test_refused(value: str, status: int, code: str, ec: str, message: str) -> None:
    with pytest.raises(OSSError) as info:
        parse_process(value)
    err = info.value
    assert (err.status, err.code, err.ec, err.message) == (status, code, ec, message)
    assert err.extra == {}


def test_long_values_are_cut_in_messages() -> None:
    with pytest.raises(OSSError) as info:
        parse_process("x" * 500)
    assert info.value.message == f"The process '{'x' * 100}' is not valid: it must start with image/."
    with pytest.raises(OSSError) as info:
        parse_process("image/" + "y" * 500)
    assert info.value.message == f"The operation '{'y' * 50}' is not supported."
