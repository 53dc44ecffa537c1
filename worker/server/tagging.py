"""Object tagging: GetObjectTagging / PutObjectTagging / DeleteObjectTagging (``?tagging``) and
the ``x-oss-tagging`` header of PutObject and CopyObject.

Tags live in the object's metadata file (:class:`~worker.server.storage.ObjectMeta`), so they
survive reads and restarts; a new PutObject replaces them with its own (none without the
header), as on OSS. Changing tags leaves the bytes, ETag and Last-Modified alone.

The rules are OSS's (PutObjectTagging,
https://www.alibabacloud.com/help/en/oss/developer-reference/putobjecttagging, and "Object
tagging", https://www.alibabacloud.com/help/en/oss/user-guide/object-tagging-8): at most 10 tags
per object with unique, case-sensitive keys; a key is 1–128 characters, a value 0–256; both use
letters, digits, spaces and ``+ - = . _ : /`` only (EC 0010-00000216 lists the letters as a–z,
A–Z: https://www.alibabacloud.com/help/en/oss/user-guide/0010-00000216 — and ali-oss checks the
same ASCII set before it sends). In the ``x-oss-tagging`` header keys and values are URL-encoded
(``k1=v1&k2=v2``; ``+`` is a literal plus, a space is ``%20``).

Where each refusal comes from:

* more than 10 tags — ``400 BadRequest`` "Object tags cannot be greater than 10". The limit is
  OSS's (PutObjectTagging doc above); OSS documents no error code for it, so this is the code
  and message of the S3 tagging API, whose XML OSS's follows;
* a key or value too long, empty key, or a character outside the set — ``400 InvalidTag``
  (EC 0010-00000216 for characters, see above);
* the same key twice — ``400 InvalidTag``, EC 0010-00000210
  (https://www.alibabacloud.com/help/en/oss/user-guide/0010-00000210);
* an ``x-oss-tagging`` header not in ``key`` / ``key=value`` form (``aa=bb=cc``) or not valid
  percent-encoded UTF-8 — ``400 InvalidArgument``, EC 0010-00000219
  (https://www.alibabacloud.com/help/en/oss/support/0010-00000219);
* a body that is not XML, or not ``<Tagging><TagSet>…`` — ``400 MalformedXML`` (EC 0010-00000103
  describes the same for bucket tags: https://www.alibabacloud.com/help/en/oss/support/0010-00000103).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Awaitable, Callable, Iterable
from urllib.parse import unquote
from xml.etree import ElementTree

from aiohttp import web

from . import xmlbody
from .call import Call
from .checksums import parse_content_md5
from .errors import OSSError
from .storage import LocalStore, ObjectMeta
from .xmlparse import parse_bounded

__all__ = [
    "MAX_TAGS", "MAX_KEY_CHARS", "MAX_VALUE_CHARS", "MAX_TAGGING_BODY", "MAX_BUCKET_TAGS",
    "parse_tagging_header", "request_tags", "parse_tagging_xml", "validate_tags", "tagging_xml",
    "parse_bucket_tagging_xml", "validate_bucket_tags",
    "get_object_tagging", "put_object_tagging", "delete_object_tagging",
]

MAX_TAGS = 10
MAX_KEY_CHARS = 128
MAX_VALUE_CHARS = 256
#: Ten tags of 128 + 256 characters, each one written as a character reference (``&#43;``, six
#: bytes), plus the elements, fit in 25 KB: a PutObjectTagging body is read up to 64 KB, no further.
MAX_TAGGING_BODY = 64 * 1024
_TAG_TEXT = re.compile(r"[A-Za-z0-9 +\-=._:/]*")
_HEADER = "x-oss-tagging"


def _invalid_tag(message: str, ec: str | None = None) -> OSSError:
    return OSSError(400, "InvalidTag", message, ec)


def validate_tags(tags: Iterable[tuple[str, str]]) -> dict[str, str]:
    """(key, value) pairs → ``{key: value}`` in their order, or the OSS error for the first rule broken."""
    pairs = list(tags)
    if len(pairs) > MAX_TAGS:
        raise OSSError(400, "BadRequest", f"Object tags cannot be greater than {MAX_TAGS}")
    out: dict[str, str] = {}
    for key, value in pairs:
        if not 1 <= len(key) <= MAX_KEY_CHARS:
            raise _invalid_tag(f"The TagKey you have provided is invalid: it must be 1 to {MAX_KEY_CHARS} characters.")
        if len(value) > MAX_VALUE_CHARS:
            raise _invalid_tag(f"The TagValue you have provided is invalid: at most {MAX_VALUE_CHARS} characters.")
        for what, text in (("TagKey", key), ("TagValue", value)):
            if not _TAG_TEXT.fullmatch(text):
                raise _invalid_tag(f"The {what} you have provided is invalid: use letters, digits, spaces and "
                                   "+ - = . _ : / only.", "0010-00000216")
        if key in out:
            raise _invalid_tag("Cannot provide multiple Tags with the same key.", "0010-00000210")
        out[key] = value
    return out


def parse_tagging_header(header: str) -> dict[str, str]:
    """``x-oss-tagging: k1=v1&k2&k3=`` → ``{"k1": "v1", "k2": "", "k3": ""}`` (validated)."""
    pairs = []
    for item in header.split("&"):
        if not item:
            continue
        parts = item.split("=")
        if len(parts) > 2:
            raise _bad_header(header, "each tag must be key or key=value")
        try:
            key, value = (unquote(part, errors="strict") for part in (*parts, "")[:2])
        except UnicodeDecodeError:
            raise _bad_header(header, "keys and values must be percent-encoded UTF-8") from None
        pairs.append((key, value))
    return validate_tags(pairs)


def _bad_header(value: str, why: str) -> OSSError:
    return OSSError.invalid_argument(f"The x-oss-tagging header is not valid: {why} (k1=v1&k2=v2, URL-encoded).",
                                     "0010-00000219", ArgumentName=_HEADER, ArgumentValue=value[:200])


def request_tags(call: Call) -> dict[str, str]:
    """The tags an ``x-oss-tagging`` header asks for; none without it."""
    return parse_tagging_header(call.header(_HEADER)) if call.header(_HEADER) else {}


def parse_tagging_xml(body: bytes) -> dict[str, str]:
    """``<Tagging><TagSet><Tag><Key/><Value/></Tag>…</TagSet></Tagging>`` → validated tags.

    The body is at most :data:`MAX_TAGGING_BODY` bytes (read so by the caller), so its tree is
    small whatever it holds; expat refuses entity-expansion bombs by itself.
    """
    try:
        root = ElementTree.fromstring(body)
    except (ElementTree.ParseError, LookupError, ValueError):  # LookupError: an unknown declared encoding
        raise _malformed("The XML you provided was not well-formed.") from None
    tag_set = root.find("TagSet") if root.tag == "Tagging" else None
    if tag_set is None:
        raise _malformed("The XML root must be <Tagging> holding a <TagSet>.")
    return validate_tags((tag.findtext("Key") or "", tag.findtext("Value") or "") for tag in tag_set.findall("Tag"))


# -- bucket tags (PutBucketTags) ----------------------------------------------------------------
#: PutBucketTags: "up to 20 tags for a bucket"; a key is 1–64 bytes of UTF-8 and does not start
#: with ``http://``, ``https://`` or ``Aliyun`` (EC 0010-00000207) nor ``acs`` (EC 0010-00000002;
#: the four prefixes case-insensitive); a value is 0–128 bytes; any characters
#: (https://www.alibabacloud.com/help/en/oss/developer-reference/putbuckettags,
#: https://www.alibabacloud.com/help/en/oss/support/0010-00000219,
#: https://www.alibabacloud.com/help/en/oss/support/0010-00000002).
MAX_BUCKET_TAGS = 20
_MAX_BUCKET_KEY_BYTES = 64
_MAX_BUCKET_VALUE_BYTES = 128
_RESERVED_PREFIXES = {"http://": "0010-00000207", "https://": "0010-00000207", "aliyun": "0010-00000207",
                      "acs": "0010-00000002"}
#: ``Tagging``, ``TagSet`` and ``Tag``/``Key``/``Value`` per tag: parsing stops past this.
_MAX_BUCKET_TAGGING_ELEMENTS = 2 + 3 * MAX_BUCKET_TAGS


def _too_many_bucket_tags() -> OSSError:
    return _invalid_tag(f"Bucket tags cannot be more than {MAX_BUCKET_TAGS}.")


def validate_bucket_tags(tags: Iterable[tuple[str, str]]) -> dict[str, str]:
    """(key, value) pairs → ``{key: value}`` in their order, or 400 InvalidTag for the first
    PutBucketTags rule broken (a key given twice too, as for object tags)."""
    pairs = list(tags)
    if len(pairs) > MAX_BUCKET_TAGS:
        raise _too_many_bucket_tags()
    out: dict[str, str] = {}
    for key, value in pairs:
        if not 1 <= len(key.encode("utf-8", "surrogatepass")) <= _MAX_BUCKET_KEY_BYTES:
            raise _invalid_tag(f"The bucket tag key must be 1 to {_MAX_BUCKET_KEY_BYTES} bytes.", "0010-00000219")
        if len(value.encode("utf-8", "surrogatepass")) > _MAX_BUCKET_VALUE_BYTES:
            raise _invalid_tag(f"The bucket tag value must be at most {_MAX_BUCKET_VALUE_BYTES} bytes.",
                               "0010-00000219")
        for prefix, ec in _RESERVED_PREFIXES.items():
            if key.lower().startswith(prefix):
                raise _invalid_tag(f"A bucket tag key cannot start with {key[:len(prefix)]!r}.", ec)
        if key in out:
            raise _invalid_tag("Cannot provide multiple Tags with the same key.")
        out[key] = value
    return out


def parse_bucket_tagging_xml(body: bytes) -> dict[str, str]:
    """PutBucketTags' ``<Tagging><TagSet><Tag>…`` → validated tags; parsed with
    :func:`~worker.server.xmlparse.parse_bounded`, which stops past what 20 tags need."""
    root = parse_bounded(body, max_elements=_MAX_BUCKET_TAGGING_ELEMENTS, too_many=_too_many_bucket_tags(),
                         malformed=_malformed("The XML you provided was not well-formed."))
    tag_set = root.find("TagSet") if root.tag == "Tagging" else None
    if tag_set is None:
        raise _malformed("The XML root must be <Tagging> holding a <TagSet>.")
    return validate_bucket_tags((tag.findtext("Key") or "", tag.findtext("Value") or "")
                                for tag in tag_set.findall("Tag"))


def _malformed(message: str) -> OSSError:
    return OSSError(400, "MalformedXML", message)


def tagging_xml(tags: dict[str, str]) -> bytes:
    """GetObjectTagging's and GetBucketTags' answer."""
    return xmlbody.render(("Tagging", [("TagSet", [
        ("Tag", [("Key", key), ("Value", value)]) for key, value in tags.items()
    ])]))


# -- the operations ---------------------------------------------------------------------------
Head = Callable[[str, str], Awaitable[ObjectMeta]]


async def get_object_tagging(call: Call, head: Head) -> web.StreamResponse:
    """GetObjectTagging: the object's tags (an empty TagSet when it has none); 404 NoSuchKey."""
    assert call.bucket is not None and call.key is not None
    meta = await head(call.bucket, call.key)
    return web.Response(body=tagging_xml(meta.tags), content_type="application/xml")


async def put_object_tagging(call: Call, store: LocalStore) -> web.StreamResponse:
    """PutObjectTagging: replace the object's tags with the body's (at most 64 KB are read)."""
    assert call.bucket is not None and call.key is not None
    expected_md5 = parse_content_md5(call.header("Content-MD5"))
    await asyncio.to_thread(store.head, call.bucket, call.key)  # 404 before reading a body
    body = await call.read_body(MAX_TAGGING_BODY)
    if expected_md5 is not None and hashlib.md5(body).digest() != expected_md5:
        raise OSSError(400, "InvalidDigest", "The Content-MD5 you specified did not match what we received.",
                       "0002-00000019")
    tags = parse_tagging_xml(body)
    await asyncio.to_thread(store.set_tags, call.bucket, call.key, tags)
    return web.Response(status=200)


async def delete_object_tagging(call: Call, store: LocalStore) -> web.StreamResponse:
    """DeleteObjectTagging: drop every tag; 204, as OSS answers; 404 NoSuchKey."""
    assert call.bucket is not None and call.key is not None
    await asyncio.to_thread(store.set_tags, call.bucket, call.key, {})
    return web.Response(status=204)

