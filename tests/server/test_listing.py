"""ListObjects paging over the store's key walk (worker/server/listing.py)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from worker.server.errors import OSSError
from worker.server.listing import (
    DEFAULT_MAX_KEYS,
    MAX_KEYS_LIMIT,
    ListPage,
    decode_token,
    encode_token,
    list_page,
    parse_max_keys,
)
from worker.server.storage import LocalStore

B = "bkt"
KEYS = [
    "a-1", "a-2", "a-b/c", "a/x", "a/y-z", "a/y/", "b", "c-", "c/d-e/f", "d/", "d/e", "z",
    "图片/1-a.jpg", "图片/2.jpg",
]
PREFIXES = ["", "a", "a/", "a/y", "c/", "d/", "图片/", "nothing"]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> LocalStore:
    root: Path = tmp_path_factory.mktemp("listing-root")
    s = LocalStore(root)
    s.create_bucket(B)
    for key in KEYS:
        pending = s.begin_put(B, key)
        if not key.endswith("/"):
            pending.write(key.encode())
        pending.commit(None, {})
    return s


def _expected(prefix: str, delimiter: str) -> list[str]:
    """The full listing as one sequence: keys and common prefixes in order (prefixes end in the delimiter)."""
    out: list[str] = []
    for key in sorted(KEYS, key=lambda k: k.encode("utf-8")):
        if not key.startswith(prefix):
            continue
        at = key.find(delimiter, len(prefix)) if delimiter else -1
        item = key if at < 0 else key[: at + len(delimiter)]
        if not out or out[-1] != item:
            out.append(item)
    return out


def _items(page: ListPage) -> list[str]:
    return sorted([k for k, _ in page.entries] + page.common_prefixes, key=lambda k: k.encode("utf-8"))


def _page(store: LocalStore, prefix: str = "", delimiter: str = "", start_after: str = "",
          max_keys: int = 1000) -> ListPage:
    return list_page(store, B, prefix=prefix, delimiter=delimiter, start_after=start_after,
                     max_keys=max_keys)


def _chain(store: LocalStore, prefix: str, delimiter: str, size: int, via_token: bool) -> list[str]:
    items: list[str] = []
    start_after = ""
    for _ in range(len(KEYS) + 2):
        page = _page(store, prefix, delimiter, start_after, size)
        assert page.count <= size
        items += _items(page)
        if not page.truncated:
            assert page.next_marker == ""
            return items
        assert page.count == size
        assert page.next_marker == _items(page)[-1]
        start_after = decode_token(encode_token(page.next_marker)) if via_token else page.next_marker
    raise AssertionError("the listing never ended")


def test_full_listing_in_one_page(store: LocalStore) -> None:
    page = _page(store, delimiter="/")
    assert [k for k, _ in page.entries] == ["a-1", "a-2", "b", "c-", "z"]
    assert page.common_prefixes == ["a-b/", "a/", "c/", "d/", "图片/"]
    assert (page.truncated, page.next_marker, page.count) == (False, "", 10)
    meta = dict(page.entries)["a-1"]
    assert (meta.size, meta.etag) == (3, store.head(B, "a-1").etag)
    page = _page(store, prefix="a/", delimiter="/")
    assert [k for k, _ in page.entries] == ["a/x", "a/y-z"]
    assert page.common_prefixes == ["a/y/"]
    page = _page(store, prefix="d/", delimiter="/")
    assert [k for k, _ in page.entries] == ["d/", "d/e"]  # the marker named by the prefix is listed
    page = _page(store, delimiter="-")
    assert [k for k, _ in page.entries] == ["a/x", "a/y/", "b", "d/", "d/e", "z", "图片/2.jpg"]
    assert page.common_prefixes == ["a-", "a/y-", "c-", "c/d-", "图片/1-"]
    page = _page(store)
    assert [k for k, _ in page.entries] == sorted(KEYS, key=lambda k: k.encode("utf-8"))
    assert page.common_prefixes == []


@pytest.mark.parametrize("delimiter", ["", "/", "-"])
@pytest.mark.parametrize("prefix", PREFIXES)
def test_one_page_matches_the_oracle(store: LocalStore, prefix: str, delimiter: str) -> None:
    assert _items(_page(store, prefix, delimiter)) == _expected(prefix, delimiter)


def test_max_keys_counts_keys_and_common_prefixes(store: LocalStore) -> None:
    page = _page(store, delimiter="/", max_keys=3)
    assert [k for k, _ in page.entries] == ["a-1", "a-2"]
    assert page.common_prefixes == ["a-b/"]
    assert (page.count, page.truncated, page.next_marker) == (3, True, "a-b/")
    page = _page(store, delimiter="/", max_keys=4)
    assert page.common_prefixes == ["a-b/", "a/"]
    assert (page.count, page.next_marker) == (4, "a/")
    page = _page(store, delimiter="/", max_keys=10)  # exactly all of it: not truncated
    assert (page.count, page.truncated, page.next_marker) == (10, False, "")


def test_max_keys_zero_is_an_empty_page(store: LocalStore) -> None:
    page = _page(store, max_keys=0)
    assert (page.entries, page.common_prefixes, page.truncated, page.next_marker) == ([], [], False, "")


def test_start_after_resumes_after_a_key(store: LocalStore) -> None:
    page = _page(store, start_after="b", max_keys=2)
    assert [k for k, _ in page.entries] == ["c-", "c/d-e/f"]
    assert (page.truncated, page.next_marker) == (True, "c/d-e/f")
    page = _page(store, start_after="z", delimiter="/")
    assert page.common_prefixes == ["图片/"]
    assert _page(store, start_after="\U0010ffff").count == 0


@pytest.mark.parametrize("via_token", [False, True], ids=["marker", "token"])
@pytest.mark.parametrize("prefix", PREFIXES)
def test_pages_chain_to_the_full_listing_without_delimiter(store: LocalStore, prefix: str,
                                                            via_token: bool) -> None:
    for size in range(1, 8):
        assert _chain(store, prefix, "", size, via_token) == _expected(prefix, ""), size


@pytest.mark.parametrize("delimiter", ["/", "-"])
def test_pages_chain_to_the_full_listing_with_delimiter(store: LocalStore, delimiter: str) -> None:
    for via_token in (False, True):
        for prefix in PREFIXES:
            for size in range(1, 8):
                assert _chain(store, prefix, delimiter, size, via_token) == _expected(prefix, delimiter)


def test_marker_equal_to_a_common_prefix_skips_that_prefix(store: LocalStore) -> None:
    page = _page(store, delimiter="/", max_keys=3)
    assert page.next_marker == "a-b/"
    page = _page(store, delimiter="/", start_after="a-b/", max_keys=3)
    assert _items(page) == ["a/", "b", "c-"]
    page = _page(store, delimiter="-", start_after="a-", max_keys=2)
    assert _items(page) == ["a/x", "a/y-"]
    # without a delimiter the same marker is just a key position
    assert _items(_page(store, start_after="a-b/", max_keys=1)) == ["a-b/c"]


def test_key_deleted_while_listing_is_left_out(store: LocalStore, monkeypatch: pytest.MonkeyPatch) -> None:
    original = store.head

    def head(bucket: str, key: str):
        if key == "a-2":
            raise OSSError.no_such_key(key)
        return original(bucket, key)

    monkeypatch.setattr(store, "head", head)
    page = _page(store, max_keys=3)
    assert [k for k, _ in page.entries] == ["a-1", "a-b/c", "a/x"]


@pytest.mark.parametrize("raw, expected", [
    (None, DEFAULT_MAX_KEYS), ("", 100), ("0", 0), ("1", 1), ("7", 7), ("999", 999), ("1000", 1000),
])
def test_parse_max_keys(raw: str | None, expected: int) -> None:
    assert MAX_KEYS_LIMIT == 1000
    assert parse_max_keys(raw) == expected


@pytest.mark.parametrize("raw", [
    "1001", "-1", "x", "1.5", "1e3", "99999999999999999999", "0x10", "ten",
    "1_000", " 10", "١٠",  # underscores, spaces and non-ASCII digits are not integers here
])
def test_parse_max_keys_refuses(raw: str) -> None:
    with pytest.raises(OSSError) as info:
        parse_max_keys(raw)
    err = info.value
    assert (err.status, err.code) == (400, "InvalidArgument")
    assert err.message == "max-keys should be an integer between 0 and 1000."
    assert err.extra == {"ArgumentName": "max-keys", "ArgumentValue": raw[:50]}


def test_parse_max_keys_truncates_the_echoed_value() -> None:
    with pytest.raises(OSSError) as info:
        parse_max_keys("9" * 80)
    assert info.value.extra["ArgumentValue"] == "9" * 50


@pytest.mark.parametrize("marker", ["", "a", "a/b c+d", "图片/猫.jpg", "😀/x", "a" * 1023, "?&=/"])
def test_token_round_trip(marker: str) -> None:
    token = encode_token(marker)
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=")
    assert decode_token(token) == marker


def test_token_examples() -> None:
    assert encode_token("a/b") == "YS9i"
    assert encode_token("图") == "5Zu-"  # URL-safe alphabet: '-' where standard base64 has '+'


@pytest.mark.parametrize("token", [
    "abc",                                            # bad padding
    "é",                                              # not ASCII
    base64.urlsafe_b64encode(b"\xff\xfe").decode(),   # not UTF-8
    "****",                                           # not the alphabet: must not restart the listing
    "YS9i!",
])
def test_garbage_token_is_invalid_argument(token: str) -> None:
    with pytest.raises(OSSError) as info:
        decode_token(token)
    err = info.value
    assert (err.status, err.code) == (400, "InvalidArgument")
    assert err.message == "The continuation token provided is incorrect."
    assert err.extra == {"ArgumentName": "continuation-token"}
