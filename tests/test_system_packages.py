"""``tests/system-packages.sh``: what ``make run`` and ``make test`` need beyond Python packages.
Without apt-get (or without root) it must stop at once and print the one command to run; with
everything present it says nothing and succeeds."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent / "system-packages.sh"


def tools(tmp_path: Path, *names: str) -> str:
    """A PATH holding only ``names`` (plus the python3 running these tests)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(sys.executable)
    for name in names:
        found = shutil.which(name)
        if found is None:
            pytest.fail(f"{name} is not installed here")
        (bin_dir / name).symlink_to(found)
    return str(bin_dir)


def run(target: str, path: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([shutil.which("bash") or "/bin/bash", str(SCRIPT), target], env={**os.environ, "PATH": path},
                          capture_output=True, text=True, timeout=30)


def test_missing_test_tools_stop_at_once_with_the_command_to_run(tmp_path: Path) -> None:
    done = run("test", tools(tmp_path, "tr", "id"))  # no apt-get on PATH: nothing is installed
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert lines[0].startswith("make test needs these system packages: nodejs npm")
    assert lines[1].startswith("install them, then run make again:  sudo apt-get install -y nodejs npm")
    assert "kubernetes-client" in lines[1] and "prometheus" in lines[1]


def test_make_run_needs_no_test_tools(tmp_path: Path) -> None:
    done = run("run", tools(tmp_path, "tr", "id"))
    assert (done.returncode, done.stderr) == (0, "")


def test_nothing_to_do_when_everything_is_there() -> None:
    done = run("test", os.environ["PATH"])
    if done.returncode != 0:
        pytest.fail(f"this machine lacks what make test needs: {done.stderr}")
    assert done.stderr == ""
