"""``picscore demo`` — what ``make run`` does on a fresh machine — audits the demo bucket end to end."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from worker.demo import build_demo_bucket
from worker.results.formats import read_rows


def test_demo_audits_every_demo_object_into_parquet(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OSS_ACCESS_KEY")}
    output = tmp_path / "results.parquet"
    result = subprocess.run([sys.executable, "-m", "worker.cli", "demo", "--root", str(tmp_path / "root"),
                             "--output", str(output)], env=env, capture_output=True, text=True, timeout=300,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    expected = set(build_demo_bucket(tmp_path / "again"))
    rows = list(read_rows(output))
    assert sorted(r["key"] for r in rows) == sorted(expected)
    assert all(r["status"] == "scored" and 0 <= r["score"] <= 1 for r in rows)
    originals = {r["key"].rsplit("/", 1)[1]: r["score"] for r in rows if r["key"].startswith("originals/")}
    for row in rows:
        if row["key"].startswith("damaged/"):
            assert row["score"] < originals[row["key"].rsplit("/", 1)[1]], row["key"]
    assert str(output.resolve()) in result.stdout
    assert "scored" in result.stdout and "Worst five" in result.stdout
