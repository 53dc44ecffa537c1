"""AppendObject and symlinks (PutSymlink, GetSymlink, reads through a link) against a real
``picscore serve``, through the unmodified SDKs ``alibabacloud_oss_v2`` (V4 and V1 signing) and
``oss2``. What OSS documents for them is summarised in :mod:`worker.server.append_object` and
:mod:`worker.server.symlinks`.

Expected values are computed here (the bytes appended so far, their MD5 and CRC-64); error cases
check the status, the OSS ``Code`` and that the object did not change. The last test kills the
server with SIGKILL in the middle of an append and checks that the object is whole afterwards.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import signal
import threading
import time
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import alibabacloud_oss_v2 as oss
import oss2
import pytest

from tests.conftest import ACCESS_KEY_ID, ACCESS_KEY_SECRET, BUCKET, make_jpeg
from worker.server.launch import ServerProcess, start_server

from .helpers import crc64_ecma, parse_score, quoted_md5, unique_prefix
from .test_server_copy_tagging import get_bytes, head, oss2_bucket, put, v2_client, v2_fails


@pytest.fixture(params=["v4", "v1"])
def client(server: ServerProcess, request: pytest.FixtureRequest) -> oss.Client:
    return v2_client(server, request.param)


def append(client: oss.Client, key: str, position: int, data: bytes, **kwargs: Any) -> oss.AppendObjectResult:
    return client.append_object(oss.AppendObjectRequest(bucket=BUCKET, key=key, position=position, body=data,
                                                        **kwargs))


def symlink(client: oss.Client, key: str, target: str, **kwargs: Any) -> oss.PutSymlinkResult:
    return client.put_symlink(oss.PutSymlinkRequest(bucket=BUCKET, key=key, target=target, **kwargs))


# -- AppendObject ----------------------------------------------------------------------------------

def test_append_creates_an_appendable_object_and_extends_it(client: oss.Client) -> None:
    """Position 0 creates the object; each append at the current length extends it. The answer
    carries the next position and the CRC-64 of the whole object so far; HEAD reports the type,
    the next position and what the first append set (type, metadata, class, tags), which later
    appends with other headers do not change."""
    key = unique_prefix("ap") + "log.txt"
    first, second, third = b"hello", b" world", os.urandom(70_000)
    r1 = append(client, key, 0, first, content_type="text/x-log", metadata={"origin": "a"}, storage_class="IA",
                tagging="k=v")
    assert (r1.status_code, r1.next_position, int(r1.hash_crc64)) == (200, 5, crc64_ecma(first))
    r2 = append(client, key, 5, second, content_type="image/png", metadata={"origin": "b"})
    assert (r2.next_position, int(r2.hash_crc64)) == (11, crc64_ecma(first + second))
    r3 = append(client, key, 11, third)
    whole = first + second + third
    assert (r3.next_position, int(r3.hash_crc64)) == (len(whole), crc64_ecma(whole))
    assert get_bytes(client, key) == whole
    meta = head(client, key)
    assert (meta.object_type, meta.next_append_position, meta.content_length) == ("Appendable", len(whole), len(whole))
    assert (meta.content_type, meta.metadata, meta.storage_class, meta.tagging_count) == (
        "text/x-log", {"origin": "a"}, "IA", 1)
    # ETag: this server's choice for Appendable objects is the MD5 of the whole object so far
    assert meta.etag == quoted_md5(whole) == r3.headers["ETag"]


def test_append_at_a_wrong_position_is_409_with_the_right_one(client: oss.Client) -> None:
    key = unique_prefix("ap-pos") + "obj"
    append(client, key, 0, b"12345")
    for position in (0, 4, 6, 1 << 40):
        err = v2_fails(lambda p=position: append(client, key, p, b"x"), 409, "PositionNotEqualToLength")
        assert err.headers.get("x-oss-next-append-position") == "5"
        assert err.ec == "0026-00000016"
    assert get_bytes(client, key) == b"12345"
    # on a key that does not exist the only right position is 0, and nothing is created
    missing = unique_prefix("ap-pos") + "missing"
    err = v2_fails(lambda: append(client, missing, 3, b"x"), 409, "PositionNotEqualToLength")
    assert err.headers.get("x-oss-next-append-position") == "0"
    v2_fails(lambda: head(client, missing), 404, "NoSuchKey")


def test_only_appendable_objects_can_be_appended_to(client: oss.Client) -> None:
    """Normal (PutObject), Multipart and Symlink objects: 409 ObjectNotAppendable, unchanged. A
    PutObject over an Appendable object replaces it with a Normal one."""
    prefix = unique_prefix("ap-type")
    put(client, prefix + "normal", b"abc")
    v2_fails(lambda: append(client, prefix + "normal", 3, b"d"), 409, "ObjectNotAppendable")
    assert (get_bytes(client, prefix + "normal"), head(client, prefix + "normal").object_type) == (b"abc", "Normal")

    init = client.initiate_multipart_upload(oss.InitiateMultipartUploadRequest(bucket=BUCKET, key=prefix + "mp"))
    part = client.upload_part(oss.UploadPartRequest(bucket=BUCKET, key=prefix + "mp", upload_id=init.upload_id,
                                                    part_number=1, body=b"part"))
    client.complete_multipart_upload(oss.CompleteMultipartUploadRequest(
        bucket=BUCKET, key=prefix + "mp", upload_id=init.upload_id,
        complete_multipart_upload=oss.CompleteMultipartUpload(parts=[oss.UploadPart(part_number=1, etag=part.etag)])))
    assert head(client, prefix + "mp").object_type == "Multipart"
    v2_fails(lambda: append(client, prefix + "mp", 4, b"x"), 409, "ObjectNotAppendable")

    symlink(client, prefix + "link", prefix + "normal")
    v2_fails(lambda: append(client, prefix + "link", 0, b"x"), 409, "ObjectNotAppendable")

    append(client, prefix + "app", 0, b"one")
    put(client, prefix + "app", b"two")
    assert head(client, prefix + "app").object_type == "Normal"
    v2_fails(lambda: append(client, prefix + "app", 3, b"x"), 409, "ObjectNotAppendable")


def test_append_checks_content_md5_of_the_appended_bytes(client: oss.Client) -> None:
    key = unique_prefix("ap-md5") + "obj"
    good = base64.b64encode(hashlib.md5(b"abc").digest()).decode()
    append(client, key, 0, b"abc", content_md5=good)
    bad = base64.b64encode(hashlib.md5(b"nope").digest()).decode()
    v2_fails(lambda: append(client, key, 3, b"def", content_md5=bad), 400, "InvalidDigest")
    assert get_bytes(client, key) == b"abc"
    good = base64.b64encode(hashlib.md5(b"def").digest()).decode()  # of this append only, not the whole
    assert append(client, key, 3, b"def", content_md5=good).next_position == 6


def test_append_position_missing_or_not_a_number_is_400(client: oss.Client) -> None:
    key = unique_prefix("ap-arg") + "obj"

    def raw(parameters: dict[str, str]) -> Any:
        return client.invoke_operation(oss.OperationInput(op_name="AppendObject", method="POST", bucket=BUCKET,
                                                          key=key, parameters=parameters, body=b"x"))

    err = v2_fails(lambda: raw({"append": ""}), 400, "MissingArgument")
    assert err.ec == "0016-00000501"
    v2_fails(lambda: raw({"append": "", "position": "-1"}), 400, "InvalidArgument")
    v2_fails(lambda: raw({"append": "", "position": "abc"}), 400, "InvalidArgument")
    v2_fails(lambda: head(client, key), 404, "NoSuchKey")


def test_oss2_appends_with_crc_checking(server: ServerProcess) -> None:
    """oss2 checks each answer's x-oss-hash-crc64ecma against the CRC it combines from the
    previous one (init_crc) and what it sent: it must be the CRC of the whole object."""
    bucket = oss2_bucket(server, "v4")
    key = unique_prefix("ap-oss2") + "obj.bin"
    chunks = [os.urandom(n) for n in (1, 1000, 65_537)]
    crc, position = 0, 0
    for chunk in chunks:
        result = bucket.append_object(key, position, chunk, init_crc=crc)
        crc, position = result.crc, result.next_position
    assert position == sum(map(len, chunks)) and crc == crc64_ecma(b"".join(chunks))
    assert bucket.get_object(key).read() == b"".join(chunks)
    assert bucket.head_object(key).object_type == "Appendable"
    with pytest.raises(oss2.exceptions.PositionNotEqualToLength) as excinfo:
        bucket.append_object(key, 0, b"x")
    assert excinfo.value.headers["x-oss-next-append-position"] == str(position)


def test_concurrent_appends_at_one_position_only_one_wins(server: ServerProcess) -> None:
    client = v2_client(server, "v4")
    key = unique_prefix("ap-race") + "obj"
    append(client, key, 0, b"start")
    bodies = [bytes([65 + i]) * 300_000 for i in range(4)]
    outcomes: list[Any] = [None] * len(bodies)

    def go(i: int) -> None:
        try:
            outcomes[i] = append(v2_client(server, "v4"), key, 5, bodies[i]).next_position
        except oss.exceptions.OperationError as exc:
            outcomes[i] = exc.unwrap().code

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    winners = [i for i, outcome in enumerate(outcomes) if outcome == 300_005]
    assert len(winners) == 1, outcomes
    assert sorted(o for o in outcomes if o != 300_005) == ["PositionNotEqualToLength"] * 3
    assert get_bytes(client, key) == b"start" + bodies[winners[0]]


# -- symlinks --------------------------------------------------------------------------------------

def test_symlink_round_trip_and_reads_follow_it(client: oss.Client) -> None:
    """GetSymlink returns the target; GetObject and HeadObject through the link give the
    target's bytes, length, ETag and CRC, the link's Content-Type and metadata, object type
    Symlink, and the later of the two Last-Modified times."""
    prefix = unique_prefix("sl")
    target = prefix + "photos/cat.jpg"
    data = os.urandom(4096)
    put(client, target, data, content_type="image/jpeg", metadata={"who": "target"})
    time.sleep(1.1)  # the link is a second younger: Last-Modified must be the link's
    result = symlink(client, prefix + "link", target, metadata={"who": "link"})
    assert result.status_code == 200
    got = client.get_symlink(oss.GetSymlinkRequest(bucket=BUCKET, key=prefix + "link"))
    assert (got.target, got.metadata) == (target, {"who": "link"})

    body = client.get_object(oss.GetObjectRequest(bucket=BUCKET, key=prefix + "link"))
    assert body.body.read() == data
    assert (body.etag, int(body.hash_crc64), body.object_type) == (quoted_md5(data), crc64_ecma(data), "Symlink")
    meta = head(client, prefix + "link")
    assert (meta.content_length, meta.etag, meta.object_type, meta.metadata) == (
        len(data), quoted_md5(data), "Symlink", {"who": "link"})
    target_modified = parsedate_to_datetime(head(client, target).headers["Last-Modified"])
    assert parsedate_to_datetime(meta.headers["Last-Modified"]) > target_modified
    # a range through the link is a range of the target
    ranged = client.get_object(oss.GetObjectRequest(bucket=BUCKET, key=prefix + "link", range_header="bytes=10-19"))
    assert ranged.body.read() == data[10:20]


def test_symlinks_are_listed_and_deleted_as_objects_of_their_own(client: oss.Client) -> None:
    prefix = unique_prefix("sl-list")
    put(client, prefix + "a", b"12345")
    symlink(client, prefix + "b", prefix + "a")
    listing = client.list_objects_v2(oss.ListObjectsV2Request(bucket=BUCKET, prefix=prefix))
    assert [(o.key, o.size, o.object_type) for o in listing.contents] == [
        (prefix + "a", 5, "Normal"), (prefix + "b", 0, "Symlink")]
    client.delete_object(oss.DeleteObjectRequest(bucket=BUCKET, key=prefix + "b"))
    assert get_bytes(client, prefix + "a") == b"12345"
    v2_fails(lambda: head(client, prefix + "b"), 404, "NoSuchKey")
    # deleting the target leaves the link, dangling
    symlink(client, prefix + "c", prefix + "a")
    client.delete_object(oss.DeleteObjectRequest(bucket=BUCKET, key=prefix + "a"))
    got = client.get_symlink(oss.GetSymlinkRequest(bucket=BUCKET, key=prefix + "c"))
    assert got.target == prefix + "a"


def test_symlink_errors(client: oss.Client) -> None:
    prefix = unique_prefix("sl-err")
    put(client, prefix + "plain", b"x")
    symlink(client, prefix + "dangling", prefix + "nowhere")
    err = v2_fails(lambda: get_bytes(client, prefix + "dangling"), 404, "SymlinkTargetNotExist")
    assert err.ec == "0026-00000012"
    v2_fails(lambda: head(client, prefix + "dangling"), 404, "SymlinkTargetNotExist")
    # a link to a link is not followed
    symlink(client, prefix + "first", prefix + "plain")
    symlink(client, prefix + "second", prefix + "first")
    v2_fails(lambda: get_bytes(client, prefix + "second"), 400, "InvalidTargetType")
    # GetSymlink of an object that is not a link, or of nothing
    err = v2_fails(lambda: client.get_symlink(oss.GetSymlinkRequest(bucket=BUCKET, key=prefix + "plain")),
                   400, "NotSymlink")
    assert err.ec == "0043-00000101"
    v2_fails(lambda: client.get_symlink(oss.GetSymlinkRequest(bucket=BUCKET, key=prefix + "none")), 404, "NoSuchKey")
    # the target header is required
    err = v2_fails(lambda: client.invoke_operation(oss.OperationInput(
        op_name="PutSymlink", method="PUT", bucket=BUCKET, key=prefix + "bare", parameters={"symlink": ""})),
        400, "MissingArgument")
    assert err.ec == "0043-00000001"
    # x-oss-forbid-overwrite
    v2_fails(lambda: symlink(client, prefix + "plain", prefix + "first", forbid_overwrite=True),
             409, "FileAlreadyExists")
    assert head(client, prefix + "plain").object_type == "Normal"
    # an archived target cannot be read through a link either
    put(client, prefix + "cold", b"frozen", storage_class="Archive")
    symlink(client, prefix + "to-cold", prefix + "cold")
    v2_fails(lambda: get_bytes(client, prefix + "to-cold"), 403, "InvalidObjectState")


def test_oss2_symlink_with_a_non_ascii_target(server: ServerProcess) -> None:
    """oss2 URL-encodes x-oss-symlink-target and decodes it from GetSymlink."""
    bucket = oss2_bucket(server, "v1")
    prefix = unique_prefix("sl-oss2")
    target = prefix + "图片/a b+c.txt"
    bucket.put_object(target, b"through the link")
    bucket.put_symlink(target, prefix + "链接", headers={"x-oss-meta-k": "v", "x-oss-storage-class": "IA"})
    assert bucket.get_symlink(prefix + "链接").target_key == target
    assert bucket.get_object(prefix + "链接").read() == b"through the link"
    meta = bucket.head_object(prefix + "链接")
    assert (meta.object_type, meta.headers["x-oss-meta-k"], meta.content_length) == ("Symlink", "v", 16)


def test_image_score_through_a_symlink(client: oss.Client) -> None:
    prefix = unique_prefix("sl-score")
    put(client, prefix + "photo.jpg", make_jpeg(seed=31))
    symlink(client, prefix + "alias.jpg", prefix + "photo.jpg")

    def score(key: str) -> float:
        result = client.get_object(oss.GetObjectRequest(bucket=BUCKET, key=key, process="image/score"))
        return parse_score(result.body.read(), result.request_id)

    assert score(prefix + "alias.jpg") == score(prefix + "photo.jpg")


# -- crash safety ----------------------------------------------------------------------------------

def _tmp_bytes(root: Path) -> int:
    return sum(path.stat().st_size for path in (root / BUCKET / ".picscore" / "tmp").glob("*"))


@pytest.mark.slow
def test_kill_9_mid_append_leaves_the_object_whole(tmp_path: Path) -> None:
    """SIGKILL while an append's body is half received: after a restart the object is exactly what
    it was before that append (never part of it), still Appendable, and appending resumes."""
    root = tmp_path / "root"
    (root / BUCKET).mkdir(parents=True)
    creds = {ACCESS_KEY_ID: ACCESS_KEY_SECRET}
    key = "crash/app.log"
    before = os.urandom(3 << 20)
    server = start_server(root, creds, args=["--workers", "1"])
    try:
        client = v2_client(server, "v4")
        append(client, key, 0, before)
        sent = threading.Event()

        def slow_body() -> Any:
            yield os.urandom(1 << 20)
            sent.set()
            time.sleep(30)  # the server dies meanwhile
            yield b"never"

        def doomed() -> None:
            with contextlib.suppress(Exception):  # the connection dies with the server
                append(v2_client(server, "v4"), key, len(before), slow_body())

        thread = threading.Thread(target=doomed, daemon=True)
        thread.start()
        assert sent.wait(30)
        deadline = time.monotonic() + 20  # the old bytes and that first MB reach the temporary file
        while _tmp_bytes(root) < len(before) + (1 << 20) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _tmp_bytes(root) >= len(before) + (1 << 20), "the append never got under way"
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait(10)
    finally:
        server.stop()

    with start_server(root, creds, args=["--workers", "1"]) as again:
        client = v2_client(again, "v4")
        meta = head(client, key)
        assert (meta.object_type, meta.content_length, meta.next_append_position) == (
            "Appendable", len(before), len(before))
        assert get_bytes(client, key) == before
        assert append(client, key, len(before), b"resumed").next_position == len(before) + 7
        assert get_bytes(client, key) == before + b"resumed"
