"""MD5 ETag and CRC-64/XZ, the variant OSS sends in ``x-oss-hash-crc64ecma`` (worker/server/checksums.py)."""

from __future__ import annotations

import hashlib
import os

import pytest

from worker.server.checksums import ObjectDigest

#: CRC-64/XZ (a.k.a. CRC-64/GO-ECMA) catalogue check value: CRC of b"123456789".
CRC64_XZ_CHECK = 0x995DC9BBDF1939FA


def _crc64_xz_reference(data: bytes) -> int:
    """Bit-at-a-time CRC-64/XZ: reflected ECMA-182 polynomial, init and xorout all ones."""
    poly = 0xC96C5795D7870F42  # 0x42F0E1EBA9EA3693 reflected
    crc = 0xFFFFFFFFFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFFFFFFFFFF


def _digest(*chunks: bytes) -> ObjectDigest:
    digest = ObjectDigest()
    for chunk in chunks:
        digest.update(chunk)
    return digest


def test_check_value() -> None:
    digest = _digest(b"123456789")
    assert digest.crc64 == str(CRC64_XZ_CHECK) == "11051210869376104954"
    assert digest.etag == '"25F9E794323B453885F5181F1B624D0B"'
    assert digest.md5_bytes == bytes.fromhex("25f9e794323b453885f5181f1b624d0b")
    assert digest.size == 9
    assert _crc64_xz_reference(b"123456789") == CRC64_XZ_CHECK


def test_empty() -> None:
    digest = ObjectDigest()
    assert digest.crc64 == "0"
    assert digest.etag == '"D41D8CD98F00B204E9800998ECF8427E"'
    assert digest.size == 0


@pytest.mark.parametrize("size", [1, 7, 8, 63, 1000, 65537])
def test_matches_reference_and_hashlib(size: int) -> None:
    data = os.urandom(size)
    digest = _digest(data)
    assert digest.crc64 == str(_crc64_xz_reference(data))
    assert digest.etag == '"' + hashlib.md5(data).hexdigest().upper() + '"'
    assert digest.size == size


def test_chunking_does_not_change_the_result() -> None:
    data = bytes(range(256)) * 40
    whole = _digest(data)
    for step in (1, 3, 255, 4096):
        parts = _digest(*(data[i:i + step] for i in range(0, len(data), step)))
        assert (parts.crc64, parts.etag, parts.size) == (whole.crc64, whole.etag, whole.size)
    assert _digest(b"", data, b"").crc64 == whole.crc64


def test_digests_are_independent() -> None:
    first, second = ObjectDigest(), ObjectDigest()
    first.update(b"123456789")
    assert second.crc64 == "0"
    assert first.crc64 == str(CRC64_XZ_CHECK)
