"""Malformed pictures built in code, byte by byte: truncated, lying headers, huge declared sizes,
many frames or pages, zero sizes, random bytes behind real magic numbers, decompression bombs.

Deterministic (fixed seeds, no files) and cheap: a bomb that decodes to gigabytes is built in
milliseconds, because its compressed stream repeats one independently compressed block.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image

__all__ = [
    "bmp_header_only", "bmp_rle_bomb", "cut", "gif_frames", "jpeg_photo", "png_chunk", "png_header_only",
    "random_after", "relabel_jpeg", "solid_png", "tiff", "tiff_bomb", "webp_lossless_relabelled", "with_eoi",
]

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}


def jpeg_photo(width: int = 320, height: int = 240, seed: int = 0, **params: object) -> bytes:
    """A textured photo-like JPEG (noise over gradients, so every block carries data)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 // width, y * 255 // height, (x + y) * 255 // (width + height)], -1)
    pixels = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90, **params)
    return buffer.getvalue()


def cut(data: bytes, fraction: float) -> bytes:
    """The first ``fraction`` of ``data``: a download or upload that stopped early."""
    return data[: int(len(data) * fraction)]


def with_eoi(data: bytes, fraction: float) -> bytes:
    """A JPEG cut short and closed again with an end-of-image marker, as repair tools do."""
    return cut(data, fraction) + b"\xff\xd9"


def relabel_jpeg(data: bytes, width: int, height: int) -> bytes:
    """``data`` with its start-of-frame size replaced: a header promising other pixels."""
    pos = 2
    while pos < len(data):
        marker, length = data[pos + 1], int.from_bytes(data[pos + 2:pos + 4], "big")
        if marker in (0xC0, 0xC1, 0xC2):
            return data[:pos + 5] + struct.pack(">HH", height, width) + data[pos + 9:]
        pos += 2 + length
    raise ValueError("no start-of-frame marker")


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_header_only(width: int, height: int, colour_type: int = 2) -> bytes:
    """A PNG that declares width x height but holds a few bytes of image data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return (_PNG_SIGNATURE + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + png_chunk(b"IEND", b""))


def _solid_deflate(row: bytes, rows: int, block_rows: int = 64) -> bytes:
    """A zlib stream of ``rows`` copies of an all-zero ``row``: one full-flushed block (which
    refers to nothing before it) repeated, so no gigabyte is ever held or compressed."""
    block = zlib.compressobj(9, zlib.DEFLATED, -15)
    repeated = block.compress(row * block_rows) + block.flush(zlib.Z_FULL_FLUSH)
    last = zlib.compressobj(9, zlib.DEFLATED, -15)
    tail = last.compress(row * (rows % block_rows)) + last.flush()
    adler = ((len(row) * rows) % 65521) << 16 | 1  # Adler-32 of zeros: a stays 1, b counts bytes
    return b"\x78\xda" + repeated * (rows // block_rows) + tail + adler.to_bytes(4, "big")


def solid_png(width: int, height: int, colour_type: int = 6) -> bytes:
    """A valid all-black (transparent, for RGBA) PNG, compressed as far as deflate goes (~1030:1):
    15000 x 15000 RGBA is the 875 KB file of issue 15, 900 MB once decoded."""
    row = bytes(1 + width * _PNG_CHANNELS[colour_type])
    ihdr = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return (_PNG_SIGNATURE + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", _solid_deflate(row, height))
            + png_chunk(b"IEND", b""))


def gif_frames(width: int, height: int, frames: int) -> bytes:
    """An animated GIF of ``frames`` frames of width x height, each a few bytes of LZW data."""
    out = b"GIF89a" + struct.pack("<HHBBB", width, height, 0, 0, 0)
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02\x02\x4c\x01\x00"
    return out + frame * frames + b"\x3b"


def tiff(width: int, height: int, pages: int = 1, strip: bytes = b"\0" * 16, deflate: bool = False) -> bytes:
    """A little-endian RGB TIFF of ``pages`` identical pages, each one strip holding ``strip``
    (raw, or a zlib stream when ``deflate``) — whatever size the header declares."""
    entries_per_ifd = 9
    ifd_size = 2 + 12 * entries_per_ifd + 4
    out = bytearray(b"II*\0" + struct.pack("<I", 8))
    data_at = 8 + pages * ifd_size
    for page in range(pages):
        entries = [
            (256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (259, 3, 1, 8 if deflate else 1),
            (262, 3, 1, 2), (273, 4, 1, data_at), (277, 3, 1, 3), (278, 4, 1, height), (279, 4, 1, len(strip)),
        ]
        out += struct.pack("<H", entries_per_ifd)
        for tag, kind, count, value in entries:
            out += struct.pack("<HHI", tag, kind, count) + (struct.pack("<HH", value, 0) if kind == 3
                                                             else struct.pack("<I", value))
        out += struct.pack("<I", 8 + (page + 1) * ifd_size if page + 1 < pages else 0)
    return bytes(out) + strip


def tiff_bomb(width: int, height: int) -> bytes:
    """A valid deflate-compressed all-black RGB TIFF: ~1000 bytes of data per decoded MB."""
    return tiff(width, height, strip=_solid_deflate(bytes(width * 3), height), deflate=True)


def _bmp(width: int, height: int, bits: int, compression: int, palette: bytes, pixels: bytes) -> bytes:
    """A Windows BMP (BITMAPINFOHEADER) around ``pixels``, which need not fill width x height."""
    offset = 14 + 40 + len(palette)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, bits, compression, len(pixels), 2835, 2835,
                       len(palette) // 4, 0)
    return b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset) + info + palette + pixels


def bmp_header_only(width: int, height: int) -> bytes:
    """A 24-bit BMP that declares width x height but holds 16 bytes of pixels."""
    return _bmp(width, height, 24, 0, b"", bytes(16))


def bmp_rle_bomb(width: int, height: int) -> bytes:
    """A valid 8-bit run-length BMP of one colour: 2 bytes per 255 pixels, 128:1."""
    full, rest = divmod(width, 255)
    line = bytes((255, 0)) * full + (bytes((rest, 0)) if rest else b"") + b"\0\0"  # runs, end of line
    return _bmp(width, height, 8, 1, bytes(4 * 256), line * height + b"\0\1")  # RLE8, then end of bitmap


def webp_lossless_relabelled(width: int, height: int) -> bytes:
    """A lossless WebP of one colour, relabelled to width x height: every Huffman code has a
    single symbol and costs no bits, so the tiny bitstream is valid at any size — a ~100-byte
    file that decodes to 4 bytes a pixel."""
    buffer = io.BytesIO()
    Image.new("RGBA", (16, 16), (10, 20, 30, 255)).save(buffer, "WEBP", lossless=True, exact=True)
    data = bytearray(buffer.getvalue())
    at = data.index(b"VP8L") + 8 + 1  # chunk header, then the 0x2f signature byte
    fields = int.from_bytes(data[at:at + 4], "little")
    fields = (fields & ~0x0FFFFFFF) | (width - 1) | (height - 1) << 14
    data[at:at + 4] = fields.to_bytes(4, "little")
    return bytes(data)


def random_after(magic: bytes, size: int, seed: int) -> bytes:
    """``magic`` then ``size`` seeded random bytes: passes a format sniff, nothing more."""
    return magic + np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()
