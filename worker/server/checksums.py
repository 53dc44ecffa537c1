"""Streaming digests OSS puts on every object: MD5 (the ETag) and CRC-64/ECMA-182.

oss2 and alibabacloud-oss-v2 compare ``x-oss-hash-crc64ecma`` with what they uploaded or
downloaded, so the CRC must be the exact "XZ" variant: ECMA-182 polynomial, reflected, init and
xorout all ones (OSS documentation, "Check data integrity by using CRC-64":
https://help.aliyun.com/en/oss/user-guide/check-data-transmission-integrity-by-using-crc-64;
``oss2.utils.Crc64`` builds the same ``crcmod.Crc``). crcmod's C extension computes it as the
bytes stream through.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

import crcmod

from .errors import OSSError

__all__ = ["ObjectDigest", "parse_content_md5"]

_CRC64_POLY = 0x142F0E1EBA9EA3693
_CRC64_XOROUT = 0xFFFFFFFFFFFFFFFF
_CRC64_TEMPLATE = crcmod.Crc(_CRC64_POLY, initCrc=0, rev=True, xorOut=_CRC64_XOROUT)


class ObjectDigest:
    """Feed bytes in order; read the OSS ETag, Content-MD5 and CRC-64 at the end."""

    def __init__(self) -> None:
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._crc = _CRC64_TEMPLATE.new()
        self.size = 0

    def update(self, chunk: bytes) -> None:
        self._md5.update(chunk)
        self._crc.update(chunk)
        self.size += len(chunk)

    @property
    def etag(self) -> str:
        """OSS ETags of simple uploads are the upper-case hex MD5, quoted."""
        return f'"{self._md5.hexdigest().upper()}"'

    @property
    def md5_bytes(self) -> bytes:
        return self._md5.digest()

    @property
    def crc64(self) -> str:
        """Decimal, as OSS sends it in ``x-oss-hash-crc64ecma``."""
        return str(self._crc.crcValue)


def parse_content_md5(value: str) -> bytes | None:
    """A request's ``Content-MD5`` (base64 of 16 bytes) → the digest; None when absent;
    400 InvalidDigest when it is not 16 bytes of base64."""
    if not value:
        return None
    try:
        digest = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        digest = b""
    if len(digest) != 16:
        raise OSSError(400, "InvalidDigest", "The Content-MD5 you specified is not valid.", "0002-00000019")
    return digest
