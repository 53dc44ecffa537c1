"""LocalStore: plain files, lazy metadata, atomic publish (worker/server/storage.py), ordered key walk
(worker/server/key_walk.py)."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

import pytest

from worker.server import storage as storage_module
from worker.server.errors import OSSError
from worker.server.key_walk import SkipCursor
from worker.server.keys import RESERVED_DIR
from worker.server.storage import LocalStore, ObjectMeta

B = "bkt"
CHECK_CRC = str(0x995DC9BBDF1939FA)  # CRC-64/XZ of b"123456789"
CHECK_ETAG = '"25F9E794323B453885F5181F1B624D0B"'  # MD5 of b"123456789"
EMPTY_ETAG = '"D41D8CD98F00B204E9800998ECF8427E"'


def _etag(data: bytes) -> str:
    return '"' + hashlib.md5(data).hexdigest().upper() + '"'


@pytest.fixture()
def store(tmp_path: Path) -> LocalStore:
    root = tmp_path / "root"
    root.mkdir()
    s = LocalStore(root)
    assert s.create_bucket(B) is True
    return s


@pytest.fixture()
def bucket_dir(store: LocalStore) -> Path:
    return store.root / B


def put(store: LocalStore, key: str, data: bytes = b"", *, bucket: str = B,
        content_type: str | None = None, user_meta: dict[str, str] | None = None,
        content_md5: bytes | None = None, forbid_overwrite: bool = False) -> ObjectMeta:
    pending = store.begin_put(bucket, key)
    for i in range(0, len(data), 65536):
        pending.write(data[i:i + 65536])
    return pending.commit(content_type, user_meta or {}, content_md5, forbid_overwrite)


def read(store: LocalStore, key: str, bucket: str = B) -> bytes:
    with store.open(bucket, key) as handle:
        return handle.read()


def raises(status: int, code: str, ec: str | None = "any") -> _Raises:
    return _Raises(status, code, ec)


class _Raises:
    """``with raises(409, "FileAlreadyExists"):`` — an OSSError with exactly that status and code."""

    def __init__(self, status: int, code: str, ec: str | None) -> None:
        self.status, self.code, self.ec = status, code, ec
        self.error: OSSError | None = None

    def __enter__(self) -> _Raises:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        assert exc_type is not None, f"expected {self.status} {self.code}, nothing was raised"
        assert isinstance(exc, OSSError), f"expected OSSError, got {exc_type.__name__}: {exc}"
        assert (exc.status, exc.code) == (self.status, self.code), str(exc)
        if self.ec != "any":
            assert exc.ec == self.ec
        self.error = exc
        return True


def tmp_files(bucket_dir: Path) -> list[str]:
    tmp = bucket_dir / RESERVED_DIR / "tmp"
    return sorted(os.listdir(tmp)) if tmp.is_dir() else []


def keys(store: LocalStore, prefix: str = "", start_after: str = "",
         cursor: SkipCursor | None = None) -> list[str]:
    return list(store.iter_keys(B, prefix=prefix, start_after=start_after, cursor=cursor))


# -- buckets ---------------------------------------------------------------------------------

def test_root_must_be_a_directory(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        LocalStore(tmp_path / "missing")


def test_create_and_list_buckets(store: LocalStore) -> None:
    assert store.create_bucket(B) is False
    assert store.create_bucket("second-bucket") is True
    (store.root / "Not_A_Bucket").mkdir()
    (store.root / "file-not-dir").write_bytes(b"")
    names = [name for name, _ in store.list_buckets()]
    assert names == [B, "second-bucket"]
    created = json.loads((store.root / B / RESERVED_DIR / "bucket.json").read_text())["created"]
    assert dict(store.list_buckets())[B] == created
    (store.root / "handmade").mkdir()  # no bucket.json: falls back to the directory's mtime
    assert dict(store.list_buckets())["handmade"] == (store.root / "handmade").stat().st_mtime


def test_bucket_errors(store: LocalStore) -> None:
    with raises(400, "InvalidBucketName", "0015-00000001"):
        store.create_bucket("Bad_Name")
    with raises(400, "InvalidBucketName"):
        store.open("ab", "k")
    for call in (lambda: store.open("nobucket", "k"), lambda: store.begin_put("nobucket", "k"),
                 lambda: store.delete("nobucket", "k"), lambda: list(store.iter_keys("nobucket")),
                 lambda: store.head("nobucket", "k")):
        with raises(404, "NoSuchBucket", "0015-00000101") as ctx:
            call()
        assert ctx.error.extra == {"BucketName": "nobucket"}


def test_symlinked_bucket_directory_is_served(store: LocalStore, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "cat.jpg").write_bytes(b"123456789")
    os.symlink(photos, store.root / "linked")
    assert read(store, "cat.jpg", bucket="linked") == b"123456789"
    assert list(store.iter_keys("linked")) == ["cat.jpg"]


# -- put / open round trip -------------------------------------------------------------------

def test_put_open_round_trip(store: LocalStore, bucket_dir: Path) -> None:
    meta = put(store, "photos/cat.jpg", b"123456789", user_meta={"owner": "me"})
    assert (meta.size, meta.etag, meta.crc64) == (9, CHECK_ETAG, CHECK_CRC)
    assert meta.content_type == "image/jpeg"
    assert meta.user_meta == {"owner": "me"}
    assert (bucket_dir / "photos" / "cat.jpg").read_bytes() == b"123456789"
    st = os.stat(bucket_dir / "photos" / "cat.jpg")
    assert (meta.ino, meta.mtime_ns) == (st.st_ino, st.st_mtime_ns)
    assert meta.last_modified == st.st_mtime_ns / 1e9
    with store.open(B, "photos/cat.jpg") as handle:
        assert handle.key == "photos/cat.jpg"
        assert handle.meta == meta
        assert handle.read() == b"123456789"
        assert handle.read(2, 3) == b"345"
        assert handle.read(7) == b"89"
        assert list(handle.iter_chunks()) == [b"123456789"]
        assert list(handle.iter_chunks(4, 2)) == [b"56"]
    assert store.head(B, "photos/cat.jpg") == meta
    assert tmp_files(bucket_dir) == []


def test_content_type_explicit_and_guessed(store: LocalStore) -> None:
    assert put(store, "a.png", b"x").content_type == "image/png"
    assert put(store, "noext", b"x").content_type == "application/octet-stream"
    assert put(store, "b.png", b"x", content_type="text/plain").content_type == "text/plain"
    assert store.head(B, "b.png").content_type == "text/plain"


def test_large_object_streams_in_chunks(store: LocalStore) -> None:
    data = os.urandom(2 * (1 << 20) + 123)
    meta = put(store, "big.bin", data)
    assert meta.etag == _etag(data)
    with store.open(B, "big.bin") as handle:
        chunks = list(handle.iter_chunks())
        assert [len(c) for c in chunks] == [1 << 20, 1 << 20, 123]
        assert b"".join(chunks) == data
        assert b"".join(handle.iter_chunks(5, 1 << 20)) == data[5:5 + (1 << 20)]


def test_overwrite_via_put(store: LocalStore) -> None:
    put(store, "k", b"old", user_meta={"v": "1"})
    meta = put(store, "k", b"new!", user_meta={"v": "2"})
    assert read(store, "k") == b"new!"
    assert store.head(B, "k") == meta
    assert meta.user_meta == {"v": "2"}


def test_open_missing(store: LocalStore) -> None:
    put(store, "file", b"x")
    for key in ("missing", "file/below", "dir/x/y", "missing/"):
        with raises(404, "NoSuchKey", "0026-00000001") as ctx:
            store.open(B, key)
        assert ctx.error.extra == {"Key": key}
    put(store, "d/child", b"x")
    with raises(404, "NoSuchKey"):
        store.open(B, "d")  # a directory is not an object
    with raises(404, "NoSuchKey"):
        store.open(B, "d/")  # a directory without a marker is not an object either


@pytest.mark.parametrize("key", ["", "../x", "a//b", "/a", "a\x00", ".picscore/meta/x.json",
                                 "x" * 256])
def test_invalid_keys_are_refused_everywhere(store: LocalStore, key: str) -> None:
    for call in (lambda: store.open(B, key), lambda: store.begin_put(B, key),
                 lambda: store.delete(B, key), lambda: store.head(B, key)):
        with raises(400, "InvalidObjectName", "0016-00000005"):
            call()


# -- metadata computed lazily for files that arrive by hand ----------------------------------

def test_hand_dropped_file_gets_metadata_lazily_and_caches_it(store: LocalStore, bucket_dir: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    (bucket_dir / "holiday").mkdir()
    (bucket_dir / "holiday" / "beach.jpg").write_bytes(b"123456789")
    meta_path = store._meta_path(B, "holiday/beach.jpg")
    assert not meta_path.exists()
    meta = store.head(B, "holiday/beach.jpg")
    st = os.stat(bucket_dir / "holiday" / "beach.jpg")
    assert meta == ObjectMeta(size=9, etag=CHECK_ETAG, crc64=CHECK_CRC, content_type="image/jpeg",
                              mtime_ns=st.st_mtime_ns, ino=st.st_ino, user_meta={})
    assert meta_path.is_file()
    assert ObjectMeta(**json.loads(meta_path.read_text())) == meta

    class NoDigest:
        def __init__(self) -> None:
            raise AssertionError("digest recomputed although the cached metadata describes the file")

    monkeypatch.setattr(storage_module, "ObjectDigest", NoDigest)
    assert store.head(B, "holiday/beach.jpg") == meta
    assert read(store, "holiday/beach.jpg") == b"123456789"
    assert keys(store) == ["holiday/beach.jpg"]


def test_overwrite_by_hand_is_detected(store: LocalStore, bucket_dir: Path) -> None:
    put(store, "k.jpg", b"123456789", content_type="image/x-test", user_meta={"a": "b"})
    path = bucket_dir / "k.jpg"
    path.write_bytes(b"a different length")  # in place: same inode, new size
    meta = store.head(B, "k.jpg")
    assert (meta.size, meta.etag) == (18, _etag(b"a different length"))
    assert meta.ino == os.stat(path).st_ino
    assert meta.content_type == "image/x-test" and meta.user_meta == {"a": "b"}  # kept
    # same size, new bytes: the mtime gives it away
    path.write_bytes(b"A DIFFERENT LENGTH")
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, meta.mtime_ns + 1_000_000))
    again = store.head(B, "k.jpg")
    assert again.etag == _etag(b"A DIFFERENT LENGTH")
    # replaced by another file (new inode), as a photo manager would
    other = bucket_dir / "other"
    other.write_bytes(b"123456789")
    os.replace(other, path)
    assert store.head(B, "k.jpg").etag == CHECK_ETAG


def test_corrupt_metadata_is_recomputed(store: LocalStore) -> None:
    put(store, "k", b"123456789")
    store._meta_path(B, "k").write_text("{not json")
    assert store.head(B, "k").etag == CHECK_ETAG
    store._meta_path(B, "k").write_text(json.dumps({"size": 9}))
    assert store.head(B, "k").crc64 == CHECK_CRC


def test_handle_opened_before_put_reads_old_bytes_and_old_etag(store: LocalStore) -> None:
    old = os.urandom(3 * (1 << 20) + 17)
    new = os.urandom(1 << 20)
    put(store, "photo.jpg", old)
    with store.open(B, "photo.jpg") as before:
        put(store, "photo.jpg", new)
        with store.open(B, "photo.jpg") as after:
            assert after.meta.etag == _etag(new)
            assert after.read() == new
        assert before.meta.etag == _etag(old)
        assert before.meta.size == len(old)
        assert b"".join(before.iter_chunks()) == old
        assert before.read(len(old) - 5) == old[-5:]
    assert store.head(B, "photo.jpg").etag == _etag(new)


def test_handle_opened_before_hand_replacement_keeps_old_bytes(store: LocalStore, bucket_dir: Path) -> None:
    put(store, "k", b"old bytes")
    with store.open(B, "k") as before:
        (bucket_dir / "swap").write_bytes(b"new")
        os.replace(bucket_dir / "swap", bucket_dir / "k")
        assert before.read() == b"old bytes"
        assert before.meta.etag == _etag(b"old bytes")
    assert store.head(B, "k").etag == _etag(b"new")


# -- conflicts between objects and prefixes --------------------------------------------------

def test_object_then_deeper_key_conflicts(store: LocalStore, bucket_dir: Path) -> None:
    put(store, "a", b"x")
    for key in ("a/b", "a/b/c"):
        with raises(409, "FileAlreadyExists") as ctx:
            put(store, key, b"y")
        assert ctx.error.message == ("The local store cannot hold this key: "
                                     "'a' is an object, not a prefix.")
        assert ctx.error.extra == {"Key": key}
    assert read(store, "a") == b"x"
    assert tmp_files(bucket_dir) == []


def test_prefix_then_object_conflicts(store: LocalStore) -> None:
    put(store, "a/b", b"x")
    with raises(409, "FileAlreadyExists") as ctx:
        put(store, "a", b"y")
    assert ctx.error.message == ("The local store cannot hold this key: "
                                 "other keys already use it as a prefix.")
    assert read(store, "a/b") == b"x"


def test_marker_and_object_of_the_same_name_conflict(store: LocalStore) -> None:
    put(store, "a", b"x")
    with raises(409, "FileAlreadyExists"):
        put(store, "a/")
    assert read(store, "a") == b"x"
    put(store, "m/")
    with raises(409, "FileAlreadyExists"):
        put(store, "m", b"y")
    assert store.head(B, "m/").size == 0


def test_conflict_appearing_during_upload_is_caught_at_commit(store: LocalStore, bucket_dir: Path) -> None:
    pending = store.begin_put(B, "a/b")
    pending.write(b"late")
    put(store, "a", b"first")
    with raises(409, "FileAlreadyExists"):
        pending.commit(None, {})
    assert read(store, "a") == b"first"
    assert tmp_files(bucket_dir) == []


def test_deleting_the_last_key_under_a_prefix_frees_the_name(store: LocalStore, bucket_dir: Path) -> None:
    put(store, "a/b/c", b"x")
    store.delete(B, "a/b/c")
    assert keys(store) == []
    put(store, "a", b"now an object")  # OSS allows it: no key uses "a/" any more
    assert read(store, "a") == b"now an object"
    put(store, "m/", b"")
    put(store, "m/x", b"x")
    store.delete(B, "m/x")
    assert keys(store) == ["a", "m/"]  # the marker keeps its directory


def test_keys_whose_metadata_names_would_collide(store: LocalStore) -> None:
    put(store, "a", b"1")
    put(store, "a.json/b", b"2")
    put(store, "c.json/d", b"3")
    put(store, "c", b"4")
    assert [read(store, k) for k in ("a", "a.json/b", "c.json/d", "c")] == [b"1", b"2", b"3", b"4"]
    assert store.head(B, "a").etag == _etag(b"1")
    assert store.head(B, "c").etag == _etag(b"4")


def test_longest_segment_key_can_be_put(store: LocalStore) -> None:
    key = "d/" + "x" * 255
    meta = put(store, key, b"123456789", user_meta={"m": "v"})
    assert store.head(B, key) == meta
    marker = "y" * 255 + "/"
    put(store, marker)
    assert keys(store) == [key, marker]


# -- directory markers -----------------------------------------------------------------------

def test_directory_marker(store: LocalStore, bucket_dir: Path) -> None:
    meta = put(store, "dir/", b"", user_meta={"k": "v"})
    assert (meta.size, meta.etag, meta.crc64) == (0, EMPTY_ETAG, "0")
    assert (bucket_dir / "dir").is_dir()
    with store.open(B, "dir/") as handle:
        assert handle.meta == meta
        assert handle.read() == b""
        assert list(handle.iter_chunks()) == []
    assert keys(store) == ["dir/"]
    put(store, "dir/x", b"x")
    assert keys(store) == ["dir/", "dir/x"]
    store.delete(B, "dir/")
    assert keys(store) == ["dir/x"]  # the marker goes, the keys under it stay
    with raises(404, "NoSuchKey"):
        store.open(B, "dir/")
    assert tmp_files(bucket_dir) == []


def test_a_marker_with_bytes_keeps_them_as_oss_does(store: LocalStore, bucket_dir: Path) -> None:
    """OSS takes bytes under a key ending in '/'; a directory cannot hold them, so the store
    keeps them beside the metadata, and deleting the marker deletes them."""
    put(store, "dir/", b"not empty")
    put(store, "dir/x", b"x")
    assert keys(store) == ["dir/", "dir/x"]
    with store.open(B, "dir/") as handle:
        assert (handle.read(), handle.meta.size) == (b"not empty", 9)
    put(store, "dir/", b"")  # overwritten empty: the old bytes go
    with store.open(B, "dir/") as handle:
        assert (handle.read(), handle.meta.size) == (b"", 0)
    put(store, "dir/", b"again")
    store.delete(B, "dir/")
    with raises(404, "NoSuchKey"):
        store.open(B, "dir/")
    assert keys(store) == ["dir/x"]
    assert not list((bucket_dir / ".picscore").rglob("*.data"))
    assert tmp_files(bucket_dir) == []


def test_marker_over_existing_prefix(store: LocalStore) -> None:
    put(store, "p/q", b"x")
    put(store, "p/")
    assert keys(store) == ["p/", "p/q"]


# -- Content-MD5, forbid-overwrite, abort ----------------------------------------------------

def test_content_md5_mismatch_publishes_nothing(store: LocalStore, bucket_dir: Path) -> None:
    wrong = hashlib.md5(b"something else").digest()
    with raises(400, "InvalidDigest", "0002-00000019") as ctx:
        put(store, "k", b"123456789", content_md5=wrong)
    assert ctx.error.message == "The Content-MD5 you specified did not match what we received."
    with raises(404, "NoSuchKey"):
        store.open(B, "k")
    assert not (bucket_dir / "k").exists()
    assert tmp_files(bucket_dir) == []
    assert keys(store) == []
    # an existing object is left untouched by a failed overwrite
    put(store, "k", b"old")
    with raises(400, "InvalidDigest"):
        put(store, "k", b"123456789", content_md5=wrong)
    assert read(store, "k") == b"old"


def test_content_md5_match(store: LocalStore) -> None:
    md5 = hashlib.md5(b"123456789").digest()
    assert put(store, "k", b"123456789", content_md5=md5).etag == CHECK_ETAG


def test_forbid_overwrite(store: LocalStore, bucket_dir: Path) -> None:
    put(store, "k", b"first", forbid_overwrite=True)
    with raises(409, "FileAlreadyExists", "0026-00000010") as ctx:
        put(store, "k", b"second", forbid_overwrite=True)
    assert ctx.error.message == "The object you specified already exists and can not be overwritten."
    assert ctx.error.extra == {"Key": "k"}
    assert read(store, "k") == b"first"
    assert tmp_files(bucket_dir) == []
    put(store, "k", b"third")  # without the flag it overwrites
    assert read(store, "k") == b"third"
    put(store, "m/", forbid_overwrite=True)
    with raises(409, "FileAlreadyExists", "0026-00000010"):
        put(store, "m/", forbid_overwrite=True)
    put(store, "p/q", b"x")
    put(store, "p/", forbid_overwrite=True)  # the directory exists, the marker did not


def test_abort_discards_the_upload(store: LocalStore, bucket_dir: Path) -> None:
    pending = store.begin_put(B, "k")
    pending.write(b"partial")
    assert len(tmp_files(bucket_dir)) == 1
    pending.abort()
    pending.abort()  # idempotent
    assert tmp_files(bucket_dir) == []
    with raises(404, "NoSuchKey"):
        store.open(B, "k")


# -- delete ----------------------------------------------------------------------------------

def test_delete(store: LocalStore, bucket_dir: Path) -> None:
    put(store, "a/b", b"x")
    store.delete(B, "a/b")
    with raises(404, "NoSuchKey"):
        store.open(B, "a/b")
    assert not store._meta_path(B, "a/b").exists()
    store.delete(B, "a/b")  # missing: silent, as on OSS
    store.delete(B, "never/was")
    store.delete(B, "never/")
    put(store, "f", b"x")
    store.delete(B, "f/below")  # below an object: silent, the object stays
    assert read(store, "f") == b"x"
    put(store, "d/x", b"x")
    store.delete(B, "d")  # a prefix is not an object: nothing happens
    assert read(store, "d/x") == b"x"


# -- key walk: order, prefix, start_after, pruning -------------------------------------------

TRICKY = [
    "a b", "a!", "a+c", "a-b", "a.txt", "a/", "a/x", "a/y/", "a/y/z", "a/y/z+", "a0",
    "b-", "b/c d/e", "é/1", "图片/狗.jpg", "图片/猫.jpg", "\uff46", "😀", "z/",
]


def _utf8_sorted(items: list[str]) -> list[str]:
    return sorted(items, key=lambda k: k.encode("utf-8"))


@pytest.fixture()
def tricky(store: LocalStore) -> LocalStore:
    for key in reversed(TRICKY):
        put(store, key, b"" if key.endswith("/") else key.encode())
    return store


def test_walk_is_in_utf8_byte_order(tricky: LocalStore) -> None:
    assert keys(tricky) == _utf8_sorted(TRICKY)
    # spelled out, so a wrong oracle cannot hide a wrong order
    assert keys(tricky) == [
        "a b", "a!", "a+c", "a-b", "a.txt", "a/", "a/x", "a/y/", "a/y/z", "a/y/z+", "a0", "b-",
        "b/c d/e", "z/", "é/1", "图片/狗.jpg", "图片/猫.jpg", "\uff46", "😀",
    ]


def _all_prefixes(items: list[str]) -> list[str]:
    out = {""}
    for key in items:
        out.update(key[:i] for i in range(1, len(key) + 1))
    return _utf8_sorted(list(out))


def test_prefix_and_start_after_match_a_filtered_sort(tricky: LocalStore) -> None:
    expected_all = _utf8_sorted(TRICKY)
    candidates = [*_all_prefixes(TRICKY), "a/yz", "a/x0", "a/y/zz", "b/c", "~", "\U0010ffff", "0"]
    for prefix in [*_all_prefixes(TRICKY), "nothing", "a/q", "图片/x"]:
        for start_after in candidates:
            expected = [k for k in expected_all if k.startswith(prefix) and k > start_after]
            assert keys(tricky, prefix, start_after) == expected, (prefix, start_after)


@pytest.mark.parametrize("start_after, expected_first", [
    ("", "a b"),
    ("a/x", "a/y/"),          # inside a subtree
    ("a/", "a/x"),            # equal to a directory prefix: its children follow
    ("a", "a b"),             # "a b" < "a!" < … < "a/": a space sorts first
    ("a.txt", "a/"),          # the directory (as "a/") comes right after "a.txt"
    ("a/y/z", "a/y/z+"),
    ("a/zzz", "a0"),          # after a whole subtree
    ("图片/", "图片/狗.jpg"),
])
def test_start_after_examples(tricky: LocalStore, start_after: str, expected_first: str) -> None:
    assert keys(tricky, start_after=start_after)[0] == expected_first


def test_start_after_beyond_everything(tricky: LocalStore) -> None:
    assert keys(tricky, start_after="\U0010ffff") == []
    assert keys(tricky, prefix="a/", start_after="a0") == []


def test_prefix_examples(tricky: LocalStore) -> None:
    assert keys(tricky, prefix="a/") == ["a/", "a/x", "a/y/", "a/y/z", "a/y/z+"]
    assert keys(tricky, prefix="a/y/z") == ["a/y/z", "a/y/z+"]
    assert keys(tricky, prefix="a") == [k for k in keys(tricky) if k.startswith("a")]
    assert keys(tricky, prefix="图片/") == ["图片/狗.jpg", "图片/猫.jpg"]
    assert keys(tricky, prefix="b/c d/") == ["b/c d/e"]
    assert keys(tricky, prefix="b/c d/", start_after="b/c d/e") == []


@pytest.mark.parametrize("prefix", [
    "x" * 300 + "/", "a\x00/", "a\n/", "../", "./", "a//", "/", "\\x/", "\ud800/",
])
def test_prefix_no_key_can_have_lists_nothing(tricky: LocalStore, prefix: str) -> None:
    assert keys(tricky, prefix) == []
    assert keys(tricky, prefix + "zzz") == []


class _ScanSpy:
    def __init__(self, store: LocalStore, monkeypatch: pytest.MonkeyPatch) -> None:
        self.scanned: list[str] = []
        original = store._walker._sorted_entries

        def spy(dir_path: Path, *args: object, **kwargs: object):
            self.scanned.append(os.path.relpath(dir_path, store.root / B))
            return original(dir_path, *args, **kwargs)

        monkeypatch.setattr(store._walker, "_sorted_entries", spy)


def test_walk_prunes_directories_before_start_after(tricky: LocalStore, monkeypatch: pytest.MonkeyPatch) -> None:
    spy = _ScanSpy(tricky, monkeypatch)
    assert keys(tricky, start_after="b") == ["b-", "b/c d/e", "z/", "é/1", "图片/狗.jpg", "图片/猫.jpg", "\uff46", "😀"]
    assert "a" not in spy.scanned and "a/y" not in spy.scanned
    spy.scanned.clear()
    assert keys(tricky, prefix="图片/") == ["图片/狗.jpg", "图片/猫.jpg"]
    assert spy.scanned == ["图片"]
    spy.scanned.clear()
    assert keys(tricky, prefix="a/y/z") == ["a/y/z", "a/y/z+"]
    assert spy.scanned == ["a/y"]


def test_skip_cursor_prunes_a_common_prefix(tricky: LocalStore, monkeypatch: pytest.MonkeyPatch) -> None:
    spy = _ScanSpy(tricky, monkeypatch)
    cursor = SkipCursor()
    assert not cursor.skips("anything")
    seen = []
    for key in tricky.iter_keys(B, cursor=cursor):
        seen.append(key)
        if key == "a.txt":
            cursor.skip_prefix = "a/"
    assert seen == ["a b", "a!", "a+c", "a-b", "a.txt", "a0", "b-", "b/c d/e", "z/", "é/1",
                    "图片/狗.jpg", "图片/猫.jpg", "\uff46", "😀"]
    assert "a" not in spy.scanned
    # a prefix that ends inside a name (non-'/' delimiter)
    cursor = SkipCursor()
    seen = []
    for key in tricky.iter_keys(B, prefix="a/", cursor=cursor):
        seen.append(key)
        if key == "a/x":
            cursor.skip_prefix = "a/y"
    assert seen == ["a/", "a/x"]
    assert SkipCursor().skip_prefix is None


def test_reserved_directory_is_never_listed(store: LocalStore, bucket_dir: Path) -> None:
    put(store, "k", b"x")
    put(store, "m/", b"")
    pending = store.begin_put(B, "in-flight")  # a temporary file exists right now
    pending.write(b"x")
    (bucket_dir / ".picscorex").write_bytes(b"user file")
    (bucket_dir / "sub").mkdir()
    (bucket_dir / "sub" / RESERVED_DIR).write_bytes(b"only the bucket's top level is reserved")
    assert (bucket_dir / RESERVED_DIR / "meta").is_dir()
    assert keys(store) == [".picscorex", "k", "m/", "sub/.picscore"]
    for prefix in (".", ".p", RESERVED_DIR, RESERVED_DIR + "/", RESERVED_DIR + "/meta/",
                   RESERVED_DIR + "/tmp/"):
        assert all(not k.startswith(RESERVED_DIR + "/") for k in keys(store, prefix))
        assert keys(store, prefix, start_after=".") == [k for k in keys(store, prefix) if k > "."]
    assert keys(store, RESERVED_DIR + "/") == []
    pending.abort()


def test_listing_sees_hand_made_changes(store: LocalStore, bucket_dir: Path) -> None:
    put(store, "a", b"x")
    assert keys(store) == ["a"]
    (bucket_dir / "b").write_bytes(b"y")
    assert keys(store) == ["a", "b"]
    (bucket_dir / "a").unlink()
    assert keys(store) == ["b"]


def test_listing_cache_survives_coarse_directory_timestamps(store: LocalStore, bucket_dir: Path) -> None:
    """A file added within the same timestamp tick as the last listing must still show up.

    File systems with coarse timestamps (a kernel tick, or 1-2 s) leave a directory's mtime
    unchanged by a second change in the same tick; ``os.utime`` reproduces that here.
    """
    put(store, "a", b"x")
    before = os.stat(bucket_dir)
    assert keys(store) == ["a"]
    (bucket_dir / "b").write_bytes(b"y")
    os.utime(bucket_dir, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert keys(store) == ["a", "b"]


# -- what is on disk but cannot be an object -------------------------------------------------

def test_names_that_cannot_be_keys_are_not_listed(store: LocalStore, bucket_dir: Path) -> None:
    """Control characters are fine (OSS accepts them); a leading backslash or bytes that are not
    UTF-8 cannot be OSS keys, so such files are neither listed nor opened."""
    put(store, "ok", b"x")
    (bucket_dir / "bad\nname").write_bytes(b"x")
    (bucket_dir / "tab\tdir").mkdir()
    (bucket_dir / "tab\tdir" / "inner").write_bytes(b"x")
    (bucket_dir / "del\x7f").write_bytes(b"x")
    (bucket_dir / "\\leading-backslash").write_bytes(b"x")
    fd = os.open(os.path.join(os.fsencode(bucket_dir), b"latin1-\xe9"), os.O_CREAT | os.O_WRONLY)
    os.close(fd)
    assert keys(store) == ["bad\nname", "del\x7f", "ok", "tab\tdir/inner"]
    assert store.open(B, "bad\nname").read() == b"x"
    with raises(400, "InvalidObjectName"):
        store.open(B, "\\leading-backslash")


def _outside(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"top secret")
    return outside


def test_symlink_to_a_file_outside_the_bucket_is_not_served(store: LocalStore, bucket_dir: Path,
                                                            tmp_path: Path) -> None:
    outside = _outside(tmp_path)
    os.symlink(outside / "secret.txt", bucket_dir / "leak.txt")
    os.symlink("../../outside/secret.txt", bucket_dir / "relative-leak.txt")
    put(store, "ok", b"x")
    for key in ("leak.txt", "relative-leak.txt"):
        with raises(404, "NoSuchKey"):
            store.open(B, key)
        with raises(404, "NoSuchKey"):
            store.head(B, key)
    assert keys(store) == ["ok"]


def test_symlinked_directory_outside_the_bucket_is_not_served(store: LocalStore, bucket_dir: Path,
                                                              tmp_path: Path) -> None:
    outside = _outside(tmp_path)
    os.symlink(outside, bucket_dir / "ext")
    os.symlink(store.root, bucket_dir / "root-link")  # other buckets live there
    store.create_bucket("other")
    put(store, "theirs", b"other bucket's", bucket="other")
    with raises(404, "NoSuchKey"):
        store.open(B, "ext/secret.txt")
    with raises(404, "NoSuchKey"):
        store.open(B, "root-link/other/theirs")
    assert keys(store) == []
    assert keys(store, prefix="ext/") == []
    with raises(409, "FileAlreadyExists"):
        put(store, "ext/planted.txt", b"x")
    with raises(409, "FileAlreadyExists"):
        put(store, "ext/new-dir/planted.txt", b"x")
    with raises(409, "FileAlreadyExists"):
        put(store, "ext/marker/")
    assert sorted(os.listdir(outside)) == ["secret.txt"]
    store.delete(B, "ext/secret.txt")
    assert (outside / "secret.txt").read_bytes() == b"top secret"
    assert tmp_files(bucket_dir) == []


def test_symlink_inside_the_bucket_is_served(store: LocalStore, bucket_dir: Path) -> None:
    put(store, "real/photo.jpg", b"123456789")
    os.symlink("real/photo.jpg", bucket_dir / "alias.jpg")
    assert read(store, "alias.jpg") == b"123456789"
    assert store.head(B, "alias.jpg").etag == CHECK_ETAG
    assert keys(store) == ["alias.jpg", "real/photo.jpg"]


def test_symlink_into_the_reserved_directory_is_not_served(store: LocalStore, bucket_dir: Path) -> None:
    put(store, "k", b"x")
    os.symlink(RESERVED_DIR + "/bucket.json", bucket_dir / "peek.json")
    os.symlink(RESERVED_DIR, bucket_dir / "peekdir")
    with raises(404, "NoSuchKey"):
        store.open(B, "peek.json")
    with raises(404, "NoSuchKey"):
        store.open(B, "peekdir/bucket.json")
    with raises(409, "FileAlreadyExists"):
        put(store, "peekdir/planted", b"x")
    assert keys(store) == ["k"]


def test_symlinked_directory_loop_does_not_hang_the_walk(store: LocalStore, bucket_dir: Path) -> None:
    put(store, "d/k", b"x")
    os.symlink(".", bucket_dir / "d" / "loop")
    os.symlink("..", bucket_dir / "d" / "up")
    os.symlink("missing-target", bucket_dir / "dangling")
    assert keys(store) == ["d/k"]
    with raises(404, "NoSuchKey"):
        store.open(B, "dangling")


@pytest.mark.timeout(20)
def test_fifo_is_not_an_object(store: LocalStore, bucket_dir: Path) -> None:
    os.mkfifo(bucket_dir / "pipe")
    put(store, "k", b"x")
    assert keys(store) == ["k"]
    with raises(404, "NoSuchKey"):
        store.open(B, "pipe")  # must not block waiting for a writer
    with raises(409, "FileAlreadyExists"):
        put(store, "pipe/x", b"x")


def test_concurrent_puts_deletes_and_listings_under_one_prefix(store: LocalStore) -> None:
    """Deleting the last key under ``d/`` prunes ``d``; a PUT under ``d/`` racing with it must not fail."""
    errors: list[BaseException] = []

    def churn(key: str) -> None:
        try:
            for i in range(150):
                put(store, key, str(i).encode())
                store.delete(B, key)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def lister() -> None:
        try:
            for _ in range(150):
                assert set(keys(store, "d/")) <= {"d/x", "d/y/z"}
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=churn, args=(k,)) for k in ("d/x", "d/y/z")]
    threads.append(threading.Thread(target=lister))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert keys(store) == []
    put(store, "d", b"free again")
