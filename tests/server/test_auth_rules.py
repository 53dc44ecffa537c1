"""One test per authentication rule: query and path decoding, scheme detection, accounts and
signature mismatch, time limits, what each signature version signs, and addressing.

The rules are those of OSS Signature V4 and V1 as OSS documents them
(https://www.alibabacloud.com/help/en/oss/developer-reference/recommend-to-use-signature-version-4,
https://www.alibabacloud.com/help/en/oss/developer-reference/include-signatures-in-the-authorization-header
and their presigned-URL forms) and as the SDKs implement them (``alibabacloud_oss_v2/signer/``,
``oss2/auth.py``, ali-oss ``lib/common/signUtils.js``); see :mod:`worker.server.sigv4` and
:mod:`worker.server.sigv1`.

Requests come from two places only, so the tests never just mirror the verifier: verbatim
captures (``vectors/captures.json``) and the official SDK signers (``alibabacloud_oss_v2.signer``
with an injected signing time, ``oss2.auth`` with the real clock).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import quote, urlencode, urlsplit

import oss2
import pytest
from alibabacloud_oss_v2.signer import SignerV1, SignerV4
from alibabacloud_oss_v2.types import Credentials, HttpRequest, SigningContext
from multidict import CIMultiDict
from oss2.credentials import StaticCredentialsProvider

from worker.server import sigv4
from worker.server.addressing import Address, resolve
from worker.server.auth import Authenticator
from worker.server.errors import OSSError
from worker.server.wire import WireRequest, decode_path, parse_query, parse_query_params

AK, SECRET = "LTAI5tTESTACCESSKEY", "TestSecretKey0123456789abcdefXYZ"
ENDPOINT = "http://127.0.0.1:9000"
SIGNED_AT = datetime(2026, 11, 26, 13, 0, 0, tzinfo=UTC)
NOW = SIGNED_AT.timestamp()  # the default clock for requests signed at SIGNED_AT
CAPTURES = json.loads((Path(__file__).parent / "vectors" / "captures.json").read_text("utf-8"))
VECTORS = {v["label"]: v for v in CAPTURES["vectors"]}


# -- request sources -------------------------------------------------------------------------

def capture(label: str, *, query: str | None = None, **headers: str | None) -> WireRequest:
    """A captured request, optionally with its query replaced or headers set (None: removed)."""
    vector = VECTORS[label]
    wire_headers = CIMultiDict(vector["headers"])
    for name, value in headers.items():
        name = name.replace("_", "-")
        wire_headers.popall(name, None)
        if value is not None:
            wire_headers[name] = value
    raw_query = vector["raw_query"] if query is None else query
    return WireRequest(vector["method"], vector["raw_path"], raw_query, wire_headers)


def received(label: str) -> float:
    return parsedate_to_datetime(VECTORS[label]["received_at"]).timestamp()


def to_wire(method: str, url: str, headers: dict[str, str | None]) -> WireRequest:
    parts = urlsplit(url)
    wire_headers = CIMultiDict((k, v) for k, v in headers.items() if v is not None)
    wire_headers.setdefault("Host", parts.netloc)
    return WireRequest(method, parts.path, parts.query, wire_headers)


def v2_signed(
    method: str = "GET",
    key: str = "dir/cat photo+1.jpg",
    *,
    query: str = "x-oss-process=image%2Fscore",
    headers: dict[str, str] | None = None,
    signer: SignerV1 | SignerV4 | None = None,
    presign_for: int | None = None,
    signing_time: datetime = SIGNED_AT,
    region: str = "cn-hangzhou",
    additional: set[str] | None = None,
    token: str | None = None,
) -> WireRequest:
    """A request signed by ``alibabacloud-oss-v2``'s own signer (path style, bucket testbucket)."""
    url = f"{ENDPOINT}/testbucket/{quote(key)}" + (f"?{query}" if query else "")
    request = HttpRequest(method, url, headers=dict(headers or {}))
    ctx = SigningContext(
        product="oss", region=region, bucket="testbucket", key=key, request=request,
        credentials=Credentials(AK, SECRET, token), signing_time=signing_time,
        additional_headers=additional,
    )
    if presign_for is not None:
        ctx.auth_method_query = True
        ctx.expiration_time = signing_time + timedelta(seconds=presign_for)
    (signer or SignerV4()).sign(ctx)
    return to_wire(method, request.url, dict(request.headers))


def oss2_request(key: str, params: dict[str, str], headers: dict[str, str] | None = None):
    return oss2.http.Request(
        "GET", f"{ENDPOINT}/testbucket/{quote(key, safe='')}", params=params,
        headers=headers, region="cn-hangzhou", product="oss",
    )


def oss2_wire(req) -> WireRequest:
    """What ``requests`` puts on the wire for an ``oss2`` request (spaces as ``+``)."""
    query = urlencode(req.params)
    return to_wire(req.method, req.url + (f"?{query}" if query else ""), dict(req.headers))


def authenticator(now: float | Callable[[], float] = NOW, **kw) -> Authenticator:
    clock = now if callable(now) else (lambda: now)
    return Authenticator({AK: SECRET}, clock=clock, **kw)


def refused(auth: Authenticator, req: WireRequest) -> OSSError:
    with pytest.raises(OSSError) as caught:
        auth.authenticate(req)
    return caught.value


# -- query and path decoding -----------------------------------------------------------------

def test_query_is_form_decoded_and_remembers_bare_names() -> None:
    raw = "foo+bar=a+b%2Bc%2Fd~%2A&empty=&acl&x-oss-process=image/score"
    assert parse_query(raw) == [
        ("foo bar", "a b+c/d~*"), ("empty", ""), ("acl", ""), ("x-oss-process", "image/score"),
    ]
    assert [p.has_equals for p in parse_query_params(raw)] == [True, True, False, True]


def test_path_is_decoded_once_and_keeps_plus() -> None:
    assert decode_path("/testbucket/dir%2Fcat%20photo%2B1.jpg") == "/testbucket/dir/cat photo+1.jpg"
    assert decode_path("/b/a+b%252F") == "/b/a+b%2F"
    assert decode_path("http://testbucket.oss-test.localhost:9000/vh%2Fa.jpg?x=1") == "/vh/a.jpg"


@pytest.mark.parametrize("decode", [decode_path, parse_query])
def test_invalid_utf8_is_refused(decode: Callable[[str], object]) -> None:
    with pytest.raises(OSSError) as caught:
        decode("/b/%ff%fe")
    assert caught.value.code == "InvalidArgument"


# -- scheme detection ------------------------------------------------------------------------

def test_anonymous_request_is_denied() -> None:
    err = refused(authenticator(received("oss2-anonymous-get")), capture("oss2-anonymous-get"))
    assert (err.status, err.code, err.ec) == (403, "AccessDenied", "0003-00000001")


def test_signature_in_both_url_and_header_is_refused() -> None:
    header = dict(VECTORS["oss2-v4-get_object"]["headers"])["authorization"]
    req = capture("oss2-v4-presigned-get-process", authorization=header)
    err = refused(authenticator(received("oss2-v4-presigned-get-process")), req)
    assert (err.status, err.code) == (400, "InvalidArgument")


def test_v4_and_v1_signatures_in_one_url_are_refused() -> None:
    vector = VECTORS["oss2-v4-presigned-get-process"]
    query = vector["raw_query"] + "&OSSAccessKeyId=" + AK
    err = refused(authenticator(received(vector["label"])), capture(vector["label"], query=query))
    assert (err.status, err.code) == (400, "InvalidArgument")


SIG = "Signature=" + "0" * 64


@pytest.mark.parametrize("authorization", [
    f"OSS4-HMAC-SHA256 Credential={AK}/20261126/cn-hangzhou/oss/aliyun_v4_request",
    f"OSS4-HMAC-SHA256 {SIG}",
    f"OSS4-HMAC-SHA256 Credential={AK}/20261126/cn-hangzhou/oss/aliyun_v4_request,{SIG},Unknown=1",
    f"OSS4-HMAC-SHA256 Credential={AK}/20261126/cn-hangzhou/oss,{SIG}",
    f"OSS4-HMAC-SHA256 Credential={AK}/20261126/cn-hangzhou/s3/aliyun_v4_request,{SIG}",
    f"OSS4-HMAC-SHA256 Credential=/20261126/cn-hangzhou/oss/aliyun_v4_request,{SIG}",
    f"OSS4-HMAC-SHA256 Credential={AK}/2026-11-26/cn-hangzhou/oss/aliyun_v4_request,{SIG}",
    f"OSS {AK}",
    "OSS :c2ln",
    f"OSS2 AccessKeyId:{AK},Signature:abc",
    "Bearer abc",
    "",
])
def test_malformed_authorization_is_invalid_argument(authorization: str) -> None:
    req = capture("oss2-v4-get_object", authorization=authorization)
    err = refused(authenticator(received("oss2-v4-get_object")), req)
    assert (err.status, err.code) == (400, "InvalidArgument")


@pytest.mark.parametrize("label", ["boto3-default-put_object", "boto3-default-presign-get",
                                   "boto3-s3v4-presign-get"])
def test_s3_signatures_are_refused_clearly(label: str) -> None:
    err = refused(authenticator(received(label)), capture(label))
    assert (err.status, err.code) == (403, "AccessDenied")
    assert "S3 signatures" in err.message and "not supported" in err.message


# -- accounts and signature mismatch --------------------------------------------------------

def test_unknown_access_key_id() -> None:
    label = "oss2-v4-unknown-ak"
    err = refused(authenticator(received(label)), capture(label))
    assert (err.status, err.code) == (403, "InvalidAccessKeyId")
    assert err.extra == {"OSSAccessKeyId": "LTAIunknownKEY"}


@pytest.mark.parametrize(("label", "ec"), [
    ("oss2-v4-get_object", "0002-00000201"),
    ("v2-v4-presigned-get-process", "0002-00000201"),
    ("oss2-v1-put_object", "0002-00000040"),
    ("node-v1-presigned-get-process", "0002-00000040"),
])
def test_wrong_secret_is_signature_does_not_match(label: str, ec: str) -> None:
    other_secret = "AnotherSecret0123456789abcdefXYZ"
    auth = Authenticator({AK: other_secret}, clock=lambda: received(label))
    err = refused(auth, capture(label))
    assert (err.status, err.code, err.ec) == (403, "SignatureDoesNotMatch", ec)
    assert list(err.extra) == ["OSSAccessKeyId", "SignatureProvided", "StringToSign",
                               "StringToSignBytes"]
    assert err.extra["OSSAccessKeyId"] == AK
    assert bytes.fromhex(err.extra["StringToSignBytes"]) == err.extra["StringToSign"].encode()
    shown = repr(err) + repr(auth) + str(err.extra)
    assert other_secret not in shown and "AnotherSecret" not in shown


def test_tampered_capture_does_not_match() -> None:
    label = "oss2-v4-get_object-process-score"
    req = capture(label, query="x-oss-process=image%2Finfo")
    assert refused(authenticator(received(label)), req).code == "SignatureDoesNotMatch"


def test_secret_stays_out_of_repr() -> None:
    assert SECRET not in repr(authenticator()) and AK in repr(authenticator())


# -- time: clock skew and presigned-URL expiry ----------------------------------------------

@pytest.mark.parametrize("label", ["oss2-v4-get_object", "node-v1-sldEnable-get-process",
                                   "oss2-v1-put_object"])
@pytest.mark.parametrize("offset", [-16 * 60, 16 * 60])
def test_clock_skew_over_15_minutes(label: str, offset: int) -> None:
    err = refused(authenticator(received(label) + offset), capture(label))
    assert (err.status, err.code, err.ec) == (403, "RequestTimeTooSkewed", "0002-00000504")
    assert authenticator(received(label) + offset // 16 * 14).authenticate(capture(label))


def test_v1_needs_a_valid_date() -> None:
    req = capture("oss2-v1-put_object", date="yesterday")
    err = refused(authenticator(received("oss2-v1-put_object")), req)
    assert (err.status, err.code) == (403, "AccessDenied")


def test_expired_presigned_v4() -> None:
    label = "v2-v4-presigned-get-process"  # x-oss-date 13:03:16, x-oss-expires 3599
    signed = datetime(2026, 11, 26, 13, 3, 16, tzinfo=UTC).timestamp()
    assert authenticator(signed + 3599).authenticate(capture(label)).scheme == "v4-presigned"
    err = refused(authenticator(signed + 3600), capture(label))
    assert (err.status, err.code, err.ec) == (403, "AccessDenied", "0002-00000069")
    assert err.message == "Request has expired."


def test_expired_presigned_v1() -> None:
    label = "oss2-v1-presigned-get-process"  # Expires=1795701796
    assert authenticator(1795701796).authenticate(capture(label)).scheme == "v1-presigned"
    err = refused(authenticator(1795701797), capture(label))
    assert (err.status, err.code, err.ec, err.message) == (
        403, "AccessDenied", "0002-00000069", "Request has expired.")


@pytest.mark.parametrize(("lifetime", "accepted"), [(1, True), (604800, True), (604801, False)])
def test_presigned_v4_lifetime_limit(lifetime: int, accepted: bool) -> None:
    req = v2_signed(presign_for=lifetime)
    if accepted:
        assert authenticator().authenticate(req).scheme == "v4-presigned"
        return
    err = refused(authenticator(), req)
    assert (err.status, err.code, err.ec) == (400, "InvalidArgument", "0002-00000232")


@pytest.mark.parametrize("expires", ["0", "-5", "abc", ""])
def test_x_oss_expires_must_be_in_range(expires: str) -> None:
    vector = VECTORS["oss2-v4-presigned-get-process"]
    query = vector["raw_query"].replace("x-oss-expires=3600", f"x-oss-expires={expires}")
    err = refused(authenticator(received(vector["label"])), capture(vector["label"], query=query))
    assert (err.status, err.code) == (400, "InvalidArgument")


def test_post_dated_presigned_v4_is_refused() -> None:
    """Signing an hour ahead must not stretch a URL's life past x-oss-expires."""
    req = v2_signed(presign_for=600, signing_time=SIGNED_AT + timedelta(hours=1))
    assert refused(authenticator(), req).code == "RequestTimeTooSkewed"


def test_scope_date_must_equal_x_oss_date() -> None:
    label = "oss2-v4-get_object"  # scope 20261126
    req = capture(label, x_oss_date="20261127T000100Z")
    err = refused(authenticator(datetime(2026, 11, 27, 0, 1, tzinfo=UTC).timestamp()), req)
    assert (err.status, err.code) == (400, "InvalidArgument")
    assert "20261126" in err.message


@pytest.mark.parametrize("payload_hash", ["STREAMING-UNSIGNED", "ABCDEF", "", "e3b0" * 16])
def test_x_oss_content_sha256_must_be_unsigned_payload(payload_hash: str) -> None:
    """OSS accepts UNSIGNED-PAYLOAD only, a hex digest included (EC 0002-00000214,
    https://help.aliyun.com/en/oss/user-guide/0002-00000214)."""
    req = capture("oss2-v4-get_object", x_oss_content_sha256=payload_hash)
    err = refused(authenticator(received("oss2-v4-get_object")), req)
    assert (err.status, err.code, err.ec) == (400, "InvalidArgument", "0002-00000214")


# -- what is signed --------------------------------------------------------------------------

def test_oss2_additional_headers_sorted_by_first_letter_only() -> None:
    """oss2 lists ``x-b-custom;x-a-custom`` but signs the fully sorted list."""
    auth = oss2.ProviderAuthV4(StaticCredentialsProvider(AK, SECRET))
    req = oss2_request("k.jpg", {"x-oss-process": "image/score"},
                       {"X-B-Custom": "b", "X-A-Custom": "a"})
    auth._sign_request(req, "testbucket", "k.jpg", ["x-b-custom", "x-a-custom"])
    assert req.headers["authorization"].endswith("AdditionalHeaders=x-b-custom;x-a-custom")
    wire_req = oss2_wire(req)
    assert authenticator(time.time).authenticate(wire_req).key == "k.jpg"
    wire_req.headers["X-A-Custom"] = "changed"
    assert refused(authenticator(time.time), wire_req).code == "SignatureDoesNotMatch"


def test_v2_additional_headers_between_credential_and_signature_sign_host() -> None:
    headers = {"Host": "127.0.0.1:9000", "Range": "bytes=0-3", "User-Agent": "ua"}
    req = v2_signed(headers=headers, additional={"user-agent", "range", "host"})
    assert ",AdditionalHeaders=host;range;user-agent,Signature=" in req.headers["Authorization"]
    assert authenticator().authenticate(req).key == "dir/cat photo+1.jpg"
    moved = WireRequest(req.method, req.raw_path, req.raw_query,
                        CIMultiDict({**req.headers, "Host": "localhost:9000"}))
    assert refused(authenticator(), moved).code == "SignatureDoesNotMatch"


def test_presigned_additional_headers_capture_binds_range() -> None:
    label = "oss2-v4-presigned-additional-headers"  # signs range;user-agent and x-oss-meta-a
    assert authenticator(received(label)).authenticate(capture(label))
    for changed in ({"range": "bytes=0-99"}, {"user_agent": "other"}, {"x_oss_meta_a": "c"}):
        err = refused(authenticator(received(label)), capture(label, **changed))
        assert err.code == "SignatureDoesNotMatch"


@pytest.mark.parametrize("region", ["cn-hangzhou", "local", ""])
def test_any_region_including_empty_scope(region: str) -> None:
    req = v2_signed(region=region)
    assert f"/20261126/{region}/oss/aliyun_v4_request" in req.headers["Authorization"]
    assert authenticator().authenticate(req).scheme == "v4"


def test_ali_oss_empty_parameter_retry_writes_name_equals() -> None:
    """ali-oss signs a generic empty parameter as ``name=``: the second string
    to sign is that form; bare names (sub-resources) never get the retry."""
    req = capture("oss2-v4-get-extra-params-space-plus")  # ?foo+bar=…&empty=&x-oss-process=…
    params = parse_query_params(req.raw_query)
    claim = sigv4.claim_from_headers(req.headers)
    address = Address("testbucket", "dir/cat photo+1.jpg")
    first, retry = claim.strings_to_sign(req.method, req.headers, params, address)
    assert sigv4.canonical_query(params).startswith("empty&foo%20bar=")
    assert sigv4.canonical_query(params, keep_equals=True).startswith("empty=&foo%20bar=")
    assert first == VECTORS["oss2-v4-get-extra-params-space-plus"]["string_to_sign"] != retry
    bare = parse_query_params("acl&x-oss-process=image%2Fscore")
    assert len(list(claim.strings_to_sign("GET", req.headers, bare, address))) == 1


def test_v1_accepts_x_oss_process_signed_or_not() -> None:
    """oss2 signs x-oss-process into the V1 resource, alibabacloud-oss-v2 does not."""
    auth = oss2.Auth(AK, SECRET)
    with_process = oss2_request("v1/key.jpg", {"x-oss-process": "image/score"})
    auth._sign_request(with_process, "testbucket", "v1/key.jpg")
    without = v2_signed(key="v1/key.jpg", signer=SignerV1(), signing_time=datetime.now(UTC))
    for req in (oss2_wire(with_process), without):
        assert authenticator(time.time).authenticate(req).query == [("x-oss-process", "image/score")]


def test_v1_signed_process_cannot_be_swapped() -> None:
    """Accepting the unsigned form must not let a signed x-oss-process be replaced."""
    label = "oss2-v1-get_object-process-score"  # resource ends ?x-oss-process=image/score
    req = capture(label, query="x-oss-process=image%2Finfo")
    assert refused(authenticator(received(label)), req).code == "SignatureDoesNotMatch"


def test_security_token_is_signed_and_passes_through() -> None:
    header_form = v2_signed(token="sts-token")
    assert header_form.headers["x-oss-security-token"] == "sts-token"
    assert authenticator().authenticate(header_form).scheme == "v4"
    presigned = v2_signed(token="sts-token", presign_for=60)
    result = authenticator().authenticate(presigned)
    assert result.query == [("x-oss-process", "image/score")]  # auth parameters stripped


# -- addressing ------------------------------------------------------------------------------

def test_vhost_under_service_host() -> None:
    label = "oss2-v4-vhost-get-process"  # Host testbucket.oss-test.localhost, path /vh%2Fa.jpg
    auth = authenticator(received(label), service_host="oss-test.localhost")
    result = auth.authenticate(capture(label))
    assert (result.bucket, result.key) == ("testbucket", "vh/a.jpg")
    # Without the service host the path reads as bucket "vh", too short to be a bucket name.
    assert refused(authenticator(received(label)), capture(label)).code == "InvalidBucketName"


def test_aliyuncs_host_rewritten_by_ali_oss() -> None:
    label = "node-v4-ip-default-get-process"  # Host testbucket.oss-cn-hangzhou.aliyuncs.com
    result = authenticator(received(label)).authenticate(capture(label))
    assert (result.bucket, result.key) == ("testbucket", "node/cat photo+1.jpg")
    assert resolve("b-1.oss-cn-shanghai-internal.aliyuncs.com", "/k") == [Address("b-1", "k")]


def test_path_style_fallback_for_ali_oss_sld_enable() -> None:
    """Bucket in both Host and path: the Host reading comes first, the signature picks."""
    label = "node-v4-sldEnable-get-process"
    host, path = "testbucket.oss-cn-hangzhou.aliyuncs.com", "/testbucket/node/cat photo+1.jpg"
    assert resolve(host, path) == [Address("testbucket", "testbucket/node/cat photo+1.jpg"),
                                   Address("testbucket", "node/cat photo+1.jpg")]
    result = authenticator(received(label)).authenticate(capture(label))
    assert (result.bucket, result.key) == ("testbucket", "node/cat photo+1.jpg")


def test_fallback_only_accepts_what_was_signed() -> None:
    label = "node-v4-sldEnable-get-process"
    vector = VECTORS[label]
    other = WireRequest(vector["method"], "/otherbucket/node/cat%20photo%2B1.jpg",
                        vector["raw_query"], CIMultiDict(vector["headers"]))
    assert refused(authenticator(received(label)), other).code == "SignatureDoesNotMatch"


def test_cname_maps_host_to_bucket() -> None:
    label = "oss2-v4-cname-get-process"  # Host img.example.test, path /vh%2Fa.jpg
    auth = authenticator(received(label), cnames={"IMG.example.test": "testbucket"})
    assert auth.authenticate(capture(label)).key == "vh/a.jpg"


@pytest.mark.parametrize(("host", "path", "expected"), [
    ("127.0.0.1", "/", [Address(None, None)]),
    ("localhost", "/testbucket", [Address("testbucket", None)]),
    ("localhost", "/testbucket/", [Address("testbucket", None)]),
    ("oss-test.localhost", "/testbucket/a/b", [Address("testbucket", "a/b")]),
    ("testbucket.oss-test.localhost", "/", [Address("testbucket", None)]),
    # The path-style reading is dropped when its first segment is no bucket name.
    ("testbucket.oss-test.localhost", "/图片/猫.jpg", [Address("testbucket", "图片/猫.jpg")]),
])
def test_resolve(host: str, path: str, expected: list[Address]) -> None:
    assert resolve(host, path, service_host="oss-test.localhost") == expected


@pytest.mark.parametrize("path", ["/Test_Bucket/k", "/ab/k", "/-abc/k", "//k", "/" + "a" * 64])
def test_invalid_bucket_name(path: str) -> None:
    with pytest.raises(OSSError) as caught:
        resolve("127.0.0.1", path)
    assert (caught.value.status, caught.value.code) == (400, "InvalidBucketName")
