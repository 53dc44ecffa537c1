"""Headless Chromium for the report's page: Debian's ``chromium`` package driven by Playwright.

Playwright's own browser download is never used (nothing may be fetched at run time): the
browser is the system's, installed by ``tests/system-packages.sh test``. A missing browser fails
these tests instead of skipping them, so CI cannot go green without looking at the page.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .chromium import LAUNCH_ARGS, find_chromium


def chromium_path() -> str:
    found = find_chromium()
    if found is None:
        pytest.fail("no chromium on PATH: install Debian's chromium package (make test-deps does, as root)")
    return found


@dataclass
class OpenedPage:
    """A page opened from disk, with everything it tried to load and everything it logged."""

    page: Any
    url: str
    requests: list[str] = field(default_factory=list)
    console: list[tuple[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def other_requests(self) -> list[str]:
        """Requests other than the page itself (data: URIs are not requests)."""
        return [url for url in self.requests if url != self.url]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path(), args=LAUNCH_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def open_page(browser: Any, path: Path, *, width: int = 1280, height: int = 900) -> OpenedPage:
    """Open ``path`` in a fresh context, recording requests, console messages and page errors."""
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    opened = OpenedPage(page, path.resolve().as_uri())
    page.on("request", lambda request: opened.requests.append(request.url))
    page.on("console", lambda message: opened.console.append((message.type, message.text)))
    page.on("pageerror", lambda error: opened.errors.append(str(error)))
    page.goto(opened.url, wait_until="load")
    return opened
