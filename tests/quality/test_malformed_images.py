"""A bounded fuzz corpus of malformed pictures (issue 15): each is refused with its OSS 4xx code,
quickly, and the decompression bombs without the memory they ask for.

The corpus is built in code (tests/quality/malformed.py), so it is the same on every machine.
The other side is checked too: the new refusals (declared pixels the data cannot hold, the
decode-memory budget) must never turn away a valid picture, whatever its layout.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.quality.conftest import encode
from tests.quality.malformed import (
    bmp_header_only,
    bmp_rle_bomb,
    cut,
    gif_frames,
    jpeg_photo,
    png_chunk,
    png_header_only,
    random_after,
    relabel_jpeg,
    solid_png,
    tiff,
    tiff_bomb,
    webp_lossless_relabelled,
    with_eoi,
)
from worker.quality import DEFAULT_LAYOUT, ImageError, score
from worker.quality.decode import DECODE_BUDGET_BYTES, check_decode_budget, decode_scaled
from worker.quality.model import shipped_model

pytestmark = pytest.mark.timeout(60)

REPO = Path(__file__).resolve().parents[2]
#: Each refusal must come this fast: from the header, or from a decoder that fails early.
TIME_BUDGET_S = 2.0
#: What refusing a bomb may add to a process's peak memory: nothing like the bomb's raster.
RSS_BUDGET_MIB = 64

BAD = ("BadRequest", "0040-00000005")
TOO_MANY_PIXELS = ("ImageTooLarge", "0040-00000012")
SIDE_TOO_LONG = ("ImageTooLarge", "0040-00000019")


def _noise(width: int = 160, height: int = 120) -> Image.Image:
    """Incompressible pixels, so a cut anywhere falls inside the image data."""
    return Image.fromarray(np.random.default_rng(3).integers(0, 256, (height, width, 3), dtype=np.uint8))


def _corrupt_middle(data: bytes, length: int = 200) -> bytes:
    """``data`` with ``length`` zero bytes written over its middle: damage, not a cut."""
    middle = len(data) // 2
    return data[:middle] + bytes(length) + data[middle + length:]


_tiny_jpeg = encode(Image.new("RGB", (16, 16), (120, 80, 40)), "JPEG")  # one 4:2:0 MCU
_tiny_progressive = encode(Image.new("RGB", (16, 16), (120, 80, 40)), "JPEG", progressive=True)

#: name -> (build the bytes, expected (OSS Code, EC)). Builders, so collection stays instant.
CORPUS: dict[str, tuple[Callable[[], bytes], tuple[str, str]]] = {
    # truncated: a transfer that stopped early, at several points
    **{f"jpeg-{kind}-cut-{int(f * 100)}": (lambda f=f, p=p: cut(jpeg_photo(**p), f), BAD)
       for kind, p in (("baseline", {}), ("progressive", {"progressive": True}),
                       ("restarts", {"restart_marker_blocks": 4}))
       for f in (0.02, 0.3, 0.7, 0.98)},
    **{f"{fmt.lower()}-cut-{int(f * 100)}": (lambda fmt=fmt, f=f: cut(encode(_noise(), fmt), f), BAD)
       for fmt in ("PNG", "WEBP", "GIF", "TIFF", "BMP", "HEIF", "AVIF") for f in (0.1, 0.5, 0.9)},
    # cut, then closed again with an end-of-image marker: libjpeg would fill the rest with grey
    **{f"jpeg-restarts-cut-{int(f * 100)}-eoi": (lambda f=f: with_eoi(jpeg_photo(restart_marker_blocks=4), f), BAD)
       for f in (0.3, 0.7, 0.98)},
    "png-corrupt-image-data": (lambda: _corrupt_middle(encode(_noise(600, 400), "PNG")), BAD),
    # lying headers: far more pixels declared than the data holds
    "jpeg-one-mcu-declares-30000x8000": (lambda: relabel_jpeg(_tiny_jpeg, 30_000, 8_000), BAD),
    "jpeg-progressive-one-mcu-declares-30000x8000": (lambda: relabel_jpeg(_tiny_progressive, 30_000, 8_000), BAD),
    "jpeg-photo-declares-8000x6000": (lambda: relabel_jpeg(jpeg_photo(), 8_000, 6_000), BAD),
    "png-declares-8000x8000": (lambda: png_header_only(8_000, 8_000), BAD),
    "png-declares-15000x15000-rgba": (lambda: png_header_only(15_000, 15_000, 6), BAD),
    "gif-declares-4000x3000": (lambda: gif_frames(4_000, 3_000, 1), BAD),
    "tiff-declares-6000x4000": (lambda: tiff(6_000, 4_000), BAD),
    "bmp-declares-8000x6000": (lambda: bmp_header_only(8_000, 6_000), BAD),
    # huge declared sizes: over OSS's limits, or over the decode budget
    "jpeg-declares-30001-wide": (lambda: relabel_jpeg(_tiny_jpeg, 30_001, 16), SIDE_TOO_LONG),
    "png-declares-20000x20000": (lambda: png_header_only(20_000, 20_000), TOO_MANY_PIXELS),
    "gif-declares-20000x12000": (lambda: gif_frames(20_000, 12_000, 1), TOO_MANY_PIXELS),
    "tiff-declares-40000x10": (lambda: tiff(40_000, 10), SIDE_TOO_LONG),
    # many frames or pages
    "gif-25001-frames-of-100x100": (lambda: gif_frames(100, 100, 25_001), TOO_MANY_PIXELS),
    "gif-11-frames-of-5000x5000": (lambda: gif_frames(5_000, 5_000, 11), TOO_MANY_PIXELS),
    "gif-200000-broken-frames": (lambda: gif_frames(10, 10, 200_000), BAD),
    "tiff-500-pages-without-pixels": (lambda: tiff(3_000, 2_000, pages=500), BAD),
    # zero sizes
    "empty": (lambda: b"", BAD),
    "png-0-wide": (lambda: png_header_only(0, 10), BAD),
    "png-0-high": (lambda: png_header_only(10, 0), BAD),
    "gif-0x0": (lambda: gif_frames(0, 0, 1), BAD),
    "jpeg-0-high": (lambda: relabel_jpeg(jpeg_photo(), 320, 0), BAD),
    "jpeg-0-wide": (lambda: relabel_jpeg(jpeg_photo(), 0, 240), BAD),
    # decompression bombs: valid files, ~1000:1 and beyond
    "bomb-png-15000x15000-rgba": (lambda: solid_png(15_000, 15_000), TOO_MANY_PIXELS),
    "bomb-png-16000x15000-grey": (lambda: solid_png(16_000, 15_000, 0), TOO_MANY_PIXELS),
    "bomb-tiff-deflate-15000x15000": (lambda: tiff_bomb(15_000, 15_000), TOO_MANY_PIXELS),
    "bomb-bmp-rle-15000x15000": (lambda: bmp_rle_bomb(15_000, 15_000), TOO_MANY_PIXELS),
    "bomb-webp-38-bytes-16383x15000": (lambda: webp_lossless_relabelled(16_383, 15_000), TOO_MANY_PIXELS),
}

MAGIC = {
    "jpeg": b"\xff\xd8\xff", "png": b"\x89PNG\r\n\x1a\n", "gif": b"GIF89a", "webp": b"RIFF\x00\x10\x00\x00WEBPVP8 ",
    "tiff-le": b"II*\x00", "tiff-be": b"MM\x00*", "bmp": b"BM", "heic": b"\x00\x00\x00\x18ftypheic",
    "avif": b"\x00\x00\x00\x1cftypavif",
}

BOMBS = sorted(name for name in CORPUS if name.startswith("bomb-"))


@pytest.fixture(scope="module", autouse=True)
def _model_loaded() -> None:
    """Load the model once up front, so no case's time budget pays for it."""
    shipped_model(DEFAULT_LAYOUT)


def _refusal(data: bytes) -> tuple[ImageError, float]:
    start = time.perf_counter()
    with pytest.raises(ImageError) as caught:
        score(data)
    return caught.value, time.perf_counter() - start


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("name", sorted(CORPUS))
def test_malformed_picture_is_refused_with_its_code_in_time(name: str) -> None:
    build, expected = CORPUS[name]
    error, elapsed = _refusal(build())
    assert (error.oss_code, error.ec) == expected, str(error)
    assert elapsed < TIME_BUDGET_S, f"{elapsed:.2f} s"


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning", "ignore::UserWarning")
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("magic", sorted(MAGIC))
def test_random_bytes_behind_a_real_magic_number_are_refused(magic: str, seed: int) -> None:
    """What the random header happens to declare decides which 400 it is; never a crash or a score."""
    error, elapsed = _refusal(random_after(MAGIC[magic], 4_000, seed))
    assert error.oss_code in ("BadRequest", "ImageTooLarge"), str(error)
    assert elapsed < TIME_BUDGET_S


_CHILD = """
import json, resource, sys
from tests.quality import malformed
from tests.quality.test_malformed_images import CORPUS
from worker.quality import ImageError
from worker.quality.decode import decode_scaled

def kib(field):
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(field + ":"))

# A safety net for the machine should this ever regress: the bomb fails here instead.
resource.setrlimit(resource.RLIMIT_AS, (kib("VmSize") * 1024 + 2 * 2**30, resource.RLIM_INFINITY))
data = CORPUS[sys.argv[1]][0]()
before = kib("VmHWM")
try:
    decode_scaled(data, 640)
    code = None
except ImageError as exc:
    code = exc.oss_code
print(json.dumps({"code": code, "grew_mib": (kib("VmHWM") - before) / 1024}))
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads peak memory from /proc")
@pytest.mark.parametrize("name", BOMBS)
def test_bombs_are_refused_without_their_memory(name: str) -> None:
    """Peak memory (VmHWM) of a fresh process that decodes the bomb, before and after: the
    refusal must come from the header, before the raster exists."""
    run = subprocess.run([sys.executable, "-c", _CHILD, name], cwd=REPO, capture_output=True, text=True,
                         timeout=30)
    assert run.returncode == 0, run.stderr[-2000:]
    found = json.loads(run.stdout)
    assert found["code"] == "ImageTooLarge", found
    assert found["grew_mib"] < RSS_BUDGET_MIB, found


# --- and nothing valid is refused -----------------------------------------------------------

VALID_JPEGS: dict[str, Callable[[], bytes]] = {
    "baseline-420": lambda: jpeg_photo(),
    "baseline-444": lambda: jpeg_photo(subsampling=0),
    "baseline-422": lambda: jpeg_photo(subsampling=1),
    "progressive": lambda: jpeg_photo(progressive=True),
    "optimized": lambda: jpeg_photo(optimize=True),
    "restarts-every-block-odd-size": lambda: jpeg_photo(333, 201, restart_marker_blocks=1),
    "restarts-every-row-progressive": lambda: jpeg_photo(333, 201, restart_marker_rows=1, progressive=True),
    "grey": lambda: encode(_noise().convert("L"), "JPEG"),
    "cmyk": lambda: encode(_noise().convert("CMYK"), "JPEG"),
    "1x1": lambda: jpeg_photo(1, 1),
    "7x9": lambda: jpeg_photo(7, 9, restart_marker_blocks=1),
    # the fewest bits a block can take: flat, with optimised Huffman codes
    "flat-optimized-4096x4096": lambda: encode(Image.new("L", (4096, 4096), 128), "JPEG", optimize=True),
    "flat-progressive-4096x4096": lambda: encode(Image.new("RGB", (4096, 4096), (9, 99, 199)), "JPEG",
                                                 progressive=True, optimize=True),
    "with-trailing-bytes": lambda: jpeg_photo() + b"\0" * 100,
    "mpo": lambda: encode(_noise(), "MPO", save_all=True, append_images=[_noise()]),
}

VALID_OTHERS: dict[str, Callable[[], bytes]] = {
    "png-flat-1030-to-1": lambda: solid_png(4_000, 3_000),  # compressed as far as deflate goes
    "png-16-bit-grey": lambda: encode(Image.fromarray(np.full((300, 200), 40_000, np.uint16)), "PNG"),
    "png-1-bit": lambda: encode(_noise().convert("1"), "PNG"),
    "png-palette": lambda: encode(_noise().convert("P"), "PNG"),
    "png-many-idat-chunks": lambda: _split_idat(encode(_noise(), "PNG"), 100),
    "png-1x1": lambda: encode(Image.new("RGB", (1, 1)), "PNG"),
}


def _split_idat(png: bytes, pieces: int) -> bytes:
    """The same PNG with its image data spread over many IDAT chunks, as streaming encoders write."""
    start = png.index(b"IDAT") - 4
    length = int.from_bytes(png[start:start + 4], "big")
    body = png[start + 8:start + 8 + length]
    step = -(-len(body) // pieces)
    chunks = b"".join(png_chunk(b"IDAT", body[i:i + step]) for i in range(0, len(body), step))
    return png[:start] + chunks + png[start + 12 + length:]


@pytest.mark.parametrize("name", sorted(VALID_JPEGS))
def test_valid_jpeg_layouts_are_never_refused(name: str) -> None:
    """The data-length bounds hold for every legal layout: sampling, progression, restart
    intervals at every block, optimised codes on flat pictures (the fewest bits a block takes)."""
    img, size = decode_scaled(VALID_JPEGS[name](), 640)
    assert img.mode == "RGB" and min(size) >= 1


@pytest.mark.parametrize("name", sorted(VALID_OTHERS))
def test_valid_pngs_are_never_refused(name: str) -> None:
    img, _ = decode_scaled(VALID_OTHERS[name](), 640)
    assert img.mode == "RGB"


def _header_only(data: bytes) -> Image.Image:
    """Opened, not decoded: what the budget is checked on."""
    return Image.open(io.BytesIO(data))


def test_decode_budget_boundary() -> None:
    """8192 x 8192 RGBA is the largest square RGBA picture the budget admits; one more row is too much."""
    check_decode_budget(_header_only(png_header_only(8_192, 8_192, 6)))
    with pytest.raises(ImageError) as caught:
        check_decode_budget(_header_only(png_header_only(8_192, 8_193, 6)))
    assert (caught.value.oss_code, caught.value.ec) == TOO_MANY_PIXELS
    assert DECODE_BUDGET_BYTES == 512 * 2**20


def test_jpegs_are_budgeted_at_the_scale_they_are_decoded() -> None:
    """A JPEG far over the budget at full size is decoded reduced, so it is not refused."""
    data = encode(Image.new("RGB", (12_000, 9_000), (70, 140, 210)), "JPEG", quality=50)
    img, size = decode_scaled(data, 640)
    assert size == (12_000, 9_000) and img.size == (1_500, 1_125)


def test_an_ordinary_large_picture_still_scores() -> None:
    """A 12 Mpx RGBA PNG (the budget's headroom case is 64 Mpx) decodes and scores as before."""
    assert 0.0 <= score(solid_png(4_000, 3_000)).overall <= 1.0


def test_exif_orientation_still_swaps_the_reported_size() -> None:
    """EXIF is now read after the pixels (a PNG's may follow them); the upright size must not change."""
    exif = Image.Exif()
    exif[0x0112] = 6
    for fmt in ("JPEG", "PNG"):
        img, size = decode_scaled(encode(Image.new("RGB", (60, 40), (200, 30, 30)), fmt, exif=exif.tobytes()), 640)
        assert size == (40, 60) and img.size == (40, 60), fmt
