"""The object operations beyond reading and writing whole objects — AppendObject
(:mod:`.append_object`), PutSymlink / GetSymlink (:mod:`.symlinks`) and RestoreObject
(:mod:`.restore_object`) — routed by their sub-resource, as :class:`~.multipart.Multipart`
routes its own; :meth:`worker.server.handlers.Operations.pick` asks :meth:`ObjectExtras.pick` first.
"""

from __future__ import annotations

from aiohttp import web

from . import restore_object, symlinks
from .append_object import AppendObject
from .call import Call, Handler
from .storage import LocalStore

__all__ = ["ObjectExtras"]


class ObjectExtras:
    def __init__(self, store: LocalStore, restore_delay_s: float = restore_object.DEFAULT_RESTORE_DELAY_S) -> None:
        self.store = store
        self.restore_delay_s = restore_delay_s
        self.append_object = AppendObject(store)

    def pick(self, call: Call) -> Handler | None:
        """The handler for an append, symlink or restore request on an object; None otherwise."""
        if not call.key or self.store is None:  # a synthetic bucket has no store
            return None
        method, q = call.request.method, set(call.query)
        if method == "POST" and "append" in q and q <= {"append", "position"}:
            return self.append_object
        if method == "PUT" and q == {"symlink"}:
            return self.put_symlink
        if method == "GET" and q == {"symlink"}:
            return self.get_symlink
        if method == "POST" and q == {"restore"}:
            return self.restore_object
        return None

    async def put_symlink(self, call: Call) -> web.StreamResponse:
        return await symlinks.put_symlink(call, self.store)

    async def get_symlink(self, call: Call) -> web.StreamResponse:
        return await symlinks.get_symlink(call, self.store)

    async def restore_object(self, call: Call) -> web.StreamResponse:
        return await restore_object.restore_object(call, self.store, self.restore_delay_s)
