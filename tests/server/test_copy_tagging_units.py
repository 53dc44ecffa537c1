"""CopyObject, object tagging and storage classes below the HTTP layer: the parsers and rules
(worker/server/tagging.py, copy_object.py, object_attrs.py, preconditions.py) and what the store
keeps (worker/server/storage.py). The same behaviour through the official SDKs is in
tests/integration/test_server_copy_tagging.py."""

from __future__ import annotations

import json
import time
from email.utils import formatdate
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from aiohttp.test_utils import make_mocked_request

from worker.server.call import Call
from worker.server.copy_object import parse_copy_source
from worker.server.errors import OSSError
from worker.server.listing import ListPage
from worker.server.object_attrs import object_headers, require_readable, storage_class
from worker.server.preconditions import COPY_SOURCE_HEADERS, GET_HEADERS, precondition
from worker.server.storage import LocalStore, ObjectMeta
from worker.server.tagging import parse_tagging_header, parse_tagging_xml, tagging_xml, validate_tags
from worker.server.xmlbody import list_objects_v1, list_objects_v2

B = "bkt"


def oss_error(fn, *args) -> OSSError:
    with pytest.raises(OSSError) as excinfo:
        fn(*args)
    return excinfo.value


def call_with(headers: dict[str, str]) -> Call:
    return Call(make_mocked_request("PUT", "/k", headers=headers), "RID", B, "k")


@pytest.fixture()
def store(tmp_path: Path) -> LocalStore:
    root = tmp_path / "root"
    root.mkdir()
    s = LocalStore(root)
    s.create_bucket(B)
    return s


def put(store: LocalStore, key: str, data: bytes, **kwargs) -> ObjectMeta:
    pending = store.begin_put(B, key)
    pending.write(data)
    return pending.commit(None, {}, **kwargs)


# -- x-oss-tagging header ------------------------------------------------------------------------

@pytest.mark.parametrize(("header", "tags"), [
    ("k1=v1&k2=v2", {"k1": "v1", "k2": "v2"}),
    ("k%201=a%2Fb&k2", {"k 1": "a/b", "k2": ""}),  # percent-decoded; a bare key has an empty value
    ("a+b=c+d", {"a+b": "c+d"}),  # '+' is a literal plus (an allowed character), not a space
    ("k=&&x=1&", {"k": "", "x": "1"}),  # empty items are skipped
    ("", {}),
])
def test_tagging_header_parses(header: str, tags: dict[str, str]) -> None:
    assert parse_tagging_header(header) == tags


@pytest.mark.parametrize("header", ["aa=bb=cc", "k=%FF", "%C3=v"])
def test_tagging_header_not_key_value_is_invalid_argument(header: str) -> None:
    err = oss_error(parse_tagging_header, header)
    assert (err.status, err.code, err.ec) == (400, "InvalidArgument", "0010-00000219")


def test_tagging_header_duplicate_key_is_invalid_tag() -> None:
    err = oss_error(parse_tagging_header, "a=1&a=2")
    assert (err.status, err.code, err.ec) == (400, "InvalidTag", "0010-00000210")


# -- the tag rules ---------------------------------------------------------------------------------

def test_ten_tags_pass_eleven_are_bad_request() -> None:
    ten = [(f"k{i}", str(i)) for i in range(10)]
    assert validate_tags(ten) == dict(ten)
    err = oss_error(validate_tags, [*ten, ("k10", "10")])
    assert (err.status, err.code, err.message) == (400, "BadRequest", "Object tags cannot be greater than 10")


def test_key_and_value_lengths_at_and_past_the_limits() -> None:
    assert validate_tags([("k" * 128, "v" * 256), ("e", "")]) == {"k" * 128: "v" * 256, "e": ""}
    for pairs in ([("k" * 129, "v")], [("k", "v" * 257)], [("", "v")]):
        err = oss_error(validate_tags, pairs)
        assert (err.status, err.code) == (400, "InvalidTag"), pairs


@pytest.mark.parametrize("bad", ["a*b", "a,b", "a;b", "猫", "a\tb", "a@b"])
def test_characters_outside_the_allowed_set_are_invalid_tag(bad: str) -> None:
    for pairs in ([(bad, "v")], [("k", bad)]):
        err = oss_error(validate_tags, pairs)
        assert (err.status, err.code, err.ec) == (400, "InvalidTag", "0010-00000216")


def test_allowed_characters_and_case_sensitive_keys() -> None:
    text = "Az09 +-=._:/"
    assert validate_tags([(text, text), ("K", "1"), ("k", "2")]) == {text: text, "K": "1", "k": "2"}


# -- PutObjectTagging body -----------------------------------------------------------------------

def test_tagging_xml_round_trips() -> None:
    tags = {"a": "1", "x y": "", "p/q:r": "s=t+u"}
    body = tagging_xml(tags)
    assert ET.fromstring(body).tag == "Tagging"
    assert list(parse_tagging_xml(body).items()) == list(tags.items())  # order kept
    assert parse_tagging_xml(tagging_xml({})) == {}


def test_tagging_xml_without_value_element_is_an_empty_value() -> None:
    assert parse_tagging_xml(b"<Tagging><TagSet><Tag><Key>k</Key></Tag></TagSet></Tagging>") == {"k": ""}


@pytest.mark.parametrize("body", [
    b"", b"not xml", b"<Tagging><TagSet>", b"<Other><TagSet/></Other>", b"<Tagging/>",
    b'<?xml version="1.0" encoding="x-unknown"?><Tagging/>',
])
def test_bad_tagging_body_is_malformed_xml(body: bytes) -> None:
    err = oss_error(parse_tagging_xml, body)
    assert (err.status, err.code) == (400, "MalformedXML")


def test_tagging_body_rules_apply() -> None:
    eleven = "".join(f"<Tag><Key>k{i}</Key><Value>v</Value></Tag>" for i in range(11))
    assert oss_error(parse_tagging_xml, f"<Tagging><TagSet>{eleven}</TagSet></Tagging>".encode()).code == "BadRequest"
    twice = "<Tag><Key>a</Key><Value>1</Value></Tag><Tag><Key>a</Key><Value>2</Value></Tag>"
    err = oss_error(parse_tagging_xml, f"<Tagging><TagSet>{twice}</TagSet></Tagging>".encode())
    assert (err.code, err.ec) == ("InvalidTag", "0010-00000210")


# -- x-oss-copy-source ---------------------------------------------------------------------------

@pytest.mark.parametrize(("header", "want"), [
    ("/src/a/b.jpg", ("src", "a/b.jpg")),
    ("/src/a%2Fb%20c%2B.jpg", ("src", "a/b c+.jpg")),
    ("src/%E5%9B%BE.jpg", ("src", "图.jpg")),  # the leading slash is optional
    ("/src/what%3F.jpg", ("src", "what?.jpg")),  # an encoded '?' is part of the key
    ("/src/k?versionId=null", ("src", "k")),
])
def test_copy_source_parses(header: str, want: tuple[str, str]) -> None:
    assert parse_copy_source(header) == want


@pytest.mark.parametrize("header", ["", "/", "/src", "/src/", "/src/%FF", "/src/k?versionId=CAEQ", "/src/k?x=1"])
def test_bad_copy_source_is_invalid_argument(header: str) -> None:
    err = oss_error(parse_copy_source, header)
    assert (err.status, err.code) == (400, "InvalidArgument")


# -- storage class ---------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["Standard", "IA", "Archive", "ColdArchive", "DeepColdArchive"])
def test_storage_classes_are_accepted(value: str) -> None:
    assert storage_class(call_with({"x-oss-storage-class": value})) == value


@pytest.mark.parametrize("value", ["standard", "GLACIER", "Cold Archive", "Archived"])
def test_unknown_storage_class_is_invalid_argument(value: str) -> None:
    err = oss_error(storage_class, call_with({"x-oss-storage-class": value}))
    assert (err.status, err.code) == (400, "InvalidArgument")


def test_storage_class_defaults_to_standard() -> None:
    assert storage_class(call_with({})) == "Standard"


def test_archived_classes_are_unreadable_others_readable() -> None:
    meta = ObjectMeta(size=1, etag='"E"', crc64="0", content_type="x/y", mtime_ns=0, ino=0)
    for readable in ("Standard", "IA"):
        require_readable(ObjectMeta(**{**meta.__dict__, "storage_class": readable}))
    for archived in ("Archive", "ColdArchive", "DeepColdArchive"):
        err = oss_error(require_readable, ObjectMeta(**{**meta.__dict__, "storage_class": archived}))
        assert (err.status, err.code, err.message) == (
            403, "InvalidObjectState", "The operation is not valid for the object's state")


def test_object_headers_carry_class_and_tag_count_only_when_tagged() -> None:
    meta = ObjectMeta(size=1, etag='"E"', crc64="0", content_type="x/y", mtime_ns=0, ino=0)
    assert object_headers(meta)["x-oss-storage-class"] == "Standard"
    assert "x-oss-tagging-count" not in object_headers(meta)
    tagged = ObjectMeta(**{**meta.__dict__, "storage_class": "IA", "tags": {"a": "1", "b": ""}})
    headers = object_headers(tagged)
    assert (headers["x-oss-storage-class"], headers["x-oss-tagging-count"]) == ("IA", "2")


def test_listings_report_each_objects_storage_class() -> None:
    base = dict(size=1, etag='"E"', crc64="0", content_type="x/y", mtime_ns=0, ino=0)
    page = ListPage(entries=[("a", ObjectMeta(**base)), ("b", ObjectMeta(**base, storage_class="ColdArchive"))])
    v1 = list_objects_v1(B, page, prefix="", marker="", max_keys=10, delimiter="", encoding_type="")
    v2 = list_objects_v2(B, page, prefix="", start_after="", continuation_token="", max_keys=10, delimiter="",
                         encoding_type="", fetch_owner=False)
    for body in (v1, v2):
        assert [e.text for e in ET.fromstring(body).iter("StorageClass")] == ["Standard", "ColdArchive"]


# -- preconditions (CopyObject's names) --------------------------------------------------------------

def test_copy_source_preconditions_read_their_own_headers() -> None:
    meta = ObjectMeta(size=1, etag='"ABC"', crc64="0", content_type="x/y", mtime_ns=1_000_000_000 * 1_000_000,
                      ino=0)
    past, future = formatdate(10, usegmt=True), formatdate(time.time() + 3600, usegmt=True)
    cases = [
        ({"x-oss-copy-source-if-match": '"ABC"'}, None),
        ({"x-oss-copy-source-if-match": '"abc"'}, None),  # ETags compare case-insensitively (hex)
        ({"x-oss-copy-source-if-match": '"XYZ"'}, 412),
        ({"x-oss-copy-source-if-none-match": '"ABC"'}, 304),
        ({"x-oss-copy-source-if-none-match": '"XYZ"'}, None),
        ({"x-oss-copy-source-if-unmodified-since": past}, 412),
        ({"x-oss-copy-source-if-unmodified-since": future}, None),
        ({"x-oss-copy-source-if-modified-since": future}, 304),
        ({"x-oss-copy-source-if-modified-since": past}, None),
        ({"If-Match": '"XYZ"'}, None),  # GetObject's header does not guard a copy
    ]
    for headers, want in cases:
        assert precondition(call_with(headers), meta, COPY_SOURCE_HEADERS) == want, headers
    assert precondition(call_with({"If-Match": '"XYZ"'}), meta, GET_HEADERS) == 412


# -- the store ---------------------------------------------------------------------------------------

def test_old_metadata_files_without_the_new_fields_still_load(store: LocalStore) -> None:
    """Metadata written before storage classes and tags existed loads with the defaults, and is
    used as it stands (not recomputed: the Content-Type given at upload survives)."""
    pending = store.begin_put(B, "old.jpg")
    pending.write(b"old bytes")
    meta = pending.commit("image/x-custom", {"camera": "X100"})
    meta_path = store._meta_path(B, "old.jpg")
    doc = json.loads(meta_path.read_text())
    for name in ("storage_class", "tags"):
        del doc[name]
    meta_path.write_text(json.dumps(doc))
    loaded = store.head(B, "old.jpg")
    assert (loaded.storage_class, loaded.tags) == ("Standard", {})
    assert (loaded.content_type, loaded.user_meta, loaded.etag) == ("image/x-custom", {"camera": "X100"}, meta.etag)


def test_class_and_tags_are_stored_and_a_new_put_replaces_them(store: LocalStore) -> None:
    put(store, "k", b"one", storage_class="IA", tags={"a": "1"})
    meta = store.head(B, "k")
    assert (meta.storage_class, meta.tags) == ("IA", {"a": "1"})
    assert json.loads(store._meta_path(B, "k").read_text())["tags"] == {"a": "1"}
    put(store, "k", b"two")
    assert (store.head(B, "k").storage_class, store.head(B, "k").tags) == ("Standard", {})


def test_set_tags_changes_only_the_tags(store: LocalStore) -> None:
    before = put(store, "k", b"bytes", storage_class="IA", tags={"a": "1"})
    after = store.set_tags(B, "k", {"b": "2", "c": ""})
    assert after.tags == {"b": "2", "c": ""}
    assert store.head(B, "k") == after
    assert (after.etag, after.mtime_ns, after.ino, after.size, after.storage_class) == (
        before.etag, before.mtime_ns, before.ino, before.size, "IA")
    assert store.set_tags(B, "k", {}).tags == {}
    with pytest.raises(OSSError) as excinfo:
        store.set_tags(B, "missing", {"a": "1"})
    assert excinfo.value.code == "NoSuchKey"
