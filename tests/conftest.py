"""Shared fixtures: a real ``picscore serve`` process on 127.0.0.1 and SDK clients for it.

Tests talk to the server exactly as users do — a child process on a kernel-chosen port,
reached through the unmodified official SDKs — so what passes here works for them.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from worker.server.launch import ServerProcess, start_server

#: Test folders whose tests run whole programs (servers, the CLI, kubectl, Docker builds, Node):
#: marked ``integration``, left out of ``make test-fast``.
INTEGRATION_DIRS = ("integration", "deploy", "node", "browser")

#: The test pair the SDK request captures in tests/server/vectors were signed with; never a real account's.
ACCESS_KEY_ID = "LTAI5tTESTACCESSKEY"
ACCESS_KEY_SECRET = "TestSecretKey0123456789abcdefXYZ"
BUCKET = "testbucket"


def make_jpeg(width: int = 320, height: int = 240, seed: int = 0, quality: int = 90) -> bytes:
    """A small textured colour photo-like JPEG (smooth gradients plus detail), deterministic."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([128 + 80 * np.sin(x / 23 + seed), 128 + 80 * np.cos(y / 17), 128 + 60 * np.sin((x + y) / 31)], -1)
    detail = rng.normal(0, 6, (height, width, 1)).astype(np.float32)
    pixels = np.clip(base + detail, 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def server_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("oss-root")
    (root / BUCKET).mkdir()
    return root


@pytest.fixture(scope="session")
def server(server_root: Path) -> Iterator[ServerProcess]:
    """One server for the session, two scoring workers, no faults."""
    with start_server(server_root, {ACCESS_KEY_ID: ACCESS_KEY_SECRET}, args=["--workers", "2"]) as proc:
        yield proc


@pytest.fixture()
def oss_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDKs' EnvironmentVariableCredentialsProvider reads these."""
    monkeypatch.setenv("OSS_ACCESS_KEY_ID", ACCESS_KEY_ID)
    monkeypatch.setenv("OSS_ACCESS_KEY_SECRET", ACCESS_KEY_SECRET)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test under an integration folder, so ``-m "not integration"`` is the fast loop."""
    tests_dir = Path(__file__).resolve().parent
    for item in items:
        parts = Path(str(item.path)).resolve().relative_to(tests_dir).parts
        if parts and parts[0] in INTEGRATION_DIRS:
            item.add_marker(pytest.mark.integration)
