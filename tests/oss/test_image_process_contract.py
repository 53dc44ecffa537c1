"""The image/resize, format and quality process strings: what parses, what OSS refuses and with
which code, the sizes each resize mode makes, and that the builder and the parser agree."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.oss.image_process_contract import (
    FORMAT_EC,
    MALFORMED_EC,
    MAX_SIDE,
    MAX_TARGET_PIXELS,
    NOT_IMPLEMENTED_EC,
    QUALITY_EC,
    RESIZE_EC,
    TARGET_TOO_LARGE_EC,
    FormatSpec,
    ImageParameterError,
    ImageProcessSpec,
    QualitySpec,
    ResizePlan,
    ResizeSpec,
    image_process,
    parse_image_process,
    plan_resize,
)


def parse_one(actions: str) -> object:
    (action,) = parse_image_process(actions).actions
    return action


def test_the_report_thumbnail_chain() -> None:
    spec = parse_image_process("resize,m_lfit,w_160,h_160/format,jpg/quality,q_80")
    assert spec.actions == (ResizeSpec("lfit", 160, 160), FormatSpec("jpg"), QualitySpec(relative=80))
    assert spec.output_format == "jpg" and spec.quality == QualitySpec(80) and spec.resizes == (spec.actions[0],)


def test_every_resize_parameter() -> None:
    assert parse_one("resize,l_160") == ResizeSpec(longer=160)
    assert parse_one("resize,w_200") == ResizeSpec(width=200)
    assert parse_one("resize,s_50,m_fill") == ResizeSpec("fill", shorter=50)
    assert parse_one("resize,p_1000,limit_0") == ResizeSpec(percent=1000, limit=False)
    assert parse_one("resize,m_pad,w_1,h_16384,color_0a0B0c") == ResizeSpec("pad", 1, 16384, color="0A0B0C")
    assert parse_one("resize,h_5,limit_1,m_fixed") == ResizeSpec("fixed", height=5)
    assert parse_one("resize,m_mfit,w_3,h_4,l_5,s_6,p_7") == ResizeSpec("mfit", 3, 4, 5, 6, 7)
    assert ResizeSpec(color="FF8000").rgb == (255, 128, 0)
    assert ResizeSpec(width=10, shorter=30).size_hint == 30 and ResizeSpec(percent=5).size_hint is None


def test_format_and_quality() -> None:
    for value in ("jpg", "png", "webp", "bmp", "gif", "tiff"):
        assert parse_one(f"format,{value}") == FormatSpec(value)
    assert parse_one("quality,Q_1") == QualitySpec(absolute=1)
    assert parse_one("quality,q_100,Q_50") == QualitySpec(100, 50)
    spec = parse_image_process("format,png/quality,Q_10/format,webp/quality,q_20")
    assert spec.output_format == "webp" and spec.quality == QualitySpec(relative=20)
    assert parse_image_process("quality,q_5").output_format is None
    assert ImageProcessSpec(()).quality is None


@pytest.mark.parametrize(("actions", "ec"), [
    ("resize", "0040-00000322"), ("resize,m_fill", "0040-00000322"), ("resize,limit_0", "0040-00000322"),
    ("resize,w_0,h_0", "0040-00000321"),
    ("resize,w_0", RESIZE_EC["w"]), ("resize,w_16385", RESIZE_EC["w"]), ("resize,w_abc", RESIZE_EC["w"]),
    ("resize,w_-1", RESIZE_EC["w"]), ("resize,w_1.5", RESIZE_EC["w"]), ("resize,w_８", RESIZE_EC["w"]),
    ("resize,w_1,w_2", RESIZE_EC["w"]), (f"resize,w_{10**40}", RESIZE_EC["w"]),
    ("resize,h_0", RESIZE_EC["h"]), ("resize,h_99999", RESIZE_EC["h"]),
    ("resize,l_0", RESIZE_EC["l"]), ("resize,s_16385", RESIZE_EC["s"]),
    ("resize,p_0", RESIZE_EC["p"]), ("resize,p_1001", RESIZE_EC["p"]),
    ("resize,w_1,m_abc", RESIZE_EC["m"]), ("resize,w_1,m_LFIT", RESIZE_EC["m"]),
    ("resize,w_1,limit_3", RESIZE_EC["limit"]), ("resize,w_1,limit_true", RESIZE_EC["limit"]),
    ("resize,w_1,m_pad,color_AABBCCDD", RESIZE_EC["color"]), ("resize,w_1,color_GGGGGG", RESIZE_EC["color"]),
    ("resize,w_1,color_fff", RESIZE_EC["color"]),
    ("resize,w", MALFORMED_EC), ("resize,w_", MALFORMED_EC), ("resize,zz_1", MALFORMED_EC),
    ("resize,100", MALFORMED_EC),
    ("format", FORMAT_EC["missing"]), ("format,dng", FORMAT_EC["value"]), ("format,jpeg", FORMAT_EC["value"]),
    ("format,JPG", FORMAT_EC["value"]), ("format,jpg,png", MALFORMED_EC),
    ("quality", QUALITY_EC["missing"]), ("quality,80", QUALITY_EC["bare"]), ("quality,q_200", QUALITY_EC["q"]),
    ("quality,q_0", QUALITY_EC["q"]), ("quality,Q_200", QUALITY_EC["Q"]), ("quality,Q_x", QUALITY_EC["Q"]),
    ("quality,q_1,q_2", QUALITY_EC["q"]), ("quality,z_5", MALFORMED_EC),
])
def test_refused_parameters_carry_their_oss_code(actions: str, ec: str) -> None:
    with pytest.raises(ImageParameterError) as caught:
        parse_image_process(actions)
    assert (caught.value.ec, caught.value.code, caught.value.status) == (ec, "InvalidArgument", 400)


@pytest.mark.parametrize("actions", ["format,heic", "format,avif", "quality,q_lossless", "resize,w_1/watermark,x",
                                     "rotate,90"])
def test_what_oss_does_and_picscore_does_not_is_not_implemented(actions: str) -> None:
    with pytest.raises(ImageParameterError) as caught:
        parse_image_process(actions)
    assert (caught.value.code, caught.value.ec) == ("NotImplemented", NOT_IMPLEMENTED_EC)


def test_a_refusal_names_the_parameter() -> None:
    with pytest.raises(ImageParameterError) as caught:
        parse_image_process("resize,w_100,m_abc")
    assert (caught.value.name, caught.value.value) == ("m", "abc")


# -- sizes: the examples of "Resize images" (a 200 x 100 source, w_150,h_80) and beyond ------------

@pytest.mark.parametrize(("spec", "plan"), [
    (ResizeSpec("lfit", 150, 80), ResizePlan((150, 75), (150, 75))),
    (ResizeSpec("mfit", 150, 80), ResizePlan((160, 80), (160, 80))),
    (ResizeSpec("fill", 150, 80), ResizePlan((150, 80), (150, 80), box=(6.25, 0.0, 193.75, 100.0))),
    (ResizeSpec("pad", 150, 80), ResizePlan((150, 75), (150, 80), (0, 2))),
    (ResizeSpec("fixed", 150, 80), ResizePlan((150, 80), (150, 80))),
    (ResizeSpec(width=50), ResizePlan((50, 25), (50, 25))),
    (ResizeSpec(height=50), ResizePlan((100, 50), (100, 50))),
    (ResizeSpec("fixed", height=30), ResizePlan((60, 30), (60, 30))),
    (ResizeSpec(longer=100), ResizePlan((100, 50), (100, 50))),
    (ResizeSpec(shorter=30), ResizePlan((60, 30), (60, 30))),
    (ResizeSpec(longer=100, shorter=20), ResizePlan((40, 20), (40, 20))),
    (ResizeSpec("mfit", longer=100, shorter=20), ResizePlan((100, 50), (100, 50))),
    (ResizeSpec(width=60, longer=10), ResizePlan((60, 30), (60, 30))),  # w wins over l
    (ResizeSpec("pad", width=40), ResizePlan((40, 20), (40, 40), (0, 10))),  # one side: a square box
    (ResizeSpec("fill", longer=40), ResizePlan((40, 40), (40, 40), box=(50.0, 0.0, 150.0, 100.0))),
    (ResizeSpec(percent=50), ResizePlan((100, 50), (100, 50))),
    (ResizeSpec(percent=1), ResizePlan((2, 1), (2, 1))),
    (ResizeSpec(width=3), ResizePlan((3, 2), (3, 2))),  # 1.5 rounds half up
    (ResizeSpec(width=1), ResizePlan((1, 1), (1, 1))),  # never 0
    (ResizeSpec(percent=50, width=20), ResizePlan((20, 10), (20, 10))),  # p only without sizes
])
def test_each_mode_makes_the_documented_size(spec: ResizeSpec, plan: ResizePlan) -> None:
    assert plan_resize(spec, 200, 100) == plan


@pytest.mark.parametrize("spec", [ResizeSpec(width=400), ResizeSpec(percent=101), ResizeSpec("mfit", 150, 120),
                                  ResizeSpec("fixed", 100, 101), ResizeSpec("fill", 300, 50),
                                  ResizeSpec("pad", 300, 300)])
def test_limit_1_keeps_a_picture_that_would_grow(spec: ResizeSpec) -> None:
    assert plan_resize(spec, 200, 100) == ResizePlan((200, 100), (200, 100))
    enlarged = plan_resize(replace(spec, limit=False), 200, 100)
    assert enlarged.size[0] > 200 or enlarged.size[1] > 100 or enlarged.box is not None


def test_limit_0_enlarges() -> None:
    assert plan_resize(ResizeSpec(width=400, limit=False), 200, 100) == ResizePlan((400, 200), (400, 200))
    assert plan_resize(ResizeSpec(percent=1000, limit=False), 200, 100).size == (2000, 1000)


@pytest.mark.parametrize("spec", [ResizeSpec("fixed", 5000, 5000, limit=False), ResizeSpec(width=16384, limit=False),
                                  ResizeSpec("pad", 16384, 16384, limit=False),
                                  ResizeSpec("pad", 2000, 16384), ResizeSpec(percent=1000, limit=False)])
def test_a_result_over_the_oss_target_limits_is_refused(spec: ResizeSpec) -> None:
    with pytest.raises(ImageParameterError) as caught:
        plan_resize(spec, 2000, 1000)
    assert caught.value.ec == TARGET_TOO_LARGE_EC


@given(st.integers(1, 30_000), st.integers(1, 30_000), st.sampled_from(["lfit", "mfit", "fill", "pad", "fixed"]),
       st.integers(0, 4096), st.integers(0, 4096), st.integers(0, 4096), st.integers(0, 4096), st.integers(0, 1000),
       st.booleans())
def test_every_plan_fits_the_limits_and_its_canvas(width: int, height: int, mode: str, w: int, h: int, longer: int,
                                                   s: int, p: int, limit: bool) -> None:
    spec = ResizeSpec(mode, w, h, longer, s, p or (0 if w or h or longer or s else 100), limit)  # type: ignore[arg-type]
    try:
        plan = plan_resize(spec, width, height)
    except ImageParameterError as exc:
        assert exc.ec == TARGET_TOO_LARGE_EC
        return
    (sw, sh), (cw, ch) = plan.size, plan.canvas
    if plan == ResizePlan((width, height), (width, height)):  # kept as it is (limit_1, or already that size)
        return
    assert 1 <= sw <= cw <= MAX_SIDE and 1 <= sh <= ch <= MAX_SIDE and cw * ch <= MAX_TARGET_PIXELS
    assert 0 <= plan.offset[0] <= cw - sw and 0 <= plan.offset[1] <= ch - sh
    if plan.box is not None:
        x0, y0, x1, y1 = plan.box
        assert -1e-6 <= x0 < x1 <= width + 1e-6 and -1e-6 <= y0 < y1 <= height + 1e-6
    hint = spec.size_hint
    if hint is not None and hint < min(width, height):  # decoding at a short side >= hint loses nothing
        scale = hint / min(width, height)
        x0, y0, x1, y1 = plan.box or (0, 0, width, height)
        assert sw <= (x1 - x0) * scale + 1 and sh <= (y1 - y0) * scale + 1


# -- the builder and the parser ------------------------------------------------------------------

_resizes = st.builds(ResizeSpec, st.sampled_from(["lfit", "mfit", "fill", "pad", "fixed"]), st.integers(0, 16384),
                     st.integers(0, 16384), st.integers(0, 16384), st.integers(0, 16384), st.integers(1, 1000),
                     st.booleans(), st.text("0123456789ABCDEF", min_size=6, max_size=6))
_qualities = st.builds(QualitySpec, st.integers(0, 100), st.integers(1, 100)) | st.builds(QualitySpec,
                                                                                         st.integers(1, 100))
_actions = _resizes | st.builds(
    FormatSpec, st.sampled_from(["jpg", "png", "webp", "bmp", "gif", "tiff"])) | _qualities


@given(st.lists(_actions, min_size=1, max_size=4))
def test_what_the_client_builds_the_server_parses_back(actions: list) -> None:
    spec = ImageProcessSpec(tuple(actions))
    process = image_process(spec)
    assert process.startswith("image/")
    assert parse_image_process(process.removeprefix("image/")) == spec


@given(st.text(max_size=60))
def test_any_text_parses_or_is_refused_with_an_oss_code(text: str) -> None:
    try:
        parse_image_process(text)
    except ImageParameterError as exc:
        assert exc.ec.startswith("0040-0000")
        assert exc.code in ("InvalidArgument", "NotImplemented")
