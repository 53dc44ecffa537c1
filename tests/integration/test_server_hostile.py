"""Requests no official SDK sends, from clients that mean harm: each is refused with the error OSS
answers, the error body always parses as XML, and the server keeps serving everyone else.

Against real ``picscore serve`` processes, over raw sockets and ``http.client``, with requests
signed here by hand (OSS Signature V1, "Include a V1 signature in the Authorization header":
https://www.alibabacloud.com/help/en/oss/developer-reference/include-signatures-in-the-authorization-header)
where the point is a request an SDK would refuse to build.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import http.client
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterable, Iterator
from datetime import timedelta
from email.utils import formatdate
from pathlib import Path
from urllib.parse import urlsplit
from xml.etree import ElementTree
from xml.sax.saxutils import escape

import alibabacloud_oss_v2 as oss
import pytest

from tests.conftest import ACCESS_KEY_ID, ACCESS_KEY_SECRET, BUCKET
from tests.integration.rawclient import RawResponse, presign, sdk_client, send, signed
from worker.server.launch import ServerProcess, start_command, start_server

_MIB = 1 << 20
_CREDENTIALS = {ACCESS_KEY_ID: ACCESS_KEY_SECRET}


# -- helpers -------------------------------------------------------------------------------------
def _v1_signed(method: str, resource: str, headers: dict[str, str]) -> dict[str, str]:
    """``headers`` plus ``Date`` and ``Authorization: OSS id:signature`` for ``resource``.

    The V1 string to sign covers Content-MD5 and Content-Type but never the body: that is why
    OSS insists on Content-MD5 where the body decides what happens (DeleteMultipleObjects).
    """
    date = formatdate(usegmt=True)
    oss_headers = "".join(f"{name.lower()}:{value.strip()}\n" for name, value in
                          sorted(headers.items(), key=lambda item: item[0].lower())
                          if name.lower().startswith("x-oss-"))
    string_to_sign = (f"{method}\n{headers.get('Content-MD5', '')}\n{headers.get('Content-Type', '')}\n"
                      f"{date}\n{oss_headers}{resource}")
    digest = hmac.new(ACCESS_KEY_SECRET.encode(), string_to_sign.encode(), hashlib.sha1).digest()
    return {**headers, "Date": date, "Authorization": f"OSS {ACCESS_KEY_ID}:{base64.b64encode(digest).decode()}"}


def _md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def _delete_xml(*keys: str) -> bytes:
    objects = "".join(f"<Object><Key>{escape(key)}</Key></Object>" for key in keys)
    return f'<?xml version="1.0" encoding="UTF-8"?><Delete><Quiet>false</Quiet>{objects}</Delete>'.encode()


def _delete(server: ServerProcess, body: bytes, content_md5: str | None) -> RawResponse:
    headers = {"Content-Type": "application/xml"}
    if content_md5 is not None:
        headers["Content-MD5"] = content_md5
    return send(f"{server.url}/{BUCKET}/?delete", "POST", body, _v1_signed("POST", f"/{BUCKET}/?delete", headers))


def _error_document(response: RawResponse) -> ElementTree.Element:
    """The error body (or HEAD's ``x-oss-err``) parsed by a strict XML 1.0 parser, tied to the
    response by its RequestId."""
    text = response.body or base64.b64decode(response.headers["x-oss-err"])
    root = ElementTree.fromstring(text)  # raises ParseError on an ill-formed document
    assert root.tag == "Error"
    assert root.findtext("RequestId") == response.headers["x-oss-request-id"]
    return root


def _vm_kib(pid: int, field: str) -> int:
    """A ``/proc/<pid>/status`` memory field (VmRSS, VmHWM) in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for pid {pid}")


def _peak_growth_mib(pid: int, action) -> float:
    """By how much ``action()`` raises the process's peak RSS: the peak (VmHWM) is reset to the
    current RSS first (``clear_refs`` 5, Linux 4.0+), so earlier peaks do not hide this one."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    before = _vm_kib(pid, "VmRSS")
    action()
    return (_vm_kib(pid, "VmHWM") - before) / 1024


def _closed_by(sock: socket.socket, deadline: float) -> bool:
    """Whether the server closes ``sock`` (EOF or reset) before ``deadline`` (monotonic)."""
    sock.settimeout(max(0.01, deadline - time.monotonic()))
    try:
        while sock.recv(65536):
            pass  # whatever the server says before closing
    except TimeoutError:
        return False
    except OSError:
        return True  # reset
    return True


def _still_serving(url: str, key: str = "hostile/alive.txt") -> None:
    assert signed(url, "PUT", key, body=b"alive").status == 200
    response = signed(url, "GET", key)
    assert (response.status, response.body) == (200, b"alive")


@pytest.fixture(scope="module")
def lean_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server of this module's own (its memory is measured), with no scoring processes."""
    root = tmp_path_factory.mktemp("hostile-root")
    (root / BUCKET).mkdir()
    with start_server(root, _CREDENTIALS, args=["--fake-score-latency", "1ms"]) as proc:
        yield proc


# -- DeleteMultipleObjects: Content-MD5 ties the key list to the signature -----------------------
def test_delete_multiple_requires_and_verifies_content_md5(server: ServerProcess) -> None:
    """OSS requires Content-MD5 on DeleteMultipleObjects and checks it against the body
    ("DeleteMultipleObjects": https://www.alibabacloud.com/help/en/oss/developer-reference/deletemultipleobjects;
    a missing header is EC 0016-00000606: https://www.alibabacloud.com/help/en/oss/user-guide/0016-00000606).
    The body is not signed, so without the check whoever holds one signed request can delete
    any other keys by swapping the XML under the same signature."""
    target, bystander = "hostile/delete/target.txt", "hostile/delete/bystander.txt"
    for key in (target, bystander):
        assert signed(server.url, "PUT", key, body=b"keep me").status == 200
    md5_of_target_list = _md5(_delete_xml(target))

    swapped = _delete(server, _delete_xml(bystander), md5_of_target_list)
    assert (swapped.status, swapped.code) == (400, "InvalidDigest"), swapped.body
    missing = _delete(server, _delete_xml(bystander), None)
    assert (missing.status, missing.code) == (400, "MissingArgument"), missing.body
    assert b"<EC>0016-00000606</EC>" in missing.body
    malformed = _delete(server, _delete_xml(bystander), "bm90LWFuLW1kNQ==")
    assert (malformed.status, malformed.code) == (400, "InvalidDigest"), malformed.body
    assert signed(server.url, "GET", bystander).status == 200, "a refused request deleted nothing"

    honest = _delete(server, _delete_xml(target), md5_of_target_list)
    assert honest.status == 200, honest.body
    assert [el.text for el in ElementTree.fromstring(honest.body).iter("Key")] == [target]
    assert signed(server.url, "GET", target).status == 404
    assert signed(server.url, "GET", bystander).status == 200


# -- POST bodies are read up to a cap, never buffered whole --------------------------------------
def _block_stream(total: int, chunked: bool) -> Iterator[bytes]:
    block = b"x" * _MIB
    for _ in range(total // _MIB):
        yield (b"%x\r\n" % len(block) + block + b"\r\n") if chunked else block
    if chunked:
        yield b"0\r\n\r\n"


def _post_streaming(port: int, target: str, headers: dict[str, str], body: Iterable[bytes]) -> RawResponse:
    """Send the headers, stream ``body`` from a thread, and read the answer as soon as it comes:
    a server that refuses early answers before the body is through."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    head = f"POST {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n"
    sock.sendall(head.encode())

    def pump() -> None:
        with contextlib.suppress(OSError):  # the server may stop reading and close: expected
            for chunk in body:
                sock.sendall(chunk)

    sender = threading.Thread(target=pump, daemon=True)
    sender.start()
    try:
        response = http.client.HTTPResponse(sock)
        response.begin()
        return RawResponse(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sender.join(60)
        sock.close()


@pytest.mark.parametrize("operation", ["delete", "process"])
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_oversized_post_body_is_refused_without_buffering_it(lean_server: ServerProcess, operation: str,
                                                            framing: str) -> None:
    """A 64 MB POST (DeleteMultipleObjects, or ProcessObject's form) is refused with 400
    EntityTooLarge (OSS: EC 0017-00000501, "the request body exceeds the operation's limit":
    https://help.aliyun.com/zh/oss/user-guide/0017-00000501) — at once when Content-Length
    says so, after at most the cap when the body is chunked — and the server's peak memory
    (VmHWM) grows by far less than the body: it never holds it."""
    key = "hostile/post/photo.jpg"
    assert signed(lean_server.url, "PUT", key, body=b"not really a photo").status == 200
    if operation == "delete":
        target, resource = f"/{BUCKET}/?delete", f"/{BUCKET}/?delete"
        headers = {"Content-MD5": _md5(b""), "Content-Type": "application/xml"}
    else:
        target = resource = f"/{BUCKET}/{key}?x-oss-process"
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
    headers = _v1_signed("POST", resource, headers)
    total = 64 * _MIB
    if framing == "chunked":
        headers["Transfer-Encoding"] = "chunked"
    else:
        headers["Content-Length"] = str(total)
    answers: list[RawResponse] = []
    grown_mib = _peak_growth_mib(lean_server.process.pid, lambda: answers.append(_post_streaming(
        lean_server.port, target, headers, _block_stream(total, framing == "chunked"))))

    assert grown_mib < 24, f"peak RSS grew by {grown_mib:.0f} MiB for a refused 64 MiB body"
    response, = answers
    assert (response.status, response.code) == (400, "EntityTooLarge"), response.body[:500]
    _error_document(response)
    _still_serving(lean_server.url)


def test_delete_body_of_many_elements_is_refused_without_building_them(lean_server: ServerProcess) -> None:
    """Under the size cap a body can still be 400,000 empty ``<Object/>`` elements, which a
    tree parser would turn into hundreds of MB; the server stops parsing past the 1,000 keys
    OSS allows in one request (400 MalformedXML) and its peak memory barely moves."""
    body = b'<?xml version="1.0" encoding="UTF-8"?><Delete>' + b"<Object/>" * 400_000 + b"</Delete>"
    answers: list[RawResponse] = []
    grown_mib = _peak_growth_mib(lean_server.process.pid,
                                 lambda: answers.append(_delete(lean_server, body, _md5(body))))
    assert grown_mib < 24, f"peak RSS grew by {grown_mib:.0f} MiB parsing a {len(body) >> 20} MiB body"
    assert (answers[0].status, answers[0].code) == (400, "MalformedXML"), answers[0].body[:500]


# -- idle and slow connections, and the file-descriptor limit ------------------------------------
_TUNED_SERVER = textwrap.dedent("""
    import asyncio, os, sys
    from pathlib import Path
    from worker.server.app import ServerConfig, serve

    config = ServerConfig(
        root=Path(sys.argv[1]),
        credentials={os.environ["OSS_ACCESS_KEY_ID"]: os.environ["OSS_ACCESS_KEY_SECRET"]},
        port=0, header_timeout_s=float(sys.argv[2]), keepalive_timeout_s=float(sys.argv[3]),
        fake_score_latency_s=0.001)
    asyncio.run(serve(config, on_ready=lambda host, port: print(f"listening on http://{host}:{port}", flush=True)))
""")
_HEADER_TIMEOUT_S = 1.0
_KEEPALIVE_TIMEOUT_S = 2.0
_SLACK_S = 2.5


@pytest.fixture(scope="module")
def tuned_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server with a 1 s header timeout and a 2 s keep-alive (the defaults are 20 s and 60 s;
    ``picscore serve`` has no flags for them, so the config is built here)."""
    root = tmp_path_factory.mktemp("tuned-root")
    (root / BUCKET).mkdir()
    command = [sys.executable, "-c", _TUNED_SERVER, str(root), str(_HEADER_TIMEOUT_S), str(_KEEPALIVE_TIMEOUT_S)]
    with start_command(command, _CREDENTIALS) as proc:
        yield proc


def test_silent_and_slow_header_connections_are_closed(tuned_server: ServerProcess) -> None:
    """Connections that send nothing, or trickle header lines without ever finishing them, are
    closed once the header timeout passes (bytes arriving do not extend it), while a normal
    request is served meanwhile. Without this aiohttp keeps them for its default keep-alive,
    an hour: a thousand of them exhaust the server's file descriptors."""
    opened = time.monotonic()
    silent = [socket.create_connection(("127.0.0.1", tuned_server.port)) for _ in range(50)]
    slow = socket.create_connection(("127.0.0.1", tuned_server.port))
    slow.sendall(f"GET /{BUCKET}/x HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode())
    stop = threading.Event()

    def trickle() -> None:
        while not stop.wait(0.2):
            try:
                slow.sendall(b"X-Slow: still-coming\r\n")
            except OSError:
                return

    trickler = threading.Thread(target=trickle, daemon=True)
    trickler.start()
    try:
        _still_serving(tuned_server.url)
        deadline = opened + _HEADER_TIMEOUT_S + _SLACK_S
        still_open = [i for i, sock in enumerate(silent) if not _closed_by(sock, deadline)]
        assert still_open == [], f"{len(still_open)} silent connections outlived the header timeout"
        assert _closed_by(slow, deadline), "a slow-header connection outlived the header timeout"
        assert time.monotonic() - opened >= _HEADER_TIMEOUT_S - 0.2
    finally:
        stop.set()
        trickler.join(5)
        for sock in [*silent, slow]:
            sock.close()
    _still_serving(tuned_server.url)


def test_idle_and_slow_keep_alive_connections_are_closed(tuned_server: ServerProcess) -> None:
    """After a response, a kept-alive connection gets the keep-alive timeout to start its next
    request and finish that request's headers; then the server closes it."""
    for trickled in (False, True):
        parts = urlsplit(presign(tuned_server.url, "GET", "hostile/keepalive.txt"))
        path = f"{parts.path}?{parts.query}"
        conn = http.client.HTTPConnection("127.0.0.1", tuned_server.port, timeout=10)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            assert response.status == 404 and not response.will_close
            answered = time.monotonic()
            sock = conn.sock
            assert sock is not None
            if trickled:
                sock.sendall(b"GET /x HTTP/1.1\r\n")
                for _ in range(3):
                    time.sleep(0.4)
                    sock.sendall(b"X-Slow: y\r\n")
            assert _closed_by(sock, answered + _KEEPALIVE_TIMEOUT_S + _SLACK_S), f"trickled={trickled}"
        finally:
            conn.close()


def _open_files_limit(pid: int) -> tuple[int, int]:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError("no open-files limit")


def test_soft_open_files_limit_is_raised_so_many_connections_fit(tmp_path: Path) -> None:
    """Every connection is a file descriptor. Started with a soft limit of 128 (a common default
    is 1024), the server raises it to the hard limit at start, so 200 idle connections do
    not lock everyone else out (accept() failing with EMFILE)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 512:  # this process holds 200 sockets too, and the child inherits the hard limit
        pytest.skip(f"needs an open-files limit of at least 512 here (soft {soft}, hard {hard})")
    (tmp_path / BUCKET).mkdir()
    serve = [sys.executable, "-m", "worker.cli", "serve", "--root", str(tmp_path), "--port", "0",
             "--fake-score-latency", "1ms"]
    command = ["bash", "-c", 'ulimit -S -n 128 && exec "$@"', "bash", *serve]
    with start_command(command, _CREDENTIALS) as server:
        child_soft, child_hard = _open_files_limit(server.process.pid)
        assert child_soft == child_hard or child_soft >= 65536, (child_soft, child_hard)
        idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(200)]
        try:
            time.sleep(0.2)  # let the server accept them all
            _still_serving(server.url)
        finally:
            for sock in idle:
                sock.close()


# -- errors aiohttp raises itself come back as OSS XML -------------------------------------------
@pytest.mark.parametrize("case", ["20 KB header line", "200 headers", "20 KB request line"])
def test_protocol_errors_are_answered_with_oss_xml(server: ServerProcess, case: str) -> None:
    """A header line over 8190 bytes, more than 128 headers or an over-long request line fail in
    aiohttp's parser, before any handler runs; the answer is still OSS's error XML with a
    RequestId equal to ``x-oss-request-id``, not aiohttp's ``text/plain``."""
    url, headers = f"{server.url}/{BUCKET}/x.jpg", {}
    if case == "20 KB header line":
        headers = {"X-Long": "a" * 20_000}
    elif case == "200 headers":
        headers = {f"X-Many-{i}": "v" for i in range(200)}
    else:
        url += "?" + "a" * 20_000
    response = send(url, headers=headers)
    assert response.status == 400
    assert response.headers["content-type"].startswith("application/xml")
    assert _error_document(response).findtext("Code") == "BadRequest"
    _still_serving(server.url)


def test_an_unknown_expectation_is_answered_417_with_oss_xml_and_100_continue_still_works(
        server: ServerProcess) -> None:
    """aiohttp answers an unknown ``Expect`` with a plain-text 417; the server's expect handler
    answers it with OSS error XML and a RequestId, and still lets ``100-continue`` through (the
    SDKs send it for uploads)."""
    refused = send(f"{server.url}/{BUCKET}/x.jpg", headers={"Expect": "tea"})
    assert refused.status == 417
    assert refused.headers["content-type"].startswith("application/xml")
    document = _error_document(refused)
    assert document.findtext("Code") == "InvalidArgument"
    assert document.findtext("RequestId") == refused.headers["x-oss-request-id"]
    url = urlsplit(presign(server.url, "PUT", "hostile/expect.txt"))
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(f"PUT {url.path}?{url.query} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n"
                     "Expect: 100-continue\r\n\r\n".encode())
        assert sock.recv(64).startswith(b"HTTP/1.1 100 Continue")
        sock.sendall(b"hello")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")


# -- error bodies are well-formed XML whatever was echoed ----------------------------------------
def test_control_character_in_key_is_echoed_as_well_formed_xml(server: ServerProcess) -> None:
    """XML 1.0 cannot carry U+0001 at all (not even as ``&#1;``); the echoed Key shows it as
    ``\\x01`` so that the body parses (NoSuchKey echoes the key; such keys are valid, as on OSS)."""
    response = signed(server.url, "GET", "ctl\x01char.jpg")
    assert (response.status, response.code) == (404, "NoSuchKey")
    assert _error_document(response).findtext("Key") == "ctl\\x01char.jpg"


def test_control_character_in_access_key_id_and_process_is_well_formed_xml(server: ServerProcess) -> None:
    """An AccessKeyId or x-oss-process string with control characters (and raw bytes that are
    not UTF-8) is echoed in the error; the body still parses."""
    unknown_key = send(f"{server.url}/{BUCKET}/x.jpg?OSSAccessKeyId=LTAI%01%1B%FF&Expires=4102444800"
                       "&Signature=c2lnbmF0dXJl")
    assert 400 <= unknown_key.status < 500
    _error_document(unknown_key)
    assert signed(server.url, "PUT", "hostile/xml/photo.jpg", body=b"x").status == 200
    bad_process = signed(server.url, "GET", "hostile/xml/photo.jpg", process="image/sc\x01\x08ore")
    assert (bad_process.status, bad_process.code) == (400, "InvalidArgument")
    assert "sc\\x01\\x08ore" in _error_document(bad_process).findtext("Message", "")


# -- response-* overrides ---------------------------------------------------------------------------
def _presigned_get(url: str, key: str, **overrides: str) -> str:
    request = oss.GetObjectRequest(bucket=BUCKET, key=key, **overrides)
    return sdk_client(url).presign(request, expires=timedelta(minutes=10)).url


@pytest.mark.parametrize("name, value", [
    ("response_content_type", "text/plain\r\nX-Injected: yes"),
    ("response_content_type", "text/plain\nX-Injected: yes"),
    ("response_content_type", "text/\x01plain"),
    ("response_content_disposition", "attachment\r\n\r\n<html>"),
    ("response_cache_control", "no-cache\x7f"),
])
def test_response_override_with_control_characters_is_refused(server: ServerProcess, name: str,
                                                                value: str) -> None:
    """``response-*`` parameters become response headers; CR, LF or another control character
    in one is refused with 400 InvalidArgument (not 500, and no header is injected)."""
    key = "hostile/override/photo.jpg"
    assert signed(server.url, "PUT", key, body=b"x").status == 200
    response = send(_presigned_get(server.url, key, **{name: value}))
    assert (response.status, response.code) == (400, "InvalidArgument"), response.body
    assert "x-injected" not in response.headers
    _error_document(response)


def test_response_overrides_are_applied(server: ServerProcess) -> None:
    """GetObject's ``response-*`` parameters set the matching response headers
    ("GetObject": https://www.alibabacloud.com/help/en/oss/developer-reference/getobject)."""
    key = "hostile/override/applied.jpg"
    assert signed(server.url, "PUT", key, body=b"x").status == 200
    response = send(_presigned_get(server.url, key, response_content_type="text/plain",
                                   response_content_disposition='attachment; filename="a.jpg"',
                                   response_cache_control="no-cache"))
    assert response.status == 200
    assert response.headers["content-type"] == "text/plain"
    assert response.headers["content-disposition"] == 'attachment; filename="a.jpg"'
    assert response.headers["cache-control"] == "no-cache"


# -- user metadata ----------------------------------------------------------------------------------
def test_user_metadata_over_8_kib_is_refused(server: ServerProcess) -> None:
    """OSS limits an object's user metadata to 8 KB, counting the ``x-oss-meta-*`` header names
    and values (EC 0011-00000002: https://www.alibabacloud.com/help/en/oss/user-guide/0011-00000002).
    Exactly 8 KiB is stored; one byte more is refused before the body is read."""
    client = sdk_client(server.url)
    names = [f"k{i}" for i in range(8)]
    per_header = 8192 // len(names)
    exact = {name: "v" * (per_header - len(f"x-oss-meta-{name}")) for name in names}
    client.put_object(oss.PutObjectRequest(bucket=BUCKET, key="hostile/meta/exact.txt", body=b"x", metadata=exact))
    head = client.head_object(oss.HeadObjectRequest(bucket=BUCKET, key="hostile/meta/exact.txt"))
    assert head.metadata == exact

    over = {**exact, names[0]: exact[names[0]] + "v"}
    with pytest.raises(oss.exceptions.OperationError) as excinfo:
        client.put_object(oss.PutObjectRequest(bucket=BUCKET, key="hostile/meta/over.txt", body=b"x",
                                               metadata=over))
    error = excinfo.value.unwrap()
    assert isinstance(error, oss.exceptions.ServiceError)
    assert (error.status_code, error.code, error.ec) == (400, "MetadataTooLarge", "0011-00000002")
    with pytest.raises(oss.exceptions.OperationError):
        client.head_object(oss.HeadObjectRequest(bucket=BUCKET, key="hostile/meta/over.txt"))


# -- start-up ----------------------------------------------------------------------------------------
def test_serve_on_a_busy_port_says_so_in_one_line(tmp_path: Path) -> None:
    """``picscore serve --port P`` with P taken exits 2 with one line naming the address, not a
    traceback — and before loading any scoring model."""
    env = {**os.environ, "OSS_ACCESS_KEY_ID": ACCESS_KEY_ID, "OSS_ACCESS_KEY_SECRET": ACCESS_KEY_SECRET}
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "worker.cli", "serve", "--root", str(tmp_path),
                                 "--port", str(port)], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        f"picscore serve: cannot listen on 127.0.0.1:{port}: address already in use"], result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_a_client_that_hangs_up_mid_upload_is_not_logged_as_a_server_error(lean_server: ServerProcess) -> None:
    """A client going away is the client's business: logged at debug, never as ``internal_error``
    with a traceback (which a flaky network would turn into log flooding)."""
    start = len(lean_server.output)
    url = urlsplit(presign(lean_server.url, "PUT", "hostile/cut-off.bin"))
    target = f"{url.path}?{url.query}"
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", lean_server.port), timeout=10) as sock:
            sock.sendall(f"PUT {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {1 << 20}\r\n\r\n".encode())
            sock.sendall(b"x" * (128 << 10))
    _still_serving(lean_server.url)
    time.sleep(0.5)
    logged = "".join(lean_server.output[start:])
    assert "internal_error" not in logged and "Traceback" not in logged, logged[-2000:]


def test_a_client_that_stops_reading_is_disconnected_after_the_send_timeout(tmp_path: Path) -> None:
    """A reader that takes nothing more (its buffers full) must not hold the connection for ever:
    after ``--send-timeout`` the server closes it, and says nothing about it above debug."""
    (tmp_path / BUCKET).mkdir()
    size = 32 << 20
    (tmp_path / BUCKET / "big.bin").write_bytes(os.urandom(1 << 20) * 32)
    with start_server(tmp_path, _CREDENTIALS, args=["--send-timeout", "1s", "--fake-score-latency", "1ms"]) as server:
        url = urlsplit(presign(server.url, "GET", "big.bin"))
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", server.port))
            sock.sendall(f"GET {url.path}?{url.query} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
            time.sleep(4)  # read nothing: the server's writes stall, then time out
            sock.settimeout(10)
            received = 0
            with contextlib.suppress(ConnectionResetError):
                while chunk := sock.recv(1 << 20):
                    received += len(chunk)
        assert received < size  # cut off: the whole body was never sent
        _still_serving(server.url)
        logged = "".join(server.output)
        assert "internal_error" not in logged and "Traceback" not in logged, logged[-2000:]
