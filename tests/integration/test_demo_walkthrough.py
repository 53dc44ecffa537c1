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
    # What people do with scores: each photo's cover is its original; a dry run shows the quarantine plan.
    for name in {r["key"].rsplit("/", 1)[1] for r in rows}:
        assert f": originals/{name}  " in result.stdout, name
    would_move = [line for line in result.stdout.splitlines() if line.startswith("would move")]
    assert len(would_move) == 10 and all("oss://demo/damaged/" in line for line in would_move)
    assert "nothing was changed" in result.stdout
    assert (tmp_path / "demo-covers.csv").is_file() and (tmp_path / "demo-low-quality.csv").is_file()
    # The closing hints work as printed, from a shell that has not activated the venv (issue 15, item 18).
    lines = result.stdout.splitlines()
    read_hint = lines[lines.index("Read them with:") + 1].strip()
    shell_env = {**env, "PATH": "/usr/bin:/bin"}
    read = subprocess.run(read_hint, shell=True, env=shell_env, capture_output=True, text=True, timeout=60)
    assert read.returncode == 0 and "originals/" in read.stdout, read.stderr
    export, serve = (line.strip() for line in lines[-2:])
    assert export.startswith("export OSS_ACCESS_KEY_ID=") and " serve --root " in serve
    serve_hint = serve.replace("--port 9000", "--port 0")
    served = subprocess.Popen(f"{export}; exec {serve_hint}", shell=True, env=shell_env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        first = served.stdout.readline()
        assert first.startswith("picscore serve: listening on http://127.0.0.1:"), served.stderr.read()
    finally:
        served.terminate()
        served.wait(timeout=30)
