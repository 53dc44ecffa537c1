"""The command line as a new user meets it: a mistyped option gets the command's own usage and
the closest real option, not the top-level usage (issue 15, item 18)."""

from __future__ import annotations

import subprocess
import sys

from tests.integration.runhelpers import REPO, run_env


def picscore(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "worker.cli", *args], env=run_env(), cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def test_a_mistyped_option_gets_the_commands_usage_and_the_closest_option() -> None:
    done = picscore("run", "--concurency", "4", "--bucket", "photos")
    assert done.returncode == 2
    assert done.stderr.startswith("usage: picscore run ")
    assert "picscore run: error: unrecognized arguments: --concurency 4" in done.stderr
    assert "--concurency: did you mean --concurrency?" in done.stderr


def test_an_unknown_option_with_nothing_close_is_still_named() -> None:
    done = picscore("score", "--frobnicate", str(REPO / "README.md"))
    assert done.returncode == 2
    assert done.stderr.startswith("usage: picscore score ")
    assert "unrecognized arguments: --frobnicate" in done.stderr and "did you mean" not in done.stderr
