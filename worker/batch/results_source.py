"""The results-file source: the rows of earlier results (``picscore run``'s output) as work.

Commands that act on scores (choosing covers, filtering, reporting) start from one or several
results files, e.g. one per shard of a sharded audit, given as local paths or ``oss://bucket/key``.
Each file is one resume stream: rows are read in pages of ``page_rows``, each page a ledger page
whose resume token is the row offset after it, so a command stopped halfway resumes at the first
page not fully written, and rows already recorded as done in the checkpoint are not offered again.

``oss://`` inputs are downloaded once into a cache folder beside the checkpoint (same retry
policy as every call, atomic rename), so a resumed command reads the same bytes it started
with even if the object was rewritten meanwhile. Files are streamed: memory holds one page.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from itertools import islice
from pathlib import Path
from typing import Any

from ..errors import ResultsFileError
from ..oss.client import OssCredentials, download_file
from ..oss.retry import CallFailed
from ..oss.urls import is_oss_url, split_oss_url
from ..results.atomic import atomic_path
from ..results.format_names import format_of
from ..results.formats import read_rows
from ..results.schema import RESULT_SCHEMA, ObjectRef, RowSchema
from .items import WorkItem
from .ledger import ResumeLedger
from .pages import PageOffer

__all__ = ["ResultsFileSource", "localize_results", "read_results", "check_results_file", "PAGE_ROWS"]

#: Rows per ledger page (and per read from the file).
PAGE_ROWS = 1000

class ResultsFileSource:
    """Offers the rows of ``files`` (local results files, any format) as work items."""

    def __init__(self, files: Sequence[Path], pages: PageOffer, *, schema: RowSchema = RESULT_SCHEMA,
                 page_rows: int = PAGE_ROWS) -> None:
        self.files = [Path(path) for path in files]
        self.streams = tuple(str(path) for path in self.files)
        self.description = "the results file(s) " + ", ".join(self.streams)
        self.pages = pages
        self.schema = schema
        self.page_rows = page_rows
        for path in self.files:
            check_results_file(path)

    async def run(self, queue: asyncio.Queue[WorkItem | None], ledger: ResumeLedger) -> None:
        """Offer every file's rows in order (to the end, or to cancellation); never the sentinel."""
        for stream, path in zip(self.streams, self.files, strict=True):
            token, finished = ledger.resume_point(stream)
            if not finished:
                await self._read_file(stream, path, int(token or 0), queue, ledger)

    async def _read_file(self, stream: str, path: Path, offset: int, queue: asyncio.Queue[WorkItem | None],
                         ledger: ResumeLedger) -> None:
        rows = read_results(path, self.schema, offset)
        while True:
            page = await asyncio.to_thread(lambda: list(islice(rows, self.page_rows)))
            if not page:
                break
            offset += len(page)
            refs = [_ref(record, path, stream) for record in page]
            next_token = str(offset) if len(page) == self.page_rows else None
            await self.pages.offer(queue, ledger, stream, refs, next_token, records=page)
        ledger.close_stream(stream)


def check_results_file(path: Path) -> None:
    """Refuse, with a message fit to print, a path that is not a readable results file."""
    if not path.is_file():
        raise ResultsFileError(f"{path} does not exist (or is not a file)")
    if format_of(str(path)) is None:
        raise ResultsFileError(f"cannot tell the format of {path} from its name: use .parquet, .csv or .jsonl")


def read_results(path: Path, schema: RowSchema = RESULT_SCHEMA, offset: int = 0) -> Iterator[dict[str, Any]]:
    """The file's records from row ``offset`` on; a file that is not a results file, or a row
    without bucket, key or ETag, is refused."""
    try:
        for record in islice(read_rows(path, schema=schema), offset, None):
            if not record.get("bucket") or not record.get("key") or record.get("etag") is None:
                raise ResultsFileError(f"{path}: a row has no bucket, key or etag; is it a picscore results file?")
            yield record
    except ResultsFileError:
        raise
    except (KeyError, TypeError, ValueError, OSError) as exc:
        raise ResultsFileError(f"{path} is not a picscore results file ({exc})") from None
    except Exception as exc:  # pyarrow's own errors (ArrowInvalid is a ValueError, others are not)
        raise ResultsFileError(f"{path} is not a picscore results file ({type(exc).__name__}: {exc})") from None


def _ref(record: Mapping[str, Any], path: Path, stream: str) -> ObjectRef:
    """The object version a row is about; a row without bucket, key or ETag is refused."""
    bucket, key, etag = record.get("bucket"), record.get("key"), record.get("etag")
    if not bucket or not key or etag is None:
        raise ResultsFileError(f"{path}: a row has no bucket, key or etag; is it a picscore results file?")
    return ObjectRef(bucket, key, etag, int(record.get("size") or 0), record.get("last_modified"), stream,
                     record.get("storage_class"))


async def localize_results(inputs: Sequence[str], cache_dir: Path, *, endpoint: str, region: str,
                           credentials: OssCredentials,
                           retry: Callable[[Callable[[], Awaitable[Any]]], Awaitable[Any]]) -> list[Path]:
    """Local paths for ``inputs``: local paths as given, ``oss://`` objects downloaded into ``cache_dir``.

    A download already in the cache is reused, so a resumed command reads the file it started
    with. Raises :class:`ResultsFileError` for a missing or unreadable input, and
    :class:`~worker.oss.retry.AuthenticationFailed` when the credentials are refused.
    """
    paths: list[Path] = []
    for text in inputs:
        if not is_oss_url(text):
            paths.append(Path(text))
            continue
        try:
            bucket, key = split_oss_url(text)
        except ValueError as exc:
            raise ResultsFileError(f"{text}: {exc}") from None
        digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).hexdigest()
        local = cache_dir / f"{digest}-{key.rsplit('/', 1)[-1]}"
        if not local.is_file():
            cache_dir.mkdir(parents=True, exist_ok=True)
            try:
                with atomic_path(local) as tmp:
                    await retry(lambda tmp=tmp, bucket=bucket, key=key: asyncio.to_thread(
                        download_file, endpoint, region, credentials, bucket, key, str(tmp)))
            except CallFailed as exc:
                raise ResultsFileError(f"cannot download {text}: {exc.failure.code}: {exc.failure.message}") from None
        paths.append(local)
    return paths
