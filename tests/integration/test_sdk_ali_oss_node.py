"""``ali-oss`` (the official Node.js SDK) against a real ``picscore serve``.

The cases live in ``tests/node/ali_oss_conformance.mjs`` (V1 and V4 signing; IP endpoint with
the client's ``Host`` rewrite, IP + ``sldEnable``, and ``localhost`` + ``sldEnable``; put, get,
head, listings, deletes, ``image/score``, presigned URLs, wrong secret). This wrapper starts
nothing itself: it points the script at the session ``server`` and checks the exit status, then
looks on disk for the object the script leaves behind, so the test cannot pass vacuously.

Node and ``tests/node/node_modules`` are required, not optional: ``make test`` (and so
``.ci/run``) runs ``npm ci --prefix tests/node``. A missing install is a failure, not a skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
import warnings
from pathlib import Path

import pytest

from tests.conftest import ACCESS_KEY_ID, ACCESS_KEY_SECRET, BUCKET
from worker.server.launch import ServerProcess

NODE_DIR = Path(__file__).resolve().parents[1] / "node"
SCRIPT = NODE_DIR / "ali_oss_conformance.mjs"
JPEG = NODE_DIR / "fixtures" / "photo.jpg"
TIMEOUT_S = 240

pytestmark = pytest.mark.node


def _require_node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail("`node` is not on PATH: run `make test-deps` (it installs Node.js as root, or prints the "
                    "apt-get command).", pytrace=False)
    if not (NODE_DIR / "node_modules" / "ali-oss" / "package.json").is_file():
        pytest.fail("tests/node/node_modules/ali-oss is not installed: run `make test-deps` "
                    "(it runs `npm ci --prefix tests/node`).", pytrace=False)
    return node


def test_ali_oss_node_conformance(server: ServerProcess, server_root: Path) -> None:
    node = _require_node()
    run_prefix = f"node-{uuid.uuid4().hex[:12]}"
    env = {
        **os.environ,
        "PICSCORE_URL": server.url,
        "PICSCORE_PORT": str(server.port),
        "BUCKET": BUCKET,
        "OSS_ACCESS_KEY_ID": ACCESS_KEY_ID,
        "OSS_ACCESS_KEY_SECRET": ACCESS_KEY_SECRET,
        "PICSCORE_JPEG": str(JPEG),
        "PICSCORE_RUN_PREFIX": run_prefix,
        "NO_COLOR": "1",
    }
    try:
        result = subprocess.run([node, str(SCRIPT)], check=False, cwd=NODE_DIR, env=env,
                                capture_output=True, text=True, encoding="utf-8",
                                errors="replace", timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout or ""
        if isinstance(out, bytes):  # TimeoutExpired may carry bytes even with text=True
            out = out.decode("utf-8", "replace")
        pytest.fail(f"ali-oss conformance script ran over {TIMEOUT_S} s; output so far:\n{out}",
                    pytrace=False)
    output = result.stdout + (f"\n--- stderr ---\n{result.stderr}" if result.stderr.strip() else "")
    assert result.returncode == 0, f"ali-oss conformance script exited {result.returncode}:\n{output}"
    assert " passed, 0 failed" in result.stdout, output
    if "KNOWN FAILURE" in result.stdout:
        known = [line for line in result.stdout.splitlines() if line.startswith("KNOWN FAILURE  ")]
        warnings.warn("ali-oss known server failures:\n" + "\n".join(known), stacklevel=1)

    # What the script left behind: exactly one object, a non-ASCII key holding the JPEG.
    run_dir = server_root / BUCKET / run_prefix
    kept = run_dir / "keep" / "图片" / "猫 照片.jpg"
    assert kept.is_file(), f"the script's kept object is not on disk at {kept}\n{output}"
    assert kept.read_bytes() == JPEG.read_bytes()
    files = sorted(p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*") if p.is_file())
    assert files == ["keep/图片/猫 照片.jpg"], f"objects left under {run_prefix}/: {files}"
