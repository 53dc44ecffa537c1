"""The ``image/score`` contract, in one place for both ends of the wire.

Alibaba Cloud OSS answers ``GET object?x-oss-process=image/score`` (signed) with::

    {"ImageScore": {"OverallQualityScore": 0.705}, "RequestId": "..."}

(OSS documentation, "Image quality assessment":
https://help.aliyun.com/en/oss/user-guide/image-quality-score; the response fields are those of
IMM's DetectImageScore: https://alibabacloud.com/help/en/imm/developer-reference/api-imm-2020-09-30-detectimagescore).
``picscore serve`` builds this body with :func:`build_score_answer`, and the worker reads it
with :func:`parse_score_answer`; both sit here so the field names cannot drift apart. The
embedded server adds per-dimension fields beside ``OverallQualityScore`` (``NoiseScore``,
``ExposureScore``…, named like the legacy IMM ``GetImageQuality`` fields); the client keeps
any finite numeric extras as dimensions, so the results schema is the same for both services.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "SCORE_PROCESS", "PROCESS_PARAMETER", "REQUEST_ID_HEADER", "OVERALL_FIELD", "IMAGE_SCORE_FIELD",
    "ScoreAnswer", "InvalidAnswer", "parse_score_answer", "build_score_answer", "dimension_field",
    "MAX_SOURCE_BYTES",
]

SCORE_PROCESS = "image/score"
#: The query parameter (or POST form field) that carries the process.
PROCESS_PARAMETER = "x-oss-process"
REQUEST_ID_HEADER = "x-oss-request-id"
IMAGE_SCORE_FIELD = "ImageScore"
OVERALL_FIELD = "OverallQualityScore"
#: OSS refuses to process a source image over 20 MB (400 ImageTooLarge; the source-image limit of its
#: image processing, e.g. https://www.alibabacloud.com/help/en/oss/user-guide/resize-images-4), and
#: refused calls are billed. The server enforces it, the worker skips such objects.
MAX_SOURCE_BYTES = 20 * 1024 * 1024
#: Decimal places the server rounds scores to, as OSS's own answers show (``0.705``).
SCORE_DECIMALS = 3


@dataclass(frozen=True)
class ScoreAnswer:
    """A validated ``image/score`` body."""

    score: float
    dimensions: dict[str, float]
    request_id: str | None


class InvalidAnswer(ValueError):
    """The body of a 2xx answer is not a usable ``image/score`` result."""


def dimension_field(name: str) -> str:
    """``noise`` → ``NoiseScore``, ``colour_saturation`` → ``ColourSaturationScore``."""
    return "".join(part.capitalize() for part in name.split("_")) + "Score"


def build_score_answer(overall: float, dimensions: Mapping[str, float], request_id: str) -> bytes:
    """The JSON body the server sends: overall score, one ``<Name>Score`` per dimension, RequestId."""
    image_score: dict[str, float] = {OVERALL_FIELD: round(overall, SCORE_DECIMALS)}
    for name, value in dimensions.items():
        image_score[dimension_field(name)] = round(value, SCORE_DECIMALS)
    document = {IMAGE_SCORE_FIELD: image_score, "RequestId": request_id}
    return json.dumps(document, separators=(",", ":")).encode("utf-8")


def parse_score_answer(body: bytes) -> ScoreAnswer:
    """Validate ``{"ImageScore": {"OverallQualityScore": x, ...}, "RequestId": "..."}``.

    ``OverallQualityScore`` must be a finite number in [0, 1]. Other finite numeric fields of
    ``ImageScore`` are kept as dimensions; non-numeric extras are ignored rather than failing
    an otherwise good score."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidAnswer(f"the answer is not JSON ({len(body)} bytes)") from exc
    image_score = document.get(IMAGE_SCORE_FIELD) if isinstance(document, dict) else None
    if not isinstance(image_score, dict):
        raise InvalidAnswer(f"the answer has no {IMAGE_SCORE_FIELD} object")
    overall = image_score.get(OVERALL_FIELD)
    if not _is_finite_number(overall) or not 0.0 <= overall <= 1.0:
        raise InvalidAnswer(f"{OVERALL_FIELD} is not a number in [0, 1]: {str(overall)[:40]!r}")
    dimensions = {name: float(value) for name, value in image_score.items()
                  if name != OVERALL_FIELD and _is_finite_number(value)}
    request_id = document.get("RequestId")
    return ScoreAnswer(float(overall), dimensions, request_id if isinstance(request_id, str) else None)


def _is_finite_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
