"""Benchmark: a 200 MB multipart upload through ``alibabacloud_oss_v2``'s ``Uploader`` (8 MB parts,
4 in parallel) into a real ``picscore serve``, with the server killed (SIGKILL) in the middle of
the upload, restarted on the same root, and the upload resumed from the SDK's checkpoint.

Checks that the object is byte-identical to the source and carries the multipart ETag form
(``"<MD5 of part MD5s>-25"``), and samples the server process's resident memory (VmRSS from
/proc/PID/status) every 20 ms: parts are streamed to disk, so the peak must stay far below the
object size. Prints the upload times, the parts found after the restart and the peak RSS.

    python benchmarks/bench_multipart.py [--size-mb 200] [--part-mb 8] [--parallel 4]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import threading
import time
from pathlib import Path

import alibabacloud_oss_v2 as oss

from worker.server.launch import ServerProcess, start_server

KEY_ID, SECRET = "LTAIbench0000000", "bench-secret-not-a-real-one"
BUCKET, KEY = "bench", "big/upload.bin"
MB = 1024 * 1024


def client_for(server: ServerProcess, retry: bool) -> oss.Client:
    config = oss.config.load_default()
    config.credentials_provider = oss.credentials.StaticCredentialsProvider(KEY_ID, SECRET)
    config.region, config.endpoint = "cn-hangzhou", server.url
    if not retry:
        config.retryer = oss.retry.NopRetryer()
    return oss.Client(config)


class RssSampler(threading.Thread):
    """Peak VmRSS (bytes) of one process, sampled until it exits or :meth:`stop`."""

    def __init__(self, pid: int, every_s: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.pid, self.every_s, self.peak, self.first = pid, every_s, 0, 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        status = Path(f"/proc/{self.pid}/status")
        while not self._stop_event.is_set():
            try:
                for line in status.read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        rss = int(line.split()[1]) * 1024
                        self.first, self.peak = self.first or rss, max(self.peak, rss)
            except (OSError, ValueError):
                return
            time.sleep(self.every_s)

    def stop(self) -> int:
        self._stop_event.set()
        self.join(1)
        return self.peak


def complete_parts(root: Path) -> int:
    return sum(1 for p in (root / BUCKET / ".picscore" / "multipart").glob("*/parts/*")
               if p.name.isdigit())


def in_flight_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in (root / BUCKET / ".picscore" / "multipart").glob("*/parts/.tmp-*"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--part-mb", type=int, default=8)
    parser.add_argument("--parallel", type=int, default=4)
    args = parser.parse_args()
    part_size = args.part_mb * MB

    with tempfile.TemporaryDirectory(prefix="bench-multipart-") as tmp:
        tmp_path = Path(tmp)
        root, checkpoints = tmp_path / "root", tmp_path / "checkpoints"
        (root / BUCKET).mkdir(parents=True)
        checkpoints.mkdir()
        source = tmp_path / "source.bin"
        data = os.urandom(args.size_mb * MB)
        source.write_bytes(data)
        n_parts = -(-len(data) // part_size)
        creds = {KEY_ID: SECRET}

        # 1. upload until about half the parts are in, then kill -9 the server mid-part
        server = start_server(root, creds, args=["--workers", "1"])
        sampler = RssSampler(server.process.pid)
        sampler.start()
        uploader = client_for(server, retry=False).uploader(
            part_size=part_size, parallel_num=args.parallel, enable_checkpoint=True, checkpoint_dir=str(checkpoints))
        errors: list[BaseException] = []

        def first_attempt() -> None:
            try:
                uploader.upload_file(oss.PutObjectRequest(bucket=BUCKET, key=KEY), filepath=str(source))
            except Exception as exc:  # the server is killed under it
                errors.append(exc)

        started = time.perf_counter()
        attempt = threading.Thread(target=first_attempt)
        attempt.start()
        while not (complete_parts(root) >= n_parts // 2 and in_flight_bytes(root) > MB):
            if not attempt.is_alive():
                raise SystemExit("the upload finished before the server could be killed; use a larger --size-mb")
            time.sleep(0.005)
        torn = in_flight_bytes(root)
        server.process.kill()
        server.process.wait()
        first_s = time.perf_counter() - started
        attempt.join(120)
        peak_first, idle_rss = sampler.stop(), sampler.first
        server.stop()
        assert errors, "the first attempt cannot have succeeded"

        # 2. restart on the same root, see what survived, resume from the SDK's checkpoint
        with start_server(root, creds, args=["--workers", "1"]) as restarted:
            sampler = RssSampler(restarted.process.pid)
            sampler.start()
            client = client_for(restarted, retry=True)
            uploads = client.list_multipart_uploads(oss.ListMultipartUploadsRequest(bucket=BUCKET)).uploads
            assert len(uploads) == 1, uploads
            parts = client.list_parts(oss.ListPartsRequest(bucket=BUCKET, key=KEY,
                                                           upload_id=uploads[0].upload_id)).parts or []
            for part in parts:  # every listed part is whole: its ETag is the MD5 of the source's bytes there
                at = (part.part_number - 1) * part_size
                assert part.etag == f'"{hashlib.md5(data[at:at + part_size]).hexdigest().upper()}"', part
            sent: list[int] = []  # the resumed upload's progress: bytes sent by this attempt

            def progress(increment: int, transferred: int, total: int) -> None:
                sent.append(increment)
                if len(sent) == 1:
                    sent.insert(0, transferred - increment)  # where it resumed from

            started = time.perf_counter()
            result = client.uploader(part_size=part_size, parallel_num=args.parallel, enable_checkpoint=True,
                                     checkpoint_dir=str(checkpoints)).upload_file(
                oss.PutObjectRequest(bucket=BUCKET, key=KEY, progress_fn=progress), filepath=str(source))
            resume_s = time.perf_counter() - started
            got = client.get_object(oss.GetObjectRequest(bucket=BUCKET, key=KEY))
            identical = got.body.read() == data
            peak_second = sampler.stop()

        md5s = b"".join(hashlib.md5(data[at:at + part_size]).digest() for at in range(0, len(data), part_size))
        expected_etag = f'"{hashlib.md5(md5s).hexdigest().upper()}-{n_parts}"'
        print(f"object: {args.size_mb} MB in {n_parts} parts of {args.part_mb} MB, parallel {args.parallel}")
        print(f"first attempt: killed (SIGKILL) after {first_s:.2f} s with {len(parts)} parts complete "
              f"and {torn / MB:.1f} MB of parts in flight")
        print(f"after restart: ListParts shows parts {[p.part_number for p in parts]}")
        print(f"resumed upload: from byte {sent[0]} ({sent[0] // part_size} parts skipped), "
              f"{sum(sent[1:]) / MB:.0f} MB sent again")
        print(f"resumed upload: {resume_s:.2f} s; ETag {result.etag} "
              f"({'multipart form OK' if result.etag == expected_etag else 'UNEXPECTED, wanted ' + expected_etag})")
        print(f"byte-identical: {identical}")
        print(f"server RSS when idle: {idle_rss / MB:.1f} MB; peak: {peak_first / MB:.1f} MB before the kill, "
              f"{peak_second / MB:.1f} MB after the restart")
        if not identical or result.etag != expected_etag:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
