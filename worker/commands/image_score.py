"""``picscore run``'s operation: one signed ``GET object?x-oss-process=image/score`` per object.

It sends the call through the engine's :class:`~worker.batch.calls.PacedCaller` and turns how it
ended into a :class:`~worker.results.schema.ResultRow`:

* 200 with a valid answer → ``scored`` (score, per-dimension scores, RequestId);
* 200 with anything else → ``failed``, ``error_code=InvalidAnswer`` (not retried);
* 404 ``NoSuchKey`` → ``missing`` (deleted between listing and scoring);
* 403 ``InvalidObjectState`` → ``skipped``, reason ``Archived`` (moved to an archive storage class
  after the listing: OSS reads it only once restored; not a failure of the audit);
* other 4xx → ``failed`` with the service's status, Code and Message (not retried);
* 5xx, 429, timeouts, connection errors → retried; if retries run out → ``failed`` with the
  last failure.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from alibabacloud_oss_v2.aio import AsyncClient
from alibabacloud_oss_v2.types import OperationInput

from ..batch.calls import CallOutcome, PacedCaller
from ..batch.items import WorkItem
from ..batch.selection import ARCHIVED
from ..oss.errors import CallFailure, invalid_answer
from ..oss.score_contract import (
    PROCESS_PARAMETER,
    REQUEST_ID_HEADER,
    SCORE_PROCESS,
    InvalidAnswer,
    parse_score_answer,
)
from ..results.schema import ObjectRef, ResultRow, Status

__all__ = ["ScoreOperation", "ScoreResponse", "invoke_score"]

#: OSS's answer to reading an archived object that is not restored (403).
INVALID_OBJECT_STATE = "InvalidObjectState"


@dataclass(frozen=True)
class ScoreResponse:
    """The parts of the HTTP answer a score needs."""

    status: int
    body: bytes
    request_id: str | None


def _score_request(bucket: str, key: str) -> OperationInput:
    """``GetObject`` of ``key`` with ``x-oss-process=image/score`` (the SDK's ``GetObjectRequest.process``)."""
    return OperationInput(op_name="GetObject", method="GET", bucket=bucket, key=key,
                          parameters={PROCESS_PARAMETER: SCORE_PROCESS})


async def invoke_score(client: AsyncClient, bucket: str, key: str) -> ScoreResponse:
    """One scoring call; SDK errors propagate.

    Sent through the client's generic ``invoke_operation``: the same signing, transport, endpoint
    and error handling as ``get_object``, without ``get_object``'s parsing of every response
    header into a typed model, which the score does not need.
    """
    output = await client.invoke_operation(_score_request(bucket, key))
    response = output.http_response
    body = response.content if response.is_stream_consumed else await response.read()
    return ScoreResponse(output.status_code, bytes(body or b""),
                         (output.headers or {}).get(REQUEST_ID_HEADER) or None)


class ScoreOperation:
    """The engine's operation for ``picscore run``: an object in, its result row out."""

    def __init__(self, client: AsyncClient, caller: PacedCaller) -> None:
        self.client = client
        self.caller = caller

    async def perform(self, item: WorkItem) -> ResultRow:
        """The row for ``item.ref``; raises only ``AuthenticationFailed`` (and cancellation)."""
        ref = item.ref
        outcome = await self.caller.call(lambda: invoke_score(self.client, ref.bucket, ref.key))
        if outcome.failure is not None:
            return _failure_row(ref, outcome.failure, outcome)
        response = outcome.value
        assert response is not None
        try:
            answer = parse_score_answer(response.body)
        except InvalidAnswer as exc:
            return _failure_row(ref, invalid_answer(str(exc), response.status, response.request_id), outcome)
        return _row(ref, Status.SCORED, outcome, score=answer.score, dimensions=answer.dimensions,
                    http_status=response.status, request_id=answer.request_id or response.request_id)


def _failure_row(ref: ObjectRef, failure: CallFailure, outcome: CallOutcome[Any]) -> ResultRow:
    if failure.http_status == 403 and failure.code == INVALID_OBJECT_STATE:
        return _row(ref, Status.SKIPPED, outcome, http_status=403, error_code=ARCHIVED,
                    error_message=f"{failure.code}: {failure.message}", request_id=failure.request_id)
    status = Status.MISSING if failure.http_status == 404 and failure.code == "NoSuchKey" else Status.FAILED
    return _row(ref, status, outcome, http_status=failure.http_status, error_code=failure.code,
                error_message=failure.message, request_id=failure.request_id)


def _row(ref: ObjectRef, status: Status, outcome: CallOutcome[Any], **fields: Any) -> ResultRow:
    return ResultRow(ref.bucket, ref.key, ref.etag, ref.size, ref.last_modified, status,
                     attempts=outcome.attempts, latency_ms=outcome.latency_ms, scored_at=datetime.now(UTC),
                     storage_class=ref.storage_class, **fields)
