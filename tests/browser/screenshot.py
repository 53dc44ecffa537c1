"""The README's screenshot of ``picscore report``, made by the browser the tests use.

    python -m tests.browser.screenshot var/demo-report.html tests/browser/report-screenshot.jpg

(``make report-screenshot`` runs ``make run`` first, which writes the demo's report.)
"""

from __future__ import annotations

import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

from tests.browser.chromium import LAUNCH_ARGS, find_chromium


def main(page_path: str, out: str, width: int = 1000, height: int = 900) -> int:
    browser_path = find_chromium()
    if browser_path is None:
        print("no chromium on PATH: apt-get install chromium", file=sys.stderr)
        return 1
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=browser_path, args=LAUNCH_ARGS)
        page = browser.new_page(viewport={"width": width, "height": height}, device_scale_factor=1)
        page.goto(Path(page_path).resolve().as_uri(), wait_until="load")
        page.screenshot(path=out, full_page=True, type="jpeg", quality=80)
        browser.close()
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
