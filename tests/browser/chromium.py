"""Where Debian's ``chromium`` package put the browser (Playwright's own download is never used)."""

from __future__ import annotations

import shutil

__all__ = ["CHROMIUM_NAMES", "find_chromium", "LAUNCH_ARGS"]

CHROMIUM_NAMES = ("chromium", "chromium-browser")
#: CI and containers run as root, where Chromium's sandbox cannot start.
LAUNCH_ARGS = ["--no-sandbox"]


def find_chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None
