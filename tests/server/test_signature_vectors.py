"""Every captured SDK request gets the verdict the capture recorded.

``vectors/captures.json`` holds verbatim requests from unmodified ``oss2``,
``alibabacloud-oss-v2``, ``ali-oss`` and ``boto3``, each with the string to sign that an
independent implementation of the OSS signature rules recomputed. The clock is pinned to the capturing
server's ``Date`` so the 2026 timestamps are fresh.
"""

from __future__ import annotations

import json
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest
from multidict import CIMultiDict

from worker.server import sigv1, sigv4
from worker.server.addressing import Address
from worker.server.auth import Authenticator
from worker.server.errors import OSSError
from worker.server.wire import WireRequest, parse_query_params

CAPTURES = json.loads((Path(__file__).parent / "vectors" / "captures.json").read_text("utf-8"))
VECTORS = {v["label"]: v for v in CAPTURES["vectors"]}
CLAIM_PARSERS = {
    "v4-header": lambda req, params: sigv4.claim_from_headers(req.headers),
    "v4-query": lambda req, params: sigv4.claim_from_query(params),
    "v1-header": lambda req, params: sigv1.claim_from_headers(req.headers),
    "v1-query": lambda req, params: sigv1.claim_from_query(params),
}


def wire(vector: dict) -> WireRequest:
    return WireRequest(
        vector["method"], vector["raw_path"], vector["raw_query"], CIMultiDict(vector["headers"])
    )


def authenticator(vector: dict) -> Authenticator:
    received = parsedate_to_datetime(vector["received_at"]).timestamp()
    return Authenticator(
        CAPTURES["credentials"],
        service_host=CAPTURES["service_host"],
        cnames=CAPTURES["cnames"],
        clock=lambda: received,
    )


def test_every_captured_sdk_request_is_present() -> None:
    """81 captured requests: 76 SDK-verified, 3 wrong secret, 1 unknown AK, 1 anonymous."""
    assert len(VECTORS) == 81
    verdicts = [v["expect"].get("code", "ok") for v in VECTORS.values() if v["kind"][:2] != "s3"]
    assert verdicts.count("ok") == 70  # the other 6 verified captures are S3 (out of scope)
    assert sorted(c for c in verdicts if c != "ok") == [
        "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "SignatureDoesNotMatch",
        "SignatureDoesNotMatch",
    ]


@pytest.mark.parametrize("label", VECTORS)
def test_capture_gets_the_recorded_verdict(label: str) -> None:
    vector = VECTORS[label]
    expect = vector["expect"]
    if expect["ok"]:
        result = authenticator(vector).authenticate(wire(vector))
        assert (result.bucket, result.key) == (expect["bucket"], expect["key"])
        assert result.access_key_id == "LTAI5tTESTACCESSKEY"
        assert result.scheme == vector["kind"].replace("-header", "").replace("-query", "-presigned")
        return
    with pytest.raises(OSSError) as caught:
        authenticator(vector).authenticate(wire(vector))
    assert (caught.value.status, caught.value.code) == (expect["status"], expect["code"])
    if expect["code"] == "SignatureDoesNotMatch":
        # The server shows the same string to sign the independent implementation computed.
        assert caught.value.extra["StringToSign"] == vector["string_to_sign"]


@pytest.mark.parametrize(
    "label", [label for label, v in VECTORS.items() if v["expect"]["ok"] and "string_to_sign" in v]
)
def test_rebuilt_string_to_sign_matches_the_independent_one(label: str) -> None:
    """The pure functions rebuild exactly what the SDK signed, for the capture's address."""
    vector = VECTORS[label]
    req = wire(vector)
    params = parse_query_params(req.raw_query)
    claim = CLAIM_PARSERS[vector["kind"]](req, params)
    address = Address(vector["expect"]["bucket"], vector["expect"]["key"])
    strings = list(claim.strings_to_sign(req.method, req.headers, params, address))
    assert vector["string_to_sign"] in strings
