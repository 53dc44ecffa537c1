"""RestoreObject: ``POST /<key>?restore`` with an optional ``<RestoreRequest>`` body (OSS
documentation, https://www.alibabacloud.com/help/en/oss/developer-reference/restoreobject, and
its error pages cited below).

Only Archive, ColdArchive and DeepColdArchive objects can be restored; on a Standard or IA
object it is ``400 OperationNotSupported`` (EC 0016-00000702). What OSS answers:

* the first request (or one after the restored copy expired): ``202 Accepted``; the restore is
  then in progress and HeadObject says ``x-oss-restore: ongoing-request="true"``;
* another request while it is in progress: ``409 RestoreAlreadyInProgress`` (EC 0016-00000701);
* a request once it is restored: ``200 OK``, and the restored copy lasts ``Days`` from now;
* once restored, HeadObject says ``ongoing-request="false", expiry-date="<RFC 1123 date>"``,
  and GetObject, CopyObject and image processing read the object until that date
  (:func:`worker.server.object_attrs.require_readable`); then it is frozen again.

The body: ``<RestoreRequest><Days>N</Days><JobParameters><Tier>T</Tier></JobParameters>
</RestoreRequest>``, all optional. ``Days`` defaults to 1; 1 to 7 for Archive (EC
0016-00000708), 1 to 365 for ColdArchive and DeepColdArchive (EC 0016-00000704). ``Tier`` is
``Expedited``, ``Standard`` (the default) or ``Bulk`` (EC 0016-00000703 otherwise) and applies
to ColdArchive and DeepColdArchive, whose 202 carries it in ``x-oss-object-restore-priority``.
Other elements, or a body that is not that XML: ``400 MalformedXML``.

How long a restore takes here: ``picscore serve --restore-delay DURATION`` (default 1s), whatever
the tier — long enough that a client sees the in-progress state (an immediate second request is
409, as the SDKs' own tests expect), short enough that a client polling HeadObject sees it
complete at once. ``0`` makes every restore complete immediately. The state (when the restore
completes, when the copy expires) is kept in the object's metadata, so it survives a restart;
overwriting the object discards it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from xml.etree import ElementTree

from aiohttp import web

from .call import Call
from .errors import OSSError
from .object_attrs import ARCHIVED_CLASSES
from .object_kinds import is_restored, restore_in_progress
from .storage import LocalStore, ObjectMeta

__all__ = ["DEFAULT_RESTORE_DELAY_S", "TIERS", "restore_object"]

DEFAULT_RESTORE_DELAY_S = 1.0
TIERS = ("Expedited", "Standard", "Bulk")
MAX_RESTORE_BODY = 16 * 1024
_DAY_S = 86400.0


def _malformed(message: str, ec: str | None = None) -> OSSError:
    return OSSError(400, "MalformedXML", message, ec)


def parse_restore_request(body: bytes) -> tuple[int | None, str | None]:
    """(Days, Tier) of a RestoreRequest body; (None, None) for an empty one."""
    if not body.strip():
        return None, None
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        raise _malformed("The RestoreRequest body is not well-formed XML.") from None
    if root.tag != "RestoreRequest":
        raise _malformed("The body must be a RestoreRequest element.")
    days: int | None = None
    tier: str | None = None
    for child in root:
        if child.tag == "Days":
            text = (child.text or "").strip()
            if not text.isdigit() or len(text) > 6:
                raise _malformed(f"Days must be a positive integer, not {text[:32]!r}.", "0016-00000704")
            days = int(text)
        elif child.tag == "JobParameters":
            for param in child:
                if param.tag != "Tier":
                    raise _malformed(f"JobParameters holds only Tier, not {param.tag[:64]}.", "0016-00000714")
                tier = (param.text or "").strip()
                if tier not in TIERS:
                    raise _malformed(f"Tier must be one of {', '.join(TIERS)}, not {tier[:32]!r}.", "0016-00000703")
        else:
            raise _malformed(f"RestoreRequest does not support the element {child.tag[:64]}.", "0016-00000714")
    return days, tier


def _check_days(days: int, klass: str) -> None:
    limit = 7 if klass == "Archive" else 365
    if not 1 <= days <= limit:
        raise _malformed(f"Days must be from 1 to {limit} for a {klass} object, not {days}.",
                         "0016-00000708" if klass == "Archive" else "0016-00000704")


async def restore_object(call: Call, store: LocalStore, delay_s: float) -> web.StreamResponse:
    assert call.bucket is not None and call.key is not None
    asked_days, tier = parse_restore_request(await call.read_body(MAX_RESTORE_BODY))
    days = 1 if asked_days is None else asked_days
    outcome: list[int] = []

    def change(meta: ObjectMeta) -> ObjectMeta:
        if meta.storage_class not in ARCHIVED_CLASSES:
            raise OSSError(400, "OperationNotSupported", "The operation is not supported for this resource",
                           "0016-00000702")
        _check_days(days, meta.storage_class)
        now = time.time()
        if restore_in_progress(meta, now):
            raise OSSError(409, "RestoreAlreadyInProgress", "The restore operation is in progress.",
                           "0016-00000701")
        if is_restored(meta, now):
            outcome.append(200)
            return replace(meta, restore_ready=meta.restore_ready, restore_expiry=now + days * _DAY_S)
        outcome.append(202)
        ready = now + delay_s
        return replace(meta, restore_ready=ready, restore_expiry=ready + days * _DAY_S)

    meta = await asyncio.to_thread(store.update_meta, call.bucket, call.key, change)
    headers = {}
    if meta.storage_class != "Archive":  # the priority applies to ColdArchive / DeepColdArchive
        headers["x-oss-object-restore-priority"] = tier or "Standard"
    return web.Response(status=outcome[0], headers=headers)
