"""Run the official alibabacloud-oss-python-sdk-v2 integration suite against a fresh ``picscore serve``.

``make conformance SDK_V2=PATH`` runs ``python tests/conformance/run_sdk_v2.py --sdk PATH``, where
PATH is the user's checkout of github.com/aliyun/alibabacloud-oss-python-sdk-v2. Nothing is fetched
and nothing in the checkout is edited (pytest runs there with ``-p no:cacheprovider`` and without
writing bytecode). It is a measurement, not a test: pytest never collects this file.

What it does:

1. The loopback-only guard: ``--host`` (default 127.0.0.1) must be a loopback address or
   ``localhost``, and so must the address the server reports; else exit 2.
2. Starts ``picscore serve`` on a temporary root, a free port, one generated key pair
   (``--credentials``), ``--region cn-hangzhou``.
3. Runs pytest with this venv's Python, cwd = the checkout, the checkout first on ``PYTHONPATH``
   (its ``tests/integration`` imports ``alibabacloud_oss_v2`` by name: the checkout's copy, not the
   installed one, so suite and SDK versions match), ``OSS_TEST_ACCESS_KEY_ID``/``_SECRET``/
   ``_ENDPOINT``/``_REGION`` set and proxies off, over MODULES below. ``sdk_v2_plugin.py`` (next to
   this file) is loaded with ``-p``: it refuses any connection that is not to loopback and replaces
   the suite's bucket cleanup (which follows each bucket's extranet endpoint to the real service)
   with a best-effort one through the local endpoint.
4. The exclusion rule: ``-k "not acl and not version and not kms"`` -- tests whose name (or
   class/module name) mentions ACLs, versioning/versions or KMS; none of those features are
   served. Tests the suite itself skips (``@unittest.skip``) are reported apart.
5. Reads pytest's ``--junitxml`` and prints ``passed X of Y in-scope tests (Z %)`` (Y: the selected
   tests less the suite's own skips), then the failing tests grouped by the first line of their
   error (``<status> <code>`` for an OSS service error), biggest group first.

Exit status: 0 whatever the tests did; 2 on a setup error (no checkout at PATH, a module missing,
a package the suite needs missing from this Python, not loopback, the server or pytest not starting).
Options after ``--`` go to pytest as they are (e.g. ``-- -x``); a path among them (a module of the
suite, a test id) runs instead of MODULES, e.g. ``-- tests/integration/test_presign.py``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import secrets
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

from sdk_v2_plugin import loopback_host  # noqa: E402

from worker.server.launch import start_server  # noqa: E402

MODULES = (
    "tests/integration/test_client.py",
    "tests/integration/test_object_basic.py",
    "tests/integration/test_paginator.py",
    "tests/integration/test_presign.py",
    "tests/integration/test_client_filelike.py",
    "tests/integration/aio/test_object_basic_async.py",
    "tests/integration/aio/test_multipart_upload_async.py",
    "tests/integration/aio/test_paginator_async.py",
    "tests/integration/aio/test_presign_async.py",
    "tests/integration/aio/test_client_extension_async.py",
    "tests/integration/aio/test_bucket_basic_async.py",
    "tests/integration/aio/test_region_async.py",
)
EXCLUDE = "not acl and not version and not kms"
REGION = "cn-hangzhou"
#: Import name -> distribution, for what the suite (and the checkout's SDK) import beyond the standard library.
NEEDED = {"requests": "requests", "aiohttp": "aiohttp", "crcmod": "crcmod-plus", "Crypto": "pycryptodome",
          "pytest": "pytest"}
SETUP_ERROR = 2


class SetupError(Exception):
    pass


def check_checkout(sdk: Path) -> None:
    markers = (sdk / "alibabacloud_oss_v2" / "__init__.py", sdk / "tests/integration/__init__.py")
    if not all(marker.is_file() for marker in markers):
        raise SetupError(f"{sdk} is not a checkout of alibabacloud-oss-python-sdk-v2 "
                         "(no alibabacloud_oss_v2/ or tests/integration/__init__.py)")
    missing = [m for m in MODULES if not (sdk / m).is_file()]
    if missing:
        raise SetupError(f"{sdk} lacks {', '.join(missing)}")
    absent = sorted(f"{dist} (import {name})" for name, dist in NEEDED.items()
                    if importlib.util.find_spec(name) is None)
    if absent:
        raise SetupError(f"{sys.executable} lacks what the suite imports: {', '.join(absent)}")


def suite_env(sdk: Path, endpoint: str, key_id: str, secret: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("OSS_") and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    env.update({
        "OSS_TEST_ACCESS_KEY_ID": key_id,
        "OSS_TEST_ACCESS_KEY_SECRET": secret,
        "OSS_TEST_ENDPOINT": endpoint,
        "OSS_TEST_REGION": REGION,
        "NO_PROXY": "127.0.0.1,localhost,::1",
        "no_proxy": "127.0.0.1,localhost,::1",
        "PYTHONDONTWRITEBYTECODE": "1",
        # the checkout first: its alibabacloud_oss_v2 and its tests package; then this plugin
        "PYTHONPATH": os.pathsep.join([str(sdk), str(HERE)]),
    })
    return env


def node_id(case: ET.Element) -> str:
    """``tests.integration.aio.test_x.TestY`` + ``test_z`` -> ``aio/test_x.py::TestY::test_z``."""
    parts = case.get("classname", "").split(".")
    if parts[:2] == ["tests", "integration"]:
        parts = parts[2:]
    module = [p for p in parts if p[:1].islower()]
    classes = parts[len(module):]
    return "::".join(["/".join(module) + ".py", *classes, case.get("name", "")])


_STATUS = re.compile(r"Http Status Code:\s*(\d+)")
_CODE = re.compile(r"Error Code:\s*([^.\s]+)")
_OPERATION = re.compile(r"operation error (\w+)")
_NOISE = ((re.compile(r"python-sdk-test-bucket-[a-z0-9-]+"), "<bucket>"),
          (re.compile(r"python-sdk-test-object-[A-Za-z0-9_-]+"), "<object>"),
          (re.compile(r"\b[0-9A-F]{24}\b"), "<request-id>"),
          (re.compile(r"0x[0-9a-f]{6,}"), "0x…"))


def error_key(outcome: ET.Element) -> str:
    """The group a failure falls in: ``<status> <code>`` for a service error, else its first line."""
    text = outcome.get("message") or outcome.text or ""
    status, code = _STATUS.search(text), _CODE.search(text)
    if status and code:
        return f"{status[1]} {code[1]}"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    first = lines[0] if lines else outcome.tag
    for pattern, replacement in _NOISE:
        first = pattern.sub(replacement, first)
    prefix = "setup: " if first.startswith("failed on setup") else ""
    return prefix + (first if len(first) <= 160 else first[:157] + "...")


def outcome(case: ET.Element) -> tuple[str, ET.Element | None, ET.Element | None]:
    """(passed|failed|skipped, what failed, a class-cleanup error): a teardown error (the suite's
    tearDownClass, reported on a class's last test) does not change its test's own outcome."""
    failure = next((c for c in case if c.tag == "failure"), None)
    errors = [c for c in case if c.tag == "error"]
    teardown = next((e for e in errors if (e.get("message") or "").startswith("failed on teardown")), None)
    error = next((e for e in errors if e is not teardown), None)
    if failure is not None or error is not None:
        return "failed", failure if failure is not None else error, teardown
    if any(c.tag == "skipped" for c in case):
        return "skipped", None, teardown
    return "passed", None, teardown


def summarise(junit: Path, deselected: str, out=sys.stdout) -> None:
    counts, groups, cleanup = defaultdict(int), defaultdict(list), []
    for case in ET.parse(junit).getroot().iter("testcase"):
        result, bad, teardown = outcome(case)
        counts[result] += 1
        if bad is not None:
            operation = _OPERATION.search(bad.get("message") or bad.text or "")
            groups[error_key(bad)].append(node_id(case) + (f"  [{operation[1]}]" if operation else ""))
        if teardown is not None:
            cleanup.append(f"{node_id(case)}: {error_key(teardown)}")
    passed, failed = counts["passed"], counts["failed"]
    total = passed + failed
    share = 100.0 * passed / total if total else 0.0
    print(f"passed {passed} of {total} in-scope tests ({share:.1f} %)", file=out)
    print(f"(left out: {deselected} by -k \"{EXCLUDE}\", {counts['skipped']} skipped by the suite itself)",
          file=out)
    if groups:
        print(f"\n{failed} failing, by the first line of their error:", file=out)
        for key, tests in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])):
            print(f"{len(tests):4d}  {key}", file=out)
            for name in sorted(tests):
                print(f"        {name}", file=out)
    if cleanup:
        print(f"\n{len(cleanup)} class cleanups (tearDownClass) failed:", file=out)
        for line in cleanup:
            print(f"        {line}", file=out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sdk", required=True, help="a checkout of alibabacloud-oss-python-sdk-v2")
    parser.add_argument("--host", default="127.0.0.1", help="loopback address for the server (default 127.0.0.1)")
    parser.add_argument("--timeout", type=int, default=180, help="seconds per test (pytest-timeout; default 180)")
    parser.add_argument("--junitxml", type=Path, help="also keep pytest's JUnit XML here")
    parser.add_argument("pytest_args", nargs="*", help="after --: more pytest options")
    args = parser.parse_args(argv)

    try:
        if not args.sdk:
            raise SetupError("no SDK checkout given: make conformance SDK_V2=/path/to/alibabacloud-oss-python-sdk-v2")
        sdk = Path(args.sdk).expanduser().resolve()
        check_checkout(sdk)
        if not loopback_host(args.host):
            raise SetupError(f"--host {args.host!r} is not a loopback address: the suite runs against 127.0.0.1 only")
    except SetupError as exc:
        print(f"conformance: {exc}", file=sys.stderr)
        return SETUP_ERROR

    key_id, secret = f"LTAIconf{secrets.token_hex(6)}", secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory(prefix="picscore-conformance-") as tmp:
        work = Path(tmp)
        (work / "root").mkdir()
        creds = work / "credentials"
        creds.write_text(f"{key_id}:{secret}\n", encoding="utf-8")
        creds.chmod(0o600)
        try:
            server = start_server(work / "root", {}, args=["--host", args.host, "--credentials", str(creds),
                                                         "--region", REGION, "--workers", "1",
                                                         "--log-level", "warning"])
        except RuntimeError as exc:
            print(f"conformance: {exc}", file=sys.stderr)
            return SETUP_ERROR
        with server:
            endpoint = server.url
            if not loopback_host(urlsplit(endpoint).hostname or ""):
                print(f"conformance: the server listens on {endpoint}, not loopback", file=sys.stderr)
                return SETUP_ERROR
            version = re.search(r"VERSION\s*=\s*['\"]([^'\"]+)", (sdk / "alibabacloud_oss_v2/_version.py").read_text())
            print(f"conformance: picscore serve at {endpoint}; the suite and alibabacloud_oss_v2 "
                  f"{version[1] if version else '?'} from {sdk}", flush=True)
            junit = args.junitxml.resolve() if args.junitxml else work / "junit.xml"
            env = suite_env(sdk, endpoint, key_id, secret)
            env["PICSCORE_CONFORMANCE_DESELECTED"] = str(work / "deselected")
            # paths among the extra arguments (a module, a test id) replace MODULES
            chosen = [a for a in args.pytest_args if not a.startswith("-") and (".py" in a)] or list(MODULES)
            options = [a for a in args.pytest_args if a not in chosen]
            command = [sys.executable, "-m", "pytest", *chosen, "-p", "sdk_v2_plugin", "-p", "no:cacheprovider",
                       "--rootdir", str(sdk), "-k", EXCLUDE, f"--junitxml={junit}", "-o", "junit_family=xunit1",
                       f"--timeout={args.timeout}", "-o", "asyncio_default_fixture_loop_scope=function",
                       "--disable-warnings", "-q", "-rN", "--tb=line", *options]
            rc = subprocess.run(command, cwd=sdk, env=env, check=False).returncode
        if rc not in (0, 1) or not junit.is_file():
            print(f"conformance: pytest did not run the suite (exit {rc})", file=sys.stderr)
            return SETUP_ERROR
        print(flush=True)
        deselected = work / "deselected"
        summarise(junit, deselected.read_text().strip() if deselected.is_file() else "?")
    return 0


if __name__ == "__main__":
    sys.exit(main())
