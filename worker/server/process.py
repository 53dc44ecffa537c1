"""``x-oss-process``: which process strings the embedded server answers, and how it refuses the rest.

Only ``image/score`` is implemented, as the sole action (SPEC.md §6.2: OSS documents it as a
single-parameter capability). Everything else gets the OSS image-processing error a client
would recognise, never a 500.
"""

from __future__ import annotations

from .errors import OSSError

__all__ = ["SCORE", "parse_process", "MAX_SCORE_BYTES"]

SCORE = "image/score"
#: OSS refuses to process sources over 20 MB.
MAX_SCORE_BYTES = 20 * 1024 * 1024

#: OSS image actions picscore knows of but does not implement (SPEC.md §6.1).
_KNOWN_IMAGE_ACTIONS = frozenset({
    "resize", "watermark", "crop", "quality", "format", "info", "auto-orient", "circle",
    "indexcrop", "rounded-corners", "blur", "rotate", "interlace", "average-hue", "bright",
    "sharpen", "contrast", "faces", "bodies", "cars", "codes", "labels",
})


def parse_process(value: str) -> str:
    """Return the operation to run (only ``image/score`` today) or raise the OSS error."""
    process = value.strip()
    if process.split("|", 1)[0] != process:
        raise OSSError(400, "NotImplemented", "picscore serve does not implement sys/saveas or piped processing.",
                       "0040-00000212")
    category, _, actions = process.partition("/")
    if category == "style":
        raise OSSError(404, "NoSuchStyle", f"The style '{actions}' does not exist.", "0040-00000404")
    if category in ("doc", "video", "audio"):
        raise OSSError(400, "NotImplemented", f"picscore serve does not implement {category}/ processing.",
                       "0040-00000212")
    if category != "image":
        raise OSSError.invalid_argument(f"The process '{process[:100]}' is not valid: it must start with image/.",
                                        "0040-00000212")
    if not actions:
        raise OSSError.invalid_argument("image/ needs an operation, e.g. image/score.", "0040-00000212")
    names = [action.split(",", 1)[0] for action in actions.split("/")]
    if actions == "score":
        return SCORE
    if "score" in names:
        raise OSSError.invalid_argument("image/score takes no parameters and cannot be chained.",
                                        "0040-00000203")
    unsupported = next((n for n in names if n in _KNOWN_IMAGE_ACTIONS), None)
    if unsupported:
        raise OSSError(400, "NotImplemented",
                       f"picscore serve implements image/score only, not image/{unsupported}.", "0040-00000212")
    raise OSSError.invalid_argument(f"The operation '{names[0][:50]}' is not supported.", "0040-00000212")
