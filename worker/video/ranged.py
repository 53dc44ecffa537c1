"""Reading a video's header through ranged reads, without downloading the video.

``picscore thumbnails`` needs each video's duration before it asks for frames. FFmpeg reads a
container's header through a file interface, and reads only what it needs: the first block
(``ftyp``, and ``moov`` when the file is "fast start") and, for a camera's MP4, whose index
(``moov``) follows the frames, one block near the end.

So the header is parsed from the blocks fetched so far (:class:`BlockFile`); a read that needs
a block not yet fetched ends the file there and names the block, and :func:`read_header`
fetches it (one ranged GET, ``Range: bytes=start-end``) and parses again. Parsing a header
takes about a millisecond, so re-parsing costs nothing next to a round trip, and no thread ever
waits on the network. A header that needs more than ``max_requests`` blocks is refused
(:class:`HeaderUnreachable`): an index spread through the file, or a file that is not a video
at all, is reported rather than downloaded piecemeal.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Awaitable, Callable
from typing import TypeVar

__all__ = ["BlockFile", "HeaderUnreachable", "read_header", "DEFAULT_BLOCK", "DEFAULT_MAX_REQUESTS"]

#: 256 KiB: a phone's 1-minute clip has a moov of about 20-60 KiB; a 1-hour film's, a few MiB.
DEFAULT_BLOCK = 256 * 1024
DEFAULT_MAX_REQUESTS = 24
T = TypeVar("T")


class HeaderUnreachable(Exception):
    """The header needs more ranged reads than allowed, or could not be parsed from them."""

    def __init__(self, message: str, requests: int) -> None:
        super().__init__(message)
        self.requests = requests


class BlockFile(io.RawIOBase):
    """A read-only, seekable file of ``size`` bytes over the ``blocks`` fetched so far.

    Reading into a block that is missing ends the data there (like end of file) and records the
    first such block in :attr:`missing`."""

    def __init__(self, size: int, blocks: dict[int, bytes], block: int) -> None:
        super().__init__()
        self.size = size
        self._blocks = blocks
        self._block = block
        self._position = 0
        self.missing: int | None = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self.size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        wanted = min(len(buffer), max(0, self.size - self._position))
        done = 0
        while done < wanted:
            index, offset = divmod(self._position, self._block)
            data = self._blocks.get(index)
            if data is None:
                if self.missing is None:
                    self.missing = index
                break
            piece = data[offset:offset + wanted - done]
            buffer[done:done + len(piece)] = piece
            done += len(piece)
            self._position += len(piece)
        return done


async def read_header(size: int, fetch: Callable[[int, int], Awaitable[bytes]], parse: Callable[[BlockFile], T],
                      block: int = DEFAULT_BLOCK, max_requests: int = DEFAULT_MAX_REQUESTS) -> tuple[T, int]:
    """``parse`` (which reads a file, e.g. :func:`worker.video.snapshot.probe`) over the first
    block of the object, fetching further blocks with ``fetch(start, end)`` (``end`` inclusive)
    as it turns out to need them. Returns what ``parse`` returned and the number of ranged reads.

    ``parse``'s own error is raised when it failed without wanting another block (the header is
    there, and it is not a video FFmpeg takes); :class:`HeaderUnreachable` when the blocks ran out.
    """
    blocks: dict[int, bytes] = {}
    requests = 0
    wanted = 0
    while True:
        if wanted not in blocks:
            if requests >= max_requests:
                raise HeaderUnreachable(f"the video's header needs more than {max_requests} ranged reads", requests)
            start = wanted * block
            end = min(size, start + block) - 1
            data = await fetch(start, end)
            requests += 1
            if len(data) != end - start + 1:
                raise HeaderUnreachable(f"a ranged read of bytes {start}-{end} returned {len(data)} bytes", requests)
            blocks[wanted] = data
        file = BlockFile(size, blocks, block)
        try:
            return await asyncio.to_thread(parse, file), requests
        except Exception:
            if file.missing is None:
                raise
            wanted = file.missing
