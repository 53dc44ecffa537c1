"""OSS error responses: one exception type and one XML renderer.

Every failure the embedded server reports travels as an :class:`OSSError` and is rendered
the way Alibaba Cloud OSS renders it — status, ``x-oss-ec`` header and the ``<Error>`` body with
``Code``, ``Message``, ``RequestId``, ``HostId`` and ``EC`` (OSS documentation, "Error responses":
https://www.alibabacloud.com/help/en/oss/user-guide/overview-14) — so that the official SDKs map
it onto their normal exception classes. Handlers raise; one middleware renders. No handler builds XML.

Echoed values (a key, an AccessKeyId, a process string) come from the client and may hold
characters XML 1.0 cannot carry even as character references (control characters, lone
surrogates from bytes that were not UTF-8): :func:`xml_text` writes those as visible ``\\xNN``
escapes, so every error document parses.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

__all__ = ["OSSError", "render_error_xml", "encode_err_header", "xml_text"]

#: Characters outside XML 1.0's ``Char`` production (https://www.w3.org/TR/xml/#charsets):
#: C0 controls but tab, LF and CR; surrogates; U+FFFE and U+FFFF.
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
#: CR is a legal character, but a parser turns a literal one into LF: keep it as a reference.
_ENTITIES = {"\r": "&#13;"}


def xml_text(value: str) -> str:
    """``value`` as XML 1.0 character data: ``&``, ``<``, ``>`` escaped, and each character
    XML cannot carry written as its Python escape (``\\x01``, ``\\udcff``), so it stays visible."""
    visible = _NOT_XML_CHAR.sub(lambda m: m[0].encode("unicode_escape").decode("ascii"), value)
    return escape(visible, _ENTITIES)


@dataclass
class OSSError(Exception):
    """An OSS-shaped failure: HTTP status, OSS ``Code``, message, optional EC and extras.

    ``extra`` holds code-specific elements (``Key``, ``BucketName``, ``StringToSign`` …) in
    the order they should appear in the XML body.
    """

    status: int
    code: str
    message: str
    ec: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
    #: Response headers the error carries besides the usual ones (AppendObject's next position).
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(f"{self.status} {self.code}: {self.message}")

    # -- the errors the server raises most often, named once -------------------------------
    @classmethod
    def access_denied(cls, message: str = "You have no right to access this object because of bucket acl.",
                      ec: str = "0003-00000001") -> OSSError:
        return cls(403, "AccessDenied", message, ec)

    @classmethod
    def invalid_argument(cls, message: str, ec: str | None = None, **extra: str) -> OSSError:
        return cls(400, "InvalidArgument", message, ec, dict(extra))

    @classmethod
    def no_such_bucket(cls, bucket: str) -> OSSError:
        return cls(404, "NoSuchBucket", "The specified bucket does not exist.", "0015-00000101", {"BucketName": bucket})

    @classmethod
    def no_such_key(cls, key: str) -> OSSError:
        return cls(404, "NoSuchKey", "The specified key does not exist.", "0026-00000001", {"Key": key})


def render_error_xml(err: OSSError, request_id: str, host_id: str) -> bytes:
    """The ``<Error>`` document OSS sends, with ``RequestId`` equal to ``x-oss-request-id``."""
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error>\n',
        f"  <Code>{xml_text(err.code)}</Code>\n",
        f"  <Message>{xml_text(err.message)}</Message>\n",
        f"  <RequestId>{xml_text(request_id)}</RequestId>\n",
        f"  <HostId>{xml_text(host_id)}</HostId>\n",
    ]
    parts += [f"  <{name}>{xml_text(value)}</{name}>\n" for name, value in err.extra.items()]
    if err.ec:
        parts.append(f"  <EC>{xml_text(err.ec)}</EC>\n")
        parts.append(f"  <RecommendDoc>https://api.aliyun.com/troubleshoot?q={xml_text(err.ec)}</RecommendDoc>\n")
    parts.append("</Error>\n")
    return "".join(parts).encode("utf-8")


def encode_err_header(xml: bytes) -> str:
    """HEAD answers have no body: OSS carries the error XML base64-encoded in ``x-oss-err``."""
    return base64.b64encode(xml).decode("ascii")
