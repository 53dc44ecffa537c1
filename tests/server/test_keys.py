"""Object-key and bucket-name rules (worker/server/keys.py): OSS's "Object naming conventions" and
"Bucket naming conventions", plus what a local file system can hold."""

from __future__ import annotations

import pytest

from worker.server.errors import OSSError
from worker.server.keys import MAX_KEY_BYTES, RESERVED_DIR, validate_bucket_name, validate_key


def _key_of_bytes(total: int, char: str = "a") -> str:
    """A valid key of exactly ``total`` UTF-8 bytes, in segments short enough for a file system."""
    unit = len(char.encode("utf-8"))
    key = ""
    while len(key.encode("utf-8")) + 241 < total:
        key += char * (240 // unit) + "/"
    pad = total - len(key.encode("utf-8"))
    return key + char * (pad // unit) + "b" * (pad % unit)


def _refused(key: str) -> OSSError:
    with pytest.raises(OSSError) as info:
        validate_key(key)
    err = info.value
    assert (err.status, err.code, err.ec) == (400, "InvalidObjectName", "0016-00000005")
    assert err.extra == {"Key": key[:200]}
    return err


@pytest.mark.parametrize("key", [
    "a", "photo.jpg", "a/b/c.jpg", "dir/", "a/b/", "...", "a/.../b", ".hidden", "a/.picscore",
    ".picscorex/y", "a b+c=d&e?f#g", "a\\b", "图片/猫.jpg", "😀", "x" * 255, "x" * 255 + "/",
    "a/" + "é" * 127,  # 254 bytes in one segment
])
def test_valid_keys(key: str) -> None:
    validate_key(key)


@pytest.mark.parametrize("key, why", [
    ("", "it is empty"),
    ("..", "it contains an empty, '.' or '..' path segment"),
    (".", "it contains an empty, '.' or '..' path segment"),
    ("a/../b", "it contains an empty, '.' or '..' path segment"),
    ("a/./b", "it contains an empty, '.' or '..' path segment"),
    ("a/..", "it contains an empty, '.' or '..' path segment"),
    ("../", "it contains an empty, '.' or '..' path segment"),
    ("./", "it contains an empty, '.' or '..' path segment"),
    ("a//b", "it contains an empty, '.' or '..' path segment"),
    ("a//", "it contains an empty, '.' or '..' path segment"),
    ("/a", "it starts with '/' or '\\'"),
    ("/", "it starts with '/' or '\\'"),
    ("\\a", "it starts with '/' or '\\'"),
    ("a\x00b", "it contains a NUL character, which no local file name can hold"),
    ("a\ud800b", "it is not valid UTF-8"),
    ("x" * 256, "a path segment is longer than 255 bytes"),
    ("a/" + "é" * 128, "a path segment is longer than 255 bytes"),  # 256 bytes, 128 characters
    ("x" * 256 + "/", "a path segment is longer than 255 bytes"),
    (RESERVED_DIR, "'.picscore/' is reserved for the server's own metadata"),
    (".picscore/", "'.picscore/' is reserved for the server's own metadata"),
    (".picscore/meta/x.json", "'.picscore/' is reserved for the server's own metadata"),
    (".picscore/tmp/abc", "'.picscore/' is reserved for the server's own metadata"),
])
def test_refused_keys(key: str, why: str) -> None:
    err = _refused(key)
    assert err.message == f"The specified object name is not valid: {why}."


def test_length_limit_counts_utf8_bytes() -> None:
    assert MAX_KEY_BYTES == 1023
    for char in ("a", "é", "图", "😀"):
        at_limit = _key_of_bytes(1023, char)
        over = _key_of_bytes(1024, char)
        assert len(at_limit.encode("utf-8")) == 1023
        assert len(over.encode("utf-8")) == 1024
        validate_key(at_limit)
        assert _refused(over).message == ("The specified object name is not valid: "
                                          "it is longer than 1023 bytes.")
    # 344 characters, 1024 bytes
    many = "/".join(["图" * 80] * 4) + "/" + "图" * 20
    assert len(many) < 1023 < len(many.encode("utf-8"))
    _refused(many)


def test_long_key_extra_is_truncated() -> None:
    err = _refused("x" * 2000)
    assert err.extra == {"Key": "x" * 200}


@pytest.mark.parametrize("name", [
    "abc", "a-b", "a1b", "123", "my-bucket-2024", "a" * 63, "0-0", "testbucket",
])
def test_valid_bucket_names(name: str) -> None:
    validate_bucket_name(name)


@pytest.mark.parametrize("name", [
    "", "a", "ab", "a" * 64, "-abc", "abc-", "Abc", "ab_c", "ab.c", "a b", "ab\n", "abc\n",
    "图片桶", ".picscore", "abc/", "../x",
])
def test_invalid_bucket_names(name: str) -> None:
    with pytest.raises(OSSError) as info:
        validate_bucket_name(name)
    err = info.value
    assert (err.status, err.code, err.ec) == (400, "InvalidBucketName", "0015-00000001")
    assert err.message == "The specified bucket is not valid."
    assert err.extra == {"BucketName": name[:100]}


@pytest.mark.parametrize("key", ["a\nb", "a\rb", "a\tb", "\x1fa", "a\x7f", "bell\x07/x.jpg", "end\n"])
def test_control_characters_other_than_nul_are_accepted_as_oss_does(key: str) -> None:
    validate_key(key)  # OSS accepts them; listings carry them with encoding-type=url
