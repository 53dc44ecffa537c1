"""Error bodies always parse as XML 1.0, whatever the client put in the values they echo
(worker/server/errors.py ``xml_text``, used by the error renderer and by :mod:`worker.server.xmlbody`).

XML 1.0 allows tab, LF, CR and U+0020 upwards except surrogates and U+FFFE/U+FFFF
(https://www.w3.org/TR/xml/#charsets); the others cannot appear even as ``&#1;``. SDKs parse
the error body to get the ``Code`` (``alibabacloud_oss_v2/serde.py`` ``deserialize_service_error``,
``oss2/exceptions.py`` ``make_exception``), so one ill-formed body costs the client its error.
"""

from __future__ import annotations

from xml.etree import ElementTree

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.server.errors import OSSError, render_error_xml, xml_text


def _parse(err: OSSError, host: str = "127.0.0.1") -> ElementTree.Element:
    return ElementTree.fromstring(render_error_xml(err, "0123456789ABCDEF01234567", host))


@pytest.mark.parametrize("raw, shown", [
    ("ctl\x01char.jpg", "ctl\\x01char.jpg"),
    ("nul\x00", "nul\\x00"),
    ("esc\x1b[31m", "esc\\x1b[31m"),
    ("not-utf8-\udcff", "not-utf8-\\udcff"),
    ("noncharacter\ufffe", "noncharacter\\ufffe"),
    ("tab\tnewline\nreturn\r", "tab\tnewline\nreturn\r"),
    ("<&>\"'", "<&>\"'"),
    ("é😀", "é😀"),
])
def test_echoed_values_parse_and_stay_visible(raw: str, shown: str) -> None:
    """Characters XML cannot carry become their Python escape; everything else (CR included,
    kept as ``&#13;`` so no parser turns it into LF) comes back as sent."""
    err = OSSError(400, "InvalidObjectName", f"bad key {raw}", "0016-00000005", {"Key": raw, "OSSAccessKeyId": raw})
    root = _parse(err, host=raw)
    assert root.findtext("Key") == shown
    assert root.findtext("OSSAccessKeyId") == shown
    assert root.findtext("Message") == f"bad key {shown}"
    assert root.findtext("HostId") == shown


@settings(derandomize=True, database=None, max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_any_text_renders_a_well_formed_document(value: str) -> None:
    """Any Python string (controls, lone surrogates, non-characters included) in any field."""
    root = _parse(OSSError(400, value or "X", value, value, {"Key": value}), host=value)
    assert root.tag == "Error" and root.findtext("RequestId") == "0123456789ABCDEF01234567"


@settings(derandomize=True, database=None, max_examples=300, deadline=None)
@given(st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\ufffe\uffff",
                             include_characters="\t\n\r"), max_size=40)
       .filter(lambda s: not any(ch < " " and ch not in "\t\n\r" for ch in s)))
def test_legal_text_round_trips_exactly(value: str) -> None:
    assert (ElementTree.fromstring(f"<v>{xml_text(value)}</v>").text or "") == value
