"""The listing source against a real ``picscore serve`` (synthetic bucket: listed objects with no
files behind them) through the real SDK paginator: page sizing and what each page carries."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.conftest import ACCESS_KEY_ID, ACCESS_KEY_SECRET
from worker.batch.items import WorkItem
from worker.batch.ledger import ResumeLedger
from worker.batch.listing_source import MIN_PAGE_SIZE, PAGE_SIZE, ListingSource, page_size_for
from worker.batch.pages import PageOffer
from worker.oss.client import build_async_client
from worker.oss.retry import RetryPolicy, retrying
from worker.server.launch import ServerProcess, start_server

OBJECTS = 250
CREDS = SimpleNamespace(access_key_id=ACCESS_KEY_ID, access_key_secret=ACCESS_KEY_SECRET, session_token=None)


@pytest.mark.parametrize(("concurrency", "expected"), [(1, MIN_PAGE_SIZE), (12, MIN_PAGE_SIZE), (16, 128),
                                                       (64, 512), (125, PAGE_SIZE), (4096, PAGE_SIZE)])
def test_page_size_grows_with_concurrency_within_the_api_bounds(concurrency: int, expected: int) -> None:
    assert page_size_for(concurrency) == expected


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root: Path = tmp_path_factory.mktemp("synthetic")
    server = start_server(root, {ACCESS_KEY_ID: ACCESS_KEY_SECRET},
                          args=["--synthetic-bucket", f"many={OBJECTS}", "--fake-score-latency", "0ms"])
    yield server
    server.stop()


async def _produce(server: ServerProcess, page_size: int) -> tuple[list[WorkItem], ResumeLedger]:
    queue: asyncio.Queue[WorkItem | None] = asyncio.Queue()
    progress = ResumeLedger({})

    async def nothing_done(pairs: list[tuple[str, str]]) -> set[tuple[str, str]]:
        return set()

    async with build_async_client(server.url, "cn-hangzhou", CREDS, 2) as client:
        policy = RetryPolicy(attempts=2, total_s=10.0, base_s=0.01, max_backoff_s=0.05)
        source = ListingSource(client, "many", [""], retrying(policy), PageOffer(nothing_done),
                               page_size=page_size)
        await source.run(queue, progress)
    return [queue.get_nowait() for _ in range(queue.qsize())], progress


async def test_pages_of_the_requested_size_cover_the_bucket_once(synthetic: ServerProcess) -> None:
    items, progress = await _produce(synthetic, page_size=MIN_PAGE_SIZE)
    assert len({item.ref.key for item in items}) == len(items) == OBJECTS
    sizes = [sum(1 for item in items if item.page == page) for page in sorted({item.page for item in items})]
    assert sizes == [100, 100, 50]
    assert progress.open_pages == 3  # nothing written yet: every page still holds its objects


async def test_one_page_when_it_holds_the_whole_prefix(synthetic: ServerProcess) -> None:
    items, _ = await _produce(synthetic, page_size=PAGE_SIZE)
    assert {item.page for item in items} == {items[0].page} and len(items) == OBJECTS
