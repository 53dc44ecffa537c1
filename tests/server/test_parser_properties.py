"""Properties of the server's pure parsers, checked with Hypothesis (GitHub issue #15, Build).

Every parser that reads what a client sent must either return a value that keeps its promise or
raise :class:`~worker.server.errors.OSSError` with a 4xx status; any other exception becomes a
500 with a traceback in the log. Inputs include what aiohttp really hands over: header and
request-line bytes decoded with ``surrogateescape``, so bytes that are not UTF-8 arrive as lone
surrogates.

The signature properties compare the verifier with the official signers, not with itself:
``alibabacloud_oss_v2.signer.SignerV4`` (``alibabacloud_oss_v2/signer/v4.py``) for V4, header and
presigned forms, and ``oss2.Auth`` (``oss2/auth.py``) for V1 — the rules of "Include a V4
signature in the header" (https://www.alibabacloud.com/help/en/oss/developer-reference/recommend-to-use-signature-version-4)
and "Include a V1 signature in the Authorization header"
(https://www.alibabacloud.com/help/en/oss/developer-reference/include-signatures-in-the-authorization-header).

Runs are derandomized (same examples on every run and machine) and use no example database,
so CI is deterministic and nothing is written into the tree.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, unquote, urlencode, urlsplit
from xml.sax.saxutils import escape

import oss2
import pytest
from alibabacloud_oss_v2.signer import SignerV1, SignerV4
from alibabacloud_oss_v2.types import Credentials, HttpRequest, SigningContext
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from worker.oss.image_process_contract import ImageProcessSpec
from worker.oss.snapshot_contract import SnapshotSpec
from worker.server import sigv1, sigv4
from worker.server.auth import Authenticator
from worker.server.bucket_handlers import _parse_delete_body
from worker.server.errors import OSSError, render_error_xml
from worker.server.handlers import _parse_range
from worker.server.keys import MAX_KEY_BYTES, RESERVED_DIR, validate_key
from worker.server.listing import ListPage, decode_token, encode_token, parse_max_keys
from worker.server.oss_process import parse_process
from worker.server.storage import ObjectMeta
from worker.server.wire import WireRequest, decode_path, parse_query_params
from worker.server.xmlbody import delete_result, list_objects_v1, list_objects_v2

AK, SECRET = "LTAI5tTESTACCESSKEY", "TestSecretKey0123456789abcdefXYZ"
BUCKET = "testbucket"
ENDPOINT = "http://127.0.0.1:9000"
SIGNED_AT = datetime(2026, 11, 26, 13, 0, 0, tzinfo=UTC)

PROPERTY = settings(derandomize=True, database=None, max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
SIGNING = settings(PROPERTY, max_examples=150)


def refused_cleanly(err: OSSError) -> None:
    """A client error, and one the server can render: no surrogate in any field."""
    assert 400 <= err.status < 500, err
    render_error_xml(err, "0" * 24, "127.0.0.1")


# -- strategies ------------------------------------------------------------------------------

#: Text as aiohttp produces it from arbitrary bytes (invalid UTF-8 → lone surrogates).
wire_text = st.binary(max_size=40).map(lambda raw: raw.decode("utf-8", "surrogateescape"))
#: Any Python string, surrogates included.
any_text = st.text(st.characters(exclude_categories=()), max_size=40)
#: Text a client can send once encoded: no surrogates.
clean_text = st.text(max_size=20)


# -- key validation --------------------------------------------------------------------------

_SEGMENT_PIECES = ["a", "photo.jpg", ".", "..", "", "...", ".hidden", RESERVED_DIR, ".PICSCORE",
                   ".PicScore.", "图片", "\\", "a b", "\x00", "\x7f", "x" * 256, "é" * 128]
structured_keys = st.lists(st.one_of(st.sampled_from(_SEGMENT_PIECES), clean_text),
                           min_size=1, max_size=6).map("/".join)
valid_segment = st.text(st.characters(exclude_categories=("Cs", "Cc")), min_size=1, max_size=12
                        ).filter(lambda s: "/" not in s and s not in (".", ".."))


def _reserved(segment: str) -> bool:
    return segment.partition(":")[0].rstrip(" .").casefold() == RESERVED_DIR


@PROPERTY
@given(st.one_of(any_text, wire_text, structured_keys))
def test_validate_key_accepts_only_keys_that_stay_inside_the_bucket(key: str) -> None:
    try:
        validate_key(key)
    except OSSError as err:
        assert (err.status, err.code, err.ec) == (400, "InvalidObjectName", "0016-00000005")
        refused_cleanly(err)
        return
    assert 1 <= len(key.encode("utf-8")) <= MAX_KEY_BYTES  # also: valid UTF-8
    assert key[0] not in "/\\"
    assert "\x00" not in key  # other control characters are keys, as on OSS
    segments = (key[:-1] if key.endswith("/") else key).split("/")
    assert all(segment not in ("", ".", "..") for segment in segments)
    assert all(len(segment.encode("utf-8")) <= 255 for segment in segments)
    assert not _reserved(segments[0])


@PROPERTY
@given(st.lists(valid_segment, max_size=4), st.sampled_from(["", ".", ".."]), st.integers(0, 4),
       st.booleans())
def test_dot_and_empty_segments_are_always_refused(segments: list[str], bad: str, at: int,
                                                   trailing_slash: bool) -> None:
    at = min(at, len(segments))
    parts = [*segments[:at], bad, *segments[at:]]
    if bad == "" and at == len(segments):
        parts.append("end")  # an empty *last* segment is a directory marker ("a/"), allowed
    key = "/".join(parts) + ("/" if trailing_slash else "")
    with pytest.raises(OSSError) as caught:
        validate_key(key)
    assert caught.value.code == "InvalidObjectName"


@PROPERTY
@given(st.text(min_size=1, max_size=30))
def test_keys_over_1023_bytes_are_always_refused(unit: str) -> None:
    key = unit * (MAX_KEY_BYTES // len(unit.encode("utf-8", "surrogatepass")) + 1)
    with pytest.raises(OSSError) as caught:
        validate_key(key)
    assert caught.value.code == "InvalidObjectName"


@PROPERTY
@given(st.lists(st.booleans(), min_size=len(RESERVED_DIR), max_size=len(RESERVED_DIR)),
       st.sampled_from(["", "/", "/x", "/meta/ab/cd.json", "/tmp/0123"]))
def test_reserved_directory_is_refused_in_every_case(upper: list[bool], rest: str) -> None:
    name = "".join(ch.upper() if up else ch for ch, up in zip(RESERVED_DIR, upper, strict=True))
    with pytest.raises(OSSError) as caught:
        validate_key(name + rest)
    assert "reserved" in caught.value.message


# -- x-oss-process ---------------------------------------------------------------------------

_PROCESS_PIECES = ["image", "score", "image/score", "resize,w_100", "format,png", "quality,q_5", "style", "doc",
                   "video", "",
                   "info", "score,x_1", "|sys/saveas,o_a", " ", "IMAGE", "faces", "/", "video/snapshot",
                   "snapshot,t_100,f_png", "snapshot,w_-1", "snapshot,m_fast,ar_auto"]
process_strings = st.lists(st.one_of(st.sampled_from(_PROCESS_PIECES), clean_text),
                           min_size=1, max_size=5).map("/".join)


#: What a decoded query parameter can hold: any text but lone surrogates, which
#: :func:`parse_query_params` refuses (see the decoding properties below).
query_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)


@PROPERTY
@given(st.one_of(query_text, process_strings))
@example(" image/score\t")
def test_parse_process_answers_image_score_a_snapshot_a_resize_or_an_oss_4xx(value: str) -> None:
    try:
        operation = parse_process(value)
    except OSSError as err:
        refused_cleanly(err)
        assert value.strip() != "image/score"
        return
    if isinstance(operation, SnapshotSpec):
        assert value.strip().startswith("video/snapshot") and "/" not in value.strip()[len("video/"):]
        return
    if isinstance(operation, ImageProcessSpec):  # resize, format and quality, chained
        assert value.strip().startswith("image/")
        return
    assert operation == "image/score" == value.strip()


# -- query and path decoding -----------------------------------------------------------------

@PROPERTY
@given(st.lists(st.tuples(clean_text, clean_text), max_size=6), st.booleans())
def test_query_round_trips_through_percent_encoding(pairs: list[tuple[str, str]], plus: bool) -> None:
    """What any client's encoder writes (``%20`` or ``+`` for spaces) decodes to the original."""
    encode = (lambda s: quote(s, safe="").replace("%20", "+")) if plus else (lambda s: quote(s, safe=""))
    raw = "&".join(f"{encode(name)}={encode(value)}" for name, value in pairs)
    assert [(p.name, p.value, p.has_equals) for p in parse_query_params(raw)] == [
        (name, value, True) for name, value in pairs]


@PROPERTY
@given(clean_text)
def test_path_round_trips_through_percent_encoding(path: str) -> None:
    assert decode_path("/" + quote(path, safe="/")) == "/" + path


_ESCAPES = st.sampled_from(["%", "%ff", "%C3", "%c3%a9", "%2", "%2F", "+", "=", "&", "?", "%00",
                            "http://h", "%ED%A0%80"])
hostile_raw = st.lists(st.one_of(wire_text, any_text, _ESCAPES), max_size=8).map("".join)


@PROPERTY
@given(hostile_raw)
def test_query_and_path_decoding_give_text_or_an_oss_error(raw: str) -> None:
    """Whatever they return must be encodable: a surrogate would blow up later, in a signer or
    in the error document."""
    for decode in (parse_query_params, decode_path):
        try:
            decoded = decode(raw)
        except OSSError as err:
            assert (err.status, err.code) == (400, "InvalidArgument")
            continue
        text = decoded if isinstance(decoded, str) else "".join(p.name + p.value for p in decoded)
        text.encode("utf-8")


# -- V4: the official signer and the verifier agree ----------------------------------------

_AUTH_NAMES = (sigv4.PRESIGN_PARAMS | sigv1.PRESIGN_PARAMS
               | {"X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature", "AWSAccessKeyId"})
param_names = st.one_of(st.sampled_from(["x-oss-process", "acl", "uploadId", "partNumber", "a b",
                                         "response-content-type", "~", "+"]),
                        st.text(min_size=1, max_size=10)).filter(lambda n: n not in _AUTH_NAMES)
header_values = st.text(max_size=16).filter(lambda v: v == v.strip())
meta_headers = st.dictionaries(
    st.from_regex(r"[a-z0-9-]{1,8}", fullmatch=True).map(lambda s: "x-oss-meta-" + s),
    header_values, max_size=3)
methods = st.sampled_from(["GET", "PUT", "HEAD", "DELETE", "POST"])


def _v4_signed(method: str, key: str, query: dict[str, str], bare: bool, headers: dict[str, str],
               additional: set[str], presigned: bool) -> WireRequest:
    parts = [quote(n, safe="") + ("" if bare and not v else "=" + quote(v, safe=""))
             for n, v in query.items()]
    url = f"{ENDPOINT}/{BUCKET}/{quote(key)}" + ("?" + "&".join(parts) if parts else "")
    request = HttpRequest(method, url, headers=dict(headers))
    ctx = SigningContext(product="oss", region="cn-hangzhou", bucket=BUCKET, key=key, request=request,
                         credentials=Credentials(AK, SECRET), signing_time=SIGNED_AT,
                         additional_headers=additional or None)
    if presigned:
        ctx.auth_method_query = True
        ctx.expiration_time = SIGNED_AT + timedelta(seconds=600)
    SignerV4().sign(ctx)
    split = urlsplit(request.url)
    wire_headers = CIMultiDict(request.headers)
    wire_headers.setdefault("Host", split.netloc)
    return WireRequest(method, split.path, split.query, wire_headers)


v4_requests = st.builds(
    _v4_signed, methods, st.text(max_size=24), st.dictionaries(param_names, clean_text, max_size=4),
    st.booleans(), st.fixed_dictionaries({}, optional={"Content-Type": header_values,
                                                      "User-Agent": header_values.filter(bool),
                                                      "Range": st.just("bytes=0-9")}).flatmap(
        lambda base: meta_headers.map(lambda meta: {**base, **meta})),
    st.sets(st.sampled_from(["user-agent", "range"])), st.booleans())


def _v4_authenticator() -> Authenticator:
    return Authenticator({AK: SECRET}, clock=lambda: SIGNED_AT.timestamp())


@SIGNING
@given(v4_requests)
def test_every_v4_signature_of_the_sdk_verifies(req: WireRequest) -> None:
    result = _v4_authenticator().authenticate(req)
    assert result.bucket == BUCKET
    expected_key = decode_path(req.raw_path).removeprefix(f"/{BUCKET}/") or None
    assert result.key == expected_key
    assert result.scheme in ("v4", "v4-presigned")
    params = [(p.name, p.value) for p in parse_query_params(req.raw_query)
              if p.name not in sigv4.PRESIGN_PARAMS]
    assert sorted(result.query) == sorted(params)


def _replace_char(text: str, at: int, alphabet: str, pick: int) -> str:
    at %= len(text)
    choices = [ch for ch in alphabet if ch != text[at]]
    return text[:at] + choices[pick % len(choices)] + text[at + 1:]


@SIGNING
@given(v4_requests, st.integers(0, 63), st.integers(0, 15))
def test_any_changed_v4_signature_character_fails(req: WireRequest, at: int, pick: int) -> None:
    headers = CIMultiDict(req.headers)
    query = req.raw_query
    if "authorization" in headers:
        head, _, signature = headers["authorization"].rpartition("Signature=")
        headers["authorization"] = head + "Signature=" + _replace_char(signature, at, "0123456789abcdef", pick)
    else:
        head, _, signature = query.rpartition("x-oss-signature=")
        query = head + "x-oss-signature=" + _replace_char(signature, at, "0123456789abcdef", pick)
    with pytest.raises(OSSError) as caught:
        _v4_authenticator().authenticate(WireRequest(req.method, req.raw_path, query, headers))
    assert (caught.value.status, caught.value.code) == (403, "SignatureDoesNotMatch")


# -- V1: oss2's signer and the verifier agree ----------------------------------------------

v1_param_names = st.one_of(st.sampled_from(sorted(sigv1.SUBRESOURCES - sigv1.PRESIGN_PARAMS)),
                           param_names)


def _v1_signed(method: str, key: str, params: dict[str, str], headers: dict[str, str]) -> WireRequest:
    req = oss2.http.Request(method, f"{ENDPOINT}/{BUCKET}/{quote(key, safe='')}", params=dict(params),
                            headers=dict(headers), region="cn-hangzhou", product="oss")
    oss2.Auth(AK, SECRET)._sign_request(req, BUCKET, key)
    wire_headers = CIMultiDict(req.headers)
    wire_headers.setdefault("Host", "127.0.0.1:9000")
    return WireRequest(method, urlsplit(req.url).path, urlencode(params), wire_headers)


v1_requests = st.builds(_v1_signed, methods, st.text(min_size=1, max_size=24),
                        st.dictionaries(v1_param_names, clean_text, max_size=4), meta_headers)


@SIGNING
@given(v1_requests, st.integers(0, 27), st.integers(0, 63))
def test_every_v1_signature_of_oss2_verifies_and_no_changed_one_does(
        req: WireRequest, at: int, pick: int) -> None:
    auth = Authenticator({AK: SECRET}, clock=time.time)
    result = auth.authenticate(req)
    assert (result.bucket, result.key, result.scheme) == (
        BUCKET, unquote(req.raw_path.removeprefix(f"/{BUCKET}/")), "v1")
    headers = CIMultiDict(req.headers)
    head, _, signature = headers["authorization"].rpartition(":")
    base64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
    headers["authorization"] = f"{head}:{_replace_char(signature, at, base64, pick)}"
    with pytest.raises(OSSError) as caught:
        auth.authenticate(WireRequest(req.method, req.raw_path, req.raw_query, headers))
    assert (caught.value.status, caught.value.code) == (403, "SignatureDoesNotMatch")


# -- the authenticator on hostile requests -------------------------------------------------

_HEADER_NAMES = ["Authorization", "Host", "Date", "x-oss-date", "x-oss-content-sha256",
                 "x-oss-security-token", "Content-Type", "Content-MD5", "x-oss-meta-a", "User-Agent"]
_HEADER_VALUES = [
    f"OSS4-HMAC-SHA256 Credential={AK}/20261126/cn-hangzhou/oss/aliyun_v4_request,"
    f"AdditionalHeaders=user-agent,Signature={'0' * 64}",
    f"OSS4-HMAC-SHA256 Credential={AK}/20261126//oss/aliyun_v4_request, Signature=x",
    f"OSS {AK}:c2lnbmF0dXJl", "OSS :", "OSS4-HMAC-SHA256 ", "AWS4-HMAC-SHA256 x", "UNSIGNED-PAYLOAD",
    "20261126T130000Z", "99991231T235959Z", "00000101T000000Z", "Thu, 26 Nov 2026 13:00:00 GMT",
    "Mon, 01 Jan 9999 00:00:00 GMT", "127.0.0.1:9000", "testbucket.oss-cn-hangzhou.aliyuncs.com",
    "[::1]:9000", "", "e3b0" * 16,
]
_PARAM_NAMES = ["x-oss-signature-version", "x-oss-credential", "x-oss-date", "x-oss-expires",
                "x-oss-signature", "x-oss-additional-headers", "x-oss-security-token",
                "OSSAccessKeyId", "Expires", "Signature", "security-token", "x-oss-process", "acl",
                "X-Amz-Signature"]
_PARAM_VALUES = ["OSS4-HMAC-SHA256", f"{AK}/20261126/cn-hangzhou/oss/aliyun_v4_request",
                 "20261126T130000Z", "600", "0", "9" * 5000, "99999999999999999999", "image/score",
                 AK, "1795701796", "user-agent;host", "", "%ff", "%ED%A0%80"]
hostile_headers = st.lists(st.tuples(st.sampled_from(_HEADER_NAMES),
                                     st.one_of(st.sampled_from(_HEADER_VALUES), wire_text)),
                           max_size=6)
hostile_query = st.lists(
    st.tuples(st.sampled_from(_PARAM_NAMES), st.one_of(st.sampled_from(_PARAM_VALUES), wire_text)),
    max_size=6).map(lambda pairs: "&".join(f"{n}={quote(v, safe='%', errors='surrogateescape')}" for n, v in pairs))


def _signed_bases() -> list[WireRequest]:
    """One valid request per scheme, signed by alibabacloud-oss-v2 at SIGNED_AT."""
    bases = []
    for signer, presigned in ((SignerV4(), False), (SignerV4(), True), (SignerV1(), False),
                              (SignerV1(), True)):
        request = HttpRequest("GET", f"{ENDPOINT}/{BUCKET}/k.jpg?x-oss-process=image%2Fscore",
                              headers={"User-Agent": "ua"})
        ctx = SigningContext(product="oss", region="cn-hangzhou", bucket=BUCKET, key="k.jpg",
                             request=request, credentials=Credentials(AK, SECRET, "sts"),
                             signing_time=SIGNED_AT, additional_headers={"user-agent"})
        if presigned:
            ctx.auth_method_query = True
            ctx.expiration_time = SIGNED_AT + timedelta(seconds=600)
        signer.sign(ctx)
        split = urlsplit(request.url)
        headers = CIMultiDict(request.headers)
        headers.setdefault("Host", split.netloc)
        bases.append(WireRequest("GET", split.path, split.query, headers))
    return bases


_BASES = _signed_bases()
_any_header_value = st.one_of(st.sampled_from(_HEADER_VALUES), wire_text)
_any_param_value = st.one_of(st.sampled_from(_PARAM_VALUES), wire_text).map(
    lambda v: quote(v, safe="%", errors="surrogateescape"))
mutations = st.lists(st.one_of(
    st.tuples(st.just("set-header"), st.sampled_from(_HEADER_NAMES), _any_header_value),
    st.tuples(st.just("add-header"), st.sampled_from(_HEADER_NAMES), _any_header_value),
    st.tuples(st.just("del-header"), st.sampled_from(_HEADER_NAMES), st.just("")),
    st.tuples(st.just("set-param"), st.sampled_from(_PARAM_NAMES), _any_param_value),
    st.tuples(st.just("add-param"), st.sampled_from(_PARAM_NAMES), _any_param_value),
), min_size=1, max_size=3)


@PROPERTY
@given(st.sampled_from(range(len(_BASES))), mutations)
@example(2, [("set-header", "Authorization", f"OSS {AK}:\udcff")])
@example(1, [("set-param", "x-oss-expires", "9" * 5000)])
@example(0, [("set-header", "User-Agent", "\udcff")])
def test_authenticate_answers_mutated_sdk_requests_with_an_oss_error(
        base: int, changes: list[tuple[str, str, str]]) -> None:
    """Start from a request the SDK signed (V4/V1, header/presigned) and break it a little:
    the deep paths (time checks, signature comparison, additional headers) see hostile input."""
    req = _BASES[base]
    headers = CIMultiDict(req.headers)
    params = [part.partition("=")[::2] for part in req.raw_query.split("&") if part]
    for action, name, value in changes:
        if action == "set-header":
            headers[name] = value
        elif action == "add-header":
            headers.add(name, value)
        elif action == "del-header":
            headers.popall(name, None)
        elif action == "set-param":
            params = [(n, value if n == name else v) for n, v in params]
            if all(n != name for n, _ in params):
                params.append((name, value))
        else:
            params.append((name, value))
    query = "&".join(f"{n}={v}" for n, v in params)
    auth = Authenticator({AK: SECRET}, clock=lambda: SIGNED_AT.timestamp())
    try:
        auth.authenticate(WireRequest(req.method, req.raw_path, query, headers))
    except OSSError as err:
        refused_cleanly(err)


@PROPERTY
@given(methods, st.one_of(st.sampled_from(["/", "/testbucket/k", "//k", "/testbucket/%ff"]),
                          wire_text.map(lambda s: "/" + s)),
       hostile_query, hostile_headers)
@example("GET", "/testbucket/k", "", [("Authorization", f"OSS {AK}:\udcff")])
@example("GET", "/testbucket/k", "", [("Host", "a\udcffb"), ("Authorization", f"OSS {AK}:x")])
def test_authenticate_answers_hostile_requests_with_an_oss_error(
        method: str, path: str, query: str, headers: list[tuple[str, str]]) -> None:
    auth = Authenticator({AK: SECRET}, service_host="oss-test.localhost",
                         clock=lambda: SIGNED_AT.timestamp())
    try:
        auth.authenticate(WireRequest(method, path, query, CIMultiDict(headers)))
    except OSSError as err:
        refused_cleanly(err)


# -- ListObjects query parsing -------------------------------------------------------------

@PROPERTY
@given(st.one_of(st.none(), query_text, st.integers(-10**9, 10**9).map(str),
                 st.from_regex(r"[0-9]{1,40}", fullmatch=True)))
def test_max_keys_is_0_to_1000_or_invalid_argument(raw: str | None) -> None:
    try:
        value = parse_max_keys(raw)
    except OSSError as err:
        assert (err.status, err.code) == (400, "InvalidArgument")
        refused_cleanly(err)
        assert raw is not None and not (raw.isascii() and raw.isdigit() and int(raw) <= 1000)
        return
    assert value == (100 if not raw else int(raw))
    assert 0 <= value <= 1000


def test_max_keys_with_thousands_of_digits_is_invalid_argument() -> None:
    """Found by the property above: int() of over 4300 digits raised ValueError (a 500)."""
    with pytest.raises(OSSError):
        parse_max_keys("9" * 5000)


@PROPERTY
@given(st.one_of(any_text, wire_text))
def test_continuation_token_decodes_or_is_invalid_argument(token: str) -> None:
    try:
        decode_token(token).encode("utf-8")
    except OSSError as err:
        assert (err.status, err.code) == (400, "InvalidArgument")


@PROPERTY
@given(clean_text)
def test_continuation_token_round_trips(marker: str) -> None:
    assert decode_token(encode_token(marker)) == marker


# -- XML bodies ------------------------------------------------------------------------------

_XML_PIECES = [b"<Delete>", b"</Delete>", b"<Object>", b"</Object>", b"<Key>", b"</Key>", b"a",
               b"<Quiet>true</Quiet>", b"&amp;", b"&e;", b"&#1;", b"<![CDATA[x]]>", b"\xff",
               b'<?xml version="1.0"?>', b"<!DOCTYPE d [<!ENTITY e 'x'>]>", b"<!-- c -->",
               b"<Delete/>", b"<", b">", b"\x00"]
xml_bodies = st.one_of(st.binary(max_size=80),
                       st.lists(st.sampled_from(_XML_PIECES), max_size=12).map(b"".join))


@PROPERTY
@given(xml_bodies)
@example(b"<Delete><Quiet>TRUE</Quiet><Object><Key>a</Key></Object></Delete>")
def test_delete_body_gives_keys_or_malformed_xml(body: bytes) -> None:
    try:
        keys, quiet = _parse_delete_body(body)
    except OSSError as err:
        assert (err.status, err.code) == (400, "MalformedXML")
        return
    assert len(keys) >= 1 and isinstance(quiet, bool)
    assert all(isinstance(key, str) for key in keys)


def test_delete_body_with_an_unknown_encoding_is_malformed_xml() -> None:
    """Found by the property above: expat raised LookupError for an unknown encoding (a 500)."""
    with pytest.raises(OSSError):
        _parse_delete_body(b'<?xml version="1.0" encoding="x-unknown"?><Delete/>')


#: Characters XML 1.0 can carry and keeps as they are (no C0 controls, which are either illegal
#: or, for CR, normalised to LF by every parser; no U+FFFE/U+FFFF).
xml_text = st.text(st.characters(exclude_categories=("Cs", "Cc"), exclude_characters="\ufffe\uffff"),
                   max_size=20)
_META = ObjectMeta(size=3, etag='"abc"', crc64="0", content_type="image/jpeg", mtime_ns=0, ino=0)


@PROPERTY
@given(st.lists(xml_text, max_size=3), st.lists(xml_text, max_size=2), xml_text, xml_text,
       st.sampled_from(["", "url"]), st.booleans())
def test_listing_xml_is_well_formed_and_carries_the_text(keys: list[str], prefixes: list[str],
                                                          prefix: str, delimiter: str,
                                                          encoding: str, v2: bool) -> None:
    page = ListPage(entries=[(key, _META) for key in keys], common_prefixes=prefixes,
                    truncated=bool(keys), next_marker=keys[-1] if keys else "")
    if v2:
        body = list_objects_v2(BUCKET, page, prefix=prefix, start_after="", continuation_token="",
                               max_keys=10, delimiter=delimiter, encoding_type=encoding, fetch_owner=True)
    else:
        body = list_objects_v1(BUCKET, page, prefix=prefix, marker="", max_keys=10,
                               delimiter=delimiter, encoding_type=encoding)
    root = ET.fromstring(body)
    decode = unquote if encoding == "url" else (lambda s: s)
    assert [decode(e.text or "") for e in root.iter("Key")] == keys
    assert [decode(e.text or "") for e in root.iter("Prefix")][1:] == prefixes
    assert decode(root.findtext("Prefix") or "") == prefix
    assert decode(root.findtext("Delimiter") or "") == delimiter


@PROPERTY
@given(st.lists(xml_text, max_size=4), st.sampled_from(["", "url"]))
def test_delete_result_round_trips_through_the_delete_parser(keys: list[str], encoding: str) -> None:
    """What DeleteMultipleObjects answers parses back; and a request body built the same way
    gives the parser back its keys."""
    root = ET.fromstring(delete_result(keys, encoding))
    decode = unquote if encoding == "url" else (lambda s: s)
    assert [decode(e.text or "") for e in root.iter("Key")] == keys
    if keys:
        body = "<Delete><Quiet>false</Quiet>" + "".join(
            f"<Object><Key>{escape(key)}</Key></Object>" for key in keys) + "</Delete>"
        assert _parse_delete_body(body.encode("utf-8")) == (keys, False)


def test_listing_xml_with_a_control_character_in_the_prefix_is_well_formed() -> None:
    """A prefix comes from the query verbatim; C0 controls are not XML 1.0 characters, so the
    renderer must keep them out of the document (they are shown escaped) or SDKs cannot parse it."""
    ET.fromstring(list_objects_v1(BUCKET, ListPage(), prefix="a\x01", marker="", max_keys=10,
                                  delimiter="", encoding_type=""))


@PROPERTY
@given(st.text(alphabet="bytes=0123456789- ,", max_size=40), st.integers(min_value=0, max_value=10**12))
@example("bytes=" + "9" * 5000 + "-", 10)
@example("bytes=-" + "9" * 5000, 10)
def test_range_is_a_slice_of_the_object_or_ignored(header: str, size: int) -> None:
    """A Range header never raises (int() of over 4300 digits used to be a 500); what it gives
    is a slice inside the object, or None (OSS then serves the whole object)."""
    found = _parse_range(header, size)
    if found is not None:
        start, length = found
        assert 0 <= start < size and 1 <= length <= size - start
