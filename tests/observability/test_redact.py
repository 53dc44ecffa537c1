"""Secret redaction in text, mappings and log events (worker/observability/redact.py)."""

from __future__ import annotations

import pytest

from worker.observability.redact import REDACTED, SecretScrubber, redact_mapping, redact_text

SECRET = "TestSecretKey0123456789abcdefXYZ"
R = REDACTED

V4_URL = ("https://bkt.oss-cn-hangzhou.aliyuncs.com/k.jpg?x-oss-process=image%2Fscore&x-oss-date=20261126T130316Z"
          "&x-oss-expires=3600&x-oss-signature-version=OSS4-HMAC-SHA256"
          "&x-oss-credential=LTAI5tTESTACCESSKEY%2F20261126%2Fcn-hangzhou%2Foss%2Faliyun_v4_request"
          "&x-oss-signature=b1d8216e1e63483c213a2597ef7900fc4a82d767775a390dd22ecf7d043e64f4")
V4_URL_REDACTED = ("https://bkt.oss-cn-hangzhou.aliyuncs.com/k.jpg?x-oss-process=image%2Fscore"
                   "&x-oss-date=20261126T130316Z&x-oss-expires=3600&x-oss-signature-version=OSS4-HMAC-SHA256"
                   f"&x-oss-credential={R}&x-oss-signature={R}")
V1_URL = ("http://127.0.0.1:9000/bkt/k.jpg?OSSAccessKeyId=LTAI5tTESTACCESSKEY&Expires=1764162196"
          "&Signature=kR4ZvKYa0x%2F4o5cRbEfdw7C9z0o%3D&x-oss-process=image%2Fscore")
V1_URL_REDACTED = (f"http://127.0.0.1:9000/bkt/k.jpg?OSSAccessKeyId={R}&Expires=1764162196"
                   f"&Signature={R}&x-oss-process=image%2Fscore")
V4_AUTH = ("OSS4-HMAC-SHA256 Credential=LTAI5tTESTACCESSKEY/20261126/cn-hangzhou/oss/aliyun_v4_request, "
           "AdditionalHeaders=host, Signature=7a37974a556a1a6d1b6edbd84dcc09920ffdbc4ff311fe0162ef4ee4f6f38759")
V1_AUTH = "OSS LTAI5tTESTACCESSKEY:kR4ZvKYa0x/4o5cRbEfdw7C9z0o="


@pytest.mark.parametrize("text, expected", [
    (V4_URL, V4_URL_REDACTED),
    (V1_URL, V1_URL_REDACTED),
    (f"GET {V4_URL} 200", f"GET {V4_URL_REDACTED} 200"),
    (f'<a href="{V1_URL}">x</a>', f'<a href="{V1_URL_REDACTED}">x</a>'),
    ("?security-token=CAIS%2Babc&a=1", f"?security-token={R}&a=1"),
    ("?x-oss-security-token=CAISabc", f"?x-oss-security-token={R}"),
    ("?X-Amz-Credential=AKIA%2F20240101&X-Amz-Signature=abcd&X-Amz-Security-Token=FwoG",
     f"?X-Amz-Credential={R}&X-Amz-Signature={R}&X-Amz-Security-Token={R}"),
    ("?SIGNATURE=abc&OssAccessKeyId=x", f"?SIGNATURE={R}&OssAccessKeyId={R}"),
    ("?Signature=&a=1", f"?Signature={R}&a=1"),
])
def test_presigned_urls(text: str, expected: str) -> None:
    assert redact_text(text) == expected


@pytest.mark.parametrize("text, expected", [
    (V4_AUTH, f"OSS4-HMAC-SHA256 {R}"),
    (V1_AUTH, f"OSS {R}"),
    (f"Authorization: {V4_AUTH}", f"Authorization: OSS4-HMAC-SHA256 {R}"),
    (f"Authorization: {V1_AUTH}", f"Authorization: OSS {R}"),
    (f"authorization: {V4_AUTH.lower()}", f"authorization: oss4-hmac-sha256 {R}"),
    ("OSS4-HMAC-SHA256 Credential=a/b/c/oss/aliyun_v4_request,Signature=ff",
     f"OSS4-HMAC-SHA256 {R}"),
    (f"{{'Authorization': '{V4_AUTH}', 'Host': 'h'}}", f"{{'Authorization': 'OSS4-HMAC-SHA256 {R}', 'Host': 'h'}}"),
    (f'"authorization": "{V1_AUTH}"', f'"authorization": "OSS {R}"'),
    (f"denied {V4_AUTH} from 10.0.0.1", f"denied OSS4-HMAC-SHA256 {R} from 10.0.0.1"),
    (f"denied {V1_AUTH} from 10.0.0.1", f"denied OSS {R} from 10.0.0.1"),
    ("AWS4-HMAC-SHA256 Credential=AKIA/20240101/us-east-1/s3/aws4_request, "
     "SignedHeaders=host;x-amz-date, Signature=abcd", f"AWS4-HMAC-SHA256 {R}"),
    ("AWS AKIAIOSFODNN7EXAMPLE:frJIUN8DYpKDtOLCwo//yllqDzg=", f"AWS {R}"),
])
def test_authorization_values(text: str, expected: str) -> None:
    assert redact_text(text) == expected


@pytest.mark.parametrize("text", [
    "uploaded to OSS bucket photos",
    "OSS returned NoSuchKey for k.jpg",
    "the OSS4-HMAC-SHA256 scheme is the default",
    "x-oss-signature-version=OSS4-HMAC-SHA256&x-oss-date=20261126T130316Z",
    "http://bkt.oss-cn-hangzhou.aliyuncs.com/a.jpg?x-oss-process=image%2Fscore",
    "signature verification failed: SignatureDoesNotMatch",
    "",
])
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact_text(text) == text


def test_known_secrets() -> None:
    text = f"secret is {SECRET}; again {SECRET}."
    assert redact_text(text, [SECRET]) == f"secret is {R}; again {R}."
    assert redact_text(text, ["", SECRET]) == f"secret is {R}; again {R}."
    assert redact_text(text) == text  # unknown secrets cannot be found by shape
    assert redact_text("a:b", ["a", "b"]) == f"{R}:{R}"


def test_redaction_is_idempotent() -> None:
    for text in (V4_URL, V1_URL, V4_AUTH, V1_AUTH, f"x {SECRET}"):
        once = redact_text(text, [SECRET])
        assert redact_text(once, [SECRET]) == once


def test_nested_mappings() -> None:
    event = {
        "event": f"GET {V1_URL}",
        "status": 403,
        "ok": False,
        "headers": {"Authorization": V4_AUTH, "Host": "bkt.oss-cn-hangzhou.aliyuncs.com",
                    "x-oss-security-token": "CAIS123", "inner": {"signature": "abc", "note": f"key {SECRET}"}},
        "query": {"x-oss-signature": "ff", "X-OSS-Credential": "LTAI/20261126", "x-oss-expires": "3600"},
        "password": "hunter2",
        "OSS_ACCESS_KEY_SECRET": SECRET,
        "db_password": "pw",
        "token": "t",
        "StringToSign": "OSS4-HMAC-SHA256\n20261126T130316Z\n...",
        "SignatureProvided": "ff",
        "url": V4_URL,
        "note": "uploaded to OSS bucket photos",
        "none": None,
    }
    assert redact_mapping(event, [SECRET]) == {
        "event": f"GET {V1_URL_REDACTED}",
        "status": 403,
        "ok": False,
        "headers": {"Authorization": R, "Host": "bkt.oss-cn-hangzhou.aliyuncs.com",
                    "x-oss-security-token": R, "inner": {"signature": R, "note": f"key {R}"}},
        "query": {"x-oss-signature": R, "X-OSS-Credential": R, "x-oss-expires": "3600"},
        "password": R,
        "OSS_ACCESS_KEY_SECRET": R,
        "db_password": R,
        "token": R,
        "StringToSign": R,
        "SignatureProvided": R,
        "url": V4_URL_REDACTED,
        "note": "uploaded to OSS bucket photos",
        "none": None,
    }
    assert event["password"] == "hunter2"  # a copy: the input is untouched


def test_lists_and_header_pairs_inside_mappings() -> None:
    event = {
        "urls": [V1_URL, V4_URL],
        "raw_headers": [("Authorization", V1_AUTH), ("Host", "h"), ("x-oss-security-token", "CAIS")],
        "pair": ("password", "hunter2"),
        "nested": [{"Signature": "x", "u": V1_URL}, [f"k={SECRET}"]],
        "numbers": (1, 2),
    }
    assert redact_mapping(event, [SECRET]) == {
        "urls": [V1_URL_REDACTED, V4_URL_REDACTED],
        "raw_headers": [("Authorization", R), ("Host", "h"), ("x-oss-security-token", R)],
        "pair": ("password", R),
        "nested": [{"Signature": R, "u": V1_URL_REDACTED}, [f"k={R}"]],
        "numbers": (1, 2),
    }


def test_non_string_keys() -> None:
    assert redact_mapping({1: V1_AUTH, None: "x"}) == {1: f"OSS {R}", None: "x"}


def test_secret_scrubber_processor() -> None:
    scrubber = SecretScrubber(["", SECRET])
    assert scrubber.secrets == (SECRET,)
    out = scrubber(None, "info", {"event": f"login {SECRET}", "authorization": V1_AUTH, "url": V4_URL, "n": 1})
    assert out == {"event": f"login {R}", "authorization": R, "url": V4_URL_REDACTED, "n": 1}
