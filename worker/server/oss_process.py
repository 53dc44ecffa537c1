"""``x-oss-process``: which process strings the embedded server answers, and how it refuses the rest.

Three kinds are implemented:

* ``image/score``: OSS documents it as an action without parameters whose answer is a JSON
  document, so it cannot be chained
  ("Image quality assessment": https://help.aliyun.com/en/oss/user-guide/image-quality-score);
* ``video/snapshot,…``: one frame of a video as an image (:mod:`worker.oss.snapshot_contract`);
* ``image/resize,…``, ``image/format,…``, ``image/quality,…``, chained with ``/`` and applied in
  order (:mod:`worker.oss.image_process_contract`).

Everything else gets the OSS processing error a client would recognise, never a 500.
"""

from __future__ import annotations

from ..oss.image_process_contract import (
    IMAGE_PROCESS_ACTIONS,
    ImageParameterError,
    ImageProcessSpec,
    parse_image_process,
)
from ..oss.score_contract import SCORE_PROCESS
from ..oss.snapshot_contract import SnapshotParameterError, SnapshotSpec, parse_snapshot
from .errors import OSSError

__all__ = ["parse_process"]

#: OSS image actions picscore knows of but does not implement: the actions listed in "Image
#: processing" (https://www.alibabacloud.com/help/en/oss/user-guide/overview-17/) and the
#: IMM-backed detection actions (faces, bodies, cars, codes, labels).
_KNOWN_IMAGE_ACTIONS = frozenset({
    "resize", "watermark", "crop", "quality", "format", "info", "auto-orient", "circle",
    "indexcrop", "rounded-corners", "blur", "rotate", "interlace", "average-hue", "bright",
    "sharpen", "contrast", "faces", "bodies", "cars", "codes", "labels",
})


def parse_process(value: str) -> str | SnapshotSpec | ImageProcessSpec:
    """Return the operation to run (:data:`~worker.oss.score_contract.SCORE_PROCESS`, the
    :class:`~worker.oss.snapshot_contract.SnapshotSpec` of a snapshot, or the
    :class:`~worker.oss.image_process_contract.ImageProcessSpec` of a resize/format/quality chain)
    or raise the OSS error."""
    process = value.strip()
    if process.split("|", 1)[0] != process:
        raise OSSError(400, "NotImplemented", "picscore serve does not implement sys/saveas or piped processing.",
                       "0040-00000212")
    category, _, actions = process.partition("/")
    if category == "style":
        raise OSSError(404, "NoSuchStyle", f"The style '{actions}' does not exist.", "0040-00000404")
    if category == "video":
        return _video(actions)
    if category in ("doc", "audio"):
        raise OSSError(400, "NotImplemented", f"picscore serve does not implement {category}/ processing.",
                       "0040-00000212")
    if category != "image":
        raise OSSError.invalid_argument(f"The process '{process[:100]}' is not valid: it must start with image/.",
                                        "0040-00000212")
    if not actions:
        raise OSSError.invalid_argument("image/ needs an operation, e.g. image/score.", "0040-00000212")
    names = [action.split(",", 1)[0] for action in actions.split("/")]
    if actions == "score":
        return SCORE_PROCESS
    if "score" in names:
        raise OSSError.invalid_argument("image/score takes no parameters and cannot be chained.",
                                        "0040-00000203")
    if all(name in IMAGE_PROCESS_ACTIONS for name in names):
        return _image(actions)
    unsupported = next((n for n in names if n in _KNOWN_IMAGE_ACTIONS - IMAGE_PROCESS_ACTIONS), None)
    if unsupported:
        raise OSSError(400, "NotImplemented", "picscore serve implements image/score, resize, format and quality "
                       f"only, not image/{unsupported}.", "0040-00000212")
    unknown = next(name for name in names if name not in IMAGE_PROCESS_ACTIONS)
    raise OSSError.invalid_argument(f"The operation '{unknown[:50]}' is not supported.", "0040-00000212")


def _image(actions: str) -> ImageProcessSpec:
    try:
        return parse_image_process(actions)
    except ImageParameterError as exc:
        extra = {} if exc.name is None else {"ArgumentName": exc.name, "ArgumentValue": exc.value or ""}
        raise OSSError(exc.status, exc.code, str(exc), exc.ec, extra) from None


def _video(actions: str) -> SnapshotSpec:
    """``snapshot,t_…,…`` → its spec; any other video action is not implemented."""
    name, _, parameters = actions.partition(",")
    if name != "snapshot" or "/" in actions:
        raise OSSError(400, "NotImplemented", "picscore serve implements video/snapshot only, as the sole action.",
                       "0040-00000212")
    try:
        return parse_snapshot(parameters)
    except SnapshotParameterError as exc:
        extra = {} if exc.name is None else {"ArgumentName": exc.name, "ArgumentValue": exc.value or ""}
        raise OSSError.invalid_argument(str(exc), exc.ec, **extra) from None
