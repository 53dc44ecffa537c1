"""Standard headers, encryption and ACL headers, and gzip responses below the HTTP layer
(worker/server/object_attrs.py, gzip_response.py, storage.py). The same behaviour through the
official SDKs is in tests/integration/test_server_headers.py."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest
from aiohttp.test_utils import make_mocked_request

from worker.server.call import Call
from worker.server.errors import OSSError
from worker.server.gzip_response import accepts_gzip, should_gzip
from worker.server.object_attrs import copied_headers, encryption_headers, object_headers, standard_headers
from worker.server.storage import LocalStore, ObjectMeta

B = "bkt"


def call_with(headers: dict[str, str]) -> Call:
    return Call(make_mocked_request("PUT", "/k", headers=headers), "RID", B, "k")


def refusal(headers: dict[str, str]) -> OSSError:
    with pytest.raises(OSSError) as excinfo:
        standard_headers(call_with(headers))
    return excinfo.value


def meta(**changes: object) -> ObjectMeta:
    fields: dict[str, object] = {"size": 2048, "etag": '"E"', "crc64": "1", "content_type": "text/plain",
                                 "mtime_ns": 0, "ino": 1}
    return ObjectMeta(**(fields | changes))  # type: ignore[arg-type]


def test_standard_headers_reads_the_five_and_encryption() -> None:
    headers = {"Cache-Control": "no-cache", "content-disposition": "inline", "Content-Encoding": "gzip",
               "Content-Language": "zh", "Expires": "not a date", "x-oss-server-side-encryption": "KMS",
               "x-oss-server-side-data-encryption": "SM4", "X-Other": "dropped", "Content-Type": "text/plain"}
    assert standard_headers(call_with(headers)) == {
        "Cache-Control": "no-cache", "Content-Disposition": "inline", "Content-Encoding": "gzip",
        "Content-Language": "zh", "Expires": "not a date", "x-oss-server-side-encryption": "KMS",
        "x-oss-server-side-data-encryption": "SM4"}
    assert standard_headers(call_with({})) == {}


@pytest.mark.parametrize("headers,status,code", [
    ({"x-oss-object-acl": "public-read"}, 501, "NotImplemented"),
    ({"x-oss-object-acl": "Private"}, 400, "InvalidArgument"),
    ({"x-oss-server-side-encryption": "KMS", "x-oss-server-side-encryption-key-id": "k"}, 501, "NotImplemented"),
    ({"x-oss-server-side-encryption": "aes256"}, 400, "InvalidEncryptionAlgorithmError"),
    ({"x-oss-server-side-encryption": "AES256", "x-oss-server-side-encryption-key-id": "k"}, 400,
     "InvalidArgument"),
    ({"x-oss-server-side-data-encryption": "SM4"}, 400, "InvalidArgument"),
    ({"x-oss-server-side-encryption": "KMS", "x-oss-server-side-data-encryption": "AES"}, 400, "InvalidArgument"),
])
def test_refusals(headers: dict[str, str], status: int, code: str) -> None:
    err = refusal(headers)
    assert (err.status, err.code) == (status, code)


def test_default_acl_is_accepted() -> None:
    assert standard_headers(call_with({"x-oss-object-acl": "default"})) == {}


def test_copied_headers() -> None:
    source = {"Cache-Control": "a", "x-oss-server-side-encryption": "AES256"}
    assert copied_headers(call_with({"Cache-Control": "b"}), source, replace=False) == {"Cache-Control": "a"}
    assert copied_headers(call_with({"Cache-Control": "b"}), source, replace=True) == {"Cache-Control": "b"}
    assert copied_headers(call_with({"x-oss-server-side-encryption": "SM4"}), source, replace=False) == {
        "Cache-Control": "a", "x-oss-server-side-encryption": "SM4"}
    assert encryption_headers(source) == {"x-oss-server-side-encryption": "AES256"}


def test_object_headers_include_stored_headers() -> None:
    headers = object_headers(meta(headers={"Cache-Control": "no-cache", "x-oss-server-side-encryption": "SM4"}))
    assert (headers["Cache-Control"], headers["x-oss-server-side-encryption"]) == ("no-cache", "SM4")


def test_metadata_written_before_headers_still_loads(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.create_bucket(B)
    pending = store.begin_put(B, "k")
    pending.write(b"data")
    written = pending.commit("text/plain", {}, headers={"Cache-Control": "x"})
    assert store.head(B, "k").headers == {"Cache-Control": "x"}
    old = asdict(written)
    del old["headers"]
    store._meta_path(B, "k").write_text(json.dumps(old))
    assert store.head(B, "k") == ObjectMeta(**old)
    assert store.head(B, "k").headers == {}


@pytest.mark.parametrize("value,accepted", [
    ("gzip", True), ("gzip, deflate, br", True), ("GZIP", True), ("x-gzip", True), ("*", True),
    ("gzip;q=0", False), ("gzip; q=0.0, *", False), ("identity", False), ("", False), ("deflate", False),
    ("*;q=0", False), ("br, gzip;q=0.5", True), ("gzip;q=bad", False),
])
def test_accepts_gzip(value: str, accepted: bool) -> None:
    assert accepts_gzip(value) is accepted


@pytest.mark.parametrize("changes,request_headers,overrides,expected", [
    ({}, {"Accept-Encoding": "gzip"}, {}, True),
    ({"content_type": "application/json; charset=utf-8"}, {"Accept-Encoding": "gzip"}, {}, True),
    ({"size": 1023}, {"Accept-Encoding": "gzip"}, {}, False),
    ({"size": 1024}, {"Accept-Encoding": "gzip"}, {}, True),
    ({"content_type": "image/jpeg"}, {"Accept-Encoding": "gzip"}, {}, False),
    ({"headers": {"Content-Encoding": "br"}}, {"Accept-Encoding": "gzip"}, {}, False),
    ({}, {"Accept-Encoding": "gzip", "Range": "bytes=0-1"}, {}, False),
    ({}, {"Accept-Encoding": "gzip"}, {"Content-Encoding": "identity"}, False),
    ({}, {}, {}, False),
])
def test_should_gzip(changes: dict[str, object], request_headers: dict[str, str], overrides: dict[str, str],
                     expected: bool) -> None:
    call = Call(make_mocked_request("GET", "/k", headers=request_headers), "RID", B, "k")
    assert should_gzip(call, meta(**changes), overrides) is expected
