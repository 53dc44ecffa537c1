"""What kind of object an object is — Normal, Multipart, Appendable or Symlink — and where it
stands in a restore, as HeadObject, GetObject and the listings report it.

* ``x-oss-object-type``: ``Normal`` for PutObject / CopyObject, ``Multipart`` for a completed
  multipart upload (recognised by its ``"<hex>-N"`` ETag), ``Appendable`` for AppendObject
  (:mod:`worker.server.append_object`), ``Symlink`` for PutSymlink (:mod:`worker.server.symlinks`).
* ``x-oss-next-append-position``: an Appendable object's length, the position of the next
  append (OSS EC 0026-00000016: https://help.aliyun.com/en/oss/user-guide/0026-00000016).
* ``x-oss-restore``: an Archive / ColdArchive / DeepColdArchive object being restored says
  ``ongoing-request="true"``; once restored ``ongoing-request="false", expiry-date="<RFC 1123>"``
  until the restored copy expires, and then nothing (:mod:`worker.server.restore_object`).

This module imports no other part of the server but the store's :class:`ObjectMeta`, so
:mod:`worker.server.object_attrs` and the listing renderer can both use it.
"""

from __future__ import annotations

import time
from email.utils import formatdate

from .storage import ObjectMeta

__all__ = ["object_type", "is_restored", "restore_in_progress", "kind_headers"]


def object_type(meta: ObjectMeta) -> str:
    """``Normal``, ``Multipart``, ``Appendable`` or ``Symlink``."""
    _, dash, parts = meta.etag.strip('"').rpartition("-")
    if meta.object_type == "Normal" and dash and parts.isdigit():
        return "Multipart"
    return meta.object_type


def is_restored(meta: ObjectMeta, now: float | None = None) -> bool:
    """Whether a restore of ``meta`` has completed and its restored copy has not expired."""
    now = time.time() if now is None else now
    return 0 < meta.restore_ready <= now < meta.restore_expiry


def restore_in_progress(meta: ObjectMeta, now: float | None = None) -> bool:
    now = time.time() if now is None else now
    return meta.restore_ready > now


def kind_headers(meta: ObjectMeta, now: float | None = None) -> dict[str, str]:
    """``x-oss-object-type`` and, where they apply, ``x-oss-next-append-position`` and ``x-oss-restore``."""
    now = time.time() if now is None else now
    headers = {"x-oss-object-type": object_type(meta)}
    if meta.object_type == "Appendable":
        headers["x-oss-next-append-position"] = str(meta.size)
    if restore_in_progress(meta, now):
        headers["x-oss-restore"] = 'ongoing-request="true"'
    elif is_restored(meta, now):
        expiry = formatdate(meta.restore_expiry, usegmt=True)
        headers["x-oss-restore"] = f'ongoing-request="false", expiry-date="{expiry}"'
    return headers
