"""Requests no official SDK would send, aimed at the authenticator (GitHub issue #15, items 3, 8,
12 and 13): a signed payload hash that does not match the body, bytes that are not UTF-8 in
signed headers, headers and presigned parameters sent twice, and case variants of the store's
reserved directory.

Each rule is tested twice: on :class:`~worker.server.auth.Authenticator` (or
:func:`~worker.server.keys.validate_key`) directly, and end to end over a socket against a real
``picscore serve`` child process with its own log, so a 500 or a traceback in the log shows up.
Signatures come from the official SDK signers (``alibabacloud_oss_v2.signer.SignerV4``, also its
canonical-request and signing steps for the payload-hash case that its ``sign`` never produces,
and ``oss2.Auth``), never from the verifier under test.
"""

from __future__ import annotations

import hashlib
import http.client
import re
import shutil
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import formatdate
from pathlib import Path
from urllib.parse import quote, urlsplit

import alibabacloud_oss_v2 as oss
import oss2
import pytest
from alibabacloud_oss_v2.signer import SignerV4
from alibabacloud_oss_v2.types import Credentials, HttpRequest, SigningContext
from multidict import CIMultiDict

from worker.server.auth import Authenticator
from worker.server.errors import OSSError, render_error_xml
from worker.server.keys import validate_key
from worker.server.launch import ServerProcess, start_server
from worker.server.wire import WireRequest

AK, SECRET = "LTAI5tTESTACCESSKEY", "TestSecretKey0123456789abcdefXYZ"
BUCKET = "testbucket"
ENDPOINT = "http://127.0.0.1:9000"
SIGNED_AT = datetime(2026, 11, 26, 13, 0, 0, tzinfo=UTC)
NOW = SIGNED_AT.timestamp()
CLAIMED = hashlib.sha256(b"the body the signer claims").hexdigest()


# -- request sources -------------------------------------------------------------------------

def _ctx(request: HttpRequest, key: str, signing_time: datetime, token: str | None = None,
         additional: set[str] | None = None) -> SigningContext:
    return SigningContext(
        product="oss", region="cn-hangzhou", bucket=BUCKET, key=key, request=request,
        credentials=Credentials(AK, SECRET, token), signing_time=signing_time,
        additional_headers=additional,
    )


def sdk_v4(method: str = "GET", key: str = "k.jpg", *, base: str = ENDPOINT, query: str = "",
           headers: dict[str, str] | None = None, signing_time: datetime = SIGNED_AT,
           token: str | None = None, additional: set[str] | None = None,
           presign_for: int | None = None) -> HttpRequest:
    """A request signed by ``alibabacloud-oss-v2``'s ``SignerV4`` (path style)."""
    url = f"{base}/{BUCKET}/{quote(key)}" + (f"?{query}" if query else "")
    request = HttpRequest(method, url, headers=dict(headers or {}))
    ctx = _ctx(request, key, signing_time, token, additional)
    if presign_for is not None:
        ctx.auth_method_query = True
        ctx.expiration_time = signing_time + timedelta(seconds=presign_for)
    SignerV4().sign(ctx)
    return request


def sdk_v4_with_payload_hash(method: str, key: str, payload_hash: str, *, base: str = ENDPOINT,
                             signing_time: datetime = SIGNED_AT) -> HttpRequest:
    """A V4 header signature whose canonical request ends in ``payload_hash``.

    ``SignerV4.sign`` always writes ``UNSIGNED-PAYLOAD``; its own canonical-request step reads
    whatever ``x-oss-content-sha256`` says, so a hostile client gets a valid signature over a
    digest by running the SDK's steps with the header replaced.
    """
    request = sdk_v4(method, key, base=base, signing_time=signing_time)
    request.headers["x-oss-content-sha256"] = payload_hash
    signer = SignerV4()
    date = signing_time.strftime("%Y%m%dT%H%M%SZ")
    scope = f"{date[:8]}/cn-hangzhou/oss/aliyun_v4_request"
    canonical = signer._calc_canonical_request(_ctx(request, key, signing_time), additional_headers=[])
    assert canonical.endswith("\n" + payload_hash)
    string_to_sign = signer._calc_string_to_sign(date, scope, canonical)
    signature = signer._calc_signature(SECRET, date[:8], "cn-hangzhou", "oss", string_to_sign)
    request.headers["Authorization"] = f"OSS4-HMAC-SHA256 Credential={AK}/{scope},Signature={signature}"
    return request


def to_wire(request: HttpRequest, *extra: tuple[str, str]) -> WireRequest:
    """What the server would see for ``request``, plus ``extra`` header copies appended."""
    parts = urlsplit(request.url)
    headers = CIMultiDict(request.headers)
    headers.setdefault("Host", parts.netloc)
    for name, value in extra:
        headers.add(name, value)
    return WireRequest(request.method, parts.path, parts.query, headers)


def oss2_v1_wire(*extra: tuple[str, str], key: str = "k.jpg") -> WireRequest:
    """A V1 header signature by ``oss2.Auth`` (real clock), plus ``extra`` header copies."""
    req = oss2.http.Request("GET", f"{ENDPOINT}/{BUCKET}/{quote(key)}", params={},
                            headers={}, region="cn-hangzhou", product="oss")
    oss2.Auth(AK, SECRET)._sign_request(req, BUCKET, key)
    headers = CIMultiDict(req.headers)
    headers.setdefault("Host", "127.0.0.1:9000")
    for name, value in extra:
        headers.add(name, value)
    return WireRequest("GET", urlsplit(req.url).path, "", headers)


def authenticator(now: float | None = NOW) -> Authenticator:
    return Authenticator({AK: SECRET}, clock=time.time if now is None else (lambda: now))


def refused(req: WireRequest, now: float | None = NOW) -> OSSError:
    with pytest.raises(OSSError) as caught:
        authenticator(now).authenticate(req)
    return caught.value


def surrogates(raw: bytes) -> str:
    """How aiohttp hands the handler a header value whose bytes are not UTF-8."""
    return raw.decode("utf-8", "surrogateescape")


# -- a real server with a log of its own -----------------------------------------------------

@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("hostile-root")
    (path / BUCKET).mkdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def server(root: Path) -> Iterator[ServerProcess]:
    """A server of this module's own, so its output holds only what these requests caused."""
    with start_server(root, {AK: SECRET},
                      args=["--workers", "1", "--fake-score-latency", "0ms"]) as proc:
        yield proc


def exchange(server: ServerProcess, request: bytes) -> tuple[int, bytes]:
    """Send ``request`` verbatim on a fresh connection; the status and body of the answer."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def new_log(server: ServerProcess, mark: int) -> str:
    """What the server logged since ``len(server.output) == mark``, once a marker request
    answered by the same loop has made it through the pipe."""
    key = f"log-mark-{time.monotonic_ns()}.jpg"
    presigned = sdk_v4("GET", key, base=server.url, signing_time=datetime.now(UTC), presign_for=60)
    exchange(server, _wire_request("GET", presigned))
    time.sleep(0.3)  # the pump thread copies the child's output asynchronously
    return "".join(server.output[mark:])


def _wire_request(method: str, request: HttpRequest, body: bytes = b"") -> bytes:
    """``request`` as HTTP/1.1 bytes, exactly as signed."""
    parts = urlsplit(request.url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [f"{method} {target} HTTP/1.1".encode(), f"Host: {parts.netloc}".encode()]
    lines += [f"{name}: {value}".encode() for name, value in request.headers.items()
              if name.lower() != "host"]
    lines += [f"Content-Length: {len(body)}".encode(), b"Connection: close"]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def code(body: bytes) -> str | None:
    match = re.search(rb"<Code>([^<]*)</Code>", body)
    return match[1].decode() if match else None


# -- 3. x-oss-content-sha256: OSS takes UNSIGNED-PAYLOAD only --------------------------------

def test_signed_payload_digest_is_refused() -> None:
    """A digest signed into the canonical request used to be accepted without ever being
    compared with the body. OSS answers EC 0002-00000214 and asks for UNSIGNED-PAYLOAD
    (https://help.aliyun.com/en/oss/user-guide/0002-00000214)."""
    req = to_wire(sdk_v4_with_payload_hash("PUT", "k.jpg", CLAIMED))
    err = refused(req)
    assert (err.status, err.code, err.ec) == (400, "InvalidArgument", "0002-00000214")
    assert "UNSIGNED-PAYLOAD" in err.message
    # The same request in the form every SDK sends is accepted.
    assert authenticator().authenticate(to_wire(sdk_v4("PUT", "k.jpg"))).key == "k.jpg"


@pytest.mark.parametrize("payload_hash", [CLAIMED, CLAIMED.upper(), "unsigned-payload"])
def test_presigned_url_with_a_payload_digest_header_is_refused(payload_hash: str) -> None:
    """A presigned URL signs no payload; a digest header sent along is refused the same way."""
    req = to_wire(sdk_v4("PUT", presign_for=600), ("x-oss-content-sha256", payload_hash))
    err = refused(req)
    assert (err.status, err.code, err.ec) == (400, "InvalidArgument", "0002-00000214")


def test_put_with_a_signed_digest_of_another_body_stores_nothing(server: ServerProcess, root: Path) -> None:
    key = "hostile/payload-digest.bin"
    request = sdk_v4_with_payload_hash("PUT", key, CLAIMED, base=server.url,
                                       signing_time=datetime.now(UTC))
    status, body = exchange(server, _wire_request("PUT", request, body=b"a different body"))
    assert (status, code(body)) == (400, "InvalidArgument"), body
    assert b"<EC>0002-00000214</EC>" in body
    assert not (root / BUCKET / "hostile").exists()


# -- 8. bytes that are not UTF-8 in signed headers ------------------------------------------

def _v4_with(**replace: str) -> WireRequest:
    req = to_wire(sdk_v4())
    for name, value in replace.items():
        req.headers[name.replace("_", "-")] = value
    return req


BAD = surrogates(b"\xff\xfe")


@pytest.mark.parametrize("req", [
    pytest.param(_v4_with(Authorization=f"OSS {AK}:{BAD}"), id="v1-signature"),
    pytest.param(_v4_with(Authorization=f"OSS {BAD}:c2lnbmF0dXJl"), id="v1-access-key-id"),
    pytest.param(_v4_with(Authorization=f"OSS4-HMAC-SHA256 Credential={BAD}/20261126/cn-hangzhou/"
                                        f"oss/aliyun_v4_request,Signature={'0' * 64}"),
                 id="v4-access-key-id"),
    pytest.param(_v4_with(Authorization=f"OSS4-HMAC-SHA256 Credential={AK}/20261126/cn-hangzhou/"
                                        f"oss/aliyun_v4_request,Signature={BAD}"),
                 id="v4-signature"),
    pytest.param(_v4_with(Host=f"testbucket.{BAD}.example"), id="host"),
    pytest.param(_v4_with(x_oss_meta_a=BAD), id="x-oss-meta"),
    pytest.param(_v4_with(Content_Type=f"image/{BAD}"), id="content-type"),
    pytest.param(_v4_with(x_oss_date=BAD), id="x-oss-date"),
])
def test_invalid_utf8_in_a_signed_header_is_invalid_argument(req: WireRequest) -> None:
    """Refused as 400, and the error itself renders: no value it carries has a surrogate."""
    err = refused(req)
    assert (err.status, err.code) == (400, "InvalidArgument")
    assert "not valid UTF-8" in err.message
    render_error_xml(err, "0" * 24, "127.0.0.1")


def test_invalid_utf8_in_an_additional_signed_header_is_invalid_argument() -> None:
    """V4 can sign any header (AdditionalHeaders): those must be text as well."""
    request = sdk_v4(headers={"User-Agent": "ua"}, additional={"user-agent"})
    req = to_wire(request)
    req.headers["User-Agent"] = BAD
    err = refused(req)
    assert (err.status, err.code) == (400, "InvalidArgument")
    assert "User-Agent" in err.message


def test_invalid_utf8_in_an_unsigned_header_is_ignored() -> None:
    """Headers the signature does not cover (here User-Agent) are none of the verifier's business."""
    req = to_wire(sdk_v4())
    req.headers["User-Agent"] = BAD
    assert authenticator().authenticate(req).key == "k.jpg"


@pytest.mark.parametrize(("scheme", "authorization"), [
    ("v1", b"OSS " + AK.encode() + b":\xff\xfe"),
    ("v1", b"OSS \xff\xfe:c2lnbmF0dXJl"),
    ("v4", b"OSS4-HMAC-SHA256 Credential=" + AK.encode() + b"/DAY/cn-hangzhou/oss/aliyun_v4_request,"
           b"Signature=\xc3\x28"),
])
def test_invalid_utf8_authorization_over_the_wire(server: ServerProcess, scheme: str,
                                                  authorization: bytes) -> None:
    """The server used to answer 500 and log a traceback per request (log flooding)."""
    now = datetime.now(UTC)
    if scheme == "v1":
        date = b"Date: " + formatdate(usegmt=True).encode()
    else:
        date = b"x-oss-date: " + now.strftime("%Y%m%dT%H%M%SZ").encode()
        authorization = authorization.replace(b"DAY", now.strftime("%Y%m%d").encode())
    mark = len(server.output)
    request = (b"GET /testbucket/k.jpg HTTP/1.1\r\nHost: 127.0.0.1\r\n" + date + b"\r\n"
               b"Authorization: " + authorization + b"\r\nConnection: close\r\n\r\n")
    status, body = exchange(server, request)
    assert (status, code(body)) == (400, "InvalidArgument"), body
    log = new_log(server, mark)
    assert "Traceback" not in log and "internal_error" not in log, log


def test_invalid_utf8_host_over_the_wire(server: ServerProcess) -> None:
    """The server echoes Host as the error's HostId: this needs the error renderer's escaping
    of characters XML cannot carry (``errors.xml_text``) as well as the refusal here."""
    mark = len(server.output)
    status, body = exchange(server, b"GET /testbucket/k.jpg HTTP/1.1\r\nHost: a\xff\xfeb\r\n"
                                    b"Connection: close\r\n\r\n")
    assert (status, code(body)) == (400, "InvalidArgument"), body
    log = new_log(server, mark)
    assert "Traceback" not in log and "internal_error" not in log, log


# -- 12. ambiguity: a header or a signature parameter sent twice ---------------------------

def test_second_authorization_header_is_refused_not_ignored() -> None:
    """The first copy is a valid signature: with the second ignored, the request used to pass."""
    req = to_wire(sdk_v4(), ("Authorization", f"OSS {AK}:c2lnbmF0dXJl"))
    err = refused(req)
    assert (err.status, err.code) == (400, "InvalidArgument")
    assert "Authorization" in err.message


@pytest.mark.parametrize("name", ["x-oss-date", "x-oss-security-token", "Host",
                                  "x-oss-content-sha256", "Content-Type", "Content-MD5"])
def test_repeated_v4_header_is_refused(name: str) -> None:
    request = sdk_v4(token="sts-token", headers={"Content-Type": "image/jpeg",
                                                 "Content-MD5": "1B2M2Y8AsgTpgAmY7PhCfg=="})
    first = request.headers.get(name, "127.0.0.1:9000")
    err = refused(to_wire(request, (name, first)))
    assert (err.status, err.code) == (400, "InvalidArgument")
    assert "more than one" in err.message


@pytest.mark.parametrize("name", ["Date", "Authorization"])
def test_repeated_v1_header_is_refused(name: str) -> None:
    """oss2 signs ``Date``; a second ``Date`` was ignored by the verifier and the skew check."""
    req = oss2_v1_wire((name, formatdate(usegmt=True) if name == "Date" else f"OSS {AK}:x"))
    err = refused(req, now=None)
    assert (err.status, err.code) == (400, "InvalidArgument")
    assert authenticator(None).authenticate(oss2_v1_wire()).scheme == "v1"


@pytest.mark.parametrize("param", [
    "x-oss-security-token=other", "x-oss-signature=" + "0" * 64, "x-oss-date=20261126T130000Z",
    "x-oss-credential=" + quote(f"{AK}/20261126/cn-hangzhou/oss/aliyun_v4_request", safe=""),
    "x-oss-expires=60", "x-oss-signature-version=OSS4-HMAC-SHA256",
])
def test_repeated_v4_presigned_parameter_is_refused(param: str) -> None:
    request = sdk_v4(token="sts-token", presign_for=600)
    err = refused(to_wire(HttpRequest("GET", request.url + "&" + param, headers=request.headers)))
    assert (err.status, err.code) == (400, "InvalidArgument")


@pytest.mark.parametrize("param", ["security-token=other", "Signature=abc", "Expires=1",
                                   "OSSAccessKeyId=" + AK])
def test_repeated_v1_presigned_parameter_is_refused(param: str) -> None:
    bucket = oss2.Bucket(oss2.StsAuth(AK, SECRET, "sts-token"), ENDPOINT, BUCKET)
    url = bucket.sign_url("GET", "k.jpg", 600)
    parts = urlsplit(url + "&" + param)
    req = WireRequest("GET", parts.path, parts.query, CIMultiDict({"Host": parts.netloc}))
    err = refused(req, now=None)
    assert (err.status, err.code) == (400, "InvalidArgument")
    good = urlsplit(url)
    ok = WireRequest("GET", good.path, good.query, CIMultiDict({"Host": good.netloc}))
    assert authenticator(None).authenticate(ok).scheme == "v1-presigned"


def test_second_authorization_header_over_the_wire(server: ServerProcess, root: Path) -> None:
    """A valid SDK signature first, junk second: the server used to serve the request."""
    key = "hostile/two-authorization.jpg"
    request = sdk_v4("PUT", key, base=server.url, signing_time=datetime.now(UTC))
    parts = urlsplit(server.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.putrequest("PUT", urlsplit(request.url).path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", parts.netloc)
        for name, value in request.headers.items():
            conn.putheader(name, value)
        conn.putheader("Authorization", f"OSS {AK}:c2lnbmF0dXJl")
        conn.putheader("Content-Length", "4")
        conn.endheaders(b"data")
        response = conn.getresponse()
        status, body = response.status, response.read()
    finally:
        conn.close()
    assert (status, code(body)) == (400, "InvalidArgument"), body
    assert not (root / BUCKET / "hostile" / "two-authorization.jpg").exists()


def test_repeated_presigned_security_token_over_the_wire(server: ServerProcess) -> None:
    config = oss.config.load_default()
    config.credentials_provider = oss.credentials.StaticCredentialsProvider(AK, SECRET, "sts-token")
    config.region, config.endpoint = "cn-hangzhou", server.url
    url = oss.Client(config).presign(oss.GetObjectRequest(bucket=BUCKET, key="k.jpg"),
                                     expires=timedelta(minutes=10)).url
    parts = urlsplit(url + "&x-oss-security-token=another-token")
    status, body = exchange(server, f"GET {parts.path}?{parts.query} HTTP/1.1\r\nHost: {parts.netloc}"
                                    f"\r\nConnection: close\r\n\r\n".encode())
    assert (status, code(body)) == (400, "InvalidArgument"), body


# -- 13. the reserved directory, whatever its case -----------------------------------------

@pytest.mark.parametrize("key", [
    ".PICSCORE", ".PICSCORE/", ".Picscore/meta/x.json", ".picSCORE/tmp/abc",
    ".pic\u017fcore/x",  # LATIN SMALL LETTER LONG S case-folds to "s"
    ".picscore./x", ".picscore /x", ".PICSCORE. ./x",  # Windows drops trailing dots and spaces
    ".picscore:stream", ".PicScore::$DATA/x",  # NTFS alternate data streams of the directory
])
def test_reserved_directory_is_refused_in_any_case(key: str) -> None:
    with pytest.raises(OSSError) as caught:
        validate_key(key)
    err = caught.value
    assert (err.status, err.code, err.ec) == (400, "InvalidObjectName", "0016-00000005")
    assert "reserved" in err.message


@pytest.mark.parametrize("key", ["a/.PICSCORE", "a/.picscore/x", ".PICSCOREX/y", ".pic-score/x",
                                 "x.picscore/y"])
def test_reserved_name_elsewhere_stays_a_valid_key(key: str) -> None:
    """Only the first segment lives next to the bucket's ``.picscore`` directory."""
    validate_key(key)


def test_reserved_directory_in_another_case_over_the_wire(server: ServerProcess, root: Path) -> None:
    """On a case-insensitive file system this PUT would have written into ``.picscore``."""
    request = sdk_v4("PUT", ".PICSCORE/meta/x.json", base=server.url, signing_time=datetime.now(UTC))
    status, body = exchange(server, _wire_request("PUT", request, body=b"{}"))
    assert (status, code(body)) == (400, "InvalidObjectName"), body
    assert not (root / BUCKET / ".PICSCORE").exists()
