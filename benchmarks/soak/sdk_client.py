"""The SDK client child (``bench_soak.py _sdk CONFIG_JSON``): a paced mix of real OSS operations."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from .common import Pacer, _run_until
from .constants import BLOB_KEYS, BUCKET, IMAGE_KEYS, KEY_ID, OP_TIMEOUT_S, REGION, SECRET

# -- the SDK client child: `bench_soak.py _sdk CONFIG_JSON` ---------------------------------------


class BadAnswer(Exception):
    """A 2xx answer that is wrong (short body, wrong status for a Range): counted as an error."""


#: The mix: relative weight of each kind of operation.
SDK_MIX = {"put": 14, "get": 18, "get range": 8, "head": 10, "list": 8, "delete": 5, "score": 25,
           "score non-image": 2}
LIST_PREFIXES = ("", "img/", "bin/", "img/1", "img/2", "pinned/")


def make_jpegs(count: int, seed: int) -> list[bytes]:
    """Small 320x240 photos: gradients plus noise at varied JPEG quality (3-35 KB each)."""
    import io

    import numpy as np
    from PIL import Image

    images = []
    for i in range(count):
        rng = np.random.default_rng(seed + i)
        y, x = np.mgrid[0:240, 0:320]
        base = np.stack([(x * rng.uniform(0.2, 0.8) + y * rng.uniform(0.1, 0.5)) % 256,
                         (x * rng.uniform(0.1, 0.5)) % 256, (y * rng.uniform(0.3, 1.0)) % 256], -1)
        pixels = np.clip(base + rng.normal(0, rng.uniform(2, 20), base.shape), 0, 255).astype(np.uint8)
        out = io.BytesIO()
        Image.fromarray(pixels).save(out, "JPEG", quality=int(rng.integers(60, 95)))
        images.append(out.getvalue())
    return images


def error_kind(exc: BaseException) -> str:
    """``HTTP 503 CpuLimitExceeded`` for a service answer, else the innermost exception's class
    (the SDK wraps transport errors in OperationError → RequestError → the aiohttp error)."""
    from alibabacloud_oss_v2 import exceptions as sdk_errors

    for _ in range(8):
        unwrap = getattr(exc, "unwrap", None)
        inner = unwrap() if callable(unwrap) else None
        if inner is None or inner is exc:
            break
        exc = inner
    if isinstance(exc, sdk_errors.ServiceError):
        return f"HTTP {exc.status_code} {exc.code}"
    if isinstance(exc, TimeoutError):
        return f"TimeoutError (client gave up after {OP_TIMEOUT_S:.0f} s)"
    return type(exc).__name__


@dataclass
class SdkTarget:
    """One server's share of the SDK mix and what the client believes exists there."""

    name: str
    client: Any
    pacer: Pacer
    rng: random.Random
    jpegs: list[bytes]
    ops: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    images: set[str] = field(default_factory=set)
    blobs: set[str] = field(default_factory=set)

    def plan(self) -> tuple[str, Callable[[], Awaitable[None]]]:
        """The next operation: its label (for the counts) and the call. Reads of an empty family
        turn into PUTs, so the first seconds fill the bucket."""
        kind = self.rng.choices(list(SDK_MIX), weights=list(SDK_MIX.values()))[0]
        live = self.images | self.blobs
        if kind == "list":
            return "LIST (all pages)", self.list_all
        if kind == "put" or not live or (kind.startswith("score") and not self.images):
            return self._plan_put()
        key = self.rng.choice(sorted(live))
        if kind == "score":
            return "GET image/score", lambda: self.score(self.rng.choice(sorted(self.images)))
        if kind == "score non-image" and self.blobs:
            return "image/score of non-image bytes", lambda: self.score(self.rng.choice(sorted(self.blobs)))
        planned: dict[str, tuple[str, Callable[[], Awaitable[None]]]] = {
            "get": ("GET", lambda: self.get(key)),
            "get range": ("GET Range", lambda: self.get_range(key)),
            "head": ("HEAD", lambda: self.head(key)),
            "delete": ("DELETE", lambda: self.delete(key)),
        }
        return planned.get(kind, planned["get"])

    def _plan_put(self) -> tuple[str, Callable[[], Awaitable[None]]]:
        if self.rng.random() < 0.75:
            key, body = f"img/{self.rng.randrange(IMAGE_KEYS):03d}.jpg", self.rng.choice(self.jpegs)
            label = "PUT overwrite" if key in self.images else "PUT new"
        else:
            key = f"bin/{self.rng.randrange(BLOB_KEYS):03d}.bin"
            body = self.rng.randbytes(self.rng.randint(2048, 65536))
            label = "PUT overwrite" if key in self.blobs else "PUT new"
        return label, lambda: self.put(key, body)

    async def put(self, key: str, body: bytes) -> None:
        import alibabacloud_oss_v2 as oss

        await self.client.put_object(oss.PutObjectRequest(bucket=BUCKET, key=key, body=body))
        (self.images if key.startswith("img/") else self.blobs).add(key)

    async def _get(self, key: str, **options: Any) -> tuple[Any, bytes]:
        import alibabacloud_oss_v2 as oss

        try:
            result = await self.client.get_object(oss.GetObjectRequest(bucket=BUCKET, key=key, **options))
        except Exception as exc:
            if error_kind(exc).startswith("HTTP 404"):
                self._forget(key)
            raise
        body = result.body
        try:
            data = body.content if body.is_stream_consumed else await body.read()
        finally:
            await body.close()
        return result, data

    async def get(self, key: str) -> None:
        result, data = await self._get(key)
        if len(data) != result.content_length:
            raise BadAnswer(f"short body: {len(data)} of {result.content_length}")

    async def get_range(self, key: str) -> None:
        result, data = await self._get(key, range_header="bytes=100-1123")
        if result.status_code != 206 or len(data) != 1024:
            raise BadAnswer(f"Range: HTTP {result.status_code}, {len(data)} bytes")

    async def score(self, key: str) -> None:
        from worker.oss.score_contract import parse_score_answer

        _, data = await self._get(key, process="image/score")
        parse_score_answer(data)

    async def head(self, key: str) -> None:
        import alibabacloud_oss_v2 as oss

        try:
            await self.client.head_object(oss.HeadObjectRequest(bucket=BUCKET, key=key))
        except Exception as exc:
            if error_kind(exc).startswith("HTTP 404"):
                self._forget(key)
            raise

    async def list_all(self) -> None:
        import alibabacloud_oss_v2 as oss

        prefix, max_keys = self.rng.choice(LIST_PREFIXES), self.rng.choice((25, 100, 1000))
        token: str | None = None
        for _ in range(50):
            page = await self.client.list_objects_v2(oss.ListObjectsV2Request(
                bucket=BUCKET, prefix=prefix, max_keys=max_keys, continuation_token=token))
            self.ops["LIST pages"] += 1
            token = page.next_continuation_token
            if not page.is_truncated or not token:
                return

    async def delete(self, key: str) -> None:
        import alibabacloud_oss_v2 as oss

        await self.client.delete_object(oss.DeleteObjectRequest(bucket=BUCKET, key=key))
        self._forget(key)

    def _forget(self, key: str) -> None:
        self.images.discard(key)
        self.blobs.discard(key)

    async def run_one(self) -> None:
        await self.pacer.wait()
        label, call = self.plan()
        self.ops[label] += 1
        try:
            await asyncio.wait_for(call(), OP_TIMEOUT_S)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.failed[label] += 1
            self.errors[error_kind(exc)] += 1

    async def loop(self) -> None:
        while True:
            await self.run_one()


def sdk_main(config: dict[str, Any]) -> None:
    from worker.oss.client import open_async_client
    from worker.settings import Credentials

    jpegs = make_jpegs(24, config["seed"])
    targets: list[SdkTarget] = []

    async def traffic(name: str, url: str, rate: float, concurrency: int) -> None:
        async with open_async_client(url, REGION, Credentials(KEY_ID, SECRET), concurrency) as client:
            target = SdkTarget(name, client, Pacer(rate), random.Random(f"{config['seed']}-{name}"), jpegs)
            targets.append(target)
            await asyncio.gather(*(target.loop() for _ in range(concurrency)))

    def report() -> dict:
        return {"ops": {f"{t.name}|{k}": v for t in targets for k, v in t.ops.items()},
                "failed": {f"{t.name}|{k}": v for t in targets for k, v in t.failed.items()},
                "errors": {f"{t.name}|{k}": v for t in targets for k, v in t.errors.items()}}

    _run_until(config["deadline"], [
        traffic("main", config["main"], config["rate"], config["concurrency"]),
        traffic("faults", config["faults"], config["faults_rate"], max(1, config["concurrency"] // 2)),
    ], report)
