"""A multipart upload survives ``kill -9`` of the server in the middle of a part.

A real ``picscore serve`` process receives parts from ``alibabacloud_oss_v2``; while one part is
half sent it is killed with SIGKILL, then restarted on the same root. ListParts must show exactly
the parts that were complete (with their ETags), never the torn one; the missing parts are sent
again and the completed object is byte-identical to the source, with the multipart ETag.
(``benchmarks/bench_multipart.py`` runs the same at 200 MB through the SDK's ``Uploader``.)
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
import time
from pathlib import Path

import alibabacloud_oss_v2 as oss
import pytest

from tests.conftest import ACCESS_KEY_ID, ACCESS_KEY_SECRET, BUCKET
from worker.server.launch import start_server

from .test_server_copy_tagging import v2_client

MB = 1024 * 1024
PART = 8 * MB


class StallingReader(io.RawIOBase):
    """A part body that stops after ``stall_at`` bytes until ``release`` is set."""

    def __init__(self, data: bytes, stall_at: int) -> None:
        self._buf = io.BytesIO(data)
        self._stall_at = stall_at
        self.release = threading.Event()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._buf.seek(offset, whence)

    def tell(self) -> int:
        return self._buf.tell()

    def readinto(self, buffer) -> int:  # type: ignore[override]
        pos = self._buf.tell()
        if pos >= self._stall_at:
            self.release.wait(60)
            chunk = self._buf.read(len(buffer))
        else:
            chunk = self._buf.read(min(len(buffer), self._stall_at - pos))
        buffer[:len(chunk)] = chunk
        return len(chunk)


def _tmp_part_bytes(root: Path) -> int:
    return sum(path.stat().st_size for path in (root / BUCKET / ".picscore" / "multipart").glob("*/parts/.tmp-*"))


def _multipart_etag(parts: list[bytes]) -> str:
    return f'"{hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest().upper()}-{len(parts)}"'


@pytest.mark.slow
def test_kill_9_mid_part_then_resume(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / BUCKET).mkdir(parents=True)
    data = os.urandom(40 * MB)
    chunks = [data[at:at + PART] for at in range(0, len(data), PART)]
    key = "crash/forty.bin"
    creds = {ACCESS_KEY_ID: ACCESS_KEY_SECRET}

    server = start_server(root, creds, args=["--workers", "1"])
    try:
        client = v2_client(server, "v4")
        upload_id = client.initiate_multipart_upload(
            oss.InitiateMultipartUploadRequest(bucket=BUCKET, key=key, content_type="application/x-test")).upload_id
        etags = {}
        for number in (1, 2):
            etags[number] = client.upload_part(oss.UploadPartRequest(
                bucket=BUCKET, key=key, upload_id=upload_id, part_number=number, body=chunks[number - 1])).etag

        reader = StallingReader(chunks[2], stall_at=5 * MB)
        failure: list[BaseException] = []

        def send_part_3() -> None:
            try:
                client.upload_part(oss.UploadPartRequest(bucket=BUCKET, key=key, upload_id=upload_id, part_number=3,
                                                         body=reader, content_length=PART))
            except BaseException as exc:  # the server dies under it
                failure.append(exc)

        sender = threading.Thread(target=send_part_3)
        sender.start()
        deadline = time.monotonic() + 60
        while _tmp_part_bytes(root) < 4 * MB:  # the server has written part of part 3
            assert time.monotonic() < deadline, "part 3 never reached the server's disk"
            time.sleep(0.02)
        server.process.kill()  # SIGKILL: no cleanup of any kind
        server.process.wait()
        reader.release.set()
        sender.join(60)
        assert failure, "part 3 cannot have succeeded"
    finally:
        server.stop()

    assert _tmp_part_bytes(root) > 0  # the torn part is on disk, but only as a temporary file
    with start_server(root, creds, args=["--workers", "1"]) as restarted:
        client = v2_client(restarted, "v1")
        listed = client.list_parts(oss.ListPartsRequest(bucket=BUCKET, key=key, upload_id=upload_id)).parts
        assert [(p.part_number, p.etag, p.size) for p in listed] == [(1, etags[1], PART), (2, etags[2], PART)]
        uploads = client.list_multipart_uploads(oss.ListMultipartUploadsRequest(bucket=BUCKET)).uploads
        assert [(u.key, u.upload_id) for u in uploads] == [(key, upload_id)]
        for number in range(3, len(chunks) + 1):
            etags[number] = client.upload_part(oss.UploadPartRequest(
                bucket=BUCKET, key=key, upload_id=upload_id, part_number=number, body=chunks[number - 1])).etag
        done = client.complete_multipart_upload(oss.CompleteMultipartUploadRequest(
            bucket=BUCKET, key=key, upload_id=upload_id, complete_multipart_upload=oss.CompleteMultipartUpload(
                parts=[oss.UploadPart(part_number=n, etag=e) for n, e in sorted(etags.items())])))
        assert done.etag == _multipart_etag(chunks)
        got = client.get_object(oss.GetObjectRequest(bucket=BUCKET, key=key))
        assert got.body.read() == data
        assert got.etag == done.etag and got.content_type == "application/x-test"
    # completed: no upload state (and no temporary part) is left behind
    assert list((root / BUCKET / ".picscore" / "multipart").iterdir()) == []


@pytest.mark.slow
def test_part_record_lost_is_recomputed(tmp_path: Path) -> None:
    """A crash between a part's rename and its ``.json`` record: the part is whole, its digests are
    recomputed from the bytes on the next listing."""
    root = tmp_path / "root"
    (root / BUCKET).mkdir(parents=True)
    creds = {ACCESS_KEY_ID: ACCESS_KEY_SECRET}
    data = os.urandom(300 * 1024)
    with start_server(root, creds, args=["--workers", "1"]) as server:
        client = v2_client(server, "v4")
        upload_id = client.initiate_multipart_upload(
            oss.InitiateMultipartUploadRequest(bucket=BUCKET, key="k")).upload_id
        etag = client.upload_part(oss.UploadPartRequest(bucket=BUCKET, key="k", upload_id=upload_id, part_number=1,
                                                        body=data)).etag
        records = list((root / BUCKET / ".picscore" / "multipart").glob("*/parts/00001.json"))
        assert len(records) == 1
        records[0].unlink()
        listed = client.list_parts(oss.ListPartsRequest(bucket=BUCKET, key="k", upload_id=upload_id)).parts
        assert [(p.part_number, p.etag, p.size) for p in listed] == [(1, etag, len(data))]
        client.complete_multipart_upload(oss.CompleteMultipartUploadRequest(
            bucket=BUCKET, key="k", upload_id=upload_id, complete_all="yes"))
        assert client.get_object(oss.GetObjectRequest(bucket=BUCKET, key="k")).body.read() == data
