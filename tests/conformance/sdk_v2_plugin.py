"""A pytest plugin that run_sdk_v2.py loads into the SDK v2's own suite (``-p sdk_v2_plugin``).

Not a test module and not a conftest: ``make test`` never imports it. Inside the suite's pytest
process it does three things before any test module is imported:

* the network guard: every connection must go to a loopback address, and only ``localhost`` (or a
  ``*.localhost`` name that resolves to loopback) or a loopback IP may be resolved; anything else
  raises ``OSError`` in the test that tried it. The suite's cleanup follows each bucket's
  ``ExtranetEndpoint`` (``oss-<region>.aliyuncs.com``), and a few tests build clients of their own:
  none of that may reach the real service.
* the endpoint check: the suite's ``OSS_TEST_ENDPOINT`` must be loopback (else pytest exits 2).
* the local cleanup: ``tests.integration.clean_buckets``/``clean_bucket`` (called from
  ``TestIntegration.tearDownClass``) are replaced by a best-effort cleanup through the suite's
  default client, which talks to the local endpoint only; errors are swallowed (the server may not
  implement every call the cleanup makes, and its root is a temporary directory anyway).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

_real_getaddrinfo = socket.getaddrinfo
_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _is_loopback_ip(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _is_local_name(host: str) -> bool:
    name = host.lower().rstrip(".")
    return name == "localhost" or name.endswith(".localhost")


def loopback_host(host: str) -> bool:
    """Whether ``host`` (an IP or a name) means this machine; names other than *localhost are not resolved."""
    host = host.strip("[]")
    if _is_loopback_ip(host):
        return True
    if not _is_local_name(host):
        return False
    try:
        infos = _real_getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(_is_loopback_ip(str(info[4][0])) for info in infos)


def _guarded_getaddrinfo(host, *args, **kwargs):  # type: ignore[no-untyped-def]
    if host is not None:
        text = host.decode() if isinstance(host, bytes) else str(host)
        if text and not (_is_loopback_ip(text.strip("[]")) or _is_local_name(text)):
            raise OSError(f"conformance guard: refusing to resolve {text!r} (loopback only)")
    infos = _real_getaddrinfo(host, *args, **kwargs)
    if host is not None:
        for info in infos:
            if info[0] in (socket.AF_INET, socket.AF_INET6) and not _is_loopback_ip(str(info[4][0])):
                raise OSError(f"conformance guard: {host!r} resolves to {info[4][0]} (loopback only)")
    return infos


def _check_address(sock: socket.socket, address: object) -> None:
    inet = sock.family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple)
    if inet and not _is_loopback_ip(str(address[0])):
        raise OSError(f"conformance guard: refusing to connect to {address[0]} (loopback only)")


def _guarded_connect(self: socket.socket, address: object) -> None:
    _check_address(self, address)
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: object) -> int:
    _check_address(self, address)
    return _real_connect_ex(self, address)


def install_network_guard() -> None:
    socket.getaddrinfo = _guarded_getaddrinfo
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]


#: Seconds one class's cleanup may take in all; the rest is left in the temporary root.
CLEANUP_BUDGET = 20.0
#: Pages one listing may take: a server that answers a listing it does not implement with a page
#: that says "truncated" and no next marker must not loop the cleanup forever.
MAX_PAGES = 50


def _pages(list_page, first_marker: str = ""):  # type: ignore[no-untyped-def]
    """Each page of a marker-paged listing, stopping when the marker stops moving."""
    marker, seen = first_marker, set()
    for _ in range(MAX_PAGES):
        page = list_page(marker)
        yield page
        marker = page[1]
        if not page[0] or not marker or marker in seen:
            return
        seen.add(marker)


def _clean_bucket(suite, client, name: str, deadline: float) -> None:  # type: ignore[no-untyped-def]
    oss = suite.oss

    def objects(marker: str):  # type: ignore[no-untyped-def]
        result = client.list_objects(oss.ListObjectsRequest(bucket=name, marker=marker, max_keys=1000))
        keys = [o.key for o in result.contents or []]
        if keys:
            client.delete_multiple_objects(oss.DeleteMultipleObjectsRequest(
                bucket=name, objects=[oss.DeleteObject(key=k) for k in keys], quiet=True))
        return result.is_truncated, result.next_marker or (keys[-1] if keys else "")

    def uploads(marker: str):  # type: ignore[no-untyped-def]
        result = client.list_multipart_uploads(oss.ListMultipartUploadsRequest(bucket=name, key_marker=marker))
        for upload in result.uploads or []:
            with contextlib.suppress(Exception):
                client.abort_multipart_upload(oss.AbortMultipartUploadRequest(
                    bucket=name, key=upload.key, upload_id=upload.upload_id))
        return result.is_truncated, result.next_key_marker

    for listing in (objects, uploads):
        with contextlib.suppress(Exception):
            for _ in _pages(listing):
                if time.monotonic() > deadline:
                    return
    with contextlib.suppress(Exception):
        client.delete_bucket(oss.DeleteBucketRequest(bucket=name))


def _install_local_cleanup() -> None:
    import tests.integration as suite  # the SDK checkout's tests/ (run_sdk_v2.py puts it first on sys.path)

    endpoint = suite.ENDPOINT or ""
    host = urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}").hostname or ""
    if not loopback_host(host):
        pytest.exit(f"conformance: OSS_TEST_ENDPOINT {endpoint!r} is not a loopback address", returncode=2)

    clients = []

    def local_client():  # type: ignore[no-untyped-def]
        # The suite's own settings and endpoint, no retries (a 5xx must not cost back-offs), short timeouts.
        if not clients:
            cfg = suite.oss.config.load_default()
            cfg.credentials_provider = suite.oss.credentials.StaticCredentialsProvider(suite.ACCESS_ID,
                                                                                         suite.ACCESS_KEY)
            cfg.region, cfg.endpoint = suite.REGION, suite.ENDPOINT
            cfg.retry_max_attempts, cfg.connect_timeout, cfg.readwrite_timeout = 1, 5, 10
            clients.append(suite.oss.Client(cfg))
        return clients[0]

    def clean_bucket(props) -> None:  # type: ignore[no-untyped-def]
        # Never the bucket's own (extranet/intranet) endpoint: always the local one.
        _clean_bucket(suite, local_client(), props.name, time.monotonic() + CLEANUP_BUDGET)

    def clean_buckets(prefix: str) -> None:
        deadline = time.monotonic() + CLEANUP_BUDGET
        try:
            result = local_client().list_buckets(suite.oss.ListBucketsRequest(prefix=prefix, max_keys=1000))
        except Exception:
            return
        for props in result.buckets or []:
            if time.monotonic() > deadline:
                return
            _clean_bucket(suite, local_client(), props.name, deadline)

    suite.clean_bucket = clean_bucket
    suite.clean_buckets = clean_buckets


_deselected: list[int] = [0]


def pytest_configure(config: pytest.Config) -> None:
    install_network_guard()
    _install_local_cleanup()


def pytest_report_header(config: pytest.Config) -> str:
    import alibabacloud_oss_v2 as sdk

    return f"alibabacloud_oss_v2 {sdk.__version__} from {Path(sdk.__file__).parent}; network: loopback only"


def pytest_deselected(items: list[pytest.Item]) -> None:
    _deselected[0] += len(items)


def pytest_unconfigure(config: pytest.Config) -> None:
    path = os.environ.get("PICSCORE_CONFORMANCE_DESELECTED")
    if path:  # run_sdk_v2.py reports how many tests the exclusion rule left out
        with contextlib.suppress(OSError), open(path, "w", encoding="utf-8") as out:
            out.write(str(_deselected[0]))
